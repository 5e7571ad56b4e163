//! One recovery from start to end, as `lifeboat recover` runs it: load the
//! layout, read the disk mapping, find the backup (never on a disk that is
//! then written), plan, show the plan, ask, recreate, restore, fix and make
//! the machine boot. What is shown and asked goes through a [`Console`].

use crate::identity::{CloneFile, Identity};
use crate::{execute, mapping, Options, Plan, RecoveryError, Report, Settings};
use lifeboat_archive::read::Backup;
use lifeboat_backup::find::{self, Find, Source};
use lifeboat_backup::keys::Trust;
use lifeboat_config::Config;
use lifeboat_layout::Layout;
use lifeboat_runner::{Mode, SystemRunner};
use std::path::{Path, PathBuf};

/// The layout in the rescue system.
const RESCUE_LAYOUT: &str = "/etc/lifeboat/layout.toml";

/// What to recover, as the command line says it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The saved layout (the rescue system's, else `paths.layout_file`, when None).
    pub layout: Option<PathBuf>,
    /// The backup's URL (where the rescue medium says, else `backup.target`, when None).
    pub from: Option<String>,
    /// Recreate the storage only; restore no files.
    pub no_restore: bool,
    /// `OLD=NEW` disk mappings; then only the mapped disks are recreated (cloning).
    pub map: Vec<String>,
    /// A file of `OLD=NEW` lines (`#` comments allowed), with the same effect.
    pub map_file: Option<PathBuf>,
    /// Make and show the plan, and stop.
    pub plan_only: bool,
    /// Do not ask before erasing.
    pub yes: bool,
    /// Unattended: ask nothing, refuse an unsafe or ambiguous plan.
    pub auto: bool,
    /// Where to mount the recreated filesystems (`recover.mountpoint` when None).
    pub root: Option<PathBuf>,
    /// Passphrase file for LUKS containers (`recover.luks_key_file` when None).
    pub luks_key_file: Option<PathBuf>,
    /// Leave the recovered filesystems mounted at the end.
    pub keep_mounted: bool,
    /// Restore from a backup whose signature is missing or wrong (never with `auto`).
    pub insecure_unsigned: bool,
    /// A clone file: the restored system gets that identity (host name,
    /// addresses, machine-id, SSH host keys, optionally new UUIDs) instead of
    /// the source's (`recover.clone_file` when None).
    pub clone_file: Option<PathBuf>,
    /// The age identity file that decrypts an encrypted backup (`backup.identity_file` when None).
    pub identity: Option<PathBuf>,
}

/// Where a recovery shows what it does and asks what it must.
pub trait Console: lifeboat_backup::Feedback {
    /// The same console, as the backup lookup's feedback (media found, a medium to insert).
    fn as_feedback(&mut self) -> &mut dyn lifeboat_backup::Feedback;
    /// The plan, before anything is asked or written.
    fn plan(&mut self, plan: &Plan, layout: &Layout, layout_file: &Path);
    /// Ask for the passphrase of the new LUKS containers; returns the private file it went to.
    fn passphrase(&mut self) -> std::io::Result<PathBuf>;
    /// Ask whether to erase these disks; `Err` when nobody can be asked.
    fn confirm(&mut self, erased: &[String]) -> Result<bool, Error>;
    /// One line per step, as it starts.
    fn step(&mut self, line: &str);
    /// How far the restore is: bytes and entries so far, of `total` bytes.
    fn restore_progress(&mut self, _bytes: u64, _entries: u64, _total: u64, _elapsed: std::time::Duration) {}
    /// The restore ended: entries and bytes restored, in seconds.
    fn restored(&mut self, _entries: u64, _bytes: u64, _seconds: f64) {}
}

/// How a recovery ended.
#[derive(Debug)]
pub enum Outcome {
    /// The plan was shown (`plan_only`).
    Planned(Box<Plan>),
    /// The person did not confirm: nothing was changed.
    Declined,
    /// The machine was recovered.
    Recovered {
        /// The plan carried out.
        plan: Box<Plan>,
        /// What was done, lost and warned about.
        report: Report,
        /// How long it took.
        seconds: f64,
    },
}

