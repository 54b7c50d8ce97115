//! The suppression report of one protected table, as CSV (one row per
//! cell, then summary rows) and as HTML (the table itself with suppressed
//! cells highlighted, for analysts to open in a browser).
//!
//! Both hold true values, flagged `_internal`: they are for the custodian
//! and the analyst's dry run, never part of a release, and are written
//! mode 0600 by their callers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::Path;

use super::{Action, Profile, Protected, ProtectedTable};
use crate::counts::CellLevel;

/// The summary that ends a report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub cells: usize,
    pub suppressed: usize,
    pub primary: usize,
    pub secondary: usize,
    pub rounded: usize,
    /// Sum of the true interior counts (internal).
    pub interior_total_internal: u64,
    /// Sum of the true interior counts hidden behind `*` (internal).
    pub hidden_internal: u64,
    /// Sum of |released − true| over published cells (internal).
    pub rounding_shift_internal: u64,
    pub audited: usize,
    /// Of `audited`, those with the whole-number interval.
    pub whole_number: usize,
    /// Rounded counts a whole-number reader pins exactly.
    pub pinned: usize,
    pub audit_failures: usize,
}

impl Summary {
    pub fn of(table: &ProtectedTable) -> Self {
        let mut s = Summary {
            cells: table.counts.cells,
            suppressed: table.counts.suppressed(),
            primary: table.counts.primary,
            secondary: table.counts.secondary,
            rounded: table.counts.rounded,
            audited: table.counts.audited,
            whole_number: table.counts.whole_number,
            pinned: table.counts.pinned,
            audit_failures: table.counts.audit_failures,
            ..Default::default()
        };
        for c in &table.cells {
            if c.level == CellLevel::Interior {
                s.interior_total_internal += c.original;
            }
            match c.value {
                Protected::Suppressed if c.level == CellLevel::Interior => {
                    s.hidden_internal += c.original
                }
                Protected::Suppressed => {}
                Protected::Count(n) => s.rounding_shift_internal += n.abs_diff(c.original),
            }
        }
        s
    }

    /// The summary as sentences.
    pub fn lines(&self) -> Vec<String> {
        let share = |part: u64, whole: u64| {
            if whole == 0 {
                "0.0%".to_string()
            } else {
                format!("{:.1}%", 100.0 * part as f64 / whole as f64)
            }
        };
        vec![
            format!(
                "cells suppressed: {} of {} (primary {}, secondary {}); {} rounded",
                self.suppressed, self.cells, self.primary, self.secondary, self.rounded
            ),
            format!(
                "information lost (internal): {} of {} counted in interior cells hidden ({}); released counts moved by {} in all by rounding",
                self.hidden_internal,
                self.interior_total_internal,
                share(self.hidden_internal, self.interior_total_internal),
                self.rounding_shift_internal
            ),
            if self.audited == 0 {
                "audit: no suppressed cell audited".to_string()
            } else if self.audit_failures == 0 {
                format!(
                    "audit: all {} suppressed cells keep an interval at least as wide as the rule's protection ({} whole-number, {} LP)",
                    self.audited,
                    self.whole_number,
                    self.audited - self.whole_number
                )
            } else {
                format!(
                    "audit: FAILED: {} cells can be narrowed below the rule's protection ({} of {} suppressed cells, {} rounded counts pinned exactly); this table cannot be released",
                    self.audit_failures,
                    self.audit_failures - self.pinned,
                    self.audited,
                    self.pinned
                )
            },
        ]
    }
}

