//! Any bytes as a server or client frame: decoding never panics, and a
//! frame that decodes re-encodes to something that decodes to the same.
#![no_main]

use holdline_protocol::{decode_client_frame, decode_server_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = holdline_protocol::MalformedFrame::binary(data);
        return;
    };
    if let Ok(frame) = decode_server_frame(text) {
        let again = decode_server_frame(&frame.to_json()).expect("re-encoded server frame decodes");
        assert_eq!(again.to_json(), frame.to_json());
    }
    if let Ok(frame) = decode_client_frame(text) {
        let again = decode_client_frame(&frame.to_json()).expect("re-encoded client frame decodes");
        assert_eq!(again.to_json(), frame.to_json());
    }
    if let Err(malformed) = decode_server_frame(text) {
        assert!(malformed.excerpt.len() <= 256);
    }
});
