//! End to end: `dars run` on `dars synth` data releases files that the
//! stock `age` decrypts and the stock `ssh-keygen -Y verify` accepts, with
//! no objector and no unsafe count, and `dars verify` catches tampering.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use common::*;
use polars::prelude::*;

fn released_folder(w: &Workdir) -> PathBuf {
    let files = w.outbox_files();
    let sig = files
        .iter()
        .find(|p| p.ends_with("manifest.json.sig"))
        .expect("a signature at the destination");
    sig.parent().unwrap().to_path_buf()
}

/// Study IDs of cohort rows whose true person has an objection.
fn objector_study_ids(w: &Workdir) -> HashSet<String> {
    let truth = LazyCsvReader::new(PlRefPath::try_from_path(&w.path("data/truth.csv")).unwrap())
        .with_has_header(true)
        .finish()
        .unwrap()
        .select([
            col("study_id").cast(DataType::String),
            col("person_id").cast(DataType::Int64),
        ]);
    let demographics = LazyFrame::scan_parquet(
        PlRefPath::try_from_path(&w.path("data/site/demographics.parquet")).unwrap(),
        Default::default(),
    )
    .unwrap()
    .select([col("person_id"), col("nhs_number")]);
    let objections = LazyFrame::scan_parquet(
        PlRefPath::try_from_path(&w.path("data/site/objections.parquet")).unwrap(),
        Default::default(),
    )
    .unwrap()
    .select([col("nhs_number")]);
    let df = truth
        .inner_join(demographics, col("person_id"), col("person_id"))
        .inner_join(objections, col("nhs_number"), col("nhs_number"))
        .collect()
        .unwrap();
    df.column("study_id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .map(String::from)
        .collect()
}

#[test]
fn a_release_arrives_whole_signed_encrypted_and_safe() {
    let w = Workdir::new(3000, 600, 20000, 11);
    let agreement = w.agreement("agreement.toml", "2099-12-31", "");
    let out = w.dars(&["run", agreement.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "run failed: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let folder = released_folder(&w);
    let names: Vec<String> = {
        let mut n: Vec<_> = fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names,
        [
            "admissions_by_region.csv.age",
            "episodes.parquet.age",
            "manifest.json",
            "manifest.json.sig"
        ]
    );

    // The stock ssh-keygen accepts the manifest signature.
    let verify = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(w.path("keys/allowed_signers"))
        .args(["-I", SIGNER, "-n", "dars-manifest", "-s"])
        .arg(folder.join("manifest.json.sig"))
        .stdin(fs::File::open(folder.join("manifest.json")).unwrap())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "ssh-keygen -Y verify refused: {}",
        stderr(&verify)
    );

    // The stock age decrypts every output with the test identity.
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    let episodes = w.age_decrypt(&folder.join("episodes.parquet.age"));
    let episodes = ParquetReader::new(std::io::Cursor::new(episodes))
        .finish()
        .unwrap();
    let aggregate = w.age_decrypt(&folder.join("admissions_by_region.csv.age"));
    fs::write(w.path("aggregate.csv"), &aggregate).unwrap();
    let files = manifest["files"].as_array().unwrap();
    let rows_of = |name: &str| {
        files.iter().find(|f| f["name"] == name).unwrap()["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows_of("episodes.parquet.age"), episodes.height() as u64);
    assert!(
        episodes.height() > 100,
        "the example releases a real extract"
    );
    assert_eq!(
        episodes.get_column_names_owned(),
        [
            "study_id",
            "admission_date_month",
            "diagnosis_primary",
            "age_at_admission_band5",
            "region"
        ]
    );

    // No objector's study ID in any output, and the test could fail: the
    // cohort does hold objectors.
    let objectors = objector_study_ids(&w);
    assert!(
        !objectors.is_empty(),
        "the synthetic cohort should include objectors"
    );
    let released: HashSet<&str> = episodes
        .column("study_id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    let leaked: Vec<_> = objectors
        .iter()
        .filter(|s| released.contains(s.as_str()))
        .collect();
    assert!(leaked.is_empty(), "objectors released: {leaked:?}");
    let aggregate_text = String::from_utf8(aggregate).unwrap();
    for s in &objectors {
        assert!(!aggregate_text.contains(s.as_str()));
    }

    // No released count in 1–7 or off a multiple of 5, the grand total excepted.
    let (header, rows) = read_csv(&w.path("aggregate.csv"));
    assert_eq!(header, ["region", "sex", "persons"]);
    let mut suppressed = 0;
    for r in &rows {
        if r[0] == "Total" && r[1] == "Total" {
            continue;
        }
        if r[2] == "*" {
            suppressed += 1;
            continue;
        }
        let n: u64 = r[2].parse().unwrap();
        assert!(n == 0 || n >= 8, "{r:?} is in the masked range");
        assert_eq!(n % 5, 0, "{r:?} is not rounded to 5");
    }
    assert!(rows.len() > 10);
    let _ = suppressed;

    // dars verify passes, then catches one flipped byte and names the file.
    let ok = w.run(&[
        "verify",
        folder.to_str().unwrap(),
        "--allowed-signers",
        w.path("keys/allowed_signers").to_str().unwrap(),
    ]);
    assert!(ok.status.success(), "verify failed: {}", stderr(&ok));
    let target = folder.join("episodes.parquet.age");
    let mut bytes = fs::read(&target).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&target, bytes).unwrap();
    let bad = w.run(&[
        "verify",
        folder.to_str().unwrap(),
        "--allowed-signers",
        w.path("keys/allowed_signers").to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("episodes.parquet.age"),
        "{}",
        stderr(&bad)
    );

    // The ledger recorded the release and checks out.
    let ledger = w.dars(&["ledger", "verify"]);
    assert!(ledger.status.success(), "{}", stderr(&ledger));
    assert!(stdout(&ledger).contains("1 entries"), "{}", stdout(&ledger));

    // The work directory kept the linkage table, privately.
    let run_dir = fs::read_dir(w.path("work/DARS-NIC-000001-DEMO1-01/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let (header, rows) = read_csv(&run_dir.join("linkage.csv"));
    assert_eq!(
        header,
        [
            "study_id",
            "person_id",
            "outcome",
            "tier",
            "score",
            "reason"
        ]
    );
    assert_eq!(rows.len(), 600);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(run_dir.join("linkage.csv"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn failed_runs_leave_nothing_at_the_destination() {
    let w = Workdir::new(500, 80, 2000, 5);

    // An expired agreement.
    let expired = w.agreement("expired.toml", "2021-01-01", "");
    let out = w.dars(&["run", expired.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("agreement.end"), "{}", stderr(&out));

    // An unknown config key.
    let unknown = w.agreement("unknown.toml", "2099-12-31", "colour = \"blue\"");
    let out = w.dars(&["run", unknown.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("release.colour"), "{}", stderr(&out));

    // A structurally broken cohort: a short row and a duplicate study ID.
    let mut cohort = fs::read_to_string(w.path("data/cohort.csv")).unwrap();
    cohort.push_str("S9999999,9434765919\r\n");
    let first_id = cohort
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    cohort.push_str(&format!("{first_id},,,,,,\r\n"));
    fs::write(w.path("data/cohort.csv"), cohort).unwrap();
    let broken = w.agreement("broken.toml", "2099-12-31", "");
    let out = w.dars(&["run", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("data/cohort.csv") && err.contains("line 82") && err.contains("line 83"),
        "{err}"
    );
    assert!(
        !err.contains("9434765919"),
        "an NHS number leaked into an error"
    );

    assert!(
        w.outbox_files().is_empty(),
        "a failed run left {:?}",
        w.outbox_files()
    );
}

#[test]
fn check_reports_every_problem_with_its_key_and_fix() {
    let w = Workdir::new(200, 20, 500, 3);
    let a = w.agreement("bad.toml", "2099-12-31", "colour = \"blue\"");
    let text = fs::read_to_string(&a)
        .unwrap()
        .replace(
            "reference = \"DARS-NIC-000001-DEMO1-01\"",
            "reference = \"DARS-NIC-000001-DEMO1-01\"\nflavour = 1",
        )
        .replace(
            "\"region\"]\n",
            "\"region\", \"nhs_number\", \"date_of_birth\"]\n",
        )
        .replace(
            "dataset = \"hes_apc\"\ngroup_by",
            "dataset = \"hes_ecds\"\ngroup_by",
        );
    fs::write(&a, text).unwrap();
    let out = w.dars(&["check", a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let o = stdout(&out);
    for key in [
        "agreement.flavour",
        "release.colour",
        "outputs[0].fields[4]",
        "outputs[0].fields[5]",
        "outputs[1].dataset",
    ] {
        assert!(o.contains(&format!("`{key}`")), "missing {key} in:\n{o}");
    }
    assert!(o.matches("fix:").count() >= 5, "{o}");
    assert!(w.outbox_files().is_empty());
}

#[test]
fn dry_run_writes_reports_and_releases_nothing() {
    let w = Workdir::new(800, 120, 4000, 9);
    let a = w.agreement("agreement.toml", "2099-12-31", "");
    let out = w.dars(&["run", a.to_str().unwrap(), "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(w.outbox_files().is_empty());
    let run_dir = fs::read_dir(w.path("work/DARS-NIC-000001-DEMO1-01/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(run_dir.join("linkage.csv").is_file());
    let (header, rows) = read_csv(&run_dir.join("suppression/admissions_by_region.csv"));
    assert!(header.contains(&"action".to_string()) && !rows.is_empty());
    assert!(
        !run_dir.join("release").exists(),
        "no ciphertext in a dry run"
    );
}
