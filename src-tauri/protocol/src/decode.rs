//! Decoding frames in one pass over the text.
//!
//! Every known field is first captured as a borrowed slice of raw JSON and only
//! the fields the frame's `type` needs are then interpreted. A field that does
//! not belong to the type is therefore ignored whatever its value, as section 2
//! asks, and nothing is parsed twice.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use thiserror::Error;

use crate::frames::*;
use crate::names::validate_request_id;
use crate::{MALFORMED_EXCERPT_BYTES, MAX_SEQ};

/// A frame that section 2 calls malformed, kept for the record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed frame: {reason}")]
pub struct MalformedFrame {
    pub reason: String,
    /// The first 256 bytes of the frame: text as text, binary as hex.
    pub excerpt: String,
    pub binary: bool,
    /// The request `id`, when one could be read, so an error can answer it.
    pub id: Option<String>,
}

impl MalformedFrame {
    pub fn binary(bytes: &[u8]) -> Self {
        let shown = &bytes[..bytes.len().min(MALFORMED_EXCERPT_BYTES)];
        MalformedFrame {
            reason: "binary frame; holdline.v1 frames are text".into(),
            excerpt: shown.iter().map(|b| format!("{b:02x}")).collect(),
            binary: true,
            id: None,
        }
    }

    /// A text frame that could not be read, for any wire's record.
    pub fn of_text(text: &str, reason: impl Into<String>) -> Self {
        MalformedFrame::text(text, reason.into(), None)
    }

    fn text(text: &str, reason: String, id: Option<String>) -> Self {
        MalformedFrame {
            reason,
            excerpt: excerpt(text).to_owned(),
            binary: false,
            id,
        }
    }
}

/// The start of `text` kept for a record: at most
/// [`MALFORMED_EXCERPT_BYTES`], cut at a character boundary.
pub fn excerpt(text: &str) -> &str {
    if text.len() <= MALFORMED_EXCERPT_BYTES {
        return text;
    }
    let mut end = MALFORMED_EXCERPT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Keeps `null` as a present value, so `"data": null` is data, not a gap.
fn present<'de, D>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&RawValue>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "present")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    feed: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    seq: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    ts: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    session: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    heartbeat_ms: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    max_frame_bytes: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    server: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    epoch: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    head: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    replay_from: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    gap: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    code: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    message: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    since: Option<&'a RawValue>,
}

#[derive(Debug, Error)]
#[error("{0}")]
struct FieldError(String);

fn required<T: DeserializeOwned>(raw: Option<&RawValue>, name: &str) -> Result<T, FieldError> {
    let raw = raw.ok_or_else(|| FieldError(format!("missing field `{name}`")))?;
    serde_json::from_str(raw.get()).map_err(|e| FieldError(format!("field `{name}`: {e}")))
}

/// A field that may be absent or `null`; both read as `None`.
fn optional<T: DeserializeOwned>(
    raw: Option<&RawValue>,
    name: &str,
) -> Result<Option<T>, FieldError> {
    match raw {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<Option<T>>(raw.get())
            .map_err(|e| FieldError(format!("field `{name}`: {e}"))),
    }
}

fn sequence(raw: Option<&RawValue>, name: &str, min: u64) -> Result<u64, FieldError> {
    let value: u64 = required(raw, name)?;
    check_seq(value, name, min)
}

fn check_seq(value: u64, name: &str, min: u64) -> Result<u64, FieldError> {
    if value < min || value > MAX_SEQ {
        return Err(FieldError(format!(
            "field `{name}`: {value} is outside {min}..=2^53-1"
        )));
    }
    Ok(value)
}

fn request_id(raw: Option<&RawValue>) -> Result<String, FieldError> {
    let id: String = required(raw, "id")?;
    validate_request_id(&id).map_err(|e| FieldError(format!("field `id`: {e}")))?;
    Ok(id)
}

