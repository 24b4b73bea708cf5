// Feeds: subscribe and unsubscribe; per feed the last seq, epoch, events/s,
// gaps and duplicates dropped. Counts come from the stream (every event)
// and the engine's once-a-second stats (duplicates, which the UI never sees).

import { $, el, showError } from './dom.js';

export function createFeedsView({ invoke, rebuild }) {
  const rows = $('#feed-rows');
  const error = $('#feed-error');
  const feeds = new Map();
  // The feeds the backend says are subscribed (others may have rows from
  // deliveries, e.g. under `*`).
  const subscribed = new Set();

  // The feed pickers of the live and publish views follow the feed set.
  function refreshPickers() {
    const names = [...feeds.keys()];
    $('#publish-feeds').replaceChildren(...names.map((n) => el('option', { value: n })));
    const select = $('#live-feed');
    const chosen = select.value;
    select.replaceChildren(el('option', { value: '', text: 'All feeds (merged)' }),
      ...names.map((n) => el('option', { value: n, text: n })));
    select.value = names.includes(chosen) ? chosen : '';
  }

  function ensure(name) {
    let feed = feeds.get(name);
    if (!feed) {
      feed = { name, seq: null, epoch: '', count: 0, gaps: 0, breaks: 0, duplicates: 0, rate: 0, windowStart: performance.now(), windowCount: 0 };
      feeds.set(name, feed);
      refreshPickers();
    }
    return feed;
  }

  $('#feed-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const feed = $('#feed-name').value.trim();
    showError(error, null);
    try {
      await invoke('subscribe', { feed, fromStart: $('#feed-from-start').checked });
      $('#feed-name').value = '';
      ensure(feed);
      subscribed.add(feed);
      render();
      await rebuild();
    } catch (err) {
      showError(error, err);
    }
  });

  let scheduled = false;
  function render() {
    scheduled = false;
    const now = performance.now();
    rows.replaceChildren(...[...feeds.values()].map((f) => {
      const elapsed = (now - f.windowStart) / 1000;
      if (elapsed >= 1) {
        f.rate = f.windowCount / elapsed;
        f.windowCount = 0;
        f.windowStart = now;
      }
      return el('tr', { 'data-testid': 'feed-row', 'data-feed': f.name },
        el('td', { className: 'mono', text: f.name, title: f.epoch ? `epoch ${f.epoch}` : '' }),
        el('td', { className: 'num', text: f.seq == null ? '—' : String(f.seq) }),
        el('td', { className: 'num', text: f.rate.toFixed(f.rate < 10 ? 1 : 0) }),
        el('td', { className: 'num', text: String(f.gaps + f.breaks), title: f.breaks ? `${f.gaps} gaps, ${f.breaks} discontinuities` : '' }),
        el('td', { className: 'num', text: String(f.duplicates) }),
        el('td', {}, el('button', {
          type: 'button', className: 'ghost small', text: '×', 'aria-label': `Unsubscribe ${f.name}`,
          'data-testid': 'feed-unsubscribe',
          onclick: async () => {
            showError(error, null);
            try {
              await invoke('unsubscribe', { feed: f.name });
            } catch (err) {
              // Still subscribed: the row stays, with the reason.
              showError(error, err);
              return;
            }
            feeds.delete(f.name);
            subscribed.delete(f.name);
            refreshPickers();
            render();
          },
        })));
    }));
  }
  // The table is numbers a person reads: four updates a second is plenty.
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setTimeout(() => requestAnimationFrame(render), 250);
  };
  setInterval(schedule, 1000);

  return {
    /// Another server: the table starts afresh.
    reset(names, engine) {
      feeds.clear();
      subscribed.clear();
      refreshPickers();
      this.sync(names, engine);
    },
    /// The same server: rows and their counts stay; feeds the backend no
    /// longer lists go, new ones come.
    sync(names, engine) {
      const now = new Set(names ?? []);
      for (const name of subscribed) {
        if (!now.has(name)) { feeds.delete(name); subscribed.delete(name); }
      }
      for (const name of now) { ensure(name); subscribed.add(name); }
      refreshPickers();
      if (engine) this.onStats(engine);
      render();
    },
    onDelivery(item) {
      if (!item.feed) return;
      const feed = ensure(item.feed);
      if (item.t === 'event') {
        feed.count += 1;
        feed.windowCount += 1;
        if (item.seq != null) feed.seq = item.seq;
        feed.epoch = item.epoch ?? '';
      } else if (item.t === 'discontinuity') {
        feed.breaks += 1;
      } else if (item.t === 'gap') {
        feed.gaps += 1;
        feed.seq = item.to;
      } else if (item.t === 'reset') {
        feed.epoch = item.epoch;
        feed.seq = 0;
      }
      schedule();
    },
    onStats(snapshot) {
      for (const s of snapshot?.feeds ?? []) {
        const feed = ensure(s.feed);
        feed.duplicates = s.duplicates;
        feed.gaps = Math.max(feed.gaps, s.gaps);
        if (s.epoch) feed.epoch = s.epoch;
        if (s.last_seq != null) feed.seq = Math.max(feed.seq ?? 0, s.last_seq);
      }
      schedule();
    },
  };
}
