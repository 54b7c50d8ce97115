//! End to end, issue #12 (integrity): one run per agreement at a time, a
//! ledger that finds every edit and is checked before anything leaves, a
//! release tied to the folder it sits in, and a work directory kept
//! private. Each test runs the real binary on `dars synth` data.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::release::*;
use common::*;

fn released_entries(w: &Workdir) -> usize {
    ledger_lines(w)
        .iter()
        .filter(|l| l.contains("\"event\":\"release\""))
        .count()
}

/// (run id, pushed, released) of every run of the agreement.
fn runs(w: &Workdir) -> Vec<(String, bool, bool)> {
    let Ok(dirs) = fs::read_dir(w.path(&format!("work/{REFERENCE}/runs"))) else {
        return Vec::new();
    };
    let mut out: Vec<_> = dirs
        .flatten()
        .filter_map(|d| {
            let state: serde_json::Value =
                serde_json::from_slice(&fs::read(d.path().join("state.json")).ok()?).ok()?;
            Some((
                state["run_id"].as_str()?.to_string(),
                !state["pushed"].is_null(),
                state["released"].as_bool()?,
            ))
        })
        .collect();
    out.sort();
    out
}

/// Everything that left is whole and recorded, and nothing is half-way.
fn assert_consistent(w: &Workdir, context: &str) {
    let releases = delivered(w);
    for release in &releases {
        let out = verify(w, release);
        assert!(
            out.status.success(),
            "{context}: a delivered release fails `dars verify`: {}",
            stderr(&out)
        );
    }
    let states = runs(w);
    let stuck: Vec<_> = states
        .iter()
        .filter(|(_, pushed, released)| *pushed && !*released)
        .collect();
    assert!(
        stuck.is_empty(),
        "{context}: delivered but not recorded: {stuck:?}"
    );
    let released = states.iter().filter(|(_, _, r)| *r).count();
    assert_eq!(released, releases.len(), "{context}: {states:?}");
    assert_eq!(
        released_entries(w),
        releases.len(),
        "{context}: ledger entries"
    );
    let ledger = w.dars(&["ledger", "verify"]);
    assert!(ledger.status.success(), "{context}: {}", stderr(&ledger));
}

#[test]
fn issue_12_two_runs_started_together_never_share_a_run() {
    let (w, a) = small(1212);
    let mut refused = 0;
    for attempt in 0..12 {
        let start = || {
            w.cmd()
                .args(["run", &a])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (start(), start());
        let outs = [
            first.wait_with_output().unwrap(),
            second.wait_with_output().unwrap(),
        ];
        let mut released = 0;
        for out in &outs {
            match out.status.code() {
                Some(0) => released += 1,
                Some(EXIT_LOCKED) => {
                    refused += 1;
                    assert!(
                        stderr(out).contains("is being run by another dars")
                            && stderr(out).contains("stopped before doing anything"),
                        "attempt {attempt}: {}",
                        stderr(out)
                    );
                }
                other => panic!(
                    "attempt {attempt}: a run exited {other:?}, neither released nor refused \
                     by the lock:\n{}",
                    stderr(out)
                ),
            }
        }
        assert!(released >= 1, "attempt {attempt}: neither run released");
        assert_consistent(&w, &format!("attempt {attempt}"));
    }
    // Started together, the two runs overlapped at least once (each run
    // takes far longer than starting a process).
    assert!(
        refused > 0,
        "the runs never overlapped: the test proved nothing"
    );
    // Never stuck: a later run releases.
    let later = w.dars(&["run", &a]);
    assert!(later.status.success(), "{}", stderr(&later));
    assert_consistent(&w, "after");
}

/// Waits for the file a held run writes at its hold point.
fn wait_for(path: &Path, what: &str) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what} never reached its hold point"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn issue_12_a_second_run_or_batch_while_one_is_mid_release_stops_clearly() {
    let (w, a) = small(1212);
    let hold = w.path("hold");
    let first = w
        .cmd()
        .args(["run", &a])
        .env("DARS_HOLD_AFTER", "package")
        .env("DARS_HOLD_FILE", &hold)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = first.id();
    wait_for(&hold, "the first run");

    // Sealed and signed, about to push: a second run is refused at once.
    let second = w.dars(&["run", &a]);
    assert_eq!(
        second.status.code(),
        Some(EXIT_LOCKED),
        "{}",
        stderr(&second)
    );
    assert!(
        stderr(&second).contains(&format!("is being run by another dars (pid {pid}")),
        "{}",
        stderr(&second)
    );
    // So is the agreement in a batch, which goes on with the others.
    fs::create_dir_all(w.path("batch")).unwrap();
    let text = fs::read_to_string(&a)
        .unwrap()
        .replace("data/cohort.csv", "../data/cohort.csv")
        .replace("file://outbox", "file://../outbox");
    w.write("batch/a.toml", &text);
    let batch = w.dars(&["batch", "batch"]);
    assert_eq!(batch.status.code(), Some(EXIT_BATCH), "{}", stderr(&batch));
    assert!(
        stdout(&batch).contains("being run by another dars"),
        "{}",
        stdout(&batch)
    );
    assert!(
        delivered(&w).is_empty(),
        "nothing left while the first run held"
    );

    fs::remove_file(&hold).unwrap();
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(delivered(&w).len(), 1);
    assert_consistent(&w, "after the held run");
    let again = w.dars(&["run", &a]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_consistent(&w, "after another run");
}

