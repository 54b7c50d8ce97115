//! One file's upload: found whole already, or written to `NAME.part`
//! (resumed if one is there) through a window of writes kept in flight,
//! fsynced (`fsync@openssh.com`), closed, its size checked, renamed to
//! `NAME` and its size checked again. SFTP v3 rename never replaces a
//! file, so a name taken in the meantime is compared instead of
//! overwritten.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use ssh2::{OpenFlags, OpenType, RenameFlags};
use tracing::{info, warn};

use super::{errors, Connection, State};
use crate::push::staged::{read_full, StagedFile};
use crate::push::PushError;

/// Bytes kept in flight, at the least. libssh2 cuts what it has not seen
/// before of each write into 30,000-byte packets, sends them, and returns
/// as soon as the oldest outstanding one is acknowledged, expecting the
/// rest of the same bytes again in the next call. So every write is handed
/// the whole unacknowledged window, first topped up by [`READ_BLOCK`] reads
/// while it is under this (2 to 3 MiB, less at the file's end): the pipe
/// never drains. (Writing a buffer to the end instead stalls on the last
/// acknowledgements each time; at 8 KiB per write an upload runs about 4x
/// slower.) 2 MiB is OpenSSH's channel window, so more than that waits in
/// libssh2 unsent, gone cold in cache by the time it is encrypted: 1, 2, 4
/// and 8 MiB measured 1.94, 1.51, 1.79 and 1.97 client CPU s/GiB
/// (benches/sftp_upload.rs, sshd's files on tmpfs).
const IN_FLIGHT: usize = 2 << 20;
/// Bytes read from the staged file at a time.
const READ_BLOCK: usize = 1 << 20;
/// The upload buffer: the window, a read, and room to slide so that the
/// window moves back to the start only now and then.
const UPLOAD_BUFFER: usize = 16 << 20;
/// Mode of files created at the destination.
const FILE_MODE: i32 = 0o600;

impl Connection<'_> {
    /// Delivers one file that is not yet known whole at the destination.
    pub(super) fn deliver(&self, state: &mut State, file: &StagedFile) -> Result<(), PushError> {
        let progress = &self.job.progress;
        let final_path = format!("{}/{}", self.job.folder, file.name);
        let part_path = format!("{final_path}.part");
        let done_before = state.bytes_done(&self.job.files);
        if self.already_there(file, &final_path)? {
            state.record_done(file);
            progress.set_overall(done_before + file.len);
            return Ok(());
        }

        let offset = self.resumable_offset(file, &part_path)?;
        progress.set_overall(done_before + offset);
        let bar = progress.file(&file.name, file.len, offset);
        if offset > 0 {
            info!(file = %file.name, from = offset, "resuming a partial upload");
        }
        let mut remote = self.open_part(&part_path, offset)?;
        self.send(state, file, offset, &mut remote, &part_path, &bar)?;
        self.flush_to_disk(state, &mut remote, &part_path)?;
        remote
            .close()
            .map_err(|e| self.remote_error("closing", &part_path, e))?;
        drop(remote);
        bar.finish();
        state.written.insert(file.name.clone());

        self.ensure_size(file, &part_path)?;
        self.rename_into_place(file, &part_path, &final_path)?;
        state.record_done(file);
        Ok(())
    }

    /// `NAME.part`, created afresh, or reopened at `offset` to resume it.
    fn open_part(&self, part_path: &str, offset: u64) -> Result<ssh2::File, PushError> {
        let path = Path::new(part_path);
        if offset == 0 {
            let flags = OpenFlags::WRITE | OpenFlags::EXCLUSIVE;
            return self
                .sftp
                .open_mode(path, flags, FILE_MODE, OpenType::File)
                .map_err(|e| self.remote_error("creating", part_path, e));
        }
        let mut f = self
            .sftp
            .open_mode(path, OpenFlags::WRITE, FILE_MODE, OpenType::File)
            .map_err(|e| self.remote_error("reopening", part_path, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| self.stream_error("seeking in", part_path, e))?;
        Ok(f)
    }

    /// Writes the staged file from `offset` to its end, keeping
    /// [`IN_FLIGHT`] bytes unacknowledged.
    fn send(
        &self,
        state: &mut State,
        file: &StagedFile,
        offset: u64,
        remote: &mut ssh2::File,
        part_path: &str,
        bar: &indicatif::ProgressBar,
    ) -> Result<(), PushError> {
        let mut local = file.open_at(offset)?;
        // buf[start..end] is read but not yet acknowledged by the server.
        let mut buf = vec![0u8; UPLOAD_BUFFER];
        let (mut start, mut end, mut eof) = (0, 0, false);
        loop {
            while !eof && end - start < IN_FLIGHT {
                if end + READ_BLOCK > buf.len() {
                    // libssh2 keeps its own copy of what it has packed, and
                    // counts positions, not addresses: the window may move.
                    buf.copy_within(start..end, 0);
                    (start, end) = (0, end - start);
                }
                let n = read_full(&mut local, &mut buf[end..end + READ_BLOCK])
                    .map_err(|e| file.read_error(e))?;
                eof = n == 0;
                end += n;
            }
            if start == end {
                return Ok(());
            }
            let k = remote
                .write(&buf[start..end])
                .map_err(|e| self.stream_error("writing", part_path, e))?;
            if k == 0 {
                return Err(self.lost(format!("writing {part_path}: the server accepted no bytes")));
            }
            start += k;
            state.bytes_sent += k as u64;
            self.job.progress.advance(bar, k as u64);
        }
    }

    /// `fsync@openssh.com`; a server without it gets one warning per push
    /// and the file is renamed without a forced flush.
    fn flush_to_disk(
        &self,
        state: &mut State,
        remote: &mut ssh2::File,
        part_path: &str,
    ) -> Result<(), PushError> {
        match remote.fsync() {
            Ok(()) => Ok(()),
            Err(e) if errors::is_unsupported(&e) => {
                if !state.warned_no_fsync {
                    warn!("the server has no fsync@openssh.com: files are renamed without a forced flush to disk");
                    state.warned_no_fsync = true;
                }
                Ok(())
            }
            Err(e) => Err(self.remote_error("fsync of", part_path, e)),
        }
    }

    /// Renames the checked `.part` to its final name, which must not be
    /// taken by other bytes.
    fn rename_into_place(
        &self,
        file: &StagedFile,
        part_path: &str,
        final_path: &str,
    ) -> Result<(), PushError> {
        // Without the overwrite flag: SFTP v3 (OpenSSH) refuses to replace an
        // existing name, which is what a release needs.
        let renamed = self.sftp.rename(
            Path::new(part_path),
            Path::new(final_path),
            Some(RenameFlags::ATOMIC | RenameFlags::NATIVE),
        );
        match renamed {
            Ok(()) => self.ensure_size(file, final_path),
            // Perhaps the name was taken meanwhile: the same bytes are fine,
            // other bytes a conflict. Otherwise the rename itself failed.
            Err(e) => {
                if !self.already_there(file, final_path)? {
                    return Err(self.remote_error("renaming", part_path, e));
                }
                let _ = self.sftp.unlink(Path::new(part_path));
                Ok(())
            }
        }
    }
}
