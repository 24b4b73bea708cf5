//! The dialing phase: one attempt, from DNS to the upgrade.

use serde_json::json;
use tokio::time::Instant;

use super::{Actor, Phase};
use crate::cause::ConnectError;
use crate::client_certificate::ClientCertificate;
use crate::dial::{DialOptions, dial, tls_config};
use crate::events::*;
use crate::proxy::{ProcessEnvironment, Proxy};
use crate::secret::Token;
use crate::token_source::FreshToken;

impl Actor {
    pub(super) async fn attempt(&mut self) {
        self.phase = Phase::Dialing;
        self.reconnect_now = false;
        let attempt = self.backoff.failures() + 1;
        self.set_state(ConnectionState::Connecting { attempt });
        let resolved = self
            .config
            .proxy
            .resolve(&self.config.url, &ProcessEnvironment)
            .await;
        let source = resolved.as_ref().ok().map(|(_, source)| source.name());
        let proxy = resolved.map(|(proxy, _)| proxy);
        let shown_proxy = proxy
            .as_ref()
            .ok()
            .and_then(Option::as_ref)
            .map(Proxy::shown);
        let through = shown_proxy
            .as_deref()
            .map(|proxy| format!(" through proxy {proxy}"))
            .unwrap_or_default();
        self.record(
            HistoryKind::Attempt,
            Level::Info,
            format!(
                "connecting to {}{through} (attempt {attempt})",
                self.config.url
            ),
            json!({ "attempt": attempt, "url": self.config.url.as_str(),
                    "protocol": self.config.profile.protocol(), "proxy": shown_proxy,
                    "proxy_source": source }),
        );
        let proxy = match proxy {
            Ok(proxy) => proxy,
            Err(error) => return self.after_attempt_failed(attempt, Instant::now(), error),
        };
        if self.config.url.is_tls() && self.tls.is_none() {
            let identity = self
                .config
                .client_certificate
                .as_ref()
                .map(ClientCertificate::load)
                .transpose();
            let facts = identity
                .as_ref()
                .ok()
                .and_then(|i| i.as_ref())
                .map(|i| i.facts.clone());
            match identity
                .and_then(|identity| tls_config(self.config.extra_ca_file.as_deref(), identity))
            {
                Ok(tls) => {
                    self.tls = Some(tls);
                    self.identity = facts;
                }
                Err(error) => return self.after_attempt_failed(attempt, Instant::now(), error),
            }
        }
        let options = DialOptions {
            timeout: self.config.connect_timeout,
            max_frame_bytes: self.config.max_incoming_frame_bytes,
            tls: self.tls.clone(),
            identity: self.identity.clone(),
            proxy,
        };
        let url = self.config.url.clone();
        let started = Instant::now();
        let token = match self.config.token_source.clone() {
            None => self.config.token.clone(),
            Some(source) => {
                let force = std::mem::take(&mut self.force_token_refresh);
                let asking = async move { source.token(force).await };
                match self.unless_cancelled(attempt, asking).await {
                    None => return,
                    Some(Err(error)) => {
                        return self.after_attempt_failed(attempt, started, error.into());
                    }
                    Some(Ok(fresh)) => Some(self.took_token(fresh)),
                }
            }
        };
        let upgrade = self.wire.upgrade();
        let started = Instant::now();
        let Some(result) = self
            .unless_cancelled(attempt, dial(&url, &upgrade, token.as_ref(), &options))
            .await
        else {
            return;
        };
        match result {
            Err(error) => self.after_attempt_failed(attempt, started, error),
            Ok(dialed) => {
                let took = started.elapsed();
                let offered = !upgrade.subprotocols.is_empty();
                let message = match (&dialed.subprotocol, offered) {
                    (Some(selected), _) => {
                        format!("connected in {} ms ({selected})", took.as_millis())
                    }
                    (None, true) => format!(
                        "connected in {} ms; the server selected none of {}",
                        took.as_millis(),
                        upgrade.subprotocols.join(", ")
                    ),
                    (None, false) => format!("connected in {} ms", took.as_millis()),
                };
                self.record(
                    HistoryKind::Connected,
                    Level::Info,
                    message,
                    json!({ "attempt": attempt, "took_ms": took.as_millis() as u64,
                            "subprotocol": dialed.subprotocol }),
                );
                self.phase = Phase::Open;
                let cause = self.run_connection(dialed).await;
                self.after_disconnect(cause);
            }
        }
    }

    /// Runs one step of an attempt while still taking commands; `None`
    /// when the engine exits or the user disconnected meanwhile (the
    /// attempt is then over, and said so).
    async fn unless_cancelled<T>(
        &mut self,
        attempt: u32,
        step: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        tokio::pin!(step);
        loop {
            tokio::select! {
                result = &mut step => return Some(result),
                command = self.commands.recv() => {
                    if !self.accept_command(command) {
                        return None;
                    }
                    if !self.want_connected {
                        self.record(HistoryKind::State, Level::Info,
                            "connection attempt cancelled".into(), json!({ "attempt": attempt }));
                        self.go_idle();
                        return None;
                    }
                }
            }
        }
    }

    /// Keeps what the observers show of a token from a token source and
    /// says in the history when it was refreshed (never the token).
    fn took_token(&mut self, fresh: FreshToken) -> Token {
        // A wire that logs in with a message (`{token}` in a template)
        // sends this one too.
        self.wire.set_token(Some(fresh.token.clone()));
        self.token_expires_at_ms = fresh.expires_at_ms;
        if fresh.refreshed {
            self.token_refreshed_at_ms = Some(now_ms());
            let expiry = match fresh.expires_at_ms {
                Some(at) => format!("; it expires in {} s", (at - now_ms()).max(0) / 1000),
                None => String::new(),
            };
            self.record(
                HistoryKind::Login,
                Level::Info,
                format!("token refreshed{expiry}"),
                json!({ "expires_at_ms": fresh.expires_at_ms }),
            );
        }
        if let Some(warning) = fresh.warning {
            self.record(
                HistoryKind::Login,
                Level::Warn,
                warning.clone(),
                json!({ "warning": warning }),
            );
        }
        fresh.token
    }

    fn after_attempt_failed(&mut self, attempt: u32, started: Instant, error: ConnectError) {
        let took = started.elapsed();
        self.record(
            HistoryKind::AttemptFailed,
            Level::Warn,
            format!("attempt {attempt} failed: {error}"),
            json!({ "attempt": attempt, "took_ms": took.as_millis() as u64, "error": error }),
        );
        self.schedule(crate::cause::Cause::Connect { error });
    }
}
