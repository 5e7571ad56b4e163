//! `lifeboat drill`: proof that the rescue medium recovers this machine.
//!
//! A drill boots the actual rescue medium in a VM (QEMU through
//! `lifeboat-vm`; KVM when usable, TCG otherwise) with blank disks sized
//! from the saved layout, no network and the backup attached read-only;
//! it chooses the medium's unattended-recovery entry in the boot
//! menu over the serial console, waits for the recovery, compares the
//! recovered filesystems with the backup's manifest from the host before
//! they ever boot, then boots the recovered disks alone and waits for
//! multi-user on an isolated network (QEMU's user network with
//! `restrict=on`: no route to the host or production, so a drilled clone
//! never answers with production's addresses). Everything happens on scratch images that are removed
//! afterwards; the report lists what recovery changed on purpose.
//!
//! The report (JSON and HTML, [`report`]) has the verdict, the time of every
//! phase (the measured recovery time objective), the disks before and after
//! as a picture, the differences and the console logs. [`drill`] returns it;
//! the caller decides the exit code from [`report::Verdict`].

pub mod compare;
pub mod disks;
pub mod phases;
pub mod report;
pub mod tree;

pub use lifeboat_vm::Firmware;

use lifeboat_backup::find::{Find, Source};
use lifeboat_backup::location::Location;
use lifeboat_backup::Feedback;
use lifeboat_config::{Config, DrillAccel, DrillFirmware};
use lifeboat_layout::model::{self, Layout};
use lifeboat_runner::Runner;
use lifeboat_vm::{AccelChoice, Boot, Console, Media, VmError};
use report::{Comparison, MultiUser, Phase, Report, Source as PhaseSource, Verdict};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Errors that stop a drill before it has a report to give (what it needs
/// is missing); a drill that runs and fails is a [`Report`] with
/// [`Verdict::Failed`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The saved layout cannot be read.
    #[error("cannot read the saved layout {0} (make one with `lifeboat mkbackup` or `lifeboat layout save`, or give --layout FILE): {1}")]
    Layout(PathBuf, #[source] lifeboat_layout::LayoutError),
    /// The rescue medium is not there.
    #[error("no rescue medium at {0}: make one with `lifeboat mkbackup` (or `mkrescue`), or give --medium ISO")]
    NoMedium(PathBuf),
    /// The layout has no disk to recreate.
    #[error("the saved layout has no disk that recovery recreates (all excluded?)")]
    NoDisks,
    /// A disk factor that is not a positive number up to 64.
    #[error("--disk-factor {0}: give a number above 0 and at most 64 (1 = the same size as in the layout)")]
    DiskFactor(f64),
    /// The backup cannot be reached by the isolated VM.
    #[error("the drill cannot give the VM the backup {0}: its network is isolated, so it reads only a backup on a disk (give --backup-disk IMAGE|DEVICE) or on the rescue media (mkbackup.mode = \"media\")")]
    Unreachable(String),
    /// The VM cannot run here.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// A host command failed.
    #[error("cannot {0}: {1}")]
    Command(String, #[source] lifeboat_runner::RunError),
    /// Finding or opening the backup failed.
    #[error(transparent)]
    Backup(lifeboat_backup::Error),
    /// Host I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// What to drill.
#[derive(Debug)]
pub struct Request {
    /// The rescue medium (default: `paths.output_dir/lifeboat-HOST.iso`);
    /// the further media of its set (`lifeboat-HOST-2.iso`, ...) beside it go in further drives.
    pub medium: Option<PathBuf>,
    /// The saved layout the medium carries (default: `paths.layout_file`).
    pub layout_file: Option<PathBuf>,
    /// The backup the recovered files are compared with.
    pub find: Find,
    /// What holds the backup, attached read-only to the rescue VM (an image
    /// or a block device); default: the disk holding a `file://` backup.
    pub backup_disk: Option<PathBuf>,
    /// Firmware (default `drill.firmware`).
    pub firmware: Option<Firmware>,
    /// Blank disk size relative to the layout's.
    pub disk_factor: f64,
    /// Where the report goes (default `drill.report_dir`).
    pub report_dir: Option<PathBuf>,
    /// Keep the recovered disk images (in the report directory) instead of removing them.
    pub keep_disks: bool,
}

/// A drill that ran (passed or failed).
#[derive(Debug)]
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// Its directory (`report.json`, `report.html`, console logs).
    pub dir: PathBuf,
    /// Old report directories removed (`drill.keep_reports`).
    pub removed: Vec<PathBuf>,
}

/// The GRUB menu of lifeboat's media: its second entry is the unattended recovery.
const MENU_NEEDLES: &[&str] = &["GNU GRUB", "unattended recovery"];
/// Home, Down, Enter on a serial terminal (GRUB reads VT100 keys).
const KEYS: &[&[u8]] = &[b"\x1b[H", b"\x1b[B", b"\r"];

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn stamp() -> String {
    now_rfc3339().replace([':', '-'], "")
}

/// The media of the set: `medium`, then `STEM-2.iso`, `STEM-3.iso`, ... while they exist.
pub fn media_set(medium: &Path) -> Vec<PathBuf> {
    let mut out = vec![medium.to_path_buf()];
    let stem = medium.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    for k in 2..100 {
        let next = medium.with_file_name(format!("{stem}-{k}.iso"));
        if !next.exists() {
            break;
        }
        out.push(next);
    }
    out
}

/// What holds the backup for the VM: the given disk, none for a backup on
/// the media, else the disk holding a `file://` backup's directory.
fn backup_attachment(req: &Request) -> Result<Option<PathBuf>, Error> {
    if let Some(d) = &req.backup_disk {
        return Ok(Some(d.clone()));
    }
    match &req.find.source {
        Source::Location(Location::Media { .. }) => Ok(None),
        Source::Location(Location::Disk { path, .. } | Location::Directory { path, .. }) => {
            lifeboat_layout::safety::device_of_file(path)
                .map(Some)
                .ok_or_else(|| Error::Unreachable(path.display().to_string()))
        }
        Source::Url(u) if u.starts_with("file://") => {
            let p = PathBuf::from(u.trim_start_matches("file://"));
            lifeboat_layout::safety::device_of_file(&p).map(Some).ok_or_else(|| Error::Unreachable(u.clone()))
        }
        Source::Url(u) => Err(Error::Unreachable(u.clone())),
        Source::Location(l) => Err(Error::Unreachable(format!("{l:?}"))),
    }
}

fn firmware_of(req: &Request, config: &Config, layout: &Layout) -> Firmware {
    req.firmware.unwrap_or(match config.drill.firmware {
        DrillFirmware::Bios => Firmware::Bios,
        DrillFirmware::Uefi => Firmware::Uefi,
        DrillFirmware::Auto => match layout.bootloader.firmware {
            model::Firmware::Uefi => Firmware::Uefi,
            model::Firmware::Bios => Firmware::Bios,
        },
    })
}

/// The phases and the RTO from the times measured and recover's report.
pub fn timeline(
    boot: Option<f64>,
    rescue_total: Option<f64>,
    reported: &[(String, f64)],
    first_boot: Option<f64>,
) -> (Vec<Phase>, Option<f64>) {
    let mut out = Vec::new();
    if let Some(b) = boot {
        out.push(Phase { name: "boot".into(), seconds: b, source: PhaseSource::Measured });
    }
    for (n, s) in reported {
        out.push(Phase { name: n.clone(), seconds: *s, source: PhaseSource::Console });
    }
    if let Some(total) = rescue_total {
        let known: f64 = boot.unwrap_or(0.0) + reported.iter().map(|(_, s)| s).sum::<f64>();
        let other = total - known;
        if other > 0.05 {
            out.push(Phase { name: "other".into(), seconds: other, source: PhaseSource::Measured });
        }
    }
    if let Some(f) = first_boot {
        out.push(Phase { name: "first boot".into(), seconds: f, source: PhaseSource::Measured });
    }
    let rto = match (rescue_total, first_boot) {
        (Some(r), Some(f)) => Some(r + f),
        _ => None,
    };
    (out, rto)
}

/// The verdict and its reason, from what the drill saw.
pub fn judge(recovery_error: Option<&str>, multi_user: &MultiUser, c: &Comparison) -> (Verdict, Option<String>) {
    if let Some(e) = recovery_error {
        return (Verdict::Failed, Some(format!("recovery failed: {e}")));
    }
    if !c.done {
        let why = c
            .filesystems
            .iter()
            .find(|f| f.mountpoint == "/")
            .and_then(|f| f.why_not.clone())
            .unwrap_or_else(|| "the layout has no root filesystem on a recreated disk".into());
        return (Verdict::Failed, Some(format!("the recovered files were not compared with the backup: {why}")));
    }
    if !c.differences.is_empty() {
        let first: Vec<String> = c.differences.iter().take(3).map(|d| format!("{} {}", d.what, d.path)).collect();
        return (
            Verdict::Failed,
            Some(format!("{} file(s) differ from the backup (first: {})", c.differences.len(), first.join(", "))),
        );
    }
    if !multi_user.reached {
        return (
            Verdict::Failed,
            Some(
                "the recovered system did not show that it reached multi-user on its serial console (systemd's \
                 \"Reached target multi-user.target\" or a login prompt); does its kernel command line have \
                 console=ttyS0 and no `quiet`?"
                    .into(),
            ),
        );
    }
    (Verdict::Passed, None)
}

/// Choose the unattended-recovery entry of the medium's boot menu.
fn choose_unattended(c: &mut Console) -> Result<(), VmError> {
    c.expect_any_from(0, MENU_NEEDLES, Duration::from_secs(300))?;
    std::thread::sleep(Duration::from_millis(500));
    for k in KEYS {
        c.send(k)?;
        std::thread::sleep(Duration::from_millis(400));
    }
    Ok(())
}

/// Poll the console until `check` finds something in it, QEMU stops, or
/// time runs out; meanwhile keep `log` up to date (so `tail -f` shows a
/// running drill, and a drill that is killed leaves its console behind).
fn wait_console(
    c: &mut Console,
    limit: Duration,
    log: &Path,
    check: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let deadline = Instant::now() + limit;
    let mut written = 0;
    let mut last = Instant::now();
    loop {
        let t = c.transcript();
        if t.len() != written && last.elapsed() >= Duration::from_secs(1) {
            let _ = std::fs::write(log, &t);
            written = t.len();
            last = Instant::now();
        }
        if let Some(found) = check(&t) {
            return Some(found);
        }
        if c.stopped() || Instant::now() > deadline {
            return check(&c.transcript());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Run a drill and write its report.
pub fn drill(
    config: &Config,
    req: &Request,
    runner: &dyn Runner,
    feedback: &mut dyn Feedback,
) -> Result<Outcome, Error> {
    let started_at = now_rfc3339();
    let layout_file = req.layout_file.clone().unwrap_or_else(|| config.paths.layout_file.clone());
    let layout = Layout::load(&layout_file).map_err(|e| Error::Layout(layout_file.clone(), e))?;
    let host = layout.meta.hostname.clone();
    let medium = req.medium.clone().unwrap_or_else(|| config.paths.output_dir.join(format!("lifeboat-{host}.iso")));
    if !medium.is_file() {
        return Err(Error::NoMedium(medium));
    }
    let media = media_set(&medium);
    let backup_disk = backup_attachment(req)?;
    let firmware = firmware_of(req, config, &layout);
    let choice = match config.drill.accel {
        DrillAccel::Auto => AccelChoice::Auto,
        DrillAccel::Kvm => AccelChoice::Kvm,
        DrillAccel::Tcg => AccelChoice::Tcg,
    };
    let accel = lifeboat_vm::choose_accel(choice, runner, None);
    log::info!("drill: {} ({})", accel.accel, accel.reason);

    let report_root = req.report_dir.clone().unwrap_or_else(|| config.drill.report_dir.clone());
    let dir = report_root.join(format!("drill-{}", stamp()));
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("cannot create {}", dir.display())))?;
    let disks_dir = dir.join("disks");
    std::fs::create_dir_all(&disks_dir).map_err(Error::io(format!("cannot create {}", disks_dir.display())))?;
    let disks = disks::plan(&layout, req.disk_factor, &disks_dir)?;
    disks::create(&disks)?;
    let mut notes = Vec::new();

    // 1. The rescue medium recovers onto the blank disks, with no network
    // at all (the backup is on a disk or the media).
    let rescue_log_file = dir.join("console-rescue.log");
    let mut b = Boot::new(&format!("drill of {host}: rescue"), firmware);
    b.accel = accel.accel;
    b.nic = false;
    b.memory_mib = config.drill.memory_mib;
    b.media.push(Media::Cdrom(medium.clone()));
    for d in &disks {
        b.media.push(if d.nvme {
            Media::Nvme { image: d.image.clone(), serial: d.serial.clone() }
        } else {
            Media::Disk { image: d.image.clone(), serial: d.serial.clone(), read_only: false }
        });
    }
    for m in media.iter().skip(1) {
        b.media.push(Media::Cdrom(m.clone()));
    }
    if let Some(bd) = &backup_disk {
        b.media.push(Media::Disk { image: bd.clone(), serial: "backup".into(), read_only: true });
    }
    log::info!("drill: booting {} ({firmware:?}) with {} blank disk(s)", medium.display(), disks.len());
    let mut rescue = lifeboat_vm::boot_with(&b, runner)?;
    let t0 = Instant::now();
    let limit = Duration::from_secs(u64::from(config.drill.recovery_timeout_minutes) * 60);
    let mut recovery_error: Option<String> = None;
    let mut boot_secs = None;
    let mut rescue_secs = None;
    match choose_unattended(&mut rescue) {
        Err(e) => recovery_error = Some(format!("the medium's boot menu did not appear on the serial console: {e}")),
        Ok(()) => {
            let started = wait_console(&mut rescue, Duration::from_secs(300), &rescue_log_file, |t| {
                (t.contains("lifeboat.recover=auto") && t.contains("Command line"))
                    .then(String::new)
                    .or_else(|| t.contains("Recovery plan for").then(String::new))
            });
            if started.is_none() {
                recovery_error = Some(
                    "the unattended-recovery entry did not start (no kernel command line with lifeboat.recover=auto \
                     on the console)"
                        .into(),
                );
            }
        }
    }
    if recovery_error.is_none() {
        let plan = wait_console(&mut rescue, limit, &rescue_log_file, |t| {
            ["Recovery plan for", "lifeboat: recovery "].iter().any(|n| t.contains(n)).then(String::new)
        });
        boot_secs = plan.map(|_| t0.elapsed().as_secs_f64());
        let end = wait_console(&mut rescue, limit.saturating_sub(t0.elapsed()), &rescue_log_file, |t| {
            if t.contains("lifeboat: recovery succeeded") {
                Some("ok".into())
            } else {
                t.contains("lifeboat: recovery failed").then(|| "failed".into())
            }
        });
        match end.as_deref() {
            Some("ok") => {
                rescue_secs = Some(t0.elapsed().as_secs_f64());
                if rescue.wait_poweroff(Duration::from_secs(120)).is_err() {
                    notes.push("the rescue system did not power off by itself after recovering; it was stopped".into());
                }
            }
            Some(_) => {
                recovery_error = Some(
                    phases::failure_reason(&rescue.transcript()).unwrap_or_else(|| "no reason on the console".into()),
                )
            }
            None if rescue.stopped() => {
                recovery_error = Some(format!(
                    "the rescue VM stopped before the recovery ended (qemu {})",
                    rescue.exit_status().unwrap_or("?")
                ))
            }
            None => {
                recovery_error = Some(format!("no result within {} minutes", config.drill.recovery_timeout_minutes))
            }
        }
    }
    let rescue_log = rescue.stop();
    let reported = phases::recovery_phases(&rescue_log);
    let mut consoles = vec![("rescue".to_string(), rescue_log)];

    // 2. The recovered files against the backup, before the first boot.
    let mut comparison = Comparison::default();
    let mut layout_after = Vec::new();
    if recovery_error.is_none() {
        match compare::compare(&layout, &disks, &req.find, &dir.join("root"), runner, feedback) {
            Ok((c, after)) => {
                comparison = c;
                layout_after = after;
            }
            Err(e) => notes.push(format!("the comparison with the backup failed: {e}")),
        }
        let _ = std::fs::remove_dir_all(dir.join("root"));
    }

    // 3. The recovered disks boot alone.
    let mut multi_user = MultiUser::default();
    if recovery_error.is_none() {
        let mut b = Boot::new(&format!("drill of {host}: first boot"), firmware);
        b.accel = accel.accel;
        b.restrict_net = true;
        b.memory_mib = config.drill.memory_mib;
        for d in &disks {
            b.media.push(if d.nvme {
                Media::Nvme { image: d.image.clone(), serial: d.serial.clone() }
            } else {
                Media::Disk { image: d.image.clone(), serial: d.serial.clone(), read_only: false }
            });
        }
        let mut c = lifeboat_vm::boot_with(&b, runner)?;
        let t1 = Instant::now();
        let limit = Duration::from_secs(u64::from(config.drill.boot_timeout_minutes) * 60);
        let evidence = wait_console(&mut c, limit, &dir.join("console-first-boot.log"), phases::multi_user_evidence);
        multi_user = MultiUser {
            reached: evidence.is_some(),
            seconds: evidence.as_ref().map(|_| t1.elapsed().as_secs_f64()),
            evidence,
        };
        // A moment more, so the log shows what followed; then pull the plug.
        std::thread::sleep(Duration::from_secs(2));
        consoles.push(("first boot".to_string(), c.stop()));
    }

    let (phase_list, rto) = timeline(boot_secs, rescue_secs, &reported, multi_user.seconds);
    let (verdict, reason) = judge(recovery_error.as_deref(), &multi_user, &comparison);
    let mut console_logs = Vec::new();
    for (name, text) in &consoles {
        let file = format!("console-{}.log", name.replace(' ', "-"));
        let p = dir.join(&file);
        std::fs::write(&p, text).map_err(Error::io(format!("cannot write {}", p.display())))?;
        console_logs.push(file);
    }
    if req.keep_disks {
        notes.push(format!("the recovered disk images are kept in {}", disks_dir.display()));
    } else {
        let _ = std::fs::remove_dir_all(&disks_dir);
    }
    let report = Report {
        format: report::FORMAT,
        verdict,
        reason,
        host,
        started_at,
        finished_at: now_rfc3339(),
        lifeboat_version: env!("CARGO_PKG_VERSION").into(),
        media,
        backup: match &req.find.source {
            Source::Url(u) => u.clone(),
            Source::Location(l) => format!("{l:?}"),
        },
        backup_attached: backup_disk.map(|p| p.display().to_string()),
        firmware: match firmware {
            Firmware::Bios => "bios".into(),
            _ => "uefi".into(),
        },
        accel: accel.accel.to_string(),
        accel_reason: accel.reason,
        disk_factor: req.disk_factor,
        disks,
        phases: phase_list,
        rto_seconds: rto,
        multi_user,
        comparison,
        layout_before: tree::before(&layout),
        layout_after,
        console_logs,
        notes,
    };
    for (name, text) in [("report.json", report.to_json()), ("report.html", report::html(&report, &consoles))] {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(Error::io(format!("cannot write {}", p.display())))?;
    }
    let removed = report::keep_newest(&report_root, config.drill.keep_reports.max(1) as usize);
    Ok(Outcome { report, dir, removed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use report::{ComparedFs, Difference};

    #[test]
    fn the_timeline_adds_up_to_the_rto_with_what_recover_did_not_report_as_other() {
        let reported = vec![("partitioning".to_string(), 1.5), ("restore".to_string(), 40.0)];
        let (p, rto) = timeline(Some(20.0), Some(70.0), &reported, Some(30.0));
        let names: Vec<&str> = p.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["boot", "partitioning", "restore", "other", "first boot"]);
        assert!((p[3].seconds - 8.5).abs() < 1e-9);
        assert_eq!(rto, Some(100.0));
        let (_, rto) = timeline(Some(20.0), None, &[], None);
        assert_eq!(rto, None, "no RTO when the drill did not get to multi-user");
    }

    #[test]
    fn the_verdict_names_the_first_thing_that_failed() {
        let reached = MultiUser { reached: true, evidence: Some("x".into()), seconds: Some(1.0) };
        let root = |compared: bool| ComparedFs {
            mountpoint: "/".into(),
            device: "/dev/vda1".into(),
            fstype: "ext4".into(),
            compared,
            why_not: (!compared).then(|| "cannot be mounted here: not root".into()),
        };
        let good = Comparison { done: true, entries: 10, filesystems: vec![root(true)], ..Comparison::default() };
        assert_eq!(judge(None, &reached, &good), (Verdict::Passed, None));
        let (v, why) = judge(Some("volume 3 is missing"), &reached, &good);
        assert_eq!(v, Verdict::Failed);
        assert!(why.unwrap_or_default().contains("volume 3 is missing"));
        let mut differs = good.clone();
        differs.differences.push(Difference {
            path: "etc/passwd".into(),
            what: "changed".into(),
            details: vec!["content".into()],
            on_purpose: None,
        });
        assert!(judge(None, &reached, &differs).1.unwrap_or_default().contains("changed etc/passwd"));
        let not = Comparison { filesystems: vec![root(false)], ..Comparison::default() };
        assert!(judge(None, &reached, &not).1.unwrap_or_default().contains("not root"));
        let (v, why) = judge(None, &MultiUser::default(), &good);
        assert_eq!(v, Verdict::Failed);
        assert!(why.unwrap_or_default().contains("console=ttyS0"));
    }

    #[test]
    fn the_media_set_is_the_medium_and_its_numbered_siblings() {
        let d = tempfile::tempdir().expect("tmp");
        for n in ["lifeboat-db1.iso", "lifeboat-db1-2.iso", "lifeboat-db1-3.iso", "lifeboat-db1-5.iso"] {
            std::fs::write(d.path().join(n), "").expect("write");
        }
        let set = media_set(&d.path().join("lifeboat-db1.iso"));
        assert_eq!(set.len(), 3, "{set:?}");
        assert_eq!(set[2], d.path().join("lifeboat-db1-3.iso"));
    }
}
