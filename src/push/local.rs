//! `file://` destinations: a local or mounted directory.
//!
//! The destination directory is opened as the agreement names it (it may
//! be a symbolic link, to a mount say). Everything below it is reached
//! through open directory handles, one name at a time, never following a
//! symbolic link: a link at `REFERENCE`, at `RUN_ID` or under a file's
//! name is refused before anything is written through it, and no check can
//! be raced by swapping a folder for a link between the check and the
//! write. A `.part` left by a crashed run is removed (a link there is
//! removed, not followed) and written again from the start.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as fs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::staged::{self, CompareError, StagedFile};
use super::{PushError, PushReport, StagedRelease};

/// Folders and files are created as `create_dir` and `File::create` would:
/// these modes less the umask.
const DIR_MODE: u32 = 0o777;
const FILE_MODE: u32 = 0o666;

pub fn push(root: &Path, release: &StagedRelease) -> Result<PushReport, PushError> {
    let target = root.join(&release.folder);
    let dest = Destination {
        location: format!("file://{}", target.display()),
        target,
    };
    let root_dir = open_root(root)?;
    let files = StagedFile::list(release)?;
    let folder = dest.open_release_folder(root_dir, root, &release.folder)?;
    let mut report = PushReport {
        location: dest.location.clone(),
        files_sent: 0,
        files_already_there: 0,
        bytes_sent: 0,
    };
    for file in &files {
        if dest.already_there(&folder, file)? {
            report.files_already_there += 1;
            continue;
        }
        report.bytes_sent += dest.copy_in(&folder, file)?;
        report.files_sent += 1;
    }
    Ok(report)
}

/// The destination directory, following a link if the agreement names one.
fn open_root(root: &Path) -> Result<OwnedFd, PushError> {
    fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| PushError::Io {
        location: format!("file://{}", root.display()),
        action: "opening the destination",
        source: match e {
            Errno::NOENT => io::Error::new(io::ErrorKind::NotFound, "no such directory"),
            Errno::NOTDIR => io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            e => e.into(),
        },
    })
}

/// One release folder, `ROOT/REFERENCE/RUN_ID`.
struct Destination {
    /// `file://ROOT/REFERENCE/RUN_ID`.
    location: String,
    /// `ROOT/REFERENCE/RUN_ID`.
    target: PathBuf,
}

