//! Layout capture of real storage stacks built on loop devices on this host:
//! GPT and MBR; ext4, xfs, btrfs with subvolumes, vfat, swap. Every UUID,
//! label, size and dependency in the saved file is checked against what the
//! test created; then a change must show in `layout diff`.

mod common;

use common::{config, root_or_skip, run_lifeboat, sh, LoopDisk};
use lifeboat_layout::model::DiskKind;
use lifeboat_layout::Layout;
use std::path::Path;

const MIB: u64 = 1 << 20;
const GPT_GUID: &str = "3C2F1A9E-5B7D-4E61-9A0B-2D8C7F4E1A55";
const ESP_PARTUUID: &str = "A1B2C3D4-0001-4E61-9A0B-2D8C7F4E1A55";
const ROOT_PARTUUID: &str = "A1B2C3D4-0002-4E61-9A0B-2D8C7F4E1A55";
const EXT4_UUID: &str = "6d3a0c1e-9f4b-4a57-8c2d-1e5f7a9b3c11";
const XFS_UUID: &str = "0b9e2f4a-7c1d-4e38-a6b5-9d2c8e1f4a22";
const SWAP_UUID: &str = "5e8c1a3f-2b7d-4f69-b0a4-7c3e9d1f2b33";
const BTRFS_UUID: &str = "9f1d3b5a-4c2e-4a7b-8d6f-1b3d5f7a9c44";

fn build_stack(dir: &Path) -> (LoopDisk, LoopDisk) {
    let mut a = LoopDisk::new(dir, "gpt", 700 * MIB);
    a.partition(&format!(
        "label: gpt\nlabel-id: {GPT_GUID}\n\
         start=2048, size=204800, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid={ESP_PARTUUID}, name=\"EFI system\"\n\
         start=206848, size=409600, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid={ROOT_PARTUUID}, name=root, attrs=LegacyBIOSBootable\n\
         start=616448, size=131072, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=swap\n\
         start=747520, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=data"
    ));
    sh(&format!("mkfs.vfat -F 32 -i 1234ABCD -n ESP {} >/dev/null", a.part(1)));
    sh(&format!("mkfs.ext4 -q -F -L root -U {EXT4_UUID} -b 4096 -I 256 -O ^metadata_csum_seed {}", a.part(2)));
    sh(&format!("mkswap -L swap0 -U {SWAP_UUID} {} >/dev/null", a.part(3)));
    sh(&format!("mkfs.xfs -q -f -L data -m uuid={XFS_UUID} -i size=512 {}", a.part(4)));
    a.mount(&a.part(2), &dir.join("mnt-root"), "");

    let mut b = LoopDisk::new(dir, "mbr", 400 * MIB);
    b.partition("label: dos\nlabel-id: 0x5eed1234\nstart=2048, size=614400, type=83, bootable\nstart=616448, type=83");
    sh(&format!("mkfs.btrfs -q -f -L pool -U {BTRFS_UUID} -m dup -d single {}", b.part(1)));
    let top = dir.join("mnt-btrfs");
    b.mount(&b.part(1), &top, "");
    sh(&format!(
        "btrfs -q subvolume create {0}/@ && btrfs -q subvolume create {0}/@home && \
         btrfs -q subvolume snapshot -r {0}/@ {0}/@snap && \
         btrfs subvolume set-default $(btrfs subvolume list {0} | awk '$NF==\"@\"{{print $2}}') {0}",
        top.display()
    ));
    (a, b)
}

