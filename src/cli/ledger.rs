//! `dars ledger verify` and `dars ledger record-destruction`.

use std::path::{Path, PathBuf};

use super::{exit, load_site, Cli, Failure};
use crate::config::AgreementRef;
use crate::ledger::{Anchor, LedgerEvent};
use crate::package::{
    sha256_hex, Manifest, SigningKey, VerifyingKey, MANIFEST_FILE, MANIFEST_NAMESPACE,
    SIGNATURE_FILE,
};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check every entry's hash link and signature and the signed head,
    /// then every released run of the work directory (and each --release
    /// folder) against the ledger: any edit, cut or forged entry is found.
    Verify {
        /// The release signing key's public half (its `.pub` file), for an
        /// auditor who does not hold the private key. Default: the site's
        /// signing key.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// A delivered release (a recipient's copy of REFERENCE/RUN_ID)
        /// whose signed manifest must be in the ledger, after the ledger
        /// head it carries. Repeat for more.
        #[arg(long = "release", value_name = "RELEASE_DIR")]
        releases: Vec<PathBuf>,
    },
    /// Record a recipient's certificate of destruction for an agreement.
    RecordDestruction {
        /// The agreement reference, DARS-NIC-xxxxxx-xxxxx-xx.
        reference: String,
        /// The certificate (any file); its SHA-256 goes in the ledger.
        #[arg(long)]
        certificate: PathBuf,
    },
}

pub fn run(command: &Command, cli: &Cli) -> Result<(), Failure> {
    let site = load_site(cli)?;
    let path = crate::pipeline::ledger_path(&site);
    match command {
        Command::Verify {
            public_key,
            releases,
        } => {
            let key = match public_key {
                Some(file) => VerifyingKey::from_openssh_file(file).map_err(config)?,
                None => SigningKey::load(&site.signing_key)
                    .map_err(config)?
                    .verifying_key(),
            };
            let ledger = crate::ledger::Ledger::open(&path, key.clone());
            let verified = ledger.verify().map_err(|e| Failure::new(exit::VERIFY, e))?;
            let records = crate::pipeline::work_records(&site.work_dir);
            let mut anchors = records.anchors.clone();
            for dir in releases {
                anchors.push(release_anchor(dir, &key)?);
            }
            ledger
                .check_anchors(&verified, &anchors)
                .map_err(|e| Failure::new(exit::VERIFY, e))?;
            let in_ledger = |agreement: &str, run: &str| {
                verified.entries.iter().any(|e| {
                    matches!(&e.event, LedgerEvent::Release { agreement: a, run_id, .. }
                        if a == agreement && run_id == run)
                })
            };
            // Release records the ledger lacks: delivered (files of them
            // at least may have left) and not recorded.
            let mut unrecorded = Vec::new();
            let mut in_progress = Vec::new();
            for pending in &records.pending {
                if let Err(reason) = pending.check(&key) {
                    return Err(Failure::new(
                        exit::VERIFY,
                        crate::ledger::LedgerError::BadReleaseRecord {
                            dir: pending.dir.clone(),
                            reason,
                        },
                    ));
                }
                if in_ledger(&pending.agreement, &pending.run_id) {
                    continue;
                }
                let lock = crate::pipeline::layout::run_lock(
                    &crate::pipeline::layout::agreement_dir(&site.work_dir, &pending.agreement),
                );
                match crate::lock::Lock::try_acquire(&lock) {
                    Err(crate::lock::LockError::Held { .. }) => in_progress.push(pending),
                    _ => unrecorded.push(pending),
                }
            }
            if !unrecorded.is_empty() {
                let list: String = unrecorded
                    .iter()
                    .map(|p| {
                        format!(
                            "\n  - {} run {} (to {}; its record: {})",
                            p.agreement,
                            p.run_id,
                            p.delivery.destination,
                            p.dir.display()
                        )
                    })
                    .collect();
                return Err(Failure::new(
                    exit::VERIFY,
                    format!(
                        "the ledger {} does not hold {} release(s) that were delivered: a run \
                         died (or its ledger append failed) between delivering and recording:{list}\n  \
                         fix: run any agreement again (`dars run`): before anything else leaves \
                         it records these releases",
                        path.display(),
                        unrecorded.len()
                    ),
                ));
            }
            println!(
                "ok: {} entries, hash chain intact, every entry signed by {}; head at entry {} ({})",
                verified.entries.len(),
                verified.signer,
                verified.head.seq,
                path.display()
            );
            println!(
                "every one of {} records of a release in the work directory (released runs' \
                 state and release records){} is in the ledger",
                records.anchors.len(),
                match releases.len() {
                    0 => String::new(),
                    1 => " and the release given".to_string(),
                    n => format!(" and the {n} releases given"),
                }
            );
            for note in &verified.notes {
                println!("warning: {note}");
            }
            for pending in &in_progress {
                println!(
                    "warning: {} run {} is being delivered by a dars running now; it records \
                     its release when the delivery ends",
                    pending.agreement, pending.run_id
                );
            }
            for (agreement, run_id) in &records.unrecorded {
                if in_ledger(agreement, run_id) {
                    continue;
                }
                println!(
                    "warning: {agreement} run {run_id} was delivered but is not in the ledger \
                     yet: run its agreement again (`dars run`), which resumes that run and \
                     records it"
                );
            }
        }
        Command::RecordDestruction {
            reference,
            certificate,
        } => {
            let reference =
                AgreementRef::parse(reference).map_err(|e| Failure::new(exit::USAGE, e))?;
            let bytes = std::fs::read(certificate).map_err(|e| {
                Failure::new(
                    exit::INPUT,
                    format!(
                        "certificate {}: {e}\n  fix: pass the certificate file",
                        certificate.display()
                    ),
                )
            })?;
            let key = SigningKey::load(&site.signing_key).map_err(config)?;
            let ledger = crate::ledger::Ledger::open(&path, key.verifying_key());
            let released = ledger
                .entries()
                .map_err(|e| Failure::new(exit::VERIFY, e))?
                .iter()
                .any(|e| matches!(&e.event, LedgerEvent::Release { agreement, .. } if agreement == reference.as_str()));
            if !released {
                tracing::warn!(agreement = %reference, "no release of this agreement is in the ledger");
            }
            let entry = ledger
                .append(
                    LedgerEvent::Destruction {
                        agreement: reference.to_string(),
                        certificate_sha256: sha256_hex(&bytes),
                        certificate_name: certificate
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    },
                    &key,
                )
                .map_err(|e| match e {
                    crate::ledger::LedgerError::Locked { .. } => Failure::new(exit::LOCKED, e),
                    e => Failure::new(exit::INTERNAL, e),
                })?;
            println!(
                "recorded destruction of {reference} as ledger entry {}",
                entry.seq
            );
        }
    }
    Ok(())
}

