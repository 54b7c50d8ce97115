//! Stage 6a, package: turns release outputs into what may leave the building.
//!
//! Three things, each with its own file: [`Recipients`] and [`seal`] encrypt
//! every output with age to the agreement's recipients while it is being
//! written, so that plaintext never touches disk outside the work directory;
//! [`Manifest`] lists what was sealed (name, size, SHA-256 of the ciphertext,
//! rows) with the release counts; [`SigningKey`] signs the manifest as an
//! OpenSSH SSHSIG that a recipient checks with stock `ssh-keygen -Y verify`
//! or with `dars verify` ([`crate::verify`]).
//!
//! The signature is written last and is the commit marker of a release:
//! a directory without `manifest.json.sig` is an incomplete delivery.

mod manifest;
mod recipients;
mod seal;
mod sign;
#[cfg(test)]
pub(crate) mod tests;

pub use manifest::{LedgerHead, Manifest, ManifestFile, ReusedLinkage, SignedManifest};
pub use recipients::Recipients;
pub use seal::{seal, SealedFile};
pub use sign::{SigningKey, VerifyingKey};

pub(crate) use sign::{check_sshsig, SshsigProblem};
#[cfg(test)]
use sign::{sshsig_signed_data, SshsigHash};

use std::path::PathBuf;

/// The SSHSIG namespace of a release manifest signature; `ssh-keygen -Y
/// verify -n dars-manifest` and the `namespaces=` option of an
/// allowed_signers line refer to it.
pub const MANIFEST_NAMESPACE: &str = "dars-manifest";

/// File name of the manifest inside a release.
pub const MANIFEST_FILE: &str = "manifest.json";

/// File name of the manifest's signature inside a release. Written last:
/// its presence is what makes a release complete.
pub const SIGNATURE_FILE: &str = "manifest.json.sig";

/// Lower-case hex SHA-256 of `bytes` (manifest and ledger hashes).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// Lower-case hex SHA-256 and length of all that `reader` gives, read in
/// 1 MiB pieces, so a file of any size hashes in bounded memory.
pub fn sha256_reader(mut reader: impl std::io::Read) -> std::io::Result<(String, u64)> {
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buffer.get(..n).unwrap_or_default();
        hash.update(chunk);
        total += n as u64;
    }
    Ok((hex::encode(hash.finish()), total))
}

/// Lower-case hex SHA-256 of the file at `path`, streamed.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    Ok(sha256_reader(std::fs::File::open(path)?)?.0)
}

/// What went wrong while encrypting, describing or signing a release.
///
/// No message ever contains key material: a bad recipient is named by its
/// position only, because a confused operator may have pasted a secret key.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(
        "no recipients: add at least one age public key (`age1…`, from `age-keygen -y`) \
         or an `ssh-ed25519 AAAA…` public key to [release].recipients"
    )]
    NoRecipients,

    #[error(
        "recipients[{index}] is a private key, not a recipient: replace it with the matching \
         public key (`age-keygen -y KEYFILE`, or the line in the `.pub` file) and treat the \
         private key as exposed, since it was stored in a config file"
    )]
    SecretKeyAsRecipient { index: usize },

    #[error(
        "recipients[{index}] is an unsupported {kind} key: dars encrypts only to age X25519 \
         recipients (`age1…`) and `ssh-ed25519` keys; ask the recipient for one of those"
    )]
    UnsupportedRecipient { index: usize, kind: &'static str },

    #[error(
        "recipients[{index}] is not a valid recipient ({reason}): expected an age public key \
         (`age1…`, from `age-keygen -y`) or an OpenSSH `ssh-ed25519 AAAA…` public key line; \
         check it was copied whole"
    )]
    InvalidRecipient { index: usize, reason: String },

    #[error("cannot start age encryption for {path}: {reason}")]
    Encrypt { path: PathBuf, reason: String },

    #[error("producing the contents of {path} failed: {source}; nothing was left under that name")]
    Produce {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error(
        "no space left on the filesystem holding {}: it filled while sealing {}; nothing was \
         left under that name\n  fix: free space there (`work.dir` in the site config: the \
         work directory, where releases are sealed before delivery) and run again: the run \
         resumes from its checkpoints",
        path.parent().unwrap_or(path).display(),
        path.display()
    )]
    DiskFull { path: PathBuf },

    #[error(
        "cannot write {path}: {source}; check that its folder exists, is writable and has space"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "cannot read signing key {path}: {source}; check [keys].signing_key in the site config"
    )]
    KeyRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "signing key {path} is readable by group or others (mode {mode:04o}): \
         run `chmod 600 {path}` and make sure no one else has copied it"
    )]
    KeyPermissions { path: PathBuf, mode: u32 },

    #[error("signing key {path} is a public key: [keys].signing_key must name the private key file (the one without `.pub`)")]
    KeyIsPublic { path: PathBuf },

    #[error(
        "signing key {path} is not an OpenSSH private key ({reason}): expected a file starting \
         `-----BEGIN OPENSSH PRIVATE KEY-----`, as written by `ssh-keygen -t ed25519`"
    )]
    KeyNotOpenssh { path: PathBuf, reason: String },

    #[error(
        "signing key {path} is protected by a passphrase: dars signs unattended and needs an \
         unencrypted key kept with mode 0600 on a protected volume \
         (`ssh-keygen -p -N '' -f {path}` removes the passphrase)"
    )]
    KeyEncrypted { path: PathBuf },

    #[error(
        "signing key {path} is not an Ed25519 key ({algorithm}): dars signs releases with \
         Ed25519; create one with `ssh-keygen -t ed25519 -f NEW_KEY`, point [keys].signing_key \
         at it and give recipients its allowed_signers line"
    )]
    KeyNotEd25519 { path: PathBuf, algorithm: String },

    #[error(
        "signing key {path} is damaged: its private and public halves do not match; \
         restore it from backup or create a new key"
    )]
    KeyMismatch { path: PathBuf },
}
