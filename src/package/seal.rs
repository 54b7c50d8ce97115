//! Encrypting one release output while it is produced: the caller's writer
//! feeds a SHA-256 of the plaintext, then age encryption to every recipient,
//! then a SHA-256 of the ciphertext, then an atomic private file. One pass,
//! bounded memory, and no plaintext copy of a release file on disk.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    let file = AtomicFile::create(path, 0o600).map_err(|e| write_error(path, e))?;
    seal_into(path, file, AtomicFile::commit, recipients, write)
}

/// What a failed write of `path` is: a full disk is said as such (issue
/// #12), since "cannot write" sends the reader looking at permissions.
fn write_error(path: &Path, source: io::Error) -> PackageError {
    if is_disk_full(&source) {
        PackageError::DiskFull {
            path: path.to_path_buf(),
        }
    } else {
        PackageError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// [`seal`] into any file-like sink, finished by `commit` (for
/// [`AtomicFile`], fsync and rename). Errors name `path`.
pub(crate) fn seal_into<W, F>(
    path: &Path,
    sink: W,
    commit: impl FnOnce(W) -> io::Result<()>,
    recipients: &Recipients,
    write: F,
) -> Result<SealedFile, PackageError>
where
    W: Write,
    F: FnOnce(&mut dyn Write) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
{
    // age reports a failed write of its header as text, so the kind of the
    // error is lost on the way up: the sink itself notes a full disk.
    let full = Arc::new(AtomicBool::new(false));
    let disk_full = || {
        full.load(Ordering::Relaxed)
            .then(|| PackageError::DiskFull {
                path: path.to_path_buf(),
            })
    };
    let write_error = |source: io::Error| disk_full().unwrap_or_else(|| write_error(path, source));
    let sink = NotesDiskFull {
        inner: sink,
        full: Arc::clone(&full),
    };
    let encryptor = age::Encryptor::with_recipients(recipients.iter_age()).map_err(|e| {
        PackageError::Encrypt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    let ciphertext = HashingWriter::new(sink);
    let encrypted = encryptor.wrap_output(ciphertext).map_err(write_error)?;
    let mut plaintext = HashingWriter::new(encrypted);

    // On error every writer is dropped here, and AtomicFile's drop removes
    // the temporary file.
    write(&mut plaintext).map_err(|source| {
        if full.load(Ordering::Relaxed) || error_chain_is_disk_full(source.as_ref()) {
            PackageError::DiskFull {
                path: path.to_path_buf(),
            }
        } else {
            PackageError::Produce {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;

    let (encrypted, plaintext_sha256, _) = plaintext.finish();
    let ciphertext = encrypted.finish().map_err(write_error)?;
    let (file, sha256, bytes) = ciphertext.finish();
    commit(file.inner).map_err(write_error)?;

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

/// A writer that remembers whether it ever failed for a full disk.
struct NotesDiskFull<W> {
    inner: W,
    full: Arc<AtomicBool>,
}

impl<W: Write> Write for NotesDiskFull<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| self.note(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|e| self.note(e))
    }
}

impl<W> NotesDiskFull<W> {
    fn note(&self, e: &io::Error) {
        if is_disk_full(e) {
            self.full.store(true, Ordering::Relaxed);
        }
    }
}

/// ENOSPC, or EDQUOT (a quota is full: the same fix).
pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
        || e.get_ref()
            .is_some_and(|inner| error_chain_is_disk_full(inner))
}

/// Whether a full disk is behind an error from the code that produced the
/// plaintext (polars' writers wrap the I/O error they met).
fn error_chain_is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if is_disk_full(io) {
                return true;
            }
        }
        if let Some(polars::prelude::PolarsError::IO { error, .. }) =
            err.downcast_ref::<polars::prelude::PolarsError>()
        {
            if is_disk_full(error) {
                return true;
            }
        }
        next = err.source();
    }
    false
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    use crate::package::tests::test_recipients as recipients;

    /// `/dev/full` answers every write with ENOSPC, as a full filesystem
    /// does: the error says the disk is full, whether the producer or the
    /// encryption met it.
    #[test]
    fn issue_12_a_full_disk_while_sealing_is_said_as_such() {
        let path = Path::new("/work/runs/R1/release/episodes.parquet.age");
        for plaintext in [0usize, 10, 300_000] {
            let full = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap();
            let err = seal_into(
                path,
                full,
                |f| f.sync_all(),
                &recipients(),
                |out| {
                    out.write_all(&vec![7u8; plaintext])?;
                    Ok(())
                },
            )
            .unwrap_err();
            assert!(
                matches!(err, PackageError::DiskFull { .. }),
                "{plaintext}: {err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains("no space left on the filesystem holding /work/runs/R1/release")
                    && text.contains("episodes.parquet.age")
                    && text.contains("work.dir"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_full_disk_behind_a_polars_error_is_found() {
        let enospc = std::io::Error::from_raw_os_error(28);
        let polars = polars::prelude::PolarsError::from(enospc);
        assert!(error_chain_is_disk_full(&polars));
        let other = polars::prelude::PolarsError::from(std::io::Error::from_raw_os_error(13));
        assert!(!error_chain_is_disk_full(&other));
    }
}
