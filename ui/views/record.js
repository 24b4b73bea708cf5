// The record: what the app delivered, kept in its database. Newest first,
// paged back as far as the record goes; searched by text, a regular
// expression and JSON-pointer conditions in the backend, one frame's worth
// at a time; matches highlighted; exported as JSON lines or CSV. A search
// stays applied: new deliveries refresh its first page.

import { $, el, time, date, showError } from './dom.js';
import { readAs, whyHex } from './payload.js';

/** Hits wanted per page; the backend answers within a frame with fewer. */
const PAGE = 100;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** `text` with the byte ranges `highlights` marked. */
function highlighted(text, highlights) {
  if (!highlights?.length) return [text];
  const bytes = encoder.encode(text);
  const parts = [];
  let at = 0;
  for (const [start, end] of highlights) {
    if (start < at) continue;
    parts.push(decoder.decode(bytes.slice(at, start)));
    parts.push(el('mark', { text: decoder.decode(bytes.slice(start, end)) }));
    at = end;
  }
  parts.push(decoder.decode(bytes.slice(at)));
  return parts;
}

export function createRecordView({ invoke, announce }) {
  const list = $('#record-list');
  const more = $('#record-more');
  const status = $('#record-status');
  const error = $('#record-error');
  let nextBefore = null;
  let generation = 0;
  let refreshTimer = null;

  function query() {
    const conditions = $('#record-conditions').value.split(';').map((c) => c.trim()).filter(Boolean);
    return {
      feed: $('#record-feed').value.trim() || null,
      text: $('#record-text').value || null,
      regex: $('#record-regex').value || null,
      conditions,
    };
  }

  const searching = (q) => Boolean(q.text || q.regex || q.conditions.length);

  function row(item) {
    const data = JSON.stringify(item.data);
    const shown = item.highlights ? highlighted(data, item.highlights) : [data];
    const read = readAs(item.meta);
    const node = el('li', { className: `log-row record-${item.kind}`, 'data-testid': 'record-row', 'data-kind': item.kind },
      el('span', { className: 'time mono', text: `${date(item.at_ms)} ${time(item.at_ms)}` }),
      el('span', { className: 'kind mono', text: read ? `${item.feed} · ${read}` : item.feed }),
      el('span', { className: 'mono', text: item.seq != null ? `#${item.seq}` : item.kind }),
      el('span', { className: 'message mono' }, ...shown));
    node.title = whyHex(item.meta);
    return node;
  }

  /** A page: browsing, or as many search answers as it takes to fill it. */
  async function load(append) {
    const mine = ++generation;
    const q = query();
    let before = append ? nextBefore : null;
    const rows = [];
    let scanned = 0;
    try {
      if (!searching(q)) {
        const page = await invoke('record_page', { feed: q.feed, beforeId: before, limit: PAGE });
        rows.push(...page.items);
        before = page.next_before_id;
      } else {
        do {
          const page = await invoke('record_search', { query: q, beforeId: before, limit: PAGE - rows.length });
          if (mine !== generation) return;
          rows.push(...page.hits);
          scanned += page.scanned;
          before = page.next_before_id;
          status.textContent = `${rows.length} found, ${scanned} searched…`;
        } while (rows.length < PAGE && before != null);
      }
    } catch (err) {
      if (mine === generation) showError(error, err);
      return;
    }
    if (mine !== generation) return;
    showError(error, null);
    const nodes = rows.map(row);
    if (append) list.append(...nodes); else list.replaceChildren(...nodes);
    nextBefore = before;
    more.hidden = nextBefore == null;
    const shown = list.children.length;
    status.textContent = searching(q)
      ? `${shown} match${shown === 1 ? '' : 'es'}${nextBefore == null ? ', the whole record searched' : ''}`
      : `${shown} recorded deliveries${nextBefore == null ? ', the whole record' : ''}`;
  }

  const moment = (id) => ($(id).value ? new Date($(id).value).getTime() : null);

  async function exportAs(format) {
    const q = query();
    try {
      const result = await invoke('record_export', { feed: q.feed, fromMs: moment('#record-from'), toMs: moment('#record-to'), format });
      if (result.path) announce(`Exported ${result.count} deliveries to ${result.path}`);
    } catch (err) {
      showError(error, err);
    }
  }

  $('#record-search').addEventListener('submit', (e) => { e.preventDefault(); load(false); });
  more.addEventListener('click', () => load(true));
  $('#record-export-jsonl').addEventListener('click', () => exportAs('jsonl'));
  $('#record-export-csv').addEventListener('click', () => exportAs('csv'));

  const visible = () => !$('#view-record').hidden;
  return {
    show() { load(false); },
    /** Opens on one feed (the live view's), newest first. */
    showFeed(feed) {
      $('#record-feed').value = feed ?? '';
      for (const id of ['#record-text', '#record-regex', '#record-conditions']) $(id).value = '';
    },
    reset() { if (visible()) load(false); },
    /** New deliveries: the first page (and a search's) shows them, soon. */
    onDelivery() {
      if (!visible() || nextBefore !== null && list.children.length >= PAGE) return;
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => load(false), 500);
    },
  };
}
