//! Engine.IO v4 and Socket.IO v5 packets as they travel in WebSocket
//! frames: one Engine.IO packet per text frame (its type a single digit),
//! a Socket.IO packet inside each Engine.IO message, and each binary
//! attachment in a binary frame of its own. Decoding follows the reference
//! parser (`socket.io-parser`): a namespace runs to the first `,`, an ack
//! id is the digits that follow it.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// One Engine.IO packet from a text frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum EnginePacket<'a> {
    /// The handshake, JSON.
    Open(&'a str),
    Close,
    /// A ping from the server, answered with a pong carrying its payload.
    Ping(&'a str),
    Pong,
    /// A Socket.IO packet.
    Message(&'a str),
    Upgrade,
    Noop,
}

pub(super) fn engine_packet(text: &str) -> Result<EnginePacket<'_>, String> {
    let mut chars = text.chars();
    let kind = chars
        .next()
        .ok_or("an empty frame is no Engine.IO packet")?;
    let rest = chars.as_str();
    Ok(match kind {
        '0' => EnginePacket::Open(rest),
        '1' => EnginePacket::Close,
        '2' => EnginePacket::Ping(rest),
        '3' => EnginePacket::Pong,
        '4' => EnginePacket::Message(rest),
        '5' => EnginePacket::Upgrade,
        '6' => EnginePacket::Noop,
        other => return Err(format!("{other:?} is no Engine.IO packet type")),
    })
}

/// The Engine.IO handshake (the `open` packet's JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Handshake {
    pub ping_interval: u64,
    pub ping_timeout: u64,
    #[serde(default)]
    pub max_payload: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

impl Kind {
    fn digit(self) -> char {
        match self {
            Kind::Connect => '0',
            Kind::Disconnect => '1',
            Kind::Event => '2',
            Kind::Ack => '3',
            Kind::ConnectError => '4',
            Kind::BinaryEvent => '5',
            Kind::BinaryAck => '6',
        }
    }
}

/// One Socket.IO packet; `data` is its JSON text, empty when it has none.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Packet<'a> {
    pub kind: Kind,
    /// Binary attachments that follow in binary frames.
    pub attachments: usize,
    pub namespace: &'a str,
    pub id: Option<u64>,
    pub data: &'a str,
}

pub(super) fn socket_packet(text: &str) -> Result<Packet<'_>, String> {
    let bytes = text.as_bytes();
    let kind = match bytes.first() {
        Some(b'0') => Kind::Connect,
        Some(b'1') => Kind::Disconnect,
        Some(b'2') => Kind::Event,
        Some(b'3') => Kind::Ack,
        Some(b'4') => Kind::ConnectError,
        Some(b'5') => Kind::BinaryEvent,
        Some(b'6') => Kind::BinaryAck,
        _ => return Err("no Socket.IO packet type".into()),
    };
    let mut at = 1;
    let mut attachments = 0;
    if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
        let digits = digits_at(bytes, at);
        if digits == 0 || bytes.get(at + digits) != Some(&b'-') {
            return Err("a binary packet without its attachment count".into());
        }
        attachments = text[at..at + digits]
            .parse()
            .map_err(|_| "an attachment count out of range")?;
        at += digits + 1;
    }
    let mut namespace = "/";
    if bytes.get(at) == Some(&b'/') {
        let end = text[at..].find(',').map_or(text.len(), |i| at + i);
        namespace = &text[at..end];
        at = (end + 1).min(text.len());
    }
    let mut id = None;
    let digits = digits_at(bytes, at);
    if digits > 0 {
        id = Some(
            text[at..at + digits]
                .parse()
                .map_err(|_| "an ack id out of range")?,
        );
        at += digits;
    }
    if matches!(kind, Kind::Ack | Kind::BinaryAck) && id.is_none() {
        return Err("an ack without its id".into());
    }
    Ok(Packet {
        kind,
        attachments,
        namespace,
        id,
        data: &text[at..],
    })
}

fn digits_at(bytes: &[u8], at: usize) -> usize {
    bytes.get(at..).map_or(0, |rest| {
        rest.iter().take_while(|b| b.is_ascii_digit()).count()
    })
}

/// A Socket.IO packet as the text of an Engine.IO message frame.
pub(super) fn encode(kind: Kind, namespace: &str, id: Option<u64>, data: &str) -> String {
    let mut text = String::with_capacity(data.len() + namespace.len() + 24);
    text.push('4');
    text.push(kind.digit());
    if namespace != "/" {
        text.push_str(namespace);
        text.push(',');
    }
    if let Some(id) = id {
        text.push_str(&id.to_string());
    }
    text.push_str(data);
    text
}

/// An EVENT's JSON array: the event name, then its arguments, each left
/// as a slice of the frame.
pub(super) struct EventArgs<'a> {
    pub name: String,
    pub name_json: &'a RawValue,
    pub args: Vec<&'a RawValue>,
}

pub(super) fn event_args(data: &str) -> Result<EventArgs<'_>, String> {
    let items: Vec<&RawValue> =
        serde_json::from_str(data).map_err(|e| format!("not a JSON array: {e}"))?;
    let (name_json, args) = items.split_first().ok_or("an event without its name")?;
    let name: String =
        serde_json::from_str(name_json.get()).map_err(|_| "an event name that is not a string")?;
    Ok(EventArgs {
        name,
        name_json,
        args: args.to_vec(),
    })
}

