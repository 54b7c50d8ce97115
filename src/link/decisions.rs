//! The review decisions file (DESIGN.md, "Review decisions"): a reviewed
//! queue from an earlier run, read back so that each accepted pair becomes
//! `reviewed`.
//!
//! `study_id, person_id, decision (accept|reject), reviewer, decided_on`,
//! header names matched like the cohort's (case, spaces and underscores
//! alike). The file is checked whole before anything is applied, and every
//! problem is reported with its line: an unknown column, an unknown
//! decision, a person who does not exist, a pair that is not in the
//! current queue, a study ID accepted twice, a person accepted for two
//! study IDs. A decision file that was reviewed against another cohort or
//! another index must not quietly link the wrong people.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::domain::parse_date;

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub line: u64,
    pub study_id: String,
    pub person_id: i64,
    pub accept: bool,
    pub reviewer: String,
    pub decided_on: NaiveDate,
}

/// What is wrong with one line of the decisions file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionProblemKind {
    UnknownColumn(String),
    MissingColumn(&'static str),
    RepeatedColumn(&'static str),
    FieldCount {
        expected: usize,
        found: usize,
    },
    Empty(&'static str),
    UnknownDecision(String),
    BadPersonId,
    BadDate,
    UnknownPerson {
        person_id: i64,
    },
    NotInQueue {
        study_id: String,
        person_id: i64,
    },
    DecidedTwice {
        first_line: u64,
    },
    StudyAcceptedTwice {
        study_id: String,
        first_line: u64,
    },
    PersonAcceptedTwice {
        person_id: i64,
        first_study_id: String,
        first_line: u64,
    },
    NotText,
}

/// A problem with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionProblem {
    pub line: u64,
    pub kind: DecisionProblemKind,
}

impl fmt::Display for DecisionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecisionProblemKind as K;
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            // A file without a header has values where the names should be,
            // and a name cannot be told from a value: never printed.
            K::UnknownColumn(_) => write!(
                f,
                "a header cell is not one of the columns (its text is withheld, in case the first line is data); the first line must name the columns {}",
                COLUMNS.join(", ")
            ),
            K::MissingColumn(c) => write!(f, "column `{c}` is missing from the header"),
            K::RepeatedColumn(c) => write!(f, "column `{c}` appears twice in the header"),
            K::FieldCount { expected, found } => {
                write!(f, "{found} fields where the header has {expected}")
            }
            K::Empty(c) => write!(f, "{c} is empty"),
            // The cell is not a decision, so it may be anything (a value
            // pasted into the wrong column): never printed.
            K::UnknownDecision(_) => {
                f.write_str("decision is neither `accept` nor `reject` (value withheld)")
            }
            K::BadPersonId => f.write_str("person_id is not a whole number"),
            K::BadDate => f.write_str("decided_on is not a date (YYYY-MM-DD)"),
            // The custodian's person key is a direct identifier of the index.
            K::UnknownPerson { .. } => {
                f.write_str("person_id does not exist in the master person index (value withheld)")
            }
            // Neither cell is known to be what it claims: the study ID may
            // not be a study ID, and a person_id is the index's key.
            K::NotInQueue { .. } => f.write_str(
                "the study_id and person_id of this line are not a pair of the current review queue (values withheld; re-run `dars link` and review the new review_queue.csv)"
            ),
            K::DecidedTwice { first_line } => {
                write!(f, "this pair was already decided on line {first_line}")
            }
            K::StudyAcceptedTwice {
                study_id,
                first_line,
            } => write!(
                f,
                "study ID {study_id} is accepted twice (first on line {first_line}); accept at most one person per study ID"
            ),
            K::PersonAcceptedTwice {
                person_id: _,
                first_study_id,
                first_line,
            } => write!(
                f,
                "this line's person_id (value withheld) is accepted for two study IDs ({first_study_id} on line {first_line}); one person is one study ID"
            ),
            K::NotText => f.write_str("the line is not UTF-8 text"),
        }
    }
}

/// The columns, in DESIGN order.
pub const COLUMNS: [&str; 5] = [
    "study_id",
    "person_id",
    "decision",
    "reviewer",
    "decided_on",
];

fn column_of(raw: &str) -> Option<usize> {
    let norm = crate::ingest::normalise_header(raw);
    COLUMNS.iter().position(|c| *c == norm)
}

/// Why the decisions could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DecisionsError {
    #[error("cannot read review decisions {}: {source}\n  fix: check `cohort.review_decisions` in the agreement", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("review decisions {} have {} problem{}; no decision was applied:\n{}\n  fix: correct those lines (the file must hold decisions on the current review_queue.csv) and run again",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<DecisionProblem>,
    },
}

/// Reads the file; every line problem is collected.
pub fn read(path: &Path) -> Result<Vec<Decision>, DecisionsError> {
    let file = std::fs::File::open(path).map_err(|source| DecisionsError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, file)
}

