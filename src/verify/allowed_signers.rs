//! The OpenSSH `allowed_signers` file (ssh-keygen(1), "ALLOWED SIGNERS"):
//! which keys the recipient trusts to sign releases, as whom, for which
//! namespaces and when. Read with the same meaning `ssh-keygen -Y verify`
//! gives it, so that `dars verify` and the stock tool agree.
//!
//! Each line: `principals [options] keytype base64 [comment]`, where options
//! are `namespaces="…"`, `valid-after=…`, `valid-before=…` and
//! `cert-authority`. Lines dars cannot use are skipped with a reason, which
//! is reported if no line matches. Namespaces are matched with OpenSSH's
//! pattern lists ([`crate::openssh_pattern`]), as `ssh-keygen` does.

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use ssh_key::public::KeyData;
use ssh_key::PublicKey;

use crate::openssh_pattern;

/// One usable line of the file.
#[derive(Debug, Clone)]
pub(crate) struct AllowedSigner {
    /// 1-based line number in the file.
    pub line: usize,
    /// The principals field as written (`releases@example.nhs.uk`).
    pub principals: String,
    /// `namespaces="…"` patterns; `None` allows every namespace.
    pub namespaces: Option<String>,
    pub valid_after: Option<DateTime<Utc>>,
    pub valid_before: Option<DateTime<Utc>>,
    pub key: KeyData,
}

/// A line that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SkippedLine {
    pub line: usize,
    pub reason: String,
}

impl AllowedSigner {
    /// Whether `namespace` is allowed by this line's `namespaces=` option.
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespaces.as_deref().is_none_or(|patterns| {
            openssh_pattern::list_matches(namespace, patterns.split(',').map(str::trim))
        })
    }

    /// Why this line is not valid at `now`, if it is not.
    pub fn invalid_at(&self, now: DateTime<Utc>) -> Option<String> {
        if let Some(after) = self.valid_after.filter(|after| now < *after) {
            return Some(format!("it is valid only after {}", after.to_rfc3339()));
        }
        if let Some(before) = self.valid_before.filter(|before| now >= *before) {
            return Some(format!("it expired at {}", before.to_rfc3339()));
        }
        None
    }
}

/// Parses the whole file, keeping usable lines and the reasons others were
/// skipped. Blank lines and `#` comments are neither.
pub(crate) fn parse(text: &str) -> (Vec<AllowedSigner>, Vec<SkippedLine>) {
    let mut signers = Vec::new();
    let mut skipped = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match parse_line(line, trimmed) {
            Ok(signer) => signers.push(signer),
            Err(reason) => skipped.push(SkippedLine { line, reason }),
        }
    }
    (signers, skipped)
}

fn parse_line(line: usize, text: &str) -> Result<AllowedSigner, String> {
    let fields = split_fields(text)?;
    let mut fields = fields.iter().map(String::as_str);
    let principals = fields
        .next()
        .map(unquote)
        .ok_or("the line is empty")?
        .to_string();
    let mut next = fields.next().ok_or("no public key after the principals")?;
    let mut namespaces = None;
    let mut valid_after = None;
    let mut valid_before = None;
    if !is_key_type(next) {
        for option in split_outside_quotes(next, ',') {
            let (name, value) = match option.split_once('=') {
                Some((name, value)) => (name.to_ascii_lowercase(), Some(unquote(value))),
                None => (option.to_ascii_lowercase(), None),
            };
            match (name.as_str(), value) {
                ("cert-authority", None) => {
                    return Err(
                        "a cert-authority line trusts certificates, which dars does not use"
                            .to_string(),
                    )
                }
                ("namespaces", Some(v)) => namespaces = Some(v.to_string()),
                ("valid-after", Some(v)) => valid_after = Some(parse_time(v)?),
                ("valid-before", Some(v)) => valid_before = Some(parse_time(v)?),
                (name, _) => return Err(format!("unknown or malformed option `{name}`")),
            }
        }
        next = fields.next().ok_or("no public key after the options")?;
    }
    let key_type = next;
    let base64 = fields.next().ok_or("the public key has no key data")?;
    let key = PublicKey::from_openssh(&format!("{key_type} {base64}"))
        .map_err(|e| format!("the {key_type} public key cannot be read: {e}"))?;
    Ok(AllowedSigner {
        line,
        principals,
        namespaces,
        valid_after,
        valid_before,
        key: key.key_data().clone(),
    })
}

