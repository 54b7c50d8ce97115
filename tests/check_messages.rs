//! `dars check` on one agreement per kind of problem
//! (`testdata/agreements/fail_*.toml`, `warn_*.toml`, each one change from
//! `ok.toml`), against the shipped site config. What the user reads is
//! pinned as a snapshot (`tests/snapshots/`): a change of wording shows up
//! in review as a diff of the message, and a problem that stops being
//! found fails the test. After a deliberate change of wording:
//! `INSTA_UPDATE=always cargo test --test check_messages`, then read the
//! diff of `tests/snapshots/` before committing it.

mod common;

use std::path::Path;
use std::process::Command;

const EXIT_CONFIG: i32 = 3;

fn check(agreement: &Path) -> (i32, String) {
    let repo = common::repo();
    let rel = agreement.strip_prefix(&repo).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dars"))
        .current_dir(&repo)
        .args(["--site", "config/site.toml", "check"])
        .arg(rel)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A run of ten digits: what an NHS number looks like in a message.
fn has_ten_digits(s: &str) -> bool {
    s.as_bytes()
        .split(|b| !b.is_ascii_digit())
        .any(|run| run.len() >= 10)
}

#[test]
fn every_problem_kind_has_its_message() {
    let dir = common::repo().join("testdata/agreements");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let (mut fails, mut warns) = (0, 0);
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let (code, text) = check(file);
        if name.starts_with("fail_") {
            fails += 1;
            assert_eq!(code, EXIT_CONFIG, "{name}: expected a config error\n{text}");
            assert!(text.contains("error"), "{name}: no error line\n{text}");
            assert!(text.contains("fix:"), "{name}: no fix given\n{text}");
        } else if name.starts_with("warn_") {
            warns += 1;
            assert_eq!(code, 0, "{name}: a warning must not fail the check\n{text}");
            assert!(text.contains("warning"), "{name}: no warning\n{text}");
        } else {
            assert_eq!(name, "ok", "unexpected file {name}");
            assert_eq!(code, 0, "ok.toml must pass\n{text}");
            assert!(text.contains("(0 warning(s))"), "ok.toml warns\n{text}");
        }
        assert!(
            !has_ten_digits(&text),
            "{name}: a ten-digit number printed\n{text}"
        );
        insta::assert_snapshot!(name, text);
    }
    assert!(fails >= 40, "only {fails} fail_ files");
    assert!(warns >= 2, "only {warns} warn_ files");
}
