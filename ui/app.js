// Holdline's UI: renders what the backend pushes and sends commands. It
// keeps no connection, retry, ordering or storage logic of its own.

import { invoke, invokeReporting, attach } from './bridge.js';
import { createServersView } from './views/servers.js';
import { createFeedsView } from './views/feeds.js';
import { createLiveView } from './views/live.js';
import { createPublishView } from './views/publish.js';
import { createLogView } from './views/log.js';
import { createRecordView } from './views/record.js';
import { createDecodersView } from './views/decoders.js';
import { createStatusView } from './views/status.js';
import { createSettingsView } from './views/settings.js';
import { $ } from './views/dom.js';

const views = {};
// Pushed state changes seen so far. A snapshot answers a request made
// earlier; if a state change was pushed meanwhile, it is newer than the
// snapshot's and must not be overwritten by it.
let stateChanges = 0;

const THEMES = ['system', 'light', 'dark'];
let preferences = { theme: 'system' };

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme && theme !== 'system' ? theme : '';
  $('#theme-toggle').textContent = `Theme: ${theme || 'system'}`;
}

function setupThemeToggle() {
  $('#theme-toggle').addEventListener('click', async () => {
    const next = THEMES[(THEMES.indexOf(preferences.theme) + 1) % THEMES.length];
    try {
      preferences = await invoke('settings_save', { preferences: { ...preferences, theme: next } });
      applyTheme(preferences.theme);
      views.settings.render(preferences);
    } catch (err) {
      views.status.announce(err.message);
    }
  });
}

function handleItems(items, dropped) {
  for (const item of items) {
    switch (item.t) {
      case 'event': case 'gap': case 'reset': case 'discontinuity': case 'raw':
        views.live.add(item);
        views.feeds.onDelivery(item);
        views.record.onDelivery();
        break;
      case 'state':
        stateChanges += 1;
        views.status.setState(item.state);
        views.servers.onState(item.state);
        break;
      case 'history':
        views.log.onLive(item.entry);
        break;
      case 'publish':
        views.publish.onUpdate(item.update);
        break;
      case 'stats':
        views.feeds.onStats(item.snapshot);
        views.status.onStats(item.snapshot);
        break;
    }
  }
  if (dropped) views.live.noteDropped(dropped);
}

// The server the live view and the feeds table show; `undefined` until the
// first snapshot. Only a switch of server starts them afresh.
let shownServer;

async function rebuild() {
  const seenBefore = stateChanges;
  const snap = await invoke('snapshot');
  preferences = snap.preferences ?? preferences;
  applyTheme(preferences.theme);
  views.settings.render(preferences);
  views.servers.render(snap.servers, snap.keyring, snap.unreadable_servers);
  const active = snap.servers.find((s) => s.active);
  if (snap.active_server !== shownServer) {
    if (shownServer !== undefined) views.status.announce(`Now showing ${active?.name ?? 'no server'}; the live view starts afresh`);
    shownServer = snap.active_server;
    views.feeds.reset(snap.subscribed, snap.engine);
    views.live.reset(snap.recent, active?.name);
  } else {
    views.feeds.sync(snap.subscribed, snap.engine);
  }
  if (stateChanges === seenBefore) views.status.setState(snap.engine?.state ?? { state: 'idle' });
  views.status.onStats(snap.engine);
  views.status.setServer(snap.servers.find((s) => s.active));
  views.publish.reset(snap.engine?.outbox ?? [], snap.subscribed);
  views.log.reset();
  views.record.reset();
  views.decoders.render(snap.decoders);
}

function setupTabs() {
  const tabs = ['live', 'record', 'publish', 'log', 'settings'];
  const select = (name) => {
    for (const tab of tabs) {
      const on = tab === name;
      $(`#tab-${tab}`).setAttribute('aria-selected', String(on));
      $(`#view-${tab}`).hidden = !on;
    }
    if (name === 'log') views.log.show();
    if (name === 'record') views.record.show();
    if (name === 'settings') views.settings.showUsage();
  };
  for (const tab of tabs) $(`#tab-${tab}`).addEventListener('click', () => select(tab));
  // The live view holds what arrived lately; older is in the record.
  $('#live-older').addEventListener('click', () => {
    views.record.showFeed($('#live-feed').value);
    select('record');
  });
  document.addEventListener('keydown', (e) => {
    if (e.altKey && ['1', '2', '3', '4', '5'].includes(e.key)) select(tabs[Number(e.key) - 1]);
  });
}

async function main() {
  const context = { invoke, invokeReporting, rebuild, announce: (text) => views.status.announce(text) };
  views.status = createStatusView(context);
  views.servers = createServersView(context);
  views.feeds = createFeedsView(context);
  views.live = createLiveView(context);
  views.publish = createPublishView(context);
  views.log = createLogView(context);
  views.record = createRecordView(context);
  views.decoders = createDecodersView(context);
  views.settings = createSettingsView({
    ...context,
    saved: (next) => { preferences = next; applyTheme(next.theme); },
    current: () => preferences,
  });
  setupTabs();
  setupThemeToggle();
  // Attach first, then rebuild: nothing pushed in between is lost, and the
  // snapshot's recent deliveries are de-duplicated by the live view.
  await attach(handleItems);
  await rebuild();
}

main().catch((err) => {
  document.body.insertAdjacentHTML('afterbegin',
    `<p class="fatal" role="alert">Holdline could not start its UI: ${String(err?.message ?? err)}</p>`);
});
