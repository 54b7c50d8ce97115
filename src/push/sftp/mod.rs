//! `sftp://user@host:port/path` destinations: the release leaves the
//! building here, so every step fails closed.
//!
//! - The server's host key is checked against the agreement's pinned
//!   `known_hosts` before anything else is sent, the client key included.
//! - dars logs in with the agreement's `identity` key only (no agent, no
//!   password), read from a file no one else can read.
//! - Each file goes to `NAME.part` in large writes (libssh2 pipelines a
//!   write in 30,000-byte packets, so 4 MiB writes keep the pipe full),
//!   is fsynced (OpenSSH's `fsync@openssh.com`), closed, renamed and its
//!   size checked. SFTP v3 rename never replaces a file, so an existing
//!   final name is compared instead: the same bytes mean it arrived
//!   before, other bytes are refused.
//! - A lost connection is retried with exponential backoff and jitter; a
//!   `.part` left behind is resumed from its remote size once its tail
//!   matches the staged file; files already complete are not sent again,
//!   within a run or by a re-run after a crash.
//! - Speed: the client's CPU sets the pace on a loaded machine, and it
//!   goes on libssh2's own crypto. Of the ciphers both libssh2 1.11 and
//!   OpenSSH offer, chacha20-poly1305 costs dars the least (about 4.2 s of
//!   CPU per GiB; AES-GCM and AES-CTR 5.3-5.8 s, as libssh2 hands OpenSSL
//!   one 16-byte block per call), so it comes first; compression is off.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder};
use ssh2::{ErrorCode, MethodType, OpenFlags, OpenType, RenameFlags, Session, Sftp};
use tracing::{info, warn};

use super::identity::{Identity, IdentityError};
use super::known_hosts::{self, KnownHosts, Verdict};
use super::progress::Progress;
use super::{PushError, PushReport, StagedRelease};

/// Bytes kept in flight. libssh2 cuts what it has not seen before of each
/// write into 30,000-byte packets, sends them, and returns as soon as the
/// oldest outstanding one is acknowledged, expecting the rest of the same
/// bytes again in the next call. So every write is handed the whole
/// unacknowledged window, topped up first: the pipe never drains. (Writing
/// a buffer to the end instead stalls on the last acknowledgements each
/// time; at 8 KiB per write an upload runs about 4x slower.) 2 MiB is
/// OpenSSH's channel window, so more than that waits in libssh2 unsent,
/// gone cold in cache by the time it is encrypted: 1, 2, 4 and 8 MiB
/// measured 1.94, 1.51, 1.79 and 1.97 client CPU s/GiB
/// (benches/sftp_upload.rs, sshd's files on tmpfs).
const IN_FLIGHT: usize = 2 << 20;
/// Bytes read from the staged file at a time.
const READ_BLOCK: usize = 1 << 20;
/// The upload buffer: the window, a read, and room to slide so that the
/// window moves back to the start only now and then.
const UPLOAD_BUFFER: usize = 16 << 20;
/// How much of a `.part` is read back before resuming it.
const RESUME_CHECK: u64 = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for the server on any one step before the connection
/// counts as lost.
const SESSION_TIMEOUT_MS: u32 = 60_000;
/// Mode of files created at the destination.
const FILE_MODE: i32 = 0o600;
const DIR_MODE: i32 = 0o750;

// SFTP status codes (draft-ietf-secsh-filexfer-02, section 7).
const FX_NO_SUCH_FILE: i32 = 2;
const FX_PERMISSION_DENIED: i32 = 3;
const FX_NO_CONNECTION: i32 = 6;
const FX_CONNECTION_LOST: i32 = 7;
const FX_OP_UNSUPPORTED: i32 = 8;

