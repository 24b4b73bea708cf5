//! What crosses the IPC boundary, in both directions.

use crate::connection::{ConnectionEntry, ConnectionInput};
use holdline_engine::{
    ConnectionState, Delivery, DiscontinuityReason, EngineEvent, RawFrame, Snapshot,
};
use holdline_storage::HistoryRow;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A server the user can connect to. The token is never part of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerEntry {
    pub id: String,
    pub name: String,
    pub url: String,
    /// The embedded Local demo: cannot be removed, needs no login.
    #[serde(default)]
    pub builtin: bool,
    /// How to speak to the server (profiles.md); none is `holdline.v1`,
    /// which is what every server saved before profiles existed speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<serde_json::Value>,
    /// Its proxy and client certificate; absent: the system's proxy and no
    /// certificate.
    #[serde(default, skip_serializing_if = "ConnectionEntry::is_default")]
    pub connection: ConnectionEntry,
}

/// A saved server entry that could not be read. It is kept in the settings
/// as it is, never dropped by a save, and shown so the user can fix it.
#[derive(Debug, Clone, Serialize)]
pub struct UnreadableServer {
    /// Its place in the saved list.
    pub index: usize,
    pub error: String,
    /// The start of the entry as it is stored.
    pub excerpt: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    #[serde(flatten)]
    pub entry: ServerEntry,
    /// A token is available (keyring, session, or built in).
    pub has_token: bool,
    /// The token lives in memory only, for this session.
    pub session_only: bool,
    /// The stored login that refreshes (its issuer, client and method;
    /// nothing secret), when the server has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<holdline_login::OidcLogin>,
    pub active: bool,
}

/// How to log in at an OpenID provider, from the server editor.
#[derive(Debug, Clone, Deserialize)]
pub struct OidcInput {
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub scope: Option<String>,
    pub method: holdline_login::LoginMethod,
    /// For `client_credentials` only.
    #[serde(default)]
    pub client_secret: Option<String>,
}

/// What the UI shows while a device login waits for the person.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceCodeInfo {
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub user_code: String,
    pub expires_in_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerInput {
    pub id: Option<String>,
    pub name: Option<String>,
    pub url: String,
    /// The profile as JSON text, as the server editor holds it.
    #[serde(default)]
    pub profile: Option<String>,
    /// Its proxy and client certificate, with their secrets.
    #[serde(default)]
    pub connection: ConnectionInput,
}

/// Settings the user can change; stored with tauri-plugin-store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Preferences {
    pub theme: String,
    pub heartbeat_ms: Option<u64>,
    pub backoff_initial_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    /// Extra CA file for wss:// servers with a private CA.
    pub extra_ca_file: Option<String>,
    /// Launch Holdline when the user logs in (off unless asked for).
    pub start_at_login: bool,
    /// Notify after the active server has been unreachable this long;
    /// `None` turns outage notifications off.
    pub alert_after_s: Option<u64>,
    /// Keep what is delivered in the record (the database), to page back,
    /// search and export.
    pub record: bool,
    /// The record is trimmed to this many megabytes…
    pub record_max_mb: u64,
    /// …and to this many days.
    pub record_max_age_days: u64,
}

impl Preferences {
    pub fn record_retention(&self) -> holdline_storage::RecordRetention {
        holdline_storage::RecordRetention {
            max_age: std::time::Duration::from_secs(self.record_max_age_days * 24 * 3600),
            max_bytes: self.record_max_mb << 20,
        }
    }
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            theme: "system".into(),
            heartbeat_ms: None,
            backoff_initial_ms: None,
            backoff_max_ms: None,
            extra_ca_file: None,
            start_at_login: false,
            alert_after_s: Some(60),
            record: true,
            record_max_mb: 256,
            record_max_age_days: 7,
        }
    }
}

