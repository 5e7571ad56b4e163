//! The nodes of a layout's storage graph, by kind, and the order they are
//! recreated in.
//!
//! The layout file names nodes by strings (`/dev/sda2`, `pv:/dev/sda2`,
//! `vg:vg0`, `fs:/dev/mapper/vg0-root`); the planner resolves each once into
//! a [`NodeId`] that says what kind of thing it is, so no builder guesses
//! from a prefix.

use crate::RecoveryError;
use lifeboat_layout::Layout;
use std::collections::BTreeMap;

/// Storage stacks are a handful of levels deep (disk, partition, RAID, LUKS,
/// PV, VG, LV, filesystem); a chain longer than this is a damaged layout.
pub const MAX_DEPTH: usize = 64;

/// One node of the storage graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeId {
    /// A whole disk, by device path.
    Disk(String),
    /// A partition, by device path.
    Partition(String),
    /// An md array, by device path.
    Raid(String),
    /// An opened LUKS container, by its mapping's path (`/dev/mapper/NAME`).
    Luks(String),
    /// An LVM physical volume, by the device it is on.
    Pv(String),
    /// A volume group, by name.
    Vg(String),
    /// A logical volume, by its layout id (`/dev/mapper/vg-lv`, `lv:VG/NAME` when hidden).
    Lv(String),
    /// A filesystem, by the device it is on.
    Fs(String),
    /// A swap area, by its device.
    Swap(String),
}

impl std::fmt::Display for NodeId {
    /// The node as the layout file names it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeId::Disk(p) | NodeId::Partition(p) | NodeId::Raid(p) | NodeId::Luks(p) | NodeId::Lv(p) => {
                f.write_str(p)
            }
            NodeId::Pv(d) => write!(f, "pv:{d}"),
            NodeId::Vg(n) => write!(f, "vg:{n}"),
            NodeId::Fs(d) => write!(f, "fs:{d}"),
            NodeId::Swap(d) => write!(f, "swap:{d}"),
        }
    }
}

/// Every node of the layout with the nodes it is built on, resolved from the
/// layout's string ids. Dependencies on nodes outside the layout are left out.
pub fn graph(layout: &Layout) -> BTreeMap<NodeId, Vec<NodeId>> {
    // The layout's own names for its nodes, and what each one is.
    let mut named: BTreeMap<String, NodeId> = BTreeMap::new();
    let mut raw: Vec<(NodeId, &[String])> = Vec::new();
    for d in &layout.disks {
        let disk = NodeId::Disk(d.id.clone());
        named.insert(d.id.clone(), disk.clone());
        raw.push((disk, &[]));
        for p in d.table.iter().flat_map(|t| &t.partitions) {
            named.insert(p.id.clone(), NodeId::Partition(p.id.clone()));
        }
    }
    for r in &layout.raids {
        named.insert(r.id.clone(), NodeId::Raid(r.id.clone()));
        raw.push((NodeId::Raid(r.id.clone()), &r.depends_on));
    }
    for l in &layout.luks {
        if let Some(id) = &l.id {
            named.insert(id.clone(), NodeId::Luks(id.clone()));
            raw.push((NodeId::Luks(id.clone()), &l.depends_on));
        }
    }
    for p in &layout.lvm.pvs {
        named.insert(p.id.clone(), NodeId::Pv(p.device.clone()));
        raw.push((NodeId::Pv(p.device.clone()), &p.depends_on));
    }
    for v in &layout.lvm.vgs {
        named.insert(v.id.clone(), NodeId::Vg(v.name.clone()));
        raw.push((NodeId::Vg(v.name.clone()), &v.depends_on));
    }
    for l in &layout.lvm.lvs {
        named.insert(l.id.clone(), NodeId::Lv(l.id.clone()));
        raw.push((NodeId::Lv(l.id.clone()), &l.depends_on));
    }
    for f in &layout.filesystems {
        let id = NodeId::Fs(f.device.clone());
        named.insert(id.to_string(), id.clone());
        raw.push((id, &f.depends_on));
    }
    for s in layout.swaps.iter().filter(|s| !s.file) {
        let id = NodeId::Swap(s.device.clone());
        named.insert(id.to_string(), id.clone());
        raw.push((id, &s.depends_on));
    }
    let mut g: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
    for d in &layout.disks {
        for p in d.table.iter().flat_map(|t| &t.partitions) {
            g.insert(NodeId::Partition(p.id.clone()), vec![NodeId::Disk(d.id.clone())]);
        }
    }
    for (id, deps) in raw {
        let deps = deps.iter().filter_map(|d| named.get(d).cloned()).collect();
        g.insert(id, deps);
    }
    g
}

/// Every node of the layout in an order where each comes after what it is
/// built on. A layout whose nodes are built on each other in a circle, or
/// stacked deeper than [`MAX_DEPTH`], is refused naming the nodes: such a
/// layout file is damaged or was edited wrongly.
pub fn recreation_order(layout: &Layout) -> Result<Vec<NodeId>, RecoveryError> {
    order_of(&graph(layout))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Visiting,
    Done,
}

/// The order of a dependency graph; see [`recreation_order`].
pub fn order_of(g: &BTreeMap<NodeId, Vec<NodeId>>) -> Result<Vec<NodeId>, RecoveryError> {
    // Roots in the order of the layout's names, so that independent nodes come
    // in the same order as the layout file names them.
    let mut roots: Vec<(String, &NodeId)> = g.keys().map(|n| (n.to_string(), n)).collect();
    roots.sort();
    let mut marks: BTreeMap<&NodeId, Mark> = BTreeMap::new();
    let mut path: Vec<&NodeId> = Vec::new();
    let mut order = Vec::new();
    for (_, n) in roots {
        visit(n, g, &mut marks, &mut path, &mut order)?;
    }
    Ok(order)
}

