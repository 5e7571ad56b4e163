//! Building blocks of the rescue system.
//!
//! - [`kernel`]: which kernel image to use, its version read from the image
//!   itself, its modules directory and the initramfs compressions it supports;
//! - [`elf`]: the shared-library closure of a program, read from ELF headers
//!   (never by running `ldd`);
//! - [`modules`]: kernel modules with their dependencies in load order;
//! - [`cpio`]: the kernel's `newc` initramfs format;
//! - [`initramfs`]: a tree of files gathered from the host and written as one archive.

pub mod cpio;
pub mod elf;
pub mod initramfs;
pub mod kernel;
pub mod modules;
