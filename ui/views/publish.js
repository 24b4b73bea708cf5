// Publish: a JSON editor with validation and a feed picker; each publish
// shows queued → sent → acked (seq) or its error. The outbox lives in the
// backend, so queued ones survive disconnects and restarts.

import { $, el, showError } from './dom.js';

export function createPublishView({ invoke }) {
  const list = $('#publish-list');
  const error = $('#publish-error');
  const data = $('#publish-data');
  const entries = new Map();

  function render() {
    list.replaceChildren(...[...entries.values()].reverse().slice(0, 100).map((e) =>
      el('li', { className: `publish ${e.status}`, 'data-id': e.id, 'data-status': e.status },
        el('span', { className: 'status', text: e.status === 'acked' ? `acked #${e.seq}` : e.status }),
        el('span', { className: 'feed mono', text: e.feed }),
        el('span', { className: 'muted mono', text: e.id }),
        e.message ? el('span', { className: 'error', text: e.message }) : null)));
  }

  function update(id, feed, patch) {
    const entry = entries.get(id) ?? { id, feed, status: 'queued' };
    Object.assign(entry, patch);
    entries.set(id, entry);
    render();
  }

  data.addEventListener('input', () => {
    try { JSON.parse(data.value); showError(error, null); data.setAttribute('aria-invalid', 'false'); }
    catch (err) { showError(error, { message: `Not valid JSON yet: ${err.message}` }); data.setAttribute('aria-invalid', 'true'); }
  });

  $('#publish-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const feed = $('#publish-feed').value.trim();
    try { JSON.parse(data.value); } catch (err) { showError(error, { message: `Not valid JSON: ${err.message}` }); return; }
    const id = crypto.randomUUID();
    showError(error, null);
    update(id, feed, { status: 'queued' });
    try {
      const ack = await invoke('publish', { feed, data: data.value, id });
      update(id, feed, { status: 'acked', seq: ack.seq });
    } catch (err) {
      update(id, feed, { status: 'failed', message: err.message });
    }
  });

  return {
    reset(outbox) {
      for (const item of outbox) update(item.id, item.feed, { status: item.sent ? 'sent' : 'queued' });
    },
    onUpdate(u) {
      const patch = { status: u.status };
      if (u.status === 'acked') patch.seq = u.seq;
      if (u.status === 'failed') patch.message = `${u.message} (${u.code})`;
      update(u.id, u.feed, patch);
    },
  };
}
