//! macOS sleep and wake: `NSWorkspace`'s will-sleep and did-wake
//! notifications. Only compile-checked on Linux (`scripts/cross-check`); the
//! decisions are `power_notifications`', tested everywhere.

use std::ptr::NonNull;
use std::sync::Arc;

use block2::RcBlock;
use objc2_app_kit::{
    NSWorkspace, NSWorkspaceDidWakeNotification, NSWorkspaceWillSleepNotification,
};
use objc2_foundation::{NSNotification, NSNotificationName};
use tokio::sync::mpsc;

use crate::SystemTrigger;
use crate::power_notifications::{PowerHook, WorkspaceNotification, from_macos};

/// Observes the workspace's notifications for the rest of the process's
/// life: the notification center keeps each observer (and the block that
/// holds the hook) until it is removed, and the app never stops watching.
pub fn watch(triggers: mpsc::Sender<SystemTrigger>) {
    let hook = Arc::new(PowerHook::new("NSWorkspace", triggers));
    let center = NSWorkspace::sharedWorkspace().notificationCenter();
    // SAFETY: the names are AppKit's constant strings, valid for the
    // process's life.
    let names: [(&NSNotificationName, WorkspaceNotification); 2] = unsafe {
        [
            (
                NSWorkspaceWillSleepNotification,
                WorkspaceNotification::WillSleep,
            ),
            (
                NSWorkspaceDidWakeNotification,
                WorkspaceNotification::DidWake,
            ),
        ]
    };
    for (name, notification) in names {
        let hook = hook.clone();
        let block = RcBlock::new(move |_: NonNull<NSNotification>| {
            hook.notify(from_macos(notification));
        });
        // SAFETY: no object filter and no queue (the block runs on the
        // posting thread, which `PowerHook::notify` allows: it never
        // blocks); the block is `Send` in all it captures.
        let _observer = unsafe {
            center.addObserverForName_object_queue_usingBlock(Some(name), None, None, &block)
        };
    }
}
