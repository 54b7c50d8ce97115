//! What the ingest stage needs from the agreement.

use std::path::PathBuf;

use super::CohortField;

/// Built by the orchestrator from the agreement's `[cohort]` table.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub path: PathBuf,
    /// Columns that must be present besides `study_id` (the agreement's
    /// validation fields, and the names when manual validation is on).
    /// Each is paired with the agreement key that requires it, for errors.
    pub required: Vec<(CohortField, String)>,
}
