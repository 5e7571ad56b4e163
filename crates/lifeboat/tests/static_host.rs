//! The static build (`make build`: x86_64-unknown-linux-musl) is one binary
//! for every release: it has no program interpreter and needs no shared
//! library, and on Debian 11 (glibc 2.31, util-linux 2.36, in a chroot made
//! by debootstrap and cached) it runs, captures a layout with that
//! release's lsblk (which has no MOUNTPOINTS column) including a mounted
//! filesystem, backs it up and verifies it. Needs root and debootstrap;
//! without the static binary it is skipped unless `LIFEBOAT_REQUIRE_STATIC=1`
//! (as `make test` sets).

mod common;

use common::{root_or_skip, sh, LoopDisk};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump to rebuild the cached chroot.
const CHROOT_REVISION: u32 = 1;

fn static_binary() -> Option<PathBuf> {
    let bin = common::static_lifeboat();
    if bin.is_none() {
        eprintln!("SKIP: no static build (make build makes it)");
    }
    bin
}

/// A Debian 11 minbase chroot, built once per machine.
fn bullseye() -> PathBuf {
    let dir = PathBuf::from(format!("/var/tmp/lifeboat-vmtest/chroot-bullseye-{CHROOT_REVISION}"));
    if !dir.join("etc/debian_version").exists() {
        let part = dir.with_extension("part");
        sh(&format!(
            r#"set -e; rm -rf {p}; mkdir -p {p}
MIRROR=$(awk '/^URIs:/{{print $2; exit}}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
debootstrap --variant=minbase --include=e2fsprogs bullseye {p} ${{MIRROR:-http://deb.debian.org/debian}} > {p}.log 2>&1 || {{ tail -20 {p}.log; exit 1; }}
rm -rf {d}; mv {p} {d}"#,
            p = part.display(),
            d = dir.display()
        ));
    }
    dir
}

/// Mounts inside the chroot, undone on drop.
struct Mounts(Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

fn in_chroot(root: &Path, script: &str) -> (i32, String, String) {
    let out = Command::new("chroot")
        .arg(root)
        .args(["/bin/sh", "-c", script])
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("chroot");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_static_build_runs_and_captures_on_debian_11() {
    let Some(bin) = static_binary() else { return };
    // No program interpreter, no shared libraries: it runs on any glibc, or none.
    let headers = sh(&format!("readelf -ld {}", bin.display()));
    assert!(!headers.contains("INTERP"), "the static build has a program interpreter:\n{headers}");
    assert!(!headers.contains("(NEEDED)"), "the static build needs shared libraries:\n{headers}");
    if !root_or_skip("the Debian 11 chroot") {
        return;
    }
    let root = bullseye();
    let mut mounts = Mounts(Vec::new());
    for (what, at, opts) in [("/proc", "proc", "--bind"), ("/sys", "sys", "--bind"), ("/dev", "dev", "--rbind")] {
        sh(&format!("mount {opts} {what} {}", root.join(at).display()));
        mounts.0.push(root.join(at));
    }
    std::fs::copy(&bin, root.join("usr/local/sbin/lifeboat")).expect("copy the static build");
    let (_, libc, _) = in_chroot(&root, "ldd --version | head -n 1");
    assert!(libc.contains("2.31"), "the chroot is Debian 11's glibc 2.31: {libc}");
    let (_, lsblk, _) = in_chroot(&root, "lsblk --version");
    assert!(lsblk.contains("2.36"), "util-linux 2.36: {lsblk}");
    let (code, out, err) = in_chroot(&root, "lifeboat --version");
    assert_eq!(code, 0, "the static build starts on Debian 11: {out}{err}");

    // A disk with a mounted filesystem, seen from the chroot as /srv.
    let tmp = tempfile::tempdir_in("/var/tmp").expect("tmp");
    let mut disk = LoopDisk::new(tmp.path(), "disk", 64 << 20);
    disk.partition("label: gpt\nsize=40MiB, type=L");
    sh(&format!("mkfs.ext4 -q -F -L srvfs {}", disk.part(1)));
    let srv = root.join("srv");
    disk.mount(&disk.part(1), &srv, "");
    sh(&format!("seq 1 50000 > {0}/numbers; mkdir -p {0}/www; echo hello > {0}/www/index.html", srv.display()));
    std::fs::create_dir_all(root.join("backup")).expect("mkdir");
    std::fs::create_dir_all(root.join("etc/lifeboat")).expect("mkdir");
    std::fs::write(root.join("etc/lifeboat/lifeboat.toml"), "[backup]\ntarget = \"file:///backup\"\n").expect("cfg");

    let (code, out, err) = in_chroot(&root, "lifeboat layout show -");
    assert_eq!(code, 0, "layout show with util-linux 2.36: {out}{err}");
    assert!(out.contains("srvfs") && out.contains("/srv"), "the mounted ext4 is captured with its mount point:\n{out}");

    let (code, out, err) = in_chroot(&root, "lifeboat backup /srv && lifeboat verify --from file:///backup");
    assert_eq!(code, 0, "backup and verify on Debian 11: {out}{err}");
    let (code, out, err) = in_chroot(
        &root,
        "mkdir -p /tmp/r && lifeboat restore --from file:///backup --to /tmp/r && diff -r /srv /tmp/r/srv",
    );
    assert_eq!(code, 0, "restored equal: {out}{err}");
    // The disk's mounts go first (declared after the chroot's), then /proc, /sys, /dev.
    drop(disk);
    drop(mounts);
}
