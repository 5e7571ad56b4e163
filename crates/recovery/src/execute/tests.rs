//! Carrying out steps against a scripted runner: what counts as already
//! done, and what runs otherwise. Nothing here needs root or a disk.

use super::filesystems::filesystem_is;
use super::restore::{restore_once, RESTORE_DONE};
use super::storage::{md_uuid_is, pv_is, table_is};
use super::*;
use crate::plan::PlannedPartition;
use lifeboat_host::{DevNum, FixtureHost};
use lifeboat_runner::ScriptedRunner;
use std::collections::BTreeMap;

fn options(root: &Path) -> Options {
    Options { root: root.to_path_buf(), luks_key_file: None, keep_mounted: false }
}

fn exec<'a>(h: &'a dyn Host, r: &'a dyn Runner, o: &'a Options) -> Exec<'a> {
    Exec { h, r, o, mounted: Vec::new(), report: Report::default() }
}

fn no_restore() -> impl FnMut(&Path) -> Result<(u64, u64, Vec<String>), RecoveryError> {
    |_: &Path| Ok((0, 0, Vec::new()))
}

/// What an image writer is handed: (offset, bytes).
type Writer<'a> = dyn FnMut(u64, &[u8]) -> std::io::Result<()> + 'a;

fn no_images() -> impl FnMut(&str, &mut Writer<'_>) -> Result<u64, String> {
    |entry: &str, _: &mut Writer<'_>| Err(format!("{entry}: no backup"))
}

#[test]
fn device_names_are_replaced_whole() {
    let mut m = std::collections::BTreeMap::new();
    m.insert("/dev/sda1".to_string(), "/dev/vda1".to_string());
    m.insert("/dev/sda".to_string(), "/dev/vda".to_string());
    let t = "/dev/sda1 / ext4\n/dev/sda10 /x ext4\nroot=/dev/sda1 ro\n# /dev/sda\nUUID=x /dev/sdab\n";
    assert_eq!(
        replace_devices(t, &m),
        "/dev/vda1 / ext4\n/dev/sda10 /x ext4\nroot=/dev/vda1 ro\n# /dev/vda\nUUID=x /dev/sdab\n"
    );
}

#[test]
fn a_restore_that_lost_entries_leaves_no_marker_and_reruns() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let mut report = Report::default();
    let runs = std::cell::Cell::new(0);
    let mut lossy = |_: &Path| -> Result<(u64, u64, Vec<String>), RecoveryError> {
        runs.set(runs.get() + 1);
        Ok((10, 100, vec!["etc/passwd: volume vol-0002.tar.zst is missing".to_string()]))
    };
    assert!(!restore_once(root, "/b/1", &mut lossy, &mut report).expect("restore"));
    assert!(!root.join(RESTORE_DONE).exists(), "no marker after a restore that lost entries");
    assert!(!restore_once(root, "/b/1", &mut lossy, &mut report).expect("restore"));
    assert_eq!(runs.get(), 2, "a rerun restores again");
    let mut whole = |_: &Path| -> Result<(u64, u64, Vec<String>), RecoveryError> { Ok((10, 100, Vec::new())) };
    assert!(!restore_once(root, "/b/1", &mut whole, &mut report).expect("restore"));
    assert_eq!(std::fs::read_to_string(root.join(RESTORE_DONE)).expect("marker"), "/b/1\n");
    assert!(restore_once(root, "/b/1", &mut lossy, &mut report).expect("skip"), "a whole restore is not redone");
    // A later lossy restore of another backup removes the marker.
    assert!(!restore_once(root, "/b/2", &mut lossy, &mut report).expect("restore"));
    assert!(!root.join(RESTORE_DONE).exists());
}

fn planned(device: &str, start: u64, size: u64) -> PlannedPartition {
    PlannedPartition { number: 1, device: device.into(), start, size, what: String::new() }
}