/// One item pushed to the UI.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum UiItem {
    Event {
        feed: String,
        /// `None` where the wire has no sequence number.
        seq: Option<u64>,
        epoch: Option<String>,
        ts: Option<i64>,
        data: Box<RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        meta: Option<Box<RawValue>>,
    },
    Gap {
        feed: String,
        from: u64,
        to: u64,
        /// The client inferred it; the server confirmed nothing.
        inferred: bool,
    },
    Reset {
        feed: String,
        epoch: String,
    },
    Discontinuity {
        feed: String,
        reason: DiscontinuityReason,
    },
    Raw {
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        hex: Option<String>,
    },
    State {
        state: ConnectionState,
    },
    History {
        entry: HistoryRowLite,
    },
    Publish {
        update: holdline_engine::PublishUpdate,
    },
    /// The engine's counters, pushed once a second while a server is active.
    Stats {
        snapshot: Box<Snapshot>,
    },
}

/// A live history entry, shaped like a stored row.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRowLite {
    pub at_ms: i64,
    pub kind: serde_json::Value,
    pub level: serde_json::Value,
    pub message: String,
    pub details: serde_json::Value,
}

impl UiItem {
    pub fn from_delivery(delivery: Delivery) -> UiItem {
        match delivery {
            Delivery::Event(e) => UiItem::Event {
                feed: e.feed.to_string(),
                seq: e.seq,
                epoch: e.epoch.as_deref().map(str::to_owned),
                ts: e.ts,
                data: e.data,
                meta: e.meta,
            },
            Delivery::Gap {
                feed,
                from,
                to,
                inferred,
                ..
            } => UiItem::Gap {
                feed: feed.to_string(),
                from,
                to,
                inferred,
            },
            Delivery::Discontinuity { feed, reason } => UiItem::Discontinuity {
                feed: feed.to_string(),
                reason,
            },
            Delivery::Reset { feed, epoch } => UiItem::Reset {
                feed: feed.to_string(),
                epoch: epoch.to_string(),
            },
            Delivery::Raw(RawFrame::Text(text)) => UiItem::Raw {
                text: Some(text),
                hex: None,
            },
            Delivery::Raw(RawFrame::Binary(bytes)) => UiItem::Raw {
                text: None,
                hex: Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
            },
        }
    }

    pub fn from_event(event: EngineEvent) -> UiItem {
        match event {
            EngineEvent::State(state) => UiItem::State { state },
            EngineEvent::History(entry) => UiItem::History {
                entry: HistoryRowLite {
                    at_ms: entry.at_ms,
                    kind: serde_json::to_value(entry.kind).unwrap_or_default(),
                    level: serde_json::to_value(entry.level).unwrap_or_default(),
                    message: entry.message,
                    details: entry.details,
                },
            },
            EngineEvent::Publish(update) => UiItem::Publish { update },
        }
    }

    pub fn is_delivery(&self) -> bool {
        matches!(
            self,
            UiItem::Event { .. }
                | UiItem::Gap { .. }
                | UiItem::Reset { .. }
                | UiItem::Discontinuity { .. }
                | UiItem::Raw { .. }
        )
    }
}

/// One Channel message: a batch of items, already JSON.
#[derive(Debug, Clone, Serialize)]
pub struct UiBatch {
    pub items: Vec<Box<RawValue>>,
    /// Items dropped since the last batch because the UI fell behind.
    pub dropped: u64,
}

/// Everything the UI needs to rebuild itself after a reload.
#[derive(Debug, Clone, Serialize)]
pub struct AppSnapshot {
    pub servers: Vec<ServerInfo>,
    pub active_server: Option<String>,
    pub engine: Option<Snapshot>,
    pub subscribed: Vec<String>,
    /// How subscribed feeds' binary payloads are shown, where chosen.
    pub decoders: std::collections::BTreeMap<String, String>,
    pub recent: Vec<Box<RawValue>>,
    pub history: Vec<HistoryRow>,
    pub preferences: Preferences,
    pub keyring: KeyringStatus,
    pub unreadable_servers: Vec<UnreadableServer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyringStatus {
    pub available: bool,
    /// What is wrong and how to fix it, when not available.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportResult {
    pub path: Option<String>,
    pub count: u64,
}

impl ExportResult {
    /// The user closed the save dialog: nothing written.
    pub fn cancelled() -> ExportResult {
        ExportResult {
            path: None,
            count: 0,
        }
    }
}
