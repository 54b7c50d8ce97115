//! Shared set-up of the review tests: a synthetic site with a dry run that
//! queued pairs, a `dars review` server started as a real process, and a
//! minimal HTTP/1.1 client over a loopback socket (no client library, so
//! what is sent is exactly what the test says).
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{stderr, Workdir};

pub const AGREEMENT: &str = "agreement.toml";
pub const REFERENCE: &str = "DARS-NIC-000001-DEMO1-01";

/// A site with 3,000 people and a 400-row cohort, names in use, and one
/// dry run: enough queued study IDs to review.
pub fn site() -> Workdir {
    let w = Workdir::new(3_000, 400, 2_000, 1313);
    write_agreement(&w, None);
    dry_run(&w);
    w
}

/// As [`site`], with four pairs of twins at the head of the cohort: the
/// index's people who share a date of birth, a postcode and a surname,
/// written as a cohort row without NHS number or forename, so each study
/// ID has two candidates that score alike (the case a reviewer must
/// settle by looking).
pub fn site_with_twins() -> Workdir {
    use polars::prelude::*;
    let w = Workdir::new(3_000, 400, 2_000, 1313);
    let df = ParquetReader::new(fs::File::open(w.path("data/site/demographics.parquet")).unwrap())
        .finish()
        .unwrap();
    let text = |name: &str| {
        df.column(name)
            .unwrap()
            .cast(&DataType::String)
            .unwrap()
            .str()
            .unwrap()
            .clone()
    };
    let (dob, gender, postcode, surname) = (
        text("date_of_birth"),
        text("gender"),
        text("postcode"),
        text("surname"),
    );
    let mut seen: HashMap<(String, String, String, String), usize> = HashMap::new();
    let mut rows = Vec::new();
    for i in 0..df.height() {
        let (Some(d), Some(g), Some(p), Some(s)) =
            (dob.get(i), gender.get(i), postcode.get(i), surname.get(i))
        else {
            continue;
        };
        let key = (d.to_string(), g.to_string(), p.to_string(), s.to_string());
        let n = seen.entry(key).or_insert(0);
        *n += 1;
        if *n == 2 && rows.len() < 4 {
            rows.push(format!("T{:07},,{d},{g},{p},,{s}", rows.len() + 1));
        }
    }
    assert_eq!(rows.len(), 4, "the synthetic index has too few twins");
    let cohort = fs::read_to_string(w.path("data/cohort.csv")).unwrap();
    let (header, rest) = cohort.split_once('\n').unwrap();
    fs::write(
        w.path("data/cohort.csv"),
        format!("{header}\n{}\n{rest}", rows.join("\n")),
    )
    .unwrap();
    write_agreement(&w, None);
    dry_run(&w);
    w
}

/// The agreement, with `review_decisions` when given.
pub fn write_agreement(w: &Workdir, decisions: Option<&str>) {
    let mut text = w.agreement_text("2099-12-31", "");
    let mut cohort = "[cohort]\nmanual_validation = true\n".to_string();
    if let Some(d) = decisions {
        cohort.push_str(&format!("review_decisions = \"{d}\"\n"));
    }
    text = text.replace("[cohort]\n", &cohort);
    w.write(AGREEMENT, &text);
}

pub fn dry_run(w: &Workdir) -> String {
    let out = w.dars(&["run", AGREEMENT, "--dry-run"]);
    assert!(out.status.success(), "dry run failed: {}", stderr(&out));
    latest_run(w)
}

pub fn runs_dir(w: &Workdir) -> PathBuf {
    w.path("work").join(REFERENCE).join("runs")
}

/// The run made last: run ids are ordered by the second they started in,
/// and runs of one second by when their linkage table was written.
pub fn latest_run(w: &Workdir) -> String {
    let mut runs: Vec<(String, std::time::SystemTime, String)> = fs::read_dir(runs_dir(w))
        .unwrap()
        .flatten()
        .map(|e| {
            let id = e.file_name().to_string_lossy().into_owned();
            let written = fs::metadata(e.path().join("linkage.csv"))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (id.split('-').next().unwrap_or("").to_string(), written, id)
        })
        .collect();
    runs.sort();
    runs.pop().unwrap().2
}

