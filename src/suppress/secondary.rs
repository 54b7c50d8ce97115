//! Secondary (complementary) suppression: more `*` so that no suppressed
//! cell can be worked out from the margins.
//!
//! Two passes, cheapest first:
//! 1. The singleton rule: a sum with exactly one `*` whose other members
//!    are all published exactly gives that cell away, so the cheapest
//!    eligible other member is suppressed too, until no sum has a lone `*`.
//! 2. The LP check: each suppressed cell's interval is checked as the
//!    audit does; while one is narrower than the rule's protection, the
//!    cheapest eligible cell sharing a sum with it (or, failing that, with
//!    a `*` beside it) is suppressed, in rounds (see [`complement`]).
//!    Suppressing more only widens every interval, so a cell that passed
//!    stays passed and the loop ends.
//!
//! "Cheapest" is the smallest count (the least information lost), interior
//! cells before margins, then a fixed order so that runs are reproducible.
//! The national total released as computed and true zeros are never
//! complementary cells.

use std::collections::VecDeque;

use super::audit::{Lp, SolverError};
use super::model::{Model, Status};

/// Suppresses complementary cells; returns how many.
///
/// In rounds: one programme per round (seeded by pushing every pending
/// cell down and up at once), every pending cell checked against it, then
/// one complementary cell for each failing cell, except that a failing
/// cell sharing a sum with a cell added this round waits for the next
/// round (the new `*` may be all it needed). A check only needs to know
/// that the interval is wide enough: two feasible points already that far
/// apart prove it without a programme of the cell's own.
pub(crate) fn complement(model: &mut Model, warm_starts: bool) -> Result<usize, SolverError> {
    if !model
        .nodes
        .iter()
        .enumerate()
        .any(|(n, node)| node.status.suppressed() && model.wants_secondary(n))
    {
        return Ok(0);
    }
    let mut added = singletons(model, (0..model.relations.len()).collect());
    let mut pending: Vec<usize> = (0..model.nodes.len())
        .filter(|&n| model.nodes[n].status.suppressed() && model.wants_secondary(n))
        .collect();
    let mut guard = model.nodes.len() + 1;
    while !pending.is_empty() && guard > 0 {
        let mut lp = Lp::build(model, warm_starts);
        lp.seed(&pending)?;
        let mut failing = Vec::new();
        for &n in &pending {
            if !lp.passes(n, target(model, n))? {
                failing.push(n);
            }
        }
        if failing.is_empty() {
            break;
        }
        let before: Vec<bool> = model.nodes.iter().map(|x| x.status.suppressed()).collect();
        let mut touched = vec![false; model.relations.len()];
        let mut next = Vec::new();
        for n in failing {
            if model.member_of[n].iter().any(|&r| touched[r]) {
                next.push(n);
                continue;
            }
            let Some(pick) = candidate(model, n) else {
                // Nothing left to suppress near it: the audit will say so.
                continue;
            };
            model.nodes[pick].status = Status::Secondary;
            added += 1;
            let relations = model.member_of[pick].clone();
            for &r in &relations {
                touched[r] = true;
            }
            added += singletons(model, relations);
            next.push(n);
            guard -= 1;
            if guard == 0 {
                break;
            }
        }
        // Only the new cells need checking besides: the others only gained.
        next.extend((0..model.nodes.len()).filter(|&m| {
            !before[m] && model.nodes[m].status.suppressed() && model.required_width(m).is_some()
        }));
        pending = next;
    }
    Ok(added)
}

/// The width a suppressed cell must keep while choosing complements.
fn target(model: &Model, node: usize) -> u64 {
    model.nodes[node]
        .occurrences
        .iter()
        .map(|&(t, _)| model.profile(t).protection)
        .max()
        .unwrap_or(1)
}

/// Pass 1 from the given relations; returns how many cells were added.
fn singletons(model: &mut Model, start: Vec<usize>) -> usize {
    let mut work: VecDeque<usize> = start.into();
    let mut added = 0;
    while let Some(r) = work.pop_front() {
        let rel = &model.relations[r];
        if !rel.additive {
            continue;
        }
        let suppressed: Vec<usize> = rel
            .members()
            .filter(|&m| model.nodes[m].status.suppressed())
            .collect();
        if suppressed.len() != 1 || !model.wants_secondary(suppressed[0]) {
            continue;
        }
        let others_exact = rel
            .members()
            .filter(|&m| m != suppressed[0])
            .all(|m| model.exact(m));
        if !others_exact {
            continue;
        }
        let pick = rel
            .members()
            .filter(|&m| model.eligible(m))
            .min_by_key(|&m| model.cost(m));
        if let Some(pick) = pick {
            model.nodes[pick].status = Status::Secondary;
            added += 1;
            work.extend(model.member_of[pick].iter().copied());
        }
    }
    added
}

/// The cheapest eligible cell sharing a sum with `node`; failing that,
/// sharing a sum with a `*` that shares one with `node`, and so on outwards
/// through suppressed cells.
fn candidate(model: &Model, node: usize) -> Option<usize> {
    let mut visited = vec![false; model.nodes.len()];
    visited[node] = true;
    let mut frontier = vec![node];
    while !frontier.is_empty() {
        let near: Vec<usize> = frontier
            .iter()
            .flat_map(|&n| model.member_of[n].iter())
            .flat_map(|&r| model.relations[r].members())
            .collect();
        if let Some(best) = near
            .iter()
            .copied()
            .filter(|&m| model.eligible(m))
            .min_by_key(|&m| model.cost(m))
        {
            return Some(best);
        }
        frontier.clear();
        for m in near {
            if !visited[m] && model.nodes[m].status.suppressed() {
                visited[m] = true;
                frontier.push(m);
            }
        }
    }
    None
}
