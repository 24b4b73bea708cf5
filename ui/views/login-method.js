// The server editor's sign-in method: a token, or an OpenID Connect login
// (in the browser, with a device code, or a service account's client
// credentials) that the backend performs, keeps and refreshes.

import { $ } from './dom.js';

const text = (id) => $(id).value.trim();

export function createLoginMethodEditor() {
  const method = $('#server-login-method');
  const show = () => {
    const oidc = method.value !== 'token';
    $('#server-token-label').hidden = oidc;
    $('#server-remember-label').hidden = oidc;
    $('#server-oidc-fields').hidden = !oidc;
    $('#server-oidc-secret-label').hidden = method.value !== 'client_credentials';
  };
  method.addEventListener('change', show);
  show();

  return {
    /** What `login_oidc` takes as `oidc`; null for a token login. */
    value() {
      if (method.value === 'token') return null;
      return {
        issuer: text('#server-oidc-issuer'),
        client_id: text('#server-oidc-client'),
        scope: text('#server-oidc-scope') || null,
        method: method.value,
        client_secret: method.value === 'client_credentials' ? $('#server-oidc-secret').value : null,
      };
    },
    /** Empties the secret (after a login) or everything (a new server). */
    clear({ all }) {
      $('#server-oidc-secret').value = '';
      if (!all) return;
      for (const id of ['#server-oidc-issuer', '#server-oidc-client', '#server-oidc-scope']) $(id).value = '';
      method.value = 'token';
      show();
    },
  };
}
