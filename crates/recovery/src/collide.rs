//! Identities the recreated storage would share with devices that stay.
//!
//! Recovering next to the original (a clone onto an attached disk while the
//! source disk is still there) recreates filesystems, swap, md arrays, LUKS
//! containers and LVM physical volumes with the UUIDs of the layout. Some of
//! those the tools refuse outright when another device already has them
//! (`mkfs.btrfs`: "non-unique UUID"; XFS will not mount a second filesystem
//! with a mounted one's UUID; `vgcreate` refuses an existing VG name), and
//! every one of them makes `UUID=` in fstab and crypttab ambiguous. The plan
//! is checked against the devices that are not being recreated before any
//! disk is written, so such a recovery is refused up front instead of
//! failing after the partition tables were written.
//!
//! The device list comes from lsblk where it runs; the [`Host`] fills in
//! what a list read from sysfs alone lacks (which devices are partitions of
//! or stacked on a recreated disk, and what is mounted).

use crate::plan::{Action, Plan};
use lifeboat_host::{Host, SystemHost};
use lifeboat_layout::capture::lsblk::Node;
use std::collections::BTreeSet;

/// One identity that would exist twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// What is being recreated (`filesystem ext4 on /dev/loop3p2`).
    pub what: String,
    /// The identity (`UUID 3c5e…`, `volume group vg0`).
    pub identity: String,
    /// The device that already has it.
    pub existing: String,
}

impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} would get {}, which {} already has", self.what, self.identity, self.existing)
    }
}

/// UUIDs compared the way every tool writes them: hex digits only, lower case
/// (mdadm writes `a1b2c3d4:...`, blkid `a1b2c3d4-...`).
fn norm(u: &str) -> String {
    u.chars().filter(char::is_ascii_hexdigit).map(|c| c.to_ascii_lowercase()).collect()
}

/// The kernel names of the target disks, their partitions, and everything
/// stacked on them, as the host shows them (holders, transitively).
fn gone_on_host(host: &dyn Host, targets: &[String]) -> BTreeSet<String> {
    let mut gone = BTreeSet::new();
    let mut todo: Vec<String> = targets.iter().filter_map(|t| host.kernel_name(std::path::Path::new(t))).collect();
    while let Some(name) = todo.pop() {
        if !gone.insert(name.clone()) {
            continue;
        }
        if let Some(d) = host.block_device(&name) {
            todo.extend(d.partitions.iter().chain(&d.holders).cloned());
        }
    }
    gone
}

/// The devices that are not part of the recreated disks: not one of them,
/// not a partition of one, not built on one (LVM, md, LUKS on top), by
/// lsblk's parents or by the host's partitions and holders.
fn staying<'a>(host: &dyn Host, nodes: &'a [Node], targets: &[String]) -> Vec<&'a Node> {
    let on_host = gone_on_host(host, targets);
    let mut gone: BTreeSet<&str> = targets.iter().map(String::as_str).collect();
    for n in nodes {
        if host.kernel_name(std::path::Path::new(&n.path)).is_some_and(|k| on_host.contains(&k)) {
            gone.insert(n.path.as_str());
        }
    }
    // Parents come before children in lsblk's order, but stacked devices can
    // have several parents: repeat until nothing more is added.
    loop {
        let before = gone.len();
        for n in nodes {
            if gone.contains(n.path.as_str()) {
                continue;
            }
            if n.parents.iter().any(|p| gone.contains(p.as_str())) {
                gone.insert(n.path.as_str());
            }
        }
        if gone.len() == before {
            break;
        }
    }
    nodes.iter().filter(|n| !gone.contains(n.path.as_str())).collect()
}

/// The VG name of an LVM device-mapper path (`/dev/mapper/my--vg-root` → `my-vg`).
fn vg_of(path: &str) -> Option<String> {
    let name = path.strip_prefix("/dev/mapper/")?;
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'-' {
            if b.get(i + 1) == Some(&b'-') {
                i += 2;
                continue;
            }
            return Some(name[..i].replace("--", "-"));
        }
        i += 1;
    }
    None
}

/// Where the device `n` is mounted: lsblk's mount points, else what the host's mountinfo says.
fn mount_points(host: &dyn Host, n: &Node) -> Vec<String> {
    if !n.mountpoints.is_empty() {
        return n.mountpoints.clone();
    }
    let dev = host.block_device_number(std::path::Path::new(&n.path));
    let mut out: Vec<String> = Vec::new();
    for m in host.mounts().unwrap_or_default() {
        if (m.source == n.path || Some(m.dev) == dev) && !out.contains(&m.mount_point) {
            out.push(m.mount_point);
        }
    }
    out
}

