//! What the link stage needs from the agreement's `[cohort]` table.

use std::path::PathBuf;

use crate::config::CohortSection;
use crate::ingest::CohortField;

#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Fields that must agree for automatic validation (always includes
    /// the NHS number).
    pub validation_fields: Vec<CohortField>,
    /// Whether names may be used to queue candidates for manual review.
    pub manual_validation: bool,
    pub review_decisions: Option<PathBuf>,
}

impl LinkConfig {
    pub fn from_cohort(section: &CohortSection) -> Self {
        Self {
            validation_fields: section.fields(),
            manual_validation: section.manual_validation,
            review_decisions: section.review_decisions.clone(),
        }
    }

    /// Cohort columns this configuration needs, each with the agreement key
    /// that requires it (for the ingest stage's errors).
    pub fn required_columns(&self) -> Vec<(CohortField, String)> {
        let mut req: Vec<(CohortField, String)> = self
            .validation_fields
            .iter()
            .map(|f| (*f, "cohort.validation_fields".to_string()))
            .collect();
        if self.manual_validation {
            for f in [CohortField::Forename, CohortField::Surname] {
                req.push((f, "cohort.manual_validation".into()));
            }
        }
        req
    }
}
