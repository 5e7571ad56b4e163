//! Read the layout off the running system.
//!
//! Capture never fails as a whole: whatever it cannot read (a device even
//! root cannot open, a missing tool, a kernel without device-mapper) becomes
//! a [`Note`] that says what and why, and the rest is still recorded. The one
//! exception is for those who make a backup or save a layout from it
//! ([`try_capture`]): a capture that could not list the block devices at all
//! has no partitions, filesystems or swap, and is an error.
//!
//! lsblk is asked which columns it has (`lsblk --help`), so the capture
//! works with util-linux 2.33 and later: where `MOUNTPOINTS` (2.37) is
//! missing, lsblk gives one mount point and mountinfo the others.
//!
//! Mounts, sysfs, swap areas, device heads and blkid probes are read through
//! a [`Host`], so a capture runs from fixtures too ([`capture_on`] with a
//! [`lifeboat_host::FixtureHost`] and a scripted runner).

pub mod foreign;
pub mod fs;
pub mod lsblk;
pub mod storage;
pub mod system;

use crate::model::*;
use lifeboat_host::{Host, SystemHost};
use lifeboat_runner::{Cmd, RunError, Runner};
use lsblk::Node;
use std::collections::BTreeMap;
use std::path::Path;

/// What to record and what to mark excluded from recovery.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Do not exclude loop devices, zram and RAM disks.
    pub include_virtual: bool,
    /// Do not exclude removable disks and optical drives.
    pub include_removable: bool,
    /// Device names or paths to exclude.
    pub exclude_devices: Vec<String>,
}

struct Capture<'a> {
    host: &'a dyn Host,
    r: &'a dyn Runner,
    opts: &'a CaptureOptions,
    notes: Vec<Note>,
    /// Devices that cannot be opened, and why.
    unreadable: BTreeMap<String, String>,
    mounts: Vec<Mount>,
    /// Why lsblk could not list the block devices, when it could not.
    unlisted: Option<String>,
}

/// Why a capture cannot be used to back up or recover the machine.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// lsblk could not list the block devices, so the layout would have no
    /// partitions, filesystems or swap.
    #[error("cannot capture the layout: the block devices cannot be listed ({why}); a layout without them has no partitions, filesystems or swap, and a backup made from it would miss them. Fix: install util-linux 2.33 or later (lsblk), and run `lsblk --json --output NAME,TYPE,PATH` to see what it says")]
    NoBlockDevices {
        /// What lsblk said.
        why: String,
    },
}

/// Capture the layout of the running system for a backup or a saved layout:
/// as [`capture`], but an error when the block devices cannot be listed.
pub fn try_capture(r: &dyn Runner, opts: &CaptureOptions) -> Result<Layout, CaptureError> {
    try_capture_on(&SystemHost::new(), r, opts)
}

/// [`try_capture`] of the machine `host` shows.
pub fn try_capture_on(host: &dyn Host, r: &dyn Runner, opts: &CaptureOptions) -> Result<Layout, CaptureError> {
    let (layout, unlisted) = capture_with(host, r, opts);
    match unlisted {
        Some(why) => Err(CaptureError::NoBlockDevices { why }),
        None => Ok(layout),
    }
}

/// Capture the layout of the running system.
pub fn capture(r: &dyn Runner, opts: &CaptureOptions) -> Layout {
    capture_on(&SystemHost::new(), r, opts)
}

/// Capture the layout of the machine `host` shows, running the tools through `r`.
pub fn capture_on(host: &dyn Host, r: &dyn Runner, opts: &CaptureOptions) -> Layout {
    capture_with(host, r, opts).0
}

/// The capture, and why lsblk could not list the block devices, when it could not.
fn capture_with(host: &dyn Host, r: &dyn Runner, opts: &CaptureOptions) -> (Layout, Option<String>) {
    let mut c =
        Capture { host, r, opts, notes: Vec::new(), unreadable: BTreeMap::new(), mounts: Vec::new(), unlisted: None };
    c.kernel_features();
    c.mounts = host.mounts().unwrap_or_default().into_iter().map(system::mount_of).collect();
    let nodes = c.devices();
    let disks = c.disks(&nodes);
    let raids = c.raids(&nodes);
    let crypttab = read_file("/etc/crypttab").map(|t| system::parse_crypttab(&t)).unwrap_or_default();
    let luks = c.luks(&nodes, &crypttab);
    let lvm = c.lvm(&nodes);
    let filesystems = c.filesystems(&nodes);
    let swaps = c.swaps(&nodes);
    let images = c.images(&nodes, &disks);
    let fstab = read_file("/etc/fstab").map(|t| system::parse_fstab(&t)).unwrap_or_default();
    let mounts: Vec<Mount> = c
        .mounts
        .iter()
        .filter(|m| !system::is_pseudo_fs(&m.fstype) && (m.source.starts_with('/') || m.fstype.starts_with("nfs")))
        .cloned()
        .collect();
    let mut layout = Layout {
        format_version: FORMAT_VERSION,
        meta: meta(),
        disks,
        raids,
        lvm,
        luks,
        filesystems,
        swaps,
        images,
        mounts,
        fstab,
        crypttab,
        bootloader: Bootloader::default(),
        network: Network::default(),
        notes: Vec::new(),
    };
    layout.bootloader = c.bootloader(&layout);
    layout.network = c.network();
    for (dev, why) in &c.unreadable {
        c.notes.push(Note {
            what: format!("{dev}: partition table and signatures"),
            why: format!(
                "cannot open the device ({why}); size, sector sizes and mounts were read from sysfs and /proc instead, \
                 but the partition table, UUIDs and filesystem parameters are unknown"
            ),
        });
    }
    layout.notes = c.notes;
    (layout, c.unlisted)
}

