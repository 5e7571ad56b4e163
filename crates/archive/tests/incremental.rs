//! Incremental backups through the archive's own interface, without root:
//! a full backup, then increments after changes, additions and deletions,
//! each resolved as a chain and restored equal to the tree at its time; an
//! unchanged tree gives an increment that stores nothing and reads nothing;
//! hostile chains (a parent swapped, missing) are errors.

#![allow(clippy::unwrap_used)]

use lifeboat_archive::backup::write_backup_against;
use lifeboat_archive::chain::{self, ParentState};
use lifeboat_archive::frames::Codec;
use lifeboat_archive::read::{self, Backup};
use lifeboat_archive::restore::{restore, verify};
use lifeboat_archive::target::{MemoryTarget, Objects, Target};
use lifeboat_archive::{BackupOptions, Catalog};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

fn options(root: &Path) -> BackupOptions {
    BackupOptions {
        root: root.to_path_buf(),
        paths: vec![".".into()],
        exclude: Vec::new(),
        volume_size: 128 << 10,
        codec: Codec::Zstd(1),
        exclude_dirs: Vec::new(),
        read_from: Vec::new(),
        reserved: None,
    }
}

/// Everything a restore must bring back of a tree: type, content or
/// target, mode, modification time (directories' too), by path.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if m.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!("symlink {}", std::fs::read_link(&p).unwrap().display())
            } else {
                format!("file {}", blake3::hash(&std::fs::read(&p).unwrap()).to_hex())
            };
            let time = if m.file_type().is_symlink() { 0 } else { m.mtime() * 1_000_000_000 + m.mtime_nsec() };
            out.insert(rel, format!("{what} mode {:o} mtime {time}", m.permissions().mode() & 0o7777));
        }
    }
    out
}

fn write(root: &Path, p: &str, data: &[u8]) {
    let f = root.join(p);
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(f, data).unwrap();
}

fn tree(root: &Path) {
    for i in 0..40 {
        write(root, &format!("d{}/f{i}", i % 4), format!("file {i} ").repeat(500 + i).as_bytes());
    }
    write(root, "keep/x", b"kept");
    write(root, "gone/y", b"goes away");
    std::os::unix::fs::symlink("d0/f0", root.join("link")).unwrap();
}

/// Open the backup `name` of the target as a reader does: catalog and chain.
fn open(t: &MemoryTarget, name: &str) -> Backup {
    let b = Backup::open_objects(t.backup("h", name).unwrap()).unwrap();
    chain::resolve(b, name, &mut |n| {
        let o: Arc<dyn Objects> = t.backup("h", n).map_err(|e| e.to_string())?;
        let text = o.read("backup.json", 1 << 20).map_err(|e| e.to_string())?;
        let c: Catalog = read::parse_catalog(&text, n).map_err(|e| e.to_string())?;
        Ok((o, c))
    })
    .unwrap()
}

/// Make a backup named `name`, incremental against `parent` when given.
fn backup(t: &MemoryTarget, src: &Path, name: &str, parent: Option<&str>) -> Catalog {
    let state = parent.map(|p| {
        let b = open(t, p);
        ParentState::read(p, Arc::clone(b.objects()), &b.catalog).unwrap()
    });
    let up = t.begin("h", name).unwrap();
    write_backup_against(up, &options(src), "h", None, None, state.as_ref(), &mut |_, _| {}).unwrap().0
}

fn restored(t: &MemoryTarget, name: &str) -> BTreeMap<String, String> {
    let to = tempfile::tempdir().unwrap();
    let b = open(t, name);
    let r = restore(&b, to.path(), &[]).unwrap();
    assert!(r.lost.is_empty(), "{name}: {:?}", r.lost);
    snapshot(to.path())
}

/// Past the racy window: files written before it are judged by metadata alone.
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

