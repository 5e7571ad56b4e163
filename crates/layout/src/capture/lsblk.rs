//! Block devices from `lsblk --json`, flattened with their parents.

use serde_json::Value;

/// The columns lifeboat asks lsblk for (util-linux 2.37 and later have them all).
pub const COLUMNS: &str = "NAME,KNAME,PATH,TYPE,SIZE,LOG-SEC,PHY-SEC,MODEL,SERIAL,WWN,TRAN,RM,RO,ROTA,\
PTTYPE,FSTYPE,FSVER,UUID,LABEL,PARTUUID,PARTTYPE,PARTLABEL,FSUSED,FSSIZE,MOUNTPOINTS";

/// The columns every supported release's lsblk has (util-linux 2.33, Debian
/// 10, and later): no `FSVER` (2.36) and one `MOUNTPOINT` (`MOUNTPOINTS` is
/// 2.37); the other mount points come from the host's mountinfo.
pub const BASELINE_COLUMNS: &str = "NAME,KNAME,PATH,TYPE,SIZE,LOG-SEC,PHY-SEC,MODEL,SERIAL,WWN,TRAN,RM,RO,ROTA,\
PTTYPE,FSTYPE,UUID,LABEL,PARTUUID,PARTTYPE,PARTLABEL,FSUSED,FSSIZE,MOUNTPOINT";

/// The output columns an lsblk has, from its `lsblk --help` (the lines
/// after `Available output columns:`, each a column name and what it is).
pub fn available_columns(help: &str) -> Vec<String> {
    let mut lines = help.lines().skip_while(|l| !l.trim_start().starts_with("Available output columns"));
    if lines.next().is_none() {
        return Vec::new();
    }
    lines
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| c.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || "-:%".contains(ch)))
        .map(String::from)
        .collect()
}

/// The columns to ask an lsblk that has `available` for: those of
/// [`COLUMNS`] it has, `MOUNTPOINT` where it has no `MOUNTPOINTS`. None when
/// `available` lacks one that capture cannot do without (then
/// [`BASELINE_COLUMNS`] is the one thing left to try).
pub fn columns_for(available: &[String]) -> Option<String> {
    const REQUIRED: [&str; 4] = ["NAME", "KNAME", "TYPE", "SIZE"];
    let has = |c: &str| available.iter().any(|a| a == c);
    if !REQUIRED.iter().all(|c| has(c)) {
        return None;
    }
    let cols: Vec<&str> = COLUMNS
        .split(',')
        .filter_map(|c| match c {
            "MOUNTPOINTS" if !has(c) => has("MOUNTPOINT").then_some("MOUNTPOINT"),
            _ => has(c).then_some(c),
        })
        .collect();
    Some(cols.join(","))
}

/// One block device as lsblk sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    /// Kernel name (`sda1`, `dm-0`).
    pub kname: String,
    /// Device path (`/dev/sda1`, `/dev/mapper/vg-root`).
    pub path: String,
    /// lsblk type: `disk`, `part`, `loop`, `rom`, `lvm`, `crypt`, `raid1`, `md`, `dm`, ...
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// Logical sector size.
    pub log_sec: u32,
    /// Physical sector size.
    pub phy_sec: u32,
    /// Model.
    pub model: Option<String>,
    /// Serial.
    pub serial: Option<String>,
    /// WWN.
    pub wwn: Option<String>,
    /// Transport.
    pub tran: Option<String>,
    /// Removable.
    pub rm: bool,
    /// Read-only.
    pub ro: bool,
    /// Rotational.
    pub rota: bool,
    /// Partition table type (`gpt`, `dos`).
    pub pttype: Option<String>,
    /// Content signature (`ext4`, `LVM2_member`, `crypto_LUKS`, `linux_raid_member`, `swap`).
    pub fstype: Option<String>,
    /// Signature version (`1.0`, `FAT32`, `LVM2 001`).
    pub fsver: Option<String>,
    /// UUID of the content.
    pub uuid: Option<String>,
    /// Label of the content.
    pub label: Option<String>,
    /// Partition UUID.
    pub partuuid: Option<String>,
    /// Partition type.
    pub parttype: Option<String>,
    /// Partition name.
    pub partlabel: Option<String>,
    /// Bytes used (mounted filesystems).
    pub fsused: Option<u64>,
    /// Filesystem size (mounted filesystems).
    pub fssize: Option<u64>,
    /// Where mounted.
    pub mountpoints: Vec<String>,
    /// Device paths this one is built on.
    pub parents: Vec<String>,
}

