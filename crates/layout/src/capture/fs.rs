//! Parsers for filesystem creation parameters: dumpe2fs, xfs_info, btrfs, the FAT boot sector.

use crate::model::{FsParams, Subvolume};
use std::collections::BTreeMap;

/// A size as dumpe2fs prints it (`16M`, `4096k`, `1024`) in bytes.
fn size_with_unit(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1024),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok().map(|n| n * mult)
}

/// Parse `dumpe2fs -h DEVICE`.
pub fn parse_dumpe2fs(text: &str) -> Result<FsParams, String> {
    let mut kv: BTreeMap<&str, &str> = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            kv.entry(k.trim()).or_insert(v.trim());
        }
    }
    let num = |k: &str| kv.get(k).and_then(|v| v.parse::<u64>().ok());
    let features: Vec<String> = kv
        .get("Filesystem features")
        .ok_or("dumpe2fs printed no `Filesystem features`")?
        .split_whitespace()
        .filter(|f| *f != "(none)")
        .map(String::from)
        .collect();
    Ok(FsParams {
        block_size: num("Block size"),
        inode_size: num("Inode size"),
        inode_count: num("Inode count"),
        block_count: num("Block count"),
        reserved_blocks: num("Reserved block count"),
        features,
        log_size: kv.get("Journal size").and_then(|v| size_with_unit(v)),
        ..FsParams::default()
    })
}

/// The UUID and label dumpe2fs reports.
pub fn dumpe2fs_identity(text: &str) -> (Option<String>, Option<String>) {
    let mut uuid = None;
    let mut label = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Filesystem UUID:") {
            uuid = Some(v.trim().to_string());
        }
        if let Some(v) = line.strip_prefix("Filesystem volume name:") {
            let v = v.trim();
            if v != "<none>" && !v.is_empty() {
                label = Some(v.to_string());
            }
        }
    }
    (uuid, label)
}

/// Parse `xfs_info` / `xfs_db -r -c info` output.
pub fn parse_xfs_info(text: &str) -> Result<FsParams, String> {
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let rest = if line.starts_with(|c: char| c.is_ascii_alphabetic()) {
            let (name, rest) = line.split_once('=').unwrap_or((line, ""));
            section = name.trim().to_string();
            rest
        } else {
            line.trim_start().strip_prefix('=').unwrap_or(line)
        };
        if section == "log" && rest.trim_start().starts_with("internal") {
            kv.insert("log.internal".into(), "1".into());
        }
        for tok in rest.split(|c: char| c.is_whitespace() || c == ',') {
            if let Some((k, v)) = tok.split_once('=') {
                if !k.is_empty() {
                    kv.entry(format!("{section}.{k}")).or_insert_with(|| v.to_string());
                }
            }
        }
    }
    let num = |k: &str| kv.get(k).and_then(|v| v.parse::<u64>().ok());
    let block_size = num("data.bsize").ok_or("xfs_info printed no data block size")?;
    let mut features = Vec::new();
    for f in ["crc", "finobt", "sparse", "rmapbt", "reflink", "bigtime", "inobtcount", "nrext64"] {
        if let Some(v) = kv.get(&format!("meta-data.{f}")) {
            features.push(format!("{f}={v}"));
        }
    }
    if let Some(v) = kv.get("naming.ftype") {
        features.push(format!("ftype={v}"));
    }
    if let Some(v) = kv.get("log.lazy-count") {
        features.push(format!("lazy-count={v}"));
    }
    Ok(FsParams {
        block_size: Some(block_size),
        block_count: num("data.blocks"),
        inode_size: num("meta-data.isize"),
        ag_count: num("meta-data.agcount"),
        sector_size: num("meta-data.sectsz"),
        sunit: num("data.sunit"),
        swidth: num("data.swidth"),
        log_size: match (num("log.bsize"), num("log.blocks")) {
            (Some(b), Some(n)) if kv.contains_key("log.internal") => Some(b * n),
            _ => None,
        },
        features,
        ..FsParams::default()
    })
}

/// Parse `btrfs inspect-internal dump-super DEVICE` into node size, sector
/// size, device count and incompat feature names.
pub fn parse_btrfs_super(text: &str) -> FsParams {
    let mut p = FsParams::default();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let mut f = line.split_whitespace();
        let (Some(k), Some(v)) = (f.next(), f.next()) else { continue };
        match k {
            "nodesize" => p.node_size = v.parse().ok(),
            "sectorsize" => p.sector_size = v.parse().ok(),
            "num_devices" => p.num_devices = v.parse().ok(),
            "incompat_flags" => {
                // The names follow on lines like "( MIXED_BACKREF |" ... "NO_HOLES )".
                while let Some(next) = lines.peek() {
                    let t = next.trim();
                    if !(t.starts_with('(') || t.starts_with('|') || t.ends_with(')') || t.ends_with('|')) {
                        break;
                    }
                    for name in t.split(|c: char| c == '(' || c == ')' || c == '|' || c.is_whitespace()) {
                        if !name.is_empty() {
                            p.features.push(name.to_ascii_lowercase());
                        }
                    }
                    let end = t.ends_with(')');
                    lines.next();
                    if end {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    p
}

/// Data and metadata profiles from `btrfs filesystem df -b MOUNTPOINT`.
pub fn parse_btrfs_df(text: &str) -> (Option<String>, Option<String>) {
    let mut data = None;
    let mut meta = None;
    for line in text.lines() {
        let Some((head, _)) = line.split_once(':') else { continue };
        let Some((kind, profile)) = head.split_once(',') else { continue };
        let profile = Some(profile.trim().to_ascii_lowercase());
        match kind.trim() {
            "Data" => data = profile,
            "Metadata" => meta = profile,
            _ => {}
        }
    }
    (data, meta)
}

/// Subvolumes from `btrfs subvolume list -p MOUNTPOINT`.
pub fn parse_btrfs_subvolumes(text: &str) -> Vec<Subvolume> {
    let mut out = Vec::new();
    for line in text.lines() {
        // ID 256 gen 8 parent 5 top level 5 path @home
        let Some((head, path)) = line.split_once(" path ") else { continue };
        let f: Vec<&str> = head.split_whitespace().collect();
        let field = |name: &str| {
            f.iter().position(|x| *x == name).and_then(|i| f.get(i + 1)).and_then(|v| v.parse::<u64>().ok())
        };
        if let Some(id) = field("ID") {
            out.push(Subvolume {
                id,
                path: path.trim().trim_start_matches("<FS_TREE>/").to_string(),
                parent: field("parent").unwrap_or(5),
                read_only: false,
            });
        }
    }
    out
}

/// The default subvolume id from `btrfs subvolume get-default MOUNTPOINT`.
pub fn parse_btrfs_default(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1).and_then(|v| v.parse().ok())
}

/// Sector size and cluster size (bytes) from a FAT boot sector.
pub fn parse_fat_boot_sector(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() < 512 || b[510] != 0x55 || b[511] != 0xAA {
        return None;
    }
    let sector = u64::from(u16::from_le_bytes([b[11], b[12]]));
    let per_cluster = u64::from(b[13]);
    (sector.is_power_of_two() && per_cluster > 0).then_some((sector, sector * per_cluster))
}
