//! Plans built from small hand-made layouts: which steps, in which order,
//! with which scripts and command lines. Nothing here touches a disk.
//! The layouts are made here; [`command_lines`] checks the command lines,
//! [`stacks`] what each kind of storage stack becomes, [`finish`] the
//! steps after the storage and how the plan reads.

mod command_lines;
mod finish;
mod images;
mod stacks;

use super::*;
use crate::geometry::NewPartition;
use lifeboat_layout::model::{
    Bootloader, BootloaderKind, Disk, Filesystem, FsParams, Luks, Lv, LvSegment, Lvm, Meta, Mount, Network, Partition,
    PartitionTable, Pv, Raid, Subvolume, Swap, Vg,
};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const SWAP: &str = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F";
const LVM: &str = "E6D6D379-F507-44C2-A23C-238F2A3DF928";

fn layout() -> Layout {
    Layout {
        format_version: 1,
        meta: Meta {
            hostname: "web1".into(),
            captured_at: "2026-01-01T00:00:00Z".into(),
            lifeboat_version: "0.1.0".into(),
            kernel_release: "6.1.0".into(),
            machine: "x86_64".into(),
        },
        disks: Vec::new(),
        raids: Vec::new(),
        lvm: Lvm::default(),
        luks: Vec::new(),
        filesystems: Vec::new(),
        swaps: Vec::new(),
        images: Vec::new(),
        mounts: Vec::new(),
        fstab: Vec::new(),
        crypttab: Vec::new(),
        bootloader: Bootloader { kind: BootloaderKind::None, ..Bootloader::default() },
        network: Network::default(),
        notes: Vec::new(),
    }
}

fn part(disk: &str, n: u32, start: u64, size: u64, part_type: &str) -> Partition {
    Partition {
        id: partition_path(disk, n),
        number: n,
        start,
        size,
        part_type: part_type.into(),
        type_name: None,
        uuid: None,
        name: None,
        attrs: None,
        bootable: false,
    }
}

fn disk(id: &str, size: u64, label: &str, partitions: Vec<Partition>) -> Disk {
    Disk {
        table: Some(PartitionTable {
            label: label.into(),
            id: None,
            sector_size: 512,
            first_lba: None,
            last_lba: None,
            partitions,
        }),
        ..Disk::new(id, size)
    }
}

fn fs(device: &str, fstype: &str, uuid: &str, mountpoint: &str) -> Filesystem {
    Filesystem {
        device: device.into(),
        fstype: fstype.into(),
        uuid: Some(uuid.into()),
        label: None,
        size: None,
        used: Some(100 * MIB),
        mountpoints: if mountpoint.is_empty() { Vec::new() } else { vec![mountpoint.into()] },
        params: FsParams::default(),
        subvolumes: Vec::new(),
        default_subvolume: None,
        depends_on: vec![device.into()],
    }
}

fn swap(device: &str, uuid: &str) -> Swap {
    Swap {
        device: device.into(),
        file: false,
        uuid: Some(uuid.into()),
        label: None,
        size: 64 * MIB,
        active: true,
        depends_on: vec![device.into()],
    }
}

fn map(old: &str, new: &str, new_size: u64) -> DiskMap {
    DiskMap { old: old.into(), new: new.into(), new_size, how: "chosen".into() }
}

fn settings() -> Settings {
    Settings { headroom_percent: 20, ..Settings::default() }
}

/// A 1 GiB GPT disk: ESP (vfat, 100 MiB), root (ext4, 700 MiB), swap (64 MiB).
fn gpt_host() -> Layout {
    let mut l = layout();
    let d = "/dev/sda";
    let mut esp = part(d, 1, 2048, 204800, ESP);
    esp.uuid = Some("11111111-2222-3333-4444-555555555555".into());
    esp.name = Some("EFI \"system\"".into());
    let mut root = part(d, 2, 206848, 1433600, LINUX);
    root.attrs = Some("LegacyBIOSBootable".into());
    let sw = part(d, 3, 1640448, 131072, SWAP);
    let mut dk = disk(d, GIB, "gpt", vec![esp, root, sw]);
    if let Some(t) = dk.table.as_mut() {
        t.id = Some("AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE".into());
        t.first_lba = Some(2048);
    }
    l.disks.push(dk);
    l.filesystems.push(fs("/dev/sda1", "vfat", "ABCD-1234", "/boot/efi"));
    l.filesystems.push(fs("/dev/sda2", "ext4", "root-uuid", "/"));
    l.swaps.push(swap("/dev/sda3", "swap-uuid"));
    l
}

