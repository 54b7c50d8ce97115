//! Unit tests for objection removal: applied types, the register read as
//! real registers are written, bad registers refused, and a property test
//! that no objector is ever released.

use std::collections::BTreeSet;

use polars::prelude::*;
use proptest::prelude::*;

use super::*;
use crate::domain::NhsNumber;

fn linked() -> Linked {
    Linked {
        persons: df!(
            "study_id" => ["S1", "S2", "S3", "S4"],
            "person_id" => [1i64, 2, 3, 4],
            "nhs_number" => ["9434765919", "4010232137", "6952435786", "5990128088"],
        )
        .unwrap(),
    }
}

fn register() -> LazyFrame {
    df!(
        "nhs_number" => ["4010232137", "6952435786", "6952435786", "4505577104"],
        "objection_type" => ["type1", "ndoo", "type1", "ndoo"],
    )
    .unwrap()
    .lazy()
}

fn study_ids(r: &Released) -> Vec<String> {
    let mut ids: Vec<String> = r
        .persons
        .column("study_id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .map(String::from)
        .collect();
    ids.sort();
    ids
}

#[test]
fn removes_only_applied_types() {
    let r = remove_objectors(
        &linked(),
        register(),
        std::path::Path::new("objections.parquet"),
        &[ObjectionType::Ndoo],
    )
    .unwrap();
    let ids = study_ids(&r);
    assert!(!ids.contains(&"S3".to_string()));
    assert!(ids.contains(&"S2".to_string()), "type 1 not applied");
    assert_eq!(
        r.counts,
        ObjectionCounts {
            register_rows: 4,
            linked: 4,
            matched: 2,
            matched_not_in_cohort: None,
            matched_not_applied: 1,
            type1: 2,
            ndoo: 1,
            removed: 1,
            withheld_no_nhs_number: 0,
            released: 3
        }
    );
}

#[test]
fn removes_both_types() {
    let r = remove_objectors(
        &linked(),
        register(),
        std::path::Path::new("objections.parquet"),
        &[ObjectionType::Type1, ObjectionType::Ndoo],
    )
    .unwrap();
    assert_eq!(study_ids(&r), ["S1", "S4"]);
    assert_eq!(r.counts.removed, 2);
}

/// Issue #12: a register that writes its types `TYPE1`/`NDOO`, with a
/// trailing space or as `Type 1`, and its NHS numbers with spaces or
/// hyphens, used to remove nobody and say nothing.
#[test]
fn issue_12_register_spellings_and_spaced_numbers_still_remove_objectors() {
    let register = df!(
        "nhs_number" => ["401 023 2137", "695-243-5786", " 5990128088 "],
        "objection_type" => ["TYPE1", "Type 1 ", "NDOO"],
    )
    .unwrap()
    .lazy();
    let r = remove_objectors(
        &linked(),
        register,
        std::path::Path::new("objections.parquet"),
        &[ObjectionType::Type1, ObjectionType::Ndoo],
    )
    .unwrap();
    assert_eq!(study_ids(&r), ["S1"]);
    assert_eq!(r.counts.removed, 3);
    assert_eq!(r.counts.register_rows, 3);
}

#[test]
fn issue_12_index_numbers_with_spaces_are_matched_too() {
    let linked = Linked {
        persons: df!(
            "study_id" => ["S1", "S2"],
            "person_id" => [1i64, 2],
            "nhs_number" => ["943 476 5919", "401-023-2137"],
        )
        .unwrap(),
    };
    let r = remove_objectors(
        &linked,
        register(),
        std::path::Path::new("objections.parquet"),
        &[ObjectionType::Type1],
    )
    .unwrap();
    assert_eq!(study_ids(&r), ["S1"]);
}

#[test]
fn issue_12_a_bad_number_or_type_stops_the_run_naming_row_and_column_never_the_value() {
    let register = df!(
        "nhs_number" => [Some("4010232137"), Some("4010232138"), None, Some("12345")],
        "Objection Type" => [Some("type1"), Some("ndoo"), Some("ndoo"), Some("type 2")],
    )
    .unwrap()
    .lazy();
    let err = remove_objectors(
        &linked(),
        register,
        std::path::Path::new("objections.parquet"),
        &[ObjectionType::Type1],
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ObjectionsError::Rows { total: 4, .. }),
        "{text}"
    );
    assert!(
        text.contains("row 2, column `nhs_number`: fails the modulus 11"),
        "{text}"
    );
    assert!(
        text.contains("row 3, column `nhs_number`: is empty"),
        "{text}"
    );
    assert!(
        text.contains("row 4, column `nhs_number`: is not 10 digits"),
        "{text}"
    );
    assert!(
        text.contains("row 4, column `Objection Type`: is not a known objection type"),
        "{text}"
    );
    for value in ["4010232138", "12345", "type 2"] {
        assert!(!text.contains(value), "the value {value} leaked: {text}");
    }
}

