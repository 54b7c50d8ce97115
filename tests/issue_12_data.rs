//! End to end, issue #12 (the data side): objections written as real
//! registers write them, direct identifiers under other names, a full disk
//! while sealing, and `dars suppress` on counts that overflow or collide
//! with the margin label. Each test runs the real binary on `dars synth`
//! data and judges the result against the synthetic truth, the register
//! and the index, not against dars's own rules.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use polars::prelude::*;

fn scan_parquet(path: &Path) -> LazyFrame {
    LazyFrame::scan_parquet(PlRefPath::try_from_path(path).unwrap(), Default::default()).unwrap()
}

fn write_parquet(path: &Path, df: &mut DataFrame) {
    let f = fs::File::create(path).unwrap();
    ParquetWriter::new(f).finish(df).unwrap();
}

/// The released study IDs of the episodes output.
fn released_study_ids(w: &Workdir) -> HashSet<String> {
    let file = w
        .outbox_files()
        .into_iter()
        .find(|p| p.ends_with("episodes.parquet.age"))
        .expect("a release at the destination");
    let bytes = w.age_decrypt(&file);
    let df = ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .unwrap();
    strings(&df, "study_id").into_iter().collect()
}

/// Study IDs of cohort rows whose true person (truth.csv) has an objection
/// in the register, matched on the register's digits alone.
fn objector_study_ids(w: &Workdir) -> HashSet<String> {
    let truth = LazyCsvReader::new(PlRefPath::try_from_path(&w.path("data/truth.csv")).unwrap())
        .with_has_header(true)
        .finish()
        .unwrap()
        .select([
            col("study_id").cast(DataType::String),
            col("person_id").cast(DataType::Int64),
        ]);
    let people = scan_parquet(&w.path("data/site/demographics.parquet"))
        .select([col("person_id"), col("nhs_number")])
        .collect()
        .unwrap();
    let register = scan_parquet(&w.path("data/site/objections.parquet"))
        .collect()
        .unwrap();
    let objectors: HashSet<String> = strings(&register, "nhs_number")
        .into_iter()
        .map(|n| n.chars().filter(char::is_ascii_digit).collect())
        .collect();
    let ids = strings(&people, "person_id");
    let nhs = strings(&people, "nhs_number");
    let objecting_people: Vec<i64> = ids
        .iter()
        .zip(&nhs)
        .filter(|(_, n)| objectors.contains(*n))
        .map(|(p, _)| p.parse().unwrap())
        .collect();
    let objecting = Series::new("person_id".into(), objecting_people);
    let df = truth
        .filter(col("person_id").is_in(lit(objecting).implode(false), false))
        .collect()
        .unwrap();
    strings(&df, "study_id").into_iter().collect()
}

