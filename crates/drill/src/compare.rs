//! The recovered disks against the backup, from the host, before they ever
//! boot: the images attached read-only as loop devices, the layout's
//! filesystems mounted read-only in their places under one directory, and
//! `lifeboat compare`'s comparison of that tree with the backup's manifest.
//!
//! What recovery changes on purpose (its log, a regenerated initramfs,
//! GRUB's files) is listed apart and does not fail the drill. Filesystems
//! the host cannot mount (on RAID, LVM or LUKS, which it does not assemble;
//! a type its kernel lacks) are listed as not compared.

use crate::report::{ComparedFs, Comparison, Difference, DrillDisk, Node};
use crate::tree::{self, SeenPartition};
use crate::Error;
use lifeboat_backup::find::Find;
use lifeboat_backup::Feedback;
use lifeboat_layout::model::Layout;
use lifeboat_runner::{Cmd, Runner};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What recovery changes on purpose: (path or prefix with `/`, why).
const ON_PURPOSE: &[(&str, &str)] = &[
    ("var/log/lifeboat/", "the recovery's own log"),
    ("var/log/lifeboat", "the recovery's own log"),
    ("boot/initrd.img-", "the initramfs, regenerated for the new disks"),
    ("boot/grub/", "GRUB, reinstalled on the new disks"),
    ("boot/grub", "GRUB, reinstalled on the new disks"),
    ("boot/efi/EFI/", "GRUB's EFI files, written again"),
    ("var/lib/initramfs-tools/", "the initramfs's state, regenerated"),
    ("var/lib/initramfs-tools", "the initramfs's state, regenerated"),
    ("boot", "its directory time, after the changes above"),
    ("var/log", "its directory time, after the recovery's log"),
    ("var/tmp", "its directory time (mkinitramfs's scratch directory)"),
];

/// Why recovery changed `path` on purpose, if it did.
pub fn on_purpose(path: &str) -> Option<&'static str> {
    ON_PURPOSE
        .iter()
        .find(|(p, _)| if p.ends_with('/') || p.ends_with('-') { path.starts_with(p) } else { path == *p })
        .map(|(_, why)| *why)
}

/// Loop devices and mounts, undone when dropped (in reverse).
struct Attached<'a> {
    runner: &'a dyn Runner,
    loops: Vec<String>,
    mounts: Vec<PathBuf>,
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = self.runner.apply(&Cmd::new("umount").arg(m));
        }
        for l in self.loops.iter().rev() {
            let _ = self.runner.apply(&Cmd::new("losetup").args(["-d", l]));
        }
    }
}