/// Why a recovery did not start or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The saved layout cannot be read.
    #[error(transparent)]
    Layout(#[from] lifeboat_layout::LayoutError),
    /// The map file cannot be read.
    #[error("cannot read the map file {}", .0.display())]
    MapFile(PathBuf, #[source] std::io::Error),
    /// The backup cannot be found or is refused.
    #[error(transparent)]
    Backup(#[from] lifeboat_backup::Error),
    /// Planning or recreating failed.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// Nobody can confirm the erasure.
    #[error("not asking on a non-terminal: run with --yes to erase {}", .0.join(", "))]
    NotAsking(Vec<String>),
    /// Asking on the terminal failed.
    #[error("cannot ask on the terminal")]
    Ask(#[source] std::io::Error),
}

/// The layout file: the one given, else `paths.layout_file`, else (in the rescue system) the medium's.
fn layout_file(config: &Config, req: &Request) -> PathBuf {
    req.layout.clone().unwrap_or_else(|| {
        let cfg = &config.paths.layout_file;
        if !cfg.exists() && Path::new(RESCUE_LAYOUT).exists() {
            PathBuf::from(RESCUE_LAYOUT)
        } else {
            cfg.clone()
        }
    })
}

/// The recovery settings from the configuration and the request.
fn settings(config: &Config, req: &Request) -> Settings {
    let c = &config.recover;
    let key =
        req.luks_key_file.clone().or_else(|| (!c.luks_key_file.is_empty()).then(|| PathBuf::from(&c.luks_key_file)));
    Settings {
        keep_size: c.keep_size.clone(),
        headroom_percent: c.headroom_percent,
        luks_key_file: key.map(|k| k.display().to_string()),
        unattended: req.auto,
        regenerate_initramfs: c.regenerate_initramfs,
        bootloader: c.bootloader,
        clone: None,
    }
}

/// The interfaces of the machine being recovered, as (name, MAC), loopback left out.
fn interfaces_here() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/class/net") else { return out };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Ok(mac) = std::fs::read_to_string(e.path().join("address")) {
            let mac = mac.trim().to_ascii_lowercase();
            if name != "lo" && !mac.is_empty() && mac != "00:00:00:00:00:00" {
                out.push((name, mac));
            }
        }
    }
    out.sort();
    out
}

/// The clone's identity from the clone file, resolved against the source's
/// interfaces in the layout and this machine's; None without a clone file.
fn clone_identity(config: &Config, req: &Request, layout: &Layout) -> Result<Option<Identity>, RecoveryError> {
    let configured = &config.recover.clone_file;
    let file = req.clone_file.clone().or_else(|| (!configured.is_empty()).then(|| PathBuf::from(configured)));
    let Some(file) = file else { return Ok(None) };
    let c = CloneFile::load(&file)?;
    let source: Vec<(String, Option<String>)> = layout
        .network
        .interfaces
        .iter()
        .filter(|i| i.link_type != "loopback" && i.name != "lo")
        .map(|i| (i.name.clone(), i.mac.clone()))
        .collect();
    let mut identity = Identity::resolve(&c, &layout.meta.hostname, &source, &interfaces_here())?;
    for a in &mut identity.interfaces {
        if let Some(i) = layout.network.interfaces.iter().find(|i| i.name == a.name) {
            a.old_addresses = i.addresses.iter().map(|x| x.address.clone()).collect();
        }
    }
    Ok(Some(identity))
}

/// The `OLD=NEW` pairs of the configuration, the map file and the request.
fn pairs(config: &Config, req: &Request) -> Result<Vec<String>, Error> {
    let mut pairs = config.recover.map.clone();
    if let Some(f) = &req.map_file {
        let text = std::fs::read_to_string(f).map_err(|e| Error::MapFile(f.clone(), e))?;
        pairs.extend(
            text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()).map(String::from),
        );
    }
    pairs.extend(req.map.iter().cloned());
    Ok(pairs)
}

