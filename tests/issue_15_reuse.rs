//! End to end, issue #15 item 4: `[cohort] reuse = "DARS-NIC-…"`. Each test
//! runs the real binary on `dars synth` data: an agreement is released
//! (twice), `dars clean` removes its run folders, and a second agreement of
//! the same organisation reuses its latest released linkage instead of
//! linking; its decrypted release (real `age`) holds the same persons, its
//! manifest and ledger entry say where the linkage came from, and the kept
//! linkage file's SHA-256 is the ledger's by the system `sha256sum`. A
//! changed or missing kept file, and every bad `reuse`, is refused by
//! `dars check` and `dars run` with the key and the fix, releasing nothing.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::release::{ok, verify, EXIT_CONFIG};
use common::*;
use polars::prelude::*;
use serde_json::Value;

const SOURCE: &str = "DARS-NIC-000001-DEMO1-01";
const REUSER: &str = "DARS-NIC-000002-REUSE-01";
const OTHER_ORG: &str = "DARS-NIC-000003-OTHER-01";

fn study_ids(df: &DataFrame) -> BTreeSet<String> {
    strings(df, "study_id").into_iter().collect()
}

/// The example agreement's `[cohort]` replaced by `cohort` (TOML lines),
/// under `reference` and `organisation`, written as `REFERENCE.toml`.
fn agreement(w: &Workdir, reference: &str, organisation: &str, cohort: Option<&str>) -> String {
    let mut text = w
        .agreement_text("2030-12-31", "")
        .replace(SOURCE, reference)
        .replace("Example University", organisation);
    if let Some(cohort) = cohort {
        text = text.replace(
            "path = \"data/cohort.csv\"\nvalidation_fields = [\"nhs_number\", \"date_of_birth\", \"gender\", \"postcode\"]",
            cohort,
        );
        assert!(text.contains(cohort), "the cohort was replaced");
    }
    let name = format!("{reference}.toml");
    w.write(&name, &text);
    name
}

fn reuse(reference: &str) -> String {
    format!("reuse = \"{reference}\"")
}

