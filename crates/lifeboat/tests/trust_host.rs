//! Authenticated backups: the catalog of every backup is signed with the
//! host's key (made at the first backup); verify, restore, compare, backup
//! info and recover refuse a backup whose signature is missing, made by
//! another key, or does not match its catalog, naming why, unless told
//! --insecure-unsigned. The signature verifies with minisign itself, and a
//! rescue medium carries the public key that recovery verifies with.

mod common;

use common::{config, root_or_skip, run_lifeboat, sh};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A small tree, a target and a config (keys in DIR/keys) in a temporary directory.
struct Setup {
    tmp: tempfile::TempDir,
    tree: PathBuf,
    target: PathBuf,
    cfg: PathBuf,
}

impl Setup {
    fn new() -> Option<Setup> {
        if !root_or_skip("backups read the layout and keep owners") {
            return None;
        }
        let tmp = tempfile::tempdir().expect("tmp");
        let (tree, target) = (tmp.path().join("tree"), tmp.path().join("target"));
        std::fs::create_dir_all(tree.join("etc")).expect("mkdir");
        std::fs::create_dir_all(tree.join("srv/www")).expect("mkdir");
        std::fs::create_dir_all(&target).expect("mkdir");
        std::fs::write(tree.join("etc/hosts"), "127.0.0.1 localhost\n").expect("write");
        std::fs::write(tree.join("srv/www/index.html"), "<h1>hello</h1>\n".repeat(1000)).expect("write");
        let cfg = config(tmp.path(), "");
        Some(Setup { tmp, tree, target, cfg })
    }

    fn c(&self) -> &str {
        self.cfg.to_str().expect("utf8")
    }

    fn keys(&self) -> PathBuf {
        self.tmp.path().join("keys")
    }

    /// Back up the tree with `cfg`; the new backup's directory and stderr.
    fn backup_with(&self, cfg: &Path, target: &Path) -> (PathBuf, String) {
        let before = backups(target);
        let (code, out, err) = run_lifeboat(&[
            "--config",
            cfg.to_str().expect("utf8"),
            "backup",
            "--target",
            &url(target),
            "--root",
            self.tree.to_str().expect("utf8"),
            ".",
        ]);
        assert_eq!(code, 0, "{out}\n{err}");
        let new: Vec<PathBuf> = backups(target).into_iter().filter(|b| !before.contains(b)).collect();
        assert_eq!(new.len(), 1, "{new:?}");
        (new[0].clone(), err)
    }

    fn backup(&self) -> PathBuf {
        self.backup_with(&self.cfg, &self.target).0
    }

    /// Run lifeboat with this setup's config.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        run_lifeboat(&[&["--config", self.c()], args].concat())
    }

    /// Every command that reads a backup, on `b` (with more arguments).
    fn readers(&self, b: &Path, more: &[&str]) -> Vec<(String, (i32, String, String))> {
        let from = url(b);
        let to = self.tmp.path().join(format!("restored-{}", more.len()));
        let _ = std::fs::remove_dir_all(&to);
        let cmds: Vec<Vec<&str>> = vec![
            vec!["verify", "--from", &from],
            vec!["restore", "--from", &from, "--to", to.to_str().expect("utf8")],
            vec!["compare", "--from", &from, "--root", self.tree.to_str().expect("utf8")],
            vec!["backup", "info", "--from", &from],
        ];
        cmds.into_iter().map(|c| (c.join(" "), self.run(&[c.as_slice(), more].concat()))).collect()
    }
}