/// Ciphers in order of preference, with AES hardware; each one is used only
/// if this libssh2 build has it. AES-256-GCM first: with AES-NI and
/// carry-less multiply OpenSSL runs it in constant time at a fraction of
/// ChaCha20-Poly1305's cost, on our side and, above all, on the server's,
/// which is what bounds an upload (benches/sftp_upload.rs, 1 GiB to
/// OpenSSH's sshd on loopback: 342 MB/s against 226 MB/s with
/// chacha20-poly1305). libssh2 feeds OpenSSL whole runs of blocks through
/// the patch in vendor/libssh2-sys; unpatched it went 16 bytes per call,
/// and AES-GCM cost 5.8 client CPU s/GiB rather than 1.7. AEAD modes
/// before CTR; no CBC, no arcfour, no SHA-1.
const CIPHERS_AES_HARDWARE: &[&str] = &[
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
];
/// Without AES hardware, OpenSSH's own first choice leads: ChaCha20 is
/// fast and constant-time in software, where AES is neither.
const CIPHERS_SOFTWARE: &[&str] = &[
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
];

/// Whether this CPU has AES and carry-less multiply instructions, which
/// OpenSSL uses for AES-GCM.
fn aes_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

fn ciphers() -> &'static [&'static str] {
    if aes_hardware() {
        CIPHERS_AES_HARDWARE
    } else {
        CIPHERS_SOFTWARE
    }
}

const MACS: &[&str] = &[
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
];

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

