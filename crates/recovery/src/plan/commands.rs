//! The command lines and scripts that recreate each node: sfdisk scripts,
//! mkfs and mkswap with the old identities and parameters, mdadm,
//! cryptsetup and LVM. Pure functions of the layout, so every one is
//! checked by unit tests without a disk.

use super::partition_path;
use crate::geometry::NewPartition;
use crate::RecoveryError;
use lifeboat_layout::model::{Disk, Filesystem, Luks, Lv, Raid, Swap, Vg};
use lifeboat_runner::Cmd;

/// A size in bytes as LVM's `k` suffix (whole KiB).
pub(super) fn kib(b: u64) -> String {
    format!("{}k", b / 1024)
}

/// A value in sfdisk's double quotes (quotes inside are dropped: sfdisk has no escape).
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', ""))
}

/// The sfdisk script that writes `d`'s table on `new_disk` with the
/// partitions placed at `parts`. The first usable LBA is kept only on a
/// disk of the same size (elsewhere sfdisk computes it).
pub fn sfdisk_script(d: &Disk, new_disk: &str, parts: &[NewPartition], same_size: bool) -> String {
    let Some(t) = &d.table else { return String::new() };
    let mut s = format!("label: {}\nunit: sectors\n", t.label);
    if let Some(id) = &t.id {
        s.push_str(&format!("label-id: {id}\n"));
    }
    if same_size {
        if let Some(f) = t.first_lba {
            s.push_str(&format!("first-lba: {f}\n"));
        }
    }
    s.push('\n');
    for np in parts {
        let Some(p) = t.partitions.iter().find(|p| p.number == np.number) else { continue };
        let mut line = format!(
            "{} : start={}, size={}, type={}",
            partition_path(new_disk, p.number),
            np.start,
            np.size,
            p.part_type
        );
        if let Some(u) = &p.uuid {
            line.push_str(&format!(", uuid={u}"));
        }
        if let Some(n) = &p.name {
            line.push_str(&format!(", name={}", quoted(n)));
        }
        if let Some(a) = &p.attrs {
            line.push_str(&format!(", attrs={}", quoted(a)));
        }
        if p.bootable {
            line.push_str(", bootable");
        }
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// The sfdisk command that writes a script (on stdin) to `disk`, wiping old
/// signatures on the disk and in the new partitions, leaving the kernel's
/// view to be updated afterwards.
pub fn sfdisk_write(disk: &str, script: &str) -> Cmd {
    Cmd::new("sfdisk")
        .args(["--no-reread", "--no-tell-kernel", "-q", "--wipe", "always", "--wipe-partitions", "always"])
        .arg(disk)
        .stdin(script.to_string())
}

/// The mkfs command that recreates `f` on `dev`.
pub fn mkfs_cmd(f: &Filesystem, dev: &str, resized: bool) -> Result<Cmd, RecoveryError> {
    let p = &f.params;
    let cmd = match f.fstype.as_str() {
        "ext2" | "ext3" | "ext4" => {
            let mut c = Cmd::new(format!("mkfs.{}", f.fstype)).args(["-F", "-q"]);
            if let Some(u) = &f.uuid {
                c = c.args(["-U", u]);
            }
            if let Some(l) = &f.label {
                c = c.args(["-L", l]);
            }
            if let Some(b) = p.block_size {
                c = c.args(["-b", &b.to_string()]);
            }
            if let Some(i) = p.inode_size {
                c = c.args(["-I", &i.to_string()]);
            }
            // Exactly the features the original had (runtime flags left out).
            let feats: Vec<&str> = p
                .features
                .iter()
                .map(String::as_str)
                .filter(|f| !matches!(*f, "needs_recovery" | "orphan_present" | "mmp"))
                .collect();
            if !feats.is_empty() {
                c = c.args(["-O", &format!("none,{}", feats.join(","))]);
            }
            if let (Some(r), Some(b)) = (p.reserved_blocks, p.block_count) {
                if b > 0 {
                    let pct = (r as f64 * 100.0 / b as f64).round() as u64;
                    c = c.args(["-m", &pct.to_string()]);
                }
            }
            if !resized {
                if let Some(n) = p.inode_count {
                    c = c.args(["-N", &n.to_string()]);
                }
            }
            c.arg(dev)
        }
        "xfs" => {
            let mut c = Cmd::new("mkfs.xfs").arg("-f");
            let mut m = Vec::new();
            if let Some(u) = &f.uuid {
                m.push(format!("uuid={u}"));
            }
            let mut i = Vec::new();
            let mut n = Vec::new();
            let mut l = Vec::new();
            let crc0 = p.features.iter().any(|x| x == "crc=0");
            for feat in &p.features {
                let name = feat.split('=').next().unwrap_or("");
                match name {
                    "crc" => m.push(feat.clone()),
                    "finobt" | "rmapbt" | "reflink" | "bigtime" | "inobtcount" if !crc0 => m.push(feat.clone()),
                    "sparse" | "nrext64" if !crc0 => i.push(feat.clone()),
                    "ftype" if crc0 => n.push(feat.clone()),
                    "lazy-count" => l.push(feat.clone()),
                    _ => {}
                }
            }
            if let Some(lb) = &f.label {
                c = c.args(["-L", lb]);
            }
            if let Some(b) = p.block_size {
                c = c.args(["-b", &format!("size={b}")]);
            }
            if let Some(s) = p.sector_size {
                c = c.args(["-s", &format!("size={s}")]);
            }
            if let Some(sz) = p.inode_size {
                i.push(format!("size={sz}"));
            }
            for (flag, v) in [("-m", m), ("-i", i), ("-n", n), ("-l", l)] {
                if !v.is_empty() {
                    c = c.args([flag, &v.join(",")]);
                }
            }
            c.arg(dev)
        }
        "btrfs" => {
            let mut c = Cmd::new("mkfs.btrfs").arg("-f");
            if let Some(u) = &f.uuid {
                c = c.args(["-U", u]);
            }
            if let Some(l) = &f.label {
                c = c.args(["-L", l]);
            }
            if let Some(n) = p.node_size {
                c = c.args(["-n", &n.to_string()]);
            }
            if let Some(d) = &p.data_profile {
                c = c.args(["-d", &d.to_ascii_lowercase()]);
            }
            if let Some(m) = &p.metadata_profile {
                c = c.args(["-m", &m.to_ascii_lowercase()]);
            }
            c.arg(dev)
        }
        "vfat" | "fat" | "msdos" => {
            let mut c = Cmd::new("mkfs.vfat");
            if let Some(b) = p.fat_bits {
                c = c.args(["-F", &b.to_string()]);
            }
            if let Some(u) = &f.uuid {
                c = c.args(["-i", &u.replace('-', "")]);
            }
            if let Some(l) = &f.label {
                c = c.args(["-n", l]);
            }
            if let Some(s) = p.sector_size {
                c = c.args(["-S", &s.to_string()]);
                if let Some(b) = p.block_size {
                    if s > 0 && !resized {
                        c = c.args(["-s", &(b / s).to_string()]);
                    }
                }
            }
            c.arg(dev)
        }
        other => {
            return Err(RecoveryError::Unsupported(format!(
                "filesystem {other} on {}: lifeboat cannot recreate this type yet",
                f.device
            )))
        }
    };
    Ok(cmd)
}

/// The mkswap command that recreates `w` on `dev` with its UUID and label.
pub fn mkswap_cmd(w: &Swap, dev: &str) -> Cmd {
    let mut c = Cmd::new("mkswap");
    if let Some(u) = &w.uuid {
        c = c.args(["-U", u]);
    }
    if let Some(l) = &w.label {
        c = c.args(["-L", l]);
    }
    c.arg(dev)
}

/// `mdadm --create` for `r` with its UUID, name and geometry; `new_id` gives
/// each member's new device.
pub fn mdadm_create(r: &Raid, new_id: &dyn Fn(&str) -> String) -> Cmd {
    let (home, name) = match r.name.as_deref().and_then(|n| n.split_once(':')) {
        Some((h, n)) => (Some(h.to_string()), n.to_string()),
        None => (None, r.name.clone().unwrap_or_default()),
    };
    let active: Vec<String> = r.members.iter().filter(|m| !r.spares.contains(m)).map(|m| new_id(m)).collect();
    let mut c = Cmd::new("mdadm")
        .args(["--create", &r.id, "--run", "--force"])
        .arg(format!("--metadata={}", r.metadata))
        .arg(format!("--level={}", r.level))
        .arg(format!("--raid-devices={}", r.raid_devices))
        .arg(format!("--uuid={}", r.uuid));
    if !name.is_empty() {
        c = c.arg(format!("--name={name}"));
    }
    if let Some(h) = home {
        c = c.arg(format!("--homehost={h}"));
    }
    if let Some(k) = r.chunk_kib {
        c = c.arg(format!("--chunk={k}"));
    }
    if let Some(l) = &r.layout {
        if r.level != "raid1" {
            c = c.arg(format!("--layout={l}"));
        }
    }
    if let Some(b) = &r.bitmap {
        c = c.arg(format!("--bitmap={b}"));
    }
    if !r.spares.is_empty() {
        c = c.arg(format!("--spare-devices={}", r.spares.len()));
    }
    c.args(active).args(r.spares.iter().map(|m| new_id(m)))
}

/// `cryptsetup luksFormat` with `l`'s UUID, cipher and parameters; the key
/// file and the device are added when it runs.
pub fn luks_format(l: &Luks) -> Cmd {
    let mut c = Cmd::new("cryptsetup")
        .args(["luksFormat", "--batch-mode"])
        .arg(format!("--type=luks{}", l.version))
        .arg(format!("--cipher={}", l.cipher))
        .arg(format!("--key-size={}", l.key_size))
        .arg(format!("--uuid={}", l.uuid));
    if let Some(h) = &l.hash {
        c = c.arg(format!("--hash={h}"));
    }
    if l.version >= 2 {
        if let Some(p) = &l.pbkdf {
            c = c.arg(format!("--pbkdf={p}"));
        }
        if let Some(ss) = l.sector_size {
            c = c.arg(format!("--sector-size={ss}"));
        }
        if let Some(lb) = &l.label {
            c = c.arg(format!("--label={lb}"));
        }
    }
    c
}

/// `pvcreate` on `dev` with the PV's old UUID.
pub fn pvcreate(uuid: &str, dev: &str) -> Cmd {
    Cmd::new("pvcreate").args(["-ff", "-y", "--norestorefile", "--uuid", uuid, dev])
}

/// `vgcreate` of `vg` with its extent size on these (new) PV devices.
pub fn vgcreate(vg: &Vg, pvs: &[String]) -> Cmd {
    Cmd::new("vgcreate").args(["-y", "-s", &kib(vg.extent_size), &vg.name]).args(pvs)
}

/// `lvcreate` of `l` in `vg` with `size` bytes (the virtual size of a thin
/// volume), of its segment type, stripes and pool parameters.
pub fn lvcreate(l: &Lv, vg: &str, size: u64) -> Cmd {
    let seg = l.segments.first();
    let segtype = seg.map(|s| s.segtype.as_str()).unwrap_or("linear");
    let mut c = Cmd::new("lvcreate").args(["-y", "-n", &l.name]);
    if segtype != "thin-pool" && segtype != "thin" {
        // Old signatures on reused extents would confuse blkid; thin LVs start zeroed anyway.
        c = c.args(["-W", "y", "-Z", "y"]);
    }
    match segtype {
        "thin-pool" => {
            c = c.args(["--type", "thin-pool", "-L", &kib(size)]);
            if let Some(m) = l.metadata_size {
                c = c.args(["--poolmetadatasize", &kib(m)]);
            }
            if let Some(ch) = l.chunk_size {
                c = c.args(["-c", &kib(ch)]);
            }
        }
        "thin" => {
            c = c.args(["--type", "thin", "-V", &kib(size)]);
            if let Some(p) = &l.pool {
                c = c.args(["--thinpool", p]);
            }
        }
        "raid1" | "mirror" => {
            let n = seg.map(|s| s.stripes).unwrap_or(2).max(2) - 1;
            c = c.args(["--type", segtype, "-m", &n.to_string(), "-L", &kib(size)]);
        }
        _ => {
            c = c.args(["-L", &kib(size)]);
            if let Some(sg) = seg.filter(|sg| sg.stripes > 1) {
                c = c.args(["-i", &sg.stripes.to_string()]);
                if let Some(ss) = sg.stripe_size {
                    c = c.args(["-I", &kib(ss)]);
                }
            }
        }
    }
    c.arg(vg)
}
