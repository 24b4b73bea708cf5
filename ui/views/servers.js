// Servers: the list (Local demo first), the add/login form, logout.

import { $, el, showError } from './dom.js';
import { createConnectionEditor } from './connection.js';
import { createLoginMethodEditor } from './login-method.js';
import { createProfileEditor } from './profile.js';

export function createServersView({ invoke, invokeReporting, rebuild, announce }) {
  const list = $('#server-list');
  const form = $('#login-form');
  const addButton = $('#server-add');
  const error = $('#login-error');
  const sessionButton = $('#login-session');
  const profile = createProfileEditor();
  const connection = createConnectionEditor();
  const method = createLoginMethodEditor();
  const progress = $('#login-progress');

  function showProgress(text) {
    progress.textContent = text ?? '';
    progress.hidden = !text;
  }

  function openForm(open) {
    form.hidden = !open;
    addButton.setAttribute('aria-expanded', String(open));
    showError(error, null);
    showProgress(null);
    sessionButton.hidden = true;
    if (open) {
      // A new server starts blank, but keeps the protocol and profile last
      // chosen: a second server of the same API needs only its URL.
      for (const id of ['#server-name', '#server-url', '#server-token']) $(id).value = '';
      connection.clear({ all: true });
      method.clear({ all: true });
      $('#server-url').focus();
    }
  }

  addButton.addEventListener('click', () => openForm(form.hidden));
  $('#login-cancel').addEventListener('click', () => openForm(false));

  /** A token login, or an OpenID Connect one the backend carries out. */
  function send(remember) {
    const common = {
      url: $('#server-url').value.trim(),
      name: $('#server-name').value.trim() || null,
      profile: profile.value(),
      connection: connection.value(),
    };
    const oidc = method.value();
    if (!oidc) return invoke('login', { ...common, token: $('#server-token').value, remember });
    showProgress(oidc.method === 'browser' ? 'Finish the login in your browser…'
      : oidc.method === 'device' ? 'Asking the provider for a code…' : 'Logging in…');
    return invokeReporting('login_oidc', { ...common, oidc }, 'onCode', (code) => {
      showProgress(`Open ${code.verification_uri} on any device and enter the code ${code.user_code} (within ${Math.round(code.expires_in_s / 60)} min).`);
    });
  }

  async function login(remember) {
    showError(error, null);
    $('#login-submit').disabled = true;
    try {
      const info = await send(remember);
      $('#server-token').value = '';
      method.clear({ all: false });
      connection.clear({ all: false });
      openForm(false);
      announce(`Logged in to ${info.name}`);
      await rebuild();
    } catch (err) {
      if (err.code === 'invalid_profile') profile.showError(err);
      else showError(error, err);
      // No keyring: offer to keep the token in memory for this session.
      sessionButton.hidden = err.code !== 'keyring_unavailable';
    } finally {
      showProgress(null);
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
    const protocol = server.profile?.protocol;
    return el('li', { className: server.active ? 'server active' : 'server', 'data-server': server.id },
      el('span', { className: 'name', text: server.name, title: server.url }),
      protocol && protocol !== 'holdline.v1' ? el('span', { className: 'badge', text: protocol, title: `Speaks ${protocol} through its profile` }) : null,
      server.session_only ? el('span', { className: 'badge', text: 'session', title: 'Token kept in memory only' }) : null,
      server.login ? el('span', { className: 'badge', 'data-testid': 'server-oidc', text: 'OIDC', title: `Logged in at ${server.login.issuer} as ${server.login.client_id} (${server.login.method.replace('_', ' ')}); refreshed by itself` }) : null,
      server.connection?.proxy && server.connection.proxy !== 'none'
        ? el('span', { className: 'badge', 'data-testid': 'server-proxy', text: 'proxy', title: `Through ${server.connection.proxy}` }) : null,
      server.connection?.client_cert
        ? el('span', { className: 'badge', text: 'cert', title: `Client certificate ${server.connection.client_cert}` }) : null,
      actions);
  }

  return {
    render(servers, keyring, unreadable) {
      list.replaceChildren(...servers.map(row));
      for (const entry of unreadable ?? []) {
        list.append(el('li', {
          className: 'warning', 'data-testid': 'server-unreadable',
          text: `Saved server #${entry.index + 1} could not be read (${entry.error}); it is kept in settings.json until fixed.`,
          title: entry.excerpt,
        }));
      }
      if (keyring && !keyring.available) {
        list.append(el('li', { className: 'warning', text: `Keyring unavailable: ${keyring.problem}` }));
      }
    },
    onState() {},
  };
}
