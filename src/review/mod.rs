//! Clerical review (`dars review`): a page on 127.0.0.1 where a reviewer
//! works through a run's review queue one study ID at a time, and the
//! answers become the agreement's `review_decisions` file that the next
//! `dars run` applies (DESIGN.md, "Review decisions").
//!
//! - `queue`: reads `review_queue.csv` and `linkage.csv` by header names.
//! - `journal`: every answer appended and fsynced before the page shows it
//!   saved; the journal, not the server's memory, is the record.
//! - `state`: where each study ID stands, rebuilt from the journal, with
//!   `dars run`'s own checks on every answer before it is saved.
//! - `server`: the HTTP side: loopback only, a fresh token per start, every
//!   asset embedded, nothing sent that the reviewer does not look at.
//!
//! Opening a review finds the run (the latest with a queue, or `--run`),
//! refuses a queue that no longer matches the linkage, replays the
//! journal, and carries decisions over from the decisions file (and from
//! an earlier run's journal over the same queue), so that a new run or a
//! restart never hides a decision already made.
//!
//! Logs carry study IDs and counts only.

pub mod journal;
pub mod levels;
pub mod queue;
pub mod server;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use polars::prelude::*;
use tracing::{info, warn};

use crate::config::{Agreement, Site};
use crate::link::decisions::Decision;
use crate::link::DecisionsError;
pub use journal::{Entry, Journal, JournalError, Role, Verdict};
pub use queue::{Queue, QueueError};
pub use state::{Refusal, Review, Status};

/// How this review runs (flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// A run id, or the latest run with a queue.
    pub run: Option<String>,
    pub reviewer: String,
    pub role: Role,
    pub today: NaiveDate,
}

/// An open review: the state, its journal and where it came from.
pub struct Session {
    pub review: Review,
    pub journal: Journal,
    pub reference: String,
    pub run_id: String,
    pub run_dir: PathBuf,
    pub reviewer: String,
    pub role: Role,
    pub today: NaiveDate,
    /// What opening did, in counts (shown on start and in the page).
    pub notes: Vec<String>,
}

/// What opening found.
pub enum Opened {
    /// The run queued nothing: there is nothing to review.
    NoQueue {
        run_id: String,
    },
    Ready(Box<Session>),
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no run of {reference} has a review queue yet (looked in {})\n  fix: run `dars run --dry-run AGREEMENT` first: it writes the run's review_queue.csv", runs_dir.display())]
    NoRun {
        reference: String,
        runs_dir: PathBuf,
    },
    #[error("--run {run_id}: no such run of {reference} with a review queue; {}\n  fix: leave out --run for the latest, or pick one of those", if runs.is_empty() { "there are none".to_string() } else { format!("the runs are: {}", runs.join(", ")) })]
    UnknownRun {
        run_id: String,
        reference: String,
        runs: Vec<String>,
    },
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("the review queue of run {run_id} does not match its own linkage.csv ({differ} study IDs are queued in one and not the other): it is a queue from another run\n  fix: {}", suggest(use_run.as_deref()))]
    QueueNotLinkage {
        run_id: String,
        differ: usize,
        use_run: Option<String>,
    },
    #[error("the review queue of run {run_id} is from an older run: its pairs no longer match the linkage of the latest run {latest} ({differ} pairs differ), and `dars run` would refuse decisions made on it\n  fix: {}", suggest(Some(latest)))]
    Stale {
        run_id: String,
        latest: String,
        differ: usize,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("review journal {} line {line}: {refusal}\n  fix: the journal no longer fits this queue; move it aside to review this run again", path.display())]
    Replay {
        path: PathBuf,
        line: usize,
        refusal: Refusal,
    },
    #[error(transparent)]
    Decisions(#[from] DecisionsError),
    #[error("review decisions {} hold {} line{} that run {run_id} did not apply:\n{}\n  fix: these pairs are not in the run's queue, so `dars run` would refuse them: remove the lines, or run `dars run --dry-run AGREEMENT` so that a run applies the file, then review that run", path.display(), problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.iter().take(20).map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    NotApplied {
        path: PathBuf,
        run_id: String,
        problems: Vec<String>,
    },
    #[error(
        "master person index: {source}\n  fix: check `sources.demographics` in the site config"
    )]
    Index {
        #[source]
        source: PolarsError,
    },
    #[error("reviewer name `{}`: {problem}\n  fix: pass --reviewer NAME (letters, digits, spaces, . _ - @ ', at most 64)", name.escape_debug())]
    Reviewer { name: String, problem: &'static str },
    #[error("cannot write review decisions {}: {source}\n  fix: check the agreement's folder is writable", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn suggest(run: Option<&str>) -> String {
    match run {
        Some(r) => format!(
            "review run {r}: `dars review AGREEMENT --run {r}` (or leave out --run for the latest)"
        ),
        None => "run `dars run --dry-run AGREEMENT` for a fresh queue, then review it".into(),
    }
}

