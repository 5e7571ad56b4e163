//! Helpers shared by the integration tests: run lifeboat, run shell commands,
//! and loop devices that are detached (and unmounted) however a test ends.

#![allow(dead_code)]

pub mod tree;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The lifeboat binary under test.
pub fn lifeboat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
}

/// The static build (`make build`, musl) when it is there: what is
/// installed, packaged and put into rescue systems. Without it the tests
/// that want it use the binary under test, unless `LIFEBOAT_REQUIRE_STATIC=1`
/// (`make test`) makes its absence an error.
pub fn static_lifeboat() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let bin = target.join("x86_64-unknown-linux-musl/release/lifeboat");
    if bin.is_file() {
        return Some(bin);
    }
    assert!(
        std::env::var("LIFEBOAT_REQUIRE_STATIC").as_deref() != Ok("1"),
        "no static build at {}: run `make build`",
        bin.display()
    );
    None
}

/// The lifeboat that goes into a test VM: the static build when there is
/// one (what `make install` installs and rescue media carry), else the
/// binary under test.
pub fn guest_lifeboat() -> PathBuf {
    static_lifeboat().unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lifeboat")))
}

/// This machine's host name (the directory lifeboat names backups and media after).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim().to_string()
}

/// Run lifeboat with arguments; return (exit code, stdout, stderr).
pub fn run_lifeboat(args: &[&str]) -> (i32, String, String) {
    let out = lifeboat().args(args).output().expect("run lifeboat");
    decode(out)
}

fn decode(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run a shell command; panic with its output when it fails.
pub fn sh(script: &str) -> String {
    let out = Command::new("bash").args(["-euo", "pipefail", "-c", script]).output().expect("bash");
    let (code, stdout, stderr) = decode(out);
    assert_eq!(code, 0, "command failed: {script}\nstdout: {stdout}\nstderr: {stderr}");
    stdout
}

/// Whether the test can do root-only things; prints why not.
pub fn root_or_skip(what: &str) -> bool {
    if rustix_is_root() {
        true
    } else {
        eprintln!("SKIP: {what} needs root (CI runs as root)");
        false
    }
}

fn rustix_is_root() -> bool {
    // SAFETY-free: read the effective uid from /proc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// A loop device over a sparse image file, detached on drop.
pub struct LoopDisk {
    /// `/dev/loopN`.
    pub dev: String,
    image: PathBuf,
    mounts: Vec<PathBuf>,
}

impl LoopDisk {
    /// A new blank image of `size` bytes in `dir`, attached.
    pub fn new(dir: &Path, name: &str, size: u64) -> LoopDisk {
        let image = dir.join(format!("{name}.img"));
        let f = std::fs::File::create(&image).expect("create image");
        f.set_len(size).expect("size image");
        let dev = sh(&format!("losetup -f --show -P {}", image.display())).trim().to_string();
        LoopDisk { dev, image, mounts: Vec::new() }
    }

    /// Attach an existing image (read-only when asked), with its partition nodes.
    pub fn attach(image: &Path, read_only: bool) -> LoopDisk {
        let ro = if read_only { "-r" } else { "" };
        let dev = sh(&format!("losetup -f --show -P {ro} {}", image.display())).trim().to_string();
        let _ = Command::new("partx").args(["-u", &dev]).output();
        let _ = Command::new("partx").args(["-a", &dev]).output();
        LoopDisk { dev, image: image.to_path_buf(), mounts: Vec::new() }
    }

    /// Partition node N (`/dev/loop3p2`).
    pub fn part(&self, n: u32) -> String {
        format!("{}p{n}", self.dev)
    }

    /// Write a partition table with an sfdisk script and make the partition nodes.
    /// (`losetup -P` makes none on this machine: partx adds them.)
    pub fn partition(&self, sfdisk_script: &str) {
        sh(&format!("sfdisk --quiet {} <<'EOF'\n{sfdisk_script}\nEOF", self.dev));
        let _ = Command::new("partx").args(["-u", &self.dev]).output();
        let _ = Command::new("partx").args(["-a", &self.dev]).output();
        for _ in 0..50 {
            if Path::new(&self.part(1)).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Mount a device of this disk; unmounted on drop.
    pub fn mount(&mut self, dev: &str, at: &Path, opts: &str) {
        std::fs::create_dir_all(at).expect("mkdir");
        for _ in 0..50 {
            if Path::new(dev).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let o = if opts.is_empty() { String::new() } else { format!("-o {opts}") };
        sh(&format!("mount {o} {dev} {}", at.display()));
        self.mounts.push(at.to_path_buf());
    }

    /// The image file.
    pub fn image(&self) -> &Path {
        &self.image
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg(m).output();
        }
        let _ = Command::new("swapoff").arg(&self.dev).output();
        let _ = Command::new("losetup").args(["-d", &self.dev]).output();
    }
}

/// A config file for tests, with work files (and the backup signing keys) in `dir`.
pub fn config(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("lifeboat.toml");
    let text = format!(
        "[paths]\nwork_dir = \"{0}/work\"\noutput_dir = \"{0}/out\"\nlayout_file = \"{0}/layout.toml\"\nkey_dir = \"{0}/keys\"\n{extra}",
        dir.display()
    );
    std::fs::write(&p, text).expect("write config");
    p
}

/// `lifeboat backup` of `tree` (as the root, everything) into `target` with
/// the config `cfg` and `extra` arguments; asserts success and returns the
/// backup's directory (the newest of this host).
pub fn back_up(cfg: &Path, tree: &Path, target: &Path, extra: &[&str]) -> PathBuf {
    let t = format!("file://{}", target.display());
    let c = cfg.to_str().expect("utf8");
    let root = tree.to_str().expect("utf8");
    let (code, out, err) =
        run_lifeboat(&[&["--config", c, "backup", "--target", &t, "--root", root][..], extra, &["."]].concat());
    assert_eq!(code, 0, "backup of {root}: {out}\n{err}");
    let mut all: Vec<PathBuf> =
        std::fs::read_dir(target.join(hostname())).expect("host dir").flatten().map(|e| e.path()).collect();
    all.sort();
    all.pop().expect("a backup")
}
