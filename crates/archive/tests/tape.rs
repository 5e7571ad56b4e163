//! Backups to tape through the `tape://` target on an in-memory drive:
//! label, data and index files in whole blocks, read back forward only
//! (restore and verify), a tape with a backup refused unless overwriting,
//! damage found by verify. The real drive (st over iSCSI) is tested in
//! crates/lifeboat/tests/tape_vm.rs.

#![allow(clippy::unwrap_used)]

use lifeboat_archive::backup::write_signed_backup;
use lifeboat_archive::frames::Codec;
use lifeboat_archive::read::Backup;
use lifeboat_archive::restore::{restore_sequential, verify_sequential};
use lifeboat_archive::target::tape::{MemoryDrive, SharedMemoryDrive, TapeSettings, TapeTarget};
use lifeboat_archive::target::{State, Target};
use lifeboat_archive::BackupOptions;
use std::path::Path;
use std::sync::Arc;

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
    }
}

fn target(drive: &Arc<MemoryDrive>, block: u64, overwrite: bool) -> TapeTarget {
    let d = Arc::new(SharedMemoryDrive(Arc::clone(drive)));
    TapeTarget::with_drive(d, &TapeSettings { block_size: block, overwrite }).unwrap()
}

#[test]
fn a_backup_on_tape_is_label_data_index_in_whole_blocks_and_restores_forward_only() {
    let src = tempfile::tempdir().unwrap();
    let files = tree(src.path());
    let drive = Arc::new(MemoryDrive::new());
    let t = target(&drive, 64 << 10, false);
    let up = t.begin("web1", "2026-12-02T000000.000Z").unwrap();
    let (catalog, _) = write_signed_backup(up, &options(src.path()), "web1", None, &mut |_, _| {}).unwrap();
    assert!(catalog.volumes.len() >= 3, "{} volumes", catalog.volumes.len());
    let blocks = drive.block_sizes();
    assert_eq!(blocks.len(), 3, "label, data, index: {blocks:?}");
    assert_eq!(blocks[0].len(), 1, "the label is one block");
    assert!(blocks.iter().flatten().all(|&n| n == 64 << 10), "whole blocks only: {blocks:?}");

    // Read back by a new target (a new run): the label, then the index.
    let t = target(&drive, 64 << 10, false);
    assert_eq!(t.hosts().unwrap(), vec!["web1".to_string()]);
    let listed = t.scan("web1").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, State::Complete);
    assert!(listed[0].location.contains("web1/2026-12-02T000000.000Z tape 1"), "{}", listed[0].location);
    // The URL names the one backup on it, whatever host asks.
    let b = Backup::open_objects(t.choose("another-host").unwrap()).unwrap();
    assert!(b.open_volume(1).is_err(), "volumes are not read by range on tape");
    let v = verify_sequential(&b, b.objects().sequential().unwrap());
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.entries as usize, b.entries.len());

    let to = tempfile::tempdir().unwrap();
    let r = restore_sequential(&b, b.objects().sequential().unwrap(), to.path(), &[], &mut |_, _| {}).unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    for (p, d) in &files {
        assert_eq!(&std::fs::read(to.path().join(p)).unwrap(), d, "{p}");
    }
}

#[test]
fn a_tape_with_a_backup_is_refused_unless_overwriting() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let drive = Arc::new(MemoryDrive::new());
    let t = target(&drive, 64 << 10, false);
    write_signed_backup(t.begin("web1", "1").unwrap(), &options(src.path()), "web1", None, &mut |_, _| {}).unwrap();
    let e = target(&drive, 64 << 10, false).begin("web1", "2").unwrap_err().to_string();
    assert!(e.contains("holds a lifeboat backup (web1/1 tape 1)") && e.contains("--overwrite-tape"), "{e}");
    let t = target(&drive, 64 << 10, true);
    write_signed_backup(t.begin("web1", "2").unwrap(), &options(src.path()), "web1", None, &mut |_, _| {}).unwrap();
    let listed = target(&drive, 64 << 10, false).scan("web1").unwrap();
    assert_eq!(listed.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["2"]);
}

#[test]
fn a_damaged_block_is_found_by_verify_and_loses_only_its_entries() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let drive = Arc::new(MemoryDrive::new());
    let t = target(&drive, 32 << 10, false);
    write_signed_backup(t.begin("web1", "1").unwrap(), &options(src.path()), "web1", None, &mut |_, _| {}).unwrap();
    drive.damage(1, 5);
    let t = target(&drive, 32 << 10, false);
    let b = Backup::open_objects(t.choose("web1").unwrap()).unwrap();
    let v = verify_sequential(&b, b.objects().sequential().unwrap());
    assert!(!v.ok());
    assert_eq!(v.damaged_volumes.len(), 1, "{v:?}");
    assert!(!v.lost.is_empty() && v.lost.len() < b.entries.len(), "{v:?}");
}

