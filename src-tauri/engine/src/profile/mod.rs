//! Profiles (`shared/profiles.md` §1–§2): how to speak to a server that is
//! not `holdline.v1`. One loader for the CLI and the app: every refusal
//! names the key, and nothing is sent on a refused profile.

mod pointer;
mod reader;
pub mod template;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

pub use self::pointer::{Matcher, Pointer, PointerError};
use self::reader::{Obj, matcher_at, wrong_type};
pub use self::template::{Placeholder, REDACTED, Template, Vars};

/// A refused profile: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("profile key `{key}`: {message}")]
pub struct ProfileError {
    /// The offending key as a dotted path (`event.seq`); empty for the
    /// profile as a whole.
    pub key: String,
    pub message: String,
}

impl ProfileError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ProfileError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The wire names of §1's table.
pub mod protocol {
    pub const HOLDLINE: &str = "holdline.v1";
    pub const RAW: &str = "raw";
    pub const JSON: &str = "json";
    pub const SOCKET_IO: &str = "socket.io";
    pub const MQTT: &str = "mqtt";
    pub const GRAPHQL_WS: &str = "graphql-ws";
    pub const ALL: [&str; 6] = [HOLDLINE, RAW, JSON, SOCKET_IO, MQTT, GRAPHQL_WS];
}

/// Where the token goes (§1 `auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Bearer,
    None,
    Header(String),
    Query(String),
    /// Only where a template or the wire's own login step uses `{token}`.
    Payload,
}

/// The keys every protocol shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub auth: Auth,
    pub headers: Vec<(String, Template)>,
    pub subprotocols: Vec<String>,
    pub heartbeat: Option<Duration>,
    /// Close codes added to the wire's table.
    pub close_login: Vec<u16>,
    pub close_stop: Vec<u16>,
}

/// `json` (§3).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonProfile {
    pub on_open: Vec<Template>,
    pub ready: Option<Matcher>,
    pub ready_timeout: Duration,
    pub refused: Option<Matcher>,
    pub subscribe: Option<Template>,
    pub unsubscribe: Option<Template>,
    pub event: EventRule,
    pub sequence: Sequence,
    pub publish: Option<Template>,
    pub ack: Option<AckRule>,
    pub keepalive: Option<Keepalive>,
    pub answer: Vec<(Matcher, Template)>,
    pub ignore: Vec<Matcher>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventRule {
    pub matcher: Matcher,
    pub feed: Option<Pointer>,
    pub seq: Option<Pointer>,
    pub epoch: Option<Pointer>,
    pub data: Option<Pointer>,
}

