//! The real host: `/proc`, `/sys` and the device nodes of the running system.

use crate::{blkid, mountinfo, parse_swaps, BlockDevice, DevNum, Host, HostError, MountEntry, Signature, SwapArea};
use lifeboat_runner::Runner;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The running system. [`SystemHost::new`] reads `/proc` and `/sys`;
/// [`SystemHost::with_root`] reads `ROOT/proc` and `ROOT/sys` instead (a
/// copied or made-up tree, for tests of the sysfs walk). Device nodes and
/// files are always looked at where their paths say.
#[derive(Debug, Clone, Default)]
pub struct SystemHost {
    root: Option<PathBuf>,
}

impl SystemHost {
    /// The running system.
    pub const fn new() -> Self {
        SystemHost { root: None }
    }

    /// A tree that holds `proc/self/mountinfo`, `proc/swaps` and `sys/class/block` under `root`.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        SystemHost { root: Some(root.into()) }
    }

    fn path(&self, p: &str) -> PathBuf {
        match &self.root {
            Some(r) => r.join(p.trim_start_matches('/')),
            None => PathBuf::from(p),
        }
    }

    fn class_block(&self) -> PathBuf {
        self.path("/sys/class/block")
    }

    fn read(&self, p: &str) -> Result<String, HostError> {
        let path = self.path(p);
        std::fs::read_to_string(&path).map_err(|source| HostError::Read { path, source })
    }
}

/// The names in a directory, sorted; none when it is missing.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn attr(dir: &Path, name: &str) -> Option<String> {
    let v = std::fs::read_to_string(dir.join(name)).ok()?;
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

fn number<T: std::str::FromStr>(dir: &Path, name: &str) -> Option<T> {
    attr(dir, name)?.parse().ok()
}

/// One device's directory in /sys/class/block (a link into /sys/devices).
fn read_device(dir: &Path, name: String) -> BlockDevice {
    let partition = number::<u32>(dir, "partition");
    // A partition's directory is inside its disk's directory.
    let parent = partition
        .and_then(|_| std::fs::canonicalize(dir.join("..")).ok())
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    BlockDevice {
        dev: attr(dir, "dev").and_then(|d| d.parse().ok()).unwrap_or_default(),
        size: number::<u64>(dir, "size").unwrap_or(0) * 512,
        partition,
        parent,
        partitions: Vec::new(),
        holders: names_in(&dir.join("holders")),
        slaves: names_in(&dir.join("slaves")),
        dm_name: attr(dir, "dm/name"),
        removable: number::<u8>(dir, "removable") == Some(1),
        read_only: number::<u8>(dir, "ro") == Some(1),
        rotational: number::<u8>(dir, "queue/rotational") == Some(1),
        logical_sector_size: number(dir, "queue/logical_block_size"),
        physical_sector_size: number(dir, "queue/physical_block_size"),
        name,
    }
}

impl Host for SystemHost {
    fn mounts(&self) -> Result<Vec<MountEntry>, HostError> {
        Ok(mountinfo::parse(&self.read("/proc/self/mountinfo")?))
    }

