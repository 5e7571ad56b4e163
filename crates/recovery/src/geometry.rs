//! Partition geometry on a disk of another size.
//!
//! On a disk of the same size every partition keeps its exact start and
//! size. On a larger disk the partitions that may change grow in proportion;
//! the ESP, BIOS boot, swap, `/boot` and configured partitions keep their
//! size. On a smaller disk they shrink in proportion, but only while the
//! data on each one still fits with headroom. Starts and sizes are aligned
//! to 1 MiB.

use crate::RecoveryError;
use lifeboat_layout::model::{Disk, Partition};

/// 1 MiB.
pub const MIB: u64 = 1 << 20;

/// GPT type GUIDs and MBR type bytes whose partitions keep their size.
const FIXED_TYPES: &[&str] = &[
    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", // EFI System
    "21686148-6449-6e6f-744e-656564454649", // BIOS boot
    "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", // Linux swap
    "bc13c2ff-59e6-4262-a352-b275fd6f7172", // Linux extended boot (/boot)
    "ef",
    "82",
    "ee",
];

/// MBR extended partition types: containers for logical partitions.
const EXTENDED_TYPES: &[&str] = &["5", "05", "f", "0f", "85"];

/// What the planner knows about one partition of the old disk.
#[derive(Debug, Clone)]
pub struct PartInfo {
    /// The partition as captured.
    pub part: Partition,
    /// Keeps its size whatever the disk.
    pub fixed: bool,
    /// Bytes that must fit in it (used data plus headroom), when it may shrink.
    pub needed: Option<u64>,
    /// What is on it, for messages (`/ (ext4)`, `swap`).
    pub what: String,
}

/// One partition as it will be made, in sectors of the new disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewPartition {
    /// Partition number (same as the old one).
    pub number: u32,
    /// First sector.
    pub start: u64,
    /// Length in sectors.
    pub size: u64,
}

/// Whether a partition of this type keeps its size.
pub fn fixed_type(part_type: &str) -> bool {
    FIXED_TYPES.contains(&part_type.to_ascii_lowercase().as_str())
}

