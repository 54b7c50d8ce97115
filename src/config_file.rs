//! Reading a config file, shared by every part that owns a piece of one: a
//! problem found in it (where, what, and how to fix it; `dars check` prints
//! them all, and a run refuses to start while any has `Severity::Error`),
//! reading TOML with every unknown key reported, paths resolved against the
//! file's folder, and TOML dates. A leaf: it imports no other dars module, so
//! every stage can use it without a cycle through `config`.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

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
/// and the first other error. `serde_ignored` reports the keys that `T` has
/// no field for (so the section types do not `deny_unknown_fields`); the
/// table's keys are read in order, so those before an error are reported
/// with it.
pub(crate) fn section<T: DeserializeOwned>(
    file: &std::path::Path,
    key: &str,
    value: toml::Value,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let mut unknown = Vec::new();
    let result = read::<T>(value, &mut unknown);
    report(file, key, unknown, fields_of::<T>(), result, problems)
}

/// As [`section`], for an internally tagged enum `T` whose table chose the
/// variant struct `V` by its `tag`. serde buffers the variant's keys before
/// it reads them, which `serde_ignored` cannot see into, so the table less
/// its tag is read once more as `V` for its unknown keys; `T` is read as
/// before, for the value and its errors.
pub(crate) fn tagged<T: DeserializeOwned, V: DeserializeOwned>(
    file: &std::path::Path,
    key: &str,
    tag: &str,
    value: toml::Value,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let mut unknown = Vec::new();
    let mut body = value.clone();
    if let Some(t) = body.as_table_mut() {
        t.remove(tag);
    }
    let _ = read::<V>(body, &mut unknown);
    let result = read::<T>(value, &mut unknown);
    report(file, key, unknown, fields_of::<V>(), result, problems)
}

/// Deserializes `value` as `T`, pushing onto `unknown` each key it has no
/// field for.
fn read<T: DeserializeOwned>(
    value: toml::Value,
    unknown: &mut Vec<String>,
) -> Result<T, serde_path_to_error::Error<toml::de::Error>> {
    let mut note = |p: serde_ignored::Path| unknown.push(p.to_string());
    serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut note))
}

/// The problems of one table: each unknown key (with the fields it could
/// have been), then the error, if any.
fn report<T>(
    file: &std::path::Path,
    key: &str,
    unknown: Vec<String>,
    fields: &[&str],
    result: Result<T, serde_path_to_error::Error<toml::de::Error>>,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let fix = match expected(fields) {
        Some(fields) => format!("remove it, or use {fields}"),
        None => "remove it".into(),
    };
    for u in unknown {
        problems.push(Problem::error(
            file,
            format!("{key}.{u}"),
            "unknown key",
            &fix,
        ));
    }
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            let at = e.path().to_string();
            let full_key = if at == "." || at.is_empty() {
                key.to_string()
            } else {
                format!("{key}.{at}")
            };
            let msg = e.inner().message().to_string();
            problems.push(Problem::error(file, &full_key, msg, fix_for(&full_key)));
            None
        }
    }
}

/// The field names serde's derive gives a struct `T` (what its
/// `deserialize_struct` is told); none for any other type.
pub(crate) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de;

    #[derive(Debug)]
    struct Fields(&'static [&'static str]);
    impl fmt::Display for Fields {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "fields {:?}", self.0)
        }
    }
    impl std::error::Error for Fields {}
    impl de::Error for Fields {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Fields(&[])
        }
    }

    struct Probe;
    impl<'de> de::Deserializer<'de> for Probe {
        type Error = Fields;
        fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Fields(fields)) => fields,
        Ok(_) => &[],
    }
}

/// The fields as serde's "unknown field" message lists them after
/// "expected " (`` `a` ``, `` `a` or `b` ``, `` one of `a`, `b`, `c` ``).
fn expected(fields: &[&str]) -> Option<String> {
    let quoted: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    match quoted.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [a, b] => Some(format!("{a} or {b}")),
        many => Some(format!("one of {}", many.join(", "))),
    }
}

fn fix_for(key: &str) -> String {
    format!("correct `{key}` as DESIGN.md and the README's configuration section describe")
}

impl From<Problem> for ConfigError {
    fn from(p: Problem) -> Self {
        Self { problems: vec![p] }
    }
}

