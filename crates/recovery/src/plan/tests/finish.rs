//! The restore, fix-up and bootloader steps, and the plan as text and JSON.

use super::*;

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
