//! Backups through the object-shaped target interface, without root: the
//! in-memory store (shaped like S3: no rename, catalog last, create-only)
//! and a directory, written, listed, chosen, verified and restored by range
//! and sequentially (the tape and pipe path).

#![allow(clippy::unwrap_used)]

use lifeboat_archive::backup::write_signed_backup;
use lifeboat_archive::frames::Codec;
use lifeboat_archive::read::Backup;
use lifeboat_archive::restore::{restore_sequential, restore_with_progress, verify};
use lifeboat_archive::target::{FileTarget, MemoryTarget, ObjectReader, State, Target};
use lifeboat_archive::BackupOptions;
use std::io::Read;
use std::path::Path;

/// A tree with enough incompressible data to fill several 128 KiB volumes.
fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..6 {
        let data: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        files.push((format!("d{}/f{i}", i % 2), data));
    }
    files.push(("small".into(), b"hello".to_vec()));
    for (p, d) in &files {
        let f = root.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, d).unwrap();
    }
    files
}

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

fn assert_restored(to: &Path, files: &[(String, Vec<u8>)]) {
    for (p, d) in files {
        assert_eq!(&std::fs::read(to.join(p)).unwrap(), d, "{p}");
    }
}

/// The concatenated volumes of a backup, as a tape or `cat vol-*` gives them.
fn concatenated(b: &Backup) -> Vec<u8> {
    let mut all = Vec::new();
    for n in 1..=b.catalog.volumes.len() as u32 {
        ObjectReader::new(b.open_volume(n).unwrap()).read_to_end(&mut all).unwrap();
    }
    all
}

#[test]
fn a_backup_on_an_object_store_is_invisible_until_its_catalog_and_restores_by_range_and_in_sequence() {
    let src = tempfile::tempdir().unwrap();
    let files = tree(src.path());
    let t = MemoryTarget::new();
    let up = t.begin("web1", "2026-12-02T000000.000Z").unwrap();
    let (catalog, _) = write_signed_backup(up, &options(src.path()), "web1", None, &mut |_, _| {}).unwrap();
    assert!(catalog.volumes.len() >= 3, "{} volumes", catalog.volumes.len());
    let keys = t.keys();
    assert!(keys.iter().any(|k| k == "web1/2026-12-02T000000.000Z/backup.json"), "{keys:?}");
    assert_eq!(t.hosts().unwrap(), vec!["web1".to_string()]);
    let listed = t.scan("web1").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, State::Complete);

    let b = Backup::open_objects(t.choose("web1").unwrap()).unwrap();
    assert_eq!(b.location(), "mem://web1/2026-12-02T000000.000Z");
    assert!(b.local_dir().is_none());
    let v = verify(&b);
    assert!(v.ok(), "{v:?}");

    let to = tempfile::tempdir().unwrap();
    let r = restore_with_progress(&b, to.path(), &[], &mut |_, _| {}).unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_restored(to.path(), &files);

    // The tape and pipe path: the volumes in order, read once, never backwards.
    let to = tempfile::tempdir().unwrap();
    let stream = std::io::Cursor::new(concatenated(&b));
    let r = restore_sequential(&b, Box::new(stream), to.path(), &[], &mut |_, _| {}).unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_restored(to.path(), &files);
}

#[test]
fn a_sequential_stream_that_ends_early_loses_only_the_entries_after_it() {
    let src = tempfile::tempdir().unwrap();
    let files = tree(src.path());
    let t = MemoryTarget::new();
    let up = t.begin("h", "b").unwrap();
    write_signed_backup(up, &options(src.path()), "h", None, &mut |_, _| {}).unwrap();
    let b = Backup::open_objects(t.backup("h", "b").unwrap()).unwrap();
    let mut all = concatenated(&b);
    // The tape ends in the middle of the last volume.
    let last = b.catalog.volumes.last().unwrap().size as usize;
    all.truncate(all.len() - last / 2);
    let to = tempfile::tempdir().unwrap();
    let r = restore_sequential(&b, Box::new(std::io::Cursor::new(all)), to.path(), &[], &mut |_, _| {}).unwrap();
    assert!(!r.lost.is_empty(), "the truncated entries are reported lost");
    assert!(r.lost.len() < files.len(), "only the entries in the missing part: {:?}", r.lost);
    let first = &files[0];
    assert_eq!(std::fs::read(to.path().join(&first.0)).unwrap(), first.1, "an early entry is restored");
}

