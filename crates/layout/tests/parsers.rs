//! Parsers against real tool output captured in a VM (see
//! `regenerate_parser_fixtures` in crates/lifeboat/tests/layout_vm.rs).

use lifeboat_layout::capture::{lsblk, storage};
use lifeboat_layout::{capture, CaptureOptions};
use lifeboat_runner::ScriptedRunner;

#[test]
fn lsblk_tree_of_raid_lvm_and_luks() {
    let nodes = lsblk::parse(include_str!("fixtures/lsblk.json")).expect("parse");
    let md = nodes.iter().find(|n| n.path == "/dev/md0").expect("md0");
    assert_eq!(md.kind, "raid5");
    assert_eq!(md.parents, vec!["/dev/vda", "/dev/vdb", "/dev/vdc"], "an array appears once, under all its members");
    let striped = nodes.iter().find(|n| n.path == "/dev/mapper/vgfx-striped").expect("striped LV");
    assert_eq!(striped.kind, "lvm");
    assert_eq!(striped.parents, vec!["/dev/md0", "/dev/vdg"]);
    let vdf1 = nodes.iter().find(|n| n.path == "/dev/vdf1").expect("vdf1");
    assert_eq!((vdf1.kind.as_str(), vdf1.size), ("part", 8 << 20));
    assert!(nodes.iter().all(|n| n.log_sec == 512));
}

#[test]
fn sfdisk_gpt() {
    let t = storage::parse_sfdisk(include_str!("fixtures/sfdisk-gpt.json")).expect("parse");
    assert_eq!((t.label.as_str(), t.id.as_deref()), ("gpt", Some("B95B7999-8D95-2947-9460-B37E67AE1211")));
    assert_eq!((t.first_lba, t.last_lba, t.sector_size), (Some(2048), Some(262110), 512));
    let p = &t.partitions[0];
    assert_eq!((p.id.as_str(), p.number, p.start, p.size), ("/dev/vdf1", 1, 2048, 16384));
    assert_eq!(storage::type_name(&p.part_type), Some("EFI System"));
    assert_eq!(p.uuid.as_deref(), Some("C7F5032E-5C98-4E4B-A5C5-B262EC58E21D"));
    assert!(storage::parse_sfdisk("{}").is_err());
}

#[test]
fn mdadm_detail_raid1_and_raid5() {
    let r1 = storage::parse_mdadm_detail(include_str!("fixtures/mdadm-detail-raid1.txt")).expect("raid1");
    assert_eq!((r1.level.as_str(), r1.metadata.as_str(), r1.bitmap.as_str()), ("raid1", "1.2", "internal"));
    assert_eq!(r1.name.as_deref(), Some("lbtest:0"));
    assert_eq!(r1.members, vec!["/dev/vdh1", "/dev/vdi1"]);
    assert_eq!(r1.chunk_kib, None);
    let r5 = storage::parse_mdadm_detail(include_str!("fixtures/mdadm-detail-raid5.txt")).expect("raid5");
    assert_eq!((r5.level.as_str(), r5.raid_devices, r5.chunk_kib), ("raid5", 3, Some(256)));
    assert_eq!(r5.layout.as_deref(), Some("left-symmetric"));
    assert_eq!(r5.uuid, "e5e4c7f6:59fa2a83:0ab69acd:4a779c36");
    assert_eq!(r5.size, 260096 * 1024);
    assert_eq!(r5.bitmap, "none");
    assert!(storage::parse_mdadm_detail("garbage").is_err());
}

#[test]
fn lvm_reports() {
    let pvs = storage::parse_lvm_report(include_str!("fixtures/pvs.json"), "pv").expect("pvs");
    assert_eq!(pvs.len(), 2);
    assert_eq!(pvs[1]["pv_name"], "/dev/vdg");
    let vgs = storage::parse_lvm_report(include_str!("fixtures/vgs.json"), "vg").expect("vgs");
    assert_eq!(vgs[0]["vg_extent_size"], "4194304");
    let lvs = storage::parse_lvm_report(include_str!("fixtures/lvs.json"), "lv").expect("lvs");
    let striped = lvs.iter().find(|r| r["lv_name"] == "striped").expect("striped");
    let seg = storage::lv_segment(striped);
    assert_eq!((seg.segtype.as_str(), seg.stripes, seg.stripe_size, seg.size), ("striped", 2, Some(65536), 40 << 20));
    assert_eq!(seg.devices.as_deref(), Some("/dev/md0(0),/dev/vdg(0)"));
    let thin = lvs.iter().find(|r| r["lv_name"] == "thin").expect("thin");
    assert_eq!(thin["pool_lv"], "pool");
    assert!(storage::parse_lvm_report("not json", "pv").is_err());
}

#[test]
fn luks1_and_luks2_headers_without_secrets() {
    let l1 = storage::parse_luks_dump(include_str!("fixtures/luks1-dump.txt"), "/dev/vdd").expect("luks1");
    assert_eq!((l1.version, l1.cipher.as_str(), l1.key_size), (1, "aes-xts-plain64", 512));
    assert_eq!((l1.hash.as_deref(), l1.pbkdf.as_deref()), (Some("sha256"), Some("pbkdf2")));
    assert_eq!(l1.uuid, "bbe54312-3cc5-47d3-a548-82ed857799b9");
    assert_eq!(l1.label, None);
    let l2 = storage::parse_luks_dump(include_str!("fixtures/luks2-dump.txt"), "/dev/vde").expect("luks2");
    assert_eq!((l2.version, l2.cipher.as_str(), l2.key_size), (2, "aes-xts-plain64", 512));
    assert_eq!((l2.pbkdf.as_deref(), l2.sector_size, l2.label.as_deref()), (Some("pbkdf2"), Some(512), Some("fx")));
    assert_eq!(l2.depends_on, vec!["/dev/vde"]);
    let rendered = format!("{l2:?}");
    assert!(!rendered.contains("bf 04 2a b3"), "salts and digests are not recorded");
}

#[test]
fn missing_tool_becomes_a_note_that_names_the_package() {
    let r = ScriptedRunner::new()
        .answer(
            "lsblk --json --bytes --output NAME,KNAME,PATH,TYPE,SIZE,LOG-SEC,PHY-SEC,MODEL,SERIAL,WWN,TRAN,RM,RO,ROTA,PTTYPE,FSTYPE,FSVER,UUID,LABEL,PARTUUID,PARTTYPE,PARTLABEL,FSUSED,FSSIZE,MOUNTPOINTS",
            include_str!("fixtures/lsblk.json"),
        )
        // Without udev, lsblk has no signatures; capture probes with blkid.
        .answer("blkid -p -o export /dev/md0", "UUID=uagl6j-MZek-5gr2-CYUM-uzQp-ef3J-1k7sMn\nVERSION=LVM2 001\nTYPE=LVM2_member\n")
        .without("mdadm")
        .without("lvm");
    let l = capture(&r, &CaptureOptions::default());
    assert!(l.raids.is_empty());
    let md = l.notes.iter().find(|n| n.what == "/dev/md0: RAID array").expect("note for md0");
    assert!(md.why.contains("`mdadm` is not installed") && md.why.contains("apt-get install mdadm"), "{}", md.why);
    let lvm = l.notes.iter().find(|n| n.what == "LVM pvs").expect("note for LVM");
    assert!(lvm.why.contains("apt-get install lvm2"), "{}", lvm.why);
    // Disks are still recorded from lsblk.
    assert!(l.disks.iter().any(|d| d.id == "/dev/vdg" && d.size == 128 << 20));
}
