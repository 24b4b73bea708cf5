//! `holdline.v1` (`shared/protocol.md`), spoken through `holdline-protocol`.
//! A server that selects no subprotocol is shown in raw mode.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use holdline_protocol::{
    ClientFrame, ErrorFrame, MalformedFrame, Publish, SUBPROTOCOL, ServerFrame, Subscribe,
    Unsubscribe, decode_server_frame, error_code,
};
use tokio::time::Instant;
use tracing::warn;

use super::{
    FeedRule, Frame, Heartbeat, HoleRule, Inbound, Numbering, Out, Position, Ready, RequestIds,
    Upgrade, Wire,
};
use crate::cause::Cause;
use crate::config::EngineConfig;
use crate::delivery::RawFrame;
use crate::error::EngineError;
use crate::liveness::clamp_heartbeat;
use crate::policy::{CloseRule, protocol_close_rule};
use crate::profile::Profile;
use crate::secret::Token;
use crate::store::OutboxEntry;

enum Request {
    Subscribe(String),
    Unsubscribe,
}

pub(crate) struct HoldlineWire {
    profile: Profile,
    welcome_within: Duration,
    ids: RequestIds,
    requests: HashMap<String, Request>,
    raw: bool,
    welcome_deadline: Option<Instant>,
    welcomed: bool,
    max_frame_bytes: Option<u64>,
}

impl HoldlineWire {
    pub fn new(config: &EngineConfig) -> Self {
        HoldlineWire {
            profile: config.profile.clone(),
            welcome_within: config.connect_timeout,
            ids: RequestIds::new(),
            requests: HashMap::new(),
            raw: false,
            welcome_deadline: None,
            welcomed: false,
            max_frame_bytes: None,
        }
    }

    fn on_server_frame(&mut self, frame: ServerFrame, out: &mut Out) {
        match frame {
            ServerFrame::Welcome(welcome) => {
                if self.welcomed {
                    warn!("second welcome on one connection ignored");
                    return;
                }
                self.welcomed = true;
                self.welcome_deadline = None;
                self.max_frame_bytes = Some(welcome.max_frame_bytes);
                out.item(Inbound::Ready(Ready {
                    session: Some(welcome.session),
                    heartbeat: Some(Heartbeat::ClientPings(clamp_heartbeat(
                        welcome.heartbeat_ms,
                    ))),
                    max_frame_bytes: Some(welcome.max_frame_bytes),
                    ..Ready::default()
                }));
            }
            ServerFrame::Event(event) => out.item(Inbound::Event(super::WireEvent {
                feed: Some(event.feed),
                seq: Some(event.seq),
                epoch: None,
                ts: Some(event.ts),
                data: event.data,
                meta: None,
                session: None,
                receipt: None,
            })),
            ServerFrame::Subscribed(sub) => {
                if let Some(Request::Subscribe(feed)) = self.requests.remove(&sub.id)
                    && feed != sub.feed
                {
                    warn!(asked = %feed, answered = %sub.feed, "subscribed names another feed");
                }
                out.item(Inbound::Subscribed {
                    feed: sub.feed,
                    epoch: sub.epoch,
                    head: sub.head,
                    replay_from: sub.replay_from,
                    gap: sub.gap.map(|g| (g.from, g.to)),
                });
            }
            ServerFrame::Unsubscribed(unsub) => {
                self.requests.remove(&unsub.id);
            }
            ServerFrame::Ack(ack) => out.item(Inbound::Ack {
                id: ack.id,
                seq: Some(ack.seq),
            }),
            ServerFrame::Pong(_) => {}
            ServerFrame::Error(error) => self.on_error(error, out),
        }
    }

    fn on_error(&mut self, error: ErrorFrame, out: &mut Out) {
        let ErrorFrame { id, code, message } = error;
        match id.as_deref().and_then(|id| self.requests.remove(id)) {
            Some(Request::Subscribe(feed)) => {
                let permanent = matches!(
                    code.as_str(),
                    error_code::INVALID_FEED | error_code::FORBIDDEN
                );
                out.item(Inbound::SubscribeRefused {
                    feed,
                    code,
                    message,
                    permanent,
                });
            }
            // Any other id may be a publish: the actor knows its outbox.
            _ => match id {
                Some(id) if !id.is_empty() => {
                    out.item(Inbound::PublishRefused { id, code, message })
                }
                _ => out.item(Inbound::ServerError { id, code, message }),
            },
        }
    }
}

impl Wire for HoldlineWire {
    fn upgrade(&self) -> Upgrade {
        Upgrade {
            subprotocols: vec![SUBPROTOCOL.to_owned()],
            ..Upgrade::from_profile(&self.profile)
        }
    }

