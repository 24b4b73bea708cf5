//! What the operating system's own power notifications turn into: the
//! decisions behind the macOS and Windows wake hooks, as plain code that
//! runs (and is tested) everywhere. The bindings in `macos_power` and
//! `windows_power` only translate the OS's callback into a
//! [`PowerNotification`] and hand it to a [`PowerHook`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::SystemTrigger;

/// A power notification, in the words every platform shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerNotification {
    /// The system is about to sleep.
    WillSleep,
    /// The system is running again after a sleep. Windows says so twice for
    /// one wake (resumed automatically, then again once a user is present).
    Resumed,
    /// The display went dark. Under Windows' modern standby the machine can
    /// stay "awake" with its display off while the network is cut.
    DisplayOff,
    /// The display is lit again.
    DisplayOn,
}

/// Windows' power broadcast codes, as `WM_POWERBROADCAST` and the
/// suspend/resume and power-setting callbacks carry them. Kept here so the
/// decision is tested on every OS; the Windows binding asserts at compile
/// time that they equal the `windows` crate's.
pub mod windows_codes {
    pub const PBT_APMSUSPEND: u32 = 0x0004;
    pub const PBT_APMRESUMESUSPEND: u32 = 0x0007;
    pub const PBT_APMRESUMEAUTOMATIC: u32 = 0x0012;
    pub const PBT_POWERSETTINGCHANGE: u32 = 0x8013;
    /// `GUID_CONSOLE_DISPLAY_STATE`: its data is a `u32`, 0 off, 1 on,
    /// 2 dimmed.
    pub const GUID_CONSOLE_DISPLAY_STATE: u128 = 0x6fe69556_704a_47a0_8f24_c28d936fda47;
}

/// A power setting's new value, as `POWERBROADCAST_SETTING` delivers it.
#[derive(Debug, Clone, Copy)]
pub struct PowerSetting<'a> {
    pub guid: u128,
    pub data: &'a [u8],
}

/// What a Windows power callback means, or `None` for what does not concern
/// a connection (battery, power plans, a dimmed display).
pub fn from_windows(kind: u32, setting: Option<PowerSetting<'_>>) -> Option<PowerNotification> {
    use windows_codes::*;
    match kind {
        PBT_APMSUSPEND => Some(PowerNotification::WillSleep),
        PBT_APMRESUMEAUTOMATIC | PBT_APMRESUMESUSPEND => Some(PowerNotification::Resumed),
        PBT_POWERSETTINGCHANGE => {
            let setting = setting?;
            if setting.guid != GUID_CONSOLE_DISPLAY_STATE {
                return None;
            }
            let state = u32::from_le_bytes(setting.data.get(..4)?.try_into().ok()?);
            match state {
                0 => Some(PowerNotification::DisplayOff),
                1 => Some(PowerNotification::DisplayOn),
                _ => None,
            }
        }
        _ => None,
    }
}

/// macOS's `NSWorkspace` notifications the hook observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceNotification {
    WillSleep,
    DidWake,
}

pub fn from_macos(notification: WorkspaceNotification) -> PowerNotification {
    match notification {
        WorkspaceNotification::WillSleep => PowerNotification::WillSleep,
        WorkspaceNotification::DidWake => PowerNotification::Resumed,
    }
}

/// Turns a platform's stream of power notifications into triggers: one
/// `Wake` per wake however many notifications announce it, and a `Wake`
/// for a display that stayed dark long enough for a modern-standby machine
/// to have lost its network.
#[derive(Debug)]
pub struct SleepWakeDecider {
    source: &'static str,
    /// Notifications this close after a wake belong to that wake.
    same_wake: Duration,
    /// A dark display counts as having been away only after this long.
    display_away: Duration,
    asleep: bool,
    last_wake: Option<Instant>,
    display_off_since: Option<Instant>,
}

impl SleepWakeDecider {
    pub fn new(source: &'static str, same_wake: Duration, display_away: Duration) -> Self {
        SleepWakeDecider {
            source,
            same_wake,
            display_away,
            asleep: false,
            last_wake: None,
            display_off_since: None,
        }
    }

