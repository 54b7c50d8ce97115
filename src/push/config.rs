//! The agreement's `[release]` table: the recipients, the destination
//! (`file://` or `sftp://`) and, for sftp, the pinned `known_hosts` and the
//! client `identity`; and the problems `dars check` finds in it without
//! connecting anywhere: unusable recipients, a `file://` directory that
//! does not exist, missing sftp key files.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::config_file::Problem;

/// `file:///path` or `sftp://user@host:port/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Local(PathBuf),
    Sftp {
        user: String,
        host: String,
        port: u16,
        path: String,
    },
}

impl Destination {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("file://") {
            if rest.is_empty() {
                return Err("file:// needs a path, e.g. file:///srv/outbox or file://outbox (relative to the agreement)".into());
            }
            return Ok(Self::Local(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("sftp://") {
            let (authority, path) = rest
                .split_once('/')
                .ok_or("sftp:// needs a path after the host")?;
            let (user, hostport) = authority
                .split_once('@')
                .ok_or("sftp:// needs a user, as sftp://user@host:port/path")?;
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| format!("`{p}` is not a port"))?,
                ),
                None => (hostport, 22),
            };
            if user.is_empty() || host.is_empty() {
                return Err("sftp:// needs a user and a host".into());
            }
            return Ok(Self::Sftp {
                user: user.into(),
                host: host.into(),
                port,
                path: format!("/{path}"),
            });
        }
        Err(format!("`{s}` is neither file:// nor sftp://"))
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(p) => write!(f, "file://{}", p.display()),
            Self::Sftp {
                user,
                host,
                port,
                path,
            } => write!(f, "sftp://{user}@{host}:{port}{path}"),
        }
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `[release]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseConfig {
    /// age X25519 (`age1…`) or `ssh-ed25519` public keys.
    pub recipients: Vec<String>,
    pub destination: Destination,
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    #[serde(default)]
    pub identity: Option<PathBuf>,
}

impl ReleaseConfig {
    /// Every problem in the table, each with its key and fix. `base` is
    /// the agreement's folder, which relative paths start from.
    pub fn problems(&self, file: &Path, base: &Path) -> Vec<Problem> {
        let mut p = self.recipient_problems(file);
        match &self.destination {
            Destination::Local(dir) => p.extend(local_destination_problem(
                file,
                &crate::config_file::resolve(base, dir),
            )),
            Destination::Sftp { .. } => p.extend(self.sftp_key_problems(file, base)),
        }
        p
    }

    fn recipient_problems(&self, file: &Path) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.recipients.is_empty() {
            p.push(Problem::error(
                file,
                "release.recipients",
                "is empty",
                "list the recipients' age1… or ssh-ed25519 public keys",
            ));
        }
        for (i, r) in self.recipients.iter().enumerate() {
            if let Err(e) = crate::package::Recipients::parse(std::slice::from_ref(r)) {
                p.push(Problem::error(
                    file,
                    format!("release.recipients[{i}]"),
                    format!("is not a usable public key: {e}"),
                    "paste the recipient's age1… line or ssh-ed25519 public key",
                ));
            }
        }
        p
    }

    /// An sftp destination needs both key files, and they must exist.
    fn sftp_key_problems(&self, file: &Path, base: &Path) -> Vec<Problem> {
        let fix = "point it at the file (relative to this agreement)";
        [
            ("release.known_hosts", &self.known_hosts),
            ("release.identity", &self.identity),
        ]
        .into_iter()
        .filter_map(|(key, path)| match path {
            None => Some(Problem::error(
                file,
                key,
                "is required for an sftp:// destination",
                fix,
            )),
            Some(path) => {
                let resolved = crate::config_file::resolve(base, path);
                (!resolved.is_file()).then(|| {
                    Problem::error(file, key, format!("no file at {}", resolved.display()), fix)
                })
            }
        })
        .collect()
    }

    /// Resolves the relative paths against the agreement's folder.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Destination::Local(p) = &self.destination {
            self.destination = Destination::Local(crate::config_file::resolve(base, p));
        }
        self.known_hosts = self
            .known_hosts
            .as_ref()
            .map(|p| crate::config_file::resolve(base, p));
        self.identity = self
            .identity
            .as_ref()
            .map(|p| crate::config_file::resolve(base, p));
    }
}

/// A `file://` destination must be an existing directory: a release is
/// never pushed into a folder dars would have to invent, where a typo in
/// the path would send it.
fn local_destination_problem(file: &Path, dir: &Path) -> Option<Problem> {
    let (message, fix) = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return None,
        Ok(_) => (
            format!("{} is not a directory", dir.display()),
            "point it at the directory releases go to (file://PATH, relative to this agreement)"
                .to_string(),
        ),
        Err(_) => (
            format!("no directory at {}", dir.display()),
            format!(
                "create it (mkdir -p {}) or correct the path (file://PATH, relative to this agreement)",
                dir.display()
            ),
        ),
    };
    Some(Problem::error(file, "release.destination", message, fix))
}
