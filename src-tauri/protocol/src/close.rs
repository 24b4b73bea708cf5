//! Close codes named by protocol section 7.

pub const NORMAL: u16 = 1000;
pub const GOING_AWAY: u16 = 1001;
pub const ABNORMAL: u16 = 1006;
pub const POLICY: u16 = 1008;
pub const TOO_BIG: u16 = 1009;
pub const SERVER_ERROR: u16 = 1011;
pub const SERVICE_RESTART: u16 = 1012;
pub const TRY_AGAIN_LATER: u16 = 1013;
pub const TOKEN_EXPIRED: u16 = 4001;
pub const FORBIDDEN: u16 = 4003;
pub const SLOW_CONSUMER: u16 = 4008;
pub const RATE_LIMITED: u16 = 4029;

/// Reads `retry_after_ms=N` out of a 4029 close reason.
pub fn retry_after_ms(reason: &str) -> Option<u64> {
    reason
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .find_map(|part| part.strip_prefix("retry_after_ms="))
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_found_anywhere_in_the_reason() {
        assert_eq!(retry_after_ms("retry_after_ms=45000"), Some(45_000));
        assert_eq!(retry_after_ms("slow down; retry_after_ms=7"), Some(7));
        assert_eq!(retry_after_ms("retry_after_ms=soon"), None);
        assert_eq!(retry_after_ms(""), None);
    }
}