#[test]
fn a_table_matches_only_with_every_planned_partition_in_place() {
    let json = br#"{"partitiontable": {"label": "gpt", "partitions": [
        {"node": "/dev/vdb1", "start": 2048, "size": 204800, "type": "x"},
        {"node": "/dev/vdb2", "start": 206848, "size": 4096, "type": "y"}]}}"#;
    let both = [planned("/dev/vdb1", 2048, 204800), planned("/dev/vdb2", 206848, 4096)];
    assert!(table_is(json, &both));
    assert!(!table_is(json, &both[..1]), "an extra partition on the disk");
    assert!(!table_is(json, &[planned("/dev/vdb1", 2048, 204800), planned("/dev/vdb2", 206848, 8192)]));
    assert!(!table_is(b"not json", &both));
    assert!(!table_is(br#"{"partitiontable": {"label": "gpt"}}"#, &both));
}

#[test]
fn identities_compare_in_every_spelling_the_tools_use() {
    let detail = "MD_LEVEL=raid1\nMD_UUID=a1b2c3d4:e5f60718:293a4b5c:6d7e8f90\n";
    assert!(md_uuid_is(detail, "A1B2C3D4-E5F60718-293A4B5C-6D7E8F90"));
    assert!(!md_uuid_is(detail, "a1b2c3d4:e5f60718:293a4b5c:00000000"));
    assert!(pv_is((Some("LVM2_member"), Some("abc-def")), "abcdef"));
    assert!(!pv_is((Some("ext4"), Some("abcdef")), "abcdef"));
    assert!(filesystem_is((Some("ext4"), Some("ABCD")), "ext4", Some("abcd")));
    assert!(!filesystem_is((Some("xfs"), Some("abcd")), "ext4", Some("abcd")));
    assert!(!filesystem_is((Some("ext4"), None), "ext4", None), "a filesystem without a planned UUID is made again");
}

#[test]
fn a_filesystem_that_blkid_finds_with_its_uuid_is_not_made_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let o = options(tmp.path());
    let h = FixtureHost::new().signature("/dev/vdb2", &[("DEVNAME", "/dev/vdb2"), ("TYPE", "ext4"), ("UUID", "u-1")]);
    let r = ScriptedRunner::new();
    let mkfs = |dev: &str| Action::Mkfs {
        device: dev.into(),
        fstype: "ext4".into(),
        uuid: Some("u-1".into()),
        cmd: Cmd::new("mkfs.ext4").args(["-U", "u-1", dev]),
    };
    let mut x = exec(&h, &r, &o);
    let mut restore = no_restore();
    assert!(x.step(&mkfs("/dev/vdb2"), &mut restore, &mut no_images()).expect("step"), "already done");
    assert!(r.planned().is_empty(), "{:?}", r.planned());
    // Another device (blkid finds nothing there): mkfs runs.
    assert!(!x.step(&mkfs("/dev/vdb3"), &mut restore, &mut no_images()).expect("step"));
    assert_eq!(r.planned(), ["mkfs.ext4 -U u-1 /dev/vdb3"]);
}

#[test]
fn volume_groups_and_volumes_that_exist_are_kept() {
    let tmp = tempfile::tempdir().expect("tmp");
    let o = options(tmp.path());
    let h = FixtureHost::new();
    let r = ScriptedRunner::new().answer("vgs --noheadings vg0", "  vg0 1 2 0 wz--n- 1g 0\n");
    let mut x = exec(&h, &r, &o);
    let mut restore = no_restore();
    let vg = |n: &str| Action::Vg { name: n.into(), cmd: Cmd::new("vgcreate").args(["-y", n, "/dev/vdb2"]) };
    assert!(x.step(&vg("vg0"), &mut restore, &mut no_images()).expect("vg0"));
    assert!(!x.step(&vg("vg1"), &mut restore, &mut no_images()).expect("vg1"));
    let lv =
        Action::Lv { name: "vg1/root".into(), size: 1 << 30, cmd: Cmd::new("lvcreate").args(["-n", "root", "vg1"]) };
    assert!(!x.step(&lv, &mut restore, &mut no_images()).expect("lv"));
    // The new LV's device nodes are made without udev.
    assert_eq!(r.planned(), ["vgcreate -y vg1 /dev/vdb2", "lvcreate -n root vg1", "vgmknodes vg1"]);
}

#[test]
fn luks_without_a_key_file_is_refused_naming_the_device() {
    let tmp = tempfile::tempdir().expect("tmp");
    let o = options(tmp.path());
    let h = FixtureHost::new();
    let r = ScriptedRunner::new();
    let mut x = exec(&h, &r, &o);
    let a = Action::Luks {
        device: "/dev/vdb2".into(),
        name: "cryptroot".into(),
        uuid: "u".into(),
        format: Cmd::new("cryptsetup").arg("luksFormat"),
    };
    let e = x.step(&a, &mut no_restore(), &mut no_images()).expect_err("no key");
    assert!(e.to_string().contains("/dev/vdb2: LUKS needs a passphrase"), "{e}");
    assert!(r.planned().is_empty());
}

