//! Which new disk takes the place of which old one.
//!
//! An explicit mapping always wins. The other old disks are mapped all at
//! once, as one assignment: every complete assignment of old disks to free
//! disks large enough for them is scored, and the best one is taken. In
//! order of weight: the same disks come back (serial or WWN), sizes kept,
//! names kept, the sizes' order among the disks kept, the disks' order
//! kept, the transport kept, then the closest fit (a larger disk before a
//! smaller one, the least size wasted). Only two different assignments that
//! score the same are ambiguous, and the person says which with `--map`.
//! Beyond [`EXHAUSTIVE_DISKS`] disks (or too many choices) the disks are
//! mapped one at a time instead, and their reasons say so. Every mapped
//! disk carries why it was chosen ([`DiskMap::how`]), which the plan prints.
//!
//! Disks that are in use (mounted, swap, held by RAID/LVM/LUKS), that hold
//! the rescue medium or the backup, or that are read-only are never
//! candidates.

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
    /// Transport (`sata`, `nvme`, `virtio`, `usb`), when known.
    pub transport: Option<String>,
    /// Serial number, when known.
    pub serial: Option<String>,
    /// World Wide Name, when known.
    pub wwn: Option<String>,
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
        let kname = n.path.trim_start_matches("/dev/");
        let transport = n.tran.clone().or_else(|| {
            let inferred = if kname.starts_with("vd") {
                Some("virtio")
            } else if kname.starts_with("nvme") {
                Some("nvme")
            } else {
                None
            };
            inferred.map(String::from)
        });
        out.push(Present {
            path: n.path.clone(),
            size: n.size,
            sector: n.log_sec.max(512),
            description,
            refused,
            transport,
            serial: n.serial.clone(),
            wwn: n.wwn.clone(),
        });
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

/// Up to this many old disks (mapped automatically), every complete
/// assignment is weighed; beyond it, the disks are mapped one at a time.
pub const EXHAUSTIVE_DISKS: usize = 8;

/// Beyond this many complete assignments to weigh, the disks are mapped one at a time.
const MAX_ASSIGNMENTS: u64 = 2_000_000;

/// How good a complete assignment is; compared field by field, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Score {
    /// Old disks that came back (the same serial or WWN).
    same_disk: u32,
    /// Old disks mapped onto a disk of their size.
    same_size: u32,
    /// Old disks mapped onto a disk of their name.
    same_name: u32,
    /// Pairs of old disks whose sizes compare as their new disks' sizes do.
    size_order: u32,
    /// Pairs of old disks whose new disks come in the same order.
    order: u32,
    /// Old disks mapped onto a disk of their transport.
    same_transport: u32,
    /// Old disks mapped onto a disk at least as large.
    onto_larger: u32,
    /// The bytes by which the new disks differ from the old ones (less is better).
    misfit: std::cmp::Reverse<u64>,
}

/// What makes one pair good, on its own.
fn pair_score(d: &Disk, p: &Present) -> Score {
    let same = |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(x), Some(y)) if !x.is_empty() && x == y);
    Score {
        same_disk: u32::from(same(&d.serial, &p.serial) || same(&d.wwn, &p.wwn)),
        same_size: u32::from(p.size == d.size),
        same_name: u32::from(p.path == d.id),
        same_transport: u32::from(same(&d.transport, &p.transport)),
        onto_larger: u32::from(p.size >= d.size),
        misfit: std::cmp::Reverse(p.size.abs_diff(d.size)),
        ..Score::default()
    }
}

/// Device paths in the kernel's order (`sdb` before `sdaa`, `nvme2n1` before `nvme10n1`).
fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    (a.len(), a).cmp(&(b.len(), b))
}

/// The score of mapping `old[i]` onto `free[assign[i]]` for every `i`.
fn score(old: &[&Disk], free: &[&Present], assign: &[usize]) -> Score {
    let mut s = Score::default();
    for (i, &j) in assign.iter().enumerate() {
        let p = pair_score(old[i], free[j]);
        s.same_disk += p.same_disk;
        s.same_size += p.same_size;
        s.same_name += p.same_name;
        s.same_transport += p.same_transport;
        s.onto_larger += p.onto_larger;
        s.misfit.0 = s.misfit.0.saturating_add(p.misfit.0);
        for (k, &l) in assign.iter().enumerate().skip(i + 1) {
            s.size_order += u32::from(old[i].size.cmp(&old[k].size) == free[j].size.cmp(&free[l].size));
            s.order += u32::from(path_order(&old[i].id, &old[k].id) == path_order(&free[j].path, &free[l].path));
        }
    }
    s
}

