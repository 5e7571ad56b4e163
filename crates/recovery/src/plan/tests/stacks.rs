//! What each kind of storage stack becomes, in which order, and what is refused.

use super::*;

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
    // A clone with new UUIDs: the array gets a new UUID (in mdadm's spelling) and the clone as its home host.
    let file = crate::identity::CloneFile::parse("hostname = \"web2\"\nnew_uuids = true\n").expect("clone");
    let clone = crate::identity::Identity::resolve(&file, "web1", &[], &[]).expect("identity");
    let p = build(&l, maps.clone(), &Settings { clone: Some(clone), ..settings() }).expect("plan");
    let Action::Raid { uuid, cmd, .. } = &p.actions[2] else { panic!() };
    assert!(uuid != "a1b2c3d4:e5f60718:293a4b5c:6d7e8f90" && uuid.matches(':').count() == 3, "{uuid}");
    assert!(cmd.cmdline().contains(&format!("--uuid={uuid} --name=0 --homehost=web2 ")), "{}", cmd.cmdline());
    assert_eq!(p.uuids.get("a1b2c3d4:e5f60718:293a4b5c:6d7e8f90"), Some(uuid));
    // With one of its disks left out, neither the array nor what is on it is made.
    let p = build(&l, maps[..1].to_vec(), &settings()).expect("plan");
    assert_eq!(kinds(&p), ["partition /dev/vdb (gpt, 1 partitions)"]);
    assert!(p.notes.iter().any(|n| n == "/dev/sdb is not recreated (not mapped)"), "{:?}", p.notes);
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
