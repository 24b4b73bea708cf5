//! The dialing phase: one attempt, from DNS to the upgrade.

use serde_json::json;
use tokio::time::Instant;

use super::{Actor, Phase};
use crate::cause::ConnectError;
use crate::client_certificate::ClientCertificate;
use crate::dial::{DialOptions, dial, tls_config};
use crate::events::*;
use crate::proxy::{ProcessEnvironment, Proxy};

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
        let token = self.config.token.clone();
        let upgrade = self.wire.upgrade();
        let started = Instant::now();
        let dialing = dial(&url, &upgrade, token.as_ref(), &options);
        tokio::pin!(dialing);
        let result = loop {
            tokio::select! {
                result = &mut dialing => break result,
                command = self.commands.recv() => {
                    if !self.accept_command(command) {
                        return;
                    }
                    if !self.want_connected {
                        self.record(HistoryKind::State, Level::Info,
                            "connection attempt cancelled".into(), json!({ "attempt": attempt }));
                        return self.go_idle();
                    }
                }
            }
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
