//! Benchmark of disclosure control (issue #4): a record table (1 000 000
//! rows by default) counted into a three-dimension aggregate with every
//! margin, then protected. Reports cells per second for primary
//! suppression, secondary suppression and the audit. `harness = false`:
//!
//! ```text
//! cargo bench --bench suppress --profile dev -- --rows 1000000
//! ```
//!
//! `--check` also protects each table with every linear programme solved
//! from scratch (`protect_tables_cold`) and fails unless every cell gets
//! the same value, action and interval (slow: minutes at 1 000 000 rows).
//!
//! Measured on the shared 2-core dev box (dev profile, dependencies
//! optimised), 1 000 000 rows -> 2 541 cells, 457 primary, one LP
//! component of every cell. Before warm starts (every programme cold;
//! load average 1.0 rising to 2.8): audit (hes) 457 cells in 67.4 s
//! (7 cells/s); secondary (custom 1–7, no rounding, 515 complements)
//! 84.6 s (30 cells/s); audit after secondary 972 cells in 152 s
//! (6 cells/s). With warm starts (load average 0.5–0.8): audit (hes)
//! 6.2 s (73 cells/s); secondary 18.0 s (141 cells/s); audit after
//! secondary 10.7 s (91 cells/s). `--check` (load average 4.0 falling to
//! 1.0) passed: the same 457 intervals, the same 515 complementary cells
//! and the same 972 intervals after them.
//!
//! Issue #17 (same machine, load 2.5–5, `--only secondary`): secondary
//! suppression and the LP audit 19.0–23.7 s before (515 complements, 972
//! `*`), 1.2–2.4 s now (rounds; 109 complements, 566 `*`, audit passes);
//! with the whole-number audit of every part (all within 600 unknowns
//! here) 10.0–16.4 s, 566 of 566 whole-number. `--only secondary --check` passed (cold
//! run 26.8 s). `--only whole`: the 500-cell `hes` percentage table, 3.8–6.0
//! s with the whole-number audit (84 of 84 `*` whole-number; LP audit
//! alone 0.1 s; before #17, the LP audit with percentage rows, 0.89–0.99 s).
//!
//! Sweeps in the whole-number audit (the same build before and after,
//! `--only secondary`, load 4.3–6.5, a slower machine than above):
//! 35.8–39.6 s before, 19.7–20.3 s after (566 of 566 whole-number either
//! way); at load 9–11, 53.6–58.7 s before, 25.2–33.0 s after. One run
//! of 14.4 s at load 3.8, timed by phase: secondary 0.7 s, LP audit 2.7 s,
//! sweeps 3.1 s, the 85 bounds the sweeps leave 7.8 s. `--only whole` (load 6.4–7.0): 12.9–13.6 s before,
//! 2.3–3.1 s after. microlp at opt-level 3 instead of 1 changed nothing
//! measurable (15.3–18.4 s user CPU against 15.9–17.1 s).
//!
//! Wider reduced dives (one and two sums around the fractional cells
//! freed before the whole part; the same build before and after, three
//! runs each alternating, load 9.6–11.2, `--dump` files identical):
//! `--only secondary` 15.6–18.7 s (median 17.3 s; 10.3 s user CPU for
//! the process) before, 11.9–14.4 s (median 13.1 s; 7.9 s CPU) after;
//! `--only whole` 1.9–2.1 s (1.1 s CPU) before, 2.2–3.7 s (1.2 s CPU)
//! after. Profile (perf, before): all but a few percent of the time is
//! inside microlp (LU solves and factorisations, dual pivots); phases:
//! LP audit 2.0–2.9 s, sweeps 3.1–3.6 s (48 cold programmes of the
//! 566-unknown part, 57 ms each), then 85 bounds (34 after) for their own
//! dive.
//!
//! Release build (`cargo bench --bench suppress -- --only secondary`),
//! load 4.7-4.8, three runs: 5.05-5.67 s for protect with the
//! whole-number audit, 6.26-6.32 s user CPU for the bench process. A
//! warm objective change patched into microlp (reverted; README,
//! "Where the time goes") gave the same intervals in 5.70-6.23 s.
//!
//! `--only parts [--sizes 600,1500,3000]`: the whole-number audit of one
//! `hes` part of about each many unknowns, the release bound of 600
//! lifted. Release build, load 3.3-4.2: 590 unknowns 1.8 s (LP audit
//! 0.26 s), 1 466 unknowns 42 s (LP audit 1.4 s); about 2 950 not
//! finished in 900 s.
//!
//! `--dump PREFIX` (with `--only secondary` or `--only whole`, the latter
//! writing `PREFIX.whole.*`) also writes the published table, the rule, the
//! true table and dars's reports, which `benches/suppress_highs.py` audits
//! again with HiGHS, timed beside this bench (README, "HiGHS on the same
//! programmes"). Side by side, 4 December 2026, load 3.5-4.9, dev build at
//! `CARGO_PROFILE_DEV_OPT_LEVEL=3`: `--only secondary` all of protect
//! 4.43-4.81 s (secondary alone 0.39-0.44 s, with the LP audit
//! 1.52-1.64 s); the same audit in HiGHS 6.0-6.9 s (LP 0.72-0.85 s warm
//! with the primal simplex), every interval equal.
//!
//! The data is synthetic and skewed (some regions and diagnosis chapters
//! are rare) so that the table has many small cells to suppress. Prints
//! counts and timings only.

