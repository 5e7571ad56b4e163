//! Encrypted backups through the commands an administrator types: `backup`
//! with `backup.recipients`, `verify` with and without the identity,
//! `restore` and `compare` with `--identity` (or `backup.identity_file`), and
//! the errors for a missing and a wrong identity. Needs `age-keygen` (Debian
//! package age).

mod common;

use common::{config, run_lifeboat, sh};
use std::path::Path;

fn keygen(path: &Path) -> String {
    sh(&format!("age-keygen -o {} 2>/dev/null", path.display()));
    sh(&format!("age-keygen -y {}", path.display())).trim().to_string()
}

#[test]
fn an_encrypted_backup_keeps_nothing_readable_and_restores_only_with_its_identity() {
    if !Path::new("/usr/bin/age-keygen").exists() {
        eprintln!("SKIP: age-keygen (Debian package age) is not installed; make test-deps installs it");
        return;
    }
    let work = tempfile::tempdir().expect("tmp");
    let w = work.path();
    let public = keygen(&w.join("key.txt"));
    keygen(&w.join("other.txt"));
    let cfg = config(w, &format!("[backup]\nrecipients = [\"{public}\"]\n"));
    let c = cfg.to_str().expect("utf8");
    let tree = w.join("tree");
    sh(&format!(
        "mkdir -p {0}/etc/secret-dir && echo 'root:$6$hash:19000::::::' > {0}/etc/shadow-like && \
         head -c 500000 /dev/urandom > {0}/etc/secret-dir/blob && ln -s shadow-like {0}/etc/link",
        tree.display()
    ));
    let target = w.join("target");
    std::fs::create_dir(&target).expect("mkdir");
    let t = format!("file://{}", target.display());
    let (code, out, err) =
        run_lifeboat(&["--config", c, "backup", "--target", &t, "--root", tree.to_str().expect("utf8"), "."]);
    assert_eq!(code, 0, "{out}\n{err}");

    // Nothing on the target names a file or holds its content.
    let stored = sh(&format!("cat {}/*/*/* | strings -n 8", target.display()));
    for secret in ["shadow-like", "secret-dir", "$6$hash"] {
        assert!(!stored.contains(secret), "{secret} is readable on the target");
    }

    // verify without the identity: the signature and every stored object.
    let (code, out, err) = run_lifeboat(&["--config", c, "verify", "--from", &t]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("checked as stored"), "{out}");

    // restore without the identity: one error naming the fix; nothing restored.
    let to = w.join("restored");
    let (code, _, err) = run_lifeboat(&["--config", c, "restore", "--from", &t, "--to", to.to_str().expect("utf8")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--identity"), "names the fix: {err}");
    assert!(!to.join("etc").exists(), "nothing restored");

    // A wrong identity is refused by name.
    let other = w.join("other.txt");
    let (code, _, err) = run_lifeboat(&[
        "--config",
        c,
        "restore",
        "--from",
        &t,
        "--identity",
        other.to_str().expect("utf8"),
        "--to",
        to.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&public) || err.to_lowercase().contains("identity"), "{err}");

    // With the identity: every entry verified, restored, and compared.
    let key = w.join("key.txt");
    let k = key.to_str().expect("utf8");
    let (code, out, err) = run_lifeboat(&["--config", c, "verify", "--from", &t, "--identity", k]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("every checksum matches"), "{out}");
    let (code, out, err) =
        run_lifeboat(&["--config", c, "restore", "--from", &t, "--identity", k, "--to", to.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}\n{err}");
    sh(&format!("diff -r --no-dereference {} {}", tree.display(), to.display()));
    // backup.identity_file serves as well.
    let cfg2 = config(w, &format!("[backup]\nrecipients = [\"{public}\"]\nidentity_file = \"{k}\"\n"));
    let (code, out, err) = run_lifeboat(&[
        "--config",
        cfg2.to_str().expect("utf8"),
        "compare",
        "--from",
        &t,
        "--root",
        tree.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
}