/// Whether a partition of this type is an MBR extended partition.
pub fn extended_type(part_type: &str) -> bool {
    EXTENDED_TYPES.contains(&part_type.to_ascii_lowercase().as_str())
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

fn align_down(v: u64, a: u64) -> u64 {
    v / a * a
}

/// Last usable sector of a disk of `size` bytes with this table type.
pub fn last_usable(label: &str, size: u64, sector: u64) -> u64 {
    let sectors = size / sector;
    if label == "gpt" {
        // The backup GPT: header plus 16 KiB of entries.
        sectors.saturating_sub(1 + 16384 / sector + 1)
    } else {
        sectors.saturating_sub(1)
    }
}

/// Place the partitions of `old` on a disk of `new_size` bytes.
pub fn place(old: &Disk, parts: &[PartInfo], new_size: u64) -> Result<Vec<NewPartition>, RecoveryError> {
    let Some(table) = &old.table else { return Ok(Vec::new()) };
    let sector = u64::from(table.sector_size.max(512));
    if new_size == old.size {
        return Ok(parts
            .iter()
            .map(|p| NewPartition { number: p.part.number, start: p.part.start, size: p.part.size })
            .collect());
    }
    let align = MIB / sector;
    let mut sorted: Vec<&PartInfo> = parts.iter().collect();
    sorted.sort_by_key(|p| p.part.start);
    let old_last = table.last_lba.unwrap_or_else(|| last_usable(&table.label, old.size, sector));
    let new_last = last_usable(&table.label, new_size, sector);
    let first = sorted.first().map(|p| p.part.start).unwrap_or(align);

    // What does not scale: fixed partitions and the gaps between partitions
    // (at least the alignment, where logical partitions need room for their EBR).
    let mut fixed_total = 0u64;
    let mut gaps = 0u64;
    let mut prev_end = first;
    for p in sorted.iter().filter(|p| !extended_type(&p.part.part_type)) {
        gaps += align_up(p.part.start.saturating_sub(prev_end), align);
        if p.fixed {
            fixed_total += align_up(p.part.size, align);
        }
        prev_end = p.part.start + p.part.size;
    }
    let reaches_end = old_last.saturating_sub(prev_end) < 2 * align;
    // Free space the old disk left after its last partition scales with the
    // rest: a partition that did not fill its disk does not fill the new one.
    let tail_free = if reaches_end { 0 } else { (old_last + 1).saturating_sub(prev_end) };
    let room = (new_last + 1).saturating_sub(first + fixed_total + gaps);
    // Share the room among the growable partitions in proportion to their
    // old sizes; a partition whose share is less than its data needs gets
    // what it needs, and the others share the rest.
    let growable: Vec<&&PartInfo> = sorted.iter().filter(|p| !p.fixed && !extended_type(&p.part.part_type)).collect();
    let mut pinned: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    let mut shares: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    for _ in 0..=growable.len() {
        let pinned_total: u64 = pinned.values().sum();
        let free_room = room.saturating_sub(pinned_total);
        let free_old: u64 =
            growable.iter().filter(|p| !pinned.contains_key(&p.part.number)).map(|p| p.part.size).sum::<u64>()
                + tail_free;
        let free_old = free_old.max(1);
        shares.clear();
        let mut changed = false;
        for p in &growable {
            if let Some(v) = pinned.get(&p.part.number) {
                shares.insert(p.part.number, *v);
                continue;
            }
            let share = (u128::from(p.part.size) * u128::from(free_room) / u128::from(free_old)) as u64;
            let share = align_down(share, align).max(align);
            let need = p.needed.map(|n| align_up(n.div_ceil(sector), align)).unwrap_or(0);
            if share < need {
                pinned.insert(p.part.number, need);
                changed = true;
            }
            shares.insert(p.part.number, share);
        }
        if !changed {
            break;
        }
    }
    if shares.values().sum::<u64>() > room {
        let needs: Vec<String> = growable
            .iter()
            .filter_map(|p| p.needed.map(|n| format!("{} ({}) {}", p.part.id, p.what, lifeboat_config::human(n))))
            .collect();
        return Err(RecoveryError::TooSmall {
            disk: old.id.clone(),
            size: new_size,
            why: format!(
                "the data with headroom needs more than the {} left after the partitions that keep their size: {}",
                lifeboat_config::human(room * sector),
                needs.join(", ")
            ),
        });
    }

    let mut out = Vec::new();
    let mut cursor = first;
    let mut prev_end = first;
    let mut last_growable: Option<usize> = None;
    let mut extended: Option<usize> = None;
    for p in &sorted {
        if extended_type(&p.part.part_type) {
            // The container starts where it did relative to what comes before;
            // its size is set once its logical partitions are placed.
            let start = align_up(cursor + p.part.start.saturating_sub(prev_end), align).max(cursor);
            extended = Some(out.len());
            out.push(NewPartition { number: p.part.number, start, size: 0 });
            cursor = start;
            prev_end = p.part.start;
            continue;
        }
        let gap = align_up(p.part.start.saturating_sub(prev_end), align);
        let start = align_up(cursor + gap, align);
        let size = if p.fixed {
            p.part.size
        } else {
            last_growable = Some(out.len());
            shares.get(&p.part.number).copied().unwrap_or(align)
        };
        // A partition that keeps (or grows beyond) its old size held its data before.
        if let Some(need) = p.needed.filter(|_| size < p.part.size) {
            if size * sector < need {
                return Err(RecoveryError::TooSmall {
                    disk: old.id.clone(),
                    size: new_size,
                    why: format!(
                        "{} ({}) would get {} but holds {} of data (with headroom)",
                        p.part.id,
                        p.what,
                        lifeboat_config::human(size * sector),
                        lifeboat_config::human(need)
                    ),
                });
            }
        }
        out.push(NewPartition { number: p.part.number, start, size });
        cursor = start + size;
        prev_end = p.part.start + p.part.size;
    }
    // The last growable partition takes what rounding left when the old one
    // reached the end of the disk.
    if reaches_end {
        if let Some(i) = last_growable {
            if i + 1 == out.len() {
                let end = align_down(new_last + 1, align);
                if end > out[i].start {
                    out[i].size = end - out[i].start;
                }
            }
        }
    }
    if let Some(e) = extended {
        let end = out.iter().filter(|p| p.number >= 5).map(|p| p.start + p.size).max().unwrap_or(out[e].start + align);
        out[e].size = end - out[e].start;
    }
    let used_end = out.iter().map(|p| p.start + p.size).max().unwrap_or(0);
    if used_end > new_last + 1 {
        return Err(RecoveryError::TooSmall {
            disk: old.id.clone(),
            size: new_size,
            why: format!(
                "the partitions that keep their size and the alignment need {}",
                lifeboat_config::human(used_end * sector)
            ),
        });
    }
    Ok(out)
}

/// Smallest disk size (bytes) that holds these partitions: fixed ones at
/// their size, the others at their needed size (or their old size when
/// nothing is known about their content).
pub fn minimum_size(old: &Disk, parts: &[PartInfo]) -> u64 {
    let Some(table) = &old.table else { return 0 };
    let sector = u64::from(table.sector_size.max(512));
    let align_b = MIB;
    let first = parts.iter().map(|p| p.part.start).min().unwrap_or(MIB / sector) * sector;
    let mut total = first;
    for p in parts.iter().filter(|p| !extended_type(&p.part.part_type)) {
        let need = if p.fixed { p.part.size * sector } else { p.needed.unwrap_or(p.part.size * sector) };
        total += align_up(need, align_b) + align_b;
    }
    total + 2 * MIB
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_layout::model::PartitionTable;

    fn part(n: u32, start: u64, size: u64, t: &str) -> Partition {
        Partition {
            id: format!("/dev/sda{n}"),
            number: n,
            start,
            size,
            part_type: t.into(),
            type_name: None,
            uuid: None,
            name: None,
            attrs: None,
            bootable: false,
        }
    }

    fn disk(size: u64, label: &str, parts: Vec<Partition>) -> Disk {
        Disk {
            table: Some(PartitionTable {
                label: label.into(),
                id: None,
                sector_size: 512,
                first_lba: None,
                last_lba: None,
                partitions: parts,
            }),
            ..Disk::new("/dev/sda", size)
        }
    }

    const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
    const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    const GIB: u64 = 1 << 30;

    fn infos(d: &Disk, needed: Option<u64>) -> Vec<PartInfo> {
        d.table
            .as_ref()
            .map(|t| {
                t.partitions
                    .iter()
                    .map(|p| PartInfo {
                        part: p.clone(),
                        fixed: fixed_type(&p.part_type),
                        needed: if fixed_type(&p.part_type) { None } else { needed },
                        what: "test".into(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// ESP 100 MiB, root 1 GiB, data to the end of a 4 GiB disk.
    fn gpt4() -> Disk {
        disk(
            4 * GIB,
            "gpt",
            vec![
                part(1, 2048, 204800, ESP),
                part(2, 206848, 2 * 1024 * 1024, LINUX),
                part(3, 206848 + 2 * 1024 * 1024, 8388574 - 34 - (206848 + 2 * 1024 * 1024) + 1, LINUX),
            ],
        )
    }

    #[test]
    fn same_size_keeps_every_sector() {
        let d = gpt4();
        let p = place(&d, &infos(&d, None), d.size).unwrap();
        let t = d.table.as_ref().unwrap();
        for (n, o) in p.iter().zip(&t.partitions) {
            assert_eq!((n.start, n.size), (o.start, o.size));
        }
    }

    #[test]
    fn larger_disk_grows_in_proportion_and_keeps_the_esp() {
        let d = gpt4();
        let p = place(&d, &infos(&d, None), 8 * GIB).unwrap();
        assert_eq!(p[0].size, 204800, "the ESP keeps its size");
        // root and data both roughly double; alignment 1 MiB; data to the end.
        assert!(p[1].size > 2 * 2 * 1024 * 1024 - 4096 && p[1].size.is_multiple_of(2048), "{p:?}");
        assert!(p.iter().all(|x| x.start % 2048 == 0));
        let last = last_usable("gpt", 8 * GIB, 512);
        assert!(p[2].start + p[2].size <= last + 1 && last + 1 - (p[2].start + p[2].size) < 2048, "{p:?}");
        assert!(p[1].start + p[1].size <= p[2].start);
    }

    #[test]
    fn a_partition_that_keeps_its_size_is_not_measured_against_its_headroom() {
        // The estimate of what a small ESP needs (data + headroom + overhead)
        // can exceed its size; it held its data before and keeps its size.
        let d = gpt4();
        let mut i = infos(&d, None);
        i[0].needed = Some(150 * MIB);
        let p = place(&d, &i, 8 * GIB).unwrap();
        assert_eq!(p[0].size, 204800);
    }

    #[test]
    fn free_space_after_the_last_partition_scales_too() {
        // 400 MiB used of a 512 MiB disk: on 768 MiB it becomes about 600 MiB, on 448 MiB about 350.
        let d = disk(512 * MIB, "gpt", vec![part(1, 2048, 400 * 2048, LINUX)]);
        for (size, want) in [(768 * MIB, 600 * MIB), (448 * MIB, 350 * MIB)] {
            let p = place(&d, &infos(&d, None), size).unwrap();
            let got = p[0].size * 512;
            assert!(got.abs_diff(want) < 4 * MIB, "{} MiB on a {} MiB disk", got / MIB, size / MIB);
        }
    }

    #[test]
    fn smaller_disk_shrinks_while_data_fits_and_refuses_when_not() {
        let d = gpt4();
        let p = place(&d, &infos(&d, Some(300 * MIB)), 2 * GIB).unwrap();
        assert!(p[1].size * 512 >= 300 * MIB && p[2].size * 512 >= 300 * MIB);
        assert!(p[2].start + p[2].size <= last_usable("gpt", 2 * GIB, 512) + 1);
        // One partition with much data keeps what it needs; the other shrinks more.
        let mut i = infos(&d, Some(300 * MIB));
        i[1].needed = Some(1200 * MIB);
        let p = place(&d, &i, 2 * GIB).unwrap();
        assert!(p[1].size * 512 >= 1200 * MIB && p[2].size * 512 >= 300 * MIB, "{p:?}");
        let e = place(&d, &infos(&d, Some(1000 * MIB)), 2 * GIB).unwrap_err().to_string();
        assert!(e.contains("/dev/sda2") && e.contains("headroom"), "{e}");
        assert!(minimum_size(&d, &infos(&d, Some(1000 * MIB))) > 2 * GIB);
    }

    #[test]
    fn mbr_logical_partitions_stay_inside_the_extended_one() {
        let d = disk(
            4 * GIB,
            "dos",
            vec![
                part(1, 2048, 1024 * 1024, "83"),
                part(2, 1026048, 8388608 - 1026048, "5"),
                part(5, 1028096, 1024 * 1024, "82"),
                part(6, 1028096 + 1024 * 1024 + 2048, 8388608 - (1028096 + 1024 * 1024 + 2048), "83"),
            ],
        );
        let p = place(&d, &infos(&d, None), 6 * GIB).unwrap();
        let ext = p.iter().find(|x| x.number == 2).unwrap();
        for l in p.iter().filter(|x| x.number >= 5) {
            assert!(l.start > ext.start && l.start + l.size <= ext.start + ext.size, "{p:?}");
        }
        assert_eq!(p.iter().find(|x| x.number == 5).unwrap().size, 1024 * 1024, "swap keeps its size");
        assert!(ext.start + ext.size <= 6 * GIB / 512);
    }
}