/// Why one pair was chosen, from what it keeps on its own.
fn pair_reason(d: &Disk, p: &Present) -> String {
    let larger = if p.size >= d.size { "larger" } else { "smaller" };
    let same_disk = pair_score(d, p).same_disk > 0;
    match (same_disk, p.size == d.size, p.path == d.id) {
        (true, _, _) => match (&d.serial, &p.serial) {
            (Some(s), Some(t)) if s == t => format!("the same disk (serial {s})"),
            _ => format!("the same disk (WWN {})", d.wwn.as_deref().unwrap_or_default()),
        },
        (false, true, true) => "same name and size".into(),
        (false, true, false) => "same size".into(),
        (false, false, true) => format!("same name, {larger} ({} for {})", human(p.size), human(d.size)),
        (false, false, false) => format!("best fit ({larger})"),
    }
}

/// What decided between the best assignment and the next best, when it was
/// not what each pair keeps on its own.
fn decided_by(best: Score, next: Score) -> Option<&'static str> {
    if (best.same_disk, best.same_size, best.same_name) != (next.same_disk, next.same_size, next.same_name) {
        None
    } else if best.size_order != next.size_order {
        Some("keeps the sizes' order among the disks")
    } else if best.order != next.order {
        Some("keeps the disks' order")
    } else if best.same_transport != next.same_transport {
        Some("same transport")
    } else {
        None
    }
}

/// The best complete assignments found: the best score, every assignment
/// that has it (a few), and the next best score.
#[derive(Default)]
struct Search {
    best: Option<(Score, Vec<Vec<usize>>)>,
    next: Option<Score>,
}

impl Search {
    fn offer(&mut self, s: Score, assign: &[usize]) {
        match &mut self.best {
            Some((b, tied)) if s == *b => {
                if tied.len() < 16 {
                    tied.push(assign.to_vec());
                }
            }
            Some((b, _)) if s > *b => {
                self.next = Some(*b);
                self.best = Some((s, vec![assign.to_vec()]));
            }
            Some(_) => {
                if self.next.is_none_or(|n| s > n) {
                    self.next = Some(s);
                }
            }
            None => self.best = Some((s, vec![assign.to_vec()])),
        }
    }
}

/// Try every complete assignment of `old` onto distinct disks among `fits`
/// (the disks each old disk fits on, as indexes into `free`).
fn search(old: &[&Disk], free: &[&Present], fits: &[Vec<usize>], assign: &mut Vec<usize>, found: &mut Search) {
    let i = assign.len();
    if i == old.len() {
        found.offer(score(old, free, assign), assign);
        return;
    }
    for &j in &fits[i] {
        if !assign.contains(&j) {
            assign.push(j);
            search(old, free, fits, assign, found);
            assign.pop();
        }
    }
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
    let auto: Vec<&Disk> = old.iter().copied().filter(|d| !explicit.contains_key(&d.id)).collect();
    if auto.is_empty() {
        return Ok(out);
    }
    let mut free: Vec<&Present> = present.iter().filter(|p| p.refused.is_none() && !taken.contains(&p.path)).collect();
    free.sort_by(|a, b| path_order(&a.path, &b.path));
    let fits: Vec<Vec<usize>> =
        auto.iter().map(|d| (0..free.len()).filter(|&j| free[j].size >= needed(d)).collect()).collect();
    for (d, f) in auto.iter().zip(&fits) {
        if f.is_empty() {
            return Err(no_fit(d, &free, present, needed(d)));
        }
    }
    // At most this many complete assignments: the i-th old disk has its fits, less the i disks taken.
    let choices = fits
        .iter()
        .enumerate()
        .try_fold(1u64, |acc, (i, f)| acc.checked_mul(f.len().min(free.len().saturating_sub(i)) as u64))
        .unwrap_or(u64::MAX);
    if auto.len() > EXHAUSTIVE_DISKS || choices > MAX_ASSIGNMENTS {
        out.extend(map_one_by_one(&auto, &free, &fits)?);
        return Ok(out);
    }
    let mut found = Search::default();
    search(&auto, &free, &fits, &mut Vec::new(), &mut found);
    let Some((best, tied)) = found.best else {
        return Err(no_assignment(&auto, &free, &fits, needed));
    };
    if tied.len() > 1 {
        // The first old disk the equally good assignments disagree on, and the disks they give it.
        let i = (0..auto.len()).find(|&i| tied.iter().any(|t| t[i] != tied[0][i])).unwrap_or(0);
        let mut candidates: Vec<String> = tied.iter().map(|t| free[t[i]].path.clone()).collect();
        candidates.sort_by(|a, b| path_order(a, b));
        candidates.dedup();
        return Err(RecoveryError::Ambiguous { disk: auto[i].id.clone(), candidates });
    }
    let assign = &tied[0];
    // What the next best assignment lost on, when no pair's own merits
    // explain the difference; said for each disk that had an equal alternative.
    let decided = found.next.and_then(|n| decided_by(best, n));
    let merits = |d: &Disk, p: &Present| {
        let s = pair_score(d, p);
        (s.same_disk, s.same_size, s.same_name)
    };
    for (i, &j) in assign.iter().enumerate() {
        let (d, p) = (auto[i], free[j]);
        let mut how = pair_reason(d, p);
        if let Some(why) = decided {
            if fits[i].iter().any(|&k| k != j && merits(d, free[k]) == merits(d, p)) {
                how = format!("{how}; {why}");
            }
        }
        out.push(DiskMap { old: d.id.clone(), new: p.path.clone(), new_size: p.size, how });
    }
    Ok(out)
}

