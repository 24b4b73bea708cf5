//! Any text as a server URL: validation never panics; an accepted URL is
//! ws or wss, carries no `token` query parameter (re-parsing it yields no
//! token), and parses again to itself.
#![no_main]

use holdline_engine::FeedUrl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match FeedUrl::parse(text) {
        Ok((url, _token)) => {
            assert!(url.as_str().starts_with("ws://") || url.as_str().starts_with("wss://"));
            let (again, token) = FeedUrl::parse(url.as_str()).expect("an accepted URL parses again");
            assert_eq!(again.as_str(), url.as_str());
            assert!(token.is_none());
        }
        Err(err) => {
            let message = err.to_string();
            assert!(!message.is_empty());
        }
    }
});
