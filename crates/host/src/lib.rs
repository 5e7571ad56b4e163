//! What the running machine shows: its mounts, its block devices and their
//! sysfs attributes, the device a file lives on, the active swap areas, and
//! the content signatures `blkid` finds — behind one [`Host`] trait.
//!
//! [`SystemHost`] reads the real `/proc` and `/sys` (and runs `blkid` through
//! the caller's [`Runner`]); [`FixtureHost`] answers from fixtures filled in
//! by a test, so the logic that decides which disk may be written, what a
//! capture records or whether a step is already done is tested without root.
//! The real implementation is tested in the root host tests and the VMs.

pub mod blkid;
pub mod fixture;
pub mod mountinfo;
pub mod system;

pub use blkid::Signature;
pub use fixture::FixtureHost;
pub use mountinfo::{unescape, MountEntry};
pub use system::SystemHost;

use lifeboat_runner::{RunError, Runner};
use std::fmt;
use std::path::{Path, PathBuf};

/// Why the host could not be read.
///
/// Rules: every variant names the file or the command.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file of /proc or /sys could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A probe (`blkid`) could not run or failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// A device number, `major:minor`, as sysfs and mountinfo write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DevNum {
    /// The driver's number (8 for SCSI disks, 253/254 for device-mapper, 7 for loop).
    pub major: u32,
    /// The device's number within the driver.
    pub minor: u32,
}

impl DevNum {
    /// The device number `major:minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        DevNum { major, minor }
    }

    /// The device number encoded in a `st_dev` or `st_rdev`.
    pub fn from_raw(raw: u64) -> Self {
        DevNum { major: rustix::fs::major(raw), minor: rustix::fs::minor(raw) }
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// A text that is not `major:minor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a device number (major:minor)")]
pub struct BadDevNum(pub String);

impl std::str::FromStr for DevNum {
    type Err = BadDevNum;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadDevNum(s.to_string());
        let (ma, mi) = s.trim().split_once(':').ok_or_else(bad)?;
        Ok(DevNum { major: ma.parse().map_err(|_| bad())?, minor: mi.parse().map_err(|_| bad())? })
    }
}

/// One block device the kernel shows in `/sys/class/block`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockDevice {
    /// Kernel name (`sda`, `sda1`, `dm-0`, `md0`, `loop3`, `nvme0n1p2`).
    pub name: String,
    /// Device numbers (`dev`).
    pub dev: DevNum,
    /// Size in bytes (`size` is in 512-byte sectors whatever the sector size).
    pub size: u64,
    /// The partition number, for a partition.
    pub partition: Option<u32>,
    /// The whole disk a partition belongs to (`sda` for `sda1`).
    pub parent: Option<String>,
    /// The kernel names of this disk's partitions, sorted.
    pub partitions: Vec<String>,
    /// The devices built on this one (`holders/`: dm-0 on sda2, md0 on sdb1), sorted.
    pub holders: Vec<String>,
    /// The devices this one is built on (`slaves/`: sda2 under dm-0), sorted.
    pub slaves: Vec<String>,
    /// The device-mapper name (`vg0-root`, `cryptroot`), for a dm device.
    pub dm_name: Option<String>,
    /// The medium can be removed (`removable`).
    pub removable: bool,
    /// Read-only (`ro`).
    pub read_only: bool,
    /// Rotational (`queue/rotational`).
    pub rotational: bool,
    /// Logical sector size (`queue/logical_block_size`; whole disks only).
    pub logical_sector_size: Option<u32>,
    /// Physical sector size (`queue/physical_block_size`; whole disks only).
    pub physical_sector_size: Option<u32>,
}

impl BlockDevice {
    /// The device node path the kernel names it by (`/dev/sda1`; `/dev/dm-0` for device-mapper).
    pub fn dev_path(&self) -> String {
        format!("/dev/{}", self.name)
    }

    /// The whole disk this device belongs to: its parent, or itself.
    pub fn whole_disk(&self) -> &str {
        self.parent.as_deref().unwrap_or(&self.name)
    }
}

/// One active swap area (`/proc/swaps`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SwapArea {
    /// The device or file.
    pub path: String,
    /// A swap file rather than a partition or device.
    pub is_file: bool,
    /// Size in bytes.
    pub size: u64,
}

/// Parse the text of `/proc/swaps` (the header line is skipped).
pub fn parse_swaps(text: &str) -> Vec<SwapArea> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3).then(|| SwapArea {
                path: unescape(f[0]),
                is_file: f[1] == "file",
                size: f[2].parse::<u64>().unwrap_or(0) * 1024,
            })
        })
        .collect()
}

/// What the running machine shows about its storage. Everything lifeboat
/// reads from /proc, /sys, device nodes and `blkid` goes through one of these,
/// so a test can put a [`FixtureHost`] where the real [`SystemHost`] would be.
pub trait Host: Send + Sync {
    /// Every mount of the running system (`/proc/self/mountinfo`), paths unescaped.
    fn mounts(&self) -> Result<Vec<MountEntry>, HostError>;

    /// Every block device in `/sys/class/block`, sorted by name, with
    /// partitions, holders and slaves filled in.
    fn block_devices(&self) -> Result<Vec<BlockDevice>, HostError>;

    /// One sysfs attribute of a block device (`device/model`, `serial`,
    /// `loop/backing_file`), trimmed; None when it is missing or empty.
    fn block_attr(&self, name: &str, attr: &str) -> Option<String>;

    /// The device numbers of the block device node at `path` (after
    /// following links); None when it is missing or not a block device.
    fn block_device_number(&self, path: &Path) -> Option<DevNum>;

    /// The device numbers of the filesystem that holds the file or directory
    /// at `path` (its `st_dev`); None when it cannot be read.
    fn device_holding(&self, path: &Path) -> Option<DevNum>;

    /// The active swap areas (`/proc/swaps`).
    fn swaps(&self) -> Result<Vec<SwapArea>, HostError>;

    /// The first `len` bytes of a device (a boot sector, an MBR); with `len`
    /// 0 the device is only opened, to learn whether it can be.
    fn read_head(&self, path: &Path, len: usize) -> std::io::Result<Vec<u8>>;

    /// The content signature `blkid -p` finds on `device` (run through `r`),
    /// or None when it finds none.
    fn probe(&self, r: &dyn Runner, device: &str) -> Result<Option<Signature>, HostError>;

    /// Whether `path` is a block device node.
    fn is_block_device(&self, path: &Path) -> bool {
        self.block_device_number(path).is_some()
    }

    /// The block device with these device numbers.
    fn block_device_by_number(&self, dev: DevNum) -> Option<BlockDevice> {
        self.block_devices().ok()?.into_iter().find(|b| b.dev == dev)
    }

    /// The block device with this kernel name.
    fn block_device(&self, name: &str) -> Option<BlockDevice> {
        self.block_devices().ok()?.into_iter().find(|b| b.name == name)
    }

    /// The kernel name (`sda1`, `loop3`) of the block device node at `path`.
    fn kernel_name(&self, path: &Path) -> Option<String> {
        self.block_device_by_number(self.block_device_number(path)?).map(|b| b.name)
    }

    /// Whether something is mounted exactly at `dir`.
    fn is_mounted_at(&self, dir: &Path) -> bool {
        let want = dir.to_string_lossy();
        self.mounts().is_ok_and(|m| m.iter().any(|e| e.mount_point == want))
    }
}
