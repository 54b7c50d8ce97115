//! Stage 6c, ledger: the tamper-evident record of what left the building.
//!
//! An append-only JSON-lines file. Every line is one [`LedgerEntry`] with a
//! sequence number (equal to its line number, from 1), `prev_sha256`, the
//! SHA-256 of the previous line's bytes including its newline (64 zeros
//! for the first line), and last `sig`, an SSHSIG by the site's release
//! signing key (namespace `dars-ledger`) over the line without its `sig`
//! field. Beside it, `NAME.head` is the signed head: the sequence number
//! and SHA-256 of the last line, rewritten (atomically) after each append.
//!
//! What each part finds:
//! - the chain: an edited, deleted, inserted, duplicated or moved line;
//! - the signatures: a line added or rewritten by someone without the key,
//!   even with every later hash recomputed to match;
//! - the head: the end of the file edited, deleted or cut off, the file
//!   emptied or deleted (a head without its ledger);
//! - [`Anchor`]s, checked by [`Ledger::check_anchors`]: a ledger rolled
//!   back or replaced together with its head. Each run's record of its
//!   release in the work directory, and each signed manifest, which
//!   carries the ledger head it was made on top of and which recipients
//!   hold outside the building, must find its entry.
//!
//! An auditor checks a link with stock tools
//! (`sed -n 4p ledger.jsonl | sha256sum` equals line 5's `prev_sha256`)
//! and a line's signature with `ssh-keygen -Y verify -n dars-ledger` (the
//! README shows how).
//!
//! Appends take a kernel lock ([`crate::lock`]) against a concurrent
//! `dars`, verify everything, write one whole line with `O_APPEND` and
//! fsync it. A failed write (disk full) is cut back off before the error
//! is returned; a line torn by a crash (no newline, not covered by the
//! head) is moved aside by the next append, which records that it did.

pub mod register_facts;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::lock::{Holder, Lock, LockError};
use crate::package::{sha256_hex, LedgerHead, ManifestFile, SigningKey, VerifyingKey};
use crate::workdir::{sync_dir, write_private};

/// `prev_sha256` of the first entry.
pub const GENESIS_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SSHSIG namespace of a ledger line's signature.
pub const ENTRY_NAMESPACE: &str = "dars-ledger";
/// SSHSIG namespace of the signed head.
pub const HEAD_NAMESPACE: &str = "dars-ledger-head";

/// How long an append waits for another process's append to finish. An
/// append holds the lock for milliseconds, so this is only ever reached
/// when a process is stuck.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// What separates a line's signed body from its signature.
const SIG_FIELD: &[u8] = b",\"sig\":\"";

/// What happened.
// Nearly every entry is a release, so boxing that variant would save no
// memory; entries are read a ledger at a time, never kept by the million.
#[allow(clippy::large_enum_variant)]
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
        /// What the public register says of this release (absent from
        /// entries written before the register existed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        register: Option<register_facts::RegisterFacts>,
        /// The cohort's linkage as this release used it, kept for another
        /// agreement to reuse (absent from entries written before dars
        /// kept linkages).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        linkage: Option<ReleasedLinkage>,
    },
    /// The recipient certified that released data was destroyed.
    Destruction {
        agreement: String,
        certificate_sha256: String,
        certificate_name: String,
    },
    /// An append was interrupted (a crash, the disk full) and left part of
    /// a line after the last entry; the next append moved those bytes to
    /// `saved_as` before writing.
    Recovery {
        torn_bytes: u64,
        torn_sha256: String,
        saved_as: String,
    },
}

/// The linkage a release used, kept in the work directory as
/// `REFERENCE/linkage/RUN_ID.parquet` (study ID and person ID pairs) so that
/// an agreement of the same organisation can reuse it (`[cohort] reuse`):
/// its SHA-256, signed with the entry, is checked before it is reused.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReleasedLinkage {
    /// SHA-256 of the linkage file's bytes.
    pub sha256: String,
    /// Persons linked (study IDs with a person), for the reuser's summary.
    pub pairs: u64,
    /// When this release itself reused another's linkage: that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<crate::package::ReusedLinkage>,
}

