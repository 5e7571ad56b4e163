//! Filesystems, swap, btrfs subvolumes and the mounts below the recovery
//! root: each made unless a previous run made it already.

use super::host::blkid;
use super::Exec;
use crate::RecoveryError;
use lifeboat_runner::Cmd;
use std::path::PathBuf;

/// Whether blkid's (TYPE, UUID) is the planned filesystem: same type and
/// the planned UUID (case aside). A filesystem planned without a UUID is
/// never taken as made (a new one cannot be told from an old one).
pub(super) fn filesystem_is(found: (Option<&str>, Option<&str>), fstype: &str, uuid: Option<&str>) -> bool {
    found.0 == Some(fstype)
        && uuid.is_some()
        && found.1.map(str::to_ascii_lowercase) == uuid.map(str::to_ascii_lowercase)
}

/// Where a btrfs filesystem's top level is mounted while its subvolumes are made.
fn btrfs_top(device: &str) -> PathBuf {
    PathBuf::from(format!("/run/lifeboat-btrfs-{}", device.replace('/', "_")))
}

impl Exec<'_> {
    pub(super) fn mkfs(
        &mut self,
        device: &str,
        fstype: &str,
        uuid: Option<&str>,
        cmd: &Cmd,
    ) -> Result<bool, RecoveryError> {
        let (t, u) = blkid(self.h, self.r, device);
        if filesystem_is((t.as_deref(), u.as_deref()), fstype, uuid) {
            return Ok(true);
        }
        self.run(cmd)?;
        Ok(false)
    }

    pub(super) fn mkswap(&mut self, device: &str, uuid: Option<&str>, cmd: &Cmd) -> Result<bool, RecoveryError> {
        let (t, u) = blkid(self.h, self.r, device);
        if t.as_deref() == Some("swap") && uuid.is_some() && u.as_deref() == uuid {
            return Ok(true);
        }
        self.run(cmd)?;
        Ok(false)
    }

    /// Create the subvolumes that are missing (with the top level mounted
    /// aside for it) and set the default one.
    pub(super) fn subvolumes(
        &mut self,
        device: &str,
        paths: &[String],
        default: Option<&str>,
    ) -> Result<bool, RecoveryError> {
        let top = btrfs_top(device);
        std::fs::create_dir_all(&top).map_err(|e| RecoveryError::Io(top.display().to_string(), e))?;
        self.run(&Cmd::new("mount").args(["-t", "btrfs", "-o", "subvolid=5", device]).arg(&top))?;
        let result = (|| {
            let mut already = true;
            for p in paths {
                if !top.join(p).exists() {
                    already = false;
                    self.run(&Cmd::new("btrfs").args(["subvolume", "create"]).arg(top.join(p)))?;
                }
            }
            if let Some(d) = default {
                let out = self.run(&Cmd::new("btrfs").args(["subvolume", "list"]).arg(&top))?;
                let id =
                    out.lines().find(|l| l.ends_with(&format!(" path {d}"))).and_then(|l| l.split_whitespace().nth(1));
                if let Some(id) = id {
                    self.run(&Cmd::new("btrfs").args(["subvolume", "set-default", id]).arg(&top))?;
                }
            }
            Ok(already)
        })();
        let _ = self.r.apply(&Cmd::new("umount").arg(&top));
        let _ = std::fs::remove_dir(&top);
        result
    }

    /// Mount `device` at `target` below the recovery root (remembered, to be
    /// unmounted at the end), unless something is mounted there already.
    pub(super) fn mount(
        &mut self,
        device: &str,
        target: &str,
        fstype: &str,
        options: Option<&str>,
    ) -> Result<bool, RecoveryError> {
        let dir = self.o.root.join(target.trim_start_matches('/'));
        if self.h.is_mounted_at(&dir) {
            self.mounted.push(dir);
            return Ok(true);
        }
        std::fs::create_dir_all(&dir).map_err(|e| RecoveryError::Io(dir.display().to_string(), e))?;
        let mut c = Cmd::new("mount").args(["-t", fstype]);
        if let Some(opt) = options {
            c = c.args(["-o", opt]);
        }
        self.run(&c.arg(device).arg(&dir))?;
        self.mounted.push(dir);
        Ok(false)
    }
}