#[test]
fn a_chain_restores_the_tree_as_it_was_at_each_backup() {
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    tree(s);
    settle();
    let t = MemoryTarget::new();
    assert!(backup(&t, s, "b1", None).parent.is_none());
    let at1 = snapshot(s);

    // Change one file in place with the same size and time (only ctime tells), add, delete, replace a type.
    let f = s.join("d1/f1");
    let before = std::fs::metadata(&f).unwrap();
    let mut data = std::fs::read(&f).unwrap();
    data[0] ^= 1;
    std::fs::write(&f, &data).unwrap();
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::new(before.mtime() as u64, before.mtime_nsec() as u32);
    std::fs::File::options().write(true).open(&f).unwrap().set_modified(mtime).unwrap();
    write(s, "d2/new", b"new file");
    std::fs::remove_dir_all(s.join("gone")).unwrap();
    std::fs::remove_file(s.join("d3/f3")).unwrap();
    std::fs::create_dir(s.join("d3/f3")).unwrap();
    std::fs::set_permissions(s.join("keep/x"), std::fs::Permissions::from_mode(0o600)).unwrap();
    settle();
    let c2 = backup(&t, s, "b2", Some("b1"));
    let at2 = snapshot(s);
    let p = c2.parent.as_ref().unwrap();
    assert_eq!((p.name.as_str(), p.full.as_str(), p.depth), ("b1", "b1", 1));
    // Stored: the 4 changed entries, d3/f3 as a directory, and the directories above them.
    assert_eq!(c2.stats.files, 3, "{:?}", c2.stats);
    assert_eq!(c2.stats.deleted, 3, "gone, gone/y and the file d3/f3 was: {:?}", c2.stats);
    assert_eq!(c2.stats.compared, 0, "nothing was ambiguous: {:?}", c2.stats);
    assert!(c2.stats.unchanged >= 38, "{:?}", c2.stats);

    // A second increment on the first.
    write(s, "d0/f0", b"rewritten");
    settle();
    let c3 = backup(&t, s, "b3", Some("b2"));
    let at3 = snapshot(s);
    assert_eq!(c3.parent.as_ref().unwrap().depth, 2);
    assert_eq!(c3.stats.files, 1, "{:?}", c3.stats);

    assert_eq!(restored(&t, "b1"), at1);
    assert_eq!(restored(&t, "b2"), at2);
    assert_eq!(restored(&t, "b3"), at3);
    assert_eq!(open(&t, "b3").ancestor_names(), ["b2", "b1"]);
    for n in ["b1", "b2", "b3"] {
        let v = verify(&open(&t, n));
        assert!(v.ok(), "{n}: {v:?}");
    }
    // A part of the tree from the chain: only what the patterns select.
    let to = tempfile::tempdir().unwrap();
    let r = restore(&open(&t, "b3"), to.path(), &["d1".into()]).unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_eq!(std::fs::read(to.path().join("d1/f1")).unwrap(), data);
    assert!(!to.path().join("d0").exists());
}

#[test]
fn an_unchanged_tree_gives_an_increment_that_stores_and_reads_nothing() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    settle();
    let t = MemoryTarget::new();
    let full = backup(&t, src.path(), "b1", None);
    let c = backup(&t, src.path(), "b2", Some("b1"));
    assert_eq!((c.stats.entries, c.stats.files, c.stats.bytes_in), (0, 0, 0), "{:?}", c.stats);
    assert_eq!(c.stats.compared, 0, "no file read: {:?}", c.stats);
    assert_eq!(c.stats.unchanged, full.stats.entries);
    assert_eq!((c.stats.deleted, c.deleted.as_ref().unwrap().size), (0, 0));
    assert_eq!(restored(&t, "b2"), snapshot(src.path()));
}

#[test]
fn a_file_changed_within_the_parents_timestamp_granularity_is_compared_by_content() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    // No settling: every file's ctime is within the racy window of the full backup's start.
    let t = MemoryTarget::new();
    backup(&t, src.path(), "b1", None);
    let c = backup(&t, src.path(), "b2", Some("b1"));
    assert!(c.stats.compared >= 40, "{:?}", c.stats);
    assert_eq!(c.stats.files, 0, "same content: not stored again: {:?}", c.stats);
}

#[test]
fn a_swapped_or_missing_parent_is_an_error_naming_it() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    settle();
    let t = MemoryTarget::new();
    backup(&t, src.path(), "b1", None);
    write(src.path(), "d0/f0", b"changed");
    backup(&t, src.path(), "b2", Some("b1"));
    // Another backup put in the parent's place.
    t.delete("h", "b1").unwrap();
    backup(&t, src.path(), "b1", None);
    let head = Backup::open_objects(t.backup("h", "b2").unwrap()).unwrap();
    let opener = |n: &str| -> Result<chain::Opened, String> {
        let o: Arc<dyn Objects> = t.backup("h", n).map_err(|e| e.to_string())?;
        let c = read::parse_catalog(&o.read("backup.json", 1 << 20).map_err(|e| e.to_string())?, n)
            .map_err(|e| e.to_string())?;
        Ok((o, c))
    };
    let e = chain::resolve(head, "b2", &mut { opener }).expect_err("swapped").to_string();
    assert!(e.contains("whose manifest has BLAKE3"), "{e}");
    t.delete("h", "b1").unwrap();
    let head = Backup::open_objects(t.backup("h", "b2").unwrap()).unwrap();
    let e = chain::resolve(head, "b2", &mut { opener }).expect_err("missing").to_string();
    assert!(e.contains("parent b1 cannot be used"), "{e}");
    // Unresolved, an increment is not restored as if it were whole.
    let head = Backup::open_objects(t.backup("h", "b2").unwrap()).unwrap();
    let to = tempfile::tempdir().unwrap();
    assert!(restore(&head, to.path(), &[]).is_err());
}