/// One line of the ledger, as signed.
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

/// The signed head, `NAME.head`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct HeadBody {
    seq: u64,
    sha256: String,
    at: String,
}

/// Something outside the ledger that says a release was recorded in it: a
/// released run's record in the work directory, or a signed manifest
/// (which carries the ledger head it was made on top of).
#[derive(Clone, Debug, PartialEq)]
pub struct Anchor {
    /// Where the claim comes from, for the message.
    pub source: PathBuf,
    pub agreement: String,
    pub run_id: String,
    /// SHA-256 of the release's `manifest.json`, when it is at hand.
    pub manifest_sha256: Option<String>,
    /// The ledger head the release's manifest was made on top of.
    pub extends: Option<LedgerHead>,
}

/// A verified ledger.
#[derive(Clone, Debug)]
pub struct Verified {
    pub entries: Vec<LedgerEntry>,
    /// SHA-256 of each entry's line, in order.
    pub line_sha256: Vec<String>,
    /// The last entry (seq 0 and 64 zeros when the ledger is empty).
    pub head: LedgerHead,
    /// Fingerprint of the key every entry is signed by.
    pub signer: String,
    /// States an interrupted append leaves, which the next append repairs.
    pub notes: Vec<Note>,
}

/// A state an interrupted append leaves behind: not damage to anything
/// recorded, and repaired (and recorded) by the next append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// Bytes after the last complete line, which no head covers.
    TornTail { bytes: u64 },
    /// Signed entries after the one the head names: the head was not
    /// rewritten after they were appended.
    HeadBehind { head_seq: u64, last_seq: u64 },
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::TornTail { bytes } => write!(
                f,
                "an interrupted append left {bytes} bytes after the last entry; the next \
                 append moves them aside and records that it did"
            ),
            Note::HeadBehind { head_seq, last_seq } => write!(
                f,
                "the signed head names entry {head_seq} but the ledger ends at entry \
                 {last_seq} (signed): an append was interrupted before it rewrote the head; \
                 the next append rewrites it"
            ),
        }
    }
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
        "the ledger is locked by another dars ({holder}) and stayed locked for {waited_s} s \
         (lock {lock}); an append takes milliseconds, so that process is stuck: find it \
         (`ps -p PID`), let it finish or stop it, then retry"
    )]
    Locked {
        lock: PathBuf,
        holder: Holder,
        waited_s: u64,
    },

    #[error("cannot take the ledger lock: {0}")]
    Lock(#[source] LockError),

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
        "line {line} of the ledger {path} has no newline at its end, and the signed head says \
         it was recorded whole: the line was cut; restore the ledger from a backup"
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

    #[error(
        "line {line} of the ledger {path} is not signed by the site's release signing key \
         {key} ({reason}): it was added or rewritten by someone without that key; restore the \
         ledger from a backup and find out who changed it"
    )]
    BadSignature {
        path: PathBuf,
        line: usize,
        key: String,
        reason: String,
    },

    #[error(
        "the ledger {path} holds {entries} entr{} but has no signed head {head}: the head was \
         deleted, or the ledger was put together by hand; restore both from a backup",
        if *entries == 1 { "y" } else { "ies" }
    )]
    HeadMissing {
        path: PathBuf,
        head: PathBuf,
        entries: usize,
    },

    #[error(
        "the ledger head {head} is not one dars signed with the site's key {key} ({reason}): \
         it was edited or replaced; restore the ledger and its head from a backup"
    )]
    BadHead {
        head: PathBuf,
        key: String,
        reason: String,
    },

    #[error(
        "the ledger {path} {found}, but its signed head {head} says it holds {head_seq} \
         entr{}: entries were deleted from its end, or it was cut, emptied or deleted; \
         restore it from a backup and find out who changed it",
        if *head_seq == 1 { "y" } else { "ies" }
    )]
    Truncated {
        path: PathBuf,
        head: PathBuf,
        head_seq: u64,
        /// "holds 3 entries", "is empty", "is missing".
        found: String,
    },

    #[error(
        "{source_path} records the release of {agreement} run {run_id}, but the ledger {path} \
         ({entries}) {detail}: the ledger was cut, rolled back or replaced; restore it from a \
         backup and find out who changed it"
    )]
    MissingRelease {
        path: PathBuf,
        source_path: PathBuf,
        agreement: String,
        run_id: String,
        /// "has no entry for it", "records another manifest for it", …
        detail: String,
        /// "12 entries", "empty or missing".
        entries: String,
    },

    #[error(
        "the release record {dir} cannot be recorded in the ledger: {reason}; it was not \
         written by this site's dars, or was changed: find out who put it there, and move it \
         out of the work directory only once you know which release it is"
    )]
    BadReleaseRecord { dir: PathBuf, reason: String },

    #[error(
        "the ledger {path} is signed by another key ({found}) than the site's release signing \
         key ({expected}): check [keys].signing_key in the site config"
    )]
    WrongKey {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("cannot encode a ledger entry: {0}")]
    Encode(#[from] serde_json::Error),
}

