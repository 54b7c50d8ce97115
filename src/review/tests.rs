//! Unit tests of the review: the queue reader, the state machine against
//! `dars run`'s own checks, and the journal's crash behaviour.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use chrono::NaiveDate;

use super::journal::{Entry, Journal, Role, Verdict};
use super::queue::read_queue;
use super::state::{Refusal, Review, Status};

/// A queue in the format `dars link` writes, plus a column it may add one
/// day and the columns in another order.
const QUEUE: &str = "\
study_id,person_id,rank,score,nhs_number_level,cohort_nhs_number,index_nhs_number,date_of_birth_level,cohort_date_of_birth,index_date_of_birth,surname_level,cohort_surname,index_surname,ambiguous,found_by,future_column
S1,101,1,91.5,exact,9434765919,9434765919,disagree,1980-01-02,1981-01-02,exact,SMITH,SMITH,false,nhs_number;dob_district,x
S1,102,2,60.0,missing,9434765919,,exact,1980-01-02,1980-01-02,jaro_winkler_0.92,SMITH,SMYTH,false,dob_district,x
S2,201,1,80.0,one_edit,9434765918,9434765919,exact,1990-05-06,1990-05-06,exact,JONES,JONES,true,nhs_one_edit,x
S2,202,2,78.0,disagree,9434765918,4010232137,exact,1990-05-06,1990-05-06,exact,JONES,JONES,true,dob_district,x
S3,101,1,55.0,missing,,,day_month_swapped,1980-02-01,1980-01-02,exact,SMITH,SMITH,false,dob_swapped,x
";

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
}

fn queue_file(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("review_queue.csv");
    std::fs::write(&p, text).unwrap();
    p
}

fn review(dir: &Path) -> Review {
    let q = read_queue(&queue_file(dir, QUEUE)).unwrap();
    let exists: HashSet<i64> = [101, 102, 201, 202].into_iter().collect();
    Review::new(q, exists, dir.join("decisions.csv"))
}

fn decide(r: &mut Review, study: &str, role: Role, who: &str, v: Verdict) -> Result<u64, Refusal> {
    let seq = r.next_seq();
    let change = r.plan_decide(study, role, who, v, day(), seq)?;
    r.commit(change);
    Ok(seq)
}

const ACCEPT_101: Verdict = Verdict::Accept { person_id: 101 };

#[test]
fn the_queue_is_read_by_header_names_best_first_with_flags() {
    let dir = tempfile::tempdir().unwrap();
    let q = read_queue(&queue_file(dir.path(), QUEUE)).unwrap();
    assert_eq!(q.fields, ["nhs_number", "date_of_birth", "surname"]);
    assert_eq!(q.studies.len(), 3);
    assert_eq!(q.pairs(), 5);
    let s1 = &q.studies[0];
    assert_eq!(s1.candidates[0].person_id, 101);
    assert_eq!(s1.cohort[1], "1980-01-02");
    assert_eq!(s1.candidates[1].index[2], "SMYTH");
    assert_eq!(s1.candidates[0].found_by, ["nhs_number", "dob_district"]);
    // NHS number found exactly but queued: a partial match.
    assert!(s1.partial);
    assert!(!q.studies[1].partial);
    assert!(q.studies[1].ambiguous);
}

#[test]
fn a_queue_missing_a_required_column_or_with_a_bad_row_is_refused_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let e = read_queue(&queue_file(
        dir.path(),
        "study_id,person_id,score\nS1,1,50\n",
    ))
    .unwrap_err();
    assert!(e.to_string().contains("`rank` is missing"), "{e}");
    let e = read_queue(&queue_file(
        dir.path(),
        "study_id,person_id,rank,score\nS1,1,1,50\nS1,x,2,40\nS1,1,3,30\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("line 3: person_id is not a whole number"), "{e}");
    assert!(
        e.contains("line 4: study ID S1 with person_id 1 is already on line 2"),
        "{e}"
    );
}

#[test]
fn answers_undo_and_output_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = review(dir.path());
    decide(&mut r, "S1", Role::First, "alice", ACCEPT_101).unwrap();
    decide(&mut r, "S2", Role::First, "alice", Verdict::RejectAll).unwrap();
    let rows = r.output_rows();
    assert_eq!(rows.len(), 3, "one accept and two rejects");
    assert!(rows[0].accept && rows[0].study_id == "S1" && rows[0].person_id == 101);
    assert!(rows[1..].iter().all(|d| !d.accept && d.study_id == "S2"));
    r.check_all().unwrap();
    // Undo takes back the latest: S2 is open again.
    let change = r.plan_undo("alice", None, r.next_seq()).unwrap();
    r.commit(change);
    assert_eq!(r.status(1), &Status::Open { disagreement: None });
    assert_eq!(r.output_rows().len(), 1);
    // Nothing of bob's to undo.
    assert_eq!(
        r.plan_undo("bob", None, r.next_seq()).unwrap_err(),
        Refusal::NothingToUndo
    );
}

