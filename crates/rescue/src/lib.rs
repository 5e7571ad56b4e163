//! Building blocks of the rescue system.
//!
//! - [`kernel`]: which kernel image to use, its version read from the image
//!   itself, its modules directory and the initramfs compressions it supports;
//! - [`elf`]: the shared-library closure of a program, read from ELF headers
//!   (never by running `ldd`);
//! - [`modules`]: kernel modules with their dependencies in load order;
//! - [`cpio`]: the kernel's `newc` initramfs format;
//! - [`initramfs`]: a tree of files gathered from the host and written as one archive;
//! - [`system`]: what goes into the rescue system; [`media`]: ISO, raw and PXE
//!   outputs; [`build`]: `lifeboat mkrescue` from configuration to media;
//! - [`selfcheck`]: the checksum every ISO carries in itself, and its check.

pub mod build;
pub mod burn;
pub mod cpio;
pub mod elf;
pub mod initramfs;
pub mod kernel;
pub mod media;
pub mod modules;
pub mod selfcheck;
pub mod system;

pub use build::{medium_label, mkrescue, MediaSet, Options, Report, MEDIA_SET_FILE};

/// Errors building rescue media. Each names the thing and the fix.
#[derive(Debug, thiserror::Error)]
pub enum RescueError {
    /// No usable kernel.
    #[error(transparent)]
    Kernel(#[from] kernel::KernelError),
    /// A library of a program is missing.
    #[error(transparent)]
    Elf(#[from] elf::ElfError),
    /// Module index problems.
    #[error(transparent)]
    Modules(#[from] modules::ModuleError),
    /// The medium's embedded checksum could not be written.
    #[error(transparent)]
    Medium(#[from] selfcheck::MediumError),
    /// An external tool failed or is missing.
    #[error(transparent)]
    Run(#[from] lifeboat_runner::RunError),
    /// Something the configuration names does not exist.
    #[error("missing: {0}")]
    Missing(String),
    /// A device that must not be written.
    #[error("refusing: {0}")]
    Refused(String),
    /// A setting this kernel or lifeboat cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// File I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}
