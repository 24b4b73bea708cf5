//! CBOR through `ciborium`, into JSON.

use ciborium::value::Value as Cbor;
use serde_json::{Map, Value};

use super::{DecodeError, bytes_value, float_value, key_text};

pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut reader = bytes;
    let value: Cbor = ciborium::de::from_reader(&mut reader).map_err(|err| DecodeError {
        format: "CBOR",
        reason: err.to_string(),
    })?;
    if !reader.is_empty() {
        return Err(DecodeError {
            format: "CBOR",
            reason: format!("{} bytes left after the first item", reader.len()),
        });
    }
    Ok(to_json(value))
}

fn to_json(value: Cbor) -> Value {
    match value {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Integer(n) => {
            let n = i128::from(n);
            i64::try_from(n)
                .map(Value::from)
                .or_else(|_| u64::try_from(n).map(Value::from))
                .unwrap_or_else(|_| Value::String(n.to_string()))
        }
        Cbor::Float(f) => float_value(f),
        Cbor::Text(text) => Value::String(text),
        Cbor::Bytes(bytes) => bytes_value(&bytes),
        Cbor::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Cbor::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(key, value)| (key_text(to_json(key)), to_json(value)))
                .collect::<Map<_, _>>(),
        ),
        // A tag (a date, a big number) says how to read what it wraps;
        // JSON has no place for it, so the wrapped value stands alone.
        Cbor::Tag(_, inner) => to_json(*inner),
        _ => Value::Null,
    }
}
