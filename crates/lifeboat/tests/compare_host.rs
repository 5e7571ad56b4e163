//! The intrusion check: `lifeboat compare` on a real tree with ACLs,
//! capabilities, devices and hard links, after each kind of tampering one at
//! a time. Every change is reported, by name; an untouched tree matches.
//! Also: a restore never lets an unprivileged user open a file that ends up
//! 0600, and a restore killed at any moment leaves no file under its final
//! name with wrong content.

mod common;

use common::tree::build_tree;
use common::{config, root_or_skip, run_lifeboat, sh};
use std::path::{Path, PathBuf};

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    cfg: PathBuf,
    backup: String,
}

fn setup() -> Option<Setup> {
    if !root_or_skip("owners, devices and capabilities") {
        return None;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_path_buf();
    let (tree, target) = (dir.join("tree"), dir.join("target"));
    std::fs::create_dir_all(&tree).expect("mkdir");
    std::fs::create_dir_all(&target).expect("mkdir");
    build_tree(&tree);
    let cfg = config(&dir, "");
    let b = common::back_up(&cfg, &tree, &target, &[]);
    Some(Setup { _tmp: tmp, dir, cfg, backup: format!("file://{}", b.display()) })
}

impl Setup {
    /// A fresh restore of the backup.
    fn restored(&self, name: &str) -> PathBuf {
        let to = self.dir.join(name);
        let (code, out, err) = run_lifeboat(&[
            "--config",
            self.cfg.to_str().expect("utf8"),
            "restore",
            "--from",
            &self.backup,
            "--to",
            to.to_str().expect("utf8"),
        ]);
        assert_eq!(code, 0, "{out}\n{err}");
        to
    }

    fn compare(&self, root: &Path) -> (i32, Vec<serde_json::Value>) {
        let (code, out, err) = run_lifeboat(&[
            "--config",
            self.cfg.to_str().expect("utf8"),
            "--json",
            "compare",
            "--from",
            &self.backup,
            "--root",
            root.to_str().expect("utf8"),
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
        (code, v.as_array().cloned().unwrap_or_default())
    }
}

#[test]
fn compare_reports_every_kind_of_tampering_by_name() {
    let Some(s) = setup() else { return };
    // What an intruder does, one thing at a time: (what, commands, path, detail it must be reported with).
    // Each keeps the parent directory's time, as a careful intruder would.
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "a hard-linked file replaced by a setuid-root script",
            "rm data/hardlink-b && printf '#!/bin/sh\\nid\\n' > data/hardlink-b && chmod 4755 data/hardlink-b",
            "data/hardlink-b",
            &["content", "mode 654 -> 4755", "no longer a hard link of data/counting.txt"],
        ),
        ("/dev/null made /dev/mem", "rm data/null && mknod data/null c 1 1", "data/null", &["device 1:3 -> 1:1"]),
        ("a file capability added", "setcap cap_setuid+ep bin/suid", "bin/suid", &["xattr security.capability added"]),
        ("a capability changed", "setcap cap_sys_admin+ep bin/pinger", "bin/pinger", &["xattr security.capability changed"]),
        ("an xattr value changed", "setfattr -n user.note -v evil data/random.bin", "data/random.bin", &["xattr user.note changed"]),
        ("an xattr removed", "setfattr -x user.binary data/empty", "data/empty", &["xattr user.binary removed"]),
        (
            "an ACL entry widened",
            "setfacl -m u:1234:rwx data/counting.txt",
            "data/counting.txt",
            &["xattr system.posix_acl_access changed"],
        ),
        ("a default ACL changed", "setfacl -d -m u:99:rwx data/deep", "data/deep", &["xattr system.posix_acl_default changed"]),
        ("an owner changed", "chown 0:0 data/random.bin", "data/random.bin", &["owner 1234:5678 -> 0:0"]),
        ("the sticky bit removed", "chmod 0777 sticky", "sticky", &["mode 1777 -> 777"]),
        ("a setuid bit removed", "chmod 0755 bin/suid", "bin/suid", &["mode 4755 -> 755"]),
        ("a symlink redirected", "ln -sfn /etc/shadow bin/relative-link", "bin/relative-link", &["link -> /etc/shadow"]),
        ("only a time changed", "touch -d '2001-01-01' etc/passwd", "etc/passwd", &["mtime "]),
        (
            "one byte changed, size and time kept",
            "t=$(stat -c %y bin/suid) && printf X | dd of=bin/suid bs=1 seek=100 conv=notrunc status=none && touch -d \"$t\" bin/suid",
            "bin/suid",
            &["content"],
        ),
        ("a file grown", "echo more >> etc/passwd", "etc/passwd", &["size ", "content"]),
        ("a file made a symlink", "rm etc/passwd && ln -s /tmp/x etc/passwd", "etc/passwd", &["type file -> symlink"]),
        ("a FIFO made a file", "rm data/pipe && : > data/pipe", "data/pipe", &["type fifo -> file"]),
        ("a block device renumbered", "rm data/loopdev && mknod data/loopdev b 7 0", "data/loopdev", &["device 7:200 -> 7:0"]),
    ];
    for (i, (what, cmd, path, details)) in cases.iter().enumerate() {
        let root = s.restored(&format!("r{i}"));
        if i == 0 {
            let (code, diffs) = s.compare(&root);
            assert_eq!((code, diffs.len()), (0, 0), "a restored tree matches its backup: {diffs:?}");
        }
        let parent = Path::new(path).parent().map(|p| p.to_string_lossy().into_owned()).filter(|p| !p.is_empty());
        let parent = parent.unwrap_or_else(|| ".".into());
        sh(&format!("set -e; cd {}; pt=$(stat -c %y {parent}); {cmd}; touch -d \"$pt\" {parent}", root.display()));
        let (code, diffs) = s.compare(&root);
        assert_eq!(code, 1, "{what}: exit 1");
        // Only the tampered entry, and the other names of its inode when it is hard-linked.
        let group = ["data/counting.txt", "data/hardlink-a", "data/hardlink-b"];
        let others: Vec<&serde_json::Value> = diffs.iter().filter(|d| d["path"] != *path).collect();
        assert!(
            others.iter().all(|d| group.contains(path) && group.iter().any(|g| d["path"] == *g)),
            "{what}: only the tampered entry is reported: {diffs:?}"
        );
        let d = diffs
            .iter()
            .find(|d| d["path"] == *path)
            .unwrap_or_else(|| panic!("{what}: {path} not reported: {diffs:?}"));
        assert_eq!(d["what"], "changed", "{what}: {d}");
        let got: Vec<String> =
            d["details"].as_array().expect("details").iter().map(|x| x.as_str().unwrap_or("").to_string()).collect();
        for want in *details {
            assert!(got.iter().any(|g| g.starts_with(want)), "{what}: {want:?} not in {got:?}");
        }
        std::fs::remove_dir_all(&root).expect("clean");
    }
}

#[test]
fn a_restore_in_progress_never_lets_another_user_read_a_private_file() {
    if !root_or_skip("another user") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let (tree, target) = (dir.join("tree"), dir.join("target"));
    // Large private files, so the restore takes a while; the directory they are in is open to all.
    sh(&format!(
        "set -e; mkdir -p {t}/pub {target}; chmod 755 {t} {t}/pub; for i in 1 2 3 4 5 6; do head -c 40000000 /dev/urandom > {t}/pub/secret$i; chmod 600 {t}/pub/secret$i; done; echo hi > {t}/pub/open; chmod 644 {t}/pub/open",
        t = tree.display(),
        target = target.display()
    ));
    let cfg = config(dir, "");
    let c = cfg.to_str().expect("utf8");
    let b = common::back_up(&cfg, &tree, &target, &[]);
    let to = dir.join("restored");
    std::fs::create_dir(&to).expect("mkdir");
    std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    // An unprivileged poller: opens every file it can see below the target, over and over,
    // and prints what it managed to open.
    let poll = dir.join("poll.sh");
    std::fs::write(
        &poll,
        format!(
            "while [ ! -e {stop} ]; do for f in $(find {to} -type f 2>/dev/null); do head -c1 \"$f\" >/dev/null 2>&1 && echo \"$f\"; done; done | sort -u\n",
            stop = dir.join("stop").display(),
            to = to.display()
        ),
    )
    .expect("poller");
    let poller = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "bash"])
        .arg(&poll)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, out, err) = run_lifeboat(&[
        "--config",
        c,
        "restore",
        "--from",
        &format!("file://{}", b.display()),
        "--to",
        to.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(dir.join("stop"), b"").expect("stop");
    let opened = String::from_utf8_lossy(&poller.wait_with_output().expect("poller").stdout).into_owned();
    assert!(opened.contains("pub/open"), "the poller works: it read the public file ({opened})");
    assert!(!opened.contains("secret"), "a private file was readable during the restore:\n{opened}");
}

#[test]
fn a_killed_restore_leaves_no_file_with_wrong_content_under_its_final_name() {
    if !root_or_skip("restore as root") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let (tree, target) = (dir.join("tree"), dir.join("target"));
    sh(&format!(
        "set -e; mkdir -p {t}/a {target}; for i in $(seq 1 40); do head -c $((i * 400000)) /dev/urandom > {t}/a/f$i; done",
        t = tree.display(),
        target = target.display()
    ));
    let cfg = config(dir, "");
    let c = cfg.to_str().expect("utf8");
    let b = common::back_up(&cfg, &tree, &target, &[]);
    let from = format!("file://{}", b.display());
    let mut kills = 0;
    for (i, ms) in [5u64, 20, 40, 70, 100, 150, 200, 300, 450, 600].iter().enumerate() {
        let to = dir.join(format!("k{i}"));
        let mut child = common::lifeboat()
            .args(["--config", c, "restore", "--from", &from, "--to", to.to_str().expect("utf8")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(*ms));
        if child.try_wait().expect("wait").is_none() {
            kills += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let Ok(rd) = std::fs::read_dir(to.join("a")) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".lifeboat-restore.") {
                continue; // a temporary name: never taken for the file
            }
            let want = std::fs::read(tree.join("a").join(&name)).expect("source");
            let got = std::fs::read(e.path()).expect("restored");
            assert!(got == want, "after a kill at {ms} ms, a/{name} has {} bytes of wrong content", got.len());
        }
    }
    assert!(kills >= 5, "the restore was killed while running at least 5 times ({kills})");
}
