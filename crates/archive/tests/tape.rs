//! Backups to tape through the `tape://` target on an in-memory drive:
//! label, data and index files in whole blocks, read back forward only
//! (restore and verify), a tape with a backup refused unless overwriting,
//! damage found by verify. The real drive (st over iSCSI) is tested in
//! crates/lifeboat/tests/vm/tape.rs (the `s8_tape` test of recover_vm).

#![allow(clippy::unwrap_used)]

use lifeboat_archive::backup::write_signed_backup;
use lifeboat_archive::frames::Codec;
use lifeboat_archive::read::Backup;
use lifeboat_archive::restore::{restore_sequential, verify_sequential};
use lifeboat_archive::target::tape::{
    ChangerLoader, MemoryDrive, PromptLoader, SharedMemoryDrive, TapeSettings, TapeTarget,
};
use lifeboat_archive::target::{State, Target};
use lifeboat_archive::BackupOptions;
use lifeboat_runner::Runner;
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
        read_from: Vec::new(),
        reserved: None,
    }
}

fn target(drive: &Arc<MemoryDrive>, block: u64, overwrite: bool) -> TapeTarget {
    let d = Arc::new(SharedMemoryDrive(Arc::clone(drive)));
    TapeTarget::with_drive(d, &TapeSettings { block_size: block, overwrite, ..TapeSettings::default() }).unwrap()
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
    // The tape holds no index and no "continued" note: it lists as interrupted, not as a backup.
    let listed = target(&drive, 64 << 10, false).scan("web1").unwrap();
    assert_eq!(listed[0].state, State::Interrupted, "{listed:?}");
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

/// `mtx` for a [`MemoryDrive`] library: slot N is shelf tape N-1; the drive
/// starts with an empty placeholder (it is "empty" when `in_drive` is None).
struct FakeMtx {
    drive: Arc<MemoryDrive>,
    slots: usize,
    in_drive: std::sync::Mutex<Option<usize>>,
    log: std::sync::Mutex<Vec<String>>,
}

impl FakeMtx {
    fn status(&self) -> String {
        let d = *self.in_drive.lock().unwrap();
        let mut s = format!("  Storage Changer /dev/sg9:1 Drives, {} Slots ( 0 Import/Export )\n", self.slots);
        match d {
            Some(n) => {
                s.push_str(&format!("Data Transfer Element 0:Full (Storage Element {n} Loaded):VolumeTag = T{n}\n"))
            }
            None => s.push_str("Data Transfer Element 0:Empty\n"),
        }
        for n in 1..=self.slots {
            if d == Some(n) {
                s.push_str(&format!("      Storage Element {n}:Empty:VolumeTag=\n"));
            } else {
                s.push_str(&format!("      Storage Element {n}:Full :VolumeTag=T{n}\n"));
            }
        }
        s
    }
}

fn run_error(cmd: &lifeboat_runner::Cmd, why: &str) -> lifeboat_runner::RunError {
    lifeboat_runner::RunError::Failed { cmdline: cmd.cmdline(), status: "exit status 1".into(), stderr: why.into() }
}

impl lifeboat_runner::Runner for FakeMtx {
    fn probe(&self, cmd: &lifeboat_runner::Cmd) -> Result<lifeboat_runner::Output, lifeboat_runner::RunError> {
        if cmd.cmdline() != "mtx -f /dev/sg9 status" {
            return Err(run_error(cmd, "not scripted"));
        }
        Ok(lifeboat_runner::Output { stdout: self.status().into_bytes(), stderr: Vec::new() })
    }
    fn apply(&self, cmd: &lifeboat_runner::Cmd) -> Result<lifeboat_runner::Output, lifeboat_runner::RunError> {
        let line = cmd.cmdline();
        self.log.lock().unwrap().push(line.clone());
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut d = self.in_drive.lock().unwrap();
        match words[..] {
            ["mtx", "-f", "/dev/sg9", "load", n, "0"] if d.is_none() => {
                let n: usize = n.parse().unwrap();
                self.drive.swap(n - 1);
                *d = Some(n);
            }
            ["mtx", "-f", "/dev/sg9", "unload", n, "0"] if *d == Some(n.parse().unwrap()) => {
                self.drive.swap(n.parse::<usize>().unwrap() - 1);
                *d = None;
            }
            _ => return Err(run_error(cmd, "Illegal Request")),
        }
        Ok(lifeboat_runner::Output::default())
    }
    fn spawn(
        &self,
        cmd: &lifeboat_runner::Cmd,
        _: lifeboat_runner::Effect,
        _: lifeboat_runner::Streams,
    ) -> Result<lifeboat_runner::Process, lifeboat_runner::RunError> {
        Err(run_error(cmd, "not scripted"))
    }
    fn has(&self, _: &str) -> bool {
        true
    }
    fn planned(&self) -> Vec<String> {
        Vec::new()
    }
}

fn changer_target(mtx: &Arc<FakeMtx>, block: u64, overwrite: bool, capacity: Option<u64>) -> TapeTarget {
    let d: Arc<dyn lifeboat_archive::target::tape::Drive> = Arc::new(SharedMemoryDrive(Arc::clone(&mtx.drive)));
    let settings = TapeSettings { block_size: block, overwrite, capacity, ..TapeSettings::default() };
    let address = lifeboat_archive::target::tape::Address::parse("tape:///dev/nst0").unwrap();
    let runner: Arc<dyn lifeboat_runner::Runner> = mtx.clone();
    let l = ChangerLoader::new(&address, "/dev/sg9", Arc::clone(&d), runner, overwrite, 1 << 20).unwrap();
    TapeTarget::with_drive(d, &settings).unwrap().with_loader(Arc::new(l))
}

#[test]
fn a_changer_loads_the_next_blank_tape_skipping_other_backups_and_finds_the_tapes_to_read() {
    let src = tempfile::tempdir().unwrap();
    let files = tree(src.path());
    // Four slots; the drive's placeholder is shelf index 4 (never loaded: slots are 1..=4).
    let drive = Arc::new(MemoryDrive::library(6, 8));
    let mtx = Arc::new(FakeMtx { drive, slots: 4, in_drive: Default::default(), log: Default::default() });
    // Slot 2 holds another backup: it is skipped, not written over.
    mtx.apply(&lifeboat_runner::Cmd::new("mtx").args(["-f", "/dev/sg9", "load", "2", "0"])).unwrap();
    let small = tempfile::tempdir().unwrap();
    std::fs::write(small.path().join("f"), b"other").unwrap();
    let t = changer_target(&mtx, 64 << 10, false, None);
    write_signed_backup(t.begin("db1", "old").unwrap(), &options(small.path()), "db1", None, &mut |_, _| {}).unwrap();
    mtx.apply(&lifeboat_runner::Cmd::new("mtx").args(["-f", "/dev/sg9", "unload", "2", "0"])).unwrap();

    mtx.apply(&lifeboat_runner::Cmd::new("mtx").args(["-f", "/dev/sg9", "load", "1", "0"])).unwrap();
    mtx.log.lock().unwrap().clear();
    let t = changer_target(&mtx, 64 << 10, false, None);
    let up = t.begin("web1", "2026-12-02T000000.000Z").unwrap();
    write_signed_backup(up, &options(src.path()), "web1", None, &mut |_, _| {}).unwrap();
    assert_eq!(
        *mtx.log.lock().unwrap(),
        [
            "mtx -f /dev/sg9 unload 1 0",
            "mtx -f /dev/sg9 load 2 0",
            "mtx -f /dev/sg9 unload 2 0",
            "mtx -f /dev/sg9 load 3 0"
        ]
    );

    // A new run with tape 2 (slot 3) in the drive: the index is there; tape 1 is searched for and read first.
    mtx.log.lock().unwrap().clear();
    let t = changer_target(&mtx, 64 << 10, false, None);
    let b = Backup::open_objects(t.choose("web1").unwrap()).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let report = restore_sequential(&b, b.objects().sequential().unwrap(), dst.path(), &[], &mut |_, _| {}).unwrap();
    assert!(report.lost.is_empty(), "{:?}", report.lost);
    for (p, d) in &files {
        assert_eq!(&std::fs::read(dst.path().join(p)).unwrap(), d, "{p}");
    }
    let log = mtx.log.lock().unwrap().clone();
    // Tape 1 is searched for (slot 2 is guessed first: one before tape 2's), then tape 2 is loaded again.
    assert_eq!(log.first().map(String::as_str), Some("mtx -f /dev/sg9 unload 3 0"), "{log:?}");
    assert_eq!(log[1], "mtx -f /dev/sg9 load 2 0", "{log:?}");
    assert!(log.contains(&"mtx -f /dev/sg9 load 1 0".to_string()), "{log:?}");
    assert_eq!(log.last().map(String::as_str), Some("mtx -f /dev/sg9 load 3 0"), "{log:?}");
    let v = verify_sequential(&b, b.objects().sequential().unwrap());
    assert!(v.ok(), "{v:?}");

    // Two slots, the other one holding another backup: no blank tape for tape 2; the error names it and the fix.
    let drive = Arc::new(MemoryDrive::library(3, 8));
    let mtx = Arc::new(FakeMtx { drive, slots: 2, in_drive: Default::default(), log: Default::default() });
    mtx.apply(&lifeboat_runner::Cmd::new("mtx").args(["-f", "/dev/sg9", "load", "2", "0"])).unwrap();
    let t = changer_target(&mtx, 64 << 10, false, None);
    write_signed_backup(t.begin("db1", "old").unwrap(), &options(small.path()), "db1", None, &mut |_, _| {}).unwrap();
    mtx.apply(&lifeboat_runner::Cmd::new("mtx").args(["-f", "/dev/sg9", "unload", "2", "0"])).unwrap();
    mtx.apply(&lifeboat_runner::Cmd::new("mtx").args(["-f", "/dev/sg9", "load", "1", "0"])).unwrap();
    let t = changer_target(&mtx, 64 << 10, false, None);
    let up = t.begin("web1", "new").unwrap();
    let e = format!("{:#}", write_signed_backup(up, &options(src.path()), "web1", None, &mut |_, _| {}).unwrap_err());
    assert!(
        e.contains("no slot holds a blank tape for web1/new tape 2") && e.contains("slot 2 holds db1/old tape 1"),
        "{e}"
    );
    assert!(e.contains("--overwrite-tape"), "{e}");
}

#[test]
fn a_capacity_ends_each_tape_after_that_many_bytes() {
    let src = tempfile::tempdir().unwrap();
    let files = tree(src.path());
    // Tapes without an end: only the capacity (4 blocks of 64 KiB) makes the backup span tapes.
    let drive = Arc::new(MemoryDrive::library(6, usize::MAX));
    let mtx = Arc::new(FakeMtx { drive, slots: 5, in_drive: Default::default(), log: Default::default() });
    mtx.apply(&lifeboat_runner::Cmd::new("mtx").args(["-f", "/dev/sg9", "load", "1", "0"])).unwrap();
    let t = changer_target(&mtx, 64 << 10, false, Some(256 << 10));
    let up = t.begin("web1", "cap").unwrap();
    write_signed_backup(up, &options(src.path()), "web1", None, &mut |_, _| {}).unwrap();
    let data_blocks = mtx.drive.block_sizes()[1].len();
    assert!(data_blocks <= 4, "the last tape took {data_blocks} data blocks");
    let loads = mtx.log.lock().unwrap().iter().filter(|l| l.contains(" load ")).count();
    assert!(loads >= 3, "600 kB on 256 KiB tapes: three tapes at least, {loads} loads");
    let t = changer_target(&mtx, 64 << 10, false, None);
    let b = Backup::open_objects(t.choose("web1").unwrap()).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let report = restore_sequential(&b, b.objects().sequential().unwrap(), dst.path(), &[], &mut |_, _| {}).unwrap();
    assert!(report.lost.is_empty(), "{:?}", report.lost);
    for (p, d) in &files {
        assert_eq!(&std::fs::read(dst.path().join(p)).unwrap(), d, "{p}");
    }
}

#[test]
fn a_person_is_asked_for_each_tape_and_asked_again_for_a_wrong_one() {
    let src = tempfile::tempdir().unwrap();
    let files = tree(src.path());
    let drive = Arc::new(MemoryDrive::library(2, 8));
    let d: Arc<dyn lifeboat_archive::target::tape::Drive> = Arc::new(SharedMemoryDrive(Arc::clone(&drive)));
    // The "person" swaps the tapes as each prompt comes: the input answers after the swap.
    #[derive(Clone)]
    struct Out(Arc<std::sync::Mutex<Vec<u8>>>, Arc<MemoryDrive>);
    impl std::io::Write for Out {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            if b.ends_with(b"press Enter: ") {
                self.1.swap(0);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Out(Default::default(), Arc::clone(&drive));
    let ask = |answers: &'static [u8]| {
        PromptLoader::new(Arc::clone(&d), false, 1 << 20, Box::new(answers), Box::new(out.clone()))
    };
    let t = TapeTarget::with_drive(Arc::clone(&d), &TapeSettings { block_size: 64 << 10, ..TapeSettings::default() })
        .unwrap()
        .with_loader(Arc::new(ask(b"\n")));
    let up = t.begin("web1", "b").unwrap();
    write_signed_backup(up, &options(src.path()), "web1", None, &mut |_, _| {}).unwrap();
    let said = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(said, "insert tape web1/b tape 2 (a blank tape: it is written) into tape://memory and press Enter: ");

    // Reading: tape 2 is in the drive; asked for tape 1 (swapped in), then for tape 2 (swapped back).
    out.0.lock().unwrap().clear();
    let t = TapeTarget::with_drive(Arc::clone(&d), &TapeSettings { block_size: 64 << 10, ..TapeSettings::default() })
        .unwrap()
        .with_loader(Arc::new(ask(b"\n\n")));
    let b = Backup::open_objects(t.choose("web1").unwrap()).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let report = restore_sequential(&b, b.objects().sequential().unwrap(), dst.path(), &[], &mut |_, _| {}).unwrap();
    assert!(report.lost.is_empty(), "{:?}", report.lost);
    for (p, d) in &files {
        assert_eq!(&std::fs::read(dst.path().join(p)).unwrap(), d, "{p}");
    }
    let said = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        said,
        "insert tape web1/b tape 1 into tape://memory and press Enter: insert tape web1/b tape 2 into tape://memory and press Enter: "
    );

    // Asked for tape 1 while the person keeps swapping: tape 2 comes, then tape 1; and the end of input stops it.
    out.0.lock().unwrap().clear();
    let l = ask(b"\n\n");
    use lifeboat_archive::target::tape::Loader;
    // The drive holds tape 2 now; one swap brings tape 1.
    l.load("web1/b tape 1", false).unwrap();
    let e = l.load("web1/b tape 1", false).unwrap_err().to_string();
    let said = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(said.contains("the tape in tape://memory holds web1/b tape 2, not what is asked for"), "{said}");
    assert!(e.contains("no answer (end of input) when asked for web1/b tape 1"), "{e}");
}
