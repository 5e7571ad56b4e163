//! Backups written by an attacker who controls the target (every checksum
//! correct): restore writes nothing outside its destination, follows no
//! symlink, links to nothing it did not restore, and restores no metadata
//! the manifest does not record. These need no root.

#![allow(clippy::unwrap_used)]

use lifeboat_archive::craft::{entry, Crafter};
use lifeboat_archive::read::Backup;
use lifeboat_archive::restore::{restore, verify, RestoreReport};
use lifeboat_archive::tar::Kind;
use std::path::Path;

struct Case {
    _tmp: tempfile::TempDir,
    backup: std::path::PathBuf,
    to: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn case() -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let backup = tmp.path().join("backup");
    let to = tmp.path().join("to");
    let outside = tmp.path().join("outside");
    for d in [&backup, &to, &outside] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(outside.join("victim"), b"precious").unwrap();
    Case { _tmp: tmp, backup, to, outside }
}

impl Case {
    fn restore(&self) -> RestoreReport {
        let b = Backup::open(&self.backup).unwrap();
        restore(&b, &self.to, &[]).unwrap()
    }

    /// The tree outside the destination is exactly what it was.
    fn outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(&self.outside).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("victim")], "something was written outside the target");
        assert_eq!(std::fs::read(self.outside.join("victim")).unwrap(), b"precious");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&self.outside).unwrap().permissions().mode() & 0o7777, 0o755);
        assert_eq!(std::fs::metadata(self.outside.join("victim")).unwrap().permissions().mode() & 0o7777, 0o644);
    }
}

fn file(c: &mut Crafter, path: &[u8], data: &[u8]) {
    c.add(&entry(path, Kind::File, data.len() as u64), data).unwrap();
}

fn lost_names(r: &RestoreReport, needle: &str) -> bool {
    r.lost.iter().any(|l| l.contains(needle))
}

