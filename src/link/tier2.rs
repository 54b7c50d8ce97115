//! Tier 2, candidates: blocking for every row tier 1 did not validate,
//! comparing every candidate pair once, estimating the model on those
//! pairs and tier 1's, then scoring and queueing (see `candidates`).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use rayon::prelude::*;

use super::block::{self, BlockingReport, Key, Limits, Pair};
use super::candidates::{self, QueueEntry, RowPairs, RowWeights, Scoring};
use super::estimate::{self, EmData, ModelSummary};
use super::index::Index;
use super::model::{Model, NhsGroup};
use super::tier1::CrossCheck;
use super::{ranges_by_row, LinkError};
use crate::ingest::CohortRow;

pub struct Input<'a> {
    pub index: &'a Index,
    /// Measured `u`; `m` is estimated here, in place.
    pub model: &'a mut Model,
    pub rows: &'a [CohortRow],
    pub checks: &'a [CrossCheck],
    /// Tier 1's pairs: each row with the people holding its NHS number.
    pub nhs_pairs: &'a [Pair],
    pub scoring: &'a Scoring,
    pub limits: Limits,
    pub blocking: &'a mut BlockingReport,
}

pub struct Tier2 {
    /// Queue entries of the rows with a candidate above the bar, in cohort
    /// order.
    pub queue: Vec<QueueEntry>,
    /// Rows whose candidates all fell below the bar: their best score.
    pub best_below: HashMap<usize, f64>,
    /// Rows tier 2 looked at.
    pub rows: usize,
    pub model: ModelSummary,
    pub estimate_seconds: f64,
}

pub fn run(input: Input<'_>) -> Result<Tier2, LinkError> {
    let Input {
        index,
        model,
        rows,
        checks,
        nhs_pairs,
        scoring,
        limits,
        blocking,
    } = input;
    let wanted: Vec<u32> = checks
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c, CrossCheck::Candidates { .. }))
        .map(|(i, _)| i as u32)
        .collect();
    let lookups = candidates::lookups(index, rows, &wanted, scoring.names);
    let narrowing = |row: u32| {
        let r = &rows[row as usize];
        block::Narrowing::of(r.gender, r.postcode.as_ref().map(|p| p.as_str()))
    };
    let mut pairs = block::candidates_narrowed(index, lookups, &narrowing, limits, blocking)?;
    let wanted_set: HashSet<u32> = wanted.iter().copied().collect();
    pairs.extend(
        nhs_pairs
            .iter()
            .filter(|p| wanted_set.contains(&p.row))
            .copied(),
    );
    let pairs = block::merge_pairs(pairs);
    let ranges = ranges_by_row(&pairs, rows.len());

    // Compare every pair once.
    let compared: Vec<RowPairs> = wanted
        .par_iter()
        .map(|&w| {
            let w = w as usize;
            candidates::compare_row(scoring, index, &rows[w], &pairs[ranges[w].clone()])
        })
        .collect();
    drop(pairs);

    // Estimate on every k-th row with pairs: tier 1's validated rows (one
    // pair each, the holder) and tier 2's, in cohort order.
    let started = Instant::now();
    let validated = checks
        .iter()
        .filter(|c| matches!(c, CrossCheck::Validated { .. }))
        .count();
    let stride = (validated + wanted.len())
        .div_ceil(estimate::MAX_ROWS)
        .max(1);
    let mut em = EmData::default();
    let base = RowWeights::base(model);
    let mut next_wanted = 0usize;
    let mut seen = 0usize;
    for (i, check) in checks.iter().enumerate() {
        let take = match check {
            CrossCheck::Invalid => continue,
            _ => {
                seen += 1;
                (seen - 1) % stride == 0
            }
        };
        match check {
            CrossCheck::Validated { idx, .. } => {
                if take {
                    let holder = [Pair {
                        row: i as u32,
                        idx: *idx,
                        keys: Key::NhsNumber.bit(),
                    }];
                    let rp = candidates::compare_row(scoring, index, &rows[i], &holder);
                    let table =
                        RowWeights::new(&base, model, &rp.prepared(&rows[i], scoring.names));
                    em.push_row(
                        rp.pairs.iter().map(|p| table.em_pair(&p.levels)),
                        NhsGroup::Held,
                    );
                }
            }
            CrossCheck::Candidates { .. } => {
                let k = next_wanted;
                next_wanted += 1;
                if take {
                    let rp = &compared[k];
                    let table =
                        RowWeights::new(&base, model, &rp.prepared(&rows[i], scoring.names));
                    em.push_row(rp.pairs.iter().map(|p| table.em_pair(&p.levels)), rp.group);
                }
            }
            CrossCheck::Invalid => {}
        }
    }
    let summary = estimate::estimate(model, &em);
    drop(em);
    let estimate_seconds = started.elapsed().as_secs_f64();

    // Score and queue under the estimated model.
    let model = &*model;
    let base = RowWeights::base(model);
    let scored: Vec<candidates::Scored> = wanted
        .par_iter()
        .zip(compared.par_iter())
        .map(|(&w, rp)| {
            let w = w as usize;
            candidates::queue_entry(model, &base, scoring, index, w, &rows[w], rp)
        })
        .collect();
    let mut best_below: HashMap<usize, f64> = HashMap::new();
    let mut queue = Vec::with_capacity(scored.len());
    for (s, &w) in scored.into_iter().zip(&wanted) {
        match s {
            Ok(entry) => queue.push(entry),
            Err(Some(best)) => {
                best_below.insert(w as usize, best);
            }
            Err(None) => {}
        }
    }
    Ok(Tier2 {
        queue,
        best_below,
        rows: wanted.len(),
        model: summary,
        estimate_seconds,
    })
}