/// The backup to restore (None with `no_restore`): `from`, else where the
/// rescue medium says, else `backup.target`; refused unless signed by a
/// trusted key (in the rescue system, the public key on the medium).
fn backup(config: &Config, req: &Request, host: &str, console: &mut dyn Console) -> Result<Option<Backup>, Error> {
    if req.no_restore {
        return Ok(None);
    }
    let source = Source::for_recovery(req.from.as_deref(), config)?;
    // In the rescue system, the medium it booted from is checked before
    // anything is written (a backup on the media is checked medium by medium as it is read).
    let on_media = matches!(source, Source::Location(lifeboat_backup::location::Location::Media { .. }));
    if Path::new(RESCUE_LAYOUT).exists() && !on_media {
        let probe = SystemRunner::new(Mode::Run);
        lifeboat_backup::media::check_boot_medium(&probe, &config.rescue.label, req.auto, console.as_feedback())?;
    }
    let f = Find {
        source,
        host: host.into(),
        trust: Trust { key_dir: config.paths.key_dir.clone(), insecure: req.insecure_unsigned && !req.auto },
        unattended: req.auto,
        identity: req.identity.clone().or_else(|| {
            let f = &config.backup.identity_file;
            (!f.as_os_str().is_empty()).then(|| f.clone())
        }),
        settings: {
            let mut s = lifeboat_backup::job::target_settings(config);
            // An unattended recovery asks no one for a tape (a changer still loads them).
            s.tape.ask &= !req.auto && !req.yes;
            s
        },
    };
    Ok(Some(find::find(&f, &SystemRunner::new(Mode::Run), console.as_feedback())?.backup))
}

/// How many bytes the image `entry` of the backup needs on its partition:
/// a raw image its size, an NTFS image the volume size its ntfsclone header
/// gives (read from the first frame only); None when the backup has no
/// such file.
fn image_needs(b: &Backup, entry: &str, kind: lifeboat_layout::model::ImageKind) -> Option<Result<u64, String>> {
    use crate::plan::images::{ntfsclone_device_size, NTFSCLONE_HEAD};
    let m = b.entries.iter().find(|m| m.path == entry && m.kind == "file")?;
    if kind == lifeboat_layout::model::ImageKind::Raw {
        return Some(Ok(m.size));
    }
    let mut head = Vec::with_capacity(NTFSCLONE_HEAD);
    let mut take = |_: u64, data: &[u8]| -> std::io::Result<()> {
        head.extend_from_slice(&data[..data.len().min(NTFSCLONE_HEAD - head.len())]);
        if head.len() < NTFSCLONE_HEAD {
            Ok(())
        } else {
            // Enough: the rest is read when it is written.
            Err(std::io::Error::other("header read"))
        }
    };
    let read = lifeboat_archive::restore::read_entry(b, entry, &mut take);
    if head.len() < NTFSCLONE_HEAD {
        return Some(Err(read.err().unwrap_or_else(|| "shorter than an ntfsclone header".into())));
    }
    Some(ntfsclone_device_size(&head).ok_or_else(|| "not an ntfsclone image (its header is wrong)".to_string()))
}

