//! Incremental backups through the commands an administrator types: a full
//! backup, changes (files changed, added, deleted, a file replaced by a
//! directory), `backup --incremental` twice, then `restore` (the newest
//! state and `--at` each earlier one), `verify`, `compare`, `backup list`
//! and `backup info`, `backup prune` keeping what a kept increment depends
//! on, the chain restored by GNU tar and zstd alone (docs/archive-format.md),
//! an unchanged tree, an encrypted chain, and a missing parent. Needs root
//! (owners, device nodes), GNU tar, zstd; the encrypted test age-keygen.

mod common;

use common::tree::{build_tree, differences, snapshot};
use common::{config, hostname, root_or_skip, run_lifeboat, sh};
use std::path::{Path, PathBuf};

/// The backups of this host on the target, oldest first.
fn backups(target: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> =
        std::fs::read_dir(target.join(hostname())).expect("host dir").flatten().map(|e| e.path()).collect();
    all.sort();
    all
}

fn name(p: &Path) -> String {
    p.file_name().expect("name").to_string_lossy().into_owned()
}

/// `lifeboat backup` with `extra` arguments; asserts success, returns stdout.
fn backup(c: &str, t: &str, tree: &Path, extra: &[&str]) -> String {
    let root = tree.to_str().expect("utf8");
    let (code, out, err) =
        run_lifeboat(&[&["--config", c, "backup", "--target", t, "--root", root][..], extra, &["."]].concat());
    assert_eq!(code, 0, "backup {extra:?}: {out}\n{err}");
    // Backup names are times in milliseconds: two backups never share one.
    std::thread::sleep(std::time::Duration::from_millis(20));
    out
}

fn restore(c: &str, t: &str, to: &Path, extra: &[&str]) {
    let (code, out, err) = run_lifeboat(
        &[&["--config", c, "restore", "--from", t, "--to", to.to_str().expect("utf8")][..], extra].concat(),
    );
    assert_eq!(code, 0, "restore {extra:?}: {out}\n{err}");
}

fn assert_same(want: &Path, got: &Path, what: &str) {
    // Sockets cannot be archived (counted and skipped).
    let mut want = snapshot(want);
    want.remove(b"data/socket".as_slice());
    let d = differences(&want, &snapshot(got));
    assert!(d.is_empty(), "{what}:\n{}", d.join("\n"));
}

/// A copy of a tree as it is now (`cp -a` keeps everything snapshot compares).
fn copy(tree: &Path, to: &Path) {
    sh(&format!("cp -a {}/. {}", tree.display(), to.display()));
}

/// Change the tree: a file rewritten in place with its old size and time
/// (only ctime tells), one appended to, a file added, a directory removed,
/// a file replaced by a directory, a mode changed.
fn change(tree: &Path, round: u32) {
    sh(&format!(
        r#"set -e
cd {t}
touch -r data/counting.txt /tmp/lifeboat-inc-ref.{round}
printf 'X' | dd of=data/counting.txt bs=1 seek=10 conv=notrunc status=none
touch -r /tmp/lifeboat-inc-ref.{round} data/counting.txt
echo round {round} >> etc/passwd
mkdir -p added{round} && echo new > added{round}/file
rm -rf bin
rm -f data/empty && mkdir data/empty && echo inside > data/empty/now-a-dir
chmod 640 etc/ssl/private/key.pem
"#,
        t = tree.display()
    ));
}