/// The block devices with their content signatures, probed directly where
/// lsblk has none (no udev): what `lifeboat check` needs to know which tools
/// this machine's storage requires, without a whole capture.
pub fn block_devices(r: &dyn Runner) -> Vec<Node> {
    block_devices_on(&SystemHost::new(), r)
}

/// The block devices of the machine `host` shows, as [`block_devices`] finds them.
pub fn block_devices_on(host: &dyn Host, r: &dyn Runner) -> Vec<Node> {
    let opts = CaptureOptions::default();
    let mut c = Capture {
        host,
        r,
        opts: &opts,
        notes: Vec::new(),
        unreadable: BTreeMap::new(),
        mounts: Vec::new(),
        unlisted: None,
    };
    c.devices()
}

fn meta() -> Meta {
    let u = rustix::system::uname();
    Meta {
        hostname: u.nodename().to_string_lossy().into_owned(),
        captured_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        lifeboat_version: env!("CARGO_PKG_VERSION").to_string(),
        kernel_release: u.release().to_string_lossy().into_owned(),
        machine: u.machine().to_string_lossy().into_owned(),
    }
}

pub use lifeboat_host::blkid::parse_export;

fn read_file(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

impl Capture<'_> {
    fn note(&mut self, what: impl Into<String>, why: impl Into<String>) {
        let n = Note { what: what.into(), why: why.into() };
        log::info!("not captured: {}: {}", n.what, n.why);
        self.notes.push(n);
    }

    fn probe(&mut self, cmd: Cmd, what: &str) -> Option<String> {
        match self.r.probe(&cmd) {
            Ok(o) => Some(o.text()),
            Err(e) => {
                let why = match &e {
                    RunError::NotFound { .. } => e.to_string(),
                    _ => format!("`{cmd}` failed: {}", e.reason()),
                };
                self.note(what, why);
                None
            }
        }
    }

    fn kernel_features(&mut self) {
        let misc = read_file("/proc/misc").unwrap_or_default();
        if !misc.contains("device-mapper") && !Path::new("/dev/mapper/control").exists() {
            self.note(
                "device-mapper (LVM volumes, LUKS mappings)",
                "this kernel has no device-mapper, so no LVM volume or LUKS mapping can be active; \
                 LVM and LUKS signatures on disks are still recorded",
            );
        }
        if !Path::new("/proc/mdstat").exists() {
            self.note(
                "md RAID arrays",
                "this kernel has no md driver (/proc/mdstat is missing), so no RAID array can be active; \
                 RAID member signatures on disks are still recorded",
            );
        }
    }

    fn block_devices(&mut self) -> Vec<Node> {
        match self.lsblk() {
            Ok(nodes) => nodes,
            Err(why) => {
                self.note("block devices (lsblk)", format!("{why}; disks were read from /sys/block"));
                self.unlisted = Some(why);
                sysfs_disks(self.host)
            }
        }
    }

    /// The block devices as lsblk lists them, asking for the columns its
    /// `--help` lists; where it lists none, all columns, and then those of
    /// every supported release.
    fn lsblk(&mut self) -> Result<Vec<Node>, String> {
        let listed = self.r.probe(&Cmd::new("lsblk").arg("--help")).ok();
        let asked = listed.and_then(|o| lsblk::columns_for(&lsblk::available_columns(&o.text())));
        let mut tries = vec![asked.unwrap_or_else(|| lsblk::COLUMNS.to_string())];
        if tries[0] != lsblk::BASELINE_COLUMNS {
            tries.push(lsblk::BASELINE_COLUMNS.to_string());
        }
        let mut why = String::new();
        for columns in tries {
            let cmd = Cmd::new("lsblk").args(["--json", "--bytes", "--output", &columns]);
            match self.r.probe(&cmd) {
                Ok(o) => match lsblk::parse(&o.text()) {
                    Ok(nodes) => {
                        log::debug!("lsblk columns: {columns}");
                        return Ok(nodes);
                    }
                    Err(e) => why = e,
                },
                Err(e @ RunError::NotFound { .. }) => return Err(e.to_string()),
                Err(e) => why = format!("`{cmd}` failed: {}", e.reason()),
            }
        }
        Err(why)
    }

    /// Block devices from lsblk, which of them cannot be opened, and their signatures.
    fn devices(&mut self) -> Vec<Node> {
        let mut nodes = self.block_devices();
        for n in &nodes {
            self.check_readable(n);
        }
        self.probe_signatures(&mut nodes);
        nodes
    }

    /// lsblk takes signatures from the udev database; without udev (a rescue
    /// system, a container, this kind of VM) it has none, so probe the
    /// devices directly with `blkid -p`.
    fn probe_signatures(&mut self, nodes: &mut [Node]) {
        for n in nodes.iter_mut() {
            if n.fstype.is_some() || n.kind == "rom" || self.unreadable.contains_key(&n.path) || n.size == 0 {
                continue;
            }
            // No signature, or none that could be read: nothing to record.
            let Ok(Some(sig)) = self.host.probe(self.r, &n.path) else { continue };
            let get = |k: &str| sig.get(k).map(String::from);
            n.fstype = get("TYPE");
            n.fsver = get("VERSION");
            n.uuid = get("UUID");
            n.label = get("LABEL");
            n.pttype = n.pttype.take().or_else(|| get("PTTYPE"));
        }
    }

    fn check_readable(&mut self, n: &Node) {
        if !matches!(n.kind.as_str(), "disk" | "part" | "loop") {
            return;
        }
        if let Err(e) = self.host.read_head(Path::new(&n.path), 0) {
            // A drive without a medium is not a problem worth a note, nor a node that is not there.
            if e.raw_os_error() != Some(123) && e.kind() != std::io::ErrorKind::NotFound {
                self.unreadable.insert(n.path.clone(), e.to_string());
            }
        }
    }

    fn disks(&mut self, nodes: &[Node]) -> Vec<Disk> {
        let mut out = Vec::new();
        for n in nodes.iter().filter(|n| n.parents.is_empty() && matches!(n.kind.as_str(), "disk" | "loop" | "rom")) {
            let kind = if n.kind == "loop" {
                DiskKind::Loop
            } else if n.kname.starts_with("zram") {
                DiskKind::Zram
            } else if n.kname.starts_with("ram") {
                DiskKind::Ram
            } else if n.kind == "rom" {
                DiskKind::Optical
            } else if n.rm || n.tran.as_deref() == Some("usb") {
                DiskKind::Removable
            } else {
                DiskKind::Disk
            };
            let excluded = self.exclusion(n, kind);
            let has_parts = nodes.iter().any(|c| c.kind == "part" && c.parents.contains(&n.path));
            let table = if let Some(why) = self.unreadable.get(&n.path) {
                log::debug!("{}: partition table not read: {why}", n.path);
                None
            } else if n.pttype.is_some() || has_parts {
                let cmd = Cmd::new("sfdisk").args(["--json", &n.path]);
                let what = format!("{}: partition table", n.path);
                match self.probe(cmd, &what).map(|t| storage::parse_sfdisk(&t)) {
                    Some(Ok(mut t)) => {
                        for p in &mut t.partitions {
                            p.type_name = storage::type_name(&p.part_type).map(String::from);
                        }
                        Some(t)
                    }
                    Some(Err(e)) => {
                        self.note(what, e);
                        None
                    }
                    None => None,
                }
            } else {
                None
            };
            let transport = n.tran.clone().or_else(|| {
                if n.kname.starts_with("vd") {
                    Some("virtio".into())
                } else if n.kname.starts_with("nvme") {
                    Some("nvme".into())
                } else {
                    None
                }
            });
            out.push(Disk {
                id: n.path.clone(),
                kind,
                size: n.size,
                logical_sector_size: n.log_sec,
                physical_sector_size: n.phy_sec,
                model: n.model.clone().or_else(|| self.host.block_attr(&n.kname, "device/model")),
                serial: n
                    .serial
                    .clone()
                    .or_else(|| self.host.block_attr(&n.kname, "serial"))
                    .or_else(|| self.host.block_attr(&n.kname, "device/serial")),
                wwn: n.wwn.clone().or_else(|| self.host.block_attr(&n.kname, "device/wwid")),
                transport,
                rotational: n.rota,
                read_only: n.ro,
                backing_file: self.host.block_attr(&n.kname, "loop/backing_file"),
                excluded,
                table,
            });
        }
        out
    }

    fn exclusion(&self, n: &Node, kind: DiskKind) -> Option<String> {
        let listed = self
            .opts
            .exclude_devices
            .iter()
            .any(|e| e == &n.path || e == &n.kname || e.trim_start_matches("/dev/") == n.kname);
        if listed {
            return Some("listed in layout.exclude_devices".into());
        }
        match kind {
            DiskKind::Loop | DiskKind::Zram | DiskKind::Ram if !self.opts.include_virtual => Some(format!(
                "{} is virtual: recorded only (set layout.include_virtual = true to recover it)",
                match kind {
                    DiskKind::Loop => "a loop device",
                    DiskKind::Zram => "a zram device",
                    _ => "a RAM disk",
                }
            )),
            DiskKind::Optical | DiskKind::Removable if !self.opts.include_removable => Some(format!(
                "{} is removable: recorded only (set layout.include_removable = true to recover it)",
                if kind == DiskKind::Optical { "an optical drive" } else { "a removable disk" }
            )),
            _ => None,
        }
    }

    fn raids(&mut self, nodes: &[Node]) -> Vec<Raid> {
        let mut out = Vec::new();
        for n in nodes.iter().filter(|n| n.kind.starts_with("raid") || n.kind == "md") {
            let what = format!("{}: RAID array", n.path);
            let Some(text) = self.probe(Cmd::new("mdadm").args(["--detail", &n.path]), &what) else { continue };
            match storage::parse_mdadm_detail(&text) {
                Ok(d) => out.push(Raid {
                    id: n.path.clone(),
                    level: d.level,
                    metadata: d.metadata,
                    uuid: d.uuid,
                    name: d.name,
                    raid_devices: d.raid_devices,
                    chunk_kib: d.chunk_kib,
                    layout: d.layout,
                    bitmap: Some(d.bitmap),
                    size: d.size,
                    depends_on: d.members.iter().chain(&d.spares).cloned().collect(),
                    members: d.members,
                    spares: d.spares,
                }),
                Err(e) => self.note(what, e),
            }
        }
        out
    }

    fn luks(&mut self, nodes: &[Node], crypttab: &[CrypttabEntry]) -> Vec<Luks> {
        let mut out = Vec::new();
        for n in nodes.iter().filter(|n| n.fstype.as_deref() == Some("crypto_LUKS")) {
            let what = format!("{}: LUKS header", n.path);
            let Some(text) = self.probe(Cmd::new("cryptsetup").args(["luksDump", &n.path]), &what) else {
                continue;
            };
            match storage::parse_luks_dump(&text, &n.path) {
                Ok(mut l) => {
                    if let Some(m) = nodes.iter().find(|c| c.kind == "crypt" && c.parents.contains(&n.path)) {
                        l.id = Some(m.path.clone());
                        l.name = m.path.strip_prefix("/dev/mapper/").map(String::from);
                    }
                    if l.name.is_none() {
                        let spec = format!("UUID={}", l.uuid);
                        l.name =
                            crypttab.iter().find(|c| c.device == spec || c.device == n.path).map(|c| c.name.clone());
                    }
                    if l.id.is_none() {
                        l.id = l.name.as_ref().map(|nm| format!("/dev/mapper/{nm}"));
                    }
                    out.push(l);
                }
                Err(e) => self.note(what, e),
            }
        }
        out
    }

    fn lvm(&mut self, nodes: &[Node]) -> Lvm {
        let mut lvm = Lvm::default();
        if !nodes.iter().any(|n| n.fstype.as_deref() == Some("LVM2_member")) {
            return lvm;
        }
        let report = |kind: &str, fields: &str| {
            let mut cmd = Cmd::new("lvm").arg(format!("{kind}s"));
            if kind == "lv" {
                cmd = cmd.args(["-a", "--segments"]);
            }
            cmd.args(["--reportformat", "json", "--units", "b", "--nosuffix", "-o", fields])
        };
        let rows = |this: &mut Self, kind: &str, fields: &str| {
            let what = format!("LVM {kind}s");
            let text = this.probe(report(kind, fields), &what)?;
            match storage::parse_lvm_report(&text, kind) {
                Ok(r) => Some(r),
                Err(e) => {
                    this.note(what, e);
                    None
                }
            }
        };
        let num = |m: &BTreeMap<String, String>, k: &str| m.get(k).and_then(|v| v.parse::<u64>().ok());
        let get = |m: &BTreeMap<String, String>, k: &str| m.get(k).filter(|v| !v.is_empty()).cloned();
        for p in rows(self, "pv", "pv_name,pv_uuid,vg_name,pv_size,pe_start").unwrap_or_default() {
            let device = get(&p, "pv_name").unwrap_or_default();
            lvm.pvs.push(Pv {
                id: format!("pv:{device}"),
                depends_on: vec![device.clone()],
                device,
                uuid: get(&p, "pv_uuid").unwrap_or_default(),
                vg: get(&p, "vg_name"),
                size: num(&p, "pv_size").unwrap_or(0),
                pe_start: num(&p, "pe_start"),
            });
        }
        for v in rows(self, "vg", "vg_name,vg_uuid,vg_extent_size,vg_size,vg_free").unwrap_or_default() {
            let name = get(&v, "vg_name").unwrap_or_default();
            lvm.vgs.push(Vg {
                id: format!("vg:{name}"),
                depends_on: lvm.pvs.iter().filter(|p| p.vg.as_ref() == Some(&name)).map(|p| p.id.clone()).collect(),
                uuid: get(&v, "vg_uuid").unwrap_or_default(),
                extent_size: num(&v, "vg_extent_size").unwrap_or(0),
                size: num(&v, "vg_size").unwrap_or(0),
                free: num(&v, "vg_free").unwrap_or(0),
                name,
            });
        }
        let lv_fields = "vg_name,lv_name,lv_uuid,lv_size,lv_attr,pool_lv,data_lv,metadata_lv,lv_metadata_size,\
                         chunk_size,origin,lv_dm_path,segtype,stripes,stripe_size,seg_size,devices";
        for row in rows(self, "lv", lv_fields).unwrap_or_default() {
            let uuid = get(&row, "lv_uuid").unwrap_or_default();
            let seg = storage::lv_segment(&row);
            if let Some(lv) = lvm.lvs.iter_mut().find(|l| l.uuid == uuid) {
                lv.segments.push(seg);
                continue;
            }
            let raw_name = get(&row, "lv_name").unwrap_or_default();
            let hidden = raw_name.starts_with('[');
            let name = raw_name.trim_matches(|c| c == '[' || c == ']').to_string();
            let vg = get(&row, "vg_name").unwrap_or_default();
            let unbracket = |s: Option<String>| s.map(|v| v.trim_matches(|c| c == '[' || c == ']').to_string());
            lvm.lvs.push(Lv {
                id: get(&row, "lv_dm_path").unwrap_or_else(|| format!("lv:{vg}/{name}")),
                depends_on: vec![format!("vg:{vg}")],
                vg,
                name,
                uuid,
                size: num(&row, "lv_size").unwrap_or(0),
                attr: get(&row, "lv_attr").unwrap_or_default(),
                hidden,
                pool: unbracket(get(&row, "pool_lv")),
                data_lv: unbracket(get(&row, "data_lv")),
                metadata_lv: unbracket(get(&row, "metadata_lv")),
                metadata_size: num(&row, "lv_metadata_size").filter(|s| *s > 0),
                chunk_size: num(&row, "chunk_size").filter(|s| *s > 0),
                origin: get(&row, "origin"),
                segments: vec![seg],
            });
        }
        // A thin volume also depends on its pool, a pool on its data and metadata LVs.
        let ids: BTreeMap<(String, String), String> =
            lvm.lvs.iter().map(|l| ((l.vg.clone(), l.name.clone()), l.id.clone())).collect();
        for lv in &mut lvm.lvs {
            for other in [&lv.pool, &lv.data_lv, &lv.metadata_lv, &lv.origin].into_iter().flatten() {
                if let Some(id) = ids.get(&(lv.vg.clone(), other.clone())) {
                    lv.depends_on.push(id.clone());
                }
            }
        }
        lvm
    }

    fn mountpoints_of(&self, n: &Node) -> Vec<String> {
        let mut m: Vec<String> = n.mountpoints.clone();
        for mi in self.mounts.iter().filter(|mi| mi.source == n.path) {
            if !m.contains(&mi.target) {
                m.push(mi.target.clone());
            }
        }
        m
    }

    fn filesystems(&mut self, nodes: &[Node]) -> Vec<Filesystem> {
        let mut out: Vec<Filesystem> = Vec::new();
        for n in nodes {
            let mountpoints = self.mountpoints_of(n);
            let fstype = match n.fstype.clone() {
                Some(t) => t,
                None => {
                    // Unreadable but mounted (a root disk even root cannot open):
                    // the kernel still says what it is.
                    match self.mounts.iter().find(|m| m.source == n.path) {
                        Some(m) if !system::is_pseudo_fs(&m.fstype) => m.fstype.clone(),
                        _ => continue,
                    }
                }
            };
            if !matches!(fstype.as_str(), "ext2" | "ext3" | "ext4" | "xfs" | "btrfs" | "vfat") {
                continue;
            }
            if fstype == "btrfs" {
                if let Some(f) = out.iter_mut().find(|f| f.fstype == "btrfs" && f.uuid.is_some() && f.uuid == n.uuid) {
                    f.depends_on.push(n.path.clone());
                    // The kernel names one device of the filesystem as the mount's source, not always the first.
                    for m in mountpoints {
                        if !f.mountpoints.contains(&m) {
                            f.mountpoints.push(m);
                        }
                    }
                    continue;
                }
            }
            let mut f = Filesystem {
                device: n.path.clone(),
                fstype: fstype.clone(),
                uuid: n.uuid.clone(),
                label: n.label.clone(),
                size: n.fssize,
                used: n.fsused,
                mountpoints: mountpoints.clone(),
                params: FsParams::default(),
                subvolumes: Vec::new(),
                default_subvolume: None,
                depends_on: vec![n.path.clone()],
            };
            if let Some(mp) = mountpoints.first() {
                if f.size.is_none() || f.used.is_none() {
                    if let Ok(st) = rustix::fs::statvfs(mp.as_str()) {
                        f.size = Some(st.f_blocks * st.f_frsize);
                        f.used = Some((st.f_blocks - st.f_bfree) * st.f_frsize);
                    }
                }
            }
            if self.unreadable.contains_key(&n.path) {
                out.push(f);
                continue;
            }
            let what = format!("{}: {fstype} parameters", n.path);
            match fstype.as_str() {
                "ext2" | "ext3" | "ext4" => {
                    if let Some(t) = self.probe(Cmd::new("dumpe2fs").args(["-h", &n.path]), &what) {
                        match fs::parse_dumpe2fs(&t) {
                            Ok(p) => {
                                let (uuid, label) = fs::dumpe2fs_identity(&t);
                                f.uuid = f.uuid.or(uuid);
                                f.label = f.label.or(label);
                                f.params = p;
                            }
                            Err(e) => self.note(what, e),
                        }
                    }
                }
                "xfs" => {
                    let target = mountpoints.first().cloned().unwrap_or_else(|| n.path.clone());
                    if let Some(t) = self.probe(Cmd::new("xfs_info").arg(&target), &what) {
                        match fs::parse_xfs_info(&t) {
                            Ok(p) => f.params = p,
                            Err(e) => self.note(what, e),
                        }
                    }
                }
                "btrfs" => self.btrfs(&mut f, &mountpoints, &what),
                "vfat" => {
                    f.params.fat_bits = n.fsver.as_deref().and_then(|v| v.trim_start_matches("FAT").parse().ok());
                    match self.host.read_head(Path::new(&n.path), 512) {
                        Ok(b) => {
                            if let Some((sector, cluster)) = fs::parse_fat_boot_sector(&b) {
                                f.params.sector_size = Some(sector);
                                f.params.block_size = Some(cluster);
                            }
                        }
                        Err(e) => self.note(what, format!("cannot read the boot sector: {e}")),
                    }
                }
                _ => {}
            }
            out.push(f);
        }
        out
    }

    fn btrfs(&mut self, f: &mut Filesystem, mountpoints: &[String], what: &str) {
        if let Some(t) = self.probe(Cmd::new("btrfs").args(["inspect-internal", "dump-super", &f.device]), what) {
            f.params = fs::parse_btrfs_super(&t);
        }
        let Some(mp) = mountpoints.first() else {
            self.note(
                format!("{}: btrfs profiles and subvolumes", f.device),
                "the filesystem is not mounted; mount it and capture again to record them",
            );
            return;
        };
        if let Some(t) = self.probe(Cmd::new("btrfs").args(["filesystem", "df", "-b", mp]), what) {
            (f.params.data_profile, f.params.metadata_profile) = fs::parse_btrfs_df(&t);
        }
        if let Some(t) = self.probe(Cmd::new("btrfs").args(["subvolume", "list", "-p", mp]), what) {
            f.subvolumes = fs::parse_btrfs_subvolumes(&t);
        }
        if let Some(t) = self.probe(Cmd::new("btrfs").args(["subvolume", "list", "-r", mp]), what) {
            let ro: Vec<u64> = fs::parse_btrfs_subvolumes(&t).iter().map(|s| s.id).collect();
            for s in &mut f.subvolumes {
                s.read_only = ro.contains(&s.id);
            }
        }
        if let Some(t) = self.probe(Cmd::new("btrfs").args(["subvolume", "get-default", mp]), what) {
            f.default_subvolume = fs::parse_btrfs_default(&t);
        }
    }

    /// The foreign partitions of the disks' tables (see [`foreign`]): NTFS,
    /// unknown signatures, raw data; what recovery recreates, swap and empty
    /// partitions are not.
    fn images(&mut self, nodes: &[Node], disks: &[Disk]) -> Vec<Image> {
        let mut out = Vec::new();
        for d in disks {
            let Some(t) = &d.table else { continue };
            let sector = u64::from(t.sector_size.max(512));
            for p in &t.partitions {
                let Some(n) = nodes.iter().find(|n| n.path == p.id) else { continue };
                if self.unreadable.contains_key(&n.path) || n.size == 0 {
                    continue;
                }
                let head_is_zero = || match self.host.read_head(Path::new(&n.path), foreign::EMPTY_HEAD) {
                    Ok(b) => b.iter().all(|x| *x == 0),
                    // Smaller than the head read: decide by what there is.
                    Err(_) => false,
                };
                let Some(kind) = foreign::image_kind(n.fstype.as_deref(), &p.part_type, head_is_zero) else {
                    continue;
                };
                out.push(Image {
                    device: p.id.clone(),
                    kind,
                    size: p.size.saturating_mul(sector),
                    fstype: n.fstype.clone(),
                    uuid: n.uuid.clone(),
                    label: n.label.clone(),
                });
            }
        }
        out
    }

    fn swaps(&mut self, nodes: &[Node]) -> Vec<Swap> {
        let active: Vec<(String, bool, u64)> =
            self.host.swaps().unwrap_or_default().into_iter().map(|s| (s.path, s.is_file, s.size)).collect();
        let mut out: Vec<Swap> = nodes
            .iter()
            .filter(|n| n.fstype.as_deref() == Some("swap"))
            .map(|n| Swap {
                device: n.path.clone(),
                file: false,
                uuid: n.uuid.clone(),
                label: n.label.clone(),
                size: n.size,
                active: active.iter().any(|(p, _, _)| p == &n.path),
                depends_on: vec![n.path.clone()],
            })
            .collect();
        for (path, is_file, size) in active.into_iter().filter(|(_, f, _)| *f) {
            out.push(Swap {
                device: path,
                file: is_file,
                uuid: None,
                label: None,
                size,
                active: true,
                depends_on: vec![],
            });
        }
        out
    }

    fn bootloader(&mut self, l: &Layout) -> Bootloader {
        let mut b = Bootloader {
            firmware: if Path::new("/sys/firmware/efi").exists() { Firmware::Uefi } else { Firmware::Bios },
            kernel_cmdline: read_file("/proc/cmdline").unwrap_or_default().trim().to_string(),
            ..Bootloader::default()
        };
        b.grub_config = ["/boot/grub/grub.cfg", "/boot/grub2/grub.cfg"]
            .iter()
            .find(|p| Path::new(p).exists())
            .map(|p| p.to_string());
        // The ESP: a FAT filesystem on a partition of the EFI System type, or mounted at /boot/efi or /efi.
        let esp = l.filesystems.iter().find(|f| {
            f.fstype == "vfat"
                && (f.mountpoints.iter().any(|m| m == "/boot/efi" || m == "/efi")
                    || l.disks
                        .iter()
                        .flat_map(|d| d.table.iter().flat_map(|t| &t.partitions))
                        .any(|p| p.id == f.device && p.type_name.as_deref() == Some("EFI System")))
        });
        if let Some(esp) = esp {
            b.esp = Some(esp.device.clone());
            b.esp_mountpoint = esp.mountpoints.first().cloned();
            if let Some(mp) = &b.esp_mountpoint {
                b.efi_loaders = find_efi_loaders(Path::new(mp));
            }
        }
        for d in l.disks.iter().filter(|d| d.excluded.is_none() && !self.unreadable.contains_key(&d.id)) {
            if let Ok(mbr) = self.host.read_head(Path::new(&d.id), 512) {
                if mbr.windows(4).any(|w| w == b"GRUB") {
                    b.bios_boot_disks.push(d.id.clone());
                }
            }
        }
        if b.firmware == Firmware::Uefi {
            if let Some(t) = self.probe(Cmd::new("efibootmgr"), "EFI boot entries") {
                (b.efi_boot_order, b.efi_entries) = system::parse_efibootmgr(&t);
            }
        }
        b.kind = bootloader_kind(&b);
        if b.kind == BootloaderKind::None {
            self.note(
                "bootloader",
                "no GRUB configuration, no EFI system partition and no boot code on a readable disk: \
                 this machine seems to be booted from outside (a hypervisor's kernel); recovery will not install a bootloader",
            );
        } else if b.kind == BootloaderKind::Unknown && !self.unreadable.is_empty() {
            self.note("bootloader", "GRUB's boot code could not be looked for on unreadable disks");
        }
        b
    }

    fn network(&mut self) -> Network {
        let mut n = Network::default();
        if let Some(t) = self.probe(Cmd::new("ip").args(["-json", "addr", "show"]), "network interfaces") {
            match system::parse_ip_addr(&t) {
                Ok(i) => n.interfaces = i,
                Err(e) => self.note("network interfaces", e),
            }
        }
        for family in ["-4", "-6"] {
            if let Some(t) = self.probe(Cmd::new("ip").args(["-json", family, "route", "show"]), "routes") {
                match system::parse_ip_route(&t) {
                    Ok(r) => n.routes.extend(r),
                    Err(e) => self.note("routes", e),
                }
            }
        }
        (n.nameservers, n.search) =
            read_file("/etc/resolv.conf").map(|t| system::parse_resolv_conf(&t)).unwrap_or_default();
        let candidates = [
            "/etc/network/interfaces",
            "/etc/netplan",
            "/etc/NetworkManager/system-connections",
            "/etc/systemd/network",
            "/etc/sysconfig/network-scripts",
        ];
        for c in candidates {
            let p = Path::new(c);
            if p.is_file() {
                n.config_files.push(c.to_string());
            } else if let Ok(rd) = std::fs::read_dir(p) {
                let mut files: Vec<String> = rd.flatten().map(|e| e.path().display().to_string()).collect();
                files.sort();
                n.config_files.extend(files);
            }
        }
        n
    }
}