struct LocalFile {
    name: String,
    path: PathBuf,
    len: u64,
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
    files: Vec<LocalFile>,
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
    let known_hosts_path = known_hosts.ok_or_else(|| PushError::KnownHostsMissing {
        location: location.clone(),
    })?;
    let known_hosts =
        KnownHosts::load(known_hosts_path).map_err(|source| PushError::KnownHostsUnusable {
            path: known_hosts_path.to_path_buf(),
            source,
        })?;
    let identity_path = identity.ok_or_else(|| PushError::IdentityMissing {
        location: location.clone(),
    })?;
    let identity = Identity::load(identity_path).map_err(|e| match e {
        IdentityError::TooOpen { mode } => PushError::IdentityTooOpen {
            path: identity_path.to_path_buf(),
            mode,
        },
        source => PushError::IdentityUnusable {
            path: identity_path.to_path_buf(),
            source,
        },
    })?;
    let mut files = Vec::with_capacity(release.files.len());
    for name in &release.files {
        let path = release.dir.join(name);
        let len = std::fs::metadata(&path)
            .map_err(|source| PushError::Io {
                location: path.display().to_string(),
                action: "reading the staged file",
                source,
            })?
            .len();
        files.push(LocalFile {
            name: name.clone(),
            path,
            len,
        });
    }
    let total: u64 = files.iter().map(|f| f.len).sum();
    let job = Job {
        remote: Remote {
            root: &root,
            ..remote
        },
        location,
        folder,
        known_hosts,
        identity,
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
    let session = connect(job, state.attempts)?;
    let sftp = session
        .sftp()
        .map_err(|e| remote_error(job, state, "starting the sftp subsystem", "", e))?;
    make_folder(job, state, &sftp)?;
    for file in &job.files {
        if state.done.contains(&file.name) {
            continue;
        }
        deliver(job, state, &sftp, file)?;
    }
    drop(sftp);
    let _ = session.disconnect(None, "release delivered", None);
    Ok(())
}

/// TCP, SSH handshake, host key check, then public-key login. Nothing of
/// the client's is sent before the host key is trusted.
fn connect(job: &Job<'_>, attempt: usize) -> Result<Session, PushError> {
    let r = job.remote;
    let pinned: Vec<String> = job.known_hosts.pinned_key_types(r.host, r.port);
    let session = match handshake(job, attempt, &pinned) {
        // The server has none of the pinned key types: ask again without a
        // preference, to name the key it does offer in the error.
        Err(HandshakeFailure::NoCommonHostKey(_)) => handshake(job, attempt, &[]),
        other => other,
    }
    .map_err(|f| f.into_error(job, attempt))?;

    let (blob, _) = session
        .host_key()
        .ok_or_else(|| PushError::ConnectionLost {
            location: job.location.clone(),
            attempts: attempt,
            detail: "the server sent no host key".into(),
        })?;
    let offered = known_hosts::fingerprint(blob);
    let key_type = known_hosts::blob_key_type(blob)
        .unwrap_or("unknown")
        .to_string();
    match job.known_hosts.check(r.host, r.port, blob) {
        Verdict::Trusted => {}
        Verdict::Unknown => {
            return Err(PushError::UnknownHost {
                location: job.location.clone(),
                host: r.host.to_string(),
                port: r.port,
                key_type,
                offered,
                known_hosts: job.known_hosts.path.clone(),
            })
        }
        Verdict::Mismatch { pinned } => {
            return Err(PushError::HostKeyMismatch {
                location: job.location.clone(),
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
                known_hosts: job.known_hosts.path.clone(),
            })
        }
        Verdict::Revoked { line } => {
            return Err(PushError::HostKeyRevoked {
                location: job.location.clone(),
                offered,
                line,
                known_hosts: job.known_hosts.path.clone(),
            })
        }
    }

    if let Err(e) = session.userauth_pubkey_memory(r.user, None, job.identity.pem(), None) {
        return Err(match e.code() {
            ErrorCode::Session(c) if is_transport_code(c) => PushError::ConnectionLost {
                location: job.location.clone(),
                attempts: attempt,
                detail: format!("logging in: {}", e.message()),
            },
            // libssh2 could not read the key itself.
            ErrorCode::Session(-16) => PushError::IdentityUnusable {
                path: job.identity.path.clone(),
                source: IdentityError::NotAPrivateKey(
                    "libssh2 cannot read this key type or format",
                ),
            },
            _ => PushError::AuthenticationRefused {
                location: job.location.clone(),
                user: r.user.to_string(),
                identity: job.identity.path.clone(),
            },
        });
    }
    if !session.authenticated() {
        return Err(PushError::AuthenticationRefused {
            location: job.location.clone(),
            user: r.user.to_string(),
            identity: job.identity.path.clone(),
        });
    }
    info!(host = r.host, port = r.port, host_key = %offered, "connected to the destination");
    Ok(session)
}

enum HandshakeFailure {
    NoCommonHostKey(String),
    Lost(String),
    Other(String),
}

impl HandshakeFailure {
    fn into_error(self, job: &Job<'_>, attempt: usize) -> PushError {
        match self {
            Self::Lost(detail) => PushError::ConnectionLost {
                location: job.location.clone(),
                attempts: attempt,
                detail,
            },
            Self::NoCommonHostKey(detail) | Self::Other(detail) => PushError::HandshakeFailed {
                location: job.location.clone(),
                detail,
            },
        }
    }
}

fn handshake(
    job: &Job<'_>,
    attempt: usize,
    pinned_types: &[String],
) -> Result<Session, HandshakeFailure> {
    let r = job.remote;
    let lost =
        |what: &str, e: &dyn std::fmt::Display| HandshakeFailure::Lost(format!("{what}: {e}"));
    let addrs: Vec<_> = (r.host, r.port)
        .to_socket_addrs()
        .map_err(|e| lost("resolving the host", &e))?
        .collect();
    let mut last: Option<io::Error> = None;
    let mut tcp = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = match (tcp, last) {
        (Some(t), _) => t,
        (None, Some(e)) => return Err(lost("connecting", &e)),
        (None, None) => return Err(HandshakeFailure::Other("the host has no address".into())),
    };
    let _ = tcp.set_nodelay(true);
    let mut session = Session::new().map_err(|e| HandshakeFailure::Other(e.to_string()))?;
    session.set_tcp_stream(tcp);
    session.set_timeout(SESSION_TIMEOUT_MS);
    // Release files are age ciphertext, which does not compress: zlib
    // would only cost CPU on both ends. Off is libssh2's default too.
    session.set_compress(false);
    prefer(&session, MethodType::CryptCs, ciphers());
    prefer(&session, MethodType::CryptSc, ciphers());
    prefer(&session, MethodType::MacCs, MACS);
    prefer(&session, MethodType::MacSc, MACS);
    let algorithms: Vec<&str> = pinned_types
        .iter()
        .flat_map(|t| known_hosts::algorithms_for(t))
        .collect();
    let asks_for_pinned =
        !algorithms.is_empty() && prefer(&session, MethodType::HostKey, &algorithms);
    if let Err(e) = session.handshake() {
        let detail = format!("SSH handshake (attempt {attempt}): {}", e.message());
        // A key exchange failure (-5, -8) is also what a connection cut
        // during the exchange looks like, so it counts as lost: retried,
        // and reported with the detail once the attempts are spent.
        return Err(match e.code() {
            ErrorCode::Session(-5) if asks_for_pinned => HandshakeFailure::NoCommonHostKey(detail),
            ErrorCode::Session(c) if is_transport_code(c) || c == -5 || c == -8 => {
                HandshakeFailure::Lost(detail)
            }
            _ => HandshakeFailure::Other(detail),
        });
    }
    Ok(session)
}

/// Sets a preference list to those of `wanted` this libssh2 supports.
fn prefer(session: &Session, method: MethodType, wanted: &[&str]) -> bool {
    let Ok(supported) = session.supported_algs(method) else {
        return false;
    };
    let list: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| supported.contains(w))
        .collect();
    !list.is_empty() && session.method_pref(method, &list.join(",")).is_ok()
}