/// Too many disks or choices to weigh every assignment: map each old disk in
/// turn onto the free disk that suits it best on its own.
fn map_one_by_one(old: &[&Disk], free: &[&Present], fits: &[Vec<usize>]) -> Result<Vec<DiskMap>, RecoveryError> {
    let mut taken: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    for (d, f) in old.iter().zip(fits) {
        let mut open: Vec<(Score, usize)> =
            f.iter().filter(|j| !taken.contains(j)).map(|&j| (pair_score(d, free[j]), j)).collect();
        open.sort_by_key(|o| std::cmp::Reverse(o.0));
        let Some(&(top, j)) = open.first() else {
            return Err(RecoveryError::NoDisk {
                disk: d.id.clone(),
                refused: vec![format!("every disk large enough is taken by another old disk ({} disks)", old.len())],
            });
        };
        let ties: Vec<String> = open.iter().filter(|(s, _)| *s == top).map(|(_, j)| free[*j].path.clone()).collect();
        if ties.len() > 1 {
            return Err(RecoveryError::Ambiguous { disk: d.id.clone(), candidates: ties });
        }
        taken.push(j);
        let how = format!(
            "{}; chosen disk by disk ({} disks are too many to weigh every assignment)",
            pair_reason(d, free[j]),
            old.len()
        );
        out.push(DiskMap { old: d.id.clone(), new: free[j].path.clone(), new_size: free[j].size, how });
    }
    Ok(out)
}

/// Why no free disk holds `d`.
fn no_fit(d: &Disk, free: &[&Present], present: &[Present], need: u64) -> RecoveryError {
    match free.iter().map(|p| p.size).max() {
        Some(b) => RecoveryError::TooSmall {
            disk: d.id.clone(),
            size: b,
            why: format!("the largest free disk is {} but at least {} is needed", human(b), human(need)),
        },
        None => RecoveryError::NoDisk {
            disk: d.id.clone(),
            refused: present.iter().filter_map(|p| p.refused.as_ref().map(|r| format!("{}: {r}", p.path))).collect(),
        },
    }
}

