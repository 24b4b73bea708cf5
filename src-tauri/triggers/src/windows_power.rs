//! Windows sleep and wake: the suspend/resume notification (which also
//! covers modern standby) and the console display state, both delivered to
//! a callback, so no window is needed. Only compile-checked on Linux
//! (`scripts/cross-check`); the decisions are `power_notifications`',
//! tested everywhere.

use std::ffi::c_void;

use tokio::sync::mpsc;
use windows::Win32::Foundation::{ERROR_SUCCESS, HANDLE, WIN32_ERROR};
use windows::Win32::System::Power::{
    DEVICE_NOTIFY_SUBSCRIBE_PARAMETERS, HPOWERNOTIFY, POWERBROADCAST_SETTING,
    PowerRegisterSuspendResumeNotification, PowerSettingRegisterNotification,
    PowerSettingUnregisterNotification, PowerUnregisterSuspendResumeNotification,
};
use windows::Win32::System::SystemServices::GUID_CONSOLE_DISPLAY_STATE;
use windows::Win32::UI::WindowsAndMessaging::{
    DEVICE_NOTIFY_CALLBACK, PBT_APMRESUMEAUTOMATIC, PBT_APMRESUMESUSPEND, PBT_APMSUSPEND,
    PBT_POWERSETTINGCHANGE,
};

use crate::SystemTrigger;
use crate::power_notifications::{PowerHook, PowerSetting, from_windows, windows_codes};

// The tested decisions use their own copy of the codes; they must be these.
const _: () = {
    assert!(windows_codes::PBT_APMSUSPEND == PBT_APMSUSPEND);
    assert!(windows_codes::PBT_APMRESUMESUSPEND == PBT_APMRESUMESUSPEND);
    assert!(windows_codes::PBT_APMRESUMEAUTOMATIC == PBT_APMRESUMEAUTOMATIC);
    assert!(windows_codes::PBT_POWERSETTINGCHANGE == PBT_POWERSETTINGCHANGE);
    assert!(windows_codes::GUID_CONSOLE_DISPLAY_STATE == GUID_CONSOLE_DISPLAY_STATE.to_u128());
};

#[derive(Debug, thiserror::Error)]
#[error("{call} failed with Windows error {code}")]
pub struct RegisterError {
    call: &'static str,
    code: u32,
}

/// The hook and the parameters Windows holds a pointer to; boxed so both
/// keep their address while registered.
struct Subscription {
    hook: PowerHook,
    parameters: DEVICE_NOTIFY_SUBSCRIBE_PARAMETERS,
}

/// Registered notifications; dropping it unregisters them before the hook
/// they call is freed.
pub struct Registration {
    #[allow(dead_code, reason = "Windows calls into it until Drop unregisters")]
    subscription: Box<Subscription>,
    suspend_resume: Option<HPOWERNOTIFY>,
    display: Option<HPOWERNOTIFY>,
}

// SAFETY: the registration handles are plain values, the parameters only
// point into the same box, and the hook the OS calls is `Sync`.
unsafe impl Send for Registration {}

pub fn watch(triggers: mpsc::Sender<SystemTrigger>) -> Result<Registration, RegisterError> {
    let mut subscription = Box::new(Subscription {
        hook: PowerHook::new("Windows power", triggers),
        parameters: DEVICE_NOTIFY_SUBSCRIBE_PARAMETERS::default(),
    });
    subscription.parameters = DEVICE_NOTIFY_SUBSCRIBE_PARAMETERS {
        Callback: Some(on_power),
        Context: &subscription.hook as *const PowerHook as *mut c_void,
    };
    let recipient = HANDLE(&subscription.parameters as *const _ as *mut c_void);
    let mut registration = Registration {
        subscription,
        suspend_resume: None,
        display: None,
    };
    let mut handle: *mut c_void = std::ptr::null_mut();
    // SAFETY: `recipient` points to parameters that stay put until
    // `Registration` unregisters.
    let status = unsafe {
        PowerRegisterSuspendResumeNotification(DEVICE_NOTIFY_CALLBACK, recipient, &mut handle)
    };
    check("PowerRegisterSuspendResumeNotification", status)?;
    registration.suspend_resume = Some(HPOWERNOTIFY(handle as isize));
    let mut handle: *mut c_void = std::ptr::null_mut();
    // SAFETY: as above.
    let status = unsafe {
        PowerSettingRegisterNotification(
            &GUID_CONSOLE_DISPLAY_STATE,
            DEVICE_NOTIFY_CALLBACK,
            recipient,
            &mut handle,
        )
    };
    check("PowerSettingRegisterNotification", status)?;
    registration.display = Some(HPOWERNOTIFY(handle as isize));
    Ok(registration)
}

fn check(call: &'static str, status: WIN32_ERROR) -> Result<(), RegisterError> {
    if status == ERROR_SUCCESS {
        Ok(())
    } else {
        Err(RegisterError {
            call,
            code: status.0,
        })
    }
}

unsafe extern "system" fn on_power(
    context: *const c_void,
    kind: u32,
    setting: *const c_void,
) -> u32 {
    // SAFETY: `context` is the hook inside a `Subscription`, which outlives
    // its registrations.
    let hook = unsafe { &*(context as *const PowerHook) };
    let setting = (kind == PBT_POWERSETTINGCHANGE && !setting.is_null()).then(|| {
        // SAFETY: with PBT_POWERSETTINGCHANGE Windows passes a
        // POWERBROADCAST_SETTING followed by `DataLength` bytes of data.
        unsafe {
            let setting = &*(setting as *const POWERBROADCAST_SETTING);
            PowerSetting {
                guid: setting.PowerSetting.to_u128(),
                data: std::slice::from_raw_parts(
                    setting.Data.as_ptr(),
                    setting.DataLength as usize,
                ),
            }
        }
    });
    if let Some(notification) = from_windows(kind, setting) {
        hook.notify(notification);
    }
    ERROR_SUCCESS.0
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: each handle came from its own registration call and is
        // unregistered once, before `subscription` is freed.
        unsafe {
            if let Some(handle) = self.display.take() {
                let _ = PowerSettingUnregisterNotification(handle);
            }
            if let Some(handle) = self.suspend_resume.take() {
                let _ = PowerUnregisterSuspendResumeNotification(handle);
            }
        }
    }
}
