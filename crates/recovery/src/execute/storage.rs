//! Partition tables, RAID, LUKS and LVM: each made unless a previous run
//! made it already.

use super::host::{blkid, is_block, sysfs_numbers};
use super::Exec;
use crate::plan::commands::sfdisk_write;
use crate::plan::PlannedPartition;
use crate::RecoveryError;
use lifeboat_runner::Cmd;
use std::path::Path;

/// Whether `sfdisk --json` output shows exactly the planned partitions (same
/// nodes, starts and sizes).
pub(super) fn table_is(sfdisk_json: &[u8], parts: &[PlannedPartition]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(sfdisk_json) else { return false };
    let Some(have) = v.pointer("/partitiontable/partitions").and_then(|p| p.as_array()) else { return false };
    have.len() == parts.len()
        && parts.iter().all(|p| {
            have.iter().any(|h| {
                h.get("node").and_then(|n| n.as_str()) == Some(p.device.as_str())
                    && h.get("start").and_then(|n| n.as_u64()) == Some(p.start)
                    && h.get("size").and_then(|n| n.as_u64()) == Some(p.size)
            })
        })
}

/// Whether `mdadm --detail --export` output names the array UUID `uuid`
/// (in either spelling: `a:b:c:d` or `a-b-c-d`).
pub(super) fn md_uuid_is(detail: &str, uuid: &str) -> bool {
    let norm = |u: &str| u.replace([':', '-'], "").to_ascii_lowercase();
    let want = norm(uuid);
    detail.lines().any(|l| l.strip_prefix("MD_UUID=").is_some_and(|v| norm(v) == want))
}

/// Whether blkid's (TYPE, UUID) is an LVM PV with the UUID `uuid` (dashes aside).
pub(super) fn pv_is(found: (Option<&str>, Option<&str>), uuid: &str) -> bool {
    found.0 == Some("LVM2_member") && found.1.map(|x| x.replace('-', "")) == Some(uuid.replace('-', ""))
}

impl Exec<'_> {
    /// Write the planned table unless the disk has it already, then make the
    /// kernel show the partitions and wipe old signatures inside them.
    pub(super) fn partition(
        &mut self,
        disk: &str,
        script: &str,
        partitions: &[PlannedPartition],
    ) -> Result<bool, RecoveryError> {
        if self.table_matches(disk, partitions) {
            return Ok(true);
        }
        self.r.apply(&sfdisk_write(disk, script))?;
        self.reread(disk, &partitions.iter().map(|p| p.device.clone()).collect::<Vec<_>>())?;
        // Old signatures inside the new partitions would confuse mkfs and blkid.
        for p in partitions {
            let _ = self.r.apply(&Cmd::new("wipefs").args(["-q", "-a", &p.device]));
        }
        Ok(false)
    }

    /// Erase the signatures on a disk used whole.
    pub(super) fn wipe(&mut self, device: &str) -> Result<bool, RecoveryError> {
        self.run(&Cmd::new("wipefs").args(["-q", "-a", device]))?;
        Ok(false)
    }

    pub(super) fn raid(&mut self, device: &str, uuid: &str, cmd: &Cmd) -> Result<bool, RecoveryError> {
        if is_block(self.h, device) {
            if let Ok(o) = self.r.probe(&Cmd::new("mdadm").args(["--detail", "--export", device])) {
                if md_uuid_is(&o.text(), uuid) {
                    return Ok(true);
                }
            }
        }
        self.run(cmd)?;
        Ok(false)
    }

    /// Format (unless the header with this UUID is there) and open the container.
    pub(super) fn luks(&mut self, device: &str, name: &str, uuid: &str, format: &Cmd) -> Result<bool, RecoveryError> {
        let key = self.o.luks_key_file.clone().ok_or_else(|| {
            RecoveryError::Unsupported(format!("{device}: LUKS needs a passphrase; give --luks-key-file"))
        })?;
        let mapper = format!("/dev/mapper/{name}");
        if is_block(self.h, &mapper) {
            return Ok(true);
        }
        let (t, u) = blkid(self.h, self.r, device);
        let fresh = !(t.as_deref() == Some("crypto_LUKS") && u.as_deref() == Some(uuid));
        if fresh {
            self.run(&format.clone().arg(format!("--key-file={}", key.display())).arg(device))?;
        }
        self.run(&Cmd::new("cryptsetup").args(["open", "--key-file"]).arg(&key).args([device, name]))?;
        Ok(!fresh)
    }

    pub(super) fn pv(&mut self, device: &str, uuid: &str, cmd: &Cmd) -> Result<bool, RecoveryError> {
        let (t, u) = blkid(self.h, self.r, device);
        if pv_is((t.as_deref(), u.as_deref()), uuid) {
            return Ok(true);
        }
        self.run(cmd)?;
        Ok(false)
    }

    pub(super) fn vg(&mut self, name: &str, cmd: &Cmd) -> Result<bool, RecoveryError> {
        if self.r.probe(&Cmd::new("vgs").args(["--noheadings", name])).is_ok() {
            return Ok(true);
        }
        self.run(cmd)?;
        Ok(false)
    }

    /// Create the LV unless it exists; `name` is `VG/LV`.
    pub(super) fn lv(&mut self, name: &str, cmd: &Cmd) -> Result<bool, RecoveryError> {
        if self.r.probe(&Cmd::new("lvs").args(["--noheadings", name])).is_ok() {
            return Ok(true);
        }
        self.run(cmd)?;
        // Without udev nobody makes the /dev/VG/LV nodes: ask LVM to.
        let _ = self.r.apply(&Cmd::new("vgmknodes").arg(name.split('/').next().unwrap_or(name)));
        Ok(false)
    }

    fn table_matches(&self, disk: &str, parts: &[PlannedPartition]) -> bool {
        let Ok(out) = self.r.probe(&Cmd::new("sfdisk").args(["--json", disk])) else { return false };
        table_is(&out.stdout, parts) && parts.iter().all(|p| is_block(self.h, &p.device))
    }

    /// Make the kernel see the new table and wait for the partition nodes.
    fn reread(&self, disk: &str, nodes: &[String]) -> Result<(), RecoveryError> {
        // Re-reading fails while a disk is held; partx updates and adds the
        // partitions one by one (and works on loop devices), so try them all.
        let _ = self.r.apply(&Cmd::new("blockdev").args(["--rereadpt", disk]));
        let _ = self.r.apply(&Cmd::new("partx").args(["-u", disk]));
        let _ = self.r.apply(&Cmd::new("partx").args(["-a", disk]));
        for _ in 0..50 {
            if nodes.iter().all(|n| is_block(self.h, n)) {
                return Ok(());
            }
            // No udev and no devtmpfs: make the nodes from sysfs.
            for n in nodes {
                if let Some((ma, mi)) = sysfs_numbers(self.h, n) {
                    if !Path::new(n).exists() {
                        let _ = self.r.apply(&Cmd::new("mknod").args([n.as_str(), "b", &ma, &mi]));
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let missing: Vec<&String> = nodes.iter().filter(|n| !is_block(self.h, n)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(RecoveryError::Unsupported(format!(
                "the kernel did not show the new partitions {} of {disk} (try `partx -u {disk}` and run recover again)",
                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )))
        }
    }
}
