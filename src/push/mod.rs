//! Stage 6b, push: delivers a sealed release to its destination.
//!
//! Order and atomicity are the contract (DESIGN.md, "Outputs"): every data
//! file, then `manifest.json`, then `manifest.json.sig`, which is the
//! commit marker. Each file is written as `NAME.part`, fsynced, renamed to
//! `NAME`, and its size checked, so a run that dies midway leaves no file
//! under a final name that is not whole, and no signature at all. A re-run
//! of the same release skips files already complete at the destination.
//!
//! Each release lands in its own folder, `DEST/REFERENCE/RUN_ID/`, so two
//! releases never share a directory and `dars verify` can insist on no
//! extra files.

mod config;
mod local;
#[cfg(test)]
mod tests;

pub use config::{Destination, ReleaseConfig};

use std::path::PathBuf;

/// A release sealed in the work directory, ready to push: the files in
/// the order they must arrive (data files, manifest, signature last).
#[derive(Debug, Clone)]
pub struct StagedRelease {
    pub dir: PathBuf,
    pub files: Vec<String>,
    /// `REFERENCE/RUN_ID`: the folder it lands in under the destination.
    pub folder: String,
}

/// Where the release arrived.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PushReport {
    pub location: String,
    pub files_sent: usize,
    pub files_already_there: usize,
    pub bytes_sent: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("destination {location}: {action} failed: {source}\n  fix: check the destination exists and is writable by this user")]
    Io {
        location: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("destination {location} already holds a different `{name}`: refusing to overwrite a released file\n  fix: this run id was used before; run again for a new run id, or remove the folder if that release was void")]
    Conflict { location: String, name: String },
    #[error("destination {location}: `{name}` arrived with {actual} bytes, expected {expected}\n  fix: check free space at the destination and run again; the partial file was not given its final name")]
    SizeMismatch {
        location: String,
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error("sftp destinations are not supported by this version of dars ({location})\n  fix: use a file:// destination for now")]
    SftpUnsupported { location: String },
}

/// Pushes every staged file to the release's destination, in order.
pub fn push(config: &ReleaseConfig, release: &StagedRelease) -> Result<PushReport, PushError> {
    match &config.destination {
        Destination::Local(root) => local::push(root, release),
        Destination::Sftp { .. } => Err(PushError::SftpUnsupported {
            location: config.destination.to_string(),
        }),
    }
}