#[test]
fn device_names_are_fixed_in_the_restored_configuration() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    std::fs::create_dir_all(root.join("etc/default")).expect("etc");
    std::fs::write(root.join("etc/fstab"), "/dev/sda2 / ext4 defaults 0 1\n").expect("fstab");
    std::fs::write(root.join("etc/default/grub"), "GRUB_CMDLINE_LINUX=\"resume=/dev/sda3\"\n").expect("grub");
    let o = options(root);
    let h = FixtureHost::new();
    let r = ScriptedRunner::new();
    let mut x = exec(&h, &r, &o);
    let renames: BTreeMap<String, String> = [("/dev/sda2", "/dev/vdb2"), ("/dev/sda3", "/dev/vdb3")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert!(!x.step(&Action::FixDevices { renames }, &mut no_restore(), &mut no_images()).expect("fix"));
    assert_eq!(std::fs::read_to_string(root.join("etc/fstab")).expect("fstab"), "/dev/vdb2 / ext4 defaults 0 1\n");
    assert!(std::fs::read_to_string(root.join("etc/default/grub")).expect("grub").contains("resume=/dev/vdb3"));
    assert!(!root.join(".autorelabel").exists(), "no SELinux here");
}

#[test]
fn a_system_without_an_initramfs_tool_gets_a_warning() {
    let tmp = tempfile::tempdir().expect("tmp");
    let o = options(tmp.path());
    let h = FixtureHost::new();
    let r = ScriptedRunner::new();
    let mut x = exec(&h, &r, &o);
    let always = Action::Initramfs { only_if_missing_drivers: None, renames: BTreeMap::new(), why: "always".into() };
    assert!(!x.step(&always, &mut no_restore(), &mut no_images()).expect("initramfs"));
    assert_eq!(x.report.warnings.len(), 1);
    assert!(x.report.warnings[0].contains("initramfs was not regenerated"));
    assert!(r.planned().is_empty());
}

#[test]
fn a_partition_table_already_written_is_not_written_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let o = options(tmp.path());
    let h = FixtureHost::new().disk("vdb", DevNum::new(254, 16), 1 << 30).partition(
        "vdb",
        "vdb1",
        1,
        DevNum::new(254, 17),
        100 << 20,
    );
    let json = r#"{"partitiontable": {"partitions": [{"node": "/dev/vdb1", "start": 2048, "size": 204800}]}}"#;
    let r = ScriptedRunner::new().answer("sfdisk --json /dev/vdb", json);
    let mut x = exec(&h, &r, &o);
    let parts = vec![planned("/dev/vdb1", 2048, 204800)];
    let a = Action::Partition {
        disk: "/dev/vdb".into(),
        old: "/dev/sda".into(),
        label: "gpt".into(),
        script: "label: gpt\n".into(),
        partitions: parts,
        sector: 512,
    };
    assert!(x.step(&a, &mut no_restore(), &mut no_images()).expect("partition"), "already done");
    assert!(r.planned().is_empty(), "{:?}", r.planned());
}

#[test]
fn an_open_luks_container_and_a_made_pv_are_already_done() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut o = options(tmp.path());
    o.luks_key_file = Some(tmp.path().join("key"));
    let h = FixtureHost::new()
        .device(lifeboat_host::BlockDevice { name: "dm-0".into(), dev: DevNum::new(253, 0), ..Default::default() })
        .link("/dev/mapper/cryptroot", "dm-0")
        .signature("/dev/vdb3", &[("TYPE", "LVM2_member"), ("UUID", "abcd-ef01")]);
    let r = ScriptedRunner::new();
    let mut x = exec(&h, &r, &o);
    let luks = |name: &str| Action::Luks {
        device: "/dev/vdb2".into(),
        name: name.into(),
        uuid: "u".into(),
        format: Cmd::new("cryptsetup").args(["luksFormat", "--batch-mode"]),
    };
    assert!(x.step(&luks("cryptroot"), &mut no_restore(), &mut no_images()).expect("open"));
    assert!(r.planned().is_empty());
    // Not open and no header: formatted with the key file, then opened.
    assert!(!x.step(&luks("cryptdata"), &mut no_restore(), &mut no_images()).expect("format"));
    let key = tmp.path().join("key").display().to_string();
    assert_eq!(
        r.planned(),
        [
            format!("cryptsetup luksFormat --batch-mode --key-file={key} /dev/vdb2"),
            format!("cryptsetup open --key-file {key} /dev/vdb2 cryptdata"),
        ]
    );
    let pv = Action::Pv { device: "/dev/vdb3".into(), uuid: "abcdef01".into(), cmd: Cmd::new("pvcreate") };
    assert!(x.step(&pv, &mut no_restore(), &mut no_images()).expect("pv"));
}

