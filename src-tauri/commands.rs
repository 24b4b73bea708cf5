//! Every command the UI can invoke. Each validates its input and returns
//! data or an `AppError` with a stable `code`.

use std::sync::Arc;

use holdline_engine::profile::Auth;
use holdline_engine::{FeedUrl, PublishAck, Token};
use holdline_login::{Endpoints, LoginMethod, OidcLogin};
use holdline_storage::{
    Database, ExportFormat, HistoryPage, HistoryQuery, RecordPage, RecordUsage, Search, SearchPage,
    SearchQuery, StorageError,
};
use serde_json::value::RawValue;
use tauri::ipc::Channel;
use tauri::{AppHandle, Runtime, State};

use crate::connection::ConnectionInput;
use crate::dto::{
    AppSnapshot, DeviceCodeInfo, ExportResult, OidcInput, Preferences, ServerInfo, ServerInput,
    UiBatch,
};
use crate::error::{AppError, AppResult};
use crate::hub::Hub;
use crate::saved::{self, SavedMessage};

type HubState<'a> = State<'a, Arc<Hub>>;

/// Tokens longer than this are not tokens.
const MAX_TOKEN_BYTES: usize = 8192;
const MAX_PUBLISH_BYTES: usize = 4 << 20;
/// A search answers within one frame at 60 Hz, with where to go on.
const SEARCH_BUDGET: std::time::Duration = std::time::Duration::from_millis(16);

/// The profile text the server editor holds, through the engine's loader.
fn parse_profile(text: &str) -> AppResult<holdline_engine::Profile> {
    Ok(holdline_engine::Profile::parse(text)?)
}

/// Runs a database call off the async threads.
async fn on_database<T: Send + 'static>(
    hub: &Hub,
    work: impl FnOnce(&Database) -> Result<T, StorageError> + Send + 'static,
) -> AppResult<T> {
    let db = hub.db.clone();
    tokio::task::spawn_blocking(move || work(&db))
        .await
        .map_err(|e| AppError::invalid(e.to_string()))?
        .map_err(Into::into)
}

async fn info(hub: &Hub, id: &str) -> AppResult<ServerInfo> {
    hub.server_infos()
        .await
        .into_iter()
        .find(|s| s.entry.id == id)
        .ok_or_else(|| AppError::UnknownServer { id: id.into() })
}

#[tauri::command]
pub async fn servers_list(hub: HubState<'_>) -> AppResult<Vec<ServerInfo>> {
    Ok(hub.server_infos().await)
}

#[tauri::command]
pub async fn server_save(hub: HubState<'_>, server: ServerInput) -> AppResult<ServerInfo> {
    let profile = server.profile.as_deref().map(parse_profile).transpose()?;
    let connection = crate::connection::prepare(&server.connection)?;
    let entry = hub.save_server(server.id, server.name, &server.url, profile, connection)?;
    info(&hub, &entry.id).await
}

#[tauri::command]
pub async fn server_remove(hub: HubState<'_>, id: String) -> AppResult<()> {
    hub.remove_server(&id).await
}

