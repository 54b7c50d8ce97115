//! Unit tests for objection removal.

use polars::prelude::*;

use super::*;

fn linked() -> Linked {
    Linked {
        persons: df!(
            "study_id" => ["S1", "S2", "S3", "S4"],
            "person_id" => [1i64, 2, 3, 4],
            "nhs_number" => ["9434765919", "4010232137", "6952435788", "5990128088"],
        )
        .unwrap(),
    }
}

fn register() -> LazyFrame {
    df!(
        "nhs_number" => ["4010232137", "6952435788", "6952435788", "1111111111"],
        "objection_type" => ["type1", "ndoo", "type1", "ndoo"],
    )
    .unwrap()
    .lazy()
}

#[test]
fn removes_only_applied_types() {
    let r = remove_objectors(&linked(), register(), &[ObjectionType::Ndoo]).unwrap();
    let ids: Vec<_> = r
        .persons
        .column("study_id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert!(!ids.contains(&"S3"));
    assert!(ids.contains(&"S2"), "type 1 not applied");
    assert_eq!(
        r.counts,
        ObjectionCounts {
            linked: 4,
            type1: 2,
            ndoo: 1,
            removed: 1,
            released: 3
        }
    );
}

#[test]
fn removes_both_types() {
    let r = remove_objectors(
        &linked(),
        register(),
        &[ObjectionType::Type1, ObjectionType::Ndoo],
    )
    .unwrap();
    let mut ids: Vec<_> = r
        .persons
        .column("study_id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    ids.sort();
    assert_eq!(ids, ["S1", "S4"]);
    assert_eq!(r.counts.removed, 2);
}
