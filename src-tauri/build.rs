include!("command_list.rs");

macro_rules! names {
    ($($name:ident),*) => {
        &[$(stringify!($name)),*]
    };
}

fn main() {
    // Listing the app's commands makes Tauri generate one permission per
    // command, so the capability in tauri.conf.json grants exactly these.
    let commands: &[&str] = with_commands!(names);
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(commands));
    if let Err(err) = tauri_build::try_build(attributes) {
        panic!("tauri build failed: {err:#}");
    }
}