    pub fn decide(
        &mut self,
        notification: PowerNotification,
        now: Instant,
    ) -> Option<SystemTrigger> {
        match notification {
            PowerNotification::WillSleep => {
                if std::mem::replace(&mut self.asleep, true) {
                    return None;
                }
                Some(SystemTrigger::Sleeping {
                    source: self.source.into(),
                })
            }
            PowerNotification::Resumed => {
                let detail = if std::mem::replace(&mut self.asleep, false) {
                    "the system resumed from sleep"
                } else if self.woke_within(now) {
                    return None;
                } else {
                    "the system resumed (its going to sleep was not seen)"
                };
                self.wake(now, detail.into())
            }
            PowerNotification::DisplayOff => {
                self.display_off_since.get_or_insert(now);
                None
            }
            PowerNotification::DisplayOn => {
                let off_since = self.display_off_since.take()?;
                let dark_for = now.saturating_duration_since(off_since);
                if self.asleep || dark_for < self.display_away || self.woke_within(now) {
                    return None;
                }
                self.wake(
                    now,
                    format!(
                        "the display was off for {}s; the network may have been cut meanwhile",
                        dark_for.as_secs()
                    ),
                )
            }
        }
    }

    fn woke_within(&self, now: Instant) -> bool {
        self.last_wake
            .is_some_and(|wake| now.saturating_duration_since(wake) < self.same_wake)
    }

    fn wake(&mut self, now: Instant, detail: String) -> Option<SystemTrigger> {
        self.last_wake = Some(now);
        Some(SystemTrigger::Wake {
            source: self.source.into(),
            detail,
        })
    }
}

/// The shared end of an OS binding: the OS calls `notify` from whatever
/// thread it delivers on, and the decided triggers go to the app's channel.
#[derive(Debug)]
pub struct PowerHook {
    decider: Mutex<SleepWakeDecider>,
    triggers: mpsc::Sender<SystemTrigger>,
}

impl PowerHook {
    /// Windows can announce one wake three ways within a few seconds; a
    /// display dark for a couple of minutes is long enough for Wi-Fi to
    /// have been powered down.
    pub fn new(source: &'static str, triggers: mpsc::Sender<SystemTrigger>) -> Self {
        Self::with_decider(
            SleepWakeDecider::new(source, Duration::from_secs(30), Duration::from_secs(120)),
            triggers,
        )
    }

    pub fn with_decider(decider: SleepWakeDecider, triggers: mpsc::Sender<SystemTrigger>) -> Self {
        PowerHook {
            decider: Mutex::new(decider),
            triggers,
        }
    }

    /// Never blocks: the OS's callback thread must not wait on the app. A
    /// trigger that finds the channel full is dropped with a warning; the
    /// clock-jump detector still sees a real sleep.
    pub fn notify(&self, notification: PowerNotification) {
        self.notify_at(notification, Instant::now());
    }

