//! Unit tests for aggregation: full grid, margins, persons vs records.

use polars::prelude::*;

use super::*;
use crate::objections::Released;

fn released() -> Released {
    Released::for_tests(df!("study_id" => ["S1", "S2", "S3"], "person_id" => [1i64, 2, 3]).unwrap())
}

fn episodes() -> LazyFrame {
    df!(
        "person_id" => [1i64, 1, 2, 3, 4],
        "region" => ["London", "North West", "London", "London", "London"],
        "sex" => ["1", "1", "2", "2", "1"],
    )
    .unwrap()
    .lazy()
}

fn spec(count: CountKind, totals: bool) -> AggregateOutput {
    AggregateOutput {
        name: "by_region".into(),
        dataset: "hes_apc".into(),
        group_by: vec!["region".into(), "sex".into()],
        count,
        totals,
        suppression: "hes".into(),
        format: crate::tables::FileFormat::Csv,
        percent_of: None,
    }
}

fn get(t: &CountTable, key: [&str; 2]) -> u64 {
    t.cells
        .iter()
        .find(|c| c.key == key)
        .map(|c| c.count)
        .unwrap()
}

#[test]
fn persons_with_margins_and_a_full_grid() {
    let key = PseudonymKey::from_bytes(&[0; 32]);
    let t = count(
        &spec(CountKind::Persons, true),
        &released(),
        episodes(),
        "person_id",
        &key,
    )
    .unwrap();
    // Person 4 is not in the cohort.
    assert_eq!(get(&t, ["London", "1"]), 1);
    assert_eq!(get(&t, ["London", "2"]), 2);
    assert_eq!(
        get(&t, ["North West", "2"]),
        0,
        "a true zero is in the grid"
    );
    // Person 1 is in two regions: the sex margin counts them once.
    assert_eq!(get(&t, ["Total", "1"]), 1);
    assert_eq!(get(&t, ["London", "Total"]), 3);
    assert_eq!(get(&t, ["Total", "Total"]), 3);
    assert_eq!(
        t.cells
            .iter()
            .filter(|c| c.level == CellLevel::GrandTotal)
            .count(),
        1
    );
    assert_eq!(t.cells.len(), 4 + 2 + 2 + 1);
}

#[test]
fn records_count_episodes() {
    let key = PseudonymKey::from_bytes(&[0; 32]);
    let t = count(
        &spec(CountKind::Records, false),
        &released(),
        episodes(),
        "person_id",
        &key,
    )
    .unwrap();
    assert_eq!(get(&t, ["London", "1"]), 1);
    assert_eq!(t.cells.len(), 4, "no margins without totals");
}

#[test]
fn an_unknown_group_by_column_is_named() {
    let key = PseudonymKey::from_bytes(&[0; 32]);
    let mut s = spec(CountKind::Persons, false);
    s.group_by = vec!["regoin".into()];
    let err = count(&s, &released(), episodes(), "person_id", &key)
        .unwrap_err()
        .to_string();
    assert!(err.contains("regoin") && err.contains("region"), "{err}");
}
