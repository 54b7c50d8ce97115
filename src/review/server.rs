//! The review page's HTTP side, on `tiny_http`: one reviewer on loopback
//! needs one thread that handles one request at a time, which also makes
//! every journal write strictly ordered without a lock. (axum on tokio
//! would bring an async runtime and feature changes to crates polars
//! shares, for concurrency this page never has.)
//!
//! Who may talk to it:
//! - it listens on 127.0.0.1 only, and answers 403 to any peer that is not
//!   a loopback address (a port forwarded from elsewhere);
//! - every request must carry the token made fresh at this start: in the
//!   query string of the page (`/?token=…`, the URL printed on start) and
//!   in the `X-Dars-Token` header of every API call, which a page of
//!   another origin cannot set without a CORS preflight this server never
//!   grants; a `Host` other than 127.0.0.1 or localhost at this port is
//!   refused (DNS rebinding);
//! - the page, its style and its script are compiled into the binary and
//!   served inline under a Content-Security-Policy that allows nothing
//!   else: no CDN, no font, no request to anywhere but this server;
//!   responses are `no-store`, so identifiable rows are not cached on disk.
//!
//! The queue is never sent whole: the list is paged and the page asks for
//! one study ID at a time.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ring::digest::{digest, SHA256};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::journal::{Role, Verdict};
use super::state::{Refusal, Status};
use super::{SaveError, Session};

const PAGE: &str = include_str!("assets/index.html");
const STYLE: &str = include_str!("assets/review.css");
const SCRIPT: &str = include_str!("assets/review.js");
/// The most a request body may be: an answer is a few dozen bytes.
const MAX_BODY: u64 = 16 * 1024;
/// The longest page of the study ID list.
const MAX_PAGE: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("port {port} on 127.0.0.1 is already in use (another `dars review`, or another program)\n  fix: stop that program, or pick another port: `dars review AGREEMENT --port {}` (or `--port 0` for any free port)", port.saturating_add(1))]
    PortInUse { port: u16 },
    #[error("cannot listen on 127.0.0.1:{port}: {source}\n  fix: pick another port with --port (1024 or above unless run with privileges), or --port 0 for any free port")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("the review server stopped: {0}")]
    Server(String),
}

/// Binds 127.0.0.1:`port` (0 for any free port).
pub fn bind(port: u16) -> Result<TcpListener, ServeError> {
    TcpListener::bind(("127.0.0.1", port)).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::PortInUse { port }
        } else {
            ServeError::Listen { port, source }
        }
    })
}

/// A fresh random token: 32 bytes from the system's CSPRNG, URL-safe.
pub fn new_token() -> Result<String, ServeError> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| ServeError::Server("the system random generator failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Compares without leaking where the first difference is.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn csp_hash(text: &str) -> String {
    let d = digest(&SHA256, text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(d.as_ref())
    )
}

/// The page with its style and script inline, and the policy that allows
/// exactly those two.
fn page() -> (String, String) {
    let html = PAGE
        .replace("/*STYLE*/", STYLE)
        .replace("/*SCRIPT*/", SCRIPT);
    let csp = format!(
        "default-src 'none'; style-src {}; script-src {}; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        csp_hash(STYLE),
        csp_hash(SCRIPT)
    );
    (html, csp)
}

/// The running server.
pub struct Server {
    http: tiny_http::Server,
    token: String,
    port: u16,
    html: String,
    csp: String,
}

impl Server {
    pub fn new(listener: TcpListener, token: String) -> Result<Self, ServeError> {
        let port = listener
            .local_addr()
            .map_err(|e| ServeError::Server(e.to_string()))?
            .port();
        let http = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| ServeError::Server(e.to_string()))?;
        let (html, csp) = page();
        Ok(Self {
            http,
            token,
            port,
            html,
            csp,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/?token={}", self.port, self.token)
    }

    /// Serves until `stop` is set (a signal).
    pub fn run(&self, session: &mut Session, stop: &Arc<AtomicBool>) -> Result<(), ServeError> {
        // Scores and flags never change during a review: each order is
        // worked out once, not per request.
        let orders = Orders::of(session);
        while !stop.load(Ordering::SeqCst) {
            match self.http.recv_timeout(Duration::from_millis(200)) {
                Ok(Some(request)) => self.handle(session, &orders, request),
                Ok(None) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ServeError::Server(e.to_string())),
            }
        }
        Ok(())
    }

