//! Recovery onto other disks without a reboot (`recover --map OLD=NEW`), on
//! loop devices: a GPT disk (ESP, ext4 root, swap, xfs) and an MBR disk
//! (btrfs with subvolumes) are backed up, then recreated and restored onto
//! disks of the same size, larger and smaller ones; the recovered layout
//! must match (UUIDs, labels, parameters, sizes as planned) and the files
//! must be identical. A disk too small for the data is refused before
//! anything is written.

mod common;

use common::tree::{build_tree, differences, snapshot};
use common::{config, root_or_skip, run_lifeboat, sh, LoopDisk};
use lifeboat_layout::Layout;
use std::path::Path;

const MIB: u64 = 1 << 20;
const ROOT_UUID: &str = "3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b01";
const XFS_UUID: &str = "3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b02";
const SWAP_UUID: &str = "3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b03";
const BTRFS_UUID: &str = "3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b04";
const ROOT_PARTUUID: &str = "3C5E7A91-0000-4F3E-8A6C-5D7E9F1A2B11";

/// The source disks; `b` is mounted inside `a`'s filesystem, so it is
/// released first (fields drop in order).
struct Source {
    b: LoopDisk,
    a: LoopDisk,
}

/// Build the two source disks, mount them as a little system below `src`, fill it.
fn build_source(dir: &Path, src: &Path) -> Source {
    let mut a = LoopDisk::new(dir, "src-gpt", 1024 * MIB);
    a.partition(&format!(
        "label: gpt\n\
         start=2048, size=131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"EFI system\"\n\
         start=133120, size=819200, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid={ROOT_PARTUUID}, name=root\n\
         start=952320, size=131072, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=swap\n\
         start=1083392, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=srv"
    ));
    sh(&format!("mkfs.vfat -F 32 -i 5EED0001 -n ESP {} >/dev/null", a.part(1)));
    sh(&format!("mkfs.ext4 -q -F -L root -U {ROOT_UUID} -b 4096 -I 256 {}", a.part(2)));
    sh(&format!("mkswap -L swap0 -U {SWAP_UUID} {} >/dev/null", a.part(3)));
    sh(&format!("mkfs.xfs -q -f -L srv -m uuid={XFS_UUID} -i size=512 {}", a.part(4)));
    let mut b = LoopDisk::new(dir, "src-mbr", 512 * MIB);
    b.partition("label: dos\nlabel-id: 0x5eed0002\nstart=2048, type=83, bootable");
    sh(&format!("mkfs.btrfs -q -f -L pool -U {BTRFS_UUID} {}", b.part(1)));
    let top = dir.join("btrfs-top");
    std::fs::create_dir_all(&top).expect("mkdir");
    sh(&format!(
        "mount {0} {1} && btrfs -q subvolume create {1}/@home && btrfs -q subvolume create {1}/@log && umount {1}",
        b.part(1),
        top.display()
    ));
    a.mount(&a.part(2), src, "");
    a.mount(&a.part(4), &src.join("srv"), "");
    b.mount(&b.part(1), &src.join("home"), "subvol=@home");
    b.mount(&b.part(1), &src.join("logs"), "subvol=@log");
    build_tree(src);
    sh(&format!(
        "set -e; cd {0}; mkdir -p srv/www home/alice logs/app; head -c 5000000 /dev/urandom > srv/www/blob; \
         seq 1 50000 > home/alice/notes; chown -R 1000:1000 home/alice; echo started > logs/app/log",
        src.display()
    ));
    Source { b, a }
}

/// Unmounts everything below a directory however the test ends (before the loop devices go).
struct UnmountAll(std::path::PathBuf);

impl Drop for UnmountAll {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-R").arg(&self.0).output();
    }
}

/// Read a layout file, with mount points below `src` made absolute as on a real system.
fn as_system(path: &Path, src: &Path) -> Layout {
    let text = std::fs::read_to_string(path).expect("layout");
    let s = src.display().to_string();
    let text = text.replace(&format!("\"{s}\""), "\"/\"").replace(&format!("\"{s}/"), "\"/");
    std::fs::write(path, &text).expect("write layout");
    Layout::load(path).expect("parse layout")
}

fn part_sizes(l: &Layout, disk: &str) -> Vec<(String, u64, String, Option<String>)> {
    let d = l.disks.iter().find(|d| d.id == disk).unwrap_or_else(|| panic!("{disk} not in layout"));
    d.table
        .as_ref()
        .expect("table")
        .partitions
        .iter()
        .map(|p| (p.part_type.to_ascii_lowercase(), p.size, p.name.clone().unwrap_or_default(), p.uuid.clone()))
        .collect()
}