#[test]
fn issue_12_missing_or_unusable_columns_are_refused() {
    let no_type = df!("nhs_number" => ["4010232137"]).unwrap().lazy();
    let err = remove_objectors(
        &linked(),
        no_type,
        std::path::Path::new("objections.parquet"),
        &[ObjectionType::Type1],
    )
    .unwrap_err();
    assert!(
        matches!(&err, ObjectionsError::Columns { problem, .. } if problem.contains("no `objection_type` column")),
        "{err}"
    );
    let float = df!("nhs_number" => [4010232137.0f64], "objection_type" => ["type1"])
        .unwrap()
        .lazy();
    let err = remove_objectors(
        &linked(),
        float,
        std::path::Path::new("objections.parquet"),
        &[ObjectionType::Type1],
    )
    .unwrap_err();
    assert!(err.to_string().contains("must be text"), "{err}");
    let twice = df!("nhs_number" => ["4010232137"], "NHS No" => ["4010232137"], "objection_type" => ["type1"])
        .unwrap()
        .lazy();
    let err = remove_objectors(
        &linked(),
        twice,
        std::path::Path::new("objections.parquet"),
        &[ObjectionType::Type1],
    )
    .unwrap_err();
    assert!(err.to_string().contains("keep one"), "{err}");
}

#[test]
fn whole_number_columns_are_read_as_nhs_numbers() {
    let register = df!("NHS Number" => [4010232137i64], "type" => ["ndoo"])
        .unwrap()
        .lazy();
    let r = remove_objectors(
        &linked(),
        register,
        std::path::Path::new("objections.parquet"),
        &[ObjectionType::Ndoo],
    )
    .unwrap();
    assert_eq!(study_ids(&r), ["S1", "S3", "S4"]);
}

#[test]
fn a_linked_person_without_a_valid_index_number_is_withheld() {
    let linked = Linked {
        persons: df!(
            "study_id" => ["S1", "S2"],
            "person_id" => [1i64, 2],
            "nhs_number" => [Some("9434765919"), None],
        )
        .unwrap(),
    };
    let r = remove_objectors(
        &linked,
        register(),
        std::path::Path::new("objections.parquet"),
        &[ObjectionType::Type1],
    )
    .unwrap();
    assert_eq!(study_ids(&r), ["S1"]);
    assert_eq!(r.counts.withheld_no_nhs_number, 1);
    assert_eq!(r.counts.released, 1);
}

#[test]
fn objections_found_only_through_the_index_are_counted() {
    let linked = Linked {
        persons: df!(
            "study_id" => ["S1", "S2", "S3"],
            "person_id" => [1i64, 2, 3],
            "nhs_number" => ["9434765919", "4010232137", "6952435786"],
            // S2's cohort row had no NHS number, S3's had its own.
            "cohort_nhs_number" => [Some("9434765919"), None, Some("6952435786")],
            "date_of_birth" => [chrono::NaiveDate::from_ymd_opt(1980, 1, 2); 3],
        )
        .unwrap(),
    };
    let r = remove_objectors(
        &linked,
        register(),
        std::path::Path::new("objections.parquet"),
        &[ObjectionType::Type1],
    )
    .unwrap();
    assert_eq!(r.counts.matched, 2);
    assert_eq!(r.counts.matched_not_in_cohort, Some(1));
    assert_eq!(
        r.persons.get_column_names_owned(),
        ["study_id", "person_id", "date_of_birth"],
        "the index's date of birth goes on to minimisation"
    );
}

#[test]
fn objection_types_in_every_spelling() {
    for raw in [
        "type1",
        "TYPE1",
        "Type 1",
        "type_1 ",
        " Type-1",
        "type1 opt-out",
    ] {
        assert_eq!(
            parse_objection_type(raw),
            Some(ObjectionType::Type1),
            "{raw}"
        );
    }
    for raw in ["ndoo", "NDOO", "N D O O", "National Data Opt-Out", "NDOP"] {
        assert_eq!(
            parse_objection_type(raw),
            Some(ObjectionType::Ndoo),
            "{raw}"
        );
    }
    for raw in ["", "type2", "type 12", "opt out", "1"] {
        assert_eq!(parse_objection_type(raw), None, "{raw}");
    }
}

/// How a register might write a number: digits, spaced, hyphenated,
/// padded.
fn written_nhs(n: &str, style: u8) -> String {
    match style % 4 {
        0 => n.to_string(),
        1 => format!("{} {} {}", &n[..3], &n[3..6], &n[6..]),
        2 => format!("{}-{}-{}", &n[..3], &n[3..6], &n[6..]),
        _ => format!("  {n} "),
    }
}