fn find_efi_loaders(esp: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![esp.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("efi")) {
                if let Ok(rel) = p.strip_prefix(esp) {
                    out.push(format!("/{}", rel.display()));
                }
            }
        }
    }
    out.sort();
    out
}

/// Which bootloader the captured signs point to: GRUB's boot code in an
/// MBR and GRUB on the ESP, else systemd-boot on the ESP (its loader and no
/// GRUB there: `bootctl install` put it in `EFI/systemd`), else none when
/// there is no GRUB configuration and no ESP at all.
fn bootloader_kind(b: &Bootloader) -> BootloaderKind {
    let lower: Vec<String> = b.efi_loaders.iter().map(|p| p.to_ascii_lowercase()).collect();
    let grub_efi = lower.iter().any(|p| p.contains("grub"));
    let systemd_boot = lower.iter().any(|p| p.ends_with("/systemd-bootx64.efi"));
    match (!b.bios_boot_disks.is_empty(), grub_efi) {
        (true, true) => BootloaderKind::GrubBiosEfi,
        (true, false) => BootloaderKind::GrubBios,
        (false, true) => BootloaderKind::GrubEfi,
        (false, false) if systemd_boot => BootloaderKind::SystemdBoot,
        (false, false) if b.grub_config.is_none() && b.esp.is_none() => BootloaderKind::None,
        _ => BootloaderKind::Unknown,
    }
}

