// The server editor's connection section: which proxy (the system's, none,
// or one given) and a client certificate. Passwords go to the backend,
// which keeps them in the OS keyring; the form forgets them once sent.

import { $ } from './dom.js';

const text = (id) => $(id).value.trim() || null;

export function createConnectionEditor() {
  const mode = $('#server-proxy-mode');
  const proxyFields = $('#server-proxy-fields');
  const show = () => { proxyFields.hidden = mode.value !== 'url'; };
  mode.addEventListener('change', show);
  show();

  return {
    /** What `login` takes as `connection`; null when nothing is set. */
    value() {
      const connection = {
        proxy: mode.value === 'url' ? text('#server-proxy-url') : mode.value,
        proxy_password: mode.value === 'url' ? ($('#server-proxy-password').value || null) : null,
        client_cert: text('#server-client-cert'),
        client_key: text('#server-client-key'),
        client_key_passphrase: $('#server-client-passphrase').value || null,
      };
      const untouched = connection.proxy === 'system'
        && Object.entries(connection).every(([key, value]) => key === 'proxy' || value === null);
      return untouched ? null : connection;
    },
    /** Empties the secrets (after a login) or everything (a new server). */
    clear({ all }) {
      for (const id of ['#server-proxy-password', '#server-client-passphrase']) $(id).value = '';
      if (!all) return;
      for (const id of ['#server-proxy-url', '#server-client-cert', '#server-client-key']) $(id).value = '';
      mode.value = 'system';
      show();
    },
  };
}
