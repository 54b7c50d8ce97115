//! Stage 5b, disclosure control: every count that leaves is protected, and
//! shown to be protected.
//!
//! Presets (DESIGN.md, "Suppression presets"):
//! - `hes`: below national level counts 1–7 become `*` and every other
//!   count is rounded to the nearest 5; the national (grand) total is
//!   released as computed; a true zero stays 0; percentages are of the
//!   released counts (so they say nothing the counts do not), `*` where
//!   the count or its total is `*`.
//! - `csds`: counts 0–4 become `*` (zeros too) and every count is rounded
//!   to the nearest 5; percentages to whole percent, `*` where built on a
//!   `*`; the national total is released as computed.
//!
//! A custom `[suppression.NAME]` table (or a profile file) sets the mask
//! range, the rounding base, the national exemption, zero handling,
//! percentage decimals, secondary suppression, the audit and its
//! protection width.
//!
//! All aggregate tables of one release are protected together
//! ([`protect_release`]): primary suppression on the true values, then
//! complementary cells ([`secondary`]) where a rule asks for them, the same
//! treatment for a cell wherever it appears, then rounding of what is
//! published, then the [`audit`]: for every suppressed cell, the interval
//! a reader could deduce from everything released, by linear programming,
//! and in whole numbers (branch and bound) for every connected part small
//! enough, where a rounded count pinned exactly fails too. A release whose
//! audit finds an interval narrower than its rule's protection fails.

mod audit;
mod config;
mod model;
pub mod report;
mod secondary;
#[cfg(test)]
mod tests;

pub use audit::Interval;
pub use config::{Profile, ProfileSpec, Zeros};

use std::collections::HashMap;

use polars::prelude::*;

use crate::counts::{CellLevel, CountTable};
use audit::WholeMode;
use model::{Model, Status};

/// A released value: a number, or `*` for a suppressed cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protected {
    Count(u64),
    Suppressed,
}

impl std::fmt::Display for Protected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Suppressed => f.write_str("*"),
        }
    }
}

/// What disclosure control did to one cell, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Released unchanged (already on the rounding base).
    Kept,
    Rounded,
    /// Masked by the rule.
    Primary,
    /// Masked to protect another `*` (complementary).
    Secondary,
    /// The national total, released as computed.
    Exempt,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::Rounded => "rounded",
            Self::Primary => "primary",
            Self::Secondary => "secondary",
            Self::Exempt => "exempt",
        }
    }
}

/// What happened to a table's cells: counts only, safe to print.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SuppressionCounts {
    pub cells: usize,
    pub primary: usize,
    pub secondary: usize,
    pub rounded: usize,
    pub exempt: usize,
    /// Suppressed cells whose interval was audited.
    pub audited: usize,
    /// Suppressed cells whose interval is the whole-number one.
    pub whole_number: usize,
    /// Rounded counts a whole-number reader can pin exactly (failures).
    pub pinned: usize,
    /// Audited cells whose interval is narrower than the rule's protection.
    pub audit_failures: usize,
}

impl SuppressionCounts {
    /// Cells released as `*`.
    pub fn suppressed(&self) -> usize {
        self.primary + self.secondary
    }
}

/// A derived percentage of one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtectedPercent {
    /// The true percentage: internal, never released.
    pub original: f64,
    /// As released: rounded text, `*` where built on a `*`, `None` where
    /// the denominator is 0.
    pub value: Option<String>,
}

/// A protected table: the released values beside the (internal) audit of
/// what happened to each cell.
#[derive(Debug, Clone)]
pub struct ProtectedTable {
    pub name: String,
    pub dims: Vec<String>,
    pub cells: Vec<ProtectedCell>,
    pub counts: SuppressionCounts,
    /// Whether cells carry percentages.
    pub has_percent: bool,
}

