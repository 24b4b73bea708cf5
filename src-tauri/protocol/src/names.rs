//! Feed names and request ids (protocol section 2).

use thiserror::Error;

pub const MAX_FEED_NAME_CHARS: usize = 128;
pub const MAX_REQUEST_ID_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("feed name is empty")]
    EmptyFeed,
    #[error("feed name is {0} characters long; the limit is 128")]
    FeedTooLong(usize),
    #[error("feed name contains {0:?}; allowed are A-Z a-z 0-9 . _ : -")]
    FeedCharacter(char),
    #[error("request id is empty")]
    EmptyId,
    #[error("request id is {0} characters long; the limit is 64")]
    IdTooLong(usize),
    #[error("request id contains {0:?}; only printable ASCII is allowed")]
    IdCharacter(char),
}

pub fn validate_feed_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::EmptyFeed);
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(NameError::FeedCharacter(bad));
    }
    // Every allowed character is one byte, so the byte length is the count.
    if name.len() > MAX_FEED_NAME_CHARS {
        return Err(NameError::FeedTooLong(name.len()));
    }
    Ok(())
}

pub fn validate_request_id(id: &str) -> Result<(), NameError> {
    if id.is_empty() {
        return Err(NameError::EmptyId);
    }
    if let Some(bad) = id.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(NameError::IdCharacter(bad));
    }
    if id.len() > MAX_REQUEST_ID_CHARS {
        return Err(NameError::IdTooLong(id.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_names_follow_section_2() {
        assert!(validate_feed_name("demo.ticker").is_ok());
        assert!(validate_feed_name("A-z_0:9.x").is_ok());
        assert!(validate_feed_name(&"a".repeat(128)).is_ok());
        assert_eq!(validate_feed_name(""), Err(NameError::EmptyFeed));
        assert_eq!(
            validate_feed_name(&"a".repeat(129)),
            Err(NameError::FeedTooLong(129))
        );
        assert_eq!(
            validate_feed_name("a b"),
            Err(NameError::FeedCharacter(' '))
        );
        assert_eq!(
            validate_feed_name("caf\u{e9}"),
            Err(NameError::FeedCharacter('\u{e9}'))
        );
        assert_eq!(
            validate_feed_name("a/b"),
            Err(NameError::FeedCharacter('/'))
        );
    }

    #[test]
    fn request_ids_are_printable_ascii_up_to_64() {
        assert!(validate_request_id("01HZX-abc ~!").is_ok());
        assert!(validate_request_id(&"x".repeat(64)).is_ok());
        assert_eq!(validate_request_id(""), Err(NameError::EmptyId));
        assert_eq!(
            validate_request_id(&"x".repeat(65)),
            Err(NameError::IdTooLong(65))
        );
        assert_eq!(
            validate_request_id("a\tb"),
            Err(NameError::IdCharacter('\t'))
        );
    }
}