#[test]
fn issue_12_a_batch_lock_is_a_kernel_lock() {
    let w = Workdir::new(200, 20, 500, 1213);
    fs::create_dir_all(w.path("work")).unwrap();
    fs::create_dir_all(w.path("batch")).unwrap();
    // A pid in the lock file is not a lock: a crashed batch leaves that.
    fs::write(
        w.path("work/batch.lock"),
        format!("{} 2026-11-22T01:00:00Z\n", std::process::id()),
    )
    .unwrap();
    let out = w.dars(&["batch", "batch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A held flock is.
    let file = fs::OpenOptions::new()
        .write(true)
        .open(w.path("work/batch.lock"))
        .unwrap();
    fs4::FileExt::try_lock(&file).unwrap();
    let out = w.dars(&["batch", "batch"]);
    assert_eq!(out.status.code(), Some(EXIT_LOCKED), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another dars batch is running"),
        "{}",
        stderr(&out)
    );
    drop(file);
    assert!(w.dars(&["batch", "batch"]).status.success());
}

/// A work folder with one release and two destruction records: a ledger
/// of three entries.
fn ledger_of_three() -> (Workdir, String) {
    let (w, a) = small(1212);
    let out = w.dars(&["run", &a]);
    assert!(out.status.success(), "{}", stderr(&out));
    w.write("certificate.pdf", "TEST-ONLY certificate of destruction");
    for _ in 0..2 {
        let out = w.dars(&[
            "ledger",
            "record-destruction",
            REFERENCE,
            "--certificate",
            "certificate.pdf",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(ledger_lines(&w).len(), 3);
    (w, a)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// Recomputes every `prev_sha256` after line `from` (0-based) so that the
/// hash chain holds again.
fn rechain(lines: &mut [String], from: usize) {
    for i in from + 1..lines.len() {
        let prev = sha256(lines[i - 1].as_bytes());
        let mut value: serde_json::Value = serde_json::from_str(&lines[i]).unwrap();
        value["prev_sha256"] = prev.into();
        lines[i] = serde_json::to_string(&value).unwrap() + "\n";
    }
}

#[test]
fn issue_12_ledger_verify_finds_every_edit() {
    let (w, _) = ledger_of_three();
    let ledger = w.path("work/ledger.jsonl");
    let head = w.path("work/ledger.jsonl.head");
    let original = fs::read(&ledger).unwrap();
    let original_head = fs::read(&head).ok();
    let good = w.dars(&["ledger", "verify"]);
    assert!(good.status.success(), "{}", stderr(&good));
    assert!(stdout(&good).contains("3 entries"), "{}", stdout(&good));

    type Tamper = Box<dyn Fn(&mut Vec<String>)>;
    let forged_append: Tamper = Box::new(|lines: &mut Vec<String>| {
        // A copy of the last entry as the next one, with the right seq and
        // prev_sha256 and no valid signature.
        let mut value: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
        value["seq"] = 4.into();
        value["prev_sha256"] = sha256(lines[2].as_bytes()).into();
        value["certificate_name"] = "forged.pdf".into();
        lines.push(serde_json::to_string(&value).unwrap() + "\n");
    });
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "the last line edited",
            Box::new(|l: &mut Vec<String>| l[2] = l[2].replace("certificate.pdf", "other.pdf")),
        ),
        (
            "the last line deleted",
            Box::new(|l: &mut Vec<String>| {
                l.pop();
            }),
        ),
        (
            "cut to its first line",
            Box::new(|l: &mut Vec<String>| l.truncate(1)),
        ),
        ("emptied", Box::new(|l: &mut Vec<String>| l.clear())),
        (
            "a forged line appended with the right prev_sha256",
            forged_append,
        ),
        (
            "the first line edited and every later hash recomputed",
            Box::new(|l: &mut Vec<String>| {
                l[0] = l[0].replace("\"forced\":false", "\"forced\":true");
                rechain(l, 0);
            }),
        ),
    ];
    for (case, tamper) in cases {
        let mut lines = ledger_lines(&w);
        tamper(&mut lines);
        fs::write(&ledger, lines.concat()).unwrap();
        let out = w.dars(&["ledger", "verify"]);
        assert_eq!(
            out.status.code(),
            Some(EXIT_VERIFY),
            "{case}: not found: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(!stdout(&out).contains("intact"), "{case}");
        fs::write(&ledger, &original).unwrap();
    }

    // Deleted outright; deleted with its head; its head deleted with the
    // last line.
    fs::remove_file(&ledger).unwrap();
    let out = w.dars(&["ledger", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_VERIFY),
        "deleted: {}",
        stdout(&out)
    );
    let _ = fs::remove_file(&head);
    let out = w.dars(&["ledger", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_VERIFY),
        "deleted with its head: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("records the release"),
        "{}",
        stderr(&out)
    );
    let mut lines: Vec<String> = String::from_utf8(original.clone())
        .unwrap()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect();
    lines.pop();
    fs::write(&ledger, lines.concat()).unwrap();
    let out = w.dars(&["ledger", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_VERIFY),
        "the head and the last line deleted: {}",
        stdout(&out)
    );

    // Put back whole, it verifies again.
    fs::write(&ledger, &original).unwrap();
    if let Some(h) = &original_head {
        fs::write(&head, h).unwrap();
    }
    let out = w.dars(&["ledger", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn issue_12_a_ledger_rolled_back_is_found_against_the_releases() {
    let (w, a) = small(1212);
    let out = w.dars(&["run", &a]);
    assert!(out.status.success(), "{}", stderr(&out));
    let release = delivered(&w).pop().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(release.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["ledger_head"]["seq"], 0,
        "the first release extends an empty ledger"
    );
    let first = (
        fs::read(w.path("work/ledger.jsonl")).unwrap(),
        fs::read(w.path("work/ledger.jsonl.head")).unwrap(),
    );
    let out = w.dars(&["run", &a]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second = delivered(&w).into_iter().find(|d| *d != release).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(second.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["ledger_head"]["seq"], 1);
    assert_eq!(
        manifest["ledger_head"]["sha256"],
        sha256(&first.0).as_str(),
        "the manifest carries the ledger head it extends"
    );

    // Yesterday's ledger and head put back: each is validly signed, but
    // the second release's own run says it was recorded.
    fs::write(w.path("work/ledger.jsonl"), &first.0).unwrap();
    fs::write(w.path("work/ledger.jsonl.head"), &first.1).unwrap();
    let out = w.dars(&["ledger", "verify"]);
    assert_eq!(out.status.code(), Some(EXIT_VERIFY), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("has no entry for it"),
        "{}",
        stderr(&out)
    );
    // With the work folders and the release records deleted too (by
    // hand: `dars clean` keeps the records), the recipient's copy of the
    // release still anchors it.
    for folder in ["runs", "releases"] {
        for run in fs::read_dir(w.path(&format!("work/{REFERENCE}/{folder}"))).unwrap() {
            fs::remove_dir_all(run.unwrap().path()).unwrap();
        }
    }
    let out = w.dars(&["ledger", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = w.dars(&["ledger", "verify", "--release", second.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(EXIT_VERIFY), "{}", stdout(&out));
    let out = w.dars(&["ledger", "verify", "--release", release.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn issue_12_a_full_disk_during_an_append_leaves_no_partial_line() {
    let (w, _) = ledger_of_three();
    let record = |limit_kib: Option<u64>| {
        // `ulimit -f` makes writes past the limit fail as a full disk
        // would (EFBIG; SIGXFSZ ignored so the write returns the error).
        let limit = limit_kib.map_or(String::new(), |k| format!("ulimit -f {k}; "));
        Command::new("bash")
            .arg("-c")
            .arg(format!("trap '' XFSZ; {limit}exec \"$@\""))
            .arg("dars")
            .arg(env!("CARGO_BIN_EXE_dars"))
            .args(["--site", w.path("site.toml").to_str().unwrap()])
            .args(["ledger", "record-destruction", REFERENCE, "--certificate"])
            .arg(w.path("certificate.pdf"))
            .current_dir(w.path(""))
            .output()
            .unwrap()
    };
    // Grow the ledger until the next line would cross a KiB boundary.
    let size = || fs::metadata(w.path("work/ledger.jsonl")).unwrap().len();
    let line = ledger_lines(&w)[2].len() as u64;
    while 1024 - size() % 1024 >= line - 16 {
        assert!(record(None).status.success());
    }
    let before = fs::read(w.path("work/ledger.jsonl")).unwrap();
    let full = record(Some(size() / 1024 + 1));
    assert!(
        !full.status.success(),
        "the append should have hit the limit"
    );
    assert!(
        stderr(&full).contains("nothing was recorded"),
        "{}",
        stderr(&full)
    );
    assert_eq!(
        fs::read(w.path("work/ledger.jsonl")).unwrap(),
        before,
        "a partial line was left behind"
    );
    // Nothing blocks what comes next.
    let out = w.dars(&["ledger", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(record(None).status.success());
    let out = w.dars(&["ledger", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn issue_12_a_damaged_or_locked_ledger_is_found_before_anything_leaves() {
    let (w, a) = ledger_of_three();
    let releases = delivered(&w).len();
    let original = fs::read(w.path("work/ledger.jsonl")).unwrap();

    let mut lines = ledger_lines(&w);
    lines[1] = lines[1].replace("certificate.pdf", "edited.pdf");
    fs::write(w.path("work/ledger.jsonl"), lines.concat()).unwrap();
    let out = w.dars(&["run", &a]);
    assert_eq!(out.status.code(), Some(EXIT_VERIFY), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was sent"),
        "{}",
        stderr(&out)
    );
    assert_eq!(delivered(&w).len(), releases, "a release left regardless");
    fs::write(w.path("work/ledger.jsonl"), &original).unwrap();

    // Another process holds the ledger's lock (stuck mid-append).
    let lock = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(w.path("work/ledger.jsonl.lock"))
        .unwrap();
    fs4::FileExt::try_lock(&lock).unwrap();
    let out = w.dars(&["run", &a]);
    assert_eq!(out.status.code(), Some(EXIT_LOCKED), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was sent"),
        "{}",
        stderr(&out)
    );
    assert_eq!(delivered(&w).len(), releases, "a release left regardless");
    drop(lock);

    let out = w.dars(&["run", &a]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(delivered(&w).len(), releases + 1);
    assert_consistent(&w, "after");
}

#[test]
fn issue_12_verify_refuses_a_release_in_another_runs_folder_or_a_linked_manifest() {
    let (w, a) = small(1212);
    let out = w.dars(&["run", &a]);
    assert!(out.status.success(), "{}", stderr(&out));
    let release = delivered(&w).pop().unwrap();
    assert!(verify(&w, &release).status.success());

    // The same files in another run's folder: a replay.
    let other = release.with_file_name("20991231T000000Z-beef");
    fs::create_dir_all(&other).unwrap();
    for f in fs::read_dir(&release).unwrap() {
        let f = f.unwrap();
        fs::copy(f.path(), other.join(f.file_name())).unwrap();
    }
    let out = verify(&w, &other);
    assert_eq!(out.status.code(), Some(EXIT_VERIFY), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("is not where this release belongs"),
        "{}",
        stderr(&out)
    );

    // A manifest that is a link to the real one.
    let real = w.path("manifest-elsewhere.json");
    fs::rename(release.join("manifest.json"), &real).unwrap();
    std::os::unix::fs::symlink(&real, release.join("manifest.json")).unwrap();
    let out = verify(&w, &release);
    assert_eq!(out.status.code(), Some(EXIT_VERIFY), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("manifest.json is not a regular file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn issue_12_an_open_work_dir_is_tightened_and_a_writable_one_refused() {
    let (w, a) = small(1212);
    let work = w.path("work");
    fs::create_dir_all(&work).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;

    fs::set_permissions(&work, fs::Permissions::from_mode(0o755)).unwrap();
    let out = w.dars(&["run", &a, "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tightened to 0700"),
        "{}",
        stderr(&out)
    );
    assert_eq!(mode(&work), 0o700);
    let agreement_dir = work.join(REFERENCE);
    fs::set_permissions(&agreement_dir, fs::Permissions::from_mode(0o750)).unwrap();
    let out = w.dars(&["run", &a, "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&agreement_dir), 0o700);

    fs::set_permissions(&work, fs::Permissions::from_mode(0o777)).unwrap();
    let out = w.dars(&["run", &a]);
    assert_eq!(out.status.code(), Some(EXIT_CONFIG), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("chmod 700 {}", work.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(mode(&work), 0o777, "left for a person to check");
    assert!(delivered(&w).is_empty());
}
