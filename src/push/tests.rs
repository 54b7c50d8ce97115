//! Unit tests for destinations and the local push.

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
