//! What tells the engine to look at its connection again: the system woke
//! up, or the network changed. Each source sends [`SystemTrigger`]s on a
//! channel; the app forwards them to every engine and records them.
//!
//! Sources: the OS's own sleep and wake notifications (logind's
//! `PrepareForSleep` on Linux over D-Bus, `NSWorkspace` on macOS, the
//! suspend/resume and display-state callbacks on Windows); a portable
//! clock-jump detector (the wall clock racing ahead of the monotonic clock,
//! which stops during suspend), kept everywhere as the fallback; interface
//! address changes from the OS (`if-watch`).

pub mod clock_jump;
#[cfg(target_os = "linux")]
pub mod logind;
#[cfg(target_os = "macos")]
pub mod macos_power;
pub mod network;
pub mod power_notifications;
#[cfg(windows)]
pub mod windows_power;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SystemTrigger {
    /// The system is about to sleep (logind only); nothing to do but note it.
    Sleeping { source: String },
    /// The system woke up.
    Wake { source: String, detail: String },
    /// An interface address came or went.
    NetworkChange { detail: String },
}
