//! A VM test harness: boot Debian's kernel under QEMU (TCG) with an
//! initramfs that holds the host's own storage tools and a freshly built
//! lifeboat, attach scratch virtio disks, run a bash script inside, and hand
//! its output, exit status and files back to the host test.
//!
//! This machine's own kernel has no device-mapper, md, vfat or iso9660, so
//! LVM, LUKS, RAID and boot media are tested here. The base initramfs is
//! built once per tool set and cached (in `$LIFEBOAT_VM_CACHE`, default
//! `/var/tmp/lifeboat-vmtest`); each run appends a small uncompressed archive
//! with the script and lifeboat, which the kernel unpacks over the base.
//!
//! Results come back on the second serial port (the script's stdout and
//! stderr, then a `LIFEBOAT-VM-EXIT=<status>` line) and, when asked, through
//! a 9p shared directory mounted at `/out` in the guest.
//!
//! The machine itself (QEMU's command line, firmware, media, the serial
//! console) is product code in `lifeboat-vm`, which `lifeboat drill` uses
//! too; it is re-exported here (`boot`, `Boot`, `Console`, `Firmware`,
//! `Media`, `VmError`). QEMU and apt-get run through lifeboat-runner.

mod base;

pub use base::{GUEST_MODULES, GUEST_PROGRAMS};
pub use lifeboat_vm::machine;
pub use lifeboat_vm::{Accel, Boot, Console, Firmware, Media, VmError};

use lifeboat_rescue::kernel::{self, KernelChoice};
use lifeboat_runner::{Cmd, Mode, RunError, Runner, SystemRunner};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VmError {
    let what = what.into();
    move |source| VmError::Io { what, source }
}

/// A scratch disk for the guest.
#[derive(Debug, Clone)]
pub struct Disk {
    /// Serial number the guest sees in `/sys/block/vdX/serial`.
    pub serial: String,
    /// Size in bytes of a new sparse disk (ignored with `image`).
    pub size: u64,
    /// Use this existing image file instead of a new blank disk.
    pub image: Option<PathBuf>,
}

impl Disk {
    /// A new blank disk.
    pub fn blank(serial: &str, size: u64) -> Disk {
        Disk { serial: serial.into(), size, image: None }
    }
}

/// One VM run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Name for logs and errors.
    pub name: String,
    /// The bash script to run as root in the guest.
    pub script: String,
    /// Disks, attached in order as /dev/vda, /dev/vdb, ...
    pub disks: Vec<Disk>,
    /// Host files to put in the guest: (host path, guest path).
    pub files: Vec<(PathBuf, String)>,
    /// Host directory mounted read-write at `/out` in the guest (9p).
    pub share: Option<PathBuf>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Time limit.
    pub timeout: Duration,
}