#[derive(Debug, Clone)]
pub struct ProtectedCell {
    pub key: Vec<String>,
    pub level: CellLevel,
    /// The true value: internal, never released.
    pub original: u64,
    pub value: Protected,
    pub action: Action,
    /// The rule that decided, and why.
    pub rule: String,
    pub reason: String,
    pub percent: Option<ProtectedPercent>,
    /// For an audited `*`: what a reader could deduce. Internal.
    pub interval: Option<Interval>,
}

/// One aggregate table of a release with the rule that protects it.
#[derive(Debug, Clone)]
pub struct ReleaseTable {
    pub name: String,
    pub table: CountTable,
    pub profile: Profile,
}

#[derive(Debug, thiserror::Error)]
pub enum SuppressError {
    #[error("table `{table}`: a reader can narrow the {what} ({cell}) down to {values} possible value(s) from what the release publishes; rule `{rule}` needs at least {needed} ({failures} cell(s) of this table fail the audit; the suppression report lists them)\n  fix: use a [suppression.NAME] rule with secondary = true, group by coarser or fewer columns, or drop a table that shares cells with this one")]
    AuditFailed {
        table: String,
        /// `suppressed cell` or `rounded count`.
        what: &'static str,
        cell: String,
        values: u64,
        needed: u64,
        rule: String,
        failures: usize,
    },
    #[error("table `{table}`: {source}; nothing was released\n  fix: the table's counts were checked and are consistent, so this is the solver's failure, not the table's: report it with the suppression report (kept in the work directory)")]
    Solver {
        table: String,
        #[source]
        source: audit::SolverError,
    },
}

/// Protects every aggregate table of one release together, in order, and
/// fails if the audit finds a suppressed cell that is not protected.
pub fn protect_release(tables: &[&ReleaseTable]) -> Result<Vec<ProtectedTable>, SuppressError> {
    let protected = protect_tables(tables)?;
    check_audit(&protected, tables)?;
    Ok(protected)
}

/// The first audit failure of `protected` as an error.
pub fn check_audit(
    protected: &[ProtectedTable],
    tables: &[&ReleaseTable],
) -> Result<(), SuppressError> {
    for (p, t) in protected.iter().zip(tables) {
        if let Some(c) = p
            .cells
            .iter()
            .find(|c| c.interval.is_some_and(|i| !i.passes()))
        {
            let i = c.interval.unwrap_or(Interval::lp(0, None, 0));
            let row = p.cells.iter().position(|x| std::ptr::eq(x, c)).unwrap_or(0);
            return Err(SuppressError::AuditFailed {
                table: p.name.clone(),
                what: if c.action.suppresses() {
                    "suppressed cell"
                } else {
                    "rounded count"
                },
                cell: describe_position(&p.dims, &c.key, row),
                values: i.width().map_or(u64::MAX, |w| w + 1),
                needed: i.required + 1,
                rule: t.profile.name.clone(),
                failures: p.counts.audit_failures,
            });
        }
    }
    Ok(())
}

/// A cell named by its place, never by its dimension values (which may be
/// postcodes, LSOAs or other identifiers): `row 14 of the suppression
/// report, a margin summed over sex`.
pub fn describe_position(dims: &[String], key: &[String], row: usize) -> String {
    let summed: Vec<&str> = dims
        .iter()
        .zip(key)
        .filter(|(_, v)| *v == crate::counts::TOTAL)
        .map(|(d, _)| d.as_str())
        .collect();
    let what = if summed.is_empty() {
        "an interior cell".to_string()
    } else if summed.len() == dims.len() {
        "the national total".to_string()
    } else {
        format!("a margin summed over {}", summed.join(" and "))
    };
    format!("row {} of the suppression report, {what}", row + 1)
}

/// Protects one table alone (its own release), audit failures recorded
/// in the cells but not raised.
pub fn protect(table: &CountTable, profile: &Profile) -> Result<ProtectedTable, SuppressError> {
    let release = ReleaseTable {
        name: "table".into(),
        table: table.clone(),
        profile: profile.clone(),
    };
    let mut out = protect_tables(&[&release])?;
    Ok(out.remove(0))
}

