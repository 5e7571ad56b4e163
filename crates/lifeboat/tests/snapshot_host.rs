//! `lifeboat backup --snapshot` on a btrfs loop device while a writer
//! appends sequence-numbered records to three files in round-robin (file i
//! gets record n only after file i-1 got it, durably, as a database orders
//! its writes with fsync): the restored files are whole
//! records, every record intact, and their counts differ by at most one in
//! the round-robin order (one instant). The snapshot is gone after the
//! backup, after a backup that fails mid-way (its target fills up), after
//! SIGTERM, and after a `kill -9` once the next run has removed it (saying
//! so). A filesystem that cannot be snapshotted (ext4 on a plain device) is
//! refused by `--snapshot`, naming it, and read live by `--snapshot=auto`.
//! Needs root, btrfs-progs, the btrfs module.

mod common;

use common::{config, hostname, lifeboat, root_or_skip, run_lifeboat, sh, LoopDisk};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Bytes per record.
const REC: usize = 512;
/// Files written in round-robin.
const FILES: usize = 3;

/// Record `n` of file `i`: its numbers, then bytes that depend on both
/// (barely compressible, so the backup takes a while; any tear shows).
fn record(i: usize, n: u64) -> Vec<u8> {
    let mut r = format!("file {i} record {n:012}\n").into_bytes();
    let mut x = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ (i as u64 + 1);
    while r.len() < REC - 1 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.push(b'a' + (x % 26) as u8);
    }
    r.push(b'\n');
    r
}

/// A writer appending to `dir/f0..f2` in round-robin until stopped (or a
/// bound is reached), as a database writes its log: each record is made
/// durable (`fdatasync`) before the next file gets its record, so what is
/// in file i is in file i-1 (what a crash leaves, and what a snapshot must
/// show). The first `prefill` rounds are written fast and synced once.
struct Writer {
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    done: Option<std::thread::JoinHandle<u64>>,
}

impl Writer {
    fn start(dir: &Path, prefill: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(AtomicBool::new(false));
        let files: Vec<std::fs::File> = (0..FILES)
            .map(|i| {
                std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("f{i}"))).expect("open")
            })
            .collect();
        let n0 = std::fs::metadata(dir.join("f0")).map(|m| m.len() / REC as u64).unwrap_or(0);
        let (s, r) = (Arc::clone(&stop), Arc::clone(&ready));
        let done = std::thread::spawn(move || {
            let mut files = files;
            let mut n = n0;
            while n < n0 + prefill {
                for (i, f) in files.iter_mut().enumerate() {
                    f.write_all(&record(i, n)).expect("append");
                }
                n += 1;
            }
            for f in &files {
                f.sync_all().expect("sync");
            }
            r.store(true, Ordering::Relaxed);
            // At most 120 MiB per file: the image holds it whatever the timing.
            while !s.load(Ordering::Relaxed) && n < (120 << 20) / REC as u64 {
                for (i, f) in files.iter_mut().enumerate() {
                    f.write_all(&record(i, n)).expect("append");
                    f.sync_data().expect("fdatasync");
                }
                n += 1;
            }
            n
        });
        Writer { stop, ready, done: Some(done) }
    }

    fn wait_ready(&self) {
        while !self.ready.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Some durable records after the prefill, so the backup starts mid-stream.
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.done.take().expect("running").join().expect("writer")
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(d) = self.done.take() {
            let _ = d.join();
        }
    }
}

/// The record counts of the files in `dir`, after checking each is whole intact records.
fn counts(dir: &Path) -> Vec<u64> {
    (0..FILES)
        .map(|i| {
            let data = std::fs::read(dir.join(format!("f{i}"))).expect("restored file");
            assert_eq!(data.len() % REC, 0, "f{i} ends in a torn record ({} bytes)", data.len());
            for (n, r) in data.chunks(REC).enumerate() {
                assert!(
                    r == record(i, n as u64).as_slice(),
                    "f{i} record {n} is damaged: {:?}",
                    String::from_utf8_lossy(&r[..32])
                );
            }
            (data.len() / REC) as u64
        })
        .collect()
}

/// Counts that one instant of the round-robin writer can show: c0 >= c1 >= c2 >= c0 - 1.
fn consistent(c: &[u64]) -> bool {
    c.windows(2).all(|w| w[0] >= w[1]) && c[0] - c[FILES - 1] <= 1
}

