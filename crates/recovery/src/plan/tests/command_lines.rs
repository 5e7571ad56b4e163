//! sfdisk scripts and mkfs/mkswap command lines.

use super::*;

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