    fn handle(&self, session: &mut Session, orders: &Orders, mut request: tiny_http::Request) {
        let peer = request.remote_addr().copied();
        if !peer.is_some_and(|a: SocketAddr| a.ip().is_loopback()) {
            warn!("review server: refused a request from a non-loopback address");
            respond(
                request,
                403,
                "text/plain",
                "refused: loopback only".into(),
                None,
            );
            return;
        }
        let header = |name: &'static str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.equiv(name))
                .map(|h| h.value.as_str().to_string())
        };
        let host_ok = header("Host").is_some_and(|h| {
            h == format!("127.0.0.1:{}", self.port) || h == format!("localhost:{}", self.port)
        });
        let url = request.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        let params = parse_query(query);
        let api = path.starts_with("/api/");
        let token = if api {
            header("X-Dars-Token")
        } else {
            params
                .iter()
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.clone())
        };
        if !host_ok || !token.is_some_and(|t| same_secret(&t, &self.token)) {
            info!(path = %path_for_log(path), "review server: refused a request without the token");
            respond(
                request,
                403,
                "text/plain",
                "refused: this page needs the URL that `dars review` printed (with its token)"
                    .into(),
                None,
            );
            return;
        }
        if let Some(origin) = header("Origin") {
            let ok = origin == format!("http://127.0.0.1:{}", self.port)
                || origin == format!("http://localhost:{}", self.port);
            if !ok {
                respond(request, 403, "text/plain", "refused: origin".into(), None);
                return;
            }
        }
        let method = request.method().clone();
        let body = if method == tiny_http::Method::Post {
            let mut text = String::new();
            if request
                .as_reader()
                .take(MAX_BODY)
                .read_to_string(&mut text)
                .is_err()
            {
                respond(request, 400, "text/plain", "unreadable body".into(), None);
                return;
            }
            text
        } else {
            String::new()
        };
        use tiny_http::Method::{Get, Post};
        let answer = match (method, path) {
            (Get, "/") => {
                respond(
                    request,
                    200,
                    "text/html; charset=utf-8",
                    self.html.clone(),
                    Some(&self.csp),
                );
                return;
            }
            (Get, "/api/summary") => Ok(summary(session)),
            (Get, "/api/list") => Ok(list(session, orders, &params)),
            (Get, "/api/study") => Ok(study(session, orders, &params)),
            (Post, "/api/decide") => decide(session, &body),
            (Post, "/api/undo") => undo(session),
            (Post, "/api/write") => write(session),
            _ => Err((404, "no such page".to_string())),
        };
        match answer {
            Ok(v) => respond(request, 200, "application/json", v.to_string(), None),
            Err((code, message)) => respond(
                request,
                code,
                "application/json",
                json!({ "error": message }).to_string(),
                None,
            ),
        }
    }
}

/// Paths are logged without their query (which may hold a study ID typed
/// by hand, or the token).
fn path_for_log(path: &str) -> String {
    path.chars().take(40).collect()
}

fn respond(
    request: tiny_http::Request,
    code: u16,
    content_type: &str,
    body: String,
    csp: Option<&str>,
) {
    let mut response = tiny_http::Response::from_string(body).with_status_code(code);
    let mut headers = vec![
        ("Content-Type", content_type.to_string()),
        ("Cache-Control", "no-store".to_string()),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("Referrer-Policy", "no-referrer".to_string()),
        ("X-Frame-Options", "DENY".to_string()),
        ("Cross-Origin-Resource-Policy", "same-origin".to_string()),
        ("Cross-Origin-Opener-Policy", "same-origin".to_string()),
    ];
    if let Some(csp) = csp {
        headers.push(("Content-Security-Policy", csp.to_string()));
    }
    for (k, v) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            response.add_header(h);
        }
    }
    if let Err(e) = request.respond(response) {
        warn!(error = %e, "review server: the browser went away before the answer was sent");
    }
}

pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which study IDs a list or a step shows.
#[derive(Debug, Clone)]
pub struct View {
    show: Show,
    order: Order,
    partial_only: bool,
    flagged_only: bool,
    ambiguous_only: bool,
    band: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    Todo,
    Done,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Queue,
    AmbiguousFirst,
    ScoreHigh,
    ScoreLow,
}

impl View {
    pub fn from_params(params: &[(String, String)]) -> Self {
        let get = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str());
        let on = |k: &str| get(k).is_some_and(|v| v == "1" || v == "true");
        Self {
            show: match get("show") {
                Some("done") => Show::Done,
                Some("all") => Show::All,
                _ => Show::Todo,
            },
            order: match get("order") {
                Some("ambiguous") => Order::AmbiguousFirst,
                Some("score_high") => Order::ScoreHigh,
                Some("score_low") => Order::ScoreLow,
                _ => Order::Queue,
            },
            partial_only: on("partial"),
            flagged_only: on("flagged"),
            ambiguous_only: on("ambiguous_only"),
            band: match get("band") {
                Some("90") => Some((90.0, f64::INFINITY)),
                Some("70") => Some((70.0, 90.0)),
                Some("50") => Some((50.0, 70.0)),
                Some("0") => Some((f64::NEG_INFINITY, 50.0)),
                _ => None,
            },
        }
    }

    fn wants(&self, session: &Session, slot: usize) -> bool {
        let study = &session.review.queue.studies[slot];
        let status = session.review.status(slot);
        let flagged = matches!(
            status,
            Status::Open {
                disagreement: Some(_)
            }
        );
        if self.partial_only && !study.partial
            || self.ambiguous_only && !study.ambiguous
            || self.flagged_only && !flagged
        {
            return false;
        }
        if let Some((lo, hi)) = self.band {
            let s = study.top_score();
            if s < lo || s >= hi {
                return false;
            }
        }
        let (todo, done) = match session.role {
            Role::First => (
                matches!(status, Status::Open { .. }),
                !matches!(status, Status::Open { .. }),
            ),
            Role::Second => (
                matches!(status, Status::Decided(c) if c.reviewer != session.reviewer),
                answered_by_me(status, &session.reviewer),
            ),
        };
        match self.show {
            Show::Todo => todo,
            Show::Done => done,
            Show::All => todo || done,
        }
    }
}

/// Every study ID (slot) in each order the page offers.
pub struct Orders {
    queue: Vec<usize>,
    ambiguous_first: Vec<usize>,
    score_high: Vec<usize>,
    score_low: Vec<usize>,
}

impl Orders {
    pub fn of(session: &Session) -> Self {
        let studies = &session.review.queue.studies;
        let queue: Vec<usize> = (0..studies.len()).collect();
        let mut ambiguous_first = queue.clone();
        ambiguous_first.sort_by_key(|&s| !studies[s].ambiguous);
        let mut score_high = queue.clone();
        score_high.sort_by(|&a, &b| studies[b].top_score().total_cmp(&studies[a].top_score()));
        let mut score_low = queue.clone();
        score_low.sort_by(|&a, &b| studies[a].top_score().total_cmp(&studies[b].top_score()));
        Self {
            queue,
            ambiguous_first,
            score_high,
            score_low,
        }
    }

    fn get(&self, order: Order) -> &[usize] {
        match order {
            Order::Queue => &self.queue,
            Order::AmbiguousFirst => &self.ambiguous_first,
            Order::ScoreHigh => &self.score_high,
            Order::ScoreLow => &self.score_low,
        }
    }
}

