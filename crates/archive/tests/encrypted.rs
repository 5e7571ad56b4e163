//! Encrypted backups, without root: written through the encrypting wrapper
//! to the in-memory store and to a directory, verified without the identity
//! (stored bytes against the signed catalog), restored with it by range and
//! sequentially, refused clearly with a wrong or no identity, holding no
//! readable name or content, and restored by the standard tools alone:
//! `age -d | zstd -dc | tar -x`.

#![allow(clippy::unwrap_used)]

use lifeboat_archive::backup::{write_encrypted_backup, write_signed_backup};
use lifeboat_archive::frames::Codec;
use lifeboat_archive::read::{Backup, ReadError};
use lifeboat_archive::restore::{restore_sequential, restore_with_progress, verify};
use lifeboat_archive::sign::{SigningKey, TrustedKeys};
use lifeboat_archive::target::encrypt::{self, CryptError, SequentialPlain, PASSPHRASE_IDENTITY, SEALED_CATALOG};
use lifeboat_archive::target::{
    DecryptingObjects, FileTarget, Identities, MemoryTarget, ObjectReader, Objects, Recipients, State, Target,
};
use lifeboat_archive::trust::{self, Policy, Verdict};
use lifeboat_archive::BackupOptions;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Names and contents that must never be readable on the target.
const SECRET_NAME: &str = "payroll-zebra-quartz";
const SECRET_TEXT: &str = "CONFIDENTIAL: the vault combination is 31-41-59";
const EXCLUDED: &str = "*.wombat-cache";

/// A tree: incompressible data over several volumes, text files with
/// secret names and contents, a symlink and an excluded file.
fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..5 {
        let data: Vec<u8> = (0..90_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        files.push((format!("data{}/blob{i}", i % 2), data));
    }
    files.push((format!("etc/{SECRET_NAME}.txt"), SECRET_TEXT.repeat(50).into_bytes()));
    files.push(("etc/small".into(), b"hello".to_vec()));
    for (p, d) in &files {
        let f = root.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, d).unwrap();
    }
    std::os::unix::fs::symlink(format!("{SECRET_NAME}.txt"), root.join("etc/link")).unwrap();
    std::fs::write(root.join("etc/x.wombat-cache"), b"left out").unwrap();
    files
}

fn options(root: &Path) -> BackupOptions {
    BackupOptions {
        root: root.to_path_buf(),
        paths: vec![".".into()],
        exclude: vec![EXCLUDED.into()],
        volume_size: 128 << 10,
        codec: Codec::Zstd(3),
        exclude_dirs: Vec::new(),
        read_from: Vec::new(),
        reserved: None,
    }
}

fn assert_restored(to: &Path, files: &[(String, Vec<u8>)]) {
    for (p, d) in files {
        assert_eq!(&std::fs::read(to.join(p)).unwrap(), d, "{p}");
    }
    assert_eq!(std::fs::read_link(to.join("etc/link")).unwrap(), Path::new(&format!("{SECRET_NAME}.txt")));
    assert!(!to.join("etc/x.wombat-cache").exists(), "excluded");
}