fn visit<'g>(
    n: &'g NodeId,
    g: &'g BTreeMap<NodeId, Vec<NodeId>>,
    marks: &mut BTreeMap<&'g NodeId, Mark>,
    path: &mut Vec<&'g NodeId>,
    order: &mut Vec<NodeId>,
) -> Result<(), RecoveryError> {
    match marks.get(n) {
        Some(Mark::Done) => return Ok(()),
        Some(Mark::Visiting) => {
            let from = path.iter().position(|p| *p == n).unwrap_or(0);
            let mut nodes: Vec<String> = path[from..].iter().map(ToString::to_string).collect();
            nodes.push(n.to_string());
            return Err(RecoveryError::DependencyCycle(nodes));
        }
        None => {}
    }
    if path.len() >= MAX_DEPTH {
        let mut nodes: Vec<String> = path.iter().map(ToString::to_string).collect();
        nodes.push(n.to_string());
        return Err(RecoveryError::TooDeep { limit: MAX_DEPTH, nodes });
    }
    marks.insert(n, Mark::Visiting);
    path.push(n);
    for (d, _) in g.get(n).into_iter().flatten().filter_map(|d| g.get_key_value(d)) {
        visit(d, g, marks, path, order)?;
    }
    path.pop();
    marks.insert(n, Mark::Done);
    order.push(n.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(p: &str) -> NodeId {
        NodeId::Partition(p.into())
    }

    #[test]
    fn ids_read_as_the_layout_names_them() {
        assert_eq!(NodeId::Fs("/dev/sda1".into()).to_string(), "fs:/dev/sda1");
        assert_eq!(NodeId::Swap("/dev/sda2".into()).to_string(), "swap:/dev/sda2");
        assert_eq!(NodeId::Pv("/dev/md0".into()).to_string(), "pv:/dev/md0");
        assert_eq!(NodeId::Vg("vg0".into()).to_string(), "vg:vg0");
        assert_eq!(NodeId::Lv("/dev/mapper/vg0-root".into()).to_string(), "/dev/mapper/vg0-root");
    }

    #[test]
    fn a_cycle_is_refused_naming_its_nodes() {
        let mut g = BTreeMap::new();
        g.insert(NodeId::Disk("/dev/sda".into()), vec![]);
        g.insert(NodeId::Raid("/dev/md0".into()), vec![NodeId::Luks("/dev/mapper/c".into())]);
        g.insert(NodeId::Luks("/dev/mapper/c".into()), vec![NodeId::Raid("/dev/md0".into())]);
        let e = order_of(&g).expect_err("a cycle");
        match &e {
            RecoveryError::DependencyCycle(nodes) => {
                assert_eq!(nodes, &["/dev/mapper/c", "/dev/md0", "/dev/mapper/c"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("/dev/mapper/c -> /dev/md0 -> /dev/mapper/c"), "{e}");
    }

    #[test]
    fn a_node_built_on_itself_is_a_cycle() {
        let mut g = BTreeMap::new();
        g.insert(NodeId::Raid("/dev/md0".into()), vec![NodeId::Raid("/dev/md0".into())]);
        assert!(matches!(order_of(&g), Err(RecoveryError::DependencyCycle(n)) if n.len() == 2));
    }

    #[test]
    fn a_chain_deeper_than_the_bound_is_refused() {
        // p000 is built on p001, which is built on p002, ...: visited from p000.
        let n = |i: usize| part(&format!("/dev/p{i:03}"));
        let chain = |len: usize| -> BTreeMap<NodeId, Vec<NodeId>> {
            (0..len).map(|i| (n(i), if i + 1 == len { vec![] } else { vec![n(i + 1)] })).collect()
        };
        match order_of(&chain(MAX_DEPTH + 1)) {
            Err(RecoveryError::TooDeep { limit, nodes }) => {
                assert_eq!(limit, MAX_DEPTH);
                assert_eq!(nodes.len(), MAX_DEPTH + 1);
                assert_eq!(nodes[0], "/dev/p000");
            }
            other => panic!("{other:?}"),
        }
        let order = order_of(&chain(MAX_DEPTH)).expect("as deep as the bound");
        assert_eq!(order.len(), MAX_DEPTH);
        assert_eq!(order.first(), Some(&n(MAX_DEPTH - 1)));
        assert_eq!(order.last(), Some(&n(0)));
    }

    #[test]
    fn dependencies_come_first_and_unknown_ones_are_ignored() {
        let mut g = BTreeMap::new();
        g.insert(NodeId::Fs("/dev/mapper/vg0-root".into()), vec![NodeId::Lv("/dev/mapper/vg0-root".into())]);
        g.insert(NodeId::Lv("/dev/mapper/vg0-root".into()), vec![NodeId::Vg("vg0".into())]);
        g.insert(NodeId::Vg("vg0".into()), vec![NodeId::Pv("/dev/sda2".into())]);
        g.insert(NodeId::Pv("/dev/sda2".into()), vec![part("/dev/sda2"), NodeId::Disk("/dev/elsewhere".into())]);
        g.insert(part("/dev/sda2"), vec![NodeId::Disk("/dev/sda".into())]);
        g.insert(NodeId::Disk("/dev/sda".into()), vec![]);
        let order: Vec<String> = order_of(&g).expect("order").iter().map(ToString::to_string).collect();
        assert_eq!(
            order,
            ["/dev/sda", "/dev/sda2", "pv:/dev/sda2", "vg:vg0", "/dev/mapper/vg0-root", "fs:/dev/mapper/vg0-root"]
        );
    }
}
