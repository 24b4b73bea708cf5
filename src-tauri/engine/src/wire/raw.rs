//! `raw`: any WebSocket server. Frames are shown as they come; a publish
//! sends a JSON string's text (other JSON as its serialization) as one text
//! frame, done once written.

use std::sync::Arc;

use tokio::time::Instant;

use super::{
    FeedRule, Frame, Heartbeat, HoleRule, Inbound, Numbering, Out, Position, Ready, Upgrade, Wire,
};
use crate::delivery::RawFrame;
use crate::error::EngineError;
use crate::policy::{CloseRule, protocol_close_rule};
use crate::profile::Profile;
use crate::secret::Token;
use crate::store::OutboxEntry;

pub(crate) struct RawWire {
    profile: Profile,
}

impl RawWire {
    pub fn new(profile: &Profile) -> Self {
        RawWire {
            profile: profile.clone(),
        }
    }
}

/// The text a raw publish sends: a JSON string's own text, else the JSON.
pub(crate) fn publish_text(entry: &OutboxEntry) -> String {
    match serde_json::from_str::<String>(entry.data.get()) {
        Ok(text) => text,
        Err(_) => entry.data.get().to_owned(),
    }
}

impl Wire for RawWire {
    fn upgrade(&self) -> Upgrade {
        Upgrade::from_profile(&self.profile)
    }

    fn on_open(&mut self, _selected: Option<&str>, _now: Instant, out: &mut Out) {
        out.item(Inbound::Ready(Ready {
            heartbeat: self.profile.common.heartbeat.map(Heartbeat::ClientPings),
            ..Ready::default()
        }));
    }

    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Out) {
        out.item(Inbound::Raw(match frame {
            Frame::Text(text) => RawFrame::Text(text.to_owned()),
            Frame::Binary(bytes) => RawFrame::Binary(bytes.to_vec()),
        }));
    }

    fn subscribe(&mut self, _feed: &str, _position: &Position, _out: &mut Out) {}

    fn unsubscribe(&mut self, _feed: &str, _out: &mut Out) {}

    fn check_publish(&self, _entry: &OutboxEntry) -> Result<(), EngineError> {
        Ok(())
    }

    fn publish(&mut self, entry: &OutboxEntry, out: &mut Out) {
        out.send_text(publish_text(entry));
    }

    fn acks_publishes(&self) -> bool {
        false
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn on_deadline(&mut self, _now: Instant, _out: &mut Out) {}

    fn close_rule(&self, code: u16) -> CloseRule {
        super::profile_close_rule(&self.profile, code).unwrap_or_else(|| protocol_close_rule(code))
    }

    /// A raw server has no feeds; names are kept but nothing is sent.
    fn check_feed(&self, _feed: &str, _subscribed: &[Arc<str>]) -> Result<(), String> {
        Ok(())
    }

    fn feed_rule(&self, _feed: &str) -> FeedRule {
        FeedRule {
            numbering: Numbering::Unnumbered,
            holes: HoleRule::Infer { replay: false },
        }
    }

    fn set_token(&mut self, _token: Option<Token>) {}

    fn is_raw(&self) -> bool {
        true
    }
}
