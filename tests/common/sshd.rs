//! A real OpenSSH `sshd` on a loopback port, for the sftp tests and the
//! sftp bench.
//!
//! Each [`Sshd`] lives in its own temporary folder with its own TEST-ONLY
//! host key and client key (made by `ssh-keygen` there, never committed),
//! an absolute `AuthorizedKeysFile` and `StrictModes no` (the temp folder is
//! not a home directory), and runs in the foreground (`-D -e`) as the
//! current user, who is also the user the tests log in as. No root is
//! needed. When the tests do run as root, sshd insists on its privilege
//! separation directory, `/run/sshd`; the harness creates it (mode 0755)
//! if it is missing and can be made, as the Debian service would.
//!
//! Also here: [`CutProxy`], a loopback TCP proxy that drops a connection
//! after a given number of bytes from the client, to cut an upload midway.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";
/// Where distributions put OpenSSH's sftp-server.
const SFTP_SERVERS: &[&str] = &[
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
];

#[derive(Debug, Clone, Copy, Default)]
pub struct SshdOptions {
    /// Serve sftp read-only (`sftp-server -R`): every write is refused
    /// with "permission denied", whoever the user is (root included).
    pub read_only: bool,
    /// `LogLevel DEBUG1`, which names the negotiated cipher (the bench).
    pub debug_log: bool,
    /// sshd's `Ciphers`: the only ones it offers, so the client must use
    /// one of these.
    pub ciphers: Option<&'static str>,
}

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub user: String,
    child: Child,
}

