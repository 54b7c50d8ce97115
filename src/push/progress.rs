//! Progress bars for an upload: one per file and one overall, with bytes
//! per second.
//!
//! Drawn on stderr, and only when both stdout and stderr are terminals: a
//! scheduled `dars batch`, a pipe or a test sees nothing, and output meant
//! for a program is never mixed with bars.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
}

impl Progress {
    pub fn new(total_bytes: u64, files: usize) -> Self {
        let visible = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(total_bytes));
        overall.set_style(style(
            "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ));
        overall.set_prefix(format!("{files} files"));
        Self { multi, overall }
    }

    /// A bar for one file, starting at `start` bytes (a resumed `.part`).
    pub fn file(&self, name: &str, len: u64, start: u64) -> ProgressBar {
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::new(len));
        bar.set_style(style(
            "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        ));
        bar.set_prefix(short(name));
        bar.set_position(start);
        bar
    }

    /// Puts the overall bar at `done` bytes (after a reconnect, say).
    pub fn set_overall(&self, done: u64) {
        self.overall.set_position(done);
    }

    pub fn advance(&self, file: &ProgressBar, bytes: u64) {
        file.inc(bytes);
        self.overall.inc(bytes);
    }

    pub fn finish(&self) {
        self.overall.finish();
    }
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants of this file; should one be wrong, a
    // plain bar is better than no upload.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn short(name: &str) -> String {
    const MAX: usize = 24;
    if name.chars().count() <= MAX {
        name.to_string()
    } else {
        let tail: String = name
            .chars()
            .rev()
            .take(MAX - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_count_bytes_and_long_names_are_shortened() {
        let p = Progress::new(100, 2);
        let f = p.file("episodes.parquet.age", 60, 10);
        p.advance(&f, 50);
        assert_eq!(f.position(), 60);
        assert_eq!(p.overall.position(), 50);
        p.set_overall(70);
        assert_eq!(p.overall.position(), 70);
        let s = short("a_very_long_output_name_for_a_table.parquet.age");
        assert_eq!(s.chars().count(), 24);
        assert!(s.ends_with(".parquet.age"));
    }
}
