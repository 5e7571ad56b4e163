//! Plans built from small hand-made layouts: which steps, in which order,
//! with which scripts and command lines. Nothing here touches a disk.

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

#[test]
fn a_disk_of_the_same_size_is_recreated_in_order_under_its_new_name() {
    let l = gpt_host();
    let p = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &settings()).expect("plan");
    assert_eq!(
        kinds(&p),
        [
            "partition /dev/vdb (gpt, 3 partitions)",
            "make vfat on /dev/vdb1",
            "make ext4 on /dev/vdb2",
            "make swap on /dev/vdb3",
            "mount /dev/vdb2 on /",
            "mount /dev/vdb1 on /boot/efi",
        ]
    );
    let renamed: Vec<(&str, &str)> = p.renames.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        renamed,
        [("/dev/sda", "/dev/vdb"), ("/dev/sda1", "/dev/vdb1"), ("/dev/sda2", "/dev/vdb2"), ("/dev/sda3", "/dev/vdb3")]
    );
    let Action::Partition { partitions, old, sector, .. } = &p.actions[0] else { panic!("{:?}", p.actions[0]) };
    assert_eq!((old.as_str(), *sector), ("/dev/sda", 512));
    assert_eq!(
        partitions[1],
        PlannedPartition {
            number: 2,
            device: "/dev/vdb2".into(),
            start: 206848,
            size: 1433600,
            what: "/ (ext4)".into()
        }
    );
    assert_eq!(partitions[2].what, "swap");
    assert_eq!(p.erased(), ["/dev/vdb"]);
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}

#[test]
fn the_sfdisk_script_keeps_identities_and_quotes_names() {
    let l = gpt_host();
    let p = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &settings()).expect("plan");
    let Action::Partition { script, .. } = &p.actions[0] else { panic!() };
    assert_eq!(
        script,
        "label: gpt\nunit: sectors\nlabel-id: AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE\nfirst-lba: 2048\n\n\
         /dev/vdb1 : start=2048, size=204800, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, \
         uuid=11111111-2222-3333-4444-555555555555, name=\"EFI system\"\n\
         /dev/vdb2 : start=206848, size=1433600, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, attrs=\"LegacyBIOSBootable\"\n\
         /dev/vdb3 : start=1640448, size=131072, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F\n"
    );
}

#[test]
fn on_another_size_the_script_leaves_the_first_lba_to_sfdisk_and_nvme_names_get_p() {
    let mut d = disk("/dev/sda", GIB, "dos", vec![part("/dev/sda", 1, 2048, 409600, "83")]);
    if let Some(t) = d.table.as_mut() {
        t.first_lba = Some(2048);
        t.id = Some("0x1234abcd".into());
        t.partitions[0].bootable = true;
    }
    let placed = [NewPartition { number: 1, start: 2048, size: 819200 }];
    let s = commands::sfdisk_script(&d, "/dev/nvme0n1", &placed, false);
    assert_eq!(s, "label: dos\nunit: sectors\nlabel-id: 0x1234abcd\n\n/dev/nvme0n1p1 : start=2048, size=819200, type=83, bootable\n");
    assert_eq!(partition_path("/dev/nvme0n1", 3), "/dev/nvme0n1p3");
    assert_eq!(partition_path("/dev/sdb", 3), "/dev/sdb3");
    assert!(commands::sfdisk_script(&Disk::new("/dev/sdc", GIB), "/dev/sdd", &placed, true).is_empty());
    let w = commands::sfdisk_write("/dev/vdb", "label: gpt\n");
    assert_eq!(w.cmdline(), "sfdisk --no-reread --no-tell-kernel -q --wipe always --wipe-partitions always /dev/vdb");
}

