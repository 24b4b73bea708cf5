// The live view. Every delivery lands in a bounded ring buffer the filter
// searches; rendering happens in animation frames and shows a capped number
// of rows, so a 50,000 events/s burst never blocks input or grows the DOM.

import { $, el, time, count as formatCount } from './dom.js';
import { readAs, whyHex } from './payload.js';

const BUFFER_LIMIT = 20000;
// Rows kept in the DOM: more than a tall window shows, far fewer than the
// stream holds (the buffer and the filter cover the rest).
const ROW_LIMIT = 120;

export function createLiveView() {
  const list = $('#live-list');
  const count = $('#live-count');
  const pauseButton = $('#live-pause');
  let buffer = [];
  let start = 0; // index of the oldest item when the ring is full
  let total = 0;
  let events = 0;
  let dropped = 0;
  let source = '';
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

  // The identity a numbered event is deduplicated by; an event without a
  // seq has none (every one is its own row).
  function key(item) {
    return item.t === 'event' && item.seq != null ? `${item.feed}\u0000${item.epoch}\u0000${item.seq}` : null;
  }
  let arrivals = 0;

  function json(item) {
    if (item.json === undefined) item.json = item.t === 'event' ? JSON.stringify(item.data) : (item.text ?? item.hex ?? '');
    return item.json;
  }

  // What the protocol says the event was (Socket.IO's event name, MQTT's
  // topic), shown where it tells more than the feed's name.
  function origin(item) {
    const meta = item.meta;
    return meta ? (meta.event ?? meta.topic ?? null) : null;
  }


  function label(item) {
    const from = origin(item);
    const base = from != null && from !== item.feed ? `${item.feed} · ${from}` : (item.feed ?? '');
    const read = readAs(item.meta);
    return read ? `${base} · ${read}` : base;
  }

  function matches(item) {
    if (feedFilter && item.feed !== feedFilter) return false;
    if (!filter) return true;
    return label(item).toLowerCase().includes(filter) || json(item).toLowerCase().includes(filter);
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

  // A fixed pool of row nodes, updated in place each frame: at 50,000
  // events/s the frame budget goes to a few text writes, not to building
  // and discarding hundreds of elements.
  const pool = [];
  function poolRow(i) {
    if (!pool[i]) {
      const node = el('div', { tabindex: 0 },
        el('span', { className: 'time mono' }),
        el('span', { className: 'feed mono' }),
        el('span', { className: 'seq mono' }),
        el('code', { className: 'data' }));
      node.addEventListener('click', () => toggle(node));
      node.addEventListener('keydown', (e) => { if (e.key === 'Enter') toggle(node); });
      pool[i] = node;
    }
    return pool[i];
  }

  function toggle(node) {
    const k = node.dataset.key;
    if (!k) return;
    if (expanded.has(k)) expanded.delete(k); else expanded.add(k);
    mark();
  }

  function fill(node, item) {
    const [timeNode, feedNode, seqNode, dataNode] = node.children;
    const attrs = {};
    let className = 'row';
    if (item.t === 'gap') {
      className += item.inferred ? ' gap inferred' : ' gap';
      attrs.testid = 'gap-row';
      timeNode.textContent = '';
      seqNode.textContent = item.inferred ? 'gap?' : 'gap';
      dataNode.textContent = item.inferred
        ? `events ${item.from}–${item.to} never arrived (inferred by Holdline; the server confirmed nothing)`
        : `events ${item.from}–${item.to} are lost (the server no longer has them)`;
      attrs.from = item.from;
      attrs.to = item.to;
      if (item.inferred) attrs.inferred = 'true';
    } else if (item.t === 'discontinuity') {
      className += ' discontinuity';
      attrs.testid = 'discontinuity-row';
      attrs.reason = item.reason;
      timeNode.textContent = '';
      seqNode.textContent = 'break';
      dataNode.textContent = `continuity lost (${item.reason}): what the server sent meanwhile is unknown`;
    } else if (item.t === 'reset') {
      className += ' reset';
      attrs.testid = 'reset-row';
      timeNode.textContent = '';
      seqNode.textContent = 'reset';
      dataNode.textContent = `the server restarted its numbering (new epoch ${item.epoch})`;
    } else if (item.t === 'raw') {
      className += ' raw';
      attrs.testid = 'raw-row';
      timeNode.textContent = '';
      seqNode.textContent = item.hex ? 'binary' : 'text';
      dataNode.textContent = json(item);
    } else {
      const k = item.rowKey;
      const open = expanded.has(k);
      className += open ? ' event open' : ' event';
      attrs.testid = 'event-row';
      if (item.seq != null) attrs.seq = item.seq;
      attrs.key = k;
      item.timeText ??= time(item.ts ?? item.receivedAt);
      timeNode.textContent = item.timeText;
      seqNode.textContent = item.seq != null ? `#${item.seq}` : '·';
      dataNode.textContent = open ? JSON.stringify(item.data, null, 2) : json(item);
    }
    feedNode.textContent = label(item);
    node.title = whyHex(item.meta);
    node.className = className;
    // Reset every data attribute so a recycled node carries no stale ones.
    for (const name of ['testid', 'feed', 'seq', 'from', 'to', 'key', 'reason', 'inferred', 'origin']) delete node.dataset[name];
    if (item.feed) node.dataset.feed = item.feed;
    if (origin(item) != null) node.dataset.origin = origin(item);
    for (const [name, value] of Object.entries(attrs)) node.dataset[name] = value;
  }

  const copyButton = el('button', { type: 'button', className: 'ghost small copy', text: 'Copy' });
  copyButton.addEventListener('click', (e) => {
    e.stopPropagation();
    const text = copyButton.parentElement?.querySelector('.data')?.textContent ?? '';
    navigator.clipboard?.writeText(text);
  });

  function render() {
    dirty = false;
    count.textContent = `${formatCount(total)} received${source ? ` from ${source}` : ''}${dropped ? ` · ${formatCount(dropped)} not shown (UI behind)` : ''}${paused ? ' · paused' : ''}`;
    count.dataset.count = String(events);
    if (paused) return;
    const items = newest(ROW_LIMIT);
    for (let i = 0; i < items.length; i++) {
      const node = poolRow(i);
      fill(node, items[i]);
      if (list.children[i] !== node) list.insertBefore(node, list.children[i] ?? null);
    }
    while (list.children.length > items.length) list.lastChild.remove();
    copyButton.remove();
    const open = list.querySelector('.row.open');
    if (open) open.append(copyButton);
  }

  // At most one render per FRAME_GAP_MS: a burst moves the whole list every
  // frame anyway, and the time goes to intake instead.
  const FRAME_GAP_MS = 33;
  let lastRender = 0;
  function frame() {
    lastRender = performance.now();
    render();
  }
  function mark() {
    if (dirty) return;
    dirty = true;
    const wait = lastRender + FRAME_GAP_MS - performance.now();
    if (wait <= 0) requestAnimationFrame(frame);
    else setTimeout(() => requestAnimationFrame(frame), wait);
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
      if (item.t === 'event') {
        events += 1;
        item.rowKey = k ?? `arrival\u0000${++arrivals}`;
        item.receivedAt ??= Date.now();
      }
      total += 1;
      push(item);
      mark();
    },
    /// Starts afresh (another server): `recent` from the backend, and the
    /// server's name beside the count, so the fresh start is visible.
    reset(recent, serverName) {
      buffer = []; start = 0; total = 0; events = 0; dropped = 0; seen.clear();
      source = serverName ?? '';
      for (const item of recent ?? []) this.add(item);
      mark();
    },
    noteDropped(n) { dropped += n; mark(); },
  };
}
