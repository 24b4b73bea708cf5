//! What the actor tells observers: state, history, publish progress.

use serde_json::json;
use tracing::{info, warn};

use super::Actor;
use crate::delivery::Delivery;
use crate::events::*;

impl Actor {
    pub(super) fn set_state(&mut self, state: ConnectionState) {
        if *self.state.borrow() == state {
            return;
        }
        info!(state = state.name(), "state");
        self.state.send_replace(state.clone());
        self.emit(EngineEvent::State(state));
    }

    pub(super) fn record(
        &self,
        kind: HistoryKind,
        level: Level,
        message: String,
        details: serde_json::Value,
    ) {
        match level {
            Level::Warn | Level::Error => warn!(?kind, "{message}"),
            _ => info!(?kind, "{message}"),
        }
        self.emit(EngineEvent::History(HistoryEntry {
            at_ms: now_ms(),
            kind,
            level,
            message,
            details,
        }));
    }

    pub(super) fn record_storage_error(&self, err: &crate::store::StoreError) {
        self.record(
            HistoryKind::Storage,
            Level::Error,
            format!("storage failed: {err}"),
            json!({ "error": err }),
        );
    }

    /// Records the markers among `self.outgoing[from..]`: every place where
    /// continuity was lost is in the history too.
    pub(super) fn record_markers(&self, from: usize) {
        for delivery in &self.outgoing[from..] {
            match delivery {
                Delivery::Gap {
                    feed,
                    epoch,
                    from,
                    to,
                    inferred,
                } => self.record(
                    HistoryKind::Gap,
                    Level::Warn,
                    if *inferred {
                        format!("{feed}: events {from}..{to} never arrived; gap inferred")
                    } else {
                        format!("{feed}: events {from}..{to} are lost (server retention)")
                    },
                    json!({ "feed": &**feed, "epoch": epoch.as_deref(), "from": from, "to": to,
                            "inferred": inferred }),
                ),
                Delivery::Reset { feed, epoch } => self.record(
                    HistoryKind::Reset,
                    Level::Warn,
                    format!("{feed}: the server started a new epoch {epoch}; cursor reset"),
                    json!({ "feed": &**feed, "epoch": &**epoch }),
                ),
                Delivery::Discontinuity { feed, reason } => self.record(
                    HistoryKind::Discontinuity,
                    Level::Warn,
                    format!(
                        "{feed}: continuity lost ({}); what was sent meanwhile is unknown",
                        reason.as_str()
                    ),
                    json!({ "feed": &**feed, "reason": reason }),
                ),
                Delivery::Event(_) | Delivery::Raw(_) => {}
            }
        }
    }

    pub(super) fn emit(&self, event: EngineEvent) {
        // No observer is fine: history is a service, not a duty.
        let _ = self.events.send(event);
    }
}
