//! Unit tests for the ledger: appends, the chain, the signatures, the
//! head, and each kind of tampering.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::thread;

use super::*;

fn key() -> SigningKey {
    SigningKey::from_seed_for_tests([7; 32], "ledger-test")
}

fn other_key() -> SigningKey {
    SigningKey::from_seed_for_tests([8; 32], "not-the-site")
}

fn open(path: &Path) -> Ledger {
    Ledger::open(path, key().verifying_key())
}

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
            period: None,
            window: None,
        }],
        forced: false,
        register: None,
        linkage: None,
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
    let ledger = open(&dir.path().join("ledger.jsonl"));
    for i in 1..=n {
        ledger.append(release(i), &key()).unwrap();
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
    let ledger = open(&dir.path().join("ledger.jsonl"));
    assert_eq!(ledger.verify().unwrap().entries.len(), 0);
    assert!(ledger.entries().unwrap().is_empty());
}

#[test]
fn appends_chain_each_line_to_the_one_before() {
    let (_dir, ledger) = ledger_with(2);
    let third = ledger.append(destruction(), &key()).unwrap();
    assert_eq!(ledger.verify().unwrap().entries.len(), 3);

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
fn the_files_are_private_and_the_lock_is_released() {
    let (dir, ledger) = ledger_with(1);
    for path in [ledger.path(), &ledger.head_path(), &ledger.lock_path()] {
        let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    assert_eq!(
        crate::lock::Lock::holder(&ledger.lock_path()).unwrap(),
        None
    );
}

#[test]
fn lines_are_flat_json_tagged_by_event() {
    let (_dir, ledger) = ledger_with(1);
    ledger.append(destruction(), &key()).unwrap();
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
        ledger.append(release(9), &key()).unwrap_err(),
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
fn a_held_lock_is_waited_for_then_reported_and_a_left_lock_file_is_no_lock() {
    let (_dir, ledger) = ledger_with(1);
    // Another dars in the middle of an append (flock is per open file, so
    // a lock taken here excludes this process's appends too).
    let held = crate::lock::Lock::try_acquire(&ledger.lock_path()).unwrap();
    let impatient = ledger.clone().with_lock_wait(Duration::ZERO);
    let err = impatient.append(release(2), &key()).unwrap_err();
    assert!(matches!(err, LedgerError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert_eq!(ledger.verify().unwrap().entries.len(), 1, "nothing written");
    // An append waits for a holder that lets go: while the lock is held it
    // neither returns nor writes (a pause lets it start trying; these hold
    // however soon it does, well inside its wait), and once the lock is
    // let go it appends.
    thread::scope(|scope| {
        let waiting = scope.spawn(|| ledger.append(release(2), &key()).map(|e| e.seq));
        thread::sleep(Duration::from_millis(100));
        assert!(!waiting.is_finished(), "returned while the lock was held");
        assert_eq!(
            ledger.verify().unwrap().entries.len(),
            1,
            "wrote while held"
        );
        drop(held);
        assert_eq!(waiting.join().unwrap().unwrap(), 2);
    });
    // A lock file left by a process that died holds nothing.
    fs::write(ledger.lock_path(), "4194999 2026-01-01T00:00:00Z\n").unwrap();
    impatient.append(release(3), &key()).unwrap();
    assert_eq!(ledger.verify().unwrap().entries.len(), 3);
}

#[test]
fn concurrent_appends_keep_the_chain() {
    let (_dir, ledger) = ledger_with(0);
    thread::scope(|scope| {
        for t in 0..4 {
            let ledger = ledger.clone();
            scope.spawn(move || {
                for i in 0..5 {
                    ledger.append(release(t * 10 + i), &key()).unwrap();
                }
            });
        }
    });
    let verified = ledger.verify().unwrap();
    assert_eq!(verified.entries.len(), 20);
    assert!(verified.notes.is_empty(), "{:?}", verified.notes);
}

#[test]
fn each_line_is_signed_and_the_head_names_the_last() {
    let (_dir, ledger) = ledger_with(3);
    let raw = lines(&ledger);
    for line in &raw {
        let (body, signature) = split_signed_line(line.as_bytes()).unwrap();
        key()
            .verifying_key()
            .check_sshsig(&body, &armor(signature), ENTRY_NAMESPACE)
            .unwrap();
        // The signed body is the line without its last field.
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(value.get("sig").is_none());
    }
    let verified = ledger.verify().unwrap();
    assert_eq!(verified.head.seq, 3);
    assert_eq!(verified.head.sha256, sha256_hex(raw[2].as_bytes()));
    let head: serde_json::Value =
        serde_json::from_slice(&fs::read(ledger.head_path()).unwrap()).unwrap();
    assert_eq!(head["seq"], 3);
    assert_eq!(head["sha256"], verified.head.sha256.as_str());
}

#[test]
fn the_last_line_edited_is_found() {
    let (_dir, ledger) = ledger_with(3);
    let mut raw = lines(&ledger);
    raw[2] = raw[2].replace("run-3", "run-9");
    rewrite(&ledger, &raw);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::BadSignature { line: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn the_last_line_deleted_is_found() {
    let (_dir, ledger) = ledger_with(3);
    let raw = lines(&ledger);
    rewrite(&ledger, &raw[..2]);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::Truncated { head_seq: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("holds 2 entries"), "{err}");
}

#[test]
fn a_ledger_cut_to_its_first_line_emptied_or_deleted_is_found() {
    let (_dir, ledger) = ledger_with(3);
    let raw = lines(&ledger);
    rewrite(&ledger, &raw[..1]);
    let err = ledger.verify().unwrap_err();
    assert!(err.to_string().contains("holds 1 entry,"), "{err}");
    rewrite(&ledger, &[]);
    let err = ledger.verify().unwrap_err();
    assert!(err.to_string().contains("is empty"), "{err}");
    fs::remove_file(ledger.path()).unwrap();
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::Truncated { head_seq: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("is missing"), "{err}");
    // Nor does an append start a new chain over it.
    assert!(ledger.append(release(4), &key()).is_err());
}

#[test]
fn a_deleted_head_is_found() {
    let (_dir, ledger) = ledger_with(2);
    fs::remove_file(ledger.head_path()).unwrap();
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::HeadMissing { entries: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn a_head_signed_by_another_key_is_refused() {
    let (_dir, ledger) = ledger_with(2);
    let forged = Ledger::open(ledger.path(), other_key().verifying_key());
    forged
        .write_head(&ledger.verify().unwrap().head, &other_key())
        .unwrap();
    let err = ledger.verify().unwrap_err();
    assert!(matches!(err, LedgerError::BadHead { .. }), "{err:?}");
    assert!(err.to_string().contains("another key"), "{err}");
}

/// A line as someone without the key would write it: the right seq and
/// prev_sha256, signed with another key (or not at all).
fn forged_line(ledger: &Ledger, signer: Option<&SigningKey>) -> String {
    let verified = ledger.verify().unwrap();
    let entry = LedgerEntry {
        seq: verified.head.seq + 1,
        at: "2026-11-22T10:00:00Z".to_string(),
        prev_sha256: verified.head.sha256.clone(),
        event: release(99),
    };
    let mut body = serde_json::to_vec(&entry).unwrap();
    body.push(b'\n');
    match signer {
        Some(key) => String::from_utf8(signed_line(&body, key, ENTRY_NAMESPACE)).unwrap(),
        None => String::from_utf8(body).unwrap(),
    }
}

#[test]
fn a_forged_line_appended_with_the_right_prev_sha256_is_found() {
    for signer in [None, Some(other_key())] {
        let (_dir, ledger) = ledger_with(2);
        let mut raw = lines(&ledger);
        raw.push(forged_line(&ledger, signer.as_ref()));
        rewrite(&ledger, &raw);
        let err = ledger.verify().unwrap_err();
        assert!(
            matches!(err, LedgerError::BadSignature { line: 3, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("line 3 "), "{err}");
        assert!(ledger.append(release(3), &key()).is_err());
    }
}

#[test]
fn an_edited_line_with_every_later_hash_recomputed_is_found() {
    let (_dir, ledger) = ledger_with(4);
    let mut raw = lines(&ledger);
    raw[1] = raw[1].replace("\"forced\":false", "\"forced\":true");
    // Recompute every later prev_sha256 so the chain holds again.
    for i in 2..raw.len() {
        let prev = sha256_hex(raw[i - 1].as_bytes());
        let mut value: serde_json::Value = serde_json::from_str(&raw[i]).unwrap();
        value["prev_sha256"] = prev.into();
        raw[i] = serde_json::to_string(&value).unwrap() + "\n";
    }
    rewrite(&ledger, &raw);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::BadSignature { line: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn an_append_signed_by_another_key_is_refused() {
    let (_dir, ledger) = ledger_with(1);
    let err = ledger.append(release(2), &other_key()).unwrap_err();
    assert!(matches!(err, LedgerError::WrongKey { .. }), "{err:?}");
    assert_eq!(ledger.verify().unwrap().entries.len(), 1);
}

#[test]
fn a_torn_tail_is_moved_aside_and_recorded_by_the_next_append() {
    let (dir, ledger) = ledger_with(2);
    let torn = &forged_line(&ledger, Some(&key()))[..40];
    let mut raw = lines(&ledger);
    raw.push(torn.to_string());
    rewrite(&ledger, &raw);
    // Nothing recorded is damaged: verify passes and says what it found.
    let verified = ledger.verify().unwrap();
    assert_eq!(verified.entries.len(), 2);
    assert_eq!(verified.notes, vec![Note::TornTail { bytes: 40 }]);

    let entry = ledger.append(release(3), &key()).unwrap();
    assert_eq!(entry.seq, 4, "the recovery is entry 3");
    let verified = ledger.verify().unwrap();
    assert!(verified.notes.is_empty());
    match &verified.entries[2].event {
        LedgerEvent::Recovery {
            torn_bytes,
            torn_sha256,
            saved_as,
        } => {
            assert_eq!(*torn_bytes, 40);
            assert_eq!(*torn_sha256, sha256_hex(torn.as_bytes()));
            assert_eq!(
                fs::read(dir.path().join(saved_as)).unwrap(),
                torn.as_bytes()
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(verified.entries[3].event, release(3));
}

#[test]
fn a_cut_last_line_that_the_head_covers_is_damage_not_a_torn_tail() {
    let (_dir, ledger) = ledger_with(2);
    let mut raw = lines(&ledger);
    raw[1].pop();
    rewrite(&ledger, &raw);
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::IncompleteLine { line: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn a_head_left_behind_by_a_crash_is_noted_and_caught_up() {
    let (_dir, ledger) = ledger_with(2);
    let old_head = fs::read(ledger.head_path()).unwrap();
    ledger.append(release(3), &key()).unwrap();
    // As if the process died between the line and the head.
    fs::write(ledger.head_path(), &old_head).unwrap();
    let verified = ledger.verify().unwrap();
    assert_eq!(
        verified.notes,
        vec![Note::HeadBehind {
            head_seq: 2,
            last_seq: 3
        }]
    );
    ledger.append(release(4), &key()).unwrap();
    assert!(ledger.verify().unwrap().notes.is_empty());
}

fn anchor(run: u32) -> Anchor {
    Anchor {
        source: PathBuf::from(format!("runs/run-{run}/state.json")),
        agreement: "DARS-NIC-000001-DEMO1-01".to_string(),
        run_id: format!("run-{run}"),
        manifest_sha256: Some(sha256_hex(format!("manifest {run}").as_bytes())),
        extends: None,
    }
}

#[test]
fn anchors_find_a_ledger_rolled_back_with_its_head() {
    let (_dir, ledger) = ledger_with(2);
    let old_ledger = fs::read(ledger.path()).unwrap();
    let old_head = fs::read(ledger.head_path()).unwrap();
    let extends = ledger.verify().unwrap().head;
    ledger.append(release(3), &key()).unwrap();
    let verified = ledger.verify().unwrap();
    let third = Anchor {
        extends: Some(extends),
        ..anchor(3)
    };
    ledger
        .check_anchors(&verified, &[anchor(1), anchor(2), third.clone()])
        .unwrap();

    // Someone puts back yesterday's ledger and head, both validly signed.
    fs::write(ledger.path(), &old_ledger).unwrap();
    fs::write(ledger.head_path(), &old_head).unwrap();
    let verified = ledger.verify().unwrap();
    let err = ledger
        .check_anchors(&verified, &[anchor(1), third])
        .unwrap_err();
    assert!(
        matches!(&err, LedgerError::MissingRelease { run_id, .. } if run_id == "run-3"),
        "{err:?}"
    );
    assert!(err.to_string().contains("has no entry for it"), "{err}");

    // Both deleted: the released runs still say what the ledger held.
    fs::remove_file(ledger.path()).unwrap();
    fs::remove_file(ledger.head_path()).unwrap();
    let verified = ledger.verify().unwrap();
    let err = ledger.check_anchors(&verified, &[anchor(1)]).unwrap_err();
    assert!(err.to_string().contains("empty or missing"), "{err}");
}

#[test]
fn an_anchor_with_another_manifest_or_head_is_refused() {
    let (_dir, ledger) = ledger_with(2);
    let verified = ledger.verify().unwrap();
    let other_manifest = Anchor {
        manifest_sha256: Some("ee".repeat(32)),
        ..anchor(2)
    };
    let err = ledger
        .check_anchors(&verified, &[other_manifest])
        .unwrap_err();
    assert!(err.to_string().contains("another manifest"), "{err}");
    let other_head = Anchor {
        extends: Some(LedgerHead {
            seq: 1,
            sha256: "ee".repeat(32),
        }),
        ..anchor(2)
    };
    let err = ledger.check_anchors(&verified, &[other_head]).unwrap_err();
    assert!(err.to_string().contains("another entry 1"), "{err}");
}