/// Checks a reviewer's name: it goes into the decisions file and the
/// journal, so it must be plain text without the separators they use.
pub fn check_reviewer(name: &str) -> Result<String, ReviewError> {
    let bad = |problem| ReviewError::Reviewer {
        name: name.to_string(),
        problem,
    };
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(bad("it is empty"));
    }
    if trimmed.chars().count() > 64 {
        return Err(bad("it is longer than 64 characters"));
    }
    if !trimmed
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-' | '@' | '\''))
    {
        return Err(bad(
            "it holds a character other than letters, digits, spaces and . _ - @ '",
        ));
    }
    Ok(trimmed.to_string())
}

/// Runs of the agreement that have a queue and a linkage table, oldest
/// first. A run id starts with its start time to the second and ends with
/// a random suffix, so two runs in one second are ordered by when their
/// linkage table was written.
pub fn runs_with_queue(runs_dir: &Path) -> Vec<String> {
    let mut runs: Vec<(String, std::time::SystemTime, String)> = std::fs::read_dir(runs_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let queue = p.join("review_queue.csv");
            let linkage = p.join("linkage.csv");
            if !queue.is_file() {
                return None;
            }
            let written = std::fs::metadata(&linkage)
                .and_then(|m| m.modified())
                .ok()?;
            let id = e.file_name().to_str()?.to_string();
            let second = id.split('-').next().unwrap_or("").to_string();
            Some((second, written, id))
        })
        .collect();
    runs.sort();
    runs.into_iter().map(|(_, _, id)| id).collect()
}

/// Where the decisions go: the agreement's `review_decisions`, or, when it
/// has none yet, `NAME.decisions.csv` beside the agreement file (the start
/// message then says which key to add).
pub fn decisions_path(agreement: &Agreement) -> (PathBuf, bool) {
    match &agreement.cohort.review_decisions {
        Some(p) => (p.clone(), true),
        None => {
            let stem = agreement
                .file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("agreement");
            (
                agreement
                    .file
                    .with_file_name(format!("{stem}.decisions.csv")),
                false,
            )
        }
    }
}

fn queued_ids(linkage: &HashMap<String, queue::Linked>) -> HashSet<&str> {
    linkage
        .iter()
        .filter(|(_, l)| l.outcome == "queued")
        .map(|(s, _)| s.as_str())
        .collect()
}

fn matches_own_linkage(q: &Queue, linkage: &HashMap<String, queue::Linked>) -> usize {
    let queued = queued_ids(linkage);
    let in_queue: HashSet<&str> = q.studies.iter().map(|s| s.study_id.as_str()).collect();
    queued.symmetric_difference(&in_queue).count()
}

