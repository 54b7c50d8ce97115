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
        period: None,
        incremental: false,
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

#[test]
fn three_dimensions_with_totals_have_every_margin() {
    let frame = df!(
        "region" => ["A", "A", "B", "B", "B"],
        "sex" => ["1", "2", "1", "1", "2"],
        "age" => ["0-9", "0-9", "10-19", "0-9", "10-19"],
    )
    .unwrap()
    .lazy();
    let dims: Vec<String> = ["region", "sex", "age"].map(String::from).to_vec();
    let t = count_frame(frame, &dims, &Unit::Records, true, "three").unwrap();
    // 2x2x2 interior, three 2x2 margins, three one-way margins, the total.
    assert_eq!(t.cells.len(), 8 + 3 * 4 + 3 * 2 + 1);
    let get = |k: [&str; 3]| t.cells.iter().find(|c| c.key == k).unwrap();
    assert_eq!(get(["B", "Total", "Total"]).count, 3);
    assert_eq!(get(["B", "Total", "Total"]).level, CellLevel::Margin);
    assert_eq!(get(["Total", "1", "0-9"]).count, 2);
    assert_eq!(get(["A", "1", "10-19"]).count, 0, "a true zero in the grid");
    assert_eq!(get(["Total", "Total", "Total"]).count, 5);
    assert_eq!(
        get(["Total", "Total", "Total"]).level,
        CellLevel::GrandTotal
    );
}

#[test]
fn a_count_table_keeps_its_given_margins_and_fills_its_grid() {
    let dims: Vec<String> = vec!["region".into(), "sex".into()];
    let mut rows = std::collections::HashMap::new();
    rows.insert(vec!["A".to_string(), "1".to_string()], 4u64);
    rows.insert(vec!["B".to_string(), "2".to_string()], 6);
    // People, not additive: the given grand total is kept, not re-summed.
    rows.insert(vec!["Total".to_string(), "Total".to_string()], 9);
    let t = from_counts(&dims, rows, true, "given").unwrap();
    let get = |k: [&str; 2]| t.cells.iter().find(|c| c.key == k).unwrap().count;
    assert_eq!(get(["A", "2"]), 0);
    assert_eq!(get(["Total", "Total"]), 9);
    assert_eq!(get(["A", "Total"]), 4);
    assert_eq!(t.cells.len(), 4 + 2 + 2 + 1);
}

#[test]
fn percent_of_must_name_a_dimension_and_needs_totals() {
    let key = PseudonymKey::from_bytes(&[0; 32]);
    let mut s = spec(CountKind::Records, true);
    s.percent_of = Some(config::OneOrMany::One("sex".into()));
    let t = count(&s, &released(), episodes(), "person_id", &key).unwrap();
    assert_eq!(t.percent_of, ["sex"]);
    assert_eq!(t.universe, "hes_apc/records");
    s.percent_of = Some(config::OneOrMany::One("ethnicity".into()));
    let err = count(&s, &released(), episodes(), "person_id", &key)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ethnicity") && err.contains("not in the table"),
        "{err}"
    );
    s.percent_of = Some(config::OneOrMany::One("sex".into()));
    s.totals = false;
    let err = count(&s, &released(), episodes(), "person_id", &key)
        .unwrap_err()
        .to_string();
    assert!(err.contains("totals = true"), "{err}");
}

/// Issue #12: a real value `Total` used to merge with the margin label.
#[test]
fn issue_12_a_real_value_that_reads_as_the_margin_label_is_refused() {
    for real in ["Total", "TOTAL", " total "] {
        let frame = df!("region" => ["A", real, "A"], "sex" => ["1", "2", "2"])
            .unwrap()
            .lazy();
        let dims: Vec<String> = vec!["region".into(), "sex".into()];
        let err = count_frame(frame, &dims, &Unit::Records, true, "t").unwrap_err();
        assert!(
            matches!(&err, AggregateError::ReservedLabel { dimension, .. } if dimension == "region"),
            "{real}: {err}"
        );
    }
    // In a count table `Total` exactly is a margin row; `TOTAL` is not.
    let dims: Vec<String> = vec!["region".into()];
    let mut rows = std::collections::HashMap::new();
    rows.insert(vec!["A".to_string()], 4u64);
    rows.insert(vec!["TOTAL".to_string()], 4u64);
    let err = from_counts(&dims, rows, true, "given").unwrap_err();
    assert!(matches!(err, AggregateError::ReservedLabel { .. }), "{err}");
}

