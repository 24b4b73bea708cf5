//! A bearer token that cannot be printed, logged or serialized by accident.

use std::fmt;

/// Holds a credential. `Debug` and `Display` print `<redacted>`; there is no
/// `Serialize`. The only way to the bytes is [`Token::expose`], used for the
/// `Authorization` header and for handing the value to the keyring.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(value: impl Into<String>) -> Self {
        Token(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let token = Token::new("hunter2");
        assert_eq!(
            format!("{token:?} {token} {:?}", Some(&token)),
            "<redacted> <redacted> Some(<redacted>)"
        );
        assert_eq!(token.expose(), "hunter2");
    }
}