#[test]
fn ext4_is_made_with_exactly_its_old_features_and_parameters() {
    let mut f = fs("/dev/sda2", "ext4", "root-uuid", "/");
    f.label = Some("my root".into());
    f.params = FsParams {
        block_size: Some(4096),
        inode_size: Some(256),
        inode_count: Some(65536),
        block_count: Some(1000),
        reserved_blocks: Some(50),
        features: ["has_journal", "extent", "needs_recovery", "64bit", "mmp"].iter().map(|s| s.to_string()).collect(),
        ..FsParams::default()
    };
    let c = mkfs_cmd(&f, "/dev/vdb2", false).expect("ext4");
    assert_eq!(
        c.cmdline(),
        "mkfs.ext4 -F -q -U root-uuid -L 'my root' -b 4096 -I 256 -O none,has_journal,extent,64bit -m 5 -N 65536 /dev/vdb2"
    );
    // Resized: the inode count of the old size does not fit the new one.
    let c = mkfs_cmd(&f, "/dev/vdb2", true).expect("ext4");
    assert!(!c.cmdline().contains("-N"), "{c}");
}

#[test]
fn xfs_options_go_to_their_sections_and_v4_keeps_only_what_it_knows() {
    let mut f = fs("/dev/sda4", "xfs", "xfs-uuid", "/srv");
    f.params = FsParams {
        block_size: Some(4096),
        sector_size: Some(512),
        inode_size: Some(512),
        features: ["crc=1", "finobt=1", "sparse=1", "ftype=1", "lazy-count=1", "reflink=1"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..FsParams::default()
    };
    f.label = Some("srv".into());
    let c = mkfs_cmd(&f, "/dev/vdb4", false).expect("xfs");
    assert_eq!(
        c.cmdline(),
        "mkfs.xfs -f -L srv -b size=4096 -s size=512 -m uuid=xfs-uuid,crc=1,finobt=1,reflink=1 -i sparse=1,size=512 \
         -l lazy-count=1 /dev/vdb4"
    );
    f.params.features = ["crc=0", "finobt=1", "ftype=1"].iter().map(|s| s.to_string()).collect();
    f.params.inode_size = None;
    let c = mkfs_cmd(&f, "/dev/vdb4", false).expect("xfs v4");
    assert_eq!(c.cmdline(), "mkfs.xfs -f -L srv -b size=4096 -s size=512 -m uuid=xfs-uuid,crc=0 -n ftype=1 /dev/vdb4");
}

#[test]
fn btrfs_vfat_and_swap_command_lines_and_unknown_types_refused() {
    let mut b = fs("/dev/sda3", "btrfs", "b-uuid", "/");
    b.params = FsParams {
        node_size: Some(16384),
        data_profile: Some("SINGLE".into()),
        metadata_profile: Some("DUP".into()),
        ..FsParams::default()
    };
    assert_eq!(
        mkfs_cmd(&b, "/dev/vdb3", false).expect("btrfs").cmdline(),
        "mkfs.btrfs -f -U b-uuid -n 16384 -d single -m dup /dev/vdb3"
    );
    let mut v = fs("/dev/sda1", "vfat", "ABCD-1234", "/boot/efi");
    v.label = Some("EFI".into());
    v.params = FsParams { fat_bits: Some(32), sector_size: Some(512), block_size: Some(4096), ..FsParams::default() };
    assert_eq!(
        mkfs_cmd(&v, "/dev/vdb1", false).expect("vfat").cmdline(),
        "mkfs.vfat -F 32 -i ABCD1234 -n EFI -S 512 -s 8 /dev/vdb1"
    );
    assert_eq!(
        mkfs_cmd(&v, "/dev/vdb1", true).expect("vfat").cmdline(),
        "mkfs.vfat -F 32 -i ABCD1234 -n EFI -S 512 /dev/vdb1"
    );
    let mut w = swap("/dev/sda3", "s-uuid");
    w.label = Some("swap0".into());
    assert_eq!(commands::mkswap_cmd(&w, "/dev/vdb3").cmdline(), "mkswap -U s-uuid -L swap0 /dev/vdb3");
    let z = fs("/dev/sda5", "zfs_member", "z", "");
    let e = mkfs_cmd(&z, "/dev/vdb5", false).expect_err("zfs");
    assert!(e.to_string().contains("filesystem zfs_member on /dev/sda5"), "{e}");
}

#[test]
fn btrfs_subvolumes_are_made_parents_first_and_mounted_with_their_paths() {
    let mut l = layout();
    l.disks.push(disk("/dev/sda", GIB, "dos", vec![part("/dev/sda", 1, 2048, 2093056, "83")]));
    let mut b = fs("/dev/sda1", "btrfs", "b-uuid", "/");
    b.subvolumes = vec![
        Subvolume { id: 258, path: "@home/user".into(), parent: 257, read_only: false },
        Subvolume { id: 256, path: "@".into(), parent: 5, read_only: false },
        Subvolume { id: 257, path: "@home".into(), parent: 5, read_only: false },
    ];
    b.default_subvolume = Some(256);
    l.filesystems.push(b);
    for (target, root) in [("/home", "/@home"), ("/", "/@")] {
        l.mounts.push(Mount {
            target: target.into(),
            source: "/dev/sda1".into(),
            fstype: "btrfs".into(),
            options: "rw".into(),
            root: root.into(),
        });
    }
    let p = build(&l, vec![map("/dev/sda", "/dev/sda", GIB)], &settings()).expect("plan");
    assert!(p.renames.is_empty(), "same names: {:?}", p.renames);
    let subs = p.actions.iter().find_map(|a| match a {
        Action::Subvolumes { paths, default, .. } => Some((paths.clone(), default.clone())),
        _ => None,
    });
    assert_eq!(subs, Some((vec!["@".into(), "@home".into(), "@home/user".into()], Some("@".into()))));
    let mounts: Vec<String> =
        p.actions.iter().filter(|a| matches!(a, Action::Mount { .. })).map(|a| a.render(0)).collect();
    assert_eq!(mounts, ["  0. mount /dev/sda1 on / (subvol=@)", "  0. mount /dev/sda1 on /home (subvol=@home)"]);
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

#[test]
fn lvm_is_made_pv_then_vg_then_pools_before_their_thin_volumes() {
    let l = lvm_host(200 * MIB);
    let p = build(&l, vec![map("/dev/sda", "/dev/vdb", 4 * GIB)], &settings()).expect("plan");
    assert_eq!(
        kinds(&p),
        [
            "partition /dev/vdb (gpt, 2 partitions)",
            "create LVM PV /dev/vdb2",
            "create VG vg0",
            "create LV vg0/root",
            "create LV vg0/pool",
            "create LV vg0/data",
            "make xfs on /dev/mapper/vg0-data",
            "make ext4 on /dev/mapper/vg0-root",
            // Independent nodes come in the order of the layout's names.
            "make ext4 on /dev/vdb1",
            "mount /dev/mapper/vg0-root on /",
            "mount /dev/vdb1 on /boot",
            "mount /dev/mapper/vg0-data on /data",
        ]
    );
    let cmds: Vec<String> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Pv { cmd, .. } | Action::Vg { cmd, .. } | Action::Lv { cmd, .. } => Some(cmd.cmdline()),
            _ => None,
        })
        .collect();
    assert_eq!(
        cmds,
        [
            "pvcreate -ff -y --norestorefile --uuid pv-uuid /dev/vdb2",
            "vgcreate -y -s 4096k vg0 /dev/vdb2",
            "lvcreate -y -n root -W y -Z y -L 1048576k vg0",
            "lvcreate -y -n pool --type thin-pool -L 1048576k --poolmetadatasize 8192k -c 64k vg0",
            "lvcreate -y -n data --type thin -V 2097152k --thinpool pool vg0",
        ]
    );
    assert!(p.notes.iter().any(|n| n.contains("volume group vg0 and its logical volumes get new LVM UUIDs")));
    assert_eq!(p.renames.get("/dev/sda2").map(String::as_str), Some("/dev/vdb2"));
}

