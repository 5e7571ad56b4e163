//! The `s3://` target against a real object store: Garage on 127.0.0.1
//! (one node, and three with replication factor 3). No root needed; SKIP
//! when the cached Garage binary is absent (`tests/garage.sh` builds it).

#![allow(clippy::unwrap_used)]

mod garage;

use lifeboat_archive::backup::write_signed_backup;
use lifeboat_archive::frames::Codec;
use lifeboat_archive::read::Backup;
use lifeboat_archive::restore::{restore_with_progress, verify};
use lifeboat_archive::target::{open_configured, S3Settings, State, Target, TargetSettings};
use lifeboat_archive::BackupOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A tree's files: path and contents.
type Files = Vec<(String, Vec<u8>)>;

/// Incompressible bytes.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A tree with small files and one file large enough for multipart volumes.
fn tree(root: &Path, seed: u64, big: usize) -> Files {
    let mut files: Vec<(String, Vec<u8>)> =
        (0..6).map(|i| (format!("d{}/f{i}", i % 2), noise(seed + i, 100_000))).collect();
    files.push(("small".into(), b"hello".to_vec()));
    if big > 0 {
        files.push(("big/blob".into(), noise(seed ^ 0xabcdef, big)));
    }
    for (p, d) in &files {
        let f = root.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, d).unwrap();
    }
    files
}

fn options(root: &Path, volume_size: u64) -> BackupOptions {
    BackupOptions {
        root: root.to_path_buf(),
        paths: vec![".".into()],
        exclude: Vec::new(),
        volume_size,
        codec: Codec::Zstd(1),
        exclude_dirs: Vec::new(),
        read_from: Vec::new(),
        reserved: None,
    }
}

fn assert_restored(to: &Path, files: &[(String, Vec<u8>)]) {
    for (p, d) in files {
        assert!(std::fs::read(to.join(p)).unwrap() == *d, "{p} differs");
    }
}

fn open(url: &str, s3: S3Settings) -> Box<dyn Target> {
    let runner = lifeboat_runner::SystemRunner::new(lifeboat_runner::Mode::Run);
    open_configured(url, &runner, &TargetSettings { s3, ..TargetSettings::default() }).unwrap()
}

#[test]
fn a_backup_on_garage_lists_verifies_and_restores_by_range_into_the_same_tree() {
    let Some(bin) = garage::binary("a_backup_on_garage_lists_verifies_and_restores") else { return };
    let t0 = std::time::Instant::now();
    let g = garage::Garage::start(&bin, 1);
    eprintln!("garage started in {:?}", t0.elapsed());
    let src = tempfile::tempdir().unwrap();
    // 13 MB of noise in 12 MiB volumes of 5 MiB parts: multipart uploads of three parts.
    let files = tree(src.path(), 1, 13_000_000);
    let s = S3Settings { part_size: 5 << 20, ..g.settings(0) };
    let t = open(&format!("s3://{}/fleet/eu", garage::BUCKET), s);
    let started = std::time::Instant::now();
    let up = t.begin("web1", "2026-12-02T000000.000Z").unwrap();
    let (catalog, _) = write_signed_backup(up, &options(src.path(), 12 << 20), "web1", None, &mut |_, _| {}).unwrap();
    eprintln!("backup of 13.6 MB to garage: {:?}", started.elapsed());
    assert!(catalog.volumes.len() >= 2, "{} volumes", catalog.volumes.len());
    assert!(catalog.volumes.iter().any(|v| v.size > 5 << 20), "a volume went up in parts");

    assert_eq!(t.hosts().unwrap(), vec!["web1".to_string()]);
    let listed = t.scan("web1").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, State::Complete);
    assert_eq!(listed[0].location, format!("s3://{}/fleet/eu/web1/2026-12-02T000000.000Z", garage::BUCKET));
    assert!(listed[0].bytes >= 13_000_000, "{}", listed[0].bytes);

    let b = Backup::open_objects(t.choose("web1").unwrap()).unwrap();
    assert_eq!(b.location(), listed[0].location);
    let started = std::time::Instant::now();
    let v = verify(&b);
    assert!(v.ok(), "{v:?}");
    eprintln!("verify on garage: {:?}", started.elapsed());
    let to = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let r = restore_with_progress(&b, to.path(), &[], &mut |_, _| {}).unwrap();
    eprintln!("restore from garage: {:?}", started.elapsed());
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_restored(to.path(), &files);

    // The URL of the backup itself names it.
    let itself = open(&listed[0].location, g.settings(0));
    assert_eq!(itself.choose("any").unwrap().location(), listed[0].location);

    // A wrong secret is an error that says what the store answered.
    let bad = S3Settings { secret_access_key: "0".repeat(64), ..g.settings(0) };
    let e = open(&format!("s3://{}/fleet/eu", garage::BUCKET), bad).scan("web1").expect_err("bad key").to_string();
    assert!(e.contains("403"), "{e}");
}

