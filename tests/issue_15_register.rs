//! Issue #15 item 5: `dars register`, the public register of releases,
//! written from the ledger alone. Several real releases (`dars synth`,
//! then `dars run`), the register read back as CSV and compared line by
//! line with the ledger and each run's summary; `--from`/`--to`; the HTML
//! register loaded in headless Chromium, its table read through the DOM
//! and compared with the CSV, and checked strictly (`tests/html_check.py`);
//! a broken ledger refused with nothing written.

mod browser_support;
mod common;

use std::fs;
use std::process::Command;

use common::*;
use serde_json::Value;

const OTHER: &str = "DARS-NIC-000002-OTHER-01";

/// The persons count as a reader may see it: 1–7 hidden, the rest to the
/// nearest 5 (never more than 2 away), 0 as 0.
fn assert_protected(shown: &str, truth: u64, what: &str) {
    match truth {
        0 => assert_eq!(shown, "0", "{what}"),
        1..=7 => assert_eq!(shown, "*", "{what}: {truth} must be hidden"),
        _ => {
            let n: u64 = shown
                .parse()
                .unwrap_or_else(|_| panic!("{what}: {shown:?}"));
            assert_eq!(n % 5, 0, "{what}: {n} is not a multiple of 5");
            assert!(n.abs_diff(truth) <= 2, "{what}: {n} is not {truth} rounded");
        }
    }
}

