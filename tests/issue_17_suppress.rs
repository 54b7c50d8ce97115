//! Issue #17: disclosure control that holds against a reader who solves in
//! whole numbers.
//!
//! Each test runs the real `dars suppress` on a count table and then looks
//! at what it published with its own eyes: an exhaustive search over every
//! whole-number table consistent with the published counts and the
//! published rule (written here, not calling dars's solver), and, for
//! larger tables, an integer programme solved by HiGHS
//! (`tests/highs_audit.py`, highspy). A released table must pin no `*`
//! and no rounded count below the national total; a refused table (exit 9)
//! must be refused on the merits: the search pins something in what it
//! would have published.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;

mod common;

use common::{read_csv, stderr};

const TOTAL: &str = "Total";

/// What a reader is told about a rule (the README's presets).
#[derive(Debug, Clone, Copy)]
struct Rule {
    /// Masked counts, inclusive.
    mask: (u64, u64),
    round_to: u64,
    zeros_suppressed: bool,
    exempt_national: bool,
    secondary: bool,
    decimals: u32,
}

const HES: Rule = Rule {
    mask: (1, 7),
    round_to: 5,
    zeros_suppressed: false,
    exempt_national: true,
    secondary: false,
    decimals: 1,
};

const CSDS: Rule = Rule {
    mask: (0, 4),
    round_to: 5,
    zeros_suppressed: true,
    exempt_national: true,
    secondary: false,
    decimals: 0,
};

impl Rule {
    fn masks(&self, v: u64) -> bool {
        if v == 0 {
            self.zeros_suppressed
        } else {
            (self.mask.0..=self.mask.1).contains(&v)
        }
    }

    /// The true counts a published value can stand for (a hull; `None`
    /// above: unbounded).
    fn domain(&self, text: &str, grand: bool) -> (u64, Option<u64>) {
        if text == "*" {
            let masked: Vec<u64> = (0..=self.mask.1).filter(|&v| self.masks(v)).collect();
            let (low, high) = (masked[0], *masked.last().unwrap());
            return if self.secondary {
                (low.min(1), None)
            } else {
                (low, Some(high))
            };
        }
        let r: u64 = text.parse().unwrap();
        if (grand && self.exempt_national) || self.round_to == 1 || r == 0 {
            return (r, Some(r));
        }
        // The nearest multiple of the base, halves up; a masked count is
        // never published, whatever it rounds to.
        let b = self.round_to;
        let values: Vec<u64> = (r.saturating_sub(b / 2)..=r + b / 2)
            .filter(|&v| v > 0 && !self.masks(v))
            .collect();
        (values[0], Some(*values.last().unwrap()))
    }

    /// The published percentage of published counts (the README's rule).
    fn percent(&self, n: &str, d: &str) -> String {
        if n == "*" || d == "*" {
            return "*".into();
        }
        let (n, d): (u128, u128) = (n.parse().unwrap(), d.parse().unwrap());
        if d == 0 {
            return String::new();
        }
        let unit = 10u128.pow(self.decimals);
        let scaled = (2 * n * 100 * unit + d) / (2 * d);
        if self.decimals == 0 {
            scaled.to_string()
        } else {
            format!(
                "{}.{:0w$}",
                scaled / unit,
                scaled % unit,
                w = self.decimals as usize
            )
        }
    }
}

/// A table as published: one key per row, the count as text, the
/// percentage as text (empty where none).
#[derive(Debug, Clone)]
struct Published {
    dims: Vec<String>,
    keys: Vec<Vec<String>>,
    counts: Vec<String>,
    percents: Vec<String>,
}

impl Published {
    fn grand(&self, i: usize) -> bool {
        self.keys[i].iter().all(|v| v == TOTAL)
    }

    fn to_csv(&self) -> String {
        let mut s = self.dims.join(",") + ",count\n";
        for (k, c) in self.keys.iter().zip(&self.counts) {
            s.push_str(&format!("{},{c}\n", k.join(",")));
        }
        s
    }
}

/// What `dars suppress` did: the published table, or (exit 9) what it
/// would have published, read back from its report.
#[derive(Debug)]
struct Outcome {
    released: bool,
    table: Published,
    /// Key → (interval as in the report, interval kind).
    intervals: HashMap<Vec<String>, (String, String)>,
}

