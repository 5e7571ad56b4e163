//! The layout drawn as a tree: disks → partitions → RAID/LUKS/LVM → filesystems → mount points.

use crate::model::Layout;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

pub use lifeboat_config::human;

fn describe(l: &Layout, id: &str) -> String {
    if let Some(d) = l.disks.iter().find(|d| d.id == id) {
        let mut s = format!("{id}  disk {}", human(d.size));
        for v in [&d.transport, &d.model, &d.serial].into_iter().flatten() {
            let _ = write!(s, "  {v}");
        }
        match &d.table {
            Some(t) => {
                let _ = write!(s, "  {} table", t.label);
            }
            None => s.push_str("  no partition table"),
        }
        if let Some(why) = &d.excluded {
            let _ = write!(s, "  [excluded: {why}]");
        }
        return s;
    }
    for d in &l.disks {
        if let Some(t) = &d.table {
            if let Some(p) = t.partitions.iter().find(|p| p.id == id) {
                let mut s = format!(
                    "{id}  partition {}  {}",
                    human(p.size * u64::from(t.sector_size)),
                    p.type_name.clone().unwrap_or_else(|| p.part_type.clone())
                );
                if let Some(n) = &p.name {
                    let _ = write!(s, "  \"{n}\"");
                }
                if let Some(i) = l.image_of(id) {
                    let _ = write!(
                        s,
                        "  [{} image{}]",
                        i.kind,
                        i.fstype.as_ref().map(|t| format!(" of {t}")).unwrap_or_default()
                    );
                }
                return s;
            }
        }
    }
    if let Some(r) = l.raids.iter().find(|r| r.id == id) {
        return format!("{id}  {} {}  metadata {}  {} devices", r.level, human(r.size), r.metadata, r.raid_devices);
    }
    if let Some(x) = l.luks.iter().find(|x| x.id.as_deref() == Some(id)) {
        return format!("{id}  LUKS{} {} {} bits  UUID {}", x.version, x.cipher, x.key_size, x.uuid);
    }
    if let Some(p) = l.lvm.pvs.iter().find(|p| p.id == id) {
        return format!("LVM PV {}  {}", p.device, human(p.size));
    }
    if let Some(v) = l.lvm.vgs.iter().find(|v| v.id == id) {
        return format!("VG {}  {} ({} free)  extent {}", v.name, human(v.size), human(v.free), human(v.extent_size));
    }
    if let Some(v) = l.lvm.lvs.iter().find(|v| v.id == id) {
        let seg = v.segments.first().map(|s| s.segtype.as_str()).unwrap_or("");
        let mut s = format!("LV {}/{}  {} {seg}", v.vg, v.name, human(v.size));
        if let Some(p) = &v.pool {
            let _ = write!(s, " in pool {p}");
        }
        return s;
    }
    if let Some(dev) = id.strip_prefix("fs:") {
        if let Some(f) = l.filesystem_on(dev) {
            let mut s = f.fstype.clone();
            if let Some(lb) = &f.label {
                let _ = write!(s, "  LABEL={lb}");
            }
            let _ = write!(s, "  UUID={}", f.uuid.as_deref().unwrap_or("unknown"));
            if !f.mountpoints.is_empty() {
                let _ = write!(s, "  on {}", f.mountpoints.join(", "));
            }
            match (f.used, f.size) {
                (Some(u), Some(t)) => {
                    let _ = write!(s, "  used {} of {}", human(u), human(t));
                }
                (None, Some(t)) => {
                    let _ = write!(s, "  {}", human(t));
                }
                _ => {}
            }
            if !f.subvolumes.is_empty() {
                let names: Vec<&str> = f.subvolumes.iter().map(|v| v.path.as_str()).collect();
                let _ = write!(s, "  subvolumes: {}", names.join(", "));
            }
            return s;
        }
    }
    if let Some(dev) = id.strip_prefix("swap:") {
        if let Some(sw) = l.swaps.iter().find(|s| s.device == dev) {
            return format!(
                "swap  UUID={}  {}{}",
                sw.uuid.as_deref().unwrap_or("unknown"),
                human(sw.size),
                if sw.active { "  in use" } else { "" }
            );
        }
    }
    id.to_string()
}

