//! `lifeboat drill`.

use super::feedback::Terminal;
use super::Ctx;
use crate::cli::DrillArgs;
use lifeboat_drill::report::Verdict;
use lifeboat_drill::Firmware;
use lifeboat_runner::{Mode, SystemRunner};
use std::process::ExitCode;

/// Run a drill, print its verdict and phases (or the report as JSON);
/// exit 0 only when it passed, 1 when it failed.
pub fn run(ctx: &Ctx, a: DrillArgs) -> anyhow::Result<ExitCode> {
    let req = lifeboat_drill::Request {
        medium: a.medium,
        layout_file: a.layout,
        find: super::find_of(ctx, &a.from)?,
        backup_disk: a.backup_disk,
        firmware: a.firmware.as_deref().map(|f| if f == "uefi" { Firmware::Uefi } else { Firmware::Bios }),
        disk_factor: a.disk_factor,
        report_dir: a.report,
        keep_disks: a.keep_disks,
    };
    let runner = SystemRunner::new(Mode::Run);
    let out = lifeboat_drill::drill(&ctx.config, &req, &runner, &mut Terminal::new(ctx.json))?;
    let r = &out.report;
    if ctx.json {
        println!("{}", r.to_json());
    } else if !(ctx.quiet && r.verdict == Verdict::Passed) {
        match (&r.verdict, &r.reason) {
            (Verdict::Passed, _) => println!("drill of {}: PASSED", r.host),
            (_, Some(why)) => println!("drill of {}: FAILED: {why}", r.host),
            (_, None) => println!("drill of {}: FAILED", r.host),
        }
        for p in &r.phases {
            println!("  {:<14} {:>7.1} s", p.name, p.seconds);
        }
        if let Some(rto) = r.rto_seconds {
            println!("  measured RTO (power-on to multi-user): {rto:.0} s ({} under {})", r.firmware, r.accel);
        }
        let c = &r.comparison;
        println!(
            "  files: {} difference(s) from the backup, {} changed by recovery on purpose",
            c.differences.len(),
            c.changed_on_purpose.len()
        );
        println!("report: {}", out.dir.join("report.html").display());
    }
    Ok(if r.verdict == Verdict::Passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