/// The checks of `dars run` run on every answer: the page cannot save one
/// that `dars run` would refuse.
#[test]
fn a_person_accepted_for_two_study_ids_is_refused_before_it_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = review(dir.path());
    decide(&mut r, "S1", Role::First, "alice", ACCEPT_101).unwrap();
    let e = decide(&mut r, "S3", Role::First, "alice", ACCEPT_101).unwrap_err();
    assert!(
        e.to_string()
            .contains("person 101 is already accepted for study ID S1"),
        "{e}"
    );
    // Rejecting S3 instead is fine.
    decide(&mut r, "S3", Role::First, "alice", Verdict::RejectAll).unwrap();
    // So is changing S1 to reject, after which S3 may take person 101.
    decide(&mut r, "S1", Role::First, "alice", Verdict::RejectAll).unwrap();
    decide(&mut r, "S3", Role::First, "alice", ACCEPT_101).unwrap();
    r.check_all().unwrap();
}

#[test]
fn a_pair_not_in_the_queue_and_a_person_not_in_the_index_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = review(dir.path());
    let e = decide(
        &mut r,
        "S1",
        Role::First,
        "alice",
        Verdict::Accept { person_id: 999 },
    );
    assert!(matches!(e, Err(Refusal::NotACandidate { .. })), "{e:?}");
    let e = decide(&mut r, "S9", Role::First, "alice", ACCEPT_101);
    assert!(matches!(e, Err(Refusal::UnknownStudy(_))), "{e:?}");
    // A candidate who has left the index since the run.
    let q = read_queue(&queue_file(dir.path(), QUEUE)).unwrap();
    let mut r = Review::new(q, [102].into_iter().collect(), dir.path().join("d.csv"));
    let e = decide(&mut r, "S1", Role::First, "alice", ACCEPT_101).unwrap_err();
    assert!(
        e.to_string().contains("not in the master person index"),
        "{e}"
    );
}

#[test]
fn a_second_review_confirms_or_sends_the_study_back_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = review(dir.path());
    decide(&mut r, "S1", Role::First, "alice", ACCEPT_101).unwrap();
    decide(
        &mut r,
        "S2",
        Role::First,
        "alice",
        Verdict::Accept { person_id: 201 },
    )
    .unwrap();
    // Nobody confirms their own decision, nor one not made.
    assert!(matches!(
        decide(&mut r, "S1", Role::Second, "alice", ACCEPT_101),
        Err(Refusal::OwnDecision(_))
    ));
    assert!(matches!(
        decide(&mut r, "S3", Role::Second, "bob", Verdict::RejectAll),
        Err(Refusal::NothingToConfirm(_))
    ));
    decide(&mut r, "S1", Role::Second, "bob", ACCEPT_101).unwrap();
    decide(&mut r, "S2", Role::Second, "bob", Verdict::RejectAll).unwrap();
    assert!(matches!(r.status(0), Status::Confirmed(..)));
    assert!(matches!(
        r.status(1),
        Status::Open {
            disagreement: Some(_)
        }
    ));
    let rows = r.output_rows();
    assert_eq!(
        rows.len(),
        1,
        "the disagreement is back in the queue: {rows:?}"
    );
    assert_eq!(rows[0].reviewer, "alice, confirmed by bob");
    assert_eq!(r.counts().flagged, 1);
    assert_eq!(r.counts().confirmed, 1);
    // A confirmed decision is not changed by a first reviewer.
    assert!(matches!(
        decide(&mut r, "S1", Role::First, "carol", Verdict::RejectAll),
        Err(Refusal::AlreadyConfirmed { .. })
    ));
    // Alice cannot undo under bob's confirmation; bob can.
    let e = r.plan_undo("alice", None, r.next_seq()).unwrap_err();
    assert!(matches!(e, Refusal::AnsweredSince { .. }), "{e:?}");
    let change = r.plan_undo("bob", None, r.next_seq()).unwrap();
    r.commit(change);
    assert!(matches!(r.status(1), Status::Decided(_)));
}

