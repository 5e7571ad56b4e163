//! A host made of fixtures: what a test says the machine shows.

use crate::{mountinfo, BlockDevice, DevNum, Host, HostError, MountEntry, Signature, SwapArea};
use lifeboat_runner::Runner;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A machine that exists only in a test: block devices, mounts, swap areas,
/// signatures and device heads as filled in, and no root needed. The builder
/// methods keep the pieces consistent (a partition is listed by its disk,
/// a holder by the device it holds, every device has its `/dev` node);
/// the fields are public for anything they do not cover.
#[derive(Debug, Clone, Default)]
pub struct FixtureHost {
    /// The mounts, in mountinfo order.
    pub mounts: Vec<MountEntry>,
    /// The block devices, by kernel name.
    pub devices: BTreeMap<String, BlockDevice>,
    /// Sysfs attributes by (kernel name, attribute).
    pub attrs: BTreeMap<(String, String), String>,
    /// Block device nodes: path → device numbers.
    pub nodes: BTreeMap<PathBuf, DevNum>,
    /// Files and directories: path → the device of the filesystem that holds them.
    pub files: BTreeMap<PathBuf, DevNum>,
    /// The active swap areas.
    pub swaps: Vec<SwapArea>,
    /// What `blkid -p` finds, by device path.
    pub signatures: BTreeMap<String, Signature>,
    /// The first bytes of devices, by path (what `read_head` returns, cut to length).
    pub heads: BTreeMap<PathBuf, Vec<u8>>,
    /// Devices that cannot be opened, with the errno (`EACCES` is 13, `ENOMEDIUM` 123).
    pub unopenable: BTreeMap<PathBuf, i32>,
}

impl FixtureHost {
    /// A machine with nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a device (any kind) with a `/dev/NAME` node.
    pub fn device(mut self, d: BlockDevice) -> Self {
        self.nodes.insert(PathBuf::from(d.dev_path()), d.dev);
        self.devices.insert(d.name.clone(), d);
        self
    }

    /// Add a whole disk of `size` bytes.
    pub fn disk(self, name: &str, dev: DevNum, size: u64) -> Self {
        self.device(BlockDevice {
            name: name.into(),
            dev,
            size,
            logical_sector_size: Some(512),
            physical_sector_size: Some(512),
            ..BlockDevice::default()
        })
    }

    /// Add partition number `number` of `disk` (added before), named `name`.
    pub fn partition(mut self, disk: &str, name: &str, number: u32, dev: DevNum, size: u64) -> Self {
        if let Some(d) = self.devices.get_mut(disk) {
            d.partitions.push(name.into());
            d.partitions.sort();
        }
        self.device(BlockDevice {
            name: name.into(),
            dev,
            size,
            partition: Some(number),
            parent: Some(disk.into()),
            ..BlockDevice::default()
        })
    }

    /// Say that `holder` (a dm, md or other stacked device, added before) is built on `slave`.
    pub fn holds(mut self, holder: &str, slave: &str) -> Self {
        if let Some(d) = self.devices.get_mut(slave) {
            d.holders.push(holder.into());
            d.holders.sort();
        }
        if let Some(d) = self.devices.get_mut(holder) {
            d.slaves.push(slave.into());
            d.slaves.sort();
        }
        self
    }

    /// Also make `link` (`/dev/mapper/vg0-root`, `/dev/disk/by-uuid/…`) a node of the device `name`.
    pub fn link(mut self, link: &str, name: &str) -> Self {
        if let Some(d) = self.devices.get(name) {
            self.nodes.insert(PathBuf::from(link), d.dev);
        }
        self
    }

    /// Mount the filesystem on device `dev` (seen as `source`) at `mount_point`.
    pub fn mount(mut self, dev: DevNum, source: &str, mount_point: &str, fstype: &str) -> Self {
        let id = 20 + self.mounts.len() as u32;
        self.mounts.push(MountEntry {
            mount_id: id,
            parent_id: if self.mounts.is_empty() { 1 } else { 20 },
            dev,
            root: "/".into(),
            mount_point: mount_point.into(),
            options: "rw,relatime".into(),
            fstype: fstype.into(),
            source: source.into(),
            super_options: "rw".into(),
        });
        self
    }

    /// Add the mounts of a mountinfo text.
    pub fn mountinfo(mut self, text: &str) -> Self {
        self.mounts.extend(mountinfo::parse(text));
        self
    }

    /// Say that the file or directory `path` lives on the filesystem of device `dev`.
    pub fn file_on(mut self, path: &str, dev: DevNum) -> Self {
        self.files.insert(PathBuf::from(path), dev);
        self
    }

    /// Make `path` an active swap area of `size` bytes.
    pub fn swap(mut self, path: &str, size: u64) -> Self {
        self.swaps.push(SwapArea { path: path.into(), is_file: !path.starts_with("/dev/"), size });
        self
    }