/// A key pair: the identity file's text and the recipient.
fn age_key() -> (String, String) {
    let k = age::x25519::Identity::generate();
    let secret = age::secrecy::ExposeSecret::expose_secret(&k.to_string()).to_string();
    (format!("# public key: {}\n{secret}\n", k.to_public()), k.to_public().to_string())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A signing key and the trusted keys that verify it.
fn signing(dir: &Path) -> (SigningKey, TrustedKeys) {
    let (key, _) = SigningKey::load_or_create(dir, "web1").unwrap();
    (key, TrustedKeys::load(dir).unwrap())
}

#[test]
fn an_encrypted_backup_verifies_without_the_identity_and_restores_with_it_by_range_and_in_sequence() {
    let src = tempfile::tempdir().unwrap();
    let files = tree(src.path());
    let keys = tempfile::tempdir().unwrap();
    let (signer, trusted) = signing(keys.path());
    let (identity, recipient) = age_key();
    let t = MemoryTarget::new();
    let up = t.begin("web1", "2026-12-02T000000.000Z").unwrap();
    let recipients = Recipients::parse(std::slice::from_ref(&recipient)).unwrap();
    let (whole, raw) =
        write_encrypted_backup(up, &options(src.path()), "web1", Some(&signer), &recipients, &mut |_, _| {}).unwrap();
    assert!(whole.volumes.len() >= 3, "{} volumes", whole.volumes.len());
    assert_eq!((whole.paths.clone(), whole.exclude.clone()), (vec![".".to_string()], vec![EXCLUDED.to_string()]));
    assert_eq!(t.scan("web1").unwrap()[0].state, State::Complete, "listed without the identity");

    // The target holds nothing readable: no name, no content, no pattern, in any object.
    for k in t.keys() {
        let name = k.rsplit('/').next().unwrap();
        let data = raw.read(name, 1 << 30).unwrap();
        for secret in [SECRET_NAME, &SECRET_TEXT[..20], "wombat", "blob3", "\"etc\""] {
            assert!(!contains(&data, secret.as_bytes()), "{k} holds {secret:?} in clear");
        }
        if !matches!(name, "backup.json" | "backup.json.minisig") {
            assert!(encrypt::is_age(&data), "{k} is an age file");
        }
    }
    // Without the identity: an error naming the backup and the fix.
    let e = Backup::open_objects(Arc::clone(&raw)).unwrap_err();
    assert!(matches!(e, ReadError::Encrypted(CryptError::NoIdentity { .. })), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("mem://web1/2026-12-02T000000.000Z") && msg.contains("--identity FILE"), "{msg}");
    assert!(msg.contains("backup.identity_file"), "{msg}");
    let e = encrypt::open_for_reading(Arc::clone(&raw), None, true).unwrap_err().to_string();
    assert!(e.contains("unattended recovery") && e.contains("no identity"), "{e}");

    // Verify without the identity: the signature over the catalog as
    // stored, then every stored object against it.
    let (stored, verdict) = trust::verified_catalog(&raw, Policy::Require(&trusted)).unwrap();
    assert_eq!(verdict, Verdict::Signed(trusted.keys[0].id));
    assert!(stored.paths.is_empty() && stored.exclude.is_empty() && stored.encryption.is_some());
    assert_eq!(stored.encryption.as_ref().unwrap().recipients, vec![recipient.clone()]);
    assert_eq!(stored.version, lifeboat_archive::backup::ENCRYPTED_FORMAT_VERSION);
    let r = encrypt::verify_stored(raw.as_ref(), &stored);
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.entries as usize, stored.volumes.len() + 2, "volumes, manifest, sealed catalog");

    // With the identity: signed, whole, verified, restored by range and in sequence.
    let ids = Identities::parse(&identity, "key.txt").unwrap();
    let dec: Arc<dyn Objects> = encrypt::open_for_reading(Arc::clone(&raw), Some(ids), false).unwrap();
    let (b, verdict) = trust::open_objects(Arc::clone(&dec), Policy::Require(&trusted)).unwrap();
    assert!(matches!(verdict, Verdict::Signed(_)));
    assert_eq!(b.catalog.paths, vec![".".to_string()]);
    assert_eq!(b.catalog.exclude, vec![EXCLUDED.to_string()]);
    assert_eq!(b.catalog.volumes, whole.volumes, "the plaintext volumes");
    assert_eq!(b.stored_catalog().volumes, stored.volumes);
    assert!(b.entries.iter().any(|e| e.path.contains(SECRET_NAME)));
    let v = verify(&b);
    assert!(v.ok(), "{v:?}");
    let to = tempfile::tempdir().unwrap();
    let r = restore_with_progress(&b, to.path(), &[], &mut |_, _| {}).unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_restored(to.path(), &files);

    let to = tempfile::tempdir().unwrap();
    let r = restore_sequential(&b, dec.sequential().unwrap(), to.path(), &[], &mut |_, _| {}).unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_restored(to.path(), &files);

    // From a stream of the stored volumes (a tape, `cat vol-*`).
    let mut cat = Vec::new();
    for v in &stored.volumes {
        ObjectReader::new(raw.open_volume(&v.name, v.size).unwrap()).read_to_end(&mut cat).unwrap();
    }
    let plain = DecryptingObjects::new(Arc::clone(&raw), Identities::parse(&identity, "key.txt").unwrap());
    let seq = SequentialPlain::new(&plain, Box::new(std::io::Cursor::new(cat))).unwrap();
    let to = tempfile::tempdir().unwrap();
    let r = restore_sequential(&b, Box::new(seq), to.path(), &[], &mut |_, _| {}).unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_restored(to.path(), &files);
}