/// An append-only, hash-chained, signed JSON-lines file of releases and
/// destructions, with its signed head.
#[derive(Debug, Clone)]
pub struct Ledger {
    path: PathBuf,
    key: VerifyingKey,
    lock_wait: Duration,
}

impl Ledger {
    /// The ledger at `path`, whose entries must be signed by `key`; the
    /// file is created by the first append.
    pub fn open(path: &Path, key: VerifyingKey) -> Ledger {
        Ledger {
            path: path.to_path_buf(),
            key,
            lock_wait: LOCK_WAIT,
        }
    }

    /// How long an append waits for another's lock (tests wait less).
    pub fn with_lock_wait(mut self, wait: Duration) -> Ledger {
        self.lock_wait = wait;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `NAME.head`, beside the ledger.
    pub fn head_path(&self) -> PathBuf {
        sibling(&self.path, ".head")
    }

    /// `NAME.lock`, beside the ledger.
    pub fn lock_path(&self) -> PathBuf {
        sibling(&self.path, ".lock")
    }

    /// Verifies everything, then appends `event` as the next entry,
    /// signed by `signer`, and rewrites the head. Creates the files with
    /// mode 0600. Refuses to extend a damaged ledger; moves aside (and
    /// records) a line torn by an interrupted append.
    pub fn append(
        &self,
        event: LedgerEvent,
        signer: &SigningKey,
    ) -> Result<LedgerEntry, LedgerError> {
        if signer.verifying_key() != self.key {
            return Err(LedgerError::WrongKey {
                path: self.path.clone(),
                expected: self.key.fingerprint(),
                found: signer.verifying_key().fingerprint(),
            });
        }
        let _lock = self.lock()?;
        let mut chain = self.read_chain()?;
        if !chain.has_head {
            // A head before the first line: from here on a missing head
            // is always damage, never a first append cut short.
            self.write_head(&chain.head(), signer)
                .map_err(|source| LedgerError::Write {
                    path: self.head_path(),
                    source,
                })?;
        }
        if let Some(torn) = chain.torn.take() {
            let recovery = self.move_torn_tail(&chain, &torn)?;
            let line = self.write_line(&chain.head(), recovery, signer)?;
            chain.push(line);
        }
        let line = self.write_line(&chain.head(), event, signer)?;
        let entry = line.entry.clone();
        chain.push(line);
        let head = chain.head();
        if let Err(e) = self.write_head(&head, signer) {
            // The entry is durable and signed; a head that lags is what a
            // crash here would leave too, and the next append rewrites it.
            warn!(ledger = %self.path.display(), seq = head.seq, error = %e, "the ledger entry is recorded but its head could not be rewritten; the next append does it");
        }
        Ok(entry)
    }

    /// Every entry, oldest first, after verifying everything. A ledger
    /// that does not exist yet is empty.
    pub fn entries(&self) -> Result<Vec<LedgerEntry>, LedgerError> {
        Ok(self.verify()?.entries)
    }

    /// Checks every line, link and signature and the head.
    pub fn verify(&self) -> Result<Verified, LedgerError> {
        let chain = self.read_chain()?;
        let mut notes = Vec::new();
        if let Some(torn) = &chain.torn {
            notes.push(Note::TornTail {
                bytes: torn.len() as u64,
            });
        }
        let last_seq = chain.lines.len() as u64;
        if chain.head_seq < last_seq {
            notes.push(Note::HeadBehind {
                head_seq: chain.head_seq,
                last_seq,
            });
        }
        let head = chain.head();
        Ok(Verified {
            line_sha256: chain.lines.iter().map(|l| l.sha256.clone()).collect(),
            entries: chain.lines.into_iter().map(|l| l.entry).collect(),
            head,
            signer: self.key.fingerprint(),
            notes,
        })
    }

    /// What a run checks before anything leaves: the ledger verifies and
    /// its lock can be taken, so that the release's entry can be written
    /// once the release is delivered.
    pub fn preflight(&self) -> Result<Verified, LedgerError> {
        let verified = self.verify()?;
        drop(self.lock()?);
        if self.path.exists() {
            OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(|source| LedgerError::Write {
                    path: self.path.clone(),
                    source,
                })?;
        }
        Ok(verified)
    }

    /// Checks that every anchor's release is in the verified ledger, with
    /// the anchor's manifest, after the ledger head its manifest extends.
    pub fn check_anchors(
        &self,
        verified: &Verified,
        anchors: &[Anchor],
    ) -> Result<(), LedgerError> {
        for anchor in anchors {
            let missing = |detail: String| self.missing_release(verified, anchor, detail);
            self.check_extends(verified, anchor)?;
            let recorded = verified.entries.iter().find(|e| {
                matches!(&e.event, LedgerEvent::Release { agreement, run_id, .. }
                    if *agreement == anchor.agreement && *run_id == anchor.run_id)
            });
            match recorded {
                None => return Err(missing("has no entry for it".to_string())),
                Some(entry) => {
                    if let (
                        LedgerEvent::Release {
                            manifest_sha256, ..
                        },
                        Some(expected),
                    ) = (&entry.event, &anchor.manifest_sha256)
                    {
                        if manifest_sha256 != expected {
                            return Err(missing(format!(
                                "records another manifest for it at entry {}",
                                entry.seq
                            )));
                        }
                    }
                    if anchor.extends.as_ref().is_some_and(|h| entry.seq <= h.seq) {
                        return Err(missing(format!(
                            "records it at entry {}, before the entry its manifest was made on \
                             top of",
                            entry.seq
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The error for an anchor's release the verified ledger does not hold
    /// as its manifest says.
    fn missing_release(&self, verified: &Verified, anchor: &Anchor, detail: String) -> LedgerError {
        LedgerError::MissingRelease {
            path: self.path.clone(),
            source_path: anchor.source.clone(),
            agreement: anchor.agreement.clone(),
            run_id: anchor.run_id.clone(),
            detail,
            entries: match verified.entries.len() {
                0 => "empty or missing".to_string(),
                1 => "1 entry".to_string(),
                n => format!("{n} entries"),
            },
        }
    }

    /// Checks that the verified ledger still holds the entry the anchor's
    /// manifest was made on top of, unchanged.
    pub fn check_extends(&self, verified: &Verified, anchor: &Anchor) -> Result<(), LedgerError> {
        let Some(extends) = &anchor.extends else {
            return Ok(());
        };
        let missing = |detail: String| self.missing_release(verified, anchor, detail);
        let at = usize::try_from(extends.seq).ok();
        let found = match at {
            Some(0) => Some(GENESIS_SHA256),
            Some(seq) => verified.line_sha256.get(seq - 1).map(String::as_str),
            None => None,
        };
        match found {
            None => Err(missing(format!(
                "ends before entry {}, which the release's manifest was made on top of",
                extends.seq
            ))),
            Some(sha) if sha != extends.sha256 => Err(missing(format!(
                "holds another entry {} than the one the release's manifest was made on top of",
                extends.seq
            ))),
            Some(_) => Ok(()),
        }
    }

    fn lock(&self) -> Result<Lock, LedgerError> {
        let path = self.lock_path();
        match Lock::acquire_within(&path, self.lock_wait) {
            Ok(lock) => Ok(lock),
            Err(LockError::Held { path, holder }) => Err(LedgerError::Locked {
                lock: path,
                holder,
                waited_s: self.lock_wait.as_secs(),
            }),
            Err(e) => Err(LedgerError::Lock(e)),
        }
    }

    /// Moves a torn tail to `NAME.torn-TIMESTAMP` and cuts it off the
    /// ledger; returns the event that records it.
    fn move_torn_tail(&self, chain: &Chain, torn: &[u8]) -> Result<LedgerEvent, LedgerError> {
        let write_error = |source| LedgerError::Write {
            path: self.path.clone(),
            source,
        };
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let saved = sibling(&self.path, &format!(".torn-{stamp}"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&saved)
            .map_err(write_error)?;
        file.write_all(torn).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        let ledger = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(write_error)?;
        ledger.set_len(chain.complete_bytes).map_err(write_error)?;
        ledger.sync_all().map_err(write_error)?;
        warn!(ledger = %self.path.display(), bytes = torn.len(), saved_as = %saved.display(), "an interrupted append had left part of a line at the end of the ledger: moved aside and recorded");
        Ok(LedgerEvent::Recovery {
            torn_bytes: torn.len() as u64,
            torn_sha256: sha256_hex(torn),
            saved_as: saved
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })
    }

    /// Appends one whole signed line after `head`. If the write fails
    /// part-way (the disk is full), the part written is cut off again.
    fn write_line(
        &self,
        head: &LedgerHead,
        event: LedgerEvent,
        signer: &SigningKey,
    ) -> Result<ChainLine, LedgerError> {
        let entry = LedgerEntry {
            seq: head.seq + 1,
            at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            prev_sha256: head.sha256.clone(),
            event,
        };
        let mut body = serde_json::to_vec(&entry)?;
        body.push(b'\n');
        let line = signed_line(&body, signer, ENTRY_NAMESPACE);

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
        let before = file.metadata().map_err(write_error)?.len();
        if let Err(e) = file.write_all(&line).and_then(|()| file.sync_all()) {
            // Leave the ledger as it was: a partial line would block every
            // later append until someone repaired it.
            let _ = file.set_len(before).and_then(|()| file.sync_all());
            return Err(write_error(e));
        }
        if created {
            if let Some(dir) = self.path.parent() {
                sync_dir(dir).map_err(write_error)?;
            }
        }
        Ok(ChainLine {
            entry,
            sha256: sha256_hex(&line),
        })
    }

    fn write_head(&self, head: &LedgerHead, signer: &SigningKey) -> io::Result<()> {
        let body = HeadBody {
            seq: head.seq,
            sha256: head.sha256.clone(),
            at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        };
        let mut bytes = serde_json::to_vec(&body).map_err(io::Error::other)?;
        bytes.push(b'\n');
        write_private(
            &self.head_path(),
            &signed_line(&bytes, signer, HEAD_NAMESPACE),
        )
    }

    /// Reads and checks the head file; `None` if there is none.
    fn read_head(&self) -> Result<Option<HeadBody>, LedgerError> {
        let path = self.head_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LedgerError::Read { path, source }),
        };
        let bad = |reason: String| LedgerError::BadHead {
            head: path.clone(),
            key: self.key.fingerprint(),
            reason,
        };
        let (body, signature) = split_signed_line(&bytes)
            .ok_or_else(|| bad("it is not a signed head line".to_string()))?;
        self.key
            .check_sshsig(&body, &armor(signature), HEAD_NAMESPACE)
            .map_err(bad)?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| bad(format!("unreadable: {e}")))
    }

    fn read_chain(&self) -> Result<Chain, LedgerError> {
        let (raw, torn) = self.read_lines()?;
        let hashes: Vec<String> = raw.iter().map(|line| sha256_hex(line)).collect();
        // First line with each hash: where a moved line was written after.
        let mut by_hash: HashMap<&str, usize> = HashMap::new();
        for (index, hash) in hashes.iter().enumerate() {
            by_hash.entry(hash.as_str()).or_insert(index + 1);
        }

        // 1. The chain: every line an entry, linked to the one before.
        let mut lines: Vec<ChainLine> = Vec::with_capacity(raw.len());
        let mut signed: Vec<(Vec<u8>, &[u8])> = Vec::with_capacity(raw.len());
        for (index, bytes) in raw.iter().enumerate() {
            let line = index + 1;
            let expected_seq = line as u64;
            let bad_json = |reason: String| LedgerError::BadJson {
                path: self.path.clone(),
                line,
                reason,
            };
            let (body, signature) = match split_signed_line(bytes) {
                Some(parts) => parts,
                None => match serde_json::from_slice::<LedgerEntry>(bytes) {
                    // An entry, but unsigned: found by the signature pass
                    // below, after the chain has had its say.
                    Ok(_) => (bytes.clone(), &b""[..]),
                    Err(e) => return Err(bad_json(e.to_string())),
                },
            };
            let entry: LedgerEntry =
                serde_json::from_slice(&body).map_err(|e| bad_json(e.to_string()))?;
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
            signed.push((body, signature));
            lines.push(ChainLine {
                entry,
                sha256: hashes[index].clone(),
            });
        }

        // 2. The signatures: a line rewritten with every later hash
        // recomputed, or a forged line appended, passes the chain.
        for (index, (body, signature)) in signed.iter().enumerate() {
            let bad = |reason: String| LedgerError::BadSignature {
                path: self.path.clone(),
                line: index + 1,
                key: self.key.fingerprint(),
                reason,
            };
            if signature.is_empty() {
                return Err(bad("it has no signature".to_string()));
            }
            self.key
                .check_sshsig(body, &armor(signature), ENTRY_NAMESPACE)
                .map_err(bad)?;
        }

        // 3. The head: the end of the file, which nothing after it covers.
        let complete = lines.len() as u64;
        let head = self.read_head()?;
        let has_head = head.is_some();
        let head_seq = match head {
            None if lines.is_empty() => 0,
            None => {
                return Err(LedgerError::HeadMissing {
                    path: self.path.clone(),
                    head: self.head_path(),
                    entries: lines.len(),
                })
            }
            Some(head) if head.seq > complete => {
                if torn.is_some() && head.seq == complete + 1 {
                    return Err(LedgerError::IncompleteLine {
                        path: self.path.clone(),
                        line: complete as usize + 1,
                    });
                }
                return Err(LedgerError::Truncated {
                    path: self.path.clone(),
                    head: self.head_path(),
                    head_seq: head.seq,
                    found: if !self.path.exists() {
                        "is missing".to_string()
                    } else if complete == 0 {
                        "is empty".to_string()
                    } else {
                        format!(
                            "holds {complete} entr{}",
                            if complete == 1 { "y" } else { "ies" }
                        )
                    },
                });
            }
            Some(head) => {
                let at = usize::try_from(head.seq).unwrap_or(usize::MAX);
                let named = match at.checked_sub(1) {
                    // The head the first append writes before its line.
                    None => Some(GENESIS_SHA256),
                    Some(i) => lines.get(i).map(|l| l.sha256.as_str()),
                };
                if named != Some(head.sha256.as_str()) {
                    return Err(LedgerError::EditedLine {
                        path: self.path.clone(),
                        line: at,
                        detail: "it does not hash to the signed ledger head".to_string(),
                    });
                }
                head.seq
            }
        };
        let complete_bytes = raw.iter().map(|l| l.len() as u64).sum();
        Ok(Chain {
            lines,
            torn,
            head_seq,
            has_head,
            complete_bytes,
        })
    }

    /// The complete lines, each with its newline, and what follows the
    /// last newline, if anything.
    fn read_lines(&self) -> Result<RawLines, LedgerError> {
        let read_error = |source| LedgerError::Read {
            path: self.path.clone(),
            source,
        };
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
            Err(e) => return Err(read_error(e)),
        };
        let mut reader = BufReader::new(file);
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).map_err(read_error)? == 0 {
                return Ok((lines, None));
            }
            if line.last() != Some(&b'\n') {
                return Ok((lines, Some(line)));
            }
            lines.push(line);
        }
    }
}

/// The complete lines of the file, each with its newline, and what
/// follows the last newline, if anything.
type RawLines = (Vec<Vec<u8>>, Option<Vec<u8>>);

struct ChainLine {
    entry: LedgerEntry,
    sha256: String,
}

struct Chain {
    lines: Vec<ChainLine>,
    /// Bytes after the last newline.
    torn: Option<Vec<u8>>,
    /// The entry the signed head names (0: no head, empty ledger).
    head_seq: u64,
    has_head: bool,
    /// Length of the complete lines.
    complete_bytes: u64,
}

impl Chain {
    fn head(&self) -> LedgerHead {
        match self.lines.last() {
            Some(last) => LedgerHead {
                seq: last.entry.seq,
                sha256: last.sha256.clone(),
            },
            None => LedgerHead {
                seq: 0,
                sha256: GENESIS_SHA256.to_string(),
            },
        }
    }

    fn push(&mut self, line: ChainLine) {
        self.lines.push(line);
    }
}

/// `dir/NAME` -> `dir/NAME{suffix}`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// `{…}\n` signed -> `{…,"sig":"BASE64"}\n`, the signature an SSHSIG over
/// the body (newline included) with its armor lines and line breaks taken
/// out.
fn signed_line(body: &[u8], signer: &SigningKey, namespace: &str) -> Vec<u8> {
    let armored = signer.sign_sshsig(body, namespace);
    let compact: String = armored
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    // The body is a JSON object and a newline: `}\n` ends it.
    let open = body.len().saturating_sub(2);
    let mut line = Vec::with_capacity(body.len() + SIG_FIELD.len() + compact.len() + 3);
    line.extend_from_slice(&body[..open]);
    line.extend_from_slice(SIG_FIELD);
    line.extend_from_slice(compact.as_bytes());
    line.extend_from_slice(b"\"}\n");
    line
}

/// The inverse of [`signed_line`]: the signed body and the compact
/// signature, or `None` if the line does not end with a `sig` field.
fn split_signed_line(line: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let rest = line.strip_suffix(b"\"}\n")?;
    let at = rest
        .windows(SIG_FIELD.len())
        .rposition(|w| w == SIG_FIELD)?;
    let signature = &rest[at + SIG_FIELD.len()..];
    if signature.is_empty()
        || !signature
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return None;
    }
    let mut body = rest[..at].to_vec();
    body.extend_from_slice(b"}\n");
    Some((body, signature))
}

/// A compact signature back in its armor, 70 columns as OpenSSH writes it.
fn armor(compact: &[u8]) -> Vec<u8> {
    let mut out = b"-----BEGIN SSH SIGNATURE-----\n".to_vec();
    for chunk in compact.chunks(70) {
        out.extend_from_slice(chunk);
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END SSH SIGNATURE-----\n");
    out
}
