//! What the client does after each way a connection can end: protocol
//! section 7's table, kept as data so every row has its own test.

use std::time::Duration;

use holdline_protocol::close;
use serde::Serialize;

use crate::cause::{Cause, ConnectError};

/// The engine's answer to a closed connection or failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reaction {
    /// Wait the next jittered backoff delay.
    Backoff,
    /// Wait the backoff delay, but no less than this.
    BackoffAtLeast { min: Duration },
    /// Wait exactly this long, even beyond the backoff cap.
    After { delay: Duration },
    /// Reconnect at once and resume.
    Immediately,
    /// Stop; the token is not good any more.
    NeedsLogin,
    /// Stop and show the reason.
    Stop,
    /// The user or the program asked for it; go idle.
    Idle,
}

/// How a close-code row reacts; the 4029 row reads its delay from the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseRule {
    Backoff,
    BackoffAtLeast(Duration),
    Immediately,
    RetryAfterFromReason,
    NeedsLogin,
    Stop,
}

/// Section 7, first match wins. Codes not listed back off, as RFC 6455's
/// other codes (1002, 1003, 1007, …) describe faults a retry may outlive.
pub const CLOSE_TABLE: &[(u16, u16, CloseRule)] = &[
    (close::NORMAL, close::NORMAL, CloseRule::Backoff),
    (close::GOING_AWAY, close::GOING_AWAY, CloseRule::Backoff),
    (close::ABNORMAL, close::ABNORMAL, CloseRule::Backoff),
    (close::POLICY, close::POLICY, CloseRule::Stop),
    (close::TOO_BIG, close::TOO_BIG, CloseRule::Backoff),
    (close::SERVER_ERROR, close::SERVER_ERROR, CloseRule::Backoff),
    (
        close::SERVICE_RESTART,
        close::SERVICE_RESTART,
        CloseRule::Backoff,
    ),
    (
        close::TRY_AGAIN_LATER,
        close::TRY_AGAIN_LATER,
        CloseRule::BackoffAtLeast(Duration::from_secs(5)),
    ),
    (
        close::TOKEN_EXPIRED,
        close::TOKEN_EXPIRED,
        CloseRule::NeedsLogin,
    ),
    (close::FORBIDDEN, close::FORBIDDEN, CloseRule::Stop),
    (
        close::SLOW_CONSUMER,
        close::SLOW_CONSUMER,
        CloseRule::Immediately,
    ),
    (
        close::RATE_LIMITED,
        close::RATE_LIMITED,
        CloseRule::RetryAfterFromReason,
    ),
    (4000, 4499, CloseRule::Backoff),
    (4500, 4999, CloseRule::Stop),
];

/// `protocol.md` §7's table, which `holdline.v1`, `raw` and `json` share.
pub fn protocol_close_rule(code: u16) -> CloseRule {
    CLOSE_TABLE
        .iter()
        .find(|(low, high, _)| (*low..=*high).contains(&code))
        .map(|(_, _, rule)| *rule)
        .unwrap_or(CloseRule::Backoff)
}

pub fn reaction_to_close(code: u16, reason: &str) -> Reaction {
    reaction_to_close_rule(protocol_close_rule(code), reason)
}

pub fn reaction_to_close_rule(rule: CloseRule, reason: &str) -> Reaction {
    match rule {
        CloseRule::Backoff => Reaction::Backoff,
        CloseRule::BackoffAtLeast(min) => Reaction::BackoffAtLeast { min },
        CloseRule::Immediately => Reaction::Immediately,
        CloseRule::RetryAfterFromReason => match close::retry_after_ms(reason) {
            Some(ms) => Reaction::After {
                delay: Duration::from_millis(ms),
            },
            None => Reaction::Backoff,
        },
        CloseRule::NeedsLogin => Reaction::NeedsLogin,
        CloseRule::Stop => Reaction::Stop,
    }
}