#[test]
fn on_a_smaller_disk_logical_volumes_shrink_while_their_data_fits() {
    let l = lvm_host(200 * MIB);
    let p = build(&l, vec![map("/dev/sda", "/dev/vdb", 2 * GIB)], &settings()).expect("plan");
    let root = p.actions.iter().find_map(|a| match a {
        Action::Lv { name, size, .. } if name == "vg0/root" => Some(*size),
        _ => None,
    });
    let root = root.expect("root LV");
    assert!(root < GIB && root % (4 * MIB) == 0, "{root}");
    // The filesystem on a shrunk LV is made without the old inode count.
    assert!(!cmd_of(&p, "/dev/mapper/vg0-root").contains("-N"));
    // Too much data for the shrunk LV: refused, naming it.
    let l = lvm_host(GIB - 64 * MIB);
    let e = build(&l, vec![map("/dev/sda", "/dev/vdb", 2 * GIB)], &settings()).expect_err("too small");
    assert!(e.to_string().contains("logical volume vg0/root would get"), "{e}");
}

#[test]
fn raid_is_created_on_both_new_disks_with_its_identity() {
    let mut l = layout();
    for d in ["/dev/sda", "/dev/sdb"] {
        l.disks.push(disk(d, GIB, "gpt", vec![part(d, 1, 2048, 2093056, LINUX)]));
    }
    l.raids.push(Raid {
        id: "/dev/md0".into(),
        level: "raid1".into(),
        metadata: "1.2".into(),
        uuid: "a1b2c3d4:e5f60718:293a4b5c:6d7e8f90".into(),
        name: Some("web1:0".into()),
        raid_devices: 2,
        chunk_kib: None,
        layout: Some("n2".into()),
        bitmap: Some("internal".into()),
        size: GIB - 4 * MIB,
        members: vec!["/dev/sda1".into(), "/dev/sdb1".into()],
        spares: Vec::new(),
        depends_on: vec!["/dev/sda1".into(), "/dev/sdb1".into()],
    });
    l.filesystems.push(fs("/dev/md0", "ext4", "md-fs", "/"));
    let maps = vec![map("/dev/sda", "/dev/vdb", GIB), map("/dev/sdb", "/dev/vdc", GIB)];
    let p = build(&l, maps.clone(), &settings()).expect("plan");
    assert_eq!(
        kinds(&p),
        [
            "partition /dev/vdb (gpt, 1 partitions)",
            "partition /dev/vdc (gpt, 1 partitions)",
            "create RAID /dev/md0",
            "make ext4 on /dev/md0",
            "mount /dev/md0 on /"
        ]
    );
    let Action::Raid { cmd, .. } = &p.actions[2] else { panic!() };
    assert_eq!(
        cmd.cmdline(),
        "mdadm --create /dev/md0 --run --force --metadata=1.2 --level=raid1 --raid-devices=2 \
         --uuid=a1b2c3d4:e5f60718:293a4b5c:6d7e8f90 --name=0 --homehost=web1 --bitmap=internal /dev/vdb1 /dev/vdc1"
    );
    // With one of its disks left out, neither the array nor what is on it is made.
    let p = build(&l, maps[..1].to_vec(), &settings()).expect("plan");
    assert_eq!(kinds(&p), ["partition /dev/vdb (gpt, 1 partitions)"]);
    assert!(p.notes.iter().any(|n| n == "/dev/sdb is not recreated (not mapped)"), "{:?}", p.notes);
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

#[test]
fn luks_is_formatted_with_its_identity_and_opened_under_its_name() {
    let l = luks_host();
    let p = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &settings()).expect("plan");
    let Action::Luks { device, name, format, .. } = &p.actions[1] else { panic!("{:?}", kinds(&p)) };
    assert_eq!((device.as_str(), name.as_str()), ("/dev/vdb1", "cryptroot"));
    assert_eq!(
        format.cmdline(),
        "cryptsetup luksFormat --batch-mode --type=luks2 --cipher=aes-xts-plain64 --key-size=512 --uuid=luks-uuid \
         --hash=sha256 --pbkdf=argon2id --sector-size=4096 --label=root"
    );
    assert_eq!(cmd_of(&p, "/dev/mapper/cryptroot"), "mkfs.ext4 -F -q -U inner /dev/mapper/cryptroot");
    // Unattended and without a key file, nobody could type the passphrase.
    let s = Settings { unattended: true, ..settings() };
    let e = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &s).expect_err("no key");
    assert!(e.to_string().contains("/dev/sda1 is a LUKS container"), "{e}");
    let s = Settings { unattended: true, luks_key_file: Some("/root/key".into()), ..settings() };
    assert!(build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &s).is_ok());
}

