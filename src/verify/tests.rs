//! Unit tests for release verification: a good release built with the
//! package stage, then one kind of damage at a time.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::package::tests::{key_file, test_recipients, test_signing_key};
use crate::package::{seal, ManifestFile, SigningKey, MANIFEST_NAMESPACE};

const FILES: [(&str, &str); 2] = [
    ("episodes.parquet.age", "records"),
    ("admissions_by_region.csv.age", "aggregate"),
];

fn manifest_for(dir: &Path) -> Manifest {
    let files = FILES
        .iter()
        .enumerate()
        .map(|(i, (name, kind))| {
            let sealed = seal(&dir.join(name), &test_recipients(), |out| {
                for row in 0..(1000 * (i + 1)) {
                    writeln!(out, "S{row:05},E12.{},North East", row % 10)?;
                }
                Ok(())
            })
            .unwrap();
            ManifestFile::from_sealed(&sealed, 1000 * (i as u64 + 1), kind)
        })
        .collect();
    Manifest {
        agreement: "DARS-NIC-000001-DEMO1-01".to_string(),
        run_id: "run-1".to_string(),
        created_at: "2026-03-01T10:15:00Z".to_string(),
        tool_version: "0.1.0".to_string(),
        ledger_head: None,
        objections: None,
        reused_linkage: None,
        files,
        counts: BTreeMap::from([("admissions.cells".to_string(), serde_json::json!(48))]),
    }
}

const FOLDER: &str = "DARS-NIC-000001-DEMO1-01/run-1";

/// A release in its folder, `ROOT/REFERENCE/RUN_ID`, as delivered.
struct Release {
    root: tempfile::TempDir,
    dir: PathBuf,
}

impl Release {
    fn path(&self) -> &Path {
        &self.dir
    }
}

/// An empty release folder.
fn release_folder() -> Release {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(FOLDER);
    fs::create_dir_all(&dir).unwrap();
    Release { root, dir }
}

/// A complete release signed with `key`.
fn release_signed_by(key: &SigningKey) -> Release {
    let release = release_folder();
    manifest_for(release.path())
        .sign(key)
        .write_to(release.path())
        .unwrap();
    release
}

fn good_release() -> Release {
    release_signed_by(&test_signing_key())
}

fn allowed_signers() -> PathBuf {
    key_file("allowed_signers")
}

fn write_allowed_signers(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("allowed_signers");
    fs::write(&path, text).unwrap();
    path
}

