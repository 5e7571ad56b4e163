//! Honest outcomes of `backup` and of choosing a backup: nothing selected is
//! an error, a file that shrank makes the exit 1, a full target names the OS
//! error and the volume, the target is left out by what it is (not by its
//! name), dead runs are listed and pruned (live ones never), a damaged newest
//! backup is never silently replaced by an older one, a too small volume
//! size is refused, and a closed stdout ends a run quietly.

mod common;

use common::{config, root_or_skip, run_lifeboat, sh};
use std::path::{Path, PathBuf};

fn url(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// A temporary directory with `tree/` (a few files), an empty `target/` and a config.
fn setup(extra_config: &str) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let (tree, target) = (tmp.path().join("tree"), tmp.path().join("target"));
    std::fs::create_dir_all(tree.join("data")).expect("mkdir");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(tree.join("top.txt"), "top\n").expect("write");
    std::fs::write(tree.join("data/a.txt"), "a\n").expect("write");
    let cfg = config(tmp.path(), extra_config);
    (tmp, tree, target, cfg)
}

/// `lifeboat --config CFG backup --target TARGET --root TREE ARGS...`.
fn backup(cfg: &Path, tree: &Path, target_url: &str, args: &[&str]) -> (i32, String, String) {
    run_lifeboat(&[&["--config", s(cfg), "backup", "--target", target_url, "--root", s(tree)], args].concat())
}

