//! Diagnostics to a daily-rotated file in the platform log directory.

use std::path::Path;

use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, filter::filter_fn};

/// Installs the file logger; the guard must live as long as the app.
pub fn init(dir: &Path) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    std::fs::create_dir_all(dir).ok()?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("holdline")
        .filename_suffix("log")
        .max_log_files(7)
        .build(dir)
        .ok()?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_filter(filter_fn(|metadata| {
            !holdline_engine::logging::carries_secrets(metadata)
        }));
    tracing_subscriber::registry().with(layer).try_init().ok()?;
    Some(guard)
}
