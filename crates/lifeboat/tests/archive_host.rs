//! The backup archive on a tree that holds every kind of entry, built here
//! as root: GNU tar alone must restore the same tree from the volumes.

mod common;

use common::tree::{build_tree, differences, snapshot};
use common::{config, root_or_skip, run_lifeboat, sh};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[test]
fn gnu_tar_alone_restores_the_same_tree_from_the_volumes() {
    let Some(Fixture { tmp, tree, target, before, cfg }) = Fixture::new() else { return };
    let (b, out) = backup_with_output(&cfg, &tree, &target, &["--volume-size", "1M", "."]);
    assert!(out.contains("1 sockets skipped"), "{out}");
    let backups: Vec<PathBuf> =
        std::fs::read_dir(target.join(common::hostname())).expect("host dir").flatten().map(|e| e.path()).collect();
    assert_eq!(backups, vec![b.clone()], "one published backup, no staging left");
    let b = &b;
    let mut vols: Vec<PathBuf> = std::fs::read_dir(b)
        .expect("backup")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.zst"))
        .collect();
    vols.sort();
    assert!(vols.len() >= 3, "split into volumes of at most 1 MiB: {vols:?}");
    for f in std::fs::read_dir(b).expect("backup").flatten() {
        let m = f.metadata().expect("meta");
        assert_eq!(m.mode() & 0o777, 0o600, "{} readable by root only", f.path().display());
        if f.path().to_string_lossy().ends_with(".tar.zst") {
            assert!(m.len() <= 1 << 20, "{} is larger than a volume", f.path().display());
        }
    }
    assert_eq!(std::fs::metadata(target.join(common::hostname())).expect("dir").mode() & 0o777, 0o700);

    // The one-line restore documented in docs/archive-format.md.
    let restored = tmp.path().join("restored");
    std::fs::create_dir_all(&restored).expect("mkdir");
    sh(&format!(
        "cd {} && cat vol-*.tar.zst | zstd -dc | tar -x --xattrs --xattrs-include='*' --numeric-owner -p -f - -C {}",
        b.display(),
        restored.display()
    ));
    let after = snapshot(&restored);
    let diff = differences(&before, &after);
    assert!(diff.is_empty(), "GNU tar's restore differs from the original:\n{}", diff.join("\n"));

    // The manifest lists every entry with its hash.
    let manifest = std::fs::read_to_string(b.join("manifest.jsonl")).expect("manifest");
    assert_eq!(manifest.lines().count(), before.len());
    let random = manifest.lines().find(|l| l.contains("\"data/random.bin\"")).expect("entry");
    let expected = blake3::hash(&std::fs::read(tree.join("data/random.bin")).expect("read")).to_hex().to_string();
    assert!(random.contains(&expected) && random.contains("\"user.note\""), "{random}");
    assert!(manifest.contains("bad\\\\xff\\\\xfename"), "non-UTF-8 names are kept, escaped");
}

#[test]
fn the_tree_really_holds_what_the_archive_must_keep() {
    // Guards the round-trip test: the snapshot must see ACLs, capabilities,
    // ns times, devices and hard links, or an equal comparison proves nothing.
    if !root_or_skip("owners, devices and capabilities") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    build_tree(tmp.path());
    let s = snapshot(tmp.path());
    let get = |p: &str| s.get(p.as_bytes()).cloned().unwrap_or_default();
    assert!(get("data/counting.txt").contains("xattr:system.posix_acl_access="), "{}", get("data/counting.txt"));
    assert!(get("data/counting.txt").contains("links=3"));
    assert!(get("data/deep").contains("xattr:system.posix_acl_default="));
    assert!(get("bin/pinger").contains("xattr:security.capability="));
    assert!(get("bin/suid").contains("mode=104755"));
    assert!(get("sticky").contains("mode=41777"));
    assert!(
        get("data/random.bin").contains("uid=1234 gid=5678")
            && get("data/random.bin").contains("mtime=981173106.123456789")
    );
    assert!(get("data/loopdev").contains("rdev=7c8"));
    assert!(get("data/sparse.img").contains(" sparse") && get("data/sparse-tail").contains(" sparse"), "sparse files");
    assert!(s.keys().any(|k| k.contains(&0xff)), "a name that is not UTF-8");
    assert!(s.keys().any(|k| k.contains(&b'\n')), "a name with a newline");
}

/// A tree with every kind of entry, its snapshot (the socket left out: it
/// is not archived), an empty target and a config, in a temporary directory.
struct Fixture {
    tmp: tempfile::TempDir,
    tree: PathBuf,
    target: PathBuf,
    before: BTreeMap<Vec<u8>, String>,
    cfg: PathBuf,
}

