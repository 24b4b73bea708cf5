//! The shell's state: the saved servers, the active server's engine and the
//! tasks that carry its deliveries and events to the UI, the history and
//! the cursor store. The engine does the connection work; this only wires.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdline_credentials::{CredentialError, StoredCredential};
use holdline_engine::{
    BackoffConfig, Engine, EngineConfig, FeedUrl, HistoryEntry, HistoryKind, Level, Profile,
    StartFrom, Stores, Token, TokenSource,
};
use holdline_storage::{Database, SqliteCursorStore, SqliteOutboxStore};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::alerts::ActiveStatus;
use crate::decoders::FeedDecoders;
use crate::dto::{KeyringStatus, Preferences, ServerEntry, ServerInfo, UiItem};
use crate::error::{AppError, AppResult};
use crate::outbound::Outbound;
use crate::saved::SavedMessage;
use crate::settings::Settings;

pub const DEMO_ID: &str = "local-demo";

/// The lock's contents, also after a thread panicked holding it: the maps
/// it guards stay consistent between statements, so there is nothing to
/// repair.
fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
/// The history's name for entries about the app rather than one server.
pub const APP_SCOPE: &str = "app";

struct Active {
    server_id: String,
    engine: Engine,
    tasks: Vec<JoinHandle<()>>,
}

pub struct Hub {
    pub db: Arc<Database>,
    pub outbound: Arc<Outbound>,
    /// The active server's decoders for binary payloads.
    decoders: FeedDecoders,
    cursors: Arc<SqliteCursorStore>,
    settings: Settings,
    demo_url: Option<String>,
    /// Tokens kept in memory only: the Local demo's, and logins made with
    /// "remember" off or while no keyring was available.
    session_tokens: Mutex<HashMap<String, Token>>,
    active: tokio::sync::Mutex<Option<Active>>,
    keyring_problem: Mutex<Option<String>>,
    /// The active server and its state, for the tray and outage alerts.
    status: tokio::sync::watch::Sender<ActiveStatus>,
}

impl Hub {
    pub fn new(db: Arc<Database>, settings: Settings, demo_url: Option<String>) -> Self {
        let mut session_tokens = HashMap::new();
        if demo_url.is_some() {
            session_tokens.insert(DEMO_ID.to_owned(), Token::new(holdline_server::demo::TOKEN));
        }
        Hub {
            cursors: Arc::new(SqliteCursorStore::new(db.clone())),
            db,
            outbound: Arc::new(Outbound::default()),
            decoders: FeedDecoders::default(),
            settings,
            demo_url,
            session_tokens: Mutex::new(session_tokens),
            active: tokio::sync::Mutex::new(None),
            keyring_problem: Mutex::new(None),
            status: tokio::sync::watch::Sender::new(ActiveStatus::default()),
        }
    }

    pub fn status(&self) -> tokio::sync::watch::Receiver<ActiveStatus> {
        self.status.subscribe()
    }

    /// Writes an app-level history entry (storage, settings, triggers with
    /// no engine to hand them to).
    pub fn record(
        &self,
        kind: HistoryKind,
        level: Level,
        message: String,
        details: serde_json::Value,
    ) {
        let entry = HistoryEntry {
            at_ms: holdline_engine::events::now_ms(),
            kind,
            level,
            message,
            details,
        };
        self.outbound
            .push(UiItem::from_event(holdline_engine::EngineEvent::History(
                entry.clone(),
            )));
        if let Err(err) = self.db.append_history(APP_SCOPE, &[entry]) {
            tracing::error!(%err, "history not written");
        }
    }

    // ---- servers ------------------------------------------------------

    pub fn servers(&self) -> Vec<ServerEntry> {
        let mut servers = Vec::new();
        if let Some(url) = &self.demo_url {
            servers.push(ServerEntry {
                id: DEMO_ID.into(),
                name: "Local demo".into(),
                url: url.clone(),
                builtin: true,
                profile: None,
                // In this process: no proxy stands between.
                connection: crate::connection::ConnectionEntry {
                    proxy: Some("none".into()),
                    ..Default::default()
                },
            });
        }
        servers.extend(
            self.settings
                .servers()
                .servers
                .into_iter()
                .filter(|s| !s.builtin),
        );
        servers
    }