#[test]
fn the_catalog_is_created_once_and_a_second_commit_of_the_name_fails() {
    let Some(bin) = garage::binary("the_catalog_is_created_once") else { return };
    let g = garage::Garage::start(&bin, 1);
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), 2, 0);
    let t = open(&format!("s3://{}", garage::BUCKET), g.settings(0));
    // Two runs that began the same name before either committed.
    let first = t.begin("h", "b").unwrap();
    let second = t.begin("h", "b").unwrap();
    write_signed_backup(first, &options(src.path(), 128 << 10), "h", None, &mut |_, _| {}).unwrap();
    let before = t.backup("h", "b").unwrap().read("backup.json", 1 << 30).unwrap();
    let e = second.commit(b"{\"format\":\"not this\"}").expect_err("second commit").to_string();
    assert!(e.contains("committed already"), "{e}");
    assert_eq!(t.backup("h", "b").unwrap().read("backup.json", 1 << 30).unwrap(), before, "the catalog is unchanged");
    // A third run cannot even begin it.
    let e = t.begin("h", "b").expect_err("name used").to_string();
    assert!(e.contains("used once"), "{e}");
    assert_eq!(t.scan("h").unwrap()[0].state, State::Complete);
    // Markers (the target lock) are create-only too.
    assert!(t.create_marker("h/.lock", b"me").unwrap());
    assert!(!t.create_marker("h/.lock", b"you").unwrap());
    assert_eq!(t.read_marker("h/.lock").unwrap().as_deref(), Some(&b"me"[..]));
    t.remove_marker("h/.lock").unwrap();
    assert_eq!(t.read_marker("h/.lock").unwrap(), None);
    assert_eq!(t.hosts().unwrap(), vec!["h".to_string()], "markers are not hosts");
}

#[test]
fn an_interrupted_upload_is_pruned_only_after_the_grace_period() {
    let Some(bin) = garage::binary("an_interrupted_upload_is_pruned_only_after_the_grace_period") else { return };
    let g = garage::Garage::start(&bin, 1);
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), 3, 0);
    let s = S3Settings { grace: Some(Duration::from_secs(3)), part_size: 5 << 20, ..g.settings(0) };
    let t = open(&format!("s3://{}/p", garage::BUCKET), s);
    write_signed_backup(t.begin("h", "a").unwrap(), &options(src.path(), 128 << 10), "h", None, &mut |_, _| {})
        .unwrap();
    // A run that died after its first volume: objects, no catalog.
    let dead = t.begin("h", "b").unwrap();
    let mut w = dead.create("vol-0001.tar.zst").unwrap();
    w.write_all(&noise(9, 300_000)).unwrap();
    w.finish().unwrap();
    drop(dead);
    // A run that died (no destructor ran) in the middle of a volume: only an unfinished multipart upload.
    let crashed = t.begin("h", "c").unwrap();
    let mut w = crashed.create("vol-0001.tar.zst").unwrap();
    w.write_all(&noise(10, 6 << 20)).unwrap();
    std::mem::forget(w);
    drop(crashed);
    let states = |t: &dyn Target| t.scan("h").unwrap().into_iter().map(|l| l.state).collect::<Vec<_>>();
    assert_eq!(states(t.as_ref()), vec![State::Complete, State::Running, State::Running], "young: it may be running");
    assert!(t.prune_partial("h").unwrap().is_empty(), "nothing pruned within the grace period");
    assert_eq!(t.newest("h").unwrap().name, "a", "an upload never counts as a backup");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(states(t.as_ref()), vec![State::Complete, State::Interrupted, State::Interrupted]);
    let removed = t.prune_partial("h").unwrap();
    assert_eq!(removed.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), vec!["b", "c"]);
    assert_eq!(states(t.as_ref()), vec![State::Complete], "the backup stays, the parts are gone");
    let b = Backup::open_objects(t.choose("h").unwrap()).unwrap();
    assert!(verify(&b).ok());
}

