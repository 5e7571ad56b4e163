//! The recovery plan: every disk to wipe, every partition with its new
//! start and size, every RAID/LUKS/LVM/filesystem to create, what is
//! restored where, and the bootloader to install — built from the saved
//! layout and the disk mapping, before anything is written.
//!
//! [`build`] walks the layout's storage graph ([`node`]) from the mapped
//! disks up: [`disks`] places the partitions, [`storage`] makes RAID, LUKS
//! and LVM, [`filesystems`] the filesystems, swap and mounts, and
//! [`Plan::add_images`] the images of foreign partitions, and
//! [`Plan::finish`] adds the restore, the fix-ups (a clone's identity
//! among them) and [`boot`]. Command
//! lines come from [`commands`], sizes from [`sizing`], and each step's
//! text from its [`Action`].

pub mod action;
mod boot;
pub mod commands;
mod disks;
mod filesystems;
pub mod images;
pub mod node;
pub mod sizing;
mod storage;
#[cfg(test)]
mod tests;

pub use action::{Action, Phase, PlannedPartition};
pub use commands::mkfs_cmd;
pub use node::{recreation_order, NodeId};
pub use sizing::{minimum_size, part_infos};

use crate::identity::Identity;
use crate::mapping::DiskMap;
use crate::RecoveryError;
use lifeboat_config::human;
use lifeboat_layout::model::Layout;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What the plan needs besides the layout and the mapping.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Mount points or partition ids that keep their size.
    pub keep_size: Vec<String>,
    /// Headroom for shrinking, percent.
    pub headroom_percent: u32,
    /// Key file for LUKS, if any.
    pub luks_key_file: Option<String>,
    /// No questions will be asked.
    pub unattended: bool,
    /// When to regenerate the initramfs.
    pub regenerate_initramfs: lifeboat_config::Regenerate,
    /// Reinstall the bootloader.
    pub bootloader: bool,
    /// A clone's identity (`recover --clone`): given to the restored system,
    /// and with `new_uuids` the storage is made with new UUIDs.
    pub clone: Option<Identity>,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The disk mapping.
    pub disks: Vec<DiskMap>,
    /// Old device paths → new ones (disks and partitions that get other names).
    pub renames: BTreeMap<String, String>,
    /// What will be done, in order.
    pub actions: Vec<Action>,
    /// Things the administrator should know (left out, cannot be kept).
    pub notes: Vec<String>,
    /// Old storage identities → the new ones a clone gets (empty unless `new_uuids`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub uuids: BTreeMap<String, String>,
}

/// The device path of partition `n` of `disk` (`/dev/sda` 1 → `/dev/sda1`, `/dev/nvme0n1` → `p1`).
pub fn partition_path(disk: &str, n: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{n}")
    } else {
        format!("{disk}{n}")
    }
}

/// A plan being built: what is made so far and under which new names.
struct Builder<'a> {
    layout: &'a Layout,
    settings: &'a Settings,
    /// Old device paths → new ones.
    renames: BTreeMap<String, String>,
    actions: Vec<Action>,
    notes: Vec<String>,
    /// The nodes recreated: the mapped disks, their partitions, and
    /// everything built only on recreated nodes.
    made: BTreeSet<NodeId>,
    /// Devices (disks, partitions, LVs) whose size changes.
    resized: BTreeSet<String>,
    /// New sizes in bytes of recreated partitions and whole disks.
    part_sizes: BTreeMap<String, u64>,
    /// Old identities → new ones, in a clone with new UUIDs.
    uuids: BTreeMap<String, String>,
}

impl Builder<'_> {
    /// The identity a recreated node gets: its old one, or in a clone with
    /// new UUIDs a new one (remembered, to rewrite the restored configuration).
    fn identity(&mut self, old: &str) -> String {
        match self.settings.clone.as_ref().filter(|c| c.new_uuids) {
            Some(c) if !old.is_empty() => {
                let new = c.renew(old);
                self.uuids.insert(old.to_string(), new.clone());
                new
            }
            _ => old.to_string(),
        }
    }

    /// [`Builder::identity`] of an identity that may be absent.
    fn identity_of(&mut self, old: &Option<String>) -> Option<String> {
        old.as_deref().map(|o| self.identity(o))
    }

    /// The new device path of an old one.
    fn new_id(&self, id: &str) -> String {
        self.renames.get(id).cloned().unwrap_or_else(|| id.to_string())
    }

    /// Build what stands on `id` (all of whose dependencies are recreated).
    fn node(&mut self, id: &NodeId) -> Result<(), RecoveryError> {
        let layout = self.layout;
        match id {
            NodeId::Raid(dev) => {
                if let Some(r) = layout.raids.iter().find(|r| &r.id == dev) {
                    storage::raid(self, r);
                }
            }
            NodeId::Luks(mapping) => {
                if let Some(l) = layout.luks.iter().find(|l| l.id.as_ref() == Some(mapping)) {
                    storage::luks(self, l, mapping)?;
                }
            }
            NodeId::Pv(dev) => {
                if let Some(pv) = layout.lvm.pvs.iter().find(|p| &p.device == dev) {
                    storage::pv(self, pv);
                }
            }
            NodeId::Vg(name) => {
                if let Some(vg) = layout.lvm.vgs.iter().find(|v| &v.name == name) {
                    storage::volume_group(self, vg)?;
                }
            }
            NodeId::Fs(dev) => {
                if let Some(f) = layout.filesystem_on(dev) {
                    filesystems::filesystem(self, f)?;
                }
            }
            NodeId::Swap(dev) => {
                if let Some(w) = layout.swaps.iter().find(|w| &w.device == dev) {
                    filesystems::swap(self, w);
                }
            }
            // Disks and partitions are made by the mapping, LVs with their VG.
            NodeId::Disk(_) | NodeId::Partition(_) | NodeId::Lv(_) => {}
        }
        Ok(())
    }
}

