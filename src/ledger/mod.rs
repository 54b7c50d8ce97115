//! Stage 6c, ledger: the tamper-evident record of what left the building.
//!
//! An append-only JSON-lines file. Every line is one [`LedgerEntry`] with a
//! sequence number (equal to its line number, from 1) and `prev_sha256`,
//! the SHA-256 of the previous line's bytes including its newline (64 zeros
//! for the first line), so an auditor can check a link with stock tools:
//! `sed -n 4p ledger.jsonl | sha256sum` equals line 5's `prev_sha256`.
//!
//! Editing, deleting, inserting or reordering any line breaks the chain
//! and [`Ledger::verify`] names the line. What a hash chain cannot show on
//! its own is a change to the very last line or its removal: keep a copy of
//! the latest `prev_sha256` elsewhere (the release report) to close that.
//!
//! Appends verify the whole chain first, take a lock file (`NAME.lock`)
//! against a concurrent `dars`, write the line with `O_APPEND` and fsync.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::package::{sha256_hex, ManifestFile};
use crate::workdir::sync_dir;

/// `prev_sha256` of the first entry.
pub const GENESIS_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How long an append waits for another process's lock (short in tests,
/// which wait it out on purpose).
const LOCK_WAIT: Duration = Duration::from_secs(if cfg!(test) { 1 } else { 10 });

/// What happened.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LedgerEvent {
    /// A release was delivered.
    Release {
        agreement: String,
        run_id: String,
        destination: String,
        manifest_sha256: String,
        files: Vec<ManifestFile>,
        /// Released despite a failed pre-release check, by an operator's choice.
        forced: bool,
    },
    /// The recipient certified that released data was destroyed.
    Destruction {
        agreement: String,
        certificate_sha256: String,
        certificate_name: String,
    },
}

/// One line of the ledger.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LedgerEntry {
    /// 1 for the first line, then one more per line.
    pub seq: u64,
    /// RFC 3339 UTC.
    pub at: String,
    /// SHA-256 of the previous line's bytes, newline included.
    pub prev_sha256: String,
    #[serde(flatten)]
    pub event: LedgerEvent,
}

/// Why the ledger could not be read, verified or appended to. Chain errors
/// name the 1-based line where the damage is.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot read the ledger {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "cannot append to the ledger {path}: {source}; nothing was recorded, so fix the cause \
         and record the event again"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "the ledger is locked by {lock}: another dars is appending; if none is running, a \
         crashed one left the lock behind: remove {lock} and retry"
    )]
    Locked { lock: PathBuf },

    #[error(
        "line {line} of the ledger {path} is not a ledger entry ({reason}): the file was edited \
         or damaged; restore it from a backup and run `dars ledger verify`"
    )]
    BadJson {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error(
        "line {line} of the ledger {path} has no newline at its end: an append was interrupted \
         or the line was cut; restore the ledger from a backup"
    )]
    IncompleteLine { path: PathBuf, line: usize },

    #[error(
        "line {line} of the ledger {path} was edited after it was written ({detail}); \
         restore the ledger from a backup and find out who changed it"
    )]
    EditedLine {
        path: PathBuf,
        line: usize,
        detail: String,
    },

    #[error(
        "{missing} entr{} deleted from the ledger {path} just before line {line} (that line has \
         seq {found}, expected {expected}); restore the ledger from a backup and find out who \
         changed it",
        if *missing == 1 { "y was" } else { "ies were" }
    )]
    DeletedLines {
        path: PathBuf,
        line: usize,
        missing: u64,
        found: u64,
        expected: u64,
    },

    #[error(
        "line {line} of the ledger {path} (seq {seq}) is out of place: it was written right \
         after what is now line {written_after}; lines were reordered or copied; restore the \
         ledger from a backup and find out who changed it"
    )]
    ReorderedLine {
        path: PathBuf,
        line: usize,
        seq: u64,
        written_after: usize,
    },

    #[error("cannot encode a ledger entry: {0}")]
    Encode(#[from] serde_json::Error),
}

/// An append-only, hash-chained JSON-lines file of releases and
/// destructions.
#[derive(Debug, Clone)]
pub struct Ledger {
    path: PathBuf,
}

/// Serialises appends within this process; the lock file covers others.
static APPEND: Mutex<()> = Mutex::new(());

