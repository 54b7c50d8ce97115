//! Reading a run's `review_queue.csv` and `linkage.csv` by their header
//! names (DESIGN.md, "Outputs"; README, "Review queue columns").
//!
//! Only `study_id, person_id, rank, score` are required. Every
//! `FIELD_level` column names a compared field, with `cohort_FIELD` and
//! `index_FIELD` beside it when present; `ambiguous`, `found_by` and
//! `partial` are read when present; any other column is ignored, so the
//! linkage stage can add columns without breaking the review page.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One candidate person of a study ID.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub person_id: i64,
    pub rank: u32,
    pub score: f64,
    /// Per field of [`Queue::fields`]: the agreement level code.
    pub levels: Vec<String>,
    /// Per field: the index's value.
    pub index: Vec<String>,
    /// The blocking keys that proposed the pair.
    pub found_by: Vec<String>,
}

/// One queued study ID with its candidates, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    pub study_id: String,
    pub ambiguous: bool,
    /// The cohort's valid NHS number was found but a field disagrees.
    pub partial: bool,
    /// Per field: the cohort's value.
    pub cohort: Vec<String>,
    pub candidates: Vec<Candidate>,
}

impl Study {
    pub fn top_score(&self) -> f64 {
        self.candidates.first().map_or(0.0, |c| c.score)
    }

    pub fn has_candidate(&self, person_id: i64) -> bool {
        self.candidates.iter().any(|c| c.person_id == person_id)
    }
}

/// The review queue of one run.
#[derive(Debug, Clone)]
pub struct Queue {
    pub path: PathBuf,
    /// The compared fields, in header order.
    pub fields: Vec<String>,
    /// In the file's order (the cohort's).
    pub studies: Vec<Study>,
    /// SHA-256 of the file's bytes: a journal belongs to one queue.
    pub sha256: String,
}

impl Queue {
    pub fn pairs(&self) -> usize {
        self.studies.iter().map(|s| s.candidates.len()).sum()
    }

    /// Every `(study_id, person_id)` pair.
    pub fn pair_set(&self) -> HashSet<(&str, i64)> {
        self.studies
            .iter()
            .flat_map(|s| {
                s.candidates
                    .iter()
                    .map(move |c| (s.study_id.as_str(), c.person_id))
            })
            .collect()
    }
}

/// What is wrong with one line of a queue or linkage file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    pub line: u64,
    pub problem: String,
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has {} problem{}:\n{}\n  fix: the file must be as `dars run` wrote it; run `dars run --dry-run AGREEMENT` again for a fresh one",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.iter().take(20).map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Malformed {
        path: PathBuf,
        problems: Vec<LineProblem>,
    },
}

fn read_all(path: &Path) -> Result<Vec<u8>, QueueError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| QueueError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(bytes)
}

fn header_index(header: &csv::StringRecord) -> HashMap<String, usize> {
    let mut at = HashMap::new();
    for (i, h) in header.iter().enumerate() {
        at.entry(crate::ingest::normalise_header(h)).or_insert(i);
    }
    at
}

fn truthy(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "1" | "y"
    )
}

