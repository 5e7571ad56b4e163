//! A hostile corpus through the command line, as root: backups crafted by an
//! attacker who controls the target (every checksum correct, no signature).
//! Without `--insecure-unsigned` nothing of them is used; with it, restore
//! still writes nothing outside its destination, and verify, compare and
//! `backup info` name what they refuse, without a crash or a hang.

mod common;

use common::{config, root_or_skip, run_lifeboat};
use lifeboat_archive::craft::{entry, Crafter};
use lifeboat_archive::tar::Kind;
use std::path::{Path, PathBuf};

/// The crafted backup: every attack on the restore path at once.
fn corpus(dir: &Path, outside: &Path) -> PathBuf {
    let b = dir.join("evil");
    std::fs::create_dir_all(&b).expect("mkdir");
    let mut c = Crafter::new(&b);
    let file = |c: &mut Crafter, p: &[u8], d: &[u8]| c.add(&entry(p, Kind::File, d.len() as u64), d).expect("add");
    let out = outside.display().to_string().into_bytes();
    file(&mut c, b"../outside-dotdot", b"owned");
    file(&mut c, &[&out[..], b"/abs"].concat(), b"owned");
    c.add(&entry(b"link", Kind::Symlink(out.clone()), 0), b"").expect("add");
    file(&mut c, b"link/through-symlink", b"owned");
    c.add(&entry(b"s", Kind::Symlink(out), 0), b"").expect("add");
    let mut d = entry(b"s", Kind::Dir, 0);
    d.mode = 0o777;
    c.add(&d, b"").expect("add");
    c.add(&entry(b"shadow", Kind::Hardlink(b"/etc/shadow".to_vec()), 0), b"").expect("add");
    let mut e = entry(b"suid", Kind::File, 2);
    e.mode = 0o4755;
    e.uid = 0;
    let mut m = c.entry(&e, b"#!").expect("entry");
    m.mode = 0o755;
    c.record(&m);
    file(&mut c, b"fine", b"an ordinary file");
    c.finish(|_| {}).expect("finish");
    b
}

/// A directory beside the target holding one precious file (mode 0755): what an attack would reach.
fn victim_dir(dir: &Path) -> PathBuf {
    let outside = dir.join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("victim"), b"precious").expect("write");
    std::fs::set_permissions(&outside, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    outside
}

fn outside_untouched(outside: &Path) {
    let names: Vec<_> = std::fs::read_dir(outside).expect("outside").flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("victim")], "something was written outside the target");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(outside).expect("meta").permissions().mode() & 0o7777, 0o755);
    assert!(!Path::new("/outside-dotdot").exists() && !Path::new("/tmp/outside-dotdot").exists());
}

#[test]
fn a_crafted_unsigned_backup_is_refused_and_even_when_forced_restores_nothing_outside() {
    if !root_or_skip("restore with owners") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let outside = victim_dir(dir);
    let b = corpus(dir, &outside);
    let cfg = config(dir, "");
    let c = cfg.to_str().expect("utf8");
    let from = format!("file://{}", b.display());
    let to = dir.join("to");
    let t = to.to_str().expect("utf8");

    // Unsigned: refused by every command that reads it, before anything is written.
    for args in [
        vec!["restore", "--from", &from, "--to", t],
        vec!["verify", "--from", &from],
        vec!["compare", "--from", &from, "--root", t],
        vec!["backup", "info", "--from", &from],
    ] {
        let (code, out, err) = run_lifeboat(&[&["--config", c][..], &args].concat());
        assert_ne!(code, 0, "{args:?} accepted an unsigned backup:\n{out}");
        assert!(err.contains("signature") || err.contains("signed"), "{args:?}: the error names why: {err}");
    }
    assert!(!to.exists() || std::fs::read_dir(&to).expect("to").count() == 0, "nothing restored");

    // Forced: confined all the same, and every refusal is named.
    let (code, out, err) = run_lifeboat(&["--config", c, "restore", "--insecure-unsigned", "--from", &from, "--to", t]);
    assert_eq!(code, 1, "some entries were refused: exit 1\n{out}\n{err}");
    outside_untouched(&outside);
    for refused in ["../outside-dotdot", "/abs", "link/through-symlink", "shadow", "suid"] {
        assert!(out.lines().any(|l| l.contains("NOT RESTORED") && l.contains(refused)), "{refused}:\n{out}");
    }
    assert!(out.contains("tampered"), "the header that disagrees with the manifest is named as such:\n{out}");
    assert_eq!(std::fs::read(to.join("fine")).expect("fine"), b"an ordinary file");
    assert!(std::fs::symlink_metadata(to.join("s")).expect("s").is_dir(), "the directory replaced the symlink");
    assert!(!to.join("suid").exists());

    // verify, compare and info on the same corpus: they name it, they do not crash.
    for args in [
        vec!["verify", "--insecure-unsigned", "--from", &from],
        vec!["compare", "--insecure-unsigned", "--from", &from, "--root", t],
        vec!["backup", "info", "--insecure-unsigned", "--from", &from],
    ] {
        let (code, out, err) = run_lifeboat(&[&["--config", c][..], &args].concat());
        assert!(code == 0 || code == 1, "{args:?}: exit {code}\n{out}\n{err}");
        if args[0] != "backup" {
            assert_eq!(code, 1, "{args:?} reports the damage:\n{out}");
        }
    }
    let (_, out, _) = run_lifeboat(&["--config", c, "verify", "--insecure-unsigned", "--from", &from]);
    assert!(out.contains("suid") && out.contains("mode"), "verify names the tampered header:\n{out}");
    let (_, out, _) = run_lifeboat(&["--config", c, "compare", "--insecure-unsigned", "--from", &from, "--root", t]);
    assert!(out.contains("refused") && out.contains("../outside-dotdot"), "compare names the path it refuses:\n{out}");
    outside_untouched(&outside);
}

