//! JSON Pointers (RFC 6901) and matchers (profiles §2).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    #[error("{0:?} is not a JSON Pointer: it must be empty or start with '/'")]
    NoSlash(String),
    #[error("{0:?} is not a JSON Pointer: '~' must be followed by 0 or 1")]
    BadEscape(String),
}

/// A pointer checked against RFC 6901's grammar, with its reference
/// tokens unescaped ahead of time: most pointers name a top-level key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    /// The reference tokens, unescaped; none for the whole document.
    tokens: Vec<String>,
    /// The pointer below the first token (`""` when there is none).
    rest: String,
}

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
        let (tokens, rest) = match text.strip_prefix('/') {
            None => (Vec::new(), String::new()),
            Some(tail) => (
                tail.split('/')
                    .map(|token| token.replace("~1", "/").replace("~0", "~"))
                    .collect(),
                tail.find('/')
                    .map(|at| tail[at..].to_owned())
                    .unwrap_or_default(),
            ),
        };
        Ok(Pointer {
            text: text.to_owned(),
            tokens,
            rest,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first reference token (a top-level key or index), if any.
    pub fn first(&self) -> Option<&str> {
        self.tokens.first().map(String::as_str)
    }

    /// Every reference token, unescaped.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The pointer below the first token, `""` for none.
    pub fn rest(&self) -> &str {
        &self.rest
    }

    pub fn resolve<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        value.pointer(&self.text)
    }
}

/// Pointers and the values they must hold; `{}` matches every object.
/// Each wanted value is kept with its canonical JSON text, so a message's
/// raw value can be compared without building it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matcher(Vec<Expect>);

#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    pub pointer: Pointer,
    pub value: Value,
    pub text: String,
}

impl Matcher {
    pub fn new(entries: Vec<(Pointer, Value)>) -> Matcher {
        Matcher(
            entries
                .into_iter()
                .map(|(pointer, value)| Expect {
                    text: value.to_string(),
                    pointer,
                    value,
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn expectations(&self) -> &[Expect] {
        &self.0
    }

    pub fn matches(&self, message: &Value) -> bool {
        self.0
            .iter()
            .all(|e| e.pointer.resolve(message) == Some(&e.value))
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
    fn the_first_token_is_unescaped_ahead_of_time() {
        let p = Pointer::parse("/a~1b/c/0").unwrap();
        assert_eq!((p.first(), p.rest()), (Some("a/b"), "/c/0"));
        let whole = Pointer::parse("").unwrap();
        assert_eq!((whole.first(), whole.rest()), (None, ""));
        let top = Pointer::parse("/m~0n").unwrap();
        assert_eq!((top.first(), top.rest()), (Some("m~n"), ""));
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