/// How registers have been seen to write the two types (issue #12).
const TYPE1_SPELLINGS: [&str; 7] = [
    "type1", "TYPE1", "Type 1", "type 1 ", " Type1", "TYPE_1", "type-1",
];
const NDOO_SPELLINGS: [&str; 5] = ["ndoo", "NDOO", "Ndoo ", "nDoO", " ndoo"];

prop_compose! {
    /// Distinct valid NHS numbers.
    fn nhs_numbers(max: usize)(seeds in proptest::collection::vec(proptest::array::uniform9(0u8..10), 1..max)) -> Vec<String> {
        let set: BTreeSet<String> = seeds
            .into_iter()
            .filter_map(NhsNumber::complete)
            .map(|n| n.as_string())
            .collect();
        set.into_iter().collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, rng_seed: proptest::test_runner::RngSeed::Fixed(12), ..ProptestConfig::default() })]

    /// Whatever the register's spelling and layout, and whoever is in the
    /// cohort, no person with an objection of an applied type is released,
    /// and nobody else is removed.
    #[test]
    fn no_objector_is_ever_released(
        people in nhs_numbers(40),
        objections in proptest::collection::vec((0u8..4, 0u8..8, 0u8..8, 0u8..4), 40),
        in_cohort in proptest::collection::vec(any::<bool>(), 40),
        index_style in proptest::collection::vec(0u8..4, 40),
        apply_type1 in any::<bool>(),
        apply_ndoo in any::<bool>(),
        integer_column in any::<bool>(),
        header in 0usize..3,
    ) {
        // objection kind per person: 0 none, 1 type 1, 2 ndoo, 3 both.
        let mut nhs_col = Vec::new();
        let mut type_col = Vec::new();
        let mut objects: Vec<(bool, bool)> = Vec::new();
        for (i, n) in people.iter().enumerate() {
            let (kind, t1, t2, style) = objections[i];
            let (has1, has2) = (kind & 1 == 1, kind & 2 == 2);
            objects.push((has1, has2));
            let style = if integer_column { 0 } else { style };
            if has1 {
                nhs_col.push(written_nhs(n, style));
                type_col.push(TYPE1_SPELLINGS[t1 as usize % TYPE1_SPELLINGS.len()].to_string());
            }
            if has2 {
                nhs_col.push(written_nhs(n, if integer_column { 0 } else { style + 1 }));
                type_col.push(NDOO_SPELLINGS[t2 as usize % NDOO_SPELLINGS.len()].to_string());
            }
        }
        let (nhs_name, type_name) = [("nhs_number", "objection_type"), ("NHS Number", "Objection Type"), ("nhs_no", "type")][header];
        let nhs_series = if integer_column && !nhs_col.is_empty() {
            let v: Vec<i64> = nhs_col.iter().map(|s| s.trim().parse().unwrap()).collect();
            Column::new(nhs_name.into(), v)
        } else {
            Column::new(nhs_name.into(), nhs_col.clone())
        };
        let register = DataFrame::new_infer_height(vec![nhs_series, Column::new(type_name.into(), type_col)]).unwrap();

        let mut study = Vec::new();
        let mut pid = Vec::new();
        let mut index_nhs = Vec::new();
        let mut want_released = BTreeSet::new();
        let mut apply = Vec::new();
        if apply_type1 { apply.push(ObjectionType::Type1); }
        if apply_ndoo { apply.push(ObjectionType::Ndoo); }
        for (i, n) in people.iter().enumerate() {
            if !in_cohort[i] { continue; }
            let id = format!("S{i}");
            study.push(id.clone());
            pid.push(i as i64);
            index_nhs.push(written_nhs(n, index_style[i]));
            let (has1, has2) = objects[i];
            if !((has1 && apply_type1) || (has2 && apply_ndoo)) {
                want_released.insert(id);
            }
        }
        let linked = Linked {
            persons: df!("study_id" => study, "person_id" => pid, "nhs_number" => index_nhs).unwrap(),
        };
        let result = remove_objectors(&linked, register.clone().lazy(), std::path::Path::new("objections.parquet"), &apply);
        // A register with no rows is refused, never applied as "nobody
        // objects" (issue #12).
        if register.height() == 0 {
            let refused = matches!(result, Err(ObjectionsError::Empty { .. }));
            prop_assert!(refused, "an empty register was applied");
            return Ok(());
        }
        let r = result.unwrap();
        let got: BTreeSet<String> = study_ids(&r).into_iter().collect();
        prop_assert_eq!(&got, &want_released);
        prop_assert_eq!(r.counts.register_rows, nhs_col.len());
        prop_assert_eq!(r.counts.released + r.counts.removed, linked.persons.height());
    }
}