#[test]
fn crafted_catalogs_are_errors_naming_the_field_never_a_crash_or_a_hang() {
    if !root_or_skip("the same user as the tests that make backups") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let outside = victim_dir(dir);
    let cfg = config(dir, "");
    let c = cfg.to_str().expect("utf8");
    type Edit = fn(&mut lifeboat_archive::Catalog);
    let cases: &[(&str, Edit, &str)] = &[
        ("a volume named /dev/zero", |c| c.volumes[0].name = "/dev/zero".into(), "volumes[0].name"),
        ("a volume named ../x", |c| c.volumes[0].name = "../outside/victim".into(), "volumes[0].name"),
        ("a frame in volume 0", |c| c.frames[0].volume = 0, "frames[0].volume"),
        ("a huge frame", |c| c.frames[0].dlen = u64::MAX / 2, "frames[0].dlen"),
        ("a manifest named elsewhere", |c| c.manifest.name = "../../etc/passwd".into(), "manifest.name"),
    ];
    for (i, (what, edit, field)) in cases.iter().enumerate() {
        let b = dir.join(format!("c{i}"));
        std::fs::create_dir(&b).expect("mkdir");
        let mut cr = Crafter::new(&b);
        cr.add(&entry(b"f", Kind::File, 3), b"abc").expect("add");
        cr.finish(edit).expect("finish");
        let from = format!("file://{}", b.display());
        for cmd in [&["verify"][..], &["backup", "info"], &["restore", "--to", "/nonexistent-never-made"]] {
            let start = std::time::Instant::now();
            let (code, out, err) =
                run_lifeboat(&[&["--config", c][..], cmd, &["--insecure-unsigned", "--from", &from]].concat());
            assert!(start.elapsed().as_secs() < 20, "{what}: {cmd:?} took {:?}", start.elapsed());
            assert_eq!(code, 2, "{what}: {cmd:?} exit {code}\n{out}\n{err}");
            assert!(err.contains(field) && err.contains("damaged"), "{what}: {cmd:?} names {field}: {err}");
        }
    }
    assert!(!Path::new("/nonexistent-never-made").exists());
    assert_eq!(std::fs::read(outside.join("victim")).expect("victim"), b"precious");
}