/// Primary, secondary, rounding and the audit for every table of one
/// release; audit failures are recorded in the cells and counts, not
/// raised (see [`protect_release`]).
pub fn protect_tables(tables: &[&ReleaseTable]) -> Result<Vec<ProtectedTable>, SuppressError> {
    protect_tables_with(tables, true, Some(WholeMode::Fast), audit::MAX_UNKNOWNS)
}

/// [`protect_tables`] without the whole-number audit (every interval the
/// LP's, no rounded count checked): what the bench compares with. Not for
/// releases.
#[doc(hidden)]
pub fn protect_tables_lp(tables: &[&ReleaseTable]) -> Result<Vec<ProtectedTable>, SuppressError> {
    protect_tables_with(tables, true, None, 0)
}

/// [`protect_tables`] with the whole-number audit's shortcuts off: no
/// sweeps, no dives, no tables reused from the linear programmes, every
/// bound by plain branch and bound from the true table (with a far larger
/// node cap). The reference the fast path is tested against. Slow; not
/// for releases.
#[doc(hidden)]
pub fn protect_tables_reference(
    tables: &[&ReleaseTable],
) -> Result<Vec<ProtectedTable>, SuppressError> {
    protect_tables_with(
        tables,
        true,
        Some(WholeMode::Reference),
        audit::MAX_UNKNOWNS,
    )
}

/// [`protect_tables`] with every linear programme solved from scratch, as
/// before warm starts: the reference that the tests and the bench compare
/// the fast path with (the same intervals, the same complementary cells).
/// Slow; not for releases.
#[doc(hidden)]
pub fn protect_tables_cold(tables: &[&ReleaseTable]) -> Result<Vec<ProtectedTable>, SuppressError> {
    protect_tables_with(tables, false, Some(WholeMode::Fast), audit::MAX_UNKNOWNS)
}

/// [`protect_tables`] with the whole-number audit of every part of at
/// most `max_unknowns` unknown cells instead of the release bound (600):
/// what the bench times per part size. Not for releases.
#[doc(hidden)]
pub fn protect_tables_whole_up_to(
    tables: &[&ReleaseTable],
    max_unknowns: usize,
) -> Result<Vec<ProtectedTable>, SuppressError> {
    protect_tables_with(tables, true, Some(WholeMode::Fast), max_unknowns)
}

fn protect_tables_with(
    tables: &[&ReleaseTable],
    warm_starts: bool,
    whole_number: Option<WholeMode>,
    max_unknowns: usize,
) -> Result<Vec<ProtectedTable>, SuppressError> {
    let mut model = Model::build(tables);
    model.primary();
    let solver = |source| SuppressError::Solver {
        table: tables
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        source,
    };
    secondary::complement(&mut model, warm_starts).map_err(solver)?;

    // The audit, once the published state is final.
    let audited: Vec<usize> = (0..model.nodes.len())
        .filter(|&n| model.nodes[n].status.suppressed() && model.required_width(n).is_some())
        .collect();
    let mut intervals = audit_intervals(
        &model,
        &audited,
        warm_starts,
        false,
        whole_number,
        max_unknowns,
    )
    .map_err(solver)?;
    if tables.iter().any(|t| t.table.persons) {
        // What a reader deduces, who cannot know that margins of persons
        // add up; the safe test above stays the one that decides.
        let reader = audit_intervals(
            &model,
            &audited,
            warm_starts,
            true,
            whole_number,
            max_unknowns,
        )
        .map_err(solver)?;
        for (n, i) in intervals.iter_mut() {
            if let Some(r) = reader.get(n) {
                if (r.low, r.high) != (i.low, i.high) {
                    i.reader = Some((r.low, r.high));
                }
            }
        }
    }

    Ok(tables
        .iter()
        .enumerate()
        .map(|(t, rt)| render(&model, t, rt, &intervals))
        .collect())
}

