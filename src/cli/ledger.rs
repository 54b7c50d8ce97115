//! `dars ledger verify` and `dars ledger record-destruction`.

use std::path::PathBuf;

use super::{exit, load_site, Cli, Failure};
use crate::config::AgreementRef;
use crate::ledger::{Ledger, LedgerEvent};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check the hash chain of every entry; any edit is found.
    Verify,
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
    let ledger = Ledger::open(&path);
    match command {
        Command::Verify => {
            let n = ledger.verify().map_err(|e| Failure::new(exit::VERIFY, e))?;
            println!("ok: {} entries, hash chain intact ({})", n, path.display());
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
            let released = ledger
                .entries()
                .map_err(|e| Failure::new(exit::VERIFY, e))?
                .iter()
                .any(|e| matches!(&e.event, LedgerEvent::Release { agreement, .. } if agreement == reference.as_str()));
            if !released {
                tracing::warn!(agreement = %reference, "no release of this agreement is in the ledger");
            }
            let entry = ledger
                .append(LedgerEvent::Destruction {
                    agreement: reference.to_string(),
                    certificate_sha256: hex::encode(ring::digest::digest(
                        &ring::digest::SHA256,
                        &bytes,
                    )),
                    certificate_name: certificate
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                })
                .map_err(|e| Failure::new(exit::INTERNAL, e))?;
            println!(
                "recorded destruction of {reference} as ledger entry {}",
                entry.seq
            );
        }
    }
    Ok(())
}
