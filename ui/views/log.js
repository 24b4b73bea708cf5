// The log view: the persisted connection history, newest first, paged;
// filters by kind, level, text and time; entries expand to their details;
// export to JSONL.

import { $, el, time, date } from './dom.js';

export function createLogView({ invoke, announce }) {
  const list = $('#log-list');
  const more = $('#log-more');
  let nextBefore = null;
  let visible = false;
  let refreshTimer = null;

  function query(beforeId) {
    const kind = $('#log-kind').value;
    const level = $('#log-level').value;
    const text = $('#log-text').value.trim();
    const from = $('#log-from').value;
    return {
      kinds: kind ? [kind] : [],
      levels: level ? [level] : [],
      text: text || null,
      from_ms: from ? new Date(from).getTime() : null,
      before_id: beforeId ?? null,
      limit: 100,
    };
  }

  function row(r) {
    const details = el('pre', { className: 'details', hidden: true, text: JSON.stringify(r.details, null, 2) });
    const head = el('button', { type: 'button', className: 'log-head', 'aria-expanded': 'false' },
      el('span', { className: 'time mono', text: `${date(r.at_ms)} ${time(r.at_ms)}` }),
      el('span', { className: `level ${r.level}`, text: r.level }),
      el('span', { className: 'kind mono', text: r.kind }),
      el('span', { className: 'message', text: r.message }));
    head.addEventListener('click', () => {
      details.hidden = !details.hidden;
      head.setAttribute('aria-expanded', String(!details.hidden));
    });
    return el('li', { className: `log-row ${r.level}`, 'data-testid': 'log-row', 'data-kind': r.kind, 'data-level': r.level }, head, details);
  }

  async function load(append) {
    try {
      const page = await invoke('history_query', { query: query(append ? nextBefore : null) });
      const rows = page.rows.map(row);
      if (append) list.append(...rows); else list.replaceChildren(...rows);
      nextBefore = page.next_before_id;
      more.hidden = nextBefore == null;
    } catch (err) {
      announce(err.message);
    }
  }

  for (const id of ['#log-kind', '#log-level', '#log-from']) $(id).addEventListener('change', () => load(false));
  $('#log-text').addEventListener('input', () => { clearTimeout(refreshTimer); refreshTimer = setTimeout(() => load(false), 200); });
  more.addEventListener('click', () => load(true));
  $('#log-export').addEventListener('click', async () => {
    try {
      const result = await invoke('history_export', { query: query(null) });
      if (result.path) announce(`Exported ${result.count} entries to ${result.path}`);
    } catch (err) {
      announce(err.message);
    }
  });

  return {
    reset() { if (visible) load(false); },
    show() { visible = true; load(false); },
    onLive() {
      // The entry is being written; show it with the first page, soon.
      if (!visible || $('#view-log').hidden) return;
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => load(false), 250);
    },
  };
}
