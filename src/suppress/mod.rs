//! Stage 5b, disclosure control: every count that leaves is protected.
//!
//! Presets (DESIGN.md, "Suppression presets"):
//! - `hes`: below national level counts 1–7 become `*` and every other
//!   count is rounded to the nearest 5; the national (grand) total is
//!   released as computed; a true zero stays 0.
//! - `csds`: counts 0–4 become `*` (zeros too) and every count is rounded
//!   to the nearest 5; the national total is released as computed.
//!
//! A custom `[suppression.NAME]` table sets the mask range, the rounding
//! base, the national exemption and zero handling. Primary suppression is
//! decided on the true value before rounding, and totals are computed from
//! true values and then protected like any cell.

mod config;
#[cfg(test)]
mod tests;

pub use config::{Profile, ProfileSpec};

use polars::prelude::*;

use crate::aggregate::{CellLevel, CountTable};

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
    Kept,
    Rounded,
    Primary,
    Exempt,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SuppressionCounts {
    pub cells: usize,
    pub primary: usize,
    pub rounded: usize,
    pub exempt: usize,
}

/// A protected table: the released values beside the (internal) audit of
/// what happened to each cell.
#[derive(Debug, Clone)]
pub struct ProtectedTable {
    pub dims: Vec<String>,
    pub cells: Vec<ProtectedCell>,
    pub counts: SuppressionCounts,
}

#[derive(Debug, Clone)]
pub struct ProtectedCell {
    pub key: Vec<String>,
    pub level: CellLevel,
    /// The true value: internal, never released.
    pub original: u64,
    pub value: Protected,
    pub action: Action,
}

/// One aggregate table of a release with the rule that protects it.
#[derive(Debug, Clone)]
pub struct ReleaseTable {
    pub name: String,
    pub table: CountTable,
    pub profile: Profile,
}

#[derive(Debug, thiserror::Error)]
pub enum SuppressError {}

/// Protects every aggregate table of one release together, in order.
pub fn protect_release(tables: &[&ReleaseTable]) -> Result<Vec<ProtectedTable>, SuppressError> {
    Ok(tables.iter().map(|t| protect(&t.table, &t.profile)).collect())
}

/// Applies `profile` to every cell of `table`.
pub fn protect(table: &CountTable, profile: &Profile) -> ProtectedTable {
    let mut counts = SuppressionCounts {
        cells: table.cells.len(),
        ..Default::default()
    };
    let cells = table
        .cells
        .iter()
        .map(|c| {
            let (value, action) = profile.apply(c.count, c.level);
            match action {
                Action::Primary => counts.primary += 1,
                Action::Rounded => counts.rounded += 1,
                Action::Exempt => counts.exempt += 1,
                Action::Kept => {}
            }
            ProtectedCell {
                key: c.key.clone(),
                level: c.level,
                original: c.count,
                value,
                action,
            }
        })
        .collect();
    ProtectedTable {
        dims: table.dims.clone(),
        cells,
        counts,
    }
}

impl ProtectedTable {
    /// The releasable frame: one string column per dimension and `count`
    /// as text (`*` for suppressed). The true values are not in it.
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
        DataFrame::new_infer_height(columns)
    }
}