/// How a feed's sequence numbers behave (§3 `sequence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sequence {
    /// `seq` goes up by one; a hole is a gap.
    #[default]
    Contiguous,
    /// `seq` only grows; late and repeated ones are dropped.
    Increasing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AckRule {
    pub matcher: Matcher,
    pub id: Pointer,
    pub seq: Option<Pointer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Keepalive {
    pub every: Duration,
    pub send: Template,
}

/// `socket.io` (§4).
#[derive(Debug, Clone, PartialEq)]
pub struct SocketIoProfile {
    pub path: String,
    pub namespace: String,
    /// An object template; `None`: `{"token": "{token}"}` when there is a
    /// token, no payload otherwise.
    pub connect: Option<Template>,
    /// An array template: the event name, then its arguments.
    pub subscribe: Option<Template>,
    pub event_seq: Option<Pointer>,
    /// A string template; `"{feed}"` when the profile names none.
    pub publish_event: Template,
    /// The emitted arguments, an array template (a Holdline extension, so
    /// a server that dedupes can be handed `{id}`); `["{data}"]` by default.
    pub publish_args: Template,
}

/// `mqtt` (§5).
#[derive(Debug, Clone, PartialEq)]
pub struct MqttProfile {
    pub version: String,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub qos: u8,
    pub keepalive_s: u64,
    pub session_expiry_s: u64,
    pub event_seq: Option<Pointer>,
}

/// `graphql-ws` (§6).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphqlProfile {
    pub init: Option<Template>,
    pub feeds: BTreeMap<String, GraphqlOperation>,
    pub publish: Option<GraphqlOperation>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GraphqlOperation {
    pub query: String,
    pub variables: Option<Template>,
    pub data: Option<Pointer>,
    pub seq: Option<Pointer>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WireProfile {
    Holdline,
    Raw,
    Json(Box<JsonProfile>),
    SocketIo(SocketIoProfile),
    Mqtt(MqttProfile),
    GraphqlWs(GraphqlProfile),
}

/// A loaded, valid profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub common: Common,
    pub wire: WireProfile,
    /// The profile as the user wrote it, for storing and showing.
    pub source: Value,
}

impl Default for Profile {
    fn default() -> Self {
        Profile::holdline()
    }
}

impl Profile {
    /// `holdline.v1`, what a server with no profile speaks.
    pub fn holdline() -> Profile {
        Profile {
            common: Common {
                auth: Auth::Bearer,
                headers: Vec::new(),
                subprotocols: Vec::new(),
                heartbeat: None,
                close_login: Vec::new(),
                close_stop: Vec::new(),
            },
            wire: WireProfile::Holdline,
            source: serde_json::json!({ "protocol": protocol::HOLDLINE }),
        }
    }

    /// `--protocol NAME`: a profile that holds only `{"protocol": NAME}`.
    pub fn for_protocol(name: &str) -> Result<Profile, ProfileError> {
        Profile::load(&serde_json::json!({ "protocol": name }))
    }

    /// Parses profile text (a file's contents).
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ProfileError::new("", format!("not valid JSON: {e}")))?;
        Profile::load(&value)
    }

    pub fn protocol(&self) -> &'static str {
        match self.wire {
            WireProfile::Holdline => protocol::HOLDLINE,
            WireProfile::Raw => protocol::RAW,
            WireProfile::Json(_) => protocol::JSON,
            WireProfile::SocketIo(_) => protocol::SOCKET_IO,
            WireProfile::Mqtt(_) => protocol::MQTT,
            WireProfile::GraphqlWs(_) => protocol::GRAPHQL_WS,
        }
    }

    /// Checks a profile object against every rule of §1 and §2.
    pub fn load(value: &Value) -> Result<Profile, ProfileError> {
        let mut obj = Obj::new(value, "")
            .map_err(|_| ProfileError::new("", "a profile must be a JSON object"))?;
        let name = obj
            .string("protocol")?
            .unwrap_or_else(|| protocol::HOLDLINE.to_owned());
        let payload_default = matches!(
            name.as_str(),
            protocol::SOCKET_IO | protocol::MQTT | protocol::GRAPHQL_WS
        );
        let common = common(&mut obj, payload_default)?;
        let wire = match name.as_str() {
            protocol::HOLDLINE => WireProfile::Holdline,
            protocol::RAW => WireProfile::Raw,
            protocol::JSON => WireProfile::Json(Box::new(json_profile(&mut obj)?)),
            protocol::SOCKET_IO => WireProfile::SocketIo(socket_io_profile(&mut obj)?),
            protocol::MQTT => WireProfile::Mqtt(mqtt_profile(&mut obj)?),
            protocol::GRAPHQL_WS => WireProfile::GraphqlWs(graphql_profile(&mut obj)?),
            other => {
                return Err(ProfileError::new(
                    "protocol",
                    format!(
                        "unknown protocol {other:?}; one of {}",
                        protocol::ALL.join(", ")
                    ),
                ));
            }
        };
        obj.finish()?;
        Ok(Profile {
            common,
            wire,
            source: value.clone(),
        })
    }

    /// Whether any template may carry `{token}` (then the frame is
    /// recorded with it redacted).
    pub fn payload_auth(&self) -> bool {
        self.common.auth == Auth::Payload
    }
}

