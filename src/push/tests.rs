//! Unit tests for destinations, the `[release]` checks and the local push.

use super::*;

fn local(root: &std::path::Path) -> ReleaseConfig {
    ReleaseConfig {
        recipients: vec![],
        destination: Destination::Local(root.to_path_buf()),
        known_hosts: None,
        identity: None,
    }
}

#[test]
fn destinations_parse() {
    assert_eq!(
        Destination::parse("file:///srv/outbox").unwrap(),
        Destination::Local("/srv/outbox".into())
    );
    assert_eq!(
        Destination::parse("sftp://dars@127.0.0.1:2222/inbox").unwrap(),
        Destination::Sftp {
            user: "dars".into(),
            host: "127.0.0.1".into(),
            port: 2222,
            path: "/inbox".into()
        }
    );
    assert!(Destination::parse("http://example.org/").is_err());
    assert!(Destination::parse("sftp://host/inbox").is_err());
}

fn staged(dir: &std::path::Path) -> StagedRelease {
    std::fs::write(dir.join("a.csv.age"), b"ciphertext a").unwrap();
    std::fs::write(dir.join("manifest.json"), b"{}").unwrap();
    std::fs::write(dir.join("manifest.json.sig"), b"sig").unwrap();
    StagedRelease {
        dir: dir.to_path_buf(),
        files: vec![
            "a.csv.age".into(),
            "manifest.json".into(),
            "manifest.json.sig".into(),
        ],
        folder: "REF/RUN".into(),
    }
}

#[test]
fn local_push_delivers_in_order_and_reruns_are_idempotent() {
    let work = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let release = staged(work.path());
    let d = local(dest.path());
    let r = push(&d, &release).unwrap();
    assert_eq!(r.files_sent, 3);
    let folder = dest.path().join("REF/RUN");
    let mut names: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.csv.age", "manifest.json", "manifest.json.sig"]);
    // A re-run (after a crash, say) sends nothing again.
    let again = push(&d, &release).unwrap();
    assert_eq!((again.files_sent, again.files_already_there), (0, 3));
}

#[test]
fn a_different_file_under_the_same_name_is_never_overwritten() {
    let work = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let release = staged(work.path());
    std::fs::create_dir_all(dest.path().join("REF/RUN")).unwrap();
    std::fs::write(dest.path().join("REF/RUN/a.csv.age"), b"something else").unwrap();
    let err = push(&local(dest.path()), &release).unwrap_err();
    assert!(matches!(err, PushError::Conflict { .. }), "{err}");
    assert!(!dest.path().join("REF/RUN/manifest.json.sig").exists());
}

#[test]
fn a_missing_destination_is_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let release = staged(work.path());
    let err = push(
        &local(std::path::Path::new("/nonexistent/outbox")),
        &release,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nonexistent/outbox"), "{err}");
}

/// Regression test for issue #12 (9e): the conflict hint said "run again
/// for a new run id", but a re-run resumes the same run id and meets the
/// same file. The hint now says so, names this run's copy, and its fix
/// (move the folder aside, run again) delivers.
#[test]
fn issue_12_a_conflict_says_a_rerun_keeps_the_run_id_and_its_fix_delivers() {
    let work = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let release = staged(work.path());
    let folder = dest.path().join("REF/RUN");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.csv.age"), b"something else").unwrap();
    let d = local(dest.path());
    let err = push(&d, &release).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PushError::Conflict { .. }), "{msg}");
    assert!(!msg.contains("new run id"), "{msg}");
    assert!(msg.contains("resumes this same run id"), "{msg}");
    assert!(
        msg.contains(&work.path().join("a.csv.age").display().to_string()),
        "names this run's copy: {msg}"
    );
    let move_aside = format!("move file://{} aside", folder.display());
    assert!(msg.contains(&move_aside), "{msg}");
    // As the message says, running again stops at the same file.
    assert!(matches!(
        push(&d, &release).unwrap_err(),
        PushError::Conflict { .. }
    ));
    // Following the fix delivers.
    std::fs::rename(&folder, dest.path().join("REF/RUN.void")).unwrap();
    let r = push(&d, &release).unwrap();
    assert_eq!((r.files_sent, r.files_already_there), (3, 0));
    assert_eq!(
        std::fs::read(folder.join("a.csv.age")).unwrap(),
        b"ciphertext a"
    );
}