/// Saves the server with its profile (none: `holdline.v1`), keeps the token
/// (keyring when `remember`), makes the server active and connects. A
/// refused profile saves nothing and dials nothing. A profile whose `auth`
/// is `"none"` needs no token.
#[tauri::command]
pub async fn login(
    hub: HubState<'_>,
    url: String,
    token: String,
    remember: bool,
    name: Option<String>,
    profile: Option<String>,
    connection: Option<ConnectionInput>,
) -> AppResult<ServerInfo> {
    let token = token.trim();
    let profile = profile.as_deref().map(parse_profile).transpose()?;
    let connection = crate::connection::prepare(&connection.unwrap_or_default())?;
    let needs_token = profile.as_ref().is_none_or(|p| p.common.auth != Auth::None);
    if token.is_empty() && needs_token {
        return Err(AppError::invalid("the token is empty"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AppError::invalid("the token is longer than 8 KiB"));
    }
    let entry = hub.save_server(None, name, &url, profile, connection)?;
    if !token.is_empty() {
        hub.store_token(&entry, Token::new(token), remember)?;
    }
    hub.activate(&entry.id).await?;
    info(&hub, &entry.id).await
}

/// Saves the server and logs in at an OpenID provider: in the system
/// browser (the redirect comes back to a loopback port of ours), with a
/// device code (shown through `on_code`), or with client credentials. The
/// login is kept in the keyring and refreshed by the engine; the server
/// becomes active and connects.
#[tauri::command]
#[allow(clippy::too_many_arguments)]
pub async fn login_oidc<R: Runtime>(
    app: AppHandle<R>,
    hub: HubState<'_>,
    url: String,
    name: Option<String>,
    profile: Option<String>,
    connection: Option<ConnectionInput>,
    oidc: OidcInput,
    on_code: Channel<DeviceCodeInfo>,
) -> AppResult<ServerInfo> {
    let profile = profile.as_deref().map(parse_profile).transpose()?;
    let connection = crate::connection::prepare(&connection.unwrap_or_default())?;
    let issuer = oidc.issuer.trim().to_owned();
    let client_id = oidc.client_id.trim().to_owned();
    if issuer.is_empty() || client_id.is_empty() {
        return Err(AppError::invalid(
            "the issuer and the client id are both needed",
        ));
    }
    let secret = oidc.client_secret.unwrap_or_default().trim().to_owned();
    if oidc.method == LoginMethod::ClientCredentials && secret.is_empty() {
        return Err(AppError::invalid(
            "client credentials need the client secret",
        ));
    }
    // The URL is judged before anyone is sent to a browser.
    FeedUrl::parse(&url)?;
    let login = OidcLogin {
        issuer,
        client_id,
        scope: oidc
            .scope
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()),
        method: oidc.method,
    };
    let http = holdline_login::http_client()?;
    let endpoints = Endpoints::discover(&http, &login.issuer).await?;
    let grant = match oidc.method {
        LoginMethod::ClientCredentials => {
            holdline_login::client_credentials_login(&http, &endpoints, login, secret).await?
        }
        LoginMethod::Device => {
            holdline_login::device_login(&http, &endpoints, login, |code| {
                let _ = on_code.send(DeviceCodeInfo {
                    verification_uri: code.verification_uri.clone(),
                    verification_uri_complete: code.verification_uri_complete.clone(),
                    user_code: code.user_code.clone(),
                    expires_in_s: code.expires_in.as_secs(),
                });
            })
            .await?
        }
        LoginMethod::Browser => {
            let grant = holdline_login::browser_login(&http, &endpoints, login, |address| {
                if let Err(err) = webbrowser::open(address.as_str()) {
                    tracing::warn!(%err, "the system browser could not be opened");
                }
            })
            .await?;
            // The person is in the browser: the app comes back in front of it.
            crate::tray::bring_to_front(&app);
            grant
        }
    };
    let entry = hub.save_server(None, name, &url, profile, connection)?;
    hub.store_login(&entry, &grant)?;
    hub.activate(&entry.id).await?;
    info(&hub, &entry.id).await
}

#[tauri::command]
pub async fn logout(hub: HubState<'_>, id: String) -> AppResult<()> {
    let entry = hub.server(&id)?;
    if hub.active_id().await.as_deref() == Some(id.as_str()) {
        hub.deactivate().await?;
    }
    hub.forget_token(&entry)
}

#[tauri::command]
pub async fn connect(hub: HubState<'_>, id: Option<String>) -> AppResult<()> {
    let id = match id {
        Some(id) => id,
        None => hub.active_id().await.ok_or(AppError::NoActiveServer)?,
    };
    hub.activate(&id).await.map(|_| ())
}

#[tauri::command]
pub async fn disconnect(hub: HubState<'_>) -> AppResult<()> {
    hub.deactivate().await
}

#[tauri::command]
pub async fn reconnect_now(hub: HubState<'_>) -> AppResult<()> {
    hub.reconnect_now().await
}

#[tauri::command]
pub async fn subscribe(hub: HubState<'_>, feed: String, from_start: Option<bool>) -> AppResult<()> {
    hub.subscribe(&feed, from_start.unwrap_or(false)).await
}

#[tauri::command]
pub async fn unsubscribe(hub: HubState<'_>, feed: String) -> AppResult<()> {
    hub.unsubscribe(&feed).await
}

