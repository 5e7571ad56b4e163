//! Parsers for partition tables (sfdisk), md RAID (mdadm), LVM and LUKS output.

use crate::model::{Luks, LvSegment, Partition, PartitionTable};
use serde_json::Value;
use std::collections::BTreeMap;

fn js(v: &Value, k: &str) -> Option<String> {
    match v.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn ju(v: &Value, k: &str) -> Option<u64> {
    match v.get(k) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The partition number at the end of a partition node name (`/dev/nvme0n1p3` → 3).
pub fn partition_number(node: &str) -> Option<u32> {
    let digits: String = node.chars().rev().take_while(char::is_ascii_digit).collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

/// Parse `sfdisk --json DEVICE`.
pub fn parse_sfdisk(text: &str) -> Result<PartitionTable, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("sfdisk printed invalid JSON: {e}"))?;
    let t = v.get("partitiontable").ok_or("sfdisk JSON has no `partitiontable`")?;
    let label = js(t, "label").ok_or("sfdisk JSON has no table label")?;
    let mut partitions = Vec::new();
    for p in t.get("partitions").and_then(Value::as_array).into_iter().flatten() {
        let node = js(p, "node").ok_or("sfdisk partition without `node`")?;
        partitions.push(Partition {
            number: partition_number(&node).ok_or_else(|| format!("no partition number in {node}"))?,
            id: node,
            start: ju(p, "start").ok_or("sfdisk partition without `start`")?,
            size: ju(p, "size").ok_or("sfdisk partition without `size`")?,
            part_type: js(p, "type").unwrap_or_default(),
            type_name: None,
            uuid: js(p, "uuid"),
            name: js(p, "name"),
            attrs: js(p, "attrs"),
            bootable: p.get("bootable").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    Ok(PartitionTable {
        label,
        id: js(t, "id"),
        sector_size: ju(t, "sectorsize").unwrap_or(512) as u32,
        first_lba: ju(t, "firstlba"),
        last_lba: ju(t, "lastlba"),
        partitions,
    })
}

/// Human names of the common partition types.
pub fn type_name(part_type: &str) -> Option<&'static str> {
    let t = part_type.to_ascii_uppercase();
    Some(match t.as_str() {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" | "EF" => "EFI System",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" | "83" => "Linux filesystem",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" | "82" => "Linux swap",
        "E6D6D379-F507-44C2-A23C-238F2A3DF928" | "8E" => "Linux LVM",
        "A19D880F-05FC-4D3B-A006-743F0F84911E" | "FD" => "Linux RAID",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "Linux root (x86-64)",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172" | "EA" => "Linux extended boot",
        "933AC7E1-2EB4-4F13-B844-0E14E2AEF915" => "Linux home",
        "CA7D7CCB-63ED-4C53-861C-1742536059CC" => "Linux LUKS",
        "5" | "F" | "85" => "Extended",
        "B" | "C" => "FAT32",
        "7" => "NTFS/exFAT",
        _ => return None,
    })
}

/// What `mdadm --detail DEVICE` says about an array.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MdDetail {
    /// `raid1`.
    pub level: String,
    /// Superblock version.
    pub metadata: String,
    /// UUID.
    pub uuid: String,
    /// Name without the "(local to host ...)" remark.
    pub name: Option<String>,
    /// Raid devices.
    pub raid_devices: u32,
    /// Chunk size in KiB.
    pub chunk_kib: Option<u64>,
    /// Layout.
    pub layout: Option<String>,
    /// Bitmap: `internal`, `none` or a path.
    pub bitmap: String,
    /// Array size in bytes.
    pub size: u64,
    /// Active (and rebuilding) members.
    pub members: Vec<String>,
    /// Spares.
    pub spares: Vec<String>,
}

/// Parse `mdadm --detail DEVICE`.
pub fn parse_mdadm_detail(text: &str) -> Result<MdDetail, String> {
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    let mut d = MdDetail::default();
    let mut in_table = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Number") && t.contains("RaidDevice") {
            in_table = true;
            continue;
        }
        if in_table {
            let f: Vec<&str> = t.split_whitespace().collect();
            if let Some(dev) = f.last().filter(|x| x.starts_with('/')) {
                if t.contains("spare") {
                    d.spares.push(dev.to_string());
                } else {
                    d.members.push(dev.to_string());
                }
            }
            continue;
        }
        if let Some((k, v)) = t.split_once(" : ") {
            kv.entry(k.trim().to_string()).or_insert_with(|| v.trim().to_string());
        }
    }
    d.level = kv.get("Raid Level").cloned().ok_or("mdadm --detail printed no `Raid Level`")?;
    d.metadata = kv.get("Version").cloned().unwrap_or_default();
    d.uuid = kv.get("UUID").cloned().ok_or("mdadm --detail printed no `UUID`")?;
    d.name = kv.get("Name").map(|n| n.split_whitespace().next().unwrap_or_default().to_string());
    d.raid_devices = kv.get("Raid Devices").and_then(|v| v.parse().ok()).unwrap_or(0);
    d.chunk_kib = kv.get("Chunk Size").and_then(|v| v.trim_end_matches('K').parse().ok());
    d.layout = kv.get("Layout").cloned();
    d.bitmap = match kv.get("Intent Bitmap").map(String::as_str) {
        Some("Internal") => "internal".into(),
        Some(other) => other.to_string(),
        None => "none".into(),
    };
    d.size = kv
        .get("Array Size")
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(0);
    Ok(d)
}

