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
    let s = Settings { regenerate_initramfs: lifeboat_config::Regenerate::Always, bootloader: true, ..settings() };
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

fn clone(new_uuids: bool) -> crate::identity::Identity {
    let file = crate::identity::CloneFile::parse(&format!(
        "hostname = \"web2\"\nnew_uuids = {new_uuids}\n[[interface]]\nmatch = \"order:1\"\ndhcp = true\n"
    ))
    .expect("clone file");
    crate::identity::Identity::resolve(&file, "web1", &[("eth0".into(), None)], &[]).expect("resolve")
}

#[test]
fn a_clone_with_new_uuids_makes_its_storage_with_them_and_gets_its_identity_before_the_initramfs() {
    let l = gpt_host();
    let s =
        Settings { regenerate_initramfs: lifeboat_config::Regenerate::Always, clone: Some(clone(true)), ..settings() };
    let mut p = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &s).expect("plan");
    p.finish(&l, &s, None);
    let new_root = p.uuids.get("root-uuid").cloned().expect("root renewed");
    assert_ne!(new_root, "root-uuid");
    assert!(p.uuids.contains_key("swap-uuid") && p.uuids.contains_key("11111111-2222-3333-4444-555555555555"));
    let mkfs = p.actions.iter().find_map(|a| match a {
        Action::Mkfs { fstype, uuid, cmd, .. } if fstype == "ext4" => Some((uuid.clone(), cmd.cmdline())),
        _ => None,
    });
    let (uuid, cmd) = mkfs.expect("mkfs");
    assert_eq!(uuid.as_deref(), Some(new_root.as_str()));
    assert!(cmd.contains(&format!("-U {new_root}")) && !cmd.contains("root-uuid"), "{cmd}");
    let script = p.actions.iter().find_map(|a| match a {
        Action::Partition { script, .. } => Some(script.clone()),
        _ => None,
    });
    assert!(!script.expect("table").contains("11111111-2222-3333-4444-555555555555"), "a new partition UUID");
    let tail: Vec<String> =
        p.actions.iter().skip_while(|a| !matches!(a, Action::FixDevices { .. })).map(Action::describe).collect();
    assert_eq!(
        tail,
        [
            "rename changed devices in the restored configuration",
            "give the restored system the identity of web2",
            "regenerate the initramfs"
        ]
    );
    let text = p.render();
    assert!(text.contains("the clone's identity (instead of web1's):"), "{text}");
    assert!(text.contains("eth0: DHCP"), "{text}");
    assert!(text.contains(&format!("root-uuid -> {new_root}")), "{text}");
    assert!(
        matches!(p.actions.iter().find(|a| matches!(a, Action::Identity { .. })), Some(Action::Identity { identity }) if identity.uuids == p.uuids)
    );
    // The same clone plans the same identities again (a rerun finds what it made).
    let again = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &s).expect("plan");
    assert_eq!(again.uuids, p.uuids);
}

#[test]
fn a_clone_without_new_uuids_keeps_the_storage_identities_and_without_clone_there_is_no_identity_step() {
    let l = gpt_host();
    let s = Settings { clone: Some(clone(false)), ..settings() };
    let mut p = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &s).expect("plan");
    p.finish(&l, &s, None);
    assert!(p.uuids.is_empty());
    assert!(p.render().contains("  3. ext4 on /dev/vdb2, UUID root-uuid: "), "{}", p.render());
    assert!(p.actions.iter().any(|a| matches!(a, Action::Identity { identity } if identity.uuids.is_empty())));
    let step = p.actions.iter().find(|a| matches!(a, Action::Identity { .. })).expect("identity step");
    assert_eq!(step.phase(), Phase::Fix);
    let v = serde_json::to_value(step).expect("json");
    assert_eq!((v["action"].as_str(), v["identity"]["hostname"].as_str()), (Some("identity"), Some("web2")));
    let mut p = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &settings()).expect("plan");
    p.finish(&l, &settings(), None);
    assert!(!p.actions.iter().any(|a| matches!(a, Action::Identity { .. })));
    assert!(serde_json::to_value(&p).expect("json").get("uuids").is_none(), "no uuids key as before");
}

#[test]
fn a_clone_with_new_uuids_does_not_collide_with_its_source_next_to_it() {
    use lifeboat_layout::capture::lsblk::Node;
    let l = gpt_host();
    let node = |path: &str, fstype: &str, uuid: &str| Node {
        path: path.into(),
        kind: "part".into(),
        fstype: Some(fstype.into()),
        uuid: Some(uuid.into()),
        parents: vec!["/dev/sda".into()],
        ..Node::default()
    };
    let nodes = vec![node("/dev/sda2", "ext4", "root-uuid"), node("/dev/sda3", "swap", "swap-uuid")];
    let host = lifeboat_host::FixtureHost::new();
    for (new_uuids, clashes) in [(false, 2), (true, 0)] {
        let s = Settings { clone: Some(clone(new_uuids)), ..settings() };
        let p = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &s).expect("plan");
        assert_eq!(crate::collide::collisions_on(&host, &p, &nodes).len(), clashes, "new_uuids = {new_uuids}");
    }
}

#[test]
fn the_initramfs_is_regenerated_only_when_something_it_may_name_changes_or_a_driver_may_lack() {
    use lifeboat_config::Regenerate;
    let l = gpt_host();
    let initramfs = |p: &Plan| p.actions.iter().find(|a| matches!(a, Action::Initramfs { .. })).cloned();
    // Same device names, same identities: kept unless a driver of the new disk is missing.
    let s = Settings { regenerate_initramfs: Regenerate::Auto, ..settings() };
    let mut p = build(&l, vec![map("/dev/sda", "/dev/sda", GIB)], &s).expect("plan");
    p.finish(&l, &s, None);
    match initramfs(&p) {
        Some(Action::Initramfs { only_if_missing_drivers: Some(d), .. }) => assert_eq!(d, vec!["/dev/sda".to_string()]),
        other => panic!("{other:?}"),
    }
    assert!(p.render().contains("keep the restored initramfs"), "{}", p.render());
    // Other device names: kept unless the configuration it carries names
    // them (or a driver lacks), decided once the system is restored.
    let mut p = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &s).expect("plan");
    p.finish(&l, &s, None);
    match initramfs(&p) {
        Some(Action::Initramfs { only_if_missing_drivers: Some(d), renames, .. }) => {
            assert_eq!(d, vec!["/dev/vdb".to_string()]);
            assert_eq!(renames.get("/dev/sda").map(String::as_str), Some("/dev/vdb"), "{renames:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(p.render().contains("names a renamed device (/dev/sda -> /dev/vdb"), "{}", p.render());
    // never and always, as configured.
    let s = Settings { regenerate_initramfs: Regenerate::Never, ..settings() };
    let mut p = build(&l, vec![map("/dev/sda", "/dev/vdb", GIB)], &s).expect("plan");
    p.finish(&l, &s, None);
    assert!(initramfs(&p).is_none());
    let s = Settings { regenerate_initramfs: Regenerate::Always, ..settings() };
    let mut p = build(&l, vec![map("/dev/sda", "/dev/sda", GIB)], &s).expect("plan");
    p.finish(&l, &s, None);
    assert!(matches!(initramfs(&p), Some(Action::Initramfs { only_if_missing_drivers: None, .. })));
}