/// Opens the review of a run.
pub fn open(site: &Site, agreement: &Agreement, opts: &Options) -> Result<Opened, ReviewError> {
    let reference = agreement.meta.reference.as_str().to_string();
    let runs_dir = crate::pipeline::layout::runs_dir(&crate::pipeline::layout::agreement_dir(
        &site.work_dir,
        &reference,
    ));
    let runs = runs_with_queue(&runs_dir);
    let Some(latest) = runs.last().cloned() else {
        return Err(ReviewError::NoRun {
            reference,
            runs_dir,
        });
    };
    let run_id = match &opts.run {
        Some(r) if runs.contains(r) => r.clone(),
        Some(r) => {
            return Err(ReviewError::UnknownRun {
                run_id: r.clone(),
                reference,
                runs,
            })
        }
        None => latest.clone(),
    };
    let run_dir = runs_dir.join(&run_id);
    let q = queue::read_queue(&run_dir.join("review_queue.csv"))?;
    let linkage = queue::read_linkage(&run_dir.join("linkage.csv"))?;
    let differ = matches_own_linkage(&q, &linkage);
    if differ > 0 {
        // Point at the newest run whose queue is its own.
        let use_run = runs.iter().rev().find(|r| {
            let d = runs_dir.join(r);
            match (
                queue::read_queue(&d.join("review_queue.csv")),
                queue::read_linkage(&d.join("linkage.csv")),
            ) {
                (Ok(q), Ok(l)) => matches_own_linkage(&q, &l) == 0,
                _ => false,
            }
        });
        return Err(ReviewError::QueueNotLinkage {
            run_id,
            differ,
            use_run: use_run.cloned(),
        });
    }
    if run_id != latest {
        let latest_dir = runs_dir.join(&latest);
        let newer = queue::read_queue(&latest_dir.join("review_queue.csv"))?;
        let mine = q.pair_set();
        let theirs = newer.pair_set();
        let differ = mine.symmetric_difference(&theirs).count();
        if differ > 0 {
            return Err(ReviewError::Stale {
                run_id,
                latest,
                differ,
            });
        }
    }
    if q.studies.is_empty() {
        return Ok(Opened::NoQueue { run_id });
    }

    let (decisions_path, _configured) = decisions_path(agreement);
    let file_rows = state::read_decisions(&decisions_path)?;
    let mut wanted: Vec<i64> = q
        .studies
        .iter()
        .flat_map(|s| s.candidates.iter().map(|c| c.person_id))
        .collect();
    wanted.extend(file_rows.iter().map(|d| d.person_id));
    let exists = people_in_index(&site.demographics, wanted)?;

    let (mut journal, entries) = Journal::open(&run_dir, &run_id, &q.sha256)?;
    let mut review = Review::new(q, exists, decisions_path.clone());
    let mut notes = Vec::new();
    if journal.cut_tail {
        warn!(run_id = %run_id, "review journal: an incomplete last line (a save the page never confirmed) was cut off");
        notes.push("an incomplete last journal line, never shown as saved, was cut off".into());
    }
    for (line, entry) in &entries {
        review
            .replay(entry)
            .map_err(|refusal| ReviewError::Replay {
                path: journal.path().to_path_buf(),
                line: *line,
                refusal,
            })?;
    }
    if entries.is_empty() {
        let carried = carry_over_journal(&runs_dir, &run_id, &mut review, &mut journal)?;
        if carried > 0 {
            notes.push(format!(
                "{carried} journal entries carried over from an earlier run"
            ));
        }
    }
    let imported = import_file(&mut review, &mut journal, file_rows, &linkage, &run_id)?;
    if imported > 0 {
        notes.push(format!(
            "{imported} study IDs' decisions taken from the decisions file"
        ));
    }
    review.check_all()?;
    let c = review.counts();
    info!(
        run_id = %run_id,
        study_ids = c.studies,
        decided = c.decided,
        left = c.left,
        earlier_lines = c.earlier_lines,
        "review opened"
    );
    Ok(Opened::Ready(Box::new(Session {
        review,
        journal,
        reference,
        run_id,
        run_dir,
        reviewer: opts.reviewer.clone(),
        role: opts.role,
        today: opts.today,
        notes,
    })))
}

/// Persons of `wanted` that the index holds.
fn people_in_index(demographics: &Path, wanted: Vec<i64>) -> Result<HashSet<i64>, ReviewError> {
    let wrap = |source| ReviewError::Index { source };
    let wanted =
        DataFrame::new_infer_height(vec![Column::new("person_id".into(), wanted)]).map_err(wrap)?;
    let found = crate::tables::scan(demographics)
        .map_err(wrap)?
        .select([col("person_id").cast(DataType::Int64)])
        .join(
            wanted.lazy(),
            [col("person_id")],
            [col("person_id")],
            JoinArgs::new(JoinType::Semi),
        )
        .collect()
        .map_err(wrap)?;
    Ok(found
        .column("person_id")
        .map_err(wrap)?
        .i64()
        .map_err(wrap)?
        .iter()
        .flatten()
        .collect())
}

