//! `file://` destinations: a local or mounted directory.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use super::{PushError, PushReport, StagedRelease};

pub fn push(root: &Path, release: &StagedRelease) -> Result<PushReport, PushError> {
    let target = root.join(&release.folder);
    let location = format!("file://{}", target.display());
    let io = |action: &'static str| {
        let location = location.clone();
        move |source| PushError::Io {
            location,
            action,
            source,
        }
    };
    if !root.is_dir() {
        return Err(PushError::Io {
            location: format!("file://{}", root.display()),
            action: "opening the destination",
            source: io::Error::new(io::ErrorKind::NotFound, "no such directory"),
        });
    }
    fs::create_dir_all(&target).map_err(io("creating the release folder"))?;
    let mut report = PushReport {
        location: location.clone(),
        files_sent: 0,
        files_already_there: 0,
        bytes_sent: 0,
    };
    for name in &release.files {
        let source = release.dir.join(name);
        let expected = fs::metadata(&source)
            .map_err(io("reading the staged file"))?
            .len();
        let dest = target.join(name);
        if dest.exists() {
            if same_content(&source, &dest).map_err(io("comparing an existing file"))? {
                report.files_already_there += 1;
                continue;
            }
            return Err(PushError::Conflict {
                location,
                name: name.clone(),
            });
        }
        let part = target.join(format!("{name}.part"));
        // A `.part` from a crashed run is never trusted: start it again.
        let _ = fs::remove_file(&part);
        {
            let mut from = File::open(&source).map_err(io("reading the staged file"))?;
            let mut to = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&part)
                .map_err(io("creating the .part file"))?;
            io::copy(&mut from, &mut to).map_err(io("writing"))?;
            to.sync_all().map_err(io("fsync"))?;
        }
        let actual = fs::metadata(&part).map_err(io("checking the size"))?.len();
        if actual != expected {
            return Err(PushError::SizeMismatch {
                location,
                name: name.clone(),
                expected,
                actual,
            });
        }
        fs::rename(&part, &dest).map_err(io("renaming .part to its final name"))?;
        crate::workdir::sync_dir(&target).map_err(io("fsync of the folder"))?;
        report.files_sent += 1;
        report.bytes_sent += actual;
    }
    Ok(report)
}

fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    if fs::metadata(a)?.len() != fs::metadata(b)?.len() {
        return Ok(false);
    }
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}
