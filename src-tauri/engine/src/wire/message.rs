//! A received JSON message, read once: its top-level keys, each with its
//! value as a raw slice of the frame. Most profile pointers name a
//! top-level key, so matchers, the feed, the seq and the data are read
//! straight from those slices without building a tree. A deeper pointer
//! reads each object on its way the same lazy way, so what it finds is a
//! slice too; only an array on the way is parsed into a tree.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::profile::{Matcher, Pointer};

pub(crate) struct Message<'a> {
    text: &'a str,
    top: Vec<(Key<'a>, &'a RawValue)>,
}

pub(crate) enum ReadError {
    NotJson(String),
    NotObject,
}

/// What a pointer found: a slice of the frame, or a value parsed out of one.
pub(crate) enum Found<'a> {
    Raw(&'a RawValue),
    Parsed(Value),
}

impl<'a> Message<'a> {
    pub fn read(text: &'a str) -> Result<Message<'a>, ReadError> {
        match serde_json::from_str::<TopLevel<'a>>(text) {
            Ok(TopLevel(top)) => Ok(Message { text, top }),
            Err(err) => match serde_json::from_str::<IgnoredAny>(text) {
                Ok(_) => Err(ReadError::NotObject),
                Err(_) => Err(ReadError::NotJson(err.to_string())),
            },
        }
    }

    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The whole message as a tree, for `{in:/pointer}` in answers.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.text).unwrap_or(Value::Null)
    }

    pub fn find(&self, pointer: &Pointer) -> Option<Found<'a>> {
        let Some(first) = pointer.first() else {
            return Some(Found::Parsed(self.to_value()));
        };
        // A repeated key: the last one counts, as in a parsed tree.
        let raw = self
            .top
            .iter()
            .rev()
            .find(|(key, _)| key.0 == first)
            .map(|(_, raw)| *raw)?;
        // Down through objects, each read as lazily as the top level: the
        // value found stays a slice of the frame. An array on the way is
        // parsed, and the rest of the pointer resolved in the tree.
        let mut raw = raw;
        let below = &pointer.tokens()[1..];
        for (depth, token) in below.iter().enumerate() {
            if !raw.get().starts_with('{') {
                let value: Value = serde_json::from_str(raw.get()).ok()?;
                let rest: String = below[depth..]
                    .iter()
                    .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
                    .collect();
                return value.pointer(&rest).cloned().map(Found::Parsed);
            }
            let TopLevel(entries) = serde_json::from_str::<TopLevel<'a>>(raw.get()).ok()?;
            raw = entries
                .iter()
                .rev()
                .find(|(key, _)| key.0 == token.as_str())
                .map(|(_, raw)| *raw)?;
        }
        Some(Found::Raw(raw))
    }

    pub fn matches(&self, matcher: &Matcher) -> bool {
        matcher.expectations().iter().all(|expect| {
            match self.find(&expect.pointer) {
                None => false,
                // The canonical text is how servers nearly always write it;
                // anything else (spacing, escapes, 1.0) is compared parsed.
                Some(Found::Raw(raw)) => {
                    raw.get() == expect.text
                        || serde_json::from_str::<Value>(raw.get()).is_ok_and(|v| v == expect.value)
                }
                Some(Found::Parsed(value)) => value == expect.value,
            }
        })
    }
}

impl<'a> Found<'a> {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Found::Raw(raw) => serde_json::from_str::<u64>(raw.get()).ok(),
            Found::Parsed(value) => value.as_u64(),
        }
    }

    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        match self {
            Found::Raw(raw) => serde_json::from_str::<Key<'a>>(raw.get()).ok().map(|k| k.0),
            Found::Parsed(Value::String(s)) => Some(Cow::Owned(s.clone())),
            Found::Parsed(_) => None,
        }
    }

    /// A string as itself, a number as its text; anything else is `None`.
    pub fn as_label(&self) -> Option<Cow<'a, str>> {
        match self {
            Found::Raw(raw) if raw.get().starts_with('"') => self.as_str(),
            Found::Raw(raw) => serde_json::from_str::<serde_json::Number>(raw.get())
                .ok()
                .map(|_| Cow::Borrowed(raw.get())),
            Found::Parsed(Value::String(s)) => Some(Cow::Owned(s.clone())),
            Found::Parsed(Value::Number(n)) => Some(Cow::Owned(n.to_string())),
            Found::Parsed(_) => None,
        }
    }

    pub fn is_null(&self) -> bool {
        match self {
            Found::Raw(raw) => raw.get() == "null",
            Found::Parsed(value) => value.is_null(),
        }
    }

    pub fn to_raw(&self) -> Result<Box<RawValue>, serde_json::Error> {
        match self {
            Found::Raw(raw) => Ok((*raw).to_owned()),
            Found::Parsed(value) => serde_json::value::to_raw_value(value),
        }
    }
}