/// Whole disks from /sys/class/block (what /sys/block lists), for when lsblk cannot run.
fn sysfs_disks(host: &dyn Host) -> Vec<Node> {
    let mut out: Vec<Node> = host
        .block_devices()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.partition.is_none())
        .map(|d| Node {
            path: d.dev_path(),
            kind: if d.name.starts_with("loop") { "loop".into() } else { "disk".into() },
            size: d.size,
            log_sec: d.logical_sector_size.unwrap_or(512),
            phy_sec: d.physical_sector_size.unwrap_or(512),
            rm: d.removable,
            ro: d.read_only,
            rota: d.rotational,
            kname: d.name,
            ..Node::default()
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[cfg(test)]
mod bootloader_tests {
    use super::*;

    #[test]
    fn systemd_boot_is_told_from_grub_by_its_loader_on_the_esp() {
        let with = |loaders: &[&str], mbr: bool| Bootloader {
            esp: Some("/dev/vda1".into()),
            efi_loaders: loaders.iter().map(|s| s.to_string()).collect(),
            bios_boot_disks: if mbr { vec!["/dev/vda".into()] } else { Vec::new() },
            ..Bootloader::default()
        };
        let sd = ["/EFI/BOOT/BOOTX64.EFI", "/EFI/systemd/systemd-bootx64.efi"];
        assert_eq!(bootloader_kind(&with(&sd, false)), BootloaderKind::SystemdBoot);
        assert_eq!(
            bootloader_kind(&with(&["/EFI/debian/grubx64.efi", "/EFI/debian/shimx64.efi"], false)),
            BootloaderKind::GrubEfi
        );
        // GRUB on the ESP too: GRUB is what the firmware's entry was made for.
        assert_eq!(bootloader_kind(&with(&["/EFI/debian/grubx64.efi", sd[1]], false)), BootloaderKind::GrubEfi);
        assert_eq!(bootloader_kind(&with(&sd, true)), BootloaderKind::GrubBios);
        assert_eq!(bootloader_kind(&with(&["/EFI/BOOT/BOOTX64.EFI"], false)), BootloaderKind::Unknown);
        assert_eq!(bootloader_kind(&Bootloader::default()), BootloaderKind::None);
    }
}