/// Names in a directory, sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Regression test for issue #12 (9f): a symbolic link at the release
/// folder, at the agreement's folder above it, or under a file's name was
/// followed, writing the release (or counting it delivered) elsewhere.
/// Each is refused, naming the link, and nothing lands where it leads.
#[test]
fn issue_12_a_symlinked_release_folder_or_file_is_refused_and_nothing_is_written_through_it() {
    use std::os::unix::fs::symlink;
    let work = tempfile::tempdir().unwrap();
    let release = staged(work.path());
    let cases: [(&str, &str); 3] = [
        ("REF", "a folder elsewhere"),
        ("REF/RUN", "a folder elsewhere"),
        ("REF/RUN/a.csv.age", "a copy of the file elsewhere"),
    ];
    for (link, what) in cases {
        let dest = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let target = if link.ends_with(".age") {
            // The same bytes: followed, it would count as delivered.
            let copy = elsewhere.path().join("a.csv.age");
            std::fs::write(&copy, b"ciphertext a").unwrap();
            copy
        } else {
            elsewhere.path().to_path_buf()
        };
        let link_path = dest.path().join(link);
        std::fs::create_dir_all(link_path.parent().unwrap()).unwrap();
        symlink(&target, &link_path).unwrap();
        let before = names(elsewhere.path());

        let err = push(&local(dest.path()), &release).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, PushError::SymlinkRefused { path, .. } if *path == link_path),
            "{link} -> {what}: {msg}"
        );
        assert!(
            msg.contains("symbolic link") && msg.contains(&link_path.display().to_string()),
            "{msg}"
        );
        assert_eq!(names(elsewhere.path()), before, "{link}: written through");
        assert!(
            !dest.path().join("REF/RUN/manifest.json.sig").exists(),
            "{link}"
        );
    }

    // The destination directory itself may be a link (to a mount, say):
    // that one is the agreement's to name, and is followed.
    let real = tempfile::tempdir().unwrap();
    let holder = tempfile::tempdir().unwrap();
    let root = holder.path().join("outbox");
    symlink(real.path(), &root).unwrap();
    push(&local(&root), &release).unwrap();
    assert_eq!(
        names(&real.path().join("REF/RUN")),
        ["a.csv.age", "manifest.json", "manifest.json.sig"]
    );
}

/// Regression test for issue #12 (9g): `dars check` said ok for a
/// `file://` destination that does not exist. The `[release]` table now
/// reports it, with the key and the fix.
#[test]
fn issue_12_a_file_destination_that_is_not_a_directory_is_a_problem_with_its_key_and_fix() {
    let base = tempfile::tempdir().unwrap();
    let agreement = base.path().join("agreement.toml");
    std::fs::create_dir(base.path().join("outbox")).unwrap();
    std::fs::write(base.path().join("a_file"), b"").unwrap();
    let problems = |destination: &str| {
        let mut c = local(std::path::Path::new("unused"));
        c.destination = Destination::parse(destination).unwrap();
        c.problems(&agreement, base.path())
            .into_iter()
            .filter(|p| p.key == "release.destination")
            .collect::<Vec<_>>()
    };
    assert!(problems("file://outbox").is_empty());
    assert!(problems(&format!("file://{}", base.path().join("outbox").display())).is_empty());

    let missing = problems("file://no/such/outbox");
    assert_eq!(missing.len(), 1, "{missing:?}");
    let expected = base.path().join("no/such/outbox");
    let shown = missing[0].to_string();
    assert_eq!(missing[0].severity, crate::config_file::Severity::Error);
    assert!(
        shown.contains(&format!("no directory at {}", expected.display())),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("mkdir -p {}", expected.display())),
        "{shown}"
    );

    let not_a_dir = problems("file://a_file");
    assert_eq!(not_a_dir.len(), 1, "{not_a_dir:?}");
    assert!(
        not_a_dir[0].to_string().contains("is not a directory"),
        "{}",
        not_a_dir[0]
    );
}
