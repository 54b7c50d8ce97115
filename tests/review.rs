//! `dars review` end to end over HTTP (issue #13): the token and loopback
//! rules, decisions that survive `kill -9`, the second reviewer, the file
//! `dars run` then applies, and the bad inputs. The page itself is driven
//! in a real browser in `tests/review_browser.rs`.

mod common;
mod review_support;

use std::fs;
use std::net::TcpListener;

use common::{stderr, stdout};
use review_support::*;

fn first_studies(r: &Review, n: usize) -> Vec<serde_json::Value> {
    let list = r.json(&format!("/api/list?show=todo&limit={n}"));
    let items = list["items"].as_array().unwrap().clone();
    assert!(items.len() >= n.min(4), "the queue is too short: {list}");
    items
        .iter()
        .map(|it| {
            let id = it["study_id"].as_str().unwrap();
            r.json(&format!("/api/study?show=all&at={id}"))["study"].clone()
        })
        .collect()
}

fn accept(r: &Review, study: &str, person: i64) -> review_support::Reply {
    r.post(
        "/api/decide",
        &format!(r#"{{"study_id":"{study}","decision":"accept","person_id":{person}}}"#),
    )
}

fn reject(r: &Review, study: &str) -> review_support::Reply {
    r.post(
        "/api/decide",
        &format!(r#"{{"study_id":"{study}","decision":"reject_all"}}"#),
    )
}

#[test]
fn issue_13_requests_without_the_token_are_refused() {
    let w = site();
    let r = Review::start(&w, &["--reviewer", "alice"]);
    // The page without the token, with a wrong one, and with it.
    assert_eq!(http(r.port, "GET", "/", &[], None).status, 403);
    assert_eq!(http(r.port, "GET", "/?token=guess", &[], None).status, 403);
    let page = http(r.port, "GET", &format!("/?token={}", r.token), &[], None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("dars review"));
    let csp = &page.headers["content-security-policy"];
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.headers["cache-control"], "no-store");
    // Nothing in the page loads from elsewhere.
    for outside in ["http://", "https://", "//cdn", "@import"] {
        assert!(
            !page.body.replace("http://127.0.0.1", "").contains(outside),
            "the page refers to {outside}"
        );
    }
    // The API wants the token in its header, not in the query string.
    let api = http(
        r.port,
        "GET",
        &format!("/api/summary?token={}", r.token),
        &[],
        None,
    );
    assert_eq!(api.status, 403);
    assert!(!api.body.contains("study"));
    let wrong = http(
        r.port,
        "GET",
        "/api/summary",
        &[("X-Dars-Token", "nope")],
        None,
    );
    assert_eq!(wrong.status, 403);
    assert_eq!(r.get("/api/summary").status, 200);
    // A request whose Host is another name (DNS rebinding) is refused.
    let rebound = raw(
        r.port,
        "GET",
        "/api/summary",
        "evil.example:80",
        &[("X-Dars-Token", &r.token)],
        None,
    );
    assert_eq!(rebound.status, 403);
    // A page of another origin cannot post a decision.
    let cross = http(
        r.port,
        "POST",
        "/api/undo",
        &[
            ("X-Dars-Token", &r.token),
            ("Origin", "http://evil.example"),
        ],
        Some("{}"),
    );
    assert_eq!(cross.status, 403);
    // It listens on 127.0.0.1 only: the kernel's table of listening TCP
    // sockets holds this port on 0100007F (127.0.0.1) and nowhere else.
    let port = format!("{:04X}", r.port);
    let listening: Vec<String> = fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (addr, p) = f.get(1)?.split_once(':')?;
            (p == port && f.get(3) == Some(&"0A")).then(|| addr.to_string())
        })
        .collect();
    assert_eq!(listening, ["0100007F"]);
    let v6 = fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    assert!(!v6.lines().any(|l| l
        .split_whitespace()
        .nth(1)
        .is_some_and(|a| a.ends_with(&format!(":{port}")))));
}