fn dars_suppress(dir: &Path, counts: &str, args: &[&str]) -> Outcome {
    let input = dir.join("counts.csv");
    std::fs::write(&input, counts).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dars"))
        .current_dir(dir)
        .env("DARS_LOG", "warn")
        .arg("suppress")
        .arg(&input)
        .args(args)
        .args(["--totals", "--out", "published.csv"])
        .output()
        .unwrap();
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(9),
        "dars suppress: exit {code:?}\n{}",
        stderr(&out)
    );
    let (header, rows) = read_csv(&dir.join("published.report.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let level = col("level");
    let dims: Vec<String> = header[..level].to_vec();
    let rows: Vec<&Vec<String>> = rows.iter().filter(|r| r[level] != "summary").collect();
    let mut intervals = HashMap::new();
    for r in &rows {
        if !r[col("interval_internal")].is_empty() {
            intervals.insert(
                r[..level].to_vec(),
                (
                    r[col("interval_internal")].clone(),
                    r[col("interval_kind")].clone(),
                ),
            );
        }
    }
    let from_report = Published {
        dims: dims.clone(),
        keys: rows.iter().map(|r| r[..level].to_vec()).collect(),
        counts: rows.iter().map(|r| r[col("released")].clone()).collect(),
        percents: rows
            .iter()
            .map(|r| r[col("percent_released")].clone())
            .collect(),
    };
    if code == Some(9) {
        assert!(
            stderr(&out).contains("a reader can narrow"),
            "{}",
            stderr(&out)
        );
        assert!(!dir.join("published.csv").exists(), "nothing is published");
        return Outcome {
            released: false,
            table: from_report,
            intervals,
        };
    }
    let (header, rows) = read_csv(&dir.join("published.csv"));
    let count = header.iter().position(|h| h == "count").unwrap();
    assert_eq!(header[..count], dims[..]);
    let percent = header.iter().position(|h| h == "percent");
    let table = Published {
        dims,
        keys: rows.iter().map(|r| r[..count].to_vec()).collect(),
        counts: rows.iter().map(|r| r[count].clone()).collect(),
        percents: rows
            .iter()
            .map(|r| percent.map(|p| r[p].clone()).unwrap_or_default())
            .collect(),
    };
    assert_eq!(
        table.counts, from_report.counts,
        "the report says what was published"
    );
    Outcome {
        released: true,
        table,
        intervals,
    }
}

/// Every published percentage is the rule applied to published counts:
/// it tells a reader nothing the counts do not.
fn assert_percentages_follow_from_the_counts(t: &Published, rule: &Rule, percent_of: &[&str]) {
    let index: HashMap<&Vec<String>, usize> =
        t.keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
    for (i, key) in t.keys.iter().enumerate() {
        let mut den = key.clone();
        for d in percent_of {
            let j = t.dims.iter().position(|x| x == d).unwrap();
            den[j] = TOTAL.into();
        }
        let want = if &den == key {
            String::new()
        } else {
            rule.percent(&t.counts[i], &t.counts[index[&den]])
        };
        assert_eq!(t.percents[i], want, "percentage of {key:?} in {t:?}");
    }
}

/// For each cell, every value it takes in a whole-number table consistent
/// with what is published: an exhaustive search over the interior cells.
fn consistent_values(t: &Published, rule: &Rule) -> Vec<BTreeSet<u64>> {
    let domains: Vec<(u64, Option<u64>)> = (0..t.keys.len())
        .map(|i| rule.domain(&t.counts[i], t.grand(i)))
        .collect();
    let interior: Vec<usize> = (0..t.keys.len())
        .filter(|&i| !t.keys[i].iter().any(|v| v == TOTAL))
        .collect();
    let margins: Vec<(usize, Vec<usize>)> = (0..t.keys.len())
        .filter(|&i| t.keys[i].iter().any(|v| v == TOTAL))
        .map(|i| {
            let parts = interior
                .iter()
                .copied()
                .filter(|&j| {
                    t.keys[i]
                        .iter()
                        .zip(&t.keys[j])
                        .all(|(m, v)| m == TOTAL || m == v)
                })
                .collect::<Vec<usize>>();
            (i, parts)
        })
        .collect();
    // An unbounded `*` (secondary suppression) is bounded by any margin
    // over it that is bounded.
    let cap: Vec<u64> = interior
        .iter()
        .map(|&j| {
            let own = domains[j].1;
            let by_margin = margins
                .iter()
                .filter(|(_, parts)| parts.contains(&j))
                .filter_map(|(m, _)| domains[*m].1)
                .min();
            own.or(by_margin).expect("a bounded cell")
        })
        .collect();
    // Margin → the positions (in `interior`) of its parts.
    let margins: Vec<(usize, Vec<usize>)> = margins
        .into_iter()
        .map(|(m, parts)| {
            let at = parts
                .iter()
                .map(|p| interior.iter().position(|x| x == p).unwrap())
                .collect();
            (m, at)
        })
        .collect();
    let mut seen = vec![BTreeSet::new(); t.keys.len()];
    let mut value: Vec<u64> = interior.iter().map(|&j| domains[j].0).collect();
    let mut sums = vec![0u64; margins.len()];
    loop {
        let mut ok = true;
        for (s, (m, at)) in sums.iter_mut().zip(&margins) {
            *s = at.iter().map(|&k| value[k]).sum();
            ok &= *s >= domains[*m].0 && domains[*m].1.is_none_or(|h| *s <= h);
        }
        if ok {
            for (k, &j) in interior.iter().enumerate() {
                seen[j].insert(value[k]);
            }
            for (s, (m, _)) in sums.iter().zip(&margins) {
                seen[*m].insert(*s);
            }
        }
        // The next combination (an odometer).
        let mut k = 0;
        loop {
            if k == value.len() {
                return seen;
            }
            if value[k] < cap[k] {
                value[k] += 1;
                break;
            }
            value[k] = domains[interior[k]].0;
            k += 1;
        }
    }
}

/// The cells a whole-number reader pins exactly: a `*`, or a published
/// count that is neither a true zero shown as 0 nor the exempt national
/// total.
fn pinned(t: &Published, rule: &Rule) -> Vec<(Vec<String>, String, BTreeSet<u64>)> {
    let seen = consistent_values(t, rule);
    assert!(
        seen.iter().all(|s| !s.is_empty()),
        "the published table has no consistent whole-number table: {t:?}"
    );
    (0..t.keys.len())
        .filter(|&i| {
            let exempt = t.grand(i) && rule.exempt_national;
            !exempt && t.counts[i] != "0" && seen[i].len() < 2
        })
        .map(|i| (t.keys[i].clone(), t.counts[i].clone(), seen[i].clone()))
        .collect()
}

/// A released table pins nothing and says nothing beyond its counts; a
/// refused one would have pinned something. Returns whether released.
fn assert_protected_or_refused_on_the_merits(
    counts: &str,
    rule: &Rule,
    profile: &str,
    percent_of: &[&str],
) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--profile", profile];
    let joined = percent_of.join(",");
    if !percent_of.is_empty() {
        args.extend(["--percent-of", joined.as_str()]);
    }
    let outcome = dars_suppress(dir.path(), counts, &args);
    let t = &outcome.table;
    assert_percentages_follow_from_the_counts(t, rule, percent_of);
    let seen = consistent_values(t, rule);
    let pinned = pinned(t, rule);
    if outcome.released {
        assert!(
            pinned.is_empty(),
            "released, but a whole-number reader pins {pinned:?}\nin {t:?}"
        );
    } else {
        assert!(
            !pinned.is_empty(),
            "refused, but a whole-number reader pins nothing in {t:?}"
        );
    }
    // The report's whole-number intervals are the search's.
    for (i, key) in t.keys.iter().enumerate() {
        if t.counts[i] != "*" {
            continue;
        }
        let (text, kind) = &outcome.intervals[key];
        assert_eq!(
            kind, "whole-number",
            "a small table is audited in whole numbers"
        );
        let s = &seen[i];
        let want = format!("{}–{}", s.first().unwrap(), s.last().unwrap());
        assert_eq!(text, &want, "interval of {key:?} in {t:?}");
    }
    outcome.released
}

