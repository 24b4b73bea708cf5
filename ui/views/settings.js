// Settings: the preferences the backend keeps (and checks). The form only
// turns fields into a `Preferences` object; ranges are enforced by the
// backend, whose error text is shown as is.

import { $, showError } from './dom.js';

const DEFAULT_ALERT_AFTER_S = 60;

/** A number field's value, or null when left empty (the default applies). */
function optionalNumber(input) {
  const text = input.value.trim();
  return text === '' ? null : Number(text);
}

export function createSettingsView({ invoke, current, saved }) {
  const form = $('#settings-form');
  const error = $('#settings-error');
  const done = $('#settings-saved');
  const fields = {
    startAtLogin: $('#settings-start-at-login'),
    alerts: $('#settings-alerts'),
    alertAfter: $('#settings-alert-after'),
    heartbeat: $('#settings-heartbeat'),
    backoffInitial: $('#settings-backoff-initial'),
    backoffMax: $('#settings-backoff-max'),
    caFile: $('#settings-ca-file'),
    record: $('#settings-record'),
    recordMb: $('#settings-record-mb'),
    recordDays: $('#settings-record-days'),
  };
  const usage = $('#settings-record-usage');

  function render(prefs) {
    fields.startAtLogin.checked = Boolean(prefs.start_at_login);
    fields.alerts.checked = prefs.alert_after_s != null;
    fields.alertAfter.value = String(prefs.alert_after_s ?? DEFAULT_ALERT_AFTER_S);
    fields.alertAfter.disabled = !fields.alerts.checked;
    fields.heartbeat.value = prefs.heartbeat_ms ?? '';
    fields.backoffInitial.value = prefs.backoff_initial_ms ?? '';
    fields.backoffMax.value = prefs.backoff_max_ms ?? '';
    fields.caFile.value = prefs.extra_ca_file ?? '';
    fields.record.checked = prefs.record !== false;
    fields.recordMb.value = String(prefs.record_max_mb ?? 256);
    fields.recordDays.value = String(prefs.record_max_age_days ?? 7);
  }

  async function showUsage() {
    try {
      const used = await invoke('record_usage');
      const mb = (bytes) => (bytes / (1 << 20)).toFixed(1);
      usage.textContent = `(holds ${used.items} deliveries, ${mb(used.bytes)} MB; the database file is ${mb(used.file_bytes)} MB)`;
    } catch (err) {
      usage.textContent = `(${err.message})`;
    }
  }

  fields.alerts.addEventListener('change', () => {
    fields.alertAfter.disabled = !fields.alerts.checked;
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    done.textContent = '';
    const next = {
      ...current(),
      start_at_login: fields.startAtLogin.checked,
      alert_after_s: fields.alerts.checked ? optionalNumber(fields.alertAfter) ?? DEFAULT_ALERT_AFTER_S : null,
      heartbeat_ms: optionalNumber(fields.heartbeat),
      backoff_initial_ms: optionalNumber(fields.backoffInitial),
      backoff_max_ms: optionalNumber(fields.backoffMax),
      extra_ca_file: fields.caFile.value.trim() || null,
      record: fields.record.checked,
      record_max_mb: Number(fields.recordMb.value),
      record_max_age_days: Number(fields.recordDays.value),
    };
    try {
      const stored = await invoke('settings_save', { preferences: next });
      showError(error, null);
      saved(stored);
      render(stored);
      done.textContent = 'Saved.';
    } catch (err) {
      showError(error, err);
    }
  });

  return { render, showUsage };
}
