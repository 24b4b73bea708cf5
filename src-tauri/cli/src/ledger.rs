//! `tail --output FILE`: the output file doubles as the record of progress,
//! so a consumer reading FILE sees every event exactly once even when the
//! CLI is killed with `kill -9`.
//!
//! Cursors alone cannot promise that for stdout: whichever of "print" and
//! "save cursor" happens second is lost by a kill, and the first repeats or
//! skips. Here the cursors are saved together with how many bytes of FILE
//! they account for (`FILE.holdline.json`, replaced atomically after FILE's
//! data is synced). On start, the lines FILE holds past that mark (those
//! written after the last save) are read back into the cursors, and an
//! incomplete last line left by a kill is cut off. The run then continues
//! right after the last complete line.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use holdline_engine::{Cursor, CursorStore, SessionMark, StoreError, aside_path, write_atomically};
use serde::{Deserialize, Serialize};

/// How often the cursors are written at most; a kill loses nothing either
/// way, this only bounds how much of FILE the next start reads back.
const WRITE_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, Serialize, Deserialize)]
struct LedgerFile {
    version: u32,
    server: String,
    /// Bytes of the output file the cursors account for.
    output_bytes: u64,
    cursors: BTreeMap<String, Cursor>,
    /// The session's resume point as of this save (lines carry none, so a
    /// kill between saves presents an older one: the server then sends
    /// again what came after it, and only numbered feeds drop those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session: Option<SessionMark>,
}

/// Why a ledger could not be opened; the CLI maps it to an exit code.
#[derive(Debug)]
pub enum OpenError {
    /// FILE was written for another server: mixing them would be wrong.
    OtherServer {
        path: PathBuf,
        server: String,
    },
    Io(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::OtherServer { path, server } => write!(
                f,
                "{} holds events from {server}; choose another --output for this server",
                path.display()
            ),
            OpenError::Io(message) => f.write_str(message),
        }
    }
}

fn io_error(what: &str, path: &Path, err: impl std::fmt::Display) -> OpenError {
    OpenError::Io(format!("{what} {}: {err}", path.display()))
}

/// What opening found that a person should know about.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Complete lines read back from FILE past the saved mark.
    pub lines_read_back: u64,
    /// Bytes of an incomplete last line that were cut off.
    pub cut_bytes: u64,
    /// Lines FILE held that are not ours (skipped).
    pub foreign_lines: u64,
    /// The ledger file was unreadable and moved here.
    pub moved_aside: Option<PathBuf>,
    /// FILE was shorter than the ledger says: someone truncated or
    /// replaced it. The saved cursors still hold.
    pub shorter_than_recorded: bool,
}

pub struct OutputLedger {
    output_path: PathBuf,
    ledger_path: PathBuf,
    server: String,
    state: Mutex<LedgerState>,
}

struct LedgerState {
    output: File,
    /// Bytes of complete lines in FILE.
    written: u64,
    cursors: BTreeMap<String, Cursor>,
    session: Option<SessionMark>,
    dirty: bool,
    last_write: Option<Instant>,
}

/// The fields of an output line that move a cursor.
#[derive(Deserialize)]
struct LineRecord {
    kind: String,
    feed: Option<String>,
    seq: Option<u64>,
    epoch: Option<String>,
    to: Option<u64>,
}

