//! Tier 3, reviewed: the agreement's `review_decisions` file (parsed and
//! checked by `decisions`) applied to the current queue. Each accepted
//! pair becomes `reviewed`; rejected pairs leave the queue; a study ID
//! whose candidates are all rejected is `unmatched`.

use std::collections::{HashMap, HashSet};

use super::candidates::{self, Candidate, QueueEntry};
use super::decisions;
use super::index::Index;
use super::{LinkConfig, LinkError};

/// What the decisions did, by cohort position.
#[derive(Debug, Default)]
pub struct Reviewed {
    /// Accepted pairs and the reason to give.
    pub accepted: HashMap<usize, (Candidate, String)>,
    /// Rows whose every candidate was rejected.
    pub rejected_all: HashSet<usize>,
    pub accepted_count: usize,
    pub rejected_count: usize,
}

/// Reads, checks and applies the decisions file, if the agreement has one.
/// Rejected candidates are removed from `queue` (and ambiguity rechecked).
pub fn apply(
    index: &Index,
    queue: &mut [QueueEntry],
    config: &LinkConfig,
) -> Result<Reviewed, LinkError> {
    let mut out = Reviewed::default();
    let Some(path) = &config.review_decisions else {
        return Ok(out);
    };
    let decisions = decisions::read(path)?;
    let by_study: HashMap<&str, usize> = queue
        .iter()
        .enumerate()
        .map(|(i, e)| (e.study_id.as_str(), i))
        .collect();
    let existing = existing_people(index, decisions.iter().map(|d| d.person_id));
    decisions::check(
        path,
        &decisions,
        |study, person| {
            by_study
                .get(study)
                .is_some_and(|&i| queue[i].candidates.iter().any(|c| c.person_id == person))
        },
        |person| existing.contains(&person),
    )?;
    let mut rejected: HashSet<(&str, i64)> = HashSet::new();
    let mut accepts: HashMap<&str, &decisions::Decision> = HashMap::new();
    for d in &decisions {
        if d.accept {
            out.accepted_count += 1;
            accepts.insert(d.study_id.as_str(), d);
        } else {
            out.rejected_count += 1;
            rejected.insert((d.study_id.as_str(), d.person_id));
        }
    }
    for entry in queue.iter_mut() {
        if let Some(d) = accepts.get(entry.study_id.as_str()) {
            if let Some(c) = entry.candidates.iter().find(|c| c.person_id == d.person_id) {
                let reason = format!(
                    "accepted in review by {} on {} (decisions line {})",
                    d.reviewer, d.decided_on, d.line
                );
                out.accepted.insert(entry.row, (c.clone(), reason));
            }
            continue;
        }
        let before = entry.candidates.len();
        entry
            .candidates
            .retain(|c| !rejected.contains(&(entry.study_id.as_str(), c.person_id)));
        if entry.candidates.is_empty() {
            out.rejected_all.insert(entry.row);
        } else if entry.candidates.len() != before {
            entry.ambiguous = candidates::is_ambiguous(&entry.candidates, config.ambiguity_margin);
        }
    }
    Ok(out)
}

/// Which of `people` exist in the index.
fn existing_people(index: &Index, people: impl Iterator<Item = i64>) -> HashSet<i64> {
    let wanted: HashSet<i64> = people.collect();
    index.person_ids().filter(|p| wanted.contains(p)).collect()
}
