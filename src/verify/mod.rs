//! Recipient-side check of a delivered release (`dars verify`): the
//! manifest's SSHSIG against the recipient's own `allowed_signers`, then
//! that the release sits in the folder its manifest names
//! (`REFERENCE/RUN_ID`), then every listed file's size and SHA-256, and
//! nothing in the folder that the manifest does not list. Every file must
//! be a plain file: a symbolic link is refused, whatever it points to.
//!
//! It trusts nothing in the release before the signature checks out, and
//! reports every file problem at once, each naming its file and saying what
//! to do, because a recipient holding a damaged delivery needs to ask for
//! all of it back in one go.

mod allowed_signers;
mod files;
mod signature;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::package::{Manifest, MANIFEST_FILE, SIGNATURE_FILE};

/// A release whose signature, files and hashes all checked out.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedRelease {
    pub manifest: Manifest,
    /// The principals of the allowed_signers line that matched
    /// (`releases@example.nhs.uk`).
    pub signer: String,
    /// How many files were checked against the manifest.
    pub files_checked: usize,
}

/// Why a release failed verification. Every message names the file
/// concerned and says what to do; none of them means "probably fine".
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "{dir} has no {MANIFEST_FILE}: this is not a complete dars release; \
         check the folder, or ask the sender to resend the release"
    )]
    MissingManifest { dir: PathBuf },

    #[error(
        "{dir} has no {SIGNATURE_FILE}: the signature is written last, so the delivery is \
         incomplete or was interrupted; wait for the transfer to finish or ask the sender to resend"
    )]
    MissingSignature { dir: PathBuf },

    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "cannot read the allowed signers file {path}: {source}; pass the file the data \
         custodian gave you with --allowed-signers"
    )]
    ReadAllowedSigners {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{SIGNATURE_FILE} is not an OpenSSH signature ({reason}): the file is damaged or was \
         replaced; ask the sender to resend the release"
    )]
    MalformedSignature { reason: String },

    #[error(
        "{SIGNATURE_FILE} was made for namespace \"{found}\", not \"{expected}\": it is not a \
         dars manifest signature; do not use this release, ask the sender to resend it"
    )]
    WrongNamespace { found: String, expected: String },

    #[error(
        "{SIGNATURE_FILE} uses {algorithm}; dars releases are signed with Ed25519 and SHA-256 \
         or SHA-512: check with `ssh-keygen -Y verify`, or ask the sender which tool made it"
    )]
    UnsupportedSignature { algorithm: String },

    #[error(
        "{SIGNATURE_FILE} does not match {MANIFEST_FILE}: the manifest was changed after it was \
         signed, or the signature belongs to another release; do not use these files, ask the \
         sender to resend the release"
    )]
    BadSignature,

    #[error(
        "{MANIFEST_FILE} was signed by key {fingerprint}, which is not in {allowed_signers}{skipped}: \
         do not use this release unless the data custodian confirms that key by another channel, \
         then add its line to your allowed signers file"
    )]
    NoMatchingSigner {
        fingerprint: String,
        allowed_signers: PathBuf,
        /// Why some lines of the file were not used, if any were not.
        skipped: String,
    },

    #[error(
        "{MANIFEST_FILE} was signed by {principals} ({allowed_signers} line {line}), but that \
         line does not allow namespace \"{namespace}\": add it to the line's namespaces=\"…\" \
         if you trust this key for dars releases"
    )]
    NamespaceNotAllowed {
        principals: String,
        allowed_signers: PathBuf,
        line: usize,
        namespace: String,
    },

    #[error(
        "{MANIFEST_FILE} was signed by {principals} ({allowed_signers} line {line}), but {reason}: \
         ask the data custodian for their current key"
    )]
    SignerNotValidNow {
        principals: String,
        allowed_signers: PathBuf,
        line: usize,
        reason: String,
    },

    #[error(
        "{MANIFEST_FILE} is correctly signed but is not a manifest this dars understands \
         ({reason}): update dars, or ask the sender which version made the release"
    )]
    MalformedManifest { reason: String },

    #[error(
        "{} is not where this release belongs: its signed manifest is for {agreement} run \
         {run_id}, so it must be in a folder {agreement}/{run_id}, not {found}; a release \
         copied or moved into another folder is refused (it may be a replay of another \
         release): put it back where it was delivered, or ask the sender which release this is",
        dir.display()
    )]
    WrongFolder {
        dir: PathBuf,
        agreement: String,
        run_id: String,
        /// The folder's last two names, `REFERENCE/RUN_ID` as found.
        found: String,
    },

    #[error(
        "{} is a symbolic link, not the folder the release arrived in: a link can point a \
         check at any folder of the same name; refusing it, as a linked file is refused\n  \
         fix: verify the folder itself (`realpath` shows where the link points), and find out \
         who made the link",
        dir.display()
    )]
    LinkedFolder { dir: PathBuf },

    #[error(
        "{MANIFEST_FILE} lists \"{name}\", which is not a plain file name: refusing to look \
         outside the release folder; ask the sender to fix and resend the release"
    )]
    UnsafeFileName { name: String },

    #[error("{MANIFEST_FILE} lists {name} twice: ask the sender to fix and resend the release")]
    DuplicateFile { name: String },

    #[error(
        "{name} is listed in {MANIFEST_FILE} but missing from the release folder: the transfer \
         is incomplete; ask the sender to resend it"
    )]
    MissingFile { name: String },

    #[error(
        "{name} is in the release folder but not in {MANIFEST_FILE}: it did not come with this \
         release; move it elsewhere and find out where it came from"
    )]
    ExtraFile { name: String },

    #[error(
        "{name} is not a regular file (a folder, link or device); the release holds only plain \
         files: replace it with the file from the sender"
    )]
    NotARegularFile { name: String },

    #[error(
        "{name} is {actual} bytes but {MANIFEST_FILE} says {expected}: the file is truncated or \
         was altered; do not decrypt it, ask the sender to resend it"
    )]
    SizeMismatch {
        name: String,
        expected: u64,
        actual: u64,
    },

    #[error(
        "{name} does not match its SHA-256 in {MANIFEST_FILE} (expected {expected}, found \
         {actual}): the file was altered or damaged in transit; do not decrypt it, ask the \
         sender to resend it"
    )]
    HashMismatch {
        name: String,
        expected: String,
        actual: String,
    },

    #[error("{} problems with the release:{}", problems.len(), list(problems))]
    SeveralProblems { problems: Vec<VerifyError> },
}

