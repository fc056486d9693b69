//! The `parley` command: parses the command line and hands it to [`parley::cli::run`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    parley::cli::run(parley::cli::Cli::parse())
}
