//! The suppression report written beside every aggregate output in the
//! work directory: `NAME.csv` (each cell's true value (internal), the
//! released value, the action, the rule, the reason and the audit
//! interval, then a summary) and `NAME.html` (the table with suppressed
//! cells highlighted). It never leaves the building.

use std::path::Path;

use crate::suppress::{report, Profile, ProtectedTable};

pub fn write_suppression_report(
    dir: &Path,
    name: &str,
    table: &ProtectedTable,
    profile: &Profile,
) -> std::io::Result<()> {
    crate::workdir::create_private_dir(dir)?;
    report::write_files(dir, name, table, profile)
}
