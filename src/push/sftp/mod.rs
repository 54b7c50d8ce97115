//! `sftp://user@host:port/path` destinations: the release leaves the
//! building here, so every step fails closed.
//!
//! A push is one [`Job`] (what is fixed: where it goes, the pinned host
//! keys, the client key, the staged files) tried over as many connections
//! as the [`RetryPolicy`] allows, with exponential backoff and jitter; a
//! [`State`] carries what each connection achieved to the next, so a file
//! completed before a lost connection is not sent again. A re-run after a
//! crash starts with an empty [`State`] and finds at the destination what
//! arrived before ([`resume`]). Each job has its own module:
//!
//! - [`session`]: TCP, the SSH handshake, the host key checked against the
//!   pinned `known_hosts` before anything of the client's is sent, then
//!   login with the agreement's `identity` key only.
//! - [`ciphers`]: AES-256-GCM first on a CPU with AES instructions,
//!   ChaCha20-Poly1305 first otherwise; no CBC, arcfour or SHA-1; no
//!   compression.
//! - [`errors`]: which libssh2 and SFTP failures are a lost connection
//!   (retried) and which are final, and the error each becomes.
//! - [`upload`]: one file to `NAME.part`, each write handed all the bytes
//!   not yet acknowledged, topped up by 1 MiB reads to at least 2 MiB;
//!   fsynced (OpenSSH's `fsync@openssh.com`), closed, its size checked,
//!   renamed and its size checked again.
//! - [`resume`]: what is at the destination already: the same bytes under
//!   a final name (done), other bytes (refused, never overwritten), a
//!   `.part` whose tail matches the staged file (resumed from its size).

mod ciphers;
mod errors;
mod resume;
mod session;
mod upload;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder};
use ssh2::Sftp;
use tracing::warn;

use super::identity::{Identity, IdentityError};
use super::known_hosts::KnownHosts;
use super::progress::Progress;
use super::staged::StagedFile;
use super::{PushError, PushReport, StagedRelease};

/// Mode of folders created at the destination.
const DIR_MODE: i32 = 0o750;

/// Where an sftp destination points.
#[derive(Debug, Clone, Copy)]
pub struct Remote<'a> {
    pub user: &'a str,
    pub host: &'a str,
    pub port: u16,
    /// Absolute path of the destination directory on the server.
    pub root: &'a str,
}

impl Remote<'_> {
    fn url(&self, path: &str) -> String {
        format!("sftp://{}@{}:{}{}", self.user, self.host, self.port, path)
    }
}

/// How often and how patiently a lost connection is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Connections tried in all, the first included.
    pub attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 7,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// What is fixed for one push.
struct Job<'a> {
    remote: Remote<'a>,
    /// `sftp://…/ROOT/REFERENCE/RUN_ID`.
    location: String,
    /// `ROOT/REFERENCE/RUN_ID`.
    folder: String,
    known_hosts: KnownHosts,
    identity: Identity,
    files: Vec<StagedFile>,
    progress: Progress,
}

/// What survives from one connection attempt to the next.
#[derive(Default)]
struct State {
    attempts: usize,
    /// Files known whole under their final name at the destination.
    done: HashSet<String>,
    /// Files this run wrote to the end (counted as sent, not found).
    written: HashSet<String>,
    files_sent: usize,
    files_already_there: usize,
    bytes_sent: u64,
    warned_no_fsync: bool,
}

impl State {
    fn record_done(&mut self, file: &StagedFile) {
        if self.done.insert(file.name.clone()) {
            if self.written.contains(&file.name) {
                self.files_sent += 1;
            } else {
                self.files_already_there += 1;
            }
        }
    }

    /// Bytes of the files already whole at the destination.
    fn bytes_done(&self, files: &[StagedFile]) -> u64 {
        files
            .iter()
            .filter(|f| self.done.contains(&f.name))
            .map(|f| f.len)
            .sum()
    }
}

/// One connection: the job, which attempt it is, and its SFTP channel.
struct Connection<'a> {
    job: &'a Job<'a>,
    attempt: usize,
    sftp: Sftp,
}

