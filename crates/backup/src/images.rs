//! Images of foreign partitions (NTFS, unknown filesystems, raw data),
//! staged before a backup and stored in it as `.lifeboat/images/NAME.img`.
//!
//! Each image is written into a private staging directory below
//! `paths.work_dir` (so it needs local room for the partition's used
//! blocks), then walked into the archive like any file: hashed, verified
//! and encrypted with the rest. NTFS goes through `ntfsclone --save-image`
//! (used clusters only); anything else is copied byte for byte with its
//! all-zero blocks left as holes, so the archive stores it sparse. The
//! staging directory is removed when the backup ends, however it ends.

use crate::Error;
use lifeboat_config::Config;
use lifeboat_layout::model::{Image, ImageKind, Layout, IMAGES_DIR};
use lifeboat_runner::{Cmd, Runner};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Block size of the sparse copy: an all-zero block of this size is a hole.
const BLOCK: usize = 64 << 10;

/// The foreign partitions a backup saves: on a whole-system backup
/// (`whole`), those on disks that recovery recreates; always those listed
/// in `backup.image_devices`.
pub fn chosen<'a>(layout: &'a Layout, config: &Config, whole: bool) -> Vec<&'a Image> {
    let listed = |i: &Image| config.backup.image_devices.iter().any(|d| d == &i.device);
    layout
        .images
        .iter()
        .filter(|i| listed(i) || (whole && layout.disk_of(&i.device).is_some_and(|d| d.excluded.is_none())))
        .collect()
}

/// Devices in `backup.image_devices` that the layout has no image of.
pub fn unknown_devices(layout: &Layout, config: &Config) -> Vec<String> {
    config.backup.image_devices.iter().filter(|d| layout.image_of(d).is_none()).cloned().collect()
}

/// A staging directory with the images; removed on drop.
#[derive(Debug)]
pub struct Staged {
    /// The directory holding `.lifeboat/images/`.
    pub dir: PathBuf,
    /// Images staged: (device, kind, bytes stored locally).
    pub images: Vec<(String, ImageKind, u64)>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            log::warn!("cannot remove the staged images {}: {e}", self.dir.display());
        }
    }
}

/// Stage the images of `images` below `work_dir`; None when there are none.
pub fn stage(images: &[&Image], work_dir: &Path, r: &dyn Runner) -> Result<Option<Staged>, Error> {
    if images.is_empty() {
        return Ok(None);
    }
    let dir = work_dir.join(format!("images.{}", std::process::id()));
    let io = |what: &Path, e: std::io::Error| Error::Image {
        device: images.iter().map(|i| i.device.as_str()).collect::<Vec<_>>().join(", "),
        why: format!("cannot create the staging directory {}: {e}", what.display()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir.join(IMAGES_DIR)).map_err(|e| io(&dir, e))?;
    }
    let mut staged = Staged { dir, images: Vec::new() };
    for i in images {
        let file = staged.dir.join(i.entry_path());
        let stored = match i.kind {
            ImageKind::Ntfs => ntfs(i, &file, r)?,
            ImageKind::Raw => sparse_copy(Path::new(&i.device), &file, i.size)
                .map_err(|why| Error::Image { device: i.device.clone(), why })?,
        };
        log::info!("{}: {} image staged, {} bytes", i.device, i.kind, stored);
        staged.images.push((i.device.clone(), i.kind, stored));
    }
    Ok(Some(staged))
}

/// `ntfsclone --save-image` of an NTFS partition into `file`: its used clusters only.
fn ntfs(i: &Image, file: &Path, r: &dyn Runner) -> Result<u64, Error> {
    let cmd = Cmd::new("ntfsclone").args(["--quiet", "--save-image", "--output"]).arg(file).arg(&i.device);
    r.probe(&cmd).map_err(|e| Error::Image {
        device: i.device.clone(),
        why: format!(
            "ntfsclone cannot save it ({}); an NTFS volume must be unmounted and clean (boot Windows and shut it down fully, or run ntfsfix), or leave it out of backup.image_devices / exclude its disk with layout.exclude_devices",
            e.reason()
        ),
    })?;
    std::fs::metadata(file).map(|m| m.len()).map_err(|e| Error::Image {
        device: i.device.clone(),
        why: format!("ntfsclone wrote no image {}: {e}", file.display()),
    })
}

