//! The review journal: `RUN_DIR/review_journal.jsonl`, one JSON object a
//! line, appended and fsynced before the page is told a decision is saved,
//! so killing the server loses nothing the reviewer saw saved.
//!
//! The first line names the run and the SHA-256 of the queue it belongs
//! to; a journal is never replayed against another queue. A last line
//! without its newline is a write the server died in the middle of, never
//! acknowledged: it is cut off on open. Any other unreadable line stops
//! the review with its line number. A lock (`flock`) on the journal keeps
//! a second `dars review` off the same run.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const FILE: &str = "review_journal.jsonl";

/// Which pass a decision belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    First,
    Second,
}

/// A reviewer's answer for one study ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Verdict {
    Accept { person_id: i64 },
    RejectAll,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Header {
        version: u32,
        run_id: String,
        queue_sha256: String,
    },
    Decide {
        seq: u64,
        /// When it was saved (UTC, RFC 3339).
        at: String,
        reviewer: String,
        role: Role,
        study_id: String,
        #[serde(flatten)]
        verdict: Verdict,
        /// YYYY-MM-DD: the decisions file's `decided_on`.
        decided_on: String,
        /// Where an imported decision came from (the decisions file, an
        /// earlier run's journal); absent for the page's own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    Undo {
        seq: u64,
        at: String,
        reviewer: String,
        /// The `seq` of the decision undone.
        undoes: u64,
    },
}

impl Entry {
    pub fn seq(&self) -> u64 {
        match self {
            Entry::Header { .. } => 0,
            Entry::Decide { seq, .. } | Entry::Undo { seq, .. } => *seq,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("review journal {}: {source}\n  fix: check the work directory is writable by this user", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another `dars review` is serving this run (its journal {} is locked)\n  fix: use the page that review printed, or stop it (Ctrl-C) first", path.display())]
    Locked { path: PathBuf },
    #[error("review journal {} line {line}: {problem}\n  fix: the journal is written only by `dars review`; restore it from a backup, or move it aside to start the review of this run again", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("review journal {} belongs to another queue ({what})\n  fix: review the run it was written for, or move it aside", path.display())]
    OtherQueue { path: PathBuf, what: String },
}

/// An open, locked journal.
pub struct Journal {
    file: File,
    path: PathBuf,
    /// Lines cut off on open (an unacknowledged write).
    pub cut_tail: bool,
}

impl Journal {
    /// Opens (or creates) the journal of a run and reads its entries,
    /// after the header.
    pub fn open(
        run_dir: &Path,
        run_id: &str,
        queue_sha256: &str,
    ) -> Result<(Self, Vec<(usize, Entry)>), JournalError> {
        let path = run_dir.join(FILE);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => return Err(JournalError::Locked { path }),
            Err(fs4::TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut cut_tail = false;
        let whole = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(last) => last + 1,
            None => 0,
        };
        if whole < bytes.len() {
            // The server died writing this line: it was never fsynced and
            // the page never showed it saved.
            file.set_len(whole as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
            cut_tail = true;
        }
        let mut journal = Journal {
            file,
            path: path.clone(),
            cut_tail,
        };
        let mut entries = Vec::new();
        let text = std::str::from_utf8(&bytes[..whole]).map_err(|_| JournalError::Corrupt {
            path: path.clone(),
            line: 0,
            problem: "not UTF-8 text".into(),
        })?;
        let mut header_seen = false;
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let entry: Entry = serde_json::from_str(line).map_err(|e| JournalError::Corrupt {
                path: path.clone(),
                line: line_no,
                problem: e.to_string(),
            })?;
            match &entry {
                Entry::Header {
                    run_id: r,
                    queue_sha256: q,
                    ..
                } => {
                    if header_seen {
                        return Err(JournalError::Corrupt {
                            path: path.clone(),
                            line: line_no,
                            problem: "a second header".into(),
                        });
                    }
                    header_seen = true;
                    if q != queue_sha256 {
                        return Err(JournalError::OtherQueue {
                            path: path.clone(),
                            what: format!(
                                "it was written for run {r}; this run's review_queue.csv has other content"
                            ),
                        });
                    }
                }
                _ if !header_seen => {
                    return Err(JournalError::Corrupt {
                        path: path.clone(),
                        line: line_no,
                        problem: "an entry before the header".into(),
                    })
                }
                _ => entries.push((line_no, entry)),
            }
        }
        if !header_seen {
            journal.append(&Entry::Header {
                version: 1,
                run_id: run_id.to_string(),
                queue_sha256: queue_sha256.to_string(),
            })?;
            crate::workdir::sync_dir(run_dir).map_err(|source| JournalError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok((journal, entries))
    }

    /// Appends one entry and makes it durable before returning.
    pub fn append(&mut self, entry: &Entry) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(entry).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        // One write of the whole line (O_APPEND), then fdatasync: a crash
        // leaves either the whole line or a tail without its newline.
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads another run's journal without locking it (to carry its decisions
/// over to a run with the same queue). `None` when there is none.
pub fn read_entries(run_dir: &Path) -> Option<(String, Vec<Entry>)> {
    let text = std::fs::read_to_string(run_dir.join(FILE)).ok()?;
    let mut queue = None;
    let mut entries = Vec::new();
    for line in text.lines() {
        match serde_json::from_str::<Entry>(line) {
            Ok(Entry::Header { queue_sha256, .. }) => queue = Some(queue_sha256),
            Ok(e) => entries.push(e),
            Err(_) => {}
        }
    }
    Some((queue?, entries))
}