/// The reaction to `cause`, reading close codes through the wire's table.
pub fn reaction_to(cause: &Cause, close_rule: &dyn Fn(u16) -> CloseRule) -> Reaction {
    match cause {
        Cause::Closed { code, reason } => reaction_to_close_rule(close_rule(*code), reason),
        Cause::LoginRefused { .. } => Reaction::NeedsLogin,
        Cause::SessionEnded { .. } => Reaction::Stop,
        Cause::Connect { error } => reaction_to_connect_error(error),
        Cause::UserDisconnect | Cause::Shutdown => Reaction::Idle,
        Cause::UserReconnect => Reaction::Immediately,
        Cause::ConnectionLost { .. }
        | Cause::HeartbeatTimeout { .. }
        | Cause::NotReady { .. }
        | Cause::Refused { .. }
        | Cause::Protocol { .. } => Reaction::Backoff,
        // The socket was dead across a wake or network change: the backoff
        // was reset by the trigger, and the way back is immediate.
        Cause::ProbeFailed { .. } => Reaction::Immediately,
    }
}

/// Whether the server turned down the token itself (HTTP 401 at the
/// upgrade, a close its wire reads as "needs login", a refused login
/// message), so that a refreshed token may get in where this one did not.
/// A proxy's or a client certificate's refusal is not the token's.
pub fn token_was_refused(cause: &Cause, close_rule: &dyn Fn(u16) -> CloseRule) -> bool {
    match cause {
        Cause::Connect {
            error: ConnectError::HttpStatus { status: 401, .. },
        } => true,
        Cause::Closed { code, .. } => close_rule(*code) == CloseRule::NeedsLogin,
        Cause::LoginRefused { .. } => true,
        _ => false,
    }
}

