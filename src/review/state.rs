//! Where the review of one queue stands: per study ID, open, decided by a
//! first reviewer, or confirmed by a second, rebuilt from the journal and
//! changed only by journal entries, so that the page and the journal can
//! never disagree.
//!
//! A study ID's answer is one of two: accept one candidate, or reject them
//! all. Before any answer is saved it is put through `dars run`'s own
//! checks (`link::decisions::check`) together with every decision it could
//! clash with (the same study ID, the same person accepted elsewhere, the
//! decisions file's earlier lines), so a reviewer cannot save a decision
//! that `dars run` would refuse.
//!
//! Second review: a second reviewer answers the study IDs a first
//! reviewer decided, without seeing that answer. The same answer confirms
//! it; another answer sends the study ID back to the queue, flagged, with
//! both answers kept for whoever settles it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::journal::{Entry, Role, Verdict};
use super::queue::Queue;
use crate::link::decisions::{self, Decision};
use crate::link::{DecisionProblemKind, DecisionsError};

/// One reviewer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub verdict: Verdict,
    pub reviewer: String,
    pub decided_on: NaiveDate,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Waiting for an answer; `disagreement` holds the two answers of a
    /// first and a second reviewer who did not agree.
    Open {
        disagreement: Option<(Call, Call)>,
    },
    Decided(Call),
    Confirmed(Call, Call),
}

impl Status {
    fn open() -> Self {
        Status::Open { disagreement: None }
    }

    /// The answer that would be written out, and who gave it.
    pub fn answer(&self) -> Option<(&Verdict, String, NaiveDate)> {
        match self {
            Status::Open { .. } => None,
            Status::Decided(c) => Some((&c.verdict, c.reviewer.clone(), c.decided_on)),
            Status::Confirmed(a, b) => Some((
                &a.verdict,
                format!("{}{CONFIRMED_BY}{}", a.reviewer, b.reviewer),
                b.decided_on,
            )),
        }
    }
}

/// How the decisions file records a confirmed decision's two reviewers in
/// its one `reviewer` column.
pub const CONFIRMED_BY: &str = ", confirmed by ";

#[derive(Debug, Clone)]
struct Slot {
    status: Status,
    /// `(seq, status before)` of each entry still in effect, oldest first.
    history: Vec<(u64, Status)>,
    /// Whether the journal ever touched this study ID (then the journal,
    /// not the decisions file, owns it).
    touched: bool,
}

/// Why an entry cannot be applied; shown to the reviewer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("study ID {0} is not in this review queue")]
    UnknownStudy(String),
    #[error("person {person_id} is not a candidate of study ID {study_id}")]
    NotACandidate { study_id: String, person_id: i64 },
    #[error("study ID {study_id} is already confirmed by two reviewers ({reviewers}); the second reviewer can undo it")]
    AlreadyConfirmed { study_id: String, reviewers: String },
    #[error("study ID {0} has no first decision to confirm")]
    NothingToConfirm(String),
    #[error("study ID {0} was decided by you: a second review is by someone else")]
    OwnDecision(String),
    #[error("{0}")]
    Rule(String),
    #[error("nothing of yours to undo")]
    NothingToUndo,
    #[error("cannot undo study ID {study_id}: {reviewer} has answered it since; they can undo theirs first")]
    AnsweredSince { study_id: String, reviewer: String },
    #[error("the journal undoes entry {0}, which is not the latest in effect for its study ID")]
    BadUndo(u64),
}

/// The change one entry makes, worked out before it is journaled.
#[derive(Debug, Clone)]
pub struct Change {
    slot: usize,
    seq: u64,
    reviewer: String,
    status: Status,
    undoes: Option<u64>,
}

impl Change {
    pub fn study(&self) -> usize {
        self.slot
    }

    pub fn undoes(&self) -> Option<u64> {
        self.undoes
    }
}

/// The review of one queue.
pub struct Review {
    pub queue: Queue,
    slots: Vec<Slot>,
    by_study: HashMap<String, usize>,
    /// Lines of the decisions file this review does not own (pairs no
    /// longer queued: already applied by the run), written back verbatim.
    earlier: Vec<Decision>,
    earlier_pairs: HashSet<(String, i64)>,
    earlier_by_study: HashMap<String, Vec<usize>>,
    earlier_accepts_by_person: HashMap<i64, Vec<usize>>,
    /// Study IDs (slots) whose current answer accepts the person.
    accepts_by_person: HashMap<i64, Vec<usize>>,
    /// Entries in effect, in order: `(seq, slot, reviewer)`.
    stack: Vec<(u64, usize, String)>,
    /// Persons of the queue and the earlier lines found in the index.
    exists: HashSet<i64>,
    /// Where the decisions are written (the agreement's `review_decisions`).
    pub decisions_path: PathBuf,
    next_seq: u64,
}