#[test]
fn a_disk_without_a_table_is_wiped_and_its_filesystem_made_for_the_new_size() {
    let mut l = layout();
    l.disks.push(Disk::new("/dev/sdb", GIB));
    let mut f = fs("/dev/sdb", "ext4", "whole", "/srv");
    f.params.inode_count = Some(1000);
    l.filesystems.push(f);
    l.swaps.push(Swap { file: true, depends_on: Vec::new(), ..swap("/swapfile", "f") });
    let p = build(&l, vec![map("/dev/sdb", "/dev/vdc", 2 * GIB)], &settings()).expect("plan");
    assert_eq!(kinds(&p), ["erase signatures on /dev/vdc", "make ext4 on /dev/vdc", "mount /dev/vdc on /srv"]);
    assert!(!cmd_of(&p, "/dev/vdc").contains("-N"), "the disk grew: no old inode count");
    assert_eq!(p.erased(), ["/dev/vdc"]);
    assert!(p.notes.iter().any(|n| n.contains("swap file /swapfile is not backed up")), "{:?}", p.notes);
    assert!(p.notes.iter().any(|n| n.contains("no recreated filesystem was mounted on /")), "{:?}", p.notes);
}

#[test]
fn a_layout_built_in_a_circle_is_refused_naming_the_nodes() {
    let mut l = luks_host();
    // The container is (wrongly) recorded as built on the filesystem's RAID, which is built on it.
    l.raids.push(Raid {
        id: "/dev/md0".into(),
        level: "raid1".into(),
        metadata: "1.2".into(),
        uuid: "u".into(),
        name: None,
        raid_devices: 1,
        chunk_kib: None,
        layout: None,
        bitmap: None,
        size: GIB,
        members: vec!["/dev/mapper/cryptroot".into()],
        spares: Vec::new(),
        depends_on: vec!["/dev/mapper/cryptroot".into()],
    });
    l.luks[0].depends_on.push("/dev/md0".into());
    let e = recreation_order(&l).expect_err("cycle");
    assert!(matches!(&e, RecoveryError::DependencyCycle(n) if n.contains(&"/dev/md0".to_string())), "{e:?}");
    let e = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &settings()).expect_err("cycle");
    assert!(e.to_string().contains("/dev/mapper/cryptroot -> /dev/md0 -> /dev/mapper/cryptroot"), "{e}");
}