/// The audit of one view of the release: the interval of every `*` in
/// `audited` (whole-number where its part is small enough, else the
/// linear-programming relaxation), and, for a rounded count a
/// whole-number reader can pin exactly, its single value (a failure).
fn audit_intervals(
    model: &Model,
    audited: &[usize],
    warm_starts: bool,
    reader: bool,
    whole_number: Option<WholeMode>,
    max_unknowns: usize,
) -> Result<HashMap<usize, Interval>, audit::SolverError> {
    let mut lp = audit::Lp::build_view(model, warm_starts, reader);
    let mut intervals: HashMap<usize, Interval> = HashMap::new();
    lp.seed(audited)?;
    for &n in audited {
        if let Some(required) = model.required_width(n) {
            intervals.insert(n, lp.interval(n, required)?);
        }
    }
    let Some(mode) = whole_number else {
        return Ok(intervals);
    };
    // Rounded counts of audited tables: published, but not exactly.
    let rounded: Vec<usize> = (0..model.nodes.len())
        .filter(|&n| {
            !model.nodes[n].status.suppressed()
                && model.required_width(n).is_some()
                && lp.var(n).is_some()
        })
        .collect();
    let stars: Vec<(usize, (u64, Option<u64>))> = audited
        .iter()
        .filter_map(|&n| Some((lp.var(n)?, intervals.get(&n).map(|i| (i.low, i.high))?)))
        .collect();
    let whole = lp.whole(
        &stars,
        &rounded
            .iter()
            .filter_map(|&n| lp.var(n))
            .collect::<Vec<_>>(),
        mode,
        max_unknowns,
    );
    for &n in audited {
        let Some(v) = lp.var(n) else { continue };
        if let (Some(&(low, high)), Some(i)) = (whole.intervals.get(&v), intervals.get_mut(&n)) {
            i.low = low;
            i.high = high;
            i.whole = true;
        }
    }
    tracing::debug!(
        whole_number = whole.intervals.len(),
        rounded_checked = whole.checked,
        pinned = whole.pinned.len(),
        lp_only = whole.fell_back,
        "whole-number audit"
    );
    let pinned: std::collections::HashSet<usize> = whole.pinned.iter().copied().collect();
    for n in rounded {
        if lp.var(n).is_some_and(|v| pinned.contains(&v)) {
            let v = model.nodes[n].value;
            intervals.insert(
                n,
                Interval {
                    whole: true,
                    ..Interval::lp(v, Some(v), 1)
                },
            );
        }
    }
    Ok(intervals)
}

/// The protected cells of table `t`.
fn render(
    model: &Model,
    t: usize,
    rt: &ReleaseTable,
    intervals: &HashMap<usize, Interval>,
) -> ProtectedTable {
    let profile = &rt.profile;
    let table = &rt.table;
    let mut counts = SuppressionCounts {
        cells: table.cells.len(),
        ..Default::default()
    };
    let index: HashMap<&[String], usize> = table.index_by_key();
    let mut cells: Vec<ProtectedCell> = table
        .cells
        .iter()
        .enumerate()
        .map(|(c, cell)| {
            let node = &model.nodes[model.place[t][c]];
            let (value, action, rule, reason) = match node.status {
                Status::Primary => {
                    let by = node.masked_by.unwrap_or(t);
                    let mut reason = model.profile(by).reason(Action::Primary);
                    if by != t {
                        reason.push_str(&format!(
                            "; the same cell is masked in table `{}`",
                            model.tables[by].name
                        ));
                    }
                    (
                        Protected::Suppressed,
                        Action::Primary,
                        model.profile(by).name.clone(),
                        reason,
                    )
                }
                Status::Secondary => (
                    Protected::Suppressed,
                    Action::Secondary,
                    profile.name.clone(),
                    profile.reason(Action::Secondary),
                ),
                Status::Published => {
                    let (v, a) = profile.apply(cell.count, cell.level);
                    // `apply` masks nothing here: the node is published.
                    let (v, a) = if a == Action::Primary {
                        (Protected::Count(cell.count), Action::Kept)
                    } else {
                        (v, a)
                    };
                    (v, a, profile.name.clone(), profile.reason(a))
                }
            };
            match action {
                Action::Primary => counts.primary += 1,
                Action::Secondary => counts.secondary += 1,
                Action::Rounded => counts.rounded += 1,
                Action::Exempt => counts.exempt += 1,
                Action::Kept => {}
            }
            let interval = intervals.get(&model.place[t][c]).copied();
            if let Some(i) = interval {
                if action.suppresses() {
                    counts.audited += 1;
                    if i.whole {
                        counts.whole_number += 1;
                    }
                } else {
                    counts.pinned += 1;
                }
                if !i.passes() {
                    counts.audit_failures += 1;
                }
            }
            ProtectedCell {
                key: cell.key.clone(),
                level: cell.level,
                original: cell.count,
                value,
                action,
                rule,
                reason,
                percent: None,
                interval,
            }
        })
        .collect();
    // Percentages of the released counts, never of the true ones: a
    // reader can compute each of them from the table itself, so they say
    // nothing the counts do not, and the audit need not model them.
    let released: Vec<Protected> = cells.iter().map(|c| c.value).collect();
    for (c, cell) in cells.iter_mut().enumerate() {
        let Some(d) = table
            .denominator_key(&cell.key)
            .and_then(|dk| index.get(dk.as_slice()).copied())
        else {
            continue;
        };
        let den = table.cells[d].count;
        let original = if den == 0 {
            0.0
        } else {
            100.0 * cell.original as f64 / den as f64
        };
        let value = released_percent(released[c], released[d], profile.percent_decimals);
        cell.percent = Some(ProtectedPercent { original, value });
    }
    ProtectedTable {
        name: rt.name.clone(),
        dims: table.dims.clone(),
        cells,
        counts,
        has_percent: !table.percent_of.is_empty(),
    }
}

