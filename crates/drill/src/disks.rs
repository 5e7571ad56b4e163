//! The blank disks a drill recovers onto: one per disk of the saved layout
//! that recovery recreates, sized from it.

use crate::report::DrillDisk;
use crate::Error;
use lifeboat_layout::model::Layout;
use std::path::Path;

const MIB: u64 = 1 << 20;
/// The smallest blank disk (a partition table and a small filesystem fit).
const SMALLEST: u64 = 64 * MIB;
/// QEMU's virtio-blk and NVMe serial numbers hold at most 20 bytes.
const SERIAL_MAX: usize = 20;

/// The blank disks for `layout`, each `factor` times its disk's size
/// (rounded up to a MiB), in `dir`. Excluded disks (an external disk, the
/// one that holds the backup) are not recreated and get none.
pub fn plan(layout: &Layout, factor: f64, dir: &Path) -> Result<Vec<DrillDisk>, Error> {
    if !(factor.is_finite() && factor > 0.0 && factor <= 64.0) {
        return Err(Error::DiskFactor(factor));
    }
    let mut out = Vec::new();
    for (i, d) in layout.disks.iter().filter(|d| d.excluded.is_none()).enumerate() {
        let want = (d.size as f64 * factor).ceil() as u64;
        let size = want.div_ceil(MIB).saturating_mul(MIB).max(SMALLEST);
        let serial =
            d.serial.as_deref().map(sanitize_serial).filter(|s| !s.is_empty()).unwrap_or_else(|| format!("drill{i}"));
        let nvme = d.transport.as_deref() == Some("nvme") || d.id.starts_with("/dev/nvme");
        out.push(DrillDisk {
            layout_id: d.id.clone(),
            layout_size: d.size,
            size,
            serial,
            nvme,
            image: dir.join(format!("disk{i}.img")),
        });
    }
    if out.is_empty() {
        return Err(Error::NoDisks);
    }
    Ok(out)
}

/// A serial number QEMU accepts on its command line: no commas (its option
/// separator), printable ASCII, at most 20 bytes.
fn sanitize_serial(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic() && *c != ',').take(SERIAL_MAX).collect()
}

/// Make the sparse image files.
pub fn create(disks: &[DrillDisk]) -> Result<(), Error> {
    for d in disks {
        let f = std::fs::File::create(&d.image).map_err(Error::io(format!("cannot create {}", d.image.display())))?;
        f.set_len(d.size).map_err(Error::io(format!("cannot size {}", d.image.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        let text = r#"
format_version = 1
[meta]
hostname = "db1"
captured_at = "2026-12-01T00:00:00Z"
kernel_release = "6.1.0"
lifeboat_version = "0.1.0"
machine = "x86_64"
[[disk]]
id = "/dev/vda"
kind = "disk"
size = 3221225472
logical_sector_size = 512
physical_sector_size = 512
serial = "system,disk with a long serial"
[[disk]]
id = "/dev/nvme0n1"
kind = "disk"
size = 1000000000
logical_sector_size = 512
physical_sector_size = 512
transport = "nvme"
[[disk]]
id = "/dev/vdb"
kind = "disk"
size = 5000000000
logical_sector_size = 512
physical_sector_size = 512
excluded = "holds the backup"
"#;
        Layout::parse(text, Path::new("t.toml")).expect("layout")
    }

    #[test]
    fn disks_are_the_layouts_size_times_the_factor_rounded_up_to_a_mib_without_excluded_ones() {
        let l = layout();
        let same = plan(&l, 1.0, Path::new("/w")).expect("plan");
        assert_eq!(same.len(), 2, "the excluded backup disk is not recreated");
        assert_eq!(same[0].size, 3 << 30);
        assert_eq!(same[0].layout_id, "/dev/vda");
        assert_eq!(same[0].serial, "systemdiskwithalongs", "no comma, no space, 20 bytes");
        assert_eq!(same[1].size, 1000000000u64.div_ceil(MIB) * MIB);
        assert!(same[1].nvme);
        assert_eq!(same[1].serial, "drill1");
        assert_eq!(same[1].image, Path::new("/w/disk1.img"));
        let larger = plan(&l, 1.5, Path::new("/w")).expect("plan");
        assert_eq!(larger[0].size, (3u64 << 30) / 2 * 3);
        let tiny = plan(&l, 0.001, Path::new("/w")).expect("plan");
        assert_eq!(tiny[1].size, SMALLEST);
    }

    #[test]
    fn a_factor_that_is_not_a_positive_number_is_refused() {
        for f in [0.0, -1.0, f64::NAN, f64::INFINITY, 100.0] {
            assert!(matches!(plan(&layout(), f, Path::new("/w")), Err(Error::DiskFactor(_))), "{f}");
        }
    }
}
