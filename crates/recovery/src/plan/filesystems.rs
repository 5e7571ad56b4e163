//! Filesystems (with their btrfs subvolumes), swap areas, and the mounts
//! that the restore writes into.

use super::action::Action;
use super::node::NodeId;
use super::{commands, sizing, Builder};
use crate::RecoveryError;
use lifeboat_layout::model::{Filesystem, Swap};

/// A filesystem with its old UUID (a clone's new one), label and parameters; on btrfs, its
/// subvolumes (parents first) and default subvolume.
pub(super) fn filesystem(b: &mut Builder<'_>, f: &Filesystem) -> Result<(), RecoveryError> {
    let device = b.new_id(&f.device);
    let mut f = f.clone();
    f.uuid = b.identity_of(&f.uuid);
    let cmd = commands::mkfs_cmd(&f, &device, b.resized.contains(&f.device))?;
    b.actions.push(Action::Mkfs { device: device.clone(), fstype: f.fstype.clone(), uuid: f.uuid.clone(), cmd });
    if f.fstype == "btrfs" {
        let mut paths: Vec<String> = f.subvolumes.iter().map(|v| v.path.clone()).collect();
        paths.sort_by_key(|p| p.matches('/').count());
        if !paths.is_empty() {
            let default = f
                .default_subvolume
                .filter(|d| *d != 5)
                .and_then(|d| f.subvolumes.iter().find(|v| v.id == d))
                .map(|v| v.path.clone());
            b.actions.push(Action::Subvolumes { device, paths, default });
        }
    }
    Ok(())
}

/// A swap area with its old UUID (a clone's new one) and label.
pub(super) fn swap(b: &mut Builder<'_>, w: &Swap) {
    let device = b.new_id(&w.device);
    let mut w = w.clone();
    w.uuid = b.identity_of(&w.uuid);
    let cmd = commands::mkswap_cmd(&w, &device);
    b.actions.push(Action::Mkswap { device, uuid: w.uuid.clone(), cmd });
}

/// Every recreated filesystem at its mount points, parents first (one
/// filesystem per mount point).
pub(super) fn mounts(b: &mut Builder<'_>) {
    struct Planned {
        target: String,
        device: String,
        fstype: String,
        options: Option<String>,
    }
    let layout = b.layout;
    let mut mounts: Vec<Planned> = Vec::new();
    for f in layout.filesystems.iter().filter(|f| b.made.contains(&NodeId::Fs(f.device.clone()))) {
        for (target, sub) in sizing::mounts_of(layout, f) {
            mounts.push(Planned {
                target,
                device: b.new_id(&f.device),
                fstype: f.fstype.clone(),
                options: sub.map(|s| format!("subvol={s}")),
            });
        }
    }
    mounts.sort_by(|x, y| {
        x.target.matches('/').count().cmp(&y.target.matches('/').count()).then(x.target.cmp(&y.target))
    });
    mounts.dedup_by(|x, y| x.target == y.target);
    if !mounts.iter().any(|m| m.target == "/") {
        b.notes.push("no recreated filesystem was mounted on / when the layout was captured: the backup is restored into whatever is mounted below the recovery mount point".into());
    }
    for m in mounts {
        b.actions.push(Action::Mount { device: m.device, target: m.target, fstype: m.fstype, options: m.options });
    }
}
