//! `lifeboat recover`: find the layout and the backup, map the disks, show
//! the plan, ask, recreate, restore, fix and make the machine boot.

use super::feedback::Terminal;
use super::Ctx;
use crate::cli::RecoverArgs;
use anyhow::{bail, Context};
use lifeboat_archive::read::Backup;
use lifeboat_backup::find::{self, Find, Source};
use lifeboat_backup::keys::Trust;
use lifeboat_config::human;
use lifeboat_layout::capture::block_devices;
use lifeboat_layout::Layout;
use lifeboat_recovery::{mapping, Options, RecoveryError, Settings};
use lifeboat_runner::{Mode, Runner, SystemRunner};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The layout in the rescue system.
const RESCUE_LAYOUT: &str = "/etc/lifeboat/layout.toml";
/// Where an unattended run leaves its one-line failure reason for the console.
const FAILURE_FILE: &str = "/run/lifeboat-failure";

/// Find the backup: --from, else where the rescue medium says, else
/// backup.target; refused unless its catalog is signed by a trusted key (in
/// the rescue system, the public key on the medium); `--insecure-unsigned`
/// (never with --auto) makes that a warning.
fn locate(ctx: &Ctx, a: &RecoverArgs, layout: &Layout, r: &dyn Runner) -> anyhow::Result<Option<Backup>> {
    if a.no_restore {
        return Ok(None);
    }
    let find = Find {
        source: Source::for_recovery(a.from.as_deref(), &ctx.config)?,
        host: layout.meta.hostname.clone(),
        trust: Trust { key_dir: ctx.config.paths.key_dir.clone(), insecure: a.insecure_unsigned && !a.auto },
        unattended: a.auto,
    };
    Ok(Some(find::find(&find, r, &mut Terminal::new(ctx.json))?.backup))
}

fn settings(ctx: &Ctx, a: &RecoverArgs) -> Settings {
    let c = &ctx.config.recover;
    let key =
        a.luks_key_file.clone().or_else(|| (!c.luks_key_file.is_empty()).then(|| PathBuf::from(&c.luks_key_file)));
    Settings {
        keep_size: c.keep_size.clone(),
        headroom_percent: c.headroom_percent,
        luks_key_file: key.map(|k| k.display().to_string()),
        unattended: a.auto,
        regenerate_initramfs: c.regenerate_initramfs,
        bootloader: c.bootloader,
    }
}

/// Ask for a LUKS passphrase on the terminal; it goes to a private file in /run.
fn ask_passphrase() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    eprint!("Passphrase for the new LUKS containers: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let p = PathBuf::from("/run/lifeboat-luks-key");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&p)?;
    f.write_all(line.trim_end_matches('\n').as_bytes())?;
    Ok(p)
}

/// `lifeboat recover`.
pub fn run(ctx: &Ctx, a: RecoverArgs) -> anyhow::Result<ExitCode> {
    if a.auto {
        let _ = std::fs::remove_file(FAILURE_FILE);
    }
    let result = recover(ctx, &a);
    if let (true, Err(e)) = (a.auto, &result) {
        let _ = std::fs::write(FAILURE_FILE, format!("{}\n", e.to_string().lines().next().unwrap_or("")));
    }
    result
}

