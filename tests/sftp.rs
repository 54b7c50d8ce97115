//! sftp destinations against the real OpenSSH sshd on loopback (issue #5):
//! a release arrives whole and verifies; unpinned or changed host keys are
//! refused before anything is sent; a connection cut midway is retried and
//! resumed; a re-run after a crash finishes without re-sending; missing or
//! read-only destinations and unsafe keys give clear errors.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::sshd::{keygen, CutProxy, Sshd, SshdOptions};
use common::*;
use dars::push::{self, Destination, PushError, PushReport, ReleaseConfig, StagedRelease};

fn config(sshd: &Sshd, port: u16, known_hosts: PathBuf) -> ReleaseConfig {
    ReleaseConfig {
        recipients: vec![],
        destination: Destination::parse(&sshd.destination(port)).unwrap(),
        known_hosts: Some(known_hosts),
        identity: Some(sshd.identity()),
    }
}

/// Deterministic bytes that do not repeat with a short period, so a
/// misplaced resume offset shows.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Staged {
    _dir: tempfile::TempDir,
    release: StagedRelease,
}

impl Staged {
    fn total(&self) -> u64 {
        self.release
            .files
            .iter()
            .map(|f| fs::metadata(self.release.dir.join(f)).unwrap().len())
            .sum()
    }

    fn content(&self, name: &str) -> Vec<u8> {
        fs::read(self.release.dir.join(name)).unwrap()
    }
}

/// A staged release: data files of the given sizes, then a manifest and a
/// signature, into `REF/<folder>`.
fn stage(folder: &str, data: &[(&str, usize)]) -> Staged {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, (name, len)) in data.iter().enumerate() {
        fs::write(dir.path().join(name), bytes(*len, i as u64 + 1)).unwrap();
        files.push(name.to_string());
    }
    fs::write(dir.path().join("manifest.json"), b"{\"files\":[]}\n").unwrap();
    fs::write(
        dir.path().join("manifest.json.sig"),
        b"-----BEGIN SSH SIGNATURE-----\n",
    )
    .unwrap();
    files.push("manifest.json".into());
    files.push("manifest.json.sig".into());
    Staged {
        release: StagedRelease {
            dir: dir.path().to_path_buf(),
            files,
            folder: format!("DARS-NIC-000001-DEMO1-01/{folder}"),
        },
        _dir: dir,
    }
}

/// Every file under a directory, relative paths, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The staged files arrived byte for byte, and nothing else (no `.part`).
fn assert_arrived_whole(sshd: &Sshd, staged: &Staged) {
    let folder = sshd.inbox().join(&staged.release.folder);
    let mut expected = staged.release.files.clone();
    expected.sort();
    assert_eq!(tree(&folder), expected, "files at {}", folder.display());
    for name in &staged.release.files {
        assert!(
            fs::read(folder.join(name)).unwrap() == staged.content(name),
            "{name} arrived with other bytes"
        );
    }
}

fn push_ok(config: &ReleaseConfig, staged: &Staged) -> PushReport {
    push::push(config, &staged.release).unwrap_or_else(|e| panic!("push failed: {e}"))
}

#[test]
fn a_release_run_by_dars_arrives_over_sftp_and_dars_verify_passes() {
    let sshd = Sshd::start();
    let w = Workdir::new(600, 100, 3000, 21);
    let agreement = w.agreement("agreement.toml", "2099-12-31", "");
    let text = fs::read_to_string(&agreement).unwrap().replace(
        "destination = \"file://outbox\"",
        &format!(
            "destination = \"{}\"\nknown_hosts = \"{}\"\nidentity = \"{}\"",
            sshd.destination(sshd.port),
            sshd.known_hosts().display(),
            sshd.identity().display()
        ),
    );
    fs::write(&agreement, text).unwrap();
    let out = w.dars(&["run", agreement.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "run failed: {}\n{}\nsshd log:\n{}",
        stdout(&out),
        stderr(&out),
        sshd.log()
    );
    assert!(
        w.outbox_files().is_empty(),
        "nothing goes to the local outbox"
    );
    let arrived = tree(&sshd.inbox());
    assert_eq!(arrived.len(), 4, "{arrived:?}");
    assert!(arrived.iter().all(|p| !p.ends_with(".part")), "{arrived:?}");
    let sig = arrived
        .iter()
        .find(|p| p.ends_with("manifest.json.sig"))
        .expect("the signature arrived");
    let folder = sshd.inbox().join(Path::new(sig).parent().unwrap());
    let verify = w.run(&[
        "verify",
        folder.to_str().unwrap(),
        "--allowed-signers",
        w.path("keys/allowed_signers").to_str().unwrap(),
    ]);
    assert!(
        verify.status.success(),
        "dars verify refused what arrived: {}",
        stderr(&verify)
    );
    // The server saw dars log in with the agreement's key, and the files
    // took their final names data first, then the manifest, then the
    // signature, the commit marker.
    assert!(sshd.log().contains("Accepted publickey"), "{}", sshd.log());
    let renamed: Vec<String> = sshd
        .renamed_to()
        .iter()
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(renamed.len(), 4, "{renamed:?}\n{}", sshd.log());
    assert!(
        renamed[..2].iter().all(|n| n.ends_with(".age")),
        "{renamed:?}"
    );
    assert_eq!(renamed[2..], ["manifest.json", "manifest.json.sig"]);
}

#[test]
fn a_known_hosts_file_from_ssh_keyscan_hashed_by_ssh_keygen_is_understood() {
    let sshd = Sshd::start();
    let known_hosts = sshd.path("scanned_known_hosts");
    let scan = std::process::Command::new("ssh-keyscan")
        .args(["-p", &sshd.port.to_string(), "127.0.0.1"])
        .output()
        .expect("ssh-keyscan is installed (openssh-client)");
    assert!(
        scan.status.success(),
        "{}",
        String::from_utf8_lossy(&scan.stderr)
    );
    fs::write(&known_hosts, &scan.stdout).unwrap();
    let hashed = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&known_hosts)
        .output()
        .unwrap();
    assert!(hashed.status.success());
    let text = fs::read_to_string(&known_hosts).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains("127.0.0.1"),
        "{text}"
    );
    let staged = stage("scanned", &[("a.parquet.age", 100_000)]);
    push_ok(&config(&sshd, sshd.port, known_hosts), &staged);
    assert_arrived_whole(&sshd, &staged);
}

