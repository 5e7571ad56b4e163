//! What carrying out a plan reads from the running system — whether a device
//! node is there, what blkid finds on it, what is mounted where, a block
//! device's numbers — asked of a [`Host`], so that the "already done" checks
//! run against fixtures in tests.

use lifeboat_host::{Host, SystemHost};
use lifeboat_runner::Runner;
use std::path::Path;

/// Where the kernel shows the UEFI variables (when efivarfs is mounted).
pub const EFIVARS: &str = "/sys/firmware/efi/efivars";

/// What blkid finds on `dev` (probing the device itself, not its cache):
/// (TYPE, UUID), each None when absent, when blkid finds nothing or cannot run.
pub(super) fn blkid(h: &dyn Host, r: &dyn Runner, dev: &str) -> (Option<String>, Option<String>) {
    match h.probe(r, dev) {
        Ok(Some(sig)) => (sig.fstype().map(str::to_string), sig.uuid().map(str::to_string)),
        _ => (None, None),
    }
}

/// Whether `p` is a block device node.
pub(super) fn is_block(h: &dyn Host, p: &str) -> bool {
    h.is_block_device(Path::new(p))
}

/// A block device's major and minor numbers from sysfs (`/dev/sda1` → `8`, `1`).
pub(super) fn sysfs_numbers(h: &dyn Host, dev: &str) -> Option<(String, String)> {
    let numbers = h.block_attr(dev.trim_start_matches("/dev/"), "dev")?;
    let (major, minor) = numbers.split_once(':')?;
    Some((major.to_string(), minor.to_string()))
}

/// Whether something is mounted exactly at `p` on the running system
/// (mount points with spaces included: mountinfo's escapes are undone).
pub fn mounted_at(p: &Path) -> bool {
    SystemHost::new().is_mounted_at(p)
}