/// The run summary of the latest run.
fn summary(w: &Workdir) -> serde_json::Value {
    let runs = w.path("work/DARS-NIC-000001-DEMO1-01/runs");
    let mut dirs: Vec<PathBuf> = fs::read_dir(runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let last = dirs.last().unwrap();
    serde_json::from_slice(&fs::read(last.join("summary.json")).unwrap()).unwrap()
}

/// Rewrites the register as registers are really written: types in other
/// cases and spacings, NHS numbers spaced or hyphenated.
fn respell_register(w: &Workdir) -> usize {
    let path = w.path("data/site/objections.parquet");
    let df = scan_parquet(&path).collect().unwrap();
    let nhs: Vec<String> = strings(&df, "nhs_number")
        .iter()
        .enumerate()
        .map(|(i, n)| match i % 3 {
            0 => format!("{} {} {}", &n[..3], &n[3..6], &n[6..]),
            1 => format!("{}-{}-{}", &n[..3], &n[3..6], &n[6..]),
            _ => format!("{n} "),
        })
        .collect();
    let types: Vec<String> = strings(&df, "objection_type")
        .iter()
        .enumerate()
        .map(|(i, t)| match (t.as_str(), i % 3) {
            ("type1", 0) => "TYPE1".to_string(),
            ("type1", 1) => "Type 1".to_string(),
            ("type1", _) => "type1 ".to_string(),
            (_, 0) => "NDOO".to_string(),
            (_, 1) => "Ndoo ".to_string(),
            _ => " ndoo".to_string(),
        })
        .collect();
    let mut out = df
        .clone()
        .lazy()
        .with_columns([
            lit(Series::new("nhs_number".into(), nhs)).alias("nhs_number"),
            lit(Series::new("objection_type".into(), types)).alias("objection_type"),
        ])
        .collect()
        .unwrap();
    write_parquet(&path, &mut out);
    out.height()
}

#[test]
fn issue_12_objections_written_as_real_registers_write_them_are_all_removed() {
    let w = Workdir::new(1500, 500, 6000, 1201);
    let register_rows = respell_register(&w);
    let a = w.agreement("agreement.toml", "2099-12-31", "");
    let out = w.dars(&["run", a.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let released = released_study_ids(&w);
    let objectors = objector_study_ids(&w);
    let leaked: Vec<&String> = released.intersection(&objectors).collect();
    assert!(leaked.is_empty(), "objectors released: {leaked:?}");
    let s = summary(&w);
    let o = &s["objections"];
    assert_eq!(o["register_rows"], register_rows, "{o}");
    assert!(o["removed"].as_u64().unwrap() >= 3, "{o}");
    assert!(o["matched"].as_u64().unwrap() >= o["removed"].as_u64().unwrap());
    assert!(o.get("matched_not_in_cohort").is_some(), "{o}");
}

#[test]
fn issue_12_a_register_row_that_cannot_be_read_stops_the_run() {
    let w = Workdir::new(400, 60, 1000, 1202);
    let path = w.path("data/site/objections.parquet");
    let df = scan_parquet(&path).collect().unwrap();
    let mut nhs = strings(&df, "nhs_number");
    let mut types = strings(&df, "objection_type");
    // Row 3: one digit off, which fails modulus 11; row 5: an unknown type.
    let original = nhs[2].clone();
    let last = original.as_bytes()[9] - b'0';
    nhs[2] = format!("{}{}", &original[..9], (last + 1) % 10);
    types[4] = "type 2".into();
    let mut bad = df
        .clone()
        .lazy()
        .with_columns([
            lit(Series::new("nhs_number".into(), nhs.clone())).alias("nhs_number"),
            lit(Series::new("objection_type".into(), types)).alias("objection_type"),
        ])
        .collect()
        .unwrap();
    write_parquet(&path, &mut bad);
    let a = w.agreement("agreement.toml", "2099-12-31", "");
    let out = w.dars(&["run", a.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("row 3, column `nhs_number`"), "{err}");
    assert!(err.contains("row 5, column `objection_type`"), "{err}");
    assert!(!err.contains(&nhs[2]) && !err.contains(&original), "{err}");
    assert!(w.outbox_files().is_empty(), "nothing may leave");
}

/// A copy of hes_apc with identifiers of the index joined in under the
/// names extracts use, plus the same values under innocent names.
fn dataset_with_identifiers(w: &Workdir) {
    let people = scan_parquet(&w.path("data/site/demographics.parquet")).select([
        col("person_id"),
        col("nhs_number").alias("NEWNHSNO"),
        col("date_of_birth").alias("DOB"),
        col("postcode").alias("patient_postcode"),
        col("forename").alias("first_name"),
        col("surname").alias("last_name"),
        col("date_of_birth").alias("birth_date"),
        col("nhs_number").alias("ref"),
        col("postcode").alias("loc"),
        col("date_of_birth").alias("event_dt"),
    ]);
    let mut df = scan_parquet(&w.path("data/site/hes_apc.parquet"))
        .join(
            people,
            [col("person_id")],
            [col("person_id")],
            JoinArgs::new(JoinType::Left),
        )
        .collect()
        .unwrap();
    write_parquet(&w.path("data/site/wide.parquet"), &mut df);
    let site = fs::read_to_string(w.path("site.toml"))
        .unwrap()
        .replace(
            "[keys]",
            "[datasets.wide]\npath = \"data/site/wide.parquet\"\nkey = \"person_id\"\nidentifiers = [\"Lsoa\"]\n[keys]",
        );
    w.write("site.toml", &site);
}

fn agreement_with_fields(w: &Workdir, name: &str, fields: &str, identifiable: bool) -> String {
    let text = w
        .agreement_text("2099-12-31", "")
        .replace(
            "fields = [\"admission_date:month\", \"diagnosis_primary\", \"age_at_admission:band5\", \"region\"]",
            &format!("fields = [{fields}]"),
        )
        .replace("dataset = \"hes_apc\"\nfields", "dataset = \"wide\"\nfields")
        .replace(
            "legal_basis = \"section-251\"",
            &format!("legal_basis = \"section-251\"\nidentifiable = {identifiable}"),
        );
    assert!(text.contains("dataset = \"wide\""), "{text}");
    w.write(name, &text);
    name.to_string()
}

#[test]
fn issue_12_identifiers_under_the_names_extracts_use_are_refused_and_check_reports_them() {
    let w = Workdir::new(600, 100, 2000, 1203);
    dataset_with_identifiers(&w);
    for field in [
        "NEWNHSNO",
        "DOB",
        "patient_postcode",
        "first_name",
        "last_name",
        "birth_date",
        "lsoa",
    ] {
        let a = agreement_with_fields(&w, "a.toml", &format!("\"{field}\", \"region\""), false);
        let check = w.dars(&["check", &a]);
        let text = format!("{}{}", stdout(&check), stderr(&check));
        assert_eq!(check.status.code(), Some(3), "{field}: {text}");
        assert!(
            text.contains("outputs[0].fields[0]") && text.contains(&format!("`{field}`")),
            "{field}: {text}"
        );
        let rule = if field == "lsoa" {
            "rule: declared"
        } else {
            "rule: name"
        };
        assert!(text.contains(rule), "{field}: {text}");
        let run = w.dars(&["run", &a]);
        assert_eq!(run.status.code(), Some(3), "{field}: {}", stderr(&run));
        assert!(w.outbox_files().is_empty(), "{field}: nothing may leave");
    }
    // Generalised, they pass; an identifiable agreement may release them.
    let a = agreement_with_fields(
        &w,
        "b.toml",
        "\"DOB:year\", \"patient_postcode:district\", \"NEWNHSNO:pseudonym\", \"region\"",
        false,
    );
    let run = w.dars(&["run", &a]);
    assert!(run.status.success(), "{}", stderr(&run));
    let a = agreement_with_fields(&w, "c.toml", "\"NEWNHSNO\", \"DOB\", \"ref\"", true);
    let check = w.dars(&["check", &a]);
    assert!(check.status.success(), "{}", stdout(&check));
}

#[test]
fn issue_12_identifiers_under_innocent_names_are_refused_by_their_values() {
    let w = Workdir::new(600, 100, 2000, 1204);
    dataset_with_identifiers(&w);
    for (field, what) in [
        ("ref", "an NHS number"),
        ("loc", "a full postcode"),
        ("event_dt", "a date of birth"),
    ] {
        let a = agreement_with_fields(&w, "a.toml", &format!("\"{field}\", \"region\""), false);
        // `dars check` reads no data, so it cannot see these.
        assert!(w.dars(&["check", &a]).status.success(), "{field}");
        let run = w.dars(&["run", &a]);
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(3), "{field}: {err}");
        assert!(
            err.contains(&format!("field `{field}`"))
                && err.contains(what)
                && err.contains("rule: content"),
            "{field}: {err}"
        );
        assert!(w.outbox_files().is_empty(), "{field}: nothing may leave");
    }
    // Event dates are not dates of birth.
    let a = agreement_with_fields(&w, "b.toml", "\"admission_date\", \"region\"", false);
    let run = w.dars(&["run", &a]);
    assert!(run.status.success(), "{}", stderr(&run));
}

/// Runs `dars` in a private mount namespace with a tmpfs of `kib` KiB
/// mounted over the work directory: a real filesystem that fills up.
fn dars_with_small_work_dir(w: &Workdir, kib: u64, args: &[&str]) -> std::process::Output {
    fs::create_dir_all(w.path("work")).unwrap();
    let script = format!(
        "mount -t tmpfs -o size={kib}k,mode=0700 tmpfs '{}' && exec \"$0\" \"$@\"",
        w.path("work").display()
    );
    Command::new("unshare")
        .args(["--mount", "--map-root-user", "sh", "-c", &script])
        .arg(env!("CARGO_BIN_EXE_dars"))
        .arg("--site")
        .arg(w.path("site.toml"))
        .args(args)
        .current_dir(w.dir.path())
        .env_remove("DARS_TODAY")
        .output()
        .expect("unshare (util-linux) is installed")
}

#[test]
fn issue_12_a_full_disk_while_sealing_says_what_filled_and_is_not_a_config_error() {
    let w = Workdir::new(1500, 600, 60000, 1205);
    // Records wide enough that the sealed output, not the checkpoints,
    // fills the work directory.
    let text = w
        .agreement_text("2099-12-31", "")
        .replace(
            "fields = [\"admission_date:month\", \"diagnosis_primary\", \"age_at_admission:band5\", \"region\"]",
            "fields = [\"admission_date\", \"discharge_date\", \"diagnosis_primary\", \"procedure_primary\", \"provider_code\", \"lsoa\", \"episode_id:pseudonym\"]",
        );
    w.write("agreement.toml", &text);
    let out = dars_with_small_work_dir(&w, 512, &["run", "agreement.toml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}\n{err}", stdout(&out));
    assert!(
        err.contains("no space left on the filesystem holding")
            && err.contains("episodes.parquet.age")
            && err.contains("work.dir"),
        "{err}"
    );
    assert!(w.outbox_files().is_empty(), "nothing may leave");
}

#[test]
fn issue_12_suppress_refuses_counts_that_overflow_without_a_panic() {
    let w = Workdir::new(50, 10, 50, 1206);
    // Before issue #12 these two made the margin overflow and dars panic.
    w.write("huge.csv", "region,count\nA,1e19\nB,1e19\n");
    let out = w.dars(&[
        "suppress",
        "huge.csv",
        "--profile",
        "hes",
        "--totals",
        "--out",
        "huge_out.csv",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "a panic exits 101: {err}");
    assert!(
        err.contains("row 1") && err.contains("larger than 2^53"),
        "{err}"
    );
    w.write(
        "big.csv",
        "region,count\nA,9223372036854775807\nB,9223372036854775807\n",
    );
    let out = w.dars(&[
        "suppress",
        "big.csv",
        "--profile",
        "hes",
        "--totals",
        "--out",
        "big_out.csv",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "a panic exits 101: {err}");
    assert!(
        err.contains("row 1") && err.contains("larger than 2^53"),
        "{err}"
    );
    w.write(
        "sum.csv",
        "region,count\nA,6000000000000000\nB,6000000000000000\n",
    );
    let out = w.dars(&[
        "suppress",
        "sum.csv",
        "--profile",
        "hes",
        "--totals",
        "--out",
        "sum_out.csv",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("add up to more than"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn issue_12_suppress_refuses_a_real_value_that_reads_as_the_margin_label() {
    let w = Workdir::new(50, 10, 50, 1208);
    w.write("records.csv", "region,sex\nTotal,1\nLeeds,2\nLeeds,1\n");
    let out = w.dars(&[
        "suppress",
        "records.csv",
        "--profile",
        "hes",
        "--group-by",
        "region,sex",
        "--totals",
        "--out",
        "t.csv",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("dimension `region`") && err.contains("margin"),
        "{err}"
    );
    assert!(!w.path("t.csv").exists());
}

#[test]
fn issue_12_a_pseudonym_key_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let w = Workdir::new(300, 40, 800, 1207);
    let a = w.agreement("agreement.toml", "2099-12-31", "");
    let a = a.to_str().unwrap();
    let first = w.dars(&["run", a, "--dry-run"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let key = w.path("work/DARS-NIC-000001-DEMO1-01/pseudonym.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let out = w.dars(&["run", a, "--dry-run"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("readable by group or others") && err.contains("chmod 600"),
        "{err}"
    );
}