impl Destination {
    fn io(&self, action: &'static str) -> impl FnOnce(io::Error) -> PushError + '_ {
        move |source| PushError::Io {
            location: self.location.clone(),
            action,
            source,
        }
    }

    fn symlink(&self, path: PathBuf) -> PushError {
        PushError::SymlinkRefused {
            location: self.location.clone(),
            path,
        }
    }

    /// Creates what is missing of `folder` (`REFERENCE/RUN_ID`) under the
    /// open `root`, each name opened without following a link.
    fn open_release_folder(
        &self,
        root: OwnedFd,
        root_path: &Path,
        folder: &str,
    ) -> Result<OwnedFd, PushError> {
        let mut dir = root;
        let mut path = root_path.to_path_buf();
        for name in folder.split('/').filter(|n| !n.is_empty()) {
            path.push(name);
            if name == "." || name == ".." {
                return Err(self.io("creating the release folder")(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{name}` is not a folder name"),
                )));
            }
            match fs::mkdirat(&dir, name, Mode::from_raw_mode(DIR_MODE)) {
                // A new folder's name must survive a crash as its files do.
                Ok(()) => {
                    fs::fsync(&dir).map_err(|e| self.io("fsync of a new folder")(e.into()))?
                }
                // A link there is not followed by mkdir: it stays EEXIST,
                // and opening it below refuses it.
                Err(Errno::EXIST) => {}
                Err(e) => return Err(self.io("creating the release folder")(e.into())),
            }
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            dir = match fs::openat(&dir, name, flags, Mode::empty()) {
                Ok(next) => next,
                Err(_) if is_symlink(&dir, name) => return Err(self.symlink(path)),
                Err(e) => return Err(self.io("opening the release folder")(e.into())),
            };
        }
        Ok(dir)
    }

    /// Whether `file`'s final name already holds exactly its bytes. Other
    /// bytes there, or anything but a plain file, is a conflict: a released
    /// file is never overwritten.
    fn already_there(&self, folder: &OwnedFd, file: &StagedFile) -> Result<bool, PushError> {
        let conflict = || PushError::conflict(&self.location, file);
        let st = match fs::statat(folder, file.name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(self.io("checking an existing file")(e.into())),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {}
            FileType::Symlink => return Err(self.symlink(self.target.join(&file.name))),
            _ => return Err(conflict()),
        }
        // NOFOLLOW: a link swapped in since is refused, not read; NONBLOCK:
        // a FIFO swapped in does not hang the open.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let existing = match fs::openat(folder, file.name.as_str(), flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(_) if is_symlink(folder, &file.name) => {
                return Err(self.symlink(self.target.join(&file.name)))
            }
            Err(e) => return Err(self.io("comparing an existing file")(e.into())),
        };
        let meta = existing
            .metadata()
            .map_err(self.io("comparing an existing file"))?;
        if !meta.is_file() || meta.len() != file.len {
            return Err(conflict());
        }
        let mut ours = file.open_at(0)?;
        match staged::same_bytes(&mut &existing, &mut ours) {
            Ok(true) => Ok(true),
            Ok(false) => Err(conflict()),
            Err(CompareError::Copy(e)) => Err(self.io("comparing an existing file")(e)),
            Err(CompareError::Staged(e)) => Err(file.read_error(e)),
        }
    }

    /// Writes `file` to `NAME.part`, fsyncs it, checks its size and renames
    /// it to `NAME`; returns the bytes written.
    fn copy_in(&self, folder: &OwnedFd, file: &StagedFile) -> Result<u64, PushError> {
        let part = format!("{}.part", file.name);
        // A `.part` from a crashed run is never trusted: start it again.
        let _ = fs::unlinkat(folder, part.as_str(), AtFlags::empty());
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut to = fs::openat(folder, part.as_str(), flags, Mode::from_raw_mode(FILE_MODE))
            .map(File::from)
            .map_err(|e| self.io("creating the .part file")(e.into()))?;
        let mut from = file.open_at(0)?;
        io::copy(&mut from, &mut to).map_err(self.io("writing"))?;
        to.sync_all().map_err(self.io("fsync"))?;
        let actual = to.metadata().map_err(self.io("checking the size"))?.len();
        drop(to);
        if actual != file.len {
            return Err(PushError::SizeMismatch {
                location: self.location.clone(),
                name: file.name.clone(),
                expected: file.len,
                actual,
            });
        }
        self.rename_into_place(folder, file, &part)?;
        fs::fsync(folder).map_err(|e| self.io("fsync of the folder")(e.into()))?;
        Ok(actual)
    }

    /// Renames the checked `.part` to its final name, which must still be
    /// free, or hold the same bytes (then the `.part` is dropped).
    fn rename_into_place(
        &self,
        folder: &OwnedFd,
        file: &StagedFile,
        part: &str,
    ) -> Result<(), PushError> {
        match rename_no_replace(folder, part, &file.name) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => {
                // Taken since it was checked: the same bytes are fine,
                // other bytes a conflict.
                if !self.already_there(folder, file)? {
                    return Err(self.io("renaming .part to its final name")(
                        Errno::EXIST.into(),
                    ));
                }
                let _ = fs::unlinkat(folder, part, AtFlags::empty());
                Ok(())
            }
            Err(e) => Err(self.io("renaming .part to its final name")(e.into())),
        }
    }
}

/// `rename` that fails with `EEXIST` rather than replace a name taken
/// since it was checked, where the kernel and file system offer it
/// (`renameat2(RENAME_NOREPLACE)`); elsewhere a plain rename.
fn rename_no_replace(folder: &OwnedFd, from: &str, to: &str) -> Result<(), Errno> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    match fs::renameat_with(folder, from, folder, to, fs::RenameFlags::NOREPLACE) {
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
        other => return other,
    }
    fs::renameat(folder, from, folder, to)
}

fn is_symlink(dir: &OwnedFd, name: &str) -> bool {
    fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
}
