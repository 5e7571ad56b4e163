//! Backups of a running system from snapshots (`backup --snapshot`,
//! `backup.snapshot`): every filesystem of the backup is snapshotted first,
//! one right after another, then the backup reads the snapshots, and the
//! snapshots are removed, also when the backup fails, on SIGINT/SIGTERM
//! (the front end calls [`release_all`]) and, after a `kill -9`, by the next
//! run (every snapshot is named with a fixed prefix).
//!
//! - btrfs: `btrfs subvolume snapshot -r MOUNT MOUNT/.lifeboat-snapshot-ID`,
//!   read in place (it is read-only), removed with `btrfs subvolume delete`.
//! - LVM classic: `lvm lvcreate -s -n LV-lifeboat-snap -L SIZE VG/LV`, the size
//!   from `backup.snapshot_size`, refused before anything is taken when the
//!   VG has less free; LVM thin: `lvcreate -s -kn -n LV-lifeboat-snap VG/LV`
//!   (in the pool, no size). Both are mounted read-only under
//!   `WORK_DIR/snapshots/N` (ext2/3/4 with `noload`, xfs with `nouuid`) and
//!   removed with `lvremove -f`. `lvcreate` suspends the LV, which freezes
//!   its filesystem, so the snapshot is what a clean unmount would leave.
//! - anything else (ext4 or xfs on a plain partition, vfat): cannot be
//!   snapshotted; `always` refuses naming them, `auto` reads them live.
//!
//! The archive names every entry as if read from the live mounts
//! ([`lifeboat_archive::BackupOptions::read_from`]). Each filesystem is
//! captured at one instant; two filesystems are captured a moment apart
//! (the time between two snapshot commands), so a database whose files span
//! filesystems is consistent per filesystem only.
//!
//! The plan ([`plan`]) is a pure function of the layout; taking and
//! removing ([`take`], [`Snapshots`]) run the commands.

use crate::Error;
use lifeboat_config::{SnapshotMode, SnapshotSize};
use lifeboat_layout::model::Mount;
use lifeboat_layout::Layout;
use lifeboat_runner::{Cmd, Runner};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The name every btrfs snapshot of lifeboat starts with (a hidden directory at the top of the mount).
pub const BTRFS_PREFIX: &str = ".lifeboat-snapshot-";

/// The suffix of every LVM snapshot of lifeboat (`LV-lifeboat-snap`).
pub const LVM_SUFFIX: &str = "-lifeboat-snap";

/// The exclude that keeps btrfs snapshots (stale ones, and the empty
/// directory a snapshot shows for itself) out of every snapshot backup.
pub const EXCLUDE: &str = "*/.lifeboat-snapshot-*";

/// How one filesystem is snapshotted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    /// A read-only btrfs snapshot of the subvolume mounted there, at `path`.
    Btrfs {
        /// Where the snapshot goes (`MOUNT/.lifeboat-snapshot-ID`).
        path: PathBuf,
    },
    /// A classic (copy-on-write) LVM snapshot of `size` bytes.
    LvmClassic {
        /// The volume group.
        vg: String,
        /// The origin LV.
        lv: String,
        /// The snapshot LV's name.
        name: String,
        /// Its size in bytes (a whole number of extents).
        size: u64,
    },
    /// A thin snapshot in the origin's pool.
    LvmThin {
        /// The volume group.
        vg: String,
        /// The origin LV.
        lv: String,
        /// The snapshot LV's name.
        name: String,
    },
}

/// One snapshot to take: of the filesystem mounted at `mountpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Where the filesystem is mounted now.
    pub mountpoint: String,
    /// Its device.
    pub device: String,
    /// Its type.
    pub fstype: String,
    /// How it is snapshotted.
    pub how: How,
}

