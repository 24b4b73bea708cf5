//! Feed server URLs (protocol section 1): validated before any I/O, with the
//! credential taken out so that no log line can ever carry it.

use std::fmt;

use thiserror::Error;
use url::Url;

use crate::secret::Token;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlError {
    #[error("the server URL is empty; use ws://host:port/path or wss://host/path")]
    Empty,
    #[error("{0:?} is not a URL; use ws://host:port/path or wss://host/path")]
    Unparsable(String),
    #[error("scheme {scheme:?} is not a feed URL; only ws:// and wss:// are")]
    Scheme { scheme: String },
    #[error("the URL has no host; use ws://host:port/path or wss://host/path")]
    NoHost,
    #[error(
        "the URL carries a user name or password; ws:// and wss:// URLs take the token separately"
    )]
    UserInfo,
}

/// A validated `ws://` or `wss://` URL without credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct FeedUrl {
    url: Url,
}

impl FeedUrl {
    /// Parses a user-supplied URL. A `token` query value is split off and
    /// returned separately: the engine sends it as a header, never in the URL.
    pub fn parse(input: &str) -> Result<(FeedUrl, Option<Token>), UrlError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(UrlError::Empty);
        }
        let mut url = match Url::parse(trimmed) {
            Ok(url) => url,
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                // "example.com:8080" and friends: say what is missing.
                return Err(UrlError::Scheme {
                    scheme: String::new(),
                });
            }
            Err(_) => return Err(UrlError::Unparsable(redact_query(trimmed))),
        };
        match url.scheme() {
            "ws" | "wss" => {}
            other => {
                return Err(UrlError::Scheme {
                    scheme: other.to_owned(),
                });
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::UserInfo);
        }
        url.set_fragment(None);
        let mut token = None;
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter_map(|(k, v)| {
                if k == "token" {
                    token = Some(Token::new(v.into_owned()));
                    None
                } else {
                    Some((k.into_owned(), v.into_owned()))
                }
            })
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        Ok((FeedUrl { url }, token))
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    pub fn is_tls(&self) -> bool {
        self.url.scheme() == "wss"
    }

    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.url
            .port_or_known_default()
            .unwrap_or(if self.is_tls() { 443 } else { 80 })
    }

    /// The key under which cursors, outboxes and keyring entries of this
    /// server are stored: the URL without credentials.
    pub fn server_key(&self) -> &str {
        self.url.as_str()
    }
}

impl fmt::Display for FeedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

impl fmt::Debug for FeedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeedUrl({})", self.url)
    }
}

/// Any URL-ish text with its `token` query value replaced, for messages.
pub fn redact_query(text: &str) -> String {
    let Some((head, query)) = text.split_once('?') else {
        return text.to_owned();
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("token", _)) => "token=REDACTED".to_owned(),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}?{}", redacted.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ws_and_wss_are_feed_urls_and_the_error_names_both() {
        for bad in [
            "http://example.com",
            "https://example.com",
            "example.com",
            "localhost:8080",
            "",
            "   ",
            "ftp://x",
        ] {
            let err = FeedUrl::parse(bad).expect_err(bad);
            let text = err.to_string();
            assert!(
                text.contains("ws://") && text.contains("wss://"),
                "{bad}: {text}"
            );
        }
        assert!(FeedUrl::parse("ws://127.0.0.1:9000/feed").is_ok());
        assert!(FeedUrl::parse("wss://example.com").is_ok());
        assert!(FeedUrl::parse("WSS://Example.com/x").is_ok());
    }

    #[test]
    fn the_token_query_value_moves_out_of_the_url() {
        let (url, token) = FeedUrl::parse("ws://h:1/p?a=1&token=s3cret&b=2#frag").unwrap();
        assert_eq!(url.as_str(), "ws://h:1/p?a=1&b=2");
        assert_eq!(token.unwrap().expose(), "s3cret");
        assert!(!format!("{url} {url:?}").contains("s3cret"));
        let (url, _) = FeedUrl::parse("ws://h/p?token=x").unwrap();
        assert_eq!(url.server_key(), "ws://h/p");
    }

    #[test]
    fn credentials_in_the_authority_are_refused() {
        assert_eq!(
            FeedUrl::parse("ws://user:pw@h/").unwrap_err(),
            UrlError::UserInfo
        );
    }

    #[test]
    fn ports_default_by_scheme() {
        assert_eq!(FeedUrl::parse("ws://h").unwrap().0.port(), 80);
        assert_eq!(FeedUrl::parse("wss://h").unwrap().0.port(), 443);
        assert_eq!(FeedUrl::parse("ws://h:81").unwrap().0.port(), 81);
    }

    /// Found by the feed_url fuzz target: control characters vanish in
    /// WHATWG parsing and `token=` lands in the path, where it is no
    /// credential; the URL must re-parse to itself with no token.
    #[test]
    fn token_text_in_a_path_is_not_a_credential_and_reparses_stably() {
        let input = "wss:f(tp\n://YY01Y\0\0\0\0\0token=\0\0\0\0\t\0\0\0\0";
        let (url, token) = FeedUrl::parse(input).unwrap();
        assert!(token.is_none());
        assert!(url.as_str().starts_with("wss://"));
        let (again, token) = FeedUrl::parse(url.as_str()).unwrap();
        assert_eq!(again.as_str(), url.as_str());
        assert!(token.is_none());
    }

    #[test]
    fn redaction_hides_only_the_token() {
        assert_eq!(
            redact_query("ws://h/p?x=1&token=abc"),
            "ws://h/p?x=1&token=REDACTED"
        );
        assert_eq!(redact_query("ws://h/p"), "ws://h/p");
    }
}