/// A key or string that borrows from the frame unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The top level of an object, each value left as raw JSON.
struct TopLevel<'a>(Vec<(Key<'a>, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(TopLevel(entries))
            }
        }
        deserializer.deserialize_map(TopVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointer(p: &str) -> Pointer {
        Pointer::parse(p).unwrap()
    }

    #[test]
    fn values_in_objects_are_slices_of_the_frame_and_arrays_are_parsed() {
        let text = r#"{"op":"ev","n":7,"d":{"px":1.5,"tags":["a","b"]},"ch":"a\/b","op":"last"}"#;
        let message = Message::read(text).ok().unwrap();
        assert_eq!(message.find(&pointer("/n")).unwrap().as_u64(), Some(7));
        assert_eq!(
            message.find(&pointer("/ch")).unwrap().as_str().unwrap(),
            "a/b"
        );
        assert_eq!(
            message
                .find(&pointer("/d"))
                .unwrap()
                .to_raw()
                .unwrap()
                .get(),
            r#"{"px":1.5,"tags":["a","b"]}"#
        );
        assert_eq!(
            message
                .find(&pointer("/d/tags/1"))
                .unwrap()
                .as_str()
                .unwrap(),
            "b"
        );
        assert!(message.find(&pointer("/d/none")).is_none());
        assert!(
            matches!(message.find(&pointer("/d/px")), Some(Found::Raw(raw)) if raw.get() == "1.5"),
            "a value inside an object is a slice, not a parsed copy"
        );
        let nested = r#"{"payload":{"data":{"t":{"seq":3,"a~b/c":true}}}}"#;
        let deep = Message::read(nested).ok().unwrap();
        assert_eq!(
            deep.find(&pointer("/payload/data/t/seq")).unwrap().as_u64(),
            Some(3)
        );
        assert!(deep.find(&pointer("/payload/data/t/a~0b~1c")).is_some());
        assert!(deep.find(&pointer("/payload/data/t/seq/x")).is_none());
        assert!(message.find(&pointer("/zz")).is_none());
        assert_eq!(
            message.find(&pointer("/op")).unwrap().as_str().unwrap(),
            "last",
            "the last key wins"
        );
        assert!(matches!(
            message.find(&pointer("")),
            Some(Found::Parsed(Value::Object(_)))
        ));
    }

    #[test]
    fn matchers_compare_raw_text_or_parsed_values() {
        let message = Message::read(r#"{"type": "e\u0076", "v": 1.0, "m": {"k": null}}"#)
            .ok()
            .unwrap();
        let m = |pairs: Value| {
            let entries = pairs
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (pointer(k), v.clone()))
                .collect();
            Matcher::new(entries)
        };
        assert!(
            message.matches(&m(json!({"/type": "ev"}))),
            "escapes compare parsed"
        );
        assert!(message.matches(&m(json!({"/m/k": null}))));
        assert!(
            !message.matches(&m(json!({"/m/x": null}))),
            "missing is not null"
        );
        assert!(!message.matches(&m(json!({"/type": "ev", "/v": 2}))));
        assert!(message.matches(&Matcher::default()));
    }

    #[test]
    fn what_is_not_an_object_is_told_apart_from_what_is_not_json() {
        assert!(matches!(Message::read("[1,2]"), Err(ReadError::NotObject)));
        assert!(matches!(Message::read("\"x\""), Err(ReadError::NotObject)));
        assert!(matches!(
            Message::read("{\"a\":"),
            Err(ReadError::NotJson(_))
        ));
        assert!(matches!(Message::read("nope"), Err(ReadError::NotJson(_))));
    }

    #[test]
    fn labels_take_strings_and_numbers() {
        let message = Message::read(r#"{"s":"run-1","n":42,"b":true}"#)
            .ok()
            .unwrap();
        assert_eq!(
            message.find(&pointer("/s")).unwrap().as_label().unwrap(),
            "run-1"
        );
        assert_eq!(
            message.find(&pointer("/n")).unwrap().as_label().unwrap(),
            "42"
        );
        assert!(message.find(&pointer("/b")).unwrap().as_label().is_none());
    }
}
