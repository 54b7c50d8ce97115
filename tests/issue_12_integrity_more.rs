//! End to end, issue #12 (integrity), the holes a red-team pass found after
//! the first round: a release delivered by a run that dies before its
//! ledger append, a ledger rolled back once the run folders are cleaned,
//! `dars clean` removing the evidence of an unrecorded release, a date
//! override in the shipped binary, people counted in the public manifest,
//! a release folder that is a link, a work directory owned by someone
//! else, and two runs of one second told apart by a random suffix. Each
//! test runs the real binary on `dars synth` data.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::release::*;
use common::*;

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The run ids of the ledger's release entries, in ledger order.
fn recorded_runs(w: &Workdir) -> Vec<String> {
    fs::read_to_string(w.path("work/ledger.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "release")
        .map(|v| v["run_id"].as_str().unwrap().to_string())
        .collect()
}

/// The ledger and its signed head, as they are now.
fn ledger_files(w: &Workdir) -> (Vec<u8>, Vec<u8>) {
    (
        fs::read(w.path("work/ledger.jsonl")).unwrap(),
        fs::read(w.path("work/ledger.jsonl.head")).unwrap(),
    )
}

fn put_back(w: &Workdir, files: &(Vec<u8>, Vec<u8>)) {
    fs::write(w.path("work/ledger.jsonl"), &files.0).unwrap();
    fs::write(w.path("work/ledger.jsonl.head"), &files.1).unwrap();
}

#[test]
fn issue_12_a_release_delivered_by_a_run_killed_before_its_ledger_append_is_recorded_first() {
    let (w, a) = small(1213);
    // Killed right after the last file (the signature) arrived, before
    // the ledger append: as a power cut there would.
    let killed = w
        .cmd()
        .args(["run", &a])
        .env("DARS_FAIL_AFTER", "delivered")
        .output()
        .unwrap();
    assert!(
        !killed.status.success(),
        "the run should have died after delivering: {}",
        stderr(&killed)
    );
    let releases = delivered(&w);
    assert_eq!(releases.len(), 1, "the release was delivered whole");
    let first = name(&releases[0]);
    assert!(recorded_runs(&w).is_empty(), "and not recorded");

    // The ledger's own check says so, and names the run.
    let out = w.dars(&["ledger", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_VERIFY),
        "a delivered release the ledger lacks passed: {}",
        stdout(&out)
    );
    assert!(stderr(&out).contains(&first), "{}", stderr(&out));

    // The inputs change (so this is a new run, not a resumption of the
    // killed one): the new run records the earlier release before its own
    // leaves.
    let text = fs::read_to_string(&a).unwrap();
    fs::write(&a, format!("# edited after the crash\n{text}")).unwrap();
    let out = w.dars(&["run", &a]);
    ok(&out);
    let releases = delivered(&w);
    assert_eq!(releases.len(), 2);
    let second = releases
        .iter()
        .map(|p| name(p))
        .find(|n| *n != first)
        .unwrap();
    assert_eq!(
        recorded_runs(&w),
        vec![first.clone(), second],
        "the killed run's release is recorded, before the new one"
    );
    ok(&w.dars(&["ledger", "verify"]));
    // Recorded once, however often the agreement is run again.
    ok(&w.dars(&["run", &a]));
    let runs = recorded_runs(&w);
    assert_eq!(runs.iter().filter(|r| **r == first).count(), 1, "{runs:?}");
    ok(&w.dars(&["ledger", "verify"]));
}

#[test]
fn issue_12_a_ledger_rolled_back_is_found_after_the_run_folders_are_cleaned() {
    let (w, a) = small(1213);
    ok(&w.dars(&["run", &a]));
    let after_first = ledger_files(&w);
    ok(&w.dars(&["run", &a]));
    let after_second = ledger_files(&w);
    assert_eq!(recorded_runs(&w).len(), 2);

    // The released runs' folders are cleaned away (the ledger is whole).
    ok(&w.dars(&["clean", "--older-than", "0h"]));
    assert!(run_folders(&w).is_empty(), "{:?}", run_folders(&w));
    ok(&w.dars(&["ledger", "verify"]));

    // Cut back to its first entry with the head it had then (both validly
    // signed), or emptied with its head: still found.
    put_back(&w, &after_first);
    let out = w.dars(&["ledger", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_VERIFY),
        "a ledger rolled back passed: {}",
        stdout(&out)
    );
    let out = w.dars(&["run", &a]);
    assert_eq!(out.status.code(), Some(EXIT_VERIFY), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was sent"),
        "{}",
        stderr(&out)
    );
    assert_eq!(delivered(&w).len(), 2, "a release left regardless");

    fs::remove_file(w.path("work/ledger.jsonl")).unwrap();
    fs::remove_file(w.path("work/ledger.jsonl.head")).unwrap();
    let out = w.dars(&["ledger", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_VERIFY),
        "a ledger deleted with its head passed: {}",
        stdout(&out)
    );

    put_back(&w, &after_second);
    ok(&w.dars(&["ledger", "verify"]));
}

#[test]
fn issue_12_clean_refuses_to_remove_a_release_the_ledger_does_not_hold() {
    let (w, a) = small(1213);
    ok(&w.dars(&["run", &a]));
    let whole = ledger_files(&w);
    let runs = run_folders(&w);
    assert_eq!(runs.len(), 1);

    // The ledger loses the release (deleted together with its head).
    fs::remove_file(w.path("work/ledger.jsonl")).unwrap();
    fs::remove_file(w.path("work/ledger.jsonl.head")).unwrap();
    let out = w.dars(&["clean", "--older-than", "0h"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_VERIFY),
        "clean ran on a ledger that lacks a release: {}",
        stdout(&out)
    );
    assert_eq!(run_folders(&w), runs, "the evidence was removed");

    // Put back, clean goes ahead.
    put_back(&w, &whole);
    let out = w.dars(&["clean", "--older-than", "0h"]);
    ok(&out);
    assert!(run_folders(&w).is_empty());
}

#[test]
fn issue_12_the_date_override_is_checked_absent_from_the_plain_binary() {
    // `cargo test` builds dars with the test-only hooks on (it has to, to
    // crash runs on purpose); CI then builds the plain binary users run
    // and must refuse one that reads either override.
    let ci = fs::read_to_string(repo().join(".ci/run")).unwrap();
    for variable in ["DARS_FAIL_AFTER", "DARS_TODAY"] {
        assert!(
            ci.lines().any(|l| l.contains("grep")
                && l.contains(variable)
                && l.contains("$CARGO_TARGET_DIR/debug/dars")),
            ".ci/run does not check the plain binary for {variable}"
        );
    }
    // In the test build the override still works (the tests rely on it).
    let (w, a) = small(1213);
    let out = w.dars_on("2100-01-01", &["run", &a, "--dry-run"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
}

#[test]
fn issue_12_the_signed_manifest_counts_no_people() {
    let (w, a) = small(1213);
    ok(&w.dars(&["run", &a]));
    let release = delivered(&w).pop().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(release.join("manifest.json")).unwrap()).unwrap();
    let counts = manifest["counts"].as_object().unwrap();
    // The agreement's one aggregate output: its cells and how many were
    // suppressed are what a recipient checks the table against.
    assert!(
        counts
            .keys()
            .any(|k| k.starts_with("admissions_by_region.")),
        "{counts:?}"
    );
    for key in counts.keys() {
        assert!(
            key.starts_with("admissions_by_region."),
            "`{key}` in the manifest is not a count of an output's cells"
        );
        for word in [
            "person",
            "cohort",
            "released",
            "objector",
            "objection",
            "removed",
            "linked",
            "validated",
            "unmatched",
            "invalid",
            "queued",
            "reviewed",
            "people",
        ] {
            assert!(
                !key.to_lowercase().contains(word),
                "`{key}` in the manifest counts people"
            );
        }
    }
}

#[test]
fn issue_12_verify_refuses_a_release_folder_that_is_a_link() {
    let (w, a) = small(1213);
    ok(&w.dars(&["run", &a]));
    let release = delivered(&w).pop().unwrap();
    let run_id = name(&release);
    // The real folder elsewhere, under the same two names, and a link to
    // it where the release was delivered.
    let elsewhere = w.path(&format!("elsewhere/{REFERENCE}/{run_id}"));
    fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    fs::rename(&release, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &release).unwrap();
    let signers = w.path("keys/allowed_signers");
    for given in [
        release.clone(),
        PathBuf::from(format!("{}/", release.display())),
    ] {
        let out = w.dars(&[
            "verify",
            given.to_str().unwrap(),
            "--allowed-signers",
            signers.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(EXIT_VERIFY),
            "{}: a linked release folder passed: {}",
            given.display(),
            stdout(&out)
        );
        assert!(stderr(&out).contains("link"), "{}", stderr(&out));
    }
    // The real folder itself verifies.
    let out = w.dars(&[
        "verify",
        elsewhere.to_str().unwrap(),
        "--allowed-signers",
        signers.to_str().unwrap(),
    ]);
    ok(&out);
}

/// The effective uid of this test process.
fn euid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn issue_12_a_work_dir_owned_by_another_user_is_refused() {
    let (w, a) = small(1213);
    let work = if euid() == 0 {
        // Root can give the folder away (to `nobody`).
        let work = w.path("work");
        fs::create_dir_all(&work).unwrap();
        std::os::unix::fs::chown(&work, Some(65534), Some(65534)).unwrap();
        work
    } else {
        // Anyone else finds a folder of root's: the root of the filesystem.
        let site = fs::read_to_string(w.path("site.toml"))
            .unwrap()
            .replace("dir = \"work\"", "dir = \"/\"");
        w.write("site.toml", &site);
        PathBuf::from("/")
    };
    assert_ne!(fs::metadata(&work).unwrap().uid(), euid());
    let mode = fs::metadata(&work).unwrap().mode();
    for args in [vec!["run", &a, "--dry-run"], vec!["run", &a]] {
        let out = w.dars(&args);
        assert_eq!(
            out.status.code(),
            Some(EXIT_CONFIG),
            "{args:?}: a work dir of another user was used: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("owned by another user"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(fs::metadata(&work).unwrap().mode(), mode, "left as it was");
    assert!(delivered(&w).is_empty());
}

#[test]
fn issue_12_the_run_resumed_is_the_one_started_last_not_the_larger_suffix() {
    let (w, a) = small(1213);
    // A run killed after linkage leaves an unfinished run to resume.
    let killed = w
        .cmd()
        .args(["run", &a])
        .env("DARS_FAIL_AFTER", "link")
        .output()
        .unwrap();
    assert!(!killed.status.success());
    let runs = run_folders(&w);
    assert_eq!(runs.len(), 1);
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(runs[0].join("state.json")).unwrap()).unwrap();

    // Two copies of it started in one second (2030-01-01 00:00:00 UTC):
    // `ffff` first, `0000` half a second later.
    let second_ns: u64 = 1_893_456_000_000_000_000;
    for (suffix, started_ns) in [("ffff", second_ns), ("0000", second_ns + 500_000_000)] {
        let run_id = format!("20300101T000000Z-{suffix}");
        let dir = runs[0].with_file_name(&run_id);
        fs::create_dir(&dir).unwrap();
        for f in fs::read_dir(&runs[0]).unwrap().flatten() {
            if f.path().is_file() {
                fs::copy(f.path(), dir.join(f.file_name())).unwrap();
            }
        }
        let mut copy = state.clone();
        copy["run_id"] = run_id.clone().into();
        copy["started_ns"] = started_ns.into();
        fs::write(dir.join("state.json"), serde_json::to_vec(&copy).unwrap()).unwrap();
    }
    let out = w.dars(&["run", &a]);
    ok(&out);
    assert!(
        stdout(&out).contains("run 20300101T000000Z-0000"),
        "the run started last was not the one resumed: {}",
        stdout(&out)
    );
}
