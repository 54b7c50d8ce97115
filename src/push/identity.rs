//! The client key that authenticates dars to an sftp destination: the
//! agreement's `identity` file.
//!
//! The key is read once, through one open file handle whose permissions
//! are checked (a key readable by group or others is refused, as OpenSSH
//! refuses it), and its bytes live only in a zeroizing buffer that is
//! wiped when the push ends. It is never logged or shown: `Debug` prints
//! the path alone.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::{Zeroize, Zeroizing};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read it: {0}")]
    Unreadable(#[source] std::io::Error),
    #[error("it is readable by group or others (mode {mode:04o})")]
    TooOpen { mode: u32 },
    #[error("{0}")]
    NotAPrivateKey(&'static str),
}

/// An unencrypted private key in OpenSSH or PEM form.
pub struct Identity {
    pub path: PathBuf,
    pem: Zeroizing<String>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Identity {
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let mut file = File::open(path).map_err(IdentityError::Unreadable)?;
        // The mode of the handle we read from, not of a path that could be
        // swapped between a check and the read.
        let meta = file.metadata().map_err(IdentityError::Unreadable)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::TooOpen { mode });
        }
        if !meta.is_file() {
            return Err(IdentityError::NotAPrivateKey("it is not a regular file"));
        }
        // Room for the whole file up front, so reading never reallocates
        // and leaves an unwiped copy of the key behind.
        let capacity = usize::try_from(meta.len()).unwrap_or(0).saturating_add(1);
        let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
        file.read_to_end(&mut bytes)
            .map_err(IdentityError::Unreadable)?;
        if std::str::from_utf8(&bytes).is_err() {
            return Err(IdentityError::NotAPrivateKey(
                "it is not a text key file (OpenSSH or PEM)",
            ));
        }
        let pem = match String::from_utf8(std::mem::take(&mut *bytes)) {
            Ok(s) => Zeroizing::new(s),
            // Checked just above; wipe the bytes all the same.
            Err(e) => {
                e.into_bytes().zeroize();
                return Err(IdentityError::NotAPrivateKey("it is not text"));
            }
        };
        if pem.contains("PUBLIC KEY") || pem.trim_start().starts_with("ssh-") {
            return Err(IdentityError::NotAPrivateKey(
                "it is a public key; `identity` names the private half (the file without .pub)",
            ));
        }
        if !pem.contains("-----BEGIN ") || !pem.contains("PRIVATE KEY-----") {
            return Err(IdentityError::NotAPrivateKey(
                "it is not a private key in OpenSSH or PEM form",
            ));
        }
        if pem.contains("ENCRYPTED") || openssh_cipher_is_set(&pem) {
            return Err(IdentityError::NotAPrivateKey(
                "it is protected by a passphrase, which an unattended release cannot type",
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            pem,
        })
    }

    /// The key text, for libssh2. Borrowed: the only owned copy stays in
    /// the zeroizing buffer.
    pub fn pem(&self) -> &str {
        &self.pem
    }
}

/// Whether an OpenSSH-format key (`openssh-key-v1`) names a cipher other
/// than `none`, i.e. needs a passphrase. The decoded bytes are wiped.
fn openssh_cipher_is_set(pem: &str) -> bool {
    const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
    const END: &str = "-----END OPENSSH PRIVATE KEY-----";
    let Some(start) = pem.find(BEGIN) else {
        return false;
    };
    let body = &pem[start + BEGIN.len()..];
    let body = &body[..body.find(END).unwrap_or(body.len())];
    let mut joined = Zeroizing::new(String::with_capacity(body.len()));
    joined.extend(body.split_whitespace());
    let mut decoded = Zeroizing::new(Vec::with_capacity(joined.len()));
    if STANDARD
        .decode_vec(joined.as_bytes(), &mut decoded)
        .is_err()
    {
        return false; // libssh2 reports a damaged key when it tries it.
    }
    let Some(rest) = decoded.strip_prefix(b"openssh-key-v1\0") else {
        return false;
    };
    let cipher = rest
        .get(..4)
        .and_then(|l| <[u8; 4]>::try_from(l).ok())
        .map(|l| u32::from_be_bytes(l) as usize)
        .and_then(|n| rest.get(4..4 + n));
    cipher != Some(b"none".as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn key_file(dir: &Path, mode: u32, text: &str) -> PathBuf {
        let p = dir.join("id");
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    const FAKE: &str =
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

    #[test]
    fn a_key_readable_by_group_or_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o604, 0o644, 0o660] {
            let p = key_file(dir.path(), mode, FAKE);
            match Identity::load(&p) {
                Err(IdentityError::TooOpen { mode: m }) => assert_eq!(m, mode),
                other => panic!("mode {mode:o}: {other:?}"),
            }
        }
        let p = key_file(dir.path(), 0o600, FAKE);
        let id = Identity::load(&p).unwrap();
        assert_eq!(id.pem(), FAKE);
        // Debug never shows key material.
        assert!(!format!("{id:?}").contains("AAAA"));
    }

    #[test]
    fn public_encrypted_and_non_key_files_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        for (text, needle) in [
            ("ssh-ed25519 AAAAC3Nza test\n", "public key"),
            ("hello\n", "not a private key"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n-----END RSA PRIVATE KEY-----\n",
                "passphrase",
            ),
        ] {
            let p = key_file(dir.path(), 0o600, text);
            let err = Identity::load(&p).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn an_openssh_key_with_a_passphrase_is_refused_and_one_without_is_read() {
        let dir = tempfile::tempdir().unwrap();
        for (passphrase, refused) in [("", false), ("secret words", true)] {
            let p = dir.path().join(format!("id_{refused}"));
            let out = std::process::Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    passphrase,
                    "-C",
                    "TEST-ONLY",
                    "-f",
                ])
                .arg(&p)
                .output()
                .expect("ssh-keygen is installed (.ci/run installs openssh-client)");
            assert!(out.status.success());
            let loaded = Identity::load(&p);
            assert_eq!(loaded.is_err(), refused, "{loaded:?}");
        }
    }
}