/// Rows of an LVM JSON report (`lvm pvs --reportformat json`), each a map of field → value.
pub fn parse_lvm_report(text: &str, kind: &str) -> Result<Vec<BTreeMap<String, String>>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("lvm printed invalid JSON: {e}"))?;
    let mut rows = Vec::new();
    for r in v.get("report").and_then(Value::as_array).into_iter().flatten() {
        // `lvs --segments` reports its rows under "seg".
        let rows_of = r.get(kind).or_else(|| if kind == "lv" { r.get("seg") } else { None });
        for row in rows_of.and_then(Value::as_array).into_iter().flatten() {
            let mut m = BTreeMap::new();
            if let Some(o) = row.as_object() {
                for (k, v) in o {
                    if let Some(s) = v.as_str() {
                        m.insert(k.clone(), s.trim().to_string());
                    }
                }
            }
            rows.push(m);
        }
    }
    Ok(rows)
}

/// An LVM segment from an `lvs --segments` row.
pub fn lv_segment(row: &BTreeMap<String, String>) -> LvSegment {
    let num = |k: &str| row.get(k).and_then(|v| v.parse::<u64>().ok());
    LvSegment {
        segtype: row.get("segtype").cloned().unwrap_or_default(),
        stripes: num("stripes").unwrap_or(1) as u32,
        stripe_size: num("stripe_size").filter(|s| *s > 0),
        size: num("seg_size").unwrap_or(0),
        devices: row.get("devices").filter(|d| !d.is_empty()).cloned(),
    }
}

/// Parse `cryptsetup luksDump DEVICE` (LUKS1 or LUKS2) into a [`Luks`] without
/// node ids; never reads or records key material.
pub fn parse_luks_dump(text: &str, device: &str) -> Result<Luks, String> {
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim();
            if !k.is_empty() && !k.chars().all(|c| c.is_ascii_digit()) {
                kv.entry(k.to_string()).or_insert_with(|| v.trim().to_string());
            }
        }
    }
    let version: u32 = kv.get("Version").and_then(|v| v.parse().ok()).ok_or("luksDump printed no `Version`")?;
    let uuid = kv.get("UUID").cloned().ok_or("luksDump printed no `UUID`")?;
    let bits = |v: Option<&String>| v.and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok());
    let (cipher, key_size, hash, pbkdf, sector_size) = if version == 1 {
        let cipher = format!(
            "{}-{}",
            kv.get("Cipher name").cloned().unwrap_or_default(),
            kv.get("Cipher mode").cloned().unwrap_or_default()
        );
        (cipher, bits(kv.get("MK bits")), kv.get("Hash spec").cloned(), Some("pbkdf2".to_string()), None)
    } else {
        (
            kv.get("cipher").cloned().unwrap_or_default(),
            bits(kv.get("Key")),
            kv.get("Hash").cloned(),
            kv.get("PBKDF").cloned(),
            bits(kv.get("sector")),
        )
    };
    let label = kv.get("Label").filter(|l| l.as_str() != "(no label)" && !l.is_empty()).cloned();
    Ok(Luks {
        device: device.to_string(),
        id: None,
        name: None,
        version,
        uuid,
        label,
        cipher,
        key_size: key_size.ok_or("luksDump printed no key size")?,
        hash,
        pbkdf,
        sector_size,
        depends_on: vec![device.to_string()],
    })
}