fn ledger_releases(w: &Workdir) -> Vec<Value> {
    fs::read_to_string(w.path("work/ledger.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "release")
        .collect()
}

/// Three releases: the example agreement twice, another organisation's once.
fn three_releases() -> Workdir {
    let w = Workdir::new(2000, 300, 12000, 15_005);
    let a = w.agreement("a.toml", "2030-12-31", "");
    let other = w
        .agreement_text("2030-12-31", "")
        .replace("DARS-NIC-000001-DEMO1-01", OTHER)
        .replace("Example University", r#"Other & <Trust> \"NHS\""#)
        .replace("section-251", "consent")
        .replace("apply = [\"type1\", \"ndoo\"]", "apply = [\"type1\"]");
    w.write("b.toml", &other);
    for agreement in [a.clone(), w.path("b.toml"), a] {
        let out = w.dars(&["run", agreement.to_str().unwrap()]);
        assert!(out.status.success(), "run failed: {}", stderr(&out));
    }
    w
}

#[test]
fn issue_15_register_matches_the_ledger_and_its_html_reads_back_the_same_in_chromium() {
    let w = three_releases();
    let releases = ledger_releases(&w);
    assert_eq!(releases.len(), 3, "three releases in the ledger");

    let out = w.dars(&["register", "--out", "register.csv"]);
    assert!(out.status.success(), "register failed: {}", stderr(&out));
    let (header, rows) = read_csv(&w.path("register.csv"));
    assert_eq!(
        header,
        [
            "agreement",
            "run_id",
            "organisation",
            "legal_basis",
            "datasets",
            "outputs",
            "identifiable",
            "period",
            "release_date",
            "persons",
            "rows"
        ]
    );
    assert_eq!(rows.len(), 3);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for (row, entry) in rows.iter().zip(&releases) {
        let reference = entry["agreement"].as_str().unwrap();
        let run_id = entry["run_id"].as_str().unwrap();
        assert_eq!(row[col("agreement")], reference);
        assert_eq!(row[col("run_id")], run_id);
        assert_eq!(
            row[col("release_date")],
            entry["at"].as_str().unwrap()[..10]
        );
        let (organisation, basis) = if reference == OTHER {
            ("Other & <Trust> \"NHS\"", "consent")
        } else {
            ("Example University", "section-251")
        };
        assert_eq!(row[col("organisation")], organisation);
        assert_eq!(row[col("legal_basis")], basis);
        assert_eq!(row[col("datasets")], "hes_apc");
        assert_eq!(
            row[col("outputs")],
            "episodes (records); admissions_by_region (aggregate)"
        );
        assert_eq!(row[col("identifiable")], "no");
        assert_eq!(row[col("period")], "", "no output has a period");
        let summary: Value = serde_json::from_slice(
            &fs::read(w.path(&format!("work/{reference}/runs/{run_id}/summary.json"))).unwrap(),
        )
        .unwrap();
        let persons = summary["objections"]["released"].as_u64().unwrap();
        assert!(persons > 7, "the test wants a real cohort: {persons}");
        assert_protected(&row[col("persons")], persons, "persons");
        let ledger_rows: u64 = entry["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rows"].as_u64().unwrap())
            .sum();
        assert_protected(&row[col("rows")], ledger_rows, "rows");
    }

    // No patient data: no cohort value but study IDs is in the register.
    let register = fs::read_to_string(w.path("register.csv")).unwrap();
    let (cohort_header, cohort) = read_csv(&w.path("data/cohort.csv"));
    for (i, name) in cohort_header.iter().enumerate() {
        if name == "study_id" || name == "gender" {
            continue;
        }
        for person in &cohort {
            let value = person[i].trim();
            if value.len() >= 4 {
                assert!(
                    !register.contains(value),
                    "the register holds a cohort {name}"
                );
            }
        }
    }

    // --from / --to, on the releases' own date (inclusive).
    let day = rows[0][col("release_date")].clone();
    let date = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").unwrap();
    let before = (date - chrono::Days::new(1)).to_string();
    let after = (date + chrono::Days::new(1)).to_string();
    for (args, want) in [
        (vec!["--from", day.as_str(), "--to", day.as_str()], 3),
        (vec!["--from", after.as_str()], 0),
        (vec!["--to", before.as_str()], 0),
        (vec!["--from", before.as_str(), "--to", after.as_str()], 3),
    ] {
        let mut all = vec!["register", "--out", "filtered.csv"];
        all.extend(&args);
        let out = w.dars(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(read_csv(&w.path("filtered.csv")).1.len(), want, "{args:?}");
    }
    let out = w.dars(&[
        "register", "--from", &after, "--to", &before, "--out", "x.csv",
    ]);
    assert_eq!(out.status.code(), Some(2), "--from after --to");
    assert!(!w.path("x.csv").exists());

    // HTML: strictly valid, and the same table as the CSV through the DOM.
    let out = w.dars(&["register", "--out", "register.html"]);
    assert!(out.status.success(), "register failed: {}", stderr(&out));
    let html = w.path("register.html");
    let check = Command::new("python3")
        .arg(repo().join("tests/html_check.py"))
        .arg(&html)
        .output()
        .expect("python3");
    assert!(
        check.status.success(),
        "the register's HTML is not valid: {}{}",
        stdout(&check),
        stderr(&check)
    );
    let profile = tempfile::tempdir().unwrap();
    let browser = browser_support::chromium(profile.path());
    let tab = browser.new_tab().unwrap();
    tab.navigate_to(&format!("file://{}", html.display()))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    let page = tab
        .evaluate(
            r#"JSON.stringify({
                lang: document.documentElement.lang,
                title: document.title,
                caption: document.querySelector('table > caption')?.textContent ?? '',
                scripts: document.scripts.length,
                head: Array.from(document.querySelectorAll('thead th')).map(th => [th.scope, th.textContent]),
                rowHeads: Array.from(document.querySelectorAll('tbody th')).map(th => th.scope),
                rows: Array.from(document.querySelectorAll('tbody tr')).map(tr => Array.from(tr.cells).map(c => c.textContent)),
            })"#,
            false,
        )
        .unwrap()
        .value
        .unwrap();
    let page: Value = serde_json::from_str(page.as_str().unwrap()).unwrap();
    assert_eq!(page["lang"], "en");
    assert!(!page["title"].as_str().unwrap().is_empty());
    assert!(page["caption"].as_str().unwrap().contains("3 releases"));
    assert_eq!(page["scripts"], 0);
    let head = page["head"].as_array().unwrap();
    assert_eq!(head.len(), header.len());
    assert!(head.iter().all(|h| h[0] == "col"));
    assert_eq!(page["rowHeads"], serde_json::json!(["row", "row", "row"]));
    let dom_rows: Vec<Vec<String>> = serde_json::from_value(page["rows"].clone()).unwrap();
    assert_eq!(dom_rows, rows, "the HTML table reads back as the CSV");

    // A broken ledger: refused, and the register already there is kept.
    let ledger = w.path("work/ledger.jsonl");
    let text = fs::read_to_string(&ledger).unwrap();
    fs::write(
        &ledger,
        text.replacen("Example University", "Example Universitx", 1),
    )
    .unwrap();
    let before = fs::read(w.path("register.csv")).unwrap();
    let out = w.dars(&["register", "--out", "register.csv"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("line"),
        "names the line: {}",
        stderr(&out)
    );
    assert_eq!(fs::read(w.path("register.csv")).unwrap(), before);
    let out = w.dars(&["register", "--out", "new.html"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(!w.path("new.html").exists());
}
