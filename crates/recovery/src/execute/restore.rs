//! The restore of the backup into the mounted tree (once per backup), and
//! the fix-ups of the restored configuration: device names that changed,
//! and an SELinux relabel.

use super::{Exec, Report, RestoreFn};
use crate::RecoveryError;
use std::collections::BTreeMap;
use std::path::Path;

/// The marker a finished restore leaves, so a rerun does not restore again.
pub(super) const RESTORE_DONE: &str = "var/log/lifeboat/restore.done";

/// Files of the restored system that name devices, relative to its root.
const DEVICE_NAMING_FILES: &[&str] = &[
    "etc/fstab",
    "etc/crypttab",
    "boot/grub/grub.cfg",
    "boot/grub2/grub.cfg",
    "etc/default/grub",
    "etc/mdadm/mdadm.conf",
    "etc/mdadm.conf",
];

/// Restore `backup` into `root` unless its marker says that this backup was
/// restored whole before (then true: skipped). The marker is written only
/// when nothing was lost, and removed when something was, so that rerunning
/// `recover` restores again rather than keeping a partial restore.
pub(super) fn restore_once(
    root: &Path,
    backup: &str,
    restore: &mut RestoreFn<'_>,
    report: &mut Report,
) -> Result<bool, RecoveryError> {
    let marker = root.join(RESTORE_DONE);
    if std::fs::read_to_string(&marker).map(|s| s.trim() == backup).unwrap_or(false) {
        return Ok(true);
    }
    let (n, bytes, lost) = restore(root)?;
    report.restored = n;
    report.bytes = bytes;
    report.lost = lost;
    if report.lost.is_empty() {
        if let Some(d) = marker.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let _ = std::fs::write(&marker, format!("{backup}\n"));
    } else {
        let _ = std::fs::remove_file(&marker);
    }
    Ok(false)
}

/// No configuration file of the restored system is read past this many
/// bytes (a restored file is as trustworthy as the backup; a huge one is
/// not configuration).
const CONFIG_READ_LIMIT: u64 = 1 << 20;

/// The text of a restored configuration file: a regular file (not through
/// a symbolic link, which could lead out of the restored system), at most
/// [`CONFIG_READ_LIMIT`] bytes, or None.
pub(super) fn read_config(path: &Path) -> Option<String> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_file() || meta.len() > CONFIG_READ_LIMIT {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open(path).ok()?.take(CONFIG_READ_LIMIT).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Replace whole device names (`/dev/sda1`, not the start of `/dev/sda10`).
pub fn replace_devices(text: &str, renames: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    'outer: while i < b.len() {
        if b[i] == b'/' && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'/')) {
            // Longest match first.
            let mut best: Option<(&String, &String)> = None;
            for (old, new) in renames {
                if text[i..].starts_with(old.as_str()) {
                    let next = b.get(i + old.len()).copied();
                    let boundary = !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == b'_');
                    if boundary && best.is_none_or(|(o, _)| o.len() < old.len()) {
                        best = Some((old, new));
                    }
                }
            }
            if let Some((old, new)) = best {
                out.push_str(new);
                i += old.len();
                continue 'outer;
            }
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

impl Exec<'_> {
    /// Rename changed devices in the restored configuration, then have an
    /// SELinux system relabel itself (the files were written without labels).
    pub(super) fn fix_devices(&mut self, renames: &BTreeMap<String, String>) -> Result<bool, RecoveryError> {
        for f in DEVICE_NAMING_FILES {
            let p = self.o.root.join(f);
            let Some(text) = read_config(&p) else { continue };
            let new = replace_devices(&text, renames);
            if new != text {
                std::fs::write(&p, new).map_err(|e| RecoveryError::Io(p.display().to_string(), e))?;
                log::info!("renamed devices in /{f}");
            }
        }
        self.selinux_relabel();
        Ok(false)
    }

    fn selinux_relabel(&mut self) {
        let cfg = std::fs::read_to_string(self.o.root.join("etc/selinux/config")).unwrap_or_default();
        let on = cfg.lines().any(|l| {
            let l = l.trim();
            l == "SELINUX=enforcing" || l == "SELINUX=permissive"
        });
        if on {
            let _ = std::fs::write(self.o.root.join(".autorelabel"), "");
            log::info!("SELinux: the restored system relabels its files on the next boot (/.autorelabel)");
        }
    }
}