impl Spec {
    /// A run of `script` with defaults: no disks, 1 GiB of memory, 5 minutes.
    pub fn new(name: &str, script: &str) -> Spec {
        Spec {
            name: name.into(),
            script: script.into(),
            disks: Vec::new(),
            files: Vec::new(),
            share: None,
            memory_mib: 1024,
            timeout: Duration::from_secs(300),
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The script's exit status.
    pub status: i32,
    /// What the script printed (stdout and stderr).
    pub output: String,
    /// The kernel console log.
    pub console: String,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Outcome {
    /// The script's output and the end of the console log, for a failed assertion.
    pub fn log(&self) -> String {
        let tail: Vec<&str> = self.console.lines().rev().take(20).collect();
        format!("output:\n{}\nconsole tail (newest first):\n{}", self.output, tail.join("\n"))
    }
}

/// The harness: a kernel and a cached base initramfs.
#[derive(Debug)]
pub struct Harness {
    /// The guest kernel.
    pub kernel: KernelChoice,
    base: PathBuf,
    cache: PathBuf,
}

/// Where cached base images live.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("LIFEBOAT_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/lifeboat-vmtest"))
}

/// Packages the harness needs, installed with apt-get when missing (as root).
const PACKAGES: &[(&str, &str)] =
    &[("/usr/bin/qemu-system-x86_64", "qemu-system-x86"), ("/bin/busybox", "busybox-static")];

/// Start a machine from real media (see [`lifeboat_vm::boot`]), after
/// installing QEMU when it is missing (as root).
pub fn boot(b: &Boot) -> Result<Console, VmError> {
    ensure_packages()?;
    lifeboat_vm::boot(b)
}

pub(crate) fn ensure_packages() -> Result<(), VmError> {
    let mut missing: Vec<&str> = PACKAGES.iter().filter(|(f, _)| !Path::new(f).exists()).map(|(_, p)| *p).collect();
    if kernel::choose(None).is_err() {
        missing.push("linux-image-amd64");
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !rustix::process::geteuid().is_root() || !Path::new("/usr/bin/apt-get").exists() {
        return Err(VmError::Unavailable(format!(
            "missing {}; install them as root (apt-get install {})",
            missing.join(", "),
            missing.join(" ")
        )));
    }
    log::info!("installing {} for the VM harness", missing.join(" "));
    let cmd = Cmd::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    SystemRunner::new(Mode::Run)
        .apply(&cmd)
        .map_err(|e| VmError::Unavailable(format!("apt-get install {} failed: {}", missing.join(" "), e.reason())))?;
    Ok(())
}

impl Harness {
    /// Make sure QEMU, busybox and a kernel are present (installing them when
    /// root), and build or reuse the cached base initramfs.
    pub fn new() -> Result<Harness, VmError> {
        ensure_packages()?;
        let kernel = kernel::choose(None).map_err(|e| VmError::Unavailable(e.to_string()))?;
        let cache = cache_dir();
        std::fs::create_dir_all(&cache).map_err(io(format!("cannot create {}", cache.display())))?;
        let base = base::build_cached(&kernel, &cache)?;
        Ok(Harness { kernel, base, cache })
    }

    /// For tests: the harness, or `None` after printing why it cannot run here
    /// (not root and tools missing). Any other failure is a test failure.
    pub fn for_tests() -> Option<Harness> {
        match Harness::new() {
            Ok(h) => Some(h),
            Err(VmError::Unavailable(why)) => {
                eprintln!("SKIP: {why}");
                None
            }
            Err(e) => panic!("VM harness: {e}"),
        }
    }

    /// Boot a VM, run the script, and return what it produced. A non-zero
    /// script status is an [`Outcome`], not an error.
    pub fn run(&self, spec: &Spec) -> Result<Outcome, VmError> {
        let dir = tempfile_dir(&self.cache, &spec.name)?;
        let initrd = dir.join("initrd.img");
        base::write_initrd(&self.base, &initrd, spec)?;
        let console = dir.join("console.log");
        let output = dir.join("output.log");
        let mut cmd = Cmd::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-smp", "2", "-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none"])
            .args(["-m", &spec.memory_mib.to_string()])
            .arg("-kernel")
            .arg(&self.kernel.image)
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", "console=ttyS0 panic=-1 loglevel=4 mitigations=off rdinit=/init"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-serial")
            .arg(format!("file:{}", output.display()))
            .timeout(spec.timeout);
        for (i, d) in spec.disks.iter().enumerate() {
            let file = match &d.image {
                Some(p) => p.clone(),
                None => {
                    let p = dir.join(format!("disk{i}.img"));
                    let f = std::fs::File::create(&p).map_err(io(format!("cannot create {}", p.display())))?;
                    f.set_len(d.size).map_err(io(format!("cannot size {}", p.display())))?;
                    p
                }
            };
            cmd = cmd
                .arg("-drive")
                .arg(format!("file={},format=raw,if=none,id=d{i},cache=unsafe", file.display()))
                .arg("-device")
                .arg(format!("virtio-blk-pci,drive=d{i},serial={}", d.serial));
        }
        if let Some(share) = &spec.share {
            cmd = cmd.arg("-virtfs").arg(format!("local,path={},mount_tag=out,security_model=none", share.display()));
        }
        log::debug!("vm {}: {}", spec.name, cmd.cmdline());
        let start = Instant::now();
        // QEMU's status when it stopped by itself, with what it wrote to stderr.
        let status = match SystemRunner::new(Mode::Run).probe(&cmd) {
            Ok(_) => "exit status 0".to_string(),
            Err(RunError::TimedOut { .. }) => {
                return Err(VmError::Timeout {
                    name: spec.name.clone(),
                    secs: spec.timeout.as_secs(),
                    tail: tail(&read_lossy(&console), 30),
                })
            }
            Err(RunError::Failed { status, stderr, .. }) if stderr.trim().is_empty() => status,
            Err(RunError::Failed { status, stderr, .. }) => format!("{status}: {}", stderr.trim()),
            Err(e) => return Err(VmError::Qemu(e)),
        };
        let elapsed = start.elapsed();
        let out = read_lossy(&output).replace('\r', "");
        let con = read_lossy(&console).replace('\r', "");
        let marker = "LIFEBOAT-VM-EXIT=";
        let code = out.lines().rev().find_map(|l| l.strip_prefix(marker)).and_then(|v| v.trim().parse::<i32>().ok());
        let Some(code) = code else {
            return Err(VmError::NoResult { name: spec.name.clone(), status, output: out, tail: tail(&con, 30) });
        };
        let script_out: String = out.lines().filter(|l| !l.starts_with(marker)).map(|l| format!("{l}\n")).collect();
        log::info!("vm {}: exit {code} after {:.1} s", spec.name, elapsed.as_secs_f64());
        // Keep the logs of failed runs for a person to read; remove the rest (disk images are large).
        if code == 0 {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            for i in 0..spec.disks.len() {
                let _ = std::fs::remove_file(dir.join(format!("disk{i}.img")));
            }
        }
        Ok(Outcome { status: code, output: script_out, console: con, elapsed })
    }
}

fn read_lossy(p: &Path) -> String {
    std::fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

pub(crate) fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn tempfile_dir(cache: &Path, name: &str) -> Result<PathBuf, VmError> {
    let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = cache.join("runs").join(format!("{safe}-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
    Ok(dir)
}
