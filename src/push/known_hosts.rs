//! Host key pinning: the agreement's `known_hosts` file decides which
//! server may receive a release.
//!
//! The file is read the way OpenSSH reads it (`sshd(8)`, "SSH_KNOWN_HOSTS
//! FILE FORMAT"), so a file made with `ssh-keyscan -p PORT HOST` works as
//! it is: plain and hashed (`|1|salt|hash`) host names, `[host]:port` for a
//! port other than 22, `*`/`?` wildcards and `!` negation (OpenSSH's
//! pattern lists, [`crate::openssh_pattern`]), `@revoked`.
//! Keys are compared as wire-format blobs, so every key type OpenSSH writes
//! is understood without parsing it. A `@cert-authority` line is not
//! trusted: dars pins keys, not certificate authorities, so such a line
//! never lets a server in.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;

use crate::openssh_pattern::{self, Sign};

/// The name a host is looked up under: `host` on port 22, `[host]:port`
/// otherwise, as OpenSSH writes it.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_ascii_lowercase()
    } else {
        format!("[{}]:{port}", host.to_ascii_lowercase())
    }
}

/// `SHA256:…`, the fingerprint `ssh-keygen -lf` and `ssh` print.
pub fn fingerprint(blob: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, blob);
    format!("SHA256:{}", STANDARD_NO_PAD.encode(digest.as_ref()))
}

/// A pinned key as the error messages show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub key_type: String,
    pub fingerprint: String,
    pub line: usize,
}

impl fmt::Display for Pinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (line {})",
            self.key_type, self.fingerprint, self.line
        )
    }
}

/// What the file says about the key a server offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A pinned key for this host equals the offered key.
    Trusted,
    /// The host is pinned, to other keys.
    Mismatch { pinned: Vec<Pinned> },
    /// Nothing is pinned for this host.
    Unknown,
    /// The offered key is marked `@revoked`.
    Revoked { line: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error("cannot read it: {0}")]
    Unreadable(#[source] std::io::Error),
    #[error("line {line}: {reason}")]
    BadLine { line: usize, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Revoked,
    CertAuthority,
}

/// One host name of a line: a pattern (lowercased, as OpenSSH compares
/// host names), or `|1|salt|hash`, an HMAC-SHA1 of the name.
#[derive(Debug, Clone)]
enum Pattern {
    Glob(openssh_pattern::Pattern),
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

impl Pattern {
    fn sign_for(&self, name: &str) -> Option<Sign> {
        match self {
            Self::Glob(p) => p.sign_for(name),
            Self::Hashed { salt, hash } => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
                ring::hmac::verify(&key, name.as_bytes(), hash)
                    .is_ok()
                    .then_some(Sign::Positive)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    marker: Option<Marker>,
    patterns: Vec<Pattern>,
    key_type: String,
    blob: Vec<u8>,
    line: usize,
}

/// A parsed `known_hosts` file.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    pub path: PathBuf,
    entries: Vec<Entry>,
}

impl KnownHosts {
    pub fn load(path: &Path) -> Result<Self, KnownHostsError> {
        let text = std::fs::read_to_string(path).map_err(KnownHostsError::Unreadable)?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, KnownHostsError> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            entries.push(parse_line(trimmed, line)?);
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// Key types pinned for this host, in file order, without repeats: the
    /// host key algorithms to ask the server for, so that a server with
    /// several host keys shows the one that was pinned.
    pub fn pinned_key_types(&self, host: &str, port: u16) -> Vec<String> {
        let name = host_name(host, port);
        let mut types: Vec<String> = Vec::new();
        for e in self.entries.iter().filter(|e| e.marker.is_none()) {
            if matches_host(&e.patterns, &name) && !types.contains(&e.key_type) {
                types.push(e.key_type.clone());
            }
        }
        types
    }

    pub fn check(&self, host: &str, port: u16, offered: &[u8]) -> Verdict {
        // A revoked key is refused whatever host line it sits on.
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.marker == Some(Marker::Revoked) && e.blob == offered)
        {
            return Verdict::Revoked { line: e.line };
        }
        let name = host_name(host, port);
        let pinned: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.marker.is_none() && matches_host(&e.patterns, &name))
            .collect();
        if pinned.iter().any(|e| e.blob == offered) {
            Verdict::Trusted
        } else if pinned.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Mismatch {
                pinned: pinned
                    .iter()
                    .map(|e| Pinned {
                        key_type: e.key_type.clone(),
                        fingerprint: fingerprint(&e.blob),
                        line: e.line,
                    })
                    .collect(),
            }
        }
    }
}

/// The host key algorithms that may carry a key of this type.
pub fn algorithms_for(key_type: &str) -> Vec<&str> {
    match key_type {
        "ssh-rsa" => vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        other => vec![other],
    }
}

/// The key type written inside a wire-format key blob.
pub fn blob_key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4usize.checked_add(len)?)?).ok()
}

