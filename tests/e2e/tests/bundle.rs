//! The Linux bundle as a user gets it: `target/debug/bundle/deb/*.deb` (built
//! by `npx tauri build --debug --bundles deb,rpm`, which `scripts/test`
//! runs) has complete metadata, and its installed binary (unpacked into a
//! scratch root with `dpkg -x`) starts under Xvfb to its window and shows
//! the Local demo live.
//!
//! Without a bundle the test says so and passes, unless
//! HOLDLINE_REQUIRE_BUNDLE=1 (CI).
#![cfg(target_os = "linux")]

use std::path::PathBuf;
use std::process::Command;

use holdline_e2e::{DrivenApp, files_under, missing, target_dir};

fn bundles(kind: &str, extension: &str) -> Vec<PathBuf> {
    files_under(&target_dir().join("debug/bundle").join(kind))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect()
}

fn output(command: &mut Command) -> String {
    let out = command.output().expect("the tool runs");
    assert!(out.status.success(), "{command:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deb_installs_into_a_scratch_root_and_its_binary_starts_to_its_window() {
    let debs = bundles("deb", "deb");
    let required = std::env::var_os("HOLDLINE_REQUIRE_BUNDLE").is_some();
    if debs.is_empty() || missing().is_some() {
        let what = missing().unwrap_or_else(|| "a .deb (npx tauri build --debug)".into());
        assert!(!required, "bundle test cannot run: missing {what}");
        eprintln!("skipping the bundle test: missing {what}");
        return;
    }
    assert_eq!(debs.len(), 1, "one .deb expected: {debs:?}");
    let deb = &debs[0];
    assert!(
        !bundles("rpm", "rpm").is_empty(),
        "the .rpm is built beside the .deb"
    );

    // Metadata a package manager shows.
    let fields = output(Command::new("dpkg-deb").arg("-f").arg(deb).args([
        "Package",
        "Version",
        "Architecture",
        "Depends",
        "Section",
        "Maintainer",
        "Description",
    ]));
    for expected in [
        "Package: holdline",
        "Version: 0.1.0",
        "Depends:",
        "libwebkit2gtk-4.1-0",
        "libgtk-3-0",
        // The tray icon's library on Linux.
        "libayatana-appindicator3-1",
        "Section: net",
        "Maintainer: Holdline developers",
        "exactly once",
    ] {
        assert!(fields.contains(expected), "{expected:?} not in:\n{fields}");
    }
    let depends = fields
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .unwrap_or_default();
    let mut each: Vec<&str> = depends.split(", ").collect();
    let listed = each.len();
    each.sort_unstable();
    each.dedup();
    assert_eq!(each.len(), listed, "a dependency listed twice: {depends}");

    // Installed into a scratch root: binary, desktop entry, icons.
    let root = tempfile::tempdir().unwrap();
    output(Command::new("dpkg").arg("-x").arg(deb).arg(root.path()));
    let binary = root.path().join("usr/bin/holdline");
    assert!(binary.is_file(), "no usr/bin/holdline in the .deb");
    let entries: Vec<_> = files_under(&root.path().join("usr/share/applications"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = std::fs::read_to_string(&entries[0]).unwrap();
    for line in [
        "Name=Holdline",
        "Exec=holdline",
        "Categories=Utility",
        "Icon=holdline",
    ] {
        assert!(
            entry.contains(line),
            "{line:?} not in the desktop entry:\n{entry}"
        );
    }
    let icons = files_under(&root.path().join("usr/share/icons/hicolor"));
    assert!(
        icons.iter().any(|p| p.ends_with("apps/holdline.png")),
        "{icons:?}"
    );

    // The installed binary starts to its window and runs the Local demo.
    let home = tempfile::tempdir().unwrap();
    let app = DrivenApp::launch_binary(&binary, home.path(), &[]).await;
    assert_eq!(app.client.title().await.unwrap(), "Holdline");
    app.text_until("[data-testid=state]", "the Local demo to open", |t| {
        t == "open"
    })
    .await;
    app.css("[data-testid=event-row]").await;
    let _ = app.client.clone().close().await;
}
