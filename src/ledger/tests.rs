//! Unit tests for the ledger: appends, the chain, and each kind of tampering.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;

fn release(n: u32) -> LedgerEvent {
    LedgerEvent::Release {
        agreement: "DARS-NIC-000001-DEMO1-01".to_string(),
        run_id: format!("run-{n}"),
        destination: "file:///outbox".to_string(),
        manifest_sha256: sha256_hex(format!("manifest {n}").as_bytes()),
        files: vec![ManifestFile {
            name: "episodes.parquet.age".to_string(),
            bytes: 1000 + u64::from(n),
            sha256: "ab".repeat(32),
            rows: 10,
            kind: "records".to_string(),
        }],
        forced: false,
    }
}

fn destruction() -> LedgerEvent {
    LedgerEvent::Destruction {
        agreement: "DARS-NIC-000001-DEMO1-01".to_string(),
        certificate_sha256: "cd".repeat(32),
        certificate_name: "certificate.pdf".to_string(),
    }
}

/// A ledger with `n` entries in a fresh folder.
fn ledger_with(n: u32) -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.jsonl"));
    for i in 1..=n {
        ledger.append(release(i)).unwrap();
    }
    (dir, ledger)
}

fn lines(ledger: &Ledger) -> Vec<String> {
    fs::read_to_string(ledger.path())
        .unwrap()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect()
}

fn rewrite(ledger: &Ledger, lines: &[String]) {
    fs::write(ledger.path(), lines.concat()).unwrap();
}

#[test]
fn a_missing_ledger_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.jsonl"));
    assert_eq!(ledger.verify().unwrap(), 0);
    assert!(ledger.entries().unwrap().is_empty());
}

#[test]
fn appends_chain_each_line_to_the_one_before() {
    let (_dir, ledger) = ledger_with(2);
    let third = ledger.append(destruction()).unwrap();
    assert_eq!(ledger.verify().unwrap(), 3);

    let entries = ledger.entries().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2], third);
    assert_eq!(entries[0].prev_sha256, GENESIS_SHA256);
    let raw = lines(&ledger);
    for i in 1..3 {
        assert_eq!(entries[i].seq, i as u64 + 1);
        assert_eq!(entries[i].prev_sha256, sha256_hex(raw[i - 1].as_bytes()));
    }
    assert_eq!(entries[0].event, release(1));
    assert_eq!(entries[2].event, destruction());
    assert!(chrono::DateTime::parse_from_rfc3339(&third.at).is_ok());
    assert!(third.at.ends_with('Z'), "{}", third.at);
}

#[test]
fn the_file_is_private_and_the_lock_is_released() {
    let (dir, ledger) = ledger_with(1);
    let mode = fs::metadata(ledger.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no lock file left"
    );
}

#[test]
fn lines_are_flat_json_tagged_by_event() {
    let (_dir, ledger) = ledger_with(1);
    ledger.append(destruction()).unwrap();
    let raw = lines(&ledger);
    let first: serde_json::Value = serde_json::from_str(&raw[0]).unwrap();
    assert_eq!(first["event"], "release");
    assert_eq!(first["seq"], 1);
    assert_eq!(first["run_id"], "run-1");
    assert_eq!(first["files"][0]["name"], "episodes.parquet.age");
    assert!(raw[0].starts_with("{\"seq\":1,\"at\":"), "{}", raw[0]);
    let second: serde_json::Value = serde_json::from_str(&raw[1]).unwrap();
    assert_eq!(second["event"], "destruction");
    assert_eq!(second["certificate_name"], "certificate.pdf");
}

#[test]
fn an_edited_line_is_named() {
    let (_dir, ledger) = ledger_with(4);
    let mut raw = lines(&ledger);
    raw[1] = raw[1].replace("\"forced\":false", "\"forced\":true");
    rewrite(&ledger, &raw);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::EditedLine { line: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("line 2 "), "{err}");
    // A damaged ledger is never extended.
    assert!(matches!(
        ledger.append(release(9)).unwrap_err(),
        LedgerError::EditedLine { line: 2, .. }
    ));
}

#[test]
fn an_edited_sequence_number_is_named() {
    let (_dir, ledger) = ledger_with(3);
    let mut raw = lines(&ledger);
    raw[2] = raw[2].replace("{\"seq\":3,", "{\"seq\":7,");
    rewrite(&ledger, &raw);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::EditedLine { line: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn a_deleted_line_is_found() {
    let (_dir, ledger) = ledger_with(5);
    let mut raw = lines(&ledger);
    raw.remove(2);
    rewrite(&ledger, &raw);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::DeletedLines {
                line: 3,
                missing: 1,
                found: 4,
                expected: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("line 3"), "{err}");
}

#[test]
fn deleting_the_first_lines_is_found() {
    let (_dir, ledger) = ledger_with(4);
    let raw = lines(&ledger);
    rewrite(&ledger, &raw[2..]);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::DeletedLines {
                line: 1,
                missing: 2,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_swapped_pair_is_found() {
    let (_dir, ledger) = ledger_with(4);
    let mut raw = lines(&ledger);
    raw.swap(1, 2);
    rewrite(&ledger, &raw);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::ReorderedLine {
                line: 2,
                seq: 3,
                written_after: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("line 2 "), "{err}");
}

#[test]
fn a_duplicated_line_is_found() {
    let (_dir, ledger) = ledger_with(3);
    let mut raw = lines(&ledger);
    raw.insert(2, raw[1].clone());
    rewrite(&ledger, &raw);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::ReorderedLine { line: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn bad_json_and_a_cut_line_are_named() {
    let (_dir, ledger) = ledger_with(3);
    let mut raw = lines(&ledger);
    raw[1] = "{\"seq\": 2, oops\n".to_string();
    rewrite(&ledger, &raw);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::BadJson { line: 2, .. }),
        "{err:?}"
    );

    let (_dir, ledger) = ledger_with(2);
    let mut raw = lines(&ledger);
    raw[1].pop();
    rewrite(&ledger, &raw);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::IncompleteLine { line: 2, .. }),
        "{err:?}"
    );

    let (_dir, ledger) = ledger_with(2);
    let mut raw = lines(&ledger);
    raw.insert(1, "\n".to_string());
    rewrite(&ledger, &raw);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::BadJson { line: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn a_forged_genesis_is_found() {
    let (_dir, ledger) = ledger_with(1);
    let mut raw = lines(&ledger);
    raw[0] = raw[0].replace(GENESIS_SHA256, &"1".repeat(64));
    rewrite(&ledger, &raw);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::EditedLine { line: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn a_stale_lock_file_is_reported_with_the_fix() {
    let (dir, ledger) = ledger_with(1);
    let lock = dir.path().join("ledger.jsonl.lock");
    fs::write(&lock, "12345\n").unwrap();
    let started = Instant::now();
    let err = ledger.append(release(2)).unwrap_err();
    assert!(started.elapsed() >= LOCK_WAIT);
    assert!(matches!(err, LedgerError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("remove {}", lock.display())),
        "{err}"
    );
    fs::remove_file(&lock).unwrap();
    ledger.append(release(2)).unwrap();
    assert_eq!(ledger.verify().unwrap(), 2);
}

#[test]
fn concurrent_appends_keep_the_chain() {
    let (_dir, ledger) = ledger_with(0);
    thread::scope(|scope| {
        for t in 0..4 {
            let ledger = ledger.clone();
            scope.spawn(move || {
                for i in 0..5 {
                    ledger.append(release(t * 10 + i)).unwrap();
                }
            });
        }
    });
    assert_eq!(ledger.verify().unwrap(), 20);
}
