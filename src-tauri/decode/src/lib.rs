//! Binary feed payloads read as JSON: MessagePack, CBOR, and Protocol Buffers
//! with the user's `.proto` file or descriptor set. Every wire hands a
//! payload that is not JSON to its consumer as `{"hex": "…"}`; a decoder
//! turns those bytes into JSON, or says why it could not (and the payload
//! stays hex).

mod cbor;
mod msgpack;
mod protobuf;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde_json::Value;
use serde_json::value::RawValue;
use thiserror::Error;

pub use self::protobuf::ProtobufDecoder;

/// How a feed's binary payloads are read.
#[derive(Debug, Clone)]
pub enum Decoder {
    /// MessagePack or CBOR, whichever reads the whole payload as one map or
    /// array (a lone number or string could be either, or neither).
    Detect,
    MessagePack,
    Cbor,
    Protobuf(ProtobufDecoder),
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecoderSettingError {
    #[error(
        "unknown decoder {0:?}: use auto, msgpack, cbor or protobuf:FILE:MESSAGE (FILE a .proto file or a descriptor set)"
    )]
    Unknown(String),
    #[error(
        "protobuf needs a file and a message: protobuf:FILE:MESSAGE, as in protobuf:ticks.proto:market.Tick"
    )]
    ProtobufIncomplete,
    #[error("{0}")]
    Protobuf(String),
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("not {format}: {reason}")]
pub struct DecodeError {
    pub format: &'static str,
    pub reason: String,
}

impl Decoder {
    /// `auto`, `msgpack`, `cbor` or `protobuf:FILE:MESSAGE`.
    pub fn parse(setting: &str) -> Result<Decoder, DecoderSettingError> {
        match setting {
            "auto" => return Ok(Decoder::Detect),
            "msgpack" | "messagepack" => return Ok(Decoder::MessagePack),
            "cbor" => return Ok(Decoder::Cbor),
            _ => {}
        }
        let Some(rest) = setting.strip_prefix("protobuf:") else {
            return Err(DecoderSettingError::Unknown(setting.to_owned()));
        };
        // The message name has no colon; the path may (a Windows drive).
        let (file, message) = rest
            .rsplit_once(':')
            .filter(|(file, message)| !file.is_empty() && !message.is_empty())
            .ok_or(DecoderSettingError::ProtobufIncomplete)?;
        ProtobufDecoder::load(Path::new(file), message)
            .map(Decoder::Protobuf)
            .map_err(DecoderSettingError::Protobuf)
    }

    /// The payload's bytes as JSON.
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        self.decode_naming(bytes).map(|(value, _)| value)
    }

    /// The payload's bytes as JSON, with the format that read them (the
    /// one detected, for `auto`).
    pub fn decode_naming(&self, bytes: &[u8]) -> Result<(Value, String), DecodeError> {
        match self {
            Decoder::Detect => detect(bytes),
            Decoder::MessagePack => msgpack::decode(bytes).map(|v| (v, self.to_string())),
            Decoder::Cbor => cbor::decode(bytes).map(|v| (v, self.to_string())),
            Decoder::Protobuf(decoder) => decoder.decode(bytes).map(|v| (v, self.to_string())),
        }
    }

    /// An event's `data`: a `{"hex": …}` payload decoded (with the format
    /// that read it), anything else `None` (it is JSON already).
    pub fn decode_data(&self, data: &RawValue) -> Option<Result<(Value, String), DecodeError>> {
        let bytes = hex_payload(data)?;
        Some(self.decode_naming(&bytes))
    }
}

impl FromStr for Decoder {
    type Err = DecoderSettingError;

    fn from_str(setting: &str) -> Result<Self, Self::Err> {
        Decoder::parse(setting)
    }
}

impl fmt::Display for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decoder::Detect => f.write_str("auto"),
            Decoder::MessagePack => f.write_str("msgpack"),
            Decoder::Cbor => f.write_str("cbor"),
            Decoder::Protobuf(decoder) => write!(f, "protobuf:{}", decoder.message_name()),
        }
    }
}

fn detect(bytes: &[u8]) -> Result<(Value, String), DecodeError> {
    let container = |value: &Value| value.is_object() || value.is_array();
    if let Ok(value) = msgpack::decode(bytes)
        && container(&value)
    {
        return Ok((value, "msgpack".into()));
    }
    if let Ok(value) = cbor::decode(bytes)
        && container(&value)
    {
        return Ok((value, "cbor".into()));
    }
    Err(DecodeError {
        format: "MessagePack or CBOR",
        reason: "neither reads it as one map or array".into(),
    })
}

/// An event whose binary payload went through a decoder.
#[derive(Debug)]
pub struct DecodedEvent {
    /// The payload read as JSON; `None` when it did not decode (the hex
    /// stays).
    pub data: Option<Box<RawValue>>,
    /// The event's meta with `decoded` (the format that read it) or
    /// `decode_error` (why not) added.
    pub meta: Box<RawValue>,
}