    pub fn server(&self, id: &str) -> AppResult<ServerEntry> {
        self.servers()
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| AppError::UnknownServer { id: id.into() })
    }

    pub async fn server_infos(&self) -> Vec<ServerInfo> {
        let active = self.active_id().await;
        let session = locked(&self.session_tokens).clone();
        let mut infos = Vec::new();
        for entry in self.servers() {
            let session_only = session.contains_key(&entry.id) && !entry.builtin;
            let login = self.keyring_login(&entry);
            let has_token = session.contains_key(&entry.id)
                || login.is_some()
                || self.keyring_token(&entry).is_some();
            infos.push(ServerInfo {
                active: active.as_deref() == Some(entry.id.as_str()),
                has_token,
                session_only,
                login,
                entry,
            });
        }
        infos
    }

    /// Saved server entries that could not be read (kept, never dropped).
    pub fn unreadable_servers(&self) -> Vec<crate::dto::UnreadableServer> {
        self.settings.servers().unreadable
    }

    /// Adds or updates a server; the URL is validated by the engine, and
    /// the profile comes already loaded (so valid) by its loader.
    pub fn save_server(
        &self,
        id: Option<String>,
        name: Option<String>,
        url: &str,
        profile: Option<Profile>,
        connection: crate::connection::Prepared,
    ) -> AppResult<ServerEntry> {
        let (parsed, _) = FeedUrl::parse(url)?;
        let mut servers = self.settings.servers().servers;
        let id = id
            .or_else(|| {
                servers
                    .iter()
                    .find(|s| s.url == parsed.as_str())
                    .map(|s| s.id.clone())
            })
            .unwrap_or_else(|| {
                format!(
                    "srv-{:08x}",
                    holdline_engine::events::now_ms() as u32 ^ std::process::id()
                )
            });
        if id == DEMO_ID {
            return Err(AppError::invalid("the Local demo cannot be changed"));
        }
        let entry = ServerEntry {
            id: id.clone(),
            name: name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| parsed.host().to_owned()),
            url: parsed.as_str().to_owned(),
            builtin: false,
            profile: profile.map(|p| p.source),
            connection: connection.entry,
        };
        for (secret, value) in &connection.secrets {
            if let Err(err) = holdline_credentials::store_secret(&parsed, *secret, value) {
                *locked(&self.keyring_problem) = Some(err.to_string());
                return Err(err.into());
            }
        }
        match servers.iter_mut().find(|s| s.id == id) {
            Some(existing) => *existing = entry.clone(),
            None => servers.push(entry.clone()),
        }
        self.settings.set_servers(&servers)?;
        Ok(entry)
    }

    pub async fn remove_server(&self, id: &str) -> AppResult<()> {
        if id == DEMO_ID {
            return Err(AppError::invalid("the Local demo cannot be removed"));
        }
        let entry = self.server(id)?;
        if self.active_id().await.as_deref() == Some(id) {
            self.stop_active().await;
            self.settings.set_active_server(None)?;
        }
        self.forget_token(&entry)?;
        let servers: Vec<_> = self
            .settings
            .servers()
            .servers
            .into_iter()
            .filter(|s| s.id != id)
            .collect();
        self.settings.set_servers(&servers)?;
        Ok(())
    }

    // ---- tokens -------------------------------------------------------

    /// A keyring failure is remembered for the servers list to show.
    fn noting_keyring_problem<T>(&self, read: Result<Option<T>, CredentialError>) -> Option<T> {
        read.unwrap_or_else(|err| {
            *locked(&self.keyring_problem) = Some(err.to_string());
            None
        })
    }

    fn keyring_token(&self, entry: &ServerEntry) -> Option<Token> {
        if entry.builtin {
            return None;
        }
        let (url, _) = FeedUrl::parse(&entry.url).ok()?;
        self.noting_keyring_problem(holdline_credentials::load(&url))
    }

    fn keyring_login(&self, entry: &ServerEntry) -> Option<holdline_login::OidcLogin> {
        if entry.builtin {
            return None;
        }
        let (url, _) = FeedUrl::parse(&entry.url).ok()?;
        self.noting_keyring_problem(holdline_credentials::load_login(&url))
            .map(|grant| grant.login)
    }

    pub fn keyring_status(&self) -> KeyringStatus {
        let problem = locked(&self.keyring_problem).clone();
        KeyringStatus {
            available: problem.is_none(),
            problem,
        }
    }

    /// Keeps the token: in the keyring when `remember`, else in memory.
    /// A keyring failure is returned as is; the UI then offers to keep the
    /// token for this session only.
    pub fn store_token(&self, entry: &ServerEntry, token: Token, remember: bool) -> AppResult<()> {
        if remember {
            let (url, _) = FeedUrl::parse(&entry.url)?;
            if let Err(err) = holdline_credentials::store(&url, &token) {
                *locked(&self.keyring_problem) = Some(err.to_string());
                return Err(err.into());
            }
            *locked(&self.keyring_problem) = None;
            locked(&self.session_tokens).remove(&entry.id);
        } else {
            locked(&self.session_tokens).insert(entry.id.clone(), token);
        }
        Ok(())
    }

    /// Forgets the server's token and every other secret it keeps.
    pub fn forget_token(&self, entry: &ServerEntry) -> AppResult<()> {
        locked(&self.session_tokens).remove(&entry.id);
        if !entry.builtin {
            let (url, _) = FeedUrl::parse(&entry.url)?;
            for secret in holdline_credentials::Secret::ALL {
                holdline_credentials::delete_secret(&url, secret)?;
            }
        }
        Ok(())
    }

    /// Keeps a login that refreshes in the keyring (there is no session-only
    /// place for one: its refreshed tokens must outlive the run).
    pub fn store_login(&self, entry: &ServerEntry, grant: &holdline_login::Grant) -> AppResult<()> {
        let (url, _) = FeedUrl::parse(&entry.url)?;
        if let Err(err) = holdline_credentials::store_login(&url, grant) {
            *locked(&self.keyring_problem) = Some(err.to_string());
            return Err(err.into());
        }
        *locked(&self.keyring_problem) = None;
        locked(&self.session_tokens).remove(&entry.id);
        Ok(())
    }

    /// What the engine connects with: a token for this session, else the
    /// keyring's login that refreshes or token.
    fn credential_for(&self, entry: &ServerEntry) -> Credential {
        if let Some(token) = locked(&self.session_tokens).get(&entry.id).cloned() {
            return Credential::fixed(token);
        }
        if entry.builtin {
            return Credential::default();
        }
        let Ok((url, _)) = FeedUrl::parse(&entry.url) else {
            return Credential::default();
        };
        match self.noting_keyring_problem(holdline_credentials::load_credential(&url)) {
            Some(StoredCredential::Token(token)) => Credential::fixed(token),
            Some(StoredCredential::Login(session)) => Credential {
                token: None,
                source: Some(session),
            },
            None => Credential::default(),
        }
    }

    // ---- the active engine -------------------------------------------

    pub async fn active_id(&self) -> Option<String> {
        self.active
            .lock()
            .await
            .as_ref()
            .map(|a| a.server_id.clone())
    }

    /// The active server's decoder settings, by feed (absent: detected).
    pub async fn decoders(&self) -> BTreeMap<String, String> {
        match self.active_id().await {
            Some(id) => self.settings.decoders().remove(&id).unwrap_or_default(),
            None => BTreeMap::new(),
        }
    }

    /// How the active server's binary payloads are read, for views of the
    /// record.
    pub fn feed_decoders(&self) -> FeedDecoders {
        self.decoders.clone()
    }

    /// Chooses how `feed`'s binary payloads are shown (`None`: detected).
    pub async fn set_decoder(
        &self,
        feed: &str,
        setting: Option<&str>,
    ) -> AppResult<BTreeMap<String, String>> {
        let id = self.active_id().await.ok_or(AppError::NoActiveServer)?;
        let mut all = self.settings.decoders();
        let chosen = all.entry(id).or_default();
        match setting.map(str::trim).filter(|s| !s.is_empty()) {
            Some(setting) => {
                let decoder = crate::decoders::parse(setting)?;
                chosen.insert(feed.to_owned(), setting.to_owned());
                self.decoders.set(feed, decoder);
            }
            None => {
                chosen.remove(feed);
                self.decoders.forget(feed);
            }
        }
        let now = chosen.clone();
        self.settings.set_decoders(&all)?;
        Ok(now)
    }

    /// The active server's saved messages.
    pub async fn saved_messages(&self) -> AppResult<Vec<SavedMessage>> {
        let id = self.active_id().await.ok_or(AppError::NoActiveServer)?;
        Ok(self
            .settings
            .saved_messages()
            .remove(&id)
            .unwrap_or_default())
    }

    /// Replaces the active server's saved messages.
    pub async fn set_saved_messages(
        &self,
        list: Vec<SavedMessage>,
    ) -> AppResult<Vec<SavedMessage>> {
        let id = self.active_id().await.ok_or(AppError::NoActiveServer)?;
        let mut all = self.settings.saved_messages();
        all.insert(id, list.clone());
        self.settings.set_saved_messages(&all)?;
        Ok(list)
    }

    /// The active server's key, under which its record is kept.
    pub async fn active_server_key(&self) -> AppResult<String> {
        let id = self.active_id().await.ok_or(AppError::NoActiveServer)?;
        let entry = self.server(&id)?;
        let (url, _) = FeedUrl::parse(&entry.url)?;
        Ok(url.server_key().to_owned())
    }

    pub async fn engine(&self) -> AppResult<Engine> {
        self.active
            .lock()
            .await
            .as_ref()
            .map(|a| a.engine.clone())
            .ok_or(AppError::NoActiveServer)
    }

    async fn stop_active(&self) {
        let previous = self.active.lock().await.take();
        if let Some(active) = previous {
            self.retire(active).await;
        }
    }

    /// Closes a server's engine cleanly and stops its pumps; the live view
    /// starts empty for whatever comes next.
    async fn retire(&self, active: Active) {
        active.engine.shutdown().await;
        for task in active.tasks {
            task.abort();
        }
        self.outbound.clear_recent();
        self.status.send_replace(ActiveStatus::default());
    }

    fn engine_config(
        &self,
        entry: &ServerEntry,
        url: FeedUrl,
        credential: Credential,
        profile: Profile,
    ) -> EngineConfig {
        let prefs: Preferences = self.settings.preferences();
        let (proxy, client_certificate) =
            crate::connection::engine_settings(&entry.connection, &url, |url, secret| {
                holdline_credentials::load_secret(url, secret).unwrap_or_else(|err| {
                    *locked(&self.keyring_problem) = Some(err.to_string());
                    None
                })
            });
        let mut config = EngineConfig::new(url, credential.token);
        config.token_source = credential.source;
        config.proxy = proxy;
        config.client_certificate = client_certificate;
        config.backoff =
            BackoffConfig::with_limits_ms(prefs.backoff_initial_ms, prefs.backoff_max_ms);
        if let Some(ms) = prefs.heartbeat_ms {
            config.heartbeat = holdline_engine::liveness::clamp_heartbeat(ms);
        }
        config.extra_ca_file = prefs.extra_ca_file.map(Into::into);
        // The profile's own heartbeat wins over the preference.
        config.with_profile(profile)
    }

    /// Makes `id` the active server (starting its engine if it is not
    /// already) and connects.
    pub async fn activate(&self, id: &str) -> AppResult<Engine> {
        let entry = self.server(id)?;
        // A profile the settings file holds but the loader refuses dials
        // nothing and leaves the current server as it is.
        let profile = match &entry.profile {
            Some(profile) => Profile::load(profile)?,
            None => Profile::holdline(),
        };
        let mut active = self.active.lock().await;
        if let Some(current) = active.as_ref()
            && current.server_id == id
        {
            let engine = current.engine.clone();
            drop(active);
            // The credential as it is now: one forgotten by a logout is
            // not sent again.
            let credential = self.credential_for(&entry);
            engine.set_token(credential.token).await?;
            engine.set_token_source(credential.source).await?;
            engine.connect().await?;
            return Ok(engine);
        }
        // Everything that can fail is done before anything is started.
        let saved = self.settings.feeds();
        let feeds = match saved.get(id) {
            Some(feeds) => feeds.clone(),
            // A first look at the Local demo should show it moving.
            None if entry.builtin => {
                let demo: Vec<String> = [
                    holdline_server::demo::TICKER,
                    holdline_server::demo::CHAT,
                    holdline_server::demo::CLOCK,
                ]
                .map(String::from)
                .to_vec();
                let mut saved = saved;
                saved.insert(id.to_owned(), demo.clone());
                self.settings.set_feeds(&saved)?;
                demo
            }
            None => Vec::new(),
        };
        let (url, _) = FeedUrl::parse(&entry.url)?;
        let server_key = url.server_key().to_owned();
        let stores = Stores {
            cursors: self.cursors.clone(),
            outbox: Arc::new(SqliteOutboxStore::new(self.db.clone(), server_key.clone())),
        };
        let config = self.engine_config(&entry, url, self.credential_for(&entry), profile);
        let (engine, mut deliveries) = Engine::start(config, stores)?;
        if let Err(err) = self.subscribe_saved(&engine, &entry, &feeds).await {
            engine.shutdown().await;
            return Err(err);
        }
        // The new engine is ready to go: only now does the previous one stop.
        if let Some(previous) = active.take() {
            self.retire(previous).await;
        }
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(holdline_storage::record_history(
            self.db.clone(),
            server_key.clone(),
            engine.events(),
        )));
        tasks.push(tokio::spawn(trim_the_record(
            self.db.clone(),
            self.settings.preferences().record_retention(),
        )));
        let outbound = self.outbound.clone();
        let mut events = engine.events();
        let status = self.status.clone();
        status.send_replace(ActiveStatus {
            server: Some(entry.name.clone()),
            state: holdline_engine::ConnectionState::Idle,
        });
        tasks.push(tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        if let holdline_engine::EngineEvent::State(state) = &event {
                            status.send_modify(|current| current.state = state.clone());
                        }
                        outbound.push(UiItem::from_event(event));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        }));
        for problem in self
            .decoders
            .load(&self.settings.decoders().remove(id).unwrap_or_default())
        {
            tracing::warn!(%problem, "a feed's decoder no longer loads; its payloads are detected");
        }
        let decoders = self.decoders.clone();
        let outbound = self.outbound.clone();
        let preferences = self.settings.preferences();
        let recorder = preferences.record.then(|| self.cursors.clone());
        let recorded_as = server_key.clone();
        tasks.push(tokio::spawn(async move {
            // The UI is the consumer: a delivery is handled once it is queued
            // for every attached window (and in the record, which is written
            // with the cursor). Committing after that means a crash in
            // between repeats the delivery instead of skipping it.
            loop {
                let delivery = match tokio::time::timeout(IDLE_FLUSH, deliveries.recv()).await {
                    Ok(Some(delivery)) => delivery,
                    Ok(None) => break,
                    // A quiet feed: what the store holds back for its next
                    // write (the last cursors, their record) is written now.
                    // Only this task records and commits, so no write falls
                    // between a delivery's record and its commit.
                    Err(_) => {
                        if let Err(err) = deliveries.flush() {
                            tracing::error!(%err, "cursors not saved");
                        }
                        continue;
                    }
                };
                let reached = delivery.progress();
                if let Some(recorder) = &recorder
                    && let Err(err) = recorder.record(&recorded_as, &delivery)
                {
                    tracing::error!(%err, "delivery not recorded");
                }
                outbound.push(decoders.show(UiItem::from_delivery(delivery)));
                if !reached.is_empty()
                    && let Err(err) = deliveries.commit_progress(&reached)
                {
                    tracing::error!(%err, "cursor not saved");
                }
            }
            let _ = deliveries.flush();
        }));
        let outbound = self.outbound.clone();
        let observed = engine.clone();
        let status = self.status.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                match observed.snapshot().await {
                    Ok(snapshot) => {
                        // A state change lost to a lagging event stream
                        // (a burst) is corrected here within a second.
                        status.send_if_modified(|current| {
                            let stale = current.state != snapshot.state;
                            if stale {
                                current.state = snapshot.state.clone();
                            }
                            stale
                        });
                        outbound.push(UiItem::Stats {
                            snapshot: Box::new(snapshot),
                        });
                    }
                    Err(_) => break,
                }
            }
        }));
        *active = Some(Active {
            server_id: id.to_owned(),
            engine: engine.clone(),
            tasks,
        });
        drop(active);
        if let Err(err) = self.settings.set_active_server(Some(id)) {
            // The server is active and running; only the next start will
            // not reopen it.
            self.record(
                HistoryKind::Storage,
                Level::Warn,
                format!("the active server could not be remembered: {err}"),
                json!({ "server": id, "error": err.to_string() }),
            );
        }
        engine.connect().await?;
        Ok(engine)
    }

    /// Subscribes a starting engine to the server's saved feeds. A name the
    /// wire refuses (saved under another profile, or edited by hand) is
    /// left out and said so, and activation goes on; any other failure
    /// fails the activation.
    async fn subscribe_saved(
        &self,
        engine: &Engine,
        entry: &ServerEntry,
        feeds: &[String],
    ) -> AppResult<()> {
        for feed in feeds {
            match engine.subscribe(feed, StartFrom::Live).await {
                Ok(()) => {}
                Err(holdline_engine::EngineError::InvalidFeed { message, .. }) => self.record(
                    HistoryKind::SubscribeFailed,
                    Level::Warn,
                    format!("saved feed {feed:?} of {} left out: {message}", entry.name),
                    json!({ "server": entry.id, "feed": feed, "message": message }),
                ),
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Connects the active server (again) at once: a disconnected one
    /// connects, one in backoff skips its wait, an open one is replaced.
    pub async fn reconnect_now(&self) -> AppResult<()> {
        let engine = self.engine().await?;
        engine.connect().await?;
        engine.reconnect_now().await?;
        Ok(())
    }

    pub async fn deactivate(&self) -> AppResult<()> {
        let engine = self.engine().await?;
        engine.disconnect().await?;
        Ok(())
    }

    pub async fn subscribed(&self) -> Vec<String> {
        match self.active_id().await {
            Some(id) => self.settings.feeds().get(&id).cloned().unwrap_or_default(),
            None => Vec::new(),
        }
    }

    pub async fn subscribe(&self, feed: &str, from_start: bool) -> AppResult<()> {
        let id = self.active_id().await.ok_or(AppError::NoActiveServer)?;
        let engine = self.engine().await?;
        let start = if from_start {
            StartFrom::Beginning
        } else {
            StartFrom::Live
        };
        engine.subscribe(feed, start).await?;
        let mut feeds = self.settings.feeds();
        let list = feeds.entry(id).or_default();
        if !list.iter().any(|f| f == feed) {
            list.push(feed.to_owned());
        }
        self.settings.set_feeds(&feeds)
    }

    pub async fn unsubscribe(&self, feed: &str) -> AppResult<()> {
        let id = self.active_id().await.ok_or(AppError::NoActiveServer)?;
        self.engine().await?.unsubscribe(feed).await?;
        let mut feeds = self.settings.feeds();
        if let Some(list) = feeds.get_mut(&id) {
            list.retain(|f| f != feed);
        }
        self.settings.set_feeds(&feeds)
    }

    pub fn preferences(&self) -> Preferences {
        self.settings.preferences()
    }

    pub fn save_preferences(&self, preferences: &Preferences) -> AppResult<()> {
        self.settings.set_preferences(preferences)
    }

    pub fn remembered_active(&self) -> Option<String> {
        self.settings.active_server()
    }

    /// Forwards a system trigger to the active engine; with none, the
    /// trigger is only recorded.
    pub async fn on_trigger(&self, trigger: holdline_triggers::SystemTrigger) {
        use holdline_triggers::SystemTrigger;
        let engine = self.engine().await.ok();
        match (&trigger, engine) {
            (SystemTrigger::Wake { .. }, Some(engine)) => {
                let _ = engine.wake().await;
            }
            (SystemTrigger::NetworkChange { .. }, Some(engine)) => {
                let _ = engine.network_changed().await;
            }
            _ => {}
        }
        // The engine records what it did; this records what the OS said.
        let (kind, message) = match &trigger {
            SystemTrigger::Sleeping { source } => (
                HistoryKind::Wake,
                format!("the system is going to sleep ({source})"),
            ),
            SystemTrigger::Wake { source, detail } => (
                HistoryKind::Wake,
                format!("system wake from {source}: {detail}"),
            ),
            SystemTrigger::NetworkChange { detail } => (
                HistoryKind::NetworkChange,
                format!("network change: {detail}"),
            ),
        };
        self.record(kind, Level::Info, message, json!({ "trigger": trigger }));
    }
}

/// A server's token, or the login that refreshes it.
#[derive(Default)]
struct Credential {
    token: Option<Token>,
    source: Option<Arc<dyn TokenSource>>,
}

impl Credential {
    fn fixed(token: Token) -> Credential {
        Credential {
            token: Some(token),
            source: None,
        }
    }
}

/// How long a quiet delivery stream waits before what the cursor store
/// holds back is written.
const IDLE_FLUSH: Duration = Duration::from_millis(250);

/// How often the record is trimmed to its retention.
const RECORD_TRIMMED_EVERY: Duration = Duration::from_secs(60);

/// Trims the record at once and then every so often, while a server is
/// active (a change of the retention applies from the next activation).
async fn trim_the_record(db: Arc<Database>, retention: holdline_storage::RecordRetention) {
    let mut tick = tokio::time::interval(RECORD_TRIMMED_EVERY);
    loop {
        tick.tick().await;
        let db = db.clone();
        let now = holdline_engine::events::now_ms();
        match tokio::task::spawn_blocking(move || db.trim_record(retention, now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(trimmed)) => tracing::debug!(trimmed, "record trimmed"),
            Ok(Err(err)) => tracing::warn!(%err, "the record could not be trimmed"),
            Err(err) => tracing::warn!(%err, "the record trimmer failed"),
        }
    }
}
