//! Servers, subscribed feeds and preferences, in tauri-plugin-store's
//! `settings.json`. A file that is not valid JSON is moved aside (and the
//! history says so) instead of stopping the app. Servers are read one entry
//! at a time: an entry that cannot be read costs nothing but itself, and is
//! written back as it was on every save.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};
use tauri::Runtime;
use tauri_plugin_store::{Store, StoreExt};

use crate::dto::{Preferences, ServerEntry, UnreadableServer};
use crate::error::{AppError, AppResult};
use crate::saved::SavedMessage;

pub const FILE: &str = "settings.json";

/// The key-value store behind the settings, whatever the Tauri runtime.
pub trait KeyValue: Send + Sync {
    fn get(&self, key: &str) -> Option<serde_json::Value>;
    fn set(&self, key: &str, value: serde_json::Value) -> AppResult<()>;
}

impl<R: Runtime> KeyValue for Arc<Store<R>> {
    fn get(&self, key: &str) -> Option<serde_json::Value> {
        Store::get(self, key)
    }

    fn set(&self, key: &str, value: serde_json::Value) -> AppResult<()> {
        Store::set(self, key, value);
        self.save().map_err(|e| AppError::Settings {
            message: e.to_string(),
        })
    }
}

pub struct Settings {
    store: Box<dyn KeyValue>,
}

/// Moves `settings.json` aside when it does not parse; returns where to.
pub fn quarantine_if_corrupt(path: &Path) -> Option<(PathBuf, String)> {
    let bytes = std::fs::read(path).ok()?;
    let error = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(_)) => return None,
        Ok(_) => "not a JSON object".to_owned(),
        Err(e) => e.to_string(),
    };
    let to = holdline_engine::store::aside_path(path);
    std::fs::rename(path, &to).ok()?;
    Some((to, error))
}

impl Settings {
    pub fn open<R: Runtime>(app: &tauri::AppHandle<R>) -> AppResult<Self> {
        let store = app.store(FILE).map_err(|e| AppError::Settings {
            message: e.to_string(),
        })?;
        Ok(Settings {
            store: Box::new(store),
        })
    }

    fn get<T: DeserializeOwned + Default>(&self, key: &str) -> T {
        self.store
            .get(key)
            .and_then(|value| serde_json::from_value(value).ok())
            .unwrap_or_default()
    }

    fn set<T: Serialize>(&self, key: &str, value: &T) -> AppResult<()> {
        let value = serde_json::to_value(value).map_err(|e| AppError::Settings {
            message: e.to_string(),
        })?;
        self.store.set(key, value)
    }

    /// The saved servers that can be read, and those that cannot.
    pub fn servers(&self) -> ServerList {
        read_servers(self.store.get("servers"))
    }

    /// Saves `servers`, keeping every unreadable entry as it is stored.
    pub fn set_servers(&self, servers: &[ServerEntry]) -> AppResult<()> {
        let kept = self.servers().unreadable_raw;
        let mut entries = Vec::with_capacity(servers.len() + kept.len());
        for server in servers {
            entries.push(
                serde_json::to_value(server).map_err(|e| AppError::Settings {
                    message: e.to_string(),
                })?,
            );
        }
        entries.extend(kept);
        self.store.set("servers", serde_json::Value::Array(entries))
    }

    pub fn feeds(&self) -> BTreeMap<String, Vec<String>> {
        self.get("feeds")
    }

    pub fn set_feeds(&self, feeds: &BTreeMap<String, Vec<String>>) -> AppResult<()> {
        self.set("feeds", feeds)
    }

    pub fn active_server(&self) -> Option<String> {
        self.get("active_server")
    }

    pub fn set_active_server(&self, id: Option<&str>) -> AppResult<()> {
        self.set("active_server", &id)
    }

    pub fn preferences(&self) -> Preferences {
        self.get("preferences")
    }

    /// How each feed's binary payloads are shown, per server id.
    pub fn decoders(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.get("decoders")
    }

    pub fn set_decoders(
        &self,
        decoders: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> AppResult<()> {
        self.set("decoders", decoders)
    }

    /// Saved messages, per server id.
    pub fn saved_messages(&self) -> BTreeMap<String, Vec<SavedMessage>> {
        self.get("saved_messages")
    }

    pub fn set_saved_messages(&self, saved: &BTreeMap<String, Vec<SavedMessage>>) -> AppResult<()> {
        self.set("saved_messages", saved)
    }

    pub fn set_preferences(&self, preferences: &Preferences) -> AppResult<()> {
        self.set("preferences", preferences)
    }
}

/// The servers of `settings.json`, entry by entry.
#[derive(Debug, Default)]
pub struct ServerList {
    pub servers: Vec<ServerEntry>,
    pub unreadable: Vec<UnreadableServer>,
    unreadable_raw: Vec<serde_json::Value>,
}

fn read_servers(value: Option<serde_json::Value>) -> ServerList {
    let mut list = ServerList::default();
    let entries = match value {
        None | Some(serde_json::Value::Null) => return list,
        Some(serde_json::Value::Array(entries)) => entries,
        // Not a list at all: kept whole, as one unreadable entry.
        Some(other) => vec![other],
    };
    for (index, entry) in entries.into_iter().enumerate() {
        match serde_json::from_value::<ServerEntry>(entry.clone()) {
            Ok(server) => list.servers.push(server),
            Err(err) => {
                let text = entry.to_string();
                let mut end = text.len().min(200);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                list.unreadable.push(UnreadableServer {
                    index,
                    error: err.to_string(),
                    excerpt: text[..end].to_owned(),
                });
                list.unreadable_raw.push(entry);
            }
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_unreadable_server_entry_costs_only_itself() {
        let list = read_servers(Some(serde_json::json!([
            {"id": "a", "name": "A", "url": "ws://a/"},
            {"id": 7, "url": ["not", "a", "url"]},
            {"id": "b", "name": "B", "url": "ws://b/", "profile": {"protocol": "raw"}},
        ])));
        assert_eq!(list.servers.len(), 2);
        assert_eq!(
            list.servers[1].profile,
            Some(serde_json::json!({"protocol": "raw"}))
        );
        assert_eq!(list.unreadable.len(), 1);
        assert_eq!(list.unreadable[0].index, 1);
        assert!(
            list.unreadable[0].error.contains("invalid type"),
            "{:?}",
            list.unreadable
        );
        let whole = read_servers(Some(serde_json::json!({"oops": true})));
        assert!(whole.servers.is_empty());
        assert_eq!(whole.unreadable_raw, [serde_json::json!({"oops": true})]);
    }

    #[test]
    fn a_corrupt_settings_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, b"{\"servers\": [").unwrap();
        let (to, reason) = quarantine_if_corrupt(&path).expect("moved");
        assert!(!path.exists());
        assert_eq!(std::fs::read(&to).unwrap(), b"{\"servers\": [");
        assert!(reason.contains("EOF"), "{reason}");
        std::fs::write(&path, b"{\"servers\": []}").unwrap();
        assert_eq!(quarantine_if_corrupt(&path), None);
        assert_eq!(
            quarantine_if_corrupt(&dir.path().join("missing.json")),
            None
        );
    }
}
