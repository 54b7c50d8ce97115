//! Stage 6b, push: delivers a sealed release to its destination.
//!
//! Order and atomicity are the contract (DESIGN.md, "Outputs"): every data
//! file, then `manifest.json`, then `manifest.json.sig`, which is the
//! commit marker. Each file is written as `NAME.part`, fsynced, renamed to
//! `NAME`, and its size checked, so a run that dies midway leaves no file
//! under a final name that is not whole, and no signature at all. A re-run
//! of the same release skips files already complete at the destination.
//!
//! Each release lands in its own folder, `DEST/REFERENCE/RUN_ID/`, so two
//! releases never share a directory and `dars verify` can insist on no
//! extra files. A final name already holding other bytes is never
//! overwritten; as a re-run resumes the same run id, it would meet the same
//! file, and the error says so.
//!
//! - `config`: the agreement's `[release]` table and what `dars check`
//!   finds wrong in it.
//! - `staged`: the sending side both destinations share: the sealed
//!   files, their sizes, byte-for-byte comparison with a copy.
//! - `local`: `file://`, reached below the destination directory without
//!   following symbolic links.
//! - `sftp`: `sftp://`, with `known_hosts` (host key pinning), `identity`
//!   (the client key) and `progress` (upload bars).

mod config;
mod identity;
mod known_hosts;
mod local;
mod progress;
mod sftp;
mod staged;
#[cfg(test)]
mod tests;

pub use config::{Destination, ReleaseConfig};
pub use identity::IdentityError;
pub use known_hosts::KnownHostsError;

use std::path::PathBuf;

/// A release sealed in the work directory, ready to push: the files in
/// the order they must arrive (data files, manifest, signature last).
#[derive(Debug, Clone)]
pub struct StagedRelease {
    pub dir: PathBuf,
    pub files: Vec<String>,
    /// `REFERENCE/RUN_ID`: the folder it lands in under the destination.
    pub folder: String,
}