#[test]
fn a_damaged_object_on_the_store_is_found_by_verify() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let t = MemoryTarget::new();
    let (catalog, _) =
        write_signed_backup(t.begin("h", "b").unwrap(), &options(src.path()), "h", None, &mut |_, _| {}).unwrap();
    let key = format!("h/b/{}", catalog.volumes[1].name);
    let mut data = t.backup("h", "b").unwrap().read(&catalog.volumes[1].name, u64::MAX).unwrap();
    data[200] ^= 0xff;
    t.tamper(&key, data);
    let b = Backup::open_objects(t.backup("h", "b").unwrap()).unwrap();
    let v = verify(&b);
    assert!(!v.ok());
    assert!(v.damaged_volumes.iter().any(|d| d.contains(&catalog.volumes[1].name)), "{:?}", v.damaged_volumes);
    // A lost catalog makes the backup not a backup, never an older one in its place.
    t.remove("h/b/backup.json");
    assert_eq!(t.scan("h").unwrap()[0].state, State::Interrupted);
    assert!(t.newest("h").is_err());
}

#[test]
fn a_failed_backup_leaves_nothing_that_looks_like_one() {
    let src = tempfile::tempdir().unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(src.path().join("sock")).unwrap();
    let mut o = options(src.path());
    o.paths = vec!["sock".into()];
    for t in [Box::new(MemoryTarget::new()) as Box<dyn Target>, {
        let d = tempfile::tempdir().unwrap().keep();
        Box::new(FileTarget::new(&d))
    }] {
        let up = t.begin("h", "b").unwrap();
        let e = write_signed_backup(up, &o, "h", None, &mut |_, _| {}).expect_err("nothing selected");
        assert!(e.to_string().contains("selects nothing"), "{e}");
        assert!(t.scan("h").unwrap().is_empty(), "{}: the upload was aborted", t.url());
        if let Some(d) = t.local_dir() {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}

#[test]
fn a_directory_target_publishes_by_rename_and_the_backup_reads_the_same() {
    let src = tempfile::tempdir().unwrap();
    let files = tree(src.path());
    let dst = tempfile::tempdir().unwrap();
    let t = lifeboat_archive::target::open(&format!("file://{}", dst.path().display())).unwrap();
    assert_eq!(t.local_dir(), Some(dst.path()));
    let up = t.begin("h", "b1").unwrap();
    assert_eq!(t.scan("h").unwrap()[0].state, State::Running);
    let (_, objects) = write_signed_backup(up, &options(src.path()), "h", None, &mut |_, _| {}).unwrap();
    assert_eq!(objects.local_dir(), Some(dst.path().join("h/b1").as_path()));
    assert!(!dst.path().join("h/b1.partial").exists());
    let b = Backup::open_objects(t.choose("h").unwrap()).unwrap();
    let to = tempfile::tempdir().unwrap();
    restore_with_progress(&b, to.path(), &[], &mut |_, _| {}).unwrap();
    assert_restored(to.path(), &files);
    // The URL of the backup's own directory names that backup.
    let itself = lifeboat_archive::target::open(&format!("file://{}/h/b1", dst.path().display())).unwrap();
    assert_eq!(itself.choose("other-host").unwrap().location(), dst.path().join("h/b1").display().to_string());
}

#[test]
fn paths_read_from_a_snapshot_are_named_as_if_read_live_and_its_mount_points_recorded_once() {
    // live/ is the tree (with srv/ a mount point); snap-root/ and snap-srv/ stand for the snapshots.
    let d = tempfile::tempdir().unwrap();
    let (live, snap_root, snap_srv) = (d.path().join("live"), d.path().join("snap-root"), d.path().join("snap-srv"));
    for (dir, content) in [(&live, "live"), (&snap_root, "snapshot")] {
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::create_dir_all(dir.join("srv")).unwrap();
        std::fs::write(dir.join("etc/db"), content).unwrap();
    }
    std::fs::write(snap_root.join("srv/underneath"), "hidden by the mount").unwrap();
    std::fs::create_dir_all(&snap_srv).unwrap();
    std::fs::write(snap_srv.join("data"), "srv snapshot").unwrap();
    let mut o = options(&live);
    o.paths = vec![".".into(), "srv".into()];
    o.read_from = vec![(".".into(), snap_root.clone()), ("srv".into(), snap_srv.clone())];
    let t = MemoryTarget::new();
    let up = t.begin("h", "b").unwrap();
    write_signed_backup(up, &o, "h", None, &mut |_, _| {}).unwrap();
    let b = Backup::open_objects(t.choose("h").unwrap()).unwrap();
    let to = tempfile::tempdir().unwrap();
    let r = restore_with_progress(&b, to.path(), &[], &mut |_, _| {}).unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_eq!(std::fs::read_to_string(to.path().join("etc/db")).unwrap(), "snapshot");
    assert_eq!(std::fs::read_to_string(to.path().join("srv/data")).unwrap(), "srv snapshot");
    assert!(!to.path().join("srv/underneath").exists(), "the mount point is read from its own snapshot");
    let names: Vec<String> = b.entries.iter().map(|m| m.path.clone()).collect();
    assert_eq!(names.iter().filter(|n| *n == "srv").count(), 1, "{names:?}");
    assert!(!names.iter().any(|n| n.contains("snap")), "no snapshot path is stored: {names:?}");
}