impl Fixture {
    fn new() -> Option<Fixture> {
        if !root_or_skip("owners, devices and capabilities") {
            return None;
        }
        let tmp = tempfile::tempdir().expect("tmp");
        let (tree, target) = (tmp.path().join("tree"), tmp.path().join("target"));
        std::fs::create_dir_all(&tree).expect("mkdir");
        std::fs::create_dir_all(&target).expect("mkdir");
        build_tree(&tree);
        let mut before = snapshot(&tree);
        before.remove(b"data/socket".as_slice());
        let cfg = config(tmp.path(), "");
        Some(Fixture { tmp, tree, target, before, cfg })
    }
}

/// Back up `tree` into `target` with volumes of `vol`; return the backup directory.
fn backup(cfg: &Path, tree: &Path, target: &Path, vol: &str) -> PathBuf {
    backup_with_output(cfg, tree, target, &["--volume-size", vol, "."]).0
}

/// Run `lifeboat backup` of `tree` into `target` with more arguments (volume
/// size, paths); return the newest backup directory and what was printed.
fn backup_with_output(cfg: &Path, tree: &Path, target: &Path, args: &[&str]) -> (PathBuf, String) {
    let target_url = url(target);
    let base = ["--config", cfg.to_str().expect("utf8"), "backup", "--target", &target_url, "--root"];
    let (code, out, err) = run_lifeboat(&[&base[..], &[tree.to_str().expect("utf8")], args].concat());
    assert_eq!(code, 0, "{out}\n{err}");
    let mut all: Vec<PathBuf> =
        std::fs::read_dir(target.join(common::hostname())).expect("dir").flatten().map(|e| e.path()).collect();
    all.sort();
    (all.pop().expect("a backup"), out)
}

fn url(p: &Path) -> String {
    format!("file://{}", p.display())
}