fn reaction_to_connect_error(error: &ConnectError) -> Reaction {
    match error {
        ConnectError::HttpStatus { status: 401, .. } => Reaction::NeedsLogin,
        ConnectError::TokenRefused { .. } => Reaction::NeedsLogin,
        // Asking the proxy again with the same credentials gets the same
        // answer; a person has to give others.
        ConnectError::ProxyAuth { .. } => Reaction::NeedsLogin,
        ConnectError::ProxySetting { .. } => Reaction::Stop,
        // The server wants a certificate a person has to give (or renew);
        // a file that cannot be used is a setting to fix.
        ConnectError::ClientCertificateRequired { .. }
        | ConnectError::ClientCertificateRejected { .. }
        | ConnectError::ClientCertificateExpired { .. } => Reaction::NeedsLogin,
        ConnectError::ClientCertificate { .. } => Reaction::Stop,
        ConnectError::HttpStatus { status: 403, .. } => Reaction::Stop,
        ConnectError::HttpStatus {
            status: 429 | 503,
            retry_after_s: Some(secs),
            ..
        } => Reaction::BackoffAtLeast {
            min: Duration::from_secs(*secs),
        },
        _ => Reaction::Backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(code: u16) -> Reaction {
        reaction_to_close(code, "")
    }

    #[test]
    fn row_1000_normal_closure_backs_off() {
        assert_eq!(close(1000), Reaction::Backoff);
    }
    #[test]
    fn row_1001_going_away_backs_off() {
        assert_eq!(close(1001), Reaction::Backoff);
    }
    #[test]
    fn row_1006_no_close_frame_backs_off() {
        assert_eq!(close(1006), Reaction::Backoff);
        let lost = Cause::ConnectionLost {
            detail: "eof".into(),
        };
        assert_eq!(lost.close_code(), Some(1006));
        assert_eq!(reaction_to(&lost, &protocol_close_rule), Reaction::Backoff);
    }
    #[test]
    fn row_1008_policy_violation_stops() {
        assert_eq!(close(1008), Reaction::Stop);
    }
    #[test]
    fn row_1009_too_big_backs_off() {
        assert_eq!(close(1009), Reaction::Backoff);
    }
    #[test]
    fn row_1011_server_error_backs_off() {
        assert_eq!(close(1011), Reaction::Backoff);
    }
    #[test]
    fn row_1012_service_restart_backs_off() {
        assert_eq!(close(1012), Reaction::Backoff);
    }
    #[test]
    fn row_1013_try_again_later_waits_at_least_5_s() {
        assert_eq!(
            close(1013),
            Reaction::BackoffAtLeast {
                min: Duration::from_secs(5)
            }
        );
    }
    #[test]
    fn row_4001_token_expired_needs_login() {
        assert_eq!(close(4001), Reaction::NeedsLogin);
    }
    #[test]
    fn row_4003_forbidden_stops() {
        assert_eq!(close(4003), Reaction::Stop);
    }
    #[test]
    fn row_4008_slow_consumer_reconnects_at_once() {
        assert_eq!(close(4008), Reaction::Immediately);
    }
    #[test]
    fn row_4029_rate_limited_waits_the_given_delay_even_past_the_cap() {
        assert_eq!(
            reaction_to_close(4029, "retry_after_ms=120000"),
            Reaction::After {
                delay: Duration::from_secs(120)
            }
        );
        assert_eq!(reaction_to_close(4029, "slow down"), Reaction::Backoff);
    }
    #[test]
    fn row_other_4000_to_4499_backs_off() {
        for code in [4000, 4002, 4100, 4499] {
            assert_eq!(close(code), Reaction::Backoff, "{code}");
        }
    }
    #[test]
    fn row_other_4500_to_4999_stops() {
        for code in [4500, 4700, 4999] {
            assert_eq!(close(code), Reaction::Stop, "{code}");
        }
    }
    #[test]
    fn codes_outside_the_table_back_off() {
        for code in [1002, 1003, 1007, 1010, 3000, 3999] {
            assert_eq!(close(code), Reaction::Backoff, "{code}");
        }
    }

    #[test]
    fn only_the_servers_refusals_of_the_token_are_worth_a_refresh() {
        let refused = |cause: Cause| token_was_refused(&cause, &protocol_close_rule);
        let http = |status| Cause::Connect {
            error: ConnectError::HttpStatus {
                status,
                retry_after_s: None,
                body: String::new(),
            },
        };
        let closed = |code| Cause::Closed {
            code,
            reason: String::new(),
        };
        assert!(refused(http(401)));
        assert!(refused(closed(4001)));
        assert!(refused(Cause::LoginRefused {
            detail: "bad token".into()
        }));
        assert!(!refused(http(403)));
        assert!(!refused(closed(4003)));
        assert!(!refused(closed(1000)));
        assert!(!refused(Cause::Connect {
            error: ConnectError::ProxyAuth {
                proxy: "p".into(),
                detail: "407".into()
            }
        }));
        assert_eq!(
            reaction_to(
                &Cause::Connect {
                    error: ConnectError::TokenRefused {
                        reason: "invalid_grant".into()
                    }
                },
                &protocol_close_rule
            ),
            Reaction::NeedsLogin
        );
        assert_eq!(
            reaction_to(
                &Cause::Connect {
                    error: ConnectError::TokenProviderUnreachable {
                        reason: "refused".into()
                    }
                },
                &protocol_close_rule
            ),
            Reaction::Backoff
        );
    }

    fn status(status: u16, retry_after_s: Option<u64>) -> Reaction {
        reaction_to(
            &Cause::Connect {
                error: ConnectError::HttpStatus {
                    status,
                    retry_after_s,
                    body: String::new(),
                },
            },
            &protocol_close_rule,
        )
    }

    #[test]
    fn handshake_statuses_follow_section_1() {
        assert_eq!(status(401, None), Reaction::NeedsLogin);
        assert_eq!(status(403, None), Reaction::Stop);
        assert_eq!(
            status(429, Some(7)),
            Reaction::BackoffAtLeast {
                min: Duration::from_secs(7)
            }
        );
        assert_eq!(
            status(503, Some(2)),
            Reaction::BackoffAtLeast {
                min: Duration::from_secs(2)
            }
        );
        assert_eq!(status(503, None), Reaction::Backoff);
        assert_eq!(status(500, None), Reaction::Backoff);
        assert_eq!(status(404, None), Reaction::Backoff);
    }
}
