//! `graphql-ws` (profiles §6): GraphQL subscriptions over the
//! `graphql-transport-ws` protocol (enisdenjo/graphql-ws `PROTOCOL.md`).
//!
//! Feeds are the profile's named operations. After `connection_ack` each
//! feed is one `subscribe` operation with an id fresh on every connection;
//! its `next` results are events (the profile's `data` and `seq` pointers
//! read into the result). A publish is a mutation sent as an operation
//! whose first result acknowledges it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use holdline_protocol::{MAX_SEQ, MalformedFrame};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::message::Message;
use super::{FeedRule, Frame, Inbound, Out, Position, Ready, RequestIds, Upgrade, Wire, WireEvent};
use crate::cause::Cause;
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::policy::CloseRule;
use crate::profile::{
    GraphqlOperation, GraphqlProfile, Placeholder, Pointer, Profile, REDACTED, Template, Vars,
};
use crate::secret::Token;
use crate::store::OutboxEntry;

const SUBPROTOCOL: &str = "graphql-transport-ws";

pub(crate) struct GraphqlWire {
    profile: Profile,
    rules: GraphqlProfile,
    /// Each feed's pointers, read from the whole message (`/payload…`).
    readers: HashMap<String, Reader>,
    publish_seq: Option<Pointer>,
    token: Option<Token>,
    connect_within: Duration,
    ids: RequestIds,
    awaiting_ack: Option<Instant>,
    /// Operation ids of this connection, to what they are for.
    operations: HashMap<String, Operation>,
    /// Each subscribed feed's current operation id.
    feed_operations: HashMap<String, String>,
}

struct Reader {
    data: Pointer,
    seq: Option<Pointer>,
    /// `seq` below `data` (the usual shape, `/data/x` and `/data/x/seq`):
    /// read inside the data already found instead of from the top again.
    seq_in_data: Option<Pointer>,
}

enum Operation {
    /// A feed's subscription, with the errors of a result that carried no
    /// data (the server completes such an operation next).
    Feed {
        feed: String,
        errors: Option<String>,
    },
    /// A publish's mutation, by its outbox id.
    Publish(String),
}

/// A pointer into a result, as a pointer into the message that carries it.
fn in_payload(pointer: &Pointer) -> Pointer {
    // A valid pointer prefixed with a plain key is a valid pointer.
    Pointer::parse(&format!("/payload{}", pointer.as_str())).unwrap_or_else(|_| pointer.clone())
}

impl GraphqlWire {
    pub fn new(config: &EngineConfig, rules: &GraphqlProfile) -> Self {
        let default_data = Pointer::parse("/payload/data").ok();
        let readers = rules
            .feeds
            .iter()
            .filter_map(|(name, op)| {
                let data = match &op.data {
                    Some(pointer) => in_payload(pointer),
                    None => default_data.clone()?,
                };
                let seq = op.seq.as_ref().map(in_payload);
                let seq_in_data = seq.as_ref().and_then(|seq| {
                    let below = seq.as_str().strip_prefix(data.as_str())?;
                    below
                        .starts_with('/')
                        .then(|| Pointer::parse(below).ok())
                        .flatten()
                });
                Some((
                    name.clone(),
                    Reader {
                        data,
                        seq,
                        seq_in_data,
                    },
                ))
            })
            .collect();
        GraphqlWire {
            profile: config.profile.clone(),
            publish_seq: rules
                .publish
                .as_ref()
                .and_then(|p| p.seq.as_ref())
                .map(in_payload),
            rules: rules.clone(),
            readers,
            token: config.token.clone(),
            connect_within: config.connect_timeout,
            ids: RequestIds::new(),
            awaiting_ack: None,
            operations: HashMap::new(),
            feed_operations: HashMap::new(),
        }
    }

    fn token(&self) -> Option<&str> {
        self.token
            .as_ref()
            .map(Token::expose)
            .filter(|t| !t.is_empty())
    }