    pub fn notify_at(&self, notification: PowerNotification, now: Instant) {
        let trigger = match self.decider.lock() {
            Ok(mut decider) => decider.decide(notification, now),
            Err(poisoned) => poisoned.into_inner().decide(notification, now),
        };
        let Some(trigger) = trigger else { return };
        if let Err(err) = self.triggers.try_send(trigger) {
            tracing::warn!("a power notification was dropped: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use windows_codes::*;

    fn decider() -> SleepWakeDecider {
        SleepWakeDecider::new("test", Duration::from_secs(30), Duration::from_secs(120))
    }

    fn is_wake(trigger: &Option<SystemTrigger>) -> bool {
        matches!(trigger, Some(SystemTrigger::Wake { .. }))
    }

    fn display(state: u32) -> Option<PowerSetting<'static>> {
        let data: &'static [u8] = Box::leak(Box::new(state.to_le_bytes()));
        Some(PowerSetting {
            guid: GUID_CONSOLE_DISPLAY_STATE,
            data,
        })
    }

    #[test]
    fn sleep_then_resume_is_one_sleeping_and_one_wake() {
        let mut decider = decider();
        let start = Instant::now();
        assert_eq!(
            decider.decide(PowerNotification::WillSleep, start),
            Some(SystemTrigger::Sleeping {
                source: "test".into()
            })
        );
        let wake = decider.decide(
            PowerNotification::Resumed,
            start + Duration::from_secs(3600),
        );
        assert_eq!(
            wake,
            Some(SystemTrigger::Wake {
                source: "test".into(),
                detail: "the system resumed from sleep".into()
            })
        );
    }

    #[test]
    fn the_second_resume_of_one_windows_wake_is_not_another_wake() {
        let mut decider = decider();
        let start = Instant::now();
        decider.decide(PowerNotification::WillSleep, start);
        let automatic =
            from_windows(PBT_APMRESUMEAUTOMATIC, None).map(|n| decider.decide(n, start));
        let by_user = from_windows(PBT_APMRESUMESUSPEND, None)
            .map(|n| decider.decide(n, start + Duration::from_secs(2)));
        assert!(is_wake(&automatic.flatten()));
        assert_eq!(by_user, Some(None));
    }

    #[test]
    fn a_resume_whose_sleep_was_missed_is_still_a_wake_but_says_so() {
        let mut decider = decider();
        let start = Instant::now();
        let Some(SystemTrigger::Wake { detail, .. }) =
            decider.decide(PowerNotification::Resumed, start)
        else {
            panic!("a resume is a wake");
        };
        assert!(detail.contains("not seen"), "{detail}");
        // A later, separate wake counts again.
        assert!(is_wake(&decider.decide(
            PowerNotification::Resumed,
            start + Duration::from_secs(600)
        )));
    }

    #[test]
    fn a_second_will_sleep_is_not_announced_twice() {
        let mut decider = decider();
        let start = Instant::now();
        assert!(
            decider
                .decide(PowerNotification::WillSleep, start)
                .is_some()
        );
        assert_eq!(decider.decide(PowerNotification::WillSleep, start), None);
    }

    #[test]
    fn a_display_dark_long_enough_is_a_wake_when_it_lights_again() {
        let mut decider = decider();
        let start = Instant::now();
        let off = from_windows(PBT_POWERSETTINGCHANGE, display(0));
        assert_eq!(off, Some(PowerNotification::DisplayOff));
        assert_eq!(decider.decide(PowerNotification::DisplayOff, start), None);
        let on = from_windows(PBT_POWERSETTINGCHANGE, display(1));
        assert_eq!(on, Some(PowerNotification::DisplayOn));
        let Some(SystemTrigger::Wake { detail, .. }) = decider.decide(
            PowerNotification::DisplayOn,
            start + Duration::from_secs(600),
        ) else {
            panic!("a display dark for ten minutes is a wake");
        };
        assert!(detail.contains("600s"), "{detail}");
    }

    #[test]
    fn a_display_dark_briefly_is_not_a_wake() {
        let mut decider = decider();
        let start = Instant::now();
        decider.decide(PowerNotification::DisplayOff, start);
        assert_eq!(
            decider.decide(
                PowerNotification::DisplayOn,
                start + Duration::from_secs(20)
            ),
            None
        );
    }

    #[test]
    fn the_display_lighting_after_a_real_wake_is_part_of_that_wake() {
        let mut decider = decider();
        let start = Instant::now();
        decider.decide(PowerNotification::DisplayOff, start);
        decider.decide(
            PowerNotification::WillSleep,
            start + Duration::from_secs(10),
        );
        let later = start + Duration::from_secs(3600);
        assert!(is_wake(&decider.decide(PowerNotification::Resumed, later)));
        assert_eq!(
            decider.decide(PowerNotification::DisplayOn, later + Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn windows_codes_that_do_not_concern_a_connection_are_ignored() {
        // PBT_APMPOWERSTATUSCHANGE: on battery, off battery.
        assert_eq!(from_windows(0x000A, None), None);
        // A dimmed display, and another power setting entirely.
        assert_eq!(from_windows(PBT_POWERSETTINGCHANGE, display(2)), None);
        let other = PowerSetting {
            guid: 0x02731015_4510_4526_99e6_e5a17ebd1aea,
            data: &[0, 0, 0, 0],
        };
        assert_eq!(from_windows(PBT_POWERSETTINGCHANGE, Some(other)), None);
        // A setting whose data is too short to read.
        let short = PowerSetting {
            guid: GUID_CONSOLE_DISPLAY_STATE,
            data: &[1],
        };
        assert_eq!(from_windows(PBT_POWERSETTINGCHANGE, Some(short)), None);
        assert_eq!(from_windows(PBT_POWERSETTINGCHANGE, None), None);
    }

    #[test]
    fn macos_workspace_notifications_map_to_sleep_and_resume() {
        assert_eq!(
            from_macos(WorkspaceNotification::WillSleep),
            PowerNotification::WillSleep
        );
        assert_eq!(
            from_macos(WorkspaceNotification::DidWake),
            PowerNotification::Resumed
        );
    }

    #[tokio::test]
    async fn the_hook_sends_what_was_decided_and_never_blocks_on_a_full_channel() {
        let (tx, mut rx) = mpsc::channel(1);
        let hook = PowerHook::new("test", tx);
        hook.notify(PowerNotification::WillSleep);
        // The channel is full: this wake is dropped, not waited for.
        hook.notify(PowerNotification::Resumed);
        assert!(matches!(
            rx.recv().await,
            Some(SystemTrigger::Sleeping { .. })
        ));
        assert!(rx.try_recv().is_err());
        hook.notify_at(
            PowerNotification::Resumed,
            Instant::now() + Duration::from_secs(600),
        );
        assert!(matches!(rx.recv().await, Some(SystemTrigger::Wake { .. })));
    }
}