    fn on_open(&mut self, selected: Option<&str>, now: Instant, out: &mut Out) {
        self.requests.clear();
        self.welcomed = false;
        self.max_frame_bytes = None;
        self.raw = selected != Some(SUBPROTOCOL);
        if self.raw {
            self.welcome_deadline = None;
            out.item(Inbound::Ready(Ready::default()));
        } else {
            self.welcome_deadline = Some(now + self.welcome_within);
        }
    }

    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Out) {
        match frame {
            Frame::Text(text) if self.raw => {
                out.item(Inbound::Raw(RawFrame::Text(text.to_owned())))
            }
            Frame::Binary(bytes) if self.raw => {
                out.item(Inbound::Raw(RawFrame::Binary(bytes.to_vec())))
            }
            Frame::Text(text) => match decode_server_frame(text) {
                Ok(frame) => self.on_server_frame(frame, out),
                Err(malformed) => out.item(Inbound::Malformed(malformed)),
            },
            Frame::Binary(bytes) => out.item(Inbound::Malformed(MalformedFrame::binary(bytes))),
        }
    }

    fn subscribe(&mut self, feed: &str, position: &Position, out: &mut Out) {
        if self.raw {
            return;
        }
        let id = self.ids.next("sub");
        self.requests
            .insert(id.clone(), Request::Subscribe(feed.to_owned()));
        let frame = ClientFrame::Subscribe(Subscribe {
            id,
            feed: feed.to_owned(),
            since: position.since,
            epoch: position.epoch.clone(),
        });
        out.send_text(frame.to_json());
    }

    fn unsubscribe(&mut self, feed: &str, out: &mut Out) {
        if self.raw {
            return;
        }
        let id = self.ids.next("unsub");
        self.requests.insert(id.clone(), Request::Unsubscribe);
        let frame = ClientFrame::Unsubscribe(Unsubscribe {
            id,
            feed: feed.to_owned(),
        });
        out.send_text(frame.to_json());
    }

    fn check_publish(&self, entry: &OutboxEntry) -> Result<(), EngineError> {
        if self.raw {
            return Err(EngineError::RawMode);
        }
        holdline_protocol::validate_feed_name(&entry.feed).map_err(|e| {
            EngineError::InvalidFeed {
                feed: entry.feed.chars().take(140).collect(),
                message: e.to_string(),
            }
        })?;
        holdline_protocol::validate_request_id(&entry.id).map_err(|e| EngineError::InvalidId {
            id: entry.id.chars().take(80).collect(),
            message: e.to_string(),
        })?;
        if let Some(limit) = self.max_frame_bytes {
            let bytes = publish_frame(entry).to_json().len();
            if bytes as u64 > limit {
                return Err(EngineError::TooLarge { bytes, limit });
            }
        }
        Ok(())
    }

    /// In raw mode nothing goes out: the outbox keeps the publish for the
    /// next `holdline.v1` connection.
    fn publish(&mut self, entry: &OutboxEntry, out: &mut Out) {
        if !self.raw {
            out.send_text(publish_frame(entry).to_json());
        }
    }

    fn acks_publishes(&self) -> bool {
        true
    }

    fn deadline(&self) -> Option<Instant> {
        self.welcome_deadline
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Out) {
        if self.welcome_deadline.is_some_and(|d| d <= now) {
            self.welcome_deadline = None;
            out.item(Inbound::End(Cause::NotReady {
                waiting_for: "welcome".into(),
                waited_ms: self.welcome_within.as_millis() as u64,
            }));
        }
    }

    fn close_rule(&self, code: u16) -> CloseRule {
        super::profile_close_rule(&self.profile, code).unwrap_or_else(|| protocol_close_rule(code))
    }

    fn check_feed(&self, feed: &str, _subscribed: &[Arc<str>]) -> Result<(), String> {
        holdline_protocol::validate_feed_name(feed).map_err(|e| e.to_string())
    }

    fn feed_rule(&self, _feed: &str) -> FeedRule {
        FeedRule {
            numbering: Numbering::Contiguous,
            holes: HoleRule::AskServer,
        }
    }

    /// The token travels only in the upgrade request, which the actor builds.
    fn set_token(&mut self, _token: Option<Token>) {}

    fn is_raw(&self) -> bool {
        self.raw
    }
}

fn publish_frame(entry: &OutboxEntry) -> ClientFrame {
    ClientFrame::Publish(Publish {
        id: entry.id.clone(),
        feed: entry.feed.clone(),
        data: entry.data.clone(),
    })
}