#[test]
fn a_wrong_host_key_is_refused_before_logging_in_and_nothing_is_sent() {
    let sshd = Sshd::start();
    let impostor = keygen(&sshd.path("other_host_key"), "TEST-ONLY other host");
    let other = fs::read_to_string(impostor.with_extension("pub")).unwrap();
    let known_hosts = sshd.path("known_hosts_wrong");
    let mut fields = other.split_whitespace();
    fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{} {} {}\n",
            sshd.port,
            fields.next().unwrap(),
            fields.next().unwrap()
        ),
    )
    .unwrap();
    let staged = stage("wrong-key", &[("a.parquet.age", 1000)]);
    let err = push::push(
        &config(&sshd, sshd.port, known_hosts.clone()),
        &staged.release,
    )
    .unwrap_err();
    assert!(matches!(err, PushError::HostKeyMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&sshd.host_fingerprint()), "offered key: {msg}");
    assert!(
        msg.contains(&common::sshd::fingerprint(&impostor.with_extension("pub"))),
        "pinned key: {msg}"
    );
    assert!(msg.contains(&known_hosts.display().to_string()), "{msg}");
    assert!(tree(&sshd.inbox()).is_empty(), "{:?}", tree(&sshd.inbox()));
    assert!(
        !sshd.log().contains("Accepted publickey"),
        "dars logged in to a server it does not trust:\n{}",
        sshd.log()
    );
}