/// Issue #12: counts whose sum overflowed used to panic.
#[test]
fn issue_12_counts_that_overflow_are_an_error_not_a_panic() {
    let dims: Vec<String> = vec!["region".into()];
    let mut rows = std::collections::HashMap::new();
    rows.insert(vec!["A".to_string()], MAX_COUNT);
    rows.insert(vec!["B".to_string()], MAX_COUNT);
    let err = from_counts(&dims, rows, true, "big").unwrap_err();
    assert!(
        matches!(
            err,
            AggregateError::CountOverflow {
                level: "grand total",
                ..
            }
        ),
        "{err}"
    );
    let mut rows = std::collections::HashMap::new();
    rows.insert(vec!["A".to_string()], u64::MAX);
    let err = from_counts(&dims, rows, false, "big").unwrap_err();
    assert!(matches!(err, AggregateError::CountOverflow { .. }), "{err}");
}

/// Issue #12: a dimension holding identifiers would label cells with them.
#[test]
fn issue_12_a_dimension_holding_postcodes_or_nhs_numbers_is_refused() {
    let key = PseudonymKey::from_bytes(&[0; 32]);
    let data = df!(
        "person_id" => [1i64, 2, 3],
        "area" => ["LS1 4AP", "M1 1AE", "EC1A 1BB"],
        "ref" => ["9434765919", "4010232137", "4505577104"],
        "region" => ["London", "London", "North"],
    )
    .unwrap();
    for column in ["area", "ref"] {
        let mut s = spec(CountKind::Persons, true);
        s.group_by = vec![column.into(), "region".into()];
        let err = count(&s, &released(), data.clone().lazy(), "person_id", &key).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, AggregateError::DirectIdentifier { field, .. } if field == column),
            "{text}"
        );
        assert!(
            !text.contains("LS1") && !text.contains("9434765919"),
            "{text}"
        );
    }
}

/// Issue #12 (13): look-alikes of the margin label passed as real values
/// (a Cyrillic `Т`, a zero-width space, full-width letters, a digit 1 for
/// the l, a BOM); names that merely start like it do not.
#[test]
fn issue_12_total_look_alikes_are_reserved() {
    for v in [
        "Total",
        "total",
        "TOTAL",
        " Total",
        "\u{0422}otal",
        "\u{03A4}otal",
        "T\u{200B}otal",
        "\u{FEFF}Total",
        "Tot\u{202E}al",
        "\u{FF34}\u{FF4F}\u{FF54}\u{FF41}\u{FF4C}",
        "Tota1",
        "TOTAl",
        "T o t a l",
    ] {
        assert!(is_reserved_label(v), "{v:?} reads as the margin label");
    }
    for v in [
        "Totals", "Totnes", "London", "Tota", "Unknown", "", "T0tal?",
    ] {
        assert!(!is_reserved_label(v), "{v:?} is a real value");
    }
    let frame = df!("region" => ["A", "\u{0422}otal"], "sex" => ["1", "2"])
        .unwrap()
        .lazy();
    let dims: Vec<String> = vec!["region".into(), "sex".into()];
    let err = count_frame(frame, &dims, &Unit::Records, true, "t").unwrap_err();
    assert!(
        matches!(&err, AggregateError::ReservedLabel { dimension, .. } if dimension == "region"),
        "{err}"
    );
}