/// A key that cannot be loaded is a config problem.
fn config(e: crate::package::PackageError) -> Failure {
    Failure::new(exit::CONFIG, e)
}

/// A recipient's copy of a release as an anchor: its manifest, once its
/// signature by the site's key checks out.
fn release_anchor(dir: &Path, key: &VerifyingKey) -> Result<Anchor, Failure> {
    let fail = |what: String| {
        Failure::new(
            exit::VERIFY,
            format!(
                "release {}: {what}\n  fix: pass the folder of a complete release \
                 (REFERENCE/RUN_ID holding {MANIFEST_FILE} and {SIGNATURE_FILE})",
                dir.display()
            ),
        )
    };
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| fail(format!("cannot read {name}: {e}")))
    };
    let manifest = read(MANIFEST_FILE)?;
    let signature = read(SIGNATURE_FILE)?;
    key.check_sshsig(&manifest, &signature, MANIFEST_NAMESPACE)
        .map_err(|reason| {
            fail(format!(
                "{SIGNATURE_FILE} is not the site's signature: {reason}"
            ))
        })?;
    let parsed = Manifest::from_json(&manifest)
        .map_err(|e| fail(format!("{MANIFEST_FILE} is not a dars manifest: {e}")))?;
    Ok(Anchor {
        source: dir.join(MANIFEST_FILE),
        agreement: parsed.agreement,
        run_id: parsed.run_id,
        manifest_sha256: Some(sha256_hex(&manifest)),
        extends: parsed.ledger_head,
    })
}
