//! End-to-end tests of `dars suppress`, the analysts' dry run (issue #4):
//! the real binary on the sample tables in `testdata/suppress/`, each run in
//! its own temporary folder.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::{read_csv, stderr};

fn data(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/suppress")
        .join(name)
        .display()
        .to_string()
}

fn dars(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dars"))
        .current_dir(dir)
        .env("DARS_LOG", "warn")
        .arg("suppress")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn records_are_counted_protected_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = dars(
        dir.path(),
        &[
            &data("records.csv"),
            "--profile",
            "hes",
            "--group-by",
            "region,sex",
            "--totals",
            "--out",
            "protected.csv",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (header, rows) = read_csv(&dir.path().join("protected.csv"));
    assert_eq!(header, ["region", "sex", "count"]);
    assert_eq!(rows.len(), 5 * 3 + 5 + 3 + 1);
    let mut stars = 0;
    for r in &rows {
        if r[2] == "*" {
            stars += 1;
            continue;
        }
        let n: u64 = r[2].parse().unwrap();
        if r[0] == "Total" && r[1] == "Total" {
            assert_eq!(n, 400, "the national total is released as computed");
            continue;
        }
        assert!(n == 0 || n >= 8, "{r:?} is in the masked range");
        assert_eq!(n % 5, 0, "{r:?} is not rounded to 5");
    }
    assert!(stars > 0, "the sample has small cells");

    let report = dir.path().join("protected.report.csv");
    let html = dir.path().join("protected.report.html");
    for f in [&report, &html] {
        let mode = fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} holds true values", f.display());
    }
    let (header, rows) = read_csv(&report);
    for col in ["original_internal", "released", "action", "rule", "reason"] {
        assert!(header.contains(&col.to_string()), "{col}");
    }
    let action = header.iter().position(|h| h == "action").unwrap();
    assert!(rows.iter().any(|r| r[action] == "primary"));
    assert!(rows
        .iter()
        .any(|r| r.iter().any(|v| v.starts_with("cells suppressed:"))));
    assert!(rows
        .iter()
        .any(|r| r.iter().any(|v| v.contains("information lost"))));
    let page = fs::read_to_string(&html).unwrap();
    assert!(page.contains("<table") && page.contains("class=\"primary\""));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("suppressed") && text.contains("audit"),
        "{text}"
    );
}

#[test]
fn a_custom_profile_without_rounding_adds_complementary_cells() {
    let dir = tempfile::tempdir().unwrap();
    let out = dars(
        dir.path(),
        &[
            &data("counts.csv"),
            "--profile",
            &data("strict.toml"),
            "--totals",
            "--out",
            "strict.csv",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, rows) = read_csv(&dir.path().join("strict.csv"));
    let get = |r: &str, s: &str| {
        rows.iter()
            .find(|x| x[0] == r && x[1] == s)
            .map(|x| x[2].clone())
            .unwrap()
    };
    assert_eq!(get("North East", "1"), "*");
    assert_eq!(get("North West", "2"), "0", "a true zero stays 0");
    let stars = rows.iter().filter(|x| x[2] == "*").count();
    assert!(
        stars >= 4,
        "a lone * in a row and a column needs complements: {stars}"
    );
    let (header, rows) = read_csv(&dir.path().join("strict.report.csv"));
    let action = header.iter().position(|h| h == "action").unwrap();
    assert!(rows.iter().any(|r| r[action] == "secondary"));
    let audit = header.iter().position(|h| h == "audit").unwrap();
    assert!(rows.iter().all(|r| r[audit] != "FAIL"));
}

#[test]
fn csds_suppresses_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let out = dars(
        dir.path(),
        &[
            &data("counts.csv"),
            "--profile",
            "csds",
            "--out",
            "csds.csv",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, rows) = read_csv(&dir.path().join("csds.csv"));
    let nw2 = rows
        .iter()
        .find(|x| x[0] == "North West" && x[1] == "2")
        .unwrap();
    assert_eq!(nw2[2], "*");
}

/// Issue #4: a table built to be unsafe fails the audit; only the reports
/// are written, never the table.
#[test]
fn issue_4_an_unsafe_table_fails_the_audit_and_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dars(
        dir.path(),
        &[
            &data("fail_unsafe_counts.csv"),
            "--profile",
            "hes",
            "--totals",
            "--out",
            "unsafe.csv",
        ],
    );
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("row 1 of the suppression report") && err.contains("fix:"),
        "{err}"
    );
    // Issue #12 (07): dimension values may be postcodes or LSOAs: the
    // cell is named by its place in the report, never by its labels.
    assert!(!err.contains("London"), "{err}");
    assert!(!dir.path().join("unsafe.csv").exists());
    let (header, rows) = read_csv(&dir.path().join("unsafe.report.csv"));
    let audit = header.iter().position(|h| h == "audit").unwrap();
    assert!(rows.iter().any(|r| r[audit] == "FAIL"));
}

