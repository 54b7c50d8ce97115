//! `dars`: the Access stage of a data access request service.
//!
//! One module per pipeline stage, each a function from typed inputs to typed
//! outputs; [`pipeline`] wires them together and is the only code that knows
//! the work directory. `src/main.rs` is a thin shell over [`cli`].
// `deny`, not `forbid`: one module may allow it, `memory::mapped` (a
// mapping of a dataset file dars owns, whose pages it hands back to the
// kernel as polars scans it, issue #11).
#![deny(unsafe_code)]
// Errors carry paths, keys and problem lists for the user. They are built
// once, on the failure path, so their size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

pub mod aggregate; // stage 5a: counts by group_by with margins
pub mod cli;
pub mod config; // site and agreement TOML, newtypes, `dars check`
pub mod config_file; // leaf: problems, TOML reading, path resolution, dates
pub mod counts; // leaf: count tables and cells, shared by aggregate and suppress
pub mod domain; // NHS numbers, postcodes, gender, dates: validated value types
pub mod engine; // where the scans, joins, transforms and counts run: polars here, or Spark (issue #14)
pub mod ingest; // stage 1: the applicant's cohort CSV -> typed cohort rows
pub mod ledger; // stage 6c: append-only, hash-chained record of releases
pub mod link; // stage 2: cohort x master person index -> linkage table
pub mod lock; // kernel locks: one run per agreement, one batch, one ledger append
mod memory; // the process's peak resident memory (VmHWM), for stage and step metrics
pub mod minimise; // stage 4: field specs and generalising transforms -> record frames
pub mod objections; // stage 3: drop linked people who objected
mod openssh_pattern; // OpenSSH pattern lists: known_hosts host names, allowed_signers namespaces
pub mod package; // stage 6a: age encryption, manifest, SSHSIG signature
pub mod period; // leaf: an output's period and an incremental window
pub mod pipeline; // the orchestrator behind `dars run`
pub mod push; // stage 6b: deliver a sealed release to its destination
pub mod register; // `dars register`: the public register of releases, from the ledger
pub mod review; // `dars review`: the clerical review page and its journal
pub mod site; // the site config: where the custodian's data and keys live
pub mod suppress; // stage 5b: disclosure control on counts
pub mod synth; // deterministic synthetic site data, cohort and truth
pub mod tables; // lazy scans of site tables and writing frames
pub mod verify; // recipient-side check of a delivered release
pub mod workdir; // work directory layout: private files, atomic writes // one module per subcommand