#[test]
fn issue_13_decisions_survive_kill_and_a_second_reviewer_confirms_them() {
    let w = site();
    let ids = identifiers(&w);
    let run = latest_run(&w);
    let queue = queue_of(&w, &run);
    let r = Review::start(&w, &["--reviewer", "alice"]);
    let summary = r.json("/api/summary");
    assert_eq!(summary["counts"]["studies"], queue.len());
    let studies = first_studies(&r, 6);
    let id = |i: usize| studies[i]["study_id"].as_str().unwrap().to_string();
    let person = |i: usize, c: usize| studies[i]["candidates"][c]["person_id"].as_i64().unwrap();
    // The list is paged: asking for 2 gives 2, with the total beside.
    let page = r.json("/api/list?limit=2");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["total"], queue.len());

    assert_eq!(accept(&r, &id(0), person(0, 0)).status, 200);
    assert_eq!(accept(&r, &id(1), person(1, 0)).status, 200);
    assert_eq!(reject(&r, &id(2)).status, 200);
    assert_eq!(accept(&r, &id(3), person(3, 0)).status, 200);
    // A pair that is not in the queue is refused, and nothing is saved.
    let bad = accept(&r, &id(4), 987_654_321);
    assert_eq!(bad.status, 409, "{}", bad.body);
    assert!(bad.body.contains("not a candidate"), "{}", bad.body);
    // Accepting the same person for a second study ID is what `dars run`
    // refuses: the page refuses it too.
    let twice = accept(&r, &id(4), person(0, 0));
    assert!(twice.status == 409, "{}", twice.body);
    r.kill();

    // Restarted: every saved decision is there.
    let r = Review::start(&w, &["--reviewer", "alice"]);
    let c = &r.json("/api/summary")["counts"];
    assert_eq!(c["decided"], 4, "{c}");
    assert_eq!(c["accepted"], 3);
    assert_eq!(c["rejected"], 1);
    let s0 = r.json(&format!("/api/study?show=all&at={}", id(0)));
    assert_eq!(s0["study"]["first"]["verdict"]["accept"], person(0, 0));
    assert_eq!(s0["study"]["first"]["reviewer"], "alice");
    let (ok, rest) = r.interrupt();
    assert!(ok, "{rest}");
    assert!(
        rest.contains("wrote 4 decision lines") || rest.contains("decision lines"),
        "{rest}"
    );
    let decisions = w.path("agreement.decisions.csv");
    let text = fs::read_to_string(&decisions).unwrap();
    assert!(
        text.starts_with("study_id,person_id,decision,reviewer,decided_on\n"),
        "{text}"
    );

    // The second reviewer sees the four decisions, not their answers.
    let b = Review::start(&w, &["--reviewer", "bob", "--second"]);
    let todo = b.json("/api/list?show=todo&limit=50");
    assert_eq!(todo["total"], 4, "{todo}");
    for it in todo["items"].as_array().unwrap() {
        assert_eq!(it["status"], "to confirm");
        let s = b.json(&format!(
            "/api/study?at={}",
            it["study_id"].as_str().unwrap()
        ));
        assert!(
            s["study"]["first"].is_null(),
            "the first answer is shown: {s}"
        );
    }
    // Confirm two, disagree on one (bob rejects what alice accepted).
    assert_eq!(accept(&b, &id(0), person(0, 0)).status, 200);
    assert_eq!(reject(&b, &id(2)).status, 200);
    assert_eq!(reject(&b, &id(1)).status, 200);
    let c = &b.json("/api/summary")["counts"];
    assert_eq!(c["confirmed"], 2, "{c}");
    assert_eq!(c["flagged"], 1);
    let (ok, _) = b.interrupt();
    assert!(ok);
    let text = fs::read_to_string(&decisions).unwrap();
    assert!(
        text.contains(&format!(
            "{},{},accept,\"alice, confirmed by bob\",2026-03-01",
            id(0),
            person(0, 0)
        )),
        "{text}"
    );
    assert!(
        !text.contains(&format!("{},", id(1))),
        "the disagreement went back to the queue: {text}"
    );
    assert!(
        text.contains(&format!(
            "{},{},accept,alice,2026-03-01",
            id(3),
            person(3, 0)
        )),
        "{text}"
    );

    // Back in the first review, the disagreement is flagged, with both
    // answers for whoever settles it.
    let a = Review::start(&w, &["--reviewer", "carol"]);
    let flagged = a.json("/api/list?show=todo&flagged=1");
    assert_eq!(flagged["total"], 1);
    assert_eq!(flagged["items"][0]["study_id"], id(1));
    assert_eq!(flagged["items"][0]["status"], "flagged");
    let logs = format!("{}{}{}", r_stderr(&a), b_log(&w), "");
    assert_no_identifier(&logs, &ids, "the review server's log");
    drop(a);

    // `dars run` applies the file: accepted pairs are `reviewed`.
    write_agreement(&w, Some("agreement.decisions.csv"));
    let run2 = dry_run(&w);
    assert_ne!(run2, run);
    let linkage = linkage_of(&w, &run2);
    for (i, p) in [(0, person(0, 0)), (3, person(3, 0))] {
        assert_eq!(
            linkage[&id(i)],
            ("reviewed".to_string(), p.to_string()),
            "{}",
            id(i)
        );
    }
    assert_ne!(linkage[&id(2)].0, "reviewed");
    assert_ne!(linkage[&id(1)].0, "reviewed");

    // Reviewing the new run carries the file's decisions over: the next
    // file still holds them all.
    let again = Review::start(&w, &["--reviewer", "alice"]);
    let s = again.json("/api/summary");
    assert!(s["counts"]["earlier_lines"].as_u64().unwrap() >= 3, "{s}");
    let (ok, _) = again.interrupt();
    assert!(ok);
    let text2 = fs::read_to_string(&decisions).unwrap();
    for line in text.lines().skip(1) {
        assert!(text2.contains(line), "{line} was lost: {text2}");
    }
    let run3 = dry_run(&w);
    assert_eq!(linkage_of(&w, &run3)[&id(0)].0, "reviewed");
}

