//! Whole captures of machines that exist only as fixtures: the host
//! (mounts, sysfs, swap areas, device heads, blkid signatures) is a
//! `FixtureHost`, the tools a `ScriptedRunner` answering with output captured
//! in a VM. No root, no devices.

use lifeboat_host::{BlockDevice, DevNum, FixtureHost};
use lifeboat_layout::capture::{capture_on, lsblk};
use lifeboat_layout::model::DiskKind;
use lifeboat_layout::CaptureOptions;
use lifeboat_runner::ScriptedRunner;
use std::path::PathBuf;

const LSBLK: &str = "lsblk --json --bytes --output NAME,KNAME,PATH,TYPE,SIZE,LOG-SEC,PHY-SEC,MODEL,SERIAL,WWN,TRAN,RM,RO,ROTA,PTTYPE,FSTYPE,FSVER,UUID,LABEL,PARTUUID,PARTTYPE,PARTLABEL,FSUSED,FSSIZE,MOUNTPOINTS";

/// A FAT boot sector: 512-byte sectors, 4 sectors a cluster.
fn fat_boot_sector() -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[11..13].copy_from_slice(&512u16.to_le_bytes());
    b[13] = 4;
    b[510] = 0x55;
    b[511] = 0xAA;
    b
}

#[test]
fn a_capture_from_fixtures_records_tables_filesystems_mounts_swap_and_boot_code() {
    assert_eq!(lsblk::COLUMNS, LSBLK.rsplit(' ').next().expect("columns"));
    let mut mbr = vec![0u8; 512];
    mbr[0x180..0x184].copy_from_slice(b"GRUB");
    let mut host = FixtureHost::new()
        // The VM of lsblk.json had no udev: every signature comes from blkid.
        .signature("/dev/vdf", &[("PTTYPE", "gpt")])
        .signature("/dev/vdf1", &[("TYPE", "vfat"), ("VERSION", "FAT16"), ("UUID", "ABCD-1234"), ("LABEL", "ESP")])
        .signature("/dev/vde", &[("TYPE", "swap"), ("UUID", "sw-1")])
        .signature("/dev/md0", &[("TYPE", "LVM2_member"), ("UUID", "pv-1")])
        .signature("/dev/vdc", &[("TYPE", "linux_raid_member")])
        .head("/dev/vdf1", &fat_boot_sector())
        .head("/dev/vdd", &mbr)
        .head("/dev/vde", &[])
        .attr("vda", "device/model", "QEMU disk\n")
        .attr("vdb", "serial", "SN-B")
        .mountinfo(
            "30 1 254:81 / /boot/my\\040efi rw,relatime - vfat /dev/vdf1 rw\n31 1 0:22 / /proc rw - proc proc rw\n",
        )
        .swap("/dev/vde", 128 << 20);
    // Even root cannot open this one.
    host.unopenable.insert(PathBuf::from("/dev/vdc"), 13);
    let r = ScriptedRunner::new()
        .answer(LSBLK, include_str!("fixtures/lsblk.json"))
        .answer("sfdisk --json /dev/vdf", include_str!("fixtures/sfdisk-gpt.json"))
        .without("mdadm")
        .without("lvm")
        .without("efibootmgr");
    let l = capture_on(&host, &r, &CaptureOptions::default());

    let ids: Vec<&str> = l.disks.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        ["/dev/vda", "/dev/vdb", "/dev/vdc", "/dev/vdd", "/dev/vde", "/dev/vdf", "/dev/vdg", "/dev/vdh", "/dev/vdi"]
    );
    assert!(l.disks.iter().all(|d| d.kind == DiskKind::Disk && d.transport.as_deref() == Some("virtio")));
    assert_eq!(l.disks[0].model.as_deref(), Some("QEMU disk"), "model from sysfs where lsblk has none");
    assert_eq!(l.disks[1].serial.as_deref(), Some("SN-B"));
    let vdf = &l.disks[5];
    let table = vdf.table.as_ref().expect("vdf's partition table");
    assert_eq!((table.label.as_str(), table.partitions[0].type_name.as_deref()), ("gpt", Some("EFI System")));

    assert_eq!(l.filesystems.len(), 1, "{:?}", l.filesystems);
    let esp = &l.filesystems[0];
    assert_eq!((esp.device.as_str(), esp.fstype.as_str()), ("/dev/vdf1", "vfat"));
    assert_eq!((esp.uuid.as_deref(), esp.label.as_deref()), (Some("ABCD-1234"), Some("ESP")));
    assert_eq!(esp.mountpoints, ["/boot/my efi"], "mount points with a space, from mountinfo");
    assert_eq!((esp.params.fat_bits, esp.params.sector_size, esp.params.block_size), (Some(16), Some(512), Some(2048)));

    let mounts: Vec<(&str, &str)> = l.mounts.iter().map(|m| (m.source.as_str(), m.target.as_str())).collect();
    assert_eq!(mounts, [("/dev/vdf1", "/boot/my efi")], "pseudo filesystems are left out");
    assert_eq!(l.swaps.len(), 1);
    assert_eq!(
        (l.swaps[0].device.as_str(), l.swaps[0].active, l.swaps[0].uuid.as_deref()),
        ("/dev/vde", true, Some("sw-1"))
    );

    assert_eq!(l.bootloader.esp.as_deref(), Some("/dev/vdf1"));
    assert_eq!(l.bootloader.esp_mountpoint.as_deref(), Some("/boot/my efi"));
    assert_eq!(l.bootloader.bios_boot_disks, ["/dev/vdd"]);

    let note =
        |what: &str| l.notes.iter().find(|n| n.what == what).unwrap_or_else(|| panic!("no note {what}: {:?}", l.notes));
    assert!(note("/dev/vdc: partition table and signatures").why.contains("Permission denied"));
    assert!(note("/dev/md0: RAID array").why.contains("apt-get install mdadm"));
    assert!(note("LVM pvs").why.contains("apt-get install lvm2"));
}