/// Recover this machine as `req` asks.
pub fn recover(config: &Config, req: &Request, console: &mut dyn Console) -> Result<Outcome, Error> {
    let probe = SystemRunner::new(Mode::Run);
    let layout_path = layout_file(config, req);
    let layout = Layout::load(&layout_path)?;
    let mut s = settings(config, req);
    s.clone = clone_identity(config, req, &layout)?;
    // Disks mapped on the command line are a clone onto chosen disks: only they are recreated.
    let only_explicit = !req.map.is_empty() || req.map_file.is_some();
    let explicit = mapping::parse_pairs(&pairs(config, req)?)?;
    let backup = backup(config, req, &layout.meta.hostname, console)?;
    // Never write the disk that holds the backup.
    let mut protected = Vec::new();
    if let Some(b) = &backup {
        if let Some(d) = b.local_dir().and_then(lifeboat_layout::safety::device_of_file) {
            protected.push((d.display().to_string(), format!("holds the backup {}", b.location())));
        }
    }
    let nodes = lifeboat_layout::capture::block_devices(&probe);
    let mut plan = crate::prepare(&layout, &s, &explicit, only_explicit, &nodes, &protected)?;
    let summary = backup.as_ref().map(|b| {
        let bytes: u64 = b.entries.iter().map(|e| e.size).sum();
        (b.location(), b.entries.len() as u64, bytes)
    });
    // Foreign partitions: each image checked against its new partition before anything is written.
    plan.add_images(&layout, &mut |entry, kind| image_needs(backup.as_ref()?, entry, kind))?;
    plan.finish(&layout, &s, summary);
    console.plan(&plan, &layout, &layout_path);
    if req.plan_only {
        return Ok(Outcome::Planned(Box::new(plan)));
    }
    let needs_luks = plan.actions.iter().any(|x| matches!(x, crate::Action::Luks { .. }));
    if needs_luks && s.luks_key_file.is_none() {
        s.luks_key_file = Some(console.passphrase().map_err(Error::Ask)?.display().to_string());
    }
    let without_asking = req.yes || req.auto;
    if !without_asking && !console.confirm(&plan.erased())? {
        return Ok(Outcome::Declined);
    }
    let opts = Options {
        root: req.root.clone().unwrap_or_else(|| config.recover.mountpoint.clone()),
        luks_key_file: s.luks_key_file.as_ref().map(PathBuf::from),
        keep_mounted: req.keep_mounted,
    };
    let runner = SystemRunner::new(Mode::Run);
    let start = std::time::Instant::now();
    let report = {
        // Both callbacks speak to the console; one runs at a time.
        let console = std::cell::RefCell::new(&mut *console);
        let mut say = |line: &str| {
            log::info!("{line}");
            console.borrow_mut().step(line);
        };
        let mut restore = |to: &Path| -> Result<(u64, u64, Vec<String>), RecoveryError> {
            let Some(b) = &backup else { return Ok((0, 0, Vec::new())) };
            let total: u64 = b.entries.iter().map(|e| e.size).sum();
            let t0 = std::time::Instant::now();
            let mut progress =
                |bytes: u64, n: u64| console.borrow_mut().restore_progress(bytes, n, total, t0.elapsed());
            let r = lifeboat_archive::restore::restore_with_progress(b, to, &[], &mut progress)
                .map_err(|e| RecoveryError::Io(to.display().to_string(), std::io::Error::other(e)))?;
            console.borrow_mut().restored(r.restored, r.bytes, t0.elapsed().as_secs_f64());
            Ok((r.restored, r.bytes, r.lost))
        };
        let mut images = |entry: &str, w: &mut dyn FnMut(u64, &[u8]) -> std::io::Result<()>| match &backup {
            Some(b) => lifeboat_archive::restore::read_entry(b, entry, w),
            None => Err(format!("{entry}: no backup to read it from")),
        };
        execute(&plan, &runner, &opts, &mut say, &mut restore, &mut images)?
    };
    Ok(Outcome::Recovered { plan: Box::new(plan), report, seconds: start.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_joins_the_configuration_the_map_file_and_the_command_line() {
        let tmp = tempfile::tempdir().expect("tmp");
        let file = tmp.path().join("map");
        std::fs::write(&file, "# old = new\n/dev/sdb=/dev/vdb  # second disk\n\n").expect("write");
        let mut config = Config::default();
        config.recover.map = vec!["/dev/sda=/dev/vda".into()];
        let req = Request { map_file: Some(file), map: vec!["/dev/sdc=/dev/vdc".into()], ..Request::default() };
        assert_eq!(
            pairs(&config, &req).expect("pairs"),
            vec!["/dev/sda=/dev/vda", "/dev/sdb=/dev/vdb", "/dev/sdc=/dev/vdc"]
        );
        let missing = Request { map_file: Some(tmp.path().join("none")), ..Request::default() };
        assert!(pairs(&config, &missing).expect_err("missing").to_string().starts_with("cannot read the map file"));
    }

    #[test]
    fn the_key_file_given_wins_over_the_configured_one_and_auto_is_unattended() {
        let mut config = Config::default();
        config.recover.luks_key_file = "/etc/key".into();
        let s = settings(&config, &Request { auto: true, ..Request::default() });
        assert_eq!((s.luks_key_file.as_deref(), s.unattended), (Some("/etc/key"), true));
        let s = settings(&config, &Request { luks_key_file: Some("/run/k".into()), ..Request::default() });
        assert_eq!(s.luks_key_file.as_deref(), Some("/run/k"));
        let given = Request { layout: Some("/x/layout.toml".into()), ..Request::default() };
        assert_eq!(layout_file(&config, &given), PathBuf::from("/x/layout.toml"));
    }
}