pub fn push(
    remote: Remote<'_>,
    known_hosts: Option<&Path>,
    identity: Option<&Path>,
    release: &StagedRelease,
    policy: &RetryPolicy,
) -> Result<PushReport, PushError> {
    let root = normalise_root(remote.root);
    let folder = format!("{root}/{}", release.folder.trim_matches('/'));
    let location = remote.url(&folder);
    let known_hosts = load_known_hosts(known_hosts, &location)?;
    let identity = load_identity(identity, &location)?;
    let files = StagedFile::list(release)?;
    let total: u64 = files.iter().map(|f| f.len).sum();
    let job = Job {
        remote: Remote {
            root: &root,
            ..remote
        },
        known_hosts,
        identity,
        location,
        folder,
        progress: Progress::new(total, files.len()),
        files,
    };

    let mut state = State::default();
    let backoff = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.attempts.saturating_sub(1));
    (|| attempt(&job, &mut state))
        .retry(backoff)
        .when(PushError::is_transient)
        .notify(|e: &PushError, delay: Duration| {
            warn!(error = %e, retry_in = ?delay, "connection to the destination lost; retrying");
        })
        .call()?;
    job.progress.finish();
    Ok(PushReport {
        location: job.location,
        files_sent: state.files_sent,
        files_already_there: state.files_already_there,
        bytes_sent: state.bytes_sent,
    })
}

fn load_known_hosts(path: Option<&Path>, location: &str) -> Result<KnownHosts, PushError> {
    let path = path.ok_or_else(|| PushError::KnownHostsMissing {
        location: location.to_string(),
    })?;
    KnownHosts::load(path).map_err(|source| PushError::KnownHostsUnusable {
        path: path.to_path_buf(),
        source,
    })
}

fn load_identity(path: Option<&Path>, location: &str) -> Result<Identity, PushError> {
    let path = path.ok_or_else(|| PushError::IdentityMissing {
        location: location.to_string(),
    })?;
    Identity::load(path).map_err(|e| match e {
        IdentityError::TooOpen { mode } => PushError::IdentityTooOpen {
            path: path.to_path_buf(),
            mode,
        },
        source => PushError::IdentityUnusable {
            path: path.to_path_buf(),
            source,
        },
    })
}

fn normalise_root(root: &str) -> String {
    let trimmed = root.trim_end_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

/// One connection: connect, check, log in, deliver what is still missing.
fn attempt(job: &Job<'_>, state: &mut State) -> Result<(), PushError> {
    state.attempts += 1;
    let session = session::connect(job, state.attempts)?;
    let sftp = session
        .sftp()
        .map_err(|e| job.remote_error(state.attempts, "starting the sftp subsystem", "", e))?;
    let connection = Connection {
        job,
        attempt: state.attempts,
        sftp,
    };
    connection.make_folder()?;
    for file in &job.files {
        if !state.done.contains(&file.name) {
            connection.deliver(state, file)?;
        }
    }
    drop(connection);
    let _ = session.disconnect(None, "release delivered", None);
    Ok(())
}

impl Connection<'_> {
    /// `ROOT` must exist; `ROOT/REFERENCE/RUN_ID` is made as needed.
    fn make_folder(&self) -> Result<(), PushError> {
        let job = self.job;
        let root = if job.remote.root.is_empty() {
            "/"
        } else {
            job.remote.root
        };
        match self.sftp.stat(Path::new(root)) {
            Ok(st) if st.is_dir() => {}
            Ok(_) => {
                return Err(PushError::RemoteFailed {
                    location: job.location.clone(),
                    action: "opening the destination directory",
                    path: root.to_string(),
                    detail: "it is not a directory".into(),
                })
            }
            Err(e) if errors::is_no_such_file(&e) => {
                return Err(PushError::RemoteDirMissing {
                    location: job.location.clone(),
                    path: root.to_string(),
                })
            }
            Err(e) => return Err(self.remote_error("opening", root, e)),
        }
        let mut path = job.remote.root.to_string();
        for part in job.folder[job.remote.root.len()..]
            .split('/')
            .filter(|p| !p.is_empty())
        {
            path.push('/');
            path.push_str(part);
            if let Err(e) = self.sftp.mkdir(Path::new(&path), DIR_MODE) {
                match self.sftp.stat(Path::new(&path)) {
                    Ok(st) if st.is_dir() => {}
                    _ => return Err(self.remote_error("creating the release folder", &path, e)),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_absolute_without_a_trailing_slash() {
        assert_eq!(normalise_root("/srv/inbox/"), "/srv/inbox");
        assert_eq!(normalise_root("inbox"), "/inbox");
        assert_eq!(normalise_root("/"), "");
        assert_eq!(errors::parent("/srv/inbox/REF"), "/srv/inbox");
        assert_eq!(errors::parent("/srv"), "/");
    }
}