/// The released percentage of a released count over its released total:
/// `*` when either is `*` (there is nothing released to divide), nothing
/// when the total is 0, else `100 n / d` rounded half up to `decimals`.
/// The other percentages of a total with a `*` among its counts are
/// released: they are computed from released counts only, so together
/// they add up to nothing a reader could not add up from the counts.
pub fn released_percent(
    numerator: Protected,
    denominator: Protected,
    decimals: u32,
) -> Option<String> {
    match (numerator, denominator) {
        (_, Protected::Count(0)) => None,
        (Protected::Count(n), Protected::Count(d)) => {
            Some(format_percent(scaled_percent(n, d, decimals), decimals))
        }
        _ => Some("*".to_string()),
    }
}

/// 100 n / d in units of 10^-decimals, rounded half up, in whole numbers.
fn scaled_percent(n: u64, d: u64, decimals: u32) -> u64 {
    let scale = 100u128 * 10u128.pow(decimals);
    let (n, d) = (n as u128, d.max(1) as u128);
    ((2 * n * scale + d) / (2 * d)) as u64
}

fn format_percent(scaled: u64, decimals: u32) -> String {
    if decimals == 0 {
        return scaled.to_string();
    }
    let unit = 10u64.pow(decimals);
    format!(
        "{}.{:0width$}",
        scaled / unit,
        scaled % unit,
        width = decimals as usize
    )
}

impl ProtectedTable {
    /// The releasable frame: one string column per dimension, the count as
    /// text (`*` for suppressed) and, with percentages, `percent`. The true
    /// values are not in it.
    pub fn to_frame(&self, count_name: &str) -> PolarsResult<DataFrame> {
        let mut columns: Vec<Column> = self
            .dims
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let values: Vec<&str> = self.cells.iter().map(|c| c.key[i].as_str()).collect();
                Column::new(d.as_str().into(), values)
            })
            .collect();
        let values: Vec<String> = self.cells.iter().map(|c| c.value.to_string()).collect();
        columns.push(Column::new(count_name.into(), values));
        if self.has_percent {
            let values: Vec<Option<&str>> = self
                .cells
                .iter()
                .map(|c| c.percent.as_ref().and_then(|p| p.value.as_deref()))
                .collect();
            columns.push(Column::new("percent".into(), values));
        }
        DataFrame::new_infer_height(columns)
    }
}