/// The directories of this host's backups on a target, sorted.
fn backups(target: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(target.join(common::hostname()))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn paths_that_select_nothing_or_leave_the_root_are_errors_naming_them() {
    if !root_or_skip("backup as root") {
        return;
    }
    let (tmp, tree, target, cfg) = setup("[backup]\nexclude = [\"data\"]\n");
    let t = url(&target);
    let outside = tmp.path().join("other");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("x"), "x\n").expect("write");
    std::os::unix::fs::symlink(&outside, tree.join("link")).expect("symlink");

    let (code, out, err) = backup(&cfg, &tree, &t, &["no-such-dir"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("no-such-dir") && err.contains("No such file"), "{err}");

    let (code, out, err) = backup(&cfg, &tree, &t, &["data"]);
    assert_eq!(code, 2, "everything excluded: {out}{err}");
    assert!(err.contains("data") && err.contains("selects nothing") && err.contains("excluded by data"), "{err}");

    let (code, out, err) = backup(&cfg, &tree, &t, &["../other"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("../other") && err.contains("`..`"), "{err}");

    let (code, out, err) = backup(&cfg, &tree, &t, &["data/../../other"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("data/../../other"), "{err}");

    let (code, out, err) = backup(&cfg, &tree, &t, &[s(&outside)]);
    assert_eq!(code, 2, "an absolute path outside the root: {out}{err}");
    assert!(err.contains(s(&outside)) && err.contains("outside the root"), "{err}");

    let (code, out, err) = backup(&cfg, &tree, &t, &["link/x"]);
    assert_eq!(code, 2, "out of the root through a symlink: {out}{err}");
    assert!(err.contains("link/x") && err.contains("symbolic link"), "{err}");
    assert!(backups(&target).is_empty(), "nothing was staged or published: {:?}", backups(&target));

    // An absolute path below the root is stored relative to it.
    let (code, out, err) = backup(&cfg, &tree, &t, &[s(&tree.join("top.txt")), "./link"]);
    assert_eq!(code, 0, "{out}{err}");
    let b = backups(&target).pop().expect("a backup");
    let manifest = std::fs::read_to_string(b.join("manifest.jsonl")).expect("manifest");
    let paths: Vec<String> = manifest
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["path"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(paths, vec!["top.txt", "link"], "{manifest}");
}

#[test]
fn a_file_that_shrinks_while_it_is_read_is_changed_and_the_backup_exits_1() {
    if !root_or_skip("backup as root") {
        return;
    }
    let (_tmp, tree, target, cfg) = setup("");
    let big = tree.join("data/shrinking.bin");
    sh(&format!("head -c 400000000 /dev/urandom > {}", big.display()));
    let child = common::lifeboat()
        .args(["--config", s(&cfg), "backup", "--target", &url(&target), "--root", s(&tree), "."])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until the backup is reading the file (its descriptor is open and
    // past the start), then cut the file short.
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut cut = false;
    while !cut && std::time::Instant::now() < deadline {
        for fd in std::fs::read_dir(&fds).map(|rd| rd.flatten().collect::<Vec<_>>()).unwrap_or_default() {
            if std::fs::read_link(fd.path()).ok().as_deref() == Some(big.as_path()) {
                let info = std::fs::read_to_string(format!(
                    "/proc/{}/fdinfo/{}",
                    child.id(),
                    fd.file_name().to_string_lossy()
                ))
                .unwrap_or_default();
                let pos: u64 =
                    info.lines().find_map(|l| l.strip_prefix("pos:")).and_then(|p| p.trim().parse().ok()).unwrap_or(0);
                if pos > 0 {
                    std::fs::OpenOptions::new().write(true).open(&big).expect("open").set_len(1000).expect("truncate");
                    cut = true;
                }
            }
        }
    }
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(cut, "the file was cut while the backup read it: {text}");
    assert_eq!(out.status.code(), Some(1), "a file not stored as it was makes the exit 1: {text}");
    assert!(text.contains("CHANGED") && !text.contains(" complete"), "{text}");
    assert!(text.contains("CHANGED while being read: data/shrinking.bin: shrank from 400000000 to"), "{text}");
    let b = backups(&target).pop().expect("the backup is still published");
    let catalog = std::fs::read_to_string(b.join("backup.json")).expect("catalog");
    assert!(catalog.contains("\"shrank\"") && catalog.contains("data/shrinking.bin"), "{catalog}");
    let (_, info, _) = run_lifeboat(&["--config", s(&cfg), "backup", "info", "--from", &url(&b)]);
    assert!(info.contains("CHANGED, not stored as it was: data/shrinking.bin"), "{info}");
}

#[test]
fn a_full_target_is_reported_with_the_os_error_and_the_volume() {
    if !root_or_skip("a tmpfs target") {
        return;
    }
    let (_tmp, tree, target, cfg) = setup("");
    sh(&format!("head -c 12000000 /dev/urandom > {}/data/random.bin", tree.display()));
    sh(&format!("mount -t tmpfs -o size=3m lifeboat-test {}", target.display()));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).output();
        }
    }
    let _mounted = Unmount(target.clone());
    let (code, out, err) = backup(&cfg, &tree, &url(&target), &["--volume-size", "1M", "."]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("No space left on device (os error 28)"), "{err}");
    let host = target.join(common::hostname());
    assert!(err.contains(s(&host)) && err.contains(".partial/vol-000"), "the volume is named: {err}");
    assert!(!err.contains("archive writer stopped"), "{err}");
    assert!(err.contains("the previous backups on the target are untouched"), "{err}");
    assert!(backups(&target).is_empty(), "the staging directory was removed: {:?}", backups(&target));
}

#[test]
fn a_target_reached_through_a_symlink_is_not_backed_up_into_itself() {
    if !root_or_skip("backup as root") {
        return;
    }
    let (tmp, tree, _target, cfg) = setup("");
    let real = tree.join("backups");
    std::fs::create_dir_all(&real).expect("mkdir");
    let link = tmp.path().join("target-link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    for _ in 0..2 {
        let (code, out, err) = backup(&cfg, &tree, &url(&link), &["."]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let newest = backups(&real).pop().expect("two backups");
    let manifest = std::fs::read_to_string(newest.join("manifest.jsonl")).expect("manifest");
    assert!(manifest.contains("\"path\":\"backups\""), "the directory itself is recorded: {manifest}");
    assert!(!manifest.contains("\"path\":\"backups/"), "the backup does not contain the target: {manifest}");
    assert!(manifest.contains("\"path\":\"data/a.txt\""), "{manifest}");
}

#[test]
fn dead_runs_are_listed_and_pruned_live_ones_kept_and_a_damaged_newest_backup_is_refused() {
    if !root_or_skip("backup as root") {
        return;
    }
    let (_tmp, tree, target, cfg) = setup("");
    let (t, c) = (url(&target), s(&cfg).to_string());
    let (code, out, err) = backup(&cfg, &tree, &t, &["."]);
    assert_eq!(code, 0, "{out}{err}");
    let first = backups(&target).pop().expect("first");
    let host = target.join(common::hostname());
    // A run that died (its staging directory, nobody holding its lock) and one that is alive.
    let dead = host.join("2000-01-01T000000.000Z.partial");
    std::fs::create_dir_all(&dead).expect("mkdir");
    std::fs::write(dead.join("vol-0001.tar.zst"), vec![7u8; 5000]).expect("write");
    let live = host.join("2000-01-02T000000.000Z.partial");
    std::fs::create_dir_all(&live).expect("mkdir");
    let held = std::fs::File::open(&live).expect("open");
    rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).expect("lock");

    let (code, out, err) = run_lifeboat(&["--config", &c, "backup", "list", "--target", &t]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(s(&first)) && out.contains("1 backup(s)"), "{out}");
    assert!(err.contains(&format!("{} INTERRUPTED", dead.display())) && err.contains("4.9 KiB"), "{err}");
    assert!(err.contains(&format!("{} in progress", live.display())), "{err}");
    assert!(err.contains(&format!("lifeboat backup prune --partial --target {t}")), "{err}");
    let (_, json, _) = run_lifeboat(&["--config", &c, "--json", "backup", "list", "--target", &t]);
    assert!(json.contains("\"state\": \"interrupted\"") && json.contains("\"state\": \"running\""), "{json}");

    // The next backup says so.
    let (code, out, err) = backup(&cfg, &tree, &t, &["."]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("1 interrupted backup(s)") && err.contains(s(&dead)) && err.contains("prune --partial"),
        "{err}"
    );
    let second = backups(&target).into_iter().rfind(|p| !p.to_string_lossy().ends_with(".partial")).expect("2");
    assert_ne!(second, first);

    let (code, out, err) = run_lifeboat(&["--config", &c, "backup", "prune", "--partial", "--target", &t]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("removed {}", dead.display())) && out.contains("1 interrupted backup(s) removed"),
        "{out}"
    );
    assert!(!dead.exists() && live.is_dir(), "the dead run is removed, the live one kept");
    drop(held);

    // The newest backup loses its catalog: list marks it, verify and restore refuse it, naming the fix.
    std::fs::remove_file(second.join("backup.json")).expect("rm");
    let (code, out, _) = run_lifeboat(&["--config", &c, "backup", "list", "--target", &t]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{} (INCOMPLETE or DAMAGED: no backup.json", second.display())), "{out}");
    assert!(out.contains("2 backup(s)") && out.contains("1 of them incomplete or damaged"), "{out}");
    let fix = format!("--from file://{}", first.display());
    let (code, out, err) = run_lifeboat(&["--config", &c, "verify", "--from", &t]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains(s(&second)) && err.contains("no backup.json") && err.contains(&fix), "{err}");
    let to = target.parent().expect("tmp").join("restored");
    let (code, out, err) = run_lifeboat(&["--config", &c, "restore", "--from", &t, "--to", s(&to)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains(s(&second)) && err.contains(&fix), "{err}");
    assert!(!to.join("top.txt").exists(), "nothing was restored from the older backup");
    // A damaged (not missing) catalog is refused the same way.
    std::fs::write(second.join("backup.json"), "{\"format\": \"lifeboat-archive\", \"vers").expect("write");
    let (code, _, err) = run_lifeboat(&["--config", &c, "verify", "--from", &t]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("backup.json is damaged") && err.contains(&fix), "{err}");
    // The fix works.
    let (code, out, err) = run_lifeboat(&["--config", &c, "verify", "--from", &url(&first)]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_volume_size_below_the_minimum_is_refused_naming_it() {
    if !root_or_skip("backup as root") {
        return;
    }
    let (_tmp, tree, target, cfg) = setup("");
    let (code, out, err) = backup(&cfg, &tree, &url(&target), &["--volume-size", "10K", "."]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("10.0 KiB") && err.contains("minimum of 128.0 KiB"), "{err}");
    assert!(backups(&target).is_empty(), "nothing was staged: {:?}", backups(&target));
    let (code, out, err) = backup(&cfg, &tree, &url(&target), &["--volume-size", "128K", "."]);
    assert_eq!(code, 0, "the minimum itself is fine: {out}{err}");
}

#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    let (_tmp, _tree, target, cfg) = setup("");
    let c = s(&cfg).to_string();
    let t = url(&target);
    let runs: [&[&str]; 4] = [
        &["--help"],
        &["--config", &c, "config", "show"],
        &["--config", &c, "backup", "list", "--target", &t],
        &["--config", &c, "--json", "config", "show"],
    ];
    for args in runs {
        // The reader is gone before lifeboat writes a byte: every write is EPIPE.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = common::lifeboat()
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run lifeboat");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert!(err.is_empty(), "quiet: {args:?}: {err}");
        let code = out.status.code();
        assert!(code == Some(141) || (args == ["--help"] && code == Some(0)), "{args:?}: {code:?}");
    }
}

#[test]
fn a_filesystem_of_the_default_selection_that_the_excludes_cover_is_left_out_and_said() {
    if !root_or_skip("loop devices") {
        return;
    }
    let (tmp, tree, target, _) = setup("");
    let mut disk = common::LoopDisk::new(tmp.path(), "srv", 32 << 20);
    sh(&format!("mkfs.ext4 -q {}", disk.dev));
    let dev = disk.dev.clone();
    disk.mount(&dev, &tree.join("srv"), "");
    std::fs::write(tree.join("srv/inside.txt"), "inside\n").expect("write");
    let cfg = config(tmp.path(), "[layout]\ninclude_virtual = true\n[backup]\nexclude = [\"srv\"]\n");
    let (code, out, err) =
        run_lifeboat(&["--config", s(&cfg), "backup", "--target", &url(&target), "--root", s(&tree)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains(&format!("not backed up: {}", tree.join("srv").display())), "{err}");
    assert!(err.contains("nothing to back up: every filesystem below"), "{err}");
    assert!(backups(&target).is_empty());
}

/// A directory holding an `lsblk` that acts as `script` says, first on PATH.
fn fake_lsblk(dir: &Path, script: &str) -> String {
    let bin = dir.join("fake-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let real = sh("command -v lsblk").trim().to_string();
    let text = format!("#!/bin/bash\nREAL={real}\n{script}\n");
    std::fs::write(bin.join("lsblk"), text).expect("write");
    sh(&format!("chmod +x {}", bin.join("lsblk").display()));
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// `lifeboat ARGS` with `PATH` set.
fn run_with_path(path: &str, args: &[&str]) -> (i32, String, String) {
    let out = common::lifeboat().env("PATH", path).args(args).output().expect("run lifeboat");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_capture_that_cannot_list_the_block_devices_fails_layout_save_and_backup() {
    let (tmp, tree, target, cfg) = setup("");
    let path = fake_lsblk(tmp.path(), "echo 'lsblk: unknown column: MOUNTPOINTS' >&2; exit 1");
    let saved = tmp.path().join("layout.toml");
    let (code, out, err) = run_with_path(&path, &["--config", s(&cfg), "layout", "save", "--output", s(&saved)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("block devices cannot be listed") && err.contains("unknown column: MOUNTPOINTS"), "{err}");
    assert!(!saved.exists(), "no layout saved");
    let (code, out, err) =
        run_with_path(&path, &["--config", s(&cfg), "backup", "--target", &url(&target), "--root", s(&tree)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("block devices cannot be listed"), "{err}");
    assert!(backups(&target).is_empty());
}

#[test]
fn an_lsblk_of_util_linux_2_36_without_mountpoints_still_sees_the_filesystems() {
    if !root_or_skip("loop devices") {
        return;
    }
    let (tmp, tree, target, _) = setup("");
    // util-linux 2.36 (Debian 11): no MOUNTPOINTS column, in --help or in --output.
    let path = fake_lsblk(
        tmp.path(),
        r#"if [ "$1" = --help ]; then "$REAL" --help | grep -v ' MOUNTPOINTS '; exit; fi
case "$*" in *MOUNTPOINTS*) echo 'lsblk: unknown column: MOUNTPOINTS' >&2; exit 1;; esac
exec "$REAL" "$@""#,
    );
    let mut disk = common::LoopDisk::new(tmp.path(), "srv", 32 << 20);
    sh(&format!("mkfs.ext4 -q {}", disk.dev));
    let dev = disk.dev.clone();
    disk.mount(&dev, &tree.join("srv"), "");
    std::fs::write(tree.join("srv/inside.txt"), "inside\n").expect("write");
    let cfg = config(tmp.path(), "[layout]\ninclude_virtual = true\n");
    let saved = tmp.path().join("layout.toml");
    let (code, out, err) = run_with_path(&path, &["--config", s(&cfg), "layout", "save", "--output", s(&saved)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("lsblk"), "nothing about lsblk not captured: {out}");
    let text = std::fs::read_to_string(&saved).expect("layout");
    assert!(text.contains(&format!("\"{}\"", tree.join("srv").display())), "the mount point, from mountinfo: {text}");
    let (code, out, err) =
        run_with_path(&path, &["--config", s(&cfg), "backup", "--target", &url(&target), "--root", s(&tree)]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(backups(&target).len(), 1);
}

#[test]
fn a_mounted_filesystem_the_capture_did_not_see_makes_the_backup_refused_naming_it() {
    if !root_or_skip("loop devices") {
        return;
    }
    let (tmp, tree, target, cfg) = setup("");
    // An lsblk that lists no device: the layout has no filesystem, mountinfo still has the mount.
    let path = fake_lsblk(tmp.path(), r#"[ "$1" = --help ] && exec "$REAL" --help; echo '{"blockdevices": []}'"#);
    let mut disk = common::LoopDisk::new(tmp.path(), "srv", 32 << 20);
    sh(&format!("mkfs.ext4 -q {}", disk.dev));
    let dev = disk.dev.clone();
    disk.mount(&dev, &tree.join("srv"), "");
    let (code, out, err) =
        run_with_path(&path, &["--config", s(&cfg), "backup", "--target", &url(&target), "--root", s(&tree)]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("refusing to make a backup that misses mounted filesystems"), "{err}");
    assert!(err.contains(&format!("{} (ext4 {dev})", tree.join("srv").display())), "names it: {err}");
    assert!(err.contains("backup.exclude"), "the fix: {err}");
    assert!(backups(&target).is_empty(), "nothing published");
    assert!(std::fs::read_dir(&target).map(|d| d.count()).unwrap_or(0) == 0, "nothing staged either");
}