use std::time::Instant;

use polars::prelude::*;
use rand::{Rng, SeedableRng};

use dars::aggregate::{count_frame, from_counts, set_percent_of, CountTable, Unit};
use dars::suppress::{
    protect_tables, protect_tables_cold, protect_tables_lp, protect_tables_whole_up_to, Profile,
    ProfileSpec, ReleaseTable,
};

fn main() {
    let mut rows: usize = 1_000_000;
    // `--check`: also protect each table with every programme solved from
    // scratch and require the very same result, cell by cell (slow).
    let mut check = false;
    // `--only secondary` (the issue #17 figure: secondary suppression and
    // the audit of the 2 541-cell table) or `--only whole` (the
    // whole-number audit of a 500-cell percentage table).
    let mut only: Option<String> = None;
    // `--dump FILE`: every audited cell's key, action and interval, to
    // compare two builds' results line for line; beside it the published
    // table, the rule, the true table and dars's reports, for an outside
    // solver (`write_release`, `benches/suppress_highs.py`).
    let mut dump: Option<String> = None;
    // `--only parts --sizes 600,1500`: the whole-number audit of one part of
    // about each many unknown cells, the release bound of 600 lifted.
    let mut sizes: Vec<usize> = vec![600, 1500, 3000];
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--rows" {
            rows = args.next().and_then(|v| v.parse().ok()).unwrap_or(rows);
        } else if flag == "--check" {
            check = true;
        } else if flag == "--only" {
            only = args.next();
        } else if flag == "--dump" {
            dump = args.next();
        } else if flag == "--sizes" {
            sizes = args
                .next()
                .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
                .unwrap_or(sizes);
        }
    }
    if only.as_deref() == Some("parts") {
        for size in sizes {
            part_size(size);
        }
        return;
    }
    if only.as_deref() != Some("secondary") {
        whole_number_audit(dump.as_deref());
        if only.is_some() {
            return;
        }
    }

    let t = Instant::now();
    let frame = records(rows);
    println!(
        "generated {rows} records in {:.2}s",
        t.elapsed().as_secs_f64()
    );

    let dims: Vec<String> = ["region", "age_band", "chapter"].map(String::from).to_vec();
    let t = Instant::now();
    let table = count_frame(frame.lazy(), &dims, &Unit::Records, true, "bench").expect("count");
    let secs = t.elapsed().as_secs_f64();
    let cells = table.cells.len();
    println!(
        "aggregate: {rows} records -> {cells} cells (3 dimensions, every margin) in {secs:.2}s ({:.0} records/s)",
        rows as f64 / secs
    );

    let hes_no_audit = Profile {
        audit: false,
        ..Profile::hes()
    };
    let custom = |secondary: bool, audit: bool| {
        Profile::from_spec(
            "custom",
            &ProfileSpec {
                mask: [1, 7],
                round_to: 1,
                exempt_national: true,
                zeros: None,
                percent_decimals: 1,
                secondary: Some(secondary),
                audit: Some(audit),
                protection: None,
            },
        )
    };

    let time = |table: &CountTable, profile: Profile| {
        let (secs, p) = time(table, profile.clone());
        if check {
            same_as_cold(table, profile, &p);
        }
        (secs, p)
    };
    if only.as_deref() == Some("secondary") {
        let release = ReleaseTable {
            name: "bench".into(),
            table: table.clone(),
            profile: custom(true, true),
        };
        // Secondary suppression alone (no audit), so that the LP audit's
        // and the whole-number audit's shares can be told apart below.
        let (alone, p) = time(&table, custom(true, false));
        report(
            "secondary alone (custom 1-7, no rounding, no audit), all of protect",
            cells,
            alone,
            &p,
        );
        let t = Instant::now();
        let lp = protect_tables_lp(&[&release]).expect("protect").remove(0);
        report(
            "secondary and LP audit (custom 1-7, no rounding), all of protect",
            cells,
            t.elapsed().as_secs_f64(),
            &lp,
        );
        let (both, p) = time(&table, custom(true, true));
        report(
            "secondary, LP and whole-number audit (custom 1-7, no rounding), all of protect",
            cells,
            both,
            &p,
        );
        println!(
            "  whole-number intervals: {} of {}; rounded counts pinned: {}",
            p.counts.whole_number, p.counts.audited, p.counts.pinned
        );
        if let Some(path) = &dump {
            write_dump(path, &p);
            write_release(path, &release, &lp, &p);
        }
        return;
    }
    let (primary, p) = time(&table, hes_no_audit);
    report("primary (hes: mask and round)", cells, primary, &p);
    let (with_audit, p) = time(&table, Profile::hes());
    report(
        "audit (hes: every * by LP, rounding intervals)",
        p.counts.audited,
        (with_audit - primary).max(1e-9),
        &p,
    );
    let (primary_custom, _) = time(&table, custom(false, false));
    let (secondary, p) = time(&table, custom(true, false));
    report(
        "secondary (custom 1-7, no rounding)",
        cells,
        (secondary - primary_custom).max(1e-9),
        &p,
    );
    let (both, p) = time(&table, custom(true, true));
    report(
        "audit (custom, after secondary)",
        p.counts.audited,
        (both - secondary).max(1e-9),
        &p,
    );
}

