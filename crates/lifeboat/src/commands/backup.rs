//! `lifeboat backup`: make a backup and print its summary (or list, prune, show one).

use super::feedback::Terminal;
use super::Ctx;
use crate::cli::{BackupArgs, BackupCmd};
use lifeboat_backup::chain::Kind;
use lifeboat_backup::job::{make_kind, Made};
use lifeboat_backup::select::Request;
use lifeboat_config::{human, SnapshotMode};
use lifeboat_runner::{Mode, SystemRunner};
use std::process::ExitCode;

/// Back up, publish atomically, and print the summary (or list, prune, or show one backup).
pub fn run(ctx: &Ctx, a: BackupArgs) -> anyhow::Result<ExitCode> {
    match a.cmd {
        Some(BackupCmd::List { target }) => return super::list::list(ctx, target),
        Some(BackupCmd::Prune(p)) => return super::list::prune(ctx, p),
        Some(BackupCmd::Info(from)) => return super::list::info(ctx, &from),
        None => {}
    }
    let req = Request {
        url: a.target.unwrap_or_else(|| ctx.config.backup.target.clone()),
        root: a.root,
        paths: a.paths,
        volume_size: a.volume_size.unwrap_or(ctx.config.backup.volume_size).0,
    };
    let mut config = ctx.config.clone();
    config.backup.tape.overwrite |= a.overwrite_tape;
    if let Some(when) = &a.snapshot {
        config.backup.snapshot = when.parse()?;
    }
    if config.backup.snapshot != SnapshotMode::Never {
        super::remove_snapshots_on_signal()?;
    }
    let kind = match (a.incremental, a.full) {
        (true, _) => Kind::Incremental,
        (_, true) => Kind::Full,
        _ => Kind::Policy,
    };
    let made = make_kind(&config, &req, kind, &SystemRunner::new(Mode::Run), &mut Terminal::new(ctx.json))?;
    if ctx.json || !(ctx.quiet && made.clean()) {
        print(ctx, &made)?;
    }
    // Like GNU tar ("file changed as we read it"): a file that changed while
    // it was read, or could not be read, makes the exit 1.
    Ok(if made.clean() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The summary of a published backup, with what was not stored as it was.
fn print(ctx: &Ctx, made: &Made) -> anyhow::Result<()> {
    let (s, done, secs) = (&made.catalog.stats, made.location(), made.seconds);
    if ctx.json {
        let v = serde_json::json!({ "backup": done, "seconds": secs, "catalog": made.catalog });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let grew = s.changed.len().saturating_sub(s.shrank.len());
    if s.unreadable.is_empty() && s.shrank.is_empty() && grew == 0 {
        println!("backup {done} complete");
    } else if s.unreadable.is_empty() && s.shrank.is_empty() {
        println!(
            "backup {done} complete, but {grew} file(s) changed while being read: each is stored as it was when \
             reading began (listed below)"
        );
    } else {
        let mut why = Vec::new();
        if !s.unreadable.is_empty() {
            why.push(format!("INCOMPLETE: {} entries could not be read", s.unreadable.len()));
        }
        if !s.shrank.is_empty() {
            why.push(format!(
                "CHANGED: {} file(s) shrank while being read and are not stored as they were",
                s.shrank.len()
            ));
        }
        println!("backup {done} written, {} (listed below and in backup info)", why.join("; "));
    }
    println!(
        "  {} entries ({} files), {} read, {} written in {} volume(s), ratio {:.3}, {:.0} MB/s",
        s.entries,
        s.files,
        human(s.bytes_in),
        human(s.bytes_out),
        made.catalog.volumes.len(),
        s.bytes_out as f64 / s.bytes_in.max(1) as f64,
        s.bytes_in as f64 / secs.max(0.001) / 1e6
    );
    if let Some(p) = &made.catalog.parent {
        println!(
            "  incremental on {} (chain of {} since the full backup {}): {} entries stored, {} unchanged, {} deleted",
            p.name,
            p.depth + 1,
            p.full,
            s.entries,
            s.unchanged,
            s.deleted
        );
    }
    if s.sockets_skipped > 0 {
        println!("  {} sockets skipped (they cannot be archived)", s.sockets_skipped);
    }
    for c in s.changed.iter().filter(|c| !s.shrank.iter().any(|x| x.starts_with(&format!("{c}: ")))) {
        println!("  changed while being read: {c}");
    }
    for c in &s.shrank {
        println!("  CHANGED while being read: {c}");
    }
    for u in &s.unreadable {
        println!("  NOT BACKED UP: {u}");
    }
    Ok(())
}
