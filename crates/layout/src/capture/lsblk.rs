//! Block devices from `lsblk --json`, flattened with their parents.

use serde_json::Value;

/// The columns lifeboat asks lsblk for.
pub const COLUMNS: &str = "NAME,KNAME,PATH,TYPE,SIZE,LOG-SEC,PHY-SEC,MODEL,SERIAL,WWN,TRAN,RM,RO,ROTA,\
PTTYPE,FSTYPE,FSVER,UUID,LABEL,PARTUUID,PARTTYPE,PARTLABEL,FSUSED,FSSIZE,MOUNTPOINTS";

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