#[test]
fn a_wrong_identity_is_refused_naming_the_backup_the_keys_and_the_fix() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let (_, recipient) = age_key();
    let (other, other_public) = age_key();
    let t = MemoryTarget::new();
    let up = t.begin("web1", "b1").unwrap();
    let (_, raw) = write_encrypted_backup(
        up,
        &options(src.path()),
        "web1",
        None,
        &Recipients::parse(std::slice::from_ref(&recipient)).unwrap(),
        &mut |_, _| {},
    )
    .unwrap();
    let dec = DecryptingObjects::new(raw, Identities::parse(&other, "stick/key.txt").unwrap());
    let e = Backup::open_objects(Arc::new(dec)).unwrap_err();
    assert!(matches!(e, ReadError::Encrypted(CryptError::WrongIdentity { .. })), "{e}");
    let e = e.to_string();
    assert!(e.starts_with("mem://web1/b1/catalog.age: none of the identities"), "names the backup once: {e}");
    assert!(e.contains(&other_public) && e.contains(&recipient), "names the keys tried and the recipients: {e}");
    assert!(e.contains("--identity FILE"), "{e}");
}

#[test]
fn a_sealed_catalog_or_volume_replaced_by_someone_with_the_public_key_is_refused() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let (identity, recipient) = age_key();
    let t = MemoryTarget::new();
    let up = t.begin("web1", "b1").unwrap();
    let (_, raw) = write_encrypted_backup(
        up,
        &options(src.path()),
        "web1",
        None,
        &Recipients::parse(std::slice::from_ref(&recipient)).unwrap(),
        &mut |_, _| {},
    )
    .unwrap();
    let open = || {
        let ids = Identities::parse(&identity, "key.txt").unwrap();
        Backup::open_objects(Arc::new(DecryptingObjects::new(Arc::clone(&raw), ids)))
    };
    let sealed = open().unwrap();
    // A new sealed catalog, validly encrypted to the (public) recipient.
    let r: age::x25519::Recipient = recipient.parse().unwrap();
    let plain = DecryptingObjects::new(Arc::clone(&raw), Identities::parse(&identity, "key.txt").unwrap());
    let mut forged: serde_json::Value = serde_json::from_slice(&plain.read(SEALED_CATALOG, 1 << 20).unwrap()).unwrap();
    forged["paths"] = serde_json::json!(["etc"]);
    let fake = age::encrypt(&r, &serde_json::to_vec(&forged).unwrap()).unwrap();
    let key = format!("web1/b1/{SEALED_CATALOG}");
    let original = raw.read(SEALED_CATALOG, 1 << 20).unwrap();
    t.tamper(&key, fake);
    let e = open().unwrap_err().to_string();
    assert!(e.contains("damaged or was replaced"), "{e}");
    t.tamper(&key, original);

    // A volume replaced: verify without the identity finds it, and so does the full verify.
    let v = &sealed.stored_catalog().volumes[1];
    let fake = age::encrypt(&r, b"not the volume").unwrap();
    t.tamper(&format!("web1/b1/{}", v.name), fake);
    let r = encrypt::verify_stored(raw.as_ref(), sealed.stored_catalog());
    assert!(r.damaged_volumes.iter().any(|d| d.contains(&v.name)), "{r:?}");
    let r = verify(&open().unwrap());
    assert!(!r.ok() && r.damaged_volumes.iter().any(|d| d.contains(&v.name)), "{r:?}");
}