#[test]
fn without_lsblk_the_disks_come_from_the_sysfs_walk() {
    let mut host = FixtureHost::new()
        .device(BlockDevice {
            name: "vda".into(),
            dev: DevNum::new(254, 0),
            size: 10 << 30,
            logical_sector_size: Some(512),
            physical_sector_size: Some(4096),
            rotational: true,
            ..BlockDevice::default()
        })
        .partition("vda", "vda1", 1, DevNum::new(254, 1), 1 << 30)
        .disk("loop0", DevNum::new(7, 0), 1 << 20)
        .device(BlockDevice {
            name: "sdb".into(),
            dev: DevNum::new(8, 16),
            size: 8 << 30,
            removable: true,
            read_only: true,
            ..BlockDevice::default()
        })
        .disk("sr0", DevNum::new(11, 0), 0)
        .signature("/dev/vda", &[("PTTYPE", "dos")])
        .attr("loop0", "loop/backing_file", "/var/tmp/disk.img");
    // An empty optical drive is no problem worth a note.
    host.unopenable.insert(PathBuf::from("/dev/sr0"), 123);
    let r = ScriptedRunner::new().without("lsblk").fail("sfdisk --json /dev/vda", "sfdisk: cannot open /dev/vda");
    let l = capture_on(&host, &r, &CaptureOptions::default());

    let ids: Vec<&str> = l.disks.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["/dev/loop0", "/dev/sdb", "/dev/sr0", "/dev/vda"], "whole disks only, no partitions");
    let vda = &l.disks[3];
    assert_eq!((vda.size, vda.logical_sector_size, vda.physical_sector_size), (10 << 30, 512, 4096));
    assert_eq!((vda.kind, vda.rotational, vda.excluded.as_ref()), (DiskKind::Disk, true, None));
    let lo = &l.disks[0];
    assert_eq!(lo.kind, DiskKind::Loop);
    assert_eq!(lo.backing_file.as_deref(), Some("/var/tmp/disk.img"));
    assert!(lo.excluded.as_deref().is_some_and(|e| e.contains("loop device")), "{:?}", lo.excluded);
    let sdb = &l.disks[1];
    assert_eq!((sdb.kind, sdb.read_only), (DiskKind::Removable, true));
    assert!(sdb.excluded.is_some());

    let whats: Vec<&str> = l.notes.iter().map(|n| n.what.as_str()).collect();
    assert!(whats.contains(&"block devices (lsblk)"), "{whats:?}");
    assert!(whats.contains(&"/dev/vda: partition table"), "the table blkid saw but sfdisk could not read: {whats:?}");
    assert!(!whats.iter().any(|w| w.contains("sr0")), "{whats:?}");
}

/// The mounts of the Debian server of the lsblk fixtures: root, swap, /home
/// and /home bound again at /srv/home.
fn debian_server() -> FixtureHost {
    FixtureHost::new()
        .mount(DevNum::new(254, 1), "/dev/vda1", "/", "ext4")
        .mount(DevNum::new(254, 3), "/dev/vda3", "/home", "ext4")
        .mount(DevNum::new(254, 3), "/dev/vda3", "/srv/home", "ext4")
        .swap("/dev/vda2", 512 << 20)
}

/// What capture must find on that server, whatever lsblk's version.
fn assert_debian_server(l: &lifeboat_layout::Layout) {
    let fs: Vec<(&str, Vec<&str>)> =
        l.filesystems.iter().map(|f| (f.device.as_str(), f.mountpoints.iter().map(String::as_str).collect())).collect();
    assert_eq!(fs, [("/dev/vda1", vec!["/"]), ("/dev/vda3", vec!["/home", "/srv/home"])], "{:?}", l.notes);
    assert_eq!(l.filesystems[0].uuid.as_deref(), Some("root-uuid"));
    assert_eq!((l.filesystems[0].used, l.filesystems[0].size), (Some(2 << 30), Some(9 << 30)));
    let swaps: Vec<(&str, bool)> = l.swaps.iter().map(|s| (s.device.as_str(), s.active)).collect();
    assert_eq!(swaps, [("/dev/vda2", true)]);
    assert!(!l.notes.iter().any(|n| n.what.contains("lsblk")), "{:?}", l.notes);
}

