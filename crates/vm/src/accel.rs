//! Which accelerator QEMU uses: KVM when it works here, TCG (emulation)
//! otherwise.
//!
//! `/dev/kvm` being there is not enough: in some nested setups KVM accepts
//! a guest and then never runs it (this development machine is one). So
//! `auto` boots a kernel under KVM for a few seconds, without a root
//! filesystem: a working KVM prints the kernel's banner and panics in a
//! second or two; one that hangs prints nothing and is given up on.

use lifeboat_runner::{Cmd, Effect, Runner, Streams};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// How QEMU executes the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation (`-accel kvm`).
    Kvm,
    /// QEMU's own emulation (`-accel tcg`): slower, works everywhere.
    Tcg,
}

impl Accel {
    /// QEMU's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the configuration asks for (`drill.accel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    /// KVM when the probe shows it works, TCG otherwise.
    #[default]
    Auto,
    /// KVM, without probing.
    Kvm,
    /// TCG, without probing.
    Tcg,
}

/// The accelerator chosen and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// The accelerator.
    pub accel: Accel,
    /// Why, in a sentence (for the report and `lifeboat check`).
    pub reason: String,
}

/// How long a working KVM may take to print the kernel's banner.
pub const KVM_PROBE_LIMIT: Duration = Duration::from_secs(15);

/// Choose the accelerator: `auto` probes KVM (with `kernel`, or the newest
/// `/boot/vmlinuz-*`).
pub fn choose_accel(choice: AccelChoice, runner: &dyn Runner, kernel: Option<&Path>) -> Chosen {
    match choice {
        AccelChoice::Kvm => Chosen { accel: Accel::Kvm, reason: "drill.accel = \"kvm\"".into() },
        AccelChoice::Tcg => Chosen { accel: Accel::Tcg, reason: "drill.accel = \"tcg\"".into() },
        AccelChoice::Auto => match probe_kvm(runner, kernel, KVM_PROBE_LIMIT) {
            Ok(why) => Chosen { accel: Accel::Kvm, reason: why },
            Err(why) => Chosen {
                accel: Accel::Tcg,
                reason: format!("KVM is not usable: {why}; using TCG (emulation, several times slower)"),
            },
        },
    }
}

/// The newest kernel image in `/boot`, to probe KVM with.
pub fn newest_boot_kernel() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        .map(|e| e.path())
        .collect();
    found.sort();
    found.pop()
}

/// Whether KVM runs a guest here: `/dev/kvm` opens for reading and writing,
/// and a kernel booted under it prints its banner within `limit`. `Ok` says
/// what was seen, `Err` why KVM is not usable (with the fix where there is one).
pub fn probe_kvm(runner: &dyn Runner, kernel: Option<&Path>, limit: Duration) -> Result<String, String> {
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return Err(match e.kind() {
            std::io::ErrorKind::NotFound => {
                "/dev/kvm does not exist (no virtualisation extensions, or the kvm_intel/kvm_amd module is not loaded)"
                    .into()
            }
            std::io::ErrorKind::PermissionDenied => {
                "/dev/kvm cannot be opened (run as root or add the user to the kvm group)".into()
            }
            _ => format!("/dev/kvm cannot be opened: {e}"),
        });
    }
    let Some(kernel) = kernel.map(Path::to_path_buf).or_else(newest_boot_kernel) else {
        return Ok("/dev/kvm opens (no kernel in /boot to test it with)".into());
    };
    let cmd = Cmd::new("qemu-system-x86_64")
        .args(["-accel", "kvm", "-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none", "-m", "256"])
        .args(["-serial", "stdio", "-kernel"])
        .arg(&kernel)
        .args(["-append", "console=ttyS0 panic=-1 loglevel=4"])
        .timeout(limit + Duration::from_secs(5));
    let mut p = runner.spawn(&cmd, Effect::Probe, Streams::new().stdout_pipe()).map_err(|e| e.to_string())?;
    let Some(mut out) = p.take_stdout() else {
        return Err("no console output from QEMU".into());
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains("Linux version") {
                let _ = tx.send(true);
                return;
            }
        }
        let _ = tx.send(false);
    });
    let banner = rx.recv_timeout(limit).unwrap_or(false);
    let _ = p.kill();
    if banner {
        Ok(format!("KVM boots {} here", kernel.display()))
    } else {
        Err(format!(
            "a kernel booted under KVM printed nothing within {} s (KVM hangs here, as in some nested VMs)",
            limit.as_secs()
        ))
    }
}
