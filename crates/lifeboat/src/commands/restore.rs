//! `lifeboat restore`: everything, the paths matching patterns, or one filesystem.

use super::feedback::Terminal;
use super::Ctx;
use crate::cli::RestoreArgs;
use lifeboat_backup::restore::{restore, Request};
use lifeboat_config::human;
use lifeboat_runner::{Mode, SystemRunner};
use std::process::ExitCode;

/// Restore, and print what was restored; exit 1 when anything was lost or could not be checked.
pub fn run(ctx: &Ctx, a: RestoreArgs) -> anyhow::Result<ExitCode> {
    let req = Request {
        find: super::find_of(ctx, &a.from)?,
        to: a.to.clone(),
        patterns: a.patterns,
        filesystem: a.filesystem,
        at: a.at,
    };
    let done = restore(&req, &SystemRunner::new(Mode::Run), &mut Terminal::new(ctx.json))?;
    let r = &done.report;
    if ctx.json {
        let v = serde_json::json!({"backup": done.location, "seconds": done.seconds, "report": r});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !(ctx.quiet && done.complete()) {
        println!(
            "restored {} entries ({}) from {} into {} in {:.1} s",
            r.restored,
            human(r.bytes),
            done.location,
            a.to.display(),
            done.seconds
        );
        for l in &r.lost {
            println!("  NOT RESTORED {l}");
        }
        for u in &r.unchecked {
            println!("  NOT CHECKED {u}");
        }
    }
    Ok(if done.complete() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