/// Why every old disk fits on some free disk but not all of them at once:
/// names the old disk with the fewest disks to go on.
fn no_assignment(
    old: &[&Disk],
    free: &[&Present],
    fits: &[Vec<usize>],
    needed: &dyn Fn(&Disk) -> u64,
) -> RecoveryError {
    let i = (0..old.len()).min_by_key(|&i| fits[i].len()).unwrap_or(0);
    let d = old[i];
    let on: Vec<&str> = fits[i].iter().map(|&j| free[j].path.as_str()).collect();
    RecoveryError::TooSmall {
        disk: d.id.clone(),
        size: fits[i].iter().map(|&j| free[j].size).max().unwrap_or(0),
        why: format!(
            "it needs at least {} and the disks that large ({}) are needed by the other old disks too: add a disk, or say with --map which old disk goes where",
            human(needed(d)),
            on.join(", ")
        ),
    }
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
        Present {
            path: path.into(),
            size,
            sector: 512,
            description: String::new(),
            refused: refused.map(Into::into),
            transport: None,
            serial: None,
            wwn: None,
        }
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

    fn auto(old: &[&Disk], present: &[Present]) -> Result<Vec<(String, String, String)>, RecoveryError> {
        Ok(map_disks(old, present, &BTreeMap::new(), &|_| G)?.into_iter().map(|m| (m.old, m.new, m.how)).collect())
    }

    fn pairs(m: &[(String, String, String)]) -> Vec<(&str, &str)> {
        m.iter().map(|(o, n, _)| (o.as_str(), n.as_str())).collect()
    }

    #[test]
    fn a_raid1_pair_onto_two_smaller_or_two_larger_disks_of_the_same_names_needs_no_question() {
        let (a, b) = (old("/dev/vda", 10 * G), old("/dev/vdb", 10 * G));
        for size in [8 * G, 12 * G] {
            // Listed in another order than the old disks, as lsblk may.
            let p = vec![new("/dev/vdb", size, None), new("/dev/vda", size, None)];
            let m = auto(&[&a, &b], &p).expect("one best assignment");
            assert_eq!(pairs(&m), [("/dev/vda", "/dev/vda"), ("/dev/vdb", "/dev/vdb")]);
            let word = if size < 10 * G { "smaller" } else { "larger" };
            assert!(m.iter().all(|(_, _, how)| how.starts_with(&format!("same name, {word}"))), "{m:?}");
        }
    }

    #[test]
    fn a_raid1_pair_onto_two_disks_of_other_names_keeps_the_order() {
        let (a, b) = (old("/dev/sda", 10 * G), old("/dev/sdb", 10 * G));
        for size in [8 * G, 10 * G, 12 * G] {
            let p = vec![new("/dev/vdb", size, None), new("/dev/vda", size, None)];
            let m = auto(&[&a, &b], &p).expect("one best assignment");
            assert_eq!(pairs(&m), [("/dev/sda", "/dev/vda"), ("/dev/sdb", "/dev/vdb")]);
            assert!(m.iter().all(|(_, _, how)| how.ends_with("; keeps the disks' order")), "{m:?}");
        }
        let m = auto(&[&a, &b], &[new("/dev/vda", 10 * G, None), new("/dev/vdb", 10 * G, None)]).unwrap();
        assert_eq!(m[0].2, "same size; keeps the disks' order");
    }

    #[test]
    fn three_disks_of_one_size_map_in_order_and_two_onto_three_equal_disks_is_ambiguous() {
        let olds = [old("/dev/sda", 10 * G), old("/dev/sdb", 10 * G), old("/dev/sdc", 10 * G)];
        let refs: Vec<&Disk> = olds.iter().collect();
        let p = vec![new("/dev/vdc", 10 * G, None), new("/dev/vda", 10 * G, None), new("/dev/vdb", 10 * G, None)];
        let m = auto(&refs, &p).expect("in order");
        assert_eq!(pairs(&m), [("/dev/sda", "/dev/vda"), ("/dev/sdb", "/dev/vdb"), ("/dev/sdc", "/dev/vdc")]);
        // Two old disks, three equal new ones: which two is a choice only the person can make.
        let e = auto(&refs[..2], &p).expect_err("ambiguous");
        let msg = e.to_string();
        assert!(matches!(e, RecoveryError::Ambiguous { .. }), "{msg}");
        assert!(msg.contains("/dev/sda") && msg.contains("/dev/vda, /dev/vdb") && msg.contains("--map"), "{msg}");
    }

    #[test]
    fn the_same_disks_coming_back_win_over_names_and_sizes_stay_in_order() {
        let mut a = old("/dev/sda", 10 * G);
        let mut b = old("/dev/sdb", 10 * G);
        a.serial = Some("S1".into());
        b.wwn = Some("0x5000c500".into());
        let mut x = new("/dev/sda", 10 * G, None);
        x.serial = Some("S2".into());
        let mut y = new("/dev/sdb", 10 * G, None);
        y.serial = Some("S1".into());
        x.wwn = Some("0x5000c500".into());
        let m = auto(&[&a, &b], &[x, y]).unwrap();
        assert_eq!(pairs(&m), [("/dev/sda", "/dev/sdb"), ("/dev/sdb", "/dev/sda")]);
        assert_eq!((m[0].2.as_str(), m[1].2.as_str()), ("the same disk (serial S1)", "the same disk (WWN 0x5000c500)"));
        // A small and a large disk onto two new disks of other sizes and names: the small one stays the small one.
        let (s, l) = (old("/dev/sda", 10 * G), old("/dev/sdb", 40 * G));
        let p = vec![new("/dev/vda", 50 * G, None), new("/dev/vdb", 20 * G, None)];
        let m = auto(&[&s, &l], &p).unwrap();
        assert_eq!(pairs(&m), [("/dev/sda", "/dev/vdb"), ("/dev/sdb", "/dev/vda")]);
        assert!(m[0].2.contains("keeps the sizes' order"), "{m:?}");
    }

    #[test]
    fn disks_refused_are_never_chosen_and_a_pair_that_cannot_fit_at_once_says_so() {
        let (a, b) = (old("/dev/vda", 10 * G), old("/dev/vdb", 10 * G));
        let p = vec![
            new("/dev/vda", 10 * G, Some("holds the backup")),
            new("/dev/vdb", 10 * G, None),
            new("/dev/vdc", 10 * G, None),
        ];
        let m = auto(&[&a, &b], &p).unwrap();
        assert_eq!(pairs(&m), [("/dev/vda", "/dev/vdc"), ("/dev/vdb", "/dev/vdb")]);
        // Each fits on vdc alone, not both at once.
        let p = vec![new("/dev/vdc", 10 * G, None), new("/dev/vdd", G / 2, None)];
        let e = auto(&[&a, &b], &p).expect_err("one disk for two").to_string();
        assert!(e.contains("needed by the other old disks") && e.contains("/dev/vdc") && e.contains("--map"), "{e}");
    }

    #[test]
    fn beyond_eight_disks_they_are_mapped_one_by_one_and_say_so() {
        let names: Vec<String> = (b'a'..=b'i').map(|c| format!("/dev/sd{}", c as char)).collect();
        let olds: Vec<Disk> = names.iter().map(|n| old(n, 10 * G)).collect();
        let refs: Vec<&Disk> = olds.iter().collect();
        let p: Vec<Present> = names.iter().rev().map(|n| new(n, 10 * G, None)).collect();
        let m = auto(&refs, &p).expect("same names");
        assert!(m.iter().all(|(o, n, _)| o == n), "{m:?}");
        assert!(m[0].2.starts_with("same name and size; chosen disk by disk (9 disks"), "{m:?}");
    }

    #[test]
    fn eight_disks_are_weighed_as_one_assignment() {
        let names: Vec<String> = (b'a'..=b'h').map(|c| format!("/dev/sd{}", c as char)).collect();
        let olds: Vec<Disk> = names.iter().map(|n| old(n, 10 * G)).collect();
        let refs: Vec<&Disk> = olds.iter().collect();
        let p: Vec<Present> =
            (b'a'..=b'h').rev().map(|c| new(&format!("/dev/vd{}", c as char), 12 * G, None)).collect();
        let m = auto(&refs, &p).expect("in order");
        assert!(
            m.iter().all(|(o, n, how)| o[7..] == n[7..] && how == "best fit (larger); keeps the disks' order"),
            "{m:?}"
        );
    }

    #[test]
    fn an_explicit_mapping_takes_its_disk_and_the_rest_are_assigned_around_it() {
        let (a, b) = (old("/dev/sda", 10 * G), old("/dev/sdb", 10 * G));
        let p = vec![new("/dev/vda", 10 * G, None), new("/dev/vdb", 10 * G, None)];
        let explicit = parse_pairs(&["/dev/sda=/dev/vdb".into()]).unwrap();
        let m = map_disks(&[&a, &b], &p, &explicit, &|_| G).unwrap();
        let got: Vec<(&str, &str, &str)> = m.iter().map(|m| (m.old.as_str(), m.new.as_str(), m.how.as_str())).collect();
        assert_eq!(got, [("/dev/sda", "/dev/vdb", "mapped explicitly"), ("/dev/sdb", "/dev/vda", "same size")]);
    }
}
