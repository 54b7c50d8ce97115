//! One problem found in a config file: where (file and key), what, and how
//! to fix it. `dars check` prints them all; a run refuses to start while any
//! has `Severity::Error`.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub file: PathBuf,
    /// Dotted key path, e.g. `outputs[1].fields[2]`, or `-` for the file.
    pub key: String,
    pub message: String,
    pub fix: String,
}

impl Problem {
    pub fn error(
        file: &std::path::Path,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            file: file.to_path_buf(),
            key: key.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn warning(
        file: &std::path::Path,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, key, message, fix)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{level}: {}: `{}`: {}",
            self.file.display(),
            self.key,
            self.message
        )?;
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

/// A config that cannot be used, with every problem found in it.
#[derive(Debug, thiserror::Error)]
#[error("{} problem{} in the configuration:\n{}", errors(.problems), if errors(.problems) == 1 { "" } else { "s" },
    .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

fn errors(problems: &[Problem]) -> usize {
    problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count()
}

impl ConfigError {
    pub fn has_errors(&self) -> bool {
        errors(&self.problems) > 0
    }
}

/// Reads and parses a TOML file, as a problem list on failure.
pub(crate) fn read_toml(path: &std::path::Path) -> Result<toml::Table, Problem> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Problem::error(
            path,
            "-",
            format!("cannot read the file: {e}"),
            "check the path and its permissions",
        )
    })?;
    text.parse::<toml::Table>().map_err(|e| {
        Problem::error(
            path,
            "-",
            format!("is not valid TOML: {}", e.message()),
            describe_span(&text, e.span()),
        )
    })
}

fn describe_span(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(s) => {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            format!("correct the TOML syntax at line {line}")
        }
        None => "correct the TOML syntax".into(),
    }
}

/// Deserializes one table of a config file, collecting every unknown key
/// (serde's `deny_unknown_fields` stops at the first, so each one found is
/// recorded, removed, and the table tried again) and the first other error.
pub(crate) fn section<T: serde::de::DeserializeOwned>(
    file: &std::path::Path,
    key: &str,
    mut value: toml::Value,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    loop {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => return Some(v),
            Err(e) => {
                let at = e.path().to_string();
                let full_key = if at == "." || at.is_empty() {
                    key.to_string()
                } else {
                    format!("{key}.{at}")
                };
                let msg = e.inner().message().to_string();
                if let Some(unknown) = unknown_field(&msg) {
                    let fix = match msg.split_once("expected ") {
                        Some((_, rest)) => format!("remove it, or use one of {rest}"),
                        None => "remove it".into(),
                    };
                    let parent = full_key.rsplit_once('.').map(|(p, _)| p.to_string());
                    let unknown_key = match &parent {
                        Some(p) if at != "." && !at.is_empty() && full_key.ends_with(&unknown) => {
                            full_key.clone()
                        }
                        _ => format!("{full_key}.{unknown}"),
                    };
                    let _ = parent;
                    problems.push(Problem::error(file, unknown_key, "unknown key", fix));
                    // Only a top-level unknown key can be removed and retried.
                    if at == "." || at.is_empty() || at == unknown {
                        if let Some(t) = value.as_table_mut() {
                            if t.remove(&unknown).is_some() {
                                continue;
                            }
                        }
                    }
                    return None;
                }
                problems.push(Problem::error(file, &full_key, msg, fix_for(&full_key)));
                return None;
            }
        }
    }
}

fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

fn fix_for(key: &str) -> String {
    format!("correct `{key}` as DESIGN.md and the README's configuration section describe")
}

impl From<Problem> for ConfigError {
    fn from(p: Problem) -> Self {
        Self { problems: vec![p] }
    }
}
