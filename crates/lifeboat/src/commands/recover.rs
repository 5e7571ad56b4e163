//! `lifeboat recover`: find the layout and the backup, map the disks, show
//! the plan, ask, recreate, restore, fix and make the machine boot.

use super::Ctx;
use crate::cli::RecoverArgs;
use anyhow::{bail, Context};
use lifeboat_archive::read::Backup;
use lifeboat_config::human;
use lifeboat_layout::capture::block_devices;
use lifeboat_layout::Layout;
use lifeboat_recovery::{mapping, Options, RecoveryError, Settings};
use lifeboat_runner::{Cmd, Mode, Runner, SystemRunner};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where the rescue medium says the backup went (`/etc/lifeboat/backup-location.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Location {
    /// `target` (a directory, NFS or USB mount) or `media` (on the rescue medium).
    pub kind: String,
    /// The backup directory when it was made (target), or its path on the medium (media).
    pub path: String,
    /// UUID of the filesystem that holds it (target), to find and mount it in the rescue system.
    pub fs_uuid: Option<String>,
    /// Where that filesystem was mounted when the backup was made.
    pub fs_mountpoint: Option<String>,
    /// Volume label of the medium (media).
    pub label: Option<String>,
    /// The NFS export that holds it (`server:/export`), mounted at `fs_mountpoint` when the backup was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<String>,
}

/// Where the location file is in the rescue system.
pub const LOCATION_FILE: &str = "/etc/lifeboat/backup-location.json";
/// The layout in the rescue system.
const RESCUE_LAYOUT: &str = "/etc/lifeboat/layout.toml";
/// Where an unattended run leaves its one-line failure reason for the console.
const FAILURE_FILE: &str = "/run/lifeboat-failure";

/// Mount `dev` read-only on `dir` unless something is mounted there already.
fn mount_ro(r: &dyn Runner, dev: &str, dir: &Path, fstype: Option<&str>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    if lifeboat_recovery::execute::mounted_at(dir) {
        return Ok(());
    }
    let mut c = Cmd::new("mount").args(["-o", "ro"]);
    if let Some(t) = fstype {
        c = c.args(["-t", t]);
    }
    r.apply(&c.arg(dev).arg(dir)).with_context(|| format!("cannot mount {dev} to read the backup"))?;
    Ok(())
}

/// Every block device with its signature: (path, TYPE, UUID, LABEL).
fn signatures(r: &dyn Runner) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for n in block_devices(r) {
        let Ok(o) = r.probe(&Cmd::new("blkid").args(["-p", "-o", "export", &n.path])) else { continue };
        let kv = lifeboat_layout::capture::parse_export(&o.text());
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
        out.push((n.path.clone(), get("TYPE"), get("UUID"), get("LABEL")));
    }
    out
}

/// Open a backup for recovery: refused unless its catalog is signed by a
/// trusted key (in the rescue system, the public key on the medium);
/// `--insecure-unsigned` (never with --auto) makes that a warning.
fn open_trusted(ctx: &Ctx, a: &RecoverArgs, dir: &Path) -> anyhow::Result<Backup> {
    Ok(super::trust::open(ctx, dir, a.insecure_unsigned && !a.auto)?.0)
}

/// A backup directory, or the newest backup of `host` on a target.
fn open_backup(ctx: &Ctx, a: &RecoverArgs, url: &str, host: &str) -> anyhow::Result<Backup> {
    let t = lifeboat_archive::target::open(url)?;
    let dir = if lifeboat_archive::target::is_complete(&t.root) {
        t.root.clone()
    } else {
        // Never a silent fallback: a newer interrupted or damaged backup is refused, naming it.
        t.newest(host)?
    };
    open_trusted(ctx, a, &dir)
}

/// A backup spread over a set of media: find media 2..N by their labels
/// (in other drives, or virtual media), mount them, and gather the whole
/// backup in one directory of links. The catalog and manifest are copied
/// into memory. A medium that is not there is asked for, or (unattended)
/// is an error naming it.
fn gather_media(
    r: &dyn Runner,
    set: &lifeboat_rescue::MediaSet,
    first: &Path,
    path: &str,
    unattended: bool,
) -> anyhow::Result<PathBuf> {
    let all = PathBuf::from("/run/lifeboat/backup-set");
    let _ = std::fs::remove_dir_all(&all);
    std::fs::create_dir_all(&all)?;
    let link_all = |from: &Path| -> anyhow::Result<()> {
        for e in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?.flatten() {
            let name = e.file_name();
            // Only regular files of the medium (a link or a device there is not part of a backup).
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if name.to_string_lossy().starts_with("vol-") {
                std::os::unix::fs::symlink(e.path(), all.join(&name))?;
            } else {
                std::fs::copy(e.path(), all.join(&name))?;
            }
        }
        Ok(())
    };
    link_all(first)?;
    for k in 2..=set.of {
        let label = set.labels.get(k as usize - 1).cloned().unwrap_or_default();
        loop {
            if let Some(dev) = signatures(r).into_iter().find(|s| s.1 == "iso9660" && s.3 == label).map(|s| s.0) {
                let mnt = PathBuf::from(format!("/run/lifeboat/medium-{k}"));
                mount_ro(r, &dev, &mnt, Some("iso9660"))?;
                link_all(&mnt.join(path.trim_start_matches('/')))?;
                println!("medium {k} of {} ({label}) found in {dev}", set.of);
                break;
            }
            if unattended || !std::io::stdin().is_terminal() {
                bail!(
                    "medium {k} of {} (label {label}) is not in any drive: attach every medium of the set at once (more drives, or virtual media), or recover interactively",
                    set.of
                );
            }
            eprint!(
                "Put medium {k} of {} (label {label}) into another drive and press Enter (or type skip to go on without it): ",
                set.of
            );
            std::io::stderr().flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            if line.trim() == "skip" {
                eprintln!("going on without medium {k}: what is stored on it will be listed as not restored");
                break;
            }
        }
    }
    Ok(all)
}

/// Find the backup: --from, else where the rescue medium says, else backup.target.
fn locate(ctx: &Ctx, a: &RecoverArgs, layout: &Layout, r: &dyn Runner) -> anyhow::Result<Option<Backup>> {
    let host = &layout.meta.hostname;
    if a.no_restore {
        return Ok(None);
    }
    if let Some(url) = &a.from {
        return open_backup(ctx, a, url, host).map(Some);
    }
    if let Ok(text) = std::fs::read_to_string(LOCATION_FILE) {
        let loc: Location = serde_json::from_str(&text).with_context(|| format!("{LOCATION_FILE} is damaged"))?;
        match loc.kind.as_str() {
            "media" => {
                let label = loc.label.clone().unwrap_or_else(|| ctx.config.rescue.label.clone());
                let mnt = PathBuf::from("/run/lifeboat/medium");
                let dev =
                    signatures(r).into_iter().find(|s| s.1 == "iso9660" && s.3 == label).map(|s| s.0).with_context(
                        || format!("the backup is on the rescue medium, but no medium labelled {label} is in a drive"),
                    )?;
                mount_ro(r, &dev, &mnt, Some("iso9660"))?;
                let dir = mnt.join(loc.path.trim_start_matches('/'));
                let set = std::fs::read_to_string(mnt.join(lifeboat_rescue::MEDIA_SET_FILE))
                    .ok()
                    .and_then(|t| serde_json::from_str::<lifeboat_rescue::MediaSet>(&t).ok());
                return match set.filter(|s| s.of > 1) {
                    Some(set) => {
                        let mut b = open_trusted(ctx, a, &gather_media(r, &set, &dir, &loc.path, a.auto)?)?;
                        // The set is a directory of links that recovery made to the volumes on the media.
                        b.volume_links = true;
                        Ok(Some(b))
                    }
                    None => Ok(Some(open_trusted(ctx, a, &dir)?)),
                };
            }
            "target" => {
                let p = Path::new(&loc.path);
                if lifeboat_archive::target::is_complete(p) {
                    return Ok(Some(open_trusted(ctx, a, p)?));
                }
                if let (Some(export), Some(mp)) = (&loc.nfs, &loc.fs_mountpoint) {
                    let mnt = PathBuf::from("/run/lifeboat/backup");
                    std::fs::create_dir_all(&mnt)?;
                    if !lifeboat_recovery::execute::mounted_at(&mnt) {
                        r.apply(&Cmd::new("mount").args(["-t", "nfs", "-o", "ro,nolock", export]).arg(&mnt)).with_context(
                            || format!("cannot mount the NFS export {export} that holds the backup: is the network up (ip addr) and the server reachable? Or mount it yourself and give --from"),
                        )?;
                    }
                    let rel = p.strip_prefix(mp).unwrap_or(p);
                    return Ok(Some(open_trusted(ctx, a, &mnt.join(rel))?));
                }
                if let (Some(uuid), Some(mp)) = (&loc.fs_uuid, &loc.fs_mountpoint) {
                    let dev = signatures(r).into_iter().find(|s| &s.2 == uuid).map(|s| s.0).with_context(|| {
                        format!("the backup is on the filesystem with UUID {uuid}, and no disk here has it: attach the backup disk, or give --from")
                    })?;
                    let mnt = PathBuf::from("/run/lifeboat/backup");
                    mount_ro(r, &dev, &mnt, None)?;
                    let rel = p.strip_prefix(mp).unwrap_or(p);
                    return Ok(Some(open_trusted(ctx, a, &mnt.join(rel))?));
                }
                bail!("the backup was written to {} and is not there: mount it (NFS, USB) or give --from", loc.path);
            }
            other => bail!("{LOCATION_FILE}: unknown kind `{other}`"),
        }
    }
    if !ctx.config.backup.target.is_empty() {
        return open_backup(ctx, a, &ctx.config.backup.target, host).map(Some);
    }
    bail!("no backup given: use --from file:///DIR, or --no-restore to recreate the storage only")
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
        if let Some(d) = lifeboat_layout::safety::device_of_file(&b.dir) {
            protected.push((d.display().to_string(), format!("holds the backup {}", b.dir.display())));
        }
    }
    let nodes = block_devices(&probe);
    let mut plan = lifeboat_recovery::prepare(&layout, &s, &explicit, only_explicit, &nodes, &protected)?;
    let summary = backup.as_ref().map(|b| {
        let bytes: u64 = b.entries.iter().map(|e| e.size).sum();
        (b.dir.display().to_string(), b.entries.len() as u64, bytes)
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