#[test]
fn a_mount_point_already_mounted_is_kept_and_unmounted_at_the_end() {
    let tmp = tempfile::tempdir().expect("tmp");
    let o = options(tmp.path());
    let home = tmp.path().join("my home");
    let h = FixtureHost::new().mount(DevNum::new(254, 18), "/dev/vdb2", &home.display().to_string(), "ext4");
    let r = ScriptedRunner::new();
    let mut x = exec(&h, &r, &o);
    let mount = |target: &str| Action::Mount {
        device: "/dev/vdb2".into(),
        target: target.into(),
        fstype: "ext4".into(),
        options: None,
    };
    assert!(x.step(&mount("/my home"), &mut no_restore(), &mut no_images()).expect("mounted"));
    assert!(!x.step(&mount("/srv"), &mut no_restore(), &mut no_images()).expect("mount"));
    let srv = tmp.path().join("srv");
    assert!(srv.is_dir(), "the mount point is made");
    assert_eq!(r.planned(), [format!("mount -t ext4 /dev/vdb2 {}", srv.display())]);
    x.unmount_all();
    let planned = r.planned();
    assert_eq!(planned[1], "sync");
    assert_eq!(planned[2], format!("umount {}", srv.display()), "the last mounted first");
    assert_eq!(planned[3], format!("umount '{}'", home.display()));
}

#[test]
fn a_new_table_is_written_shown_to_the_kernel_and_its_partitions_wiped() {
    let tmp = tempfile::tempdir().expect("tmp");
    let o = options(tmp.path());
    // The disk shows another table (sfdisk --json is not scripted: nothing readable).
    let h = FixtureHost::new()
        .disk("vdb", DevNum::new(254, 16), 1 << 30)
        .partition("vdb", "vdb1", 1, DevNum::new(254, 17), 100 << 20)
        .partition("vdb", "vdb2", 2, DevNum::new(254, 18), 100 << 20);
    let r = ScriptedRunner::new();
    let mut x = exec(&h, &r, &o);
    let a = Action::Partition {
        disk: "/dev/vdb".into(),
        old: "/dev/sda".into(),
        label: "gpt".into(),
        script: "label: gpt\n".into(),
        partitions: vec![planned("/dev/vdb1", 2048, 204800), planned("/dev/vdb2", 206848, 204800)],
        sector: 512,
    };
    assert!(!x.step(&a, &mut no_restore(), &mut no_images()).expect("partition"));
    assert_eq!(
        r.planned(),
        [
            "sfdisk --no-reread --no-tell-kernel -q --wipe always --wipe-partitions always /dev/vdb",
            "blockdev --rereadpt /dev/vdb",
            "partx -u /dev/vdb",
            "partx -a /dev/vdb",
            "wipefs -q -a /dev/vdb1",
            "wipefs -q -a /dev/vdb2",
        ]
    );
}

#[test]
fn a_clones_identity_rewrites_the_tree_and_makes_new_ssh_host_keys_through_the_runner() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    std::fs::create_dir_all(root.join("etc/ssh")).expect("mkdir");
    std::fs::write(root.join("etc/hostname"), "web1\n").expect("write");
    std::fs::write(root.join("etc/machine-id"), "0123456789abcdef0123456789abcdef\n").expect("write");
    std::fs::write(root.join("etc/ssh/ssh_host_rsa_key"), "old\n").expect("write");
    let o = options(root);
    let h = FixtureHost::new();
    let r = ScriptedRunner::new();
    let file = crate::identity::CloneFile::parse("hostname = \"web2\"\n").expect("clone file");
    let identity = crate::identity::Identity::resolve(&file, "web1", &[], &[]).expect("resolve");
    let mut x = exec(&h, &r, &o);
    let mut restore = no_restore();
    assert!(!x.step(&Action::Identity { identity }, &mut restore, &mut no_images()).expect("identity"));
    assert_eq!(std::fs::read_to_string(root.join("etc/hostname")).expect("hostname"), "web2\n");
    let id = std::fs::read_to_string(root.join("etc/machine-id")).expect("machine-id");
    assert!(id.trim().len() == 32 && id.trim() != "0123456789abcdef0123456789abcdef", "{id}");
    assert!(!root.join("etc/ssh/ssh_host_rsa_key").exists());
    let keygen =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("ssh-keygen").is_file()));
    if keygen {
        assert_eq!(r.planned(), [format!("ssh-keygen -A -f {}", root.display())]);
    } else {
        assert!(r.planned().is_empty());
        assert!(x.report.warnings.iter().any(|w| w.contains("run `ssh-keygen -A`")), "{:?}", x.report.warnings);
    }
}

