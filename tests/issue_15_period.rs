//! End to end, issue #15 item 1: an output's `period`. Each test runs the
//! real binary on `dars synth` data, decrypts the release with the real
//! `age`, and judges it against the synthetic input read by the test: the
//! rows released under a period are exactly those of the same release
//! without one whose admission date falls inside it.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use polars::prelude::*;

const FROM: &str = "2019-04-01";
const TO: &str = "2022-03-31";
const PERIOD: &str =
    r#"period = { column = "admission_date", from = 2019-04-01, to = 2022-03-31 }"#;
const RECORDS_FIELDS: &str =
    r#"fields = ["admission_date:month", "diagnosis_primary", "age_at_admission:band5", "region"]"#;

/// An agreement under `reference` whose records output releases study ID,
/// admission date and region from `dataset`, and whose aggregate counts
/// episodes by admission year; both with `period` (TOML, may be empty).
fn agreement(w: &Workdir, reference: &str, dataset: &str, period: &str) -> String {
    let text = w
        .agreement_text("2030-12-31", "")
        .replace("DARS-NIC-000001-DEMO1-01", reference)
        .replace(
            RECORDS_FIELDS,
            &format!("fields = [\"admission_date\", \"region\"]\n{period}"),
        )
        .replace(
            "group_by = [\"region\", \"sex\"]\ncount = \"persons\"",
            &format!("group_by = [\"admission_date:year\"]\ncount = \"records\"\n{period}"),
        )
        .replace("dataset = \"hes_apc\"", &format!("dataset = \"{dataset}\""));
    let name = format!("{reference}.toml");
    w.write(&name, &text);
    name
}

/// The release folder of `reference` at the destination (one run each).
fn release_dir(w: &Workdir, reference: &str) -> PathBuf {
    let root = w.path("outbox").join(reference);
    let mut runs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "one release of {reference}");
    runs.pop().unwrap()
}

/// The released (study_id, admission_date) pairs, one per row, sorted.
fn released_rows(w: &Workdir, reference: &str) -> Vec<(String, String)> {
    let bytes = w.age_decrypt(&release_dir(w, reference).join("episodes.parquet.age"));
    let df = ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .unwrap();
    let mut rows: Vec<(String, String)> = strings(&df, "study_id")
        .into_iter()
        .zip(strings(&df, "admission_date"))
        .collect();
    rows.sort();
    rows
}

/// The admission years counted by the aggregate (margins left out).
fn counted_years(w: &Workdir, reference: &str) -> BTreeSet<i32> {
    let bytes = w.age_decrypt(&release_dir(w, reference).join("admissions_by_region.csv.age"));
    let text = String::from_utf8(bytes).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header
        .iter()
        .position(|h| h.starts_with("admission_date"))
        .unwrap_or_else(|| panic!("no year column in {header:?}"));
    lines
        .filter_map(|l| l.split(',').nth(at)?.trim_matches('"').parse().ok())
        .collect()
}

