//! The release manifest: what was sealed, for whom and under which
//! agreement, with the release counts after suppression; and its signed
//! form, written as `manifest.json` then `manifest.json.sig`.
//!
//! The JSON is byte-for-byte reproducible from the struct (declared field
//! order, sorted keys inside `counts`, two-space indent, trailing newline)
//! because its SHA-256 goes into the ledger and its bytes are what is signed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    sha256_hex, PackageError, SealedFile, SigningKey, MANIFEST_FILE, MANIFEST_NAMESPACE,
    SIGNATURE_FILE,
};
use crate::workdir::write_private;

/// `manifest.json`. Unknown fields are refused when reading, so that a
/// verifier never passes a manifest that says more than it understands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The DSA reference (`DARS-NIC-000001-DEMO1-01`).
    pub agreement: String,
    pub run_id: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub tool_version: String,
    /// The ledger entry this release was made on top of: the custodian's
    /// ledger must hold it, and this release's own entry after it. A
    /// recipient's copy of the signed manifest so anchors the custodian's
    /// ledger from outside (`dars ledger verify --release DIR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_head: Option<LedgerHead>,
    /// The objection types this release applied and those the agreement
    /// exempts, with the legal basis it states for the exemption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objections: Option<crate::objections::ObjectionsSection>,
    /// Where the cohort's linkage came from when it was not linked by this
    /// run: another agreement's released linkage (`[cohort] reuse`).
    /// Absent when the run linked the cohort itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_linkage: Option<ReusedLinkage>,
    pub files: Vec<ManifestFile>,
    /// Release counts after suppression, by name.
    pub counts: BTreeMap<String, Value>,
}

/// A released linkage taken by another agreement of the same organisation
/// (`[cohort] reuse`): the release it came from, as its ledger entry
/// records it, and the SHA-256 of the kept linkage file that entry holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReusedLinkage {
    /// The agreement whose release it was (`DARS-NIC-…`).
    pub agreement: String,
    pub run_id: String,
    /// That release's ledger entry.
    pub ledger_seq: u64,
    /// SHA-256 of the linkage file, as that entry records it.
    pub sha256: String,
}

/// A point in the ledger: entry `seq` (0 for an empty ledger) and the
/// SHA-256 of that entry's line, newline included (64 zeros for seq 0).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LedgerHead {
    pub seq: u64,
    pub sha256: String,
}

/// One encrypted file of a release.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// File name inside the release (`episodes.parquet.age`).
    pub name: String,
    /// Size of the encrypted file.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the encrypted file.
    pub sha256: String,
    /// Rows in the plaintext table.
    pub rows: u64,
    /// `records` or `aggregate`.
    pub kind: String,
    /// The output's period: only rows whose `column` falls in
    /// `from..=to` (both included) are in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<crate::period::Period>,
    /// An incremental output's window: the rows of the period new since
    /// the agreement's last release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<crate::period::Window>,
}

impl ManifestFile {
    /// The manifest line for a file [`super::seal`] wrote.
    pub fn from_sealed(sealed: &SealedFile, rows: u64, kind: &str) -> Self {
        Self {
            name: sealed.name.clone(),
            bytes: sealed.bytes,
            sha256: sealed.sha256.clone(),
            rows,
            kind: kind.to_string(),
            period: None,
            window: None,
        }
    }
}

impl Manifest {
    /// The counts a manifest carries. It is signed, not encrypted, and
    /// feeds the public register, so it counts each aggregate's cells and
    /// those suppressed (what a recipient checks a table against), never
    /// people: the cohort, linkage, objectors and persons released stay in
    /// the work directory's summary.
    pub fn table_counts<'a>(
        tables: impl IntoIterator<Item = (&'a str, &'a crate::suppress::SuppressionCounts)>,
    ) -> BTreeMap<String, Value> {
        let mut counts = BTreeMap::new();
        for (name, s) in tables {
            counts.insert(format!("{name}.cells"), Value::from(s.cells));
            counts.insert(
                format!("{name}.cells_suppressed"),
                Value::from(s.suppressed()),
            );
        }
        counts
    }

    /// Pretty JSON with a stable key order and a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut stable = self.clone();
        for value in stable.counts.values_mut() {
            sort_keys(value);
        }
        // Serialising plain strings, integers and `Value`s (whose map keys
        // are strings and whose numbers are finite) cannot fail.
        let mut json =
            serde_json::to_vec_pretty(&stable).expect("a Manifest always serialises to JSON");
        json.push(b'\n');
        json
    }

    /// Reads `manifest.json` bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Signs the exact bytes of [`Manifest::to_json`] in the
    /// [`MANIFEST_NAMESPACE`].
    pub fn sign(&self, key: &SigningKey) -> SignedManifest {
        let json = self.to_json();
        let signature = key.sign_sshsig(&json, MANIFEST_NAMESPACE);
        SignedManifest {
            sha256: sha256_hex(&json),
            json,
            signature,
        }
    }
}

/// Recursively sorts object keys, so that the output does not depend on
/// whether serde_json preserves insertion order in this build.
fn sort_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, mut inner) in entries {
                sort_keys(&mut inner);
                map.insert(key, inner);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

/// A manifest with its signature, ready to be written or pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedManifest {
    /// The bytes of `manifest.json`.
    pub json: Vec<u8>,
    /// The armored SSHSIG of `json`: the bytes of `manifest.json.sig`.
    pub signature: String,
    /// Lower-case hex SHA-256 of `json`, for the ledger.
    pub sha256: String,
}

impl SignedManifest {
    /// Writes `dir/manifest.json`, then `dir/manifest.json.sig`, each
    /// atomically with mode 0600: the signature appears last, so a
    /// directory with a signature holds a complete release.
    pub fn write_to(&self, dir: &Path) -> Result<(), PackageError> {
        for (name, bytes) in [
            (MANIFEST_FILE, self.json.as_slice()),
            (SIGNATURE_FILE, self.signature.as_bytes()),
        ] {
            let path = dir.join(name);
            write_private(&path, bytes).map_err(|source| PackageError::Write { path, source })?;
        }
        Ok(())
    }
}
