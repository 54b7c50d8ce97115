//! The sending side of a push, shared by both destinations: each file of
//! the sealed release in the work directory with its size, read from an
//! offset, and compared byte for byte with a copy at the destination.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::{PushError, StagedRelease};

/// Bytes compared at a time.
const COMPARE_BLOCK: usize = 1 << 20;

/// One file of the release, as sealed in the work directory.
#[derive(Debug, Clone)]
pub struct StagedFile {
    pub name: String,
    pub path: PathBuf,
    pub len: u64,
}

impl StagedFile {
    /// Every file of the release with its size, in the order they must
    /// arrive.
    pub fn list(release: &StagedRelease) -> Result<Vec<Self>, PushError> {
        release
            .files
            .iter()
            .map(|name| {
                let path = release.dir.join(name);
                let file = Self {
                    name: name.clone(),
                    len: 0,
                    path,
                };
                // Each file lands directly in the release folder: a name
                // that is a path would reach past it.
                if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
                    return Err(file.read_error(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a release file's name must be a plain file name",
                    )));
                }
                let len = std::fs::metadata(&file.path)
                    .map_err(|e| file.read_error(e))?
                    .len();
                Ok(Self { len, ..file })
            })
            .collect()
    }

    /// The file, opened and positioned at `offset`.
    pub fn open_at(&self, offset: u64) -> Result<File, PushError> {
        let mut f = File::open(&self.path).map_err(|e| self.read_error(e))?;
        if offset > 0 {
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| self.read_error(e))?;
        }
        Ok(f)
    }

    /// The error for a failed read of this file.
    pub fn read_error(&self, source: io::Error) -> PushError {
        PushError::Io {
            location: self.path.display().to_string(),
            action: "reading the staged file",
            source,
        }
    }
}

/// Which side of a comparison failed to read.
#[derive(Debug)]
pub enum CompareError {
    Copy(io::Error),
    Staged(io::Error),
}

/// Whether `copy`, from where it stands to its end, holds the same bytes
/// as `staged` from where it stands. Bytes of `staged` past the end of
/// `copy` are not looked at: the caller compares sizes.
pub fn same_bytes(copy: &mut impl Read, staged: &mut impl Read) -> Result<bool, CompareError> {
    let (mut a, mut b) = (vec![0u8; COMPARE_BLOCK], vec![0u8; COMPARE_BLOCK]);
    loop {
        let n = read_full(copy, &mut a).map_err(CompareError::Copy)?;
        if n == 0 {
            return Ok(true);
        }
        let m = read_full(staged, &mut b[..n]).map_err(CompareError::Staged)?;
        if m != n || a[..n] != b[..n] {
            return Ok(false);
        }
    }
}

/// Reads until `buf` is full or the end of the input.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most a few bytes per call.
    struct Trickle<'a> {
        data: &'a [u8],
        per_call: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.data.len().min(self.per_call).min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn read_full_fills_across_short_reads() {
        let data: Vec<u8> = (0..10).collect();
        let mut t = Trickle {
            data: &data,
            per_call: 3,
        };
        let mut buf = [0u8; 8];
        assert_eq!(read_full(&mut t, &mut buf).unwrap(), 8);
        assert_eq!(buf, [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(read_full(&mut t, &mut buf).unwrap(), 2);
    }

    #[test]
    fn same_bytes_compares_to_the_end_of_the_copy() {
        let data: Vec<u8> = (0..=255).cycle().take(3 * COMPARE_BLOCK + 7).collect();
        let same = |copy: &[u8], staged: &[u8]| {
            let mut copy = Trickle {
                data: copy,
                per_call: 4099,
            };
            same_bytes(&mut copy, &mut &staged[..]).unwrap()
        };
        assert!(same(&data, &data));
        assert!(same(&[], &data), "an empty copy says nothing against it");
        assert!(same(&data[..10], &data), "a prefix matches");
        let mut other = data.clone();
        other[2 * COMPARE_BLOCK + 1] ^= 1;
        assert!(!same(&other, &data));
        assert!(!same(&data, &data[..data.len() - 1]), "the copy runs on");
    }

    #[test]
    fn a_release_file_name_must_be_a_plain_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv.age"), b"x").unwrap();
        let release = |name: &str| StagedRelease {
            dir: dir.path().to_path_buf(),
            files: vec![name.to_string()],
            folder: "REF/RUN".into(),
        };
        assert_eq!(StagedFile::list(&release("a.csv.age")).unwrap()[0].len, 1);
        for bad in ["", ".", "..", "../a.csv.age", "sub/a.csv.age"] {
            let err = StagedFile::list(&release(bad)).unwrap_err().to_string();
            assert!(err.contains("plain file name"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_failed_read_says_which_side() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("gone"))
            }
        }
        assert!(matches!(
            same_bytes(&mut Broken, &mut &b"x"[..]),
            Err(CompareError::Copy(_))
        ));
        assert!(matches!(
            same_bytes(&mut &b"x"[..], &mut Broken),
            Err(CompareError::Staged(_))
        ));
    }
}
