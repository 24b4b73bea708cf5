//! MessagePack through `rmpv`, a value at a time, into JSON.

use serde_json::{Map, Value};

use super::{DecodeError, bytes_value, float_value, key_text};

pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let error = |reason: String| DecodeError {
        format: "MessagePack",
        reason,
    };
    let mut reader = bytes;
    let value = rmpv::decode::read_value(&mut reader).map_err(|err| error(err.to_string()))?;
    if !reader.is_empty() {
        return Err(error(format!(
            "{} bytes left after the first value",
            reader.len()
        )));
    }
    Ok(to_json(value))
}

fn to_json(value: rmpv::Value) -> Value {
    match value {
        rmpv::Value::Nil => Value::Null,
        rmpv::Value::Boolean(b) => Value::Bool(b),
        rmpv::Value::Integer(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_u64().map(Value::from))
            .unwrap_or(Value::Null),
        rmpv::Value::F32(f) => float_value(f64::from(f)),
        rmpv::Value::F64(f) => float_value(f),
        rmpv::Value::String(text) => match text.into_str() {
            Some(text) => Value::String(text),
            None => Value::Null,
        },
        rmpv::Value::Binary(bytes) => bytes_value(&bytes),
        rmpv::Value::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        rmpv::Value::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(key, value)| (key_text(to_json(key)), to_json(value)))
                .collect::<Map<_, _>>(),
        ),
        rmpv::Value::Ext(kind, bytes) => {
            serde_json::json!({ "ext": kind, "hex": hex::encode(bytes) })
        }
    }
}