    /// What `blkid -p DEVICE` finds.
    pub fn signature(mut self, device: &str, pairs: &[(&str, &str)]) -> Self {
        self.signatures.insert(device.into(), Signature::from_pairs(pairs.iter().copied()));
        self
    }

    /// A sysfs attribute of device `name`.
    pub fn attr(mut self, name: &str, attr: &str, value: &str) -> Self {
        self.attrs.insert((name.into(), attr.into()), value.into());
        self
    }

    /// The first bytes of the device at `path`.
    pub fn head(mut self, path: &str, bytes: &[u8]) -> Self {
        self.heads.insert(PathBuf::from(path), bytes.to_vec());
        self
    }
}

impl Host for FixtureHost {
    fn mounts(&self) -> Result<Vec<MountEntry>, HostError> {
        Ok(self.mounts.clone())
    }

    fn block_devices(&self) -> Result<Vec<BlockDevice>, HostError> {
        Ok(self.devices.values().cloned().collect())
    }

    fn block_attr(&self, name: &str, attr: &str) -> Option<String> {
        let v = self.attrs.get(&(name.to_string(), attr.to_string()))?.trim();
        (!v.is_empty()).then(|| v.to_string())
    }

    fn block_device_number(&self, path: &Path) -> Option<DevNum> {
        self.nodes.get(path).copied()
    }

    fn device_holding(&self, path: &Path) -> Option<DevNum> {
        // A file lives where its nearest listed ancestor does.
        path.ancestors().find_map(|a| self.files.get(a).copied())
    }

    fn swaps(&self) -> Result<Vec<SwapArea>, HostError> {
        Ok(self.swaps.clone())
    }

    fn read_head(&self, path: &Path, len: usize) -> std::io::Result<Vec<u8>> {
        if let Some(errno) = self.unopenable.get(path) {
            return Err(std::io::Error::from_raw_os_error(*errno));
        }
        let Some(head) = self.heads.get(path).or_else(|| self.nodes.contains_key(path).then_some(&EMPTY)) else {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        };
        if len == 0 {
            return Ok(Vec::new());
        }
        // An unfilled device reads as zeros; a short head is a short device.
        let mut out = head.clone();
        if self.heads.contains_key(path) && out.len() < len {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        out.resize(len, 0);
        Ok(out)
    }

    fn probe(&self, _r: &dyn Runner, device: &str) -> Result<Option<Signature>, HostError> {
        // Fixtures never run anything.
        Ok(self.signatures.get(device).cloned())
    }
}

static EMPTY: Vec<u8> = Vec::new();

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_runner::ScriptedRunner;

    #[test]
    fn the_builder_keeps_disks_partitions_and_holders_consistent() {
        let h = FixtureHost::new()
            .disk("sda", DevNum::new(8, 0), 1 << 30)
            .partition("sda", "sda2", 2, DevNum::new(8, 2), 1 << 29)
            .partition("sda", "sda1", 1, DevNum::new(8, 1), 1 << 20)
            .device(BlockDevice { name: "dm-0".into(), dev: DevNum::new(254, 0), ..BlockDevice::default() })
            .holds("dm-0", "sda2")
            .link("/dev/mapper/vg0-root", "dm-0")
            .file_on("/srv/backup", DevNum::new(8, 1))
            .signature("/dev/sda1", &[("TYPE", "ext4"), ("UUID", "u1")]);
        let sda = h.block_device("sda").expect("sda");
        assert_eq!(sda.partitions, ["sda1", "sda2"]);
        assert_eq!(h.block_device("sda2").expect("sda2").holders, ["dm-0"]);
        assert_eq!(h.block_device("dm-0").expect("dm").slaves, ["sda2"]);
        assert_eq!(h.kernel_name(Path::new("/dev/mapper/vg0-root")).as_deref(), Some("dm-0"));
        assert!(h.is_block_device(Path::new("/dev/sda1")) && !h.is_block_device(Path::new("/dev/sdz")));
        assert_eq!(h.device_holding(Path::new("/srv/backup/host/x")), Some(DevNum::new(8, 1)));
        assert_eq!(h.device_holding(Path::new("/elsewhere")), None);
        let r = ScriptedRunner::new();
        assert_eq!(
            h.probe(&r, "/dev/sda1").expect("probe").and_then(|s| s.uuid().map(String::from)).as_deref(),
            Some("u1")
        );
        assert_eq!(h.probe(&r, "/dev/sda2").expect("probe"), None);
        assert_eq!(h.read_head(Path::new("/dev/sda"), 4).expect("zeros"), [0; 4]);
        assert!(h.read_head(Path::new("/dev/sdz"), 4).is_err());
    }
}
