//! `lifeboat mkbackup`: the rescue medium and the backup in one go.

use super::feedback::Terminal;
use super::Ctx;
use crate::cli::MkbackupArgs;
use lifeboat_backup::job::Made;
use lifeboat_backup::mkbackup::{mkbackup, Request};
use lifeboat_config::{human, MkbackupMode};
use lifeboat_runner::{Mode, SystemRunner};
use std::process::ExitCode;

/// `lifeboat mkbackup`; exit 1 when the backup could not store everything as it was.
pub fn run(ctx: &Ctx, a: MkbackupArgs) -> anyhow::Result<ExitCode> {
    let mode = match a.mode.as_deref() {
        Some(m) => m.parse()?,
        None => ctx.config.mkbackup.mode,
    };
    let req =
        Request { mode, target: a.target, output: a.output, auto_recover: a.auto_recover, kernel: None, format: None };
    let mut feedback = Terminal::new(ctx.json).on_made(report);
    let mut config = ctx.config.clone();
    config.backup.tape.overwrite |= a.overwrite_tape;
    if config.backup.snapshot != lifeboat_config::SnapshotMode::Never {
        super::remove_snapshots_on_signal()?;
    }
    let done = mkbackup(&config, &req, &SystemRunner::new(Mode::Run), &mut feedback)?;
    if ctx.quiet && done.lost() == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    for (p, s) in &done.rescue.outputs {
        println!("wrote {} ({})", p.display(), human(*s));
    }
    if mode == MkbackupMode::Media && done.media > 1 {
        println!(
            "the backup fills {} media of {}: burn them all; recovery boots from the first and reads the others from any drive",
            done.media,
            human(done.medium_size)
        );
    }
    println!("kernel: {} ({})", done.rescue.kernel.version, done.rescue.kernel.reason);
    println!("layout saved to {}; rescue media built in {:.1} s", done.layout_file.display(), done.rescue.seconds);
    if done.lost() > 0 {
        println!(
            "the backup is INCOMPLETE: {} entries are not stored as they were (listed above); exit 1",
            done.lost()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Print the backup's summary and warnings, as soon as it is published.
///
/// Files that grew or were touched while being read are stored as their
/// first bytes when reading began, and are named here; on a live system
/// (journals, logs) there always are some, so they do not fail mkbackup
/// (`lifeboat backup` exits 1 for them, as GNU tar does).
fn report(made: &Made) {
    let s = &made.catalog.stats;
    // -q: only what is not stored as it was (mkbackup then exits 1).
    if super::feedback::quiet() {
        for c in &s.shrank {
            println!("  CHANGED while being read, not stored as it was: {c}");
        }
        for u in &s.unreadable {
            println!("  NOT BACKED UP: {u}");
        }
        return;
    }
    println!(
        "backup {}: {} entries, {} read, {} written, {:.1} s",
        made.location(),
        s.entries,
        human(s.bytes_in),
        human(s.bytes_out),
        made.seconds
    );
    for c in s.changed.iter().filter(|c| !s.shrank.iter().any(|x| x.starts_with(&format!("{c}: ")))) {
        println!("  changed while being read (stored as it was when reading began): {c}");
    }
    for c in &s.shrank {
        println!("  CHANGED while being read, not stored as it was: {c}");
    }
    for u in &s.unreadable {
        println!("  NOT BACKED UP: {u}");
    }
}