/// Runs an event's `{"hex"}` payload through `decoder`; `None` for an
/// event whose data is JSON already.
pub fn decode_event(
    decoder: &Decoder,
    data: &RawValue,
    meta: Option<&RawValue>,
) -> Option<DecodedEvent> {
    let outcome = decoder.decode_data(data)?;
    let mut facts = meta
        .and_then(|meta| serde_json::from_str::<serde_json::Map<_, _>>(meta.get()).ok())
        .unwrap_or_default();
    let data = match outcome {
        Ok((value, format)) => {
            facts.insert("decoded".into(), format.into());
            serde_json::value::to_raw_value(&value).ok()
        }
        Err(err) => {
            facts.insert("decode_error".into(), err.to_string().into());
            None
        }
    };
    let meta = serde_json::value::to_raw_value(&facts).ok()?;
    Some(DecodedEvent { data, meta })
}

/// The bytes of a `{"hex": "…"}` payload, the one shape wires give binary
/// data; `None` for anything else.
pub fn hex_payload(data: &RawValue) -> Option<Vec<u8>> {
    let text = data.get().trim_start();
    // Most payloads are JSON objects with other keys: they are told apart
    // here, without a failed parse (and its error message) per event.
    let first_key = text.strip_prefix('{')?.trim_start();
    if !first_key.starts_with("\"hex\"") {
        return None;
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Hex<'a> {
        #[serde(borrow)]
        hex: std::borrow::Cow<'a, str>,
    }
    let Hex { hex } = serde_json::from_str(text).ok()?;
    hex::decode(hex.as_bytes()).ok()
}

/// Bytes inside a decoded value are shown as wires show binary: `{"hex"}`.
fn bytes_value(bytes: &[u8]) -> Value {
    serde_json::json!({ "hex": hex::encode(bytes) })
}

/// A float as JSON. Integral values in the range a double holds exactly
/// are written as integers: JSON does not tell 2.0 from 2, and encoders
/// from JavaScript write every number above 2^32 as a double. NaN and the
/// infinities, which JSON lacks, are null.
fn float_value(f: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if f.fract() == 0.0 && f.abs() <= EXACT {
        return Value::from(f as i64);
    }
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// A map key that is not a string, as JSON text.
fn key_text(key: Value) -> String {
    match key {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_name_their_mistakes() {
        assert!(matches!(
            Decoder::parse("msgpack"),
            Ok(Decoder::MessagePack)
        ));
        assert!(matches!(Decoder::parse("cbor"), Ok(Decoder::Cbor)));
        assert!(matches!(
            Decoder::parse("avro"),
            Err(DecoderSettingError::Unknown(_))
        ));
        assert_eq!(
            Decoder::parse("protobuf:only-a-file.proto").unwrap_err(),
            DecoderSettingError::ProtobufIncomplete
        );
        let missing = Decoder::parse("protobuf:/nowhere/x.proto:a.B").unwrap_err();
        assert!(
            missing.to_string().contains("/nowhere/x.proto"),
            "{missing}"
        );
    }

    #[test]
    fn only_hex_payloads_are_decoded() {
        let hex = RawValue::from_string(r#"{"hex":"a16178 01"}"#.replace(' ', "")).unwrap();
        assert_eq!(hex_payload(&hex), Some(vec![0xa1, 0x61, 0x78, 0x01]));
        let json = RawValue::from_string(r#"{"hex":"00","other":1}"#.into()).unwrap();
        assert_eq!(hex_payload(&json), None);
        let text = RawValue::from_string(r#""a string""#.into()).unwrap();
        assert_eq!(hex_payload(&text), None);
        let spaced = RawValue::from_string(r#"{ "hex" : "ff" }"#.into()).unwrap();
        assert_eq!(hex_payload(&spaced), Some(vec![0xff]));
        let other_key = RawValue::from_string(r#"{"n":1,"hex":"ff"}"#.into()).unwrap();
        assert_eq!(hex_payload(&other_key), None);
        // {"x": 1} in CBOR; in MessagePack the same bytes are a string
        // with bytes after it.
        assert_eq!(
            Decoder::Cbor.decode_data(&hex),
            Some(Ok((serde_json::json!({"x": 1}), "cbor".into())))
        );
        assert!(matches!(
            Decoder::MessagePack.decode_data(&hex),
            Some(Err(_))
        ));
        let msgpack = RawValue::from_string(r#"{"hex":"81a17801"}"#.into()).unwrap();
        assert_eq!(
            Decoder::MessagePack.decode_data(&msgpack),
            Some(Ok((serde_json::json!({"x": 1}), "msgpack".into())))
        );
        // Detected: each as what reads it whole.
        assert_eq!(
            Decoder::Detect.decode_data(&msgpack),
            Some(Ok((serde_json::json!({"x": 1}), "msgpack".into())))
        );
        assert_eq!(
            Decoder::Detect.decode_data(&hex),
            Some(Ok((serde_json::json!({"x": 1}), "cbor".into())))
        );
        let lone = RawValue::from_string(r#"{"hex":"01"}"#.into()).unwrap();
        assert!(matches!(Decoder::Detect.decode_data(&lone), Some(Err(_))));
    }
}
