//! Bench: upload one large file to a local OpenSSH sshd, with dars's sftp
//! push and with OpenSSH's own `sftp`, in the same run, and report both
//! throughputs and their ratio (issue #5: target at least 1.0x sftp).
//!
//! ```text
//! export CARGO_TARGET_DIR=/var/tmp/dars-target
//! cargo bench --profile dev --bench sftp_upload                 # 1 GiB, 3 rounds
//! cargo bench --profile dev --bench sftp_upload -- --size-mib 256 --rounds 1
//! ```
//!
//! `--profile dev`: the dev profile already optimises every dependency
//! (libssh2 and OpenSSL do the work here); the bench profile would rebuild
//! them all. The source file lives in `$BENCH_DIR` (default
//! `/var/tmp/dars-bench-sftp`), made once and kept, never in the
//! repository; what arrives is deleted after each upload. sshd runs as in
//! the tests (tests/common/sshd.rs), on loopback only.
//!
//! Three uploads per round, in turn: dars (which also fsyncs each file
//! before renaming it), `sftp` with its default cipher, and `sftp -c` with
//! the cipher dars negotiated, for a like-for-like figure. Prints the
//! median of each.

#[path = "../tests/common/sshd.rs"]
mod sshd;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use dars::push::{self, Destination, ReleaseConfig, StagedRelease};

fn main() {
    let mut size_mib: u64 = 1024;
    let mut rounds = 3;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--size-mib" => size_mib = args.next().and_then(|v| v.parse().ok()).expect("--size-mib N"),
            "--rounds" => rounds = args.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--bench" => {}
            other => panic!("unknown flag {other}: use --size-mib N --rounds N"),
        }
    }
    let dir = PathBuf::from(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp/dars-bench-sftp".into()),
    );
    fs::create_dir_all(&dir).unwrap();
    let name = format!("upload_{size_mib}MiB.bin");
    let source = dir.join(&name);
    let bytes = size_mib << 20;
    ensure_source(&source, bytes);

    let server = sshd::Sshd::start_with(sshd::SshdOptions {
        debug_log: true,
        ..Default::default()
    });
    let known_hosts = server.known_hosts();
    let config = ReleaseConfig {
        recipients: vec![],
        destination: Destination::parse(&server.destination(server.port)).unwrap(),
        known_hosts: Some(known_hosts.clone()),
        identity: Some(server.identity()),
    };
    println!(
        "sftp bench: {size_mib} MiB file, {rounds} round(s), sshd {} on 127.0.0.1:{}",
        version(),
        server.port
    );

    let (mut dars_s, mut sftp_s, mut sftp_same_s) = (Vec::new(), Vec::new(), Vec::new());
    let mut cipher = String::new();
    for round in 0..rounds {
        // dars
        let release = StagedRelease {
            dir: dir.clone(),
            files: vec![name.clone()],
            folder: format!("bench/dars-{round}"),
        };
        let t = Instant::now();
        let report = push::push(&config, &release).unwrap_or_else(|e| panic!("dars push: {e}"));
        dars_s.push(t.elapsed().as_secs_f64());
        assert_eq!(report.bytes_sent, bytes);
        let arrived = server.inbox().join(&release.folder).join(&name);
        assert_eq!(fs::metadata(&arrived).unwrap().len(), bytes);
        fs::remove_dir_all(server.inbox().join("bench")).unwrap();
        if cipher.is_empty() {
            cipher = negotiated_cipher(&server.log());
        }

        // OpenSSH sftp, default cipher, then dars's cipher.
        sftp_s.push(sftp_put(&server, &known_hosts, &source, None));
        sftp_same_s.push(sftp_put(&server, &known_hosts, &source, Some(&cipher)));
    }
    let mb = bytes as f64 / 1e6;
    let rate = |s: &mut Vec<f64>| {
        s.sort_by(f64::total_cmp);
        mb / s[s.len() / 2]
    };
    let (dars, sftp, sftp_same) = (rate(&mut dars_s), rate(&mut sftp_s), rate(&mut sftp_same_s));
    println!("dars push            {dars:8.1} MB/s  (cipher {cipher}, fsync on)");
    println!("sftp put             {sftp:8.1} MB/s  (OpenSSH default cipher)");
    println!("sftp -c {cipher:<12} {sftp_same:8.1} MB/s");
    println!("ratio dars/sftp      {:8.2}x", dars / sftp);
    println!("ratio dars/sftp -c   {:8.2}x", dars / sftp_same);
}

fn ensure_source(path: &Path, bytes: u64) {
    if fs::metadata(path).is_ok_and(|m| m.len() == bytes) {
        return;
    }
    let mut f = fs::File::create(path).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..bytes >> 20 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
}

/// Seconds for `sftp` to `put` the file, then removes what arrived.
fn sftp_put(server: &sshd::Sshd, known_hosts: &Path, source: &Path, cipher: Option<&str>) -> f64 {
    let target = server.inbox().join("sftp.bin");
    let batch = server.path("batch");
    fs::write(
        &batch,
        format!("put {} {}\n", source.display(), target.display()),
    )
    .unwrap();
    let mut cmd = Command::new("sftp");
    cmd.arg("-q")
        .arg("-b")
        .arg(&batch)
        .arg("-i")
        .arg(server.identity())
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .args(["-P", &server.port.to_string()]);
    if let Some(c) = cipher {
        cmd.args(["-c", c]);
    }
    cmd.arg(format!("{}@127.0.0.1", server.user));
    let t = Instant::now();
    let out = cmd.output().expect("sftp is installed (openssh-client)");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "sftp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::metadata(&target).unwrap().len(), fs::metadata(source).unwrap().len());
    fs::remove_file(&target).unwrap();
    secs
}

/// The client-to-server cipher of the first session, from sshd's debug log.
fn negotiated_cipher(log: &str) -> String {
    log.lines()
        .find_map(|l| {
            l.split_once("client->server cipher: ")?
                .1
                .split_whitespace()
                .next()
                .map(String::from)
        })
        .expect("sshd logs the negotiated cipher at LogLevel DEBUG1")
}

fn version() -> String {
    let out = Command::new("ssh").arg("-V").output().unwrap();
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}