/// Whether an argument is a JSON string (the recovery offset's shape).
pub(super) fn as_string(arg: &RawValue) -> Option<String> {
    arg.get()
        .starts_with('"')
        .then(|| serde_json::from_str(arg.get()).ok())
        .flatten()
}

/// Puts each attachment, as `{"hex": …}`, where its placeholder stands.
pub(super) fn fill_placeholders(data: &str, attachments: &[Vec<u8>]) -> Result<String, String> {
    let mut value: Value = serde_json::from_str(data).map_err(|e| format!("not JSON: {e}"))?;
    fill(&mut value, attachments)?;
    Ok(value.to_string())
}

fn fill(value: &mut Value, attachments: &[Vec<u8>]) -> Result<(), String> {
    match value {
        Value::Object(map) if map.get("_placeholder") == Some(&Value::Bool(true)) => {
            let num = map
                .get("num")
                .and_then(Value::as_u64)
                .ok_or("a placeholder without its num")?;
            let bytes = usize::try_from(num)
                .ok()
                .and_then(|n| attachments.get(n))
                .ok_or_else(|| format!("placeholder {num} has no attachment"))?;
            *value = serde_json::json!({ "hex": hex::encode(bytes) });
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                fill(item, attachments)?;
            }
        }
        Value::Array(items) => {
            for item in items {
                fill(item, attachments)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_packets_are_told_apart_by_their_first_digit() {
        assert_eq!(
            engine_packet(r#"0{"sid":"a"}"#),
            Ok(EnginePacket::Open(r#"{"sid":"a"}"#))
        );
        assert_eq!(engine_packet("2"), Ok(EnginePacket::Ping("")));
        assert_eq!(engine_packet("2probe"), Ok(EnginePacket::Ping("probe")));
        assert_eq!(engine_packet("42[]"), Ok(EnginePacket::Message("2[]")));
        assert_eq!(engine_packet("6"), Ok(EnginePacket::Noop));
        assert!(engine_packet("").is_err());
        assert!(engine_packet("9").is_err());
    }

    #[test]
    fn socket_packets_read_namespace_id_and_data_as_the_reference_parser_does() {
        let p = socket_packet(r#"2["tick",{"n":1}]"#).unwrap();
        assert_eq!((p.kind, p.namespace, p.id), (Kind::Event, "/", None));
        assert_eq!(p.data, r#"["tick",{"n":1}]"#);

        let p = socket_packet(r#"2/admin,17["a"]"#).unwrap();
        assert_eq!(
            (p.namespace, p.id, p.data),
            ("/admin", Some(17), r#"["a"]"#)
        );

        let p = socket_packet("3/admin,4[]").unwrap();
        assert_eq!((p.kind, p.id), (Kind::Ack, Some(4)));

        let p = socket_packet("1/admin,").unwrap();
        assert_eq!(
            (p.kind, p.namespace, p.data),
            (Kind::Disconnect, "/admin", "")
        );
        let p = socket_packet("1/admin").unwrap();
        assert_eq!(p.namespace, "/admin");

        let p = socket_packet(r#"51-["f",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!((p.kind, p.attachments), (Kind::BinaryEvent, 1));

        let p = socket_packet(r#"0{"sid":"x","pid":"y"}"#).unwrap();
        assert_eq!(
            (p.kind, p.data),
            (Kind::Connect, r#"{"sid":"x","pid":"y"}"#)
        );
        let p = socket_packet(r#"4{"message":"no"}"#).unwrap();
        assert_eq!(p.kind, Kind::ConnectError);
    }

    #[test]
    fn broken_packets_are_errors_not_panics() {
        for text in [
            "",
            "7",
            "5[]",
            "5x-[]",
            "3[]",
            "299999999999999999999999[]",
            "5999999999999999999999-[]",
        ] {
            assert!(socket_packet(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn encoding_is_decoding_reversed() {
        let text = encode(Kind::Event, "/chat", Some(12), r#"["send",1]"#);
        assert_eq!(text, r#"42/chat,12["send",1]"#);
        let EnginePacket::Message(inner) = engine_packet(&text).unwrap() else {
            panic!("not a message")
        };
        let p = socket_packet(inner).unwrap();
        assert_eq!(
            (p.namespace, p.id, p.data),
            ("/chat", Some(12), r#"["send",1]"#)
        );
        assert_eq!(encode(Kind::Connect, "/", None, "{}"), "40{}");
    }

    #[test]
    fn event_args_split_the_name_from_the_arguments() {
        let e = event_args(r#"["px",{"v":1},"off-1"]"#).unwrap();
        assert_eq!(e.name, "px");
        assert_eq!(e.name_json.get(), r#""px""#);
        assert_eq!(e.args.len(), 2);
        assert_eq!(as_string(e.args[1]).as_deref(), Some("off-1"));
        assert_eq!(as_string(e.args[0]), None);
        assert!(event_args("[]").is_err());
        assert!(event_args("[1]").is_err());
        assert!(event_args("{}").is_err());
    }

    #[test]
    fn placeholders_become_hex_and_a_missing_attachment_is_an_error() {
        let data = r#"["img",{"body":{"_placeholder":true,"num":0}}]"#;
        let filled = fill_placeholders(data, &[vec![0xde, 0xad]]).unwrap();
        assert_eq!(filled, r#"["img",{"body":{"hex":"dead"}}]"#);
        assert!(fill_placeholders(data, &[]).is_err());
    }
}