fn s(v: &Value, k: &str) -> Option<String> {
    match v.get(k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn n(v: &Value, k: &str) -> Option<u64> {
    match v.get(k) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

fn b(v: &Value, k: &str) -> bool {
    match v.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "1",
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

/// Parse `lsblk --json --bytes --output COLUMNS` (tree form) into a flat list
/// in which each device appears once, with all its parents.
pub fn parse(text: &str) -> Result<Vec<Node>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("lsblk printed invalid JSON: {e}"))?;
    let top = v.get("blockdevices").and_then(Value::as_array).ok_or("lsblk JSON has no `blockdevices`")?;
    let mut out: Vec<Node> = Vec::new();
    for d in top {
        walk(d, None, &mut out);
    }
    Ok(out)
}

fn walk(v: &Value, parent: Option<&str>, out: &mut Vec<Node>) {
    let path = s(v, "path").unwrap_or_else(|| format!("/dev/{}", s(v, "name").unwrap_or_default()));
    if let Some(existing) = out.iter_mut().find(|n| n.path == path) {
        if let Some(p) = parent {
            if !existing.parents.iter().any(|x| x == p) {
                existing.parents.push(p.to_string());
            }
        }
    } else {
        let mountpoints = v
            .get("mountpoints")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|m| m.as_str().map(String::from)).collect())
            .or_else(|| s(v, "mountpoint").map(|m| vec![m]))
            .unwrap_or_default();
        out.push(Node {
            kname: s(v, "kname").or_else(|| s(v, "name")).unwrap_or_default(),
            path: path.clone(),
            kind: s(v, "type").unwrap_or_default(),
            size: n(v, "size").unwrap_or(0),
            log_sec: n(v, "log-sec").unwrap_or(512) as u32,
            phy_sec: n(v, "phy-sec").unwrap_or(512) as u32,
            model: s(v, "model"),
            serial: s(v, "serial"),
            wwn: s(v, "wwn"),
            tran: s(v, "tran"),
            rm: b(v, "rm"),
            ro: b(v, "ro"),
            rota: b(v, "rota"),
            pttype: s(v, "pttype"),
            fstype: s(v, "fstype"),
            fsver: s(v, "fsver"),
            uuid: s(v, "uuid"),
            label: s(v, "label"),
            partuuid: s(v, "partuuid"),
            parttype: s(v, "parttype"),
            partlabel: s(v, "partlabel"),
            fsused: n(v, "fsused"),
            fssize: n(v, "fssize"),
            mountpoints,
            parents: parent.map(|p| vec![p.to_string()]).unwrap_or_default(),
        });
    }
    for c in v.get("children").and_then(Value::as_array).into_iter().flatten() {
        walk(c, Some(&path), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_columns_asked_for_follow_what_lsblk_lists_in_its_help() {
        let new = available_columns(include_str!("../../tests/fixtures/lsblk-help-2.38.txt"));
        assert!(
            new.len() > 50 && new.contains(&"MOUNTPOINTS".to_string()) && new.contains(&"FSUSE%".into()),
            "{new:?}"
        );
        assert_eq!(columns_for(&new).as_deref(), Some(COLUMNS));
        let old = available_columns(include_str!("../../tests/fixtures/lsblk-help-2.36.txt"));
        assert!(!old.contains(&"MOUNTPOINTS".to_string()) && old.contains(&"MOUNTPOINT".into()), "{old:?}");
        let cols = columns_for(&old).expect("2.36 has every required column");
        assert_eq!(cols, COLUMNS.replace("MOUNTPOINTS", "MOUNTPOINT"));
        // 2.33: neither FSVER nor MOUNTPOINTS.
        let v233: Vec<String> = old.into_iter().filter(|c| c != "FSVER").collect();
        assert_eq!(columns_for(&v233).as_deref(), Some(BASELINE_COLUMNS));
        assert_eq!(columns_for(&[]), None, "a help without columns says nothing");
        assert!(available_columns("Usage:\n lsblk [options]\n").is_empty());
    }

    #[test]
    fn shared_children_appear_once_with_every_parent() {
        let text = r#"{"blockdevices":[
          {"name":"vdb","path":"/dev/vdb","type":"disk","size":1000,"rm":false,"children":[
            {"name":"md0","path":"/dev/md0","type":"raid1","size":900,"fstype":"LVM2_member"}]},
          {"name":"vdc","path":"/dev/vdc","type":"disk","size":1000,"rm":"0","children":[
            {"name":"md0","path":"/dev/md0","type":"raid1","size":900,"fstype":"LVM2_member"}]}]}"#;
        let nodes = parse(text).expect("parse");
        assert_eq!(nodes.len(), 3);
        let md = nodes.iter().find(|n| n.path == "/dev/md0").expect("md0");
        assert_eq!(md.parents, vec!["/dev/vdb", "/dev/vdc"]);
        assert_eq!(md.fstype.as_deref(), Some("LVM2_member"));
    }
}
