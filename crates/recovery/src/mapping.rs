//! Which new disk takes the place of which old one.
//!
//! An explicit mapping always wins. Otherwise, for each old disk in turn:
//! the disk with the same name and size; else a disk of the same size; else
//! the best fit (the smallest disk that is at least as large as the old
//! one, else the largest that still holds the data). Disks that are in use
//! (mounted, swap, held by RAID/LVM/LUKS), that hold the rescue medium or
//! the backup, or that are read-only are never candidates.

use crate::RecoveryError;
use lifeboat_host::{Host, SystemHost};
use lifeboat_layout::capture::lsblk::Node;
use lifeboat_layout::model::{Disk, Layout};
use serde::Serialize;
use std::collections::BTreeMap;

/// A disk present now.
#[derive(Debug, Clone, Serialize)]
pub struct Present {
    /// Device path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Logical sector size.
    pub sector: u32,
    /// Model and serial, for the plan.
    pub description: String,
    /// Why it must not be written, if so.
    pub refused: Option<String>,
}

/// One old disk and the new disk that replaces it.
#[derive(Debug, Clone, Serialize)]
pub struct DiskMap {
    /// The disk in the layout.
    pub old: String,
    /// The disk it is recreated on.
    pub new: String,
    /// Size of the new disk.
    pub new_size: u64,
    /// Why this disk was chosen.
    pub how: String,
}

/// The disks present, from the block device list, with the reasons some
/// must not be written. `protected` names devices (whole disks or
/// partitions) that hold the rescue medium or the backup, with the reason.
pub fn present(nodes: &[Node], protected: &[(String, String)]) -> Vec<Present> {
    present_on(&SystemHost::new(), nodes, protected)
}

/// [`present`], with what is mounted, swap or held read from `host`.
pub fn present_on(host: &dyn Host, nodes: &[Node], protected: &[(String, String)]) -> Vec<Present> {
    let mut out = Vec::new();
    for n in nodes.iter().filter(|n| matches!(n.kind.as_str(), "disk" | "loop") && n.size > 0) {
        let family: Vec<&Node> = nodes.iter().filter(|c| c.path == n.path || c.parents.contains(&n.path)).collect();
        let mut refused = None;
        if n.ro {
            refused = Some("read-only".to_string());
        }
        for (dev, why) in protected {
            if family.iter().any(|c| &c.path == dev) {
                refused = Some(why.clone());
            }
        }
        if family.iter().any(|c| c.fstype.as_deref() == Some("iso9660")) {
            refused = Some("holds an ISO 9660 medium (a rescue or installation medium)".into());
        }
        if refused.is_none() {
            refused = lifeboat_layout::safety::in_use_on(host, std::path::Path::new(&n.path));
        }
        let description = [n.model.clone(), n.serial.clone().map(|s| format!("serial {s}"))]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        out.push(Present { path: n.path.clone(), size: n.size, sector: n.log_sec.max(512), description, refused });
    }
    out
}

/// Parse `OLD=NEW` pairs.
pub fn parse_pairs(pairs: &[String]) -> Result<BTreeMap<String, String>, RecoveryError> {
    let mut m = BTreeMap::new();
    for p in pairs {
        let (a, b) = p
            .split_once('=')
            .ok_or_else(|| RecoveryError::Mapping(format!("`{p}` is not OLD=NEW (for example /dev/sda=/dev/vda)")))?;
        m.insert(a.trim().to_string(), b.trim().to_string());
    }
    Ok(m)
}

/// The old disks that recovery recreates: every disk not excluded in the
/// layout, plus excluded ones that are mapped explicitly; with
/// `only_explicit` (cloning onto chosen disks), the mapped ones only.
pub fn wanted<'a>(layout: &'a Layout, explicit: &BTreeMap<String, String>, only_explicit: bool) -> Vec<&'a Disk> {
    layout.disks.iter().filter(|d| explicit.contains_key(&d.id) || (d.excluded.is_none() && !only_explicit)).collect()
}

