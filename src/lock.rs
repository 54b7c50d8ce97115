//! Exclusive locks between dars processes: one run per agreement, one
//! batch per work directory, one ledger append at a time.
//!
//! Each lock is a kernel `flock` on a small file (through `fs4`), held by an
//! open file description and released by the kernel when that closes, so a
//! lock dies with its process however the process dies (`kill -9`, a
//! panic, a power cut): there is no stale lock to detect, guess about or
//! remove by hand. The file is never deleted (deleting a locked file lets a
//! second process lock a new file of the same name while the first still
//! holds the old one); after taking the lock the holder writes its pid and
//! start time into it, so that the process that finds it taken can say who
//! holds it.
//!
//! Locks are advisory: they keep dars processes from each other, not a
//! person with a text editor. The ledger's signatures do that.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use fs4::{FileExt, TryLockError};

/// A lock held until this value is dropped (or the process ends).
#[derive(Debug)]
pub struct Lock {
    // Held for its open file description: closing it releases the flock.
    _file: File,
    path: PathBuf,
}

/// Who holds a lock, as the holder wrote it into the lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    /// RFC 3339 UTC.
    pub since: Option<String>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.pid, &self.since) {
            (Some(pid), Some(since)) => write!(f, "pid {pid}, since {since}"),
            (Some(pid), None) => write!(f, "pid {pid}"),
            // The holder has the lock but has not written its name yet.
            _ => write!(f, "a process that is just starting"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("{path} is locked by another dars ({holder})")]
    Held { path: PathBuf, holder: Holder },
    #[error("cannot open the lock file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Lock {
    /// Takes the lock at `path` now, or says who holds it. Creates the
    /// file (mode 0600) if it does not exist.
    pub fn try_acquire(path: &Path) -> Result<Lock, LockError> {
        let file = open(path)?;
        match FileExt::try_lock(&file) {
            Ok(()) => Self::held(file, path),
            Err(TryLockError::WouldBlock) => Err(LockError::Held {
                path: path.to_path_buf(),
                holder: read_holder(&file),
            }),
            Err(TryLockError::Error(source)) => Err(LockError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Takes the lock at `path`, waiting up to `wait` for its holder to let
    /// go. For locks held only for a moment (a ledger append).
    pub fn acquire_within(path: &Path, wait: Duration) -> Result<Lock, LockError> {
        let started = Instant::now();
        loop {
            match Self::try_acquire(path) {
                Err(LockError::Held { .. }) if started.elapsed() < wait => {
                    thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// Who holds the lock at `path` now, if anyone. Does not create the
    /// file. It looks by taking a shared lock for a moment, during which an
    /// exclusive `try_acquire` elsewhere would be refused: for reports and
    /// tests, not for deciding anything.
    pub fn holder(path: &Path) -> Result<Option<Holder>, LockError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        // A shared lock conflicts with the holder's exclusive one.
        match FileExt::try_lock_shared(&file) {
            Ok(()) => Ok(None),
            Err(TryLockError::WouldBlock) => Ok(Some(read_holder(&file))),
            Err(TryLockError::Error(source)) => Err(LockError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn held(mut file: File, path: &Path) -> Result<Lock, LockError> {
        let io_error = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        file.set_len(0).map_err(io_error)?;
        file.rewind().map_err(io_error)?;
        // For a human, and for the message of whoever finds the lock taken.
        writeln!(file, "{} {since}", std::process::id()).map_err(io_error)?;
        Ok(Lock {
            _file: file,
            path: path.to_path_buf(),
        })
    }
}

fn open(path: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| LockError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn read_holder(file: &File) -> Holder {
    let mut text = String::new();
    // A lock file is one short line; read at most a little more.
    let _ = file.take(256).read_to_string(&mut text);
    let mut parts = text.split_whitespace();
    Holder {
        pid: parts.next().and_then(|p| p.parse().ok()),
        since: parts.next().map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_with_its_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        let held = Lock::try_acquire(&path).unwrap();
        // flock locks belong to an open file description, so a second open
        // in this same process is refused just as another process would be.
        match Lock::try_acquire(&path) {
            Err(LockError::Held { holder, .. }) => {
                assert_eq!(holder.pid, Some(std::process::id()));
                assert!(holder.since.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Lock::holder(&path).unwrap().and_then(|h| h.pid),
            Some(std::process::id())
        );
        drop(held);
        assert_eq!(Lock::holder(&path).unwrap(), None);
        Lock::try_acquire(&path).unwrap();
    }

    #[test]
    fn a_lock_file_left_behind_is_not_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("batch.lock");
        // What a crashed process leaves: its pid in the file, no flock.
        std::fs::write(&path, "4194999 2026-01-01T00:00:00Z\n").unwrap();
        assert_eq!(Lock::holder(&path).unwrap(), None);
        let lock = Lock::try_acquire(&path).unwrap();
        assert!(std::fs::read_to_string(lock.path())
            .unwrap()
            .starts_with(&format!("{} ", std::process::id())));
    }

    #[test]
    fn waiting_takes_a_lock_its_holder_lets_go_of() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.lock");
        let held = Lock::try_acquire(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::scope(|scope| {
            let path = &path;
            let waiter = scope.spawn(move || {
                tx.send(()).unwrap();
                Lock::acquire_within(path, Duration::from_secs(600)).map(|_| ())
            });
            rx.recv().unwrap();
            // The waiter cannot have the lock while it is held here.
            assert!(Lock::holder(path).unwrap().is_some());
            drop(held);
            assert!(waiter.join().unwrap().is_ok());
        });
        assert_eq!(Lock::holder(&path).unwrap(), None);
    }

    #[test]
    fn not_waiting_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.lock");
        let _held = Lock::try_acquire(&path).unwrap();
        assert!(matches!(
            Lock::acquire_within(&path, Duration::ZERO),
            Err(LockError::Held { .. })
        ));
    }
}
