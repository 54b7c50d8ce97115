"use strict";
// The review page: asks the server for one study ID at a time and a page
// of the list, never the whole queue. Every value is put in the page as
// text (never as HTML). A decision shows as saved only once the server
// says it is in the journal on disk.
(function () {
  const token = new URLSearchParams(location.search).get("token") || "";
  const $ = (id) => document.getElementById(id);
  const LIST_PAGE = 50;
  const SYMBOL = { agree: "✓", partial: "≈", disagree: "✗", missing: "–", other: "?" };
  const FIELD = {
    nhs_number: "NHS number", date_of_birth: "Date of birth", gender: "Gender",
    postcode: "Postcode", forename: "Forename", surname: "Surname",
  };
  const state = { study: null, pos: 0, total: 0, cursor: 0, listOffset: 0, busy: false, summary: null };

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  async function api(path, body) {
    const opts = { headers: { "X-Dars-Token": token }, cache: "no-store" };
    if (body !== undefined) {
      opts.method = "POST";
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    let data = null;
    try { data = await r.json(); } catch (_) { data = { error: "the server sent no answer (" + r.status + ")" }; }
    if (!r.ok) throw new Error((data && data.error) || ("HTTP " + r.status));
    return data;
  }

  function viewParams() {
    const p = new URLSearchParams();
    p.set("show", $("show").value);
    p.set("order", $("order").value);
    if ($("band").value) p.set("band", $("band").value);
    if ($("partial").checked) p.set("partial", "1");
    if ($("ambiguous_only").checked) p.set("ambiguous_only", "1");
    if ($("flagged").checked) p.set("flagged", "1");
    return p;
  }

  function say(text) { $("saved").textContent = text; }
  function fail(text) { $("error").textContent = text; }

  async function loadSummary() {
    const s = await api("/api/summary");
    state.summary = s;
    $("where").textContent = s.reference + " · run " + s.run_id;
    $("who").textContent = "Reviewer: " + s.reviewer + (s.mode === "second" ? " (second review: answers are blind)" : " (first review)");
    const c = s.counts;
    let text, done, of;
    if (s.mode === "second") {
      done = s.second.answered; of = s.second.answered + s.second.to_confirm;
      text = `${s.second.answered} answered, ${s.second.to_confirm} to confirm · ${c.confirmed} confirmed, ${c.flagged} disagreements`;
    } else {
      done = c.decided; of = c.studies;
      text = `${c.decided} reviewed, ${c.left} left · ${c.accepted} accepted, ${c.rejected} rejected` +
        (c.confirmed ? `, ${c.confirmed} confirmed` : "") + (c.flagged ? `, ${c.flagged} disagreements` : "");
    }
    $("bar").max = Math.max(of, 1);
    $("bar").value = done;
    $("progress-text").textContent = text;
    $("file").textContent = "File: " + s.decisions_file;
    const notes = $("notes");
    notes.replaceChildren(...(s.notes || []).map((n) => el("p", { text: n })));
  }

  async function loadList() {
    const p = viewParams();
    p.set("offset", state.listOffset);
    p.set("limit", LIST_PAGE);
    const l = await api("/api/list?" + p);
    if (l.total > 0 && state.listOffset >= l.total) {
      state.listOffset = Math.max(0, Math.floor((l.total - 1) / LIST_PAGE) * LIST_PAGE);
      return loadList();
    }
    const from = l.total ? l.offset + 1 : 0;
    const to = l.offset + l.items.length;
    $("list-count").textContent = `${l.total} study IDs in view · showing ${from}–${to}`;
    $("page-prev").disabled = l.offset === 0;
    $("page-next").disabled = to >= l.total;
    $("list").replaceChildren(...l.items.map((it) => {
      const current = state.study && state.study.study_id === it.study_id;
      const b = el("button", { type: "button", "aria-current": current ? "true" : null, "data-study": it.study_id },
        el("span", { text: it.study_id }),
        el("span", { class: "st", text: `${it.top_score.toFixed(1)} · ${it.status}${it.ambiguous ? " · ambiguous" : ""}${it.partial ? " · partial" : ""}` }));
      b.addEventListener("click", () => go("at", it.study_id));
      return el("li", {}, b);
    }));
  }

  async function go(how, id) {
    const p = viewParams();
    if (how && id) p.set(how, id);
    const r = await api("/api/study?" + p);
    if (!r.study && (how === "after" || how === "before")) {
      say(how === "after" ? "No more study IDs after this one in this view." : "This is the first study ID in this view.");
      return;
    }
    state.study = r.study;
    state.pos = r.pos || 0;
    state.total = r.total;
    state.cursor = 0;
    if (r.study) state.listOffset = Math.floor(state.pos / LIST_PAGE) * LIST_PAGE;
    render();
    await loadList();
  }

  function levelBadge(lv) {
    return el("span", { class: "level " + lv.category, title: lv.code },
      el("span", { class: "sym", "aria-hidden": "true", text: SYMBOL[lv.category] || "?" }),
      lv.label);
  }

  function verdictText(v) {
    return v === "reject_all" ? "reject all" : "accept person " + v.accept;
  }

  function render() {
    const s = state.study;
    const head = $("study-head"), flags = $("flags"), compare = $("compare");
    $("error").textContent = "";
    if (!s) {
      head.replaceChildren(el("h2", { class: "study-title", text: "Nothing to review in this view" }),
        el("p", { class: "empty", text: "Every study ID in this view is done. Change the view, or write the decisions file." }));
      flags.replaceChildren();
      compare.replaceChildren();
      return;
    }
    head.replaceChildren(
      el("h2", { class: "study-title", id: "study-title" }, "Study ID ", el("span", { id: "study-id", text: s.study_id })),
      el("p", { class: "study-meta", text: `${state.pos + 1} of ${state.total} in this view · ${s.candidates.length} candidate${s.candidates.length === 1 ? "" : "s"}, best first` }));
    const f = [];
    if (s.ambiguous) f.push(el("span", { class: "flag ambiguous", text: "Ambiguous: the top two candidates score close together" }));
    if (s.partial) f.push(el("span", { class: "flag partial", text: "Partial match: the NHS number was found but a field disagrees" }));
    if (s.status === "flagged") {
      let t = "Reviewers disagreed: decide again";
      if (s.disagreement) t += ` (${s.disagreement[0].reviewer}: ${verdictText(s.disagreement[0].verdict)}; ${s.disagreement[1].reviewer}: ${verdictText(s.disagreement[1].verdict)})`;
      f.push(el("span", { class: "flag flagged", text: t }));
    }
    if (s.first) f.push(el("span", { class: "flag decided", id: "decision", text: `Decided by ${s.first.reviewer} on ${s.first.decided_on}: ${verdictText(s.first.verdict)}` }));
    if (s.second) f.push(el("span", { class: "flag decided", text: `Second review by ${s.second.reviewer}: ${verdictText(s.second.verdict)}` + (s.status === "confirmed" ? " (confirmed)" : "") }));
    for (const e of s.earlier) f.push(el("span", { class: "flag", text: `Decisions file line ${e.line}: ${e.accept ? "accepts" : "rejects"} person ${e.person_id}` }));
    flags.replaceChildren(...f);

    const headRow = el("tr", {}, el("th", { scope: "col", text: "Field" }), el("th", { scope: "col", class: "cohort", text: "Cohort row" }));
    s.candidates.forEach((c, i) => {
      const th = el("th", { scope: "col", class: "cand-head" + (i === state.cursor ? " cursor" : ""), "data-i": i, "aria-current": i === state.cursor ? "true" : null },
        el("span", { class: "n" }, `Candidate ${i + 1}`, i === state.cursor ? el("span", { class: "cursor-mark", text: "cursor" }) : null),
        el("br"),
        el("span", { class: "meta", text: `person ${c.person_id}` }), el("br"),
        el("span", { class: "meta", text: `score ${c.score.toFixed(1)} · rank ${c.rank}` }), el("br"),
        el("span", { class: "meta", text: "found by: " + (c.found_by.length ? c.found_by.join(", ") : "not recorded") }));
      th.addEventListener("click", () => { state.cursor = i; render(); });
      headRow.append(th);
    });
    const body = el("tbody");
    s.fields.forEach((name, fi) => {
      const row = el("tr", {}, el("th", { scope: "row", text: FIELD[name] || name.replace(/_/g, " ") }),
        el("td", { class: "cohort" }, el("span", { class: "value", text: s.cohort[fi] || "—" })));
      s.candidates.forEach((c, i) => {
        row.append(el("td", { class: i === state.cursor ? "cursor" : null },
          el("span", { class: "value", text: c.index[fi] || "—" }), levelBadge(c.levels[fi])));
      });
      body.append(row);
    });
    compare.replaceChildren(el("div", { class: "compare-wrap" },
      el("table", { class: "compare", "aria-describedby": "study-title" },
        el("caption", { text: "The cohort row beside each candidate, best first. Each field shows its agreement level in words and colour." }),
        el("thead", {}, headRow), body)));
  }

  async function decide(body, label) {
    if (!state.study || state.busy) return;
    state.busy = true;
    const id = state.study.study_id;
    say("Saving…");
    $("error").textContent = "";
    try {
      const r = await api("/api/decide", Object.assign({ study_id: id }, body));
      say(`Saved: study ID ${id} ${label} (journal entry ${r.seq}).`);
      await loadSummary();
      await advance(id);
    } catch (e) {
      say("");
      fail("Not saved: " + e.message);
    } finally {
      state.busy = false;
    }
  }

  // After a decision the study ID usually leaves the "to do" view: show
  // the one after it in the view's order.
  async function advance(id) {
    const p = viewParams();
    p.set("after", id);
    const r = await api("/api/study?" + p);
    if (r.study) {
      state.study = r.study; state.pos = r.pos; state.total = r.total; state.cursor = 0;
      state.listOffset = Math.floor(state.pos / LIST_PAGE) * LIST_PAGE;
      render();
      await loadList();
    } else {
      await go();
    }
  }

  function accept() {
    const s = state.study;
    if (!s || !s.candidates.length) return;
    const c = s.candidates[state.cursor];
    decide({ decision: "accept", person_id: c.person_id }, `accepted person ${c.person_id}`);
  }
  function rejectAll() { decide({ decision: "reject_all" }, "rejected (all candidates)"); }

  async function undo() {
    if (state.busy) return;
    state.busy = true;
    try {
      const r = await api("/api/undo", {});
      say(`Undone: study ID ${r.study_id} is open again.`);
      await loadSummary();
      const p = viewParams();
      p.set("at", r.study_id);
      const s = await api("/api/study?" + p);
      if (s.study && s.study.study_id === r.study_id) {
        state.study = s.study; state.pos = s.pos; state.total = s.total; state.cursor = 0;
        state.listOffset = Math.floor(state.pos / LIST_PAGE) * LIST_PAGE;
        render();
        await loadList();
      } else {
        await go("at", state.study ? state.study.study_id : null);
      }
    } catch (e) {
      fail("Not undone: " + e.message);
    } finally {
      state.busy = false;
    }
  }

  async function writeFile() {
    try {
      const r = await api("/api/write", {});
      say(`Written: ${r.lines} decision lines to ${r.path}.`);
    } catch (e) {
      fail("Not written: " + e.message);
    }
  }

  function moveCursor(d) {
    const s = state.study;
    if (!s || !s.candidates.length) return;
    state.cursor = (state.cursor + d + s.candidates.length) % s.candidates.length;
    render();
    say(`Cursor on candidate ${state.cursor + 1} of ${s.candidates.length}: person ${s.candidates[state.cursor].person_id}, score ${s.candidates[state.cursor].score.toFixed(1)}.`);
  }

  const next = () => state.study && go("after", state.study.study_id);
  const prev = () => state.study && go("before", state.study.study_id);

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.tagName === "SELECT" || t.tagName === "INPUT" || t.tagName === "TEXTAREA")) {
      if (e.key === "Escape") { t.blur(); $("study").focus(); }
      return;
    }
    if (t && t.tagName === "BUTTON" && (e.key === "Enter" || e.key === " ")) return;
    // Single-key shortcuts can be turned off (WCAG 2.1.4), e.g. for a
    // screen reader's own keys; the buttons still work.
    if (!$("shortcuts").checked) return;
    const k = e.key;
    const handled = {
      ArrowDown: () => moveCursor(1), j: () => moveCursor(1), J: () => moveCursor(1),
      ArrowUp: () => moveCursor(-1), k: () => moveCursor(-1), K: () => moveCursor(-1),
      a: accept, A: accept, Enter: accept,
      r: rejectAll, R: rejectAll,
      s: next, S: next,
      u: undo, U: undo,
      n: next, N: next, ArrowRight: next,
      p: prev, P: prev, ArrowLeft: prev,
      w: writeFile, W: writeFile,
    }[k];
    if (handled) { e.preventDefault(); handled(); return; }
    if (/^[1-9]$/.test(k) && state.study && Number(k) <= state.study.candidates.length) {
      e.preventDefault();
      state.cursor = Number(k) - 1;
      moveCursor(0);
    }
  });

  $("b-accept").addEventListener("click", accept);
  $("b-reject").addEventListener("click", rejectAll);
  $("b-skip").addEventListener("click", next);
  $("b-undo").addEventListener("click", undo);
  $("b-next").addEventListener("click", next);
  $("b-prev").addEventListener("click", prev);
  $("b-write").addEventListener("click", writeFile);
  $("page-prev").addEventListener("click", () => { state.listOffset = Math.max(0, state.listOffset - LIST_PAGE); loadList(); });
  $("page-next").addEventListener("click", () => { state.listOffset += LIST_PAGE; loadList(); });
  $("filters").addEventListener("change", () => { state.listOffset = 0; go(); });
  $("filters").addEventListener("submit", (e) => e.preventDefault());

  (async function start() {
    try {
      await loadSummary();
      // `&study=ID` in the URL opens that study ID (or the next in view).
      const first = new URLSearchParams(location.search).get("study");
      await (first ? go("at", first) : go());
      document.body.setAttribute("data-ready", "1");
      $("study").focus();
    } catch (e) {
      fail("Cannot load the review: " + e.message);
    }
  })();
})();