fn count_table(dims: &[&str], grid: &[Vec<u64>]) -> String {
    let mut s = format!("{},count\n", dims.join(","));
    for (i, row) in grid.iter().enumerate() {
        for (j, n) in row.iter().enumerate() {
            s.push_str(&format!("{},{},{n}\n", (b'A' + i as u8) as char, j + 1));
        }
    }
    s
}

/// The 3×2 `hes` table of the issue: 51.8% of 166 used to give the sex-2
/// total away, then the `*` at (A, 2).
#[test]
fn issue_17_the_3x2_hes_table_is_protected_or_refused() {
    let counts = "region,sex,count\nA,1,26\nA,2,1\nB,1,43\nB,2,20\nC,1,11\nC,2,65\n";
    assert_protected_or_refused_on_the_merits(counts, &HES, "hes", &["sex"]);
}

/// A 3×3 `csds` table whose masked zero the whole percentages used to
/// give away.
#[test]
fn issue_17_the_3x3_csds_table_is_protected_or_refused() {
    let counts = count_table(
        &["region", "age"],
        &[vec![15, 0, 3], vec![4, 0, 2], vec![0, 5, 0]],
    );
    assert_protected_or_refused_on_the_merits(&counts, &CSDS, "csds", &["age"]);
}

fn small_tables() -> impl Strategy<Value = (Vec<Vec<u64>>, bool, bool)> {
    prop_oneof![Just((2usize, 2usize)), Just((2, 3)), Just((3, 2))].prop_flat_map(|(r, c)| {
        (
            proptest::collection::vec(
                proptest::collection::vec(prop_oneof![0u64..10, 0u64..40, 0u64..90], c),
                r,
            ),
            any::<bool>(),
            any::<bool>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        rng_seed: proptest::test_runner::RngSeed::Fixed(17),
        ..ProptestConfig::default()
    })]

    /// Over random small percentage tables under `hes` and `csds`: no `*`
    /// and no rounded count below the national total is pinned by a
    /// whole-number reader in a released table, and a refused table would
    /// have pinned one (checked by exhaustive search).
    #[test]
    fn issue_17_no_whole_number_reader_pins_a_cell_of_a_released_table(
        (grid, csds, first) in small_tables(),
    ) {
        let (rule, profile) = if csds { (&CSDS, "csds") } else { (&HES, "hes") };
        let percent_of = if first { "region" } else { "sex" };
        let counts = count_table(&["region", "sex"], &grid);
        assert_protected_or_refused_on_the_merits(&counts, rule, profile, &[percent_of]);
    }
}