/// `study_id -> person ids, best first` from a run's queue.
pub fn queue_of(w: &Workdir, run: &str) -> Vec<(String, Vec<i64>)> {
    let (header, rows) = super::common::read_csv(&runs_dir(w).join(run).join("review_queue.csv"));
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (s, p, r) = (at("study_id"), at("person_id"), at("rank"));
    let mut out: Vec<(String, Vec<(u32, i64)>)> = Vec::new();
    for row in rows {
        let rank: u32 = row[r].parse().unwrap();
        let person: i64 = row[p].parse().unwrap();
        match out.iter_mut().find(|(id, _)| *id == row[s]) {
            Some((_, v)) => v.push((rank, person)),
            None => out.push((row[s].clone(), vec![(rank, person)])),
        }
    }
    out.into_iter()
        .map(|(id, mut v)| {
            v.sort();
            (id, v.into_iter().map(|(_, p)| p).collect())
        })
        .collect()
}

/// `study_id -> (outcome, person_id)` from a run's linkage.csv.
pub fn linkage_of(w: &Workdir, run: &str) -> HashMap<String, (String, String)> {
    let (header, rows) = super::common::read_csv(&runs_dir(w).join(run).join("linkage.csv"));
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (s, p, o) = (at("study_id"), at("person_id"), at("outcome"));
    rows.into_iter()
        .map(|r| (r[s].clone(), (r[o].clone(), r[p].clone())))
        .collect()
}

/// Runs `dars ARGS` to its end, failing (not hanging) if it serves a
/// page instead of exiting within a minute.
pub fn dars_to_end(w: &Workdir, args: &[&str]) -> std::process::Output {
    let mut child = w
        .cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "dars {args:?} did not exit: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A running `dars review`.
pub struct Review {
    pub child: Child,
    pub port: u16,
    pub token: String,
    pub url: String,
    pub startup: Vec<String>,
    stdout: BufReader<ChildStdout>,
    pub log: PathBuf,
}

impl Review {
    /// Starts `dars review AGREEMENT --port 0 ARGS…` and waits for its URL.
    pub fn start(w: &Workdir, args: &[&str]) -> Self {
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = w.path(&format!("review-{}-{n}.log", std::process::id()));
        let err = fs::File::create(&log).unwrap();
        let mut child = w
            .cmd()
            .args(["review", AGREEMENT, "--port", "0"])
            .args(args)
            .env("DARS_TODAY", "2026-03-01")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut startup = Vec::new();
        let url = loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                panic!(
                    "dars review exited ({status}) before printing its URL: {startup:?}\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let line = line.trim_end().to_string();
            if let Some(u) = line.strip_prefix("open ") {
                break u.to_string();
            }
            startup.push(line);
        };
        let port: u16 = url
            .trim_start_matches("http://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let token = url.split("token=").nth(1).unwrap().to_string();
        Self {
            child,
            port,
            token,
            url,
            startup,
            stdout,
            log,
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        http(
            self.port,
            "GET",
            path,
            &[("X-Dars-Token", &self.token)],
            None,
        )
    }

    pub fn post(&self, path: &str, body: &str) -> Reply {
        http(
            self.port,
            "POST",
            path,
            &[("X-Dars-Token", &self.token)],
            Some(body),
        )
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    /// kill -9: no chance to write anything on the way out.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Ctrl-C: the server writes the decisions file and exits; returns
    /// what it printed after the URL.
    pub fn interrupt(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        let status = wait_for(&mut self.child, Duration::from_secs(30));
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        (status, rest)
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Review {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn wait_for(child: &mut Child, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return s.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("dars review did not exit within {limit:?}");
}

pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// One HTTP/1.1 request on a fresh connection.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    raw(
        port,
        method,
        path,
        &format!("127.0.0.1:{port}"),
        headers,
        body,
    )
}

pub fn raw(
    port: u16,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The cohort's identifying values (NHS numbers, names, postcodes, dates
/// of birth), to check that no log line carries one.
pub fn identifiers(w: &Workdir) -> Vec<String> {
    let (header, rows) = super::common::read_csv(&w.path("data/cohort.csv"));
    let skip: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.to_ascii_lowercase().contains("study"))
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::new();
    for r in rows {
        for (i, v) in r.iter().enumerate() {
            if !skip.contains(&i) && v.trim().len() >= 5 {
                out.push(v.trim().to_string());
            }
        }
    }
    out
}

pub fn assert_no_identifier(text: &str, ids: &[String], what: &str) {
    for id in ids {
        assert!(
            !text.contains(id.as_str()),
            "{what} carries a cohort identifier"
        );
    }
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}