#[test]
fn an_unencrypted_backup_is_written_as_before() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let t = MemoryTarget::new();
    let (_, objects) =
        write_signed_backup(t.begin("h", "b").unwrap(), &options(src.path()), "h", None, &mut |_, _| {}).unwrap();
    let text = objects.read("backup.json", 1 << 20).unwrap();
    let c: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(c["version"], 2);
    assert!(c.get("encryption").is_none());
    assert!(!encrypt::is_encrypted(objects.as_ref()));
    let manifest = objects.read("manifest.jsonl", 1 << 20).unwrap();
    assert!(contains(&manifest, SECRET_NAME.as_bytes()), "the control: names are in clear without encryption");
    // open_for_reading leaves an unencrypted backup as it is, identity or not.
    let o = encrypt::open_for_reading(Arc::clone(&objects), None, true).unwrap();
    assert!(Backup::open_objects(o).is_ok());
    let (identity, _) = age_key();
    let o = DecryptingObjects::new(objects, Identities::parse(&identity, "key.txt").unwrap());
    assert!(verify(&Backup::open_objects(Arc::new(o)).unwrap()).ok(), "an identity given for nothing is harmless");
}

#[test]
fn an_encrypted_backup_in_a_directory_restores_with_age_zstd_and_tar_alone() {
    assert!(
        Path::new("/usr/bin/age").exists(),
        "this test needs age (Debian package `age`; `make test-deps` installs it)"
    );
    let src = tempfile::tempdir().unwrap();
    let files = tree(src.path());
    let dst = tempfile::tempdir().unwrap();
    // A key made by age-keygen, as an administrator makes one.
    let key = dst.path().join("key.txt");
    let made = std::process::Command::new("age-keygen").arg("-o").arg(&key).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let public = std::process::Command::new("age-keygen").arg("-y").arg(&key).output().unwrap();
    let recipient = String::from_utf8(public.stdout).unwrap().trim().to_string();
    let identity = std::fs::read_to_string(&key).unwrap();
    assert!(Identities::read_file(&key).unwrap().public_keys() == vec![recipient.clone()]);
    let t = FileTarget::new(dst.path());
    let recipients = Recipients::parse(&[recipient]).unwrap().with_passphrase("lost every key".into());
    let up = t.begin("web1", "b1").unwrap();
    let (whole, raw) =
        write_encrypted_backup(up, &options(src.path()), "web1", None, &recipients, &mut |_, _| {}).unwrap();
    let dir = dst.path().join("web1/b1");
    assert!(dir.join(PASSPHRASE_IDENTITY).is_file());

    // The standard tools, volume by volume in order.
    let out = tempfile::tempdir().unwrap();
    let script = format!(
        "set -e; cd '{}'; for v in vol-*; do age -d -i '{}' \"$v\"; done | zstd -dc | tar -x -C '{}'",
        dir.display(),
        key.display(),
        out.path().display()
    );
    let run = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(run.status.success(), "{script}: {}", String::from_utf8_lossy(&run.stderr));
    assert_restored(out.path(), &files);
    // The manifest and the sealed catalog decrypt the same way.
    let run =
        std::process::Command::new("age").args(["-d", "-i"]).arg(&key).arg(dir.join(SEALED_CATALOG)).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let sealed: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(sealed["paths"], serde_json::json!(["."]));

    // lifeboat reads it from the directory too, by the identity or by the passphrase alone.
    for ids in [Identities::parse(&identity, "key.txt").unwrap(), Identities::passphrase("lost every key".into())] {
        let b = Backup::open_objects(Arc::new(DecryptingObjects::new(t.backup("web1", "b1").unwrap(), ids))).unwrap();
        assert_eq!(b.catalog.volumes, whole.volumes);
        let to = tempfile::tempdir().unwrap();
        let r = restore_with_progress(&b, to.path(), &[], &mut |_, _| {}).unwrap();
        assert!(r.lost.is_empty(), "{:?}", r.lost);
        assert_restored(to.path(), &files);
    }
    assert!(encrypt::is_encrypted(raw.as_ref()));
}