impl Ledger {
    /// The ledger at `path`; the file is created by the first append.
    pub fn open(path: &Path) -> Ledger {
        Ledger {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Verifies the chain, then appends `event` as the next entry with
    /// `O_APPEND` and fsync. Creates the file with mode 0600. Refuses to
    /// extend a damaged ledger.
    pub fn append(&self, event: LedgerEvent) -> Result<LedgerEntry, LedgerError> {
        // A poisoned mutex only means another append panicked; the lock
        // file and the chain check below still protect the file.
        let _in_process = APPEND.lock().unwrap_or_else(|e| e.into_inner());
        let _lock = LockFile::acquire(&self.path)?;

        let lines = self.read_chain()?;
        let (seq, prev_sha256) = match lines.last() {
            Some(last) => (last.entry.seq + 1, last.sha256.clone()),
            None => (1, GENESIS_SHA256.to_string()),
        };
        let entry = LedgerEntry {
            seq,
            at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            prev_sha256,
            event,
        };
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');

        let write_error = |source| LedgerError::Write {
            path: self.path.clone(),
            source,
        };
        let created = !self.path.exists();
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(write_error)?;
        file.write_all(&line).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        if created {
            if let Some(dir) = self.path.parent() {
                sync_dir(dir).map_err(write_error)?;
            }
        }
        Ok(entry)
    }

    /// Every entry, oldest first, after verifying the chain. A ledger that
    /// does not exist yet is empty.
    pub fn entries(&self) -> Result<Vec<LedgerEntry>, LedgerError> {
        Ok(self.read_chain()?.into_iter().map(|l| l.entry).collect())
    }

    /// Checks every line and every link; returns the number of entries.
    pub fn verify(&self) -> Result<usize, LedgerError> {
        Ok(self.read_chain()?.len())
    }

    fn read_chain(&self) -> Result<Vec<ChainLine>, LedgerError> {
        let raw = self.read_lines()?;
        let hashes: Vec<String> = raw.iter().map(|line| sha256_hex(line)).collect();
        // First line with each hash: where a moved line was written after.
        let mut by_hash: HashMap<&str, usize> = HashMap::new();
        for (index, hash) in hashes.iter().enumerate() {
            by_hash.entry(hash.as_str()).or_insert(index + 1);
        }

        let mut chain: Vec<ChainLine> = Vec::with_capacity(raw.len());
        for (index, bytes) in raw.iter().enumerate() {
            let line = index + 1;
            let expected_seq = line as u64;
            if bytes.last() != Some(&b'\n') {
                return Err(LedgerError::IncompleteLine {
                    path: self.path.clone(),
                    line,
                });
            }
            let entry: LedgerEntry =
                serde_json::from_slice(bytes).map_err(|e| LedgerError::BadJson {
                    path: self.path.clone(),
                    line,
                    reason: e.to_string(),
                })?;
            let expected_prev = match index.checked_sub(1) {
                Some(previous) => hashes[previous].as_str(),
                None => GENESIS_SHA256,
            };
            if entry.prev_sha256 == expected_prev {
                if entry.seq != expected_seq {
                    return Err(LedgerError::EditedLine {
                        path: self.path.clone(),
                        line,
                        detail: format!("its seq is {}, expected {expected_seq}", entry.seq),
                    });
                }
            } else if let Some(&written_after) = by_hash
                .get(entry.prev_sha256.as_str())
                .filter(|&&after| after + 1 != line)
            {
                return Err(LedgerError::ReorderedLine {
                    path: self.path.clone(),
                    line,
                    seq: entry.seq,
                    written_after,
                });
            } else if entry.seq > expected_seq {
                return Err(LedgerError::DeletedLines {
                    path: self.path.clone(),
                    line,
                    missing: entry.seq - expected_seq,
                    found: entry.seq,
                    expected: expected_seq,
                });
            } else if line == 1 {
                return Err(LedgerError::EditedLine {
                    path: self.path.clone(),
                    line,
                    detail: "the first entry's prev_sha256 is not 64 zeros".to_string(),
                });
            } else {
                return Err(LedgerError::EditedLine {
                    path: self.path.clone(),
                    line: line - 1,
                    detail: format!(
                        "it no longer hashes to the prev_sha256 recorded on line {line}"
                    ),
                });
            }
            chain.push(ChainLine {
                entry,
                sha256: hashes[index].clone(),
            });
        }
        Ok(chain)
    }

    /// The raw lines, each with its newline if it has one.
    fn read_lines(&self) -> Result<Vec<Vec<u8>>, LedgerError> {
        let read_error = |source| LedgerError::Read {
            path: self.path.clone(),
            source,
        };
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read_error(e)),
        };
        let mut reader = BufReader::new(file);
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).map_err(read_error)? == 0 {
                return Ok(lines);
            }
            lines.push(line);
        }
    }
}

struct ChainLine {
    entry: LedgerEntry,
    sha256: String,
}

/// `LEDGER.lock`, created exclusively and removed on drop, so that two dars
/// processes never append the same sequence number.
struct LockFile {
    path: PathBuf,
}

impl LockFile {
    fn acquire(ledger: &Path) -> Result<Self, LedgerError> {
        let mut name = ledger.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        let path = ledger.with_file_name(name);
        let started = Instant::now();
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut file) => {
                    // The pid is for a human deciding whether the lock is stale.
                    let _ = writeln!(file, "{}", std::process::id());
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if started.elapsed() >= LOCK_WAIT {
                        return Err(LedgerError::Locked { lock: path });
                    }
                    thread::sleep(Duration::from_millis(50));
                }
                Err(source) => {
                    return Err(LedgerError::Write {
                        path: ledger.to_path_buf(),
                        source,
                    })
                }
            }
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