/// Resolves `p` against the folder of the config file it came from.
/// `..` is folded lexically, so messages show `outbox/…`, not
/// `config/agreements/../../outbox/…`.
pub(crate) fn resolve(base: &Path, p: &Path) -> PathBuf {
    use std::path::Component;
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// A TOML date (`2026-01-01`) as a calendar date; times are refused.
/// (Through a `toml::Value` a date arrives as its text, so both forms are
/// accepted.)
pub(crate) fn toml_date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Datetime(toml::value::Datetime),
        Text(String),
    }
    let dt = match Repr::deserialize(d)? {
        Repr::Datetime(dt) => dt,
        Repr::Text(s) => s.parse::<toml::value::Datetime>().map_err(|_| {
            serde::de::Error::custom(format!("`{s}` is not a date like 2026-01-01"))
        })?,
    };
    match (dt.date, dt.time, dt.offset) {
        (Some(date), None, None) => NaiveDate::from_ymd_opt(
            i32::from(date.year),
            u32::from(date.month),
            u32::from(date.day),
        )
        .ok_or_else(|| serde::de::Error::custom("not a day of the calendar")),
        _ => Err(serde::de::Error::custom(
            "expected a bare date like 2026-01-01, without a time",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Two {
        a: u8,
        #[serde(default)]
        b: Option<u8>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(tag = "kind", rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Tagged {
        Two(Two),
    }

    fn value(text: &str) -> toml::Value {
        text.parse::<toml::Table>().unwrap().into()
    }

    fn keys(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn issue_16_every_unknown_key_is_named_and_the_table_still_read() {
        let file = Path::new("x.toml");
        let mut p = Vec::new();
        let two: Option<Two> = section(file, "t", value("z = 1\na = 1\ny = 2"), &mut p);
        assert!(two.is_some(), "{p:?}");
        assert_eq!(keys(&p), ["t.y", "t.z"]);
        assert!(p
            .iter()
            .all(|p| p.message == "unknown key" && p.fix == "remove it, or use `a` or `b`"));

        // An unknown key before an error is named with it.
        let mut p = Vec::new();
        let two: Option<Two> = section(file, "t", value("a = \"x\"\n0 = 1"), &mut p);
        assert!(two.is_none());
        assert_eq!(keys(&p), ["t.0", "t.a"]);
    }

    #[test]
    fn a_fix_lists_the_keys_in_plain_words() {
        let file = Path::new("x.toml");
        let mut p = Vec::new();
        report::<()>(
            file,
            "t",
            vec!["q".into()],
            &["a", "b", "c"],
            Ok(()),
            &mut p,
        );
        assert_eq!(p[0].fix, "remove it, or use one of `a`, `b`, `c`");
        let mut p = Vec::new();
        report::<()>(file, "t", vec!["q".into()], &["a"], Ok(()), &mut p);
        assert_eq!(p[0].fix, "remove it, or use `a`");
    }

    #[test]
    fn issue_16_unknown_keys_inside_an_internally_tagged_variant_are_named() {
        let file = Path::new("x.toml");
        let text = "kind = \"two\"\na = 1\nq = 1";
        // serde reads the variant from a buffer: nothing is reported...
        let mut p = Vec::new();
        let plain: Option<Tagged> = section(file, "o", value(text), &mut p);
        assert!(plain.is_some() && p.is_empty(), "{p:?}");
        // ...so `tagged` reads the table as the variant's struct as well.
        let t: Option<Tagged> = tagged::<_, Two>(file, "o", "kind", value(text), &mut p);
        assert!(t.is_some());
        assert_eq!(keys(&p), ["o.q"]);
        assert_eq!(fields_of::<Two>(), ["a", "b"]);
        assert!(fields_of::<Tagged>().is_empty());
    }

    #[test]
    fn paths_resolve_against_the_file_and_fold_dot_dot() {
        let r = |b: &str, p: &str| resolve(Path::new(b), Path::new(p));
        assert_eq!(
            r("config/agreements", "../../outbox"),
            PathBuf::from("outbox")
        );
        assert_eq!(
            r("config", "../testdata/site/x.parquet"),
            PathBuf::from("testdata/site/x.parquet")
        );
        assert_eq!(r("config", "/srv/outbox"), PathBuf::from("/srv/outbox"));
        assert_eq!(r("", "../x"), PathBuf::from("../x"));
        assert_eq!(r("/a", "../../x"), PathBuf::from("/x"));
        assert_eq!(r("a", ".."), PathBuf::from("."));
    }
}
