//! `dars verify RELEASE_DIR --allowed-signers FILE`: what a recipient runs.

use std::path::PathBuf;

use super::{exit, Failure};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder the release arrived in.
    pub release_dir: PathBuf,
    /// OpenSSH allowed_signers file naming the custodian's signing key.
    #[arg(long)]
    pub allowed_signers: PathBuf,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let v = crate::verify::verify_release(&args.release_dir, &args.allowed_signers)
        .map_err(|e| Failure::new(exit::VERIFY, e))?;
    println!(
        "ok: {} run {} signed by {}; {} files match the manifest",
        v.manifest.agreement, v.manifest.run_id, v.signer, v.files_checked
    );
    if let Some(head) = &v.manifest.ledger_head {
        // For the custodian's auditors: `dars ledger verify --release DIR`.
        println!(
            "made on top of the custodian's ledger entry {} (sha256 {})",
            head.seq, head.sha256
        );
    }
    Ok(())
}