/// libssh2 session errors that mean the connection, not the request,
/// failed: a new connection may well succeed.
fn is_transport_code(code: i32) -> bool {
    matches!(
        code,
        -1   // SOCKET_NONE
        | -2 // BANNER_RECV
        | -3 // BANNER_SEND
        | -4 // INVALID_MAC
        | -7 // SOCKET_SEND
        | -9 // TIMEOUT
        | -12 // DECRYPT
        | -13 // SOCKET_DISCONNECT
        | -14 // PROTO
        | -20 // CHANNEL_OUTOFORDER
        | -21 // CHANNEL_FAILURE
        | -26 // CHANNEL_CLOSED
        | -27 // CHANNEL_EOF_SENT
        | -30 // SOCKET_TIMEOUT
        | -43 // SOCKET_RECV
        | -44 // ENCRYPT
        | -45 // BAD_SOCKET
    )
}

fn is_transport(e: &ssh2::Error) -> bool {
    match e.code() {
        ErrorCode::Session(c) => is_transport_code(c),
        ErrorCode::SFTP(c) => c == FX_NO_CONNECTION || c == FX_CONNECTION_LOST,
    }
}

fn remote_error(
    job: &Job<'_>,
    state: &State,
    action: &'static str,
    path: &str,
    e: ssh2::Error,
) -> PushError {
    let path = path.to_string();
    match e.code() {
        _ if is_transport(&e) => PushError::ConnectionLost {
            location: job.location.clone(),
            attempts: state.attempts,
            detail: format!("{action} {path}: {}", e.message()),
        },
        ErrorCode::SFTP(FX_NO_SUCH_FILE) => PushError::RemoteDirMissing {
            location: job.location.clone(),
            path: parent(&path),
        },
        ErrorCode::SFTP(FX_PERMISSION_DENIED) => PushError::RemoteNotWritable {
            location: job.location.clone(),
            user: job.remote.user.to_string(),
            path,
            action,
        },
        _ => PushError::RemoteFailed {
            location: job.location.clone(),
            action,
            path,
            detail: e.message().to_string(),
        },
    }
}

fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) => "/".into(),
        Some((p, _)) => p.into(),
        None => path.into(),
    }
}

/// A read or write on an open remote file failed; ssh2 reports those as
/// `io::Error`, without the libssh2 code. If the server still answers, it
/// refused the request (disk full, say); if not, the connection is lost.
fn stream_error(
    job: &Job<'_>,
    state: &State,
    sftp: &Sftp,
    action: &'static str,
    path: &str,
    e: io::Error,
) -> PushError {
    let lost = || PushError::ConnectionLost {
        location: job.location.clone(),
        attempts: state.attempts,
        detail: format!("{action} {path}: {e}"),
    };
    if e.kind() == io::ErrorKind::TimedOut {
        return lost();
    }
    match sftp.stat(Path::new(&job.folder)) {
        Ok(_) => PushError::RemoteFailed {
            location: job.location.clone(),
            action,
            path: path.to_string(),
            detail: e.to_string(),
        },
        Err(_) => lost(),
    }
}