    fn block_devices(&self) -> Result<Vec<BlockDevice>, HostError> {
        let class = self.class_block();
        let rd = std::fs::read_dir(&class).map_err(|source| HostError::Read { path: class.clone(), source })?;
        let mut devices: BTreeMap<String, BlockDevice> = BTreeMap::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            devices.insert(name.clone(), read_device(&e.path(), name));
        }
        let children: Vec<(String, String)> =
            devices.values().filter_map(|d| Some((d.parent.clone()?, d.name.clone()))).collect();
        for (parent, child) in children {
            if let Some(p) = devices.get_mut(&parent) {
                p.partitions.push(child);
            }
        }
        let mut out: Vec<BlockDevice> = devices.into_values().collect();
        for d in &mut out {
            d.partitions.sort();
        }
        Ok(out)
    }

    fn block_attr(&self, name: &str, attr_name: &str) -> Option<String> {
        attr(&self.class_block().join(name), attr_name)
    }

    fn block_device_number(&self, path: &Path) -> Option<DevNum> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = std::fs::metadata(path).ok()?;
        m.file_type().is_block_device().then(|| DevNum::from_raw(m.rdev()))
    }

    fn device_holding(&self, path: &Path) -> Option<DevNum> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| DevNum::from_raw(m.dev()))
    }

    fn swaps(&self) -> Result<Vec<SwapArea>, HostError> {
        Ok(parse_swaps(&self.read("/proc/swaps")?))
    }

    fn read_head(&self, path: &Path, len: usize) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut f = std::fs::File::open(path)?;
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn probe(&self, r: &dyn Runner, device: &str) -> Result<Option<Signature>, HostError> {
        blkid::probe(r, device)
    }

    fn block_device_by_number(&self, dev: DevNum) -> Option<BlockDevice> {
        // /sys/dev/block/MAJ:MIN links to the device's directory: no walk of every device.
        let link = std::fs::read_link(self.path(&format!("/sys/dev/block/{dev}"))).ok()?;
        let name = link.file_name()?.to_string_lossy().into_owned();
        self.block_device(&name)
    }

    fn block_device(&self, name: &str) -> Option<BlockDevice> {
        let dir = self.class_block().join(name);
        if name.is_empty() || name.contains('/') || !dir.exists() {
            return None;
        }
        let mut d = read_device(&dir, name.to_string());
        if d.partition.is_none() {
            d.partitions = names_in(&dir).into_iter().filter(|n| dir.join(n).join("partition").exists()).collect();
        }
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    /// A sysfs tree as the kernel lays it out: /sys/class/block links into
    /// /sys/devices, partitions inside their disk, holders and slaves as links.
    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        let dev = r.join("sys/devices/virtual/block");
        let pci = r.join("sys/devices/pci0000:00/block");
        let class = r.join("sys/class/block");
        let devblock = r.join("sys/dev/block");
        for d in [&dev, &pci, &class, &devblock] {
            fs::create_dir_all(d).expect("mkdir");
        }
        let put = |dir: &Path, attrs: &[(&str, &str)]| {
            for (k, v) in attrs {
                let p = dir.join(k);
                fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                fs::write(p, format!("{v}\n")).expect("write");
            }
        };
        let sda = pci.join("sda");
        put(
            &sda,
            &[
                ("dev", "8:0"),
                ("size", "2097152"),
                ("removable", "0"),
                ("ro", "0"),
                ("queue/rotational", "1"),
                ("queue/logical_block_size", "512"),
                ("queue/physical_block_size", "4096"),
                ("device/model", "QEMU HARDDISK  "),
            ],
        );
        put(&sda.join("sda1"), &[("dev", "8:1"), ("size", "2048"), ("partition", "1")]);
        put(&sda.join("sda2"), &[("dev", "8:2"), ("size", "4096"), ("partition", "2")]);
        let dm = dev.join("dm-0");
        put(&dm, &[("dev", "254:0"), ("size", "4096"), ("dm/name", "vg0-root"), ("ro", "1")]);
        fs::create_dir_all(sda.join("sda2/holders")).expect("mkdir");
        fs::create_dir_all(dm.join("slaves")).expect("mkdir");
        symlink("../../../../virtual/block/dm-0", sda.join("sda2/holders/dm-0")).expect("link");
        symlink("../../../pci0000:00/block/sda/sda2", dm.join("slaves/sda2")).expect("link");
        for (name, target, num) in [
            ("sda", "../../devices/pci0000:00/block/sda", "8:0"),
            ("sda1", "../../devices/pci0000:00/block/sda/sda1", "8:1"),
            ("sda2", "../../devices/pci0000:00/block/sda/sda2", "8:2"),
            ("dm-0", "../../devices/virtual/block/dm-0", "254:0"),
        ] {
            symlink(target, class.join(name)).expect("link");
            symlink(format!("../{target}"), devblock.join(num)).expect("link");
        }
        fs::create_dir_all(r.join("proc/self")).expect("mkdir");
        fs::write(r.join("proc/self/mountinfo"), "25 1 254:0 / / rw - ext4 /dev/mapper/vg0-root rw\n").expect("write");
        fs::write(
            r.join("proc/swaps"),
            "Filename\tType\tSize\tUsed\tPriority\n/dev/sda1 partition 1020 0 -2\n/swap\\040file file 2048 0 -3\n",
        )
        .expect("write");
        t
    }

    #[test]
    fn the_sysfs_walk_finds_partitions_holders_slaves_and_attributes() {
        let t = tree();
        let h = SystemHost::with_root(t.path());
        let all = h.block_devices().expect("walk");
        let names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["dm-0", "sda", "sda1", "sda2"]);
        let sda = &all[1];
        assert_eq!((sda.dev, sda.size, sda.partition, sda.parent.as_deref()), (DevNum::new(8, 0), 1 << 30, None, None));
        assert_eq!(sda.partitions, ["sda1", "sda2"]);
        assert_eq!((sda.logical_sector_size, sda.physical_sector_size, sda.rotational), (Some(512), Some(4096), true));
        let sda2 = &all[3];
        assert_eq!((sda2.partition, sda2.parent.as_deref(), sda2.whole_disk()), (Some(2), Some("sda"), "sda"));
        assert_eq!(sda2.holders, ["dm-0"]);
        let dm = &all[0];
        assert_eq!(
            (dm.slaves.as_slice(), dm.dm_name.as_deref(), dm.read_only),
            (&["sda2".to_string()][..], Some("vg0-root"), true)
        );
        assert_eq!(h.block_attr("sda", "device/model").as_deref(), Some("QEMU HARDDISK"));
        assert_eq!(h.block_attr("sda", "serial"), None);
        // The direct lookups agree with the walk.
        assert_eq!(h.block_device("sda").as_ref(), Some(sda));
        assert_eq!(h.block_device_by_number(DevNum::new(8, 2)).as_ref(), Some(sda2));
        assert_eq!(h.block_device("../sda"), None);
    }

    #[test]
    fn mounts_and_swaps_from_proc() {
        let t = tree();
        let h = SystemHost::with_root(t.path());
        let m = h.mounts().expect("mounts");
        assert_eq!((m[0].dev, m[0].mount_point.as_str()), (DevNum::new(254, 0), "/"));
        assert!(h.is_mounted_at(Path::new("/")) && !h.is_mounted_at(Path::new("/srv")));
        let s = h.swaps().expect("swaps");
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].path.as_str(), s[0].is_file, s[0].size), ("/dev/sda1", false, 1020 * 1024));
        assert_eq!((s[1].path.as_str(), s[1].is_file), ("/swap file", true));
        let e = SystemHost::with_root(t.path().join("nothing")).mounts().expect_err("no proc");
        assert!(e.to_string().contains("nothing/proc/self/mountinfo"), "{e}");
    }

    #[test]
    fn a_regular_file_is_not_a_block_device_but_lives_on_one() {
        let t = tempfile::tempdir().expect("tempdir");
        let f = t.path().join("f");
        fs::write(&f, b"x").expect("write");
        let h = SystemHost::new();
        assert!(!h.is_block_device(&f));
        assert!(!h.is_block_device(&t.path().join("missing")));
        assert!(h.device_holding(&f).is_some());
        assert_eq!(h.read_head(&f, 1).expect("read"), b"x");
        assert!(h.read_head(&f, 2).is_err(), "shorter than asked");
    }
}