impl OutputLedger {
    /// Opens (creating) `output_path` for `server`, recovering the cursors
    /// its lines imply.
    pub fn open(output_path: &Path, server: &str) -> Result<(Self, Recovery), OpenError> {
        let ledger_path = ledger_path_for(output_path);
        let mut recovery = Recovery::default();
        let saved = match fs::read(&ledger_path) {
            Ok(bytes) => match serde_json::from_slice::<LedgerFile>(&bytes) {
                Ok(saved) => Some(saved),
                Err(_) => {
                    let to = aside_path(&ledger_path);
                    fs::rename(&ledger_path, &to)
                        .map_err(|e| io_error("moving aside", &ledger_path, e))?;
                    recovery.moved_aside = Some(to);
                    None
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error("reading", &ledger_path, e)),
        };
        if let Some(saved) = &saved
            && saved.server != server
        {
            return Err(OpenError::OtherServer {
                path: output_path.to_owned(),
                server: saved.server.clone(),
            });
        }
        let mut output = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(output_path)
            .map_err(|e| io_error("opening", output_path, e))?;
        if output.try_lock().is_err() {
            return Err(OpenError::Io(format!(
                "{} is in use by another holdline-cli",
                output_path.display()
            )));
        }
        let length = output
            .metadata()
            .map_err(|e| io_error("reading", output_path, e))?
            .len();
        let (mark, mut cursors, session) = match saved {
            Some(saved) => (saved.output_bytes, saved.cursors, saved.session),
            None => (0, BTreeMap::new(), None),
        };
        let written = if length < mark {
            recovery.shorter_than_recorded = true;
            length
        } else {
            let end = read_back(&mut output, mark, &mut cursors, &mut recovery)
                .map_err(|e| io_error("reading", output_path, e))?;
            if end < length {
                output
                    .set_len(end)
                    .map_err(|e| io_error("cutting an incomplete line from", output_path, e))?;
                recovery.cut_bytes = length - end;
            }
            end
        };
        let ledger = OutputLedger {
            output_path: output_path.to_owned(),
            ledger_path,
            server: server.to_owned(),
            state: Mutex::new(LedgerState {
                output,
                written,
                cursors,
                session,
                dirty: true,
                last_write: None,
            }),
        };
        // The recovered state is written at once, so the mark matches FILE.
        ledger.flush().map_err(|e| OpenError::Io(e.to_string()))?;
        Ok((ledger, recovery))
    }

    pub fn path(&self) -> &Path {
        &self.output_path
    }

    /// Appends one complete line (with its newline) in a single write.
    pub fn append_line(&self, line: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        state.output.write_all(line)?;
        state.written += line.len() as u64;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Persists a changed state now or, within `WRITE_INTERVAL` of the last
    /// write, leaves it for the next save or `flush`.
    fn changed(&self, state: &mut LedgerState) -> Result<(), StoreError> {
        state.dirty = true;
        let due = state
            .last_write
            .is_none_or(|at| at.elapsed() >= WRITE_INTERVAL);
        if due { self.persist(state) } else { Ok(()) }
    }

    fn persist(&self, state: &mut LedgerState) -> Result<(), StoreError> {
        // FILE's lines must be durable before a mark that counts them.
        state
            .output
            .sync_data()
            .map_err(|e| StoreError::io("syncing", &self.output_path, e))?;
        let file = LedgerFile {
            version: 1,
            server: self.server.clone(),
            output_bytes: state.written,
            cursors: state.cursors.clone(),
            session: state.session.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| StoreError::io("encoding", &self.ledger_path, e))?;
        write_atomically(&self.ledger_path, &bytes)?;
        state.dirty = false;
        state.last_write = Some(Instant::now());
        Ok(())
    }
}

impl CursorStore for OutputLedger {
    fn load(&self, server: &str, feed: &str) -> Result<Option<Cursor>, StoreError> {
        if server != self.server {
            return Ok(None);
        }
        Ok(self.lock().cursors.get(feed).cloned())
    }

    fn save(&self, server: &str, feed: &str, cursor: &Cursor) -> Result<(), StoreError> {
        if server != self.server {
            return Ok(());
        }
        let mut state = self.lock();
        state.cursors.insert(feed.to_owned(), cursor.clone());
        self.changed(&mut state)
    }

    fn load_session(&self, server: &str) -> Result<Option<SessionMark>, StoreError> {
        if server != self.server {
            return Ok(None);
        }
        Ok(self.lock().session.clone())
    }

    fn save_session(&self, server: &str, mark: &SessionMark) -> Result<(), StoreError> {
        if server != self.server {
            return Ok(());
        }
        let mut state = self.lock();
        state.session = Some(mark.clone());
        self.changed(&mut state)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.dirty {
            self.persist(&mut state)
        } else {
            Ok(())
        }
    }
}

impl Drop for OutputLedger {
    fn drop(&mut self) {
        if let Err(err) = self.flush() {
            eprintln!("holdline-cli: cursors not saved at exit: {err}");
        }
    }
}

/// `FILE.holdline.json`, beside FILE so the two travel together.
pub fn ledger_path_for(output_path: &Path) -> PathBuf {
    let mut name = output_path.file_name().unwrap_or_default().to_os_string();
    name.push(".holdline.json");
    output_path.with_file_name(name)
}

/// Applies FILE's complete lines from `mark` on to `cursors`; returns where
/// the last complete line ends.
fn read_back(
    output: &mut File,
    mark: u64,
    cursors: &mut BTreeMap<String, Cursor>,
    recovery: &mut Recovery,
) -> io::Result<u64> {
    output.seek(SeekFrom::Start(mark))?;
    let mut reader = BufReader::new(Read::by_ref(output));
    let mut end = mark;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 || line.last() != Some(&b'\n') {
            break;
        }
        end += read as u64;
        recovery.lines_read_back += 1;
        match serde_json::from_slice::<LineRecord>(&line) {
            Ok(record) => apply(record, cursors),
            Err(_) => recovery.foreign_lines += 1,
        }
    }
    Ok(end)
}

fn apply(record: LineRecord, cursors: &mut BTreeMap<String, Cursor>) {
    let Some(feed) = record.feed else { return };
    match (record.kind.as_str(), record.epoch, record.seq, record.to) {
        // An event without an epoch (a wire that has none) keeps "".
        ("event", epoch, Some(seq), _) => {
            cursors.insert(feed, Cursor::new(epoch.as_deref(), seq));
        }
        ("reset", Some(epoch), _, _) => {
            cursors.insert(feed, Cursor { epoch, seq: 0 });
        }
        // A gap line names no epoch: it moves a cursor within the epoch an
        // earlier line or the saved state established.
        ("gap", _, _, Some(to)) => {
            cursors
                .entry(feed)
                .and_modify(|cursor| cursor.seq = to)
                .or_insert_with(|| Cursor::new(None, to));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "ws://127.0.0.1:1/";

    fn cursor(epoch: &str, seq: u64) -> Cursor {
        Cursor {
            epoch: epoch.into(),
            seq,
        }
    }

    fn event_line(feed: &str, seq: u64) -> Vec<u8> {
        format!("{{\"kind\":\"event\",\"feed\":\"{feed}\",\"seq\":{seq},\"epoch\":\"e1\",\"data\":{{}}}}\n")
            .into_bytes()
    }

    #[test]
    fn lines_after_the_last_save_are_read_back_and_a_torn_line_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        {
            let (ledger, _) = OutputLedger::open(&path, SERVER).unwrap();
            ledger.append_line(&event_line("a", 1)).unwrap();
            ledger.save(SERVER, "a", &cursor("e1", 1)).unwrap();
            ledger.flush().unwrap();
            // Written after the save: the ledger does not know them yet.
            let mut late = OpenOptions::new().append(true).open(&path).unwrap();
            late.write_all(&event_line("a", 2)).unwrap();
            late.write_all(&event_line("b", 7)).unwrap();
            late.write_all(b"{\"kind\":\"gap\",\"feed\":\"a\",\"from\":3,\"to\":5}\n")
                .unwrap();
            late.write_all(b"{\"kind\":\"event\",\"fe").unwrap();
            // As if killed now: nothing more reaches the ledger file.
            ledger.lock().dirty = false;
        }
        let (ledger, recovery) = OutputLedger::open(&path, SERVER).unwrap();
        assert_eq!(recovery.lines_read_back, 3);
        assert_eq!(recovery.cut_bytes, 19);
        assert_eq!(ledger.load(SERVER, "a").unwrap(), Some(cursor("e1", 5)));
        // `b` first appeared after the save; its epoch comes from its line.
        assert_eq!(ledger.load(SERVER, "b").unwrap(), Some(cursor("e1", 7)));
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("\"to\":5}\n"), "{text}");
    }

    #[test]
    fn a_file_from_another_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        drop(OutputLedger::open(&path, SERVER).unwrap());
        let err = OutputLedger::open(&path, "ws://elsewhere/")
            .err()
            .expect("refused");
        assert!(matches!(err, OpenError::OtherServer { .. }), "{err}");
    }