/// The lifeboat snapshots at the top of a btrfs mount.
fn snapshots_in(mnt: &Path) -> Vec<String> {
    let listed = sh(&format!("btrfs subvolume list {}", mnt.display()));
    let mut v: Vec<String> = listed.lines().filter(|l| l.contains(".lifeboat-snapshot-")).map(str::to_string).collect();
    v.extend(
        std::fs::read_dir(mnt)
            .expect("mnt")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".lifeboat-snapshot-")),
    );
    v
}

fn newest_backup(target: &Path) -> PathBuf {
    let mut all: Vec<PathBuf> = std::fs::read_dir(target.join(hostname()))
        .expect("host dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.to_string_lossy().ends_with(".partial"))
        .collect();
    all.sort();
    all.pop().expect("a backup")
}

/// `lifeboat backup` of `root` (everything) to `target` with `extra`; returns (code, stdout, stderr).
fn backup(cfg: &Path, root: &Path, target: &str, extra: &[&str]) -> (i32, String, String) {
    let c = cfg.to_str().expect("utf8");
    let r = root.to_str().expect("utf8");
    run_lifeboat(&[&["--config", c, "backup", "--target", target, "--root", r][..], extra, &["."]].concat())
}

fn restore(cfg: &Path, from: &Path, to: &Path) {
    let (code, out, err) = run_lifeboat(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "restore",
        "--from",
        &format!("file://{}", from.display()),
        "--to",
        to.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "restore: {out}\n{err}");
}

/// Wait until `mnt` holds a lifeboat snapshot (the backup is reading it), at most 60 s.
fn wait_for_snapshot(mnt: &Path, child: &mut std::process::Child) {
    let t = std::time::Instant::now();
    while t.elapsed().as_secs() < 60 {
        let seen = std::fs::read_dir(mnt)
            .expect("mnt")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".lifeboat-snapshot-"));
        if seen {
            return;
        }
        assert!(child.try_wait().expect("wait").is_none(), "the backup ended before its snapshot was seen");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    panic!("no snapshot appeared in {}", mnt.display());
}

fn spawn_backup(cfg: &Path, root: &Path, target: &str) -> std::process::Child {
    lifeboat()
        .args(["--config", cfg.to_str().expect("utf8"), "backup", "--target", target, "--snapshot", "--root"])
        .arg(root)
        .arg(".")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lifeboat")
}

