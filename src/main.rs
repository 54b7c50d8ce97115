//! The `dars` binary: parse the command line and hand over to the library.

use clap::Parser;

/// mimalloc, not glibc's malloc: with polars' many threads freeing what
/// others allocated, glibc kept freed memory in its per-thread arenas, and
/// the process's resident peak at 100M episodes was 1.5 GiB for a live heap
/// of 0.56 GiB (heaptrack), growing with the dataset (issue #11).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    dars::cli::main(dars::cli::Cli::parse())
}
