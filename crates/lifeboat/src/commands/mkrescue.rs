//! `lifeboat mkrescue`.

use super::Ctx;
use crate::cli::MkrescueArgs;
use anyhow::Context;
use lifeboat_config::human;
use lifeboat_rescue::{mkrescue, Options};
use lifeboat_runner::{Mode, SystemRunner};
use std::process::ExitCode;

/// Capture and save the layout, then build the media from it.
pub fn run(ctx: &Ctx, a: MkrescueArgs) -> anyhow::Result<ExitCode> {
    let layout = super::layout::live(ctx);
    let mut opts = Options {
        kernel: a.kernel,
        format: a.format.as_deref().map(str::parse).transpose()?,
        output_dir: a.output,
        auto_recover: a.auto_recover,
        ..Options::default()
    };
    // The public signing keys go onto the medium, so recovery verifies backups.
    let rescue_config = super::trust::for_rescue(ctx, &layout.meta.hostname, &mut opts.etc_files)?;
    let report = mkrescue(&rescue_config, &layout, &opts, &SystemRunner::new(Mode::Run))
        .context("cannot make the rescue media")?;
    // The saved layout is the one on the media: `layout diff` compares against it.
    let saved = &ctx.config.paths.layout_file;
    layout.save(saved).with_context(|| format!("cannot save the layout to {}", saved.display()))?;
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
