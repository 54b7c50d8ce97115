//! `dars review` in a real browser (issue #13): Debian's headless Chromium
//! driven over the DevTools protocol (`headless_chrome`). A
//! reviewer works the queue with the keyboard only, the server is killed
//! midway and restarted, every saved decision is still there, the page
//! writes the decisions file, and `dars run` makes the accepted pairs
//! `reviewed`.
//!
//! `DARS_REVIEW_SCREENSHOT=docs/review.png cargo test --test review_browser`
//! also saves the README's screenshot (synthetic data only).

mod browser_support;
mod common;
mod review_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::Tab;
use serde_json::{json, Value};

use browser_support::chromium;
use review_support::*;

fn js(tab: &Tab, body: &str) -> Value {
    tab.evaluate(&format!("(() => {{ {body} }})()"), false)
        .unwrap()
        .value
        .unwrap_or(Value::Null)
}

fn text_of(tab: &Tab, id: &str) -> String {
    js(
        tab,
        &format!("const e = document.getElementById('{id}'); return e ? e.textContent : '';"),
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Waits until the element's text holds `want`.
fn wait_text(tab: &Tab, id: &str, want: &str) -> String {
    let started = Instant::now();
    loop {
        let t = text_of(tab, id);
        if t.contains(want) {
            return t;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "#{id} never showed {want:?}: it shows {t:?} (error: {:?})",
            text_of(tab, "error")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn open(tab: &Tab, url: &str) {
    tab.navigate_to(url)
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    let started = Instant::now();
    while js(tab, "return document.body.getAttribute('data-ready')") != json!("1") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the page never loaded: {}",
            text_of(tab, "error")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Presses one key, as a person would (a trusted key event).
fn press(tab: &Tab, key: &str) {
    tab.press_key(key).unwrap();
}

fn shown_study(tab: &Tab) -> String {
    text_of(tab, "study-id")
}

fn set_view(tab: &Tab, show: &str) {
    js(tab, &format!("document.getElementById('show').value = '{show}'; document.getElementById('filters').dispatchEvent(new Event('change')); return 1;"));
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
    let w = site_with_twins();
    let run = latest_run(&w);
    let queue = queue_of(&w, &run);
    // Twins first: the cursor has somewhere to go.
    assert!(
        queue[..4].iter().all(|(_, people)| people.len() == 2),
        "{:?}",
        &queue[..4]
    );
    assert!(
        queue.len() >= 6,
        "the synthetic queue is too short: {}",
        queue.len()
    );
    // The plan, keeping each accepted person to one study ID.
    let mut taken = std::collections::HashSet::new();
    let want = [
        Plan::AcceptTop,
        Plan::AcceptSecond,
        Plan::Reject,
        Plan::Skip,
        Plan::AcceptTop,
        Plan::Reject,
    ];
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
    let profile = tempfile::tempdir().unwrap();
    let browser = chromium(profile.path());
    let tab: Arc<Tab> = browser.new_tab().unwrap();
    let server = Review::start(&w, &["--reviewer", "alice"]);

    // Without the token the browser gets nothing but a refusal.
    tab.navigate_to(&format!("http://127.0.0.1:{}/", server.port))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    let body = js(&tab, "return document.body.innerText");
    assert!(body.as_str().unwrap().contains("refused"), "{body}");
    assert!(!body.as_str().unwrap().contains(&plan[0].0));

    open(&tab, &server.url);
    // The keys are on the page, and every level has words, not colour
    // alone.
    assert!(text_of(&tab, "b-accept").contains('A'));
    let side = js(&tab, "return document.querySelector('.keys').innerText");
    for k in [
        "accept",
        "reject all",
        "skip",
        "undo",
        "next study ID",
        "previous study ID",
    ] {
        assert!(
            side.as_str().unwrap().contains(k),
            "keys panel lacks {k}: {side}"
        );
    }
    let levels = js(&tab, "return document.querySelectorAll('.level').length");
    assert!(levels.as_u64().unwrap() > 0);
    let wordless = js(&tab, "return [...document.querySelectorAll('.level')].filter(e => e.textContent.replace(/[✓≈✗–?]/g,'').trim().length < 3).length");
    assert_eq!(wordless, json!(0));
    let progress = text_of(&tab, "progress-text");
    assert!(
        progress.contains(&format!("0 reviewed, {} left", queue.len())),
        "{progress}"
    );

    // The first three, by keyboard.
    for (study, people, p) in &plan[..3] {
        assert_eq!(&shown_study(&tab), study);
        match p {
            Plan::AcceptTop => press(&tab, "a"),
            Plan::AcceptSecond => {
                press(&tab, "ArrowDown");
                wait_text(&tab, "saved", &format!("person {}", people[1]));
                press(&tab, "Enter");
            }
            Plan::Reject => press(&tab, "r"),
            Plan::Skip => press(&tab, "s"),
        }
        if *p != Plan::Skip {
            wait_text(&tab, "saved", &format!("Saved: study ID {study}"));
        }
    }
    // The page said "Saved" only once the journal had it on disk: kill the
    // server outright, start it again, and load its new URL.
    server.kill();
    let server = Review::start(&w, &["--reviewer", "alice"]);
    open(&tab, &server.url);
    let progress = text_of(&tab, "progress-text");
    assert!(
        progress.contains(&format!("3 reviewed, {} left", queue.len() - 3)),
        "{progress}"
    );
    // Every saved decision is there, in the "done" view and on its page.
    set_view(&tab, "done");
    wait_text(&tab, "list-count", "3 study IDs in view");
    let list = js(&tab, "return document.getElementById('list').innerText");
    for (study, people, p) in &plan[..3] {
        assert!(list.as_str().unwrap().contains(study.as_str()), "{list}");
        js(
            &tab,
            &format!("document.querySelector('[data-study=\"{study}\"]').click(); return 1;"),
        );
        wait_text(&tab, "study-id", study);
        let expect = match p {
            Plan::AcceptTop => format!("accept person {}", people[0]),
            Plan::AcceptSecond => format!("accept person {}", people[1]),
            _ => "reject all".to_string(),
        };
        wait_text(&tab, "decision", &expect);
    }
    set_view(&tab, "todo");
    wait_text(&tab, "study-id", &plan[3].0);
    js(&tab, "document.getElementById('study').focus(); return 1;");

    // Skip, accept, then a decision undone and made again.
    press(&tab, "s");
    wait_text(&tab, "study-id", &plan[4].0);
    press(
        &tab,
        if plan[4].2 == Plan::AcceptTop {
            "a"
        } else {
            "r"
        },
    );
    wait_text(&tab, "saved", &format!("Saved: study ID {}", plan[4].0));
    assert_eq!(shown_study(&tab), plan[5].0);
    if dance {
        press(&tab, "a");
        let first = wait_text(&tab, "saved", &format!("Saved: study ID {}", plan[5].0));
        assert!(first.contains("accepted"), "{first}");
        press(&tab, "u");
        wait_text(
            &tab,
            "saved",
            &format!("Undone: study ID {} is open again", plan[5].0),
        );
        wait_text(&tab, "study-id", &plan[5].0);
    }
    press(&tab, "r");
    wait_text(
        &tab,
        "saved",
        &format!("Saved: study ID {} rejected", plan[5].0),
    );

    // Write the decisions file from the page.
    press(&tab, "w");
    wait_text(&tab, "saved", "Written:");
    let progress = text_of(&tab, "progress-text");
    assert!(progress.contains("5 reviewed"), "{progress}");

    // The README's picture: a study ID still open with several candidates
    // side by side, opened by its link.
    let decided: Vec<&String> = plan
        .iter()
        .filter(|p| p.2 != Plan::Skip)
        .map(|p| &p.0)
        .collect();
    let shown = queue
        .iter()
        .filter(|(s, _)| !decided.contains(&s))
        .find(|(_, people)| people.len() > 1)
        .unwrap_or(&queue[3]);
    open(&tab, &format!("{}&study={}", server.url, shown.0));
    wait_text(&tab, "study-id", &shown.0);
    js(
        &tab,
        "window.scrollTo(0, 0); document.activeElement.blur(); return 1;",
    );
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    if let Some(path) = std::env::var_os("DARS_REVIEW_SCREENSHOT") {
        std::fs::write(common::repo().join(path), &png).unwrap();
    }
    drop(server);
    drop(browser);

    // `dars run` applies the file: the accepted pairs are `reviewed`.
    write_agreement(&w, Some("agreement.decisions.csv"));
    let after = dry_run(&w);
    let linkage = linkage_of(&w, &after);
    for (study, people, p) in &plan {
        let (outcome, person) = &linkage[study];
        match p {
            Plan::AcceptTop => assert_eq!(
                (outcome.as_str(), person.clone()),
                ("reviewed", people[0].to_string()),
                "{study}"
            ),
            Plan::AcceptSecond => assert_eq!(
                (outcome.as_str(), person.clone()),
                ("reviewed", people[1].to_string()),
                "{study}"
            ),
            Plan::Reject => assert_ne!(outcome, "reviewed", "{study}"),
            Plan::Skip => assert_eq!(outcome, "queued", "{study}"),
        }
    }
}
