//! Where cursors and unacknowledged publishes live between runs. The engine
//! sees only these traits; the CLI uses the file store below and the app
//! its own database.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::delivery::{Cursor, SessionMark};

#[derive(Debug, Clone, Error, PartialEq, Eq, Serialize)]
#[error("{what} {path}: {detail}")]
pub struct StoreError {
    pub what: String,
    pub path: String,
    pub detail: String,
}

impl StoreError {
    pub fn io(what: &str, path: &Path, err: impl std::fmt::Display) -> Self {
        StoreError {
            what: what.into(),
            path: path.display().to_string(),
            detail: err.to_string(),
        }
    }
}

/// Per server and feed: the epoch and last `seq` the consumer has handled.
pub trait CursorStore: Send + Sync {
    fn load(&self, server: &str, feed: &str) -> Result<Option<Cursor>, StoreError>;
    fn save(&self, server: &str, feed: &str, cursor: &Cursor) -> Result<(), StoreError>;
    /// The server's session resume point, on a wire that resumes whole
    /// sessions (Socket.IO).
    fn load_session(&self, server: &str) -> Result<Option<SessionMark>, StoreError>;
    fn save_session(&self, server: &str, mark: &SessionMark) -> Result<(), StoreError>;
    /// Makes every saved cursor durable.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A publish waiting for its `ack`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: String,
    pub feed: String,
    pub data: Box<RawValue>,
    pub queued_at_ms: i64,
}

/// The outbox of one server, in queue order.
pub trait OutboxStore: Send + Sync {
    fn load(&self) -> Result<Vec<OutboxEntry>, StoreError>;
    fn put(&self, entry: &OutboxEntry) -> Result<(), StoreError>;
    fn remove(&self, id: &str) -> Result<(), StoreError>;
}

#[derive(Debug, Default)]
pub struct MemoryCursorStore {
    cursors: Mutex<HashMap<(String, String), Cursor>>,
    sessions: Mutex<HashMap<String, SessionMark>>,
}

impl CursorStore for MemoryCursorStore {
    fn load(&self, server: &str, feed: &str) -> Result<Option<Cursor>, StoreError> {
        let map = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(&(server.to_owned(), feed.to_owned())).cloned())
    }

    fn save(&self, server: &str, feed: &str, cursor: &Cursor) -> Result<(), StoreError> {
        let mut map = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        map.insert((server.to_owned(), feed.to_owned()), cursor.clone());
        Ok(())
    }

    fn load_session(&self, server: &str) -> Result<Option<SessionMark>, StoreError> {
        let map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(server).cloned())
    }

    fn save_session(&self, server: &str, mark: &SessionMark) -> Result<(), StoreError> {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(server.to_owned(), mark.clone());
        Ok(())
    }
}

/// Keeps the outbox for the life of the process only.
#[derive(Debug, Default)]
pub struct MemoryOutboxStore;