/// Issue #17: a 500-cell three-way percentage table (9 regions × 9 age
/// bands × 4 sexes with every margin, percentages of sex) under `hes`, one
/// connected part of 499 unknown cells: protect with the whole-number
/// audit against the LP audit alone.
fn whole_number_audit(dump: Option<&str>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let dims: Vec<String> = ["region", "age", "sex"].map(String::from).to_vec();
    let mut rows = std::collections::HashMap::new();
    for r in 0..9 {
        for a in 0..9 {
            for s in 0..4 {
                let n = if rng.gen_range(0..4) == 0 {
                    rng.gen_range(0..10u64)
                } else {
                    rng.gen_range(0..80u64)
                };
                rows.insert(vec![format!("R{r}"), format!("A{a}"), format!("S{s}")], n);
            }
        }
    }
    let mut table = from_counts(&dims, rows, true, "bench").expect("count");
    set_percent_of(&mut table, vec!["sex".into()], "bench").expect("percent");
    let release = ReleaseTable {
        name: "bench".into(),
        table,
        profile: Profile::hes(),
    };
    let t = Instant::now();
    let lp = protect_tables_lp(&[&release]).expect("protect").remove(0);
    let lp_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let whole = protect_tables(&[&release]).expect("protect").remove(0);
    let whole_secs = t.elapsed().as_secs_f64();
    let c = &whole.counts;
    println!(
        "whole-number audit (hes, {} cells with percentages): protect {whole_secs:.3}s, of which the whole-number audit {:.3}s (LP audit only: {lp_secs:.3}s); {} `*`, {} with whole-number intervals, {} narrower than their LP interval; {} rounded counts pinned; {} audit failures",
        c.cells,
        (whole_secs - lp_secs).max(0.0),
        c.audited,
        c.whole_number,
        whole
            .cells
            .iter()
            .zip(&lp.cells)
            .filter(|(w, l)| w.interval.is_some() && l.interval.is_some() && w.interval.map(|i| (i.low, i.high)) != l.interval.map(|i| (i.low, i.high)))
            .count(),
        c.pinned,
        c.audit_failures,
    );
    if let Some(path) = dump {
        let path = format!("{path}.whole");
        write_dump(&path, &whole);
        write_release(&path, &release, &lp, &whole);
    }
}