/// Every identity of `plan` that a device outside its disks already has.
pub fn collisions(plan: &Plan, nodes: &[Node]) -> Vec<Collision> {
    collisions_on(&SystemHost::new(), plan, nodes)
}

/// [`collisions`], with partitions, stacks and mounts also read from `host`.
pub fn collisions_on(host: &dyn Host, plan: &Plan, nodes: &[Node]) -> Vec<Collision> {
    let targets: Vec<String> = plan.disks.iter().map(|d| d.new.clone()).collect();
    let stay = staying(host, nodes, &targets);
    let mut out = Vec::new();
    let mut check = |what: String, uuid: &str| {
        let want = norm(uuid);
        if want.is_empty() {
            return;
        }
        for n in &stay {
            if n.uuid.as_deref().map(norm).as_deref() == Some(want.as_str()) {
                let kind = n.fstype.clone().unwrap_or_else(|| "a device".into());
                let points = mount_points(host, n);
                let mounted =
                    if points.is_empty() { String::new() } else { format!(", mounted on {}", points.join(", ")) };
                out.push(Collision {
                    what: what.clone(),
                    identity: format!("UUID {uuid}"),
                    existing: format!("{} ({kind}{mounted})", n.path),
                });
            }
        }
    };
    for a in &plan.actions {
        match a {
            Action::Mkfs { device, fstype, uuid: Some(u), .. } => {
                check(format!("the {fstype} filesystem on {device}"), u)
            }
            Action::Mkswap { device, uuid: Some(u), .. } => check(format!("the swap area on {device}"), u),
            Action::Raid { device, uuid, .. } => check(format!("the RAID array {device}"), uuid),
            Action::Luks { device, uuid, .. } => check(format!("the LUKS container on {device}"), uuid),
            Action::Pv { device, uuid, .. } => check(format!("the LVM physical volume {device}"), uuid),
            _ => {}
        }
    }
    let vgs: BTreeSet<(String, String)> =
        stay.iter().filter(|n| n.kind == "lvm").filter_map(|n| vg_of(&n.path).map(|vg| (vg, n.path.clone()))).collect();
    for a in &plan.actions {
        if let Action::Vg { name, .. } = a {
            if let Some((_, dev)) = vgs.iter().find(|(vg, _)| vg == name) {
                out.push(Collision {
                    what: format!("the volume group {name}"),
                    identity: format!("the name {name}"),
                    existing: format!("{dev} (an active volume group of that name)"),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::DiskMap;
    use lifeboat_host::{BlockDevice, DevNum, FixtureHost};
    use std::collections::BTreeMap;

    fn node(path: &str, kind: &str, fstype: &str, uuid: &str, parents: &[&str]) -> Node {
        Node {
            path: path.into(),
            kind: kind.into(),
            fstype: (!fstype.is_empty()).then(|| fstype.into()),
            uuid: (!uuid.is_empty()).then(|| uuid.into()),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            ..Node::default()
        }
    }

    fn plan(actions: Vec<Action>) -> Plan {
        Plan {
            disks: vec![DiskMap {
                old: "/dev/sda".into(),
                new: "/dev/sdb".into(),
                new_size: 1 << 30,
                how: String::new(),
            }],
            renames: BTreeMap::new(),
            actions,
            notes: Vec::new(),
            uuids: BTreeMap::new(),
        }
    }

    fn mkfs(dev: &str, fstype: &str, uuid: &str) -> Action {
        Action::Mkfs {
            device: dev.into(),
            fstype: fstype.into(),
            uuid: Some(uuid.into()),
            cmd: lifeboat_runner::Cmd::new("mkfs"),
        }
    }

    #[test]
    fn the_source_next_to_the_target_collides_and_the_target_itself_does_not() {
        let nodes = vec![
            node("/dev/sda", "disk", "", "", &[]),
            node("/dev/sda1", "part", "btrfs", "AAAA-1", &["/dev/sda"]),
            node("/dev/sdb", "disk", "", "", &[]),
            // The old content of the disk being recreated: overwritten, no collision.
            node("/dev/sdb1", "part", "btrfs", "aaaa-1", &["/dev/sdb"]),
        ];
        let p = plan(vec![mkfs("/dev/sdb1", "btrfs", "aaaa-1")]);
        let c = collisions_on(&FixtureHost::new(), &p, &nodes);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].existing, "/dev/sda1 (btrfs)");
        assert!(c[0].to_string().contains("btrfs filesystem on /dev/sdb1 would get UUID aaaa-1"), "{}", c[0]);
    }

    #[test]
    fn md_uuids_match_in_either_spelling_and_stacks_on_the_target_are_ignored() {
        let nodes = vec![
            node("/dev/sda", "disk", "", "", &[]),
            node("/dev/sda1", "part", "linux_raid_member", "a1b2c3d4-e5f60718-293a4b5c-6d7e8f90", &["/dev/sda"]),
            node("/dev/sdb", "disk", "", "", &[]),
            node("/dev/sdb1", "part", "LVM2_member", "pv-uuid", &["/dev/sdb"]),
            node("/dev/mapper/vg0-root", "lvm", "ext4", "fs-uuid", &["/dev/sdb1"]),
            node("/dev/mapper/my--vg-root", "lvm", "ext4", "", &["/dev/sda1"]),
        ];
        let raid = Action::Raid {
            device: "/dev/md0".into(),
            uuid: "a1b2c3d4:e5f60718:293a4b5c:6d7e8f90".into(),
            cmd: lifeboat_runner::Cmd::new("mdadm"),
        };
        let vg = |n: &str| Action::Vg { name: n.into(), cmd: lifeboat_runner::Cmd::new("vgcreate") };
        let p = plan(vec![raid, mkfs("/dev/mapper/vg0-root", "ext4", "fs-uuid"), vg("vg0"), vg("my-vg")]);
        let c = collisions_on(&FixtureHost::new(), &p, &nodes);
        let shown: Vec<String> = c.iter().map(ToString::to_string).collect();
        assert_eq!(c.len(), 2, "{shown:?}");
        assert!(shown[0].contains("RAID array /dev/md0") && shown[0].contains("/dev/sda1"), "{shown:?}");
        assert!(shown[1].contains("volume group my-vg"), "{shown:?}");
    }

    #[test]
    fn without_lsblk_the_host_tells_partitions_and_stacks_of_the_target_and_where_the_rest_is_mounted() {
        // Nodes as read without lsblk: no parents, no mount points.
        let nodes = vec![
            node("/dev/sda1", "part", "ext4", "aa-11", &[]),
            node("/dev/sdb1", "part", "ext4", "aa-11", &[]),
            node("/dev/mapper/vg1-data", "lvm", "xfs", "bb-22", &[]),
        ];
        let host = FixtureHost::new()
            .disk("sda", DevNum::new(8, 0), 1 << 30)
            .partition("sda", "sda1", 1, DevNum::new(8, 1), 1 << 30)
            .disk("sdb", DevNum::new(8, 16), 1 << 30)
            .partition("sdb", "sdb1", 1, DevNum::new(8, 17), 1 << 30)
            .device(BlockDevice { name: "dm-3".into(), dev: DevNum::new(254, 3), ..BlockDevice::default() })
            .holds("dm-3", "sdb1")
            .link("/dev/mapper/vg1-data", "dm-3")
            .mountinfo("22 1 8:1 / /srv/old\\040root rw - ext4 /dev/sda1 rw\n");
        let p = plan(vec![mkfs("/dev/sdb1", "ext4", "aa-11"), mkfs("/dev/mapper/vg1-data", "xfs", "bb-22")]);
        let c = collisions_on(&host, &p, &nodes);
        assert_eq!(c.len(), 1, "sdb1 and the volume on it are recreated, not kept: {c:?}");
        assert_eq!(c[0].existing, "/dev/sda1 (ext4, mounted on /srv/old root)");
        // Without the host's view, the old content of the target looks like a second copy.
        assert_eq!(collisions_on(&FixtureHost::new(), &p, &nodes).len(), 3);
    }

    #[test]
    fn vg_names_from_device_mapper_paths() {
        assert_eq!(vg_of("/dev/mapper/vg0-root").as_deref(), Some("vg0"));
        assert_eq!(vg_of("/dev/mapper/my--vg-lv--x").as_deref(), Some("my-vg"));
        assert_eq!(vg_of("/dev/sda1"), None);
        assert_eq!(vg_of("/dev/mapper/nodash"), None);
    }
}
