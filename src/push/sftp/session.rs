//! The SSH session: TCP, the handshake, the server's host key checked
//! against the agreement's pinned `known_hosts`, then public-key login
//! with the agreement's `identity` key only (no agent, no password).
//! Nothing of the client's, its key included, is sent before the host key
//! is trusted.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use ssh2::{MethodType, Session};
use tracing::info;

use super::ciphers;
use super::errors::HandshakeFailure;
use super::Job;
use crate::push::known_hosts::{self, Verdict};
use crate::push::PushError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for the server on any one step before the connection
/// counts as lost.
const SESSION_TIMEOUT_MS: u32 = 60_000;

/// A logged-in session with a trusted server.
pub(super) fn connect(job: &Job<'_>, attempt: usize) -> Result<Session, PushError> {
    let r = job.remote;
    let pinned = job.known_hosts.pinned_key_types(r.host, r.port);
    let session = match handshake(job, attempt, &pinned) {
        // The server has none of the pinned key types: ask again without a
        // preference, to name the key it does offer in the error.
        Err(HandshakeFailure::NoCommonHostKey(_)) => handshake(job, attempt, &[]),
        other => other,
    }
    .map_err(|f| f.into_error(job, attempt))?;
    let offered = check_host_key(job, attempt, &session)?;
    if let Err(e) = session.userauth_pubkey_memory(r.user, None, job.identity.pem(), None) {
        return Err(job.login_error(attempt, &e));
    }
    if !session.authenticated() {
        return Err(job.authentication_refused());
    }
    info!(host = r.host, port = r.port, host_key = %offered, "connected to the destination");
    Ok(session)
}

/// TCP to the first address that answers, then the SSH handshake with
/// dars's algorithm preferences; the host key algorithms are narrowed to
/// `pinned_types` if any are given, so that a server with several host
/// keys shows the pinned one.
fn handshake(
    job: &Job<'_>,
    attempt: usize,
    pinned_types: &[String],
) -> Result<Session, HandshakeFailure> {
    let tcp = tcp(job)?;
    let _ = tcp.set_nodelay(true);
    let mut session = Session::new().map_err(|e| HandshakeFailure::Other(e.to_string()))?;
    session.set_tcp_stream(tcp);
    session.set_timeout(SESSION_TIMEOUT_MS);
    // Release files are age ciphertext, which does not compress: zlib
    // would only cost CPU on both ends. Off is libssh2's default too.
    session.set_compress(false);
    ciphers::apply(&session);
    let algorithms: Vec<&str> = pinned_types
        .iter()
        .flat_map(|t| known_hosts::algorithms_for(t))
        .collect();
    let asked_for_pinned =
        !algorithms.is_empty() && ciphers::prefer(&session, MethodType::HostKey, &algorithms);
    if let Err(e) = session.handshake() {
        let detail = format!("SSH handshake (attempt {attempt}): {}", e.message());
        return Err(HandshakeFailure::of(&e, detail, asked_for_pinned));
    }
    Ok(session)
}

fn tcp(job: &Job<'_>) -> Result<TcpStream, HandshakeFailure> {
    let r = job.remote;
    let lost =
        |what: &str, e: &dyn std::fmt::Display| HandshakeFailure::Lost(format!("{what}: {e}"));
    let addrs: Vec<_> = (r.host, r.port)
        .to_socket_addrs()
        .map_err(|e| lost("resolving the host", &e))?
        .collect();
    let mut last: Option<io::Error> = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => lost("connecting", &e),
        None => HandshakeFailure::Other("the host has no address".into()),
    })
}

/// The server's host key must be pinned for this host and port, and not
/// revoked. Returns its fingerprint.
fn check_host_key(job: &Job<'_>, attempt: usize, session: &Session) -> Result<String, PushError> {
    let r = job.remote;
    let (blob, _) = session
        .host_key()
        .ok_or_else(|| job.lost(attempt, "the server sent no host key".into()))?;
    let offered = known_hosts::fingerprint(blob);
    let key_type = known_hosts::blob_key_type(blob)
        .unwrap_or("unknown")
        .to_string();
    let known_hosts = job.known_hosts.path.clone();
    let location = job.location.clone();
    match job.known_hosts.check(r.host, r.port, blob) {
        Verdict::Trusted => Ok(offered),
        Verdict::Unknown => Err(PushError::UnknownHost {
            location,
            host: r.host.to_string(),
            port: r.port,
            key_type,
            offered,
            known_hosts,
        }),
        Verdict::Mismatch { pinned } => Err(PushError::HostKeyMismatch {
            location,
            host_name: known_hosts::host_name(r.host, r.port),
            host: r.host.to_string(),
            port: r.port,
            key_type,
            offered,
            pinned: pinned
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            known_hosts,
        }),
        Verdict::Revoked { line } => Err(PushError::HostKeyRevoked {
            location,
            offered,
            line,
            known_hosts,
        }),
    }
}
