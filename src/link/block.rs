//! Candidate generation: blocking on a union of keys, with polars joins.
//!
//! Each [`Key`] is a set of columns; a cohort row and a person of the index
//! are compared when they share the values of every column of at least one
//! key. Before any pair is made, the size of every block (the people of the
//! index sharing one key value) is counted with a semi-join and a group-by,
//! so that the comparisons are known up front: a block larger than
//! `max_block` is dropped and reported, and if the total still exceeds
//! `max_comparisons` the largest remaining blocks are dropped until it
//! fits. Memory is therefore bounded by `max_comparisons`, whatever the
//! data, and the report says what was left out and why.

use polars::prelude::*;

use super::index::{column, Index};
use super::LinkError;

/// A blocking key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// The cohort's valid NHS number.
    NhsNumber,
    /// The valid numbers one edit or one transposition away from a number
    /// that fails modulus 11.
    NhsNumberNeighbour,
    DobDistrict,
    SwappedDobDistrict,
    DobSurnameInitial,
    SwappedDobSurnameInitial,
    /// Forename, the Soundex code of the surname and year of birth: the
    /// exact names and year, and a surname typo that keeps its sound.
    NamesYear,
    /// Date of birth and forename: finds the married who moved (new
    /// surname, new postcode) when the NHS number is missing.
    DobForename,
    /// Postcode in full and year of birth: a day or month typo at home.
    PostcodeYear,
    /// Forename, surname and postcode district: a row without a usable
    /// date of birth.
    NamesDistrict,
    /// Date of birth with the cohort's surname looked up as a forename:
    /// names given the other way round.
    SwappedNamesDob,
    /// Postcode in full and forename: a wrong date of birth and a new
    /// surname at the same address.
    PostcodeForename,
}

impl Key {
    pub const ALL: [Key; 12] = [
        Self::NhsNumber,
        Self::NhsNumberNeighbour,
        Self::DobDistrict,
        Self::SwappedDobDistrict,
        Self::DobSurnameInitial,
        Self::SwappedDobSurnameInitial,
        Self::NamesYear,
        Self::DobForename,
        Self::PostcodeYear,
        Self::NamesDistrict,
        Self::SwappedNamesDob,
        Self::PostcodeForename,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::NhsNumber => "nhs_number",
            Self::NhsNumberNeighbour => "nhs_number_one_edit",
            Self::DobDistrict => "dob+district",
            Self::SwappedDobDistrict => "swapped_dob+district",
            Self::DobSurnameInitial => "dob+surname_initial",
            Self::SwappedDobSurnameInitial => "swapped_dob+surname_initial",
            Self::NamesYear => "forename+surname_soundex+year",
            Self::DobForename => "dob+forename",
            Self::PostcodeYear => "postcode+year",
            Self::NamesDistrict => "forename+surname+district",
            Self::SwappedNamesDob => "dob+swapped_names",
            Self::PostcodeForename => "postcode+forename",
        }
    }

    /// The columns joined on (the cohort's key frame names them the same).
    pub fn columns(self) -> &'static [&'static str] {
        use column::*;
        match self {
            Self::NhsNumber | Self::NhsNumberNeighbour => &[NHS_NUMBER],
            Self::DobDistrict | Self::SwappedDobDistrict => &[DOB, DISTRICT],
            Self::DobSurnameInitial | Self::SwappedDobSurnameInitial => &[DOB, SURNAME_INITIAL],
            Self::NamesYear => &[FORENAME_KEY, SURNAME_SOUNDEX, YEAR],
            Self::DobForename => &[DOB, FORENAME_KEY],
            Self::PostcodeYear => &[POSTCODE, YEAR],
            Self::NamesDistrict => &[FORENAME_KEY, SURNAME_KEY, DISTRICT],
            Self::SwappedNamesDob => &[DOB, FORENAME_KEY],
            Self::PostcodeForename => &[POSTCODE, FORENAME_KEY],
        }
    }

    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The names of the keys in a mask, joined with `;`.
    pub fn names_of(mask: u16) -> String {
        Self::ALL
            .iter()
            .filter(|k| mask & k.bit() != 0)
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// What one key did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyReport {
    pub key: &'static str,
    /// Cohort key values looked up (a row may have several, for example
    /// the neighbours of a failed NHS number).
    pub lookups: usize,
    /// Comparisons the key asked for (cohort lookups times block sizes).
    pub comparisons: u64,
    /// Lookups left out because their block was too big, and the
    /// comparisons they would have cost.
    pub capped_lookups: usize,
    pub capped_comparisons: u64,
}