impl OutboxStore for MemoryOutboxStore {
    fn load(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(Vec::new())
    }
    fn put(&self, _: &OutboxEntry) -> Result<(), StoreError> {
        Ok(())
    }
    fn remove(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

type CursorMap = BTreeMap<String, BTreeMap<String, Cursor>>;

#[derive(Debug, Serialize, Deserialize)]
struct CursorFile {
    version: u32,
    servers: CursorMap,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    sessions: BTreeMap<String, SessionMark>,
}

impl CursorFile {
    fn empty() -> Self {
        CursorFile {
            version: 1,
            servers: CursorMap::new(),
            sessions: BTreeMap::new(),
        }
    }
}

/// What opening a cursor file found, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRecovery {
    /// The file could not be read as cursors; it was moved here and the
    /// store starts empty.
    MovedAside { to: PathBuf, reason: String },
}

/// Cursors in one JSON file, replaced atomically (write, fsync, rename,
/// fsync the directory). Saves are written at most every `write_interval`;
/// `flush` writes what is left. A crash therefore loses at most that much
/// progress, and progress lost only means events delivered again, never
/// skipped.
#[derive(Debug)]
pub struct FileCursorStore {
    path: PathBuf,
    write_interval: Duration,
    state: Mutex<FileState>,
    /// Held for the store's life: a second process would overwrite this
    /// one's cursors with its own, so it is refused instead.
    _lock: fs::File,
}

#[derive(Debug)]
struct FileState {
    servers: CursorMap,
    sessions: BTreeMap<String, SessionMark>,
    dirty: bool,
    last_write: Option<Instant>,
}

impl FileCursorStore {
    pub fn open(path: impl Into<PathBuf>) -> Result<(Self, Option<FileRecovery>), StoreError> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| StoreError::io("creating", dir, e))?;
        }
        let lock = lock_beside(&path)?;
        let (file, recovery) = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<CursorFile>(&bytes) {
                Ok(file) => (file, None),
                Err(err) => {
                    let to = aside_path(&path);
                    fs::rename(&path, &to).map_err(|e| StoreError::io("moving aside", &path, e))?;
                    let reason = format!("unreadable cursor file: {err}");
                    (
                        CursorFile::empty(),
                        Some(FileRecovery::MovedAside { to, reason }),
                    )
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (CursorFile::empty(), None),
            Err(e) => return Err(StoreError::io("reading", &path, e)),
        };
        let store = FileCursorStore {
            path,
            write_interval: Duration::from_millis(200),
            state: Mutex::new(FileState {
                servers: file.servers,
                sessions: file.sessions,
                dirty: false,
                last_write: None,
            }),
            _lock: lock,
        };
        Ok((store, recovery))
    }

    /// The session mark saved in the cursor file at `path`, read without
    /// taking the file's lock: a short-lived publisher may look while a
    /// long-running consumer holds it (the file is replaced atomically, so
    /// it is always whole). A missing or unreadable file has none.
    pub fn read_session(path: &Path, server: &str) -> Option<SessionMark> {
        let bytes = fs::read(path).ok()?;
        let file: CursorFile = serde_json::from_slice(&bytes).ok()?;
        file.sessions.get(server).cloned()
    }

    pub fn with_write_interval(mut self, interval: Duration) -> Self {
        self.write_interval = interval;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a changed state now or, within `write_interval` of the last
    /// write, leaves it for the next save or `flush`.
    fn changed(&self, state: &mut FileState) -> Result<(), StoreError> {
        state.dirty = true;
        let due = state
            .last_write
            .is_none_or(|at| at.elapsed() >= self.write_interval);
        if due { self.write(state) } else { Ok(()) }
    }

    fn write(&self, state: &mut FileState) -> Result<(), StoreError> {
        let file = CursorFile {
            version: 1,
            servers: state.servers.clone(),
            sessions: state.sessions.clone(),
        };
        let text = serde_json::to_vec_pretty(&file)
            .map_err(|e| StoreError::io("encoding", &self.path, e))?;
        write_atomically(&self.path, &text)?;
        state.dirty = false;
        state.last_write = Some(Instant::now());
        Ok(())
    }
}

/// Takes `NAME.lock` beside `path` for this process, or says who has it.
fn lock_beside(path: &Path) -> Result<fs::File, StoreError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let lock_path = path.with_file_name(name);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::io("opening", &lock_path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::io(
            "locking",
            &lock_path,
            "another process uses these cursors (give each its own state directory)",
        )),
        Err(fs::TryLockError::Error(e)) => Err(StoreError::io("locking", &lock_path, e)),
    }
}

/// Where an unreadable file is moved: beside it, named
/// `NAME.corrupt-<unix ms>`, so nothing is lost and the next start is clean.
pub fn aside_path(path: &Path) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".corrupt-{stamp}"));
    path.with_file_name(name)
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new
/// content, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = fs::File::create(&tmp).map_err(|e| StoreError::io("creating", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io("writing", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| StoreError::io("replacing", path, e))?;
    // The rename is durable only once the directory entry is.
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

