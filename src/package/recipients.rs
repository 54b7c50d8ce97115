//! The recipients a release is encrypted to: age X25519 keys (`age1…`) and
//! OpenSSH `ssh-ed25519` public keys, parsed once from the agreement so that
//! a bad key fails `dars check` rather than a run halfway through.

use std::fmt;
use std::str::FromStr;

use super::PackageError;

/// Parsed age recipients, in the order of the agreement. Never empty.
pub struct Recipients {
    keys: Vec<Recipient>,
}

enum Recipient {
    X25519(age::x25519::Recipient),
    SshEd25519(age::ssh::Recipient),
}

impl Recipient {
    fn as_age(&self) -> &dyn age::Recipient {
        match self {
            Recipient::X25519(r) => r,
            Recipient::SshEd25519(r) => r,
        }
    }
}

impl fmt::Display for Recipient {
    /// The public key in canonical form, without any comment.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::X25519(r) => write!(f, "{r}"),
            Recipient::SshEd25519(r) => write!(f, "{r}"),
        }
    }
}

impl Recipients {
    /// Parses `age1…` and `ssh-ed25519 AAAA… [comment]` keys. Errors name the
    /// position of the bad key (`recipients[2]`) and never echo its text,
    /// because what was pasted there may be a secret key.
    pub fn parse(keys: &[String]) -> Result<Self, PackageError> {
        if keys.is_empty() {
            return Err(PackageError::NoRecipients);
        }
        let keys = keys
            .iter()
            .enumerate()
            .map(|(index, key)| parse_one(index, key.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys })
    }

    /// Every problem with `keys` at once, each naming its real index, for
    /// `dars check`; empty when [`Recipients::parse`] would succeed.
    pub fn problems(keys: &[String]) -> Vec<PackageError> {
        if keys.is_empty() {
            return vec![PackageError::NoRecipients];
        }
        keys.iter()
            .enumerate()
            .filter_map(|(index, key)| parse_one(index, key.trim()).err())
            .collect()
    }

    /// How many recipients the release is encrypted to.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: [`Recipients::parse`] refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The public keys in canonical form (no comments), for reports.
    pub fn public_keys(&self) -> Vec<String> {
        self.keys.iter().map(ToString::to_string).collect()
    }

    pub(super) fn iter_age(&self) -> impl Iterator<Item = &dyn age::Recipient> {
        self.keys.iter().map(Recipient::as_age)
    }
}

impl fmt::Debug for Recipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.public_keys()).finish()
    }
}

fn parse_one(index: usize, key: &str) -> Result<Recipient, PackageError> {
    let invalid = |reason: &str| PackageError::InvalidRecipient {
        index,
        reason: reason.to_string(),
    };
    if key.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-")
        || key.to_ascii_uppercase().starts_with("AGE-PLUGIN-")
        || key.contains("PRIVATE KEY")
    {
        return Err(PackageError::SecretKeyAsRecipient { index });
    }
    if key.is_empty() {
        return Err(invalid("it is empty"));
    }
    if key.starts_with("age1") {
        // age's own messages are static strings and never contain the key.
        return age::x25519::Recipient::from_str(key)
            .map(Recipient::X25519)
            .map_err(|reason| {
                if reason == "incorrect HRP" {
                    unsupported(index, "age plugin")
                } else {
                    invalid(reason)
                }
            });
    }
    let key_type = key.split_whitespace().next().unwrap_or_default();
    match key_type {
        "ssh-ed25519" => match age::ssh::Recipient::from_str(key) {
            Ok(r @ age::ssh::Recipient::SshEd25519(..)) => Ok(Recipient::SshEd25519(r)),
            Ok(_) => Err(invalid("the key data is not an Ed25519 key")),
            Err(_) => Err(invalid("the base64 key data is damaged")),
        },
        // The kind is a fixed string, never the pasted text.
        "ssh-rsa" => Err(unsupported(index, "ssh-rsa")),
        "ssh-dss" => Err(unsupported(index, "ssh-dss")),
        t if t.contains("-cert-v01@openssh.com") => Err(unsupported(index, "OpenSSH certificate")),
        "sk-ssh-ed25519@openssh.com" | "sk-ecdsa-sha2-nistp256@openssh.com" => {
            Err(unsupported(index, "security key (FIDO)"))
        }
        "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => {
            Err(unsupported(index, "ECDSA"))
        }
        _ => Err(invalid("unrecognised format")),
    }
}

fn unsupported(index: usize, kind: &'static str) -> PackageError {
    PackageError::UnsupportedRecipient { index, kind }
}
