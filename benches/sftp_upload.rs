//! Bench: upload one large file to a local OpenSSH sshd, with dars's sftp
//! push and with OpenSSH's own `sftp`, in the same run, and report both
//! throughputs and their ratio (issue #5: target at least 1.0x sftp).
//!
//! ```text
//! export CARGO_TARGET_DIR=/var/tmp/dars-target
//! cargo bench --profile dev --bench sftp_upload                 # 1 GiB, 5 rounds
//! cargo bench --profile dev --bench sftp_upload -- --size-mib 256 --rounds 1
//! TMPDIR=/dev/shm cargo bench --profile dev --bench sftp_upload # no disk
//! ```
//!
//! sshd's directory, and so what arrives, is a temporary directory under
//! `$TMPDIR`. On disk, each upload also races the kernel writing back the
//! previous gigabyte, which moves single runs by a third either way; with
//! `TMPDIR=/dev/shm` the files land in memory and the figures are the
//! network path's alone (dars's fsync then costs nothing).
//!
//! `--profile dev`: the dev profile optimises every dependency (at level 1;
//! the work here is OpenSSL's, the system library, and libssh2's C); the
//! bench profile would rebuild them all at level 3. The source file lives in `$BENCH_DIR` (default
//! `/var/tmp/dars-bench-sftp`), made once and kept, never in the
//! repository; what arrives is deleted after each upload. sshd runs as in
//! the tests (tests/common/sshd.rs), on loopback only.
//!
//! Three uploads per round, in rotating order: dars (which also fsyncs
//! each file before renaming it), `sftp` with its default cipher, and
//! `sftp -c` with the cipher dars negotiated, for a like-for-like figure.
//! Prints the median throughput of each and the client's CPU seconds per
//! GiB (dars's own process; `sftp` and its `ssh`), the steadier figure on
//! a machine shared with other work: sshd runs on the same cores.
//!
//! `sftp` never fsyncs: left alone, its file would be deleted before the
//! kernel wrote it back and never reach the disk, while dars's always
//! does. So the bench fsyncs what `sftp put` delivered, outside that
//! upload's time, and `sftp put + fsync` adds the flush: the like-for-like
//! figure for a durable upload, and likewise `sftp -c + fsync`. (The
//! issue's target is plain `sftp put`.)

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
    let mut rounds = 5;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--size-mib" => {
                size_mib = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--size-mib N")
            }
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
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

    // Seconds and client CPU seconds per run: [dars, sftp, sftp -c].
    let mut wall: [Vec<f64>; 3] = Default::default();
    let mut cpu: [Vec<f64>; 3] = Default::default();
    // `sftp put` and `sftp -c put`, each plus the fsync of what it
    // delivered: the like-for-like figures for dars, which fsyncs.
    let mut durable: [Vec<f64>; 2] = Default::default();
    let mut cipher = String::new();
    for round in 0..rounds {
        // Each round starts with a different uploader, so that neither
        // always follows the other on a shared machine.
        for k in 0..3 {
            let which = (round + k) % 3;
            let (secs, cpu_secs) = match which {
                0 => {
                    let release = StagedRelease {
                        dir: dir.clone(),
                        files: vec![name.clone()],
                        folder: format!("bench/dars-{round}"),
                    };
                    let cpu0 = cpu_seconds(Whose::Own);
                    let t = Instant::now();
                    let report =
                        push::push(&config, &release).unwrap_or_else(|e| panic!("dars push: {e}"));
                    let secs = t.elapsed().as_secs_f64();
                    let cpu_secs = cpu_seconds(Whose::Own) - cpu0;
                    assert_eq!(report.bytes_sent, bytes);
                    let arrived = server.inbox().join(&release.folder).join(&name);
                    assert_eq!(fs::metadata(&arrived).unwrap().len(), bytes);
                    assert!(same_bytes(&arrived, &source), "dars delivered other bytes");
                    fs::remove_dir_all(server.inbox().join("bench")).unwrap();
                    if cipher.is_empty() {
                        cipher = negotiated_cipher(&server.log());
                    }
                    (secs, cpu_secs)
                }
                1 => {
                    let (secs, cpu_secs, flush) = sftp_put(&server, &known_hosts, &source, None);
                    durable[0].push(secs + flush);
                    (secs, cpu_secs)
                }
                _ => {
                    // Round 0 starts with dars, which set the cipher.
                    assert!(!cipher.is_empty());
                    let (secs, cpu_secs, flush) =
                        sftp_put(&server, &known_hosts, &source, Some(&cipher));
                    durable[1].push(secs + flush);
                    (secs, cpu_secs)
                }
            };
            wall[which].push(secs);
            cpu[which].push(cpu_secs);
        }
    }
    let mb = bytes as f64 / 1e6;
    let gib = bytes as f64 / f64::from(1u32 << 30);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut rate = [0.0; 3];
    let mut cpu_per_gib = [0.0; 3];
    for i in 0..3 {
        rate[i] = mb / median(&mut wall[i]);
        cpu_per_gib[i] = median(&mut cpu[i]) / gib;
    }
    println!("                          throughput   client CPU");
    println!(
        "dars push                 {:7.1} MB/s  {:5.2} s/GiB  (cipher {cipher}, fsync on)",
        rate[0], cpu_per_gib[0]
    );
    println!(
        "sftp put                  {:7.1} MB/s  {:5.2} s/GiB  (OpenSSH's default cipher)",
        rate[1], cpu_per_gib[1]
    );
    println!(
        "sftp -c (dars's cipher)   {:7.1} MB/s  {:5.2} s/GiB",
        rate[2], cpu_per_gib[2]
    );
    let durable_rate = mb / median(&mut durable[0]);
    let durable_c_rate = mb / median(&mut durable[1]);
    println!("sftp put + fsync          {durable_rate:7.1} MB/s");
    println!("sftp -c + fsync           {durable_c_rate:7.1} MB/s");
    println!("ratio dars / sftp             {:6.2}x", rate[0] / rate[1]);
    println!("ratio dars / sftp -c          {:6.2}x", rate[0] / rate[2]);
    println!(
        "ratio dars / sftp + fsync     {:6.2}x",
        rate[0] / durable_rate
    );
    println!(
        "ratio dars / sftp -c + fsync  {:6.2}x",
        rate[0] / durable_c_rate
    );
}