#[test]
fn recreate_and_restore_onto_same_larger_and_smaller_disks() {
    if !root_or_skip("recreating disks on loop devices") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let src = dir.join("src");
    let cfg = config(dir, "[recover]\nregenerate_initramfs = false\n[backup]\nvolume_size = \"8M\"\n");
    let cfg = cfg.to_str().expect("utf8");
    let source = build_source(dir, &src);
    let (old_a, old_b) = (source.a.dev.clone(), source.b.dev.clone());
    let layout_file = dir.join("layout.toml");
    let (code, out, err) =
        run_lifeboat(&["--config", cfg, "layout", "save", "-o", layout_file.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}{err}");
    let old = as_system(&layout_file, &src);
    std::fs::create_dir_all(dir.join("backups")).expect("mkdir");
    let bk = format!("file://{}/backups", dir.display());
    let (code, out, err) = run_lifeboat(&[
        "--config",
        cfg,
        "backup",
        "--target",
        &bk,
        "--root",
        src.to_str().expect("utf8"),
        ".",
        "srv",
        "home",
        "logs",
    ]);
    assert_eq!(code, 0, "backup: {out}{err}");
    let before = snapshot(&src);
    let before_srv = snapshot(&src.join("srv"));
    // `recover --yes` of both source disks onto two others.
    let recover_onto = |a: &LoopDisk, b: &LoopDisk| {
        let (ma, mb) = (format!("{old_a}={}", a.dev), format!("{old_b}={}", b.dev));
        let layout = layout_file.to_str().expect("utf8");
        run_lifeboat(&[
            "--config", cfg, "recover", "--layout", layout, "--from", &bk, "--map", &ma, "--map", &mb, "--yes",
        ])
    };
    // A clone onto attached disks while the source is still there and mounted:
    // every identity that would exist twice is named before anything is written.
    {
        let ta = LoopDisk::new(dir, "clone-a", 1024 * MIB);
        let tb = LoopDisk::new(dir, "clone-b", 512 * MIB);
        let (code, out, err) = recover_onto(&ta, &tb);
        assert_eq!(code, 2, "a clone next to its source must be refused: {out}{err}");
        for (uuid, fs) in [(ROOT_UUID, "ext4"), (XFS_UUID, "xfs"), (BTRFS_UUID, "btrfs"), (SWAP_UUID, "swap")] {
            assert!(err.contains(uuid), "{fs} UUID {uuid} named: {err}");
        }
        assert!(err.contains(&source.b.part(1)) && err.contains("Nothing was written"), "{err}");
        for t in [&ta, &tb] {
            let head = sh(&format!("head -c 1048576 {} | tr -d '\\0' | wc -c", t.dev));
            assert_eq!(head.trim(), "0", "{}: the first MiB must still be zero", t.dev);
        }
    }
    // The originals go away, as on a dead machine (and so that no second
    // filesystem with the same UUID is around).
    drop(source);

    // Too small: refused before anything is written.
    {
        let t = LoopDisk::new(dir, "tiny", 200 * MIB);
        let t2 = LoopDisk::new(dir, "tiny2", 512 * MIB);
        let (code, out, err) = recover_onto(&t, &t2);
        assert_eq!(code, 2, "a too small disk must be refused: {out}{err}");
        assert!(err.contains("cannot be recreated") && err.contains(&old_a), "{err}");
        assert!(sh(&format!("blkid -p -o export {} || true", t.dev)).trim().is_empty(), "nothing may be written");
    }

    // mkcdrec's restore-fs: one filesystem onto an existing directory, without the others.
    {
        let to = dir.join("srv-only");
        let restore_fs = |mp: &str, to: &Path| {
            let to = to.to_str().expect("utf8");
            run_lifeboat(&["--config", cfg, "restore", "--from", &bk, "--filesystem", mp, "--to", to])
        };
        let (code, out, err) = restore_fs("/srv", &to);
        assert_eq!(code, 0, "{out}{err}");
        let diffs = differences(&before_srv, &snapshot(&to));
        assert!(diffs.is_empty(), "/srv restored alone differs:\n{}", diffs.join("\n"));
        // The root filesystem alone: the mount points of the others, not what they held.
        let root_only = dir.join("root-only");
        let (code, out, err) = restore_fs("/", &root_only);
        assert_eq!(code, 0, "{out}{err}");
        assert!(root_only.join("etc/passwd").is_file() && root_only.join("srv").is_dir());
        assert!(!root_only.join("srv/www").exists() && !root_only.join("home/alice").exists());
        let (code, _, err) = restore_fs("/var", &to);
        assert_eq!(code, 2);
        assert!(err.contains("no filesystem backed up from /var") && err.contains("/srv"), "{err}");
    }

    for (name, size_a, size_b) in
        [("same", 1024 * MIB, 512 * MIB), ("larger", 1536 * MIB, 768 * MIB), ("smaller", 640 * MIB, 384 * MIB)]
    {
        let ta = LoopDisk::new(dir, &format!("{name}-a"), size_a);
        let tb = LoopDisk::new(dir, &format!("{name}-b"), size_b);
        let root = dir.join(format!("root-{name}"));
        let _unmount = UnmountAll(root.clone());
        let maps = [format!("{old_a}={}", ta.dev), format!("{old_b}={}", tb.dev)];
        let base = [
            "--config",
            cfg,
            "recover",
            "--layout",
            layout_file.to_str().expect("utf8"),
            "--from",
            &bk,
            "--map",
            &maps[0],
            "--map",
            &maps[1],
            "--root",
            root.to_str().expect("utf8"),
        ];
        // The plan first: it names every disk and writes nothing.
        let (code, out, err) = run_lifeboat(&[&base[..], &["--plan"]].concat());
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains(&format!("{old_a} -> {}", ta.dev)) && out.contains("WILL BE ERASED"), "{out}");
        assert!(out.contains(&format!("xfs on {}p4, UUID {XFS_UUID}", ta.dev)), "{out}");
        assert!(sh(&format!("blkid -p -o export {} || true", ta.dev)).trim().is_empty(), "--plan wrote to the disk");

        let (code, out, err) = run_lifeboat(&[&base[..], &["--yes", "--keep-mounted"]].concat());
        assert_eq!(code, 0, "recover onto {name} disks: {out}{err}");
        let after = snapshot(&root);
        let diffs: Vec<String> = differences(&before, &after)
            .into_iter()
            // Sockets are not archived (by design); recovery adds its log under /var/log/lifeboat.
            .filter(|d| !(d.starts_with("extra: var") || d == "missing: data/socket"))
            .collect();
        assert!(diffs.is_empty(), "{name}: the recovered tree differs:\n{}", diffs.join("\n"));
        assert!(
            std::fs::read_dir(root.join("var/log/lifeboat")).expect("recovery log").count() >= 2,
            "the recovery log is written into the restored system"
        );

        // The recovered layout: same UUIDs, labels, types and parameters; sizes as planned.
        let new_file = dir.join(format!("layout-{name}.toml"));
        let (code, out, err) =
            run_lifeboat(&["--config", cfg, "layout", "save", "-o", new_file.to_str().expect("utf8")]);
        assert_eq!(code, 0, "{out}{err}");
        let new = as_system(&new_file, &root);
        for f in &old.filesystems {
            let n = new
                .filesystems
                .iter()
                .find(|n| n.uuid == f.uuid && n.fstype == f.fstype)
                .unwrap_or_else(|| panic!("{name}: no {} with UUID {:?} after recovery", f.fstype, f.uuid));
            assert_eq!(n.label, f.label, "{name}: label of {}", f.device);
            assert_eq!(n.params.block_size, f.params.block_size, "{name}: block size of {}", f.device);
            assert_eq!(n.params.inode_size, f.params.inode_size, "{name}: inode size of {}", f.device);
            let feats = |v: &Vec<String>| {
                let mut v: Vec<String> = v.iter().filter(|x| *x != "needs_recovery").cloned().collect();
                v.sort();
                v
            };
            assert_eq!(feats(&n.params.features), feats(&f.params.features), "{name}: features of {}", f.device);
            let mut subs_old: Vec<&str> = f.subvolumes.iter().map(|s| s.path.as_str()).collect();
            let mut subs_new: Vec<&str> = n.subvolumes.iter().map(|s| s.path.as_str()).collect();
            subs_old.sort();
            subs_new.sort();
            assert_eq!(subs_new, subs_old, "{name}: btrfs subvolumes");
        }
        let sw = new.swaps.iter().find(|s| s.uuid.as_deref() == Some(SWAP_UUID));
        assert!(sw.is_some_and(|s| s.label.as_deref() == Some("swap0")), "{name}: swap UUID and label");
        let (po, pn) = (part_sizes(&old, &old_a), part_sizes(&new, &ta.dev));
        assert_eq!(po.len(), pn.len());
        for (o, n) in po.iter().zip(&pn) {
            assert_eq!((&o.0, &o.2, &o.3), (&n.0, &n.2, &n.3), "{name}: partition type, name and PARTUUID kept");
        }
        match name {
            "same" => assert_eq!(po, pn, "same size: every partition exactly as before"),
            "larger" => {
                assert_eq!((pn[0].1, pn[2].1), (po[0].1, po[2].1), "ESP and swap keep their size");
                assert!(pn[1].1 > po[1].1 && pn[3].1 > po[3].1, "root and srv grow: {pn:?}");
            }
            _ => {
                assert_eq!((pn[0].1, pn[2].1), (po[0].1, po[2].1), "ESP and swap keep their size");
                assert!(pn[1].1 < po[1].1 && pn[3].1 < po[3].1, "root and srv shrink: {pn:?}");
            }
        }
        for p in new
            .disks
            .iter()
            .filter(|d| d.id == ta.dev || d.id == tb.dev)
            .flat_map(|d| &d.table)
            .flat_map(|t| &t.partitions)
        {
            assert_eq!(p.start % 2048, 0, "{name}: {} aligned to 1 MiB", p.id);
        }
    }
}
