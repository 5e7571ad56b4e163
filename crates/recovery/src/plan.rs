//! The recovery plan: every disk to wipe, every partition with its new
//! start and size, every RAID/LUKS/LVM/filesystem to create, what is
//! restored where, and the bootloader to install — built from the saved
//! layout and the disk mapping, before anything is written.

use crate::geometry::{self, NewPartition, PartInfo};
use crate::mapping::DiskMap;
use crate::RecoveryError;
use lifeboat_config::human;
use lifeboat_layout::model::{Disk, Filesystem, Layout, Lv};
use lifeboat_runner::Cmd;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What the plan needs besides the layout and the mapping.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Mount points or partition ids that keep their size.
    pub keep_size: Vec<String>,
    /// Headroom for shrinking, percent.
    pub headroom_percent: u32,
    /// Key file for LUKS, if any.
    pub luks_key_file: Option<String>,
    /// No questions will be asked.
    pub unattended: bool,
    /// Regenerate the initramfs.
    pub regenerate_initramfs: bool,
    /// Reinstall the bootloader.
    pub bootloader: bool,
}

fn as_cmdline<S: serde::Serializer>(c: &Cmd, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&c.cmdline())
}

/// One thing recovery does, in order.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Write a new partition table (wipes the disk).
    Partition {
        /// New disk.
        disk: String,
        /// The disk in the layout.
        old: String,
        /// `gpt` or `dos`.
        label: String,
        /// The sfdisk script.
        script: String,
        /// New partitions: (number, new device path, start, size in sectors, what).
        partitions: Vec<(u32, String, u64, u64, String)>,
        /// Sector size.
        sector: u64,
    },
    /// Erase the signatures on a disk used without a partition table.
    Wipe {
        /// The device.
        device: String,
    },
    /// Create an md RAID array.
    Raid {
        /// The array device.
        device: String,
        /// Its UUID.
        uuid: String,
        /// mdadm --create.
        #[serde(serialize_with = "as_cmdline")]
        cmd: Cmd,
    },
    /// Create and open a LUKS container.
    Luks {
        /// The device holding the header.
        device: String,
        /// Mapping name.
        name: String,
        /// LUKS UUID.
        uuid: String,
        /// `cryptsetup luksFormat` (the key file argument is added at run time).
        #[serde(serialize_with = "as_cmdline")]
        format: Cmd,
    },
    /// Create an LVM physical volume.
    Pv {
        /// Device.
        device: String,
        /// PV UUID.
        uuid: String,
        /// pvcreate.
        #[serde(serialize_with = "as_cmdline")]
        cmd: Cmd,
    },
    /// Create a volume group.
    Vg {
        /// Name.
        name: String,
        /// vgcreate.
        #[serde(serialize_with = "as_cmdline")]
        cmd: Cmd,
    },
    /// Create a logical volume.
    Lv {
        /// VG/LV.
        name: String,
        /// Size in bytes.
        size: u64,
        /// lvcreate.
        #[serde(serialize_with = "as_cmdline")]
        cmd: Cmd,
    },
    /// Make a filesystem with its old UUID, label and parameters.
    Mkfs {
        /// Device.
        device: String,
        /// Type.
        fstype: String,
        /// UUID it must get.
        uuid: Option<String>,
        /// mkfs.
        #[serde(serialize_with = "as_cmdline")]
        cmd: Cmd,
    },
    /// Make a swap area.
    Mkswap {
        /// Device.
        device: String,
        /// UUID.
        uuid: Option<String>,
        /// mkswap.
        #[serde(serialize_with = "as_cmdline")]
        cmd: Cmd,
    },
    /// Create btrfs subvolumes (mounting the top level for it).
    Subvolumes {
        /// Device.
        device: String,
        /// Paths from the top level, parents first.
        paths: Vec<String>,
        /// The default subvolume's path, if not the top level.
        default: Option<String>,
    },
    /// Mount a recreated filesystem below the recovery mount point.
    Mount {
        /// Device.
        device: String,
        /// Mount point in the restored system (`/`, `/home`).
        target: String,
        /// Type.
        fstype: String,
        /// Extra options (`subvol=@home`).
        options: Option<String>,
    },
    /// Restore the backup into the mounted tree.
    Restore {
        /// The backup directory.
        backup: String,
        /// Entries and bytes in it.
        entries: u64,
        /// Content bytes.
        bytes: u64,
    },
    /// Rewrite device names that changed in fstab, crypttab and the GRUB configuration.
    FixDevices {
        /// Old device path → new one.
        renames: BTreeMap<String, String>,
    },
    /// Rebuild the initramfs in the restored system.
    Initramfs,
    /// Install GRUB for BIOS in these disks' boot sectors.
    GrubBios {
        /// New disks.
        disks: Vec<String>,
    },
    /// Install GRUB for UEFI on the ESP, with a boot entry and the removable fallback path.
    GrubEfi {
        /// ESP mount point in the restored system.
        esp_mountpoint: String,
        /// Boot loader id (`debian`).
        id: String,
    },
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The disk mapping.
    pub disks: Vec<DiskMap>,
    /// Old device paths → new ones (disks and partitions that get other names).
    pub renames: BTreeMap<String, String>,
    /// What will be done, in order.
    pub actions: Vec<Action>,
    /// Things the administrator should know (left out, cannot be kept).
    pub notes: Vec<String>,
}

