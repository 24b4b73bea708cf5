// Servers: the list (Local demo first), the add/login form, logout.

import { $, el, showError } from './dom.js';

export function createServersView({ invoke, rebuild, announce }) {
  const list = $('#server-list');
  const form = $('#login-form');
  const addButton = $('#server-add');
  const error = $('#login-error');
  const sessionButton = $('#login-session');

  function openForm(open) {
    form.hidden = !open;
    addButton.setAttribute('aria-expanded', String(open));
    showError(error, null);
    sessionButton.hidden = true;
    if (open) $('#server-url').focus();
  }

  addButton.addEventListener('click', () => openForm(form.hidden));
  $('#login-cancel').addEventListener('click', () => openForm(false));

  async function login(remember) {
    const args = {
      url: $('#server-url').value.trim(),
      token: $('#server-token').value,
      remember,
      name: $('#server-name').value.trim() || null,
    };
    showError(error, null);
    $('#login-submit').disabled = true;
    try {
      const info = await invoke('login', args);
      $('#server-token').value = '';
      openForm(false);
      announce(`Logged in to ${info.name}`);
      await rebuild();
    } catch (err) {
      showError(error, err);
      // No keyring: offer to keep the token in memory for this session.
      sessionButton.hidden = err.code !== 'keyring_unavailable';
    } finally {
      $('#login-submit').disabled = false;
    }
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); login($('#server-remember').checked); });
  sessionButton.addEventListener('click', () => login(false));

  function row(server) {
    const actions = el('span', { className: 'actions' });
    if (!server.active) {
      actions.append(el('button', {
        type: 'button', className: 'ghost small', text: 'Connect',
        onclick: () => invoke('connect', { id: server.id }).then(rebuild).catch((e) => announce(e.message)),
      }));
    }
    if (!server.builtin && server.has_token) {
      actions.append(el('button', {
        type: 'button', className: 'ghost small', text: 'Log out',
        onclick: () => invoke('logout', { id: server.id }).then(rebuild).catch((e) => announce(e.message)),
      }));
    }
    if (!server.builtin) {
      actions.append(el('button', {
        type: 'button', className: 'ghost small danger', text: 'Remove', 'aria-label': `Remove ${server.name}`,
        onclick: () => invoke('server_remove', { id: server.id }).then(rebuild).catch((e) => announce(e.message)),
      }));
    }
    return el('li', { className: server.active ? 'server active' : 'server', 'data-server': server.id },
      el('span', { className: 'name', text: server.name, title: server.url }),
      server.session_only ? el('span', { className: 'badge', text: 'session', title: 'Token kept in memory only' }) : null,
      actions);
  }

  return {
    render(servers, keyring) {
      list.replaceChildren(...servers.map(row));
      if (keyring && !keyring.available) {
        list.append(el('li', { className: 'warning', text: `Keyring unavailable: ${keyring.problem}` }));
      }
    },
    onState() {},
  };
}
