//! End to end, operations (issue #6): the nightly batch, idempotence,
//! resuming a killed run, and logs free of direct identifiers.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::process::Command;

use common::*;

fn signatures(w: &Workdir) -> usize {
    w.outbox_files()
        .iter()
        .filter(|p| p.ends_with("manifest.json.sig"))
        .count()
}

/// An agreement for the `batch/` folder: paths one level up, its own reference.
fn batch_agreement(w: &Workdir, file: &str, reference: &str, end: &str, extra: &str, cohort: &str) {
    let text = w
        .agreement_text(end, extra)
        .replace("DARS-NIC-000001-DEMO1-01", reference)
        .replace(
            "path = \"data/cohort.csv\"",
            &format!("path = \"../{cohort}\""),
        )
        .replace("file://outbox", "file://../outbox");
    w.write(&format!("batch/{file}"), &text);
}

#[test]
fn nightly_batch_isolates_failures_and_never_releases_twice() {
    let w = Workdir::new(600, 100, 3000, 21);
    let mut broken = fs::read_to_string(w.path("data/cohort.csv")).unwrap();
    broken.push_str("S7777777,only,three\r\n");
    w.write("data/broken_cohort.csv", &broken);
    batch_agreement(
        &w,
        "a_good.toml",
        "DARS-NIC-000002-GOOD1-01",
        "2099-12-31",
        "",
        "data/cohort.csv",
    );
    batch_agreement(
        &w,
        "b_expired.toml",
        "DARS-NIC-000003-EXPRD-01",
        "2021-06-30",
        "",
        "data/cohort.csv",
    );
    batch_agreement(
        &w,
        "c_unknown_key.toml",
        "DARS-NIC-000004-UNKEY-01",
        "2099-12-31",
        "colour = \"blue\"",
        "data/cohort.csv",
    );
    batch_agreement(
        &w,
        "d_broken_cohort.toml",
        "DARS-NIC-000005-BROKE-01",
        "2099-12-31",
        "",
        "data/broken_cohort.csv",
    );

    let out = w.dars(&["batch", "batch"]);
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(8), "{table}\n{}", stderr(&out));
    let line = |reference: &str| {
        table
            .lines()
            .find(|l| l.contains(reference))
            .unwrap_or_else(|| panic!("{reference} missing:\n{table}"))
            .to_string()
    };
    assert!(
        line("DARS-NIC-000002-GOOD1-01").contains("released"),
        "{table}"
    );
    assert!(
        line("DARS-NIC-000003-EXPRD-01").contains("FAILED")
            && line("DARS-NIC-000003-EXPRD-01").contains("ended on 2021-06-30"),
        "{table}"
    );
    let unknown = line("c_unknown_key.toml");
    assert!(unknown.contains("FAILED"), "{table}");
    assert!(
        table.contains("release.colour") || stderr(&out).contains("release.colour"),
        "{table}"
    );
    let broken_line = line("DARS-NIC-000005-BROKE-01");
    assert!(
        broken_line.contains("FAILED") && broken_line.contains("malformed"),
        "{table}"
    );
    assert_eq!(signatures(&w), 1, "only the good agreement is released");

    // The same day again: nothing new is released; the failures still fail.
    let again = w.dars(&["batch", "batch", "--json"]);
    assert_eq!(again.status.code(), Some(8));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    let good = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["agreement"] == "DARS-NIC-000002-GOOD1-01")
        .unwrap();
    assert_eq!(good["outcome"], "not_due");
    assert_eq!(
        signatures(&w),
        1,
        "a second batch the same day released again"
    );

    // --force releases anyway, and the ledger records the override.
    let forced = w.dars(&["batch", "batch", "--force"]);
    assert!(stdout(&forced).contains("(forced)"), "{}", stdout(&forced));
    assert_eq!(signatures(&w), 2);
    let ledger = fs::read_to_string(w.path("work/ledger.jsonl")).unwrap();
    assert_eq!(
        ledger
            .lines()
            .filter(|l| l.contains("\"forced\":true"))
            .count(),
        1,
        "{ledger}"
    );

    let verify = w.dars(&["ledger", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
}

#[test]
fn a_batch_lock_held_by_a_live_process_refuses_a_second_batch() {
    let w = Workdir::new(200, 20, 500, 22);
    fs::create_dir_all(w.path("work")).unwrap();
    fs::create_dir_all(w.path("batch")).unwrap();
    // This test process holds the kernel lock, as a running batch would.
    let lock = fs::File::create(w.path("work/batch.lock")).unwrap();
    fs4::FileExt::try_lock(&lock).unwrap();
    let out = w.dars(&["batch", "batch"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("another dars batch is running"),
        "{}",
        stderr(&out)
    );
    // A lock dies with its holder: nothing is left to take over.
    drop(lock);
    let out = w.dars(&["batch", "batch"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Plaintext SHA-256 of every output, from a run's state.json.
fn plaintext_hashes(run_dir: &std::path::Path) -> BTreeMap<String, (String, u64)> {
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(run_dir.join("state.json")).unwrap()).unwrap();
    state["outputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (
                    v["plaintext_sha256"].as_str().unwrap().to_string(),
                    v["summary"]["rows"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

fn run_dirs(w: &Workdir) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(w.path("work/DARS-NIC-000001-DEMO1-01/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn a_run_killed_at_any_point_resumes_and_releases_the_same_content() {
    let w = Workdir::new(1500, 250, 8000, 23);
    let a = w.agreement("agreement.toml", "2099-12-31", "");
    let a = a.to_str().unwrap();
    let baseline = w.dars(&["run", a]);
    assert!(baseline.status.success(), "{}", stderr(&baseline));
    let want = plaintext_hashes(&run_dirs(&w)[0]);
    assert_eq!(want.len(), 2);

    for point in [
        "link",
        "objections",
        "output:episodes",
        "output:admissions_by_region",
        "package",
        "push",
    ] {
        let before = signatures(&w);
        let killed = w
            .cmd()
            .args(["run", a])
            .env("DARS_FAIL_AFTER", point)
            .output()
            .unwrap();
        assert!(
            !killed.status.success(),
            "{point}: the run should have died"
        );
        if point != "push" {
            assert_eq!(
                signatures(&w),
                before,
                "{point}: a killed run left a signature at the destination"
            );
        }
        let runs = run_dirs(&w).len();
        let resumed = w.dars(&["run", a]);
        assert!(resumed.status.success(), "{point}: {}", stderr(&resumed));
        assert_eq!(
            run_dirs(&w).len(),
            runs,
            "{point}: the re-run started a new run instead of resuming"
        );
        let last = run_dirs(&w)
            .into_iter()
            .find(|d| stdout(&resumed).contains(d.file_name().unwrap().to_str().unwrap()))
            .unwrap();
        assert_eq!(
            plaintext_hashes(&last),
            want,
            "{point}: the resumed release differs"
        );
        assert_eq!(signatures(&w), before + 1, "{point}");
        // No partial file anywhere at the destination.
        assert!(w
            .outbox_files()
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".part")));
    }
    // The decrypted files are what the hashes say.
    let folder = w
        .outbox_files()
        .into_iter()
        .find(|p| p.ends_with("episodes.parquet.age"))
        .unwrap();
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(w.path("keys/recipient_TEST-ONLY.agekey"))
        .arg(&folder)
        .output()
        .unwrap();
    assert!(out.status.success());
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &out.stdout));
    assert_eq!(digest, want["episodes"].0);
    let ledger = w.dars(&["ledger", "verify"]);
    assert!(ledger.status.success(), "{}", stderr(&ledger));
    assert!(
        stdout(&ledger).contains("7 entries"),
        "one entry per release: {}",
        stdout(&ledger)
    );
}

#[test]
fn no_direct_identifier_reaches_a_log_or_an_error() {
    let w = Workdir::new(800, 150, 3000, 24);
    // Break one copy of the cohort so errors are exercised too.
    let mut broken = fs::read_to_string(w.path("data/cohort.csv")).unwrap();
    broken.push_str("S8888888,9434765919,1980-01-01,1,LS1 4AP,Ada,Lovelace,extra\r\n");
    w.write("data/broken.csv", &broken);
    let good = w.agreement("agreement.toml", "2099-12-31", "");
    let bad_text = w
        .agreement_text("2099-12-31", "")
        .replace("data/cohort.csv", "data/broken.csv");
    w.write("bad.toml", &bad_text);
    let mut logs = String::new();
    for args in [
        vec!["--log-format", "json", "run", good.to_str().unwrap()],
        vec!["run", good.to_str().unwrap(), "--dry-run"],
        vec!["link", good.to_str().unwrap(), "--out", "linkout"],
        vec!["check", good.to_str().unwrap()],
        vec!["run", "bad.toml"],
    ] {
        let out = w
            .cmd()
            .args(&args)
            .env("DARS_LOG", "debug")
            .output()
            .unwrap();
        logs.push_str(&stdout(&out));
        logs.push_str(&stderr(&out));
    }
    assert!(logs.contains("malformed"), "the broken run was exercised");

    let (header, rows) = read_csv(&w.path("data/cohort.csv"));
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
            .unwrap()
    };
    let (nhs, dob, pc, fore, sur) = (
        col("NHS Number"),
        col("Date of Birth"),
        col("Postcode"),
        col("Forename"),
        col("Surname"),
    );

    // Issue #12: polars errors on data quoted the values they could not
    // read. A cohort member's identifiers go where polars would quote them.
    let member = rows
        .iter()
        .find(|r| {
            r[nhs].chars().filter(char::is_ascii_digit).count() == 10
                && !r[fore].is_empty()
                && !r[pc].is_empty()
                && r[dob].len() >= 8
        })
        .expect("a cohort row with every identifier");
    let member_nhs: String = r_digits(&member[nhs]);
    // A CSV dataset without a header: its first row is a person.
    w.write(
        "data/headerless.csv",
        &format!(
            "1,{},{},1,{},{},{}\n2,4010232137,1970-01-01,2,LS1 4AP,Ada,Lovelace\n",
            member[nhs], member[dob], member[pc], member[fore], member[sur]
        ),
    );
    // A CSV dataset where a value far down does not fit its column.
    let mut late = String::from("person_id,age_at_admission,region,sex\n");
    for i in 1..=300 {
        late.push_str(&format!("{i},{},London,1\n", 20 + i % 50));
    }
    late.push_str(&format!(
        "301,{} {} {},London,1\n",
        &member_nhs[..3],
        &member_nhs[3..6],
        &member_nhs[6..]
    ));
    w.write("data/late_value.csv", &late);
    // A register with a row dars cannot read, holding a member's number.
    w.write(
        "data/bad_register.csv",
        &format!("nhs_number,objection_type\n{},type 3\n", member[nhs]),
    );
    // The aggregate output first: it looks up its dimensions before the
    // key, so a headerless file's "columns" were listed.
    let text = w.agreement_text("2099-12-31", "");
    let (head, outputs) = text.split_once("[[outputs]]").unwrap();
    let (records, rest) = outputs.split_once("[[outputs]]").unwrap();
    let (aggregate, release) = rest.split_once("[release]").unwrap();
    w.write(
        "aggregate_first.toml",
        &format!("{head}[[outputs]]{aggregate}[[outputs]]{records}[release]{release}"),
    );
    let site = fs::read_to_string(w.path("site.toml")).unwrap();
    for (name, from, to) in [
        (
            "headerless",
            "data/site/hes_apc.parquet",
            "data/headerless.csv",
        ),
        (
            "late_value",
            "data/site/hes_apc.parquet",
            "data/late_value.csv",
        ),
        (
            "bad_register",
            "data/site/objections.parquet",
            "data/bad_register.csv",
        ),
    ] {
        let site_file = format!("site_{name}.toml");
        w.write(&site_file, &site.replace(from, to));
        let out = Command::new(env!("CARGO_BIN_EXE_dars"))
            .current_dir(w.dir.path())
            .args(["--site", &site_file, "run"])
            .arg(if name == "headerless" {
                w.path("aggregate_first.toml")
            } else {
                good.clone()
            })
            .env("DARS_LOG", "debug")
            .env_remove("DARS_TODAY")
            .output()
            .unwrap();
        // With every row read before the types are inferred, the late
        // value no longer fails the read; before issue #12 it failed and
        // the error quoted it.
        if name != "late_value" {
            assert!(!out.status.success(), "{name}: the run should fail");
        }
        logs.push_str(&stdout(&out));
        logs.push_str(&stderr(&out));
    }
    assert!(
        logs.contains("looks like data, not a header"),
        "the headerless dataset was exercised"
    );
    assert!(
        logs.contains("row 1, column `objection_type`"),
        "the bad register was exercised"
    );
    let tokens: HashSet<&str> = logs
        .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
        .collect();
    let mut leaks = Vec::new();
    for r in rows.iter().chain(std::iter::once(&vec![
        String::new(),
        "9434765919".into(),
        "1980-01-01".into(),
        String::new(),
        "LS1 4AP".into(),
        "Ada".into(),
        "Lovelace".into(),
    ])) {
        let digits: String = r[nhs].chars().filter(char::is_ascii_digit).collect();
        let written = digits.len() == 10
            && [
                format!("{} {} {}", &digits[..3], &digits[3..6], &digits[6..]),
                format!("{}-{}-{}", &digits[..3], &digits[3..6], &digits[6..]),
            ]
            .iter()
            .any(|w| logs.contains(w.as_str()));
        if digits.len() >= 6 && (logs.contains(&digits) || written) {
            leaks.push(format!("nhs number of {}", r[0]));
        }
        // Agreement dates legitimately appear in logs; no birth date may.
        let agreement_date = ["2020-01-01", "2099-12-31"].contains(&r[dob].as_str());
        if r[dob].len() >= 8 && !agreement_date && logs.contains(r[dob].as_str()) {
            leaks.push(format!("date of birth of {}", r[0]));
        }
        let compact: String = r[pc].chars().filter(|c| !c.is_whitespace()).collect();
        if compact.len() >= 5 && (logs.contains(r[pc].as_str()) || logs.contains(&compact)) {
            leaks.push(format!("postcode of {}", r[0]));
        }
        for name in [&r[fore], &r[sur]] {
            if name.len() >= 3 && tokens.contains(name.as_str()) {
                leaks.push(format!("a name of {}", r[0]));
            }
        }
    }
    assert!(leaks.is_empty(), "identifiers in logs or errors: {leaks:?}");
    // The tokens checked above are the cohort's; the headerless file's
    // second row is not in the cohort, so check it by hand.
    for value in ["4010232137", "Lovelace", "LS1 4AP"] {
        assert!(!logs.contains(value), "{value} in logs or errors");
    }
}

/// The digits of an NHS number as a cohort writes it.
fn r_digits(raw: &str) -> String {
    raw.chars().filter(char::is_ascii_digit).collect()
}

#[test]
fn lifecycle_destruction_hygiene_and_clean() {
    use std::os::unix::fs::PermissionsExt;
    let w = Workdir::new(400, 60, 2000, 25);
    let a = w
        .agreement("agreements/demo.toml", "2026-12-31", "")
        .to_string_lossy()
        .into_owned();
    // The agreement file lives in agreements/: its relative paths go up one.
    let text = fs::read_to_string(&a)
        .unwrap()
        .replace("\"data/cohort.csv\"", "\"../data/cohort.csv\"")
        .replace("file://outbox", "file://../outbox");
    fs::write(&a, text).unwrap();

    // Within 30 days of the end: released, with a warning.
    let out = w.dars_on("2026-12-10", &["run", &a]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("agreement ends soon"),
        "{}",
        stderr(&out)
    );

    // Every file of the work directory is private.
    fn walk(dir: &std::path::Path, bad: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            if p.is_dir() {
                if mode != 0o700 {
                    bad.push(format!("{} {mode:o}", p.display()));
                }
                walk(&p, bad);
            } else if mode != 0o600 {
                bad.push(format!("{} {mode:o}", p.display()));
            }
        }
    }
    let mut bad = Vec::new();
    walk(&w.path("work"), &mut bad);
    assert!(bad.is_empty(), "not private: {bad:?}");

    // After the end: refused, listed as expired with destruction due.
    let out = w.dars_on("2027-01-01", &["run", &a]);
    assert_eq!(out.status.code(), Some(5));
    let list = w.dars_on("2027-01-01", &["agreements", "agreements"]);
    assert!(
        stdout(&list).contains("expired, destruction due"),
        "{}",
        stdout(&list)
    );
    let list = w.dars_on("2026-12-10", &["agreements", "agreements"]);
    assert!(
        stdout(&list).contains("expiring (21d)"),
        "{}",
        stdout(&list)
    );

    w.write("certificate.pdf", "TEST-ONLY certificate of destruction");
    let rec = w.dars(&[
        "ledger",
        "record-destruction",
        "DARS-NIC-000001-DEMO1-01",
        "--certificate",
        "certificate.pdf",
    ]);
    assert!(rec.status.success(), "{}", stderr(&rec));
    let list = w.dars_on("2027-01-01", &["agreements", "agreements"]);
    assert!(
        stdout(&list).contains("expired") && !stdout(&list).contains("destruction due"),
        "{}",
        stdout(&list)
    );
    assert!(w.dars(&["ledger", "verify"]).status.success());

    // clean removes released runs older than the age, and only those.
    let keep = w.dars(&["clean", "--older-than", "30d"]);
    assert!(
        stdout(&keep).contains("0 released run folder(s) removed"),
        "{}",
        stdout(&keep)
    );
    let gone = w.dars(&["clean", "--older-than", "0h"]);
    assert!(
        stdout(&gone).contains("1 released run folder(s) removed"),
        "{}",
        stdout(&gone)
    );
    assert_eq!(
        fs::read_dir(w.path("work/DARS-NIC-000001-DEMO1-01/runs"))
            .unwrap()
            .count(),
        0
    );
}
