//! `lifeboat burn`: write a rescue image to an optical writer or a USB stick,
//! then read it back and compare.

use crate::media::sha256_file;
use crate::RescueError;
use lifeboat_host::{Host, SystemHost};
use lifeboat_layout::safety;
use lifeboat_runner::{Cmd, Runner};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What to write where.
#[derive(Debug, Clone)]
pub struct Burn {
    /// The writer or stick.
    pub device: PathBuf,
    /// The image.
    pub image: PathBuf,
    /// Optical write speed (0: the drive chooses).
    pub speed: u32,
    /// Blank rewritable optical media first.
    pub blank: bool,
    /// Read back and compare.
    pub verify: bool,
    /// Eject optical media at the end.
    pub eject: bool,
}

/// What happened.
#[derive(Debug, Clone)]
pub struct Burned {
    /// `optical` or `disk`.
    pub kind: &'static str,
    /// Bytes written.
    pub bytes: u64,
    /// SHA-256 of the image, and whether the read-back matched.
    pub sha256: String,
    /// Read back and found identical.
    pub verified: bool,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> RescueError {
    move |source| RescueError::Io { what, source }
}

/// Whether a device is an optical drive (SCSI type 5, or named srN).
pub fn is_optical(dev: &Path) -> bool {
    is_optical_on(&SystemHost::new(), dev)
}

/// Whether a device is an optical drive, as `host` shows it.
pub fn is_optical_on(host: &dyn Host, dev: &Path) -> bool {
    let Some(name) = host.kernel_name(dev) else { return false };
    name.starts_with("sr") || host.block_attr(&name, "device/type").is_some_and(|t| t == "5")
}

fn device_size(host: &dyn Host, dev: &Path) -> Option<u64> {
    host.block_device(&host.kernel_name(dev)?).map(|d| d.size)
}

/// Refuse devices that must not be written; return a one-line description of the device.
pub fn check(b: &Burn) -> Result<String, RescueError> {
    check_on(&SystemHost::new(), b)
}

/// [`check`], with the device, its mounts and the image's disk as `host` shows them.
pub fn check_on(host: &dyn Host, b: &Burn) -> Result<String, RescueError> {
    if let Some(why) = safety::in_use_on(host, &b.device) {
        return Err(RescueError::Refused(format!(
            "{}: {why}; unmount it or choose another device",
            b.device.display()
        )));
    }
    let image_size = std::fs::metadata(&b.image).map_err(io(format!("cannot read {}", b.image.display())))?.len();
    if let Some(d) = safety::device_of_file_on(host, &b.image) {
        let disk = host.kernel_name(&b.device).map(|n| safety::whole_disk_on(host, &n));
        if disk.is_some_and(|n| Path::new("/dev").join(n) == d) {
            return Err(RescueError::Refused(format!(
                "{} holds the image {} itself",
                b.device.display(),
                b.image.display()
            )));
        }
    }
    let optical = is_optical_on(host, &b.device);
    if !optical {
        match device_size(host, &b.device) {
            Some(s) if s < image_size => {
                return Err(RescueError::Refused(format!(
                    "{} holds {} bytes but the image {} needs {}; use a larger stick",
                    b.device.display(),
                    s,
                    b.image.display(),
                    image_size
                )))
            }
            Some(_) => {}
            None => return Err(RescueError::Refused(format!("{} is not a block device", b.device.display()))),
        }
    }
    let name = host.kernel_name(&b.device).unwrap_or_default();
    let model = host.block_attr(&name, "device/model").unwrap_or_default();
    let size = device_size(host, &b.device).map(|s| format!("{} MiB", s >> 20)).unwrap_or_else(|| "medium".into());
    Ok(format!(
        "{} ({}, {size}{})",
        b.device.display(),
        if optical { "optical drive" } else { "disk" },
        if model.is_empty() { String::new() } else { format!(", {model}") }
    ))
}

/// Write and verify. `progress(done, total)` is called as bytes are written.
pub fn burn(r: &dyn Runner, b: &Burn, progress: &mut dyn FnMut(u64, u64)) -> Result<Burned, RescueError> {
    check(b)?;
    let total = std::fs::metadata(&b.image).map_err(io(format!("cannot read {}", b.image.display())))?.len();
    let sha256 = sha256_file(&b.image)?;
    let optical = is_optical(&b.device);
    if optical {
        let mut cmd = Cmd::new("xorriso").args(["-as", "cdrecord", "-v"]).arg(format!("dev={}", b.device.display()));
        if b.speed > 0 {
            cmd = cmd.arg(format!("speed={}", b.speed));
        }
        if b.blank {
            cmd = cmd.arg("blank=as_needed");
        }
        cmd = cmd.arg("-waiti").arg(&b.image);
        r.apply(&cmd)?;
    } else {
        use std::os::unix::fs::OpenOptionsExt;
        // O_EXCL on a block device fails when the kernel has it in use.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::EXCL.bits() as i32)
            .open(&b.device)
            .map_err(io(format!("cannot open {} for writing", b.device.display())))?;
        let mut src = std::fs::File::open(&b.image).map_err(io(format!("cannot read {}", b.image.display())))?;
        let mut buf = vec![0u8; 4 << 20];
        let mut done = 0u64;
        loop {
            let n = src.read(&mut buf).map_err(io(format!("cannot read {}", b.image.display())))?;
            if n == 0 {
                break;
            }
            f.write_all(&buf[..n]).map_err(io(format!("cannot write {}", b.device.display())))?;
            done += n as u64;
            progress(done, total);
        }
        f.sync_all().map_err(io(format!("cannot flush {}", b.device.display())))?;
    }
    let verified = if b.verify { read_back(&b.device, total)? == sha256 } else { false };
    if b.verify && !verified {
        return Err(RescueError::Refused(format!(
            "{} does not read back what was written (SHA-256 differs from {}): the medium is bad; use another one",
            b.device.display(),
            b.image.display()
        )));
    }
    if optical && b.eject {
        let _ = r.apply(&Cmd::new("eject").arg(&b.device));
    }
    Ok(Burned { kind: if optical { "optical" } else { "disk" }, bytes: total, sha256, verified })
}

fn read_back(dev: &Path, len: u64) -> Result<String, RescueError> {
    let f = std::fs::File::open(dev).map_err(io(format!("cannot read back {}", dev.display())))?;
    crate::media::sha256_of(f.take(len)).map_err(io(format!("cannot read back {}", dev.display())))
}

/// The newest rescue image in a directory (`lifeboat-*.iso` or `.img`).
pub fn newest_image(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            n.starts_with("lifeboat-") && (n.ends_with(".iso") || n.ends_with(".img"))
        })
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_host::{DevNum, FixtureHost};

    const M: u64 = 1 << 20;

    /// An 8 MiB stick, an optical writer, and the image (3 MiB) on the system disk sda.
    fn machine(image_dir: &Path) -> FixtureHost {
        FixtureHost::new()
            .disk("sda", DevNum::new(8, 0), 1 << 34)
            .partition("sda", "sda1", 1, DevNum::new(8, 1), 1 << 34)
            .mount(DevNum::new(8, 1), "/dev/sda1", "/", "ext4")
            .disk("sdb", DevNum::new(8, 16), 8 * M)
            .partition("sdb", "sdb1", 1, DevNum::new(8, 17), 8 * M)
            .attr("sdb", "device/model", "Stick  ")
            .disk("sr0", DevNum::new(11, 0), 0)
            .file_on(&image_dir.display().to_string(), DevNum::new(8, 1))
    }

    fn burn_to(dev: &str, image: &Path) -> Burn {
        Burn { device: dev.into(), image: image.into(), speed: 0, blank: false, verify: true, eject: false }
    }

    fn image(dir: &Path, size: u64) -> PathBuf {
        let p = dir.join("lifeboat-test.iso");
        std::fs::File::create(&p).and_then(|f| f.set_len(size)).expect("image");
        p
    }

    #[test]
    fn a_free_stick_large_enough_is_described_and_an_optical_drive_needs_no_size() {
        let t = tempfile::tempdir().expect("tempdir");
        let img = image(t.path(), 3 * M);
        let h = machine(t.path());
        assert_eq!(check_on(&h, &burn_to("/dev/sdb", &img)).expect("free"), "/dev/sdb (disk, 8 MiB, Stick)");
        assert_eq!(check_on(&h, &burn_to("/dev/sr0", &img)).expect("optical"), "/dev/sr0 (optical drive, 0 MiB)");
        let typed = machine(t.path()).disk("sdc", DevNum::new(8, 32), 0).attr("sdc", "device/type", "5");
        assert!(is_optical_on(&typed, Path::new("/dev/sdc")), "SCSI type 5 is an optical drive");
        assert!(!is_optical_on(&typed, Path::new("/dev/sdb")));
    }

    #[test]
    fn a_mounted_stick_the_disk_of_the_image_a_small_stick_and_no_device_are_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let img = image(t.path(), 3 * M);
        let refused = |h: &FixtureHost, dev: &str| check_on(h, &burn_to(dev, &img)).expect_err("refused").to_string();
        let h = machine(t.path()).mount(DevNum::new(8, 17), "/dev/sdb1", "/media/stick", "vfat");
        let e = refused(&h, "/dev/sdb");
        assert!(e.contains("/dev/sdb is mounted on /media/stick") && e.contains("unmount it"), "{e}");
        // The image lives on sdb itself (nothing of it mounted elsewhere in this fixture).
        let h = machine(t.path()).file_on(&t.path().display().to_string(), DevNum::new(8, 17));
        assert!(refused(&h, "/dev/sdb").contains("holds the image"), "the image's own disk");
        let big = image(t.path(), 9 * M);
        let e = check_on(&machine(t.path()), &burn_to("/dev/sdb", &big)).expect_err("too small").to_string();
        assert!(e.contains("use a larger stick"), "{e}");
        assert!(refused(&machine(t.path()), "/dev/sdz").contains("not a block device"));
    }
}