/// The device path of partition `n` of `disk` (`/dev/sda` 1 → `/dev/sda1`, `/dev/nvme0n1` → `p1`).
pub fn partition_path(disk: &str, n: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{n}")
    } else {
        format!("{disk}{n}")
    }
}

/// Mount points of a filesystem as captured: (target, btrfs subvolume path).
fn mounts_of(layout: &Layout, fs: &Filesystem) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for m in layout.mounts.iter().filter(|m| m.source == fs.device) {
        if fs.fstype == "btrfs" {
            let sub = m.root.trim_start_matches('/');
            out.push((m.target.clone(), (!sub.is_empty()).then(|| sub.to_string())));
        } else if m.root == "/" {
            out.push((m.target.clone(), None));
        }
    }
    if out.is_empty() {
        for t in &fs.mountpoints {
            out.push((t.clone(), None));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn what_is_on(layout: &Layout, id: &str) -> String {
    if let Some(f) = layout.filesystem_on(id) {
        let m = mounts_of(layout, f).into_iter().map(|(t, _)| t).next();
        return match m {
            Some(t) => format!("{t} ({})", f.fstype),
            None => f.fstype.clone(),
        };
    }
    if layout.swaps.iter().any(|s| s.device == id) {
        return "swap".into();
    }
    if let Some(p) = layout.lvm.pvs.iter().find(|p| p.device == id) {
        return format!("LVM PV of {}", p.vg.clone().unwrap_or_default());
    }
    if let Some(r) = layout.raids.iter().find(|r| r.members.iter().any(|m| m == id)) {
        return format!("RAID member of {}", r.id);
    }
    if let Some(l) = layout.luks.iter().find(|l| l.device == id) {
        return format!("LUKS {}", l.name.clone().unwrap_or_default());
    }
    "empty".into()
}

/// Bytes that must fit on a node: the used data of the filesystem on it
/// plus headroom; for containers (PV, RAID member, LUKS) what their
/// contents need. None when nothing is known (the node keeps its size).
fn needed_on(layout: &Layout, id: &str, headroom: u32) -> Option<u64> {
    let with_headroom = |b: u64| b + b * u64::from(headroom) / 100;
    if let Some(f) = layout.filesystem_on(id) {
        // Every filesystem needs some room of its own beyond the data (journal,
        // metadata); mkfs.xfs refuses filesystems below 300 MiB.
        let floor = if f.fstype == "xfs" { 300 * geometry::MIB } else { 0 };
        return f.used.map(|u| (with_headroom(u) + 64 * geometry::MIB).max(floor));
    }
    if layout.swaps.iter().any(|s| s.device == id) {
        return Some(geometry::MIB * 16);
    }
    if let Some(pool) = layout.lvm.lvs.iter().find(|l| l.id == id && is_segtype(l, "thin-pool")) {
        // A thin pool holds the data of its thin volumes (whatever their
        // virtual sizes and filesystem minimums), plus its metadata.
        let data: u64 = layout
            .lvm
            .lvs
            .iter()
            .filter(|t| t.vg == pool.vg && t.pool.as_deref() == Some(pool.name.as_str()))
            .map(|t| layout.filesystem_on(&t.id).and_then(|f| f.used).map(with_headroom).unwrap_or(t.size))
            .sum();
        // Metadata twice: the pool's own and LVM's spare copy.
        return Some(data + 2 * pool.metadata_size.unwrap_or(4 * geometry::MIB));
    }
    if let Some(pv) = layout.lvm.pvs.iter().find(|p| p.device == id) {
        let vg = layout.lvm.vgs.iter().find(|v| Some(&v.name) == pv.vg.as_ref())?;
        // Thin volumes take their room from their pool, hidden LVs are counted with theirs.
        let lvs = layout.lvm.lvs.iter().filter(|l| l.vg == vg.name && !l.hidden && !is_segtype(l, "thin"));
        let total: u64 = lvs.map(|l| needed_on(layout, &l.id, headroom).unwrap_or(l.size)).sum();
        return Some(total + 4 * geometry::MIB);
    }
    if let Some(l) = layout.luks.iter().find(|l| l.device == id) {
        return l.id.as_deref().and_then(|inner| needed_on(layout, inner, headroom)).map(|n| n + 16 * geometry::MIB);
    }
    if let Some(r) = layout.raids.iter().find(|r| r.members.iter().any(|m| m == id)) {
        return needed_on(layout, &r.id, headroom).map(|n| n + 8 * geometry::MIB);
    }
    None
}

fn is_segtype(l: &Lv, t: &str) -> bool {
    l.segments.first().is_some_and(|s| s.segtype == t)
}

/// Facts about each partition of an old disk, for placing it on a new one.
pub fn part_infos(layout: &Layout, d: &Disk, s: &Settings) -> Vec<PartInfo> {
    let Some(t) = &d.table else { return Vec::new() };
    t.partitions
        .iter()
        .map(|p| {
            let mounts: Vec<String> = layout
                .filesystem_on(&p.id)
                .map(|f| mounts_of(layout, f).into_iter().map(|m| m.0).collect())
                .unwrap_or_default();
            let fixed = geometry::fixed_type(&p.part_type)
                || mounts.iter().any(|m| m == "/boot" || m == "/boot/efi" || s.keep_size.contains(m))
                || s.keep_size.contains(&p.id)
                || layout.swaps.iter().any(|sw| sw.device == p.id);
            PartInfo {
                part: p.clone(),
                fixed,
                needed: needed_on(layout, &p.id, s.headroom_percent),
                what: what_is_on(layout, &p.id),
            }
        })
        .collect()
}

/// The smallest disk an old disk can be recreated on.
pub fn minimum_size(layout: &Layout, d: &Disk, s: &Settings) -> u64 {
    if d.table.is_none() {
        return needed_on(layout, &d.id, s.headroom_percent).unwrap_or(d.size);
    }
    geometry::minimum_size(d, &part_infos(layout, d, s))
}

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('"', ""))
}

