//! The count types shared by aggregation, which makes them, and disclosure
//! control, which protects them: a table of true counts, its cells and where
//! each sits. A leaf module, so that neither stage imports the other for them.

use std::collections::HashMap;

/// The label of a dimension summed over in a margin. A real value that a
/// reader could take for it (`Total`, `TOTAL`, ` total `) is refused: see
/// `aggregate::AggregateError::ReservedLabel`.
pub const TOTAL: &str = "Total";
/// The label of a missing (null) dimension value.
pub const UNKNOWN: &str = "Unknown";
/// The largest count a table may hold, cell or margin: 2^53, the largest
/// whole number the audit's linear programmes (in f64) hold exactly. No
/// real count of people or records comes near it.
pub const MAX_COUNT: u64 = 1 << 53;

/// Where a cell sits in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellLevel {
    Interior,
    /// Summed over at least one dimension, but not all.
    Margin,
    /// Summed over every dimension: the national total.
    GrandTotal,
}

impl CellLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interior => "interior",
            Self::Margin => "margin",
            Self::GrandTotal => "grand_total",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// One value per dimension; [`TOTAL`] where summed over.
    pub key: Vec<String>,
    pub count: u64,
    pub level: CellLevel,
}

/// True (unprotected) counts. Internal: never released as is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CountTable {
    pub dims: Vec<String>,
    pub cells: Vec<Cell>,
    /// What is counted, e.g. `hes_apc/persons`. Two tables of one release
    /// with the same universe describe the same people, so a cell with the
    /// same dimension values in both is the same cell and must be protected
    /// the same way.
    pub universe: String,
    /// Dimensions summed over in the denominator of each cell's derived
    /// percentage (`percent_of`); empty for no percentages.
    pub percent_of: Vec<String>,
    /// Whether the counts are of distinct people (one person can fall in
    /// several cells, so a margin need not be the sum of its cells).
    pub persons: bool,
}

impl CountTable {
    /// Position of each cell by its key.
    pub fn index_by_key(&self) -> HashMap<&[String], usize> {
        self.cells
            .iter()
            .enumerate()
            .map(|(i, c)| (c.key.as_slice(), i))
            .collect()
    }

    /// A table of `cells` in its own universe, without percentages.
    pub fn new(dims: Vec<String>, cells: Vec<Cell>) -> Self {
        Self {
            dims,
            cells,
            universe: String::new(),
            percent_of: Vec::new(),
            persons: false,
        }
    }

    /// For each cell, the position of the cell its percentage divides by
    /// (`None` without percentages, or for a cell summed over them all).
    pub fn denominators(&self) -> Vec<Option<usize>> {
        let index = self.index_by_key();
        self.cells
            .iter()
            .map(|c| {
                self.denominator_key(&c.key)
                    .and_then(|k| index.get(k.as_slice()).copied())
            })
            .collect()
    }

    /// The key of the denominator of `key`'s percentage: the dimensions of
    /// `percent_of` replaced by [`TOTAL`]. `None` when the table has no
    /// percentages or when `key` is already summed over all of them.
    pub fn denominator_key(&self, key: &[String]) -> Option<Vec<String>> {
        if self.percent_of.is_empty() {
            return None;
        }
        let mut out = key.to_vec();
        let mut changed = false;
        for d in &self.percent_of {
            let i = self.dims.iter().position(|x| x == d)?;
            if out[i] != TOTAL {
                out[i] = TOTAL.to_string();
                changed = true;
            }
        }
        changed.then_some(out)
    }
}