/// Queues a publish and resolves with its ack. Bad JSON, a bad feed or id,
/// and a full outbox are refused at once.
#[tauri::command]
pub async fn publish(
    hub: HubState<'_>,
    feed: String,
    data: String,
    id: Option<String>,
) -> AppResult<PublishAck> {
    if data.len() > MAX_PUBLISH_BYTES {
        return Err(AppError::invalid("the message is larger than 4 MiB"));
    }
    let data: Box<RawValue> = serde_json::from_str(&data)
        .map_err(|e| AppError::invalid(format!("the message is not valid JSON: {e}")))?;
    let engine = hub.engine().await?;
    let pending = engine.publish(&feed, data, id).await?;
    Ok(pending.await?)
}

/// Chooses how a feed's binary payloads are shown: `auto`, `msgpack`,
/// `cbor`, `protobuf:FILE:MESSAGE` or `none`; no decoder: detected.
#[tauri::command]
pub async fn feed_decoder_set(
    hub: HubState<'_>,
    feed: String,
    decoder: Option<String>,
) -> AppResult<std::collections::BTreeMap<String, String>> {
    holdline_engine::validate_feed_name(&feed).map_err(|e| AppError::invalid(e.to_string()))?;
    hub.set_decoder(&feed, decoder.as_deref()).await
}

/// The active server's saved messages, in their order.
#[tauri::command]
pub async fn saved_list(hub: HubState<'_>) -> AppResult<Vec<SavedMessage>> {
    hub.saved_messages().await
}

/// Saves a message (replacing one of the same name) after checking it
/// could be sent.
#[tauri::command]
pub async fn saved_save(hub: HubState<'_>, message: SavedMessage) -> AppResult<Vec<SavedMessage>> {
    let message = message.checked()?;
    let list = hub.saved_messages().await?;
    hub.set_saved_messages(saved::with(list, message)).await
}

#[tauri::command]
pub async fn saved_remove(hub: HubState<'_>, name: String) -> AppResult<Vec<SavedMessage>> {
    let mut list = hub.saved_messages().await?;
    list.retain(|m| m.name != name);
    hub.set_saved_messages(list).await
}

/// Publishes a saved message with a fresh id and resolves with its ack.
#[tauri::command]
pub async fn saved_send(hub: HubState<'_>, name: String) -> AppResult<PublishAck> {
    let list = hub.saved_messages().await?;
    let message = list
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| AppError::invalid(format!("no saved message is named {name:?}")))?;
    let id = uuid::Uuid::new_v4().to_string();
    let data = message.render(&id)?;
    let engine = hub.engine().await?;
    let pending = engine.publish(&message.feed, data, Some(id)).await?;
    Ok(pending.await?)
}

/// Writes the active server's saved messages where the save dialog says.
#[tauri::command]
pub async fn saved_export<R: Runtime>(
    app: AppHandle<R>,
    hub: HubState<'_>,
    destination: State<'_, crate::ExportDestination>,
) -> AppResult<ExportResult> {
    let list = hub.saved_messages().await?;
    let Some(path) = export_path(
        &app,
        &destination,
        "holdline-messages.json",
        ("JSON", "json"),
    )?
    else {
        return Ok(ExportResult::cancelled());
    };
    std::fs::write(&path, saved::to_file(&list)).map_err(|e| AppError::Export {
        message: format!("{}: {e}", path.display()),
    })?;
    Ok(ExportResult {
        path: Some(path.display().to_string()),
        count: list.len() as u64,
    })
}