/// A new run starts from the latest earlier journal of the agreement: each
/// entry that still fits this queue (its study ID queued, its person a
/// candidate) is replayed and journaled here, so a second dry run, or a
/// run that applied part of the decisions, keeps what the reviewers saw
/// saved: open answers, confirmations and disagreement flags. Entries on
/// pairs this queue no longer holds (applied by the run) are left out.
fn carry_over_journal(
    runs_dir: &Path,
    run_id: &str,
    review: &mut Review,
    journal: &mut Journal,
) -> Result<usize, ReviewError> {
    let runs = runs_with_queue(runs_dir);
    let mine = runs.iter().position(|r| r == run_id).unwrap_or(runs.len());
    for other in runs[..mine].iter().rev() {
        let Some((_, entries)) = journal::read_entries(&runs_dir.join(other)) else {
            continue;
        };
        if entries.is_empty() {
            continue;
        }
        let mut carried = 0;
        for entry in entries {
            if review.replay(&entry).is_ok() {
                journal.append(&entry)?;
                carried += 1;
            }
        }
        info!(from_run = %other, entries = carried, "review journal carried over");
        return Ok(carried);
    }
    Ok(0)
}

/// Takes the decisions file's answers on study IDs this journal has never
/// touched into the journal; keeps every other line as it is. Lines on
/// pairs the queue no longer holds must be ones the run applied.
fn import_file(
    review: &mut Review,
    journal: &mut Journal,
    rows: Vec<Decision>,
    linkage: &HashMap<String, queue::Linked>,
    run_id: &str,
) -> Result<usize, ReviewError> {
    let mut by_study: Vec<(String, Vec<Decision>)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for d in rows {
        let i = *at.entry(d.study_id.clone()).or_insert_with(|| {
            by_study.push((d.study_id.clone(), Vec::new()));
            by_study.len() - 1
        });
        by_study[i].1.push(d);
    }
    let mut imported = 0;
    let mut problems = Vec::new();
    for (study_id, rows) in by_study {
        match review.slot_of(&study_id) {
            Some(slot) if review.touched(slot) => {
                // The journal owns this study ID; the file holds what it
                // last wrote (or older), never newer.
            }
            Some(slot) => {
                if !import_study(review, journal, slot, &rows)? {
                    for d in rows {
                        review.keep_earlier(d);
                    }
                } else {
                    imported += 1;
                }
            }
            None => {
                for d in rows {
                    let applied = match linkage.get(&d.study_id) {
                        Some(l) if d.accept => {
                            l.outcome == "reviewed" && l.person_id == Some(d.person_id)
                        }
                        Some(l) => matches!(l.outcome.as_str(), "reviewed" | "unmatched"),
                        None => false,
                    };
                    if !applied {
                        problems.push(format!(
                            "line {}: study ID {} with person_id {} ({})",
                            d.line,
                            d.study_id,
                            d.person_id,
                            if d.accept { "accept" } else { "reject" }
                        ));
                    }
                    review.keep_earlier(d);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(ReviewError::NotApplied {
            path: review.decisions_path.clone(),
            run_id: run_id.to_string(),
            problems,
        });
    }
    Ok(imported)
}

/// One study ID's lines of the decisions file as journal entries: one
/// accept, or a reject of every candidate. Anything else stays as lines.
fn import_study(
    review: &mut Review,
    journal: &mut Journal,
    slot: usize,
    rows: &[Decision],
) -> Result<bool, ReviewError> {
    let study = &review.queue.studies[slot];
    let accepts: Vec<&Decision> = rows.iter().filter(|d| d.accept).collect();
    let verdict = match accepts.as_slice() {
        [one] => Verdict::Accept {
            person_id: one.person_id,
        },
        [] => {
            let rejected: HashSet<i64> = rows.iter().map(|d| d.person_id).collect();
            if study
                .candidates
                .iter()
                .all(|c| rejected.contains(&c.person_id))
                && rows.len() == study.candidates.len()
            {
                Verdict::RejectAll
            } else {
                return Ok(false);
            }
        }
        _ => return Ok(false),
    };
    let lead = accepts.first().copied().unwrap_or(&rows[0]);
    let study_id = study.study_id.clone();
    let (first, second) = match lead.reviewer.split_once(state::CONFIRMED_BY) {
        Some((a, b)) => (a.to_string(), Some(b.to_string())),
        None => (lead.reviewer.clone(), None),
    };
    let seq = review.next_seq();
    let Ok(change) = review.plan_decide(
        &study_id,
        Role::First,
        &first,
        verdict,
        lead.decided_on,
        seq,
    ) else {
        return Ok(false);
    };
    let source = Some(format!("decisions file line {}", lead.line));
    journal.append(&Entry::Decide {
        seq,
        at: now(),
        reviewer: first,
        role: Role::First,
        study_id: study_id.clone(),
        verdict,
        decided_on: lead.decided_on.to_string(),
        source: source.clone(),
    })?;
    review.commit(change);
    if let Some(b) = second {
        let seq = review.next_seq();
        if let Ok(change) =
            review.plan_decide(&study_id, Role::Second, &b, verdict, lead.decided_on, seq)
        {
            journal.append(&Entry::Decide {
                seq,
                at: now(),
                reviewer: b,
                role: Role::Second,
                study_id: study_id.clone(),
                verdict,
                decided_on: lead.decided_on.to_string(),
                source,
            })?;
            review.commit(change);
        }
    }
    Ok(true)
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Session {
    /// Saves one answer: checked, journaled and fsynced, then applied.
    pub fn decide(&mut self, study_id: &str, verdict: Verdict) -> Result<u64, SaveError> {
        let seq = self.review.next_seq();
        let change = self.review.plan_decide(
            study_id,
            self.role,
            &self.reviewer,
            verdict,
            self.today,
            seq,
        )?;
        self.journal.append(&Entry::Decide {
            seq,
            at: now(),
            reviewer: self.reviewer.clone(),
            role: self.role,
            study_id: study_id.to_string(),
            verdict,
            decided_on: self.today.to_string(),
            source: None,
        })?;
        self.review.commit(change);
        info!(
            study_id,
            seq,
            decision = match verdict {
                Verdict::Accept { .. } => "accept",
                Verdict::RejectAll => "reject_all",
            },
            "decision saved"
        );
        Ok(seq)
    }

    /// Undoes the reviewer's latest answer still in effect; returns its
    /// study ID.
    pub fn undo(&mut self) -> Result<String, SaveError> {
        let seq = self.review.next_seq();
        let change = self.review.plan_undo(&self.reviewer, None, seq)?;
        let slot = change.study();
        self.journal.append(&Entry::Undo {
            seq,
            at: now(),
            reviewer: self.reviewer.clone(),
            undoes: change.undoes().unwrap_or(0),
        })?;
        self.review.commit(change);
        let study_id = self.review.queue.studies[slot].study_id.clone();
        info!(study_id = %study_id, seq, "decision undone");
        Ok(study_id)
    }

    /// Writes the decisions file atomically, after `dars run`'s checks on
    /// it whole, read back from the temporary file before it is renamed.
    pub fn write_decisions(&self) -> Result<usize, ReviewError> {
        write_decisions(&self.review)
    }
}

/// Why an answer was not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

pub fn write_decisions(review: &Review) -> Result<usize, ReviewError> {
    review.check_all()?;
    let rows = review.output_rows();
    let path = &review.decisions_path;
    let io = |source| ReviewError::Write {
        path: path.clone(),
        source,
    };
    let file = crate::workdir::AtomicFile::create(path, 0o600).map_err(io)?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
    let csv_io = |e: csv::Error| io(std::io::Error::other(e));
    w.write_record(crate::link::decisions::COLUMNS)
        .map_err(csv_io)?;
    for r in &rows {
        w.write_record([
            r.study_id.as_str(),
            &r.person_id.to_string(),
            if r.accept { "accept" } else { "reject" },
            &r.reviewer,
            &r.decided_on.to_string(),
        ])
        .map_err(csv_io)?;
    }
    let buffered = w.into_inner().map_err(|e| io(e.into_error()))?;
    let mut file = buffered.into_inner().map_err(|e| io(e.into_error()))?;
    file.flush().map_err(io)?;
    // What `dars run` will read: the bytes on disk, parsed and checked by
    // its own code, before the file takes its final name.
    let back = crate::link::decisions::read(&crate::workdir::tmp_name(path))?;
    if back.len() != rows.len() {
        return Err(io(std::io::Error::other(
            "the file read back holds another number of decisions",
        )));
    }
    crate::link::decisions::check(
        path,
        &back,
        |s, p| review.in_queue(s, p),
        |p| review.exists(p),
    )?;
    file.commit().map_err(io)?;
    info!(lines = rows.len(), "review decisions written");
    Ok(rows.len())
}
