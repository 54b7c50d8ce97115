//! Unit tests of the link stage: tiers, scoring, blocking caps, the queue
//! and the decisions file (issue #3).

use std::path::PathBuf;

use chrono::NaiveDate;
use polars::prelude::*;

use super::compare::Field;
use super::*;
use crate::domain::date::to_epoch_days;
use crate::domain::{Gender, NhsNumber, Postcode};
use crate::ingest::{Cohort, CohortRow};

/// The `n`th valid NHS number of a deterministic sequence in the 4xx range.
fn nhs_n(n: u64) -> NhsNumber {
    let mut k = n * 7 + 1_000_000;
    loop {
        let s = format!("4{k:08}");
        let d: Vec<u8> = s.bytes().map(|b| b - b'0').collect();
        if let Some(x) = NhsNumber::complete(d.try_into().unwrap()) {
            return x;
        }
        k += 1;
    }
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A person of the test index.
#[derive(Clone)]
struct P {
    id: i64,
    nhs: NhsNumber,
    dob: &'static str,
    gender: &'static str,
    postcode: Option<&'static str>,
    forename: &'static str,
    surname: &'static str,
}

fn p(id: i64, dob: &'static str, gender: &'static str, postcode: &'static str) -> P {
    P {
        id,
        nhs: nhs_n(id as u64),
        dob,
        gender,
        postcode: Some(postcode),
        forename: "Alex",
        surname: "Smith",
    }
}

const FORENAMES: [&str; 8] = [
    "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Mia",
];
const SURNAMES: [&str; 8] = [
    "Smith", "Jones", "Taylor", "Brown", "Patel", "Wilson", "Evans", "Thomas",
];
const DISTRICTS: [&str; 6] = ["LS1", "LS2", "M1", "M14", "B12", "EC1A"];

/// One of the 3000 deterministic others of [`demographics`].
struct Other {
    id: i64,
    nhs: NhsNumber,
    dob: NaiveDate,
    gender: &'static str,
    postcode: String,
    forename: &'static str,
    surname: &'static str,
}

fn other(i: u64) -> Other {
    let id = 10_000 + i as i64;
    let d = DISTRICTS[(i % 6) as usize];
    Other {
        id,
        nhs: nhs_n(id as u64),
        // Births spread over 1930–2009, never in 2010 or later (the
        // named people of the tests are born then).
        dob: date("1930-01-01") + chrono::Duration::days(((i * 7919) % 29_000) as i64),
        gender: if i % 2 == 0 { "1" } else { "2" },
        postcode: format!(
            "{d} {}{}{}",
            i % 10,
            char::from(b'A' + (i / 10 % 20) as u8),
            char::from(b'A' + (i / 200 % 20) as u8)
        ),
        forename: FORENAMES[(i % 8) as usize],
        surname: SURNAMES[(i / 8 % 8) as usize],
    }
}

/// The people of `named` plus 3000 deterministic others, so that the
/// weights are measured on a population, not on three people.
fn demographics(named: &[P]) -> LazyFrame {
    let mut ids = Vec::new();
    let mut nhs = Vec::new();
    let mut dob = Vec::new();
    let mut gender = Vec::new();
    let mut postcode: Vec<Option<String>> = Vec::new();
    let mut forename = Vec::new();
    let mut surname = Vec::new();
    for x in named {
        ids.push(x.id);
        nhs.push(x.nhs.as_string());
        dob.push(to_epoch_days(date(x.dob)));
        gender.push(x.gender.to_string());
        postcode.push(x.postcode.map(String::from));
        forename.push(x.forename.to_string());
        surname.push(x.surname.to_string());
    }
    for i in 0..3000u64 {
        let o = other(i);
        ids.push(o.id);
        nhs.push(o.nhs.as_string());
        dob.push(to_epoch_days(o.dob));
        gender.push(o.gender.to_string());
        postcode.push(Some(o.postcode));
        forename.push(o.forename.to_string());
        surname.push(o.surname.to_string());
    }
    DataFrame::new_infer_height(vec![
        Column::new("person_id".into(), ids),
        Column::new("nhs_number".into(), nhs),
        Column::new("date_of_birth".into(), dob)
            .cast(&DataType::Date)
            .unwrap(),
        Column::new("gender".into(), gender),
        Column::new("postcode".into(), postcode),
        Column::new("forename".into(), forename),
        Column::new("surname".into(), surname),
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

fn named(mut r: CohortRow, forename: &str, surname: &str) -> CohortRow {
    r.forename = Some(forename.into());
    r.surname = Some(surname.into());
    r
}

fn cohort(rows: Vec<CohortRow>, names: bool) -> Cohort {
    let mut columns = vec![
        CohortField::StudyId,
        CohortField::NhsNumber,
        CohortField::DateOfBirth,
        CohortField::Gender,
        CohortField::Postcode,
    ];
    if names {
        columns.extend([CohortField::Forename, CohortField::Surname]);
    }
    Cohort {
        columns,
        rows,
        ..Default::default()
    }
}

fn config() -> LinkConfig {
    LinkConfig::default()
}

fn with_names() -> LinkConfig {
    LinkConfig {
        manual_validation: true,
        ..LinkConfig::default()
    }
}

fn outcomes(l: &Linkage) -> Vec<(&str, Outcome, Option<i64>)> {
    l.rows
        .iter()
        .map(|r| (r.study_id.as_str(), r.outcome, r.person_id))
        .collect()
}

/// What blocking key `name` did in run `l`.
fn key_report<'a>(l: &'a Linkage, name: &str) -> &'a block::KeyReport {
    l.blocking
        .keys
        .iter()
        .find(|k| k.key == name)
        .unwrap_or_else(|| panic!("no report for key {name}"))
}

fn entry<'a>(l: &'a Linkage, study: &str) -> &'a QueueEntry {
    l.queue
        .iter()
        .find(|e| e.study_id == study)
        .unwrap_or_else(|| panic!("{study} not queued"))
}

