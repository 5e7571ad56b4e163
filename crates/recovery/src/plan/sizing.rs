//! How much room each node needs, and what is on it: the facts the
//! geometry needs to grow or shrink partitions, and the smallest disk an
//! old disk fits on.

use super::Settings;
use crate::geometry::{self, PartInfo};
use lifeboat_layout::model::{Disk, Filesystem, Layout, Lv};

/// Mount points of a filesystem as captured: (target, btrfs subvolume path).
pub(super) fn mounts_of(layout: &Layout, fs: &Filesystem) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for m in layout.mounts.iter().filter(|m| m.source == fs.device) {
        if fs.fstype == "btrfs" {
            let sub = m.root.trim_start_matches('/');
            out.push((m.target.clone(), (!sub.is_empty()).then(|| sub.to_string())));
        } else if m.root == "/" {
            out.push((m.target.clone(), None));
        }
    }
    if out.is_empty() {
        for t in &fs.mountpoints {
            out.push((t.clone(), None));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What is on a device, for the administrator (`/ (ext4)`, `swap`, `LVM PV of vg0`).
pub(super) fn what_is_on(layout: &Layout, id: &str) -> String {
    if let Some(f) = layout.filesystem_on(id) {
        let m = mounts_of(layout, f).into_iter().map(|(t, _)| t).next();
        return match m {
            Some(t) => format!("{t} ({})", f.fstype),
            None => f.fstype.clone(),
        };
    }
    if layout.swaps.iter().any(|s| s.device == id) {
        return "swap".into();
    }
    if let Some(i) = layout.image_of(id) {
        return match &i.fstype {
            Some(t) => format!("{t} ({} image)", i.kind),
            None => format!("{} image", i.kind),
        };
    }
    if let Some(p) = layout.lvm.pvs.iter().find(|p| p.device == id) {
        return format!("LVM PV of {}", p.vg.clone().unwrap_or_default());
    }
    if let Some(r) = layout.raids.iter().find(|r| r.members.iter().any(|m| m == id)) {
        return format!("RAID member of {}", r.id);
    }
    if let Some(l) = layout.luks.iter().find(|l| l.device == id) {
        return format!("LUKS {}", l.name.clone().unwrap_or_default());
    }
    "empty".into()
}

/// Bytes that must fit on a node: the used data of the filesystem on it
/// plus headroom; for containers (PV, RAID member, LUKS) what their
/// contents need. None when nothing is known (the node keeps its size).
pub(super) fn needed_on(layout: &Layout, id: &str, headroom: u32) -> Option<u64> {
    let with_headroom = |b: u64| b + b * u64::from(headroom) / 100;
    if let Some(f) = layout.filesystem_on(id) {
        // Every filesystem needs some room of its own beyond the data (journal,
        // metadata); mkfs.xfs refuses filesystems below 300 MiB.
        let floor = if f.fstype == "xfs" { 300 * geometry::MIB } else { 0 };
        return f.used.map(|u| (with_headroom(u) + 64 * geometry::MIB).max(floor));
    }
    if layout.swaps.iter().any(|s| s.device == id) {
        return Some(geometry::MIB * 16);
    }
    if let Some(pool) = layout.lvm.lvs.iter().find(|l| l.id == id && is_segtype(l, "thin-pool")) {
        // A thin pool holds the data of its thin volumes (whatever their
        // virtual sizes and filesystem minimums), plus its metadata.
        let data: u64 = layout
            .lvm
            .lvs
            .iter()
            .filter(|t| t.vg == pool.vg && t.pool.as_deref() == Some(pool.name.as_str()))
            .map(|t| layout.filesystem_on(&t.id).and_then(|f| f.used).map(with_headroom).unwrap_or(t.size))
            .sum();
        // Metadata twice: the pool's own and LVM's spare copy.
        return Some(data + 2 * pool.metadata_size.unwrap_or(4 * geometry::MIB));
    }
    if let Some(pv) = layout.lvm.pvs.iter().find(|p| p.device == id) {
        let vg = layout.lvm.vgs.iter().find(|v| Some(&v.name) == pv.vg.as_ref())?;
        // Thin volumes take their room from their pool, hidden LVs are counted with theirs.
        let lvs = layout.lvm.lvs.iter().filter(|l| l.vg == vg.name && !l.hidden && !is_segtype(l, "thin"));
        let total: u64 = lvs.map(|l| needed_on(layout, &l.id, headroom).unwrap_or(l.size)).sum();
        return Some(total + 4 * geometry::MIB);
    }
    if let Some(l) = layout.luks.iter().find(|l| l.device == id) {
        return l.id.as_deref().and_then(|inner| needed_on(layout, inner, headroom)).map(|n| n + 16 * geometry::MIB);
    }
    if let Some(r) = layout.raids.iter().find(|r| r.members.iter().any(|m| m == id)) {
        return needed_on(layout, &r.id, headroom).map(|n| n + 8 * geometry::MIB);
    }
    None
}

/// Whether a logical volume's (first) segment is of type `t`.
pub(super) fn is_segtype(l: &Lv, t: &str) -> bool {
    l.segments.first().is_some_and(|s| s.segtype == t)
}

/// Facts about each partition of an old disk, for placing it on a new one.
pub fn part_infos(layout: &Layout, d: &Disk, s: &Settings) -> Vec<PartInfo> {
    let Some(t) = &d.table else { return Vec::new() };
    t.partitions
        .iter()
        .map(|p| {
            let mounts: Vec<String> = layout
                .filesystem_on(&p.id)
                .map(|f| mounts_of(layout, f).into_iter().map(|m| m.0).collect())
                .unwrap_or_default();
            let fixed = geometry::fixed_type(&p.part_type)
                || mounts.iter().any(|m| m == "/boot" || m == "/boot/efi" || s.keep_size.contains(m))
                || s.keep_size.contains(&p.id)
                || layout.swaps.iter().any(|sw| sw.device == p.id)
                // A foreign partition keeps its size: its image is written back, its content not interpreted.
                || layout.image_of(&p.id).is_some();
            PartInfo {
                part: p.clone(),
                fixed,
                needed: needed_on(layout, &p.id, s.headroom_percent),
                what: what_is_on(layout, &p.id),
            }
        })
        .collect()
}

/// The smallest disk an old disk can be recreated on.
pub fn minimum_size(layout: &Layout, d: &Disk, s: &Settings) -> u64 {
    if d.table.is_none() {
        return needed_on(layout, &d.id, s.headroom_percent).unwrap_or(d.size);
    }
    geometry::minimum_size(d, &part_infos(layout, d, s))
}
