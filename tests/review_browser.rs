//! `dars review` in a real browser (issue #13): Debian's headless Chromium
//! driven through ChromeDriver (W3C WebDriver, with `fantoccini`). A
//! reviewer works the queue with the keyboard only, the server is killed
//! midway and restarted, every saved decision is still there, the page
//! writes the decisions file, and `dars run` makes the accepted pairs
//! `reviewed`.
//!
//! `DARS_REVIEW_SCREENSHOT=docs/review.png cargo test --test review_browser`
//! also saves the README's screenshot (synthetic data only).

mod common;
mod review_support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder};
use serde_json::json;

use review_support::*;

/// ChromeDriver on a free loopback port, for the length of a test.
struct ChromeDriver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian chromium-driver; .ci/run installs it)");
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let r = http(port, "GET", "/status", &[], None);
                if r.status == 200 && r.body.contains("\"ready\":true") {
                    break;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            port,
            profile: tempfile::tempdir().unwrap(),
        }
    }

    /// A headless Chromium session, set up as on a closed network as root.
    async fn client(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1440,960",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session through chromedriver")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn js(c: &Client, script: &str) -> serde_json::Value {
    c.execute(script, vec![]).await.unwrap()
}

async fn text_of(c: &Client, id: &str) -> String {
    js(c, &format!("const e = document.getElementById('{id}'); return e ? e.textContent : '';"))
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until the element's text holds `want`.
async fn wait_text(c: &Client, id: &str, want: &str) -> String {
    let started = Instant::now();
    loop {
        let t = text_of(c, id).await;
        if t.contains(want) {
            return t;
        }
        let err = text_of(c, "error").await;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "#{id} never showed {want:?}: it shows {t:?} (error: {err:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn open(c: &Client, url: &str) {
    c.goto(url).await.unwrap();
    let started = Instant::now();
    while js(c, "return document.body.getAttribute('data-ready')").await != json!("1") {
        assert!(started.elapsed() < Duration::from_secs(20), "the page never loaded: {}", text_of(c, "error").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Presses one key, as a person would (a trusted key event).
async fn press(c: &Client, key: char) {
    let keys = KeyActions::new("keyboard".to_string())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    c.perform_actions(keys).await.unwrap();
}

async fn shown_study(c: &Client) -> String {
    text_of(c, "study-id").await
}

/// What the reviewer does with each study ID, in queue order.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    AcceptTop,
    AcceptSecond,
    Reject,
    Skip,
}

#[test]
fn issue_13_a_reviewer_works_the_queue_with_the_keyboard_in_chromium() {
    let w = site();
    let run = latest_run(&w);
    let queue = queue_of(&w, &run);
    assert!(queue.len() >= 6, "the synthetic queue is too short: {}", queue.len());
    // The plan, keeping each accepted person to one study ID.
    let mut taken = std::collections::HashSet::new();
    let want = [Plan::AcceptTop, Plan::AcceptSecond, Plan::Reject, Plan::Skip, Plan::AcceptTop, Plan::Reject];
    let mut plan = Vec::new();
    for (i, (study, people)) in queue.iter().take(6).enumerate() {
        let p = match &want[i] {
            Plan::AcceptSecond if people.len() < 2 => Plan::AcceptTop,
            other => other.clone(),
        };
        let p = match p {
            Plan::AcceptTop if !taken.insert(people[0]) => Plan::Reject,
            Plan::AcceptSecond if !taken.insert(people[1]) => Plan::Reject,
            p => p,
        };
        plan.push((study.clone(), people.clone(), p));
    }
    // Accepting the sixth then undoing it needs its top person free.
    let dance = !taken.contains(&plan[5].1[0]);
    let driver = ChromeDriver::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = driver.client().await;
        let server = Review::start(&w, &["--reviewer", "alice"]);

        // Without the token the browser gets nothing but a refusal.
        c.goto(&format!("http://127.0.0.1:{}/", server.port)).await.unwrap();
        let body = js(&c, "return document.body.innerText").await;
        assert!(body.as_str().unwrap().contains("refused"), "{body}");
        assert!(!body.as_str().unwrap().contains(&plan[0].0));

        open(&c, &server.url).await;
        // The keys are on the page, and every level has words, not colour
        // alone.
        let keys = text_of(&c, "b-accept").await;
        assert!(keys.contains('A'), "{keys}");
        let side = js(&c, "return document.querySelector('.keys').innerText").await;
        for k in ["accept", "reject all", "skip", "undo", "next study ID", "previous study ID"] {
            assert!(side.as_str().unwrap().contains(k), "keys panel lacks {k}: {side}");
        }
        let wordless = js(&c, "return [...document.querySelectorAll('.level')].filter(e => e.textContent.replace(/[✓≈✗–?]/g,'').trim().length < 3).length").await;
        assert_eq!(wordless, json!(0));
        let progress = text_of(&c, "progress-text").await;
        assert!(progress.contains(&format!("0 reviewed, {} left", queue.len())), "{progress}");

        // The first three, by keyboard.
        for (study, people, p) in &plan[..3] {
            assert_eq!(&shown_study(&c).await, study);
            match p {
                Plan::AcceptTop => press(&c, 'a').await,
                Plan::AcceptSecond => {
                    press(&c, Key::Down.into()).await;
                    let saved = text_of(&c, "saved").await;
                    assert!(saved.contains(&format!("person {}", people[1])), "{saved}");
                    press(&c, Key::Enter.into()).await;
                }
                Plan::Reject => press(&c, 'r').await,
                Plan::Skip => press(&c, 's').await,
            }
            if *p != Plan::Skip {
                wait_text(&c, "saved", &format!("Saved: study ID {study}")).await;
            }
        }
        // The page only said "Saved" once the journal had it on disk: kill
        // the server outright, start it again, and reload.
        server.kill();
        let server = Review::start(&w, &["--reviewer", "alice"]);
        open(&c, &server.url).await;
        let progress = text_of(&c, "progress-text").await;
        assert!(progress.contains(&format!("3 reviewed, {} left", queue.len() - 3)), "{progress}");
        // Every saved decision is there, in the "done" view and on its page.
        c.execute("document.getElementById('show').value = 'done'; document.getElementById('filters').dispatchEvent(new Event('change'));", vec![]).await.unwrap();
        wait_text(&c, "list-count", "3 study IDs in view").await;
        let list = js(&c, "return document.getElementById('list').innerText").await;
        for (study, people, p) in &plan[..3] {
            assert!(list.as_str().unwrap().contains(study.as_str()), "{list}");
            c.execute(&format!("document.querySelector('[data-study=\"{study}\"]').click()"), vec![]).await.unwrap();
            wait_text(&c, "study-id", study).await;
            let decision = text_of(&c, "decision").await;
            let expect = match p {
                Plan::AcceptTop => format!("accept person {}", people[0]),
                Plan::AcceptSecond => format!("accept person {}", people[1]),
                _ => "reject all".to_string(),
            };
            assert!(decision.contains(&expect), "{study}: {decision}");
        }
        c.execute("document.getElementById('show').value = 'todo'; document.getElementById('filters').dispatchEvent(new Event('change'));", vec![]).await.unwrap();
        wait_text(&c, "study-id", &plan[3].0).await;
        c.execute("document.getElementById('study').focus()", vec![]).await.unwrap();

        // Skip, accept, then a decision undone and made again.
        press(&c, 's').await;
        wait_text(&c, "study-id", &plan[4].0).await;
        if let Some(path) = std::env::var_os("DARS_REVIEW_SCREENSHOT") {
            let png = c.screenshot().await.unwrap();
            std::fs::write(common::repo().join(path), &png).unwrap();
        }
        let png = c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
        press(&c, if plan[4].2 == Plan::AcceptTop { 'a' } else { 'r' }).await;
        wait_text(&c, "saved", &format!("Saved: study ID {}", plan[4].0)).await;
        assert_eq!(shown_study(&c).await, plan[5].0);
        if dance {
            press(&c, 'a').await;
            let first = wait_text(&c, "saved", &format!("Saved: study ID {}", plan[5].0)).await;
            assert!(first.contains("accepted"), "{first}");
            press(&c, 'u').await;
            wait_text(&c, "saved", &format!("Undone: study ID {} is open again", plan[5].0)).await;
            wait_text(&c, "study-id", &plan[5].0).await;
        }
        press(&c, 'r').await;
        wait_text(&c, "saved", &format!("Saved: study ID {} rejected", plan[5].0)).await;

        // Write the decisions file from the page.
        press(&c, 'w').await;
        wait_text(&c, "saved", "Written:").await;
        let progress = text_of(&c, "progress-text").await;
        assert!(progress.contains("5 reviewed"), "{progress}");
        c.close().await.unwrap();
        drop(server);
    });

    // `dars run` applies the file: the accepted pairs are `reviewed`.
    write_agreement(&w, Some("agreement.decisions.csv"));
    let after = dry_run(&w);
    let linkage = linkage_of(&w, &after);
    for (study, people, p) in &plan {
        let (outcome, person) = &linkage[study];
        match p {
            Plan::AcceptTop => assert_eq!((outcome.as_str(), person.clone()), ("reviewed", people[0].to_string()), "{study}"),
            Plan::AcceptSecond => assert_eq!((outcome.as_str(), person.clone()), ("reviewed", people[1].to_string()), "{study}"),
            Plan::Reject => assert_ne!(outcome, "reviewed", "{study}"),
            Plan::Skip => assert_eq!(outcome, "queued", "{study}"),
        }
    }
}