#[test]
fn one_flipped_byte_in_the_manifest_does_not_block_the_restore() {
    if !root_or_skip("restore with owners") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let (tree, target) = (dir.join("tree"), dir.join("target"));
    common::sh(&format!(
        "set -e; mkdir -p {t}/etc {t}/data {target}; echo 'root:x:0:0' > {t}/etc/passwd; head -c 3000000 /dev/urandom > {t}/data/blob; chmod 600 {t}/data/blob; ln -s ../etc/passwd {t}/data/link",
        t = tree.display(),
        target = target.display()
    ));
    let cfg = config(dir, "");
    let c = cfg.to_str().expect("utf8");
    let b = common::back_up(&cfg, &tree, &target, &["--volume-size", "1M"]);
    let mf = b.join("manifest.jsonl");
    let mut m = std::fs::read(&mf).expect("manifest");
    m[20] ^= 0x01;
    std::fs::write(&mf, &m).expect("write");
    let from = format!("file://{}", b.display());
    let to = dir.join("to");
    let (code, out, err) =
        run_lifeboat(&["--config", c, "restore", "--from", &from, "--to", to.to_str().expect("utf8")]);
    assert_eq!(code, 1, "restored, but not checked entry by entry: exit 1\n{out}\n{err}");
    assert!(err.contains("manifest") && err.contains("tar stream alone"), "it says why and what it does: {err}");
    assert!(out.contains("NOT CHECKED") && !out.contains("NOT RESTORED"), "{out}");
    for f in ["etc/passwd", "data/blob"] {
        assert_eq!(std::fs::read(to.join(f)).expect("restored"), std::fs::read(tree.join(f)).expect("source"), "{f}");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(to.join("data/blob")).expect("meta").permissions().mode() & 0o7777, 0o600);
    assert_eq!(std::fs::read_link(to.join("data/link")).expect("link"), Path::new("../etc/passwd"));
    // A catalog changed as well: then nothing is trusted, and nothing is restored.
    let cat = b.join("backup.json");
    let text = std::fs::read_to_string(&cat).expect("catalog").replacen("\"host\"", "\"host\" ", 1);
    std::fs::write(&cat, text).expect("write");
    let to2 = dir.join("to2");
    let (code, _, err) =
        run_lifeboat(&["--config", c, "restore", "--from", &from, "--to", to2.to_str().expect("utf8")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("signature"), "{err}");
    assert!(!to2.exists() || std::fs::read_dir(&to2).expect("to2").count() == 0);
}

#[test]
fn a_volume_or_signature_that_is_a_fifo_or_device_never_blocks_a_reader() {
    if !root_or_skip("the same user as the tests that make backups") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let cfg = config(dir, "");
    let c = cfg.to_str().expect("utf8");
    for (i, (what, file, make)) in [
        ("a FIFO volume", "vol-0001.tar.zst", "mkfifo"),
        ("a volume linked to /dev/zero", "vol-0001.tar.zst", "ln -s /dev/zero"),
        ("a FIFO signature", "backup.json.minisig", "mkfifo"),
        ("a FIFO catalog", "backup.json", "mkfifo"),
    ]
    .iter()
    .enumerate()
    {
        let b = dir.join(format!("case-{i}"));
        std::fs::create_dir(&b).expect("mkdir");
        let mut cr = Crafter::new(&b);
        cr.add(&entry(b"f", Kind::File, 3), b"abc").expect("add");
        cr.finish(|_| {}).expect("finish");
        let p = b.join(file);
        let _ = std::fs::remove_file(&p);
        common::sh(&format!("{make} {}", p.display()));
        let from = format!("file://{}", b.display());
        let to = dir.join("to");
        for cmd in [&["verify"][..], &["restore", "--to", to.to_str().expect("utf8")]] {
            // Unsigned: refused; forced: the damaged file is named. Neither blocks nor panics.
            for force in [&[][..], &["--insecure-unsigned"]] {
                let start = std::time::Instant::now();
                let (code, out, err) = run_lifeboat(&[&["--config", c][..], cmd, force, &["--from", &from]].concat());
                assert!(start.elapsed().as_secs() < 20, "{what}: {cmd:?} blocked for {:?}", start.elapsed());
                assert_ne!(code, 101, "{what}: {cmd:?} panicked\n{err}");
                if force.is_empty() || *file != "backup.json.minisig" {
                    assert_ne!(code, 0, "{what}: {cmd:?} {force:?} must not succeed\n{out}\n{err}");
                }
                // (A catalog that is not a regular file is not a backup at all: "no complete backup".)
                if !force.is_empty() && *file != "backup.json" {
                    assert!(format!("{out}{err}").contains("regular file"), "{what}: {cmd:?} names why: {out}{err}");
                }
            }
        }
    }
}