fn kinds(p: &Plan) -> Vec<String> {
    p.actions.iter().map(|a| a.describe()).collect()
}

fn cmd_of(p: &Plan, device: &str) -> String {
    p.actions
        .iter()
        .find_map(|a| match a {
            Action::Mkfs { device: d, cmd, .. } | Action::Mkswap { device: d, cmd, .. } if d == device => {
                Some(cmd.cmdline())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no mkfs on {device} in {:?}", kinds(p)))
}

/// A 4 GiB disk: /boot (ext4) and an LVM PV with VG vg0: root (ext4, 1 GiB),
/// a thin pool and a thin volume /data in it.
fn lvm_host(root_used: u64) -> Layout {
    let mut l = layout();
    let d = "/dev/sda";
    l.disks.push(disk(d, 4 * GIB, "gpt", vec![part(d, 1, 2048, 1048576, LINUX), part(d, 2, 1050624, 7337984, LVM)]));
    l.filesystems.push(fs("/dev/sda1", "ext4", "boot-uuid", "/boot"));
    l.lvm.pvs.push(Pv {
        id: "pv:/dev/sda2".into(),
        device: "/dev/sda2".into(),
        uuid: "pv-uuid".into(),
        vg: Some("vg0".into()),
        size: 7337984 * 512,
        pe_start: Some(MIB),
        depends_on: vec!["/dev/sda2".into()],
    });
    l.lvm.vgs.push(Vg {
        id: "vg:vg0".into(),
        name: "vg0".into(),
        uuid: "vg-uuid".into(),
        extent_size: 4 * MIB,
        size: 3 * GIB,
        free: GIB,
        depends_on: vec!["pv:/dev/sda2".into()],
    });
    let lv = |id: &str, name: &str, size: u64, segtype: &str, pool: Option<&str>, deps: &[&str]| Lv {
        id: id.into(),
        vg: "vg0".into(),
        name: name.into(),
        uuid: format!("{name}-uuid"),
        size,
        attr: String::new(),
        hidden: false,
        pool: pool.map(str::to_string),
        data_lv: None,
        metadata_lv: None,
        metadata_size: (segtype == "thin-pool").then_some(8 * MIB),
        chunk_size: (segtype == "thin-pool").then_some(64 * 1024),
        origin: None,
        segments: vec![LvSegment { segtype: segtype.into(), stripes: 1, stripe_size: None, size, devices: None }],
        depends_on: deps.iter().map(|s| s.to_string()).collect(),
    };
    // The thin volume comes first in the layout: the plan still makes its pool first.
    l.lvm.lvs.push(lv("/dev/mapper/vg0-data", "data", 2 * GIB, "thin", Some("pool"), &["vg:vg0", "lv:vg0/pool"]));
    l.lvm.lvs.push(lv("/dev/mapper/vg0-root", "root", GIB, "linear", None, &["vg:vg0"]));
    l.lvm.lvs.push(lv("lv:vg0/pool", "pool", GIB, "thin-pool", None, &["vg:vg0"]));
    let mut root = fs("/dev/mapper/vg0-root", "ext4", "root-uuid", "/");
    root.used = Some(root_used);
    l.filesystems.push(root);
    l.filesystems.push(fs("/dev/mapper/vg0-data", "xfs", "data-uuid", "/data"));
    l
}

fn luks_host() -> Layout {
    let mut l = layout();
    l.disks.push(disk("/dev/sda", GIB, "gpt", vec![part("/dev/sda", 1, 2048, 2093056, LINUX)]));
    l.luks.push(Luks {
        device: "/dev/sda1".into(),
        id: Some("/dev/mapper/cryptroot".into()),
        name: None,
        version: 2,
        uuid: "luks-uuid".into(),
        label: Some("root".into()),
        cipher: "aes-xts-plain64".into(),
        key_size: 512,
        hash: Some("sha256".into()),
        pbkdf: Some("argon2id".into()),
        sector_size: Some(4096),
        depends_on: vec!["/dev/sda1".into()],
    });
    l.filesystems.push(fs("/dev/mapper/cryptroot", "ext4", "inner", "/"));
    l
}