#[test]
fn the_journal_replays_to_the_same_state_and_cuts_an_unfinished_line() {
    let dir = tempfile::tempdir().unwrap();
    let q = read_queue(&queue_file(dir.path(), QUEUE)).unwrap();
    let sha = q.sha256.clone();
    let entries = {
        let (mut j, old) = Journal::open(dir.path(), "RUN1", &sha).unwrap();
        assert!(old.is_empty());
        let e1 = Entry::Decide {
            seq: 1,
            at: "2026-03-01T10:00:00Z".into(),
            reviewer: "alice".into(),
            role: Role::First,
            study_id: "S1".into(),
            verdict: ACCEPT_101,
            decided_on: "2026-03-01".into(),
            source: None,
        };
        let e2 = Entry::Decide {
            seq: 2,
            at: "2026-03-01T10:00:01Z".into(),
            reviewer: "alice".into(),
            role: Role::First,
            study_id: "S2".into(),
            verdict: Verdict::RejectAll,
            decided_on: "2026-03-01".into(),
            source: None,
        };
        let e3 = Entry::Undo {
            seq: 3,
            at: "2026-03-01T10:00:02Z".into(),
            reviewer: "alice".into(),
            undoes: 2,
        };
        for e in [&e1, &e2, &e3] {
            j.append(e).unwrap();
        }
        vec![e1, e2, e3]
    };
    // A crash in the middle of the next write.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join(super::journal::FILE))
        .unwrap();
    f.write_all(br#"{"kind":"decide","seq":4,"rev"#).unwrap();
    drop(f);
    let (j, read) = Journal::open(dir.path(), "RUN1", &sha).unwrap();
    assert!(j.cut_tail);
    let read: Vec<Entry> = read.into_iter().map(|(_, e)| e).collect();
    assert_eq!(read, entries);
    drop(j);
    let mut r = review(dir.path());
    for e in &read {
        r.replay(e).unwrap();
    }
    assert!(matches!(r.status(0), Status::Decided(_)));
    assert_eq!(r.status(1), &Status::Open { disagreement: None });
    // The journal is locked while open, and bound to its queue.
    let (_held, _) = Journal::open(dir.path(), "RUN1", &sha).unwrap();
    assert!(matches!(
        Journal::open(dir.path(), "RUN1", &sha),
        Err(super::JournalError::Locked { .. })
    ));
    drop(_held);
    assert!(matches!(
        Journal::open(dir.path(), "RUN2", "another"),
        Err(super::JournalError::OtherQueue { .. })
    ));
}

#[test]
fn a_corrupt_middle_line_stops_the_review_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), "RUN1", "q").unwrap();
    drop(j);
    let path = dir.path().join(super::journal::FILE);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "not json\n{\"kind\":\"undo\",\"seq\":1,\"at\":\"x\",\"reviewer\":\"a\",\"undoes\":1}\n",
    );
    std::fs::write(&path, text).unwrap();
    let e = Journal::open(dir.path(), "RUN1", "q")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn the_written_file_is_what_dars_run_reads_and_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = review(dir.path());
    decide(&mut r, "S1", Role::First, "alice", ACCEPT_101).unwrap();
    decide(&mut r, "S2", Role::First, "alice", Verdict::RejectAll).unwrap();
    let lines = super::write_decisions(&r).unwrap();
    assert_eq!(lines, 3);
    let back = crate::link::decisions::read(&dir.path().join("decisions.csv")).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!(back[0].reviewer, "alice");
    assert_eq!(back[0].decided_on, day());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("decisions.csv"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn reviewer_names_are_plain_text() {
    assert_eq!(
        super::check_reviewer(" alice.smith ").unwrap(),
        "alice.smith"
    );
    for bad in ["", "a,b", "x\ny", &"n".repeat(65)] {
        assert!(super::check_reviewer(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_query_string_is_decoded() {
    let p = super::server::parse_query("at=S%2F1&show=all&x=a+b&bad=%zz");
    assert_eq!(p[0], ("at".into(), "S/1".into()));
    assert_eq!(p[2].1, "a b");
    assert_eq!(p[3].1, "%zz");
}

/// Two runs in one second: their ids' random suffixes do not order them,
/// the time their linkage table was written does (found by the no-queue
/// test, which reviewed the older of two dry runs).
#[test]
fn issue_13_the_latest_of_two_runs_in_one_second_is_the_one_linked_last() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    for (id, secs) in [
        ("20261202T012912Z-9682", 0),
        ("20261202T012912Z-8e9c", 1),
        ("20261202T012911Z-ffff", 2),
    ] {
        let run = dir.path().join(id);
        std::fs::create_dir(&run).unwrap();
        std::fs::write(
            run.join("review_queue.csv"),
            "study_id,person_id,rank,score\n",
        )
        .unwrap();
        let f = std::fs::File::create(run.join("linkage.csv")).unwrap();
        f.set_modified(t0 + std::time::Duration::from_millis(secs))
            .unwrap();
    }
    assert_eq!(
        super::runs_with_queue(dir.path()),
        [
            "20261202T012911Z-ffff",
            "20261202T012912Z-9682",
            "20261202T012912Z-8e9c"
        ]
    );
}