#[test]
fn tier_one_cross_check() {
    let people = [
        p(1, "2010-02-28", "1", "LS1 4AP"),
        p(2, "2011-06-01", "2", "M1 1AE"),
        p(3, "2012-12-31", "9", "EC1A 1BB"),
    ];
    let (a, b, c) = (people[0].nhs, people[1].nhs, people[2].nhs);
    let rows = vec![
        row("S1", Some(a), "2010-02-28", Gender::Male, "ls14ap"),
        row("S2", Some(b), "2011-06-01", Gender::Female, "M1 1AF"), // moved house
        row("S3", Some(c), "2012-12-31", Gender::Male, "EC1A 1BB"), // index gender not known
        row("S4", Some(b), "2011-06-01", Gender::Male, "M1 1AE"),   // gender disagrees
        row("S5", None, "2011-06-01", Gender::Female, "M1 1AE"),    // no NHS number
        CohortRow {
            line: 7,
            study_id: "S6".into(),
            ..Default::default()
        },
    ];
    let l = link(&cohort(rows, false), demographics(&people), &config()).unwrap();
    assert_eq!(
        outcomes(&l),
        [
            ("S1", Outcome::Validated, Some(1)),
            ("S2", Outcome::Queued, None),
            ("S3", Outcome::Validated, Some(3)),
            ("S4", Outcome::Queued, None),
            ("S5", Outcome::Queued, None),
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
    assert_eq!(l.counts.queued, 3);
    assert_eq!(l.counts.partial, 2);
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
    // The row without an NHS number finds person 2 on date of birth and
    // postcode district.
    let s5 = entry(&l, "S5");
    assert_eq!(s5.candidates[0].person_id, 2);
    assert!(s5.candidates[0].found_by().contains("dob+district"));
}

#[test]
fn only_selected_fields_are_cross_checked() {
    let people = [p(1, "2010-02-28", "1", "LS1 4AP")];
    let rows = vec![row(
        "S1",
        Some(people[0].nhs),
        "2010-02-28",
        Gender::Male,
        "M1 1AE",
    )];
    let mut cfg = config();
    cfg.validation_fields = vec![CohortField::NhsNumber, CohortField::DateOfBirth];
    let l = link(&cohort(rows, false), demographics(&people), &cfg).unwrap();
    assert_eq!(l.rows[0].outcome, Outcome::Validated);
}

#[test]
fn a_postcode_recorded_on_neither_side_is_neutral_but_one_sided_is_not() {
    let mut x = p(1, "2010-02-28", "1", "LS1 4AP");
    x.postcode = None;
    let y = p(2, "2011-03-01", "2", "LS1 4AP");
    let mut r1 = row("S1", Some(x.nhs), "2010-02-28", Gender::Male, "");
    r1.postcode = None;
    let mut r2 = row("S2", Some(y.nhs), "2011-03-01", Gender::Female, "");
    r2.postcode = None;
    let l = link(
        &cohort(vec![r1, r2], false),
        demographics(&[x, y]),
        &config(),
    )
    .unwrap();
    assert_eq!(l.rows[0].outcome, Outcome::Validated);
    assert!(l.rows[0].reason.contains("neutral"), "{}", l.rows[0].reason);
    assert_eq!(l.rows[1].outcome, Outcome::Queued);
    assert!(
        l.rows[1].reason.contains("postcode missing in the cohort"),
        "{}",
        l.rows[1].reason
    );
}

/// Issue #3: a valid NHS number found where another field disagrees is
/// queued with that person first and the disagreeing field shown.
#[test]
fn partial_match_puts_the_nhs_person_first_and_shows_the_field() {
    let mover = p(1, "2010-05-20", "2", "LS1 4AP");
    let rows = vec![row(
        "S1",
        Some(mover.nhs),
        "2010-05-20",
        Gender::Female,
        "M14 5QT",
    )];
    let l = link(&cohort(rows, false), demographics(&[mover]), &config()).unwrap();
    assert_eq!(l.rows[0].outcome, Outcome::Queued);
    assert!(l.rows[0].reason.contains("postcode disagrees"));
    let e = entry(&l, "S1");
    assert_eq!(e.candidates[0].person_id, 1);
    assert!(e.candidates[0].nhs_number_found);
    assert_eq!(e.candidates[0].levels[3], Level::Disagree);
    assert_eq!(e.values[3], "M14 5QT");
    assert_eq!(e.candidates[0].values[3], "LS1 4AP");
}

/// Issue #10 (was issue #3's "holder first whatever the scores"): a found
/// NHS number is strong evidence, not a verdict. Someone who agrees on
/// everything but the number outranks a holder who agrees on nothing else.
#[test]
fn issue_10_a_found_nhs_number_is_evidence_not_a_verdict() {
    let holder = p(1, "2011-01-30", "1", "LS1 4AP");
    let other = p(2, "2012-05-20", "2", "M14 5QT");
    let rows = vec![row(
        "S1",
        Some(holder.nhs),
        "2012-05-20",
        Gender::Female,
        "M14 5QT",
    )];
    let cfg = LinkConfig {
        review_threshold: 0.0,
        ..config()
    };
    let l = link(&cohort(rows, false), demographics(&[holder, other]), &cfg).unwrap();
    assert_eq!(l.rows[0].outcome, Outcome::Queued);
    let e = entry(&l, "S1");
    assert_eq!(e.candidates[0].person_id, 2);
    let holder_rank = e.candidates.iter().position(|c| c.person_id == 1);
    assert_eq!(holder_rank, Some(1), "the holder is still shown, second");
    assert!(e.candidates[1].nhs_number_found);
    assert!(e.candidates[0].weight > e.candidates[1].weight);
}

/// Issue #10: twins share date of birth, postcode, gender and surname; a
/// cohort row carrying the other twin's NHS number is not validated when
/// names are in use, and both twins are queued for a reviewer (the number
/// and the forename point different ways).
#[test]
fn issue_10_a_twins_number_with_the_other_forename_is_not_validated() {
    let mut t1 = p(1, "2015-03-09", "1", "B12 9ZZ");
    t1.forename = "Oscar";
    t1.surname = "Okonkwo";
    let mut t2 = p(2, "2015-03-09", "1", "B12 9ZZ");
    t2.forename = "Felix";
    t2.surname = "Okonkwo";
    let r = named(
        row("S1", Some(t1.nhs), "2015-03-09", Gender::Male, "B12 9ZZ"),
        "Felix",
        "Okonkwo",
    );
    let l = link(
        &cohort(vec![r], true),
        demographics(&[t1, t2]),
        &with_names(),
    )
    .unwrap();
    assert_eq!(l.rows[0].outcome, Outcome::Queued);
    assert!(
        l.rows[0].reason.contains("forename"),
        "{}",
        l.rows[0].reason
    );
    let mut queued: Vec<i64> = entry(&l, "S1")
        .candidates
        .iter()
        .map(|c| c.person_id)
        .collect();
    queued.sort_unstable();
    assert_eq!(queued, [1, 2]);
}

#[test]
fn a_failed_check_digit_finds_the_person_one_edit_away() {
    let x = p(1, "2010-05-20", "1", "LS2 7UE");
    let mut typo = x.nhs.digits();
    typo[4] = (typo[4] + 3) % 10;
    let mut swap = x.nhs.digits();
    let i = (0..9).find(|&i| swap[i] != swap[i + 1]).unwrap();
    swap.swap(i, i + 1);
    let mut r1 = row("S1", None, "2010-05-20", Gender::Male, "LS2 7UE");
    r1.nhs_number_typo = Some(typo);
    let mut r2 = row("S2", None, "2010-05-20", Gender::Male, "LS2 7UE");
    r2.nhs_number_typo = Some(swap);
    let l = link(&cohort(vec![r1, r2], false), demographics(&[x]), &config()).unwrap();
    let e1 = entry(&l, "S1");
    assert_eq!(e1.candidates[0].person_id, 1);
    assert_eq!(e1.candidates[0].levels[0], Level::OneEdit);
    assert!(e1.candidates[0].found_by().contains("nhs_number_one_edit"));
    let e2 = entry(&l, "S2");
    assert_eq!(e2.candidates[0].levels[0], Level::Transposition);
    assert!(l.rows.iter().all(|r| r.outcome == Outcome::Queued));
}

#[test]
fn twins_are_ambiguous_without_names_and_told_apart_with_them() {
    let mut t1 = p(1, "2015-03-09", "1", "B12 9ZZ");
    t1.forename = "Oscar";
    t1.surname = "Okonkwo";
    let mut t2 = p(2, "2015-03-09", "1", "B12 9ZZ");
    t2.forename = "Felix";
    t2.surname = "Okonkwo";
    let people = [t1, t2];
    let r = named(
        row("S1", None, "2015-03-09", Gender::Male, "B12 9ZZ"),
        "Felix",
        "Okonkwo",
    );
    let l = link(
        &cohort(vec![r.clone()], false),
        demographics(&people),
        &config(),
    )
    .unwrap();
    let e = entry(&l, "S1");
    assert!(e.ambiguous);
    assert_eq!(e.candidates.len(), 2);
    assert!(l.rows[0].reason.contains("ambiguous"));
    assert_eq!(l.counts.ambiguous, 1);
    // Names are not shown when the agreement does not use them.
    assert_eq!(e.candidates[0].levels[4], Level::NotUsed);
    assert_eq!(e.values[4], "");

    let l = link(&cohort(vec![r], true), demographics(&people), &with_names()).unwrap();
    let e = entry(&l, "S1");
    assert!(!e.ambiguous);
    assert_eq!(e.candidates[0].person_id, 2);
    assert_eq!(e.candidates[0].levels[4], Level::Exact);
    // Names only rank: the row is queued, never validated.
    assert_eq!(l.rows[0].outcome, Outcome::Queued);
}

/// Issue #3: names never validate, however well everything else agrees.
#[test]
fn names_never_validate() {
    let mut x = p(1, "2013-08-02", "2", "EC1A 4JQ");
    x.forename = "Zenobia";
    x.surname = "Quillfeather";
    let r = named(
        row("S1", None, "2013-08-02", Gender::Female, "EC1A 4JQ"),
        "Zenobia",
        "Quillfeather",
    );
    let l = link(&cohort(vec![r], true), demographics(&[x]), &with_names()).unwrap();
    assert_eq!(l.rows[0].outcome, Outcome::Queued);
    assert_eq!(l.counts.validated, 0);
    assert!(l.linked.persons.height() == 0);
}

#[test]
fn a_rare_surname_says_more_than_smith() {
    let mut rare = p(1, "2013-08-02", "2", "EC1A 4JQ");
    rare.surname = "Quillfeather";
    let index = index::Index::load(demographics(&[rare]), true).unwrap();
    let model = model::Model::measure(&index, true).unwrap();
    let (surname, dob) = (5, 1);
    assert_eq!(Field::ALL[surname], Field::Surname);
    assert_eq!(Field::ALL[dob], Field::DateOfBirth);
    let smith = model.weight(surname, Level::Exact, Some("SMITH"), 1);
    let quill = model.weight(surname, Level::Exact, Some("QUILLFEATHER"), 1);
    assert!(quill > smith + 5.0, "{quill} vs {smith}");
    assert!(model.weight(surname, Level::Disagree, Some("SMITH"), 1) < 0.0);
    assert!(
        model.weight(dob, Level::Exact, None, 1) > model.weight(dob, Level::OneComponent, None, 1)
    );
}

/// Issue #3: a key whose blocks grow too big is reported and capped.
#[test]
fn oversized_blocks_are_capped_and_reported() {
    let people: Vec<P> = (1..=40)
        .map(|i| {
            let mut x = p(i, "2016-01-01", "1", "LS1 1AA");
            x.postcode = Some(["LS1 1AA", "LS1 2AB", "LS1 3AC", "LS1 4AD"][(i % 4) as usize]);
            x
        })
        .collect();
    // A postcode none of them has, so that only dob+district finds them
    // (postcode+year would find the ten at the same address).
    let r = row("S1", None, "2016-01-01", Gender::Male, "LS1 9ZZ");
    let cfg = LinkConfig {
        max_block: 10,
        ..config()
    };
    let l = link(&cohort(vec![r.clone()], false), demographics(&people), &cfg).unwrap();
    let key = key_report(&l, "dob+district");
    assert_eq!(key.lookups, 1);
    assert_eq!(key.comparisons, 40);
    assert_eq!(key.capped_lookups, 1);
    assert_eq!(key.capped_comparisons, 40);
    assert_eq!(l.rows[0].outcome, Outcome::Unmatched);
    assert!(l.rows[0].reason.contains("no candidate"));
    // Counted in the run summary, not only in the log.
    assert_eq!(l.counts.capped_keys.len(), 1);
    assert_eq!(l.counts.capped_keys[0].key, "dob+district");
    assert_eq!(l.counts.capped_keys[0].capped_comparisons, 40);

    // The budget drops the largest blocks first.
    let cfg = LinkConfig {
        max_comparisons: 5,
        ..config()
    };
    let l = link(&cohort(vec![r], false), demographics(&people), &cfg).unwrap();
    assert!(l.blocking.capped_comparisons() >= 40);
}

/// The queue fixture of the decisions tests: Q1 and Q3 are both
/// candidates for twins 101/102 (Q3 is the same child sent twice), Q2 for
/// twins 103/104.
fn decisions_fixture(decisions: Option<PathBuf>) -> Result<Linkage, LinkError> {
    let twins = [
        p(101, "2014-04-04", "2", "M14 9XY"),
        p(102, "2014-04-04", "2", "M14 9XY"),
        p(103, "2017-07-17", "1", "LS2 8QQ"),
        p(104, "2017-07-17", "1", "LS2 8QQ"),
    ];
    let rows = vec![
        row("Q1", None, "2014-04-04", Gender::Female, "M14 9XY"),
        row("Q2", None, "2017-07-17", Gender::Male, "LS2 8QQ"),
        row("Q3", None, "2014-04-04", Gender::Female, "M14 9XY"),
    ];
    let cfg = LinkConfig {
        review_decisions: decisions,
        ..config()
    };
    link(&cohort(rows, false), demographics(&twins), &cfg)
}

fn decisions_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/decisions")
        .join(name)
}

#[test]
fn accepted_decisions_become_reviewed_and_rejections_leave_the_queue() {
    let before = decisions_fixture(None).unwrap();
    assert_eq!(before.counts.queued, 3);
    assert_eq!(before.counts.queue_pairs, 6);
    let l = decisions_fixture(Some(decisions_file("decisions.csv"))).unwrap();
    assert_eq!(
        outcomes(&l),
        [
            ("Q1", Outcome::Reviewed, Some(101)),
            ("Q2", Outcome::Queued, None),
            ("Q3", Outcome::Unmatched, None),
        ]
    );
    assert_eq!(l.rows[0].tier, Some(3));
    assert!(l.rows[0].reason.contains("accepted in review"));
    assert!(l.rows[2].reason.contains("every candidate rejected"));
    // Q2 keeps only the twin not rejected, no longer ambiguous.
    let q2 = entry(&l, "Q2");
    assert_eq!(q2.candidates.len(), 1);
    assert_eq!(q2.candidates[0].person_id, 104);
    assert!(!q2.ambiguous);
    assert_eq!(l.queue.len(), 1);
    assert_eq!((l.counts.accepted, l.counts.rejected), (1, 3));
    // The reviewed person goes on to the objections stage.
    assert_eq!(l.linked.persons.height(), 1);
}

fn decision_error(name: &str) -> String {
    match decisions_fixture(Some(decisions_file(name))) {
        Err(LinkError::ReviewDecisions(e)) => e.to_string(),
        other => panic!(
            "{name}: expected a decisions error, got {:?}",
            other.map(|l| l.counts)
        ),
    }
}

/// Issue #3: every bad decisions file names the line and what is wrong.
#[test]
fn bad_decisions_name_the_line() {
    for (file, wants) in [
        (
            "fail_not_in_queue.csv",
            &[
                "line 2:",
                "the study_id and person_id of this line are not a pair of the current review queue",
            ][..],
        ),
        (
            "fail_unknown_person.csv",
            &["line 3:", "person_id does not exist in the master person index"][..],
        ),
        (
            "fail_study_accepted_twice.csv",
            &["line 3:", "study ID Q1 is accepted twice (first on line 2)"][..],
        ),
        (
            "fail_person_accepted_twice.csv",
            &[
                "line 3:",
                "person_id (value withheld) is accepted for two study IDs (Q1 on line 2)",
            ][..],
        ),
        (
            "fail_unknown_column.csv",
            &["line 1:", "a header cell is not one of the columns"][..],
        ),
        (
            "fail_unknown_decision.csv",
            &["line 2:", "decision is neither `accept` nor `reject`"][..],
        ),
        (
            "fail_missing_column.csv",
            &["line 1:", "column `reviewer` is missing"][..],
        ),
    ] {
        let message = decision_error(file);
        for want in wants {
            assert!(message.contains(want), "{file}: {message}");
        }
        assert!(message.contains("fix:"), "{file}: {message}");
        assert!(message.contains(file), "{file}: {message}");
    }
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

#[test]
fn review_queue_csv_puts_both_sides_side_by_side() {
    use std::os::unix::fs::PermissionsExt;
    let l = decisions_fixture(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("review_queue.csv");
    write_review_queue_csv(&path, &l).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut r = csv::Reader::from_path(&path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        &header[..10],
        [
            "study_id",
            "person_id",
            "rank",
            "score",
            "nhs_number_level",
            "cohort_nhs_number",
            "index_nhs_number",
            "date_of_birth_level",
            "cohort_date_of_birth",
            "index_date_of_birth",
        ]
    );
    assert_eq!(header.last().unwrap(), "found_by");
    let records: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 6);
    let first = &records[0];
    assert_eq!(&first[0], "Q1");
    assert_eq!(&first[2], "1");
    assert_eq!(&first[7], "exact");
    assert_eq!(&first[8], "2014-04-04");
    assert_eq!(&first[9], "2014-04-04");
    let ambiguous = header.iter().position(|h| h == "ambiguous").unwrap();
    assert_eq!(&first[ambiguous], "true");
}

/// Issue #10, bad input: a block too big (a default date of birth shared
/// with a common forename) is narrowed to the row's gender and postcode
/// area rather than dropped, so the married person who moved nearby is
/// still found; the narrowing is counted in the run summary.
#[test]
fn issue_10_a_block_too_big_is_narrowed_to_gender_and_area_not_dropped() {
    const OTHER: [&str; 6] = ["Okafor", "Nowak", "Brennan", "Kowalczyk", "Adeyemi", "Lund"];
    const AWAY: [&str; 5] = ["M1 1AA", "B12 9ZZ", "EC1A 1BB", "M14 5TT", "B12 4QQ"];
    let mut people = Vec::new();
    // The true person: born on the default date, at LS2.
    let mut x = p(1, "1900-01-01", "2", "LS2 7UE");
    x.forename = "Sam";
    x.surname = "Okafor";
    people.push(x);
    // 59 others on the same date with the same forename: men anywhere,
    // women away from the LS area.
    for i in 2..=60i64 {
        let mut y = p(
            i,
            "1900-01-01",
            if i % 2 == 0 { "1" } else { "2" },
            "LS1 1AA",
        );
        y.forename = "Sam";
        y.surname = OTHER[(i % 6) as usize];
        if i % 2 == 1 {
            y.postcode = Some(AWAY[(i % 5) as usize]);
        } else if i % 4 == 0 {
            y.postcode = Some("LS9 8AB");
        }
        people.push(y);
    }
    // Married (a new surname), moved within the area (LS6, not LS2), no
    // NHS number: only date of birth + forename can find her.
    let r = named(
        row("S1", None, "1900-01-01", Gender::Female, "LS6 3QQ"),
        "Sam",
        "Whitfield",
    );
    let cfg = LinkConfig {
        max_block: 10,
        ..with_names()
    };
    let l = link(&cohort(vec![r], true), demographics(&people), &cfg).unwrap();
    let key = key_report(&l, "dob+forename");
    assert_eq!(key.lookups, 1);
    assert_eq!(key.comparisons, 60);
    assert_eq!((key.narrowed_lookups, key.capped_lookups), (1, 0));
    // 30 women, 29 of them away from LS: one comparison left.
    assert_eq!(key.narrowed_comparisons, 59);
    assert_eq!(l.rows[0].outcome, Outcome::Queued, "{}", l.rows[0].reason);
    assert_eq!(entry(&l, "S1").candidates[0].person_id, 1);
    let summary = l
        .counts
        .capped_keys
        .iter()
        .find(|k| k.key == "dob+forename")
        .expect("the narrowed key in the summary");
    assert_eq!(
        (summary.narrowed_lookups, summary.narrowed_comparisons),
        (1, 59)
    );

    // Without a gender or a postcode on the row there is nothing to narrow
    // by: the block is dropped and counted as before.
    let mut bare = named(
        row("S1", None, "1900-01-01", Gender::NotKnown, "LS6 3QQ"),
        "Sam",
        "Whitfield",
    );
    bare.postcode = None;
    let l = link(&cohort(vec![bare], true), demographics(&people), &cfg).unwrap();
    let key = key_report(&l, "dob+forename");
    assert_eq!((key.narrowed_lookups, key.capped_lookups), (0, 1));
    assert_eq!(key.capped_comparisons, 60);
}

/// Issue #10, bad input: a cohort whose every row has the same (default)
/// date of birth and no names, against an index with thousands on that
/// date. Every key's lookups are counted as made, narrowed or capped,
/// what was left out adds up, and the run stays inside its budget.
#[test]
fn issue_10_a_degenerate_cohort_is_narrowed_and_capped_with_counts() {
    const UNITS: [&str; 6] = [
        "LS1 1AA", "LS2 2BB", "M1 1CC", "M14 4DD", "B12 9ZZ", "EC1A 1BB",
    ];
    let people: Vec<P> = (0..4800i64)
        .map(|i| {
            let gender = if (i / 6) % 2 == 0 { "1" } else { "2" };
            p(100_000 + i, "1900-01-01", gender, UNITS[(i % 6) as usize])
        })
        .collect();
    let rows: Vec<CohortRow> = (0..2000usize)
        .map(|j| {
            let gender = match j % 10 {
                0 => Gender::NotKnown,
                k if k % 2 == 1 => Gender::Male,
                _ => Gender::Female,
            };
            let mut r = row(&format!("S{j}"), None, "1900-01-01", gender, UNITS[j % 6]);
            r.line = j as u64 + 2;
            r
        })
        .collect();
    let l = link(&cohort(rows, true), demographics(&people), &with_names()).unwrap();
    // Every district and every full postcode holds 800 of them (400 of
    // each gender): rows with a gender are narrowed to 400; the 200
    // without one cannot be narrowed (a district is inside one area) and
    // are capped.
    for name in ["dob+district", "postcode+year"] {
        let key = key_report(&l, name);
        assert_eq!(key.lookups, 2000, "{name}");
        assert_eq!(key.comparisons, 2000 * 800, "{name}");
        assert_eq!(
            (key.narrowed_lookups, key.narrowed_comparisons),
            (1800, 1800 * 400),
            "{name}"
        );
        assert_eq!(
            (key.capped_lookups, key.capped_comparisons),
            (200, 200 * 800),
            "{name}"
        );
        let summary = l
            .counts
            .capped_keys
            .iter()
            .find(|k| k.key == name)
            .expect("in the summary");
        assert_eq!(
            (summary.narrowed_lookups, summary.capped_lookups),
            (1800, 200)
        );
    }
    let made: u64 = l
        .blocking
        .keys
        .iter()
        .map(|k| k.comparisons - k.narrowed_comparisons - k.capped_comparisons)
        .sum();
    assert!(made <= LinkConfig::default().max_comparisons);
    assert_eq!(made, 2 * 1800 * 400);
    assert!(l
        .rows
        .iter()
        .all(|r| matches!(r.outcome, Outcome::Queued | Outcome::Unmatched)));
}

/// Issue #10, the lookalike class: people absent from the index who share
/// a surname and a date of birth with someone in it, under another
/// forename and in the same district (a twin or a cousin nobody
/// registered), are absent lookalikes, not that person with a new
/// forename: the estimate gives them a lookalike share and queues few of
/// them, while the people of the index with a forename typo are still
/// ranked first. Under the two-class model every one of these lookalikes
/// has a match posterior near 0.9 and is queued.
#[test]
fn issue_10_absent_lookalikes_are_not_queued_but_a_forename_typo_is() {
    let gender = |g: &str| {
        if g == "1" {
            Gender::Male
        } else {
            Gender::Female
        }
    };
    let date_of = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let mut rows = Vec::new();
    // Present, every field right but the NHS number (left blank so that
    // tier 2 and the estimate see them).
    for i in 0..1200u64 {
        let o = other(i);
        rows.push(named(
            row(
                &format!("P{i}"),
                None,
                &date_of(o.dob),
                gender(o.gender),
                &o.postcode,
            ),
            o.forename,
            o.surname,
        ));
    }
    // Present with one forename typo (a letter dropped).
    let typos: Vec<u64> = (1200..1240).collect();
    for &i in &typos {
        let o = other(i);
        let mut typo = o.forename.to_string();
        typo.remove(typo.len() - 2);
        rows.push(named(
            row(
                &format!("T{i}"),
                None,
                &date_of(o.dob),
                gender(o.gender),
                &o.postcode,
            ),
            &typo,
            o.surname,
        ));
    }
    // Absent lookalikes: surname and date of birth of someone in the
    // index, a forename nobody in it has, another street of the district.
    let lookalikes: Vec<u64> = (1500..1800).collect();
    let new_forenames = ["Zebedee", "Wilhelmina", "Quentin", "Ottoline", "Barnaby"];
    for &i in &lookalikes {
        let o = other(i);
        let district = o.postcode.split(' ').next().unwrap().to_string();
        let street = format!("{district} 9ZZ");
        let g = if i % 3 == 0 { "1" } else { o.gender };
        rows.push(named(
            row(&format!("L{i}"), None, &date_of(o.dob), gender(g), &street),
            new_forenames[(i % 5) as usize],
            o.surname,
        ));
    }
    let l = link(&cohort(rows, true), demographics(&[]), &with_names()).unwrap();
    let queued = |prefix: &str| {
        l.queue
            .iter()
            .filter(|e| e.study_id.starts_with(prefix))
            .count()
    };
    let looks_queued = queued("L");
    assert!(
        looks_queued * 10 <= lookalikes.len(),
        "{looks_queued} of {} absent lookalikes queued",
        lookalikes.len()
    );
    let model = &l.counts.model;
    assert!(
        model.lookalike > 0.3,
        "absent lookalikes are seen: tau {}",
        model.lookalike
    );
    assert!(!model.lookalike_parameters.is_empty());
    // Nothing absent is validated.
    assert!(l
        .rows
        .iter()
        .filter(|r| r.study_id.starts_with('L'))
        .all(|r| r.person_id.is_none()));
    for &i in &typos {
        let study = format!("T{i}");
        let first = l
            .rows
            .iter()
            .find(|r| r.study_id == study)
            .and_then(|r| r.person_id)
            .or_else(|| entry(&l, &study).candidates.first().map(|c| c.person_id));
        assert_eq!(first, Some(other(i).id), "{study}: the true person first");
    }
    let present_queued_or_linked = l
        .rows
        .iter()
        .filter(|r| r.study_id.starts_with('P'))
        .filter(|r| r.person_id.is_some() || r.outcome == Outcome::Queued)
        .count();
    assert_eq!(present_queued_or_linked, 1200);
}
