//! Screenshots of every view, light and dark, from the real app on its
//! Local demo, into docs/screenshots/. Not part of the suite; run with
//!
//!   dbus-run-session -- cargo test -p holdline-e2e --test screenshots -- --ignored

use std::path::Path;

use holdline_e2e::{DrivenApp, missing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/screenshots; run by hand"]
async fn screenshots_of_every_view_light_and_dark() {
    if let Some(what) = missing() {
        panic!("cannot take screenshots: missing {what}");
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&out).unwrap();
    let home = tempfile::tempdir().unwrap();
    let app = DrivenApp::launch(home.path(), &[]).await;
    app.text_until("[data-testid=state]", "open", |t| t == "open")
        .await;
    app.at_least("[data-testid=event-row]", 40).await;
    // Publish one message so the publish view has something to show.
    app.click("[data-testid=tab-publish]").await;
    app.type_into("#publish-feed", "demo.chat").await;
    app.click("#publish-submit").await;
    app.css(".publish[data-status=acked]").await;
    app.type_into("[data-testid=saved-name]", "hello").await;
    app.click("[data-testid=saved-save]").await;
    app.css("[data-testid=saved-row]").await;

    for theme in ["light", "dark"] {
        // The toggle cycles system → light → dark.
        app.click("[data-testid=theme-toggle]").await;
        app.text_until("[data-testid=theme-toggle]", theme, |t| t.ends_with(theme))
            .await;
        for view in ["live", "record", "publish", "log", "settings"] {
            app.click(&format!("[data-testid=tab-{view}]")).await;
            if view == "log" {
                app.at_least("[data-testid=log-row]", 3).await;
            }
            if view == "live" {
                app.at_least("[data-testid=event-row]", 40).await;
            }
            if view == "record" {
                app.at_least("[data-testid=record-row]", 20).await;
            }
            let png = app.client.screenshot().await.unwrap();
            std::fs::write(out.join(format!("{view}-{theme}.png")), png).unwrap();
        }
    }
    // The server editor signing in with OpenID Connect.
    app.click("[data-testid=tab-live]").await;
    app.click("[data-testid=server-add]").await;
    app.type_into("[data-testid=server-url]", "wss://feeds.example.com/ws")
        .await;
    app.click("[data-testid=server-login-method] option[value=device]")
        .await;
    app.type_into(
        "[data-testid=server-oidc-issuer]",
        "https://login.example.com",
    )
    .await;
    app.type_into("[data-testid=server-oidc-client]", "holdline")
        .await;
    let png = app.client.screenshot().await.unwrap();
    std::fs::write(out.join("login-oidc-dark.png"), png).unwrap();
    let _ = app.client.clone().close().await;
}