fn key_line() -> String {
    fs::read_to_string(key_file("release_signing_ed25519.pub"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_good_release_verifies() {
    let release = good_release();
    let verified = verify_release(release.path(), &allowed_signers()).unwrap();
    assert_eq!(verified.signer, "releases@example.nhs.uk");
    assert_eq!(verified.files_checked, 2);
    assert_eq!(verified.manifest, manifest_from(release.path()));
}

fn manifest_from(dir: &Path) -> Manifest {
    Manifest::from_json(&fs::read(dir.join(MANIFEST_FILE)).unwrap()).unwrap()
}

#[test]
fn one_flipped_byte_in_any_file_names_that_file() {
    for (name, _) in FILES {
        let release = good_release();
        let path = release.path().join(name);
        let mut bytes = fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        fs::write(&path, bytes).unwrap();
        let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
        assert!(matches!(err, VerifyError::HashMismatch { .. }), "{err:?}");
        assert_eq!(err.file_name(), Some(name));
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn a_truncated_file_is_a_size_mismatch() {
    let release = good_release();
    let path = release.path().join(FILES[0].0);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
    match &err {
        VerifyError::SizeMismatch {
            name,
            expected,
            actual,
        } => {
            assert_eq!(name, FILES[0].0);
            assert_eq!(*expected, bytes.len() as u64);
            assert_eq!(*actual, bytes.len() as u64 - 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let release = good_release();
    fs::remove_file(release.path().join(FILES[1].0)).unwrap();
    let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
    assert!(matches!(err, VerifyError::MissingFile { .. }), "{err:?}");
    assert_eq!(err.file_name(), Some(FILES[1].0));
}

#[test]
fn every_extra_file_is_listed() {
    let release = good_release();
    fs::write(release.path().join("notes.txt"), "hello").unwrap();
    fs::write(release.path().join("episodes.parquet.age.tmp"), "partial").unwrap();
    fs::create_dir(release.path().join("subdir")).unwrap();
    let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
    let names: Vec<&str> = err
        .problems()
        .iter()
        .filter_map(|p| p.file_name())
        .collect();
    assert_eq!(names, ["episodes.parquet.age.tmp", "notes.txt", "subdir"]);
    assert!(err
        .problems()
        .iter()
        .all(|p| matches!(p, VerifyError::ExtraFile { .. })));
    let message = err.to_string();
    assert!(message.starts_with("3 problems"), "{message}");
    assert!(message.contains("notes.txt") && message.contains("subdir"));
}

#[test]
fn all_file_problems_are_reported_together() {
    let release = good_release();
    fs::remove_file(release.path().join(FILES[0].0)).unwrap();
    fs::write(release.path().join(FILES[1].0), b"replaced").unwrap();
    fs::write(release.path().join("stray.csv"), b"").unwrap();
    let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
    let problems = err.problems();
    assert_eq!(problems.len(), 3, "{err}");
    assert!(matches!(problems[0], VerifyError::MissingFile { .. }));
    assert!(matches!(problems[1], VerifyError::SizeMismatch { .. }));
    assert!(matches!(problems[2], VerifyError::ExtraFile { .. }));
}

#[test]
fn a_symlink_in_place_of_a_file_is_refused() {
    let release = good_release();
    let path = release.path().join(FILES[0].0);
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("real");
    fs::rename(&path, &target).unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
    assert!(
        matches!(err, VerifyError::NotARegularFile { .. }),
        "{err:?}"
    );
}

#[test]
fn a_changed_manifest_is_a_bad_signature() {
    let release = good_release();
    let path = release.path().join(MANIFEST_FILE);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace("\"rows\": 1000", "\"rows\": 1001")).unwrap();
    let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature), "{err:?}");
    assert!(err.to_string().contains(MANIFEST_FILE), "{err}");
}

#[test]
fn a_signature_from_a_key_not_in_allowed_signers_is_refused() {
    let stranger = SigningKey::from_seed_for_tests([7; 32], "someone else");
    let release = release_signed_by(&stranger);
    let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
    match &err {
        VerifyError::NoMatchingSigner { fingerprint, .. } => {
            assert_eq!(fingerprint, &stranger.fingerprint())
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("allowed_signers"), "{err}");
}

#[test]
fn the_allowed_signers_namespace_option_is_honoured() {
    let release = good_release();
    let dir = tempfile::tempdir().unwrap();
    let only_git = write_allowed_signers(
        dir.path(),
        &format!(
            "releases@example.nhs.uk namespaces=\"git\" {}\n",
            key_line()
        ),
    );
    let err = verify_release(release.path(), &only_git).unwrap_err();
    assert!(
        matches!(err, VerifyError::NamespaceNotAllowed { line: 1, .. }),
        "{err:?}"
    );

    let any_namespace = write_allowed_signers(
        dir.path(),
        &format!(
            "# ours\nops@example.nhs.uk,releases@example.nhs.uk {}\n",
            key_line()
        ),
    );
    let verified = verify_release(release.path(), &any_namespace).unwrap();
    assert_eq!(
        verified.signer,
        "ops@example.nhs.uk,releases@example.nhs.uk"
    );
}

#[test]
fn an_expired_allowed_signer_is_refused() {
    let release = good_release();
    let dir = tempfile::tempdir().unwrap();
    let expired = write_allowed_signers(
        dir.path(),
        &format!(
            "releases@example.nhs.uk valid-before=\"20200101Z\" {}\n",
            key_line()
        ),
    );
    let err = verify_release(release.path(), &expired).unwrap_err();
    assert!(
        matches!(err, VerifyError::SignerNotValidNow { line: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn a_signature_for_another_namespace_is_refused() {
    let release = good_release();
    let manifest = fs::read(release.path().join(MANIFEST_FILE)).unwrap();
    let signature = test_signing_key().sign_sshsig(&manifest, "file");
    fs::write(release.path().join(SIGNATURE_FILE), signature).unwrap();
    let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
    assert!(
        matches!(&err, VerifyError::WrongNamespace { found, .. } if found == "file"),
        "{err:?}"
    );
    assert_ne!(MANIFEST_NAMESPACE, "file");
}

#[test]
fn missing_or_garbled_manifest_and_signature() {
    let release = good_release();
    fs::write(release.path().join(SIGNATURE_FILE), "not a signature").unwrap();
    let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
    assert!(
        matches!(err, VerifyError::MalformedSignature { .. }),
        "{err:?}"
    );

    fs::remove_file(release.path().join(SIGNATURE_FILE)).unwrap();
    let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
    assert!(
        matches!(err, VerifyError::MissingSignature { .. }),
        "{err:?}"
    );

    fs::remove_file(release.path().join(MANIFEST_FILE)).unwrap();
    let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
    assert!(
        matches!(err, VerifyError::MissingManifest { .. }),
        "{err:?}"
    );

    let err =
        verify_release(good_release().path(), Path::new("/no/such/allowed_signers")).unwrap_err();
    assert!(
        matches!(err, VerifyError::ReadAllowedSigners { .. }),
        "{err:?}"
    );
}

#[test]
fn a_signed_manifest_pointing_outside_the_folder_is_refused() {
    let release = release_folder();
    let mut manifest = manifest_for(release.path());
    manifest.files[0].name = "../escape.age".to_string();
    manifest
        .sign(&test_signing_key())
        .write_to(release.path())
        .unwrap();
    let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
    assert!(
        matches!(&err, VerifyError::UnsafeFileName { name } if name == "../escape.age"),
        "{err:?}"
    );
}

/// Copies every file of `release` into `ROOT/folder` of the same root.
fn copy_into(release: &Release, folder: &str) -> PathBuf {
    let dir = release.root.path().join(folder);
    fs::create_dir_all(&dir).unwrap();
    for entry in fs::read_dir(release.path()).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

#[test]
fn issue_12_a_release_in_another_runs_folder_is_refused() {
    let release = good_release();
    for folder in [
        "DARS-NIC-000001-DEMO1-01/run-2",
        "DARS-NIC-000009-OTHER-01/run-1",
        "inbox",
    ] {
        let copy = copy_into(&release, folder);
        let err = verify_release(&copy, &allowed_signers()).unwrap_err();
        match &err {
            VerifyError::WrongFolder {
                agreement, run_id, ..
            } => {
                assert_eq!(agreement, "DARS-NIC-000001-DEMO1-01");
                assert_eq!(run_id, "run-1");
            }
            other => panic!("{folder}: {other:?}"),
        }
        assert!(
            err.to_string()
                .contains("must be in a folder DARS-NIC-000001-DEMO1-01/run-1"),
            "{err}"
        );
    }
    // Where it belongs, the same files verify.
    verify_release(release.path(), &allowed_signers()).unwrap();
}

#[test]
fn issue_12_the_folder_is_judged_where_it_really_is() {
    let release = good_release();
    // A link named like the release, to a copy in a folder of another name.
    let copy = copy_into(&release, "elsewhere/copy");
    let link_parent = release.root.path().join("links/DARS-NIC-000001-DEMO1-01");
    fs::create_dir_all(&link_parent).unwrap();
    let link = link_parent.join("run-1");
    std::os::unix::fs::symlink(&copy, &link).unwrap();
    // Refused as a link before its target's folder is even looked at.
    let err = verify_release(&link, &allowed_signers()).unwrap_err();
    assert!(matches!(err, VerifyError::LinkedFolder { .. }), "{err:?}");
    // A folder whose parent is a link is judged where it really is.
    let parent_link = release.root.path().join("parent-link");
    std::os::unix::fs::symlink(copy.parent().unwrap(), &parent_link).unwrap();
    let err = verify_release(&parent_link.join("copy"), &allowed_signers()).unwrap_err();
    assert!(matches!(err, VerifyError::WrongFolder { .. }), "{err:?}");
    // Given by a relative path, or with `..` in it, it is still found.
    let odd = release.path().join("../run-1");
    verify_release(&odd, &allowed_signers()).unwrap();
}

#[test]
fn issue_12_a_manifest_or_signature_that_is_a_link_is_refused() {
    for name in [MANIFEST_FILE, SIGNATURE_FILE] {
        let release = good_release();
        let path = release.path().join(name);
        let elsewhere = release.root.path().join(format!("real-{name}"));
        fs::rename(&path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        let err = verify_release(release.path(), &allowed_signers()).unwrap_err();
        assert!(
            matches!(&err, VerifyError::NotARegularFile { name: n } if n == name),
            "{name}: {err:?}"
        );
    }
}
