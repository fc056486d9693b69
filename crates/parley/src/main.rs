//! The `parley` command: parses the command line and hands it to [`parley::cli::run`].

use clap::Parser;

/// The allocator of the server process. Every stanza allocates and frees its element tree,
/// strings and queue entries; with glibc's malloc that was about a quarter of the CPU per
/// routed stanza at saturation (docs/benchmarks.md, "Where the time goes"). mimalloc's
/// per-thread free lists make those short-lived allocations cheap. The library crates do
/// not choose an allocator: tests and embedders keep their own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    parley::cli::run(parley::cli::Cli::parse())
}