#[test]
fn bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(Vec<String>, i32, &[&str]); 5] = [
        (
            vec![
                data("records.csv"),
                "--profile".into(),
                "hes".into(),
                "--group-by".into(),
                "regoin".into(),
            ],
            4,
            &["regoin", "region"],
        ),
        (
            vec![
                data("fail_negative_count.csv"),
                "--profile".into(),
                "hes".into(),
            ],
            4,
            &["count", "negative", "row 2"],
        ),
        (
            vec![
                data("fail_fractional_count.csv"),
                "--profile".into(),
                "hes".into(),
            ],
            4,
            // The row, never the value (issue #12).
            &["count", "whole number", "row 2"],
        ),
        (
            vec![
                data("counts.csv"),
                "--profile".into(),
                data("fail_unknown_key.toml"),
            ],
            3,
            &["secondry", "fail_unknown_key.toml"],
        ),
        (
            vec![
                data("counts.csv"),
                "--profile".into(),
                "hes".into(),
                "--percent-of".into(),
                "sex".into(),
            ],
            4,
            &["percent", "totals"],
        ),
    ];
    for (args, code, words) in cases {
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend(["--out", "x.csv"]);
        let out = dars(dir.path(), &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        for w in words {
            assert!(err.contains(w), "{args:?}: `{w}` missing from: {err}");
        }
        assert!(!dir.path().join("x.csv").exists());
    }
}

#[test]
fn percentages_are_released_beside_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dars(
        dir.path(),
        &[
            &data("counts.csv"),
            "--profile",
            "hes",
            "--totals",
            "--percent-of",
            "sex",
            "--out",
            "pct.csv",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (header, rows) = read_csv(&dir.path().join("pct.csv"));
    assert_eq!(header, ["region", "sex", "count", "percent"]);
    let ne1 = rows
        .iter()
        .find(|x| x[0] == "North East" && x[1] == "1")
        .unwrap();
    assert_eq!(ne1[3], "*", "a percentage built on a masked count");
    let l1 = rows
        .iter()
        .find(|x| x[0] == "London" && x[1] == "1")
        .unwrap();
    // Issue #17: of the released counts (40 of 80), not the true ones (40
    // of 78, 51.3%), so the percentage says nothing the counts do not.
    assert_eq!(l1[3], "50.0", "40 of 80, from the released values");
}

/// Issue #12 (13): a real dimension value that reads as the margin label
/// (here a Cyrillic `Т`) is refused as an input error naming the column
/// and row, not the value; a margin row that contradicts its cells is an
/// input error naming its row, never "a bug in dars".
#[test]
fn issue_12_total_look_alikes_and_contradicting_margins_are_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dars(
        dir.path(),
        &[
            &data("fail_total_lookalike.csv"),
            "--profile",
            "hes",
            "--totals",
            "--out",
            "x.csv",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("`region`") && err.contains("row 2"), "{err}");
    assert!(!err.contains("LS1") && !err.contains("otal,"), "{err}");
    assert!(!dir.path().join("x.csv").exists());

    let out = dars(
        dir.path(),
        &[
            &data("fail_margin_below_cell.csv"),
            "--profile",
            "hes",
            "--out",
            "x.csv",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("row 5") && err.contains("summed over `sex`") && err.contains("smaller"),
        "{err}"
    );
    assert!(!err.contains("bug") && !err.contains("E0100"), "{err}");
    assert!(!dir.path().join("x.csv").exists());
}
