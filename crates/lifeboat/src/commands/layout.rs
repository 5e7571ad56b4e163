//! `lifeboat layout save|show|diff`.

use super::Ctx;
use crate::cli::LayoutCmd;
use anyhow::Context;
use lifeboat_layout::{diff, show, Layout};
use lifeboat_runner::{Mode, SystemRunner};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Capture the running system with the configured exclusions.
fn live(ctx: &Ctx) -> anyhow::Result<Layout> {
    Ok(lifeboat_backup::job::live_layout(&ctx.config, &SystemRunner::new(Mode::Run))?)
}

fn load(path: &Path) -> anyhow::Result<Layout> {
    Ok(Layout::load(path)?)
}

/// Dispatch a layout subcommand.
pub fn run(ctx: &Ctx, cmd: LayoutCmd) -> anyhow::Result<ExitCode> {
    let default = || ctx.config.paths.layout_file.clone();
    match cmd {
        LayoutCmd::Save { output } => {
            let path = output.unwrap_or_else(default);
            let layout = live(ctx)?;
            layout.save(&path).with_context(|| format!("cannot save the layout to {}", path.display()))?;
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&layout)?);
            } else if !ctx.quiet {
                let parts: usize =
                    layout.disks.iter().filter_map(|d| d.table.as_ref()).map(|t| t.partitions.len()).sum();
                println!(
                    "saved layout of {} to {}: {} disks, {} partitions, {} RAID, {} LVs, {} LUKS, {} filesystems, {} swap",
                    layout.meta.hostname,
                    path.display(),
                    layout.disks.len(),
                    parts,
                    layout.raids.len(),
                    layout.lvm.lvs.len(),
                    layout.luks.len(),
                    layout.filesystems.len(),
                    layout.swaps.len()
                );
                if !layout.notes.is_empty() {
                    println!("not captured ({}; recorded in the file as [[note]]):", layout.notes.len());
                    for n in &layout.notes {
                        println!("  - {}: {}", n.what, n.why);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LayoutCmd::Show { file } => {
            let layout = match file {
                Some(p) if p == Path::new("-") => live(ctx)?,
                Some(p) => load(&p)?,
                None => load(&default())?,
            };
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&layout)?);
            } else {
                print!("{}", show::tree(&layout));
            }
            Ok(ExitCode::SUCCESS)
        }
        LayoutCmd::Diff { file, against } => {
            let saved_path: PathBuf = file.unwrap_or_else(default);
            let saved = load(&saved_path)?;
            let (current, what) = match against {
                Some(p) => (load(&p)?, p.display().to_string()),
                None => (live(ctx)?, "the live system".to_string()),
            };
            let changes = diff(&saved, &current);
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&changes)?);
            } else if changes.is_empty() {
                if !ctx.quiet {
                    println!("no change that matters for recovery between {} and {what}", saved_path.display());
                }
            } else {
                println!("{} change(s) from {} to {what}:", changes.len(), saved_path.display());
                for c in &changes {
                    println!("  {c}");
                }
                println!("make new rescue media: lifeboat mkrescue");
            }
            Ok(if changes.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}