/// The user the tests run as, who is the user sshd lets in.
pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `ssh-keygen -t ed25519` with no passphrase; returns the private key path.
pub fn keygen(path: &Path, comment: &str) -> PathBuf {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen is installed (.ci/run installs openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path.to_path_buf()
}

/// `SHA256:…` of a public key file, as `ssh-keygen -lf` prints it.
pub fn fingerprint(public_key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public_key)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Until sshd answers with its banner, or has died.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut banner = [0u8; 8];
            if s.read_exact(&mut banner).is_ok() && &banner == b"SSH-2.0-" {
                return true;
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Sshd {
    pub fn start() -> Self {
        Self::start_with(SshdOptions::default())
    }

    pub fn start_with(options: SshdOptions) -> Self {
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} is missing: apt-get install openssh-server (.ci/run does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("ssh_host_ed25519_key"), "TEST-ONLY host key");
        keygen(&d.join("client_ed25519"), "TEST-ONLY client key");
        fs::copy(d.join("client_ed25519.pub"), d.join("authorized_keys")).unwrap();
        fs::create_dir_all(d.join("inbox")).unwrap();
        let user = current_user();
        if user == "root" && !Path::new("/run/sshd").exists() {
            // sshd's privilege separation directory when run as root.
            if fs::create_dir_all("/run/sshd").is_ok() {
                fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let config = d.join("sshd_config");
            fs::write(&config, config_text(d, port, &user, options)).unwrap();
            let log = fs::File::create(d.join("sshd.log")).unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd");
            if wait_ready(&mut child, port) {
                return Self {
                    dir,
                    port,
                    user,
                    child,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            // Most likely the port was taken between choosing and binding.
            last_log = fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
        }
        panic!("sshd did not start; its log:\n{last_log}");
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The directory the tests push into (exists, writable).
    pub fn inbox(&self) -> PathBuf {
        self.path("inbox")
    }

    /// The client's private key (mode 600, as ssh-keygen makes it).
    pub fn identity(&self) -> PathBuf {
        self.path("client_ed25519")
    }

    pub fn host_key_pub(&self) -> PathBuf {
        self.path("ssh_host_ed25519_key.pub")
    }

    pub fn host_fingerprint(&self) -> String {
        fingerprint(&self.host_key_pub())
    }

    /// The `known_hosts` line pinning this server's key, as
    /// `ssh-keyscan -p PORT 127.0.0.1` would print it.
    pub fn known_hosts_line(&self) -> String {
        let text = fs::read_to_string(self.host_key_pub()).unwrap();
        let mut fields = text.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }

    /// Writes a known_hosts file pinning this server and returns its path.
    pub fn known_hosts(&self) -> PathBuf {
        self.known_hosts_for(self.port)
    }

    /// A known_hosts file pinning this server's key as reached through
    /// another port (a proxy's): the name a client looks up is the one it
    /// connects to.
    pub fn known_hosts_for(&self, port: u16) -> PathBuf {
        let p = self.path(&format!("known_hosts_{port}"));
        let line =
            self.known_hosts_line()
                .replacen(&format!(":{} ", self.port), &format!(":{port} "), 1);
        fs::write(&p, line).unwrap();
        p
    }

    /// `sftp://USER@127.0.0.1:PORT/…/inbox`, or through another port.
    pub fn destination(&self, port: u16) -> String {
        format!(
            "sftp://{}@127.0.0.1:{port}{}",
            self.user,
            self.inbox().display()
        )
    }

    /// Final names given by sftp renames, in the order the server did them.
    pub fn renamed_to(&self) -> Vec<String> {
        fs::read_to_string(self.path("sftp.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once("rename old \"")?.1.split_once("\" new \""))
            .map(|(_, new)| new.trim_end_matches('"').to_string())
            .collect()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_text(dir: &Path, port: u16, user: &str, options: SshdOptions) -> String {
    // OpenSSH's sftp-server with `-l INFO` logs every open, close and
    // rename; `-e` sends that to stderr, which the user's shell (sshd runs
    // subsystems through it) appends to sftp.log, so tests can check the
    // order files arrived in. `-R` serves read-only.
    let server = SFTP_SERVERS
        .iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or_else(|| {
            panic!("no sftp-server in {SFTP_SERVERS:?}: apt-get install openssh-server")
        });
    let read_only = if options.read_only { " -R" } else { "" };
    let sftp = format!(
        "{server} -e -l INFO{read_only} 2>>{}",
        dir.join("sftp.log").display()
    );
    format!(
        "ListenAddress 127.0.0.1:{port}\n\
         HostKey {host_key}\n\
         PidFile {pid}\n\
         AuthorizedKeysFile {authorized}\n\
         StrictModes no\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         PermitRootLogin prohibit-password\n\
         AllowUsers {user}\n\
         MaxStartups 100\n\
         LogLevel {log_level}\n\
         Subsystem sftp {sftp}\n\
         {ciphers}",
        ciphers = options
            .ciphers
            .map(|c| format!("Ciphers {c}\n"))
            .unwrap_or_default(),
        host_key = dir.join("ssh_host_ed25519_key").display(),
        pid = dir.join("sshd.pid").display(),
        authorized = dir.join("authorized_keys").display(),
        log_level = if options.debug_log {
            "DEBUG1"
        } else {
            "VERBOSE"
        },
    )
}

/// A loopback TCP proxy to `127.0.0.1:target`. Each of the first `cuts`
/// connections is dropped (both ways) once `limit` bytes from the client
/// have gone through; later connections pass whole.
pub struct CutProxy {
    pub port: u16,
    connections: Arc<AtomicUsize>,
    cut: Arc<AtomicUsize>,
    flipped: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    pub fn start(target: u16, limit: usize, cuts: usize) -> Self {
        Self::spawn(target, Some(limit), cuts, None)
    }

    /// Instead of cutting: on the first connection only, flips one bit of
    /// the byte at offset `at` of what the server sends, as an attacker or
    /// a faulty network would. Later connections pass whole.
    pub fn flip_server_byte(target: u16, at: usize) -> Self {
        Self::spawn(target, None, 0, Some(at))
    }

    fn spawn(target: u16, limit: Option<usize>, cuts: usize, flip_at: Option<usize>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(AtomicUsize::new(0));
        let flipped = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, k, f, s) = (
            connections.clone(),
            cut.clone(),
            flipped.clone(),
            stop.clone(),
        );
        thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let n = c.fetch_add(1, Ordering::SeqCst);
                        let limit = limit.filter(|_| n < cuts);
                        let flip = flip_at.filter(|_| n == 0).map(|at| (at, f.clone()));
                        let k = k.clone();
                        thread::spawn(move || relay(client, target, limit, k, flip));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self {
            port,
            connections,
            cut,
            flipped,
            stop,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Connections that were cut.
    pub fn cuts(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }

    /// Bytes flipped.
    pub fn flipped(&self) -> usize {
        self.flipped.load(Ordering::SeqCst)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn relay(
    client: TcpStream,
    target: u16,
    limit: Option<usize>,
    cut: Arc<AtomicUsize>,
    flip: Option<(usize, Arc<AtomicUsize>)>,
) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    client.set_nonblocking(false).unwrap();
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut s_read, mut c_write) = (server.try_clone().unwrap(), client.try_clone().unwrap());
    let back = thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        let mut seen = 0usize;
        while let Ok(n) = s_read.read(&mut buf) {
            if let Some((at, flipped)) = &flip {
                if (seen..seen + n).contains(at) {
                    buf[at - seen] ^= 0x10;
                    flipped.fetch_add(1, Ordering::SeqCst);
                }
            }
            seen += n;
            if n == 0 || c_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_write.shutdown(Shutdown::Both);
    });
    let mut buf = vec![0u8; 64 << 10];
    let mut passed = 0usize;
    loop {
        let n = match c_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let allowed = limit.map_or(n, |l| n.min(l - passed));
        if s_write.write_all(&buf[..allowed]).is_err() {
            break;
        }
        passed += allowed;
        if limit.is_some_and(|l| passed >= l) {
            cut.fetch_add(1, Ordering::SeqCst);
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
    let _ = back.join();
}
