//! OpenSSH's pattern lists (`match.c`; ssh_config(5), "PATTERNS"): the one
//! matcher behind both OpenSSH files dars reads, the host names of a
//! `known_hosts` line (push) and the `namespaces="…"` of an
//! `allowed_signers` line (verify).
//!
//! A pattern is a glob where `*` matches any run of characters and `?`
//! exactly one; a leading `!` negates it. A list matches a name when some
//! pattern matches it and no negated one does: a negated match refuses
//! outright, whatever else matched. Matching is byte for byte and case
//! sensitive; a caller that wants OpenSSH's case-folding for host names
//! lowercases both sides first.
//!
//! It depends on nothing else in dars, so the two users share it without
//! the verifier depending on the push or the other way round.

/// How one pattern of a list that matched a name counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    Positive,
    Negated,
}

/// One pattern of a list: a glob, negated by a leading `!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    negated: bool,
    glob: String,
}

impl Pattern {
    pub fn parse(pattern: &str) -> Self {
        match pattern.strip_prefix('!') {
            Some(glob) => Self {
                negated: true,
                glob: glob.to_string(),
            },
            None => Self {
                negated: false,
                glob: pattern.to_string(),
            },
        }
    }

    /// The same pattern with its glob lowercased, for names OpenSSH
    /// compares without case (host names).
    pub fn lowercased(self) -> Self {
        Self {
            glob: self.glob.to_ascii_lowercase(),
            ..self
        }
    }

    /// How this pattern counts for `name`: `None` if its glob does not
    /// match it.
    pub fn sign_for(&self, name: &str) -> Option<Sign> {
        glob(self.glob.as_bytes(), name.as_bytes()).then_some(if self.negated {
            Sign::Negated
        } else {
            Sign::Positive
        })
    }
}

/// OpenSSH's rule for a list, given the signs of the patterns that matched
/// a name, in list order: some matched and none of them is negated.
pub fn decide(matched: impl IntoIterator<Item = Sign>) -> bool {
    let mut positive = false;
    for sign in matched {
        match sign {
            Sign::Negated => return false,
            Sign::Positive => positive = true,
        }
    }
    positive
}

/// Whether `name` matches the list of patterns (OpenSSH's
/// `match_pattern_list` without case-folding). An empty list matches
/// nothing.
pub fn list_matches<'a>(name: &str, patterns: impl IntoIterator<Item = &'a str>) -> bool {
    decide(
        patterns
            .into_iter()
            .filter_map(|p| Pattern::parse(p).sign_for(name)),
    )
}

/// `*` and `?` over bytes, as OpenSSH's `match_pattern`.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.split_first(), text.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            glob(rest, text) || text.split_first().is_some_and(|(_, t)| glob(pattern, t))
        }
        (Some((b'?', rest)), Some((_, t))) => glob(rest, t),
        (Some((p, rest)), Some((c, t))) if p == c => glob(rest, t),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(name: &str, list: &str) -> bool {
        list_matches(name, list.split(','))
    }

    #[test]
    fn globs_match_stars_and_single_characters() {
        for (pattern, text, expected) in [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything at all", true),
            ("?", "", false),
            ("?", "a", true),
            ("?", "ab", false),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("*.nhs.uk", "a.nhs.uk", true),
            ("*.nhs.uk", "nhs.uk", false),
            ("*a*a", "banana", true),
            ("*a*b", "banana", false),
            ("dars-manifes?x", "dars-manifest", false),
            ("?ars-manifes?", "dars-manifest", true),
            ("[127.0.0.1]:2222", "[127.0.0.1]:2222", true),
            ("[127.0.0.1]:2222", "[127.0.0.1]:2223", false),
            ("[127.0.0.?]:*", "[127.0.0.1]:2222", true),
        ] {
            assert_eq!(
                glob(pattern.as_bytes(), text.as_bytes()),
                expected,
                "{pattern} against {text}"
            );
        }
    }

    #[test]
    fn matching_is_case_sensitive_unless_the_caller_folds_case() {
        assert!(!matches("sftp.example.org", "Sftp.Example.org"));
        let folded = Pattern::parse("Sftp.Example.org").lowercased();
        assert_eq!(folded.sign_for("sftp.example.org"), Some(Sign::Positive));
        let negated = Pattern::parse("!*.EXAMPLE.org").lowercased();
        assert_eq!(negated.sign_for("bad.example.org"), Some(Sign::Negated));
        assert_eq!(negated.sign_for("bad.example.com"), None);
    }

    /// The host lists of `known_hosts` lines.
    #[test]
    fn host_lists_match_like_known_hosts() {
        let list = "sftp.example.org,*.nhs.uk,!bad.nhs.uk";
        assert!(matches("sftp.example.org", list));
        assert!(matches("a.nhs.uk", list));
        assert!(!matches("bad.nhs.uk", list), "a negated match refuses");
        assert!(!matches("example.org", list));
        // Negation wins wherever it stands in the list.
        assert!(!matches("bad.nhs.uk", "!bad.nhs.uk,*.nhs.uk"));
        // A negated pattern alone lets nothing in.
        assert!(!matches("good.nhs.uk", "!bad.nhs.uk"));
        assert!(matches("[127.0.0.1]:2222", "[127.0.0.1]:2222"));
        assert!(!matches("127.0.0.1", "[127.0.0.1]:2222"));
    }

    /// The `namespaces="…"` of `allowed_signers` lines.
    #[test]
    fn namespace_lists_match_like_allowed_signers() {
        assert!(matches("dars-manifest", "dars-*"));
        assert!(matches("dars-manifest", "git,dars-manifest"));
        assert!(!matches("dars-manifest", "dars-*,!dars-manifest"));
        assert!(!matches("dars-manifest", "dars-manifes?x"));
        assert!(matches("dars-manifest", "?ars-manifes?"));
        assert!(!matches("dars-manifest", ""));
        assert!(!matches("dars-manifest", "file,git"));
    }

    #[test]
    fn the_rule_needs_a_positive_match_and_no_negated_one() {
        use Sign::*;
        assert!(!decide([]));
        assert!(decide([Positive]));
        assert!(decide([Positive, Positive]));
        assert!(!decide([Negated]));
        assert!(!decide([Positive, Negated]));
        assert!(!decide([Negated, Positive]));
    }
}
