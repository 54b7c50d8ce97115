//! The command line: one module per verb (xsv's `src/cmd/<verb>.rs`). Each
//! verb parses its flags, calls the library, prints counts and study IDs
//! only, and maps its error to an exit code (documented in the README).

mod agreements;
mod batch;
mod check;
mod clean;
mod ledger;
mod link;
mod register;
mod review;
mod run;
mod suppress;
mod synth;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit codes, as the README documents them.
pub mod exit {
    pub const OK: u8 = 0;
    /// Something unexpected: an I/O error in the work directory, a bug.
    pub const INTERNAL: u8 = 1;
    /// The command line is wrong (clap's own code).
    pub const USAGE: u8 = 2;
    /// A config file has problems (`dars check` lists them).
    pub const CONFIG: u8 = 3;
    /// An input file is malformed: the cohort, a dataset, the index.
    pub const INPUT: u8 = 4;
    /// The agreement is not active today: not started or expired.
    pub const NOT_ACTIVE: u8 = 5;
    /// Verification failed: a release or the ledger does not check out.
    pub const VERIFY: u8 = 6;
    /// Delivery failed: the destination refused or is unreachable.
    pub const DELIVERY: u8 = 7;
    /// `dars batch`: at least one agreement failed (the summary says which).
    pub const BATCH: u8 = 8;
    /// Disclosure control cannot protect a table: the audit found a
    /// suppressed cell a reader could narrow down.
    pub const DISCLOSURE: u8 = 9;
    /// Another dars holds the lock this command needs (the agreement's
    /// run, the batch, the ledger): nothing was done; try again later.
    pub const LOCKED: u8 = 10;
}

#[derive(Debug, Parser)]
#[command(name = "dars", version, about = "Release approved health-data extracts safely: link, minimise, protect, encrypt, sign, push.", long_about = None)]
pub struct Cli {
    /// The site config: where the custodian's data and keys live.
    #[arg(
        long,
        global = true,
        default_value = "config/site.toml",
        env = "DARS_SITE"
    )]
    pub site: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole pipeline for one agreement.
    Run(run::Args),
    /// Every active, due agreement in a folder, each isolated; one summary.
    Batch(batch::Args),
    /// Linkage only: linkage.csv and review_queue.csv in --out.
    Link(link::Args),
    /// Check an agreement and the site config without reading any data.
    Check(check::Args),
    /// Recipient-side check of a delivered release.
    Verify(verify::Args),
    /// Deterministic synthetic site data, cohort and the true links.
    Synth(synth::Args),
    /// Disclosure control on a sample table, with a report of every cell.
    Suppress(suppress::Args),
    /// The release ledger.
    #[command(subcommand)]
    Ledger(ledger::Command),
    /// Every agreement in a folder with its status.
    Agreements(agreements::Args),
    /// Remove the work folders of released runs older than an age.
    Clean(clean::Args),
    /// The clerical review page for a run's review queue, on 127.0.0.1.
    Review(review::Args),
    /// The public register of releases, from the ledger alone.
    Register(register::Args),
}

/// A failed command: the message (already free of identifiers) and its code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl std::fmt::Display) -> Self {
        Self {
            code,
            message: message.to_string(),
        }
    }
}

impl From<crate::pipeline::PipelineError> for Failure {
    fn from(e: crate::pipeline::PipelineError) -> Self {
        use crate::aggregate::AggregateError;
        use crate::minimise::MinimiseError;
        use crate::package::PackageError;
        use crate::pipeline::PipelineError as E;
        let code = match &e {
            E::Config(_) => exit::CONFIG,
            // Writing the sealed files into the work directory (a full
            // disk above all) is work-directory I/O; the rest of packaging
            // fails on the keys and recipients the config names.
            E::Package(
                PackageError::DiskFull { .. }
                | PackageError::Write { .. }
                | PackageError::Produce { .. }
                | PackageError::Encrypt { .. },
            ) => exit::INTERNAL,
            E::Package(_) => exit::CONFIG,
            E::NotActive(_) | E::NothingNew { .. } => exit::NOT_ACTIVE,
            // An output that would release a direct identifier is the
            // agreement's to fix (its fields), as when `dars check` finds
            // one by name.
            E::Minimise(MinimiseError::DirectIdentifier { .. })
            | E::Aggregate(AggregateError::DirectIdentifier { .. }) => exit::CONFIG,
            E::Ingest(_)
            | E::Link(_)
            | E::Objections(_)
            | E::Minimise(_)
            | E::Aggregate(_)
            | E::Dataset { .. }
            | E::DamagedFile { .. }
            // The engine (unreachable, a refused token, a failed query) is
            // the site's input, like a dataset that cannot be read.
            | E::Engine(_) => exit::INPUT,
            E::Push(_) => exit::DELIVERY,
            E::Suppress(_) => exit::DISCLOSURE,
            E::Locked { .. } | E::LedgerNotReady(crate::ledger::LedgerError::Locked { .. }) => {
                exit::LOCKED
            }
            E::LedgerNotReady(_) => exit::VERIFY,
            E::WorkDirWritable { .. } | E::WorkDirNotOwned { .. } => exit::CONFIG,
            E::Ledger(_) | E::Unrecorded { .. } | E::WorkDir { .. } | E::Recruitment(_) => {
                exit::INTERNAL
            }
        };
        Self::new(code, e)
    }
}

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::new(exit::CONFIG, e)
    }
}

/// Sets up logging, runs the verb, prints the error and returns the code.
pub fn main(cli: Cli) -> ExitCode {
    init_logging(cli.log_format);
    let result = match &cli.command {
        Command::Run(a) => run::run(a, &cli),
        Command::Batch(a) => batch::run(a, &cli),
        Command::Clean(a) => clean::run(a, &cli),
        Command::Link(a) => link::run(a, &cli),
        Command::Check(a) => check::run(a, &cli),
        Command::Verify(a) => verify::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Suppress(a) => suppress::run(a),
        Command::Ledger(c) => ledger::run(c, &cli),
        Command::Agreements(a) => agreements::run(a, &cli),
        Command::Review(a) => review::run(a, &cli),
        Command::Register(a) => register::run(a, &cli),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("DARS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Loads the site config, as a failure with every problem.
pub(crate) fn load_site(cli: &Cli) -> Result<crate::config::Site, Failure> {
    Ok(crate::config::Site::load(&cli.site)?)
}

/// Loads an agreement against the site, logging its warnings.
pub(crate) fn load_agreement(
    path: &std::path::Path,
    site: &crate::config::Site,
) -> Result<crate::config::Agreement, Failure> {
    let (agreement, warnings) = crate::config::Agreement::load(path, Some(site))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(agreement)
}