fn sfdisk_script(d: &Disk, new_disk: &str, parts: &[NewPartition], same_size: bool) -> String {
    let Some(t) = &d.table else { return String::new() };
    let mut s = format!("label: {}\nunit: sectors\n", t.label);
    if let Some(id) = &t.id {
        s.push_str(&format!("label-id: {id}\n"));
    }
    if same_size {
        if let Some(f) = t.first_lba {
            s.push_str(&format!("first-lba: {f}\n"));
        }
    }
    s.push('\n');
    for np in parts {
        let Some(p) = t.partitions.iter().find(|p| p.number == np.number) else { continue };
        let mut line = format!(
            "{} : start={}, size={}, type={}",
            partition_path(new_disk, p.number),
            np.start,
            np.size,
            p.part_type
        );
        if let Some(u) = &p.uuid {
            line.push_str(&format!(", uuid={u}"));
        }
        if let Some(n) = &p.name {
            line.push_str(&format!(", name={}", q(n)));
        }
        if let Some(a) = &p.attrs {
            line.push_str(&format!(", attrs={}", q(a)));
        }
        if p.bootable {
            line.push_str(", bootable");
        }
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// The mkfs command that recreates `f` on `dev`.
pub fn mkfs_cmd(f: &Filesystem, dev: &str, resized: bool) -> Result<Cmd, RecoveryError> {
    let p = &f.params;
    let cmd = match f.fstype.as_str() {
        "ext2" | "ext3" | "ext4" => {
            let mut c = Cmd::new(format!("mkfs.{}", f.fstype)).args(["-F", "-q"]);
            if let Some(u) = &f.uuid {
                c = c.args(["-U", u]);
            }
            if let Some(l) = &f.label {
                c = c.args(["-L", l]);
            }
            if let Some(b) = p.block_size {
                c = c.args(["-b", &b.to_string()]);
            }
            if let Some(i) = p.inode_size {
                c = c.args(["-I", &i.to_string()]);
            }
            // Exactly the features the original had (runtime flags left out).
            let feats: Vec<&str> = p
                .features
                .iter()
                .map(String::as_str)
                .filter(|f| !matches!(*f, "needs_recovery" | "orphan_present" | "mmp"))
                .collect();
            if !feats.is_empty() {
                c = c.args(["-O", &format!("none,{}", feats.join(","))]);
            }
            if let (Some(r), Some(b)) = (p.reserved_blocks, p.block_count) {
                if b > 0 {
                    let pct = (r as f64 * 100.0 / b as f64).round() as u64;
                    c = c.args(["-m", &pct.to_string()]);
                }
            }
            if !resized {
                if let Some(n) = p.inode_count {
                    c = c.args(["-N", &n.to_string()]);
                }
            }
            c.arg(dev)
        }
        "xfs" => {
            let mut c = Cmd::new("mkfs.xfs").arg("-f");
            let mut m = Vec::new();
            if let Some(u) = &f.uuid {
                m.push(format!("uuid={u}"));
            }
            let mut i = Vec::new();
            let mut n = Vec::new();
            let mut l = Vec::new();
            let crc0 = p.features.iter().any(|x| x == "crc=0");
            for feat in &p.features {
                let name = feat.split('=').next().unwrap_or("");
                match name {
                    "crc" => m.push(feat.clone()),
                    "finobt" | "rmapbt" | "reflink" | "bigtime" | "inobtcount" if !crc0 => m.push(feat.clone()),
                    "sparse" | "nrext64" if !crc0 => i.push(feat.clone()),
                    "ftype" if crc0 => n.push(feat.clone()),
                    "lazy-count" => l.push(feat.clone()),
                    _ => {}
                }
            }
            if let Some(lb) = &f.label {
                c = c.args(["-L", lb]);
            }
            if let Some(b) = p.block_size {
                c = c.args(["-b", &format!("size={b}")]);
            }
            if let Some(s) = p.sector_size {
                c = c.args(["-s", &format!("size={s}")]);
            }
            if let Some(sz) = p.inode_size {
                i.push(format!("size={sz}"));
            }
            for (flag, v) in [("-m", m), ("-i", i), ("-n", n), ("-l", l)] {
                if !v.is_empty() {
                    c = c.args([flag, &v.join(",")]);
                }
            }
            c.arg(dev)
        }
        "btrfs" => {
            let mut c = Cmd::new("mkfs.btrfs").arg("-f");
            if let Some(u) = &f.uuid {
                c = c.args(["-U", u]);
            }
            if let Some(l) = &f.label {
                c = c.args(["-L", l]);
            }
            if let Some(n) = p.node_size {
                c = c.args(["-n", &n.to_string()]);
            }
            if let Some(d) = &p.data_profile {
                c = c.args(["-d", &d.to_ascii_lowercase()]);
            }
            if let Some(m) = &p.metadata_profile {
                c = c.args(["-m", &m.to_ascii_lowercase()]);
            }
            c.arg(dev)
        }
        "vfat" | "fat" | "msdos" => {
            let mut c = Cmd::new("mkfs.vfat");
            if let Some(b) = p.fat_bits {
                c = c.args(["-F", &b.to_string()]);
            }
            if let Some(u) = &f.uuid {
                c = c.args(["-i", &u.replace('-', "")]);
            }
            if let Some(l) = &f.label {
                c = c.args(["-n", l]);
            }
            if let Some(s) = p.sector_size {
                c = c.args(["-S", &s.to_string()]);
                if let Some(b) = p.block_size {
                    if s > 0 && !resized {
                        c = c.args(["-s", &(b / s).to_string()]);
                    }
                }
            }
            c.arg(dev)
        }
        other => {
            return Err(RecoveryError::Unsupported(format!(
                "filesystem {other} on {}: lifeboat cannot recreate this type yet",
                f.device
            )))
        }
    };
    Ok(cmd)
}

fn kib(b: u64) -> String {
    format!("{}k", b / 1024)
}

/// Build the plan.
pub fn build(layout: &Layout, disks: Vec<DiskMap>, s: &Settings) -> Result<Plan, RecoveryError> {
    let mut renames: BTreeMap<String, String> = BTreeMap::new();
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    // Which nodes are recreated: the mapped disks, their partitions, and
    // everything built only on recreated nodes.
    let mut made: BTreeSet<String> = BTreeSet::new();
    let mut resized: BTreeSet<String> = BTreeSet::new();
    let mut part_sizes: BTreeMap<String, u64> = BTreeMap::new();
    for m in &disks {
        let Some(d) = layout.disks.iter().find(|d| d.id == m.old) else { continue };
        made.insert(d.id.clone());
        if m.new != d.id {
            renames.insert(d.id.clone(), m.new.clone());
        }
        let Some(t) = &d.table else {
            actions.push(Action::Wipe { device: m.new.clone() });
            part_sizes.insert(d.id.clone(), m.new_size);
            if m.new_size != d.size {
                resized.insert(d.id.clone());
            }
            continue;
        };
        let infos = part_infos(layout, d, s);
        let placed = geometry::place(d, &infos, m.new_size)?;
        let sector = u64::from(t.sector_size.max(512));
        let mut parts = Vec::new();
        for np in &placed {
            let Some(op) = t.partitions.iter().find(|p| p.number == np.number) else { continue };
            let path = partition_path(&m.new, np.number);
            if path != op.id {
                renames.insert(op.id.clone(), path.clone());
            }
            if np.size != op.size {
                resized.insert(op.id.clone());
            }
            made.insert(op.id.clone());
            part_sizes.insert(op.id.clone(), np.size * sector);
            parts.push((np.number, path, np.start, np.size, what_is_on(layout, &op.id)));
        }
        actions.push(Action::Partition {
            disk: m.new.clone(),
            old: d.id.clone(),
            label: t.label.clone(),
            script: sfdisk_script(d, &m.new, &placed, m.new_size == d.size),
            partitions: parts,
            sector,
        });
    }
    let new_id = |id: &str| renames.get(id).cloned().unwrap_or_else(|| id.to_string());
    let deps = layout.dependencies();
    let order = layout.recreation_order();
    for id in &order {
        if made.contains(id) {
            continue;
        }
        let Some(ds) = deps.get(id) else { continue };
        if ds.is_empty() || !ds.iter().all(|d| made.contains(d) || !deps.contains_key(d)) {
            continue;
        }
        if !ds.iter().any(|d| made.contains(d)) {
            continue;
        }
        made.insert(id.clone());
        if let Some(r) = layout.raids.iter().find(|r| &r.id == id) {
            let (home, name) = match r.name.as_deref().and_then(|n| n.split_once(':')) {
                Some((h, n)) => (Some(h.to_string()), n.to_string()),
                None => (None, r.name.clone().unwrap_or_default()),
            };
            let active: Vec<String> = r.members.iter().filter(|m| !r.spares.contains(m)).map(|m| new_id(m)).collect();
            let mut c = Cmd::new("mdadm")
                .args(["--create", &r.id, "--run", "--force"])
                .arg(format!("--metadata={}", r.metadata))
                .arg(format!("--level={}", r.level))
                .arg(format!("--raid-devices={}", r.raid_devices))
                .arg(format!("--uuid={}", r.uuid));
            if !name.is_empty() {
                c = c.arg(format!("--name={name}"));
            }
            if let Some(h) = home {
                c = c.arg(format!("--homehost={h}"));
            }
            if let Some(k) = r.chunk_kib {
                c = c.arg(format!("--chunk={k}"));
            }
            if let Some(l) = &r.layout {
                if r.level != "raid1" {
                    c = c.arg(format!("--layout={l}"));
                }
            }
            if let Some(b) = &r.bitmap {
                c = c.arg(format!("--bitmap={b}"));
            }
            if !r.spares.is_empty() {
                c = c.arg(format!("--spare-devices={}", r.spares.len()));
            }
            c = c.args(active).args(r.spares.iter().map(|m| new_id(m)));
            actions.push(Action::Raid { device: r.id.clone(), uuid: r.uuid.clone(), cmd: c });
            continue;
        }
        if let Some(l) = layout.luks.iter().find(|l| l.id.as_deref() == Some(id.as_str())) {
            if s.luks_key_file.is_none() && s.unattended {
                return Err(RecoveryError::Unsupported(format!(
                    "{} is a LUKS container and an unattended recovery cannot ask for its passphrase; set recover.luks_key_file",
                    l.device
                )));
            }
            let name = l.name.clone().unwrap_or_else(|| id.trim_start_matches("/dev/mapper/").to_string());
            let mut c = Cmd::new("cryptsetup")
                .args(["luksFormat", "--batch-mode"])
                .arg(format!("--type=luks{}", l.version))
                .arg(format!("--cipher={}", l.cipher))
                .arg(format!("--key-size={}", l.key_size))
                .arg(format!("--uuid={}", l.uuid));
            if let Some(h) = &l.hash {
                c = c.arg(format!("--hash={h}"));
            }
            if l.version >= 2 {
                if let Some(p) = &l.pbkdf {
                    c = c.arg(format!("--pbkdf={p}"));
                }
                if let Some(ss) = l.sector_size {
                    c = c.arg(format!("--sector-size={ss}"));
                }
                if let Some(lb) = &l.label {
                    c = c.arg(format!("--label={lb}"));
                }
            }
            actions.push(Action::Luks { device: new_id(&l.device), name, uuid: l.uuid.clone(), format: c });
            continue;
        }
        if let Some(pv) = layout.lvm.pvs.iter().find(|p| &p.id == id) {
            let dev = new_id(&pv.device);
            let c = Cmd::new("pvcreate").args(["-ff", "-y", "--norestorefile", "--uuid", &pv.uuid, &dev]);
            actions.push(Action::Pv { device: dev, uuid: pv.uuid.clone(), cmd: c });
            continue;
        }
        if let Some(vg) = layout.lvm.vgs.iter().find(|v| &v.id == id) {
            let pvs: Vec<String> = layout
                .lvm
                .pvs
                .iter()
                .filter(|p| p.vg.as_deref() == Some(&vg.name))
                .map(|p| new_id(&p.device))
                .collect();
            let c = Cmd::new("vgcreate").args(["-y", "-s", &kib(vg.extent_size), &vg.name]).args(pvs);
            actions.push(Action::Vg { name: vg.name.clone(), cmd: c });
            // The VG's new size, to scale its LVs when the disk shrank.
            let new_vg: u64 = layout
                .lvm
                .pvs
                .iter()
                .filter(|p| p.vg.as_deref() == Some(&vg.name))
                .map(|p| part_sizes.get(&p.device).copied().unwrap_or(p.size).saturating_sub(4 * geometry::MIB))
                .sum();
            let allocated = vg.size - vg.free;
            let factor = if new_vg < allocated { new_vg as f64 / allocated as f64 } else { 1.0 };
            let lvs: Vec<&Lv> = layout.lvm.lvs.iter().filter(|l| l.vg == vg.name && !l.hidden).collect();
            // Pools before their thin volumes.
            let mut lvs_sorted = lvs.clone();
            lvs_sorted.sort_by_key(|l| l.pool.is_some());
            for l in lvs_sorted {
                let seg = l.segments.first();
                let segtype = seg.map(|s| s.segtype.as_str()).unwrap_or("linear");
                let mut size = l.size;
                if factor < 1.0 && segtype != "thin" {
                    size = ((l.size as f64 * factor) as u64) / vg.extent_size * vg.extent_size;
                    resized.insert(l.id.clone());
                    if let Some(need) = needed_on(layout, &l.id, s.headroom_percent) {
                        if need > size {
                            return Err(RecoveryError::TooSmall {
                                disk: vg.name.clone(),
                                size: new_vg,
                                why: format!(
                                    "logical volume {}/{} would get {} but holds {} of data (with headroom)",
                                    vg.name,
                                    l.name,
                                    human(size),
                                    human(need)
                                ),
                            });
                        }
                    }
                }
                let mut c = Cmd::new("lvcreate").args(["-y", "-n", &l.name]);
                if segtype != "thin-pool" && segtype != "thin" {
                    // Old signatures on reused extents would confuse blkid; thin LVs start zeroed anyway.
                    c = c.args(["-W", "y", "-Z", "y"]);
                }
                match segtype {
                    "thin-pool" => {
                        c = c.args(["--type", "thin-pool", "-L", &kib(size)]);
                        if let Some(m) = l.metadata_size {
                            c = c.args(["--poolmetadatasize", &kib(m)]);
                        }
                        if let Some(ch) = l.chunk_size {
                            c = c.args(["-c", &kib(ch)]);
                        }
                    }
                    "thin" => {
                        c = c.args(["--type", "thin", "-V", &kib(size)]);
                        if let Some(p) = &l.pool {
                            c = c.args(["--thinpool", p]);
                        }
                    }
                    "raid1" | "mirror" => {
                        let n = seg.map(|s| s.stripes).unwrap_or(2).max(2) - 1;
                        c = c.args(["--type", segtype, "-m", &n.to_string(), "-L", &kib(size)]);
                    }
                    _ => {
                        c = c.args(["-L", &kib(size)]);
                        if let Some(sg) = seg.filter(|sg| sg.stripes > 1) {
                            c = c.args(["-i", &sg.stripes.to_string()]);
                            if let Some(ss) = sg.stripe_size {
                                c = c.args(["-I", &kib(ss)]);
                            }
                        }
                    }
                }
                c = c.arg(&vg.name);
                made.insert(l.id.clone());
                actions.push(Action::Lv { name: format!("{}/{}", vg.name, l.name), size, cmd: c });
            }
            notes.push(format!(
                "volume group {} and its logical volumes get new LVM UUIDs (lvcreate cannot set them); filesystems keep theirs",
                vg.name
            ));
            continue;
        }
        if let Some(fsid) = id.strip_prefix("fs:") {
            let Some(f) = layout.filesystem_on(fsid) else { continue };
            let dev = new_id(fsid);
            let cmd = mkfs_cmd(f, &dev, resized.contains(fsid))?;
            actions.push(Action::Mkfs { device: dev.clone(), fstype: f.fstype.clone(), uuid: f.uuid.clone(), cmd });
            if f.fstype == "btrfs" {
                let mut paths: Vec<String> = f.subvolumes.iter().map(|v| v.path.clone()).collect();
                paths.sort_by_key(|p| p.matches('/').count());
                if !paths.is_empty() {
                    let default = f
                        .default_subvolume
                        .filter(|d| *d != 5)
                        .and_then(|d| f.subvolumes.iter().find(|v| v.id == d))
                        .map(|v| v.path.clone());
                    actions.push(Action::Subvolumes { device: dev, paths, default });
                }
            }
            continue;
        }
        if let Some(sw) = id.strip_prefix("swap:") {
            let Some(w) = layout.swaps.iter().find(|w| w.device == sw) else { continue };
            let dev = new_id(sw);
            let mut c = Cmd::new("mkswap");
            if let Some(u) = &w.uuid {
                c = c.args(["-U", u]);
            }
            if let Some(l) = &w.label {
                c = c.args(["-L", l]);
            }
            c = c.arg(&dev);
            actions.push(Action::Mkswap { device: dev, uuid: w.uuid.clone(), cmd: c });
        }
    }
    // Mounts: every recreated filesystem at its mount points, parents first.
    let mut mounts: Vec<(String, String, String, Option<String>)> = Vec::new();
    for f in layout.filesystems.iter().filter(|f| made.contains(&format!("fs:{}", f.device))) {
        for (target, sub) in mounts_of(layout, f) {
            mounts.push((target, new_id(&f.device), f.fstype.clone(), sub.map(|s| format!("subvol={s}"))));
        }
    }
    mounts.sort_by(|a, b| a.0.matches('/').count().cmp(&b.0.matches('/').count()).then(a.0.cmp(&b.0)));
    mounts.dedup_by(|a, b| a.0 == b.0);
    if !mounts.iter().any(|m| m.0 == "/") {
        notes.push("no recreated filesystem was mounted on / when the layout was captured: the backup is restored into whatever is mounted below the recovery mount point".into());
    }
    for (target, device, fstype, options) in mounts {
        actions.push(Action::Mount { device, target, fstype, options });
    }
    // Files left out of recreation.
    for d in layout.disks.iter().filter(|d| !made.contains(&d.id)) {
        notes.push(format!(
            "{} is not recreated ({})",
            d.id,
            d.excluded.clone().unwrap_or_else(|| "not mapped".into())
        ));
    }
    for w in layout.swaps.iter().filter(|w| w.file) {
        notes.push(format!("swap file {} is not backed up; recreate it with mkswap after recovery", w.device));
    }
    Ok(Plan { disks, renames, actions, notes })
}

impl Plan {
    /// Add the restore, fix-up and bootloader steps.
    pub fn finish(&mut self, layout: &Layout, s: &Settings, backup: Option<(String, u64, u64)>) {
        if let Some((dir, entries, bytes)) = backup {
            self.actions.push(Action::Restore { backup: dir, entries, bytes });
        } else {
            self.notes.push("no backup: the filesystems are recreated empty".into());
        }
        if !self.renames.is_empty() {
            self.actions.push(Action::FixDevices { renames: self.renames.clone() });
        }
        if s.regenerate_initramfs {
            self.actions.push(Action::Initramfs);
        }
        if !s.bootloader {
            return;
        }
        let b = &layout.bootloader;
        let new_disk = |old: &str| self.disks.iter().find(|m| m.old == old).map(|m| m.new.clone());
        if b.kind.contains("bios") {
            let mut disks: Vec<String> = b.bios_boot_disks.iter().filter_map(|d| new_disk(d)).collect();
            if disks.is_empty() {
                // The disk that holds /boot, else /.
                let holder = ["/boot", "/"].iter().find_map(|mp| {
                    layout
                        .filesystems
                        .iter()
                        .find(|f| f.mountpoints.iter().any(|m| m == mp))
                        .and_then(|f| layout.disk_of(&f.device).map(|d| d.id.clone()))
                });
                disks.extend(holder.and_then(|h| new_disk(&h)));
            }
            if disks.is_empty() {
                self.notes.push("GRUB for BIOS was installed, but none of its disks is recreated".into());
            } else {
                self.actions.push(Action::GrubBios { disks });
            }
        }
        if b.kind.contains("efi") {
            let mp = b.esp_mountpoint.clone().unwrap_or_else(|| "/boot/efi".into());
            let id = b
                .efi_loaders
                .iter()
                .filter_map(|l| {
                    let parts: Vec<&str> = l.trim_start_matches('/').split('/').collect();
                    (parts.len() == 3 && parts[0].eq_ignore_ascii_case("efi") && !parts[1].eq_ignore_ascii_case("boot"))
                        .then(|| parts[1].to_string())
                })
                .next()
                .unwrap_or_else(|| "debian".into());
            self.actions.push(Action::GrubEfi { esp_mountpoint: mp, id });
        }
        if !b.kind.contains("bios") && !b.kind.contains("efi") {
            self.notes.push(format!(
                "the layout records bootloader `{}`: no bootloader is installed, the recovered disk may not boot by itself",
                b.kind
            ));
        }
    }

    /// The disks that will be erased.
    pub fn erased(&self) -> Vec<String> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Partition { disk, .. } | Action::Wipe { device: disk } => Some(disk.clone()),
                _ => None,
            })
            .collect()
    }

    /// The plan as text for the administrator.
    pub fn render(&self) -> String {
        let mut o = String::from("Disks:\n");
        for m in &self.disks {
            o.push_str(&format!("  {} -> {} ({}, {}) — WILL BE ERASED\n", m.old, m.new, human(m.new_size), m.how));
        }
        o.push_str("Steps:\n");
        for (i, a) in self.actions.iter().enumerate() {
            let n = i + 1;
            let line = match a {
                Action::Partition { disk, old, label, partitions, sector, .. } => {
                    let mut t = format!("{n:>3}. new {label} partition table on {disk} (as {old}):\n");
                    for (num, path, start, size, what) in partitions {
                        t.push_str(&format!(
                            "       {num:>2} {path:<16} start {:>10} size {:>10}  {what}\n",
                            human(start * sector),
                            human(size * sector)
                        ));
                    }
                    t.pop();
                    t
                }
                Action::Wipe { device } => format!("{n:>3}. erase signatures on {device}"),
                Action::Raid { device, uuid, cmd } => format!("{n:>3}. RAID {device} (UUID {uuid}): {cmd}"),
                Action::Luks { device, name, uuid, .. } => {
                    format!("{n:>3}. LUKS on {device} (UUID {uuid}), opened as /dev/mapper/{name}")
                }
                Action::Pv { device, uuid, .. } => format!("{n:>3}. LVM physical volume {device} (UUID {uuid})"),
                Action::Vg { name, cmd } => format!("{n:>3}. volume group {name}: {cmd}"),
                Action::Lv { name, size, .. } => format!("{n:>3}. logical volume {name}, {}", human(*size)),
                Action::Mkfs { device, fstype, uuid, cmd } => format!(
                    "{n:>3}. {fstype} on {device}, UUID {}: {cmd}",
                    uuid.clone().unwrap_or_else(|| "(new)".into())
                ),
                Action::Mkswap { device, uuid, .. } => {
                    format!("{n:>3}. swap on {device}, UUID {}", uuid.clone().unwrap_or_else(|| "(new)".into()))
                }
                Action::Subvolumes { device, paths, default } => format!(
                    "{n:>3}. btrfs subvolumes on {device}: {}{}",
                    paths.join(", "),
                    default.as_ref().map(|d| format!(" (default {d})")).unwrap_or_default()
                ),
                Action::Mount { device, target, options, .. } => format!(
                    "{n:>3}. mount {device} on {target}{}",
                    options.as_ref().map(|o| format!(" ({o})")).unwrap_or_default()
                ),
                Action::Restore { backup, entries, bytes } => {
                    format!("{n:>3}. restore {entries} entries ({}) from {backup}", human(*bytes))
                }
                Action::FixDevices { renames } => format!(
                    "{n:>3}. rename devices in fstab, crypttab and the GRUB configuration: {}",
                    renames.iter().map(|(a, b)| format!("{a} -> {b}")).collect::<Vec<_>>().join(", ")
                ),
                Action::Initramfs => format!("{n:>3}. regenerate the initramfs in the restored system"),
                Action::GrubBios { disks } => format!("{n:>3}. install GRUB for BIOS on {}", disks.join(", ")),
                Action::GrubEfi { esp_mountpoint, id } => format!(
                    "{n:>3}. install GRUB for UEFI on the ESP ({esp_mountpoint}, EFI/{id} with a boot entry, and EFI/BOOT/BOOTX64.EFI)"
                ),
            };
            o.push_str(&line);
            o.push('\n');
        }
        for n in &self.notes {
            o.push_str(&format!("Note: {n}\n"));
        }
        o
    }
}