impl Snapshot {
    /// The mount options of an LVM snapshot (a filesystem with the origin's UUID, read-only, its journal not replayed).
    pub fn mount_options(&self) -> &'static str {
        match self.fstype.as_str() {
            "ext2" | "ext3" | "ext4" => "ro,noload",
            "xfs" => "ro,nouuid",
            _ => "ro",
        }
    }

    /// For people: `btrfs snapshot /srv/.lifeboat-snapshot-ID`, `LVM snapshot vg0/root-lifeboat-snap (2.0 GiB)`.
    pub fn describe(&self) -> String {
        match &self.how {
            How::Btrfs { path } => format!("btrfs snapshot {}", path.display()),
            How::LvmClassic { vg, name, size, .. } => {
                format!("LVM snapshot {vg}/{name} ({})", lifeboat_config::human(*size))
            }
            How::LvmThin { vg, name, .. } => format!("LVM thin snapshot {vg}/{name}"),
        }
    }
}

/// A selected path read from a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The path of the selection (relative to the root, `.` for the root).
    pub path: PathBuf,
    /// The snapshot (an index into [`Plan::snapshots`]).
    pub snapshot: usize,
    /// Where the path is inside its filesystem (relative to the mount point; empty for the mount point).
    pub within: PathBuf,
}

/// A filesystem that cannot be snapshotted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsnapshottable {
    /// The path of the selection it holds.
    pub path: PathBuf,
    /// Where it is mounted.
    pub mountpoint: String,
    /// Its device.
    pub device: String,
    /// Its type.
    pub fstype: String,
    /// Why it cannot be snapshotted.
    pub why: String,
}

impl std::fmt::Display for Unsnapshottable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} {}): {}", self.mountpoint, self.fstype, self.device, self.why)
    }
}

/// Which snapshots a backup takes, and what it reads from each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// One per filesystem, in the order they are taken.
    pub snapshots: Vec<Snapshot>,
    /// The selected paths read from a snapshot.
    pub reads: Vec<Read>,
    /// The selected paths read live (`auto`: their filesystem cannot be snapshotted).
    pub live: Vec<Unsnapshottable>,
}

/// The mount that holds `path` (the last mounted, of the longest mount point at or above it).
fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.target))
        .max_by_key(|(i, m)| (Path::new(&m.target).components().count(), *i))
        .map(|(_, m)| m)
}

/// The LV a mount's source is, when it is one (`/dev/mapper/VG-LV` or `/dev/VG/LV`).
fn lv_of<'a>(layout: &'a Layout, source: &str) -> Option<&'a lifeboat_layout::model::Lv> {
    layout.lvm.lvs.iter().find(|lv| !lv.hidden && (lv.id == source || format!("/dev/{}/{}", lv.vg, lv.name) == source))
}

/// The longest LV name LVM accepts.
const LV_NAME_MAX: usize = 127;