fn common(obj: &mut Obj<'_>, payload_default: bool) -> Result<Common, ProfileError> {
    let auth = match obj.get("auth") {
        None if payload_default => Auth::Payload,
        None => Auth::Bearer,
        Some(Value::String(s)) => match s.as_str() {
            "bearer" => Auth::Bearer,
            "none" => Auth::None,
            "payload" => Auth::Payload,
            other => {
                return Err(ProfileError::new(
                    "auth",
                    format!(
                        "{other:?} is not a token placement; use \"bearer\", \"none\", \"payload\", {{\"header\": NAME}} or {{\"query\": NAME}}"
                    ),
                ));
            }
        },
        Some(value @ Value::Object(_)) => {
            let mut placement = Obj::new(value, "auth")?;
            let header = placement.string("header")?;
            let query = placement.string("query")?;
            placement.finish()?;
            match (header, query) {
                (Some(name), None) => {
                    if tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                        .is_err()
                    {
                        return Err(ProfileError::new(
                            "auth.header",
                            format!("{name:?} is not an HTTP header name"),
                        ));
                    }
                    Auth::Header(name)
                }
                (None, Some(name)) if !name.is_empty() => Auth::Query(name),
                (None, Some(_)) => {
                    return Err(ProfileError::new("auth.query", "the name is empty"));
                }
                _ => {
                    return Err(ProfileError::new(
                        "auth",
                        "takes exactly one of \"header\" or \"query\"",
                    ));
                }
            }
        }
        Some(other) => return Err(wrong_type("auth".into(), "a string or an object", other)),
    };
    let mut headers = Vec::new();
    if let Some(map) = obj.object("headers")? {
        for (name, value) in map.entries() {
            let key = format!("headers.{name}");
            if tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                .is_err()
            {
                return Err(ProfileError::new(key, "not an HTTP header name"));
            }
            headers.push((name.clone(), reader::template_at(value.clone(), &key)?));
        }
    }
    let subprotocols = match obj.get("subprotocols") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) if is_token(s) => Ok(s.clone()),
                Value::String(s) => Err(ProfileError::new(
                    format!("subprotocols[{i}]"),
                    format!("{s:?} is not a valid subprotocol name"),
                )),
                other => Err(wrong_type(format!("subprotocols[{i}]"), "a string", other)),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(wrong_type(
                "subprotocols".into(),
                "an array of strings",
                other,
            ));
        }
    };
    let heartbeat = obj
        .integer(
            "heartbeat_ms",
            holdline_protocol::MIN_HEARTBEAT_MS..=holdline_protocol::MAX_HEARTBEAT_MS,
        )?
        .map(Duration::from_millis);
    let (mut close_login, mut close_stop) = (Vec::new(), Vec::new());
    if let Some(mut close) = obj.object("close")? {
        close_login = codes(&mut close, "login")?;
        close_stop = codes(&mut close, "stop")?;
        close.finish()?;
    }
    Ok(Common {
        auth,
        headers,
        subprotocols,
        heartbeat,
        close_login,
        close_stop,
    })
}

/// RFC 7230's token characters, which a subprotocol name is made of.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn codes(obj: &mut Obj<'_>, key: &'static str) -> Result<Vec<u16>, ProfileError> {
    let path = obj.key(key);
    match obj.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item.as_u64() {
                Some(code @ 1000..=4999) => Ok(code as u16),
                _ => Err(ProfileError::new(
                    format!("{path}[{i}]"),
                    format!("{item} is not a WebSocket close code (1000..=4999)"),
                )),
            })
            .collect(),
        Some(other) => Err(wrong_type(path, "an array of close codes", other)),
    }
}

