//! The CLI's output formats. stdout (or the `--output` file) carries one
//! JSON object per line, written whole per line (other programs parse it);
//! stderr is for people.

use std::io::{self, Write};
use std::sync::Arc;

use holdline_decode::{DecodedEvent, Decoder};
use holdline_engine::{Delivery, EngineEvent, Level, RawFrame};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::ledger::OutputLedger;

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line<'a> {
    Event {
        feed: &'a str,
        seq: Option<u64>,
        epoch: Option<&'a str>,
        data: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        meta: Option<&'a RawValue>,
    },
    Gap {
        feed: &'a str,
        from: u64,
        to: u64,
        /// Only on gaps the client inferred (`"inferred": true`).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        inferred: bool,
    },
    Reset {
        feed: &'a str,
        epoch: &'a str,
    },
    Discontinuity {
        feed: &'a str,
        reason: &'static str,
    },
    Raw {
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        hex: Option<String>,
        /// With `--decode`: the binary frame read as JSON, or why not.
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<serde_json::Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        decoded: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        decode_error: Option<String>,
    },
    Ack {
        feed: &'a str,
        seq: Option<u64>,
        id: &'a str,
    },
}

enum Sink {
    Stdout(io::StdoutLock<'static>),
    Ledger(Arc<OutputLedger>),
}

pub struct Output {
    sink: Sink,
    buffer: Vec<u8>,
    decoder: Option<Decoder>,
}

impl Output {
    pub fn stdout() -> Self {
        Output {
            sink: Sink::Stdout(io::stdout().lock()),
            buffer: Vec::with_capacity(512),
            decoder: None,
        }
    }

    pub fn ledger(ledger: Arc<OutputLedger>) -> Self {
        Output {
            sink: Sink::Ledger(ledger),
            buffer: Vec::with_capacity(512),
            decoder: None,
        }
    }

    /// Binary payloads of events are written decoded by `decoder`.
    pub fn decoding(mut self, decoder: Option<Decoder>) -> Self {
        self.decoder = decoder;
        self
    }

    fn write_line(&mut self, line: &Line<'_>) -> io::Result<()> {
        self.buffer.clear();
        serde_json::to_writer(&mut self.buffer, line)?;
        self.buffer.push(b'\n');
        match &mut self.sink {
            Sink::Stdout(out) => {
                out.write_all(&self.buffer)?;
                out.flush()
            }
            Sink::Ledger(ledger) => ledger.append_line(&self.buffer),
        }
    }

    pub fn write_delivery(&mut self, delivery: &Delivery) -> io::Result<()> {
        let hex;
        let decoded;
        let line = match delivery {
            Delivery::Event(e) => {
                decoded = self.decoder.as_ref().and_then(|decoder| {
                    holdline_decode::decode_event(decoder, &e.data, e.meta.as_deref())
                });
                match &decoded {
                    Some(DecodedEvent { data, meta }) => Line::Event {
                        feed: &e.feed,
                        seq: e.seq,
                        epoch: e.epoch.as_deref(),
                        data: data.as_deref().unwrap_or(&e.data),
                        meta: Some(meta),
                    },
                    None => Line::Event {
                        feed: &e.feed,
                        seq: e.seq,
                        epoch: e.epoch.as_deref(),
                        data: &e.data,
                        meta: e.meta.as_deref(),
                    },
                }
            }
            Delivery::Gap {
                feed,
                from,
                to,
                inferred,
                ..
            } => Line::Gap {
                feed,
                from: *from,
                to: *to,
                inferred: *inferred,
            },
            Delivery::Reset { feed, epoch } => Line::Reset { feed, epoch },
            Delivery::Discontinuity { feed, reason } => Line::Discontinuity {
                feed,
                reason: reason.as_str(),
            },
            Delivery::Raw(RawFrame::Text(text)) => Line::Raw {
                text: Some(text),
                hex: None,
                data: None,
                decoded: None,
                decode_error: None,
            },
            Delivery::Raw(RawFrame::Binary(bytes)) => {
                hex = bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
                let outcome = self.decoder.as_ref().map(|d| d.decode_naming(bytes));
                let (data, decoded, decode_error) = match outcome {
                    Some(Ok((value, format))) => (Some(value), Some(format), None),
                    Some(Err(err)) => (None, None, Some(err.to_string())),
                    None => (None, None, None),
                };
                Line::Raw {
                    text: None,
                    hex: Some(hex),
                    data,
                    decoded,
                    decode_error,
                }
            }
        };
        self.write_line(&line)
    }

    pub fn write_ack(&mut self, feed: &str, seq: Option<u64>, id: &str) -> io::Result<()> {
        self.write_line(&Line::Ack { feed, seq, id })
    }
}

/// One readable stderr line per state change and history entry.
pub fn describe_event(event: &EngineEvent) {
    match event {
        EngineEvent::State(state) => {
            eprintln!("holdline: state {}", state.name());
        }
        EngineEvent::History(entry) if entry.level >= Level::Info => {
            let level = match entry.level {
                Level::Debug => "debug",
                Level::Info => "info",
                Level::Warn => "warn",
                Level::Error => "error",
            };
            let kind = serde_json::to_value(entry.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            eprintln!("holdline: {level} {kind}: {}", entry.message);
        }
        _ => {}
    }
}
