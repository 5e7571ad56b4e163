//! The `sftp://` target against a real OpenSSH server on 127.0.0.1 (its
//! own sshd, host key, authorized key and known_hosts in a temporary
//! directory; the client is the system's `ssh`, configured through
//! `LIFEBOAT_SSH_CONFIG`): the target interface itself, then every command
//! that takes a target (backup, list, info, verify, restore, compare,
//! prune). Needs root (sshd) and openssh-server.

#![allow(clippy::unwrap_used)]

mod common;

use common::{config, hostname, lifeboat, sh};

use lifeboat_archive::backup::write_signed_backup;
use lifeboat_archive::frames::Codec;
use lifeboat_archive::read::Backup;
use lifeboat_archive::restore::{restore_with_progress, verify};
use lifeboat_archive::target::{self, State};
use lifeboat_archive::BackupOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

struct Server {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Start sshd on a free loopback port with its own keys; None when this machine cannot (not root, no sshd).
fn server() -> Option<Server> {
    if !rustix::process::geteuid().is_root() || !Path::new("/usr/sbin/sshd").exists() {
        eprintln!("SKIP: the SFTP target test needs root and openssh-server (CI has both)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    sh(&format!(
        "ssh-keygen -q -t ed25519 -N '' -f {d}/host_key && ssh-keygen -q -t ed25519 -N '' -f {d}/id && \
         cp {d}/id.pub {d}/authorized_keys && chmod 600 {d}/authorized_keys && mkdir -p /run/sshd && mkdir {d}/store"
    ));
    let port = free_port();
    std::fs::write(
        dir.path().join("sshd_config"),
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             StrictModes no\nUsePAM no\nPidFile {d}/sshd.pid\nSubsystem sftp internal-sftp\n"
        ),
    )
    .unwrap();
    let host_pub = std::fs::read_to_string(dir.path().join("host_key.pub")).unwrap();
    std::fs::write(dir.path().join("known_hosts"), format!("[127.0.0.1]:{port} {host_pub}")).unwrap();
    for (name, known) in [("ssh_config", format!("{d}/known_hosts")), ("ssh_config_unknown", format!("{d}/empty"))] {
        std::fs::write(
            dir.path().join(name),
            format!(
                "Host vault\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {d}/id\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n"
            ),
        )
        .unwrap();
    }
    let child =
        Command::new("/usr/sbin/sshd").args(["-D", "-e", "-f"]).arg(dir.path().join("sshd_config")).spawn().unwrap();
    // Wait until it listens.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Server { dir, child, port });
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    panic!("sshd did not start on port {port}");
}

impl Server {
    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    fn url(&self) -> String {
        format!("sftp://vault{}", self.store().display())
    }
    fn use_config(&self, name: &str) {
        std::env::set_var("LIFEBOAT_SSH_CONFIG", self.dir.path().join(name));
    }
}

fn tree_of(root: &Path) {
    sh(&format!(
        "cd {} && mkdir -p etc srv/www && echo 'nameserver 127.0.0.1' > etc/resolv.conf && \
         head -c 3000000 /dev/urandom > srv/www/big && ln -s resolv.conf etc/link && chmod 640 etc/resolv.conf",
        root.display()
    ));
}

fn options(root: &Path) -> BackupOptions {
    BackupOptions {
        root: root.to_path_buf(),
        paths: vec![".".into()],
        exclude: Vec::new(),
        volume_size: 1 << 20,
        codec: Codec::Zstd(3),
        exclude_dirs: Vec::new(),
        read_from: Vec::new(),
        reserved: None,
    }
}