#[test]
fn the_order_follows_the_layouts_names_with_each_node_after_its_base() {
    let l = lvm_host(MIB);
    let order: Vec<String> = recreation_order(&l).expect("order").iter().map(ToString::to_string).collect();
    let pos = |n: &str| order.iter().position(|o| o == n).unwrap_or_else(|| panic!("{n} not in {order:?}"));
    assert!(pos("/dev/sda") < pos("/dev/sda2") && pos("/dev/sda2") < pos("pv:/dev/sda2"));
    assert!(pos("pv:/dev/sda2") < pos("vg:vg0") && pos("vg:vg0") < pos("/dev/mapper/vg0-root"));
    assert!(pos("lv:vg0/pool") < pos("/dev/mapper/vg0-data"));
    assert!(pos("/dev/mapper/vg0-root") < pos("fs:/dev/mapper/vg0-root"));
    assert_eq!(order.len(), 11, "{order:?}");
}

#[test]
fn finishing_adds_restore_fixes_and_the_bootloaders_of_the_layout() {
    let mut l = gpt_host();
    l.bootloader = Bootloader {
        kind: BootloaderKind::GrubBiosEfi,
        esp_mountpoint: Some("/boot/efi".into()),
        efi_loaders: vec!["/EFI/BOOT/BOOTX64.EFI".into(), "/EFI/ubuntu/shimx64.efi".into()],
        ..Bootloader::default()
    };
    let s = Settings { regenerate_initramfs: true, bootloader: true, ..settings() };
    let mut p = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &s).expect("plan");
    p.finish(&l, &s, Some(("/backups/web1/1".into(), 1200, 3 * GIB)));
    let tail: Vec<String> = p.actions[6..].iter().map(|a| a.describe()).collect();
    assert_eq!(
        tail,
        [
            "restore /backups/web1/1",
            "rename changed devices in the restored configuration",
            "regenerate the initramfs",
            // No disk recorded for BIOS GRUB: the disk that holds /.
            "install GRUB for BIOS on /dev/vdb",
            "install GRUB for UEFI on /boot/efi",
        ]
    );
    assert!(matches!(p.actions.last(), Some(Action::GrubEfi { id, .. }) if id == "ubuntu"));
    // Without a backup, without a known bootloader.
    let mut l = gpt_host();
    l.bootloader.kind = BootloaderKind::Unknown;
    let mut p = build(&l, vec![map("/dev/sda", "/dev/sda", GIB)], &s).expect("plan");
    p.finish(&l, &s, None);
    assert_eq!(p.actions.last().map(Action::describe).as_deref(), Some("regenerate the initramfs"));
    assert!(p.notes.iter().any(|n| n == "no backup: the filesystems are recreated empty"));
    assert!(p.notes.iter().any(|n| n.contains("records bootloader `unknown`")));
}

