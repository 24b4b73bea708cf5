// The server editor's profile part: the protocol, a form for the common
// keys of each protocol, and the whole profile as JSON. The form and the
// JSON are two views of one object; the backend's loader judges it, and
// its error is shown at the field it names.

import { $, el } from './dom.js';
import { operationsEditor } from './operations.js';

export const PRESETS = {
  'JSON with a sequence number': {
    protocol: 'json',
    on_open: [{ op: 'login', token: '{token}' }],
    ready: { '/op': 'ready' },
    refused: { '/op': 'denied' },
    subscribe: { op: 'subscribe', channel: '{feed}', since: '{since}' },
    event: { match: { '/type': 'event' }, feed: '/channel', seq: '/seq', data: '/data' },
    publish: { op: 'publish', channel: '{feed}', id: '{id}', data: '{data}' },
    ack: { match: { '/type': 'ack' }, id: '/id', seq: '/seq' },
    answer: [{ match: { '/type': 'ping' }, send: { type: 'pong', ts: '{in:/ts}' } }],
    ignore: [{ '/type': 'welcome' }],
  },
  'JSON, server pushes everything': {
    protocol: 'json',
    auth: 'bearer',
    event: { feed: '/channel' },
  },
  'Socket.IO, joining a room per feed': {
    protocol: 'socket.io',
    subscribe: ['join', '{feed}'],
  },
  'MQTT broker, persistent session': { protocol: 'mqtt', version: '3.1.1', qos: 1 },
  'GraphQL subscriptions': {
    protocol: 'graphql-ws',
    feeds: { ticks: { query: 'subscription Ticks($since: Int) { ticks(since: $since) { seq value } }', variables: { since: '{since}' }, data: '/data/ticks', seq: '/data/ticks/seq' } },
  },
  Raw: { protocol: 'raw' },
};

// Form fields per protocol: a dotted profile key, how to edit it.
const FIELDS = {
  json: [
    { key: 'auth', label: 'Token goes', kind: 'choice', choices: ['bearer', 'payload', 'none'] },
    { key: 'on_open', label: 'Login messages (JSON array)', kind: 'json' },
    { key: 'ready', label: 'Ready when (matcher)', kind: 'json' },
    { key: 'subscribe', label: 'Subscribe message', kind: 'json' },
    { key: 'event.feed', label: 'Event feed at (pointer)', kind: 'text' },
    { key: 'event.seq', label: 'Event seq at (pointer)', kind: 'text' },
    { key: 'event.data', label: 'Event data at (pointer)', kind: 'text' },
    { key: 'publish', label: 'Publish message', kind: 'json' },
    { key: 'heartbeat_ms', label: 'Heartbeat, ms', kind: 'number' },
  ],
  'socket.io': [
    { key: 'auth', label: 'Token goes', kind: 'choice', choices: ['payload', 'bearer', 'none'] },
    { key: 'path', label: 'Path', kind: 'text', placeholder: '/socket.io/' },
    { key: 'namespace', label: 'Namespace', kind: 'text', placeholder: '/' },
    { key: 'connect', label: 'CONNECT payload (auth object)', kind: 'json', placeholder: '{"token": "{token}"}' },
    { key: 'subscribe', label: 'Emit per feed after each connect ([event, args…])', kind: 'json' },
    { key: 'event_seq', label: 'Event seq at (pointer into the first argument)', kind: 'text' },
    { key: 'publish_event', label: 'Publish as event', kind: 'text', placeholder: '{feed}' },
    { key: 'publish_args', label: 'Publish arguments (JSON array)', kind: 'json', placeholder: '["{data}"]' },
  ],
  mqtt: [
    { key: 'version', label: 'MQTT version', kind: 'choice', choices: ['3.1.1', '5'] },
    { key: 'client_id', label: 'Client id (empty: one made and kept for this server)', kind: 'text' },
    { key: 'username', label: 'Username (the token is the password)', kind: 'text' },
    { key: 'qos', label: 'QoS (0 or 1)', kind: 'number', placeholder: '1' },
    { key: 'keepalive_s', label: 'Keepalive, s', kind: 'number', placeholder: '30' },
    { key: 'session_expiry_s', label: 'Session expiry, s (MQTT 5)', kind: 'number', placeholder: '3600' },
    { key: 'event_seq', label: 'Event seq at (pointer into a JSON payload)', kind: 'text' },
  ],
  'graphql-ws': [
    { key: 'init', label: 'connection_init payload (JSON; {token} is the token)', kind: 'json', placeholder: '{"token": "{token}"}' },
    { key: 'feeds', label: 'Feeds', kind: 'operations' },
    { key: 'publish', label: 'Publish mutation (JSON: query, variables, seq)', kind: 'json' },
  ],
  raw: [
    { key: 'auth', label: 'Token goes', kind: 'choice', choices: ['bearer', 'none'] },
    { key: 'subprotocols', label: 'Subprotocols (comma separated)', kind: 'list' },
    { key: 'heartbeat_ms', label: 'Heartbeat, ms', kind: 'number' },
  ],
};

