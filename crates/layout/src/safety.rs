//! Which block devices must never be written: those mounted, in use as
//! swap, held by RAID/LVM/LUKS, or holding the running system.

use std::path::{Path, PathBuf};

/// `MAJ:MIN` of a block device node.
fn dev_numbers(dev: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(dev).ok()?;
    if !m.file_type().is_block_device() {
        return None;
    }
    let rdev = m.rdev();
    Some((rustix::fs::major(rdev) as u64, rustix::fs::minor(rdev) as u64))
}

/// The kernel name (`sda`, `sda1`, `loop3`) of a block device node.
pub fn kernel_name(dev: &Path) -> Option<String> {
    let (ma, mi) = dev_numbers(dev)?;
    let link = std::fs::read_link(format!("/sys/dev/block/{ma}:{mi}")).ok()?;
    link.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// The kernel names of a disk and its partitions.
fn family(disk: &str) -> Vec<String> {
    let mut out = vec![disk.to_string()];
    for e in std::fs::read_dir(format!("/sys/class/block/{disk}")).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(disk) && e.path().join("partition").exists() {
            out.push(n);
        }
    }
    out
}

/// The whole disk a kernel name belongs to (`sda1` → `sda`).
pub fn whole_disk(name: &str) -> String {
    if Path::new(&format!("/sys/class/block/{name}/partition")).exists() {
        if let Ok(p) = std::fs::canonicalize(format!("/sys/class/block/{name}/..")) {
            if let Some(n) = p.file_name() {
                return n.to_string_lossy().into_owned();
            }
        }
    }
    name.to_string()
}

/// Why `dev` (a whole disk or partition) must not be written, or None.
pub fn in_use(dev: &Path) -> Option<String> {
    let Some(name) = kernel_name(dev) else {
        return Some(format!("{} is not a block device", dev.display()));
    };
    let disk = whole_disk(&name);
    let names = family(&disk);
    let numbers: Vec<String> = names
        .iter()
        .filter_map(|n| std::fs::read_to_string(format!("/sys/class/block/{n}/dev")).ok())
        .map(|s| s.trim().to_string())
        .collect();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() > 4 && numbers.iter().any(|n| n == f[2]) {
            let what = if f[4] == "/" {
                "holds the running system (mounted on /)".to_string()
            } else {
                format!("is mounted on {}", f[4])
            };
            return Some(format!("/dev/{disk} {what}"));
        }
    }
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    for n in &names {
        if swaps.lines().any(|l| l.split_whitespace().next() == Some(&format!("/dev/{n}"))) {
            return Some(format!("/dev/{n} is in use as swap"));
        }
        let holders: Vec<String> = std::fs::read_dir(format!("/sys/class/block/{n}/holders"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if !holders.is_empty() {
            return Some(format!("/dev/{n} is in use by {} (RAID, LVM or LUKS)", holders.join(", ")));
        }
    }
    None
}

/// The block device a file lives on (for "do not overwrite the disk that holds the image").
pub fn device_of_file(p: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(p).ok()?.dev();
    let (ma, mi) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let link = std::fs::read_link(format!("/sys/dev/block/{ma}:{mi}")).ok()?;
    link.file_name().map(|n| PathBuf::from(format!("/dev/{}", whole_disk(&n.to_string_lossy()))))
}