/// Some small tables are released and some refused: the property above
/// sees both sides.
#[test]
fn issue_17_small_tables_are_released_and_refused_on_the_merits() {
    let released = [
        vec![vec![26, 1], vec![43, 20], vec![11, 65]],
        vec![vec![30, 40], vec![50, 60]],
    ]
    .iter()
    .filter(|g| {
        assert_protected_or_refused_on_the_merits(
            &count_table(&["region", "sex"], g),
            &HES,
            "hes",
            &["sex"],
        )
    })
    .count();
    assert!(released >= 1, "tables with room to spare are released");
    // 8 and 8, each published as 10 (8–12), under a national total of 16
    // released as computed: only 8 + 8 adds up, so both are pinned.
    assert!(!assert_protected_or_refused_on_the_merits(
        "region,count\nA,8\nB,8\n",
        &HES,
        "hes",
        &[]
    ));
}

// HiGHS: the same published tables as an integer programme.

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug, serde::Deserialize)]
struct HighsCell {
    key: Vec<String>,
    released: String,
    min: u64,
    max: Option<u64>,
}

fn highs(dir: &Path, t: &Published, rule: &Rule) -> Vec<HighsCell> {
    let table = dir.join("highs_input.csv");
    std::fs::write(&table, t.to_csv()).unwrap();
    let result = dir.join("highs.json");
    let yes = |b: bool| if b { "yes" } else { "no" };
    let out = Command::new("python3")
        .arg(repo().join("tests/highs_audit.py"))
        .arg(&table)
        .args(["--mask", &rule.mask.0.to_string(), &rule.mask.1.to_string()])
        .args(["--round-to", &rule.round_to.to_string()])
        .args([
            "--zeros",
            if rule.zeros_suppressed {
                "suppress"
            } else {
                "show"
            },
        ])
        .args(["--exempt-national", yes(rule.exempt_national)])
        .args(["--secondary", yes(rule.secondary)])
        .arg("--out")
        .arg(&result)
        .output()
        .unwrap();
    assert!(out.status.success(), "highs_audit.py: {}", stderr(&out));
    serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap()
}