/// What blocking did, per key, for the run summary and the bench.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BlockingReport {
    pub keys: Vec<KeyReport>,
    pub max_block: usize,
    pub max_comparisons: u64,
}

impl BlockingReport {
    pub fn comparisons(&self) -> u64 {
        self.keys.iter().map(|k| k.comparisons).sum()
    }
    pub fn capped_comparisons(&self) -> u64 {
        self.keys.iter().map(|k| k.capped_comparisons).sum()
    }

    fn merge(&mut self, other: BlockingReport) {
        for k in other.keys {
            match self.keys.iter_mut().find(|r| r.key == k.key) {
                Some(r) => {
                    r.lookups += k.lookups;
                    r.comparisons += k.comparisons;
                    r.capped_lookups += k.capped_lookups;
                    r.capped_comparisons += k.capped_comparisons;
                }
                None => self.keys.push(k),
            }
        }
        self.max_block = other.max_block;
        self.max_comparisons = other.max_comparisons;
    }
}

/// A candidate pair: cohort row, index row, and the keys that found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pair {
    pub row: u32,
    pub idx: u32,
    pub keys: u16,
}

/// Blocking limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_block: usize,
    pub max_comparisons: u64,
}

/// The candidate pairs of the cohort key frames `lookups` (each with a
/// `row` column and its key's columns), deduplicated, sorted by row then
/// index row, and what each key cost. `report` accumulates across calls.
pub fn candidates(
    index: &Index,
    lookups: Vec<(Key, DataFrame)>,
    limits: Limits,
    report: &mut BlockingReport,
) -> Result<Vec<Pair>, LinkError> {
    let wrap = |source| LinkError::Demographics { source };
    // 1. Block sizes, before any pair is made: the people of the index
    // in a wanted block, grouped. Keys on the same columns (a date of birth
    // and the same date swapped) share one semi-join pass over the index,
    // on the union of their wanted values.
    let lookups: Vec<(Key, DataFrame)> = lookups
        .into_iter()
        .filter(|(_, f)| f.height() > 0)
        .collect();
    let mut passes: Vec<(&'static [&'static str], DataFrame, LazyFrame)> = Vec::new();
    for (key, _) in &lookups {
        let columns = key.columns();
        if passes.iter().any(|(c, _, _)| *c == columns) {
            continue;
        }
        let on: Vec<Expr> = columns.iter().map(|c| col(*c)).collect();
        let wanted: Vec<LazyFrame> = lookups
            .iter()
            .filter(|(k, _)| k.columns() == columns)
            .map(|(_, frame)| frame.clone().lazy().select(on.clone()))
            .collect();
        let wanted = concat(wanted, UnionArgs::default())
            .map_err(wrap)?
            .unique(None, UniqueKeepStrategy::Any);
        let mut index_side = vec![col(column::IDX)];
        index_side.extend(on.clone());
        let members = index
            .frame
            .clone()
            .lazy()
            .select(index_side)
            .join(
                wanted,
                on.clone(),
                on.clone(),
                JoinArgs::new(JoinType::Semi),
            )
            .collect()
            .map_err(wrap)?;
        let sizes = members
            .clone()
            .lazy()
            .group_by(on)
            .agg([len().cast(DataType::UInt64).alias("block")])
            .collect()
            .map_err(wrap)?
            .lazy();
        passes.push((columns, members, sizes));
    }
    let mut sized = Vec::with_capacity(lookups.len());
    for (key, frame) in lookups {
        let Some((_, members, sizes)) = passes.iter().find(|(c, _, _)| *c == key.columns()) else {
            // Every key with a lookup had its pass above.
            continue;
        };
        let on: Vec<Expr> = key.columns().iter().map(|c| col(*c)).collect();
        let with_sizes = frame
            .lazy()
            .join(sizes.clone(), on.clone(), on, JoinArgs::new(JoinType::Left))
            .with_column(col("block").fill_null(lit(0u64)))
            .collect()
            .map_err(wrap)?;
        let blocks: Vec<u64> = with_sizes
            .column("block")
            .map_err(wrap)?
            .u64()
            .map_err(wrap)?
            .into_no_null_iter()
            .collect();
        sized.push((key, with_sizes, blocks, members.clone()));
    }

    // 2. Caps: every block above `max_block`, then the largest blocks
    // until the total fits `max_comparisons`.
    let mut keep: Vec<Vec<bool>> = sized
        .iter()
        .map(|(_, _, b, _)| b.iter().map(|&n| n as usize <= limits.max_block).collect())
        .collect();
    let mut total: u64 = sized
        .iter()
        .zip(&keep)
        .flat_map(|((_, _, b, _), k)| b.iter().zip(k).filter(|(_, &k)| k).map(|(n, _)| *n))
        .sum();
    if total > limits.max_comparisons {
        let mut order: Vec<(u64, usize, usize)> = sized
            .iter()
            .enumerate()
            .flat_map(|(s, (_, _, b, _))| b.iter().enumerate().map(move |(i, &n)| (n, s, i)))
            .filter(|&(_, s, i)| keep[s][i])
            .collect();
        order.sort_unstable_by(|a, b| b.cmp(a));
        for (n, s, i) in order {
            if total <= limits.max_comparisons {
                break;
            }
            keep[s][i] = false;
            total -= n;
        }
    }

    // 3. Pairs, by an inner join of the kept lookups with the index.
    let mut pairs = Vec::new();
    let mut this = BlockingReport {
        keys: Vec::new(),
        max_block: limits.max_block,
        max_comparisons: limits.max_comparisons,
    };
    for ((key, frame, blocks, members), kept) in sized.into_iter().zip(keep) {
        let mut r = KeyReport {
            key: key.name(),
            lookups: blocks.len(),
            ..Default::default()
        };
        for (n, k) in blocks.iter().zip(&kept) {
            r.comparisons += n;
            if !k {
                r.capped_lookups += 1;
                r.capped_comparisons += n;
            }
        }
        if r.capped_lookups > 0 {
            tracing::warn!(
                key = key.name(),
                capped_lookups = r.capped_lookups,
                capped_comparisons = r.capped_comparisons,
                max_block = limits.max_block,
                "blocking key capped: blocks too big were left out"
            );
        }
        this.keys.push(r);
        let mask = BooleanChunked::from_slice("keep".into(), &kept);
        let frame = frame.filter(&mask).map_err(wrap)?;
        if frame.height() == 0 {
            continue;
        }
        let on: Vec<Expr> = key.columns().iter().map(|c| col(*c)).collect();
        let mut cohort_side = vec![col(column::ROW)];
        cohort_side.extend(on.clone());
        let joined = frame
            .lazy()
            .select(cohort_side)
            .join(
                members.lazy(),
                on.clone(),
                on,
                JoinArgs::new(JoinType::Inner),
            )
            .select([
                col(column::ROW).cast(DataType::UInt32),
                col(column::IDX).cast(DataType::UInt32),
            ])
            .collect()
            .map_err(wrap)?;
        let rows = joined
            .column(column::ROW)
            .map_err(wrap)?
            .u32()
            .map_err(wrap)?;
        let idxs = joined
            .column(column::IDX)
            .map_err(wrap)?
            .u32()
            .map_err(wrap)?;
        pairs.extend(
            rows.into_no_null_iter()
                .zip(idxs.into_no_null_iter())
                .map(|(row, idx)| Pair {
                    row,
                    idx,
                    keys: key.bit(),
                }),
        );
    }
    report.merge(this);
    Ok(merge_pairs(pairs))
}

/// Sorts pairs by row and index row and merges the keys of duplicates.
pub fn merge_pairs(mut pairs: Vec<Pair>) -> Vec<Pair> {
    pairs.sort_unstable();
    let mut out: Vec<Pair> = Vec::with_capacity(pairs.len());
    for p in pairs {
        match out.last_mut() {
            Some(last) if last.row == p.row && last.idx == p.idx => last.keys |= p.keys,
            _ => out.push(p),
        }
    }
    out
}
