//! Encrypting one release output while it is produced: the caller's writer
//! feeds a SHA-256 of the plaintext, then age encryption to every recipient,
//! then a SHA-256 of the ciphertext, then an atomic private file. One pass,
//! bounded memory, and no plaintext copy of a release file on disk.

use std::io::{self, Write};
use std::path::Path;

use ring::digest::{Context, SHA256};

use super::{PackageError, Recipients};
use crate::workdir::AtomicFile;

/// One encrypted output, as the manifest and the ledger describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedFile {
    /// File name without folders (`episodes.parquet.age`).
    pub name: String,
    /// Size of the encrypted file.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the encrypted file, as the recipient sees it.
    pub sha256: String,
    /// Lower-case hex SHA-256 of what the recipient gets after decryption.
    pub plaintext_sha256: String,
}

/// Streams plaintext produced by `write` straight into an age encryption to
/// every recipient, into `path` (written atomically: temporary name, fsync,
/// rename; mode 0600), hashing the ciphertext in the same pass. Plaintext
/// never touches disk. If `write` fails, nothing is left under `path`.
pub fn seal<F>(path: &Path, recipients: &Recipients, write: F) -> Result<SealedFile, PackageError>
where
    F: FnOnce(&mut dyn Write) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
{
    let write_error = |source: io::Error| PackageError::Write {
        path: path.to_path_buf(),
        source,
    };
    let encryptor = age::Encryptor::with_recipients(recipients.iter_age()).map_err(|e| {
        PackageError::Encrypt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    let file = AtomicFile::create(path, 0o600).map_err(write_error)?;
    let ciphertext = HashingWriter::new(file);
    let encrypted = encryptor.wrap_output(ciphertext).map_err(write_error)?;
    let mut plaintext = HashingWriter::new(encrypted);

    // On error every writer is dropped here, and AtomicFile's drop removes
    // the temporary file.
    write(&mut plaintext).map_err(|source| PackageError::Produce {
        path: path.to_path_buf(),
        source,
    })?;

    let (encrypted, plaintext_sha256, _) = plaintext.finish();
    let ciphertext = encrypted.finish().map_err(write_error)?;
    let (file, sha256, bytes) = ciphertext.finish();
    file.commit().map_err(write_error)?;

    Ok(SealedFile {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes,
        sha256,
        plaintext_sha256,
    })
}

/// Passes writes through to `inner`, hashing and counting what it accepted.
struct HashingWriter<W> {
    inner: W,
    hash: Context,
    bytes: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hash: Context::new(&SHA256),
            bytes: 0,
        }
    }

    /// The inner writer, the hex SHA-256 and the byte count.
    fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hash.finish()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let accepted = buf
            .get(..n)
            .ok_or_else(|| io::Error::other("writer reported more bytes than it was given"))?;
        self.hash.update(accepted);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