/// Reads `review_queue.csv`.
pub fn read_queue(path: &Path) -> Result<Queue, QueueError> {
    let bytes = read_all(path)?;
    let sha256 = crate::package::sha256_hex(&bytes);
    let malformed = |problems| QueueError::Malformed {
        path: path.to_path_buf(),
        problems,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let header = reader
        .headers()
        .map_err(|e| {
            malformed(vec![LineProblem {
                line: 1,
                problem: e.to_string(),
            }])
        })?
        .clone();
    let at = header_index(&header);
    let mut problems = Vec::new();
    let required = ["study_id", "person_id", "rank", "score"];
    for r in required {
        if !at.contains_key(r) {
            problems.push(LineProblem {
                line: 1,
                problem: format!("column `{r}` is missing from the header"),
            });
        }
    }
    if !problems.is_empty() {
        return Err(malformed(problems));
    }
    let mut fields = Vec::new();
    let mut field_cols = Vec::new();
    for h in header.iter() {
        let norm = crate::ingest::normalise_header(h);
        if let Some(field) = norm.strip_suffix("_level") {
            if field.is_empty() {
                continue;
            }
            fields.push(field.to_string());
            field_cols.push((
                at[&norm],
                at.get(&format!("cohort_{field}")).copied(),
                at.get(&format!("index_{field}")).copied(),
            ));
        }
    }
    let col = |name: &str| at.get(name).copied();
    let (c_study, c_person, c_rank, c_score) =
        (at["study_id"], at["person_id"], at["rank"], at["score"]);
    let (c_ambiguous, c_found_by, c_partial) = (col("ambiguous"), col("found_by"), col("partial"));

    let mut studies: Vec<Study> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut seen: HashMap<(String, i64), u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(LineProblem {
                    line,
                    problem: "not readable as CSV text".into(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let get = |i: usize| record.get(i).unwrap_or("").trim();
        let get_opt = |i: Option<usize>| i.map(get).unwrap_or("");
        let study_id = get(c_study);
        if study_id.is_empty() {
            problems.push(LineProblem {
                line,
                problem: "study_id is empty".into(),
            });
            continue;
        }
        let Ok(person_id) = get(c_person).parse::<i64>() else {
            problems.push(LineProblem {
                line,
                problem: "person_id is not a whole number".into(),
            });
            continue;
        };
        let Ok(rank) = get(c_rank).parse::<u32>() else {
            problems.push(LineProblem {
                line,
                problem: "rank is not a whole number".into(),
            });
            continue;
        };
        let score = match get(c_score).parse::<f64>() {
            Ok(s) if s.is_finite() => s,
            _ => {
                problems.push(LineProblem {
                    line,
                    problem: "score is not a number".into(),
                });
                continue;
            }
        };
        if let Some(first) = seen.insert((study_id.to_string(), person_id), line) {
            problems.push(LineProblem {
                line,
                problem: format!(
                    "study ID {study_id} with person_id {person_id} is already on line {first}"
                ),
            });
            continue;
        }
        let candidate = Candidate {
            person_id,
            rank,
            score,
            levels: field_cols
                .iter()
                .map(|(l, _, _)| get(*l).to_string())
                .collect(),
            index: field_cols
                .iter()
                .map(|(_, _, i)| get_opt(*i).to_string())
                .collect(),
            found_by: get_opt(c_found_by)
                .split(';')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect(),
        };
        let i = *by_id.entry(study_id.to_string()).or_insert_with(|| {
            studies.push(Study {
                study_id: study_id.to_string(),
                ambiguous: false,
                partial: false,
                cohort: field_cols
                    .iter()
                    .map(|(_, c, _)| get_opt(*c).to_string())
                    .collect(),
                candidates: Vec::new(),
            });
            studies.len() - 1
        });
        let study = &mut studies[i];
        study.ambiguous |= truthy(get_opt(c_ambiguous));
        study.partial |= truthy(get_opt(c_partial));
        study.candidates.push(candidate);
    }
    if !problems.is_empty() {
        return Err(malformed(problems));
    }
    let nhs = fields.iter().position(|f| f == "nhs_number");
    for s in &mut studies {
        s.candidates.sort_by_key(|c| c.rank);
        // Without a `partial` column: a queued row whose NHS number was
        // found exactly (its rank-1 candidate) failed the cross-check on
        // another field, which is what a partial match is (DESIGN.md,
        // "Linkage tiers").
        if c_partial.is_none() {
            if let (Some(n), Some(top)) = (nhs, s.candidates.first()) {
                s.partial = top.levels[n] == "exact";
            }
        }
    }
    Ok(Queue {
        path: path.to_path_buf(),
        fields,
        studies,
        sha256,
    })
}

/// One row of `linkage.csv`: what matters to the review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    pub outcome: String,
    pub person_id: Option<i64>,
}

/// Reads `linkage.csv`: study ID to outcome and person.
pub fn read_linkage(path: &Path) -> Result<HashMap<String, Linked>, QueueError> {
    let bytes = read_all(path)?;
    let malformed = |problems| QueueError::Malformed {
        path: path.to_path_buf(),
        problems,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(bytes.as_slice());
    let header = reader
        .headers()
        .map_err(|e| {
            malformed(vec![LineProblem {
                line: 1,
                problem: e.to_string(),
            }])
        })?
        .clone();
    let at = header_index(&header);
    let mut problems = Vec::new();
    for r in ["study_id", "person_id", "outcome"] {
        if !at.contains_key(r) {
            problems.push(LineProblem {
                line: 1,
                problem: format!("column `{r}` is missing from the header"),
            });
        }
    }
    if !problems.is_empty() {
        return Err(malformed(problems));
    }
    let (c_study, c_person, c_outcome) = (at["study_id"], at["person_id"], at["outcome"]);
    let mut out = HashMap::new();
    for record in reader.records() {
        let Ok(record) = record else {
            problems.push(LineProblem {
                line: 0,
                problem: "not readable as CSV text".into(),
            });
            continue;
        };
        let line = record.position().map_or(0, |p| p.line());
        let get = |i: usize| record.get(i).unwrap_or("").trim();
        let person = get(c_person);
        let person_id = if person.is_empty() {
            None
        } else if let Ok(p) = person.parse() {
            Some(p)
        } else {
            problems.push(LineProblem {
                line,
                problem: "person_id is not a whole number".into(),
            });
            continue;
        };
        out.insert(
            get(c_study).to_string(),
            Linked {
                outcome: get(c_outcome).to_string(),
                person_id,
            },
        );
    }
    if !problems.is_empty() {
        return Err(malformed(problems));
    }
    Ok(out)
}
