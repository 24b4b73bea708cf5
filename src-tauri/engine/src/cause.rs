//! Why a connection ended or an attempt failed, precisely enough for a person
//! reading the history to tell a refused port from a bad certificate.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

/// What made the engine look at the socket again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Wake,
    NetworkChange,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trigger::Wake => "system wake",
            Trigger::NetworkChange => "network change",
        })
    }
}

/// A failed connection attempt, before any WebSocket frame.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectError {
    #[error("DNS lookup of {host} failed: {detail}")]
    Dns { host: String, detail: String },
    #[error("connection to {addr} refused")]
    Refused { addr: String },
    #[error("timed out after {after_ms} ms while {stage}")]
    Timeout { stage: String, after_ms: u64 },
    #[error("TLS failed: {detail}")]
    Tls { detail: String },
    #[error("server answered HTTP {status}{}{}", retry_after_s.map(|s| format!(" (Retry-After {s} s)")).unwrap_or_default(), if body.is_empty() { String::new() } else { format!(": {body}") })]
    HttpStatus {
        status: u16,
        retry_after_s: Option<u64>,
        body: String,
    },
    #[error("network error: {detail}")]
    Io { detail: String },
    #[error("WebSocket handshake failed: {detail}")]
    Handshake { detail: String },
    /// Our client certificate cannot be used: unreadable, a wrong PKCS#12
    /// passphrase, a key that does not match.
    #[error("the client certificate cannot be used: {detail}")]
    ClientCertificate { detail: String },
    /// The server demands a client certificate and none is set.
    #[error("the server demands a client certificate and none is set ({detail})")]
    ClientCertificateRequired { detail: String },
    /// The server turned down the client certificate we presented.
    #[error("the server rejected the client certificate {subject} ({detail})")]
    ClientCertificateRejected { subject: String, detail: String },
    /// The server turned down our client certificate, which has expired.
    #[error("the client certificate {subject} expired at {not_after} ({detail})")]
    ClientCertificateExpired {
        subject: String,
        not_after: String,
        detail: String,
    },
    /// The proxy setting names a proxy that cannot be used (a malformed
    /// `https_proxy`, say); no attempt can succeed until it changes.
    #[error("the proxy setting cannot be used: {detail}")]
    ProxySetting { detail: String },
    /// The proxy itself could not be reached, or dropped the connection
    /// before the tunnel was open.
    #[error("proxy {proxy} unreachable: {detail}")]
    ProxyUnreachable { proxy: String, detail: String },
    /// The proxy wants credentials, or refused the ones given (HTTP 407,
    /// or 401 as tinyproxy says it; SOCKS5 authentication).
    #[error("proxy {proxy} did not let us in: {detail}")]
    ProxyAuth { proxy: String, detail: String },
    /// The proxy refused to open the tunnel: its HTTP status or SOCKS
    /// reply says why.
    #[error("proxy {proxy} refused the tunnel: {detail}")]
    ProxyRefused {
        proxy: String,
        status: Option<u16>,
        socks_reply: Option<u8>,
        detail: String,
    },
    /// The proxy could not open the tunnel to the server (HTTP 5xx, SOCKS
    /// replies 3–6): mostly the server's failure, seen through the proxy.
    #[error("proxy {proxy} could not reach the server: {detail}")]
    ProxyTargetFailed {
        proxy: String,
        status: Option<u16>,
        socks_reply: Option<u8>,
        detail: String,
    },
    /// The identity provider refused to refresh the login.
    #[error("the identity provider refused to refresh the token: {reason}")]
    TokenRefused { reason: String },
    /// The identity provider could not be asked for a fresh token.
    #[error("the identity provider could not be reached: {reason}")]
    TokenProviderUnreachable { reason: String },
}

impl From<crate::token_source::TokenError> for ConnectError {
    fn from(error: crate::token_source::TokenError) -> Self {
        use crate::token_source::TokenError;
        match error {
            TokenError::Refused { reason } => ConnectError::TokenRefused { reason },
            TokenError::Unreachable { reason } => ConnectError::TokenProviderUnreachable { reason },
        }
    }
}

/// Why the previous connection ended (or never began).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// The server sent a close frame.
    Closed { code: u16, reason: String },
    /// The connection ended without a close frame (1006).
    ConnectionLost { detail: String },
    /// No frame of any kind arrived for twice the heartbeat period.
    HeartbeatTimeout { silent_ms: u64 },
    /// A wake or network change probe got no answer in time.
    ProbeFailed { trigger: Trigger, waited_ms: u64 },
    /// The server upgraded but never said the connection was ready
    /// (`welcome`, a profile's `ready` message).
    NotReady { waiting_for: String, waited_ms: u64 },
    /// The server refused the login (a profile's `refused` message).
    LoginRefused { detail: String },
    /// The server ended the session at its own level (Socket.IO's
    /// DISCONNECT): asking again would be refused the same way.
    SessionEnded { detail: String },
    /// The server refused the connection at its protocol's level (an MQTT
    /// CONNACK or DISCONNECT) for a reason a later attempt may not meet.
    Refused { detail: String },
    /// A frame broke the WebSocket protocol or our size limit.
    Protocol { detail: String },
    /// The attempt itself failed.
    Connect { error: ConnectError },
    /// The user asked to disconnect.
    UserDisconnect,
    /// The user asked to reconnect now.
    UserReconnect,
    /// The engine is shutting down.
    Shutdown,
}

impl Cause {
    /// The client ends the connection for this cause, so it closes the
    /// socket with a close frame.
    pub fn is_ours(&self) -> bool {
        matches!(
            self,
            Cause::NotReady { .. }
                | Cause::LoginRefused { .. }
                | Cause::SessionEnded { .. }
                | Cause::Refused { .. }
        )
    }

    /// The close code this cause stands for, 1006 when no frame came.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Cause::Closed { code, .. } => Some(*code),
            Cause::ConnectionLost { .. }
            | Cause::HeartbeatTimeout { .. }
            | Cause::ProbeFailed { .. } => Some(holdline_protocol::close::ABNORMAL),
            _ => None,
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Closed { code, reason } if reason.is_empty() => {
                write!(f, "server closed with {code}")
            }
            Cause::Closed { code, reason } => write!(f, "server closed with {code}: {reason}"),
            Cause::ConnectionLost { detail } => write!(f, "connection lost (1006): {detail}"),
            Cause::HeartbeatTimeout { silent_ms } => {
                write!(f, "heartbeat timeout: nothing received for {silent_ms} ms")
            }
            Cause::ProbeFailed { trigger, waited_ms } => {
                write!(f, "no answer within {waited_ms} ms after {trigger}")
            }
            Cause::NotReady {
                waiting_for,
                waited_ms,
            } => {
                write!(f, "no {waiting_for} within {waited_ms} ms of the upgrade")
            }
            Cause::LoginRefused { detail } => write!(f, "the server refused the login: {detail}"),
            Cause::SessionEnded { detail } => write!(f, "the server ended the session: {detail}"),
            Cause::Refused { detail } => write!(f, "the server refused: {detail}"),
            Cause::Protocol { detail } => write!(f, "protocol error: {detail}"),
            Cause::Connect { error } => write!(f, "{error}"),
            Cause::UserDisconnect => f.write_str("disconnect requested"),
            Cause::UserReconnect => f.write_str("reconnect requested"),
            Cause::Shutdown => f.write_str("engine shut down"),
        }
    }
}