fn parse_interval(text: &str) -> (u64, Option<u64>) {
    let (low, high) = text.split_once('–').unwrap();
    (low.parse().unwrap(), high.parse().ok())
}

/// Runs dars and HiGHS on one table: whole-number intervals equal HiGHS's,
/// LP ones contain them; a released table has no cell HiGHS pins; a
/// refused one has. Returns (released, whole-number intervals compared).
fn agree_with_highs(counts: &str, rule: &Rule, args: &[&str]) -> (bool, usize) {
    let dir = tempfile::tempdir().unwrap();
    let outcome = dars_suppress(dir.path(), counts, args);
    let cells = highs(dir.path(), &outcome.table, rule);
    let mut compared = 0;
    let mut pinned = Vec::new();
    for c in &cells {
        if c.released != "0" && c.max == Some(c.min) {
            pinned.push((c.key.clone(), c.released.clone()));
        }
        if c.released != "*" {
            continue;
        }
        let (text, kind) = &outcome.intervals[&c.key];
        let (low, high) = parse_interval(text);
        if kind == "whole-number" {
            assert_eq!(
                (low, high),
                (c.min, c.max),
                "{:?}: dars {text}, HiGHS {c:?}",
                c.key
            );
            compared += 1;
        } else {
            assert!(
                low <= c.min && (high.is_none() || c.max.is_some_and(|m| high.unwrap() >= m)),
                "{:?}: the LP interval {text} must contain HiGHS's {c:?}",
                c.key
            );
        }
    }
    if outcome.released {
        assert!(pinned.is_empty(), "released, but HiGHS pins {pinned:?}");
    } else {
        assert!(!pinned.is_empty(), "refused, but HiGHS pins nothing");
    }
    (outcome.released, compared)
}

fn cube_table(cube: &[Vec<Vec<u64>>]) -> String {
    let mut s = String::from("region,sex,age,count\n");
    for (i, plane) in cube.iter().enumerate() {
        for (j, line) in plane.iter().enumerate() {
            for (k, n) in line.iter().enumerate() {
                s.push_str(&format!("r{i},s{j},a{k},{n}\n"));
            }
        }
    }
    s
}

