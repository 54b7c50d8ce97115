//! The `dars` binary: parse the command line and hand over to the library.

use clap::Parser;

/// mimalloc, not glibc's malloc: with polars' many threads freeing what
/// others allocated, glibc keeps freed memory in per-thread arenas. At 100M
/// episodes the process's resident peak was 1,526 MiB for a live heap of
/// about 560 MiB (heaptrack); with mimalloc it is 1,367 MiB (issue #11).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    dars::cli::main(dars::cli::Cli::parse())
}
