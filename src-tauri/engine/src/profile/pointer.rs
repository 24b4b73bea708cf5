//! JSON Pointers (RFC 6901) and matchers (profiles §2).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    #[error("{0:?} is not a JSON Pointer: it must be empty or start with '/'")]
    NoSlash(String),
    #[error("{0:?} is not a JSON Pointer: '~' must be followed by 0 or 1")]
    BadEscape(String),
}

/// A pointer checked against RFC 6901's grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer(String);

impl Pointer {
    pub fn parse(text: &str) -> Result<Pointer, PointerError> {
        if !text.is_empty() && !text.starts_with('/') {
            return Err(PointerError::NoSlash(text.to_owned()));
        }
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(PointerError::BadEscape(text.to_owned()));
            }
        }
        Ok(Pointer(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn resolve<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        value.pointer(&self.0)
    }
}

/// Pointers and the values they must hold; `{}` matches every object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matcher(Vec<(Pointer, Value)>);

impl Matcher {
    pub fn new(entries: Vec<(Pointer, Value)>) -> Matcher {
        Matcher(entries)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, message: &Value) -> bool {
        self.0
            .iter()
            .all(|(pointer, want)| pointer.resolve(message) == Some(want))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc_6901_grammar() {
        for good in ["", "/", "/a", "/a/0", "/a~1b", "/m~0n", "/ "] {
            assert!(Pointer::parse(good).is_ok(), "{good}");
        }
        for bad in ["a", "a/b", "/a~", "/a~2", "#/a"] {
            assert!(Pointer::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matchers_need_every_pointer_present_and_equal() {
        let m = Matcher::new(vec![
            (Pointer::parse("/type").unwrap(), json!("event")),
            (Pointer::parse("/meta/v").unwrap(), json!(2)),
        ]);
        assert!(m.matches(&json!({"type": "event", "meta": {"v": 2}, "x": 1})));
        assert!(!m.matches(&json!({"type": "event", "meta": {"v": 3}})));
        assert!(!m.matches(&json!({"type": "event"})));
        assert!(Matcher::default().matches(&json!({})));
        let null = Matcher::new(vec![(Pointer::parse("/x").unwrap(), json!(null))]);
        assert!(null.matches(&json!({"x": null})));
        assert!(!null.matches(&json!({})), "a missing key is not null");
    }
}
