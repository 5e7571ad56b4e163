//! `lifeboat verify` and `lifeboat compare`: check a backup, or a live tree against it.

use super::feedback::Terminal;
use super::Ctx;
use crate::cli::{CompareArgs, FromArgs};
use lifeboat_config::human;
use lifeboat_runner::{Mode, SystemRunner};
use std::process::ExitCode;

/// `lifeboat verify`: exit 1 when anything is damaged.
pub fn verify(ctx: &Ctx, from: FromArgs) -> anyhow::Result<ExitCode> {
    let find = super::find_of(ctx, &from)?;
    let (found, r) =
        lifeboat_backup::verify::verify(&find, &SystemRunner::new(Mode::Run), &mut Terminal::new(ctx.json))?;
    let b = &found.backup;
    if ctx.json {
        let signature = super::trust::to_json(&found.verdict);
        let v = serde_json::json!({"backup": b.location(), "ok": r.ok(), "signature": signature, "report": r});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "backup {}: {} volumes, {} entries in the manifest",
            b.location(),
            b.catalog.volumes.len(),
            b.entries.len()
        );
        println!("  catalog {}", super::trust::describe(&found.verdict));
        for v in &r.damaged_volumes {
            println!("  DAMAGED volume {v}");
        }
        for l in &r.lost {
            println!("  UNREADABLE {l}");
        }
        if r.ok() {
            println!("  intact: {} entries, {} of content, every checksum matches", r.entries, human(r.bytes));
        } else {
            println!("  {} of {} entries readable; {} cannot be restored", r.entries, b.entries.len(), r.lost.len());
        }
    }
    Ok(if r.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `lifeboat compare`: exit 1 when anything differs.
pub fn compare(ctx: &Ctx, a: CompareArgs) -> anyhow::Result<ExitCode> {
    let find = super::find_of(ctx, &a.from)?;
    let (found, diffs) =
        lifeboat_backup::verify::compare(&find, &a.root, &SystemRunner::new(Mode::Run), &mut Terminal::new(ctx.json))?;
    let (b, root) = (&found.backup, a.root.display());
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&diffs)?);
    } else if diffs.is_empty() {
        println!("{root} matches the backup {} ({} entries)", b.location(), b.entries.len());
    } else {
        for d in &diffs {
            if d.details.is_empty() {
                println!("{:<8} {}", d.what, d.path);
            } else {
                println!("{:<8} {}  ({})", d.what, d.path, d.details.join(", "));
            }
        }
        println!("{} difference(s) between {root} and the backup {}", diffs.len(), b.location());
    }
    Ok(if diffs.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