fn json_profile(obj: &mut Obj<'_>) -> Result<JsonProfile, ProfileError> {
    let on_open = obj.templates("on_open")?;
    let ready = obj.matcher("ready")?;
    let ready_timeout = Duration::from_millis(
        obj.integer("ready_timeout_ms", 1..=3_600_000)?
            .unwrap_or(10_000),
    );
    let refused = obj.matcher("refused")?;
    let subscribe = obj.template("subscribe")?;
    let unsubscribe = obj.template("unsubscribe")?;
    let event = match obj.object("event")? {
        None => EventRule::default(),
        Some(mut rule) => {
            let event = EventRule {
                matcher: rule.matcher("match")?.unwrap_or_default(),
                feed: rule.pointer("feed")?,
                seq: rule.pointer("seq")?,
                epoch: rule.pointer("epoch")?,
                data: rule.pointer("data")?,
            };
            rule.finish()?;
            event
        }
    };
    let sequence = match obj.string("sequence")?.as_deref() {
        None | Some("contiguous") => Sequence::Contiguous,
        Some("increasing") => Sequence::Increasing,
        Some(other) => {
            return Err(ProfileError::new(
                "sequence",
                format!("{other:?}: use \"contiguous\" or \"increasing\""),
            ));
        }
    };
    let publish = obj.template("publish")?;
    let ack = match obj.object("ack")? {
        None => None,
        Some(mut rule) => {
            let matcher = rule.matcher("match")?.unwrap_or_default();
            let id = rule.pointer("id")?.ok_or_else(|| {
                ProfileError::new("ack.id", "is required: where the publish id is")
            })?;
            let seq = rule.pointer("seq")?;
            rule.finish()?;
            Some(AckRule { matcher, id, seq })
        }
    };
    let keepalive = match obj.object("keepalive")? {
        None => None,
        Some(mut rule) => {
            let every = rule
                .integer("every_ms", 100..=3_600_000)?
                .ok_or_else(|| ProfileError::new("keepalive.every_ms", "is required"))?;
            let send = rule
                .template("send")?
                .ok_or_else(|| ProfileError::new("keepalive.send", "is required"))?;
            rule.finish()?;
            Some(Keepalive {
                every: Duration::from_millis(every),
                send,
            })
        }
    };
    let answer = match obj.get("answer") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let mut rule = Obj::new(item, &format!("answer[{i}]"))?;
                let matcher = rule
                    .matcher("match")?
                    .ok_or_else(|| ProfileError::new(rule.key("match"), "is required"))?;
                let send = rule
                    .template("send")?
                    .ok_or_else(|| ProfileError::new(rule.key("send"), "is required"))?;
                rule.finish()?;
                Ok((matcher, send))
            })
            .collect::<Result<_, ProfileError>>()?,
        Some(other) => return Err(wrong_type("answer".into(), "an array", other)),
    };
    let ignore = match obj.get("ignore") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| matcher_at(item, &format!("ignore[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(wrong_type("ignore".into(), "an array of matchers", other)),
    };
    if obj.get("sequence").is_some() && event.seq.is_none() {
        return Err(ProfileError::new(
            "sequence",
            "needs event.seq: there is no sequence number to order by",
        ));
    }
    Ok(JsonProfile {
        on_open,
        ready,
        ready_timeout,
        refused,
        subscribe,
        unsubscribe,
        event,
        sequence,
        publish,
        ack,
        keepalive,
        answer,
        ignore,
    })
}

fn socket_io_profile(obj: &mut Obj<'_>) -> Result<SocketIoProfile, ProfileError> {
    let fixed = |value: Value| reader::template_at(value, "");
    let profile = SocketIoProfile {
        path: obj.string("path")?.unwrap_or_else(|| "/socket.io/".into()),
        namespace: obj.string("namespace")?.unwrap_or_else(|| "/".into()),
        connect: obj.template("connect")?,
        subscribe: obj.template("subscribe")?,
        event_seq: obj.pointer("event_seq")?,
        publish_event: match obj.template("publish_event")? {
            Some(template) => template,
            None => fixed(Value::from("{feed}"))?,
        },
        publish_args: match obj.template("publish_args")? {
            Some(template) => template,
            None => fixed(serde_json::json!(["{data}"]))?,
        },
    };
    if !profile.path.starts_with('/') {
        return Err(ProfileError::new("path", "must start with '/'"));
    }
    if !profile.namespace.starts_with('/') {
        return Err(ProfileError::new("namespace", "must start with '/'"));
    }
    if profile.namespace.contains(',') {
        return Err(ProfileError::new(
            "namespace",
            "cannot hold ',' (it ends the namespace in a packet)",
        ));
    }
    if let Some(connect) = &profile.connect
        && !connect.as_value().is_object()
    {
        return Err(ProfileError::new(
            "connect",
            "must be an object template (Socket.IO's auth payload)",
        ));
    }
    let shapes = [
        (
            "subscribe",
            profile.subscribe.as_ref(),
            "an array template: [event name, arguments…]",
        ),
        (
            "publish_args",
            Some(&profile.publish_args),
            "an array template of the arguments",
        ),
    ];
    for (key, template, wanted) in shapes {
        if template.is_some_and(|t| !t.as_value().is_array()) {
            return Err(ProfileError::new(key, format!("must be {wanted}")));
        }
    }
    if !profile.publish_event.as_value().is_string() {
        return Err(ProfileError::new(
            "publish_event",
            "must be a string (the event name, \"{feed}\" by default)",
        ));
    }
    Ok(profile)
}

