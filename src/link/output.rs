//! The link stage's output: the linked cohort handed to the objections
//! stage ([`Linked`]), and `linkage.csv` and `review_queue.csv` (DESIGN.md, "Outputs"): private
//! files of the work directory (mode 0600), written atomically.
//!
//! The review queue has one row per candidate pair of every study ID still
//! `queued`: `study_id, person_id, rank, score`, then for each field its
//! agreement level and the cohort's and the index's values side by side,
//! then whether the study ID is ambiguous and which blocking keys found the
//! pair. It is identifiable and never leaves the work directory.

use std::path::Path;

use polars::prelude::DataFrame;

use super::compare::Field;
use super::LinkageRow;
use crate::workdir::AtomicFile;

/// The linked cohort handed over by the link stage: one row per linked
/// study ID with `study_id` (String), `person_id` (Int64) and the index's
/// `nhs_number` (String). The link stage also adds the index's
/// `date_of_birth` (Date), which minimisation compares dataset columns
/// with, and the cohort's own `cohort_nhs_number` (String, null when the
/// cohort row had none), for the count of objections the cohort alone would
/// have missed. Both are optional here: a checkpoint from before they were
/// added lacks them.
#[derive(Debug, Clone)]
pub struct Linked {
    pub persons: DataFrame,
}

pub fn write_linkage_csv(path: &Path, rows: &[LinkageRow]) -> std::io::Result<()> {
    let file = AtomicFile::create(path, 0o600)?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
    w.write_record([
        "study_id",
        "person_id",
        "outcome",
        "tier",
        "score",
        "reason",
    ])?;
    for r in rows {
        w.write_record([
            r.study_id.as_str(),
            &r.person_id.map(|p| p.to_string()).unwrap_or_default(),
            r.outcome.as_str(),
            &r.tier.map(|t| t.to_string()).unwrap_or_default(),
            &r.score.map(|s| format!("{s:.1}")).unwrap_or_default(),
            &r.reason,
        ])?;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    let file = file.into_inner().map_err(|e| e.into_error())?;
    file.commit()
}

/// The review queue's leading columns: the candidate pair.
pub const REVIEW_QUEUE_HEADER: [&str; 4] = ["study_id", "person_id", "rank", "score"];

/// The full header: the pair, `LEVEL, cohort_VALUE, index_VALUE` per field,
/// `ambiguous`, `found_by`.
pub fn review_queue_header() -> Vec<String> {
    let mut h: Vec<String> = REVIEW_QUEUE_HEADER.iter().map(|s| s.to_string()).collect();
    for f in Field::ALL {
        h.push(format!("{}_level", f.name()));
        h.push(format!("cohort_{}", f.name()));
        h.push(format!("index_{}", f.name()));
    }
    h.push("ambiguous".into());
    h.push("found_by".into());
    h
}

pub fn write_review_queue_csv(path: &Path, linkage: &super::Linkage) -> std::io::Result<()> {
    let file = AtomicFile::create(path, 0o600)?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
    w.write_record(review_queue_header())?;
    for entry in &linkage.queue {
        for (rank, c) in entry.candidates.iter().enumerate() {
            let mut record: Vec<String> = vec![
                entry.study_id.clone(),
                c.person_id.to_string(),
                (rank + 1).to_string(),
                format!("{:.1}", c.score),
            ];
            for i in 0..Field::ALL.len() {
                record.push(c.levels[i].as_str().to_string());
                record.push(entry.values[i].clone());
                record.push(c.values[i].clone());
            }
            record.push(entry.ambiguous.to_string());
            record.push(c.found_by());
            w.write_record(&record)?;
        }
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    let file = file.into_inner().map_err(|e| e.into_error())?;
    file.commit()
}
