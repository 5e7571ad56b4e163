//! Which block devices must never be written: those mounted, in use as
//! swap, held by RAID/LVM/LUKS, holding the running system, or holding
//! something that must survive (the backup being restored, the rescue
//! medium, the image being written).
//!
//! Every check reads the machine through a [`Host`], so the refusals are
//! tested with a [`lifeboat_host::FixtureHost`]; the functions without
//! `_on` read the running system.

use lifeboat_host::{BlockDevice, DevNum, Host, MountEntry, SystemHost};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The running system.
static SYSTEM: SystemHost = SystemHost::new();

/// Something on a disk that must survive a write to that disk.
#[derive(Debug, Clone, Copy)]
pub struct Keep<'a> {
    /// A file or directory that lives on the disk (the backup directory, the mounted medium, the image).
    pub path: &'a Path,
    /// What it is, for the refusal (`the backup`, `the rescue medium`).
    pub what: &'a str,
}

/// The kernel name (`sda`, `sda1`, `loop3`) of a block device node.
pub fn kernel_name(dev: &Path) -> Option<String> {
    SYSTEM.kernel_name(dev)
}

/// The whole disk a kernel name belongs to (`sda1` → `sda`).
pub fn whole_disk(name: &str) -> String {
    whole_disk_on(&SYSTEM, name)
}

/// The whole disk a kernel name belongs to (`sda1` → `sda`), as `host` shows it.
pub fn whole_disk_on(host: &dyn Host, name: &str) -> String {
    host.block_device(name).and_then(|d| d.parent).unwrap_or_else(|| name.to_string())
}

/// Why `dev` (a whole disk or partition) must not be written, or None.
pub fn in_use(dev: &Path) -> Option<String> {
    in_use_on(&SYSTEM, dev)
}

/// The block device a file lives on (for "do not overwrite the disk that holds the image").
pub fn device_of_file(p: &Path) -> Option<PathBuf> {
    device_of_file_on(&SYSTEM, p)
}

/// The whole disk (`/dev/sda`) that holds the file or directory `p`, as `host` shows it.
pub fn device_of_file_on(host: &dyn Host, p: &Path) -> Option<PathBuf> {
    let d = host.block_device_by_number(host.device_holding(p)?)?;
    Some(PathBuf::from(format!("/dev/{}", d.whole_disk())))
}

/// The kernel names of a disk and its partitions.
fn family(host: &dyn Host, disk: &str) -> Vec<BlockDevice> {
    let mut out: Vec<BlockDevice> = host.block_device(disk).into_iter().collect();
    let parts = out.first().map(|d| d.partitions.clone()).unwrap_or_default();
    out.extend(parts.iter().filter_map(|p| host.block_device(p)));
    out
}

/// Every device built on `name`, directly or through others (dm on md on a
/// partition), in the order they were reached.
fn stacked_on(host: &dyn Host, name: &str) -> Vec<BlockDevice> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    let mut out = Vec::new();
    while let Some(n) = todo.pop() {
        let Some(d) = host.block_device(&n) else { continue };
        for h in &d.holders {
            if seen.insert(h.clone()) {
                if let Some(hd) = host.block_device(h) {
                    todo.push(h.clone());
                    out.push(hd);
                }
            }
        }
    }
    out
}

/// Where the filesystem on device `dev` is mounted, if it is.
fn mounted_where(mounts: &[MountEntry], dev: DevNum) -> Option<&MountEntry> {
    // "/" first: holding the running system is the reason to name.
    mounts.iter().filter(|m| m.dev == dev).min_by_key(|m| m.mount_point != "/")
}

fn how_mounted(m: &MountEntry) -> String {
    if m.mount_point == "/" {
        "holds the running system (mounted on /)".to_string()
    } else {
        format!("is mounted on {}", m.mount_point)
    }
}

/// Why `dev` (a whole disk or partition) must not be written, or None, as
/// `host` shows it. The whole disk counts: a partition of a disk that has a
/// mounted partition is refused too, since writing a table rewrites them all.
pub fn in_use_on(host: &dyn Host, dev: &Path) -> Option<String> {
    let Some(name) = host.kernel_name(dev) else {
        return Some(format!("{} is not a block device", dev.display()));
    };
    let disk = whole_disk_on(host, &name);
    let members = family(host, &disk);
    let mounts = host.mounts().unwrap_or_default();
    // Holding the running system is the reason to name, whichever member holds it.
    let numbers: Vec<DevNum> = members.iter().map(|d| d.dev).collect();
    if let Some(m) = mounts.iter().filter(|m| numbers.contains(&m.dev)).min_by_key(|m| m.mount_point != "/") {
        return Some(format!("/dev/{disk} {}", how_mounted(m)));
    }
    let swaps = host.swaps().unwrap_or_default();
    for d in &members {
        let path = d.dev_path();
        if swaps.iter().any(|s| s.path == path) {
            return Some(format!("{path} is in use as swap"));
        }
        if d.holders.is_empty() {
            continue;
        }
        // Name what the stack on top is doing, if it is mounted or swap.
        let above = stacked_on(host, &d.name);
        let busy = above.iter().find_map(|h| {
            let shown = match &h.dm_name {
                Some(n) => format!("{} ({n})", h.name),
                None => h.name.clone(),
            };
            if let Some(m) = mounted_where(&mounts, h.dev) {
                Some(format!(", and {shown} {}", how_mounted(m)))
            } else {
                let dm_path = h.dm_name.as_ref().map(|n| format!("/dev/mapper/{n}"));
                swaps
                    .iter()
                    .any(|s| s.path == h.dev_path() || Some(&s.path) == dm_path.as_ref())
                    .then(|| format!(", and {shown} is in use as swap"))
            }
        });
        return Some(format!(
            "{path} is in use by {} (RAID, LVM or LUKS){}",
            d.holders.join(", "),
            busy.unwrap_or_default()
        ));
    }
    None
}