fn mqtt_profile(obj: &mut Obj<'_>) -> Result<MqttProfile, ProfileError> {
    let version = match obj.string("version")?.as_deref() {
        None | Some("3.1.1") => "3.1.1".to_owned(),
        Some("5") => "5".to_owned(),
        Some(other) => {
            return Err(ProfileError::new(
                "version",
                format!("{other:?}: use \"3.1.1\" or \"5\""),
            ));
        }
    };
    Ok(MqttProfile {
        version,
        client_id: obj.string("client_id")?,
        username: obj.string("username")?,
        qos: obj.integer("qos", 0..=1)?.unwrap_or(1) as u8,
        keepalive_s: obj.integer("keepalive_s", 1..=65_535)?.unwrap_or(30),
        session_expiry_s: obj
            .integer("session_expiry_s", 0..=u64::from(u32::MAX))?
            .unwrap_or(3600),
        event_seq: obj.pointer("event_seq")?,
    })
}

fn graphql_operation(value: &Value, path: &str) -> Result<GraphqlOperation, ProfileError> {
    let mut op = Obj::new(value, path)?;
    let query = op
        .string("query")?
        .ok_or_else(|| ProfileError::new(op.key("query"), "is required"))?;
    check_graphql(&query).map_err(|message| ProfileError::new(op.key("query"), message))?;
    let operation = GraphqlOperation {
        query,
        variables: op.template("variables")?,
        data: op.pointer("data")?,
        seq: op.pointer("seq")?,
    };
    op.finish()?;
    Ok(operation)
}

/// A query must parse as GraphQL and hold exactly one operation (the
/// server is not told which one to run).
fn check_graphql(query: &str) -> Result<(), String> {
    let tree = apollo_parser::Parser::new(query).parse();
    if let Some(error) = tree.errors().next() {
        return Err(format!(
            "does not parse as GraphQL: {} at {:?} (byte {})",
            error.message(),
            error.data(),
            error.index()
        ));
    }
    let operations = tree
        .document()
        .definitions()
        .filter(|d| matches!(d, apollo_parser::cst::Definition::OperationDefinition(_)))
        .count();
    if operations != 1 {
        return Err(format!(
            "holds {operations} operations; one query, mutation or subscription is sent"
        ));
    }
    Ok(())
}

fn graphql_profile(obj: &mut Obj<'_>) -> Result<GraphqlProfile, ProfileError> {
    let init = obj.template("init")?;
    let mut feeds = BTreeMap::new();
    if let Some(map) = obj.object("feeds")? {
        for (name, value) in map.entries() {
            feeds.insert(
                name.clone(),
                graphql_operation(value, &format!("feeds.{name}"))?,
            );
        }
    }
    let publish = match obj.get("publish") {
        None => None,
        Some(value) => {
            let op = graphql_operation(value, "publish")?;
            if op.data.is_some() {
                return Err(ProfileError::new(
                    "publish.data",
                    "unknown key; publish takes query, variables, seq",
                ));
            }
            Some(op)
        }
    };
    Ok(GraphqlProfile {
        init,
        feeds,
        publish,
    })
}

#[cfg(test)]
mod tests;