/// Every scenario shares one sshd (tests in one binary run in threads; the ssh config is process-wide).
#[test]
fn sftp_target_against_openssh() {
    let Some(srv) = server() else { return };
    srv.use_config("ssh_config");
    let src = tempfile::tempdir().unwrap();
    tree_of(src.path());

    // Backup: volumes stream up, the catalog goes last, the run's directory is renamed into place.
    let t = target::open(&srv.url()).unwrap();
    let up = t.begin("web1", "2026-12-02T010000.000Z").unwrap();
    assert_eq!(t.scan("web1").unwrap()[0].state, State::Running, "a fresh upload is alive");
    let (catalog, objects) = write_signed_backup(up, &options(src.path()), "web1", None, &mut |_, _| {}).unwrap();
    assert!(catalog.volumes.len() >= 3, "{} volumes", catalog.volumes.len());
    let on_server = srv.store().join("web1/2026-12-02T010000.000Z");
    assert!(
        on_server.join("backup.json").is_file() && !srv.store().join("web1/2026-12-02T010000.000Z.partial").exists()
    );
    assert_eq!(objects.location(), format!("sftp://vault{}", on_server.display()));
    assert_eq!(t.hosts().unwrap(), vec!["web1".to_string()]);

    // Restore by range over SFTP: the same tree.
    let b = Backup::open_objects(t.choose("web1").unwrap()).unwrap();
    assert!(verify(&b).ok(), "{:?}", verify(&b));
    let to = tempfile::tempdir().unwrap();
    let r = restore_with_progress(&b, to.path(), &[], &mut |_, _| {}).unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    sh(&format!("diff -r --no-dereference {} {}", src.path().display(), to.path().display()));
    assert_eq!(std::fs::read_link(to.path().join("etc/link")).unwrap(), Path::new("resolv.conf"));

    // A second run of the same name cannot replace the backup.
    let up2 = t.begin("web1", "2026-12-02T010000.000Z").unwrap();
    assert!(up2.commit(b"{}").is_err(), "rename over an existing backup");
    up2.abort();
    assert!(!srv.store().join("web1/2026-12-02T010000.000Z.partial").exists());

    // The server is hostile: a volume changed on it is found; a volume replaced by a link is refused.
    let v2 = on_server.join(&catalog.volumes[1].name);
    let mut data = std::fs::read(&v2).unwrap();
    data[1000] ^= 0x55;
    std::fs::write(&v2, &data).unwrap();
    let b = Backup::open_objects(t.choose("web1").unwrap()).unwrap();
    let v = verify(&b);
    assert!(v.damaged_volumes.iter().any(|d| d.contains(&catalog.volumes[1].name)), "{v:?}");
    std::fs::remove_file(&v2).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", &v2).unwrap();
    let v = verify(&b);
    assert!(v.damaged_volumes.iter().any(|d| d.contains("not a regular file")), "{v:?}");

    // A run that died long ago is interrupted and pruned; a live one is left alone.
    let dead = t.begin("web1", "2026-12-01T000000.000Z").unwrap();
    let mut w = dead.create("vol-0001.tar.zst").unwrap();
    std::io::Write::write_all(&mut w, b"partial").unwrap();
    w.finish().unwrap();
    drop(dead);
    let live = t.begin("web1", "2026-12-03T000000.000Z").unwrap();
    sh(&format!(
        "touch -d '2 days ago' {0}/web1/2026-12-01T000000.000Z.partial/* {0}/web1/2026-12-01T000000.000Z.partial",
        srv.store().display()
    ));
    let states: Vec<State> = t.scan("web1").unwrap().into_iter().map(|l| l.state).collect();
    assert_eq!(states[0], State::Interrupted);
    assert_eq!(states[2], State::Running);
    let removed = t.prune_partial("web1").unwrap();
    assert_eq!(removed.len(), 1, "only the dead run");
    assert!(!srv.store().join("web1/2026-12-01T000000.000Z.partial").exists());
    live.abort();

    // The host lock over SFTP: a create-only marker, exclusive, removed on release; the room by statvfs@openssh.com.
    let held = target::lock::acquire(t.as_ref(), "web1", "backup", std::time::Duration::ZERO).unwrap();
    assert!(srv.store().join("web1/.lock").is_file());
    let e =
        target::lock::acquire(t.as_ref(), "web1", "prune", std::time::Duration::ZERO).expect_err("held").to_string();
    assert!(e.contains("locked by a backup (pid"), "{e}");
    held.release().unwrap();
    assert!(!srv.store().join("web1/.lock").exists(), "released");
    assert!(t.free_space().unwrap().is_some_and(|f| f > 0), "OpenSSH's sftp-server tells the free space");

    // An unknown host key is never accepted: the error says what to do.
    srv.use_config("ssh_config_unknown");
    let e = target::open(&srv.url()).expect_err("unknown host key accepted").to_string();
    assert!(e.contains("Host key verification failed") && e.contains("known_hosts"), "{e}");
    srv.use_config("ssh_config");
    let _ = srv.port;

    commands_take_sftp_targets(&srv);
    rescue_media_files_alone_reach_the_server(&srv);
}