enum Whose {
    Own,
    Children,
}

/// User + system CPU seconds of this process, or of its waited-for
/// children (`sftp` and the `ssh` it runs), from /proc/self/stat.
fn cpu_seconds(whose: Whose) -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // After the command name: utime, stime are fields 14, 15 of the
    // file; cutime, cstime 16, 17 (proc(5)), in clock ticks of 1/100 s.
    let at = match whose {
        Whose::Own => 11,
        Whose::Children => 13,
    };
    let ticks: f64 = fields[at].parse::<f64>().unwrap() + fields[at + 1].parse::<f64>().unwrap();
    ticks / 100.0
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

/// Seconds and client CPU seconds for `sftp` to `put` the file, then
/// seconds to fsync what arrived; removes it.
fn sftp_put(
    server: &sshd::Sshd,
    known_hosts: &Path,
    source: &Path,
    cipher: Option<&str>,
) -> (f64, f64, f64) {
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
    let cpu0 = cpu_seconds(Whose::Children);
    let t = Instant::now();
    let out = cmd.output().expect("sftp is installed (openssh-client)");
    let secs = t.elapsed().as_secs_f64();
    let cpu_secs = cpu_seconds(Whose::Children) - cpu0;
    assert!(
        out.status.success(),
        "sftp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::metadata(&target).unwrap().len(),
        fs::metadata(source).unwrap().len()
    );
    let t = Instant::now();
    fs::File::open(&target).unwrap().sync_all().unwrap();
    let flush = t.elapsed().as_secs_f64();
    fs::remove_file(&target).unwrap();
    (secs, cpu_secs, flush)
}

/// Whether two files hold the same bytes (untimed: after the upload).
fn same_bytes(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (mut a, mut b) = (fs::File::open(a).unwrap(), fs::File::open(b).unwrap());
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut x).unwrap();
        if n == 0 {
            return b.read(&mut y).unwrap() == 0;
        }
        if b.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return false;
        }
    }
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
