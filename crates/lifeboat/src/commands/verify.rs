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
    let v = lifeboat_backup::verify::verify(&find, &SystemRunner::new(Mode::Run), &mut Terminal::new(ctx.json))?;
    let r = &v.report;
    if ctx.json {
        let signature = super::trust::to_json(&v.verdict);
        let j = serde_json::json!({"backup": v.location, "ok": r.ok(), "signature": signature,
            "decrypted": v.entries.is_some(), "report": r});
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else if !(ctx.quiet && r.ok()) {
        match v.entries {
            Some(n) => println!("backup {}: {} volumes, {n} entries in the manifest", v.location, v.volumes),
            None => println!(
                "backup {}: {} volumes, encrypted: checked as stored (signature, every object's size and BLAKE3); \
                 give --identity FILE to check every entry",
                v.location, v.volumes
            ),
        }
        println!("  catalog {}", super::trust::describe(&v.verdict));
        if let Some(p) = &v.parent {
            match v.chain.is_empty() {
                true => println!("  incremental on {p} (its chain is not checked without the identity)"),
                false => println!("  incremental on {p}: chain {} present, signed and the one it was made against (verify each to read its volumes)", v.chain.join(" <- ")),
            }
        }
        for v in &r.damaged_volumes {
            println!("  DAMAGED volume {v}");
        }
        for l in &r.lost {
            println!("  UNREADABLE {l}");
        }
        match v.entries {
            _ if !r.ok() && v.entries.is_none() => println!("  the stored backup is damaged or was changed"),
            None => println!("  intact as stored: {} objects, {}", r.entries, human(r.bytes)),
            Some(_) if r.ok() => {
                println!("  intact: {} entries, {} of content, every checksum matches", r.entries, human(r.bytes))
            }
            Some(n) => println!("  {} of {n} entries readable; {} cannot be restored", r.entries, r.lost.len()),
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
        if !ctx.quiet {
            println!("{root} matches the backup {} ({} entries)", b.location(), b.entry_count());
        }
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