fn r_stderr(r: &Review) -> String {
    r.stderr()
}

fn b_log(w: &common::Workdir) -> String {
    let mut all = String::new();
    for e in fs::read_dir(w.dir.path()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("review-") && name.ends_with(".log") {
            all.push_str(&fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    all
}

#[test]
fn issue_13_a_run_with_no_queue_says_so_and_exits_0() {
    let w = site();
    let run = latest_run(&w);
    // A cohort of only the rows that validated queues nothing.
    let linkage = linkage_of(&w, &run);
    let (header, rows) = common::read_csv(&w.path("data/cohort.csv"));
    let mut out = csv::Writer::from_path(w.path("data/cohort.csv")).unwrap();
    out.write_record(&header).unwrap();
    let mut kept = 0;
    for r in rows {
        if linkage.get(&r[0]).is_some_and(|(o, _)| o == "validated") {
            out.write_record(&r).unwrap();
            kept += 1;
        }
    }
    out.flush().unwrap();
    drop(out);
    assert!(kept > 10);
    dry_run(&w);
    let o = dars_to_end(
        &w,
        &["review", AGREEMENT, "--port", "0", "--reviewer", "alice"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to review"), "{}", stdout(&o));
}

#[test]
fn issue_13_a_queue_from_an_older_run_is_refused_with_the_run_to_use() {
    let w = site();
    let old = latest_run(&w);
    // The cohort changes: a new run links it again and queues other pairs.
    let queue = queue_of(&w, &old);
    let (header, rows) = common::read_csv(&w.path("data/cohort.csv"));
    let drop_ids: Vec<&String> = queue.iter().take(3).map(|(s, _)| s).collect();
    let mut out = csv::Writer::from_path(w.path("data/cohort.csv")).unwrap();
    out.write_record(&header).unwrap();
    for r in rows.iter().filter(|r| !drop_ids.contains(&&r[0])) {
        out.write_record(r).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let new = dry_run(&w);
    assert_ne!(new, old);
    let o = dars_to_end(
        &w,
        &[
            "review",
            AGREEMENT,
            "--run",
            &old,
            "--port",
            "0",
            "--reviewer",
            "alice",
        ],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(&format!("--run {new}")), "{e}");
    assert!(e.contains("no longer match"), "{e}");
    // A queue copied into another run's folder is refused too.
    let runs = runs_dir(&w);
    fs::copy(
        runs.join(&old).join("review_queue.csv"),
        runs.join(&new).join("review_queue.csv"),
    )
    .unwrap();
    let o = dars_to_end(
        &w,
        &["review", AGREEMENT, "--port", "0", "--reviewer", "alice"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("does not match its own linkage.csv"),
        "{}",
        stderr(&o)
    );
    // An unknown run id is a command-line error that lists the runs.
    let o = dars_to_end(
        &w,
        &["review", AGREEMENT, "--run", "nope", "--reviewer", "alice"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(&old));
}

#[test]
fn issue_13_a_port_in_use_gets_a_clear_error_and_a_suggestion() {
    let w = site();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = dars_to_end(
        &w,
        &["review", AGREEMENT, "--port", &port, "--reviewer", "alice"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("port {port} on 127.0.0.1 is already in use")),
        "{e}"
    );
    assert!(e.contains("--port 0"), "{e}");
}

#[test]
fn issue_13_no_run_yet_and_a_bad_reviewer_name_are_explained() {
    let w = common::Workdir::new(500, 50, 100, 7);
    write_agreement(&w, None);
    let o = dars_to_end(&w, &["review", AGREEMENT, "--reviewer", "alice"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("dars run --dry-run"), "{}", stderr(&o));
    let o = dars_to_end(&w, &["review", AGREEMENT, "--reviewer", "a,b"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--reviewer NAME"), "{}", stderr(&o));
}
