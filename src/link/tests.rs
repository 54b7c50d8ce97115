//! Unit tests for tier 1 linkage.

use chrono::NaiveDate;
use polars::prelude::*;

use super::*;
use crate::domain::date::to_epoch_days;
use crate::domain::NhsNumber;
use crate::ingest::{Cohort, CohortRow};

fn nhs(first9: [u8; 9]) -> NhsNumber {
    // Walk forward to the next nine digits that give a valid number.
    let mut d = first9;
    loop {
        if let Some(n) = NhsNumber::complete(d) {
            return n;
        }
        d[8] = (d[8] + 1) % 10;
    }
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn demographics(people: &[(i64, NhsNumber, &str, &str, &str)]) -> LazyFrame {
    let dob: Vec<i32> = people.iter().map(|p| to_epoch_days(date(p.2))).collect();
    DataFrame::new_infer_height(vec![
        Column::new(
            "person_id".into(),
            people.iter().map(|p| p.0).collect::<Vec<_>>(),
        ),
        Column::new(
            "nhs_number".into(),
            people.iter().map(|p| p.1.as_string()).collect::<Vec<_>>(),
        ),
        Column::new("date_of_birth".into(), dob)
            .cast(&DataType::Date)
            .unwrap(),
        Column::new(
            "gender".into(),
            people.iter().map(|p| p.3).collect::<Vec<_>>(),
        ),
        Column::new(
            "postcode".into(),
            people.iter().map(|p| p.4).collect::<Vec<_>>(),
        ),
    ])
    .unwrap()
    .lazy()
}

fn row(study: &str, n: Option<NhsNumber>, dob: &str, gender: Gender, pc: &str) -> CohortRow {
    CohortRow {
        line: 2,
        study_id: study.into(),
        nhs_number: n,
        date_of_birth: Some(date(dob)),
        gender: Some(gender),
        postcode: Postcode::parse(pc),
        ..Default::default()
    }
}

fn config() -> LinkConfig {
    LinkConfig {
        validation_fields: vec![
            CohortField::NhsNumber,
            CohortField::DateOfBirth,
            CohortField::Gender,
            CohortField::Postcode,
        ],
        manual_validation: false,
        review_decisions: None,
    }
}

#[test]
fn tier_one_cross_check() {
    let a = nhs([4, 0, 1, 0, 2, 3, 2, 1, 3]);
    let b = nhs([6, 9, 5, 2, 4, 3, 5, 7, 8]);
    let c = nhs([5, 9, 9, 0, 1, 2, 8, 0, 8]);
    let index = demographics(&[
        (1, a, "1980-02-29", "1", "LS1 4AP"),
        (2, b, "1975-06-01", "2", "M1 1AE"),
        (3, c, "2001-12-31", "9", "EC1A 1BB"),
    ]);
    let cohort = Cohort {
        rows: vec![
            row("S1", Some(a), "1980-02-29", Gender::Male, "ls14ap"),
            row("S2", Some(b), "1975-06-01", Gender::Female, "M1 1AF"), // moved house
            row("S3", Some(c), "2001-12-31", Gender::Male, "EC1A 1BB"), // index gender not known
            row("S4", Some(b), "1975-06-01", Gender::Male, "M1 1AE"),   // gender disagrees
            row("S5", None, "1975-06-01", Gender::Female, "M1 1AE"),
            CohortRow {
                line: 7,
                study_id: "S6".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let l = link(&cohort, index, &config()).unwrap();
    let outcomes: Vec<_> = l
        .rows
        .iter()
        .map(|r| (r.study_id.as_str(), r.outcome, r.person_id))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("S1", Outcome::Validated, Some(1)),
            ("S2", Outcome::Unmatched, None),
            ("S3", Outcome::Validated, Some(3)),
            ("S4", Outcome::Unmatched, None),
            ("S5", Outcome::Unmatched, None),
            ("S6", Outcome::Invalid, None),
        ]
    );
    assert!(
        l.rows[1].reason.contains("postcode disagrees"),
        "{}",
        l.rows[1].reason
    );
    assert!(l.rows[3].reason.contains("gender"), "{}", l.rows[3].reason);
    assert_eq!(l.counts.validated, 2);
    assert_eq!(l.linked.persons.height(), 2);
    let linked_nhs: Vec<_> = l
        .linked
        .persons
        .column("nhs_number")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .map(String::from)
        .collect();
    assert_eq!(linked_nhs, [a.as_string(), c.as_string()]);
}

#[test]
fn only_selected_fields_are_cross_checked() {
    let a = nhs([4, 0, 1, 0, 2, 3, 2, 1, 3]);
    let index = demographics(&[(1, a, "1980-02-29", "1", "LS1 4AP")]);
    let cohort = Cohort {
        rows: vec![row("S1", Some(a), "1980-02-29", Gender::Male, "M1 1AE")],
        ..Default::default()
    };
    let mut cfg = config();
    cfg.validation_fields = vec![CohortField::NhsNumber, CohortField::DateOfBirth];
    assert_eq!(
        link(&cohort, index, &cfg).unwrap().rows[0].outcome,
        Outcome::Validated
    );
}

#[test]
fn linkage_csv_has_the_design_columns_in_cohort_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("linkage.csv");
    let rows = vec![
        LinkageRow {
            study_id: "S2".into(),
            person_id: Some(7),
            outcome: Outcome::Validated,
            tier: Some(1),
            score: Some(100.0),
            reason: "ok".into(),
        },
        LinkageRow {
            study_id: "S1".into(),
            person_id: None,
            outcome: Outcome::Unmatched,
            tier: None,
            score: None,
            reason: "x".into(),
        },
    ];
    write_linkage_csv(&path, &rows).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, "study_id,person_id,outcome,tier,score,reason\nS2,7,validated,1,100.0,ok\nS1,,unmatched,,,x\n");
}