fn url(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// The published backups on a target, sorted.
fn backups(target: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(target.join(common::hostname()))
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| !p.to_string_lossy().ends_with(".partial")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The key id in a public key file (`untrusted comment: minisign public key: ID`).
fn key_id(public: &Path) -> String {
    let text = std::fs::read_to_string(public).expect("public key");
    text.lines().next().and_then(|l| l.rsplit(' ').next()).expect("id").to_string()
}

fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn signed_backups_verify_restore_and_check_with_minisign() {
    let Some(s) = Setup::new() else { return };
    let (b, err) = s.backup_with(&s.cfg, &s.target);
    let keys = s.keys();
    let id = key_id(&keys.join("signing.pub"));
    // The first backup makes the key and says where to keep its public half; later ones say nothing.
    assert!(err.contains(&format!("made a new backup signing key {id}")), "{err}");
    assert!(err.contains("Keep a copy of the public key OFF this machine") && err.contains("minisign -Vm"), "{err}");
    let (b2, err2) = s.backup_with(&s.cfg, &s.target);
    assert!(!err2.contains("signing key"), "announced once: {err2}");
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").mode() & 0o777;
    assert_eq!(mode(&keys.join("signing.key")), 0o600);
    assert_eq!(mode(&b.join("backup.json.minisig")), 0o600);
    let catalog: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("backup.json")).expect("catalog")).expect("json");
    assert_eq!(catalog["key_id"], id.as_str(), "the catalog records the key");

    for (cmd, (code, out, err)) in s.readers(&b, &[]) {
        assert_eq!(code, 0, "{cmd}: {out}\n{err}");
        assert!(!err.contains("WARNING"), "{cmd}: {err}");
        if cmd.starts_with("verify") || cmd.starts_with("backup info") {
            assert!(out.contains(&format!("signed by trusted key {id}")), "{cmd}: {out}");
        }
    }
    let restored = s.tmp.path().join("restored-0");
    assert_eq!(std::fs::read(restored.join("etc/hosts")).expect("restored"), b"127.0.0.1 localhost\n");
    let (code, out, _) = s.run(&["--json", "verify", "--from", &url(&b2)]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!((v["signature"]["verified"].as_bool(), v["signature"]["key_id"].as_str()), (Some(true), Some(&*id)));

    // config show names the key.
    let (code, out, _) = s.run(&["config", "show"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("# backup signing key {id}")) && out.contains("key_dir = "), "{out}");

    // The standard tool verifies the catalog with the public key alone.
    if have("minisign") {
        sh(&format!(
            "minisign -Vm {}/backup.json -p {}/signing.pub 2>&1 | grep -q 'Signature and comment signature verified'",
            b.display(),
            keys.display()
        ));
        let changed = s.tmp.path().join("changed.json");
        let text = std::fs::read_to_string(b.join("backup.json")).expect("catalog");
        std::fs::write(&changed, text.replacen("\"entries\": ", "\"entries\": 1", 1)).expect("write");
        let bad = std::process::Command::new("minisign")
            .args(["-Vm", &changed.to_string_lossy(), "-x", &b.join("backup.json.minisig").to_string_lossy()])
            .args(["-p", &keys.join("signing.pub").to_string_lossy()])
            .output()
            .expect("minisign");
        assert!(!bad.status.success(), "a changed catalog does not verify with minisign either");
    } else {
        eprintln!("SKIP: minisign is not installed (make test-deps installs it)");
    }
}

#[test]
fn the_secret_key_is_never_in_a_backup() {
    let Some(s) = Setup::new() else { return };
    // The key directory inside the tree that is backed up, as /etc/lifeboat is in a backup of /.
    let cfg = config(s.tmp.path(), "");
    let text = std::fs::read_to_string(&cfg).expect("cfg");
    let inside = s.tree.join("etc/lifeboat");
    std::fs::write(&cfg, text.replace(&format!("{}/keys", s.tmp.path().display()), &inside.to_string_lossy()))
        .expect("cfg");
    let (b, _) = s.backup_with(&cfg, &s.target);
    assert!(inside.join("signing.key").exists());
    let manifest = std::fs::read_to_string(b.join("manifest.jsonl")).expect("manifest");
    assert!(manifest.contains("\"etc/lifeboat/signing.pub\""), "the public key is backed up: {manifest}");
    assert!(!manifest.contains("signing.key"), "the secret key is not: {manifest}");
    let tar = sh(&format!("cat {}/vol-*.tar.zst | zstd -dc | tar -t", b.display()));
    assert!(!tar.contains("signing.key"), "{tar}");
}

#[test]
fn unsigned_backups_are_refused_by_every_reader_unless_insecure_unsigned() {
    let Some(s) = Setup::new() else { return };
    let b = s.backup();
    let list = || s.run(&["backup", "list", "--target", &url(&s.target)]).1;
    let line = |out: &str| out.lines().find(|l| l.ends_with(&*b.to_string_lossy())).unwrap_or_default().to_string();
    let out = list();
    assert!(line(&out).contains(" yes "), "{out}");
    std::fs::remove_file(b.join("backup.json.minisig")).expect("rm");
    let out = list();
    assert!(line(&out).contains(" NO "), "backup list shows it unsigned: {out}");
    assert!(out.contains("1 backup(s) NOT signed by a key trusted here"), "{out}");
    for (cmd, (code, out, err)) in s.readers(&b, &[]) {
        assert_ne!(code, 0, "{cmd} accepted an unsigned backup: {out}");
        assert!(err.contains("refusing the backup") && err.contains("no signature"), "{cmd}: {err}");
        assert!(err.contains("fix:") && err.contains("--insecure-unsigned"), "{cmd} names the fix: {err}");
        assert!(!s.tmp.path().join("restored-0/etc/hosts").exists(), "{cmd}: nothing restored");
    }
    for (cmd, (code, out, err)) in s.readers(&b, &["--insecure-unsigned"]) {
        assert_eq!(code, 0, "{cmd} --insecure-unsigned: {out}\n{err}");
        assert!(err.contains("WARNING") && err.contains("NOT authenticated") && err.contains("no signature"), "{err}");
    }
    assert!(s.tmp.path().join("restored-1/etc/hosts").exists());

    // recover: refused before any plan is made; --insecure-unsigned gets past the check; never with --auto.
    let layout = s.tmp.path().join("layout.toml");
    let (code, out, err) = s.run(&["layout", "save", "--output", layout.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}\n{err}");
    let base = ["recover", "--layout", layout.to_str().expect("utf8"), "--from", &url(&b), "--plan"];
    let (code, out, err) = s.run(&base);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("refusing the backup") && err.contains("no signature"), "{err}");
    assert!(!out.contains("Recovery plan"), "{out}");
    let (_, _, err) = s.run(&[&base[..], &["--insecure-unsigned"]].concat());
    assert!(err.contains("NOT authenticated") && !err.contains("refusing the backup"), "{err}");
    let (code, _, err) = s.run(&[&base[..], &["--insecure-unsigned", "--auto"]].concat());
    assert_ne!(code, 0);
    assert!(err.contains("--insecure-unsigned") && err.contains("--auto"), "{err}");
    // A target (its newest backup) is refused the same way.
    let (code, _, err) = s.run(&["verify", "--from", &url(&s.target)]);
    assert_ne!(code, 0);
    assert!(err.contains("no signature"), "{err}");
}

#[test]
fn backups_signed_by_another_key_are_refused_naming_both_keys() {
    let Some(s) = Setup::new() else { return };
    let b = s.backup();
    // Another machine (another key directory) and its backup.
    let other = s.tmp.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    let other_cfg = config(&other, "");
    let other_target = s.tmp.path().join("other-target");
    std::fs::create_dir_all(&other_target).expect("mkdir");
    let (ob, _) = s.backup_with(&other_cfg, &other_target);
    let (mine, theirs) = (key_id(&s.keys().join("signing.pub")), key_id(&other.join("keys/signing.pub")));
    assert_ne!(mine, theirs);
    // This host's catalog with the other key's signature, and the other backup whole.
    std::fs::copy(ob.join("backup.json.minisig"), b.join("backup.json.minisig")).expect("cp");
    for dir in [&b, &ob] {
        for (cmd, (code, out, err)) in s.readers(dir, &[]) {
            assert_ne!(code, 0, "{cmd}: {out}");
            assert!(err.contains("signed by another key"), "{cmd}: {err}");
            assert!(err.contains(&theirs) && err.contains(&mine), "{cmd} names both keys: {err}");
        }
    }
    // A retired key kept as signing-ID.pub is trusted.
    std::fs::copy(other.join("keys/signing.pub"), s.keys().join(format!("signing-{theirs}.pub"))).expect("cp");
    let (code, out, err) = s.run(&["verify", "--from", &url(&ob)]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("signed by trusted key {theirs}")), "{out}");
    // The mixed one still does not match: the other key never signed this catalog.
    let (code, _, err) = s.run(&["verify", "--from", &url(&b)]);
    assert_ne!(code, 0);
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn a_catalog_changed_by_one_byte_is_refused() {
    let Some(s) = Setup::new() else { return };
    let b = s.backup();
    let cat = b.join("backup.json");
    let text = std::fs::read_to_string(&cat).expect("catalog");
    // One byte: the size of the first volume (the attacker's own volume would need it).
    let at = text.find("\"size\": ").expect("a size") + 8;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'9' { b'8' } else { bytes[at] + 1 };
    std::fs::write(&cat, &bytes).expect("write");
    for (cmd, (code, out, err)) in s.readers(&b, &[]) {
        assert_ne!(code, 0, "{cmd}: {out}");
        assert!(err.contains("does not match") && err.contains("was changed"), "{cmd}: {err}");
    }
    // A signature file that is not one is refused too, never a crash.
    std::fs::write(b.join("backup.json.minisig"), "untrusted comment: x\nAAAA\ntrusted comment: y\nBBBB\n")
        .expect("write");
    let (code, _, err) = s.run(&["verify", "--from", &url(&b)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a valid minisign signature"), "{err}");
}

#[test]
fn without_a_trusted_key_nothing_is_accepted() {
    let Some(s) = Setup::new() else { return };
    let b = s.backup();
    std::fs::remove_dir_all(s.keys()).expect("rm keys");
    let (code, _, err) = s.run(&["restore", "--from", &url(&b), "--to", &s.tmp.path().join("r").to_string_lossy()]);
    assert_ne!(code, 0);
    assert!(err.contains("no trusted public key") && err.contains("signing.pub"), "{err}");
    let (code, out, err) = s.run(&["verify", "--insecure-unsigned", "--from", &url(&b)]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("NOT authenticated (no trusted public key)"), "{err}");
}

#[test]
fn the_rescue_medium_carries_the_public_key_and_recovery_verifies_with_it() {
    let Some(s) = Setup::new() else { return };
    let out = s.tmp.path().join("media");
    let (code, stdout, stderr) = s.run(&["mkrescue", "--format", "pxe", "--output", out.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // mkrescue made the key (no backup yet), so the backups made later verify from this medium.
    assert!(stderr.contains("made a new backup signing key"), "{stderr}");
    let b = s.backup();
    let initrd = s.tmp.path().join("work/rescue/initrd.img");
    let x = s.tmp.path().join("initrd");
    std::fs::create_dir_all(&x).expect("mkdir");
    sh(&format!("cd {} && zstd -dc {} | cpio -id --quiet 'etc/lifeboat/*'", x.display(), initrd.display()));
    let etc = x.join("etc/lifeboat");
    assert_eq!(
        std::fs::read_to_string(etc.join("signing.pub")).expect("public key on the medium"),
        std::fs::read_to_string(s.keys().join("signing.pub")).expect("host key")
    );
    assert!(!etc.join("signing.key").exists(), "the secret key stays on the host");
    let rescue_cfg = std::fs::read_to_string(etc.join("lifeboat.toml")).expect("rescue config");
    assert!(rescue_cfg.contains("key_dir = \"/etc/lifeboat\""), "{rescue_cfg}");
    // The rescue system's view: its config, with its /etc/lifeboat here.
    let cfg = s.tmp.path().join("rescue.toml");
    std::fs::write(
        &cfg,
        rescue_cfg.replace("key_dir = \"/etc/lifeboat\"", &format!("key_dir = \"{}\"", etc.display())),
    )
    .expect("cfg");
    let c = cfg.to_str().expect("utf8");
    let (code, out, err) = run_lifeboat(&["--config", c, "verify", "--from", &url(&b)]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("signed by trusted key"), "{out}");
    std::fs::remove_file(b.join("backup.json.minisig")).expect("rm");
    let (code, _, err) = run_lifeboat(&["--config", c, "verify", "--from", &url(&b)]);
    assert_ne!(code, 0);
    assert!(err.contains("no signature"), "{err}");
}
