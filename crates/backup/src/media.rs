//! Reaching a backup in the rescue system: block devices by their
//! signature, read-only mounts of a disk (by UUID), an NFS export or a
//! medium (by label), and a backup spread over a set of media, gathered
//! into one directory. Every mount goes through the runner.

use crate::{Error, Feedback, MediumAnswer, MissingMedium, Notice};
use lifeboat_runner::{Cmd, Runner};
use std::path::{Path, PathBuf};

/// Where recovery mounts the rescue medium the backup is on.
const MEDIUM_DIR: &str = "/run/lifeboat/medium";
/// Where recovery mounts the disk or NFS export that holds the backup.
pub const BACKUP_MOUNT: &str = "/run/lifeboat/backup";
/// Where recovery gathers a backup spread over a set of media (a directory of links).
const SET_DIR: &str = "/run/lifeboat/backup-set";

/// A block device and what `blkid` says it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The device.
    pub device: String,
    /// Its filesystem type (`TYPE`).
    pub fstype: String,
    /// Its filesystem UUID.
    pub uuid: String,
    /// Its label.
    pub label: String,
}

/// Every block device with its signature.
pub fn signatures(r: &dyn Runner) -> Vec<Signature> {
    let mut out = Vec::new();
    for n in lifeboat_layout::capture::block_devices(r) {
        let Ok(Some(s)) = lifeboat_host::blkid::probe(r, &n.path) else { continue };
        let get = |v: Option<&str>| v.unwrap_or_default().to_string();
        out.push(Signature {
            device: n.path.clone(),
            fstype: get(s.fstype()),
            uuid: get(s.uuid()),
            label: get(s.label()),
        });
    }
    out
}

/// The drive that holds the ISO 9660 medium labelled `label`.
fn medium_with_label(r: &dyn Runner, label: &str) -> Option<String> {
    signatures(r).into_iter().find(|s| s.fstype == "iso9660" && s.label == label).map(|s| s.device)
}

/// Check the medium in `device` against the checksum embedded in it
/// ([`lifeboat_rescue::selfcheck`]) before anything is read from it. A
/// damaged medium stops an unattended recovery with the message naming it;
/// interactively, the person is asked whether to go on. A medium without a
/// checksum (made by an older lifeboat) is said so and used.
pub fn check_medium(device: &str, unattended: bool, feedback: &mut dyn Feedback) -> Result<(), Error> {
    match lifeboat_rescue::selfcheck::check(Path::new(device), &mut |_, _| {}) {
        Ok(c) => {
            log::info!("{device}: {} passed its check ({:.0} MB/s)", c.describe(), c.mb_per_s());
            feedback.notice(Notice::MediumChecked {
                what: c.describe(),
                device: device.into(),
                bytes: c.bytes,
                seconds: c.seconds,
            });
            Ok(())
        }
        Err(e) if !e.is_damage() => {
            feedback.notice(Notice::MediumUnchecked { device: device.into() });
            Ok(())
        }
        Err(e) => {
            let message = e.to_string();
            log::error!("{message}");
            if !unattended
                && feedback.medium_damaged(&message).map_err(Error::io("cannot ask about the damaged medium"))?
            {
                feedback.notice(Notice::MediumDamagedUsed { message });
                return Ok(());
            }
            Err(Error::MediumDamaged(message))
        }
    }
}

/// Check the medium the rescue system booted from (the ISO 9660 medium
/// labelled `label`), when there is one (not after a network boot).
pub fn check_boot_medium(
    r: &dyn Runner,
    label: &str,
    unattended: bool,
    feedback: &mut dyn Feedback,
) -> Result<(), Error> {
    match medium_with_label(r, label) {
        Some(dev) => check_medium(&dev, unattended, feedback),
        None => Ok(()),
    }
}

/// The drive of medium `k` of the set whose first medium is labelled `label`.
pub fn medium_device(r: &dyn Runner, label: &str, k: u32) -> Option<String> {
    medium_with_label(r, &lifeboat_rescue::medium_label(label, k))
}

/// Whether something is mounted at `dir`.
fn mounted_at(dir: &Path) -> bool {
    use lifeboat_host::Host;
    lifeboat_host::SystemHost::new().is_mounted_at(dir)
}

/// Mount `dev` read-only on `dir` unless something is mounted there already.
pub fn mount_ro(r: &dyn Runner, dev: &str, dir: &Path, fstype: Option<&str>) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("cannot create {}", dir.display())))?;
    if mounted_at(dir) {
        return Ok(());
    }
    let mut c = Cmd::new("mount").args(["-o", "ro"]);
    if let Some(t) = fstype {
        c = c.args(["-t", t]);
    }
    r.apply(&c.arg(dev).arg(dir)).map_err(|e| Error::Mount(dev.into(), e))?;
    Ok(())
}