#[test]
fn an_interrupted_backup_lists_as_interrupted_and_is_not_restorable() {
    let drive = Arc::new(MemoryDrive::new());
    let t = target(&drive, 64 << 10, false);
    let up = t.begin("web1", "1").unwrap();
    up.abort();
    let t = target(&drive, 64 << 10, false);
    assert_eq!(t.scan("web1").unwrap()[0].state, State::Interrupted);
    let e = t.choose("web1").unwrap_err().to_string();
    assert!(e.contains("interrupted"), "{e}");
}

/// A changer of two slots: every load swaps the tape in the drive with the other one.
#[derive(Debug)]
struct Swapper(Arc<MemoryDrive>, std::sync::Mutex<Vec<String>>);

impl lifeboat_archive::target::tape::Loader for Swapper {
    fn load(&self, want: &str, _writing: bool) -> std::io::Result<()> {
        self.1.lock().unwrap().push(want.to_string());
        self.0.swap(0);
        Ok(())
    }
}

/// A person who never changes the tape.
#[derive(Debug)]
struct Stubborn;

impl lifeboat_archive::target::tape::Loader for Stubborn {
    fn load(&self, _want: &str, _writing: bool) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_backup_larger_than_a_tape_continues_on_the_next_and_reads_back_across_both() {
    let src = tempfile::tempdir().unwrap();
    let files = tree(src.path());
    // 6 × 100 kB of noise: about 600 kB; a tape takes 8 blocks of 64 KiB.
    let drive = Arc::new(MemoryDrive::library(2, 8));
    let loads = Arc::new(Swapper(Arc::clone(&drive), Default::default()));
    let t = target(&drive, 64 << 10, false).with_loader(loads.clone());
    let up = t.begin("web1", "2026-12-02T000000.000Z").unwrap();
    write_signed_backup(up, &options(src.path()), "web1", None, &mut |_, _| {}).unwrap();
    assert_eq!(*loads.1.lock().unwrap(), vec!["web1/2026-12-02T000000.000Z tape 2".to_string()]);
    // Tape 2 is in the drive: its index names the backup; restore loads tape 1, then 2.
    let t = target(&drive, 64 << 10, false).with_loader(loads.clone());
    let listed = t.scan("web1").unwrap();
    assert_eq!(listed[0].state, State::Complete, "{listed:?}");
    let b = Backup::open_objects(t.choose("web1").unwrap()).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let report = restore_sequential(&b, b.objects().sequential().unwrap(), dst.path(), &[], &mut |_, _| {}).unwrap();
    assert!(report.lost.is_empty(), "{:?}", report.lost);
    for (p, d) in &files {
        assert_eq!(&std::fs::read(dst.path().join(p)).unwrap(), d, "{p}");
    }
    let loaded = loads.1.lock().unwrap().clone();
    assert_eq!(loaded[1..], ["web1/2026-12-02T000000.000Z tape 1", "web1/2026-12-02T000000.000Z tape 2"]);

    // Unattended without a changer: the backup stops naming the tape it needs.
    let drive = Arc::new(MemoryDrive::library(2, 8));
    let t = target(&drive, 64 << 10, false);
    let up = t.begin("web1", "2026-12-03T000000.000Z").unwrap();
    let e = format!("{:#}", write_signed_backup(up, &options(src.path()), "web1", None, &mut |_, _| {}).unwrap_err());
    assert!(e.contains("web1/2026-12-03T000000.000Z tape 2") && e.contains("backup.tape.changer"), "{e}");
}

#[test]
fn a_wrong_tape_is_refused_with_its_label_named() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let drive = Arc::new(MemoryDrive::library(2, 8));
    let loads = Arc::new(Swapper(Arc::clone(&drive), Default::default()));
    let t = target(&drive, 64 << 10, false).with_loader(loads);
    let up = t.begin("web1", "2026-12-02T000000.000Z").unwrap();
    write_signed_backup(up, &options(src.path()), "web1", None, &mut |_, _| {}).unwrap();
    // Tape 2 stays in the drive when tape 1 is asked for.
    let t = target(&drive, 64 << 10, false).with_loader(Arc::new(Stubborn));
    let b = Backup::open_objects(t.choose("web1").unwrap()).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let e = match restore_sequential(&b, b.objects().sequential().unwrap(), dst.path(), &[], &mut |_, _| {}) {
        Ok(r) => format!("{:?}", r.lost),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("is web1/2026-12-02T000000.000Z tape 2, not web1/2026-12-02T000000.000Z tape 1"), "{e}");
}