fn answered_by_me(status: &Status, me: &str) -> bool {
    match status {
        Status::Confirmed(_, b) => b.reviewer == me,
        Status::Open {
            disagreement: Some((_, b)),
        } => b.reviewer == me,
        _ => false,
    }
}

fn summary(session: &Session) -> Value {
    let c = session.review.counts();
    let (to_confirm, mine) = (0..session.review.len()).fold((0, 0), |(t, m), slot| {
        let status = session.review.status(slot);
        (
            t + usize::from(matches!(status, Status::Decided(c) if c.reviewer != session.reviewer)),
            m + usize::from(answered_by_me(status, &session.reviewer)),
        )
    });
    json!({
        "reference": session.reference,
        "run_id": session.run_id,
        "reviewer": session.reviewer,
        "mode": match session.role { Role::First => "first", Role::Second => "second" },
        "counts": c,
        "second": { "to_confirm": to_confirm, "answered": mine },
        "decisions_file": session.review.decisions_path.display().to_string(),
        "notes": session.notes,
    })
}

fn list(session: &Session, orders: &Orders, params: &[(String, String)]) -> Value {
    let view = View::from_params(params);
    let offset: usize = param(params, "offset").unwrap_or(0);
    let limit: usize = param(params, "limit").unwrap_or(50).clamp(1, MAX_PAGE);
    let mut total = 0;
    let mut items = Vec::new();
    for &slot in orders.get(view.order) {
        if !view.wants(session, slot) {
            continue;
        }
        if total >= offset && items.len() < limit {
            let s = &session.review.queue.studies[slot];
            items.push(json!({
                "pos": total,
                "study_id": s.study_id,
                "top_score": s.top_score(),
                "candidates": s.candidates.len(),
                "ambiguous": s.ambiguous,
                "partial": s.partial,
                "status": status_word(session, slot),
            }));
        }
        total += 1;
    }
    json!({ "total": total, "offset": offset, "items": items })
}

fn param<T: std::str::FromStr>(params: &[(String, String)], k: &str) -> Option<T> {
    params
        .iter()
        .find(|(p, _)| p == k)
        .and_then(|(_, v)| v.parse().ok())
}

/// The status as the list shows it; in second review, a first answer is
/// never shown.
fn status_word(session: &Session, slot: usize) -> &'static str {
    match (session.review.status(slot), session.role) {
        (Status::Open { disagreement: None }, _) => "open",
        (
            Status::Open {
                disagreement: Some(_),
            },
            _,
        ) => "flagged",
        (Status::Decided(_), Role::Second) => "to confirm",
        (Status::Decided(c), Role::First) => match c.verdict {
            Verdict::Accept { .. } => "accepted",
            Verdict::RejectAll => "rejected",
        },
        (Status::Confirmed(..), _) => "confirmed",
    }
}

/// One study ID: `at=ID` (that one, if in view, else the next in view),
/// `after=ID`, `before=ID`, or the first in view.
fn study(session: &Session, orders: &Orders, params: &[(String, String)]) -> Value {
    let view = View::from_params(params);
    let order = orders.get(view.order);
    let get = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str());
    let index_of = |id: &str| {
        session
            .review
            .slot_of(id)
            .and_then(|slot| order.iter().position(|&s| s == slot))
    };
    let wanted = |i: &usize| view.wants(session, order[*i]);
    let found = if let Some(id) = get("at") {
        index_of(id).and_then(|i| (i..order.len()).find(wanted))
    } else if let Some(id) = get("after") {
        index_of(id).and_then(|i| (i + 1..order.len()).find(wanted))
    } else if let Some(id) = get("before") {
        index_of(id).and_then(|i| (0..i).rev().find(wanted))
    } else {
        (0..order.len()).find(wanted)
    };
    let Some(i) = found else {
        let total = order.iter().filter(|&&s| view.wants(session, s)).count();
        return json!({ "study": null, "total": total });
    };
    let slot = order[i];
    let pos = (0..i).filter(wanted).count();
    let total = pos + (i..order.len()).filter(wanted).count();
    json!({ "study": study_json(session, slot), "pos": pos, "total": total })
}