/// `ROOT` must exist; `ROOT/REFERENCE/RUN_ID` is made as needed.
fn make_folder(job: &Job<'_>, state: &State, sftp: &Sftp) -> Result<(), PushError> {
    let root = if job.remote.root.is_empty() {
        "/"
    } else {
        job.remote.root
    };
    match sftp.stat(Path::new(root)) {
        Ok(st) if st.is_dir() => {}
        Ok(_) => {
            return Err(PushError::RemoteFailed {
                location: job.location.clone(),
                action: "opening the destination directory",
                path: root.to_string(),
                detail: "it is not a directory".into(),
            })
        }
        Err(e) if e.code() == ErrorCode::SFTP(FX_NO_SUCH_FILE) => {
            return Err(PushError::RemoteDirMissing {
                location: job.location.clone(),
                path: root.to_string(),
            })
        }
        Err(e) => return Err(remote_error(job, state, "opening", root, e)),
    }
    let mut path = job.remote.root.to_string();
    for part in job.folder[job.remote.root.len()..]
        .split('/')
        .filter(|p| !p.is_empty())
    {
        path.push('/');
        path.push_str(part);
        if let Err(e) = sftp.mkdir(Path::new(&path), DIR_MODE) {
            match sftp.stat(Path::new(&path)) {
                Ok(st) if st.is_dir() => {}
                _ => {
                    return Err(remote_error(
                        job,
                        state,
                        "creating the release folder",
                        &path,
                        e,
                    ))
                }
            }
        }
    }
    Ok(())
}