/// The issue's tables, the 4×4×2 table microlp used to fail on
/// (percentages of `age`, mask 1–4, rounded to 5, secondary suppression,
/// no national exemption), and random three-way percentage tables under
/// `hes` and `csds`: HiGHS agrees with every whole-number interval and
/// pins nothing that dars releases.
#[test]
fn issue_17_highs_agrees_with_the_whole_number_audit() {
    let mut compared = 0;
    let mut released = 0;
    let mut tally = |(r, c): (bool, usize)| {
        released += usize::from(r);
        compared += c;
    };
    tally(agree_with_highs(
        "region,sex,count\nA,1,26\nA,2,1\nB,1,43\nB,2,20\nC,1,11\nC,2,65\n",
        &HES,
        &["--profile", "hes", "--percent-of", "sex"],
    ));
    tally(agree_with_highs(
        &count_table(
            &["region", "age"],
            &[vec![15, 0, 3], vec![4, 0, 2], vec![0, 5, 0]],
        ),
        &CSDS,
        &["--profile", "csds", "--percent-of", "age"],
    ));

    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("custom.toml");
    std::fs::write(
        &profile,
        "mask = [1, 4]\nround_to = 5\nsecondary = true\nexempt_national = false\n",
    )
    .unwrap();
    let custom = Rule {
        mask: (1, 4),
        round_to: 5,
        zeros_suppressed: false,
        exempt_national: false,
        secondary: true,
        decimals: 1,
    };
    let cube: Vec<Vec<Vec<u64>>> = [
        [[5, 24], [8, 13], [46, 17], [4, 4]],
        [[51, 6], [9, 0], [3, 54], [1, 55]],
        [[1, 50], [32, 29], [2, 2], [24, 30]],
        [[59, 7], [2, 6], [4, 48], [4, 1]],
    ]
    .iter()
    .map(|p| p.iter().map(|l| l.to_vec()).collect())
    .collect();
    let (r, c) = agree_with_highs(
        &cube_table(&cube),
        &custom,
        &[
            "--profile",
            profile.to_str().unwrap(),
            "--percent-of",
            "age",
        ],
    );
    assert!(c > 0, "the 4×4×2 table is audited in whole numbers");
    tally((r, c));

    // Random three-way tables (a fixed seed), skewed small.
    let mut state = 17u64;
    let mut next = |m: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    for case in 0..6 {
        let (a, b, c) = (2 + next(2) as usize, 2 + next(2) as usize, 2);
        let cube: Vec<Vec<Vec<u64>>> = (0..a)
            .map(|_| {
                (0..b)
                    .map(|_| {
                        (0..c)
                            .map(|_| if next(3) == 0 { next(8) } else { next(60) })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let (rule, name) = if case % 2 == 0 {
            (&HES, "hes")
        } else {
            (&CSDS, "csds")
        };
        tally(agree_with_highs(
            &cube_table(&cube),
            rule,
            &["--profile", name, "--percent-of", "age"],
        ));
    }
    assert!(
        compared >= 10,
        "only {compared} whole-number intervals compared"
    );
    assert!(released >= 2, "only {released} tables released");
}

/// Issue #17: a release of two aggregates that share cells (`region × sex`
/// under `hes`, and `region` alone under a stricter custom rule): each
/// shared cell gets one treatment, the stricter rule's mask wins, and the
/// audit of the whole release passes (a dry run: the reports, no release).
#[test]
fn issue_17_two_tables_sharing_cells_get_one_treatment_the_stricter_rule_winning() {
    let w = common::Workdir::new(800, 120, 4000, 9);
    let extra = r#"
[[outputs]]
name = "by_region"
kind = "aggregate"
dataset = "hes_apc"
group_by = ["region"]
count = "persons"
totals = true
suppression = "strict"

[suppression.strict]
mask = [1, 30]
round_to = 5
"#;
    let a = w.agreement("agreement.toml", "2099-12-31", extra);
    let out = w.dars(&["run", a.to_str().unwrap(), "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_dir = std::fs::read_dir(w.path("work/DARS-NIC-000001-DEMO1-01/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let report = |name: &str| read_csv(&run_dir.join(format!("suppression/{name}.csv")));
    let (h2, both) = report("admissions_by_region");
    let (h1, alone) = report("by_region");
    let col = |h: &[String], name: &str| h.iter().position(|x| x == name).unwrap();
    let (o2, r2, a2) = (
        col(&h2, "original_internal"),
        col(&h2, "released"),
        col(&h2, "audit"),
    );
    let (o1, r1, rule1) = (
        col(&h1, "original_internal"),
        col(&h1, "released"),
        col(&h1, "rule"),
    );
    let mut shared = 0;
    let mut won = 0;
    for row in alone.iter().filter(|r| r[1] == "interior") {
        // The region margin of region × sex: the same people, the same cell.
        let Some(m) = both.iter().find(|r| r[0] == row[0] && r[1] == TOTAL) else {
            continue;
        };
        assert_eq!(m[o2], row[o1], "the same true count");
        shared += 1;
        assert_eq!(
            m[r2] == "*",
            row[r1] == "*",
            "one treatment for {:?}",
            row[0]
        );
        let n: u64 = row[o1].parse().unwrap();
        if (8..=30).contains(&n) {
            // hes alone would publish it; the stricter rule masks it in both.
            assert_eq!(m[r2], "*");
            assert_eq!(row[rule1], "strict");
            won += 1;
        }
    }
    assert!(shared >= 3, "only {shared} shared cells");
    assert!(won >= 1, "no cell where the stricter rule had to win");
    assert!(both.iter().all(|r| r[a2] != "FAIL"), "the audit passes");
}