/// Issue #12 (13): a count table whose margin contradicts its cells is an
/// input error naming the row and the dimension summed over.
#[test]
fn issue_12_a_margin_that_contradicts_its_cells_is_an_input_error() {
    let dims: Vec<String> = vec!["region".into(), "sex".into()];
    let key = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
    for (margin, problem) in [
        (20u64, "smaller than one of"),
        (50, "larger than the sum of"),
    ] {
        let mut rows = std::collections::HashMap::new();
        rows.insert(key("A", "1"), 12u64);
        rows.insert(key("A", "2"), 30);
        rows.insert(key("A", "Total"), margin);
        let mut row_of = std::collections::HashMap::new();
        row_of.insert(key("A", "Total"), 3usize);
        let err = from_count_rows(&dims, rows, &row_of, true, "given").unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, AggregateError::InconsistentMargin { dimension, row: Some(3), .. } if dimension == "sex"),
            "{text}"
        );
        assert!(text.contains(problem) && text.contains("row 3"), "{text}");
        assert!(!text.contains("bug"), "{text}");
    }
    // People: a margin between the largest cell and the sum is fine.
    let mut rows = std::collections::HashMap::new();
    rows.insert(key("A", "1"), 12u64);
    rows.insert(key("A", "2"), 30);
    rows.insert(key("A", "Total"), 35);
    assert!(from_counts(&dims, rows, true, "given").is_ok());
}

#[test]
fn issue_11_persons_by_native_values_match_a_count_made_by_hand() {
    // Dates under a transform, whole numbers, and missing values: the
    // distinct rows are found before the values become labels, and each
    // cell must still be the number of distinct persons a reader of the
    // rows would count.
    let n = 5000usize;
    let person: Vec<i64> = (0..n as i64).map(|i| (i * 37) % 900).collect();
    let day: Vec<Option<chrono::NaiveDate>> = (0..n)
        .map(|i| {
            (i % 17 != 0).then(|| {
                chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()
                    + chrono::Duration::days(((i * 13) % 700) as i64)
            })
        })
        .collect();
    let age: Vec<Option<i64>> = (0..n)
        .map(|i| (i % 11 != 0).then_some(((i * 7) % 90) as i64))
        .collect();
    let data =
        df!("person_id" => person.clone(), "admission_date" => day.clone(), "age" => age.clone())
            .unwrap();
    let cohort: Vec<i64> = (0..900i64).filter(|p| p % 3 != 0).collect();
    let study: Vec<String> = cohort.iter().map(|p| format!("S{p}")).collect();
    let released =
        Released::for_tests(df!("study_id" => study, "person_id" => cohort.clone()).unwrap());
    let mut s = spec(CountKind::Persons, true);
    s.group_by = vec!["admission_date:year".into(), "age:band10".into()];
    let key = PseudonymKey::from_bytes(&[0; 32]);
    let t = count(&s, &released, data.lazy(), "person_id", &key).unwrap();
    // By hand.
    let mut by_hand: std::collections::HashMap<Vec<String>, std::collections::BTreeSet<i64>> =
        Default::default();
    for i in 0..n {
        if !cohort.contains(&person[i]) {
            continue;
        }
        let y = day[i].map_or(UNKNOWN.to_string(), |d| {
            chrono::Datelike::year(&d).to_string()
        });
        let b = age[i].map_or(UNKNOWN.to_string(), |a| (a / 10 * 10).to_string());
        for key in [
            vec![y.clone(), b.clone()],
            vec![y.clone(), TOTAL.to_string()],
            vec![TOTAL.to_string(), b.clone()],
            vec![TOTAL.to_string(), TOTAL.to_string()],
        ] {
            by_hand.entry(key).or_default().insert(person[i]);
        }
    }
    let mut checked = 0;
    for c in &t.cells {
        let expected = by_hand.get(&c.key).map_or(0, |s| s.len() as u64);
        assert_eq!(c.count, expected, "{:?}", c.key);
        checked += 1;
    }
    assert!(checked > 20, "{checked}");
    assert!(by_hand.keys().all(|k| t.cells.iter().any(|c| &c.key == k)));
}