#[test]
fn the_rendered_plan_names_the_erased_disks_every_step_and_the_notes() {
    let l = gpt_host();
    let mut p = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &settings()).expect("plan");
    p.finish(&l, &settings(), None);
    let text = p.render();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Disks:");
    assert_eq!(lines[1], format!("  /dev/sda -> /dev/vdb ({}, chosen) — WILL BE ERASED", human(GIB)));
    assert_eq!(lines[2], "Steps:");
    assert_eq!(lines[3], "  1. new gpt partition table on /dev/vdb (as /dev/sda):");
    assert!(lines[4].starts_with("        1 /dev/vdb1"), "{text}");
    assert!(
        lines.contains(&"  3. ext4 on /dev/vdb2, UUID root-uuid: mkfs.ext4 -F -q -U root-uuid /dev/vdb2"),
        "{text}"
    );
    assert!(lines.contains(&"  4. swap on /dev/vdb3, UUID swap-uuid"), "{text}");
    assert!(lines.contains(&"  7. rename devices in fstab, crypttab and the GRUB configuration: /dev/sda -> /dev/vdb, /dev/sda1 -> /dev/vdb1, /dev/sda2 -> /dev/vdb2, /dev/sda3 -> /dev/vdb3"), "{text}");
    assert!(text.contains("Note: no backup: the filesystems are recreated empty\n"), "{text}");
}

#[test]
fn partitions_that_keep_their_size_and_the_smallest_disk() {
    let l = gpt_host();
    let d = &l.disks[0];
    let s = Settings { keep_size: vec!["/".into()], ..settings() };
    let infos = part_infos(&l, d, &s);
    let fixed: Vec<bool> = infos.iter().map(|i| i.fixed).collect();
    assert_eq!(fixed, [true, true, true], "ESP by type, / by keep_size, swap by type");
    let infos = part_infos(&l, d, &settings());
    assert!(!infos[1].fixed);
    // 100 MiB used with 20 % headroom and 64 MiB of the filesystem's own.
    assert_eq!(infos[1].needed, Some(120 * MIB + 64 * MIB));
    assert_eq!(infos[2].needed, Some(16 * MIB));
    let min = minimum_size(&l, d, &settings());
    assert!(min < GIB && min > 300 * MIB, "{min}");
    // Onto a disk below the minimum: refused before anything is planned.
    assert!(build(&l, vec![map("/dev/sda", "/dev/vdb", 200 * MIB)], &settings()).is_err());
}

#[test]
fn the_json_plan_names_every_field_of_the_partitions() {
    let l = gpt_host();
    let p = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &settings()).expect("plan");
    let v = serde_json::to_value(&p).expect("json");
    let first = &v["actions"][0];
    assert_eq!(first["action"], "partition");
    assert_eq!(first["partitions"][0]["number"], 1);
    assert_eq!(first["partitions"][0]["device"], "/dev/vdb1");
    assert_eq!(first["partitions"][0]["what"], "/boot/efi (vfat)");
    assert_eq!(v["actions"][2]["cmd"], "mkfs.ext4 -F -q -U root-uuid /dev/vdb2");
    assert_eq!(v["renames"]["/dev/sda2"], "/dev/vdb2");
}
