//! The disks as trees, for the report's picture: the saved layout (before)
//! and the recovered disk images as the host reads them (after).

use crate::report::Node;
use lifeboat_layout::model::Layout;
use std::collections::{BTreeMap, BTreeSet};

/// A size as people read it (binary units).
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn detail(l: &Layout, id: &str) -> String {
    if let Some(d) = l.disks.iter().find(|d| d.id == id) {
        let mut s = human(d.size);
        if let Some(t) = &d.table {
            s.push_str(&format!(" {}", t.label));
        }
        if let Some(why) = &d.excluded {
            s.push_str(&format!(" (not recreated: {why})"));
        }
        return s;
    }
    if let Some(p) = l.disks.iter().flat_map(|d| d.table.iter().flat_map(|t| &t.partitions)).find(|p| p.id == id) {
        return human(p.size);
    }
    if let Some(dev) = id.strip_prefix("fs:") {
        if let Some(f) = l.filesystem_on(dev) {
            return format!("{} {}", f.fstype, f.mountpoints.join(" ")).trim().to_string();
        }
    }
    if let Some(lv) = l.lvm.lvs.iter().find(|v| v.id == id) {
        return human(lv.size);
    }
    if let Some(dev) = id.strip_prefix("swap:") {
        if let Some(s) = l.swaps.iter().find(|s| s.device == dev) {
            return human(s.size);
        }
    }
    String::new()
}

fn label(id: &str) -> String {
    match id.strip_prefix("fs:") {
        Some(_) => "filesystem".into(),
        None if id.starts_with("swap:") => "swap".into(),
        None => id.to_string(),
    }
}

/// The saved layout as trees, one per disk (what is built on several disks,
/// a RAID or a VG, appears under the first).
pub fn before(l: &Layout) -> Vec<Node> {
    let deps = l.dependencies();
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (node, on) in &deps {
        for parent in on {
            children.entry(parent.as_str()).or_default().push(node.as_str());
        }
    }
    for d in &l.disks {
        if let (Some(t), Some(c)) = (&d.table, children.get_mut(d.id.as_str())) {
            c.sort_by_key(|id| t.partitions.iter().position(|p| p.id == *id).unwrap_or(usize::MAX));
        }
    }
    let mut seen = BTreeSet::new();
    fn build<'a>(
        l: &Layout,
        id: &'a str,
        children: &BTreeMap<&str, Vec<&'a str>>,
        seen: &mut BTreeSet<&'a str>,
        depth: usize,
    ) -> Node {
        seen.insert(id);
        let kids = if depth < 16 {
            children
                .get(id)
                .into_iter()
                .flatten()
                .filter(|k| !seen.contains(*k))
                .copied()
                .collect::<Vec<&str>>()
                .into_iter()
                .map(|k| build(l, k, children, seen, depth + 1))
                .collect()
        } else {
            Vec::new()
        };
        Node { label: label(id), detail: detail(l, id), children: kids }
    }
    l.disks.iter().map(|d| build(l, &d.id, &children, &mut seen, 0)).collect()
}

/// One partition of a recovered disk image, as `sfdisk --json` and `blkid` see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenPartition {
    /// Its number.
    pub number: u32,
    /// Bytes.
    pub size: u64,
    /// `TYPE` (ext4, swap, vfat), when blkid found one.
    pub fstype: Option<String>,
    /// `UUID`.
    pub uuid: Option<String>,
    /// `LABEL`.
    pub label: Option<String>,
}

/// The partitions in `sfdisk --json` output: (number, size in bytes).
pub fn sfdisk_partitions(json: &str) -> Vec<(u32, u64)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else { return Vec::new() };
    let t = &v["partitiontable"];
    let sector = t["sectorsize"].as_u64().unwrap_or(512);
    t["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let node = p["node"].as_str()?;
            let digits: String =
                node.chars().rev().take_while(char::is_ascii_digit).collect::<Vec<_>>().into_iter().rev().collect();
            Some((digits.parse().ok()?, p["size"].as_u64()?.saturating_mul(sector)))
        })
        .collect()
}

/// `blkid -p -o export` output as (TYPE, UUID, LABEL).
pub fn blkid_export(text: &str) -> (Option<String>, Option<String>, Option<String>) {
    let get =
        |k: &str| text.lines().find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('='))).map(str::to_string);
    (get("TYPE"), get("UUID"), get("LABEL"))
}

/// A recovered disk as a tree.
pub fn after(name: &str, size: u64, whole: Option<&SeenPartition>, parts: &[SeenPartition]) -> Node {
    let fs = |p: &SeenPartition| -> Vec<Node> {
        p.fstype
            .as_ref()
            .map(|t| {
                let mut d = p.uuid.as_ref().map(|u| format!("UUID {u}")).unwrap_or_default();
                if let Some(l) = &p.label {
                    d.push_str(&format!(" LABEL {l}"));
                }
                vec![Node { label: t.clone(), detail: d.trim().to_string(), children: Vec::new() }]
            })
            .unwrap_or_default()
    };
    let mut children: Vec<Node> = parts
        .iter()
        .map(|p| Node { label: format!("partition {}", p.number), detail: human(p.size), children: fs(p) })
        .collect();
    if let Some(w) = whole {
        children.extend(fs(w));
    }
    Node { label: name.to_string(), detail: human(size), children }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sfdisk_json_gives_partition_numbers_and_byte_sizes() {
        let j = r#"{"partitiontable": {"label": "dos", "unit": "sectors", "sectorsize": 512,
            "partitions": [{"node": "/var/tmp/d/disk0.img1", "start": 2048, "size": 4194304, "type": "83"},
                           {"node": "/var/tmp/d/disk0.img2", "start": 4196352, "size": 1048576, "type": "82"}]}}"#;
        assert_eq!(sfdisk_partitions(j), vec![(1, 2 << 30), (2, 512 << 20)]);
        assert!(sfdisk_partitions("not json").is_empty());
    }

    #[test]
    fn blkid_export_fields() {
        let (t, u, l) = blkid_export("DEVNAME=/dev/loop0p1\nUUID=abcd\nTYPE=ext4\n");
        assert_eq!((t.as_deref(), u.as_deref(), l), (Some("ext4"), Some("abcd"), None));
    }

    #[test]
    fn after_tree_has_partitions_and_their_filesystems() {
        let p = SeenPartition {
            number: 1,
            size: 1 << 30,
            fstype: Some("ext4".into()),
            uuid: Some("u1".into()),
            label: None,
        };
        let n = after("/dev/vda", 3 << 30, None, &[p]);
        assert_eq!(n.detail, "3.0 GiB");
        assert_eq!(n.children[0].label, "partition 1");
        assert_eq!(n.children[0].children[0].detail, "UUID u1");
    }
}