/// One file: found whole already, or sent to `.part` (resumed if one is
/// there), fsynced, closed, renamed and checked.
fn deliver(
    job: &Job<'_>,
    state: &mut State,
    sftp: &Sftp,
    file: &LocalFile,
) -> Result<(), PushError> {
    let final_path = format!("{}/{}", job.folder, file.name);
    let part_path = format!("{final_path}.part");
    let done_before: u64 = job
        .files
        .iter()
        .filter(|f| state.done.contains(&f.name))
        .map(|f| f.len)
        .sum();

    if already_there(job, state, sftp, file, &final_path)? {
        record_done(state, file);
        job.progress.set_overall(done_before + file.len);
        return Ok(());
    }

    let offset = resumable_offset(job, state, sftp, file, &part_path)?;
    job.progress.set_overall(done_before + offset);
    let bar = job.progress.file(&file.name, file.len, offset);
    let mut remote = if offset > 0 {
        info!(file = %file.name, from = offset, "resuming a partial upload");
        let mut f = sftp
            .open_mode(
                Path::new(&part_path),
                OpenFlags::WRITE,
                FILE_MODE,
                OpenType::File,
            )
            .map_err(|e| remote_error(job, state, "reopening", &part_path, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| stream_error(job, state, sftp, "seeking in", &part_path, e))?;
        f
    } else {
        sftp.open_mode(
            Path::new(&part_path),
            OpenFlags::WRITE | OpenFlags::EXCLUSIVE,
            FILE_MODE,
            OpenType::File,
        )
        .map_err(|e| remote_error(job, state, "creating", &part_path, e))?
    };

    let mut local = File::open(&file.path).map_err(|source| PushError::Io {
        location: file.path.display().to_string(),
        action: "reading the staged file",
        source,
    })?;
    local
        .seek(SeekFrom::Start(offset))
        .map_err(|source| PushError::Io {
            location: file.path.display().to_string(),
            action: "reading the staged file",
            source,
        })?;
    // buf[start..end] is read but not yet acknowledged by the server.
    let mut buf = vec![0u8; UPLOAD_BUFFER];
    let (mut start, mut end, mut eof) = (0, 0, false);
    loop {
        while !eof && end - start < IN_FLIGHT {
            if end + READ_BLOCK > buf.len() {
                // libssh2 keeps its own copy of what it has packed, and
                // counts positions, not addresses: the window may move.
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            let n = read_full(&mut local, &mut buf[end..end + READ_BLOCK]).map_err(|source| {
                PushError::Io {
                    location: file.path.display().to_string(),
                    action: "reading the staged file",
                    source,
                }
            })?;
            eof = n == 0;
            end += n;
        }
        if start == end {
            break;
        }
        let k = remote
            .write(&buf[start..end])
            .map_err(|e| stream_error(job, state, sftp, "writing", &part_path, e))?;
        if k == 0 {
            return Err(PushError::ConnectionLost {
                location: job.location.clone(),
                attempts: state.attempts,
                detail: format!("writing {part_path}: the server accepted no bytes"),
            });
        }
        start += k;
        state.bytes_sent += k as u64;
        job.progress.advance(&bar, k as u64);
    }
    match remote.fsync() {
        Ok(()) => {}
        Err(e) if e.code() == ErrorCode::SFTP(FX_OP_UNSUPPORTED) => {
            if !state.warned_no_fsync {
                warn!("the server has no fsync@openssh.com: files are renamed without a forced flush to disk");
                state.warned_no_fsync = true;
            }
        }
        Err(e) => return Err(remote_error(job, state, "fsync of", &part_path, e)),
    }
    remote
        .close()
        .map_err(|e| remote_error(job, state, "closing", &part_path, e))?;
    drop(remote);
    bar.finish();
    state.written.insert(file.name.clone());

    ensure_size(job, state, sftp, file, &part_path)?;
    // Without the overwrite flag: SFTP v3 (OpenSSH) refuses to replace an
    // existing name, which is what a release needs.
    if let Err(e) = sftp.rename(
        Path::new(&part_path),
        Path::new(&final_path),
        Some(RenameFlags::ATOMIC | RenameFlags::NATIVE),
    ) {
        // Perhaps the name was taken meanwhile: the same bytes are fine,
        // other bytes a conflict. Otherwise the rename itself failed.
        if !already_there(job, state, sftp, file, &final_path)? {
            return Err(remote_error(job, state, "renaming", &part_path, e));
        }
        let _ = sftp.unlink(Path::new(&part_path));
        record_done(state, file);
        return Ok(());
    }
    ensure_size(job, state, sftp, file, &final_path)?;
    record_done(state, file);
    Ok(())
}

fn record_done(state: &mut State, file: &LocalFile) {
    if state.done.insert(file.name.clone()) {
        if state.written.contains(&file.name) {
            state.files_sent += 1;
        } else {
            state.files_already_there += 1;
        }
    }
}

/// The size of a remote file, `None` if there is none.
/// The remote file at `path` must hold exactly the staged file's bytes.
fn ensure_size(
    job: &Job<'_>,
    state: &State,
    sftp: &Sftp,
    file: &LocalFile,
    path: &str,
) -> Result<(), PushError> {
    let size = remote_size(job, state, sftp, path)?;
    if size != Some(file.len) {
        return Err(PushError::SizeMismatch {
            location: job.location.clone(),
            name: file.name.clone(),
            expected: file.len,
            actual: size.unwrap_or(0),
        });
    }
    Ok(())
}

fn remote_size(
    job: &Job<'_>,
    state: &State,
    sftp: &Sftp,
    path: &str,
) -> Result<Option<u64>, PushError> {
    match sftp.stat(Path::new(path)) {
        Ok(st) => Ok(Some(st.size.unwrap_or(0))),
        Err(e) if e.code() == ErrorCode::SFTP(FX_NO_SUCH_FILE) => Ok(None),
        Err(e) => Err(remote_error(job, state, "checking", path, e)),
    }
}

/// Whether the final name already holds exactly this file. A different
/// file under it is a conflict: a released file is never overwritten.
fn already_there(
    job: &Job<'_>,
    state: &State,
    sftp: &Sftp,
    file: &LocalFile,
    final_path: &str,
) -> Result<bool, PushError> {
    let conflict = || PushError::Conflict {
        location: job.location.clone(),
        name: file.name.clone(),
    };
    match remote_size(job, state, sftp, final_path)? {
        None => Ok(false),
        Some(size) if size != file.len => Err(conflict()),
        Some(_) => {
            if same_bytes(job, state, sftp, file, final_path, 0)? {
                Ok(true)
            } else {
                Err(conflict())
            }
        }
    }
}

/// Where to go on with `NAME.part`: its remote size if its last bytes are
/// the staged file's, else 0 after removing it (a `.part` longer than the
/// file, or of other bytes, is not this file's).
fn resumable_offset(
    job: &Job<'_>,
    state: &State,
    sftp: &Sftp,
    file: &LocalFile,
    part_path: &str,
) -> Result<u64, PushError> {
    let Some(size) = remote_size(job, state, sftp, part_path)? else {
        return Ok(0);
    };
    if size > 0
        && size <= file.len
        && same_bytes(
            job,
            state,
            sftp,
            file,
            part_path,
            size.saturating_sub(RESUME_CHECK),
        )?
    {
        return Ok(size);
    }
    sftp.unlink(Path::new(part_path))
        .map_err(|e| remote_error(job, state, "removing a stale", part_path, e))?;
    Ok(0)
}

/// Whether the remote file's bytes from `from` to its end equal the staged
/// file's bytes over the same range.
fn same_bytes(
    job: &Job<'_>,
    state: &State,
    sftp: &Sftp,
    file: &LocalFile,
    remote_path: &str,
    from: u64,
) -> Result<bool, PushError> {
    let local_err = |source| PushError::Io {
        location: file.path.display().to_string(),
        action: "reading the staged file",
        source,
    };
    let mut remote = sftp
        .open(Path::new(remote_path))
        .map_err(|e| remote_error(job, state, "opening", remote_path, e))?;
    if from > 0 {
        remote
            .seek(SeekFrom::Start(from))
            .map_err(|e| stream_error(job, state, sftp, "seeking in", remote_path, e))?;
    }
    let mut local = File::open(&file.path).map_err(local_err)?;
    local.seek(SeekFrom::Start(from)).map_err(local_err)?;
    let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut remote, &mut a)
            .map_err(|e| stream_error(job, state, sftp, "reading", remote_path, e))?;
        let m = read_full(&mut local, &mut b[..n.max(1)]).map_err(local_err)?;
        if n == 0 {
            // The remote file ended: equal if the staged one went no
            // further over this range, which the caller's size check
            // already settles.
            return Ok(true);
        }
        if m != n || a[..n] != b[..n] {
            return Ok(false);
        }
    }
}