pub(super) fn parse<R: std::io::Read>(
    path: &Path,
    input: R,
) -> Result<Vec<Decision>, DecisionsError> {
    let unreadable = |e: csv::Error| DecisionsError::Unreadable {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut problems = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut positions = [None; 5];
    let mut width = 0;
    let mut decisions = Vec::new();
    let mut header_seen = false;
    while reader.read_byte_record(&mut record).map_err(unreadable)? {
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        let Ok(text) = csv::StringRecord::from_byte_record(record.clone()) else {
            problems.push(DecisionProblem {
                line,
                kind: DecisionProblemKind::NotText,
            });
            continue;
        };
        if !header_seen {
            header_seen = true;
            width = text.len();
            for (i, name) in text.iter().enumerate() {
                match column_of(name) {
                    Some(c) if positions[c].is_some() => problems.push(DecisionProblem {
                        line,
                        kind: DecisionProblemKind::RepeatedColumn(COLUMNS[c]),
                    }),
                    Some(c) => positions[c] = Some(i),
                    None => problems.push(DecisionProblem {
                        line,
                        kind: DecisionProblemKind::UnknownColumn(name.trim().to_string()),
                    }),
                }
            }
            for (c, p) in positions.iter().enumerate() {
                if p.is_none() {
                    problems.push(DecisionProblem {
                        line,
                        kind: DecisionProblemKind::MissingColumn(COLUMNS[c]),
                    });
                }
            }
            if !problems.is_empty() {
                break;
            }
            continue;
        }
        if text.len() != width {
            problems.push(DecisionProblem {
                line,
                kind: DecisionProblemKind::FieldCount {
                    expected: width,
                    found: text.len(),
                },
            });
            continue;
        }
        let cell = |c: usize| positions[c].and_then(|p| text.get(p)).unwrap_or("").trim();
        let mut push = |kind| problems.push(DecisionProblem { line, kind });
        let mut ok = true;
        for (c, name) in COLUMNS.iter().enumerate() {
            if cell(c).is_empty() {
                push(DecisionProblemKind::Empty(name));
                ok = false;
            }
        }
        if !ok {
            continue;
        }
        let accept = match cell(2).to_ascii_lowercase().as_str() {
            "accept" => Some(true),
            "reject" => Some(false),
            other => {
                push(DecisionProblemKind::UnknownDecision(other.to_string()));
                None
            }
        };
        let person_id = cell(1).parse::<i64>().ok();
        if person_id.is_none() {
            push(DecisionProblemKind::BadPersonId);
        }
        let decided_on = parse_date(cell(4)).ok();
        if decided_on.is_none() {
            push(DecisionProblemKind::BadDate);
        }
        if let (Some(accept), Some(person_id), Some(decided_on)) = (accept, person_id, decided_on) {
            decisions.push(Decision {
                line,
                study_id: cell(0).to_string(),
                person_id,
                accept,
                reviewer: cell(3).to_string(),
                decided_on,
            });
        }
    }
    if !header_seen {
        for c in COLUMNS {
            problems.push(DecisionProblem {
                line: 1,
                kind: DecisionProblemKind::MissingColumn(c),
            });
        }
    }
    if problems.is_empty() {
        Ok(decisions)
    } else {
        Err(DecisionsError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// Checks the decisions against the current queue and the index.
/// `in_queue(study_id, person_id)` says whether the pair is queued;
/// `exists(person_id)` whether the person is in the index.
pub fn check(
    path: &Path,
    decisions: &[Decision],
    in_queue: impl Fn(&str, i64) -> bool,
    exists: impl Fn(i64) -> bool,
) -> Result<(), DecisionsError> {
    use DecisionProblemKind as K;
    let mut problems = Vec::new();
    let mut decided: HashMap<(&str, i64), u64> = HashMap::new();
    let mut accepted_study: HashMap<&str, u64> = HashMap::new();
    let mut accepted_person: HashMap<i64, (&str, u64)> = HashMap::new();
    for d in decisions {
        let mut push = |kind| problems.push(DecisionProblem { line: d.line, kind });
        if !exists(d.person_id) {
            push(K::UnknownPerson {
                person_id: d.person_id,
            });
            continue;
        }
        if !in_queue(&d.study_id, d.person_id) {
            push(K::NotInQueue {
                study_id: d.study_id.clone(),
                person_id: d.person_id,
            });
            continue;
        }
        if let Some(first) = decided.insert((d.study_id.as_str(), d.person_id), d.line) {
            push(K::DecidedTwice { first_line: first });
            continue;
        }
        if !d.accept {
            continue;
        }
        if let Some(first) = accepted_study.get(d.study_id.as_str()) {
            push(K::StudyAcceptedTwice {
                study_id: d.study_id.clone(),
                first_line: *first,
            });
        } else {
            accepted_study.insert(&d.study_id, d.line);
        }
        if let Some((first_study, first_line)) = accepted_person.get(&d.person_id) {
            push(K::PersonAcceptedTwice {
                person_id: d.person_id,
                first_study_id: first_study.to_string(),
                first_line: *first_line,
            });
        } else {
            accepted_person.insert(d.person_id, (&d.study_id, d.line));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DecisionsError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}
