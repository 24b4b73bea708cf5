//! Servers, subscribed feeds and preferences, in tauri-plugin-store's
//! `settings.json`. A file that is not valid JSON is moved aside (and the
//! history says so) instead of stopping the app.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};
use tauri::Runtime;
use tauri_plugin_store::{Store, StoreExt};

use crate::dto::{Preferences, ServerEntry};
use crate::error::{AppError, AppResult};

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

    pub fn servers(&self) -> Vec<ServerEntry> {
        self.get("servers")
    }

    pub fn set_servers(&self, servers: &[ServerEntry]) -> AppResult<()> {
        self.set("servers", &servers)
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

    pub fn set_preferences(&self, preferences: &Preferences) -> AppResult<()> {
        self.set("preferences", preferences)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