function getPath(object, key) {
  return key.split('.').reduce((value, part) => (value == null ? undefined : value[part]), object);
}

function setPath(object, key, value) {
  const parts = key.split('.');
  let target = object;
  for (const part of parts.slice(0, -1)) {
    if (typeof target[part] !== 'object' || target[part] === null) target[part] = {};
    target = target[part];
  }
  const last = parts[parts.length - 1];
  if (value === undefined) delete target[last]; else target[last] = value;
  // An emptied nested object goes away with its last key.
  if (parts.length > 1 && Object.keys(target).length === 0) delete object[parts[0]];
}

function shown(field, value) {
  if (value === undefined) return '';
  if (field.kind === 'json') return JSON.stringify(value);
  if (field.kind === 'list') return value.join(', ');
  return String(value);
}

function parsed(field, text) {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  if (field.kind === 'number') return Number(trimmed);
  if (field.kind === 'list') return trimmed.split(',').map((s) => s.trim()).filter(Boolean);
  if (field.kind === 'json') {
    try { return JSON.parse(trimmed); } catch { return trimmed; }
  }
  return trimmed;
}

export function createProfileEditor() {
  const protocol = $('#server-protocol');
  const editor = $('#profile-editor');
  const fields = $('#profile-fields');
  const textarea = $('#server-profile');
  const preset = $('#profile-preset');
  const error = $('#profile-error');
  preset.append(...Object.keys(PRESETS).map((name) => el('option', { value: name, text: name })));

  function current() {
    try {
      const value = JSON.parse(textarea.value || '{}');
      return value && typeof value === 'object' && !Array.isArray(value) ? value : null;
    } catch {
      return null;
    }
  }

  function write(profile) {
    textarea.value = JSON.stringify(profile, null, 2);
  }

  function renderFields() {
    const profile = current() ?? {};
    fields.replaceChildren(...(FIELDS[protocol.value] ?? []).map((field) => {
      if (field.kind === 'operations') {
        return el('div', { className: 'field' }, field.label, operationsEditor(getPath(profile, field.key), (feeds) => {
          const next = current();
          if (!next) return;
          setPath(next, field.key, Object.keys(feeds).length ? feeds : undefined);
          write(next);
          clearError();
        }));
      }
      const input = field.kind === 'choice'
        ? el('select', { 'data-key': field.key }, ...field.choices.map((c) => el('option', { value: c, text: c })))
        : el('input', { 'data-key': field.key, spellcheck: 'false', className: field.kind === 'text' ? '' : 'mono', placeholder: field.placeholder ?? '' });
      input.value = shown(field, getPath(profile, field.key)) || (field.kind === 'choice' ? field.choices[0] : '');
      input.addEventListener('change', () => {
        const next = current();
        if (!next) return; // the JSON has a syntax error; the textarea wins
        setPath(next, field.key, parsed(field, input.value));
        write(next);
        clearError();
      });
      return el('label', {}, field.label, input);
    }));
  }

  function clearError() {
    error.hidden = true;
    error.textContent = '';
    for (const node of editor.querySelectorAll('.field-error')) node.classList.remove('field-error');
  }

  function chooseProtocol() {
    clearError();
    const name = protocol.value;
    editor.hidden = name === 'holdline.v1';
    const profile = current();
    if (!editor.hidden && (!profile || profile.protocol !== name)) {
      const start = Object.values(PRESETS).find((p) => p.protocol === name) ?? { protocol: name };
      write(structuredClone(start));
    }
    renderFields();
  }

  // WebKit fires no `change` when the user picks the option a script
  // selected away from; `input` comes either way.
  protocol.addEventListener('change', chooseProtocol);
  protocol.addEventListener('input', chooseProtocol);
  preset.addEventListener('change', () => {
    const chosen = PRESETS[preset.value];
    if (!chosen) return;
    protocol.value = chosen.protocol;
    write(structuredClone(chosen));
    preset.value = '';
    chooseProtocol();
  });
  textarea.addEventListener('input', () => { clearError(); renderFields(); });

  return {
    /// The profile text to send, or null for `holdline.v1`.
    value() {
      return protocol.value === 'holdline.v1' ? null : textarea.value;
    },
    /// Shows the backend's refusal at the field whose key it names.
    showError(err) {
      clearError();
      error.hidden = false;
      error.textContent = err.message ?? String(err);
      const key = (err.key ?? '').replace(/\[.*$/, '').replace(/ \(at .*\)$/, '');
      const input = key && fields.querySelector(`[data-key="${CSS.escape(key)}"]`);
      const at = input ?? textarea;
      at.classList.add('field-error');
      at.closest('label, details')?.after(error);
      if (!input) $('#profile-json').open = true;
    },
  };
}