/// What `mkbackup` puts on a rescue medium for an `sftp://` target (its
/// ssh_config, the host's known keys, with `rescue.target_credentials` the
/// identity) is all the rescue system's ssh needs: with an empty home and
/// only those files, the backups are listed; without the host's key, the
/// server is refused.
fn rescue_media_files_alone_reach_the_server(srv: &Server) {
    use std::os::unix::fs::PermissionsExt;
    let url = format!("sftp://vault{}", srv.dir.path().join("cli-store").display());
    let mut c = lifeboat_config::Config::default();
    c.rescue.target_credentials = true;
    let (mut cfg, mut files, mut notes) = (c.clone(), Vec::new(), Vec::<lifeboat_backup::Notice>::new());
    let runner = lifeboat_runner::SystemRunner::new(lifeboat_runner::Mode::Run);
    lifeboat_backup::access::for_rescue(&c, &url, &mut cfg, &mut files, &runner, &mut notes).unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ssh_known_hosts", "ssh_identity", "ssh_config"], "{notes:?}");
    assert!(notes.iter().any(|n| matches!(n, lifeboat_backup::Notice::CredentialsOnMedium { .. })));
    // The rescue system's /etc/lifeboat, here a directory of its own.
    let etc = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    for (name, text) in &files {
        let text = text.replace("/etc/lifeboat/", &format!("{}/", etc.path().display()));
        std::fs::write(etc.path().join(name), text).unwrap();
        std::fs::set_permissions(etc.path().join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let list = |env_config: &Path| {
        lifeboat()
            .env("LIFEBOAT_SSH_CONFIG", env_config)
            .env("HOME", home.path())
            .args(["backup", "list", "--target", &url])
            .output()
            .unwrap()
    };
    let out = list(&etc.path().join("ssh_config"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&hostname()), "the backup is listed: {text}");
    // A server whose key the medium does not know is refused.
    std::fs::write(etc.path().join("ssh_known_hosts"), "").unwrap();
    let out = list(&etc.path().join("ssh_config"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("host key is known") && err.contains("strict checking"), "{err}");
}

/// Run lifeboat with the test's ssh config; (exit code, stdout, stderr).
fn run(srv: &Server, args: &[&str]) -> (i32, String, String) {
    let out = lifeboat().env("LIFEBOAT_SSH_CONFIG", srv.dir.path().join("ssh_config")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every command that takes a target works with `sftp://`, and what the server changes is found.
fn commands_take_sftp_targets(srv: &Server) {
    let work = tempfile::tempdir().unwrap();
    let cfg = config(work.path(), "");
    let c = cfg.to_str().unwrap();
    let tree = tempfile::tempdir().unwrap();
    tree_of(tree.path());
    let root = tree.path().to_str().unwrap();
    let store = srv.dir.path().join("cli-store");
    std::fs::create_dir(&store).unwrap();
    let url = format!("sftp://vault{}", store.display());

    let (code, out, err) = run(srv, &["--config", c, "backup", "--target", &url, "--root", root, "."]);
    assert_eq!(code, 0, "backup over SFTP: {out}\n{err}");
    let host = hostname();
    let names: Vec<String> = std::fs::read_dir(store.join(&host))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(!names[0].ends_with(".partial"), "published: {names:?}");
    assert!(store.join(&host).join(&names[0]).join("backup.json.minisig").is_file(), "signed");

    let (code, out, err) = run(srv, &["--config", c, "backup", "list", "--target", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&names[0]), "list shows the backup: {out}");
    let (code, out, err) = run(srv, &["--config", c, "backup", "info", "--from", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sftp://vault"), "info names where it is: {out}");
    let (code, out, err) = run(srv, &["--config", c, "verify", "--from", &url]);
    assert_eq!(code, 0, "verify over SFTP: {out}\n{err}");
    let to = tempfile::tempdir().unwrap();
    let dest = to.path().join("r");
    std::fs::create_dir(&dest).unwrap();
    let (code, out, err) = run(srv, &["--config", c, "restore", "--from", &url, "--to", dest.to_str().unwrap()]);
    assert_eq!(code, 0, "restore over SFTP: {out}\n{err}");
    sh(&format!("diff -r --no-dereference {root} {}", dest.display()));
    let (code, out, err) = run(srv, &["--config", c, "compare", "--from", &url, "--root", root]);
    assert_eq!(code, 0, "compare over SFTP: {out}\n{err}");
    let (code, _, err) = run(srv, &["--config", c, "backup", "prune", "--partial", "--target", &url]);
    assert_eq!(code, 0, "{err}");

    // An attacker on the backup server changes a file's content: verify and compare say so.
    let b = store.join(&host).join(&names[0]);
    let vol = std::fs::read_dir(&b)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vol-")));
    let vol = vol.unwrap();
    let mut data = std::fs::read(&vol).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x40;
    std::fs::write(&vol, &data).unwrap();
    let (code, out, _) = run(srv, &["--config", c, "verify", "--from", &url]);
    assert_ne!(code, 0, "a damaged volume on the server verified: {out}");

    // Retention over SFTP: a second backup, then keep-last 1 removes the first (a dry run first removes nothing).
    let (code, out, err) = run(srv, &["--config", c, "backup", "--target", &url, "--root", root, "."]);
    assert_eq!(code, 0, "second backup over SFTP: {out}\n{err}");
    let (code, out, err) =
        run(srv, &["--config", c, "backup", "prune", "--keep-last", "1", "--dry-run", "--target", &url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("would remove") && out.contains(&names[0]), "{out}");
    assert!(b.is_dir(), "a dry run removes nothing");
    let (code, out, err) = run(srv, &["--config", c, "backup", "prune", "--keep-last", "1", "--target", &url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 backup(s) removed, 1 kept"), "{out}");
    assert!(!b.exists(), "the older backup is gone");
    let (code, _, err) = run(srv, &["--config", c, "backup", "prune", "--target", &url]);
    assert_eq!(code, 2, "no policy at all is refused");
    assert!(err.contains("no retention policy"), "{err}");

    // `lifeboat check` tests the configured sftp:// target: reached, written to (and cleaned up), its room told.
    let checked = config(work.path(), &format!("[backup]\ntarget = \"{url}\"\n"));
    let (_, out, err) = run(srv, &["--config", checked.to_str().unwrap(), "--json", "check"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let item = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {v}"))
            .clone()
    };
    for name in ["Backup target reachable", "Backup target writable", "Room for a backup on the target"] {
        let c = item(name);
        assert!(c["status"] == "passed" || c["status"] == "warning", "{name}: {c}");
    }
    assert!(item("Backup target writable")["detail"].as_str().unwrap().contains(".lifeboat-check-"));
    assert!(!std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(".lifeboat-check")));
    let (_, out, _) = run(
        srv,
        &[
            "--config",
            &format!("{}", config(work.path(), "[backup]\ntarget = \"sftp://vault/nonexistent/dir\"\n").display()),
            "--json",
            "check",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let reach =
        v["checks"].as_array().unwrap().iter().find(|c| c["name"] == "Backup target reachable").unwrap().clone();
    assert_eq!(reach["status"], "failed", "{reach}");
    assert!(reach["fix"].as_str().unwrap().contains("create the directory"), "{reach}");
}
