//! `lifeboat mkrescue`.

use super::feedback::Terminal;
use super::Ctx;
use crate::cli::MkrescueArgs;
use lifeboat_backup::mkbackup::{mkbackup, Request};
use lifeboat_config::{human, MkbackupMode};
use lifeboat_runner::{Mode, SystemRunner};
use std::process::ExitCode;

/// Capture the layout, build the media from it, and save it (`layout diff` compares against the saved one).
pub fn run(ctx: &Ctx, a: MkrescueArgs) -> anyhow::Result<ExitCode> {
    let req = Request {
        mode: MkbackupMode::Rescue,
        target: None,
        output: a.output,
        auto_recover: a.auto_recover,
        kernel: a.kernel,
        format: a.format.as_deref().map(str::parse).transpose()?,
    };
    let done = mkbackup(&ctx.config, &req, &SystemRunner::new(Mode::Run), &mut Terminal::new(ctx.json))?;
    let (report, saved) = (&done.rescue, &done.layout_file);
    if ctx.json {
        let v = serde_json::json!({
            "kernel": { "image": report.kernel.image, "version": report.kernel.version, "reason": report.kernel.reason },
            "compression": report.compression,
            "initrd_bytes": report.initrd_size.0,
            "initrd_uncompressed_bytes": report.initrd_size.1,
            "programs": report.programs,
            "modules": report.modules,
            "firmware": report.firmware,
            "missing_programs": report.missing_programs,
            "outputs": report.outputs.iter().map(|(p, s)| serde_json::json!({"path": p, "bytes": s})).collect::<Vec<_>>(),
            "seconds": report.seconds,
            "layout": saved,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if ctx.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    println!("kernel: {} ({}): {}", report.kernel.image.display(), report.kernel.version, report.kernel.reason);
    println!(
        "rescue system: {} programs, {} kernel modules, {} firmware files; initramfs {} ({} unpacked, {})",
        report.programs,
        report.modules,
        report.firmware,
        human(report.initrd_size.0),
        human(report.initrd_size.1),
        report.compression
    );
    if !report.missing_programs.is_empty() {
        println!("not on this machine, so not in the rescue system: {}", report.missing_programs.join(" "));
    }
    println!("layout saved to {}", saved.display());
    for (p, s) in &report.outputs {
        println!("wrote {} ({})", p.display(), human(*s));
    }
    println!("built in {:.1} s", report.seconds);
    Ok(ExitCode::SUCCESS)
}
