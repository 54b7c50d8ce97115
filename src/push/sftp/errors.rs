//! Error classification for sftp: which libssh2 and SFTP failures mean the
//! connection was lost (worth a new connection, [`PushError::ConnectionLost`])
//! and which are the server's final answer, and the [`PushError`] each one
//! becomes, with the destination and path it concerns.
//!
//! libssh2 reports a failed request as a session error code
//! (`LIBSSH2_ERROR_*`) or an SFTP status (`LIBSSH2_FX_*`), but ssh2 turns a
//! failed read or write on an open remote file into a bare `io::Error`;
//! [`Connection::stream_error`] tells those apart by asking the server
//! again.

use std::io;
use std::path::Path;

use libssh2_sys as raw;
use ssh2::ErrorCode;

use super::super::identity::IdentityError;
use super::{Connection, Job};
use crate::push::PushError;

/// `LIBSSH2_ERROR_SOCKET_NONE` in libssh2.h, which libssh2_sys does not
/// name: the socket is not usable.
const LIBSSH2_ERROR_SOCKET_NONE: i32 = -1;

/// libssh2 session errors that mean the connection, not the request,
/// failed: a new connection may well succeed.
pub(super) fn is_transport_code(code: i32) -> bool {
    matches!(
        code,
        LIBSSH2_ERROR_SOCKET_NONE
            | raw::LIBSSH2_ERROR_BANNER_RECV
            | raw::LIBSSH2_ERROR_BANNER_SEND
            | raw::LIBSSH2_ERROR_INVALID_MAC
            | raw::LIBSSH2_ERROR_SOCKET_SEND
            | raw::LIBSSH2_ERROR_TIMEOUT
            | raw::LIBSSH2_ERROR_DECRYPT
            | raw::LIBSSH2_ERROR_SOCKET_DISCONNECT
            | raw::LIBSSH2_ERROR_PROTO
            | raw::LIBSSH2_ERROR_CHANNEL_OUTOFORDER
            | raw::LIBSSH2_ERROR_CHANNEL_FAILURE
            | raw::LIBSSH2_ERROR_CHANNEL_CLOSED
            | raw::LIBSSH2_ERROR_CHANNEL_EOF_SENT
            | raw::LIBSSH2_ERROR_SOCKET_TIMEOUT
            | raw::LIBSSH2_ERROR_SOCKET_RECV
            | raw::LIBSSH2_ERROR_ENCRYPT
            | raw::LIBSSH2_ERROR_BAD_SOCKET
    )
}

/// Whether an ssh2 error means the connection was lost.
fn is_transport(e: &ssh2::Error) -> bool {
    match e.code() {
        ErrorCode::Session(c) => is_transport_code(c),
        ErrorCode::SFTP(c) => {
            c == raw::LIBSSH2_FX_NO_CONNECTION || c == raw::LIBSSH2_FX_CONNECTION_LOST
        }
    }
}

/// Whether an SFTP request failed because the path is not there.
pub(super) fn is_no_such_file(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::SFTP(raw::LIBSSH2_FX_NO_SUCH_FILE)
}

/// Whether the server does not implement the request (an SFTP extension
/// such as `fsync@openssh.com`).
pub(super) fn is_unsupported(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::SFTP(raw::LIBSSH2_FX_OP_UNSUPPORTED)
}

/// Why an SSH handshake failed.
pub(super) enum HandshakeFailure {
    /// The server has none of the host key types asked for.
    NoCommonHostKey(String),
    /// The connection went, or never came: retried.
    Lost(String),
    Other(String),
}

impl HandshakeFailure {
    /// Classifies a failed `Session::handshake`. `asked_for_pinned` says
    /// whether the host key algorithms were narrowed to the pinned types.
    pub(super) fn of(e: &ssh2::Error, detail: String, asked_for_pinned: bool) -> Self {
        // A key exchange failure is also what a connection cut during the
        // exchange looks like, so it counts as lost: retried, and reported
        // with the detail once the attempts are spent.
        match e.code() {
            ErrorCode::Session(raw::LIBSSH2_ERROR_KEX_FAILURE) if asked_for_pinned => {
                Self::NoCommonHostKey(detail)
            }
            ErrorCode::Session(c)
                if is_transport_code(c)
                    || c == raw::LIBSSH2_ERROR_KEX_FAILURE
                    || c == raw::LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE =>
            {
                Self::Lost(detail)
            }
            _ => Self::Other(detail),
        }
    }