#[test]
fn lifeboat_restores_the_same_tree_and_chosen_paths() {
    let Some(Fixture { tmp, tree, target, before, cfg }) = Fixture::new() else { return };
    let b = backup(&cfg, &tree, &target, "1M");
    let c = cfg.to_str().expect("utf8");

    let (code, out, _) = run_lifeboat(&["--config", c, "verify", "--from", &url(&b)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");

    let to = tmp.path().join("restored");
    let (code, out, err) =
        run_lifeboat(&["--config", c, "restore", "--from", &url(&target), "--to", to.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}\n{err}");
    let diff = differences(&before, &snapshot(&to));
    assert!(diff.is_empty(), "lifeboat's restore differs from the original:\n{}", diff.join("\n"));

    let part = tmp.path().join("part");
    let (code, out, _) = run_lifeboat(&[
        "--config",
        c,
        "restore",
        "--from",
        &url(&b),
        "--to",
        part.to_str().expect("utf8"),
        "etc",
        "bin/suid",
    ]);
    assert_eq!(code, 0, "{out}");
    let got: Vec<String> = snapshot(&part).keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    assert_eq!(
        got,
        vec!["", "bin", "bin/suid", "etc", "etc/passwd", "etc/ssl", "etc/ssl/private", "etc/ssl/private/key.pem"]
    );
    assert_eq!(snapshot(&part)[b"bin/suid".as_slice()], before[b"bin/suid".as_slice()]);
}

#[test]
fn a_missing_or_damaged_volume_loses_only_what_is_in_it() {
    let Some(Fixture { tmp, tree, target, before, cfg }) = Fixture::new() else { return };
    let c = cfg.to_str().expect("utf8");
    let b = backup(&cfg, &tree, &target, "256K");
    let vols: Vec<PathBuf> = (1..).map(|n| b.join(format!("vol-{n:04}.tar.zst"))).take_while(|p| p.exists()).collect();
    assert!(vols.len() >= 8, "{} volumes", vols.len());

    // One byte flipped in the middle of a volume: verify names it.
    let flipped = &vols[vols.len() / 2];
    let mut bytes = std::fs::read(flipped).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(flipped, &bytes).expect("write");
    let (code, out, _) = run_lifeboat(&["--config", c, "verify", "--from", &url(&b)]);
    assert_eq!(code, 1, "{out}");
    let name = flipped.file_name().expect("name").to_string_lossy().into_owned();
    assert!(out.contains(&format!("DAMAGED volume {name}")), "{out}");
    assert!(out.contains("UNREADABLE data/random.bin") || out.contains("UNREADABLE data/counting.txt"), "{out}");

    // A volume missing: restore goes on, names what it lost, restores the rest identically.
    std::fs::remove_file(&vols[1]).expect("rm");
    let to = tmp.path().join("restored");
    let (code, out, _) =
        run_lifeboat(&["--config", c, "restore", "--from", &url(&b), "--to", to.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{out}");
    let lost: Vec<&str> = out.lines().filter_map(|l| l.trim().strip_prefix("NOT RESTORED ")).collect();
    assert!(!lost.is_empty(), "{out}");
    let after = snapshot(&to);
    let mut intact = 0;
    for (k, v) in &before {
        let p = String::from_utf8_lossy(k).into_owned();
        let shown = if p.is_empty() { ".".to_string() } else { p.clone() };
        if !lost.iter().any(|l| l.starts_with(&format!("{shown}:"))) {
            // Everything not reported lost is restored identically.
            assert_eq!(after.get(k), Some(v), "{p} was not reported lost but differs");
            intact += 1;
        }
    }
    assert!(intact > 10, "most of the tree survives one lost volume ({intact} entries)");
}

#[test]
fn an_interrupted_backup_leaves_the_previous_one_intact() {
    if !root_or_skip("a backup of a tree") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (tree, target) = (tmp.path().join("tree"), tmp.path().join("target"));
    std::fs::create_dir_all(&tree).expect("mkdir");
    std::fs::create_dir_all(&target).expect("mkdir");
    sh(&format!("head -c 1000000 /dev/urandom > {}/small", tree.display()));
    let cfg = config(tmp.path(), "");
    let first = backup(&cfg, &tree, &target, "dvd");
    sh(&format!("head -c 400000000 /dev/urandom > {}/big", tree.display()));
    let mut child = common::lifeboat()
        .args(["--config", cfg.to_str().expect("utf8"), "backup", "--target", &url(&target), "--root"])
        .arg(&tree)
        .arg(".")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Kill it as soon as it has written its first volume, well before it ends.
    let host = first.parent().expect("host dir");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let writing = std::fs::read_dir(host).expect("dir").flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".partial") && e.path().join("vol-0001.tar.zst").exists()
        });
        if writing || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().expect("kill");
    let _ = child.wait();
    let names: Vec<String> =
        std::fs::read_dir(host).expect("dir").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n.ends_with(".partial")), "the second backup was interrupted mid-way: {names:?}");
    // The killed run's host lock (`.lock`) stays behind until the next run takes it over.
    assert_eq!(
        names.iter().filter(|n| !n.ends_with(".partial") && !n.starts_with('.')).count(),
        1,
        "no second complete-looking backup: {names:?}"
    );
    let (code, out, _) = run_lifeboat(&["--config", cfg.to_str().expect("utf8"), "verify", "--from", &url(&target)]);
    assert_eq!(code, 0, "the newest complete backup is still the first, and intact: {out}");
    assert!(out.contains(&first.display().to_string()), "{out}");
    // list shows the complete backup only; info describes it.
    let (code, out, _) =
        run_lifeboat(&["--config", cfg.to_str().expect("utf8"), "backup", "list", "--target", &url(&target)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&first.display().to_string()) && out.contains("1 backup(s)") && !out.contains(".partial"),
        "{out}"
    );
    let (code, out, _) =
        run_lifeboat(&["--config", cfg.to_str().expect("utf8"), "backup", "info", "--from", &url(&first)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 entries, 1 files") && out.contains("vol-0001.tar.zst"), "{out}");
}

#[test]
fn compare_finds_a_changed_byte_a_changed_mode_an_added_and_a_removed_file() {
    if !root_or_skip("owners, devices and capabilities") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (tree, target) = (tmp.path().join("tree"), tmp.path().join("target"));
    std::fs::create_dir_all(&tree).expect("mkdir");
    std::fs::create_dir_all(&target).expect("mkdir");
    build_tree(&tree);
    let cfg = config(tmp.path(), "");
    let c = cfg.to_str().expect("utf8");
    let b = backup(&cfg, &tree, &target, "dvd");
    let cmp = |args: &[&str]| {
        run_lifeboat(
            &[&["--config", c, "compare", "--from", &url(&b), "--root", tree.to_str().expect("utf8")], args].concat(),
        )
    };
    let (code, out, err) = cmp(&[]);
    assert_eq!(code, 0, "an untouched tree matches:\n{out}\n{err}");
    // An intruder's work: one byte of a binary, a mode, a new file, a deleted file.
    sh(&format!(
        "cd {} && printf 'X' | dd of=bin/suid bs=1 seek=100 conv=notrunc status=none && chmod 0640 etc/passwd && echo evil > bin/backdoor && rm data/empty",
        tree.display()
    ));
    let (code, out, _) = cmp(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("changed  bin/suid  (content, mtime "), "{out}");
    assert!(out.contains("changed  etc/passwd  (mode 644 -> 640)"), "{out}");
    assert!(out.contains("added    bin/backdoor"), "{out}");
    assert!(out.contains("removed  data/empty"), "{out}");
    // Adding and removing a file changed the times of the directories they were in.
    assert!(out.contains("changed  bin  (mtime ") && out.contains("changed  data  (mtime "), "{out}");
    assert!(out.contains("6 difference(s)"), "nothing else is reported:\n{out}");
}

#[test]
fn gzip_backups_restore_with_gzip_and_tar_and_with_lifeboat() {
    let Some(Fixture { tmp, tree, target, before, .. }) = Fixture::new() else { return };
    let cfg = config(tmp.path(), "[backup]\ncompression = \"gzip\"\nlevel = 6\n");
    let b = backup(&cfg, &tree, &target, "1M");
    assert!(b.join("vol-0001.tar.gz").exists() && !b.join("vol-0001.tar.zst").exists());
    let by_tar = tmp.path().join("by-tar");
    std::fs::create_dir_all(&by_tar).expect("mkdir");
    sh(&format!(
        "cd {} && cat vol-*.tar.gz | gzip -dc | tar -x --xattrs --xattrs-include='*' --numeric-owner -p -f - -C {}",
        b.display(),
        by_tar.display()
    ));
    let diff = differences(&before, &snapshot(&by_tar));
    assert!(diff.is_empty(), "gzip + GNU tar:\n{}", diff.join("\n"));
    let c = cfg.to_str().expect("utf8");
    let (code, out, _) = run_lifeboat(&["--config", c, "verify", "--from", &url(&b)]);
    assert_eq!(code, 0, "{out}");
    let to = tmp.path().join("by-lifeboat");
    let (code, out, _) =
        run_lifeboat(&["--config", c, "restore", "--from", &url(&b), "--to", to.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}");
    let diff = differences(&before, &snapshot(&to));
    assert!(diff.is_empty(), "lifeboat restore of a gzip backup:\n{}", diff.join("\n"));
}

/// `tree` with `top.txt`, and an ext4 on a loop device mounted at `tree/srv`
/// holding `inside.txt`; an empty `target`. The disk unmounts when dropped.
fn tree_with_a_mounted_filesystem(dir: &Path) -> (PathBuf, PathBuf, common::LoopDisk) {
    let (tree, target) = (dir.join("tree"), dir.join("target"));
    std::fs::create_dir_all(tree.join("srv")).expect("mkdir");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(tree.join("top.txt"), "top\n").expect("write");
    let mut disk = common::LoopDisk::new(dir, "srv", 32 << 20);
    sh(&format!("mkfs.ext4 -q {}", disk.dev));
    let dev = disk.dev.clone();
    disk.mount(&dev, &tree.join("srv"), "");
    std::fs::write(tree.join("srv/inside.txt"), "inside\n").expect("write");
    (tree, target, disk)
}

#[test]
fn each_filesystem_is_a_unit_and_a_mount_point_is_recorded_once() {
    if !root_or_skip("loop devices") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (tree, target, _disk) = tree_with_a_mounted_filesystem(tmp.path());
    let cfg = config(tmp.path(), "");
    // The root alone does not cross into the mounted filesystem.
    let b = backup(&cfg, &tree, &target, "dvd");
    let manifest = std::fs::read_to_string(b.join("manifest.jsonl")).expect("manifest");
    assert!(manifest.contains("\"srv\"") && !manifest.contains("srv/inside.txt"), "{manifest}");
    // Both filesystems, each as a unit: the mount point once, its content included.
    let (b, _) = backup_with_output(&cfg, &tree, &target, &[".", "srv"]);
    let manifest = std::fs::read_to_string(b.join("manifest.jsonl")).expect("manifest");
    assert_eq!(manifest.lines().filter(|l| l.contains("\"path\":\"srv\"")).count(), 1, "{manifest}");
    assert!(manifest.contains("srv/inside.txt") && manifest.contains("srv/lost+found"), "{manifest}");
}

#[test]
fn unreadable_files_are_named_and_make_the_backup_incomplete_but_not_fail() {
    if !root_or_skip("files unreadable to root without CAP_DAC_OVERRIDE") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let tree = tmp.path().join("tree");
    sh(&format!(
        "set -e; mkdir -p {0}/locked; echo fine > {0}/ok.txt; echo secret > {0}/secret.txt; echo x > {0}/locked/inner; \
         chmod 000 {0}/secret.txt {0}/locked",
        tree.display()
    ));
    let cfg = config(tmp.path(), "");
    let target = tmp.path().join("target");
    std::fs::create_dir_all(&target).expect("mkdir");
    // Root without the capabilities that let it read anything: as a backup
    // meets files on a FUSE mount or an NFS export with root squashing.
    let out = std::process::Command::new("setpriv")
        .args(["--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"])
        .arg(common::lifeboat().get_program())
        .args(["--config", cfg.to_str().expect("utf8"), "backup", "--target", &url(&target), "--root"])
        .arg(&tree)
        .arg(".")
        .output()
        .expect("run setpriv");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "an incomplete backup exits 1: {text}");
    assert!(text.contains("INCOMPLETE"), "{text}");
    assert!(text.contains("NOT BACKED UP") && text.contains("secret.txt") && text.contains("locked"), "{text}");
    // What could be read is there and restores.
    let restored = tmp.path().join("restored");
    let (code, o, e) = run_lifeboat(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "restore",
        "--from",
        &url(&target),
        "--to",
        restored.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{o}{e}");
    assert_eq!(std::fs::read_to_string(restored.join("ok.txt")).expect("ok.txt restored"), "fine\n");
    assert!(!restored.join("secret.txt").exists());
    let (_, info, _) =
        run_lifeboat(&["--config", cfg.to_str().expect("utf8"), "backup", "info", "--from", &url(&target)]);
    assert!(info.contains("secret.txt"), "backup info lists what is missing: {info}");
}

#[test]
fn without_paths_every_filesystem_of_the_layout_is_backed_up_but_not_those_on_excluded_disks() {
    if !root_or_skip("loop devices") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (tree, target, _disk) = tree_with_a_mounted_filesystem(tmp.path());
    // Loop devices are excluded from the layout by default: nothing of it is below the root.
    let cfg = config(tmp.path(), "");
    let base = ["--config", cfg.to_str().expect("utf8"), "backup", "--target", &url(&target), "--root"];
    let (code, out, err) = run_lifeboat(&[&base[..], &[tree.to_str().expect("utf8")]].concat());
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("not backed up") && err.contains("excluded") && err.contains("nothing to back up"), "{err}");
    // With loop devices included, the filesystem mounted below the root is found by itself.
    let cfg = config(tmp.path(), "[layout]\ninclude_virtual = true\n");
    let base = ["--config", cfg.to_str().expect("utf8"), "backup", "--target", &url(&target), "--root"];
    let (code, out, err) = run_lifeboat(&[&base[..], &[tree.to_str().expect("utf8")]].concat());
    assert_eq!(code, 0, "{out}{err}");
    let b = std::fs::read_dir(target.join(common::hostname())).expect("dir").flatten().next().expect("backup").path();
    let manifest = std::fs::read_to_string(b.join("manifest.jsonl")).expect("manifest");
    assert!(manifest.contains("\"path\":\"srv/inside.txt\""), "{manifest}");
    assert!(!manifest.contains("top.txt"), "the root filesystem is not below --root: {manifest}");
}

#[test]
fn a_file_that_changes_while_it_is_read_is_reported_and_the_exit_says_so() {
    if !root_or_skip("backup as root") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (tree, target) = (tmp.path().join("tree"), tmp.path().join("target"));
    std::fs::create_dir_all(&tree).expect("mkdir");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(tree.join("still.txt"), "still\n").expect("write");
    // A log file that a service keeps appending to; large, so reading it takes a while.
    sh(&format!("head -c 50000000 /dev/urandom > {}/busy.log", tree.display()));
    let mut writer = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("while :; do echo line >> {}/busy.log; done", tree.display()))
        .spawn()
        .expect("start the writer");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let cfg = config(tmp.path(), "");
    let t = url(&target);
    let (code, out, err) = run_lifeboat(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "backup",
        "--target",
        &t,
        "--root",
        tree.to_str().expect("utf8"),
        ".",
    ]);
    let _ = writer.kill();
    let _ = writer.wait();
    assert_eq!(code, 1, "a file that changed while read makes the exit 1, as with GNU tar:\n{out}\n{err}");
    assert!(out.contains("changed while being read: busy.log"), "{out}");
    assert!(out.contains("complete, but 1 file(s) changed while being read"), "{out}");
    let b =
        std::fs::read_dir(target.join(common::hostname())).expect("dir").flatten().map(|e| e.path()).next().expect("b");
    let catalog = std::fs::read_to_string(b.join("backup.json")).expect("catalog");
    assert!(catalog.contains("busy.log"), "the catalog keeps the warning: {catalog}");
}