#[test]
fn a_snapshot_backup_of_files_being_appended_restores_one_instant_and_leaves_no_snapshot() {
    if !root_or_skip("snapshot backups (loop devices, btrfs)") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    let cfg = config(t, "");
    let mut disk = LoopDisk::new(t, "data", 1536 << 20);
    sh(&format!("mkfs.btrfs -q -f {}", disk.dev));
    let mnt = t.join("data");
    let dev = disk.dev.clone();
    disk.mount(&dev, &mnt, "");
    let db = mnt.join("db");
    std::fs::create_dir_all(&db).expect("db dir");
    let target = t.join("target");
    std::fs::create_dir_all(&target).expect("target");
    let url = format!("file://{}", target.display());

    // 1. The writer runs (files of ~20 MiB each first), the backup reads the snapshot.
    let writer = Writer::start(&db, (20 << 20) / REC as u64);
    writer.wait_ready();
    let started = std::time::Instant::now();
    let (code, out, err) = backup(&cfg, &mnt, &url, &["--snapshot"]);
    let secs = started.elapsed().as_secs_f64();
    let written = writer.stop();
    assert_eq!(code, 0, "a snapshot backup reads files that do not change: {out}\n{err}");
    assert!(err.contains("backing up from 1 snapshot(s)") && err.contains("btrfs snapshot"), "{err}");
    assert!(!out.contains("changed while being read"), "{out}");
    assert!(snapshots_in(&mnt).is_empty(), "the snapshot is removed: {:?}", snapshots_in(&mnt));
    let made = newest_backup(&target);
    let to = t.join("restored");
    restore(&cfg, &made, &to);
    let c = counts(&to.join("db"));
    eprintln!("snapshot backup in {secs:.2} s: restored counts {c:?}; the writer wrote {written} rounds");
    assert!(consistent(&c), "the restored files are one instant of the round-robin writer: {c:?}");
    assert!(c[0] > 0 && c[0] < written, "the backup holds some, not all, of the records: {c:?} of {written}");
    let listing = sh(&format!("find {} -name '.lifeboat-snapshot*'", to.display()));
    assert!(listing.trim().is_empty(), "no snapshot directory is stored: {listing}");

    // The same without --snapshot, for comparison (not asserted: it depends on timing).
    let writer = Writer::start(&db, 0);
    writer.wait_ready();
    let (code, out, _) = backup(&cfg, &mnt, &url, &[]);
    writer.stop();
    let live_to = t.join("live");
    restore(&cfg, &newest_backup(&target), &live_to);
    let live: Vec<u64> = (0..FILES)
        .map(|i| std::fs::metadata(live_to.join(format!("db/f{i}"))).map(|m| m.len() / REC as u64).unwrap_or(0))
        .collect();
    eprintln!(
        "live backup (exit {code}, {} file(s) changed while read): counts {live:?}, consistent: {}",
        out.matches("changed while being read").count(),
        consistent(&live)
    );

    // 2. A backup that fails mid-way (its target fills up): an error, nothing published, no snapshot.
    let small = t.join("small");
    std::fs::create_dir_all(&small).expect("small");
    sh(&format!("mount -t tmpfs -o size=8m tmpfs {}", small.display()));
    let (code, out, err) = backup(&cfg, &mnt, &format!("file://{}", small.display()), &["--snapshot"]);
    sh(&format!("umount {}", small.display()));
    assert_eq!(code, 2, "a full target fails the backup: {out}\n{err}");
    assert!(err.contains("the backup was not completed"), "{err}");
    assert!(snapshots_in(&mnt).is_empty(), "the snapshot is removed after a failure: {:?}", snapshots_in(&mnt));

    // 3. SIGTERM while reading: the snapshot is removed before lifeboat exits.
    let mut child = spawn_backup(&cfg, &mnt, &url);
    wait_for_snapshot(&mnt, &mut child);
    sh(&format!("kill -TERM {}", child.id()));
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + 15), "SIGTERM: {err}");
    assert!(err.contains("the snapshots are removed"), "{err}");
    assert!(snapshots_in(&mnt).is_empty(), "the snapshot is removed on SIGTERM: {:?}", snapshots_in(&mnt));

    // 4. kill -9 leaves the snapshot; the next run removes it, saying so.
    let mut child = spawn_backup(&cfg, &mnt, &url);
    wait_for_snapshot(&mnt, &mut child);
    child.kill().expect("kill -9");
    let _ = child.wait();
    let left = snapshots_in(&mnt);
    assert!(!left.is_empty(), "kill -9 leaves the snapshot for the next run");
    let (code, out, err) = backup(&cfg, &mnt, &url, &["--snapshot"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("removed the btrfs snapshot") && err.contains("left by an interrupted snapshot backup"),
        "the stale snapshot is named: {err}"
    );
    assert!(snapshots_in(&mnt).is_empty(), "{:?}", snapshots_in(&mnt));
    let again = t.join("again");
    restore(&cfg, &newest_backup(&target), &again);
    let c = counts(&again.join("db"));
    assert!(consistent(&c), "{c:?}");
}

#[test]
fn a_filesystem_that_cannot_be_snapshotted_is_refused_by_snapshot_and_read_live_by_auto() {
    if !root_or_skip("snapshot backups (loop devices)") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    let cfg = config(t, "");
    let mut disk = LoopDisk::new(t, "plain", 64 << 20);
    sh(&format!("mkfs.ext4 -q -F {}", disk.dev));
    let mnt = t.join("plain");
    let dev = disk.dev.clone();
    disk.mount(&dev, &mnt, "");
    std::fs::write(mnt.join("file"), "data\n").expect("file");
    let target = t.join("target");
    std::fs::create_dir_all(&target).expect("target");
    let url = format!("file://{}", target.display());
    let (code, out, err) = backup(&cfg, &mnt, &url, &["--snapshot"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains(&format!("{} (ext4 {dev}): on neither btrfs nor an LVM logical volume", mnt.display())),
        "the refusal names the filesystem: {err}"
    );
    assert!(err.contains("--snapshot=auto") && err.contains("nothing was written"), "{err}");
    assert!(!target.join(hostname()).exists(), "nothing was written to the target");
    let (code, out, err) = backup(&cfg, &mnt, &url, &["--snapshot=auto"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains(&format!("WARNING: {} is backed up live", mnt.display())), "{err}");
    let to = t.join("restored");
    restore(&cfg, &newest_backup(&target), &to);
    assert_eq!(std::fs::read_to_string(to.join("file")).expect("restored"), "data\n");
    // The configuration key does what the option does.
    let cfg = config(t, "[backup]\nsnapshot = \"always\"\n");
    let (code, _, err) = backup(&cfg, &mnt, &url, &[]);
    assert_eq!(code, 2, "backup.snapshot = \"always\" refuses too: {err}");
}
