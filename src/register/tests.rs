use super::*;
use crate::package::ManifestFile;

fn release(seq: u64, at: &str, rows: u64, register: Option<RegisterFacts>) -> LedgerEntry {
    LedgerEntry {
        seq,
        at: at.to_string(),
        prev_sha256: "00".repeat(32),
        event: LedgerEvent::Release {
            agreement: "DARS-NIC-000001-DEMO1-01".to_string(),
            run_id: format!("run-{seq}"),
            destination: "file:///outbox".to_string(),
            manifest_sha256: "ab".repeat(32),
            files: vec![ManifestFile {
                name: "episodes.parquet.age".to_string(),
                bytes: 10,
                sha256: "cd".repeat(32),
                rows,
                kind: "records".to_string(),
                period: None,
                window: None,
            }],
            forced: false,
            register,
            linkage: None,
        },
    }
}

fn facts() -> RegisterFacts {
    RegisterFacts {
        organisation: "Uni <of> \"Somewhere\" & Co".to_string(),
        legal_basis: "consent".to_string(),
        identifiable: false,
        outputs: vec![
            RegisterOutput {
                name: "episodes".to_string(),
                dataset: "hes_apc".to_string(),
                kind: "records".to_string(),
                period: Some("2019-04-01..2022-03-31".to_string()),
            },
            RegisterOutput {
                name: "by_region".to_string(),
                dataset: "hes_apc".to_string(),
                kind: "aggregate".to_string(),
                period: None,
            },
        ],
        persons: protect(1234),
    }
}

#[test]
fn counts_are_protected_by_the_hes_rule() {
    assert_eq!(protect(0), "0");
    for n in 1..=7 {
        assert_eq!(protect(n), "*", "{n}");
    }
    assert_eq!(protect(8), "10");
    assert_eq!(protect(12), "10");
    assert_eq!(protect(13), "15");
    assert_eq!(protect(1234), "1235");
    for n in 8..2000 {
        let p: u64 = protect(n).parse().unwrap();
        assert_eq!(p % 5, 0);
        assert!(p.abs_diff(n) <= 2, "{n} -> {p}");
    }
}

#[test]
fn from_and_to_keep_releases_made_in_between_inclusive() {
    let entries = vec![
        release(1, "2026-01-31T23:59:59Z", 100, Some(facts())),
        release(2, "2026-02-01T00:00:00Z", 100, Some(facts())),
        release(3, "2026-02-28T12:00:00Z", 100, Some(facts())),
        release(4, "2026-03-01T00:00:00Z", 100, Some(facts())),
        LedgerEntry {
            seq: 5,
            at: "2026-02-10T00:00:00Z".to_string(),
            prev_sha256: "00".repeat(32),
            event: LedgerEvent::Destruction {
                agreement: "DARS-NIC-000001-DEMO1-01".to_string(),
                certificate_sha256: "ee".repeat(32),
                certificate_name: "cert.pdf".to_string(),
            },
        },
    ];
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let runs = |from, to| -> Vec<String> {
        lines(&entries, from, to)
            .unwrap()
            .into_iter()
            .map(|l| l.cells[1].clone())
            .collect()
    };
    assert_eq!(runs(None, None), ["run-1", "run-2", "run-3", "run-4"]);
    assert_eq!(
        runs(Some(d("2026-02-01")), Some(d("2026-02-28"))),
        ["run-2", "run-3"]
    );
    assert_eq!(runs(Some(d("2026-03-01")), None), ["run-4"]);
    assert_eq!(runs(None, Some(d("2026-01-31"))), ["run-1"]);
    assert!(runs(Some(d("2027-01-01")), None).is_empty());
}

#[test]
fn a_line_says_what_the_entry_says_with_counts_protected() {
    let line = &lines(
        &[release(1, "2026-02-01T09:30:12Z", 3, Some(facts()))],
        None,
        None,
    )
    .unwrap()[0];
    assert_eq!(
        line.cells,
        [
            "DARS-NIC-000001-DEMO1-01",
            "run-1",
            "Uni <of> \"Somewhere\" & Co",
            "consent",
            "hes_apc",
            "episodes (records); by_region (aggregate)",
            "no",
            "episodes: 2019-04-01..2022-03-31",
            "2026-02-01",
            "1235",
            "*",
        ]
        .map(String::from)
    );
    // An entry from before the register: outputs from its files, the rest empty.
    let old = &lines(&[release(1, "2026-02-01T09:30:12Z", 52, None)], None, None).unwrap()[0];
    assert_eq!(old.cells[5], "episodes (records)");
    assert_eq!(old.cells[2], "");
    assert_eq!(old.cells[9], "");
    assert_eq!(old.cells[10], "50");
}

#[test]
fn html_escapes_every_cell_and_has_no_script() {
    let lines = lines(
        &[release(1, "2026-02-01T09:30:12Z", 30, Some(facts()))],
        None,
        None,
    )
    .unwrap();
    let html = String::from_utf8(to_html(&lines, None, None)).unwrap();
    assert!(html.contains("Uni &lt;of&gt; &quot;Somewhere&quot; &amp; Co"));
    assert!(!html.contains("<of>"));
    assert!(!html.to_lowercase().contains("<script"));
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(html.contains("<th scope=\"row\">DARS-NIC-000001-DEMO1-01</th>"));
}

#[test]
fn write_refuses_an_unknown_extension_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("register.txt");
    assert!(matches!(
        write(&out, &[], None, None),
        Err(RegisterError::UnknownFormat(_))
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let csv = dir.path().join("register.csv");
    write(&csv, &[], None, None).unwrap();
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap().trim_end(),
        COLUMNS.join(",")
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn an_outputs_register_period_is_its_files_window_else_its_period() {
    use crate::config::OutputSpec;
    use crate::minimise::RecordsOutput;
    use crate::period::{Period, Window};
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let period = Period {
        column: "admission_date".into(),
        from: day("2019-04-01"),
        to: day("2022-03-31"),
    };
    let output = |period: Option<Period>| {
        OutputSpec::Records(RecordsOutput {
            name: "episodes".into(),
            dataset: "hes_apc".into(),
            fields: vec!["admission_date".into()],
            format: crate::tables::FileFormat::Parquet,
            period,
            incremental: false,
            identifiers: Default::default(),
        })
    };
    let file = |period: Option<Period>, window: Option<Window>| ManifestFile {
        name: "episodes.parquet.age".into(),
        bytes: 1,
        sha256: "cd".repeat(32),
        rows: 1,
        kind: "records".into(),
        period,
        window,
    };
    let window = Window {
        column: "admission_date".into(),
        from: day("2020-01-01"),
        to: day("2020-01-31"),
        repeats_last_window: false,
    };
    let with = output(Some(period.clone()));
    assert_eq!(
        released_period(&with, &[file(Some(period.clone()), Some(window))]).as_deref(),
        Some("2020-01-01..2020-01-31"),
        "an incremental file's window"
    );
    assert_eq!(
        released_period(&with, &[file(Some(period.clone()), None)]).as_deref(),
        Some("2019-04-01..2022-03-31")
    );
    assert_eq!(
        released_period(&with, &[]).as_deref(),
        Some("2019-04-01..2022-03-31"),
        "no file: the agreement's period"
    );
    let without = output(None);
    assert_eq!(released_period(&without, &[file(None, None)]), None);
    // Another output's file is not this one's.
    let mut other = file(None, None);
    other.name = "other.parquet.age".into();
    assert_eq!(released_period(&without, &[other]), None);
}
