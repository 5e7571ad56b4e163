//! The `lifeboat` command: parse the command line, set up logging and the
//! configuration, and hand each subcommand to the library that does the work.

mod cli;
mod commands;
mod logging;

use clap::Parser;
use cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            log::logger().flush();
            eprintln!("lifeboat: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}