struct Drawer<'a, 'o> {
    l: &'a Layout,
    children: &'a BTreeMap<&'a str, Vec<&'a str>>,
    seen: BTreeSet<&'a str>,
    out: &'o mut String,
}

impl<'a> Drawer<'a, '_> {
    /// Draw `id` and what is built on it; `last` is None for a top-level node.
    fn draw(&mut self, id: &'a str, prefix: &str, last: Option<bool>) {
        let branch = match last {
            None => "",
            Some(true) => "└─ ",
            Some(false) => "├─ ",
        };
        let again = !self.seen.insert(id);
        let _ = writeln!(
            self.out,
            "{prefix}{branch}{}{}",
            describe(self.l, id),
            if again { "  (shown above)" } else { "" }
        );
        if again {
            return;
        }
        let next = match last {
            None => String::new(),
            Some(true) => format!("{prefix}   "),
            Some(false) => format!("{prefix}│  "),
        };
        let kids = self.children.get(id).cloned().unwrap_or_default();
        for (i, k) in kids.iter().enumerate() {
            self.draw(k, &next, Some(i + 1 == kids.len()));
        }
    }
}

/// Render the layout as an indented tree with a summary of notes.
pub fn tree(l: &Layout) -> String {
    let deps = l.dependencies();
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (node, on) in &deps {
        for parent in on {
            children.entry(parent.as_str()).or_default().push(node.as_str());
        }
    }
    // Partitions in table order rather than by name.
    for d in &l.disks {
        if let (Some(t), Some(c)) = (&d.table, children.get_mut(d.id.as_str())) {
            c.sort_by_key(|id| t.partitions.iter().position(|p| p.id == *id).unwrap_or(usize::MAX));
        }
    }
    let mut out = format!(
        "{}  (captured {}, kernel {}, lifeboat {})\n",
        l.meta.hostname, l.meta.captured_at, l.meta.kernel_release, l.meta.lifeboat_version
    );
    let mut d = Drawer { l, children: &children, seen: BTreeSet::new(), out: &mut out };
    for disk in &l.disks {
        d.draw(&disk.id, "", None);
    }
    // Anything not reached from a disk (a filesystem on an unknown device).
    for id in deps.keys() {
        if !d.seen.contains(id.as_str()) && deps.get(id).is_none_or(|p| p.iter().all(|x| !deps.contains_key(x))) {
            d.draw(id, "", None);
        }
    }
    for s in l.swaps.iter().filter(|s| s.file) {
        let _ = writeln!(out, "swap file {}  {}", s.device, human(s.size));
    }
    let b = &l.bootloader;
    let _ = write!(out, "boot: {} firmware, bootloader {}", b.firmware, b.kind);
    if let Some(e) = &b.esp {
        let _ = write!(out, ", ESP {e}");
    }
    if !b.bios_boot_disks.is_empty() {
        let _ = write!(out, ", GRUB in MBR of {}", b.bios_boot_disks.join(", "));
    }
    out.push('\n');
    for i in &l.network.interfaces {
        let addrs: Vec<String> = i.addresses.iter().map(|a| format!("{}/{}", a.address, a.prefix)).collect();
        let _ = writeln!(out, "net: {} {} {}", i.name, i.mac.as_deref().unwrap_or("-"), addrs.join(" "));
    }
    if !l.notes.is_empty() {
        let _ = writeln!(out, "not captured ({}):", l.notes.len());
        for n in &l.notes {
            let _ = writeln!(out, "  - {}: {}", n.what, n.why);
        }
    }
    out
}