impl Review {
    pub fn new(queue: Queue, exists: HashSet<i64>, decisions_path: PathBuf) -> Self {
        let slots = vec![
            Slot {
                status: Status::open(),
                history: Vec::new(),
                touched: false,
            };
            queue.studies.len()
        ];
        let by_study = queue
            .studies
            .iter()
            .enumerate()
            .map(|(i, s)| (s.study_id.clone(), i))
            .collect();
        Self {
            queue,
            slots,
            by_study,
            earlier: Vec::new(),
            earlier_pairs: HashSet::new(),
            earlier_by_study: HashMap::new(),
            earlier_accepts_by_person: HashMap::new(),
            accepts_by_person: HashMap::new(),
            stack: Vec::new(),
            exists,
            decisions_path,
            next_seq: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn slot_of(&self, study_id: &str) -> Option<usize> {
        self.by_study.get(study_id).copied()
    }

    pub fn status(&self, slot: usize) -> &Status {
        &self.slots[slot].status
    }

    pub fn touched(&self, slot: usize) -> bool {
        self.slots[slot].touched
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn earlier(&self) -> &[Decision] {
        &self.earlier
    }

    /// Earlier lines of the decisions file about this study ID.
    pub fn earlier_of(&self, study_id: &str) -> Vec<&Decision> {
        self.earlier_by_study
            .get(study_id)
            .map(|v| v.iter().map(|&i| &self.earlier[i]).collect())
            .unwrap_or_default()
    }

    /// Keeps a line of the decisions file as it is.
    pub fn keep_earlier(&mut self, d: Decision) {
        let i = self.earlier.len();
        self.earlier_pairs.insert((d.study_id.clone(), d.person_id));
        self.earlier_by_study
            .entry(d.study_id.clone())
            .or_default()
            .push(i);
        if d.accept {
            self.earlier_accepts_by_person
                .entry(d.person_id)
                .or_default()
                .push(i);
        }
        self.earlier.push(d);
    }

    /// The rows a study ID's status writes to the decisions file.
    fn rows_of(&self, slot: usize, status: &Status, line: u64) -> Vec<Decision> {
        let Some((verdict, reviewer, decided_on)) = status.answer() else {
            return Vec::new();
        };
        let study = &self.queue.studies[slot];
        let row = |person_id, accept| Decision {
            line,
            study_id: study.study_id.clone(),
            person_id,
            accept,
            reviewer: reviewer.clone(),
            decided_on,
        };
        match verdict {
            Verdict::Accept { person_id } => vec![row(*person_id, true)],
            Verdict::RejectAll => {
                // A candidate the decisions file already rejects keeps
                // that line; writing it again would decide the pair twice.
                let before: HashSet<i64> = self
                    .earlier_of(&study.study_id)
                    .iter()
                    .filter(|d| !d.accept)
                    .map(|d| d.person_id)
                    .collect();
                study
                    .candidates
                    .iter()
                    .filter(|c| !before.contains(&c.person_id))
                    .map(|c| row(c.person_id, false))
                    .collect()
            }
        }
    }

    pub fn exists(&self, person_id: i64) -> bool {
        self.exists.contains(&person_id)
    }

    /// Whether `dars run` would find the pair in its queue: queued now, or
    /// an earlier line of the decisions file that this run applied.
    pub fn in_queue(&self, study_id: &str, person_id: i64) -> bool {
        self.slot_of(study_id)
            .is_some_and(|s| self.queue.studies[s].has_candidate(person_id))
            || self
                .earlier_pairs
                .contains(&(study_id.to_string(), person_id))
    }

    /// `dars run`'s checks on the new status of one study ID together with
    /// every row it could clash with.
    fn check_rules(&self, slot: usize, status: &Status) -> Result<(), Refusal> {
        const NEW: u64 = u64::MAX;
        const OTHER: u64 = 1 << 40;
        let new_rows = self.rows_of(slot, status, NEW);
        if new_rows.is_empty() {
            return Ok(());
        }
        let study_id = &self.queue.studies[slot].study_id;
        let mut rows: Vec<Decision> = self.earlier_of(study_id).into_iter().cloned().collect();
        let mut seen_slots = HashSet::new();
        for r in new_rows.iter().filter(|r| r.accept) {
            for &i in self
                .earlier_accepts_by_person
                .get(&r.person_id)
                .into_iter()
                .flatten()
            {
                if self.earlier[i].study_id != *study_id {
                    rows.push(self.earlier[i].clone());
                }
            }
            for &other in self
                .accepts_by_person
                .get(&r.person_id)
                .into_iter()
                .flatten()
            {
                if other != slot && seen_slots.insert(other) {
                    let line = OTHER + other as u64;
                    rows.extend(self.rows_of(other, &self.slots[other].status, line));
                }
            }
        }
        rows.extend(new_rows);
        let exists = |p: i64| self.exists.contains(&p);
        match decisions::check(
            &self.decisions_path,
            &rows,
            |s, p| self.in_queue(s, p),
            exists,
        ) {
            Ok(()) => Ok(()),
            Err(DecisionsError::Invalid { problems, .. }) => {
                let mine: Vec<String> = problems
                    .iter()
                    .filter(|p| p.line == NEW)
                    .map(|p| describe(&p.kind, &rows))
                    .collect();
                let all: Vec<String> = if mine.is_empty() {
                    problems.iter().map(|p| describe(&p.kind, &rows)).collect()
                } else {
                    mine
                };
                Err(Refusal::Rule(all.join("; ")))
            }
            Err(e) => Err(Refusal::Rule(e.to_string())),
        }
    }

    /// Works out what a decision would change, without changing anything.
    pub fn plan_decide(
        &self,
        study_id: &str,
        role: Role,
        reviewer: &str,
        verdict: Verdict,
        decided_on: NaiveDate,
        seq: u64,
    ) -> Result<Change, Refusal> {
        let slot = self
            .slot_of(study_id)
            .ok_or_else(|| Refusal::UnknownStudy(study_id.to_string()))?;
        if let Verdict::Accept { person_id } = verdict {
            if !self.queue.studies[slot].has_candidate(person_id) {
                return Err(Refusal::NotACandidate {
                    study_id: study_id.to_string(),
                    person_id,
                });
            }
        }
        let call = Call {
            verdict,
            reviewer: reviewer.to_string(),
            decided_on,
            seq,
        };
        let status = match (&self.slots[slot].status, role) {
            (Status::Confirmed(a, b), _) => {
                return Err(Refusal::AlreadyConfirmed {
                    study_id: study_id.to_string(),
                    reviewers: format!("{} and {}", a.reviewer, b.reviewer),
                })
            }
            (Status::Open { .. } | Status::Decided(_), Role::First) => Status::Decided(call),
            (Status::Open { .. }, Role::Second) => {
                return Err(Refusal::NothingToConfirm(study_id.to_string()))
            }
            (Status::Decided(first), Role::Second) => {
                if first.reviewer == reviewer {
                    return Err(Refusal::OwnDecision(study_id.to_string()));
                }
                if first.verdict == verdict {
                    Status::Confirmed(first.clone(), call)
                } else {
                    Status::Open {
                        disagreement: Some((first.clone(), call)),
                    }
                }
            }
        };
        self.check_rules(slot, &status)?;
        Ok(Change {
            slot,
            seq,
            reviewer: reviewer.to_string(),
            status,
            undoes: None,
        })
    }

    /// Works out undoing the reviewer's latest entry still in effect (or,
    /// replaying the journal, the entry `undoes`).
    pub fn plan_undo(
        &self,
        reviewer: &str,
        undoes: Option<u64>,
        seq: u64,
    ) -> Result<Change, Refusal> {
        let found = match undoes {
            Some(target) => self.stack.iter().rev().find(|(s, _, _)| *s == target),
            None => self.stack.iter().rev().find(|(_, _, r)| r == reviewer),
        };
        let Some((target, slot, _)) = found else {
            return Err(match undoes {
                Some(t) => Refusal::BadUndo(t),
                None => Refusal::NothingToUndo,
            });
        };
        let s = &self.slots[*slot];
        let Some((top, before)) = s.history.last() else {
            return Err(Refusal::BadUndo(*target));
        };
        if top != target {
            let since = self
                .stack
                .iter()
                .rev()
                .find(|(q, _, _)| q == top)
                .map(|(_, _, r)| r.clone())
                .unwrap_or_default();
            return Err(Refusal::AnsweredSince {
                study_id: self.queue.studies[*slot].study_id.clone(),
                reviewer: since,
            });
        }
        Ok(Change {
            slot: *slot,
            seq,
            reviewer: reviewer.to_string(),
            status: before.clone(),
            undoes: Some(*target),
        })
    }

    /// Applies a planned change (after it is journaled).
    pub fn commit(&mut self, change: Change) {
        let slot = change.slot;
        let old = std::mem::replace(&mut self.slots[slot].status, change.status);
        self.unindex(slot, &old);
        let new = self.slots[slot].status.clone();
        self.index(slot, &new);
        let s = &mut self.slots[slot];
        s.touched = true;
        match change.undoes {
            Some(target) => {
                s.history.pop();
                self.stack.retain(|(q, _, _)| *q != target);
            }
            None => {
                s.history.push((change.seq, old));
                self.stack.push((change.seq, slot, change.reviewer));
            }
        }
        self.next_seq = self.next_seq.max(change.seq + 1);
    }

    fn index(&mut self, slot: usize, status: &Status) {
        if let Some((Verdict::Accept { person_id }, _, _)) = status.answer() {
            self.accepts_by_person
                .entry(*person_id)
                .or_default()
                .push(slot);
        }
    }

    fn unindex(&mut self, slot: usize, status: &Status) {
        if let Some((Verdict::Accept { person_id }, _, _)) = status.answer() {
            if let Some(v) = self.accepts_by_person.get_mut(person_id) {
                v.retain(|&s| s != slot);
            }
        }
    }

    /// Replays one journal entry.
    pub fn replay(&mut self, entry: &Entry) -> Result<(), Refusal> {
        let change = match entry {
            Entry::Header { .. } => return Ok(()),
            Entry::Decide {
                seq,
                reviewer,
                role,
                study_id,
                verdict,
                decided_on,
                ..
            } => {
                let on = parse_day(decided_on).ok_or_else(|| {
                    Refusal::Rule(format!("decided_on `{decided_on}` is not a date"))
                })?;
                self.plan_decide(study_id, *role, reviewer, *verdict, on, *seq)?
            }
            Entry::Undo {
                seq,
                reviewer,
                undoes,
                ..
            } => self.plan_undo(reviewer, Some(*undoes), *seq)?,
        };
        self.commit(change);
        Ok(())
    }

    /// Every row of the decisions file, as it would be written: the earlier
    /// lines, then the answers in queue order. Lines are numbered as in the
    /// file (the header is line 1).
    pub fn output_rows(&self) -> Vec<Decision> {
        let mut rows: Vec<Decision> = self.earlier.clone();
        for slot in 0..self.slots.len() {
            rows.extend(self.rows_of(slot, &self.slots[slot].status, 0));
        }
        for (i, r) in rows.iter_mut().enumerate() {
            r.line = i as u64 + 2;
        }
        rows
    }

    /// `dars run`'s checks on the whole file as it would be written.
    pub fn check_all(&self) -> Result<(), DecisionsError> {
        let rows = self.output_rows();
        decisions::check(
            &self.decisions_path,
            &rows,
            |s, p| self.in_queue(s, p),
            |p| self.exists.contains(&p),
        )
    }

    /// Counts for the progress bar.
    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            studies: self.slots.len(),
            earlier_lines: self.earlier.len(),
            ..Default::default()
        };
        for s in &self.slots {
            match &s.status {
                Status::Open { disagreement } => {
                    c.left += 1;
                    if disagreement.is_some() {
                        c.flagged += 1;
                    }
                }
                Status::Decided(call) | Status::Confirmed(call, _) => {
                    c.decided += 1;
                    match call.verdict {
                        Verdict::Accept { .. } => c.accepted += 1,
                        Verdict::RejectAll => c.rejected += 1,
                    }
                    if matches!(s.status, Status::Confirmed(..)) {
                        c.confirmed += 1;
                    }
                }
            }
        }
        c
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub studies: usize,
    pub decided: usize,
    pub left: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub confirmed: usize,
    pub flagged: usize,
    pub earlier_lines: usize,
}

pub fn parse_day(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// A problem of `dars run`'s checks in the reviewer's words: study IDs and
/// person ids only.
fn describe(kind: &DecisionProblemKind, rows: &[Decision]) -> String {
    use DecisionProblemKind as K;
    let study_at = |line: u64| {
        rows.iter()
            .find(|r| r.line == line)
            .map(|r| r.study_id.clone())
            .unwrap_or_default()
    };
    match kind {
        K::UnknownPerson { person_id } => format!(
            "person {person_id} is not in the master person index any more: run `dars run --dry-run` for a fresh queue"
        ),
        K::NotInQueue {
            study_id,
            person_id,
        } => format!("study ID {study_id} with person {person_id} is not a pair of this queue"),
        K::DecidedTwice { first_line } => format!(
            "this pair is already decided ({})",
            if *first_line == u64::MAX {
                "in this review".to_string()
            } else {
                let s = study_at(*first_line);
                format!("for study ID {s}")
            }
        ),
        K::StudyAcceptedTwice { study_id, .. } => {
            format!("study ID {study_id} already has an accepted person")
        }
        K::PersonAcceptedTwice {
            person_id,
            first_study_id,
            ..
        } => format!(
            "person {person_id} is already accepted for study ID {first_study_id}: one person is one study ID (undo that decision first)"
        ),
        other => format!("{other:?}"),
    }
}

/// Reads the agreement's decisions file, if there is one.
pub fn read_decisions(path: &Path) -> Result<Vec<Decision>, DecisionsError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    decisions::read(path)
}