    #[test]
    fn a_second_writer_is_refused_while_the_first_holds_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let (_first, _) = OutputLedger::open(&path, SERVER).unwrap();
        let err = OutputLedger::open(&path, SERVER).err().expect("refused");
        assert!(err.to_string().contains("in use"), "{err}");
    }

    #[test]
    fn a_truncated_file_keeps_the_saved_cursors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        {
            let (ledger, _) = OutputLedger::open(&path, SERVER).unwrap();
            ledger.append_line(&event_line("a", 1)).unwrap();
            ledger.save(SERVER, "a", &cursor("e1", 1)).unwrap();
        }
        fs::write(&path, b"").unwrap(); // rotated by the user
        let (ledger, recovery) = OutputLedger::open(&path, SERVER).unwrap();
        assert!(recovery.shorter_than_recorded);
        assert_eq!(ledger.load(SERVER, "a").unwrap(), Some(cursor("e1", 1)));
    }

    #[test]
    fn a_corrupt_ledger_is_moved_aside_and_the_file_read_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        fs::write(&path, event_line("a", 4)).unwrap();
        fs::write(ledger_path_for(&path), b"{not json").unwrap();
        let (ledger, recovery) = OutputLedger::open(&path, SERVER).unwrap();
        assert!(recovery.moved_aside.is_some());
        assert_eq!(ledger.load(SERVER, "a").unwrap(), Some(cursor("e1", 4)));
    }
}
