//! The `dars` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    dars::cli::main(dars::cli::Cli::parse())
}