/// Why `dev` must not be written, or None: it holds one of `keep`, or it is
/// in use ([`in_use_on`]). A disk holds a file when the file's filesystem is
/// on the disk, on one of its partitions, or on a device stacked on them.
pub fn refusal_on(host: &dyn Host, dev: &Path, keep: &[Keep<'_>]) -> Option<String> {
    if let Some(name) = host.kernel_name(dev) {
        let disk = whole_disk_on(host, &name);
        let mut under: Vec<BlockDevice> = family(host, &disk);
        let stacked: Vec<BlockDevice> = under.iter().flat_map(|d| stacked_on(host, &d.name)).collect();
        under.extend(stacked);
        for k in keep {
            let Some(at) = host.device_holding(k.path) else { continue };
            if under.iter().any(|d| d.dev == at) {
                return Some(format!("/dev/{disk} holds {} {}", k.what, k.path.display()));
            }
        }
    }
    in_use_on(host, dev)
}

/// Why `dev` must not be written on the running system, or None (see [`refusal_on`]).
pub fn refusal(dev: &Path, keep: &[Keep<'_>]) -> Option<String> {
    refusal_on(&SYSTEM, dev, keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_host::FixtureHost;

    const G: u64 = 1 << 30;

    /// Two disks: sda (sda1 ESP, sda2 an LVM PV under dm-0 = vg0-root) and an idle sdb.
    fn machine() -> FixtureHost {
        FixtureHost::new()
            .disk("sda", DevNum::new(8, 0), 10 * G)
            .partition("sda", "sda1", 1, DevNum::new(8, 1), G / 2)
            .partition("sda", "sda2", 2, DevNum::new(8, 2), 9 * G)
            .device(BlockDevice {
                name: "dm-0".into(),
                dev: DevNum::new(254, 0),
                dm_name: Some("vg0-root".into()),
                ..BlockDevice::default()
            })
            .holds("dm-0", "sda2")
            .link("/dev/mapper/vg0-root", "dm-0")
            .disk("sdb", DevNum::new(8, 16), 20 * G)
            .partition("sdb", "sdb1", 1, DevNum::new(8, 17), 20 * G)
    }

    fn why(h: &FixtureHost, dev: &str) -> Option<String> {
        in_use_on(h, Path::new(dev))
    }

    #[test]
    fn an_idle_disk_and_its_partitions_may_be_written() {
        let h = machine();
        assert_eq!(why(&h, "/dev/sdb"), None);
        assert_eq!(why(&h, "/dev/sdb1"), None);
        assert_eq!(refusal_on(&h, Path::new("/dev/sdb"), &[]), None);
    }

    #[test]
    fn a_path_that_is_no_block_device_is_refused() {
        let h = machine();
        assert_eq!(why(&h, "/dev/sdz").as_deref(), Some("/dev/sdz is not a block device"));
    }

    #[test]
    fn a_mounted_disk_is_refused_and_the_root_named_as_such() {
        let h = machine().mount(DevNum::new(8, 16), "/dev/sdb", "/srv/my data", "ext4");
        assert_eq!(why(&h, "/dev/sdb").as_deref(), Some("/dev/sdb is mounted on /srv/my data"));
        let h = machine().mount(DevNum::new(8, 16), "/dev/sdb", "/srv", "ext4").mount(
            DevNum::new(8, 16),
            "/dev/sdb",
            "/",
            "ext4",
        );
        assert_eq!(why(&h, "/dev/sdb").as_deref(), Some("/dev/sdb holds the running system (mounted on /)"));
    }

    #[test]
    fn a_disk_with_a_mounted_partition_is_refused_and_so_are_its_other_partitions() {
        let h = machine().mount(DevNum::new(8, 1), "/dev/sda1", "/boot/efi", "vfat");
        assert_eq!(why(&h, "/dev/sda").as_deref(), Some("/dev/sda is mounted on /boot/efi"));
        // Writing sda2 means rewriting sda's table, which holds the mounted ESP.
        assert_eq!(why(&h, "/dev/sda2").as_deref(), Some("/dev/sda is mounted on /boot/efi"));
        // With the root on another partition, the root is what is named.
        let h = h.mount(DevNum::new(8, 2), "/dev/sda2", "/", "ext4");
        assert_eq!(why(&h, "/dev/sda1").as_deref(), Some("/dev/sda holds the running system (mounted on /)"));
    }

    #[test]
    fn a_disk_under_a_mounted_lvm_volume_is_refused_naming_the_volume() {
        let h = machine().mount(DevNum::new(254, 0), "/dev/mapper/vg0-root", "/", "ext4");
        let w = why(&h, "/dev/sda").expect("refused");
        assert_eq!(
            w,
            "/dev/sda2 is in use by dm-0 (RAID, LVM or LUKS), and dm-0 (vg0-root) holds the running system (mounted on /)"
        );
        // The same through a partition node, and with the stack unmounted.
        assert!(why(&h, "/dev/sda1").expect("refused").starts_with("/dev/sda2 is in use by dm-0"));
        let idle = machine();
        assert_eq!(why(&idle, "/dev/sda").as_deref(), Some("/dev/sda2 is in use by dm-0 (RAID, LVM or LUKS)"));
    }

    #[test]
    fn a_disk_under_raid_under_lvm_names_the_mounted_top_of_the_stack() {
        let h = machine()
            .device(BlockDevice { name: "md0".into(), dev: DevNum::new(9, 0), ..BlockDevice::default() })
            .holds("md0", "sdb1")
            .device(BlockDevice {
                name: "dm-1".into(),
                dev: DevNum::new(254, 1),
                dm_name: Some("data-srv".into()),
                ..BlockDevice::default()
            })
            .holds("dm-1", "md0")
            .mount(DevNum::new(254, 1), "/dev/mapper/data-srv", "/srv", "xfs");
        assert_eq!(
            why(&h, "/dev/sdb").as_deref(),
            Some("/dev/sdb1 is in use by md0 (RAID, LVM or LUKS), and dm-1 (data-srv) is mounted on /srv")
        );
    }

    #[test]
    fn swap_on_a_partition_or_on_a_volume_on_top_is_refused() {
        let h = machine().swap("/dev/sdb1", G);
        assert_eq!(why(&h, "/dev/sdb").as_deref(), Some("/dev/sdb1 is in use as swap"));
        let h = machine().swap("/dev/mapper/vg0-root", G);
        assert_eq!(
            why(&h, "/dev/sda").as_deref(),
            Some("/dev/sda2 is in use by dm-0 (RAID, LVM or LUKS), and dm-0 (vg0-root) is in use as swap")
        );
    }

    #[test]
    fn the_disk_that_holds_the_backup_is_refused_even_when_nothing_else_is_in_use() {
        // The backup directory is on sdb1 (its filesystem's st_dev is 8:17).
        let h = machine().file_on("/mnt/usb", DevNum::new(8, 17));
        let backup = Keep { path: Path::new("/mnt/usb/backups/host-1"), what: "the backup" };
        assert_eq!(
            refusal_on(&h, Path::new("/dev/sdb"), &[backup]).as_deref(),
            Some("/dev/sdb holds the backup /mnt/usb/backups/host-1")
        );
        assert_eq!(device_of_file_on(&h, backup.path), Some(PathBuf::from("/dev/sdb")));
        // Another disk is not refused for it.
        assert_eq!(refusal_on(&h, Path::new("/dev/sda"), &[backup]).as_deref(), why(&h, "/dev/sda").as_deref());
    }

    #[test]
    fn the_disk_that_holds_the_rescue_medium_is_refused_also_through_a_stack() {
        // The medium's files are on an LVM volume on sda2: sda holds them.
        let h = machine().file_on("/run/medium", DevNum::new(254, 0));
        let medium = Keep { path: Path::new("/run/medium"), what: "the rescue medium" };
        assert_eq!(
            refusal_on(&h, Path::new("/dev/sda1"), &[medium]).as_deref(),
            Some("/dev/sda holds the rescue medium /run/medium")
        );
        // The file's own device is a dm device: no whole disk to name beyond itself.
        assert_eq!(device_of_file_on(&h, medium.path), Some(PathBuf::from("/dev/dm-0")));
        assert_eq!(refusal_on(&h, Path::new("/dev/sdb"), &[medium]), None);
    }

    #[test]
    fn whole_disks_of_partitions() {
        let h = machine();
        assert_eq!(whole_disk_on(&h, "sda2"), "sda");
        assert_eq!(whole_disk_on(&h, "sda"), "sda");
        assert_eq!(whole_disk_on(&h, "nvme9n1p1"), "nvme9n1p1", "unknown names stay as they are");
    }
}