#[test]
fn the_drivers_a_disk_needs_are_read_from_sysfs_and_found_in_an_initramfs_listing() {
    use super::boot::{disk_modules, listed_modules};
    use std::os::unix::fs::symlink;
    let t = tempfile::tempdir().expect("tmp");
    let sys = t.path();
    // /sys/devices/pci0000:00/0000:00:04.0/virtio2/block/vda, as a virtio disk shows it.
    let pci = sys.join("devices/pci0000:00/0000:00:04.0");
    let virtio = pci.join("virtio2");
    std::fs::create_dir_all(virtio.join("block/vda")).expect("mkdir");
    for (name, module) in [("virtio_blk", "virtio_blk"), ("virtio-pci", "virtio_pci")] {
        let d = sys.join("bus/x/drivers").join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::create_dir_all(sys.join("module").join(module)).expect("mkdir");
        symlink(sys.join("module").join(module), d.join("module")).expect("link");
    }
    symlink(sys.join("bus/x/drivers/virtio_blk"), virtio.join("driver")).expect("link");
    symlink(sys.join("bus/x/drivers/virtio-pci"), pci.join("driver")).expect("link");
    std::fs::create_dir_all(sys.join("block/vda")).expect("mkdir");
    symlink(&virtio, sys.join("block/vda/device")).expect("link");
    assert_eq!(disk_modules(sys, "/dev/vda"), vec!["virtio_blk".to_string(), "virtio_pci".to_string()]);
    assert!(disk_modules(sys, "/dev/nothere").is_empty());
    // lsinitramfs prints paths; modules.builtin too; compressed modules count.
    let listing = "usr/lib/modules/6.1.0-18-amd64/kernel/drivers/block/virtio_blk.ko\n\
                   usr/lib/modules/6.1.0-18-amd64/kernel/drivers/ata/libahci.ko.zst\n\
                   -rw-r--r-- 1 root root 1234 Jan 1 00:00 usr/lib/modules/6.1.0-18-amd64/kernel/drivers/nvme/host/nvme-core.ko.xz\n\
                   etc/modprobe.d\n";
    let have = listed_modules(listing);
    assert!(have.contains("virtio_blk") && have.contains("libahci") && have.contains("nvme_core"), "{have:?}");
    assert!(!have.contains("modprobe.d"));
}

#[test]
fn renamed_devices_rebuild_the_initramfs_only_when_its_configuration_names_them() {
    use super::boot::initramfs_names_renamed;
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let renames: BTreeMap<String, String> = [("/dev/vda1", "/dev/sda1"), ("/dev/vda2", "/dev/sda2")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    std::fs::create_dir_all(root.join("etc/initramfs-tools/conf.d")).expect("etc");
    std::fs::create_dir_all(root.join("etc/mdadm")).expect("etc");
    // As Debian's installer writes them: UUIDs everywhere, device names only on
    // the kernel command line (grub.cfg, fixed by the fix-up step).
    std::fs::write(root.join("etc/fstab"), "UUID=1234 / ext4 defaults 0 1\n/dev/vda10 /x ext4 defaults 0 2\n")
        .expect("fstab");
    std::fs::write(root.join("etc/initramfs-tools/conf.d/resume"), "RESUME=UUID=5678\n").expect("resume");
    std::fs::write(root.join("etc/initramfs-tools/modules"), "ahci\nnvme\n").expect("modules");
    // A link out of the restored system is not followed, whatever it points at.
    let outside = tmp.path().join("outside");
    std::fs::write(&outside, "ARRAY /dev/md0 devices=/dev/vda2\n").expect("outside");
    std::os::unix::fs::symlink(&outside, root.join("etc/mdadm/mdadm.conf")).expect("link");
    assert_eq!(initramfs_names_renamed(root, &renames), None);
    assert_eq!(initramfs_names_renamed(root, &BTreeMap::new()), None);
    // The resume device by name (after the fix-up, its new name): rebuilt.
    std::fs::write(root.join("etc/initramfs-tools/conf.d/resume"), "RESUME=/dev/sda2\n").expect("resume");
    let why = initramfs_names_renamed(root, &renames).expect("named");
    assert!(why.contains("/etc/initramfs-tools/conf.d/resume names /dev/sda2"), "{why}");
    std::fs::write(root.join("etc/initramfs-tools/conf.d/resume"), "RESUME=none\n").expect("resume");
    // crypttab by its old name (no fix-up ran yet): rebuilt too.
    std::fs::write(root.join("etc/crypttab"), "root_crypt /dev/vda1 none luks\n").expect("crypttab");
    let why = initramfs_names_renamed(root, &renames).expect("named");
    assert!(why.contains("/etc/crypttab names /dev/vda1"), "{why}");
}