fn wait_for(p: &str) -> bool {
    for _ in 0..50 {
        if Path::new(p).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Where a layout device is among the recovered images: (disk index,
/// partition number, or none for the whole disk).
fn place(layout: &Layout, disks: &[DrillDisk], device: &str) -> Option<(usize, Option<u32>)> {
    for (i, d) in disks.iter().enumerate() {
        if d.layout_id == device {
            return Some((i, None));
        }
        let disk = layout.disks.iter().find(|x| x.id == d.layout_id)?;
        if let Some(p) = disk.table.iter().flat_map(|t| &t.partitions).find(|p| p.id == device) {
            return Some((i, Some(p.number)));
        }
    }
    None
}

/// Attach the recovered images, read them for the picture (after), mount
/// the layout's filesystems under `root` and compare them with the backup.
pub fn compare(
    layout: &Layout,
    disks: &[DrillDisk],
    find: &Find,
    root: &Path,
    runner: &dyn Runner,
    feedback: &mut dyn Feedback,
) -> Result<(Comparison, Vec<Node>), Error> {
    let mut a = Attached { runner, loops: Vec::new(), mounts: Vec::new() };
    let mut after = Vec::new();
    for d in disks {
        let out = runner
            .apply(&Cmd::new("losetup").args(["-f", "--show", "-r", "-P"]).arg(&d.image))
            .map_err(|e| Error::Command("attach the recovered disk (are you root?)".into(), e))?;
        let dev = out.text().trim().to_string();
        a.loops.push(dev.clone());
        // losetup -P makes no partition nodes on some kernels: partx adds them.
        let _ = runner.apply(&Cmd::new("partx").args(["-u", &dev]));
        let _ = runner.apply(&Cmd::new("partx").args(["-a", &dev]));
        let table = runner.probe(&Cmd::new("sfdisk").arg("--json").arg(&d.image)).map(|o| o.text()).unwrap_or_default();
        let mut parts = Vec::new();
        for (n, size) in tree::sfdisk_partitions(&table) {
            let node = format!("{dev}p{n}");
            wait_for(&node);
            let (fstype, uuid, label) = runner
                .probe(&Cmd::new("blkid").args(["-p", "-o", "export", &node]))
                .map(|o| tree::blkid_export(&o.text()))
                .unwrap_or_default();
            parts.push(SeenPartition { number: n, size, fstype, uuid, label });
        }
        let whole = if parts.is_empty() {
            runner.probe(&Cmd::new("blkid").args(["-p", "-o", "export", &dev])).ok().map(|o| {
                let (fstype, uuid, label) = tree::blkid_export(&o.text());
                SeenPartition { number: 0, size: d.size, fstype, uuid, label }
            })
        } else {
            None
        };
        after.push(tree::after(&d.layout_id, d.size, whole.as_ref(), &parts));
    }

    let mut fss: Vec<_> = layout
        .filesystems
        .iter()
        .filter(|f| f.fstype != "swap")
        .flat_map(|f| f.mountpoints.iter().map(move |m| (m.clone(), f)))
        .filter(|(m, _)| m.starts_with('/'))
        .collect();
    fss.sort_by_key(|(m, _)| (m != "/", m.matches('/').count(), m.clone()));
    let mut c = Comparison::default();
    let mut not_mounted: Vec<String> = Vec::new();
    std::fs::create_dir_all(root).map_err(Error::io(format!("cannot create {}", root.display())))?;
    for (mp, f) in fss {
        let mut entry = ComparedFs {
            mountpoint: mp.clone(),
            device: f.device.clone(),
            fstype: f.fstype.clone(),
            compared: false,
            why_not: None,
        };
        let root_mounted = !a.mounts.is_empty();
        let excluded = layout.disk_of(&f.device).and_then(|d| d.excluded.clone());
        let why_not = match place(layout, disks, &f.device) {
            None if excluded.is_some() => {
                Some(format!("on a disk recovery does not recreate ({})", excluded.unwrap_or_default()))
            }
            None => Some(format!(
                "{} is not a partition of a recreated disk (RAID, LVM or LUKS: not assembled on the host)",
                f.device
            )),
            Some(_) if mp != "/" && !root_mounted => Some("the root filesystem was not mounted".into()),
            Some((i, part)) => {
                let dev = match part {
                    Some(n) => format!("{}p{n}", a.loops[i]),
                    None => a.loops[i].clone(),
                };
                wait_for(&dev);
                let at = root.join(mp.trim_start_matches('/'));
                match runner.apply(&Cmd::new("mount").args(["-o", "ro", "-t", &f.fstype, &dev]).arg(&at)) {
                    Ok(_) => {
                        a.mounts.push(at);
                        None
                    }
                    Err(e) => Some(format!("cannot be mounted here: {}", e.reason())),
                }
            }
        };
        match why_not {
            None => entry.compared = true,
            Some(w) => {
                not_mounted.push(mp.trim_start_matches('/').to_string());
                entry.why_not = Some(w);
            }
        }
        c.filesystems.push(entry);
    }
    if !c.filesystems.iter().any(|f| f.mountpoint == "/" && f.compared) {
        return Ok((c, after));
    }
    let (found, diffs) = lifeboat_backup::verify::compare(find, root, runner, feedback).map_err(Error::Backup)?;
    c.done = true;
    c.entries = found.backup.entry_count();
    for d in diffs {
        let below_unmounted =
            not_mounted.iter().any(|m| !m.is_empty() && (d.path == *m || d.path.starts_with(&format!("{m}/"))));
        if below_unmounted {
            c.not_compared += 1;
            continue;
        }
        let why = on_purpose(&d.path);
        let diff = Difference { path: d.path, what: d.what, details: d.details, on_purpose: why.map(str::to_string) };
        if why.is_some() {
            c.changed_on_purpose.push(diff);
        } else {
            c.differences.push(diff);
        }
    }
    Ok((c, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_recovery_changes_on_purpose_is_told_apart_from_real_differences() {
        for p in [
            "var/log/lifeboat/recover-1.log",
            "boot/initrd.img-6.1.0-57-amd64",
            "boot/grub/grub.cfg",
            "boot",
            "var/tmp",
        ] {
            assert!(on_purpose(p).is_some(), "{p}");
        }
        for p in ["etc/passwd", "bootstrap", "var/log/syslog", "var/tmpfile", "srv/data/random.bin"] {
            assert!(on_purpose(p).is_none(), "{p}");
        }
    }
}
