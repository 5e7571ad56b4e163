//! Recovery: rebuild a machine's storage from its saved layout on the same
//! or on other disks, restore its files, fix what changed, and make it boot.
//!
//! The work is split the way an administrator thinks about it:
//! [`mapping`] decides which new disk replaces which old one, [`geometry`]
//! places the partitions on a disk of another size, [`plan`] lists every
//! step before anything is written, and [`execute`] carries the plan out
//! (resumably) through the command runner; [`recover`] runs one recovery
//! from start to end (layout, mapping, backup, plan, question, execution);
//! [`identity`] gives a clone its own host name, addresses, keys and UUIDs.

pub mod collide;
pub mod execute;
pub mod geometry;
pub mod identity;
pub mod mapping;
pub mod plan;
pub mod recover;

pub use execute::{execute, Options, Report};
pub use mapping::{DiskMap, Present};
pub use plan::{Action, NodeId, Phase, Plan, PlannedPartition, Settings};

use lifeboat_layout::capture::lsblk::Node;
use lifeboat_layout::Layout;
use std::collections::BTreeMap;

/// Why recovery cannot go on. Each message names the disk or step and, where
/// there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// A disk is too small for what must go on it.
    #[error("{disk} cannot be recreated on {} of disk: {why}; use a larger disk, or map another one with --map OLD=NEW", lifeboat_config::human(*.size))]
    TooSmall {
        /// The old disk (or volume group).
        disk: String,
        /// The size offered.
        size: u64,
        /// What does not fit.
        why: String,
    },
    /// The mapping given is wrong.
    #[error("disk mapping: {0}")]
    Mapping(String),
    /// A disk must not be written.
    #[error("{disk} must not be written: {why}")]
    Refused {
        /// The disk.
        disk: String,
        /// Why.
        why: String,
    },
    /// More than one disk would do.
    #[error("{disk}: more than one disk would do ({}); say which with --map {disk}=NEW", .candidates.join(", "))]
    Ambiguous {
        /// The old disk.
        disk: String,
        /// The candidates.
        candidates: Vec<String>,
    },
    /// No disk is free for an old disk.
    #[error("no free disk for {disk}{}", if .refused.is_empty() { String::new() } else { format!(" (not usable: {})", .refused.join("; ")) })]
    NoDisk {
        /// The old disk.
        disk: String,
        /// The disks present that must not be written, with why.
        refused: Vec<String>,
    },
    /// Something lifeboat cannot do (yet), or a missing input.
    #[error("{0}")]
    Unsupported(String),
    /// An external command failed.
    #[error(transparent)]
    Run(#[from] lifeboat_runner::RunError),
    /// A step failed.
    #[error("{step}: {cause}\n  (fix the cause and run `lifeboat recover` again: it skips what is already done)")]
    Step {
        /// The step.
        step: String,
        /// Why.
        cause: Box<RecoveryError>,
    },
    /// File I/O.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The layout's nodes are built on each other in a circle (a damaged or wrongly edited layout).
    #[error("the layout's storage is built in a circle: {}; fix the depends_on lists in the layout file (or capture it again with `lifeboat layout save`)", .0.join(" -> "))]
    DependencyCycle(Vec<String>),
    /// The layout stacks its nodes deeper than any real storage stack.
    #[error("the layout's storage is stacked more than {limit} levels deep ({}); the layout file is damaged: capture it again with `lifeboat layout save`", .nodes.join(" -> "))]
    TooDeep {
        /// The bound.
        limit: usize,
        /// The chain of nodes, from the first one visited.
        nodes: Vec<String>,
    },
    /// The recreated storage would have identities that devices which stay already have.
    #[error("recovering onto these disks would give the new storage identities that other devices already have:\n  {}\n  The tools refuse some duplicates (btrfs, XFS, LVM names) and UUID= in fstab and crypttab would be ambiguous. Nothing was written. Recover with those devices detached, wipe them (wipefs -a DEVICE) if they are not needed, or make a clone with new identities (`recover --clone FILE` with new_uuids = true; see docs/cloning.md; volume group names stay).", .0.join("\n  "))]
    Collision(Vec<String>),
    /// The clone file, or giving the restored system the clone's identity.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
}

/// Map the layout's disks onto the disks present and build the plan.
/// `protected` names devices that hold the rescue medium or the backup.
/// With `only_explicit`, the disks in `explicit` are the only ones recreated.
pub fn prepare(
    layout: &Layout,
    s: &Settings,
    explicit: &BTreeMap<String, String>,
    only_explicit: bool,
    nodes: &[Node],
    protected: &[(String, String)],
) -> Result<Plan, RecoveryError> {
    let present = mapping::present(nodes, protected);
    let old = mapping::wanted(layout, explicit, only_explicit);
    if old.is_empty() {
        return Err(RecoveryError::Mapping(
            "the layout has no disk to recreate (all are excluded: loop, removable or excluded devices); map one with --map OLD=NEW".into(),
        ));
    }
    let needed = |d: &lifeboat_layout::model::Disk| plan::minimum_size(layout, d, s);
    let maps = mapping::map_disks(&old, &present, explicit, &needed)?;
    let plan = plan::build(layout, maps, s)?;
    let clash = collide::collisions(&plan, nodes);
    if !clash.is_empty() {
        return Err(RecoveryError::Collision(clash.iter().map(ToString::to_string).collect()));
    }
    Ok(plan)
}
