// Publish: a JSON editor with validation and a feed picker; each publish
// shows queued → sent → acked (seq) or its error. The outbox lives in the
// backend, so queued ones survive disconnects and restarts.

import { $, el, showError } from './dom.js';

export function createPublishView({ invoke, announce }) {
  const list = $('#publish-list');
  const error = $('#publish-error');
  const data = $('#publish-data');
  const savedList = $('#saved-list');
  const entries = new Map();
  let saved = [];

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

  // Saved messages: the backend checks, keeps and renders them.
  function renderSaved(list) {
    saved = list;
    savedList.replaceChildren(...list.map((m, i) => el('li', { className: 'saved', 'data-testid': 'saved-row', 'data-name': m.name },
      el('span', { className: 'muted mono', text: i < 9 ? `Ctrl+${i + 1}` : '' }),
      el('span', { className: 'name', text: m.name }),
      el('span', { className: 'feed mono', text: m.feed }),
      el('button', { type: 'button', className: 'small', text: 'Send', 'aria-label': `Send ${m.name}`, onclick: () => send(m) }),
      el('button', { type: 'button', className: 'ghost small', text: 'Edit', onclick: () => {
        $('#publish-feed').value = m.feed; data.value = m.data; $('#saved-name').value = m.name;
      } }),
      el('button', { type: 'button', className: 'ghost small danger', text: '✕', 'aria-label': `Remove ${m.name}`,
        onclick: () => invoke('saved_remove', { name: m.name }).then(renderSaved).catch((err) => showError(error, err)) }))));
  }

  async function send(message) {
    showError(error, null);
    try {
      const ack = await invoke('saved_send', { name: message.name });
      update(ack.id, message.feed, { status: 'acked', seq: ack.seq });
      announce(`Sent ${message.name}`);
    } catch (err) {
      showError(error, err);
    }
  }

  async function refreshSaved() {
    try { renderSaved(await invoke('saved_list')); } catch { renderSaved([]); }
  }

  $('#saved-save').addEventListener('click', async () => {
    const message = { name: $('#saved-name').value, feed: $('#publish-feed').value.trim(), data: data.value };
    try {
      renderSaved(await invoke('saved_save', { message }));
      showError(error, null);
      announce(`Saved ${message.name.trim()}`);
    } catch (err) {
      showError(error, err);
    }
  });
  $('#saved-export').addEventListener('click', async () => {
    try {
      const result = await invoke('saved_export');
      if (result.path) announce(`Exported ${result.count} saved messages to ${result.path}`);
    } catch (err) { showError(error, err); }
  });
  $('#saved-import').addEventListener('click', async () => {
    try { renderSaved(await invoke('saved_import')); showError(error, null); } catch (err) { showError(error, err); }
  });
  document.addEventListener('keydown', (e) => {
    if (!e.ctrlKey || e.altKey || e.shiftKey || !/^[1-9]$/.test(e.key)) return;
    const message = saved[Number(e.key) - 1];
    if (!message) return;
    e.preventDefault();
    send(message);
  });

  return {
    reset(outbox) {
      for (const item of outbox) update(item.id, item.feed, { status: item.sent ? 'sent' : 'queued' });
      refreshSaved();
    },
    onUpdate(u) {
      const patch = { status: u.status };
      if (u.status === 'acked') patch.seq = u.seq;
      if (u.status === 'failed') patch.message = `${u.message} (${u.code})`;
      update(u.id, u.feed, patch);
    },
  };
}