fn call_json(c: &super::state::Call) -> Value {
    json!({
        "reviewer": c.reviewer,
        "decided_on": c.decided_on.to_string(),
        "verdict": match c.verdict {
            Verdict::Accept { person_id } => json!({ "accept": person_id }),
            Verdict::RejectAll => json!("reject_all"),
        },
    })
}

fn study_json(session: &Session, slot: usize) -> Value {
    let s = &session.review.queue.studies[slot];
    let fields = &session.review.queue.fields;
    let status = session.review.status(slot);
    // A second reviewer answers blind: the first answer is left out.
    let blind = session.role == Role::Second;
    let (status_value, first, second, disagreement) = match status {
        Status::Open { disagreement: None } => ("open", None, None, None),
        Status::Open {
            disagreement: Some((a, b)),
        } => (
            "flagged",
            None,
            None,
            (!blind).then(|| json!([call_json(a), call_json(b)])),
        ),
        Status::Decided(a) => ("decided", (!blind).then(|| call_json(a)), None, None),
        Status::Confirmed(a, b) => (
            "confirmed",
            (!blind || b.reviewer == session.reviewer).then(|| call_json(a)),
            Some(call_json(b)),
            None,
        ),
    };
    let earlier: Vec<Value> = session
        .review
        .earlier_of(&s.study_id)
        .iter()
        .map(|d| {
            json!({ "person_id": d.person_id, "accept": d.accept, "line": d.line, "reviewer": d.reviewer })
        })
        .collect();
    json!({
        "study_id": s.study_id,
        "ambiguous": s.ambiguous,
        "partial": s.partial,
        "status": status_value,
        "first": first,
        "second": second,
        "disagreement": disagreement,
        "earlier": earlier,
        "fields": fields,
        "cohort": s.cohort,
        "candidates": s.candidates.iter().map(|c| json!({
            "person_id": c.person_id,
            "rank": c.rank,
            "score": c.score,
            "found_by": c.found_by,
            "index": c.index,
            "levels": c.levels.iter().map(|l| super::levels::show(l)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
struct DecideBody {
    study_id: String,
    /// `accept` or `reject_all`.
    decision: String,
    person_id: Option<i64>,
}

type Answer = Result<Value, (u16, String)>;

fn refused(e: SaveError) -> (u16, String) {
    match e {
        SaveError::Refused(r) => (409, r.to_string()),
        SaveError::Journal(j) => (500, format!("not saved: {j}")),
    }
}

fn decide(session: &mut Session, body: &str) -> Answer {
    let b: DecideBody =
        serde_json::from_str(body).map_err(|e| (400, format!("bad request: {e}")))?;
    let verdict = match (b.decision.as_str(), b.person_id) {
        ("accept", Some(person_id)) => Verdict::Accept { person_id },
        ("reject_all", _) => Verdict::RejectAll,
        _ => {
            return Err((
                400,
                "decision is `accept` with a person_id, or `reject_all`".into(),
            ))
        }
    };
    let seq = session.decide(&b.study_id, verdict).map_err(refused)?;
    let slot = session
        .review
        .slot_of(&b.study_id)
        .ok_or_else(|| (500, Refusal::UnknownStudy(b.study_id.clone()).to_string()))?;
    Ok(json!({
        "saved": true,
        "seq": seq,
        "study_id": b.study_id,
        "status": status_word(session, slot),
    }))
}

fn undo(session: &mut Session) -> Answer {
    let study_id = session.undo().map_err(refused)?;
    Ok(json!({ "undone": true, "study_id": study_id }))
}

fn write(session: &mut Session) -> Answer {
    match session.write_decisions() {
        Ok(lines) => Ok(json!({
            "written": true,
            "lines": lines,
            "path": session.review.decisions_path.display().to_string(),
        })),
        Err(e) => Err((409, e.to_string())),
    }
}