/// The snapshots that back up `paths` (relative to `root`, as the
/// selection has them) from one instant per filesystem: btrfs and LVM are
/// snapshotted; others are refused (`always`) or read live (`auto`).
/// Classic LVM snapshots are sized by `size` and refused, before anything is
/// taken, when their volume group has less free. `id` names btrfs snapshots.
pub fn plan(
    layout: &Layout,
    root: &Path,
    paths: &[PathBuf],
    mode: SnapshotMode,
    size: SnapshotSize,
    id: &str,
) -> Result<Plan, Error> {
    let mut out = Plan::default();
    let mut refused = Vec::new();
    for p in paths {
        let full = if p == Path::new(".") { root.to_path_buf() } else { root.join(p) };
        let Some(m) = mount_of(&layout.mounts, &full) else {
            refused.push(Unsnapshottable {
                path: p.clone(),
                mountpoint: full.display().to_string(),
                device: "?".into(),
                fstype: "?".into(),
                why: "no mounted filesystem holds it".into(),
            });
            continue;
        };
        let within = full.strip_prefix(&m.target).map(Path::to_path_buf).unwrap_or_default();
        if let Some(i) = out.snapshots.iter().position(|s| s.mountpoint == m.target) {
            out.reads.push(Read { path: p.clone(), snapshot: i, within });
            continue;
        }
        let how = if m.fstype == "btrfs" {
            Ok(How::Btrfs { path: Path::new(&m.target).join(format!("{BTRFS_PREFIX}{id}")) })
        } else if let Some(lv) = lv_of(layout, &m.source) {
            let name = format!("{}{LVM_SUFFIX}", lv.name);
            if name.len() > LV_NAME_MAX {
                Err(format!("the snapshot's name {name} would be longer than LVM allows ({LV_NAME_MAX})"))
            } else if lv.pool.is_some() {
                Ok(How::LvmThin { vg: lv.vg.clone(), lv: lv.name.clone(), name })
            } else if lv.origin.is_some() {
                Err(format!("{}/{} is itself a snapshot", lv.vg, lv.name))
            } else {
                let extent =
                    layout.lvm.vgs.iter().find(|v| v.name == lv.vg).map_or(4 << 20, |v| v.extent_size.max(512));
                let want = size.bytes_for(lv.size).max(extent);
                let size = want.div_ceil(extent).saturating_mul(extent);
                Ok(How::LvmClassic { vg: lv.vg.clone(), lv: lv.name.clone(), name, size })
            }
        } else {
            Err("on neither btrfs nor an LVM logical volume (only those can be snapshotted)".to_string())
        };
        match how {
            Ok(how) => {
                out.snapshots.push(Snapshot {
                    mountpoint: m.target.clone(),
                    device: m.source.clone(),
                    fstype: m.fstype.clone(),
                    how,
                });
                out.reads.push(Read { path: p.clone(), snapshot: out.snapshots.len() - 1, within });
            }
            Err(why) => refused.push(Unsnapshottable {
                path: p.clone(),
                mountpoint: m.target.clone(),
                device: m.source.clone(),
                fstype: m.fstype.clone(),
                why,
            }),
        }
    }
    match mode {
        SnapshotMode::Always if !refused.is_empty() => return Err(Error::CannotSnapshot(refused)),
        _ => out.live = refused,
    }
    // Room in each volume group for its classic snapshots together.
    let mut vgs: Vec<&str> = out
        .snapshots
        .iter()
        .filter_map(|s| match &s.how {
            How::LvmClassic { vg, .. } => Some(vg.as_str()),
            _ => None,
        })
        .collect();
    vgs.sort();
    vgs.dedup();
    for vg in vgs {
        let (mut need, mut lvs) = (0u64, Vec::new());
        for s in &out.snapshots {
            if let How::LvmClassic { vg: v, lv, size, .. } = &s.how {
                if v == vg {
                    need = need.saturating_add(*size);
                    lvs.push(format!("{v}/{lv}"));
                }
            }
        }
        let free = layout.lvm.vgs.iter().find(|v| v.name == vg).map_or(0, |v| v.free);
        if need > free {
            return Err(Error::NoRoomForSnapshot { vg: vg.to_string(), lvs, need, free });
        }
    }
    Ok(out)
}

/// Where LVM snapshot `i` is mounted.
pub fn mount_dir(work_dir: &Path, i: usize) -> PathBuf {
    work_dir.join("snapshots").join(i.to_string())
}

/// One thing to undo, in the reverse order of taking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Unmount (lazily when busy).
    Unmount(PathBuf),
    /// Remove an empty directory.
    RemoveDir(PathBuf),
    /// `lvremove -f VG/NAME`.
    LvRemove(String),
    /// `btrfs subvolume delete PATH`.
    BtrfsDelete(PathBuf),
}

impl Step {
    /// For people.
    pub fn describe(&self) -> String {
        match self {
            Step::Unmount(p) => format!("the snapshot mounted at {}", p.display()),
            Step::RemoveDir(p) => format!("the directory {}", p.display()),
            Step::LvRemove(lv) => format!("the LVM snapshot {lv}"),
            Step::BtrfsDelete(p) => format!("the btrfs snapshot {}", p.display()),
        }
    }

    /// The command that removes it by hand.
    pub fn fix(&self) -> String {
        match self {
            Step::Unmount(p) => format!("umount -l {}", p.display()),
            Step::RemoveDir(p) => format!("rmdir {}", p.display()),
            Step::LvRemove(lv) => format!("lvremove -f {lv}"),
            Step::BtrfsDelete(p) => format!("btrfs subvolume delete {}", p.display()),
        }
    }

