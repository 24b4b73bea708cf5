// The live view. Every delivery lands in a bounded ring buffer the filter
// searches; rendering happens in animation frames and shows a capped number
// of rows, so a 50,000 events/s burst never blocks input or grows the DOM.

import { $, el, time } from './dom.js';

const BUFFER_LIMIT = 20000;
const ROW_LIMIT = 200;

export function createLiveView() {
  const list = $('#live-list');
  const count = $('#live-count');
  const pauseButton = $('#live-pause');
  let buffer = [];
  let start = 0; // index of the oldest item when the ring is full
  let total = 0;
  let dropped = 0;
  let paused = false;
  let dirty = false;
  let filter = '';
  let feedFilter = '';
  const seen = new Set();
  const expanded = new Set();

  function push(item) {
    if (buffer.length < BUFFER_LIMIT) buffer.push(item);
    else { buffer[start] = item; start = (start + 1) % BUFFER_LIMIT; }
  }

  function key(item) {
    return item.t === 'event' ? `${item.feed}\u0000${item.epoch}\u0000${item.seq}` : null;
  }

  function json(item) {
    if (item.json === undefined) item.json = item.t === 'event' ? JSON.stringify(item.data) : (item.text ?? item.hex ?? '');
    return item.json;
  }

  function matches(item) {
    if (feedFilter && item.feed !== feedFilter) return false;
    if (!filter) return true;
    return (item.feed ?? '').toLowerCase().includes(filter) || json(item).toLowerCase().includes(filter);
  }

  function newest(limit) {
    const out = [];
    const n = buffer.length;
    for (let i = 0; i < n && out.length < limit; i++) {
      const item = buffer[(start + n - 1 - i) % n];
      if (matches(item)) out.push(item);
    }
    return out;
  }

  function row(item) {
    if (item.t === 'gap') {
      return el('div', { className: 'row gap', 'data-testid': 'gap-row', 'data-feed': item.feed, 'data-from': item.from, 'data-to': item.to, role: 'note' },
        el('span', { className: 'feed mono', text: item.feed }),
        el('span', { text: `events ${item.from}–${item.to} are lost (the server no longer has them)` }));
    }
    if (item.t === 'reset') {
      return el('div', { className: 'row reset', 'data-testid': 'reset-row', 'data-feed': item.feed, role: 'note' },
        el('span', { className: 'feed mono', text: item.feed }),
        el('span', { text: `the server restarted its numbering (new epoch ${item.epoch})` }));
    }
    if (item.t === 'raw') {
      return el('div', { className: 'row raw', 'data-testid': 'raw-row' },
        el('span', { className: 'feed mono', text: item.hex ? 'binary' : 'text' }),
        el('code', { className: 'data', text: json(item) }));
    }
    const k = key(item);
    const open = expanded.has(k);
    const node = el('div', { className: open ? 'row event open' : 'row event', 'data-testid': 'event-row', 'data-feed': item.feed, 'data-seq': item.seq, tabindex: 0 },
      el('span', { className: 'time mono', text: time(item.ts) }),
      el('span', { className: 'feed mono', text: item.feed }),
      el('span', { className: 'seq mono', text: `#${item.seq}` }),
      open ? el('pre', { className: 'data pretty', text: JSON.stringify(item.data, null, 2) }) : el('code', { className: 'data', text: json(item) }));
    const toggle = () => { if (expanded.has(k)) expanded.delete(k); else expanded.add(k); mark(); };
    node.addEventListener('click', (e) => { if (!e.target.closest('button')) toggle(); });
    node.addEventListener('keydown', (e) => { if (e.key === 'Enter') toggle(); });
    if (open) {
      node.append(el('button', { type: 'button', className: 'ghost small copy', text: 'Copy',
        onclick: () => navigator.clipboard?.writeText(JSON.stringify(item.data, null, 2)) }));
    }
    return node;
  }

  function render() {
    dirty = false;
    count.textContent = `${total.toLocaleString()} received${dropped ? ` · ${dropped.toLocaleString()} not shown (UI behind)` : ''}${paused ? ' · paused' : ''}`;
    if (paused) return;
    list.replaceChildren(...newest(ROW_LIMIT).map(row));
  }

  function mark() {
    if (!dirty) { dirty = true; requestAnimationFrame(render); }
  }

  pauseButton.addEventListener('click', () => {
    paused = !paused;
    pauseButton.textContent = paused ? 'Resume' : 'Pause';
    pauseButton.setAttribute('aria-pressed', String(paused));
    mark();
  });
  $('#live-filter').addEventListener('input', (e) => { filter = e.target.value.trim().toLowerCase(); mark(); });
  $('#live-feed').addEventListener('change', (e) => { feedFilter = e.target.value; mark(); });

  return {
    add(item) {
      const k = key(item);
      if (k) {
        // A delivery can arrive both in the snapshot and on the stream.
        if (seen.has(k)) return;
        seen.add(k);
        if (seen.size > BUFFER_LIMIT * 2) seen.clear();
      }
      total += 1;
      push(item);
      mark();
    },
    reset(recent) {
      buffer = []; start = 0; total = 0; seen.clear();
      for (const item of recent ?? []) this.add(item);
      mark();
    },
    noteDropped(n) { dropped += n; mark(); },
  };
}
