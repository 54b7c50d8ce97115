//! The resume checks: what a file's names at the destination already hold.
//! A final name holding the staged file's bytes means the file arrived
//! before; other bytes there are refused, as a released file is never
//! overwritten. A `NAME.part` whose last MiB is the staged file's is
//! resumed from its size; any other `.part` is removed and sent again.

use std::path::Path;

use super::Connection;
use crate::push::staged::{self, CompareError, StagedFile};
use crate::push::PushError;

/// How much of a `.part` is read back before resuming it.
const RESUME_CHECK: u64 = 1 << 20;

impl Connection<'_> {
    /// The size of a remote file, `None` if there is none.
    fn remote_size(&self, path: &str) -> Result<Option<u64>, PushError> {
        match self.sftp.stat(Path::new(path)) {
            Ok(st) => Ok(Some(st.size.unwrap_or(0))),
            Err(e) if super::errors::is_no_such_file(&e) => Ok(None),
            Err(e) => Err(self.remote_error("checking", path, e)),
        }
    }

    /// The remote file at `path` must hold exactly the staged file's bytes.
    pub(super) fn ensure_size(&self, file: &StagedFile, path: &str) -> Result<(), PushError> {
        let size = self.remote_size(path)?;
        if size != Some(file.len) {
            return Err(PushError::SizeMismatch {
                location: self.job.location.clone(),
                name: file.name.clone(),
                expected: file.len,
                actual: size.unwrap_or(0),
            });
        }
        Ok(())
    }

    /// Whether the final name already holds exactly this file. A different
    /// file under it is a conflict: a released file is never overwritten.
    pub(super) fn already_there(
        &self,
        file: &StagedFile,
        final_path: &str,
    ) -> Result<bool, PushError> {
        let conflict = || PushError::conflict(&self.job.location, file);
        match self.remote_size(final_path)? {
            None => Ok(false),
            Some(size) if size != file.len => Err(conflict()),
            Some(_) if self.same_bytes(file, final_path, 0)? => Ok(true),
            Some(_) => Err(conflict()),
        }
    }

    /// Where to go on with `NAME.part`: its remote size if its last bytes
    /// are the staged file's, else 0 after removing it (a `.part` longer
    /// than the file, or of other bytes, is not this file's).
    pub(super) fn resumable_offset(
        &self,
        file: &StagedFile,
        part_path: &str,
    ) -> Result<u64, PushError> {
        let Some(size) = self.remote_size(part_path)? else {
            return Ok(0);
        };
        if size > 0
            && size <= file.len
            && self.same_bytes(file, part_path, size.saturating_sub(RESUME_CHECK))?
        {
            return Ok(size);
        }
        self.sftp
            .unlink(Path::new(part_path))
            .map_err(|e| self.remote_error("removing a stale", part_path, e))?;
        Ok(0)
    }

    /// Whether the remote file's bytes from `from` to its end equal the
    /// staged file's bytes over the same range.
    fn same_bytes(
        &self,
        file: &StagedFile,
        remote_path: &str,
        from: u64,
    ) -> Result<bool, PushError> {
        let mut remote = self
            .sftp
            .open(Path::new(remote_path))
            .map_err(|e| self.remote_error("opening", remote_path, e))?;
        if from > 0 {
            std::io::Seek::seek(&mut remote, std::io::SeekFrom::Start(from))
                .map_err(|e| self.stream_error("seeking in", remote_path, e))?;
        }
        let mut local = file.open_at(from)?;
        staged::same_bytes(&mut remote, &mut local).map_err(|e| match e {
            CompareError::Copy(e) => self.stream_error("reading", remote_path, e),
            CompareError::Staged(e) => file.read_error(e),
        })
    }
}
