//! Unit and property tests for disclosure control.

use proptest::prelude::*;

use super::*;
use crate::aggregate::{Cell, CellLevel, CountTable};

#[test]
fn hes_masks_one_to_seven_and_rounds_the_rest() {
    let hes = Profile::hes();
    let cases = [
        (0, Protected::Count(0)),
        (1, Protected::Suppressed),
        (7, Protected::Suppressed),
        (8, Protected::Count(10)),
        (12, Protected::Count(10)),
        (13, Protected::Count(15)),
        (20, Protected::Count(20)),
    ];
    for (n, want) in cases {
        assert_eq!(hes.apply(n, CellLevel::Interior).0, want, "{n}");
        assert_eq!(hes.apply(n, CellLevel::Margin).0, want, "{n}");
    }
    assert_eq!(
        hes.apply(3, CellLevel::GrandTotal),
        (Protected::Count(3), Action::Exempt)
    );
    assert_eq!(
        hes.apply(123, CellLevel::GrandTotal).0,
        Protected::Count(123)
    );
}

#[test]
fn csds_suppresses_zero() {
    let csds = Profile::csds();
    assert_eq!(csds.apply(0, CellLevel::Interior).0, Protected::Suppressed);
    assert_eq!(csds.apply(4, CellLevel::Interior).0, Protected::Suppressed);
    assert_eq!(csds.apply(5, CellLevel::Interior).0, Protected::Count(5));
    assert_eq!(csds.apply(7, CellLevel::Interior).0, Protected::Count(5));
}

#[test]
fn the_released_frame_holds_no_true_values() {
    let table = CountTable {
        dims: vec!["region".into()],
        cells: vec![
            Cell {
                key: vec!["London".into()],
                count: 3,
                level: CellLevel::Interior,
            },
            Cell {
                key: vec!["North East".into()],
                count: 0,
                level: CellLevel::Interior,
            },
            Cell {
                key: vec!["Total".into()],
                count: 3,
                level: CellLevel::GrandTotal,
            },
        ],
    };
    let p = protect(&table, &Profile::hes());
    let df = p.to_frame("persons").unwrap();
    let values: Vec<_> = df
        .column("persons")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(
        values,
        ["*", "0", "3"],
        "a true zero stays distinguishable from *"
    );
    assert_eq!(p.counts.primary, 1);
}

proptest! {
    /// No released count lies in the mask range, and every released count is
    /// on the rounding base, except exempt national totals.
    #[test]
    fn released_counts_are_safe(counts in proptest::collection::vec(0u64..200, 1..60), low in 0u64..3, width in 0u64..10, base in 1u64..11) {
        let profile = Profile { name: "custom".into(), mask_low: low, mask_high: low + width, round_to: base, exempt_national: true };
        let mut cells: Vec<Cell> = counts.iter().enumerate().map(|(i, &n)| Cell { key: vec![i.to_string()], count: n, level: CellLevel::Interior }).collect();
        cells.push(Cell { key: vec!["Total".into()], count: counts.iter().sum(), level: CellLevel::GrandTotal });
        let p = protect(&CountTable { dims: vec!["d".into()], cells }, &profile);
        for c in &p.cells {
            match (c.value, c.level) {
                (Protected::Count(n), CellLevel::GrandTotal) => prop_assert_eq!(n, c.original),
                (Protected::Count(n), _) => {
                    prop_assert!(n % base == 0, "{} not on base {}", n, base);
                    prop_assert!(!(low..=low + width).contains(&c.original), "a masked true count was released");
                }
                (Protected::Suppressed, _) => prop_assert!((low..=low + width).contains(&c.original)),
            }
        }
    }
}