#[test]
fn an_unknown_host_is_refused_with_the_offered_fingerprint_and_how_to_pin_it() {
    let sshd = Sshd::start();
    let staged = stage("unknown", &[("a.parquet.age", 1000)]);
    // Pinned for another port only, then an empty file.
    let elsewhere = sshd.path("known_hosts_elsewhere");
    fs::write(
        &elsewhere,
        sshd.known_hosts_line()
            .replace(&format!(":{} ", sshd.port), ":1 "),
    )
    .unwrap();
    let empty = sshd.path("known_hosts_empty");
    fs::write(&empty, "# nothing pinned yet\n").unwrap();
    for known_hosts in [elsewhere, empty] {
        let err = push::push(
            &config(&sshd, sshd.port, known_hosts.clone()),
            &staged.release,
        )
        .unwrap_err();
        assert!(matches!(err, PushError::UnknownHost { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&sshd.host_fingerprint()), "{msg}");
        assert!(
            msg.contains(&format!("ssh-keyscan -p {}", sshd.port))
                && msg.contains(&known_hosts.display().to_string()),
            "{msg}"
        );
    }
    assert!(tree(&sshd.inbox()).is_empty());
    assert!(!sshd.log().contains("Accepted publickey"));
}

/// Regression test for issue #5: the connection is cut after N bytes from
/// the client, at several N (during key exchange, during login, in the
/// first data file, in the second); the push retries, resumes, and the
/// files arrive whole with no `.part` left.
#[test]
fn issue_5_a_connection_cut_mid_upload_is_retried_and_resumed() {
    let sshd = Sshd::start();
    for limit in [700, 3_000, 9_000, 1_500_000, 5_000_000] {
        let staged = stage(
            &format!("cut-{limit}"),
            &[("a.parquet.age", 3_000_000), ("b.csv.age", 3_000_000)],
        );
        let proxy = CutProxy::start(sshd.port, limit, 1);
        let known_hosts = sshd.known_hosts_for(proxy.port);
        let report = push_ok(&config(&sshd, proxy.port, known_hosts), &staged);
        assert_eq!(proxy.cuts(), 1, "cut at {limit}");
        assert!(proxy.connections() >= 2, "cut at {limit}: no reconnect");
        assert_eq!(report.files_sent, 4, "cut at {limit}");
        assert!(
            report.bytes_sent <= staged.total(),
            "cut at {limit}: {} bytes sent for {}: not resumed",
            report.bytes_sent,
            staged.total()
        );
        assert_arrived_whole(&sshd, &staged);
    }

    // Cut three times within one file: each connection resumes where the
    // last one stopped, so no byte is sent twice.
    let staged = stage("cut-thrice", &[("a.parquet.age", 8_000_000)]);
    let proxy = CutProxy::start(sshd.port, 2_500_000, 3);
    let known_hosts = sshd.known_hosts_for(proxy.port);
    let report = push_ok(&config(&sshd, proxy.port, known_hosts), &staged);
    assert_eq!((proxy.cuts(), proxy.connections()), (3, 4));
    assert!(report.bytes_sent <= staged.total(), "{report:?}");
    assert_arrived_whole(&sshd, &staged);
}

/// Every kind of cipher dars offers works against OpenSSH both ways (sshd
/// checks each packet's MAC or tag, and dars each reply's), through the
/// patches in vendor/libssh2-sys: chacha20-poly1305 is OpenSSL's ChaCha20
/// and Poly1305; AES-GCM and AES-CTR (with an HMAC) get whole runs of
/// blocks per OpenSSL call, sending and receiving. The file is larger than
/// the upload buffer and not a whole number of reads or packets, so the
/// window slides back to the buffer's start mid-file.
#[test]
fn issue_5_each_offered_cipher_uploads_a_large_file_intact() {
    for (cipher, mac) in [
        ("chacha20-poly1305@openssh.com", "<implicit>"),
        ("aes256-gcm@openssh.com", "<implicit>"),
        ("aes128-ctr", "hmac-sha2-256-etm@openssh.com"),
    ] {
        let sshd = Sshd::start_with(SshdOptions {
            debug_log: true,
            ciphers: Some(cipher),
            ..Default::default()
        });
        let staged = stage("ciphers", &[("a.parquet.age", (37 << 20) + 12_345)]);
        let direct = config(&sshd, sshd.port, sshd.known_hosts());
        let report = push_ok(&direct, &staged);
        assert_eq!(report.bytes_sent, staged.total(), "{cipher}");
        assert_arrived_whole(&sshd, &staged);
        // Pushed again, every file is read back and compared with the
        // staged one: the receiving side's decryption of full packets.
        let again = push_ok(&direct, &staged);
        assert_eq!(
            (again.files_already_there, again.bytes_sent),
            (3, 0),
            "{cipher}: {again:?}"
        );
        // A bit flipped in the server's stream, 2 MB in (inside the data
        // read back), fails its packet's tag or MAC: the connection counts
        // as lost and the push starts again and ends well. Were the check
        // skipped, the altered bytes would read as another file there.
        let proxy = CutProxy::flip_server_byte(sshd.port, 2_000_000);
        let known_hosts = sshd.known_hosts_for(proxy.port);
        let tampered = push_ok(&config(&sshd, proxy.port, known_hosts), &staged);
        assert_eq!(proxy.flipped(), 1, "{cipher}");
        assert_eq!(proxy.connections(), 2, "{cipher}: the flip went unnoticed");
        assert_eq!(tampered.files_already_there, 3, "{cipher}");
        let log = sshd.log();
        assert!(
            log.contains(&format!("client->server cipher: {cipher} MAC: {mac}"))
                && log.contains(&format!("server->client cipher: {cipher} MAC: {mac}")),
            "{cipher} with {mac} was not used:\n{log}"
        );
    }
}

#[test]
fn a_rerun_after_a_crash_finishes_the_release_without_resending_complete_files() {
    let sshd = Sshd::start();
    let staged = stage(
        "crashed",
        &[("a.parquet.age", 2_000_000), ("b.csv.age", 3_000_000)],
    );
    // What a crash during `b` leaves: `a` whole, half of `b` in its .part.
    let folder = sshd.inbox().join(&staged.release.folder);
    fs::create_dir_all(&folder).unwrap();
    fs::write(
        folder.join("a.parquet.age"),
        staged.content("a.parquet.age"),
    )
    .unwrap();
    let b = staged.content("b.csv.age");
    fs::write(folder.join("b.csv.age.part"), &b[..1_234_567]).unwrap();
    let report = push_ok(&config(&sshd, sshd.port, sshd.known_hosts()), &staged);
    assert_eq!((report.files_already_there, report.files_sent), (1, 3));
    assert_eq!(
        report.bytes_sent,
        staged.total() - 2_000_000 - 1_234_567,
        "only the rest of b, the manifest and the signature were sent"
    );
    assert_arrived_whole(&sshd, &staged);

    // A second re-run sends nothing at all.
    let again = push_ok(&config(&sshd, sshd.port, sshd.known_hosts()), &staged);
    assert_eq!(
        (
            again.files_already_there,
            again.files_sent,
            again.bytes_sent
        ),
        (4, 0, 0)
    );

    // A .part that is not this file's (other bytes) is started again.
    let staged = stage("stale-part", &[("a.parquet.age", 1_500_000)]);
    let folder = sshd.inbox().join(&staged.release.folder);
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("a.parquet.age.part"), bytes(700_000, 99)).unwrap();
    let report = push_ok(&config(&sshd, sshd.port, sshd.known_hosts()), &staged);
    assert_eq!(report.bytes_sent, staged.total());
    assert_arrived_whole(&sshd, &staged);
}