fn list(problems: &[VerifyError]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

impl VerifyError {
    /// The release file this error is about, if it is about one file.
    pub fn file_name(&self) -> Option<&str> {
        match self {
            VerifyError::UnsafeFileName { name }
            | VerifyError::DuplicateFile { name }
            | VerifyError::MissingFile { name }
            | VerifyError::ExtraFile { name }
            | VerifyError::NotARegularFile { name }
            | VerifyError::SizeMismatch { name, .. }
            | VerifyError::HashMismatch { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The individual problems: itself, or each of [`VerifyError::SeveralProblems`].
    pub fn problems(&self) -> Vec<&VerifyError> {
        match self {
            VerifyError::SeveralProblems { problems } => problems.iter().collect(),
            other => vec![other],
        }
    }
}

/// Checks the release in `dir` against the signers the recipient trusts.
///
/// In order: `manifest.json.sig` is a valid Ed25519 SSHSIG of the exact
/// bytes of `manifest.json` in the `dars-manifest` namespace, by a key of
/// an `allowed_signers` line that allows that namespace now; then every
/// listed file exists as a regular file with the listed size and SHA-256,
/// and nothing else is in `dir`. Signature failures stop at once; file
/// problems are all collected.
pub fn verify_release(dir: &Path, allowed_signers: &Path) -> Result<VerifiedRelease, VerifyError> {
    refuse_linked_folder(dir)?;
    let manifest_bytes = read_release_file(dir, MANIFEST_FILE, files::MAX_MANIFEST_BYTES)?
        .ok_or_else(|| VerifyError::MissingManifest {
            dir: dir.to_path_buf(),
        })?;
    let signature_bytes = read_release_file(dir, SIGNATURE_FILE, files::MAX_SIGNATURE_BYTES)?
        .ok_or_else(|| VerifyError::MissingSignature {
            dir: dir.to_path_buf(),
        })?;
    let allowed_text = std::fs::read_to_string(allowed_signers).map_err(|source| {
        VerifyError::ReadAllowedSigners {
            path: allowed_signers.to_path_buf(),
            source,
        }
    })?;

    let signer = signature::check(
        &manifest_bytes,
        &signature_bytes,
        allowed_signers,
        &allowed_text,
    )?;

    let manifest =
        Manifest::from_json(&manifest_bytes).map_err(|e| VerifyError::MalformedManifest {
            reason: e.to_string(),
        })?;
    check_folder(dir, &manifest)?;
    let mut problems = files::check(dir, &manifest)?;
    if problems.len() > 1 {
        return Err(VerifyError::SeveralProblems { problems });
    }
    if let Some(problem) = problems.pop() {
        return Err(problem);
    }
    Ok(VerifiedRelease {
        files_checked: manifest.files.len(),
        manifest,
        signer,
    })
}

/// The release folder itself must not be a symbolic link (a trailing `/`
/// would make the system follow it, so it is looked at without one).
fn refuse_linked_folder(dir: &Path) -> Result<(), VerifyError> {
    let bare: PathBuf = dir.components().collect();
    match std::fs::symlink_metadata(&bare) {
        Ok(m) if m.file_type().is_symlink() => Err(VerifyError::LinkedFolder {
            dir: dir.to_path_buf(),
        }),
        // A folder that cannot be looked at is reported by the reads below.
        _ => Ok(()),
    }
}

/// The release must be in `…/REFERENCE/RUN_ID` as its manifest says, where
/// it is really (links in the path resolved): the signature says what a
/// release is, the folder says which delivery it claims to be.
fn check_folder(dir: &Path, manifest: &Manifest) -> Result<(), VerifyError> {
    let real = std::fs::canonicalize(dir).map_err(|source| VerifyError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let run_id = name(Some(&real));
    let reference = name(real.parent());
    if reference != manifest.agreement || run_id != manifest.run_id {
        return Err(VerifyError::WrongFolder {
            dir: dir.to_path_buf(),
            agreement: manifest.agreement.clone(),
            run_id: manifest.run_id.clone(),
            found: format!("{reference}/{run_id}"),
        });
    }
    Ok(())
}

/// Reads a small file of the release, `None` if it does not exist. A link
/// or anything else that is not a plain file is refused, and the file read
/// is the one checked.
fn read_release_file(dir: &Path, name: &str, limit: u64) -> Result<Option<Vec<u8>>, VerifyError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(name);
    let listed = match std::fs::symlink_metadata(&path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(VerifyError::Read { path, source }),
    };
    if !listed.file_type().is_file() {
        return Err(VerifyError::NotARegularFile {
            name: name.to_string(),
        });
    }
    let file = std::fs::File::open(&path).map_err(|source| VerifyError::Read {
        path: path.clone(),
        source,
    })?;
    let opened = file.metadata().map_err(|source| VerifyError::Read {
        path: path.clone(),
        source,
    })?;
    if (opened.dev(), opened.ino()) != (listed.dev(), listed.ino()) {
        // Replaced between the two looks.
        return Err(VerifyError::NotARegularFile {
            name: name.to_string(),
        });
    }
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|source| VerifyError::Read { path, source })?;
    Ok(Some(bytes))
}