impl CursorStore for FileCursorStore {
    fn load(&self, server: &str, feed: &str) -> Result<Option<Cursor>, StoreError> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(state
            .servers
            .get(server)
            .and_then(|feeds| feeds.get(feed))
            .cloned())
    }

    fn save(&self, server: &str, feed: &str, cursor: &Cursor) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .servers
            .entry(server.to_owned())
            .or_default()
            .insert(feed.to_owned(), cursor.clone());
        self.changed(&mut state)
    }

    fn load_session(&self, server: &str) -> Result<Option<SessionMark>, StoreError> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(state.sessions.get(server).cloned())
    }

    fn save_session(&self, server: &str, mark: &SessionMark) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.sessions.insert(server.to_owned(), mark.clone());
        self.changed(&mut state)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.dirty {
            self.write(&mut state)
        } else {
            Ok(())
        }
    }
}

impl Drop for FileCursorStore {
    fn drop(&mut self) {
        if let Err(err) = self.flush() {
            tracing::warn!(%err, "cursors not saved at exit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(epoch: &str, seq: u64) -> Cursor {
        Cursor {
            epoch: epoch.into(),
            seq,
        }
    }

    #[test]
    fn cursors_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cursors.json");
        {
            let (store, recovery) = FileCursorStore::open(&path).unwrap();
            assert_eq!(recovery, None);
            store.save("ws://a/", "f", &cursor("e", 3)).unwrap();
            store.save("ws://a/", "f", &cursor("e", 4)).unwrap();
            store.save("ws://b/", "f", &cursor("x", 1)).unwrap();
        }
        let (store, _) = FileCursorStore::open(&path).unwrap();
        assert_eq!(store.load("ws://a/", "f").unwrap(), Some(cursor("e", 4)));
        assert_eq!(store.load("ws://b/", "f").unwrap(), Some(cursor("x", 1)));
        assert_eq!(store.load("ws://b/", "g").unwrap(), None);
        assert!(!dir.path().join("cursors.json.tmp").exists());
    }

    #[test]
    fn a_session_mark_survives_reopening_beside_the_cursors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cursors.json");
        let mark = SessionMark {
            session: "pid-1".into(),
            offset: "off-7".into(),
        };
        {
            let (store, _) = FileCursorStore::open(&path).unwrap();
            store.save("ws://a/", "f", &cursor("", 2)).unwrap();
            store.save_session("ws://a/", &mark).unwrap();
        }
        let (store, _) = FileCursorStore::open(&path).unwrap();
        assert_eq!(store.load_session("ws://a/").unwrap(), Some(mark));
        assert_eq!(store.load_session("ws://b/").unwrap(), None);
        assert_eq!(store.load("ws://a/", "f").unwrap(), Some(cursor("", 2)));
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cursors.json");
        fs::write(&path, b"{ this is not json").unwrap();
        let (store, recovery) = FileCursorStore::open(&path).unwrap();
        let Some(FileRecovery::MovedAside { to, reason }) = recovery else {
            panic!("corruption not reported")
        };
        assert!(reason.contains("unreadable"));
        assert_eq!(fs::read(&to).unwrap(), b"{ this is not json");
        assert_eq!(store.load("ws://a/", "f").unwrap(), None);
        store.save("ws://a/", "f", &cursor("e", 1)).unwrap();
        store.flush().unwrap();
        assert!(path.exists());
    }

    #[test]
    fn a_second_store_on_the_same_file_is_refused_while_the_first_lives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cursors.json");
        let (first, _) = FileCursorStore::open(&path).unwrap();
        let err = FileCursorStore::open(&path).unwrap_err();
        assert!(err.detail.contains("another process"), "{err}");
        drop(first);
        assert!(FileCursorStore::open(&path).is_ok());
    }

    #[test]
    fn throttled_saves_reach_disk_on_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let (store, _) = FileCursorStore::open(&path).unwrap();
        let store = store.with_write_interval(Duration::from_secs(3600));
        store.save("s", "f", &cursor("e", 1)).unwrap();
        store.save("s", "f", &cursor("e", 2)).unwrap();
        let on_disk: CursorFile = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(on_disk.servers["s"]["f"].seq, 1, "second save is throttled");
        store.flush().unwrap();
        let on_disk: CursorFile = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(on_disk.servers["s"]["f"].seq, 2);
    }
}