fn owned_raw(raw: Option<&RawValue>, name: &str) -> Result<Box<RawValue>, FieldError> {
    raw.map(RawValue::to_owned)
        .ok_or_else(|| FieldError(format!("missing field `{name}`")))
}

/// The `type` field's value, borrowed from the frame unless it has escapes
/// (then parsed): the hot path allocates nothing for it.
fn frame_type<'a>(raw: Option<&'a RawValue>) -> Result<std::borrow::Cow<'a, str>, FieldError> {
    let raw = raw.ok_or_else(|| FieldError("missing field `type`".into()))?;
    let quoted = raw.get();
    if quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"') {
        let inner = &quoted[1..quoted.len() - 1];
        if !inner.contains('\\') {
            return Ok(std::borrow::Cow::Borrowed(inner));
        }
    }
    serde_json::from_str::<String>(quoted)
        .map(std::borrow::Cow::Owned)
        .map_err(|e| FieldError(format!("field `type`: {e}")))
}

fn parse_fields(text: &str) -> Result<Fields<'_>, MalformedFrame> {
    // Serde would read a struct from a JSON array too; section 2 wants objects.
    if !text.trim_start().starts_with('{') {
        let reason = match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => "not a JSON object".to_owned(),
            Err(e) => format!("invalid JSON: {e}"),
        };
        return Err(MalformedFrame::text(text, reason, None));
    }
    serde_json::from_str::<Fields>(text)
        .map_err(|e| MalformedFrame::text(text, format!("invalid JSON: {e}"), None))
}

/// Decodes one text frame from a server.
pub fn decode_server_frame(text: &str) -> Result<ServerFrame, MalformedFrame> {
    let fields = parse_fields(text)?;
    server_frame(&fields).map_err(|e| {
        let id = fields
            .id
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
        MalformedFrame::text(text, e.0, id)
    })
}

fn server_frame(f: &Fields<'_>) -> Result<ServerFrame, FieldError> {
    let kind = frame_type(f.kind)?;
    Ok(match &*kind {
        "event" => ServerFrame::Event(Event {
            feed: required(f.feed, "feed")?,
            seq: sequence(f.seq, "seq", 1)?,
            data: owned_raw(f.data, "data")?,
            ts: required(f.ts, "ts")?,
        }),
        "welcome" => ServerFrame::Welcome(Welcome {
            session: required(f.session, "session")?,
            heartbeat_ms: required(f.heartbeat_ms, "heartbeat_ms")?,
            max_frame_bytes: required(f.max_frame_bytes, "max_frame_bytes")?,
            server: required(f.server, "server")?,
        }),
        "subscribed" => {
            let gap: Option<GapRange> = optional(f.gap, "gap")?;
            if let Some(gap) = gap {
                check_seq(gap.from, "gap.from", 1)?;
                check_seq(gap.to, "gap.to", gap.from)?;
            }
            let replay_from: Option<u64> = optional(f.replay_from, "replay_from")?;
            if let Some(first) = replay_from {
                check_seq(first, "replay_from", 1)?;
            }
            ServerFrame::Subscribed(Subscribed {
                id: required(f.id, "id")?,
                feed: required(f.feed, "feed")?,
                epoch: required(f.epoch, "epoch")?,
                head: sequence(f.head, "head", 0)?,
                replay_from,
                gap,
            })
        }
        "unsubscribed" => ServerFrame::Unsubscribed(Unsubscribed {
            id: required(f.id, "id")?,
            feed: required(f.feed, "feed")?,
        }),
        "ack" => ServerFrame::Ack(Ack {
            id: required(f.id, "id")?,
            feed: required(f.feed, "feed")?,
            seq: sequence(f.seq, "seq", 1)?,
        }),
        "pong" => ServerFrame::Pong(Pong {
            id: required(f.id, "id")?,
        }),
        "error" => ServerFrame::Error(ErrorFrame {
            id: optional(f.id, "id")?,
            code: required(f.code, "code")?,
            message: required(f.message, "message")?,
        }),
        other => return Err(FieldError(format!("unknown type {other:?}"))),
    })
}