/// Map every wanted old disk to a present disk. `needed` is the smallest
/// size each old disk can be recreated on.
pub fn map_disks(
    old: &[&Disk],
    present: &[Present],
    explicit: &BTreeMap<String, String>,
    needed: &dyn Fn(&Disk) -> u64,
) -> Result<Vec<DiskMap>, RecoveryError> {
    let mut out = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    for (o, n) in explicit {
        if !old.iter().any(|d| &d.id == o) {
            return Err(RecoveryError::Mapping(format!(
                "--map {o}={n}: {o} is not a disk in the layout (its disks: {})",
                old.iter().map(|d| d.id.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    // Explicit mappings first, so automatic ones cannot take their disks.
    for d in old {
        let Some(n) = explicit.get(&d.id) else { continue };
        let p = present.iter().find(|p| &p.path == n).ok_or_else(|| {
            RecoveryError::Mapping(format!("--map {}={n}: {n} is not a disk here (see `lsblk`)", d.id))
        })?;
        if let Some(why) = &p.refused {
            return Err(RecoveryError::Refused { disk: n.clone(), why: why.clone() });
        }
        if taken.contains(n) {
            return Err(RecoveryError::Mapping(format!("{n} is mapped to two old disks")));
        }
        if p.size < needed(d) {
            return Err(RecoveryError::TooSmall {
                disk: d.id.clone(),
                size: p.size,
                why: format!("{n} is {} but at least {} is needed", human(p.size), human(needed(d))),
            });
        }
        taken.push(n.clone());
        out.push(DiskMap { old: d.id.clone(), new: n.clone(), new_size: p.size, how: "mapped explicitly".into() });
    }
    for d in old.iter().filter(|d| !explicit.contains_key(&d.id)) {
        let free: Vec<&Present> = present.iter().filter(|p| p.refused.is_none() && !taken.contains(&p.path)).collect();
        let need = needed(d);
        let (choice, how) = if let Some(p) = free.iter().find(|p| p.path == d.id && p.size == d.size) {
            (*p, "same name and size".to_string())
        } else {
            let same: Vec<&&Present> = free.iter().filter(|p| p.size == d.size).collect();
            if same.len() == 1 {
                (*same[0], "same size".to_string())
            } else if same.len() > 1 && old.iter().filter(|x| x.size == d.size).count() < same.len() {
                return Err(RecoveryError::Ambiguous {
                    disk: d.id.clone(),
                    candidates: same.iter().map(|p| p.path.clone()).collect(),
                });
            } else if let Some(p) = same.first() {
                (**p, "same size".to_string())
            } else {
                // Best fit: the smallest disk at least as large as the old one,
                // else the largest that is big enough for the data.
                let mut larger: Vec<&&Present> = free.iter().filter(|p| p.size > d.size).collect();
                larger.sort_by_key(|p| p.size);
                let mut smaller: Vec<&&Present> = free.iter().filter(|p| p.size < d.size && p.size >= need).collect();
                smaller.sort_by_key(|p| std::cmp::Reverse(p.size));
                let pick = larger.first().or(smaller.first()).copied();
                let Some(p) = pick else {
                    let biggest = free.iter().map(|p| p.size).max();
                    return Err(match biggest {
                        Some(b) => RecoveryError::TooSmall {
                            disk: d.id.clone(),
                            size: b,
                            why: format!(
                                "the largest free disk is {} but at least {} is needed",
                                human(b),
                                human(need)
                            ),
                        },
                        None => RecoveryError::NoDisk {
                            disk: d.id.clone(),
                            refused: present
                                .iter()
                                .filter_map(|p| p.refused.as_ref().map(|r| format!("{}: {r}", p.path)))
                                .collect(),
                        },
                    });
                };
                let ties = free.iter().filter(|q| q.size == p.size).count();
                if ties > 1 {
                    return Err(RecoveryError::Ambiguous {
                        disk: d.id.clone(),
                        candidates: free.iter().filter(|q| q.size == p.size).map(|q| q.path.clone()).collect(),
                    });
                }
                let how = if p.size > d.size { "best fit (larger)" } else { "best fit (smaller)" };
                (*p, how.to_string())
            }
        };
        taken.push(choice.path.clone());
        out.push(DiskMap { old: d.id.clone(), new: choice.path.clone(), new_size: choice.size, how });
    }
    Ok(out)
}

fn human(b: u64) -> String {
    lifeboat_config::human(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn old(id: &str, size: u64) -> Disk {
        Disk::new(id, size)
    }

    fn new(path: &str, size: u64, refused: Option<&str>) -> Present {
        Present { path: path.into(), size, sector: 512, description: String::new(), refused: refused.map(Into::into) }
    }

    const G: u64 = 1 << 30;

    #[test]
    fn same_name_then_same_size_then_best_fit() {
        let a = old("/dev/sda", 10 * G);
        let b = old("/dev/sdb", 20 * G);
        let p = vec![new("/dev/vda", 20 * G, None), new("/dev/sda", 10 * G, None), new("/dev/vdb", 30 * G, None)];
        let m = map_disks(&[&a, &b], &p, &BTreeMap::new(), &|_| G).unwrap();
        assert_eq!((m[0].new.as_str(), m[0].how.as_str()), ("/dev/sda", "same name and size"));
        assert_eq!((m[1].new.as_str(), m[1].how.as_str()), ("/dev/vda", "same size"));
        let p = vec![new("/dev/nvme0n1", 15 * G, None), new("/dev/vdb", 40 * G, None)];
        let m = map_disks(&[&a], &p, &BTreeMap::new(), &|_| G).unwrap();
        assert_eq!(m[0].new, "/dev/nvme0n1");
        let p = vec![new("/dev/vdb", 8 * G, None)];
        let m = map_disks(&[&a], &p, &BTreeMap::new(), &|_| G).unwrap();
        assert_eq!((m[0].new.as_str(), m[0].how.as_str()), ("/dev/vdb", "best fit (smaller)"));
    }

    fn node(path: &str, kind: &str, size: u64, parents: &[&str]) -> Node {
        Node {
            path: path.into(),
            kname: path.trim_start_matches("/dev/").into(),
            kind: kind.into(),
            size,
            parents: parents.iter().map(|p| p.to_string()).collect(),
            ..Node::default()
        }
    }

    #[test]
    fn disks_in_use_holding_the_backup_or_a_medium_are_present_but_refused() {
        use lifeboat_host::{BlockDevice, DevNum, FixtureHost};
        let host = FixtureHost::new()
            .disk("sda", DevNum::new(8, 0), 10 * G)
            .partition("sda", "sda1", 1, DevNum::new(8, 1), 10 * G)
            .device(BlockDevice {
                name: "dm-0".into(),
                dev: DevNum::new(254, 0),
                dm_name: Some("vg0-root".into()),
                ..BlockDevice::default()
            })
            .holds("dm-0", "sda1")
            .mount(DevNum::new(254, 0), "/dev/mapper/vg0-root", "/", "ext4")
            .disk("sdb", DevNum::new(8, 16), 10 * G)
            .disk("sdc", DevNum::new(8, 32), 10 * G)
            .disk("sr0", DevNum::new(11, 0), G)
            .disk("vda", DevNum::new(254, 16), 20 * G);
        let mut medium = node("/dev/sr0", "disk", G, &[]);
        medium.fstype = Some("iso9660".into());
        let mut ro = node("/dev/sdc", "disk", 10 * G, &[]);
        ro.ro = true;
        let nodes = vec![
            node("/dev/sda", "disk", 10 * G, &[]),
            node("/dev/sda1", "part", 10 * G, &["/dev/sda"]),
            node("/dev/mapper/vg0-root", "lvm", 10 * G, &["/dev/sda1"]),
            node("/dev/sdb", "disk", 10 * G, &[]),
            ro,
            medium,
            node("/dev/vda", "disk", 20 * G, &[]),
        ];
        let protected = [("/dev/sdb".to_string(), "holds the backup /mnt/b".to_string())];
        let p = present_on(&host, &nodes, &protected);
        let why = |path: &str| p.iter().find(|d| d.path == path).and_then(|d| d.refused.clone());
        assert_eq!(p.len(), 5, "partitions and volumes are not disks: {p:?}");
        assert!(why("/dev/sda").is_some_and(|w| w.contains("in use by dm-0") && w.contains("running system")));
        assert_eq!(why("/dev/sdb").as_deref(), Some("holds the backup /mnt/b"));
        assert_eq!(why("/dev/sdc").as_deref(), Some("read-only"));
        assert!(why("/dev/sr0").is_some_and(|w| w.contains("ISO 9660")));
        assert_eq!(why("/dev/vda"), None);
        let a = old("/dev/sda", 10 * G);
        let m = map_disks(&[&a], &p, &BTreeMap::new(), &|_| G).unwrap();
        assert_eq!(m[0].new, "/dev/vda", "the only disk that may be written");
    }

    #[test]
    fn refused_and_too_small_and_ambiguous() {
        let a = old("/dev/sda", 10 * G);
        let p = vec![new("/dev/sda", 10 * G, Some("is mounted on /")), new("/dev/sdb", 2 * G, None)];
        let e = map_disks(&[&a], &p, &BTreeMap::new(), &|_| 5 * G).unwrap_err().to_string();
        assert!(e.contains("/dev/sda") && e.contains("largest free disk"), "{e}");
        let p = vec![new("/dev/vda", 12 * G, None), new("/dev/vdb", 12 * G, None)];
        let e = map_disks(&[&a], &p, &BTreeMap::new(), &|_| G).unwrap_err().to_string();
        assert!(e.contains("/dev/vda") && e.contains("/dev/vdb") && e.contains("--map"), "{e}");
        let explicit = parse_pairs(&["/dev/sda=/dev/vdb".into()]).unwrap();
        let m = map_disks(&[&a], &p, &explicit, &|_| G).unwrap();
        assert_eq!(m[0].new, "/dev/vdb");
        let explicit = parse_pairs(&["/dev/sda=/dev/sda".into()]).unwrap();
        let p = vec![new("/dev/sda", 10 * G, Some("holds the backup"))];
        let e = map_disks(&[&a], &p, &explicit, &|_| G).unwrap_err().to_string();
        assert!(e.contains("holds the backup"), "{e}");
    }
}