    /// Undo it; a busy snapshot (a file still open in it) is tried again for a few seconds.
    fn run(&self, runner: &dyn Runner) -> Result<(), String> {
        let retry = |cmd: Cmd| {
            let mut last = String::new();
            for _ in 0..20 {
                match runner.apply(&cmd) {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e.to_string(),
                }
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            Err(last)
        };
        match self {
            Step::Unmount(p) if !is_mount_point(p) => Ok(()),
            Step::LvRemove(lv)
                if runner
                    .probe(&Cmd::new("lvm").args(["lvs", "--noheadings", "-o", "lv_name", lv.as_str()]))
                    .is_err() =>
            {
                Ok(())
            }
            Step::BtrfsDelete(p) if std::fs::symlink_metadata(p).is_err() => Ok(()),
            Step::Unmount(p) => {
                if runner.apply(&Cmd::new("umount").arg(p)).is_ok() {
                    return Ok(());
                }
                runner.apply(&Cmd::new("umount").arg("-l").arg(p)).map(|_| ()).map_err(|e| e.to_string())
            }
            Step::RemoveDir(p) => match std::fs::remove_dir(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{}: {e}", p.display())),
                _ => Ok(()),
            },
            Step::LvRemove(lv) => retry(Cmd::new("lvm").args(["lvremove", "-f", lv.as_str()])),
            Step::BtrfsDelete(p) => retry(Cmd::new("btrfs").args(["subvolume", "delete"]).arg(p)),
        }
    }
}

/// Whether a directory is a mount point (its device differs from its parent's).
fn is_mount_point(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(p), p.parent().map(std::fs::symlink_metadata)) {
        (Ok(m), Some(Ok(parent))) => m.dev() != parent.dev() || m.ino() == parent.ino(),
        _ => false,
    }
}

/// What this process has taken and not yet removed, newest last: shared
/// with [`release_all`], which a signal handler calls.
static TAKEN: Mutex<Vec<Step>> = Mutex::new(Vec::new());

fn taken() -> std::sync::MutexGuard<'static, Vec<Step>> {
    TAKEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Something that could not be removed: what, why, and the command that removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// What is left.
    pub what: String,
    /// Why it could not be removed.
    pub why: String,
    /// The command that removes it.
    pub fix: String,
}

/// Remove every snapshot this process took and still holds (unmount, then
/// remove), newest first; what could not be removed is returned. For the
/// front end's SIGINT/SIGTERM handler; [`Snapshots`] calls it when dropped.
pub fn release_all() -> Vec<Leftover> {
    let runner = lifeboat_runner::SystemRunner::new(lifeboat_runner::Mode::Run);
    let mut left = Vec::new();
    let mut steps = taken();
    while let Some(step) = steps.pop() {
        if let Err(why) = step.run(&runner) {
            left.push(Leftover { what: step.describe(), why, fix: step.fix() });
        }
    }
    left
}

/// The lock that one snapshot backup at a time holds (`WORK_DIR/snapshot.lock`):
/// with it held, any lifeboat snapshot found is stale.
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

/// Take the snapshot lock, or say which run holds it.
pub fn lock(work_dir: &Path) -> Result<Lock, Error> {
    use rustix::fs::{flock, FlockOperation};
    let p = work_dir.join("snapshot.lock");
    std::fs::create_dir_all(work_dir).map_err(Error::io(format!("cannot create {}", work_dir.display())))?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(Error::io(format!("cannot open {}", p.display())))?;
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Lock { _file: f }),
        Err(_) => Err(Error::SnapshotBusy(p)),
    }
}