fn is_key_type(field: &str) -> bool {
    field.starts_with("ssh-") || field.starts_with("ecdsa-") || field.starts_with("sk-")
}

fn unquote(field: &str) -> &str {
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(field)
}

/// Splits on whitespace outside double quotes, keeping the quotes.
fn split_fields(text: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_whitespace() && !quoted {
            if !current.is_empty() {
                fields.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if quoted {
        return Err("a double quote is not closed".to_string());
    }
    if !current.is_empty() {
        fields.push(current);
    }
    Ok(fields)
}

fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `YYYYMMDD[HHMM[SS]]`, in UTC with a trailing `Z`, else local time, as
/// ssh-keygen reads `valid-after` and `valid-before`.
fn parse_time(value: &str) -> Result<DateTime<Utc>, String> {
    let bad = || format!("`{value}` is not a time like 20260101 or 202601011200Z");
    let (digits, utc) = match value.strip_suffix(['Z', 'z']) {
        Some(digits) => (digits, true),
        None => (value, false),
    };
    let naive = match digits.len() {
        8 => NaiveDate::parse_from_str(digits, "%Y%m%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0)),
        12 => NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M").ok(),
        14 => NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S").ok(),
        _ => None,
    }
    .ok_or_else(bad)?;
    if utc {
        Ok(naive.and_utc())
    } else {
        Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICFpVf/9LEu1DHt5MZ2uYl42GggVTqXUV4TjdmYuzDBY";

    #[test]
    fn reads_plain_and_optioned_lines_and_skips_comments() {
        let text = format!(
            "# comment\n\nalice@example.org {KEY} a comment\n\
             bob@example.org,carol@example.org namespaces=\"dars-manifest,git\",valid-before=\"20991231Z\" {KEY}\n"
        );
        let (signers, skipped) = parse(&text);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(signers.len(), 2);
        assert_eq!(signers[0].line, 3);
        assert_eq!(signers[0].principals, "alice@example.org");
        assert!(signers[0].allows_namespace("anything"));
        assert_eq!(signers[1].principals, "bob@example.org,carol@example.org");
        assert!(signers[1].allows_namespace("dars-manifest"));
        assert!(!signers[1].allows_namespace("file"));
        assert!(signers[1].invalid_at(Utc::now()).is_none());
    }

    #[test]
    fn skips_lines_it_cannot_use_with_a_reason() {
        let text = format!(
            "ca@example.org cert-authority {KEY}\n\
             x@example.org frobnicate {KEY}\n\
             y@example.org ssh-ed25519 AAAAnotbase64\n\
             z@example.org namespaces=\"a\n"
        );
        let (signers, skipped) = parse(&text);
        assert!(signers.is_empty());
        let lines: Vec<usize> = skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [1, 2, 3, 4]);
        assert!(skipped[0].reason.contains("cert-authority"));
        assert!(skipped[1].reason.contains("frobnicate"));
    }

    #[test]
    fn validity_window() {
        let text =
            format!("a@x valid-after=\"20990101Z\" {KEY}\nb@x valid-before=20000101 {KEY}\n");
        let (signers, skipped) = parse(&text);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert!(signers[0].invalid_at(Utc::now()).unwrap().contains("after"));
        assert!(signers[1]
            .invalid_at(Utc::now())
            .unwrap()
            .contains("expired"));
    }

    #[test]
    fn namespace_patterns_follow_openssh() {
        let allows = |patterns: &str| {
            let (signers, skipped) = parse(&format!("a@x namespaces=\"{patterns}\" {KEY}\n"));
            assert!(skipped.is_empty(), "{skipped:?}");
            signers[0].allows_namespace("dars-manifest")
        };
        assert!(allows("dars-*"));
        assert!(allows("git,dars-manifest"));
        assert!(allows("git, dars-manifest"), "spaces around a pattern");
        assert!(!allows("dars-*,!dars-manifest"));
        assert!(!allows("dars-manifes?x"));
        assert!(allows("?ars-manifes?"));
        assert!(!allows(""));
    }
}
