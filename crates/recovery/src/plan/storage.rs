//! The layers between partitions and filesystems: md RAID, LUKS and LVM,
//! each recreated with its old identity where the tools allow it.

use super::action::Action;
use super::node::NodeId;
use super::{commands, sizing, Builder};
use crate::geometry;
use crate::RecoveryError;
use lifeboat_config::human;
use lifeboat_layout::model::{Luks, Lv, Pv, Raid, Vg};

/// An md array on its (new) member devices, with its UUID (a clone's new
/// one, and the clone as its home host).
pub(super) fn raid(b: &mut Builder<'_>, r: &Raid) {
    let mut r = r.clone();
    r.uuid = b.identity(&r.uuid);
    // A clone's arrays belong to the clone (`web1:0` becomes `web2:0`), so mdadm assembles them as its own.
    if let (Some(c), Some((home, n))) = (&b.settings.clone, r.name.clone().as_deref().and_then(|n| n.split_once(':'))) {
        if home.eq_ignore_ascii_case(c.source_hostname.split('.').next().unwrap_or("")) {
            r.name = Some(format!("{}:{n}", c.hostname));
        }
    }
    let cmd = commands::mdadm_create(&r, &|m| b.new_id(m));
    b.actions.push(Action::Raid { device: r.id.clone(), uuid: r.uuid.clone(), cmd });
}

/// A LUKS container opened as `mapping`. An unattended recovery without a
/// key file is refused here, before any disk is written.
pub(super) fn luks(b: &mut Builder<'_>, l: &Luks, mapping: &str) -> Result<(), RecoveryError> {
    if b.settings.luks_key_file.is_none() && b.settings.unattended {
        return Err(RecoveryError::Unsupported(format!(
            "{} is a LUKS container and an unattended recovery cannot ask for its passphrase; set recover.luks_key_file",
            l.device
        )));
    }
    let name = l.name.clone().unwrap_or_else(|| mapping.trim_start_matches("/dev/mapper/").to_string());
    let mut l = l.clone();
    l.uuid = b.identity(&l.uuid);
    b.actions.push(Action::Luks {
        device: b.new_id(&l.device),
        name,
        uuid: l.uuid.clone(),
        format: commands::luks_format(&l),
    });
    Ok(())
}

/// An LVM physical volume with its old UUID.
pub(super) fn pv(b: &mut Builder<'_>, pv: &Pv) {
    let device = b.new_id(&pv.device);
    let uuid = b.identity(&pv.uuid);
    let cmd = commands::pvcreate(&uuid, &device);
    b.actions.push(Action::Pv { device, uuid, cmd });
}

/// A volume group and its visible logical volumes (pools before their thin
/// volumes). When the PVs shrank, the LVs shrink in proportion, but only
/// while the data on each still fits.
pub(super) fn volume_group(b: &mut Builder<'_>, vg: &Vg) -> Result<(), RecoveryError> {
    let layout = b.layout;
    let in_vg: Vec<&Pv> = layout.lvm.pvs.iter().filter(|p| p.vg.as_deref() == Some(&vg.name)).collect();
    let pvs: Vec<String> = in_vg.iter().map(|p| b.new_id(&p.device)).collect();
    b.actions.push(Action::Vg { name: vg.name.clone(), cmd: commands::vgcreate(vg, &pvs) });
    // The VG's new size, to scale its LVs when the disk shrank.
    let new_vg: u64 = in_vg
        .iter()
        .map(|p| b.part_sizes.get(&p.device).copied().unwrap_or(p.size).saturating_sub(4 * geometry::MIB))
        .sum();
    let allocated = vg.size.saturating_sub(vg.free);
    let factor = if new_vg < allocated { new_vg as f64 / allocated as f64 } else { 1.0 };
    let mut lvs: Vec<&Lv> = layout.lvm.lvs.iter().filter(|l| l.vg == vg.name && !l.hidden).collect();
    // Pools before their thin volumes.
    lvs.sort_by_key(|l| l.pool.is_some());
    for l in lvs {
        let mut size = l.size;
        if factor < 1.0 && !sizing::is_segtype(l, "thin") {
            size = ((l.size as f64 * factor) as u64) / vg.extent_size * vg.extent_size;
            b.resized.insert(l.id.clone());
            if let Some(need) = sizing::needed_on(layout, &l.id, b.settings.headroom_percent) {
                if need > size {
                    return Err(RecoveryError::TooSmall {
                        disk: vg.name.clone(),
                        size: new_vg,
                        why: format!(
                            "logical volume {}/{} would get {} but holds {} of data (with headroom)",
                            vg.name,
                            l.name,
                            human(size),
                            human(need)
                        ),
                    });
                }
            }
        }
        b.made.insert(NodeId::Lv(l.id.clone()));
        b.actions.push(Action::Lv {
            name: format!("{}/{}", vg.name, l.name),
            size,
            cmd: commands::lvcreate(l, &vg.name, size),
        });
    }
    b.notes.push(format!(
        "volume group {} and its logical volumes get new LVM UUIDs (lvcreate cannot set them); filesystems keep theirs",
        vg.name
    ));
    Ok(())
}