fn parse_line(text: &str, line: usize) -> Result<Entry, KnownHostsError> {
    let bad = |reason: &str| KnownHostsError::BadLine {
        line,
        reason: reason.to_string(),
    };
    let mut fields = text.split_whitespace();
    let mut first = fields.next().ok_or_else(|| bad("empty"))?;
    let marker = match first {
        "@revoked" => Some(Marker::Revoked),
        "@cert-authority" => Some(Marker::CertAuthority),
        m if m.starts_with('@') => {
            return Err(bad(&format!(
                "unknown marker `{m}` (OpenSSH knows @revoked and @cert-authority)"
            )))
        }
        _ => None,
    };
    if marker.is_some() {
        first = fields
            .next()
            .ok_or_else(|| bad("no host names after the marker"))?;
    }
    let patterns = first
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            parse_pattern(p).ok_or_else(|| bad(&format!("`{p}` is a damaged hashed host name")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let key_type = fields
        .next()
        .ok_or_else(|| bad("no key type: expected `HOSTS KEYTYPE BASE64`"))?;
    let data = fields
        .next()
        .ok_or_else(|| bad("no key data: expected `HOSTS KEYTYPE BASE64`"))?;
    let blob = STANDARD
        .decode(data)
        .map_err(|_| bad("the key data is not base64"))?;
    if blob_key_type(&blob) != Some(key_type) {
        return Err(bad(&format!("the key data is not a `{key_type}` key")));
    }
    Ok(Entry {
        marker,
        patterns,
        key_type: key_type.to_string(),
        blob,
        line,
    })
}

fn parse_pattern(p: &str) -> Option<Pattern> {
    if let Some(rest) = p.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        return Some(Pattern::Hashed {
            salt: STANDARD.decode(salt).ok()?,
            hash: STANDARD.decode(hash).ok()?,
        });
    }
    Some(Pattern::Glob(
        openssh_pattern::Pattern::parse(p).lowercased(),
    ))
}

/// OpenSSH's rule: some pattern matches and no negated pattern does.
fn matches_host(patterns: &[Pattern], name: &str) -> bool {
    openssh_pattern::decide(patterns.iter().filter_map(|p| p.sign_for(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Wire-format blobs of two ssh-ed25519 keys (type string + 32 bytes).
    fn blob(fill: u8) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&11u32.to_be_bytes());
        b.extend_from_slice(b"ssh-ed25519");
        b.extend_from_slice(&32u32.to_be_bytes());
        b.extend_from_slice(&[fill; 32]);
        b
    }

    fn line(hosts: &str, fill: u8) -> String {
        format!(
            "{hosts} ssh-ed25519 {} comment\n",
            STANDARD.encode(blob(fill))
        )
    }

    fn file(text: &str) -> KnownHosts {
        KnownHosts::parse(Path::new("known_hosts"), text).unwrap()
    }

    #[test]
    fn a_pinned_key_is_trusted_only_for_its_host_and_port() {
        let k = file(&format!("# pinned\n\n{}", line("[127.0.0.1]:2222", 1)));
        assert_eq!(k.check("127.0.0.1", 2222, &blob(1)), Verdict::Trusted);
        assert_eq!(k.check("127.0.0.1", 2223, &blob(1)), Verdict::Unknown);
        assert_eq!(k.check("127.0.0.1", 22, &blob(1)), Verdict::Unknown);
        match k.check("127.0.0.1", 2222, &blob(2)) {
            Verdict::Mismatch { pinned } => {
                assert_eq!(pinned.len(), 1);
                assert_eq!(pinned[0].line, 3);
                assert_eq!(pinned[0].fingerprint, fingerprint(&blob(1)));
            }
            v => panic!("{v:?}"),
        }
        assert_eq!(k.pinned_key_types("127.0.0.1", 2222), ["ssh-ed25519"]);
        assert!(k.pinned_key_types("127.0.0.1", 22).is_empty());
    }

    #[test]
    fn port_22_hosts_wildcards_negation_and_case() {
        let k = file(&(line("Sftp.Example.org,*.nhs.uk,!bad.nhs.uk", 1)));
        assert_eq!(k.check("sftp.example.org", 22, &blob(1)), Verdict::Trusted);
        assert_eq!(k.check("a.nhs.uk", 22, &blob(1)), Verdict::Trusted);
        assert_eq!(k.check("bad.nhs.uk", 22, &blob(1)), Verdict::Unknown);
        assert_eq!(k.check("a.nhs.uk", 2222, &blob(1)), Verdict::Unknown);
    }

    #[test]
    fn hashed_host_names_match_like_openssh() {
        // `|1|salt|HMAC-SHA1(salt, "[127.0.0.1]:2222")`, computed here.
        let salt = [7u8; 20];
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        let tag = ring::hmac::sign(&key, b"[127.0.0.1]:2222");
        let hosts = format!(
            "|1|{}|{}",
            STANDARD.encode(salt),
            STANDARD.encode(tag.as_ref())
        );
        let k = file(&line(&hosts, 3));
        assert_eq!(k.check("127.0.0.1", 2222, &blob(3)), Verdict::Trusted);
        assert_eq!(k.check("127.0.0.2", 2222, &blob(3)), Verdict::Unknown);
    }

    #[test]
    fn revoked_and_certificate_authority_lines_never_let_a_server_in() {
        let text = format!(
            "@revoked * ssh-ed25519 {}\n@cert-authority * ssh-ed25519 {}\n{}",
            STANDARD.encode(blob(1)),
            STANDARD.encode(blob(2)),
            line("example.org", 1)
        );
        let k = file(&text);
        assert_eq!(
            k.check("example.org", 22, &blob(1)),
            Verdict::Revoked { line: 1 }
        );
        assert!(matches!(
            k.check("example.org", 22, &blob(2)),
            Verdict::Mismatch { .. }
        ));
        assert_eq!(k.check("other.org", 22, &blob(2)), Verdict::Unknown);
    }

    #[test]
    fn damaged_lines_are_errors_with_their_line() {
        for (text, needle) in [
            ("example.org ssh-ed25519\n", "no key data"),
            ("example.org ssh-ed25519 !!!notbase64\n", "not base64"),
            ("@trusted example.org ssh-ed25519 AAAA\n", "unknown marker"),
            ("|1|x example.org ssh-ed25519 AAAA\n", "hashed"),
        ] {
            let err = KnownHosts::parse(Path::new("k"), &format!("# c\n{text}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("line 2") && err.contains(needle), "{err}");
        }
        let rsa_named = format!("example.org ssh-rsa {}\n", STANDARD.encode(blob(1)));
        let err = KnownHosts::parse(Path::new("k"), &rsa_named).unwrap_err();
        assert!(err.to_string().contains("not a `ssh-rsa` key"), "{err}");
    }

    #[test]
    fn fingerprints_are_what_ssh_keygen_prints() {
        // A public key (no private half kept) and what `ssh-keygen -lf` printed for it.
        let pubkey = "AAAAC3NzaC1lZDI1NTE5AAAAIE0L7wYPtCWY66b5OxBBx+72jMD2YbyrdO/WutMynMjs";
        let b = STANDARD.decode(pubkey).unwrap();
        assert_eq!(blob_key_type(&b), Some("ssh-ed25519"));
        assert_eq!(
            fingerprint(&b),
            "SHA256:SvGrse7gxIXZxindTxdA1vl7x+HXup/NZhJrTzgjlFo"
        );
    }
}