/// The snapshots a killed run left (found by their names), as the steps
/// that remove them: LVM snapshots from the layout (unmounted first where
/// mounted), btrfs snapshots at the top of each btrfs mount, and mounts
/// below `WORK_DIR/snapshots`. Call with the [`Lock`] held.
pub fn stale(layout: &Layout, work_dir: &Path) -> Vec<Step> {
    use std::os::unix::fs::MetadataExt;
    let mut steps = Vec::new();
    let ours = work_dir.join("snapshots");
    for m in layout.mounts.iter().rev().filter(|m| Path::new(&m.target).starts_with(&ours)) {
        steps.push(Step::Unmount(m.target.clone().into()));
    }
    for lv in layout.lvm.lvs.iter().filter(|lv| lv.name.ends_with(LVM_SUFFIX) && lv.name.len() > LVM_SUFFIX.len()) {
        for m in layout.mounts.iter().filter(|m| m.source == lv.id || m.source == format!("/dev/{}/{}", lv.vg, lv.name))
        {
            let s = Step::Unmount(m.target.clone().into());
            if !steps.contains(&s) {
                steps.push(s);
            }
        }
        steps.push(Step::LvRemove(format!("{}/{}", lv.vg, lv.name)));
    }
    for m in layout.mounts.iter().filter(|m| m.fstype == "btrfs") {
        let Ok(rd) = std::fs::read_dir(&m.target) else { continue };
        for e in rd.flatten() {
            let name = e.file_name();
            if !name.to_string_lossy().starts_with(BTRFS_PREFIX) {
                continue;
            }
            // A subvolume's root directory is inode 256: never an ordinary directory of that name.
            let p = e.path();
            if std::fs::symlink_metadata(&p).is_ok_and(|md| md.is_dir() && md.ino() == 256) {
                let s = Step::BtrfsDelete(p);
                if !steps.contains(&s) {
                    steps.push(s);
                }
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(&ours) {
        steps.extend(rd.flatten().map(|e| Step::RemoveDir(e.path())));
    }
    steps
}

/// Remove what [`stale`] found; returns what was removed and what could not be.
pub fn remove_stale(steps: &[Step], runner: &dyn Runner) -> (Vec<String>, Vec<Leftover>) {
    let (mut done, mut left) = (Vec::new(), Vec::new());
    for s in steps {
        match s.run(runner) {
            Ok(()) if !matches!(s, Step::RemoveDir(_)) => done.push(s.describe()),
            Ok(()) => {}
            Err(why) => left.push(Leftover { what: s.describe(), why, fix: s.fix() }),
        }
    }
    (done, left)
}

/// The commands that take snapshot `i` of a plan, and the directory its content is then read from.
pub fn commands(s: &Snapshot, i: usize, work_dir: &Path) -> (Vec<Cmd>, PathBuf) {
    match &s.how {
        How::Btrfs { path } => {
            (vec![Cmd::new("btrfs").args(["subvolume", "snapshot", "-r"]).arg(&s.mountpoint).arg(path)], path.clone())
        }
        How::LvmClassic { vg, lv, name, size } => (
            vec![Cmd::new("lvm").args([
                "lvcreate",
                "-s",
                "-n",
                name.as_str(),
                "-L",
                &format!("{size}b"),
                &format!("{vg}/{lv}"),
            ])],
            mount_dir(work_dir, i),
        ),
        How::LvmThin { vg, lv, name } => {
            let origin = format!("{vg}/{lv}");
            (
                vec![Cmd::new("lvm").args(["lvcreate", "-s", "-kn", "-n", name.as_str(), origin.as_str()])],
                mount_dir(work_dir, i),
            )
        }
    }
}

/// The snapshots of a backup, taken: removed when dropped (or by [`Snapshots::release`]).
#[derive(Debug)]
pub struct Snapshots {
    /// Each selected path read from a snapshot, and the directory it is read from.
    pub read_from: Vec<(PathBuf, PathBuf)>,
    /// Each mount point snapshotted, and where its snapshot is read.
    pub sources: Vec<(PathBuf, PathBuf)>,
    /// What was taken, for people.
    pub taken: Vec<String>,
    /// How long taking them all took.
    pub seconds: f64,
    _lock: Lock,
}

/// Take every snapshot of `plan`, one right after the other, and mount the
/// LVM ones read-only; when one fails, those already taken are removed
/// and the error names it.
pub fn take(plan: &Plan, lock: Lock, work_dir: &Path, runner: &dyn Runner) -> Result<Snapshots, Error> {
    let start = std::time::Instant::now();
    let mut sources = Vec::new();
    let mut taken_list = Vec::new();
    let fail = |s: &Snapshot, e: lifeboat_runner::RunError| {
        let left = release_all();
        Error::Snapshot { mountpoint: s.mountpoint.clone(), what: s.describe(), leftovers: left, source: Box::new(e) }
    };
    // The snapshots first, as close together as they can be; mounting after.
    for (i, s) in plan.snapshots.iter().enumerate() {
        let (cmds, from) = commands(s, i, work_dir);
        // Registered before it is taken: a signal while the command runs still removes it
        // (removing one that was never made is nothing to do).
        taken().push(match &s.how {
            How::Btrfs { path } => Step::BtrfsDelete(path.clone()),
            How::LvmClassic { vg, name, .. } | How::LvmThin { vg, name, .. } => Step::LvRemove(format!("{vg}/{name}")),
        });
        for c in &cmds {
            runner.apply(c).map_err(|e| fail(s, e))?;
        }
        taken_list.push(s.describe());
        sources.push((PathBuf::from(&s.mountpoint), from));
    }
    let seconds = start.elapsed().as_secs_f64();
    for (i, s) in plan.snapshots.iter().enumerate() {
        let (vg, name) = match &s.how {
            How::Btrfs { .. } => continue,
            How::LvmClassic { vg, name, .. } | How::LvmThin { vg, name, .. } => (vg, name),
        };
        let dir = mount_dir(work_dir, i);
        std::fs::create_dir_all(&dir).map_err(|e| {
            let left = release_all();
            Error::SnapshotDir { dir: dir.clone(), leftovers: left, source: e }
        })?;
        taken().push(Step::RemoveDir(dir.clone()));
        let dev = format!("/dev/{vg}/{name}");
        // Registered first: a signal between the mount and the registration still unmounts it.
        taken().push(Step::Unmount(dir.clone()));
        runner
            .apply(&Cmd::new("mount").args(["-o", s.mount_options(), dev.as_str()]).arg(&dir))
            .map_err(|e| fail(s, e))?;
    }
    let read_from = plan
        .reads
        .iter()
        .map(|r| {
            let base = &sources[r.snapshot].1;
            let from = if r.within.as_os_str().is_empty() { base.clone() } else { base.join(&r.within) };
            (r.path.clone(), from)
        })
        .collect();
    Ok(Snapshots { read_from, sources, taken: taken_list, seconds, _lock: lock })
}

impl Snapshots {
    /// Where a live path is seen in the snapshots (the work and target
    /// directories, left out by device and inode, are left out there too).
    pub fn in_snapshot(&self, live: &Path) -> Option<PathBuf> {
        self.sources
            .iter()
            .filter(|(m, _)| live.starts_with(m))
            .max_by_key(|(m, _)| m.components().count())
            .map(|(m, from)| from.join(live.strip_prefix(m).unwrap_or(Path::new(""))))
    }

    /// Remove the snapshots now; returns what could not be removed.
    pub fn release(self) -> Vec<Leftover> {
        let left = release_all();
        drop(self);
        left
    }
}

impl Drop for Snapshots {
    fn drop(&mut self) {
        for l in release_all() {
            log::warn!("cannot remove {}: {}; remove it with: {}", l.what, l.why, l.fix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        let text = r#"format_version = 1
[meta]
hostname = "db1"
captured_at = "2026-01-01T00:00:00Z"
lifeboat_version = "0"
kernel_release = "6.1"
machine = "x86_64"

[[disk]]
id = "/dev/sda"
kind = "disk"
size = 100000000000
logical_sector_size = 512
physical_sector_size = 512

[lvm]
[[lvm.vg]]
id = "vg:vg0"
name = "vg0"
uuid = "u"
extent_size = 4194304
size = 90000000000
free = 2147483648
depends_on = []

[[lvm.lv]]
id = "/dev/mapper/vg0-root"
vg = "vg0"
name = "root"
uuid = "a"
size = 10737418240
attr = "-wi-ao----"
depends_on = []

[[lvm.lv]]
id = "/dev/mapper/vg0-db"
vg = "vg0"
name = "db"
uuid = "b"
size = 21474836480
attr = "Vwi-aotz--"
pool = "pool0"
depends_on = []

[[lvm.lv]]
id = "/dev/mapper/vg0-big"
vg = "vg0"
name = "big"
uuid = "c"
size = 53687091200
attr = "-wi-ao----"
depends_on = []

[[mount]]
target = "/"
source = "/dev/mapper/vg0-root"
fstype = "ext4"
options = "rw"
root = "/"

[[mount]]
target = "/boot"
source = "/dev/sda1"
fstype = "ext4"
options = "rw"
root = "/"

[[mount]]
target = "/var/lib/db"
source = "/dev/mapper/vg0-db"
fstype = "xfs"
options = "rw"
root = "/"

[[mount]]
target = "/home"
source = "/dev/sda3"
fstype = "btrfs"
options = "rw"
root = "/@home"

[[mount]]
target = "/srv"
source = "/dev/mapper/vg0-big"
fstype = "ext4"
options = "rw"
root = "/"
"#;
        Layout::parse(text, Path::new("t.toml")).expect("layout")
    }

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    const TEN: SnapshotSize = SnapshotSize::Percent(10);

    #[test]
    fn each_filesystem_gets_the_snapshot_its_storage_allows_named_with_the_fixed_prefixes() {
        let p = plan(&layout(), Path::new("/"), &paths(&[".", "home", "var/lib/db"]), SnapshotMode::Always, TEN, "7")
            .expect("plan");
        let hows: Vec<&How> = p.snapshots.iter().map(|s| &s.how).collect();
        assert_eq!(
            hows,
            vec![
                // 10% of 10 GiB, in whole 4 MiB extents.
                &How::LvmClassic {
                    vg: "vg0".into(),
                    lv: "root".into(),
                    name: "root-lifeboat-snap".into(),
                    size: 1 << 30
                },
                &How::Btrfs { path: "/home/.lifeboat-snapshot-7".into() },
                &How::LvmThin { vg: "vg0".into(), lv: "db".into(), name: "db-lifeboat-snap".into() },
            ]
        );
        assert_eq!(p.snapshots[0].mount_options(), "ro,noload");
        assert_eq!(p.snapshots[2].mount_options(), "ro,nouuid", "xfs: the snapshot has the origin's UUID");
        assert!(p.live.is_empty());
        assert_eq!(p.reads.iter().map(|r| r.snapshot).collect::<Vec<_>>(), vec![0, 1, 2]);
        let (cmds, from) = commands(&p.snapshots[1], 1, Path::new("/var/lib/lifeboat"));
        assert_eq!(cmds[0].cmdline(), "btrfs subvolume snapshot -r /home /home/.lifeboat-snapshot-7");
        assert_eq!(from, Path::new("/home/.lifeboat-snapshot-7"));
        let (cmds, from) = commands(&p.snapshots[2], 2, Path::new("/var/lib/lifeboat"));
        assert_eq!(cmds[0].cmdline(), "lvm lvcreate -s -kn -n db-lifeboat-snap vg0/db");
        assert_eq!(from, Path::new("/var/lib/lifeboat/snapshots/2"));
        let (cmds, _) = commands(&p.snapshots[0], 0, Path::new("/w"));
        assert_eq!(cmds[0].cmdline(), "lvm lvcreate -s -n root-lifeboat-snap -L 1073741824b vg0/root");
    }

    #[test]
    fn paths_on_one_filesystem_share_its_snapshot_and_are_read_from_inside_it() {
        let p = plan(&layout(), Path::new("/"), &paths(&["etc", "home/a", "home/b"]), SnapshotMode::Always, TEN, "x")
            .expect("plan");
        assert_eq!(p.snapshots.len(), 2);
        assert_eq!(
            p.reads,
            vec![
                Read { path: "etc".into(), snapshot: 0, within: "etc".into() },
                Read { path: "home/a".into(), snapshot: 1, within: "a".into() },
                Read { path: "home/b".into(), snapshot: 1, within: "b".into() },
            ]
        );
    }

    #[test]
    fn a_plain_partition_is_refused_by_always_naming_it_and_read_live_by_auto() {
        let e = plan(&layout(), Path::new("/"), &paths(&[".", "boot"]), SnapshotMode::Always, TEN, "x")
            .expect_err("boot is a partition");
        let msg = e.to_string();
        assert!(msg.contains("/boot (ext4 /dev/sda1): on neither btrfs nor an LVM"), "{msg}");
        assert!(msg.contains("--snapshot=auto") && msg.contains("nothing was written"), "the fix: {msg}");
        let p = plan(&layout(), Path::new("/"), &paths(&[".", "boot"]), SnapshotMode::Auto, TEN, "x").expect("auto");
        assert_eq!(p.snapshots.len(), 1);
        assert_eq!(p.live.len(), 1);
        assert_eq!(p.live[0].mountpoint, "/boot");
    }

    #[test]
    fn no_room_in_the_volume_group_is_refused_before_any_snapshot_with_the_sizes() {
        // 10% of root (1 GiB) and of big (5 GiB): 6 GiB wanted, 2 GiB free.
        let e = plan(&layout(), Path::new("/"), &paths(&[".", "srv"]), SnapshotMode::Always, TEN, "x")
            .expect_err("no room");
        assert!(
            matches!(&e, Error::NoRoomForSnapshot { vg, need, free, .. } if vg == "vg0" && *need == 6 << 30 && *free == 2 << 30),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains("vg0/root, vg0/big") && msg.contains("backup.snapshot_size"), "{msg}");
        // A fixed size that fits.
        let p = plan(
            &layout(),
            Path::new("/"),
            &paths(&[".", "srv"]),
            SnapshotMode::Always,
            SnapshotSize::Bytes(1 << 30),
            "x",
        )
        .expect("fits");
        assert_eq!(p.snapshots.len(), 2);
        // A thin snapshot needs no room in the VG.
        let mut l = layout();
        l.lvm.vgs[0].free = 0;
        assert!(plan(&l, Path::new("/"), &paths(&["var/lib/db"]), SnapshotMode::Always, TEN, "x").is_ok());
    }

    #[test]
    fn the_mount_of_a_path_is_the_longest_and_newest_mount_point_above_it() {
        let mut l = layout();
        // /srv mounted over again: the last mount is what a path below it reads.
        l.mounts.push(Mount {
            target: "/srv".into(),
            source: "/dev/sda5".into(),
            fstype: "btrfs".into(),
            options: "rw".into(),
            root: "/".into(),
        });
        let p = plan(&l, Path::new("/"), &paths(&["srv/www", "srvx"]), SnapshotMode::Always, TEN, "x").expect("plan");
        assert_eq!(p.snapshots[0].how, How::Btrfs { path: "/srv/.lifeboat-snapshot-x".into() });
        assert_eq!(p.snapshots[1].mountpoint, "/", "/srvx is not below /srv");
    }

    #[test]
    fn stale_lvm_snapshots_and_mounts_below_the_work_directory_are_found_by_name() {
        let mut l = layout();
        let mut lv = l.lvm.lvs[0].clone();
        (lv.id, lv.name, lv.origin) =
            ("/dev/mapper/vg0-root--lifeboat--snap".into(), "root-lifeboat-snap".into(), Some("root".into()));
        l.lvm.lvs.push(lv);
        l.mounts.push(Mount {
            target: "/w/snapshots/0".into(),
            source: "/dev/mapper/vg0-root--lifeboat--snap".into(),
            fstype: "ext4".into(),
            options: "ro".into(),
            root: "/".into(),
        });
        let steps = stale(&l, Path::new("/w"));
        assert_eq!(
            steps,
            vec![Step::Unmount("/w/snapshots/0".into()), Step::LvRemove("vg0/root-lifeboat-snap".into())]
        );
        // A snapshot of an LV taken by someone else is not ours.
        assert!(!steps.iter().any(|s| matches!(s, Step::LvRemove(n) if n == "vg0/root")));
    }

    #[test]
    fn in_snapshot_maps_live_paths_below_a_snapshotted_mount() {
        let s = Snapshots {
            read_from: Vec::new(),
            sources: vec![("/".into(), "/w/snapshots/0".into()), ("/home".into(), "/home/.lifeboat-snapshot-1".into())],
            taken: Vec::new(),
            seconds: 0.0,
            _lock: Lock { _file: tempfile::tempfile().expect("file") },
        };
        assert_eq!(s.in_snapshot(Path::new("/var/lib/lifeboat")), Some("/w/snapshots/0/var/lib/lifeboat".into()));
        assert_eq!(s.in_snapshot(Path::new("/home/u")), Some("/home/.lifeboat-snapshot-1/u".into()));
    }
}