/// Decodes one text frame from a client. The `id` of a frame that fails is
/// returned with the error when it can be read, so the answer can name it.
pub fn decode_client_frame(text: &str) -> Result<ClientFrame, MalformedFrame> {
    let fields = parse_fields(text)?;
    client_frame(&fields).map_err(|e| {
        let id = fields
            .id
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
            .filter(|id| validate_request_id(id).is_ok());
        MalformedFrame::text(text, e.0, id)
    })
}

fn client_frame(f: &Fields<'_>) -> Result<ClientFrame, FieldError> {
    let kind = frame_type(f.kind)?;
    Ok(match &*kind {
        "subscribe" => {
            let since: Option<u64> = optional(f.since, "since")?;
            if let Some(since) = since {
                check_seq(since, "since", 0)?;
            }
            ClientFrame::Subscribe(Subscribe {
                id: request_id(f.id)?,
                feed: required(f.feed, "feed")?,
                since,
                epoch: optional(f.epoch, "epoch")?,
            })
        }
        "unsubscribe" => ClientFrame::Unsubscribe(Unsubscribe {
            id: request_id(f.id)?,
            feed: required(f.feed, "feed")?,
        }),
        "publish" => ClientFrame::Publish(Publish {
            id: request_id(f.id)?,
            feed: required(f.feed, "feed")?,
            data: owned_raw(f.data, "data")?,
        }),
        "ping" => ClientFrame::Ping(Ping {
            id: request_id(f.id)?,
        }),
        other => return Err(FieldError(format!("unknown type {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(text: &str) -> MalformedFrame {
        decode_server_frame(text).expect_err(text)
    }

    #[test]
    fn event_decodes_with_raw_data_and_ignores_unknown_fields() {
        let text = r#"{"type":"event","feed":"f","seq":3,"data":{"a":[1,2]},"ts":17,"session":5,"x":null}"#;
        let ServerFrame::Event(event) = decode_server_frame(text).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(event.feed, "f");
        assert_eq!(event.seq, 3);
        assert_eq!(event.data.get(), r#"{"a":[1,2]}"#);
        assert_eq!(event.ts, 17);
    }

    #[test]
    fn null_data_is_data() {
        let text = r#"{"type":"event","feed":"f","seq":1,"data":null,"ts":0}"#;
        let ServerFrame::Event(event) = decode_server_frame(text).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(event.data.get(), "null");
    }

    #[test]
    fn every_kind_of_malformed_frame_is_named() {
        assert!(malformed("not json").reason.starts_with("invalid JSON"));
        assert!(malformed("[1,2]").reason.starts_with("not a JSON object"));
        assert!(malformed("42").reason.starts_with("not a JSON object"));
        assert!(
            malformed(r#"{"feed":"f"}"#)
                .reason
                .contains("missing field `type`")
        );
        assert!(
            malformed(r#"{"type":"nope"}"#)
                .reason
                .contains("unknown type")
        );
        assert!(malformed(r#"{"type":7}"#).reason.contains("field `type`"));
        let missing = malformed(r#"{"type":"event","feed":"f","seq":1,"ts":0}"#);
        assert!(
            missing.reason.contains("missing field `data`"),
            "{}",
            missing.reason
        );
        let mistyped = malformed(r#"{"type":"event","feed":"f","seq":"1","data":1,"ts":0}"#);
        assert!(
            mistyped.reason.contains("field `seq`"),
            "{}",
            mistyped.reason
        );
        for seq in ["0", "-1", "9007199254740992", "1.5", "18446744073709551616"] {
            let text = format!(r#"{{"type":"event","feed":"f","seq":{seq},"data":1,"ts":0}}"#);
            assert!(malformed(&text).reason.contains("seq"), "{seq}");
        }
    }

    #[test]
    fn excerpt_keeps_256_bytes_on_a_char_boundary() {
        let text = format!("{}{}", "é".repeat(200), "x");
        let bad = malformed(&text);
        assert!(bad.excerpt.len() <= 256);
        assert!(bad.excerpt.len() >= 254);
        let bin = MalformedFrame::binary(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(bin.excerpt, "deadbeef");
        assert!(bin.binary);
    }

    #[test]
    fn subscribed_reads_missing_replay_from_and_null_gap_as_none() {
        let text = r#"{"type":"subscribed","id":"1","feed":"f","epoch":"e","head":9,"gap":null}"#;
        let ServerFrame::Subscribed(sub) = decode_server_frame(text).unwrap() else {
            panic!("not subscribed")
        };
        assert_eq!(sub.replay_from, None);
        assert_eq!(sub.gap, None);
        let text = r#"{"type":"subscribed","id":"1","feed":"f","epoch":"e","head":9,"replay_from":3,"gap":{"from":1,"to":2}}"#;
        let ServerFrame::Subscribed(sub) = decode_server_frame(text).unwrap() else {
            panic!("not subscribed")
        };
        assert_eq!(sub.replay_from, Some(3));
        assert_eq!(sub.gap, Some(GapRange { from: 1, to: 2 }));
        let inverted = r#"{"type":"subscribed","id":"1","feed":"f","epoch":"e","head":9,"gap":{"from":5,"to":2}}"#;
        assert!(decode_server_frame(inverted).is_err());
    }

    #[test]
    fn error_frame_id_is_optional() {
        let text = r#"{"type":"error","code":"bad_request","message":"m"}"#;
        let ServerFrame::Error(err) = decode_server_frame(text).unwrap() else {
            panic!("not an error")
        };
        assert_eq!(err.id, None);
    }

    #[test]
    fn client_frames_round_trip_through_the_encoder() {
        let frames = [
            ClientFrame::Subscribe(Subscribe {
                id: "a".into(),
                feed: "f".into(),
                since: Some(0),
                epoch: Some("e".into()),
            }),
            ClientFrame::Unsubscribe(Unsubscribe {
                id: "b".into(),
                feed: "f".into(),
            }),
            ClientFrame::Publish(Publish {
                id: "c".into(),
                feed: "f".into(),
                data: RawValue::from_string("[1,{\"k\":null}]".into()).unwrap(),
            }),
            ClientFrame::Ping(Ping { id: "d".into() }),
        ];
        for frame in frames {
            let text = frame.to_json();
            let back = decode_client_frame(&text).unwrap();
            assert_eq!(back.to_json(), text);
        }
    }

    #[test]
    fn client_frame_errors_keep_a_valid_id() {
        let bad = decode_client_frame(r#"{"type":"publish","id":"p1","feed":"f"}"#).unwrap_err();
        assert_eq!(bad.id.as_deref(), Some("p1"));
        let bad = decode_client_frame(r#"{"type":"ping","id":""}"#).unwrap_err();
        assert_eq!(bad.id, None);
        assert!(bad.reason.contains("request id is empty"));
    }

    #[test]
    fn server_frames_round_trip_through_the_encoder() {
        let frames = [
            ServerFrame::Welcome(Welcome {
                session: "s".into(),
                heartbeat_ms: 15000,
                max_frame_bytes: 1 << 20,
                server: "holdline".into(),
            }),
            ServerFrame::Event(Event {
                feed: "f".into(),
                seq: 1,
                data: RawValue::from_string("\"x\"".into()).unwrap(),
                ts: 5,
            }),
            ServerFrame::Ack(Ack {
                id: "i".into(),
                feed: "f".into(),
                seq: 2,
            }),
        ];
        for frame in frames {
            let text = frame.to_json();
            assert_eq!(decode_server_frame(&text).unwrap().to_json(), text);
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(text in ".{0,300}") {
            let _ = decode_server_frame(&text);
            let _ = decode_client_frame(&text);
        }
    }
}
