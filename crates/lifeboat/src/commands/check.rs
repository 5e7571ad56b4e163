//! `lifeboat check`.

use super::Ctx;
use lifeboat_runner::{Mode, SystemRunner};
use std::process::ExitCode;

/// Run the preflight; exit 0 only when everything needed passed (with -q,
/// the table only then).
pub fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let runner = SystemRunner::new(Mode::Run);
    let report = lifeboat_check::run(&runner, &ctx.config);
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !(ctx.quiet && report.ok) {
        print!("{}", report.table());
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
