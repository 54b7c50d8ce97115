//! The suppression report written beside every aggregate output in the
//! work directory: each cell's true value (internal), the released value,
//! the action and the rule. It never leaves the building.

use std::path::Path;

use crate::suppress::{Profile, ProtectedTable};

pub fn write_suppression_report(
    dir: &Path,
    name: &str,
    table: &ProtectedTable,
    profile: &Profile,
) -> std::io::Result<()> {
    crate::workdir::create_private_dir(dir)?;
    let file = crate::workdir::AtomicFile::create(&dir.join(format!("{name}.csv")), 0o600)?;
    let mut w = csv::Writer::from_writer(file);
    let mut header: Vec<String> = table.dims.clone();
    header.extend(
        [
            "level",
            "original_internal",
            "released",
            "action",
            "rule",
            "reason",
        ]
        .map(String::from),
    );
    w.write_record(&header)?;
    for c in &table.cells {
        let mut record = c.key.clone();
        record.push(
            serde_json::to_value(c.level)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
        );
        record.push(c.original.to_string());
        record.push(c.value.to_string());
        record.push(
            serde_json::to_value(c.action)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
        );
        record.push(profile.name.clone());
        record.push(profile.reason(c.action));
        w.write_record(&record)?;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.commit()
}