    /// Sends `message`, built with the token; the history gets a copy built
    /// with `<redacted>` when `recorded_as` is given.
    fn send(
        &self,
        recorded_as: Option<(&'static str, Option<&str>)>,
        uses_token: bool,
        build: impl Fn(Option<&str>) -> Value,
        out: &mut Out,
    ) {
        let token = self.token();
        let text = build(token).to_string();
        if let Some((what, feed)) = recorded_as {
            let frame = if uses_token && token.is_some() {
                build(Some(REDACTED)).to_string()
            } else {
                text.clone()
            };
            out.item(Inbound::Sent {
                what,
                feed: feed.map(str::to_owned),
                frame,
            });
        }
        out.send_text(text);
    }

    fn operation_message(id: &str, operation: &GraphqlOperation, vars: &Vars<'_>) -> Value {
        let mut payload = json!({ "query": operation.query });
        if let Some(variables) = &operation.variables {
            payload["variables"] = variables.render(vars);
        }
        json!({ "id": id, "type": "subscribe", "payload": payload })
    }

    fn complete(&mut self, id: &str, out: &mut Out) {
        self.operations.remove(id);
        out.send_text(json!({ "id": id, "type": "complete" }).to_string());
    }

    fn on_message(&mut self, text: &str, out: &mut Out) {
        let message = match Message::read(text) {
            Ok(message) => message,
            Err(_) => {
                return out.item(Inbound::Malformed(MalformedFrame::of_text(
                    text,
                    "not a JSON object",
                )));
            }
        };
        let kind = message
            .find(&TYPE)
            .and_then(|found| found.as_str())
            .unwrap_or_default();
        match &*kind {
            "connection_ack" => {
                self.awaiting_ack = None;
                out.item(Inbound::Ready(Ready::default()));
            }
            "ping" => out.send_text(r#"{"type":"pong"}"#.into()),
            "pong" => {}
            "next" | "error" | "complete" => {
                let Some(id) = message.find(&ID).and_then(|found| found.as_str()) else {
                    return out.item(Inbound::Malformed(MalformedFrame::of_text(
                        text,
                        format!("a {kind} message without its id"),
                    )));
                };
                match self.operations.get(&*id) {
                    Some(Operation::Feed { feed, .. }) => {
                        let feed = feed.clone();
                        self.on_feed_message(&kind, &id, &feed, &message, out);
                    }
                    Some(Operation::Publish(outbox_id)) => {
                        let outbox_id = outbox_id.clone();
                        self.on_publish_message(&kind, &id, outbox_id, &message, out);
                    }
                    // An operation this client completed meanwhile.
                    None => {}
                }
            }
            other => out.item(Inbound::Malformed(MalformedFrame::of_text(
                text,
                format!("{other:?} is no graphql-transport-ws message type"),
            ))),
        }
    }

    fn on_feed_message(
        &mut self,
        kind: &str,
        id: &str,
        feed: &str,
        message: &Message<'_>,
        out: &mut Out,
    ) {
        match kind {
            "next" if message.find(&RESULT_DATA).is_none_or(|d| d.is_null()) => {
                // An execution error: the result has errors and no data.
                let errors = errors_text(message, &RESULT_ERRORS);
                if let Some(Operation::Feed { errors: kept, .. }) = self.operations.get_mut(id) {
                    *kept = Some(errors);
                }
            }
            "next" => match self.event(feed, message) {
                Ok(event) => out.item(Inbound::Event(event)),
                Err(reason) => out.item(Inbound::Malformed(MalformedFrame::of_text(
                    message.text(),
                    reason,
                ))),
            },
            "error" => {
                self.forget(id, feed);
                out.item(Inbound::SubscribeRefused {
                    feed: feed.to_owned(),
                    code: "graphql_error".into(),
                    message: errors_text(message, &PAYLOAD),
                    // The operation is over; asking again would fail alike.
                    permanent: true,
                });
            }
            _ => {
                let errors = match self.operations.get(id) {
                    Some(Operation::Feed { errors, .. }) => errors.clone(),
                    _ => None,
                };
                self.forget(id, feed);
                out.item(Inbound::FeedEnded {
                    feed: feed.to_owned(),
                    reason: match errors {
                        Some(errors) => {
                            format!(
                                "the server completed the subscription after an error: {errors}"
                            )
                        }
                        None => "the server completed the subscription".into(),
                    },
                });
            }
        }
    }

    fn forget(&mut self, id: &str, feed: &str) {
        self.operations.remove(id);
        if self.feed_operations.get(feed).is_some_and(|op| op == id) {
            self.feed_operations.remove(feed);
        }
    }

    fn on_publish_message(
        &mut self,
        kind: &str,
        id: &str,
        outbox_id: String,
        message: &Message<'_>,
        out: &mut Out,
    ) {
        self.operations.remove(id);
        let failed = match kind {
            "error" => Some(errors_text(message, &PAYLOAD)),
            "complete" => Some("the mutation completed without a result".into()),
            _ if message.find(&RESULT_DATA).is_none_or(|d| d.is_null()) => {
                Some(errors_text(message, &RESULT_ERRORS))
            }
            _ => None,
        };
        if let Some(message) = failed {
            return out.item(Inbound::PublishRefused {
                id: outbox_id,
                code: "graphql_error".into(),
                message,
            });
        }
        let seq = self
            .publish_seq
            .as_ref()
            .and_then(|p| message.find(p))
            .and_then(|found| found.as_u64());
        out.item(Inbound::Ack { id: outbox_id, seq });
    }

    fn event(&self, feed: &str, message: &Message<'_>) -> Result<WireEvent, String> {
        let reader = self
            .readers
            .get(feed)
            .ok_or_else(|| format!("{feed} has no reader"))?;
        let data = match message.find(&reader.data) {
            Some(found) => found.to_raw().map_err(|e| e.to_string())?,
            None => {
                return Err(format!(
                    "feeds.{feed}.data: nothing at {} ({})",
                    reader.data.as_str(),
                    errors_text(message, &RESULT_ERRORS)
                ));
            }
        };
        let seq = match (&reader.seq, &reader.seq_in_data) {
            (None, _) => None,
            (Some(pointer), below) => {
                let found = match below {
                    Some(below) => Message::read(data.get())
                        .ok()
                        .and_then(|inner| inner.find(below).and_then(|f| f.as_u64())),
                    None => message.find(pointer).and_then(|f| f.as_u64()),
                };
                match found {
                    Some(seq) if seq <= MAX_SEQ => Some(seq),
                    _ => {
                        return Err(format!(
                            "feeds.{feed}.seq: {} holds no integer from 0 to 2^53-1",
                            pointer.as_str()
                        ));
                    }
                }
            }
        };
        Ok(WireEvent {
            feed: Some(feed.to_owned()),
            seq,
            epoch: None,
            ts: None,
            data,
            meta: None,
            session: None,
            receipt: None,
        })
    }
}

static TYPE: std::sync::LazyLock<Pointer> = std::sync::LazyLock::new(|| pointer("/type"));
static ID: std::sync::LazyLock<Pointer> = std::sync::LazyLock::new(|| pointer("/id"));
static PAYLOAD: std::sync::LazyLock<Pointer> = std::sync::LazyLock::new(|| pointer("/payload"));
static RESULT_DATA: std::sync::LazyLock<Pointer> =
    std::sync::LazyLock::new(|| pointer("/payload/data"));
static RESULT_ERRORS: std::sync::LazyLock<Pointer> =
    std::sync::LazyLock::new(|| pointer("/payload/errors"));

fn pointer(text: &str) -> Pointer {
    Pointer::parse(text).unwrap_or_else(|_| unreachable!("a literal pointer"))
}

/// The `message` of each GraphQL error at `at`, joined; the excerpt of
/// the message when it holds none.
fn errors_text(message: &Message<'_>, at: &Pointer) -> String {
    let errors: Option<Value> = message
        .find(at)
        .and_then(|found| found.to_raw().ok())
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
    let texts: Vec<String> = match &errors {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|e| e.get("message").and_then(Value::as_str))
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    if texts.is_empty() {
        holdline_protocol::excerpt(message.text()).to_owned()
    } else {
        texts.join("; ")
    }
}

impl Wire for GraphqlWire {
    fn upgrade(&self) -> Upgrade {
        Upgrade::offering_only(&self.profile, Some(SUBPROTOCOL))
    }

    fn on_open(&mut self, _selected: Option<&str>, now: Instant, out: &mut Out) {
        self.operations.clear();
        self.feed_operations.clear();
        self.awaiting_ack = Some(now + self.connect_within);
        let init = self.rules.init.clone();
        let uses_token = init.as_ref().is_none_or(|t| t.uses(&Placeholder::Token));
        self.send(
            Some(("login", None)),
            uses_token,
            |token| {
                let payload = match (&init, token) {
                    (Some(template), _) => Some(template.render(&Vars {
                        token,
                        ..Vars::default()
                    })),
                    (None, Some(token)) => Some(json!({ "token": token })),
                    (None, None) => None,
                };
                match payload {
                    Some(payload) => json!({ "type": "connection_init", "payload": payload }),
                    None => json!({ "type": "connection_init" }),
                }
            },
            out,
        );
    }

    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Out) {
        match frame {
            Frame::Text(text) => self.on_message(text, out),
            Frame::Binary(bytes) => out.item(Inbound::Malformed(MalformedFrame::binary(bytes))),
        }
    }

    fn subscribe(&mut self, feed: &str, position: &Position, out: &mut Out) {
        let Some(operation) = self.rules.feeds.get(feed).cloned() else {
            return;
        };
        // A re-subscribe on the same connection ends the old operation.
        if let Some(old) = self.feed_operations.remove(feed) {
            self.complete(&old, out);
        }
        let id = self.ids.next("sub");
        self.operations.insert(
            id.clone(),
            Operation::Feed {
                feed: feed.to_owned(),
                errors: None,
            },
        );
        self.feed_operations.insert(feed.to_owned(), id.clone());
        let uses_token = operation
            .variables
            .as_ref()
            .is_some_and(|t| t.uses(&Placeholder::Token));
        self.send(
            Some(("subscribe", Some(feed))),
            uses_token,
            |token| {
                let vars = Vars {
                    token,
                    feed: Some(feed),
                    since: position.since,
                    epoch: position.epoch.as_deref(),
                    id: Some(&id),
                    ..Vars::default()
                };
                Self::operation_message(&id, &operation, &vars)
            },
            out,
        );
    }

    fn unsubscribe(&mut self, feed: &str, out: &mut Out) {
        if let Some(id) = self.feed_operations.remove(feed) {
            self.complete(&id, out);
            out.item(Inbound::Sent {
                what: "unsubscribe",
                feed: Some(feed.to_owned()),
                frame: json!({ "id": id, "type": "complete" }).to_string(),
            });
        }
    }

    fn check_publish(&self, entry: &OutboxEntry) -> Result<(), EngineError> {
        super::check_profile_publish(entry, self.rules.publish.is_some(), "mutation")
    }

    fn publish(&mut self, entry: &OutboxEntry, out: &mut Out) {
        let Some(operation) = self.rules.publish.clone() else {
            return;
        };
        let data: Value = serde_json::from_str(entry.data.get()).unwrap_or(Value::Null);
        let id = self.ids.next("pub");
        self.operations
            .insert(id.clone(), Operation::Publish(entry.id.clone()));
        let token = self.token();
        let vars = Vars {
            token,
            feed: Some(&entry.feed),
            id: Some(&entry.id),
            data: Some(&data),
            ..Vars::default()
        };
        out.send_text(Self::operation_message(&id, &operation, &vars).to_string());
    }

    fn acks_publishes(&self) -> bool {
        true
    }

    fn deadline(&self) -> Option<Instant> {
        self.awaiting_ack
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Out) {
        if self.awaiting_ack.is_some_and(|at| at <= now) {
            self.awaiting_ack = None;
            out.item(Inbound::End(Cause::NotReady {
                waiting_for: "connection_ack".into(),
                waited_ms: self.connect_within.as_millis() as u64,
            }));
        }
    }

    fn close_rule(&self, code: u16) -> CloseRule {
        if let Some(rule) = super::profile_close_rule(&self.profile, code) {
            return rule;
        }
        match code {
            4401 => CloseRule::NeedsLogin,
            4403 | 4400 | 4406 | 4409 => CloseRule::Stop,
            _ => CloseRule::Backoff,
        }
    }

    fn check_feed(&self, feed: &str, _subscribed: &[Arc<str>]) -> Result<(), String> {
        if self.rules.feeds.contains_key(feed) {
            return Ok(());
        }
        let known: Vec<&str> = self.rules.feeds.keys().map(String::as_str).collect();
        Err(if known.is_empty() {
            "this profile names no feeds (its `feeds` key is empty)".into()
        } else {
            format!(
                "not a feed of this profile; its feeds are {}",
                known.join(", ")
            )
        })
    }

    fn feed_rule(&self, feed: &str) -> FeedRule {
        let operation = self.rules.feeds.get(feed);
        let numbered = operation.is_some_and(|op| op.seq.is_some());
        let replays = operation
            .and_then(|op| op.variables.as_ref())
            .is_some_and(|t: &Template| t.uses(&Placeholder::Since));
        FeedRule::inferred(numbered, replays)
    }

    fn set_token(&mut self, token: Option<Token>) {
        self.token = token;
    }
}