/// Reads until `buf` is full or the end of the input.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_absolute_without_a_trailing_slash() {
        assert_eq!(normalise_root("/srv/inbox/"), "/srv/inbox");
        assert_eq!(normalise_root("inbox"), "/inbox");
        assert_eq!(normalise_root("/"), "");
        assert_eq!(parent("/srv/inbox/REF"), "/srv/inbox");
        assert_eq!(parent("/srv"), "/");
    }

    #[test]
    fn aes_gcm_leads_only_with_aes_hardware_and_both_lists_offer_the_same() {
        let first = ciphers()[0];
        assert_eq!(first == "aes256-gcm@openssh.com", aes_hardware(), "{first}");
        let mut a = CIPHERS_AES_HARDWARE.to_vec();
        let mut b = CIPHERS_SOFTWARE.to_vec();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        assert!(a
            .iter()
            .all(|c| !c.contains("cbc") && !c.contains("arcfour")));
    }

    #[test]
    fn only_connection_failures_are_retried() {
        for code in [-13, -43, -7, -9] {
            assert!(is_transport_code(code), "{code}");
        }
        // Authentication failed, public key unverified, sftp protocol.
        for code in [-18, -19, -31] {
            assert!(!is_transport_code(code), "{code}");
        }
    }

    #[test]
    fn read_full_fills_across_short_reads() {
        struct Trickle(Vec<u8>);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(3).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0.drain(..n);
                Ok(n)
            }
        }
        let mut t = Trickle((0..10).collect());
        let mut buf = [0u8; 8];
        assert_eq!(read_full(&mut t, &mut buf).unwrap(), 8);
        assert_eq!(buf, [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(read_full(&mut t, &mut buf).unwrap(), 2);
    }
}