#[test]
fn a_different_file_under_a_final_name_is_never_overwritten() {
    let sshd = Sshd::start();
    let staged = stage(
        "conflict",
        &[("a.parquet.age", 10_000), ("b.csv.age", 10_000)],
    );
    let folder = sshd.inbox().join(&staged.release.folder);
    fs::create_dir_all(&folder).unwrap();
    // Same size, other bytes: only a comparison of content catches it.
    fs::write(folder.join("b.csv.age"), bytes(10_000, 42)).unwrap();
    let err = push::push(
        &config(&sshd, sshd.port, sshd.known_hosts()),
        &staged.release,
    )
    .unwrap_err();
    assert!(
        matches!(&err, PushError::Conflict { name, .. } if name == "b.csv.age"),
        "{err}"
    );
    assert_eq!(
        fs::read(folder.join("b.csv.age")).unwrap(),
        bytes(10_000, 42)
    );
    assert!(!folder.join("manifest.json.sig").exists());
    assert!(!folder.join("manifest.json").exists());
}

#[test]
fn a_missing_or_read_only_destination_directory_is_a_clear_error() {
    let sshd = Sshd::start();
    let staged = stage("missing", &[("a.parquet.age", 1000)]);
    let mut c = config(&sshd, sshd.port, sshd.known_hosts());
    let missing = sshd.inbox().join("no/such/dir");
    c.destination = Destination::parse(&format!(
        "sftp://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.port,
        missing.display()
    ))
    .unwrap();
    let err = push::push(&c, &staged.release).unwrap_err();
    assert!(matches!(err, PushError::RemoteDirMissing { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("mkdir -p {}", missing.display())),
        "{msg}"
    );

    let read_only = Sshd::start_with(SshdOptions {
        read_only: true,
        ..Default::default()
    });
    let err = push::push(
        &config(&read_only, read_only.port, read_only.known_hosts()),
        &staged.release,
    )
    .unwrap_err();
    assert!(matches!(err, PushError::RemoteNotWritable { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("permission denied") && msg.contains(&format!("`{}`", read_only.user)),
        "{msg}"
    );
    assert!(tree(&read_only.inbox()).is_empty());
}

#[test]
fn unsafe_or_unknown_client_keys_are_refused() {
    let sshd = Sshd::start();
    let staged = stage("keys", &[("a.parquet.age", 1000)]);

    // Group-readable: refused before connecting, with the chmod to run.
    let open = sshd.path("open_key");
    fs::copy(sshd.identity(), &open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o640)).unwrap();
    let mut c = config(&sshd, sshd.port, sshd.known_hosts());
    c.identity = Some(open.clone());
    let err = push::push(&c, &staged.release).unwrap_err();
    assert!(
        matches!(err, PushError::IdentityTooOpen { mode: 0o640, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("chmod 600 {}", open.display())),
        "{err}"
    );

    // A key the server does not know: refused by the server, with the fix.
    let stranger = keygen(&sshd.path("stranger"), "TEST-ONLY stranger");
    c.identity = Some(stranger.clone());
    let err = push::push(&c, &staged.release).unwrap_err();
    assert!(
        matches!(err, PushError::AuthenticationRefused { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("ssh-keygen -y -f {}", stranger.display())),
        "{err}"
    );
    // The key material never appears in an error.
    let secret = fs::read_to_string(&stranger).unwrap();
    let body = secret.lines().nth(1).unwrap();
    assert!(!err.to_string().contains(body));
    assert!(tree(&sshd.inbox()).is_empty());
}