/// Build the plan: the mapped disks' partitions, then every node built only
/// on recreated nodes, in dependency order, then the mounts.
pub fn build(layout: &Layout, disks: Vec<DiskMap>, s: &Settings) -> Result<Plan, RecoveryError> {
    let mut b = Builder {
        layout,
        settings: s,
        renames: BTreeMap::new(),
        actions: Vec::new(),
        notes: Vec::new(),
        made: BTreeSet::new(),
        resized: BTreeSet::new(),
        part_sizes: BTreeMap::new(),
        uuids: BTreeMap::new(),
    };
    for m in &disks {
        disks::disk(&mut b, m)?;
    }
    let deps = node::graph(layout);
    for id in node::order_of(&deps)? {
        if b.made.contains(&id) {
            continue;
        }
        // Only what stands on recreated nodes alone (dependencies outside the
        // layout are not in the graph).
        let Some(ds) = deps.get(&id) else { continue };
        if ds.is_empty() || !ds.iter().all(|d| b.made.contains(d)) {
            continue;
        }
        b.made.insert(id.clone());
        b.node(&id)?;
    }
    filesystems::mounts(&mut b);
    // What is left out of recreation.
    for d in layout.disks.iter().filter(|d| !b.made.contains(&NodeId::Disk(d.id.clone()))) {
        b.notes.push(format!(
            "{} is not recreated ({})",
            d.id,
            d.excluded.clone().unwrap_or_else(|| "not mapped".into())
        ));
    }
    for w in layout.swaps.iter().filter(|w| w.file) {
        b.notes.push(format!("swap file {} is not backed up; recreate it with mkswap after recovery", w.device));
    }
    if b.settings.clone.as_ref().is_some_and(|c| c.new_uuids) && !layout.lvm.vgs.is_empty() {
        b.notes.push("clone: volume groups keep their names (only their UUIDs are new); a clone next to the original with the same VG names is refused".into());
    }
    Ok(Plan { disks, renames: b.renames, actions: b.actions, notes: b.notes, uuids: b.uuids })
}

impl Plan {
    /// Whether the restored initramfs is regenerated: always or never as
    /// configured; with `auto`, when a clone's identities change, else only
    /// when it lacks a driver the new disks need or the configuration it
    /// carries names a renamed device (decided when the restored system is
    /// there, see `execute::boot`), so a recovery onto the same kind of
    /// hardware, or onto disks whose names only the kernel command line and
    /// fstab held, keeps it byte for byte.
    fn initramfs(&self, s: &Settings) -> Option<Action> {
        use lifeboat_config::Regenerate;
        let why = match s.regenerate_initramfs {
            Regenerate::Never => return None,
            Regenerate::Always => "recover.regenerate_initramfs = always".to_string(),
            Regenerate::Auto if !self.uuids.is_empty() => "the clone's storage gets new UUIDs".to_string(),
            Regenerate::Auto => {
                let disks = self.disks.iter().map(|m| m.new.clone()).collect();
                return Some(Action::Initramfs {
                    only_if_missing_drivers: Some(disks),
                    renames: self.renames.clone(),
                    why: String::new(),
                });
            }
        };
        Some(Action::Initramfs { only_if_missing_drivers: None, renames: BTreeMap::new(), why })
    }

    /// Add the restore, fix-up and bootloader steps. `backup` is the backup's
    /// directory with its entries and content bytes, when there is one.
    pub fn finish(&mut self, layout: &Layout, s: &Settings, backup: Option<(String, u64, u64)>) {
        if let Some((dir, entries, bytes)) = backup {
            self.actions.push(Action::Restore { backup: dir, entries, bytes });
        } else {
            self.notes.push("no backup: the filesystems are recreated empty".into());
        }
        if !self.renames.is_empty() {
            self.actions.push(Action::FixDevices { renames: self.renames.clone() });
        }
        if let Some(c) = &s.clone {
            let mut identity = c.clone();
            identity.uuids = self.uuids.clone();
            self.actions.push(Action::Identity { identity });
        }
        if let Some(a) = self.initramfs(s) {
            self.actions.push(a);
        }
        if s.bootloader {
            boot::bootloader(self, layout);
        }
    }

    /// The disks that will be erased.
    pub fn erased(&self) -> Vec<String> {
        self.actions.iter().filter_map(Action::erases).map(str::to_string).collect()
    }

    /// The plan as text for the administrator.
    pub fn render(&self) -> String {
        let mut o = String::from("Disks:\n");
        for m in &self.disks {
            o.push_str(&format!("  {} -> {} ({}, {}) — WILL BE ERASED\n", m.old, m.new, human(m.new_size), m.how));
        }
        o.push_str("Steps:\n");
        for (i, a) in self.actions.iter().enumerate() {
            o.push_str(&a.render(i + 1));
            o.push('\n');
        }
        for n in &self.notes {
            o.push_str(&format!("Note: {n}\n"));
        }
        o
    }
}
