//! `file://` destinations through the real binary (issue #12): `dars
//! check` finds a destination that is not there, a symbolic link under
//! the destination is refused before anything is written through it, and
//! a conflict at the destination says what a re-run will do and how to
//! clear it.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use common::*;

const REFERENCE: &str = "DARS-NIC-000001-DEMO1-01";

/// The one run folder of the agreement in the work directory.
fn only_run_id(w: &Workdir) -> String {
    let runs: Vec<String> = fs::read_dir(w.path("work").join(REFERENCE).join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

#[test]
fn issue_12_dars_check_reports_a_file_destination_that_does_not_exist() {
    let w = Workdir::new(200, 20, 500, 5);
    let a = w.agreement("agreement.toml", "2099-12-31", "");
    let ok = w.dars(&["check", a.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", stdout(&ok));

    let text = fs::read_to_string(&a)
        .unwrap()
        .replace("file://outbox", "file://outbox-typo");
    fs::write(&a, text).unwrap();
    let out = w.dars(&["check", a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    let o = stdout(&out);
    let missing = w.path("outbox-typo");
    assert!(o.contains("`release.destination`"), "{o}");
    assert!(
        o.contains(&format!("no directory at {}", missing.display()))
            && o.contains(&format!("mkdir -p {}", missing.display())),
        "{o}"
    );
    // A run refuses to start on it too, before any work is done.
    let run = w.dars(&["run", a.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(3), "{}", stderr(&run));
    assert!(stderr(&run).contains("`release.destination`"));
    assert!(!missing.exists());
}

#[test]
fn issue_12_a_symlinked_release_folder_at_a_file_destination_is_refused() {
    let w = Workdir::new(200, 20, 500, 6);
    let a = w.agreement("agreement.toml", "2099-12-31", "");
    let elsewhere = w.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let link = w.path("outbox").join(REFERENCE);
    symlink(&elsewhere, &link).unwrap();

    let out = w.dars(&["run", a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("symbolic link") && e.contains(&link.display().to_string()),
        "{e}"
    );
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "written through"
    );

    // Once the link is gone, the same run delivers.
    fs::remove_file(&link).unwrap();
    let again = w.dars(&["run", a.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    let run_id = only_run_id(&w);
    assert!(link.join(&run_id).join("manifest.json.sig").is_file());
}

/// A push that fails once leaves the run resumable under its run id; a
/// foreign `manifest.json` then put in its release folder is a conflict
/// on every re-run (the same run id each time, as the message says), and
/// moving the folder aside, as the message says, lets the next run deliver
/// a release that `dars verify` accepts.
#[test]
fn issue_12_a_conflict_at_the_destination_says_a_rerun_resumes_the_run_id_and_how_to_clear_it() {
    let w = Workdir::new(200, 20, 500, 7);
    let a = w.agreement("agreement.toml", "2099-12-31", "");
    // The agreement's folder at the destination is a file: the push fails.
    let agreement_folder = w.path("outbox").join(REFERENCE);
    fs::write(&agreement_folder, b"in the way").unwrap();
    let out = w.dars(&["run", a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let run_id = only_run_id(&w);

    fs::remove_file(&agreement_folder).unwrap();
    let folder: PathBuf = agreement_folder.join(&run_id);
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("manifest.json"), b"{\"not\": \"this run's\"}\n").unwrap();
    for _ in 0..2 {
        let out = w.dars(&["run", a.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
        let e = stderr(&out);
        assert!(!e.contains("new run id"), "{e}");
        assert!(
            e.contains("resumes this same run id")
                && e.contains(&format!("move file://{} aside", folder.display())),
            "{e}"
        );
        assert_eq!(only_run_id(&w), run_id, "a re-run keeps the run id");
        assert!(!folder.join("manifest.json.sig").exists());
    }

    fs::rename(&folder, agreement_folder.join("void")).unwrap();
    let out = w.dars(&["run", a.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let verify = w.run(&[
        "verify",
        folder.to_str().unwrap(),
        "--allowed-signers",
        w.path("keys/allowed_signers").to_str().unwrap(),
    ]);
    assert!(verify.status.success(), "{}", stderr(&verify));
}