#[test]
fn a_three_node_cluster_takes_two_hosts_at_once_and_restores_with_a_node_killed() {
    let Some(bin) = garage::binary("a_three_node_cluster") else { return };
    let mut g = garage::Garage::start(&bin, 3);
    let url = format!("s3://{}/fleet", garage::BUCKET);
    let trees: Vec<(tempfile::TempDir, Files)> = (0..2)
        .map(|i| {
            let d = tempfile::tempdir().unwrap();
            let f = tree(d.path(), 10 + i, 3_000_000);
            (d, f)
        })
        .collect();
    let targets: Vec<Arc<dyn Target>> = (0..2).map(|i| Arc::from(open(&url, g.settings(i)))).collect();
    std::thread::scope(|s| {
        for (i, (dir, _)) in trees.iter().enumerate() {
            let t = Arc::clone(&targets[i]);
            s.spawn(move || {
                let host = format!("web{i}");
                let up = t.begin(&host, "2026-12-02T010000.000Z").unwrap();
                write_signed_backup(up, &options(dir.path(), 512 << 10), &host, None, &mut |_, _| {}).unwrap();
            });
        }
    });
    let t = &targets[0];
    assert_eq!(t.hosts().unwrap(), vec!["web0".to_string(), "web1".to_string()]);
    for i in 0..2 {
        let b = Backup::open_objects(t.choose(&format!("web{i}")).unwrap()).unwrap();
        assert!(verify(&b).ok(), "web{i} verifies");
    }
    // Restore web1 through node 0 and kill node 2 once the restore is under way.
    let b = Backup::open_objects(t.choose("web1").unwrap()).unwrap();
    let to = tempfile::tempdir().unwrap();
    let mut killed = false;
    let r = restore_with_progress(&b, to.path(), &[], &mut |done, _| {
        if !killed && done > 0 {
            g.nodes[2].kill();
            killed = true;
        }
    })
    .unwrap();
    assert!(killed, "the node was killed during the restore");
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_restored(to.path(), &trees[1].1);
}

/// A TCP proxy to `upstream` that cuts connections: once, after `cut_after`
/// bytes towards the server (`always`: every connection, after as many);
/// or, with `stall`, stops forwarding (for 30 s) instead of cutting.
struct CuttingProxy {
    port: u16,
    cuts: Arc<std::sync::atomic::AtomicUsize>,
}

impl CuttingProxy {
    fn start(upstream: u16, cut_after: usize, always: bool, stall: bool) -> CuttingProxy {
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cuts = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&cuts);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (cuts, sent) = (Arc::clone(&c), Arc::clone(&sent));
                // Towards the server: count, and cut.
                std::thread::spawn(move || {
                    let (mut from, mut to) = (client, server);
                    let mut buf = vec![0u8; 64 << 10];
                    let mut mine = 0usize;
                    loop {
                        let n = match std::io::Read::read(&mut from, &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        mine += n;
                        let total = sent.fetch_add(n, Ordering::SeqCst) + n;
                        let cut = if always {
                            mine > cut_after
                        } else {
                            total > cut_after && cuts.load(Ordering::SeqCst) == 0
                        };
                        if cut {
                            cuts.fetch_add(1, Ordering::SeqCst);
                            if stall {
                                std::thread::sleep(Duration::from_secs(30));
                            }
                            let _ = from.shutdown(Shutdown::Both);
                            let _ = to.shutdown(Shutdown::Both);
                            return;
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
                // Back to the client.
                std::thread::spawn(move || {
                    let (mut from, mut to) = (s2, c2);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Both);
                });
            }
        });
        CuttingProxy { port, cuts }
    }

