//! Release records: what a run keeps of each release before it delivers
//! it, so that a release that left is never left unrecorded.
//!
//! `WORK/REFERENCE/releases/RUN_ID/` holds the signed `manifest.json`, its
//! `manifest.json.sig`, and `delivery.json` (where it goes and whether it
//! was forced), written in that order before the first file is sent;
//! `delivery.json` last, so a folder without it was never delivered. Once
//! the ledger holds the release, `recorded.json` (its entry's seq) is
//! added: the receipt.
//!
//! - A record without a receipt is a release that may have left unrecorded
//!   (the run died between delivering and appending, or the append
//!   failed). Every run records it before anything else leaves, and
//!   `dars ledger verify` fails on it until then.
//! - A record with a receipt is an anchor: the ledger must hold that
//!   release, with that manifest, after the ledger head the manifest
//!   carries. A ledger rolled back or cut down to an earlier valid prefix
//!   is found against these records even after `dars clean` has removed
//!   the run folders, since `dars clean` never removes a record.
//!
//! Records hold no one's data: the manifest names files, their hashes and
//! the cells of each aggregate, never a count of people; `delivery.json`
//! adds the public register's facts for the ledger entry, whose persons
//! count is already protected as the register publishes it.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub(super) use super::layout::subdirs;
use crate::ledger::Anchor;
use crate::package::{
    sha256_hex, Manifest, VerifyingKey, MANIFEST_FILE, MANIFEST_NAMESPACE, SIGNATURE_FILE,
};
use crate::workdir::{create_private_dir, write_private};

/// The folder of an agreement's release records.
pub const RELEASES_DIR: &str = "releases";
const DELIVERY_FILE: &str = "delivery.json";
const RECEIPT_FILE: &str = "recorded.json";

/// Where a release goes, kept beside its manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub destination: String,
    pub forced: bool,
    /// What the ledger entry's register facts will say (persons already
    /// protected), for a release recorded by a later run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<crate::register::RegisterFacts>,
    /// What the ledger entry will say of the linkage kept for reuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linkage: Option<crate::ledger::ReleasedLinkage>,
}

/// The ledger entry that records the release.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub seq: u64,
}

/// One release record as found in the work directory.
#[derive(Debug, Clone)]
pub struct ReleaseRecord {
    pub dir: PathBuf,
    /// The agreement and run id its folder names.
    pub agreement: String,
    pub run_id: String,
    pub manifest: Vec<u8>,
    pub signature: Vec<u8>,
    pub delivery: Delivery,
    pub receipt: Option<Receipt>,
}

/// `WORK/REFERENCE/releases/RUN_ID`.
pub fn record_dir(agreement_dir: &Path, run_id: &str) -> PathBuf {
    agreement_dir.join(RELEASES_DIR).join(run_id)
}

/// Keeps the record of a release about to be delivered. A record already
/// recorded in the ledger is left as it is.
pub fn keep(
    agreement_dir: &Path,
    run_id: &str,
    manifest: &[u8],
    signature: &[u8],
    delivery: &Delivery,
) -> std::io::Result<()> {
    let dir = record_dir(agreement_dir, run_id);
    if dir.join(RECEIPT_FILE).exists() {
        return Ok(());
    }
    create_private_dir(&agreement_dir.join(RELEASES_DIR))?;
    create_private_dir(&dir)?;
    let delivery_json = serde_json::to_vec_pretty(delivery).map_err(std::io::Error::other)?;
    // delivery.json last: a folder without it was never delivered.
    let _ = fs::remove_file(dir.join(DELIVERY_FILE));
    write_private(&dir.join(MANIFEST_FILE), manifest)?;
    write_private(&dir.join(SIGNATURE_FILE), signature)?;
    write_private(&dir.join(DELIVERY_FILE), &delivery_json)
}

/// Drops the record of a release whose delivery failed with an error
/// (not a crash): it did not arrive whole, and running again resumes it
/// and keeps a new record. A record the ledger holds stays.
pub fn discard(agreement_dir: &Path, run_id: &str) {
    let dir = record_dir(agreement_dir, run_id);
    if !dir.join(RECEIPT_FILE).exists() {
        let _ = fs::remove_file(dir.join(DELIVERY_FILE));
    }
}

/// Writes the receipt: the ledger holds the release at entry `seq`.
pub fn mark_recorded(agreement_dir: &Path, run_id: &str, seq: u64) -> std::io::Result<()> {
    let dir = record_dir(agreement_dir, run_id);
    let json = serde_json::to_vec_pretty(&Receipt { seq }).map_err(std::io::Error::other)?;
    write_private(&dir.join(RECEIPT_FILE), &json)
}

/// Every complete release record under the work directory, in folder
/// order. A record that cannot be read is returned with what could be
/// read, so that checking it fails loudly rather than skipping it.
pub fn list(work_dir: &Path) -> Vec<ReleaseRecord> {
    let mut records = Vec::new();
    for agreement_dir in subdirs(work_dir) {
        let agreement = file_name(&agreement_dir);
        for dir in subdirs(&agreement_dir.join(RELEASES_DIR)) {
            let Ok(delivery) = fs::read(dir.join(DELIVERY_FILE)) else {
                // Never completed, so never delivered.
                continue;
            };
            let delivery = serde_json::from_slice(&delivery).unwrap_or(Delivery {
                destination: String::new(),
                forced: false,
                register: None,
                linkage: None,
            });
            let receipt = fs::read(dir.join(RECEIPT_FILE))
                .ok()
                .map(|b| serde_json::from_slice(&b).unwrap_or(Receipt { seq: 0 }));
            records.push(ReleaseRecord {
                agreement: agreement.clone(),
                run_id: file_name(&dir),
                manifest: fs::read(dir.join(MANIFEST_FILE)).unwrap_or_default(),
                signature: fs::read(dir.join(SIGNATURE_FILE)).unwrap_or_default(),
                delivery,
                receipt,
                dir,
            });
        }
    }
    records
}

impl ReleaseRecord {
    /// The manifest, once its signature by the site's key checks out and
    /// it names the agreement and run its folder does.
    pub fn check(&self, key: &VerifyingKey) -> Result<Manifest, String> {
        key.check_sshsig(&self.manifest, &self.signature, MANIFEST_NAMESPACE)
            .map_err(|reason| format!("{SIGNATURE_FILE} is not the site's signature: {reason}"))?;
        let manifest = Manifest::from_json(&self.manifest)
            .map_err(|e| format!("{MANIFEST_FILE} is not a dars manifest: {e}"))?;
        if manifest.agreement != self.agreement || manifest.run_id != self.run_id {
            return Err(format!(
                "its manifest is for {} run {}, not the {} run {} its folder names",
                manifest.agreement, manifest.run_id, self.agreement, self.run_id
            ));
        }
        Ok(manifest)
    }

    pub fn manifest_sha256(&self) -> String {
        sha256_hex(&self.manifest)
    }

    /// The record as a claim the ledger must hold.
    pub fn anchor(&self) -> Anchor {
        Anchor {
            source: self.dir.join(MANIFEST_FILE),
            agreement: self.agreement.clone(),
            run_id: self.run_id.clone(),
            manifest_sha256: Some(self.manifest_sha256()),
            extends: Manifest::from_json(&self.manifest)
                .ok()
                .and_then(|m| m.ledger_head),
        }
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
