//! Files the pipeline writes: private (mode 0600 in 0700 directories,
//! because the work directory holds identifiable data) and atomic (written
//! under a temporary name, fsynced and renamed, so that a crash never leaves
//! a half-written file under its final name).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `path` and its missing parents with mode 0700.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    // `mode` is filtered by the umask and not applied to an existing
    // directory: set it explicitly on the leaf.
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

/// What [`secure_dir`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secured {
    /// It did not exist; it was created with mode 0700.
    Created,
    /// It was already private.
    Private,
    /// Group or others could read or enter it; it is now 0700.
    Tightened { from: u32 },
    /// Group or others can write to it: left as it is for the caller to
    /// refuse, since anything in it may have been replaced.
    Writable { mode: u32 },
    /// Another user owns it (`owner`, while this process runs as `euid`):
    /// left as it is for the caller to refuse, since its owner can replace
    /// anything in it.
    NotOwned { owner: u32, euid: u32 },
}

/// The effective uid of this process, from the kernel's
/// `/proc/self/status` (`Uid:` real, effective, saved, filesystem).
pub fn effective_uid() -> io::Result<u32> {
    let status = fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| io::Error::other("/proc/self/status has no effective uid"))
}

/// Makes sure `path` is a private folder of this user's: created with mode
/// 0700 if it is missing, tightened to 0700 if group or others may only
/// read or enter it. A folder another user owns, or one group or others
/// may write to, is reported, not changed.
pub fn secure_dir(path: &Path) -> io::Result<Secured> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_private_dir(path)?;
            return Ok(Secured::Created);
        }
        Err(e) => return Err(e),
    };
    if !metadata.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "it is not a folder",
        ));
    }
    let euid = effective_uid()?;
    if metadata.uid() != euid {
        return Ok(Secured::NotOwned {
            owner: metadata.uid(),
            euid,
        });
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Ok(Secured::Writable { mode });
    }
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
        return Ok(Secured::Tightened { from: mode });
    }
    Ok(Secured::Private)
}

/// A file being written under `NAME.tmp`, renamed to `NAME` on
/// [`AtomicFile::commit`]. Dropped without commit, the temporary is removed.
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts `path` with the given mode (0600 for anything identifiable).
    /// A stale temporary from a crashed run is replaced.
    pub fn create(path: &Path, mode: u32) -> io::Result<Self> {
        let tmp = tmp_name(path);
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        Ok(Self {
            file: Some(file),
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// Flushes to disk, renames over the final name, and syncs the directory.
    pub fn commit(mut self) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        fs::rename(&self.tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.file.as_mut() {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("write after commit")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// `dir/NAME` -> `dir/NAME.tmp`.
pub fn tmp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes a whole private file atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(path, 0o600)?;
    f.write_all(bytes)?;
    f.commit()
}

/// fsync a directory so that a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_12_an_existing_folder_open_to_others_is_tightened_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        assert_eq!(secure_dir(&work).unwrap(), Secured::Created);
        assert_eq!(secure_dir(&work).unwrap(), Secured::Private);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&work), 0o700);
        fs::set_permissions(&work, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            secure_dir(&work).unwrap(),
            Secured::Tightened { from: 0o755 }
        );
        assert_eq!(mode(&work), 0o700);
        for open in [0o777, 0o770, 0o1777] {
            fs::set_permissions(&work, fs::Permissions::from_mode(open)).unwrap();
            assert_eq!(secure_dir(&work).unwrap(), Secured::Writable { mode: open });
            assert_eq!(
                mode(&work),
                open,
                "a writable folder is left for a person to check"
            );
        }
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(secure_dir(&file).is_err());
    }

    #[test]
    fn issue_12_the_effective_uid_is_the_owner_of_what_this_process_creates() {
        let dir = tempfile::tempdir().unwrap();
        let owner = fs::metadata(dir.path()).unwrap().uid();
        assert_eq!(effective_uid().unwrap(), owner);
    }

    #[test]
    fn commit_renames_and_drop_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        {
            let mut f = AtomicFile::create(&path, 0o600).unwrap();
            f.write_all(b"half").unwrap();
            // dropped without commit
        }
        assert!(!path.exists());
        assert!(!tmp_name(&path).exists());
        let mut f = AtomicFile::create(&path, 0o600).unwrap();
        f.write_all(b"whole").unwrap();
        assert!(!path.exists(), "nothing under the final name before commit");
        f.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn private_dirs_are_0700() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b");
        create_private_dir(&p).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}