#[test]
fn gpt_and_mbr_stacks_are_captured_exactly_and_changes_show_in_diff() {
    if !root_or_skip("building loop devices") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let (a, b) = build_stack(dir);
    let cfg = config(dir, "[layout]\ninclude_virtual = true\n");
    let cfg = cfg.to_str().expect("utf8");
    let file = dir.join("saved.toml");
    let (code, out, err) = run_lifeboat(&["--config", cfg, "layout", "save", "--output", file.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}\n{err}");
    let l = Layout::load(&file).expect("the saved file loads");

    // Disk A: GPT, exact sectors, GUIDs, names, attributes.
    let da = l.disks.iter().find(|d| d.id == a.dev).expect("disk A recorded");
    assert_eq!(da.kind, DiskKind::Loop);
    assert_eq!(da.excluded, None, "include_virtual = true recovers loop devices");
    assert_eq!(da.size, 700 * MIB);
    assert_eq!(da.logical_sector_size, 512);
    assert_eq!(da.backing_file.as_deref(), a.image().to_str());
    let t = da.table.as_ref().expect("GPT read");
    assert_eq!(t.label, "gpt");
    assert_eq!(t.id.as_deref(), Some(GPT_GUID));
    let starts: Vec<(u64, u64)> = t.partitions.iter().map(|p| (p.start, p.size)).collect();
    assert_eq!(starts[..3], [(2048, 204800), (206848, 409600), (616448, 131072)]);
    assert_eq!(t.partitions[3].start, 747520);
    assert_eq!(t.partitions[0].uuid.as_deref(), Some(ESP_PARTUUID));
    assert_eq!(t.partitions[0].name.as_deref(), Some("EFI system"));
    assert_eq!(t.partitions[0].type_name.as_deref(), Some("EFI System"));
    assert_eq!(t.partitions[1].uuid.as_deref(), Some(ROOT_PARTUUID));
    assert_eq!(t.partitions[1].attrs.as_deref(), Some("LegacyBIOSBootable"));
    assert_eq!(t.partitions[2].part_type, "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F");

    // Disk B: MBR with signature and boot flag.
    let db = l.disks.iter().find(|d| d.id == b.dev).expect("disk B recorded");
    let tb = db.table.as_ref().expect("MBR read");
    assert_eq!((tb.label.as_str(), tb.id.as_deref()), ("dos", Some("0x5eed1234")));
    assert!(tb.partitions[0].bootable && !tb.partitions[1].bootable);
    assert_eq!(tb.partitions[0].part_type, "83");

    // Filesystems with their identities and creation parameters.
    let vfat = l.filesystem_on(&a.part(1)).expect("vfat");
    assert_eq!(
        (vfat.fstype.as_str(), vfat.uuid.as_deref(), vfat.label.as_deref()),
        ("vfat", Some("1234-ABCD"), Some("ESP"))
    );
    assert_eq!(vfat.params.fat_bits, Some(32));
    assert_eq!(vfat.params.sector_size, Some(512));
    let ext4 = l.filesystem_on(&a.part(2)).expect("ext4");
    assert_eq!((ext4.uuid.as_deref(), ext4.label.as_deref()), (Some(EXT4_UUID), Some("root")));
    assert_eq!((ext4.params.block_size, ext4.params.inode_size), (Some(4096), Some(256)));
    assert_eq!(ext4.params.block_count, Some(409600 * 512 / 4096));
    for f in ["has_journal", "extent", "64bit", "metadata_csum"] {
        assert!(ext4.params.features.iter().any(|x| x == f), "ext4 feature {f}: {:?}", ext4.params.features);
    }
    assert_eq!(ext4.mountpoints, vec![dir.join("mnt-root").display().to_string()]);
    assert!(ext4.used.is_some_and(|u| u > 0) && ext4.size.is_some());
    let xfs = l.filesystem_on(&a.part(4)).expect("xfs");
    assert_eq!((xfs.uuid.as_deref(), xfs.label.as_deref()), (Some(XFS_UUID), Some("data")));
    assert_eq!((xfs.params.block_size, xfs.params.inode_size), (Some(4096), Some(512)));
    assert!(xfs.params.ag_count.is_some_and(|n| n >= 1));
    assert!(xfs.params.features.contains(&"crc=1".to_string()), "{:?}", xfs.params.features);
    let sw = l.swaps.iter().find(|s| s.device == a.part(3)).expect("swap");
    assert_eq!((sw.uuid.as_deref(), sw.label.as_deref()), (Some(SWAP_UUID), Some("swap0")));
    assert_eq!(sw.size, 131072 * 512);
    let bt = l.filesystem_on(&b.part(1)).expect("btrfs");
    assert_eq!((bt.uuid.as_deref(), bt.label.as_deref()), (Some(BTRFS_UUID), Some("pool")));
    assert_eq!(bt.params.data_profile.as_deref(), Some("single"));
    assert_eq!(bt.params.metadata_profile.as_deref(), Some("dup"));
    assert_eq!(bt.params.node_size, Some(16384));
    let names: Vec<&str> = bt.subvolumes.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(names, vec!["@", "@home", "@snap"]);
    let at = bt.subvolumes.iter().find(|s| s.path == "@").expect("@");
    assert_eq!(bt.default_subvolume, Some(at.id), "default subvolume is @");
    assert!(bt.subvolumes.iter().find(|s| s.path == "@snap").is_some_and(|s| s.read_only));

    // Dependencies: filesystem → partition → disk, and recreation order follows them.
    let deps = l.dependencies();
    assert_eq!(deps[&format!("fs:{}", a.part(2))], vec![a.part(2)]);
    assert_eq!(deps[&a.part(2)], vec![a.dev.clone()]);
    let order: Vec<String> =
        lifeboat_recovery::plan::recreation_order(&l).expect("no cycle").iter().map(ToString::to_string).collect();
    let pos = |id: &str| order.iter().position(|x| x == id).unwrap_or_else(|| panic!("{id} not in {order:?}"));
    assert!(pos(&a.dev) < pos(&a.part(2)) && pos(&a.part(2)) < pos(&format!("fs:{}", a.part(2))));

    // The tree view shows the stack.
    let (code, shown, _) = run_lifeboat(&["--config", cfg, "layout", "show", file.to_str().expect("utf8")]);
    assert_eq!(code, 0);
    assert!(shown.contains(&format!("{}  partition 200.0 MiB  Linux filesystem  \"root\"", a.part(2))), "{shown}");
    assert!(
        shown.contains(&format!("ext4  LABEL=root  UUID={EXT4_UUID}  on {}", dir.join("mnt-root").display())),
        "{shown}"
    );

    // Nothing changed yet; then one label and one partition change.
    let (code, out, err) = run_lifeboat(&["--config", cfg, "layout", "diff", file.to_str().expect("utf8")]);
    assert_eq!(code, 0, "an unchanged system must not differ:\n{out}\n{err}");
    sh(&format!("e2label {} newroot", a.part(2)));
    sh(&format!(
        "echo 'start=747520, size=409600' | sfdisk --quiet --force --no-reread -N 4 {} && partx -u {}",
        a.dev, a.dev
    ));
    let (code, out, _) = run_lifeboat(&["--config", cfg, "layout", "diff", file.to_str().expect("utf8")]);
    assert_eq!(code, 1, "a changed system differs:\n{out}");
    assert!(out.contains(&format!("filesystem[{}].label: root -> newroot", a.part(2))), "{out}");
    assert!(out.contains(&format!("partition[{}].size", a.part(4))), "{out}");

    // Without include_virtual, loop devices are recorded but excluded.
    let plain_dir = dir.join("plain");
    std::fs::create_dir_all(&plain_dir).expect("mkdir");
    let plain = config(&plain_dir, "");
    let plain_file = dir.join("plain.toml");
    let (code, _, err) = run_lifeboat(&[
        "--config",
        plain.to_str().expect("utf8"),
        "layout",
        "save",
        "-o",
        plain_file.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let l2 = Layout::load(&plain_file).expect("load");
    let d = l2.disks.iter().find(|d| d.id == a.dev).expect("still recorded");
    assert!(
        d.excluded.as_deref().is_some_and(|w| w.contains("loop device") && w.contains("include_virtual")),
        "{:?}",
        d.excluded
    );
    assert!(d.table.is_some(), "recorded in full");
}

#[test]
fn bad_layout_files_give_one_clear_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = config(tmp.path(), "");
    let cfg = cfg.to_str().expect("utf8");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "format_version = 1\n[meta]\nhostname = \"x\"\ncaptured_at = 5\n").expect("w");
    let (code, out, err) = run_lifeboat(&["--config", cfg, "layout", "show", bad.to_str().expect("utf8")]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("bad.toml") && err.contains("line 4") && err.contains("layout-format.md"), "{err}");
    assert!(out.is_empty());

    std::fs::write(&bad, "format_version = 99\n").expect("w");
    let (code, _, err) = run_lifeboat(&["--config", cfg, "layout", "diff", bad.to_str().expect("utf8")]);
    assert_eq!(code, 2);
    assert!(err.contains("format_version 99") && err.contains("reads version 1"), "{err}");

    std::fs::write(&bad, "[meta]\nhostname = \"x\"\n").expect("w");
    let (code, _, err) = run_lifeboat(&["--config", cfg, "layout", "show", bad.to_str().expect("utf8")]);
    assert_eq!(code, 2);
    assert!(err.contains("missing `format_version`"), "{err}");

    let (code, _, err) = run_lifeboat(&["--config", cfg, "layout", "show", "/nonexistent/layout.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/layout.toml") && err.contains("No such file"), "{err}");
}

#[test]
fn bad_config_names_key_and_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[backup]\nlevel = 3\nvolume_sise = \"cd\"\n").expect("w");
    let (code, out, err) = run_lifeboat(&["--config", cfg.to_str().expect("utf8"), "check"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("volume_sise") && err.contains("line 3") && err.contains("c.toml"), "{err}");
    let (code, _, err) = run_lifeboat(&["--config", "/nonexistent.toml", "check"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.toml"), "{err}");
}

#[test]
fn check_names_a_missing_tool_and_its_package_and_fails() {
    if !root_or_skip("the preflight's root checks") {
        return;
    }
    // A PATH that has every program of this machine except mkfs.ext4
    // (needed: the root filesystem here is ext4).
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = tmp.path().join("sbin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    for d in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"] {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let name = e.file_name();
            if name != "mkfs.ext4" && !bin.join(&name).exists() {
                let _ = std::os::unix::fs::symlink(e.path(), bin.join(&name));
            }
        }
    }
    let cfg = config(tmp.path(), "");
    let out = common::lifeboat()
        .args(["--config", cfg.to_str().expect("utf8"), "check", "--json"])
        .env("PATH", &bin)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["ok"], false);
    let c = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "Program mkfs.ext4")
        .expect("mkfs.ext4 line");
    assert_eq!(c["status"], "failed");
    assert!(
        c["fix"]
            .as_str()
            .is_some_and(|f| f.contains("apt-get install e2fsprogs") && f.contains("dnf install e2fsprogs")),
        "{c}"
    );
    let root = v["checks"].as_array().expect("checks").iter().find(|c| c["name"] == "Running as root").expect("root");
    assert_eq!(root["status"], "passed");
}