#[test]
fn dotdot_and_absolute_names_are_refused_and_named() {
    let t = case();
    std::fs::set_permissions(&t.outside, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = Crafter::new(&t.backup);
    file(&mut c, b"../outside/victim", b"owned");
    file(&mut c, b"../outside/new", b"owned");
    let abs = format!("{}/new", t.outside.display());
    file(&mut c, abs.as_bytes(), b"owned");
    file(&mut c, b"a/../../outside/new2", b"owned");
    file(&mut c, b"ok", b"fine");
    c.finish(|_| {}).unwrap();
    let r = t.restore();
    t.outside_untouched();
    assert_eq!(r.restored, 1, "{:?}", r.lost);
    assert_eq!(std::fs::read(t.to.join("ok")).unwrap(), b"fine");
    assert_eq!(r.lost.len(), 4, "{:?}", r.lost);
    assert!(lost_names(&r, "../outside/victim: refused"), "{:?}", r.lost);
    assert!(lost_names(&r, "an absolute path"), "{:?}", r.lost);
}

#[test]
fn nothing_is_written_through_a_symlink_the_archive_made() {
    let t = case();
    std::fs::set_permissions(&t.outside, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = Crafter::new(&t.backup);
    let out = t.outside.display().to_string().into_bytes();
    c.add(&entry(b"link", Kind::Symlink(out.clone()), 0), b"").unwrap();
    file(&mut c, b"link/victim", b"owned");
    file(&mut c, b"link/new", b"owned");
    // A directory entry of the same name after the symlink: its mode must not reach the symlink's target.
    c.add(&entry(b"s", Kind::Symlink(out), 0), b"").unwrap();
    let mut d = entry(b"s", Kind::Dir, 0);
    d.mode = 0o777;
    c.add(&d, b"").unwrap();
    c.finish(|_| {}).unwrap();
    let r = t.restore();
    t.outside_untouched();
    assert!(lost_names(&r, "link/victim: refused: link is a symbolic link"), "{:?}", r.lost);
    assert!(std::fs::symlink_metadata(t.to.join("link")).unwrap().file_type().is_symlink());
    // The directory entry replaced the symlink, as GNU tar does.
    assert!(std::fs::symlink_metadata(t.to.join("s")).unwrap().is_dir());
}

#[test]
fn a_symlink_already_in_the_target_is_never_followed() {
    let t = case();
    std::fs::set_permissions(&t.outside, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Planted by an ordinary user in a world-writable directory of the target.
    std::fs::create_dir(t.to.join("tmp")).unwrap();
    std::os::unix::fs::symlink(&t.outside, t.to.join("tmp/x")).unwrap();
    std::os::unix::fs::symlink(t.outside.join("victim"), t.to.join("tmp/f")).unwrap();
    let mut c = Crafter::new(&t.backup);
    file(&mut c, b"tmp/x/victim", b"owned");
    file(&mut c, b"tmp/f", b"replaced");
    c.add(&entry(b"tmp/x/d", Kind::Dir, 0), b"").unwrap();
    c.finish(|_| {}).unwrap();
    let r = t.restore();
    t.outside_untouched();
    assert!(lost_names(&r, "tmp/x/victim: refused: tmp/x is a symbolic link"), "{:?}", r.lost);
    // The file replaced the symlink itself, not what it pointed at.
    assert!(std::fs::symlink_metadata(t.to.join("tmp/f")).unwrap().is_file());
    assert_eq!(std::fs::read(t.to.join("tmp/f")).unwrap(), b"replaced");
}

#[test]
fn hard_links_only_to_files_restored_in_this_run() {
    let t = case();
    std::fs::set_permissions(&t.outside, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(t.to.join("existing"), b"was here").unwrap();
    let mut c = Crafter::new(&t.backup);
    let victim = t.outside.join("victim").display().to_string().into_bytes();
    c.add(&entry(b"h1", Kind::Hardlink(victim), 0), b"").unwrap();
    c.add(&entry(b"h2", Kind::Hardlink(b"../outside/victim".to_vec()), 0), b"").unwrap();
    c.add(&entry(b"h3", Kind::Hardlink(b"existing".to_vec()), 0), b"").unwrap();
    c.add(&entry(b"h4", Kind::Hardlink(b"later".to_vec()), 0), b"").unwrap();
    file(&mut c, b"later", b"x");
    file(&mut c, b"f", b"content");
    c.add(&entry(b"h5", Kind::Hardlink(b"f".to_vec()), 0), b"").unwrap();
    c.finish(|_| {}).unwrap();
    let r = t.restore();
    t.outside_untouched();
    for h in ["h1", "h2", "h3", "h4"] {
        assert!(lost_names(&r, &format!("{h}: refused")), "{h}: {:?}", r.lost);
        assert!(std::fs::symlink_metadata(t.to.join(h)).is_err(), "{h} was made");
    }
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(t.to.join("h5")).unwrap().ino(), std::fs::metadata(t.to.join("f")).unwrap().ino());
    assert_eq!(r.restored, 3);
}

#[test]
fn a_header_that_differs_from_its_manifest_line_is_damage_and_not_restored() {
    let t = case();
    let mut c = Crafter::new(&t.backup);
    // setuid in the header, not in the manifest.
    let mut e = entry(b"suid", Kind::File, 2);
    e.mode = 0o4755;
    let mut m = c.entry(&e, b"#!").unwrap();
    m.mode = 0o755;
    c.record(&m);
    // A damaged pax mtime.
    let mut e = entry(b"time", Kind::File, 2);
    e.mtime_ns = 5;
    let mut m = c.entry(&e, b"ab").unwrap();
    m.mtime_ns += 1;
    c.record(&m);
    // An xattr value (a file capability, say) that the manifest does not record.
    let mut e = entry(b"cap", Kind::File, 2);
    e.xattrs = vec![(b"user.evil".to_vec(), b"bad".to_vec())];
    let mut m = c.entry(&e, b"ab").unwrap();
    m.xattr_blake3 = vec![blake3::hash(b"good").to_hex().to_string()];
    c.record(&m);
    // Another owner, another device, another link target.
    let mut e = entry(b"own", Kind::File, 0);
    e.uid = 4242;
    let mut m = c.entry(&e, b"").unwrap();
    m.uid = rustix::process::getuid().as_raw();
    c.record(&m);
    let mut m = c.entry(&entry(b"mem", Kind::Char(1, 1), 0), b"").unwrap();
    m.rdev = Some((1, 3));
    c.record(&m);
    let mut m = c.entry(&entry(b"l", Kind::Symlink(b"/etc/shadow".to_vec()), 0), b"").unwrap();
    m.link = Some("/etc/motd".into());
    c.record(&m);
    c.finish(|_| {}).unwrap();
    let b = Backup::open(&t.backup).unwrap();
    let v = verify(&b);
    assert_eq!(v.lost.len(), 6, "verify names every one: {:?}", v.lost);
    let r = t.restore();
    assert_eq!(r.restored, 0, "{:?}", r.lost);
    for (name, field) in [
        ("suid", "mode"),
        ("time", "mtime"),
        ("cap", "extended attribute user.evil"),
        ("own", "owner"),
        ("mem", "device numbers"),
        ("l", "link target"),
    ] {
        assert!(
            r.lost.iter().any(|l| l.starts_with(&format!("{name}: ")) && l.contains(field) && l.contains("tampered")),
            "{name} {field}: {:?}",
            r.lost
        );
        assert!(std::fs::symlink_metadata(t.to.join(name)).is_err(), "{name} was restored");
    }
}

#[test]
fn content_that_fails_its_checksum_never_replaces_a_file() {
    let t = case();
    std::fs::write(t.to.join("f"), b"the old one").unwrap();
    let mut c = Crafter::new(&t.backup);
    let mut m = c.entry(&entry(b"f", Kind::File, 4), b"evil").unwrap();
    m.blake3 = Some(blake3::hash(b"good").to_hex().to_string());
    c.record(&m);
    c.finish(|_| {}).unwrap();
    let r = t.restore();
    assert!(lost_names(&r, "f: content differs from its BLAKE3"), "{:?}", r.lost);
    assert_eq!(std::fs::read(t.to.join("f")).unwrap(), b"the old one");
    let names: Vec<_> = std::fs::read_dir(&t.to).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
}

#[test]
fn patterns_that_match_nothing_are_an_error_naming_them() {
    let t = case();
    let mut c = Crafter::new(&t.backup);
    file(&mut c, b"etc/passwd", b"root:x:0:0");
    c.finish(|_| {}).unwrap();
    let b = Backup::open(&t.backup).unwrap();
    let e = restore(&b, &t.to, &["etc/shadow".into(), "nope/*".into()]).unwrap_err().to_string();
    assert!(e.contains("etc/shadow nope/*") && e.contains("nothing was restored"), "{e}");
    assert_eq!(std::fs::read_dir(&t.to).unwrap().count(), 0);
}

#[test]
fn restored_files_and_directories_get_their_modes_and_times() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = case();
    let mut c = Crafter::new(&t.backup);
    let mut d = entry(b"d", Kind::Dir, 0);
    d.mode = 0o751;
    d.mtime = 1_600_000_000;
    d.mtime_ns = 7;
    c.add(&d, b"").unwrap();
    let mut e = entry(b"d/secret", Kind::File, 3);
    e.mode = 0o600;
    c.add(&e, b"key").unwrap();
    let mut s = entry(b"d/l", Kind::Symlink(b"secret".to_vec()), 0);
    s.mtime = 1_500_000_000;
    c.add(&s, b"").unwrap();
    let mut f = entry(b"d/fifo", Kind::Fifo, 0);
    f.mode = 0o640;
    c.add(&f, b"").unwrap();
    c.finish(|_| {}).unwrap();
    let r = t.restore();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    let m = |p: &str| std::fs::symlink_metadata(t.to.join(p)).unwrap();
    assert_eq!(m("d").permissions().mode() & 0o7777, 0o751);
    assert_eq!((m("d").mtime(), m("d").mtime_nsec()), (1_600_000_000, 7));
    assert_eq!(m("d/secret").permissions().mode() & 0o7777, 0o600);
    assert_eq!(m("d/l").mtime(), 1_500_000_000);
    assert_eq!(m("d/fifo").permissions().mode() & 0o7777, 0o640);
    assert!(Path::new(&t.to.join("d/l")).exists());
}

#[test]
fn a_damaged_manifest_still_restores_from_the_stream_saying_what_it_could_not_check() {
    use lifeboat_archive::restore::{from_stream, restore_stream_only};
    let t = case();
    let mut c = Crafter::new(&t.backup);
    c.add(&entry(b"etc", Kind::Dir, 0), b"").unwrap();
    file(&mut c, b"etc/hosts", b"127.0.0.1 localhost\n");
    let mut big = vec![0u8; 3_000_000];
    blake3::Hasher::new().update(b"seed").finalize_xof().fill(&mut big);
    file(&mut c, b"etc/big", &big);
    c.add(&entry(b"etc/l", Kind::Symlink(b"hosts".to_vec()), 0), b"").unwrap();
    file(&mut c, b"last", b"after the big file");
    c.finish(|_| {}).unwrap();
    // One flipped byte in the manifest: the backup no longer opens.
    let mf = t.backup.join("manifest.jsonl");
    let mut m = std::fs::read(&mf).unwrap();
    m[10] ^= 1;
    std::fs::write(&mf, &m).unwrap();
    assert!(Backup::open(&t.backup).is_err());
    let cat =
        lifeboat_archive::read::parse_catalog(&std::fs::read(t.backup.join("backup.json")).unwrap(), "backup.json")
            .unwrap();
    let so =
        from_stream(std::sync::Arc::new(lifeboat_archive::target::DirObjects::new(&t.backup)), cat.clone()).unwrap();
    assert_eq!(so.backup.entries.len(), 5);
    let r = restore_stream_only(&so, &t.to, &[], &mut |_, _| {}).unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert!(r.unchecked.iter().any(|u| u.contains("manifest is damaged")), "{:?}", r.unchecked);
    assert_eq!(std::fs::read(t.to.join("etc/big")).unwrap(), big);
    assert_eq!(std::fs::read(t.to.join("last")).unwrap(), b"after the big file");
    assert_eq!(std::fs::read_link(t.to.join("etc/l")).unwrap(), Path::new("hosts"));
    // A damaged volume: what lies in it and after it is not read, and the report says so.
    assert!(cat.volumes.len() >= 2, "{} volumes", cat.volumes.len());
    let v2 = t.backup.join(&cat.volumes[1].name);
    let mut d = std::fs::read(&v2).unwrap();
    d[100] ^= 0xff;
    std::fs::write(&v2, &d).unwrap();
    let so = from_stream(std::sync::Arc::new(lifeboat_archive::target::DirObjects::new(&t.backup)), cat).unwrap();
    assert!(so.unchecked.iter().any(|u| u.contains("volume 2") && u.contains("not restored")), "{:?}", so.unchecked);
    assert!(so.backup.entries.len() < 5);
    let to2 = t.to.with_file_name("to2");
    std::fs::create_dir(&to2).unwrap();
    let r = restore_stream_only(&so, &to2, &[], &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(to2.join("etc/hosts")).unwrap(), b"127.0.0.1 localhost\n");
    assert!(!to2.join("last").exists());
    assert!(!r.unchecked.is_empty());
}
