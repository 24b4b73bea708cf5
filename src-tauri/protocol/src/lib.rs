//! The `holdline.v1` wire format, and nothing else.
//!
//! This is the only crate that knows how frames look on the wire; the engine
//! and the server both speak through it, so the two cannot drift apart.

pub mod close;
mod decode;
pub mod frames;
pub mod names;

pub use decode::{MalformedFrame, decode_client_frame, decode_server_frame, excerpt};
pub use frames::*;
pub use names::{NameError, validate_feed_name, validate_request_id};

/// The subprotocol a client offers and a holdline server selects.
pub const SUBPROTOCOL: &str = "holdline.v1";

/// The largest `seq` either side accepts: 2^53 - 1, so that a browser peer
/// holding it in a JavaScript number sees it exactly.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// Bounds the protocol puts on a server's `heartbeat_ms` (section 6).
pub const MIN_HEARTBEAT_MS: u64 = 250;
pub const MAX_HEARTBEAT_MS: u64 = 300_000;
pub const DEFAULT_HEARTBEAT_MS: u64 = 15_000;

/// How many bytes of a malformed frame are kept for the record.
pub const MALFORMED_EXCERPT_BYTES: usize = 256;

/// Wall-clock time as the protocol counts it (`ts`: ms since the Unix
/// epoch). A clock before 1970 reads as 0.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