/// Copy `size` bytes of `device` into a new file `file`, leaving every
/// all-zero block of [`BLOCK`] bytes a hole; returns the bytes written.
/// A device shorter than `size` (it changed since the layout was captured) is an error.
pub fn sparse_copy(device: &Path, file: &Path, size: u64) -> Result<u64, String> {
    let mut src = std::fs::File::open(device).map_err(|e| format!("cannot open {}: {e}", device.display()))?;
    let len = src.seek(SeekFrom::End(0)).map_err(|e| format!("cannot find the size of {}: {e}", device.display()))?;
    if len < size {
        return Err(format!(
            "it is {len} bytes, smaller than the {size} bytes the layout says: capture the layout again"
        ));
    }
    src.seek(SeekFrom::Start(0)).map_err(|e| format!("{}: {e}", device.display()))?;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .map_err(|e| format!("cannot create {}: {e}", file.display()))?;
    let mut buf = vec![0u8; 16 * BLOCK];
    let (mut at, mut written) = (0u64, 0u64);
    while at < size {
        let want = (size - at).min(buf.len() as u64) as usize;
        src.read_exact(&mut buf[..want]).map_err(|e| format!("read error at byte {at}: {e}"))?;
        for (k, block) in buf[..want].chunks(BLOCK).enumerate() {
            if block.iter().any(|b| *b != 0) {
                let off = at + (k * BLOCK) as u64;
                out.write_all_at(block, off).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
                written += block.len() as u64;
            }
        }
        at += want as u64;
    }
    out.set_len(size).map_err(|e| format!("cannot size {}: {e}", file.display()))?;
    out.sync_all().map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_layout::model::Disk;

    #[test]
    fn a_sparse_copy_keeps_the_bytes_and_leaves_zero_blocks_as_holes() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().expect("tmp");
        let dev = tmp.path().join("dev");
        let mut data = vec![0u8; 40 * BLOCK + 123];
        data[5] = 1;
        for (i, b) in data[20 * BLOCK..21 * BLOCK + 7].iter_mut().enumerate() {
            *b = (i % 251) as u8 + 1;
        }
        *data.last_mut().expect("last") = 9;
        std::fs::write(&dev, &data).expect("write");
        let out = tmp.path().join("img");
        let written = sparse_copy(&dev, &out, data.len() as u64).expect("copy");
        assert_eq!(std::fs::read(&out).expect("read"), data);
        assert_eq!(written, 3 * BLOCK as u64 + 123, "three data blocks and the short last one");
        assert!(std::fs::metadata(&out).expect("meta").blocks() * 512 < data.len() as u64, "holes stay holes");
        let e = sparse_copy(&dev, &tmp.path().join("big"), data.len() as u64 + 1).expect_err("too short");
        assert!(e.contains("smaller than"), "{e}");
    }

    #[test]
    fn whole_system_backups_save_images_of_recovered_disks_and_listed_ones_always() {
        let text = format!(
            "{}\n[[image]]\ndevice = \"/dev/vda3\"\nkind = \"ntfs\"\nsize = 1048576\n\n[[image]]\ndevice = \"/dev/loop0p1\"\nkind = \"raw\"\nsize = 4096\n",
            "format_version = 1\n[meta]\nhostname = \"h\"\ncaptured_at = \"\"\nlifeboat_version = \"\"\nkernel_release = \"\"\nmachine = \"\"\n"
        );
        let mut layout = Layout::parse(&text, Path::new("l.toml")).expect("layout");
        layout.disks.push(Disk::new("/dev/vda", 1 << 30));
        let mut lp = Disk::new("/dev/loop0", 1 << 30);
        lp.excluded = Some("a loop device".into());
        {
            let (d, part) = (&mut layout.disks[0], "/dev/vda3");
            d.table = Some(lifeboat_layout::model::PartitionTable {
                label: "gpt".into(),
                id: None,
                sector_size: 512,
                first_lba: None,
                last_lba: None,
                partitions: vec![lifeboat_layout::model::Partition {
                    id: part.into(),
                    number: 3,
                    start: 2048,
                    size: 2048,
                    part_type: "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7".into(),
                    type_name: None,
                    uuid: None,
                    name: None,
                    attrs: None,
                    bootable: false,
                }],
            });
        }
        layout.disks.push(lp);
        let mut config = Config::default();
        let devices = |v: Vec<&Image>| v.iter().map(|i| i.device.clone()).collect::<Vec<_>>();
        assert_eq!(devices(chosen(&layout, &config, true)), ["/dev/vda3"]);
        assert!(chosen(&layout, &config, false).is_empty(), "chosen paths: no images unless listed");
        config.backup.image_devices = vec!["/dev/loop0p1".into(), "/dev/sdz9".into()];
        assert_eq!(devices(chosen(&layout, &config, false)), ["/dev/loop0p1"]);
        assert_eq!(devices(chosen(&layout, &config, true)), ["/dev/vda3", "/dev/loop0p1"]);
        assert_eq!(unknown_devices(&layout, &config), ["/dev/sdz9"]);
    }
}