/// One row per cell, then one `summary` row per summary line.
pub fn write_csv<W: Write>(w: W, table: &ProtectedTable) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(w);
    let mut header: Vec<String> = table.dims.clone();
    header.extend(
        [
            "level",
            "original_internal",
            "released",
            "action",
            "rule",
            "reason",
            "percent_internal",
            "percent_released",
            "interval_internal",
            "protection",
            "audit",
            "interval_kind",
            "reader_interval_internal",
        ]
        .map(String::from),
    );
    w.write_record(&header)?;
    for c in &table.cells {
        let mut record = c.key.clone();
        record.push(c.level.as_str().into());
        record.push(c.original.to_string());
        record.push(c.value.to_string());
        record.push(c.action.as_str().into());
        record.push(c.rule.clone());
        record.push(c.reason.clone());
        match &c.percent {
            Some(p) => {
                record.push(format!("{:.4}", p.original));
                record.push(p.value.clone().unwrap_or_default());
            }
            None => record.extend([String::new(), String::new()]),
        }
        match &c.interval {
            Some(i) => {
                record.push(i.to_string());
                record.push(i.required.to_string());
                record.push(if i.passes() { "pass" } else { "FAIL" }.into());
                record.push(i.kind().into());
                record.push(i.reader_text().unwrap_or_default());
            }
            None => record.extend(std::iter::repeat_n(String::new(), 5)),
        }
        w.write_record(&record)?;
    }
    for line in Summary::of(table).lines() {
        let mut record = vec![String::new(); header.len()];
        let d = table.dims.len();
        record[d] = "summary".into();
        record[d + 5] = line;
        w.write_record(&record)?;
    }
    w.flush()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The table laid out as a grid (rows: every dimension but the last;
/// columns: the last), suppressed cells highlighted, every cell's action,
/// reason and true value (internal) in its tooltip.
pub fn write_html<W: Write>(mut w: W, table: &ProtectedTable, profile: &Profile) -> io::Result<()> {
    let d = table.dims.len();
    writeln!(
        w,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>Suppression report: {name}</title>\n<style>\nbody{{font-family:system-ui,sans-serif;margin:2em}}\ntable{{border-collapse:collapse}}\ntd,th{{border:1px solid #bbb;padding:.3em .6em;text-align:right}}\nth{{background:#eee}}\n.primary{{background:#f8b4b4;font-weight:bold}}\n.secondary{{background:#fbd38d;font-weight:bold}}\n.rounded{{background:#fff}}\n.exempt{{background:#c3dafe}}\n.fail{{outline:3px solid #c00}}\n.internal{{color:#a00}}\n</style></head><body>",
        name = esc(&table.name)
    )?;
    writeln!(w, "<h1>Suppression report: {}</h1>", esc(&table.name))?;
    writeln!(
        w,
        "<p class=\"internal\"><strong>Internal:</strong> hover a cell for its true value. Do not send this file out.</p>"
    )?;
    writeln!(w, "<p>Rule {}</p><ul>", esc(&profile.describe()))?;
    for line in Summary::of(table).lines() {
        writeln!(w, "<li>{}</li>", esc(&line))?;
    }
    writeln!(
        w,
        "</ul><p>Legend: <span class=\"primary\">primary</span> <span class=\"secondary\">secondary</span> <span class=\"exempt\">exempt</span> <span class=\"fail\">audit failed</span></p>"
    )?;
    if d == 0 {
        return writeln!(w, "</body></html>");
    }
    let last = d - 1;
    let columns: BTreeSet<&str> = table.cells.iter().map(|c| c.key[last].as_str()).collect();
    let mut rows: BTreeMap<&[String], BTreeMap<&str, usize>> = BTreeMap::new();
    for (i, c) in table.cells.iter().enumerate() {
        rows.entry(&c.key[..last])
            .or_default()
            .insert(c.key[last].as_str(), i);
    }
    write!(w, "<table><thead><tr>")?;
    for dim in &table.dims[..last] {
        write!(w, "<th>{}</th>", esc(dim))?;
    }
    for c in &columns {
        write!(w, "<th>{} = {}</th>", esc(&table.dims[last]), esc(c))?;
    }
    writeln!(w, "</tr></thead><tbody>")?;
    for (key, cells) in &rows {
        write!(w, "<tr>")?;
        for v in key.iter() {
            write!(w, "<th>{}</th>", esc(v))?;
        }
        for col in &columns {
            let Some(&i) = cells.get(col) else {
                write!(w, "<td></td>")?;
                continue;
            };
            let c = &table.cells[i];
            let mut class = c.action.as_str().to_string();
            if c.interval.is_some_and(|i| !i.passes()) {
                class.push_str(" fail");
            }
            let mut title = format!(
                "{}: {} (rule {}); true value {} (internal)",
                c.action.as_str(),
                c.reason,
                c.rule,
                c.original
            );
            if let Some(i) = &c.interval {
                title.push_str(&format!(
                    "; a reader can deduce {i} ({}, needs width {}) (internal)",
                    i.kind(),
                    i.required
                ));
                if let Some(r) = i.reader_text() {
                    title.push_str(&format!(
                        "; counts of persons: a reader who cannot know that margins add up deduces {r} (internal)"
                    ));
                }
            }
            let mut text = c.value.to_string();
            if let Some(p) = c.percent.as_ref().and_then(|p| p.value.as_ref()) {
                text.push_str(&format!(" ({p}%)"));
            }
            write!(
                w,
                "<td class=\"{}\" title=\"{}\">{}</td>",
                class,
                esc(&title),
                esc(&text)
            )?;
        }
        writeln!(w, "</tr>")?;
    }
    writeln!(w, "</tbody></table></body></html>")
}

/// Writes `STEM.csv` and `STEM.html` in `dir`, mode 0600, atomically.
pub fn write_files(
    dir: &Path,
    stem: &str,
    table: &ProtectedTable,
    profile: &Profile,
) -> io::Result<()> {
    let csv_path = dir.join(format!("{stem}.csv"));
    let html_path = dir.join(format!("{stem}.html"));
    let mut csv_file = crate::workdir::AtomicFile::create(&csv_path, 0o600)?;
    write_csv(&mut csv_file, table)?;
    csv_file.commit()?;
    let mut html = crate::workdir::AtomicFile::create(&html_path, 0o600)?;
    {
        let mut buffered = io::BufWriter::new(&mut html);
        write_html(&mut buffered, table, profile)?;
        buffered.flush()?;
    }
    html.commit()
}

impl Action {
    /// Whether the cell is released as `*`.
    pub fn suppresses(self) -> bool {
        matches!(self, Action::Primary | Action::Secondary)
    }
}