#[test]
fn util_linux_2_36_without_mountpoints_is_asked_for_mountpoint_and_mountinfo_gives_the_rest() {
    let columns = lsblk::COLUMNS.replace("MOUNTPOINTS", "MOUNTPOINT");
    let r = ScriptedRunner::new()
        .answer("lsblk --help", include_str!("fixtures/lsblk-help-2.36.txt"))
        .fail(LSBLK, "lsblk: unknown column: MOUNTPOINTS")
        .answer(&format!("lsblk --json --bytes --output {columns}"), include_str!("fixtures/lsblk-2.36.json"));
    let l = lifeboat_layout::capture::try_capture_on(&debian_server(), &r, &CaptureOptions::default())
        .expect("a capture that sees the disks");
    assert_debian_server(&l);
}

#[test]
fn util_linux_2_38_is_asked_for_every_column() {
    let r = ScriptedRunner::new()
        .answer("lsblk --help", include_str!("fixtures/lsblk-help-2.38.txt"))
        .answer(LSBLK, include_str!("fixtures/lsblk-2.38.json"));
    let l = lifeboat_layout::capture::try_capture_on(&debian_server(), &r, &CaptureOptions::default())
        .expect("a capture that sees the disks");
    assert_debian_server(&l);
    assert_eq!(l.filesystems[0].params, Default::default(), "dumpe2fs was not scripted: a note, not a failure");
}

#[test]
fn an_lsblk_without_help_that_refuses_a_column_is_asked_for_those_of_every_release() {
    let r = ScriptedRunner::new().fail(LSBLK, "lsblk: unknown column: MOUNTPOINTS").answer(
        &format!("lsblk --json --bytes --output {}", lsblk::BASELINE_COLUMNS),
        include_str!("fixtures/lsblk-2.33.json"),
    );
    let l = lifeboat_layout::capture::try_capture_on(&debian_server(), &r, &CaptureOptions::default())
        .expect("the baseline columns");
    assert_debian_server(&l);
}

#[test]
fn a_capture_that_cannot_list_the_block_devices_is_an_error_for_a_backup_and_a_note_otherwise() {
    let host = debian_server().disk("vda", DevNum::new(254, 0), 10 << 30);
    let r = ScriptedRunner::new()
        .answer("lsblk --help", include_str!("fixtures/lsblk-help-2.38.txt"))
        .fail(LSBLK, "lsblk: unknown column: MOUNTPOINTS")
        .fail(&format!("lsblk --json --bytes --output {}", lsblk::BASELINE_COLUMNS), "lsblk: unknown column: FSUSED");
    let e = lifeboat_layout::capture::try_capture_on(&host, &r, &CaptureOptions::default()).expect_err("no devices");
    let msg = e.to_string();
    assert!(msg.contains("block devices cannot be listed") && msg.contains("unknown column: FSUSED"), "{msg}");
    assert!(msg.contains("util-linux 2.33 or later"), "the fix: {msg}");
    // The lenient capture (recovery's view of new disks) still has the disks from sysfs, with a note.
    let l = capture_on(&host, &r, &CaptureOptions::default());
    assert_eq!(l.disks.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["/dev/vda"]);
    assert!(l.notes.iter().any(|n| n.what == "block devices (lsblk)"), "{:?}", l.notes);

    let missing = ScriptedRunner::new().without("lsblk");
    let e = lifeboat_layout::capture::try_capture_on(&host, &missing, &CaptureOptions::default())
        .expect_err("no lsblk")
        .to_string();
    assert!(e.contains("lsblk"), "{e}");
}

#[test]
fn a_btrfs_on_two_disks_mounted_through_its_second_device_keeps_its_mount_point() {
    let json = r#"{"blockdevices":[
      {"name":"vdb","kname":"vdb","path":"/dev/vdb","type":"disk","size":1073741824,"fstype":"btrfs","uuid":"pool-1","mountpoints":[null]},
      {"name":"vdc","kname":"vdc","path":"/dev/vdc","type":"disk","size":1073741824,"fstype":"btrfs","uuid":"pool-1","mountpoints":["/pool"]}]}"#;
    let host = FixtureHost::new().mount(DevNum::new(0, 40), "/dev/vdc", "/pool", "btrfs");
    let r =
        ScriptedRunner::new().answer("lsblk --help", include_str!("fixtures/lsblk-help-2.38.txt")).answer(LSBLK, json);
    let l = lifeboat_layout::capture::try_capture_on(&host, &r, &CaptureOptions::default()).expect("capture");
    assert_eq!(l.filesystems.len(), 1, "{:?}", l.filesystems);
    let f = &l.filesystems[0];
    assert_eq!(
        (f.device.as_str(), f.depends_on.as_slice()),
        ("/dev/vdb", ["/dev/vdb".to_string(), "/dev/vdc".into()].as_slice())
    );
    assert_eq!(f.mountpoints, ["/pool"]);
}