#[test]
fn a_chain_restores_each_point_verifies_compares_prunes_and_restores_with_gnu_tar() {
    if !root_or_skip("incremental backups (owners, device nodes)") {
        return;
    }
    let work = tempfile::tempdir().expect("tmp");
    let w = work.path();
    let cfg = config(w, "");
    let c = cfg.to_str().expect("utf8");
    let tree = w.join("tree");
    std::fs::create_dir(&tree).expect("mkdir");
    build_tree(&tree);
    let target = w.join("target");
    std::fs::create_dir(&target).expect("mkdir");
    let t = format!("file://{}", target.display());

    let at = |n: usize| {
        let p = w.join(format!("at{n}"));
        std::fs::create_dir(&p).expect("mkdir");
        p
    };
    backup(c, &t, &tree, &[]);
    let at0 = at(0);
    copy(&tree, &at0);
    change(&tree, 1);
    let out = backup(c, &t, &tree, &["--incremental"]);
    assert!(out.contains("incremental on "), "{out}");
    let at1 = at(1);
    copy(&tree, &at1);
    change(&tree, 2);
    backup(c, &t, &tree, &["--incremental"]);
    let chain = backups(&target);
    assert_eq!(chain.len(), 3, "{chain:?}");
    let cat = |p: &Path| std::fs::read_to_string(p.join("backup.json")).expect("catalog");
    assert!(cat(&chain[2]).contains(&format!("\"name\": \"{}\"", name(&chain[1]))), "{}", cat(&chain[2]));
    assert!(!cat(&chain[0]).contains("\"parent\""), "the first is full");

    // The newest state, and each earlier point with --at.
    let to = w.join("restored");
    restore(c, &t, &to, &[]);
    assert_same(&tree, &to, "the chain's newest state");
    for (i, want) in [(0, &at0), (1, &at1)] {
        let to = w.join(format!("restored-at{i}"));
        restore(c, &t, &to, &["--at", &name(&chain[i])]);
        assert_same(want, &to, &format!("restore --at {}", name(&chain[i])));
    }

    // verify checks the chain; compare against its state finds nothing; list and info show the parent.
    let (code, out, err) = run_lifeboat(&["--config", c, "verify", "--from", &t]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("incremental on {}", name(&chain[1]))), "{out}");
    let (code, out, err) =
        run_lifeboat(&["--config", c, "compare", "--from", &t, "--root", tree.to_str().expect("utf8")]);
    assert_eq!(code, 0, "compare with the live tree: {out}\n{err}");
    let (code, out, _) = run_lifeboat(&["--config", c, "backup", "list", "--target", &t]);
    assert_eq!(code, 0);
    assert_eq!(out.matches("(incremental on").count(), 2, "{out}");
    let (code, out, _) = run_lifeboat(&["--config", c, "backup", "info", "--from", &t]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("parent   {}", name(&chain[1]))), "{out}");

    // GNU tar and zstd alone, as docs/archive-format.md says: each backup in
    // chain order, its deletions first, then its volumes.
    let by_tar = w.join("by-tar");
    std::fs::create_dir(&by_tar).expect("mkdir");
    for b in &chain {
        sh(&format!(
            "set -e; cd {b}; if [ -f deleted.list ]; then if grep -zqE '^/|(^|/)\\.\\.(/|$)' deleted.list; then exit 1; fi; \
             (cd {to} && xargs -0 -r rm -rf -- < {b}/deleted.list); fi; \
             cat vol-*.tar.zst | zstd -dc | tar -x --xattrs --xattrs-include='*' --numeric-owner -p -f - -C {to}",
            b = b.display(),
            to = by_tar.display()
        ));
    }
    assert_same(&tree, &by_tar, "the chain restored by GNU tar");

    // prune --keep-last 1 keeps the newest, and everything it depends on.
    let (code, out, err) = run_lifeboat(&["--config", c, "backup", "prune", "--target", &t, "--keep-last", "1"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(backups(&target).len(), 3, "nothing a kept increment needs is removed: {out}");
    assert!(out.contains(&format!("parent of {}", name(&chain[2]))), "{out}");
    // A new full backup: the old chain is no longer needed by the newest.
    backup(c, &t, &tree, &["--full"]);
    let (code, out, err) = run_lifeboat(&["--config", c, "backup", "prune", "--target", &t, "--keep-last", "1"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(backups(&target).len(), 1, "the old chain goes whole: {out}");
}

#[test]
fn an_unchanged_tree_gives_an_increment_with_no_entry_stored() {
    if !root_or_skip("incremental backups (owners, device nodes)") {
        return;
    }
    let work = tempfile::tempdir().expect("tmp");
    let w = work.path();
    let cfg = config(w, "");
    let c = cfg.to_str().expect("utf8");
    let tree = w.join("tree");
    std::fs::create_dir(&tree).expect("mkdir");
    build_tree(&tree);
    let target = w.join("target");
    std::fs::create_dir(&target).expect("mkdir");
    let t = format!("file://{}", target.display());
    backup(c, &t, &tree, &[]);
    let out = backup(c, &t, &tree, &["--incremental"]);
    assert!(out.contains(": 0 entries stored,"), "{out}");
    assert!(out.contains(", 0 deleted"), "{out}");
    let newest = backups(&target).pop().expect("backup");
    assert_eq!(std::fs::metadata(newest.join("deleted.list")).expect("deleted.list").len(), 0);
    let to = w.join("restored");
    restore(c, &t, &to, &[]);
    assert_same(&tree, &to, "an empty increment's state");
}

#[test]
fn the_policy_makes_increments_until_the_full_backup_is_old_and_a_missing_parent_is_an_error() {
    if !root_or_skip("incremental backups (owners, device nodes)") {
        return;
    }
    let work = tempfile::tempdir().expect("tmp");
    let w = work.path();
    let cfg = config(w, "[backup]\nfull_every = \"7d\"\n");
    let c = cfg.to_str().expect("utf8");
    let tree = w.join("tree");
    std::fs::create_dir(&tree).expect("mkdir");
    build_tree(&tree);
    let target = w.join("target");
    std::fs::create_dir(&target).expect("mkdir");
    let t = format!("file://{}", target.display());
    let (code, _, err) =
        run_lifeboat(&["--config", c, "backup", "--target", &t, "--root", tree.to_str().expect("utf8"), "."]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("making a full backup: there is no complete backup"), "{err}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    change(&tree, 1);
    let out = backup(c, &t, &tree, &[]);
    assert!(out.contains("incremental on "), "full_every = 7d: an increment: {out}");

    // The parent gone: restore refuses, naming it and the fix.
    let chain = backups(&target);
    sh(&format!("mv {} {}/moved-away", chain[0].display(), w.display()));
    let to = w.join("restored");
    let (code, out, err) = run_lifeboat(&["--config", c, "restore", "--from", &t, "--to", to.to_str().expect("utf8")]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains(&format!("parent {} cannot be used", name(&chain[0]))), "{err}");
    assert!(!to.join("etc").exists(), "nothing restored");
}

#[test]
fn an_encrypted_chain_restores_with_its_identity() {
    if !root_or_skip("incremental backups (owners, device nodes)") {
        return;
    }
    if !Path::new("/usr/bin/age-keygen").exists() {
        eprintln!("SKIP: age-keygen (Debian package age) is not installed; make test-deps installs it");
        return;
    }
    let work = tempfile::tempdir().expect("tmp");
    let w = work.path();
    let key = w.join("key.txt");
    sh(&format!("age-keygen -o {} 2>/dev/null", key.display()));
    let public = sh(&format!("age-keygen -y {}", key.display())).trim().to_string();
    let cfg = config(w, &format!("[backup]\nrecipients = [\"{public}\"]\nidentity_file = \"{}\"\n", key.display()));
    let c = cfg.to_str().expect("utf8");
    let tree = w.join("tree");
    std::fs::create_dir(&tree).expect("mkdir");
    build_tree(&tree);
    let target = w.join("target");
    std::fs::create_dir(&target).expect("mkdir");
    let t = format!("file://{}", target.display());
    backup(c, &t, &tree, &[]);
    change(&tree, 1);
    let out = backup(c, &t, &tree, &["--incremental"]);
    assert!(out.contains("incremental on "), "{out}");
    let newest = backups(&target).pop().expect("backup");
    // deleted.list names files: it is encrypted like everything else.
    let list = std::fs::read(newest.join("deleted.list")).expect("deleted.list");
    assert!(list.starts_with(b"age-encryption.org/v1"), "deleted.list is an age file");
    let to = w.join("restored");
    restore(c, &t, &to, &[]);
    assert_same(&tree, &to, "the encrypted chain's state");
    let (code, out, err) = run_lifeboat(&["--config", c, "verify", "--from", &t]);
    assert_eq!(code, 0, "{out}\n{err}");
}