    fn cuts(&self) -> usize {
        self.cuts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn a_connection_cut_mid_volume_is_retried_and_a_store_that_keeps_cutting_gets_nothing_published() {
    let Some(bin) = garage::binary("a_connection_cut_mid_volume_is_retried") else { return };
    let g = garage::Garage::start(&bin, 1);
    let src = tempfile::tempdir().unwrap();
    let files = tree(src.path(), 4, 13_000_000);
    let url = format!("s3://{}/cut", garage::BUCKET);

    // Cut once in the middle of the second part of the first volume.
    let proxy = CuttingProxy::start(g.nodes[0].s3_port, 7_000_000, false, false);
    let s = S3Settings { endpoint: format!("http://127.0.0.1:{}", proxy.port), part_size: 5 << 20, ..g.settings(0) };
    let t = open(&url, s);
    write_signed_backup(t.begin("h", "b1").unwrap(), &options(src.path(), 12 << 20), "h", None, &mut |_, _| {})
        .unwrap();
    assert_eq!(proxy.cuts(), 1, "the connection was cut once");
    let b = Backup::open_objects(t.choose("h").unwrap()).unwrap();
    assert!(verify(&b).ok(), "the retried backup verifies");
    let to = tempfile::tempdir().unwrap();
    restore_with_progress(&b, to.path(), &[], &mut |_, _| {}).unwrap();
    assert_restored(to.path(), &files);

    // Every connection cut after 2 MB: no part of 5 MiB ever arrives.
    let bad = CuttingProxy::start(g.nodes[0].s3_port, 2_000_000, true, false);
    let s = S3Settings {
        endpoint: format!("http://127.0.0.1:{}", bad.port),
        part_size: 5 << 20,
        retries: Some(2),
        ..g.settings(0)
    };
    let t2 = open(&url, s);
    let e =
        write_signed_backup(t2.begin("h", "b2").unwrap(), &options(src.path(), 12 << 20), "h", None, &mut |_, _| {})
            .expect_err("a store that always cuts");
    assert!(bad.cuts() >= 3, "retried: {} cuts", bad.cuts());
    eprintln!("failed as it should: {e}");
    let listed = t.scan("h").unwrap();
    assert!(listed.iter().all(|l| l.name == "b1" || l.state != State::Complete), "{listed:?}");
    assert_eq!(t.newest("h").unwrap().name, "b1", "nothing else was published");
}

#[test]
fn a_node_killed_during_a_backup_leaves_a_complete_backup_or_nothing_and_the_retry_succeeds() {
    let Some(bin) = garage::binary("a_node_killed_during_a_backup") else { return };
    let mut g = garage::Garage::start(&bin, 3);
    // Two subtrees of 9.6 MB: the progress report after the first comes with the second still to go.
    let src = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, sub) in ["a", "b"].iter().enumerate() {
        let part = tree(&src.path().join(sub), 20 + i as u64, 9_000_000);
        files.extend(part.into_iter().map(|(p, d)| (format!("{sub}/{p}"), d)));
    }
    let t = open(&format!("s3://{}/fleet", garage::BUCKET), g.settings(0));
    let mut killed = false;
    let first = write_signed_backup(
        t.begin("web0", "2026-12-02T020000.000Z").unwrap(),
        &options(src.path(), 512 << 10),
        "web0",
        None,
        &mut |done, _| {
            if !killed && done > 0 {
                g.nodes[2].kill();
                killed = true;
            }
        },
    );
    assert!(killed, "the node was killed during the backup");
    if let Err(e) = &first {
        // Failed cleanly: nothing published; the retry (two nodes of three still a quorum) succeeds.
        eprintln!("the backup failed with a node killed: {e}");
        assert!(t.newest("web0").is_err());
        write_signed_backup(
            t.begin("web0", "2026-12-02T020100.000Z").unwrap(),
            &options(src.path(), 512 << 10),
            "web0",
            None,
            &mut |_, _| {},
        )
        .unwrap();
    }
    let b = Backup::open_objects(t.choose("web0").unwrap()).unwrap();
    assert!(verify(&b).ok(), "every listed backup verifies");
    let to = tempfile::tempdir().unwrap();
    let r = restore_with_progress(&b, to.path(), &[], &mut |_, _| {}).unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_restored(to.path(), &files);
}

#[test]
fn a_connection_that_stalls_mid_volume_times_out_and_the_retry_completes_the_backup() {
    let Some(bin) = garage::binary("a_connection_that_stalls_mid_volume") else { return };
    let g = garage::Garage::start(&bin, 1);
    let src = tempfile::tempdir().unwrap();
    let files = tree(src.path(), 5, 13_000_000);
    let proxy = CuttingProxy::start(g.nodes[0].s3_port, 7_000_000, false, true);
    let s = S3Settings {
        endpoint: format!("http://127.0.0.1:{}", proxy.port),
        part_size: 5 << 20,
        timeout: Some(Duration::from_secs(2)),
        ..g.settings(0)
    };
    let t = open(&format!("s3://{}/stall", garage::BUCKET), s);
    let started = std::time::Instant::now();
    write_signed_backup(t.begin("h", "b").unwrap(), &options(src.path(), 12 << 20), "h", None, &mut |_, _| {}).unwrap();
    assert_eq!(proxy.cuts(), 1, "one connection stalled");
    assert!(started.elapsed() < Duration::from_secs(25), "the stall was cut by the timeout: {:?}", started.elapsed());
    let b = Backup::open_objects(t.choose("h").unwrap()).unwrap();
    let to = tempfile::tempdir().unwrap();
    restore_with_progress(&b, to.path(), &[], &mut |_, _| {}).unwrap();
    assert_restored(to.path(), &files);
}
