//! Virtual machines for lifeboat: QEMU started through lifeboat-runner,
//! booting real media (a rescue ISO, recovered disks, a kernel and
//! initramfs as PXE would) with SeaBIOS or OVMF, and driven over its serial
//! console as an administrator would over IPMI serial-over-LAN.
//!
//! `lifeboat drill` boots the rescue medium and then the recovered disks
//! here; the VM tests (`lifeboat-vmtest`) use the same machine.
//!
//! QEMU is long-running and interactive, so it is started with the runner's
//! streaming API ([`lifeboat_runner::Runner::spawn`], stdin and stdout as
//! pipes: the serial console); the runner keeps its stderr for the error,
//! and the [`Console`] kills it when dropped.
//!
//! Errors name the machine and, for a machine that stopped or overran its
//! time, the end of its console log (what explains it).

mod accel;
pub mod machine;

pub use accel::{choose_accel, newest_boot_kernel, probe_kvm, Accel, AccelChoice, Chosen, KVM_PROBE_LIMIT};
pub use machine::{boot, boot_with, Boot, Console, Firmware, Media, OVMF, OVMF_MS_VARS, OVMF_SECBOOT_CODE};

/// Errors of the virtual machines.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// QEMU, the firmware or a kernel is missing here; the text says what to install.
    #[error("the VM cannot run here: {0}")]
    Unavailable(String),
    /// Host I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Preparing what the machine boots failed (an initramfs, a disk image),
    /// or its console cannot be used.
    #[error("cannot prepare the VM: {0}")]
    Build(String),
    /// QEMU could not be started.
    #[error("cannot start QEMU: {0}")]
    Qemu(#[from] lifeboat_runner::RunError),
    /// The VM ran past its time.
    #[error("VM `{name}` did not finish within {secs} s; last console lines:\n{tail}")]
    Timeout {
        /// Machine name (and what it was waiting for).
        name: String,
        /// The limit.
        secs: u64,
        /// End of the console log.
        tail: String,
    },
    /// The VM stopped without giving the result waited for (the guest crashed or powered off).
    #[error("VM `{name}` stopped without a result (qemu {status}); output:\n{output}\nlast console lines:\n{tail}")]
    NoResult {
        /// Machine name.
        name: String,
        /// QEMU's exit status (and what it wrote to stderr).
        status: String,
        /// What was being waited for, or what the guest printed.
        output: String,
        /// End of the console log.
        tail: String,
    },
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VmError {
    let what = what.into();
    move |source| VmError::Io { what, source }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
