// A fake backend for the UI's browser tests: it answers the commands the
// bridge sends with in-memory data and lets a test push items as the real
// backend's Channel would. Installed before the page's modules load.
(() => {
  const calls = [];
  let listener = null;
  const servers = [
    { id: 'local-demo', name: 'Local demo', url: 'ws://127.0.0.1:4000/', builtin: true, has_token: true, session_only: false, active: true },
  ];
  const subscribed = [];
  let history = [];
  let nextId = 1;
  let state = { state: 'open', session: 's1', raw: false };
  let snapshotGate = null;
  let loginGate = null;
  let saved = [];
  const decoders = {};
  const record = Array.from({ length: 300 }, (_, i) => {
    const id = 300 - i;
    const item = { id, feed: 'ticks', kind: 'event', seq: id, epoch: 'e1', at_ms: 1_700_000_000_000 + id, data: { n: id, sym: id % 50 === 0 ? 'HOLD' : 'ACME' } };
    // As the backend shows binary payloads: the newest read as MessagePack,
    // the one before it left as hex, with the reason.
    if (id === 300) item.meta = { decoded: 'msgpack' };
    if (id === 299) Object.assign(item, { data: { hex: 'c1' }, meta: { decode_error: 'neither MessagePack nor CBOR' } });
    return item;
  });

  function fail(code, message) {
    return Promise.reject({ code, message });
  }

  const handlers = {
    snapshot: async () => {
      const taken = snapshotBody();
      if (snapshotGate) await snapshotGate;
      return taken;
    },
  };

  function snapshotBody() {
    return {
      servers, active_server: servers.find((s) => s.active)?.id ?? null,
      engine: { state, feeds: subscribed.map((feed) => ({ feed, epoch: 'e1', last_seq: 0, buffered: 0, delivered: 0, duplicates: 0, gaps: 0, resets: 0, resubscribes: 0 })), outbox: [], rtt_ms: 1.25 },
      subscribed, decoders: { ...decoders }, recent: [], history: [], preferences: { theme: 'system', start_at_login: false, alert_after_s: 60, heartbeat_ms: null, backoff_initial_ms: null, backoff_max_ms: null, extra_ca_file: null, record: true, record_max_mb: 256, record_max_age_days: 7 }, keyring: { available: true, problem: null },
    };
  }

  Object.assign(handlers, {
    servers_list: () => servers,
    login: ({ url, token, remember, profile, connection }) => {
      if (!/^wss?:\/\//i.test(url)) return fail('invalid_url', `scheme "${url.split(':')[0]}" is not a feed URL; only ws:// and wss:// are`);
      // The real loader's refusals, for the two shapes the tests use.
      let parsed = null;
      if (profile != null) {
        try { parsed = JSON.parse(profile); } catch (e) { return Promise.reject({ code: 'invalid_profile', key: '', message: `profile key \`\`: not valid JSON: ${e.message}` }); }
        const seq = parsed?.event?.seq;
        if (seq != null && !String(seq).startsWith('/')) {
          return Promise.reject({ code: 'invalid_profile', key: 'event.seq', message: `profile key \`event.seq\`: "${seq}" is not a JSON Pointer: it must be empty or start with '/'` });
        }
        // As the backend's loader: a GraphQL query must parse (here: its
        // braces balance, the fake's stand-in for apollo-parser).
        for (const [name, op] of Object.entries(parsed?.feeds ?? {})) {
          const depth = [...(op.query ?? '')].reduce((d, c) => d + (c === '{') - (c === '}'), 0);
          if (depth !== 0) {
            return Promise.reject({ code: 'invalid_profile', key: `feeds.${name}.query`, message: `profile key \`feeds.${name}.query\`: does not parse as GraphQL: expected R_CURLY` });
          }
        }
      }
      if (!token) return fail('invalid_input', 'the token is empty');
      if (remember && globalThis.__fake.keyringDead) return fail('keyring_unavailable', 'no OS keyring is available (no Secret Service). Set HOLDLINE_TOKEN or run gnome-keyring-daemon');
      for (const s of servers) s.active = false;
      const entry = { id: `srv-${nextId++}`, name: new URL(url.replace(/^ws/, 'http')).host, url, builtin: false, has_token: true, session_only: !remember, active: true, profile: parsed ?? undefined,
        connection: connection ? { proxy: connection.proxy === 'system' ? undefined : connection.proxy, client_cert: connection.client_cert ?? undefined } : undefined };
      servers.push(entry);
      return entry;
    },
    // As the backend: a device login reports its code, then waits for the
    // person (here: until the test releases it).
    login_oidc: async ({ url, oidc, onCode }) => {
      if (!oidc.issuer || !oidc.client_id) return fail('invalid_input', 'the issuer and the client id are both needed');
      if (oidc.method === 'client_credentials' && !oidc.client_secret) return fail('invalid_input', 'client credentials need the client secret');
      if (oidc.method === 'device') onCode({ verification_uri: `${oidc.issuer}/device`, verification_uri_complete: null, user_code: 'WDJB-MJHT', expires_in_s: 600 });
      if (loginGate) await loginGate;
      for (const s of servers) s.active = false;
      const entry = { id: `srv-${nextId++}`, name: new URL(url.replace(/^ws/, 'http')).host, url, builtin: false, has_token: true, session_only: false, active: true,
        login: { issuer: oidc.issuer, client_id: oidc.client_id, method: oidc.method } };
      servers.push(entry);
      return entry;
    },
    // The record: 300 deliveries of one feed, ids 1..300, newest first.
    record_page: ({ feed, beforeId, limit }) => {
      const items = record.filter((r) => (!feed || r.feed === feed) && r.id < (beforeId ?? Infinity)).slice(0, limit);
      return { items, next_before_id: items.length === limit ? items.at(-1).id : null };
    },
    // As the backend: a bad regex is refused; an answer scans at most 64
    // rows (its "frame"), so filling a page takes several.
    record_search: ({ query, beforeId, limit }) => {
      let regex = null;
      if (query.regex) {
        try { regex = new RegExp(query.regex, 'g'); } catch (e) { return fail('invalid_input', `the regular expression does not parse: ${e.message}`); }
      }
      const rows = record.filter((r) => r.id < (beforeId ?? Infinity));
      const hits = [];
      let scanned = 0;
      for (const r of rows) {
        if (scanned === 64 || hits.length === limit) break;
        scanned += 1;
        const text = JSON.stringify(r.data);
        const highlights = [];
        if (query.text) {
          const at = text.toLowerCase().indexOf(query.text.toLowerCase());
          if (at < 0) continue;
          highlights.push([at, at + query.text.length]);
        }
        if (regex) {
          const found = [...text.matchAll(regex)];
          if (!found.length) continue;
          for (const m of found) highlights.push([m.index, m.index + m[0].length]);
        }
        hits.push({ ...r, highlights });
      }
      const last = scanned === rows.length ? null : rows[scanned - 1]?.id ?? null;
      return { hits, next_before_id: last, scanned };
    },
    record_export: ({ format }) => ({ path: `/tmp/record.${format}`, count: record.length }),
    record_usage: () => ({ items: record.length, bytes: 3 << 20, file_bytes: 8 << 20 }),
    // As the backend: a protobuf setting reads its file, which here never exists.
    feed_decoder_set: ({ feed, decoder }) => {
      if (decoder == null) { delete decoders[feed]; return { ...decoders }; }
      if (decoder.startsWith('protobuf:')) return fail('invalid_input', `cannot read ${decoder.split(':')[1]}: No such file or directory`);
      if (!['auto', 'msgpack', 'cbor', 'none'].includes(decoder)) return fail('invalid_input', `unknown decoder "${decoder}": use auto, msgpack, cbor or protobuf:FILE:MESSAGE`);
      decoders[feed] = decoder;
      return { ...decoders };
    },
    // Saved messages, checked as the backend checks them.
    saved_list: () => saved,
    saved_save: ({ message }) => {
      const name = message.name.trim();
      if (!name) return fail('invalid_input', 'a saved message needs a name of 1 to 100 characters');
      try { JSON.parse(message.data); } catch (e) { return fail('invalid_input', `${name}: the message is not valid JSON: ${e.message}`); }
      if (/\{(token|since|epoch|data)\}/.test(message.data)) return fail('invalid_input', `${name}: a saved message may hold {feed} and {id} only`);
      const at = saved.findIndex((m) => m.name === name);
      const entry = { ...message, name };
      if (at >= 0) saved[at] = entry; else saved.push(entry);
      return [...saved];
    },
    saved_remove: ({ name }) => { saved = saved.filter((m) => m.name !== name); return [...saved]; },
    saved_send: ({ name }) => ({ id: `saved-${name}-${nextId++}`, feed: saved.find((m) => m.name === name).feed, seq: 40 + nextId }),
    saved_export: () => ({ path: '/tmp/holdline-messages.json', count: saved.length }),
    saved_import: () => {
      for (const m of globalThis.__fake.importFile) {
        const at = saved.findIndex((s) => s.name === m.name);
        if (at >= 0) saved[at] = m; else saved.push(m);
      }
      return [...saved];
    },
    subscribe: ({ feed }) => {
      if (!/^[A-Za-z0-9._:-]{1,128}$/.test(feed)) return fail('invalid_input', `invalid feed name: ${feed}`);
      if (!subscribed.includes(feed)) subscribed.push(feed);
      return null;
    },
    unsubscribe: ({ feed }) => {
      if (feed === 'sticky') return fail('engine_stopped', 'the engine has stopped');
      subscribed.splice(subscribed.indexOf(feed), 1);
      return null;
    },
    publish: ({ feed, id }) => globalThis.__fake.publishOutcome({ feed, id }),
    history_query: ({ query }) => {
      let rows = history.filter((r) => (!query.kinds?.length || query.kinds.includes(r.kind)) && (!query.levels?.length || query.levels.includes(r.level)) && (!query.text || r.message.toLowerCase().includes(query.text.toLowerCase())));
      return { rows, next_before_id: null };
    },
    history_export: () => ({ path: '/tmp/history.jsonl', count: history.length }),
    settings_save: ({ preferences }) => {
      const after = preferences.alert_after_s;
      if (after != null && (after < 5 || after > 86400)) return fail('invalid_input', 'alert_after_s must be within 5..=86400');
      return preferences;
    },
    reconnect_now: () => null,
    connect: () => null,
    logout: () => null,
    server_remove: () => null,
  });

  globalThis.__HOLDLINE_FAKE_BRIDGE__ = {
    invoke(command, args) {
      calls.push({ command, args });
      const handler = handlers[command];
      if (!handler) return fail('unknown_command', command);
      try { return Promise.resolve(handler(args)); } catch (err) { return Promise.reject(err); }
    },
    attach(onBatch) { listener = onBatch; return Promise.resolve(); },
  };

  globalThis.__fake = {
    calls,
    keyringDead: false,
    importFile: [{ name: 'ping', feed: 'chat', data: '{"ping":"{id}"}' }],
    publishOutcome: ({ feed, id }) => ({ id, feed, seq: 7 }),
    emit(items, dropped = 0) { listener?.(items, dropped); },
    setHistory(rows) { history = rows; },
    setEngineState(next) { state = next; },
    /** Holds OpenID logins unfinished until the returned function is called. */
    holdLogins() {
      let release;
      loginGate = new Promise((resolve) => { release = resolve; });
      return () => { loginGate = null; release(); };
    },
    /** Holds snapshot answers until the returned function is called. */
    holdSnapshots() {
      let release;
      snapshotGate = new Promise((resolve) => { release = resolve; });
      return () => { snapshotGate = null; release(); };
    },
  };
})();