/// Where the release arrived.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PushReport {
    pub location: String,
    pub files_sent: usize,
    pub files_already_there: usize,
    pub bytes_sent: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("destination {location}: {action} failed: {source}\n  fix: check the destination exists and is writable by this user")]
    Io {
        location: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("destination {location} already holds a `{name}` that differs from the one this run sealed ({}): refusing to overwrite a released file\n  fix: running again resumes this same run id and stops here again. Find out who put that file there; if that folder is not a release to keep, move {location} aside (keep it for whoever investigates), then run again to deliver this run's release", staged.display())]
    Conflict {
        location: String,
        name: String,
        /// This run's copy, in the work directory.
        staged: PathBuf,
    },
    #[error("destination {location}: {} is a symbolic link; refusing to write a release through it, and nothing was written through it\n  fix: remove the link and run again. To deliver somewhere else, set [release].destination to that directory (the destination itself may be a link): dars makes REFERENCE/RUN_ID below it itself", path.display())]
    SymlinkRefused { location: String, path: PathBuf },
    #[error("destination {location}: `{name}` arrived with {actual} bytes, expected {expected}\n  fix: check free space at the destination and run again; the partial file was not given its final name")]
    SizeMismatch {
        location: String,
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error("sftp destination {location}: the agreement names no `known_hosts` file\n  fix: set [release].known_hosts to a file pinning the server's host key (see README, \"Destinations\")")]
    KnownHostsMissing { location: String },
    #[error("known_hosts file {}: {source}\n  fix: one `HOST KEYTYPE BASE64` line per pinned key, as `ssh-keyscan -p PORT HOST` prints them", path.display())]
    KnownHostsUnusable {
        path: PathBuf,
        #[source]
        source: known_hosts::KnownHostsError,
    },
    #[error("sftp destination {location}: the server's host key is not pinned in {}; nothing was sent\n  offered: {key_type} {offered}\n  fix: confirm {offered} with the destination's administrators (not over this connection), then pin it: ssh-keyscan -p {port} -t {key_type} {host} >> {0} and check that `ssh-keygen -lf {0}` prints the same fingerprint", known_hosts.display())]
    UnknownHost {
        location: String,
        host: String,
        port: u16,
        key_type: String,
        offered: String,
        known_hosts: PathBuf,
    },
    #[error("sftp destination {location}: HOST KEY MISMATCH: the server offered {key_type} {offered}, but {} pins {pinned} for {host_name}; nothing was sent\n  fix: someone may be intercepting the connection: do not push. Ask the destination's administrators whether the host key changed and for its fingerprint; only if it matches {offered}, replace the pin: ssh-keygen -R '{host_name}' -f {0}, then ssh-keyscan -p {port} -t {key_type} {host} >> {0}", known_hosts.display())]
    HostKeyMismatch {
        location: String,
        host_name: String,
        host: String,
        port: u16,
        key_type: String,
        offered: String,
        pinned: String,
        known_hosts: PathBuf,
    },
    #[error("sftp destination {location}: the server offered host key {offered}, which line {line} of {} marks @revoked; nothing was sent\n  fix: the destination must replace its host key; pin the new one once its administrators confirm the fingerprint", known_hosts.display())]
    HostKeyRevoked {
        location: String,
        offered: String,
        line: usize,
        known_hosts: PathBuf,
    },
    #[error("sftp destination {location}: the agreement names no `identity` key\n  fix: set [release].identity to the private key dars logs in with (its public half in the server's authorized_keys)")]
    IdentityMissing { location: String },
    #[error("identity {} is readable by group or others (mode {mode:04o}): refusing a private key others could copy\n  fix: chmod 600 {0}", path.display())]
    IdentityTooOpen { path: PathBuf, mode: u32 },
    #[error("identity {}: {source}\n  fix: point [release].identity at an unencrypted private key file (OpenSSH or PEM, mode 600) whose public half is in the server's authorized_keys", path.display())]
    IdentityUnusable {
        path: PathBuf,
        #[source]
        source: identity::IdentityError,
    },
    #[error("sftp destination {location}: the server refused user `{user}` with the key in {}\n  fix: add its public half (`ssh-keygen -y -f {0}`) to the authorized_keys of `{user}` on the server, or correct the user in [release].destination", identity.display())]
    AuthenticationRefused {
        location: String,
        user: String,
        identity: PathBuf,
    },
    #[error("sftp destination {location}: the SSH handshake failed: {detail}\n  fix: the server and dars share no key exchange, cipher or host key algorithm; ask its administrators which they allow")]
    HandshakeFailed { location: String, detail: String },
    #[error("sftp destination {location}: connection lost after {attempts} attempt(s): {detail}\n  fix: check the host and port in [release].destination, that the server is up and accepts a current SSH key exchange and cipher, then run again: complete files are not sent twice and a partial `.part` is resumed")]
    ConnectionLost {
        location: String,
        attempts: usize,
        detail: String,
    },
    #[error("sftp destination {location}: the directory {path} does not exist on the server\n  fix: create it on the server (mkdir -p {path}) or correct the path in [release].destination")]
    RemoteDirMissing { location: String, path: String },
    #[error("sftp destination {location}: `{user}` may not write there ({action} {path}: permission denied)\n  fix: give `{user}` write permission on that directory on the server, or choose a writable directory in [release].destination")]
    RemoteNotWritable {
        location: String,
        user: String,
        path: String,
        action: &'static str,
    },
    #[error("sftp destination {location}: {action} {path} failed: {detail}\n  fix: check free space and permissions at the destination, then run again (complete files are not sent twice)")]
    RemoteFailed {
        location: String,
        action: &'static str,
        path: String,
        detail: String,
    },
}

impl PushError {
    /// A lost connection, worth another try; everything else is final.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::ConnectionLost { .. })
    }

    /// The destination holds other bytes under `file`'s final name.
    fn conflict(location: &str, file: &staged::StagedFile) -> Self {
        Self::Conflict {
            location: location.to_string(),
            name: file.name.clone(),
            staged: file.path.clone(),
        }
    }
}

/// Pushes every staged file to the release's destination, in order.
pub fn push(config: &ReleaseConfig, release: &StagedRelease) -> Result<PushReport, PushError> {
    match &config.destination {
        Destination::Local(root) => local::push(root, release),
        Destination::Sftp {
            user,
            host,
            port,
            path,
        } => sftp::push(
            sftp::Remote {
                user,
                host,
                port: *port,
                root: path,
            },
            config.known_hosts.as_deref(),
            config.identity.as_deref(),
            release,
            &sftp::RetryPolicy::default(),
        ),
    }
}