/// Mount the filesystem with UUID `uuid` read-only at [`BACKUP_MOUNT`].
pub fn mount_uuid(r: &dyn Runner, uuid: &str) -> Result<PathBuf, Error> {
    let dev = signatures(r)
        .into_iter()
        .find(|s| s.uuid == uuid)
        .map(|s| s.device)
        .ok_or_else(|| Error::NoDisk(uuid.into()))?;
    let mnt = PathBuf::from(BACKUP_MOUNT);
    mount_ro(r, &dev, &mnt, None)?;
    Ok(mnt)
}

/// Mount the NFS export `export` read-only at [`BACKUP_MOUNT`].
pub fn mount_nfs(r: &dyn Runner, export: &str) -> Result<PathBuf, Error> {
    let mnt = PathBuf::from(BACKUP_MOUNT);
    std::fs::create_dir_all(&mnt).map_err(Error::io(format!("cannot create {}", mnt.display())))?;
    if !mounted_at(&mnt) {
        r.apply(&Cmd::new("mount").args(["-t", "nfs", "-o", "ro,nolock", export]).arg(&mnt))
            .map_err(|e| Error::MountNfs(export.into(), e))?;
    }
    Ok(mnt)
}

/// The backup at `path` on the rescue medium labelled `label`: mounted, and
/// when it spans a set of media, gathered from all of them. Returns its
/// directory and whether its volumes are links (a gathered set).
pub fn open_medium(
    r: &dyn Runner,
    label: &str,
    path: &str,
    unattended: bool,
    feedback: &mut dyn Feedback,
) -> Result<(PathBuf, bool), Error> {
    let mnt = PathBuf::from(MEDIUM_DIR);
    let dev = medium_with_label(r, label).ok_or_else(|| Error::NoMedium(label.into()))?;
    check_medium(&dev, unattended, feedback)?;
    mount_ro(r, &dev, &mnt, Some("iso9660"))?;
    let dir = mnt.join(path.trim_start_matches('/'));
    let set = std::fs::read_to_string(mnt.join(lifeboat_rescue::MEDIA_SET_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<lifeboat_rescue::MediaSet>(&t).ok());
    match set.filter(|s| s.of > 1) {
        Some(set) => Ok((gather(r, &set, &dir, path, unattended, feedback)?, true)),
        None => Ok((dir, false)),
    }
}

/// Link the volumes of the medium directory `from` into `all` and copy the
/// other files (catalog, manifest, signature) there; only regular files
/// (a link or a device on a medium is not part of a backup).
pub(crate) fn link_all(from: &Path, all: &Path) -> Result<(), Error> {
    let rd = std::fs::read_dir(from).map_err(Error::io(format!("cannot read {}", from.display())))?;
    for e in rd.flatten() {
        let name = e.file_name();
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let to = all.join(&name);
        let made = if name.to_string_lossy().starts_with("vol-") {
            std::os::unix::fs::symlink(e.path(), &to)
        } else {
            std::fs::copy(e.path(), &to).map(|_| ())
        };
        made.map_err(Error::io(format!("cannot gather {} into {}", e.path().display(), all.display())))?;
    }
    Ok(())
}

/// A backup spread over a set of media: find media 2..N by their labels (in
/// other drives, or virtual media), mount them, and gather the whole backup
/// in one directory of links. A medium that is not there is asked for
/// through `feedback`, or (unattended) is an error naming it.
fn gather(
    r: &dyn Runner,
    set: &lifeboat_rescue::MediaSet,
    first: &Path,
    path: &str,
    unattended: bool,
    feedback: &mut dyn Feedback,
) -> Result<PathBuf, Error> {
    let all = PathBuf::from(SET_DIR);
    let _ = std::fs::remove_dir_all(&all);
    std::fs::create_dir_all(&all).map_err(Error::io(format!("cannot create {}", all.display())))?;
    link_all(first, &all)?;
    for k in 2..=set.of {
        let label = set.labels.get(k as usize - 1).cloned().unwrap_or_default();
        loop {
            if let Some(device) = medium_with_label(r, &label) {
                check_medium(&device, unattended, feedback)?;
                let mnt = PathBuf::from(format!("{MEDIUM_DIR}-{k}"));
                mount_ro(r, &device, &mnt, Some("iso9660"))?;
                link_all(&mnt.join(path.trim_start_matches('/')), &all)?;
                feedback.notice(Notice::MediumFound { k, of: set.of, label, device });
                break;
            }
            let missing = MissingMedium { k, of: set.of, label: label.clone() };
            let answer = if unattended {
                MediumAnswer::GiveUp
            } else {
                feedback.medium_missing(&missing).map_err(Error::io("cannot ask for the next medium"))?
            };
            match answer {
                MediumAnswer::Retry => {}
                MediumAnswer::Skip => {
                    feedback.notice(Notice::MediumSkipped { k });
                    break;
                }
                MediumAnswer::GiveUp => return Err(Error::MediumMissing { k, of: set.of, label }),
            }
        }
    }
    Ok(all)
}
