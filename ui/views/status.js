// The status bar: state, attempt, live countdown to the next retry, RTT,
// "Reconnect now", and an ARIA live region that announces state changes.

import { $ } from './dom.js';

export function createStatusView({ invoke }) {
  const stateNode = $('#state');
  const detail = $('#state-detail');
  const dot = $('#state-dot');
  const rtt = $('#rtt');
  const tokenStatus = $('#token-status');
  const announcer = $('#announcer');
  let current = { state: 'idle' };
  let countdown = null;

  $('#reconnect-now').addEventListener('click', () => {
    invoke('reconnect_now').catch((err) => announce(err.message));
  });

  function announce(text) {
    announcer.textContent = text;
  }

  /** A login that refreshes: when its token expires, when it was refreshed. */
  function describeToken(snapshot) {
    const expires = snapshot?.token_expires_at_ms;
    if (expires == null) return '';
    const left = Math.round((expires - Date.now()) / 1000);
    const when = left > 0 ? `token expires in ${left >= 120 ? `${Math.round(left / 60)} min` : `${left} s`}` : 'token expired';
    const refreshed = snapshot.token_refreshed_at_ms;
    return refreshed != null ? `${when} · refreshed ${new Date(refreshed).toLocaleTimeString()}` : when;
  }

  function describe(s) {
    switch (s.state) {
      case 'connecting': return `attempt ${s.attempt}`;
      case 'open': return s.raw ? 'raw mode (server does not speak holdline.v1)' : '';
      case 'backoff': {
        const left = Math.max(0, s.retry_at_ms - Date.now()) / 1000;
        return `attempt ${s.attempt} · retry in ${left.toFixed(1)} s · ${s.reason ?? ''}`;
      }
      case 'needs_login': return s.reason;
      case 'stopped': return s.reason;
      default: return '';
    }
  }

  function setState(s) {
    const changed = s.state !== current.state;
    current = s;
    stateNode.textContent = s.state;
    dot.dataset.state = s.state;
    detail.textContent = describe(s);
    clearInterval(countdown);
    if (s.state === 'backoff') countdown = setInterval(() => { detail.textContent = describe(current); }, 100);
    if (changed) announce(`Connection ${s.state.replace('_', ' ')}${detail.textContent ? ': ' + detail.textContent : ''}`);
  }

  return {
    setState,
    announce,
    onStats(snapshot) {
      rtt.textContent = snapshot?.rtt_ms != null ? `RTT ${snapshot.rtt_ms.toFixed(1)} ms` : '';
      tokenStatus.textContent = describeToken(snapshot);
    },
    setServer(server) {
      $('#server-label').textContent = server ? `${server.name} · ${server.url}` : '';
    },
  };
}
