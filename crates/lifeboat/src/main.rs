//! The `lifeboat` command: parse the command line, set up logging and the
//! configuration, and hand each subcommand to the library that does the work.

mod cli;
mod commands;
mod logging;

use clap::Parser;
use cli::Cli;
use std::process::ExitCode;

/// The exit status of a run whose stdout was closed by its reader (128 +
/// SIGPIPE, what a shell shows for a program the signal ended): never taken
/// for success by `set -o pipefail`.
const CLOSED_STDOUT: i32 = 141;

/// A closed stdout (`lifeboat backup list | head -1`) ends the run quietly.
///
/// Rust ignores SIGPIPE, so `println!` to a pipe nobody reads any more
/// panics. Restoring SIGPIPE's default action would need `unsafe` (denied in
/// this workspace) and would also kill lifeboat, silently and mid-recovery,
/// when a helper it feeds (sfdisk reading a script) exits early; instead,
/// only the panic of printing to stdout into a closed pipe is turned into a
/// quiet exit, so every other EPIPE stays an error that is reported.
fn quiet_when_stdout_closes() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info.to_string();
        if text.contains("failed printing to stdout") && text.contains("os error 32") {
            std::process::exit(CLOSED_STDOUT);
        }
        report(info)
    }));
}

fn main() -> ExitCode {
    quiet_when_stdout_closes();
    let cli = Cli::parse();
    let json = cli.json;
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            log::logger().flush();
            eprintln!("lifeboat: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if json {
                // The same on stdout, so a script reading JSON gets JSON either way.
                let causes: Vec<String> = e.chain().skip(1).map(ToString::to_string).collect();
                println!("{}", serde_json::json!({"error": e.to_string(), "causes": causes, "exit": 2}));
            }
            ExitCode::from(2)
        }
    }
}
