//! Disks: a new partition table with the partitions placed for the new
//! disk's size, or a wipe for a disk used whole.

use super::action::{Action, PlannedPartition};
use super::node::NodeId;
use super::{commands, partition_path, sizing, Builder};
use crate::geometry;
use crate::mapping::DiskMap;
use crate::RecoveryError;

/// The disk as its table is written: in a clone with new UUIDs, with a new
/// disk id and new partition UUIDs.
fn renewed(b: &mut Builder<'_>, d: &lifeboat_layout::model::Disk) -> lifeboat_layout::model::Disk {
    let mut d = d.clone();
    if let Some(t) = &mut d.table {
        t.id = b.identity_of(&t.id);
        for p in &mut t.partitions {
            p.uuid = b.identity_of(&p.uuid);
        }
    }
    d
}

/// Recreate the old disk of `m` on its new disk: its partition table (every
/// partition renamed, resized and marked made) or, without a table, a wipe.
pub(super) fn disk(b: &mut Builder<'_>, m: &DiskMap) -> Result<(), RecoveryError> {
    let layout = b.layout;
    let Some(d) = layout.disks.iter().find(|d| d.id == m.old) else { return Ok(()) };
    b.made.insert(NodeId::Disk(d.id.clone()));
    if m.new != d.id {
        b.renames.insert(d.id.clone(), m.new.clone());
    }
    let Some(t) = &d.table else {
        b.actions.push(Action::Wipe { device: m.new.clone() });
        b.part_sizes.insert(d.id.clone(), m.new_size);
        if m.new_size != d.size {
            b.resized.insert(d.id.clone());
        }
        return Ok(());
    };
    let infos = sizing::part_infos(layout, d, b.settings);
    let placed = geometry::place(d, &infos, m.new_size)?;
    let sector = u64::from(t.sector_size.max(512));
    let mut partitions = Vec::new();
    for np in &placed {
        let Some(op) = t.partitions.iter().find(|p| p.number == np.number) else { continue };
        let device = partition_path(&m.new, np.number);
        if device != op.id {
            b.renames.insert(op.id.clone(), device.clone());
        }
        if np.size != op.size {
            b.resized.insert(op.id.clone());
        }
        b.made.insert(NodeId::Partition(op.id.clone()));
        b.part_sizes.insert(op.id.clone(), np.size * sector);
        partitions.push(PlannedPartition {
            number: np.number,
            device,
            start: np.start,
            size: np.size,
            what: sizing::what_is_on(layout, &op.id),
        });
    }
    let script = commands::sfdisk_script(&renewed(b, d), &m.new, &placed, m.new_size == d.size);
    b.actions.push(Action::Partition {
        disk: m.new.clone(),
        old: d.id.clone(),
        label: t.label.clone(),
        script,
        partitions,
        sector,
    });
    Ok(())
}