fn ledger_releases(w: &Workdir, reference: &str) -> Vec<Value> {
    fs::read_to_string(w.path("work/ledger.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "release" && e["agreement"] == reference)
        .collect()
}

/// The release folder of `reference`'s run `run_id` at the destination.
fn release_dir(w: &Workdir, reference: &str, run_id: &str) -> PathBuf {
    w.path("outbox").join(reference).join(run_id)
}

/// The study IDs in the decrypted records output of a release.
fn released_study_ids(w: &Workdir, dir: &Path) -> BTreeSet<String> {
    let bytes = w.age_decrypt(&dir.join("episodes.parquet.age"));
    let df = ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .unwrap();
    study_ids(&df)
}

/// What `dars check` and `dars run` say of an agreement that must be
/// refused: both fail with exit 3, and nothing of it is released.
fn refused(w: &Workdir, name: &str, reference: &str) -> String {
    let check = w.dars(&["check", name]);
    let said = format!("{}{}", stdout(&check), stderr(&check));
    assert_eq!(check.status.code(), Some(EXIT_CONFIG), "check: {said}");
    let run = w.dars(&["run", name]);
    assert_eq!(
        run.status.code(),
        Some(EXIT_CONFIG),
        "run: {}{}",
        stdout(&run),
        stderr(&run)
    );
    assert!(
        !w.path("outbox").join(reference).exists(),
        "nothing of {reference} released"
    );
    assert!(ledger_releases(w, reference).is_empty());
    format!("{said}{}", stderr(&run))
}

#[test]
fn a_reused_cohort_releases_the_same_persons_as_the_original_agreement() {
    let w = Workdir::new(500, 160, 4000, 15_401);
    let source = agreement(&w, SOURCE, "Example University", None);
    // Released twice: the latest release's linkage is the one reused.
    for _ in 0..2 {
        ok(&w.dars(&["run", &source]));
    }
    let source_releases = ledger_releases(&w, SOURCE);
    assert_eq!(source_releases.len(), 2);
    let latest = &source_releases[1];
    let source_run = latest["run_id"].as_str().unwrap().to_string();
    let kept_sha = latest["linkage"]["sha256"].as_str().unwrap().to_string();
    let pairs = latest["linkage"]["pairs"].as_u64().unwrap();
    assert!(pairs > 100, "a real linkage: {pairs} pairs");
    // The kept file is the one the ledger records, by the system tool.
    let kept = w.path(&format!("work/{SOURCE}/linkage/{source_run}.parquet"));
    let out = Command::new("sha256sum").arg(&kept).output().unwrap();
    assert!(out.status.success(), "sha256sum: {}", stderr(&out));
    assert_eq!(
        stdout(&out).split_whitespace().next(),
        Some(kept_sha.as_str())
    );
    // It holds the pairs and nothing identifying.
    let frame = ParquetReader::new(fs::File::open(&kept).unwrap())
        .finish()
        .unwrap();
    let columns: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(columns, ["study_id", "person_id"]);
    assert_eq!(frame.height() as u64, pairs);

    // `dars clean` removes the released run folders, not the kept linkage.
    ok(&w.dars(&["clean", "--older-than", "0h"]));
    assert!(!w.path(&format!("work/{SOURCE}/runs/{source_run}")).exists());
    assert!(kept.is_file());

    let reuser = agreement(&w, REUSER, "Example University", Some(&reuse(SOURCE)));
    let check = w.dars(&["check", &reuser]);
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
    // The reusing agreement has no cohort file: it could not link.
    fs::rename(w.path("data/cohort.csv"), w.path("data/cohort.moved")).unwrap();
    let out = w.dars(&["run", &reuser]);
    ok(&out);
    assert!(
        stdout(&out).contains(&format!("the released linkage of {SOURCE}")),
        "{}",
        stdout(&out)
    );

    let reuser_releases = ledger_releases(&w, REUSER);
    assert_eq!(reuser_releases.len(), 1);
    let entry = &reuser_releases[0];
    let reuser_run = entry["run_id"].as_str().unwrap();
    let from = serde_json::json!({
        "agreement": SOURCE,
        "run_id": source_run,
        "ledger_seq": latest["seq"],
        "sha256": kept_sha,
    });
    let dir = release_dir(&w, REUSER, reuser_run);
    let manifest: Value =
        serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["reused_linkage"], from, "the manifest says whence");
    assert_eq!(
        entry["linkage"]["reused_from"], from,
        "and so does the ledger"
    );
    assert_eq!(entry["linkage"]["pairs"].as_u64(), Some(pairs));
    let source_manifest: Value = serde_json::from_slice(
        &fs::read(release_dir(&w, SOURCE, &source_run).join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert!(source_manifest.get("reused_linkage").is_none());
    ok(&verify(&w, &dir));

    // The same persons: the decrypted records, and the persons released.
    let original = released_study_ids(&w, &release_dir(&w, SOURCE, &source_run));
    let reused = released_study_ids(&w, &dir);
    assert!(original.len() > 50, "{} study IDs", original.len());
    assert_eq!(reused, original);
    let summary: Value = serde_json::from_slice(
        &fs::read(w.path(&format!("work/{REUSER}/runs/{reuser_run}/summary.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["reused_linkage"], from);
    let persons = summary["objections"]["released"].as_u64().unwrap();
    assert!(persons > 50 && persons <= pairs, "{persons} of {pairs}");
    let register = w.dars(&["register", "--out", "register.csv"]);
    ok(&register);
    let (header, rows) = read_csv(&w.path("register.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let persons_of = |reference: &str| {
        rows.iter()
            .rev()
            .find(|r| r[col("agreement")] == reference)
            .map(|r| r[col("persons")].clone())
            .unwrap()
    };
    assert_eq!(persons_of(REUSER), persons_of(SOURCE));

    // A changed kept file is refused against the ledger's SHA-256.
    let mut bytes = fs::read(&kept).unwrap();
    bytes.push(b'\n');
    fs::write(&kept, &bytes).unwrap();
    let again = agreement(
        &w,
        "DARS-NIC-000004-AGAIN-01",
        "Example University",
        Some(&reuse(SOURCE)),
    );
    let said = refused(&w, &again, "DARS-NIC-000004-AGAIN-01");
    assert!(
        said.contains("cohort.reuse") && said.contains("not the file the ledger records"),
        "{said}"
    );
    assert!(said.contains("fix:"), "{said}");
    fs::remove_file(&kept).unwrap();
    let said = refused(&w, &again, "DARS-NIC-000004-AGAIN-01");
    assert!(
        said.contains("cohort.reuse") && said.contains("is missing"),
        "{said}"
    );
    // No identifier of the cohort in what was said.
    let (cohort_header, cohort) = read_csv(&w.path("data/cohort.moved"));
    for (i, name) in cohort_header.iter().enumerate() {
        if name.to_lowercase().contains("study") || name.to_lowercase().contains("gender") {
            continue;
        }
        for person in &cohort {
            let value = person[i].trim();
            if value.len() >= 4 {
                assert!(!said.contains(value), "an error quotes a cohort {name}");
            }
        }
    }
}

#[test]
fn check_and_run_refuse_a_reuse_that_cannot_be_taken() {
    let w = Workdir::new(300, 80, 1500, 15_402);
    // Another organisation's agreement, released.
    let other = agreement(&w, OTHER_ORG, "Other Trust", None);
    ok(&w.dars(&["run", &other]));
    // An agreement run only dry: known, never released.
    let dry = agreement(&w, SOURCE, "Example University", None);
    ok(&w.dars(&["run", "--dry-run", &dry]));

    let cases: [(&str, String, &[&str]); 7] = [
        (
            "DARS-NIC-000010-UNKNO-01",
            reuse("DARS-NIC-000099-NOONE-01"),
            &["cohort.reuse", "is not an agreement of this site", "fix:"],
        ),
        (
            "DARS-NIC-000011-NEVER-01",
            reuse(SOURCE),
            &["cohort.reuse", "has never been released", "dars run"],
        ),
        (
            "DARS-NIC-000012-ORGAN-01",
            reuse(OTHER_ORG),
            &[
                "cohort.reuse",
                "belongs to `Other Trust`, not to `Example University`",
                "fix:",
            ],
        ),
        (
            "DARS-NIC-000013-ITSLF-01",
            reuse("DARS-NIC-000013-ITSLF-01"),
            &["cohort.reuse", "names this agreement itself"],
        ),
        (
            "DARS-NIC-000014-SYNTX-01",
            reuse("NIC-12345"),
            &["cohort.reuse", "is not an agreement reference"],
        ),
        (
            "DARS-NIC-000015-BOTH1-01",
            format!("path = \"data/cohort.csv\"\n{}", reuse(OTHER_ORG)),
            &[
                "cohort.path",
                "is given with `cohort.reuse",
                "remove `path`",
            ],
        ),
        (
            "DARS-NIC-000016-NONE1-01",
            "manual_validation = false".to_string(),
            &["cohort.path", "is missing", "reuse ="],
        ),
    ];
    for (reference, cohort, expected) in cases {
        let name = agreement(&w, reference, "Example University", Some(&cohort));
        let said = refused(&w, &name, reference);
        for e in expected {
            assert!(said.contains(e), "{reference}: {e:?} in {said}");
        }
    }

    // `backdate = false` needs the released linkage's recruited_on, which
    // a cohort linked with backdating does not keep.
    let same_org = agreement(&w, "DARS-NIC-000017-SAME1-01", "Other Trust", None);
    ok(&w.dars(&["run", &same_org]));
    let period = r#"period = { column = "admission_date", from = 2015-01-01, to = 2025-12-31 }"#;
    let name = agreement(
        &w,
        "DARS-NIC-000018-BACK1-01",
        "Other Trust",
        Some(&format!(
            "backdate = false\n{}",
            reuse("DARS-NIC-000017-SAME1-01")
        )),
    );
    let text = fs::read_to_string(w.path(&name))
        .unwrap()
        .replace("region\"]\n", &format!("region\"]\n{period}\n"))
        .replace(
            "suppression = \"hes\"\n",
            &format!("suppression = \"hes\"\n{period}\n"),
        );
    w.write(&name, &text);
    let said = refused(&w, &name, "DARS-NIC-000018-BACK1-01");
    assert!(
        said.contains("cohort.backdate") && said.contains("has no recruited_on"),
        "{said}"
    );
    // The same agreement of the right organisation and no backdating
    // limit passes: the refusals above are of what each case changed.
    let fine = agreement(
        &w,
        "DARS-NIC-000019-FINE1-01",
        "Other Trust",
        Some(&reuse("DARS-NIC-000017-SAME1-01")),
    );
    let check = w.dars(&["check", &fine]);
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
}
