fn main() {
    // Listing the app's commands makes Tauri generate one permission per
    // command, so the capability in tauri.conf.json grants exactly these.
    let commands: &[&str] = &[
        "servers_list",
        "server_save",
        "server_remove",
        "login",
        "logout",
        "connect",
        "disconnect",
        "reconnect_now",
        "subscribe",
        "unsubscribe",
        "publish",
        "snapshot",
        "events_attach",
        "history_query",
        "history_export",
        "settings_get",
        "settings_save",
    ];
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(commands));
    if let Err(err) = tauri_build::try_build(attributes) {
        panic!("tauri build failed: {err:#}");
    }
}