/// Adds the messages of a file the open dialog names (same names are
/// replaced); a file with one bad message imports nothing and says which.
#[tauri::command]
pub async fn saved_import<R: Runtime>(
    app: AppHandle<R>,
    hub: HubState<'_>,
    destination: State<'_, crate::ExportDestination>,
) -> AppResult<Vec<SavedMessage>> {
    let mut list = hub.saved_messages().await?;
    let path = match &*destination {
        crate::ExportDestination::Fixed(path) => Some(path.clone()),
        crate::ExportDestination::Dialog => {
            use tauri_plugin_dialog::DialogExt;
            app.dialog()
                .file()
                .add_filter("JSON", &["json"])
                .blocking_pick_file()
                .map(|p| p.into_path())
                .transpose()
                .map_err(|e| AppError::invalid(e.to_string()))?
        }
    };
    let Some(path) = path else { return Ok(list) };
    let size = std::fs::metadata(&path)
        .map(|m| m.len())
        .unwrap_or_default();
    if size > saved::MAX_FILE_BYTES {
        return Err(AppError::invalid(format!(
            "{} is larger than a file of saved messages can be",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| AppError::invalid(format!("{}: {e}", path.display())))?;
    for message in saved::from_file(&text)? {
        list = saved::with(list, message);
    }
    hub.set_saved_messages(list).await
}

#[tauri::command]
pub async fn snapshot(hub: HubState<'_>) -> AppResult<AppSnapshot> {
    let engine = match hub.engine().await {
        Ok(engine) => engine.snapshot().await.ok(),
        Err(_) => None,
    };
    let history = hub
        .db
        .query_history(&HistoryQuery {
            limit: Some(50),
            ..HistoryQuery::default()
        })?
        .rows;
    Ok(AppSnapshot {
        servers: hub.server_infos().await,
        active_server: hub.active_id().await,
        engine,
        subscribed: hub.subscribed().await,
        decoders: hub.decoders().await,
        recent: hub.outbound.recent(),
        history,
        preferences: hub.preferences(),
        keyring: hub.keyring_status(),
        unreadable_servers: hub.unreadable_servers(),
    })
}

/// Attaches a window's channel: from now on it receives every item.
#[tauri::command]
pub async fn events_attach(hub: HubState<'_>, channel: Channel<UiBatch>) -> AppResult<()> {
    hub.outbound.attach(channel);
    Ok(())
}

#[tauri::command]
pub async fn history_query(hub: HubState<'_>, query: HistoryQuery) -> AppResult<HistoryPage> {
    on_database(&hub, move |db| db.query_history(&query)).await
}

/// Writes the matching history as JSON lines to a file the user picks in
/// the native save dialog; the webview never names a path.
#[tauri::command]
pub async fn history_export<R: Runtime>(
    app: AppHandle<R>,
    hub: HubState<'_>,
    destination: State<'_, crate::ExportDestination>,
    query: HistoryQuery,
) -> AppResult<ExportResult> {
    let Some(path) = export_path(
        &app,
        &destination,
        "holdline-history.jsonl",
        ("JSON lines", "jsonl"),
    )?
    else {
        return Ok(ExportResult::cancelled());
    };
    let db = hub.db.clone();
    let target = path.clone();
    let count = tokio::task::spawn_blocking(move || db.export_history(&query, &target))
        .await
        .map_err(|e| AppError::Export {
            message: e.to_string(),
        })??;
    Ok(ExportResult {
        path: Some(path.display().to_string()),
        count,
    })
}

/// Where an export goes: the native save dialog's answer (`None`: the
/// user cancelled), or the fixed path tests build the app with.
fn export_path<R: Runtime>(
    app: &AppHandle<R>,
    destination: &crate::ExportDestination,
    suggested: &str,
    (kind, extension): (&str, &str),
) -> AppResult<Option<std::path::PathBuf>> {
    match destination {
        crate::ExportDestination::Fixed(path) => Ok(Some(path.clone())),
        crate::ExportDestination::Dialog => {
            use tauri_plugin_dialog::DialogExt;
            let picked = app
                .dialog()
                .file()
                .set_file_name(suggested)
                .add_filter(kind, &[extension])
                .blocking_save_file();
            picked
                .map(|p| p.into_path())
                .transpose()
                .map_err(|e| AppError::Export {
                    message: e.to_string(),
                })
        }
    }
}

/// The active server's record (one feed, or all), newest first.
#[tauri::command]
pub async fn record_page(
    hub: HubState<'_>,
    feed: Option<String>,
    before_id: Option<i64>,
    limit: Option<usize>,
) -> AppResult<RecordPage> {
    let server = hub.active_server_key().await?;
    let limit = limit.unwrap_or(200).clamp(1, 2000);
    let decoders = hub.feed_decoders();
    on_database(&hub, move |db| {
        let mut page = db.record_page(&server, feed.as_deref(), before_id, limit)?;
        for item in &mut page.items {
            decoders.show_recorded(item);
        }
        Ok(page)
    })
    .await
}

/// Searches the active server's record newest first from `before_id`: an
/// answer within one frame, with where to go on.
#[tauri::command]
pub async fn record_search(
    hub: HubState<'_>,
    query: SearchQuery,
    before_id: Option<i64>,
    limit: Option<usize>,
) -> AppResult<SearchPage> {
    let search = Search::parse(&query).map_err(|e| AppError::invalid(e.to_string()))?;
    let server = hub.active_server_key().await?;
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    let decoders = hub.feed_decoders();
    on_database(&hub, move |db| {
        db.search_record(&server, &search, before_id, limit, SEARCH_BUDGET, |item| {
            decoders.show_recorded(item)
        })
    })
    .await
}

/// Exports the active server's record (one feed, or all; a time range)
/// as JSON lines or CSV where the save dialog says.
#[tauri::command]
pub async fn record_export<R: Runtime>(
    app: AppHandle<R>,
    hub: HubState<'_>,
    destination: State<'_, crate::ExportDestination>,
    feed: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    format: String,
) -> AppResult<ExportResult> {
    let (format, filter) = match format.as_str() {
        "jsonl" => (ExportFormat::JsonLines, ("JSON lines", "jsonl")),
        "csv" => (ExportFormat::Csv, ("CSV", "csv")),
        other => {
            return Err(AppError::invalid(format!(
                "format is jsonl or csv, not {other:?}"
            )));
        }
    };
    let server = hub.active_server_key().await?;
    let suggested = format!("holdline-record.{}", filter.1);
    let Some(path) = export_path(&app, &destination, &suggested, filter)? else {
        return Ok(ExportResult::cancelled());
    };
    let db = hub.db.clone();
    let target = path.clone();
    let count = tokio::task::spawn_blocking(move || -> AppResult<u64> {
        let file = std::fs::File::create(&target).map_err(|e| AppError::Export {
            message: format!("{}: {e}", target.display()),
        })?;
        let mut out = std::io::BufWriter::new(file);
        Ok(db.export_record(&server, feed.as_deref(), from_ms, to_ms, format, &mut out)?)
    })
    .await
    .map_err(|e| AppError::Export {
        message: e.to_string(),
    })??;
    Ok(ExportResult {
        path: Some(path.display().to_string()),
        count,
    })
}

/// How much the record holds, and the database file's size.
#[tauri::command]
pub async fn record_usage(hub: HubState<'_>) -> AppResult<RecordUsage> {
    on_database(&hub, |db| db.record_usage()).await
}

#[tauri::command]
pub async fn settings_get(hub: HubState<'_>) -> AppResult<Preferences> {
    Ok(hub.preferences())
}

#[tauri::command]
pub async fn settings_save<R: Runtime>(
    app: AppHandle<R>,
    hub: HubState<'_>,
    preferences: Preferences,
) -> AppResult<Preferences> {
    if !matches!(preferences.theme.as_str(), "system" | "light" | "dark") {
        return Err(AppError::invalid("theme is one of system, light, dark"));
    }
    for (name, value, range) in [
        ("heartbeat_ms", preferences.heartbeat_ms, 250..=300_000),
        (
            "backoff_initial_ms",
            preferences.backoff_initial_ms,
            10..=600_000,
        ),
        ("backoff_max_ms", preferences.backoff_max_ms, 10..=3_600_000),
        ("alert_after_s", preferences.alert_after_s, 5..=86_400),
    ] {
        if let Some(value) = value
            && !range.contains(&value)
        {
            return Err(AppError::invalid(format!(
                "{name} must be within {}..={}",
                range.start(),
                range.end()
            )));
        }
    }
    for (name, value, range) in [
        ("record_max_mb", preferences.record_max_mb, 1..=1 << 20),
        (
            "record_max_age_days",
            preferences.record_max_age_days,
            1..=3650,
        ),
    ] {
        if !range.contains(&value) {
            return Err(AppError::invalid(format!(
                "{name} must be within {}..={}",
                range.start(),
                range.end()
            )));
        }
    }
    if preferences.start_at_login != hub.preferences().start_at_login {
        crate::desktop::set_start_at_login(&app, preferences.start_at_login)?;
    }
    hub.save_preferences(&preferences)?;
    Ok(preferences)
}