    pub(super) fn into_error(self, job: &Job<'_>, attempt: usize) -> PushError {
        match self {
            Self::Lost(detail) => job.lost(attempt, detail),
            Self::NoCommonHostKey(detail) | Self::Other(detail) => PushError::HandshakeFailed {
                location: job.location.clone(),
                detail,
            },
        }
    }
}

impl Job<'_> {
    /// The connection was lost on attempt `attempt`.
    pub(super) fn lost(&self, attempt: usize, detail: String) -> PushError {
        PushError::ConnectionLost {
            location: self.location.clone(),
            attempts: attempt,
            detail,
        }
    }

    /// Public-key login failed: the connection went, libssh2 could not
    /// read the key, or the server refused it.
    pub(super) fn login_error(&self, attempt: usize, e: &ssh2::Error) -> PushError {
        match e.code() {
            ErrorCode::Session(c) if is_transport_code(c) => {
                self.lost(attempt, format!("logging in: {}", e.message()))
            }
            ErrorCode::Session(raw::LIBSSH2_ERROR_FILE) => PushError::IdentityUnusable {
                path: self.identity.path.clone(),
                source: IdentityError::NotAPrivateKey(
                    "libssh2 cannot read this key type or format",
                ),
            },
            _ => self.authentication_refused(),
        }
    }

    /// An SFTP request on `path` failed.
    pub(super) fn remote_error(
        &self,
        attempt: usize,
        action: &'static str,
        path: &str,
        e: ssh2::Error,
    ) -> PushError {
        let location = self.location.clone();
        let path = path.to_string();
        if is_transport(&e) {
            return self.lost(attempt, format!("{action} {path}: {}", e.message()));
        }
        match e.code() {
            ErrorCode::SFTP(raw::LIBSSH2_FX_NO_SUCH_FILE) => PushError::RemoteDirMissing {
                location,
                path: parent(&path),
            },
            ErrorCode::SFTP(raw::LIBSSH2_FX_PERMISSION_DENIED) => PushError::RemoteNotWritable {
                location,
                user: self.remote.user.to_string(),
                path,
                action,
            },
            _ => PushError::RemoteFailed {
                location,
                action,
                path,
                detail: e.message().to_string(),
            },
        }
    }

    pub(super) fn authentication_refused(&self) -> PushError {
        PushError::AuthenticationRefused {
            location: self.location.clone(),
            user: self.remote.user.to_string(),
            identity: self.identity.path.clone(),
        }
    }
}

impl Connection<'_> {
    /// The connection was lost.
    pub(super) fn lost(&self, detail: String) -> PushError {
        self.job.lost(self.attempt, detail)
    }

    /// An SFTP request on `path` failed.
    pub(super) fn remote_error(
        &self,
        action: &'static str,
        path: &str,
        e: ssh2::Error,
    ) -> PushError {
        self.job.remote_error(self.attempt, action, path, e)
    }

    /// A read or write on an open remote file failed; ssh2 reports those as
    /// `io::Error`, without the libssh2 code. If the server still answers,
    /// it refused the request (disk full, say); if not, the connection is
    /// lost.
    pub(super) fn stream_error(&self, action: &'static str, path: &str, e: io::Error) -> PushError {
        let lost = || self.lost(format!("{action} {path}: {e}"));
        if e.kind() == io::ErrorKind::TimedOut {
            return lost();
        }
        match self.sftp.stat(Path::new(&self.job.folder)) {
            Ok(_) => PushError::RemoteFailed {
                location: self.job.location.clone(),
                action,
                path: path.to_string(),
                detail: e.to_string(),
            },
            Err(_) => lost(),
        }
    }
}

/// The folder a remote path is in.
pub(super) fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) => "/".into(),
        Some((p, _)) => p.into(),
        None => path.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_failures_are_retried() {
        // libssh2.h's numbers: socket disconnected, socket receive, socket
        // send, timeout.
        for code in [-13, -43, -7, -9] {
            assert!(is_transport_code(code), "{code}");
        }
        // Authentication failed, public key unverified, sftp protocol.
        for code in [-18, -19, -31] {
            assert!(!is_transport_code(code), "{code}");
        }
    }
}
