//! `dars ledger verify`: tamper check of the release ledger.

use super::{exit, load_site, Cli, Failure};
use crate::ledger::Ledger;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check the hash chain of every entry; any edit is found.
    Verify,
}

pub fn run(command: &Command, cli: &Cli) -> Result<(), Failure> {
    let site = load_site(cli)?;
    let path = crate::pipeline::ledger_path(&site);
    match command {
        Command::Verify => {
            let n = Ledger::open(&path)
                .verify()
                .map_err(|e| Failure::new(exit::VERIFY, e))?;
            println!("ok: {} entries, hash chain intact ({})", n, path.display());
            Ok(())
        }
    }
}
