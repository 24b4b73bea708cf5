// The only module that touches Tauri. Every view talks to the backend
// through these functions, so the views also run in a plain browser
// against a fake bridge (tests set window.__HOLDLINE_FAKE_BRIDGE__).

const fake = globalThis.__HOLDLINE_FAKE_BRIDGE__;
const tauri = globalThis.__TAURI__;

/** Calls a backend command; rejects with {code, message}. */
export async function invoke(command, args = {}) {
  if (fake) return fake.invoke(command, args);
  if (!tauri) throw { code: 'no_backend', message: 'Holdline UI needs the Holdline app (or a fake bridge).' };
  return tauri.core.invoke(command, args);
}

/**
 * Calls a command that reports progress through a channel argument named
 * `name` (a device login's code); `onMessage` gets each report.
 */
export async function invokeReporting(command, args, name, onMessage) {
  if (fake) return fake.invoke(command, { ...args, [name]: onMessage });
  if (!tauri) throw { code: 'no_backend', message: 'Holdline UI needs the Holdline app (or a fake bridge).' };
  const channel = new tauri.core.Channel();
  channel.onmessage = onMessage;
  return tauri.core.invoke(command, { ...args, [name]: channel });
}

/** Attaches to the backend's push stream; `onBatch` gets arrays of items. */
export async function attach(onBatch) {
  if (fake) return fake.attach(onBatch);
  const channel = new tauri.core.Channel();
  // Read-only counters for benchmarks (how the Channel batches under load).
  const stats = { messages: 0, items: 0, dropped: 0 };
  globalThis.__holdlineChannelStats = stats;
  channel.onmessage = (batch) => {
    stats.messages += 1;
    stats.items += batch.items.length;
    stats.dropped += batch.dropped;
    onBatch(batch.items, batch.dropped);
  };
  await tauri.core.invoke('events_attach', { channel });
}