/// A chain b1 <- b2 where b2 deleted `gone` (with `gone/y`) and `d3/f3`.
fn chain_with_deletions(s: &Path) -> MemoryTarget {
    tree(s);
    settle();
    let t = MemoryTarget::new();
    backup(&t, s, "b1", None);
    std::fs::remove_dir_all(s.join("gone")).unwrap();
    std::fs::remove_file(s.join("d3/f3")).unwrap();
    settle();
    let c = backup(&t, s, "b2", Some("b1"));
    assert_eq!(c.stats.deleted, 3, "{:?}", c.stats);
    t
}

/// Replace b2's `deleted.list` by `list`, and its catalog's record of it
/// to match (as whoever can write to the target and sign could), so that
/// only the lines themselves are wrong.
fn forge_deleted(t: &MemoryTarget, list: &[u8], count: u64) {
    let text = t.backup("h", "b2").unwrap().read("backup.json", 1 << 20).unwrap();
    let mut c: serde_json::Value = serde_json::from_slice(&text).unwrap();
    c["deleted"]["size"] = list.len().into();
    c["deleted"]["blake3"] = blake3::hash(list).to_hex().to_string().into();
    c["stats"]["deleted"] = count.into();
    t.tamper("h/b2/deleted.list", list.to_vec());
    t.tamper("h/b2/backup.json", serde_json::to_vec_pretty(&c).unwrap());
}

#[test]
fn verify_checks_an_increments_deleted_list_against_its_catalog() {
    let src = tempfile::tempdir().unwrap();
    let t = chain_with_deletions(src.path());
    let honest = verify(&open(&t, "b2"));
    assert!(honest.ok(), "{honest:?}");

    // One byte changed: the list no longer matches the checksum the signed catalog gives.
    let key = "h/b2/deleted.list";
    let mut data = t.backup("h", "b2").unwrap().read("deleted.list", 1 << 20).unwrap();
    data[0] ^= 1;
    t.tamper(key, data.clone());
    let v = verify(&open(&t, "b2"));
    assert!(!v.ok());
    assert!(v.damaged_volumes.iter().any(|d| d.contains("deleted.list") && d.contains("checksum")), "{v:?}");
    // Missing: named as well.
    t.remove(key);
    let v = verify(&open(&t, "b2"));
    assert!(v.damaged_volumes.iter().any(|d| d.contains("deleted.list")), "{v:?}");
}

#[test]
fn verify_reports_deletions_the_parent_does_not_explain() {
    let src = tempfile::tempdir().unwrap();
    let t = chain_with_deletions(src.path());
    let lost = |list: &[u8], count: u64| {
        forge_deleted(&t, list, count);
        let v = verify(&open(&t, "b2"));
        assert!(!v.ok(), "{:?}: {v:?}", String::from_utf8_lossy(list));
        v.lost
    };
    // The honest lines, reordered, are still fine.
    forge_deleted(&t, b"d3/f3\0gone/y\0gone\0", 3);
    assert!(verify(&open(&t, "b2")).ok());

    // A path the parent never held.
    let l = lost(b"gone\0gone/y\0d3/f3\0never/was\0", 4);
    assert!(l.iter().any(|x| x.starts_with("never/was: ") && x.contains("does not hold")), "{l:?}");
    // A path that would take `rm -rf` outside the restore's target.
    let l = lost(b"gone\0gone/y\0d3/f3\0../../etc\0", 4);
    assert!(l.iter().any(|x| x.starts_with("../../etc: ") && x.contains("not a plain relative path")), "{l:?}");
    // A file this backup takes unchanged from its parent: GNU tar would delete it for good.
    let l = lost(b"gone\0gone/y\0d3/f3\0d0/f0\0", 4);
    assert!(l.iter().any(|x| x.starts_with("d0/f0: ") && x.contains("takes it unchanged")), "{l:?}");
    // A deletion left out: tar would leave it behind.
    let l = lost(b"gone\0gone/y\0", 2);
    assert!(l.iter().any(|x| x.starts_with("d3/f3: ") && x.contains("neither lists it")), "{l:?}");
    // Named twice, and counted otherwise than the catalog says.
    let l = lost(b"gone\0gone/y\0d3/f3\0gone\0", 3);
    assert!(l.iter().any(|x| x.starts_with("gone: ") && x.contains("twice")), "{l:?}");
    assert!(l.iter().any(|x| x.contains("names 4 paths where the catalog counts 3")), "{l:?}");
    // Not NUL-ended lines: damaged as an object.
    forge_deleted(&t, b"gone\0gone/y\0\0d3/f3", 3);
    let v = verify(&open(&t, "b2"));
    assert!(v.damaged_volumes.iter().any(|d| d.contains("deleted.list") && d.contains("empty line")), "{v:?}");
}
