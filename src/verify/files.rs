//! Checking the files of a release against its (already authenticated)
//! manifest: each listed file present, a regular file, of the listed size
//! and SHA-256; nothing unlisted beside them. Files are streamed through
//! the hash in 1 MiB reads, so a release of any size checks in bounded
//! memory.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::Path;

use super::VerifyError;
use crate::package::{sha256_reader, Manifest, MANIFEST_FILE, SIGNATURE_FILE};

/// Far above any real manifest; a bound so a hostile folder cannot exhaust memory.
pub(super) const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;
/// An armored Ed25519 SSHSIG is about 300 bytes.
pub(super) const MAX_SIGNATURE_BYTES: u64 = 64 * 1024;

/// Every problem with the files of the release in `dir`, in manifest order
/// then unlisted files by name. An empty list means all is well. Only an
/// unreadable folder is an error of its own.
pub(super) fn check(dir: &Path, manifest: &Manifest) -> Result<Vec<VerifyError>, VerifyError> {
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    for file in &manifest.files {
        if !is_plain_name(&file.name) {
            problems.push(VerifyError::UnsafeFileName {
                name: file.name.clone(),
            });
        } else if !listed.insert(file.name.as_str()) {
            problems.push(VerifyError::DuplicateFile {
                name: file.name.clone(),
            });
        }
    }
    // A manifest that points outside the folder is not checked further.
    if !problems.is_empty() {
        return Ok(problems);
    }

    for file in &manifest.files {
        let path = dir.join(&file.name);
        let metadata = match fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                problems.push(VerifyError::MissingFile {
                    name: file.name.clone(),
                });
                continue;
            }
            Err(source) => return Err(VerifyError::Read { path, source }),
        };
        if !metadata.is_file() {
            problems.push(VerifyError::NotARegularFile {
                name: file.name.clone(),
            });
            continue;
        }
        if metadata.len() != file.bytes {
            problems.push(VerifyError::SizeMismatch {
                name: file.name.clone(),
                expected: file.bytes,
                actual: metadata.len(),
            });
            continue;
        }
        let (actual, bytes) = match sha256_file(&path, &metadata) {
            Ok(Some(hashed)) => hashed,
            Ok(None) => {
                // Replaced by something else since it was looked at.
                problems.push(VerifyError::NotARegularFile {
                    name: file.name.clone(),
                });
                continue;
            }
            Err(source) => return Err(VerifyError::Read { path, source }),
        };
        if bytes != file.bytes {
            // The file changed size while it was being read.
            problems.push(VerifyError::SizeMismatch {
                name: file.name.clone(),
                expected: file.bytes,
                actual: bytes,
            });
        } else if !actual.eq_ignore_ascii_case(&file.sha256) {
            problems.push(VerifyError::HashMismatch {
                name: file.name.clone(),
                expected: file.sha256.clone(),
                actual,
            });
        }
    }

    let read_dir_error = |source| VerifyError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut extra = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let name = entry
            .map_err(read_dir_error)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name != MANIFEST_FILE && name != SIGNATURE_FILE && !listed.contains(name.as_str()) {
            extra.push(name);
        }
    }
    extra.sort();
    problems.extend(
        extra
            .into_iter()
            .map(|name| VerifyError::ExtraFile { name }),
    );
    Ok(problems)
}

/// A name that stays inside the release folder.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name != MANIFEST_FILE
        && name != SIGNATURE_FILE
        && !name.contains(['/', '\\', '\0'])
}

/// Lower-case hex SHA-256 and length of a file, streamed; `None` if the
/// file opened is not the one `listed` describes.
fn sha256_file(path: &Path, listed: &fs::Metadata) -> io::Result<Option<(String, u64)>> {
    use std::os::unix::fs::MetadataExt;
    let file = File::open(path)?;
    let opened = file.metadata()?;
    if (opened.dev(), opened.ino()) != (listed.dev(), listed.ino()) {
        return Ok(None);
    }
    sha256_reader(file).map(Some)
}