#[test]
fn an_encrypted_backup_with_a_damaged_manifest_restores_from_the_stream_with_the_signed_catalog() {
    use lifeboat_archive::restore::{from_stream, restore_stream_only};
    let src = tempfile::tempdir().unwrap();
    let files = tree(src.path());
    let keys = tempfile::tempdir().unwrap();
    let (signer, trusted) = signing(keys.path());
    let (identity, recipient) = age_key();
    let t = MemoryTarget::new();
    let up = t.begin("web1", "b1").unwrap();
    let recipients = Recipients::parse(&[recipient]).unwrap();
    write_encrypted_backup(up, &options(src.path()), "web1", Some(&signer), &recipients, &mut |_, _| {}).unwrap();
    t.remove("web1/b1/manifest.jsonl");
    let dec: Arc<dyn Objects> = Arc::new(DecryptingObjects::new(
        t.backup("web1", "b1").unwrap(),
        Identities::parse(&identity, "key.txt").unwrap(),
    ));
    assert!(trust::open_objects(Arc::clone(&dec), Policy::Require(&trusted)).is_err());
    let (stored, _) = trust::verified_catalog(&dec, Policy::Require(&trusted)).unwrap();
    let so = from_stream(dec, stored).unwrap();
    let to = tempfile::tempdir().unwrap();
    let r = restore_stream_only(&so, to.path(), &[], &mut |_, _| {}).unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_restored(to.path(), &files);
}

/// Encryption's cost on backup throughput, in process: the same tree backed
/// up unencrypted and encrypted (one recipient), alternately, to the
/// in-memory store (CPU only) and to a directory. Run it in release:
/// `LIFEBOAT_BENCH_TREE=/usr/share cargo test --release -p lifeboat-archive
/// --test encrypted -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark (see its comment for how to run it)"]
fn encryption_cost_on_backup_throughput() {
    let root = std::env::var("LIFEBOAT_BENCH_TREE").unwrap_or_else(|_| "/usr/share".into());
    let runs: usize = std::env::var("LIFEBOAT_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(2);
    let opts = BackupOptions {
        root: root.clone().into(),
        paths: vec![".".into()],
        exclude: Vec::new(),
        volume_size: 1 << 30,
        codec: Codec::Zstd(3),
        exclude_dirs: Vec::new(),
        read_from: Vec::new(),
        reserved: None,
    };
    let (_, recipient) = age_key();
    let recipients = Recipients::parse(&[recipient]).unwrap();
    let scratch = tempfile::tempdir_in("/var/tmp").unwrap();
    let once = |encrypted: bool, to_dir: bool, n: usize| -> (f64, u64, u64) {
        let mem = MemoryTarget::new();
        let dir = FileTarget::new(scratch.path());
        let t: &dyn Target = if to_dir { &dir } else { &mem };
        let name = format!("b{n}{}", if encrypted { "e" } else { "p" });
        let up = t.begin("bench", &name).unwrap();
        let start = std::time::Instant::now();
        let (c, _) = if encrypted {
            write_encrypted_backup(up, &opts, "bench", None, &recipients, &mut |_, _| {}).unwrap()
        } else {
            write_signed_backup(up, &opts, "bench", None, &mut |_, _| {}).unwrap()
        };
        let secs = start.elapsed().as_secs_f64();
        if to_dir {
            t.delete("bench", &name).unwrap();
        }
        (secs, c.stats.bytes_in, c.stats.bytes_out)
    };
    once(false, false, 0); // warm the page cache
    println!("tree {root}; zstd 3; {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    for to_dir in [false, true] {
        let mut sums = [0f64; 2];
        for n in 1..=runs {
            for (i, encrypted) in [false, true].into_iter().enumerate() {
                let (secs, bytes_in, bytes_out) = once(encrypted, to_dir, n);
                sums[i] += secs;
                println!(
                    "{} {:<11} run {n}: {:>6.2} s, {:>6.1} MB/s in ({} MB in, {} MB out)",
                    if to_dir { "directory" } else { "memory   " },
                    if encrypted { "encrypted" } else { "unencrypted" },
                    secs,
                    bytes_in as f64 / 1e6 / secs,
                    bytes_in / 1_000_000,
                    bytes_out / 1_000_000
                );
            }
        }
        println!(
            "{}: encryption costs {:+.1}% of backup time (mean of {runs} runs each)",
            if to_dir { "directory" } else { "memory" },
            (sums[1] / sums[0] - 1.0) * 100.0
        );
    }
}
