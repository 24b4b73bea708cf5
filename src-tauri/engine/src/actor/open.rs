//! The open phase: reading and writing the socket, the heartbeat, the
//! wake probe, the wire's and the holes' timers.

use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::debug;

use super::{Actor, FRAMES_PER_TURN, Phase, Session};
use crate::cause::{Cause, Trigger};
use crate::dial::{Dialed, Socket};
use crate::liveness::Liveness;
use crate::wire::Frame;

/// A liveness check after a wake or network change: any frame before
/// `deadline` proves the socket alive.
#[derive(Debug, Clone, Copy)]
struct Probe {
    trigger: Trigger,
    sent_at: Instant,
    deadline: Instant,
}

impl Actor {
    pub(super) async fn run_connection(&mut self, dialed: Dialed) -> Cause {
        let Dialed {
            mut socket,
            subprotocol,
        } = dialed;
        let now = Instant::now();
        self.heartbeat = self.config.heartbeat;
        self.session = Some(Session {
            id: None,
            ready: false,
            max_frame_bytes: None,
            opened_at: now,
            malformed_recorded: 0,
            logins_sent: 0,
            liveness: Liveness::new(self.heartbeat, now),
        });
        self.outbox.mark_all_unsent();
        self.wire
            .on_open(subprotocol.as_deref(), now, &mut self.wire_out);
        let mut ended = self.apply_wire_output();
        let mut probe: Option<Probe> = None;
        loop {
            if let Some(cause) = ended.take() {
                if cause.is_ours() {
                    close_socket(&mut socket, "closing").await;
                }
                return cause;
            }
            if let Err(cause) = self.flush_writes(&mut socket).await {
                return cause;
            }
            let liveness = self.liveness();
            let hole_deadline = self.next_hole_deadline();
            let wire_deadline = self.wire.deadline();
            tokio::select! {
                biased;
                // Before commands: what the consumer committed before it
                // asked to stop is still acknowledged on the way out.
                Some(receipt) = self.receipts.recv() => {
                    self.wire.on_committed(receipt, &mut self.wire_out);
                    ended = self.apply_wire_output();
                }
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        close_socket(&mut socket, "client shutting down").await;
                        self.phase = Phase::Exit;
                        return Cause::Shutdown;
                    };
                    self.handle_command(command);
                    if matches!(self.phase, Phase::Exit) {
                        close_socket(&mut socket, "client shutting down").await;
                        return Cause::Shutdown;
                    }
                    if !self.want_connected {
                        close_socket(&mut socket, "disconnect requested").await;
                        return Cause::UserDisconnect;
                    }
                    if std::mem::take(&mut self.reconnect_now) && self.probe_requested.is_none() {
                        close_socket(&mut socket, "reconnect requested").await;
                        return Cause::UserReconnect;
                    }
                    if let Some(trigger) = self.probe_requested.take() {
                        let sent_at = Instant::now();
                        self.writes.push(self.ping_message(sent_at));
                        probe = Some(Probe { trigger, sent_at, deadline: sent_at + self.config.probe_timeout });
                    }
                }
                message = socket.next() => {
                    let mut message = message;
                    let mut handled = 0;
                    let outcome = loop {
                        match message {
                            None => break Some(Cause::ConnectionLost {
                                detail: "the stream ended without a close frame".into(),
                            }),
                            Some(Err(err)) => break Some(cause_of_read_error(err)),
                            Some(Ok(frame)) => {
                                if let Some(session) = &mut self.session {
                                    session.liveness.on_frame(Instant::now());
                                }
                                if probe.take().is_some() {
                                    debug!("probe answered");
                                }
                                if let Some(cause) = self.on_message(frame) {
                                    break Some(cause);
                                }
                            }
                        }
                        handled += 1;
                        if handled >= FRAMES_PER_TURN {
                            break None;
                        }
                        match socket.next().now_or_never() {
                            Some(next) => message = next,
                            None => break None,
                        }
                    };
                    // Whatever this turn made deliverable goes out first,
                    // even when the connection just ended.
                    if let Some(cause) = self.flush_deliveries().await {
                        return cause;
                    }
                    if let Some(cause) = outcome {
                        if cause.is_ours() {
                            close_socket(&mut socket, "closing").await;
                        }
                        return cause;
                    }
                }
                () = sleep_until(liveness.next_ping_at().unwrap_or_else(far_future)), if liveness.next_ping_at().is_some() => {
                    let now = Instant::now();
                    self.writes.push(self.ping_message(now));
                    if let Some(session) = &mut self.session {
                        session.liveness.on_ping_sent(now);
                    }
                }
                () = sleep_until(liveness.dead_at()) => {
                    return Cause::HeartbeatTimeout {
                        silent_ms: liveness.silent_for(Instant::now()).as_millis() as u64,
                    };
                }
                () = sleep_until(probe.map_or_else(far_future, |p| p.deadline)), if probe.is_some() => {
                    if let Some(Probe { trigger, sent_at, .. }) = probe {
                        return Cause::ProbeFailed { trigger, waited_ms: sent_at.elapsed().as_millis() as u64 };
                    }
                }
                () = sleep_until(wire_deadline.unwrap_or_else(far_future)), if wire_deadline.is_some() => {
                    self.wire.on_deadline(Instant::now(), &mut self.wire_out);
                    ended = self.apply_wire_output();
                    if let Some(cause) = self.flush_deliveries().await {
                        return cause;
                    }
                }
                () = sleep_until(hole_deadline.unwrap_or_else(far_future)), if hole_deadline.is_some() => {
                    self.settle_holes(Instant::now());
                    if let Some(cause) = self.flush_deliveries().await {
                        return cause;
                    }
                }
            }
        }
    }

    fn liveness(&self) -> Liveness {
        self.session
            .as_ref()
            .map(|s| s.liveness.clone())
            .unwrap_or_else(|| Liveness::new(self.heartbeat, Instant::now()))
    }

    async fn flush_writes(&mut self, socket: &mut Socket) -> Result<(), Cause> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let writes = std::mem::take(&mut self.writes);
        let limit = self.heartbeat * 2;
        let sending = async {
            for message in writes {
                socket.feed(message).await?;
            }
            socket.flush().await
        };
        match timeout(limit, sending).await {
            Ok(Ok(())) => {
                self.settle_written();
                Ok(())
            }
            Ok(Err(err)) => Err(cause_of_read_error(err)),
            Err(_) => Err(Cause::ConnectionLost {
                detail: format!("a write stalled for {} ms", limit.as_millis()),
            }),
        }
    }

    /// Publishes on a wire without acks are done once written: each is
    /// settled as if acknowledged, with no seq.
    fn settle_written(&mut self) {
        for id in std::mem::take(&mut self.settle_when_written) {
            self.on_ack(id, None);
        }
    }

    fn ping_message(&self, now: Instant) -> Message {
        let micros = now.duration_since(self.clock_origin).as_micros() as u64;
        Message::Ping(micros.to_be_bytes().to_vec().into())
    }

    /// One WebSocket message: control frames here, data to the wire.
    fn on_message(&mut self, message: Message) -> Option<Cause> {
        match message {
            Message::Text(text) => {
                self.wire
                    .on_frame(Frame::Text(text.as_str()), &mut self.wire_out);
                self.apply_wire_output()
            }
            Message::Binary(bytes) => {
                self.wire
                    .on_frame(Frame::Binary(&bytes), &mut self.wire_out);
                self.apply_wire_output()
            }
            Message::Pong(payload) => {
                if let Ok(bytes) = <[u8; 8]>::try_from(payload.as_ref()) {
                    let sent = Duration::from_micros(u64::from_be_bytes(bytes));
                    let now = Instant::now().duration_since(self.clock_origin);
                    if let Some(rtt) = now.checked_sub(sent) {
                        self.rtt = Some(rtt);
                    }
                }
                None
            }
            // tungstenite queues the Pong itself and writes it on the next read.
            Message::Ping(_) => None,
            Message::Close(frame) => Some(match frame {
                Some(frame) => Cause::Closed {
                    code: u16::from(frame.code),
                    reason: frame.reason.as_str().to_owned(),
                },
                None => Cause::Closed {
                    code: 1005,
                    reason: "close frame without a code".into(),
                },
            }),
            Message::Frame(_) => None,
        }
    }

    /// Hands this turn's deliveries to the consumer as one batch; waits
    /// while the consumer is behind (which slows reading the socket).
    pub(super) async fn flush_deliveries(&mut self) -> Option<Cause> {
        if self.outgoing.is_empty() {
            return None;
        }
        let batch = std::mem::take(&mut self.outgoing);
        if self.deliveries.send(batch).await.is_err() {
            // Nobody reads deliveries any more: running on would only lose them.
            self.phase = Phase::Exit;
            return Some(Cause::Shutdown);
        }
        None
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

async fn close_socket(socket: &mut Socket, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: reason.into(),
    };
    let closing = async {
        socket.close(Some(frame)).await?;
        // Read until the server's close reply, so the close is clean.
        while let Some(Ok(_)) = socket.next().await {}
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    };
    let _ = timeout(Duration::from_secs(1), closing).await;
}

fn cause_of_read_error(err: tokio_tungstenite::tungstenite::Error) -> Cause {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match err {
        WsError::ConnectionClosed | WsError::AlreadyClosed => Cause::ConnectionLost {
            detail: "connection closed".into(),
        },
        WsError::Io(e) => Cause::ConnectionLost {
            detail: e.to_string(),
        },
        // The TCP stream ended with no close frame: 1006, not a protocol fault.
        WsError::Protocol(
            tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => Cause::ConnectionLost {
            detail: "the peer closed the TCP connection without a close frame".into(),
        },
        WsError::Capacity(e) => Cause::Protocol {
            detail: format!("frame over our limit: {e}"),
        },
        other => Cause::Protocol {
            detail: other.to_string(),
        },
    }
}