fn recover(ctx: &Ctx, a: &RecoverArgs) -> anyhow::Result<ExitCode> {
    let probe = SystemRunner::new(Mode::Run);
    let layout_path = a.layout.clone().unwrap_or_else(|| {
        let cfg = &ctx.config.paths.layout_file;
        if !cfg.exists() && Path::new(RESCUE_LAYOUT).exists() {
            PathBuf::from(RESCUE_LAYOUT)
        } else {
            cfg.clone()
        }
    });
    let layout = Layout::load(&layout_path)?;
    let mut s = settings(ctx, a);
    let mut pairs = ctx.config.recover.map.clone();
    if let Some(f) = &a.map_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read the map file {}", f.display()))?;
        pairs.extend(
            text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()).map(String::from),
        );
    }
    pairs.extend(a.map.iter().cloned());
    // Disks mapped on the command line are a clone onto chosen disks: only they are recreated.
    let only_explicit = !a.map.is_empty() || a.map_file.is_some();
    let explicit = mapping::parse_pairs(&pairs)?;
    let backup = locate(ctx, a, &layout, &probe)?;
    // Never write the disk that holds the backup.
    let mut protected = Vec::new();
    if let Some(b) = &backup {
        if let Some(d) = b.local_dir().and_then(lifeboat_layout::safety::device_of_file) {
            protected.push((d.display().to_string(), format!("holds the backup {}", b.location())));
        }
    }
    let nodes = block_devices(&probe);
    let mut plan = lifeboat_recovery::prepare(&layout, &s, &explicit, only_explicit, &nodes, &protected)?;
    let summary = backup.as_ref().map(|b| {
        let bytes: u64 = b.entries.iter().map(|e| e.size).sum();
        (b.location(), b.entries.len() as u64, bytes)
    });
    plan.finish(&layout, &s, summary);
    if ctx.json && a.plan {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Recovery plan for {} (layout {} captured {}):",
        layout.meta.hostname,
        layout_path.display(),
        layout.meta.captured_at
    );
    print!("{}", plan.render());
    if a.plan {
        return Ok(ExitCode::SUCCESS);
    }
    let needs_luks = plan.actions.iter().any(|x| matches!(x, lifeboat_recovery::Action::Luks { .. }));
    if needs_luks && s.luks_key_file.is_none() {
        s.luks_key_file = Some(ask_passphrase()?.display().to_string());
    }
    let erased = plan.erased();
    if !(a.yes || a.auto) {
        if !std::io::stdin().is_terminal() {
            bail!("not asking on a non-terminal: run with --yes to erase {}", erased.join(", "));
        }
        eprint!("This ERASES {}. Type YES to go on: ", erased.join(", "));
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if line.trim() != "YES" {
            println!("Nothing was changed.");
            return Ok(ExitCode::from(1));
        }
    }
    let root = a.root.clone().unwrap_or_else(|| ctx.config.recover.mountpoint.clone());
    let opts = Options {
        root: root.clone(),
        luks_key_file: s.luks_key_file.as_ref().map(PathBuf::from),
        keep_mounted: a.keep_mounted,
    };
    let runner = SystemRunner::new(Mode::Run);
    let start = std::time::Instant::now();
    let tty = std::io::stderr().is_terminal() && !ctx.json;
    let mut say = |line: &str| {
        println!("{line}");
        log::info!("{line}");
    };
    let mut restore = |to: &Path| -> Result<(u64, u64, Vec<String>), RecoveryError> {
        let Some(b) = &backup else { return Ok((0, 0, Vec::new())) };
        let total: u64 = b.entries.iter().map(|e| e.size).sum();
        let t0 = std::time::Instant::now();
        let mut last = std::time::Instant::now();
        let mut progress = |bytes: u64, n: u64| {
            if last.elapsed().as_millis() < if tty { 250 } else { 10_000 } {
                return;
            }
            last = std::time::Instant::now();
            let rate = bytes as f64 / t0.elapsed().as_secs_f64().max(0.001);
            let left = if rate > 0.0 { (total.saturating_sub(bytes) as f64 / rate) as u64 } else { 0 };
            let line = format!(
                "  {} / {}  {n} entries  {:.0} MB/s  ETA {}:{:02}",
                human(bytes),
                human(total),
                rate / 1e6,
                left / 60,
                left % 60
            );
            if tty {
                eprint!("\r{line}   ");
            } else {
                println!("{line}");
            }
        };
        let r = lifeboat_archive::restore::restore_with_progress(b, to, &[], &mut progress)
            .map_err(|e| RecoveryError::Io(to.display().to_string(), std::io::Error::other(e)))?;
        if tty {
            eprintln!();
        }
        println!("  restored {} entries ({}) in {:.1} s", r.restored, human(r.bytes), t0.elapsed().as_secs_f64());
        Ok((r.restored, r.bytes, r.lost))
    };
    let report = lifeboat_recovery::execute(&plan, &runner, &opts, &mut say, &mut restore)?;
    let secs = start.elapsed().as_secs_f64();
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"plan": plan, "report": report, "seconds": secs}))?
        );
    } else {
        println!(
            "phases: {}",
            report.phases.iter().map(|(p, t)| format!("{p} {t:.1} s")).collect::<Vec<_>>().join(", ")
        );
        for l in &report.lost {
            println!("NOT RESTORED {l}");
        }
        for w in &report.warnings {
            println!("warning: {w}");
        }
        println!(
            "recovered onto {} in {:.1} s: {} entries ({}) restored{}",
            plan.disks.iter().map(|d| d.new.as_str()).collect::<Vec<_>>().join(", "),
            secs,
            report.restored,
            human(report.bytes),
            if report.lost.is_empty() { String::new() } else { format!(", {} NOT restored", report.lost.len()) }
        );
    }
    if !report.lost.is_empty() {
        if a.auto {
            let _ = std::fs::write(FAILURE_FILE, format!("{} entries could not be restored\n", report.lost.len()));
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