fn run(w: &Workdir, agreement: &str) {
    let out = w.dars(&["run", agreement]);
    assert!(
        out.status.success(),
        "run {agreement}: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

fn manifest(w: &Workdir, reference: &str) -> serde_json::Value {
    serde_json::from_slice(&fs::read(release_dir(w, reference).join("manifest.json")).unwrap())
        .unwrap()
}

fn inside(date: &str) -> bool {
    (FROM..=TO).contains(&date)
}

/// The site's episodes written as a Hive-partitioned folder by admission
/// year, `hes_part/admission_date_year=YYYY/part-0.parquet` (the year is in
/// the folder name only), and named `hes_part` in the site config. Returns
/// the years written.
fn partition_by_year(w: &Workdir) -> Vec<i32> {
    let df = LazyFrame::scan_parquet(
        PlRefPath::try_from_path(&w.path("data/site/hes_apc.parquet")).unwrap(),
        Default::default(),
    )
    .unwrap()
    .collect()
    .unwrap();
    let year = || col("admission_date").dt().year();
    let years: BTreeSet<i32> = df
        .clone()
        .lazy()
        .select([year().alias("year")])
        .collect()
        .unwrap()
        .column("year")
        .unwrap()
        .i32()
        .unwrap()
        .into_no_null_iter()
        .collect();
    for &y in &years {
        let mut part = df
            .clone()
            .lazy()
            .filter(year().eq(lit(y)))
            .collect()
            .unwrap();
        let dir = w.path(&format!("data/site/hes_part/admission_date_year={y}"));
        fs::create_dir_all(&dir).unwrap();
        let f = fs::File::create(dir.join("part-0.parquet")).unwrap();
        ParquetWriter::new(f).finish(&mut part).unwrap();
    }
    let site = fs::read_to_string(w.path("site.toml")).unwrap().replace(
        "[keys]",
        "[datasets.hes_part]\npath = \"data/site/hes_part\"\nkey = \"person_id\"\n[keys]",
    );
    w.write("site.toml", &site);
    years.into_iter().collect()
}

#[test]
fn only_rows_inside_the_period_leave_and_the_manifest_says_which() {
    let w = Workdir::new(400, 150, 6000, 1501);
    let all = agreement(&w, "DARS-NIC-000001-DEMO1-01", "hes_apc", "");
    let within = agreement(&w, "DARS-NIC-000002-DEMO2-01", "hes_apc", PERIOD);
    run(&w, &all);
    run(&w, &within);

    let every = released_rows(&w, "DARS-NIC-000001-DEMO1-01");
    let expected: Vec<(String, String)> =
        every.iter().filter(|(_, d)| inside(d)).cloned().collect();
    let outside = every.len() - expected.len();
    assert!(
        outside > 100 && expected.len() > 100,
        "the synthetic episodes fall both sides of the period ({} inside, {outside} outside)",
        expected.len()
    );
    let released = released_rows(&w, "DARS-NIC-000002-DEMO2-01");
    assert_eq!(released, expected, "exactly the rows inside the period");

    // The aggregate counts only episodes inside the period: no year before
    // 2019 or after 2022 is a cell, where without the period there are.
    let all_years = counted_years(&w, "DARS-NIC-000001-DEMO1-01");
    assert!(
        all_years.contains(&2016) && all_years.contains(&2024),
        "{all_years:?}"
    );
    let years = counted_years(&w, "DARS-NIC-000002-DEMO2-01");
    assert_eq!(
        years,
        (2019..=2022).collect(),
        "years counted under the period"
    );

    let m = manifest(&w, "DARS-NIC-000002-DEMO2-01");
    let period = serde_json::json!({"column": "admission_date", "from": FROM, "to": TO});
    for file in m["files"].as_array().unwrap() {
        assert_eq!(file["period"], period, "{file}");
    }
    let m = manifest(&w, "DARS-NIC-000001-DEMO1-01");
    assert!(
        m["files"][0].get("period").is_none(),
        "no period, none recorded"
    );
    // The signed manifest (period included) verifies with stock tools.
    let dir = release_dir(&w, "DARS-NIC-000002-DEMO2-01");
    let out = w.run(&[
        "verify",
        dir.to_str().unwrap(),
        "--allowed-signers",
        w.path("keys/allowed_signers").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "verify: {}", stderr(&out));
}

#[test]
fn a_partitioned_dataset_is_pruned_by_the_period() {
    let w = Workdir::new(400, 150, 6000, 1502);
    let years = partition_by_year(&w);
    assert!(years.contains(&2016) && years.contains(&2020), "{years:?}");
    // A partition wholly outside the period is garbage: were it read, the
    // run would fail (shown below without a period).
    fs::write(
        w.path("data/site/hes_part/admission_date_year=2016/part-0.parquet"),
        b"PAR1 this is not a parquet file, and it ends like one PAR1",
    )
    .unwrap();
    let all = agreement(&w, "DARS-NIC-000001-DEMO1-01", "hes_apc", "");
    let within = agreement(&w, "DARS-NIC-000002-DEMO2-01", "hes_part", PERIOD);
    let unpruned = agreement(&w, "DARS-NIC-000003-DEMO3-01", "hes_part", "");
    run(&w, &all);
    run(&w, &within);

    let expected: Vec<(String, String)> = released_rows(&w, "DARS-NIC-000001-DEMO1-01")
        .into_iter()
        .filter(|(_, d)| inside(d))
        .collect();
    assert!(expected.len() > 100, "{} rows inside", expected.len());
    assert_eq!(released_rows(&w, "DARS-NIC-000002-DEMO2-01"), expected);

    let out = w.dars(&["run", &unpruned]);
    assert!(
        !out.status.success(),
        "the garbage partition is read without a period"
    );
    assert!(
        stderr(&out).contains("admission_date_year=2016"),
        "names the part: {}",
        stderr(&out)
    );
    assert!(!w.path("outbox/DARS-NIC-000003-DEMO3-01").exists());
}

#[test]
fn check_names_the_period_key_and_the_fix() {
    let w = Workdir::new(200, 50, 500, 1503);
    let cases = [
        (
            r#"period = { column = "admission_date", from = 2022-03-31, to = 2019-04-01 }"#,
            "outputs[0].period.from",
            "after it ends",
        ),
        (
            r#"period = { column = "region", from = 2019-04-01, to = 2022-03-31 }"#,
            "outputs[0].period.column",
            "not a date",
        ),
        (
            r#"period = { column = "no_such_column", from = 2019-04-01, to = 2022-03-31 }"#,
            "outputs[0].period.column",
            "not a column of the dataset",
        ),
    ];
    for (i, (period, key, what)) in cases.into_iter().enumerate() {
        let reference = format!("DARS-NIC-00001{i}-CHECK-01");
        let text = w
            .agreement_text("2030-12-31", "")
            .replace("DARS-NIC-000001-DEMO1-01", &reference)
            .replace(RECORDS_FIELDS, &format!("{RECORDS_FIELDS}\n{period}"));
        let name = format!("{reference}.toml");
        w.write(&name, &text);
        let out = w.dars(&["check", &name]);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!out.status.success(), "{period}: check passed: {text}");
        assert!(
            text.contains(key) && text.contains(what),
            "{period}: {text}"
        );
        assert!(text.contains("fix"), "{period}: a fix is given: {text}");
        // And the run refuses it, releasing nothing.
        let out = w.dars(&["run", &name]);
        assert!(!out.status.success(), "{period}: run passed");
        assert!(!w.path("outbox").join(&reference).exists());
    }
}

/// The cohort's recruitment dates as the test gives them, by study ID:
/// `Some(YYYY-MM-DD)`, or `None` for a blank or unreadable cell.
type Recruitment = std::collections::BTreeMap<String, Option<String>>;

/// Adds a `Recruitment Date` column (an alias of `recruited_on`) to the
/// cohort: days spread over 2016-2023 in the three accepted spellings, a
/// blank every 13th row and an impossible day every 17th.
fn add_recruitment_dates(w: &Workdir) -> Recruitment {
    let path = w.path("data/cohort.csv");
    let (header, rows) = read_csv(&path);
    // The synth cohort writes `Study ID` after a BOM, as applicants do.
    let at = header
        .iter()
        .position(|h| {
            h.trim_start_matches('\u{feff}')
                .to_lowercase()
                .replace(' ', "_")
                == "study_id"
        })
        .unwrap();
    let mut out = csv::Writer::from_path(&path).unwrap();
    let mut h = header.clone();
    h.push("Recruitment Date".into());
    out.write_record(&h).unwrap();
    let mut truth = Recruitment::new();
    for (i, mut row) in rows.into_iter().enumerate() {
        let (cell, day) = if i % 13 == 5 {
            (String::new(), None)
        } else if i % 17 == 3 {
            ("31/02/2020".to_string(), None)
        } else {
            let year = 2016 + (i * 7 % 8) as i32;
            let month = 1 + (i * 5 % 12) as u32;
            let day = 1 + (i * 11 % 28) as u32;
            let cell = match i % 3 {
                0 => format!("{year:04}-{month:02}-{day:02}"),
                1 => format!("{day:02}/{month:02}/{year:04}"),
                _ => format!("{year:04}{month:02}{day:02}"),
            };
            (cell, Some(format!("{year:04}-{month:02}-{day:02}")))
        };
        truth.insert(row[at].clone(), day);
        row.push(cell);
        out.write_record(&row).unwrap();
    }
    out.flush().unwrap();
    truth
}

/// The linkage table of the one run of `reference`.
fn linkage(w: &Workdir, reference: &str) -> Vec<(String, String)> {
    let runs = w.path(&format!("work/{reference}/runs"));
    let run = fs::read_dir(runs).unwrap().next().unwrap().unwrap().path();
    let (header, rows) = read_csv(&run.join("linkage.csv"));
    let id = header.iter().position(|h| h == "study_id").unwrap();
    let reason = header.iter().position(|h| h == "reason").unwrap();
    rows.into_iter()
        .map(|r| (r[id].clone(), r[reason].clone()))
        .collect()
}

#[test]
fn without_backdating_only_rows_from_each_persons_recruitment_leave() {
    let w = Workdir::new(400, 150, 6000, 1504);
    let truth = add_recruitment_dates(&w);
    let wide = r#"period = { column = "admission_date", from = 2015-01-01, to = 2025-12-31 }"#;
    let all = agreement(&w, "DARS-NIC-000001-DEMO1-01", "hes_apc", wide);
    let later = agreement(&w, "DARS-NIC-000002-DEMO2-01", "hes_apc", wide);
    let text = fs::read_to_string(w.path(&later)).unwrap().replace(
        "validation_fields = ",
        "backdate = false\nvalidation_fields = ",
    );
    w.write(&later, &text);
    run(&w, &all);
    run(&w, &later);

    let every = released_rows(&w, "DARS-NIC-000001-DEMO1-01");
    let expected: Vec<(String, String)> = every
        .iter()
        .filter(|(id, day)| match truth.get(id) {
            Some(Some(from)) => day >= from,
            _ => false,
        })
        .cloned()
        .collect();
    let undated = every
        .iter()
        .filter(|(id, _)| truth.get(id).is_some_and(Option::is_none))
        .count();
    assert!(
        undated > 0 && expected.len() > 100 && expected.len() + undated + 100 < every.len(),
        "the test's dates fall both sides of the admissions ({} of {} kept, {undated} undated)",
        expected.len(),
        every.len()
    );
    assert_eq!(released_rows(&w, "DARS-NIC-000002-DEMO2-01"), expected);

    // A blank or unreadable date is a row problem with its reason.
    let reasons = linkage(&w, "DARS-NIC-000002-DEMO2-01");
    for (id, reason) in &reasons {
        let dated = truth[id].is_some();
        assert_eq!(
            !reason.contains("recruited_on"),
            dated,
            "{id}: reason {reason:?}"
        );
    }
    assert!(reasons
        .iter()
        .any(|(_, r)| r.contains("recruited_on is missing")));
    assert!(reasons
        .iter()
        .any(|(_, r)| r.contains("recruited_on is not a day of the calendar")));
}

#[test]
fn without_backdating_every_output_needs_a_period_and_the_cohort_its_column() {
    let w = Workdir::new(200, 50, 500, 1505);
    let text = w.agreement_text("2030-12-31", "").replace(
        "validation_fields = ",
        "backdate = false\nvalidation_fields = ",
    );
    w.write("a.toml", &text);
    let out = w.dars(&["check", "a.toml"]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success());
    assert!(
        said.contains("outputs[0].period") && said.contains("outputs[1].period"),
        "{said}"
    );
    // With periods, a cohort without the column is refused before linking.
    let text = text
        .replace(RECORDS_FIELDS, &format!("{RECORDS_FIELDS}\n{PERIOD}"))
        .replace(
            "suppression = \"hes\"",
            &format!("suppression = \"hes\"\n{PERIOD}"),
        );
    w.write("a.toml", &text);
    let out = w.dars(&["check", "a.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = w.dars(&["run", "a.toml"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("missing column `recruited_on`, required by `cohort.backdate`"),
        "{}",
        stderr(&out)
    );
    assert!(w.outbox_files().is_empty());
}

/// Every release folder of `reference`, with its manifest.
fn releases(w: &Workdir, reference: &str) -> Vec<(PathBuf, serde_json::Value)> {
    let root = w.path("outbox").join(reference);
    let mut out: Vec<(PathBuf, serde_json::Value)> = fs::read_dir(&root)
        .unwrap()
        .map(|e| {
            let dir = e.unwrap().path();
            let m = serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
            (dir, m)
        })
        .collect();
    out.sort_by_key(|(_, m)| {
        m["files"][0]["window"]["from"]
            .as_str()
            .unwrap_or("")
            .to_string()
    });
    out
}

/// The (study_id, admission_date) rows of the records file in `dir`.
fn rows_in(w: &Workdir, dir: &Path) -> Vec<(String, String)> {
    let bytes = w.age_decrypt(&dir.join("episodes.parquet.age"));
    let df = ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .unwrap();
    strings(&df, "study_id")
        .into_iter()
        .zip(strings(&df, "admission_date"))
        .collect()
}

#[test]
fn monthly_extracts_cover_consecutive_windows_once_each() {
    let w = Workdir::new(400, 150, 20000, 1506);
    let monthly = "DARS-NIC-000001-DEMO1-01";
    let once = "DARS-NIC-000002-DEMO2-01";
    let period = r#"period = { column = "admission_date", from = 2024-12-01, to = 2025-12-31 }
incremental = true"#;
    let a = agreement(&w, monthly, "hes_apc", period);
    // The aggregate counts the whole dataset each time (a month's counts
    // by year would be suppressed to nothing).
    let text = fs::read_to_string(w.path(&a))
        .unwrap()
        .replace(
            &format!("count = \"records\"\n{period}"),
            "count = \"records\"",
        )
        .replace(
            "legal_basis = \"section-251\"",
            "legal_basis = \"section-251\"\nschedule = \"monthly\"",
        );
    w.write(&a, &text);
    // What the three windows should add up to, released once.
    let whole = r#"period = { column = "admission_date", from = 2024-12-01, to = 2025-04-30 }"#;
    let b = agreement(&w, once, "hes_apc", whole);
    let out = w.dars_on("2025-05-05", &["run", &b]);
    assert!(out.status.success(), "{}", stderr(&out));

    // February, March, then May: April was missed.
    for today in ["2025-02-05", "2025-03-05", "2025-05-05"] {
        let out = w.dars_on(today, &["run", &a]);
        assert!(out.status.success(), "{today}: {}", stderr(&out));
    }
    // Nothing new the same month: refused (exit 5), nothing released.
    let out = w.dars_on("2025-05-06", &["run", &a]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("2025-04-30"), "{}", stderr(&out));
    assert_eq!(releases(&w, monthly).len(), 3);

    let windows = [
        ("2024-12-01", "2025-01-31"),
        ("2025-02-01", "2025-02-28"),
        ("2025-03-01", "2025-04-30"),
    ];
    let mut union = Vec::new();
    for ((dir, m), (from, to)) in releases(&w, monthly).iter().zip(windows) {
        for file in m["files"].as_array().unwrap().iter().take(1) {
            assert_eq!(
                file["window"],
                serde_json::json!({"column": "admission_date", "from": from, "to": to, "repeats_last_window": false}),
                "{}",
                dir.display()
            );
        }
        let rows = rows_in(&w, dir);
        assert!(rows.len() > 20, "{from}..{to}: {} rows", rows.len());
        assert!(
            rows.iter().all(|(_, d)| (from..=to).contains(&d.as_str())),
            "{from}..{to}"
        );
        union.extend(rows);
    }
    union.sort();
    let mut whole_rows = rows_in(&w, &releases(&w, once)[0].0);
    whole_rows.sort();
    assert_eq!(union, whole_rows, "every row once, none missed");

    // A forced re-release the same month repeats the last window, and the
    // ledger says so.
    fs::create_dir_all(w.path("batch")).unwrap();
    let text = fs::read_to_string(w.path(&a))
        .unwrap()
        .replace("data/cohort.csv", "../data/cohort.csv")
        .replace("file://outbox", "file://../outbox");
    w.write("batch/a.toml", &text);
    let out = w.dars_on("2025-05-07", &["batch", "batch", "--force"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let ledger = fs::read_to_string(w.path("work/ledger.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = ledger
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "release" && e["agreement"] == monthly)
        .collect();
    assert_eq!(entries.len(), 4, "{ledger}");
    let windows: Vec<(bool, serde_json::Value)> = entries
        .iter()
        .map(|e| {
            (
                e["forced"].as_bool().unwrap(),
                e["files"][0]["window"].clone(),
            )
        })
        .collect();
    assert!(windows[..3]
        .iter()
        .all(|(forced, w)| !forced && w["repeats_last_window"] == false));
    let (forced, last) = &windows[3];
    assert!(*forced);
    assert_eq!(last["repeats_last_window"], true);
    assert_eq!(
        (&last["from"], &last["to"]),
        (&windows[2].1["from"], &windows[2].1["to"])
    );

    // The public register gives each release the period its files cover:
    // an incremental output's window, another output's period.
    let out = w.dars(&["register", "--out", "register.csv"]);
    assert!(out.status.success(), "register: {}", stderr(&out));
    let (header, rows) = read_csv(&w.path("register.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let said: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r[col("agreement")].clone(), r[col("period")].clone()))
        .collect();
    let whole = "2024-12-01..2025-04-30";
    let mut expected = vec![(
        once.to_string(),
        format!("episodes: {whole}; admissions_by_region: {whole}"),
    )];
    for (_, window) in &windows {
        let (from, to) = (
            window["from"].as_str().unwrap(),
            window["to"].as_str().unwrap(),
        );
        expected.push((monthly.to_string(), format!("episodes: {from}..{to}")));
    }
    assert_eq!(said, expected, "the register's periods, in ledger order");
}

#[test]
fn check_refuses_incremental_without_a_period_or_a_monthly_schedule() {
    let w = Workdir::new(200, 50, 500, 1507);
    let text = w.agreement_text("2030-12-31", "").replace(
        RECORDS_FIELDS,
        &format!("{RECORDS_FIELDS}\nincremental = true"),
    );
    w.write("a.toml", &text);
    let out = w.dars(&["check", "a.toml"]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success());
    assert!(
        said.contains("outputs[0].incremental") && said.contains("no period column"),
        "{said}"
    );
    assert!(said.contains("not monthly"), "{said}");
}