/// The whole-number audit of one connected part of about `size` unknown
/// cells: a three-way `hes` table with every margin (every count rounded,
/// so every cell but the national total and the true zeros is unknown),
/// timed against the LP audit alone, with the release bound of 600
/// unknowns lifted.
fn part_size(size: usize) {
    // (a + 1)(b + 1)(c + 1) cells with margins.
    let (a, b, c) = match size {
        0..=600 => (11, 9, 4),
        601..=1500 => (14, 9, 9),
        _ => (14, 9, 19),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(size as u64);
    let dims: Vec<String> = ["region", "age", "sex"].map(String::from).to_vec();
    let mut rows = std::collections::HashMap::new();
    for r in 0..a {
        for g in 0..b {
            for s in 0..c {
                let n = if rng.gen_range(0..4) == 0 {
                    rng.gen_range(0..10u64)
                } else {
                    rng.gen_range(0..80u64)
                };
                rows.insert(vec![format!("R{r}"), format!("A{g}"), format!("S{s}")], n);
            }
        }
    }
    let table = from_counts(&dims, rows, true, "bench").expect("count");
    let release = ReleaseTable {
        name: "bench".into(),
        table,
        profile: Profile::hes(),
    };
    let t = Instant::now();
    let lp = protect_tables_lp(&[&release]).expect("protect").remove(0);
    let lp_secs = t.elapsed().as_secs_f64();
    let unknowns = lp
        .cells
        .iter()
        .filter(|c| c.action != dars::suppress::Action::Exempt && c.original > 0)
        .count();
    let t = Instant::now();
    let whole = protect_tables_whole_up_to(&[&release], usize::MAX)
        .expect("protect")
        .remove(0);
    let whole_secs = t.elapsed().as_secs_f64();
    let k = &whole.counts;
    println!(
        "part of {unknowns} unknowns ({} cells, {a} x {b} x {c} with margins, hes): LP audit {lp_secs:.2}s, with the whole-number audit {whole_secs:.2}s; {} `*`, {} whole-number, {} rounded counts pinned, {} audit failures",
        k.cells, k.audited, k.whole_number, k.pinned, k.audit_failures,
    );
}

/// Every cell's key, released value, action and interval (with its kind
/// and, for persons, the reader's), one line each.
fn write_dump(path: &str, p: &dars::suppress::ProtectedTable) {
    let mut out = String::new();
    for c in &p.cells {
        let interval = c.interval.map_or(String::from("-"), |i| {
            format!("{i} {} {:?}", i.kind(), i.reader_text())
        });
        out.push_str(&format!(
            "{} {} {} {interval}\n",
            c.key.join("/"),
            c.value,
            c.action.as_str()
        ));
    }
    std::fs::write(path, out).expect("write dump");
    println!("  wrote {path}");
}

/// What an outside solver needs to audit the table dars audited
/// (`benches/suppress_highs.py`), beside `PATH`:
/// - `PATH.published.csv`: the table as released (dimension columns,
///   margins `Total`, the count as a number or `*`, and `percent` when the
///   table has percentages): all a reader is told;
/// - `PATH.rule.toml`: the rule, in the keys of `dars suppress --profile`;
/// - `PATH.true.csv`: the true counts (internal; synthetic here), a
///   whole-number table the reader's programme must admit;
/// - `PATH.report.csv`: dars's suppression report with the whole-number
///   audit (`protect_tables`), `PATH.lp.report.csv` with the LP audit
///   alone (`protect_tables_lp`); rows in the same order as the other two.
fn write_release(
    path: &str,
    release: &ReleaseTable,
    lp: &dars::suppress::ProtectedTable,
    whole: &dars::suppress::ProtectedTable,
) {
    assert_eq!(
        lp.cells.iter().map(|c| c.value).collect::<Vec<_>>(),
        whole.cells.iter().map(|c| c.value).collect::<Vec<_>>(),
        "the LP-only and the whole-number runs publish the same table"
    );
    let mut published = csv::Writer::from_path(format!("{path}.published.csv")).expect("create");
    let mut truth = csv::Writer::from_path(format!("{path}.true.csv")).expect("create");
    let mut header = whole.dims.clone();
    header.push("count".into());
    truth.write_record(&header).expect("write");
    if whole.has_percent {
        header.push("percent".into());
    }
    published.write_record(&header).expect("write");
    for c in &whole.cells {
        let mut record = c.key.clone();
        record.push(c.original.to_string());
        truth.write_record(&record).expect("write");
        record.pop();
        record.push(c.value.to_string());
        if whole.has_percent {
            record.push(
                c.percent
                    .as_ref()
                    .and_then(|p| p.value.clone())
                    .unwrap_or_default(),
            );
        }
        published.write_record(&record).expect("write");
    }
    published.flush().expect("write");
    truth.flush().expect("write");
    let r = &release.profile;
    let rule = format!(
        "# {}\nmask = [{}, {}]\nround_to = {}\nexempt_national = {}\nzeros = \"{}\"\npercent_decimals = {}\nsecondary = {}\naudit = {}\nprotection = {}\n",
        r.name,
        r.mask_low,
        r.mask_high,
        r.round_to,
        r.exempt_national,
        if r.suppress_zeros { "suppress" } else { "show" },
        r.percent_decimals,
        r.secondary,
        r.audit,
        r.protection
    );
    std::fs::write(format!("{path}.rule.toml"), rule).expect("write rule");
    for (suffix, p) in [("report.csv", whole), ("lp.report.csv", lp)] {
        let file = std::fs::File::create(format!("{path}.{suffix}")).expect("create");
        dars::suppress::report::write_csv(std::io::BufWriter::new(file), p).expect("write report");
    }
    println!("  wrote {path}.{{published.csv,rule.toml,true.csv,report.csv,lp.report.csv}}");
}

fn time(table: &CountTable, profile: Profile) -> (f64, dars::suppress::ProtectedTable) {
    let release = ReleaseTable {
        name: "bench".into(),
        table: table.clone(),
        profile,
    };
    let t = Instant::now();
    let mut p = protect_tables(&[&release]).expect("protect");
    (t.elapsed().as_secs_f64(), p.remove(0))
}

/// Panics unless solving every programme from scratch protects `table`
/// exactly as `fast` did: the same values, actions and intervals.
fn same_as_cold(table: &CountTable, profile: Profile, fast: &dars::suppress::ProtectedTable) {
    let release = ReleaseTable {
        name: "bench".into(),
        table: table.clone(),
        profile,
    };
    let t = Instant::now();
    let cold = protect_tables_cold(&[&release]).expect("protect").remove(0);
    let mut intervals = 0;
    for (a, b) in fast.cells.iter().zip(&cold.cells) {
        assert_eq!(a.key, b.key);
        assert_eq!(
            (a.value, a.action, a.interval),
            (b.value, b.action, b.interval),
            "cell {:?}",
            a.key
        );
        intervals += usize::from(a.interval.is_some());
    }
    assert_eq!(fast.counts, cold.counts);
    println!(
        "  check: the same as solving every programme from scratch ({} cells, {intervals} intervals; cold run {:.1}s)",
        cold.cells.len(),
        t.elapsed().as_secs_f64()
    );
}

fn report(what: &str, cells: usize, secs: f64, p: &dars::suppress::ProtectedTable) {
    let c = &p.counts;
    println!(
        "{what}: {cells} cells in {secs:.3}s = {:.0} cells/s (primary {}, secondary {}, audited {}, whole-number {}, rounded counts pinned {}, audit failures {})",
        cells as f64 / secs,
        c.primary,
        c.secondary,
        c.audited,
        c.whole_number,
        c.pinned,
        c.audit_failures
    );
}

/// Skewed synthetic records: 10 regions, 10 age bands, 22 chapters.
fn records(n: usize) -> DataFrame {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let mut region = Vec::with_capacity(n);
    let mut age = Vec::with_capacity(n);
    let mut chapter = Vec::with_capacity(n);
    for _ in 0..n {
        // Geometric: each code rarer than the one before, so the far
        // corner of the table is full of small counts and zeros.
        region.push(format!("R{:02}", geometric(&mut rng, 0.35, 9)));
        age.push(format!("A{:02}", rng.gen_range(0..10u32)));
        chapter.push(format!("C{:02}", geometric(&mut rng, 0.5, 21)));
    }
    df!("region" => region, "age_band" => age, "chapter" => chapter).expect("frame")
}

fn geometric(rng: &mut impl Rng, p: f64, max: u32) -> u32 {
    let mut k = 0;
    while k < max && rng.gen::<f64>() > p {
        k += 1;
    }
    k
}
