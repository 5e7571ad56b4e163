//! What a backup holds: the paths (every local filesystem mounted now, or
//! the paths given) and the excludes, from the layout and the configuration.
//!
//! The automatic excludes: `tmp/*`, the secret signing key, swap files, and
//! the target and work directories by what they are (device and inode), so
//! that a target reached through a symlink is still left out.
//!
//! A backup of the default selection must hold every filesystem mounted
//! now: one that is neither on a disk recovery leaves alone nor covered by
//! `backup.exclude` is [`Missing`], and the selection is refused before
//! anything is written.

use crate::keys::secret_key_excludes;
use crate::Error;
use lifeboat_archive::frames::{Codec, MIN_VOLUME_SIZE};
use lifeboat_archive::BackupOptions;
use lifeboat_config::{human, BackupCompression, Config};
use lifeboat_layout::Layout;
use std::path::{Path, PathBuf};

/// What to back up, and where.
#[derive(Debug, Clone)]
pub struct Request {
    /// Target URL.
    pub url: String,
    /// Tree root.
    pub root: PathBuf,
    /// Paths under the root; empty means every local filesystem mounted now.
    pub paths: Vec<PathBuf>,
    /// Volume size in bytes.
    pub volume_size: u64,
}

/// A filesystem of the default selection that is not backed up, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftOut {
    /// It is on a disk the layout excludes from recovery (a USB backup disk, a loop device).
    ExcludedDisk {
        /// Where it is mounted.
        mountpoint: String,
        /// Its device.
        device: String,
        /// Why the disk is excluded.
        why: String,
    },
    /// The excludes (`backup.exclude`) cover where it is mounted.
    Excluded {
        /// Where it is mounted.
        path: PathBuf,
    },
}

/// A filesystem mounted now that the default selection would not hold,
/// although neither an excluded disk nor `backup.exclude` says to leave it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// Where it is mounted.
    pub mountpoint: String,
    /// Its device.
    pub device: String,
    /// Its type.
    pub fstype: String,
    /// Why the selection does not hold it.
    pub why: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} {}): {}", self.mountpoint, self.fstype, self.device, self.why)
    }
}

/// The filesystems capture records and recovery recreates.
const RECREATED: [&str; 6] = ["ext2", "ext3", "ext4", "xfs", "btrfs", "vfat"];

/// The backup a request makes, with what the default selection leaves out.
#[derive(Debug)]
pub struct Selection {
    /// The options to write the backup with.
    pub options: BackupOptions,
    /// Filesystems of the default selection that are not backed up.
    pub left_out: Vec<LeftOut>,
    /// Filesystems mounted now that the backup would miss (then it is refused).
    pub missing: Vec<Missing>,
    /// The used bytes of the filesystems backed up whole (for an ETA); 0 when unknown.
    pub expected_bytes: u64,
    /// Why nothing can be backed up, when so.
    refused: Option<Error>,
}

impl Selection {
    /// The options to write the backup with, or why the selection cannot be
    /// used (nothing selected, a path outside the root, a volume too small).
    pub fn into_options(self) -> Result<BackupOptions, Error> {
        match self.refused {
            Some(e) => Err(e),
            None => Ok(self.options),
        }
    }
}

/// The (device, inode) of a directory, following symlinks; None when it does not exist.
pub(crate) fn dev_ino(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))
}

/// Every local filesystem of the layout mounted at or below `root`, as paths
/// relative to it, each as a unit; not those on disks that recovery leaves
/// alone, which are `left_out`.
fn mounted(layout: &Layout, root: &Path, left_out: &mut Vec<LeftOut>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = Vec::new();
    for f in &layout.filesystems {
        if let Some(why) = layout.disk_of(&f.device).and_then(|d| d.excluded.as_ref()) {
            left_out.extend(f.mountpoints.iter().map(|m| LeftOut::ExcludedDisk {
                mountpoint: m.clone(),
                device: f.device.clone(),
                why: why.clone(),
            }));
            continue;
        }
        for m in &f.mountpoints {
            if let Ok(r) = Path::new(m).strip_prefix(root) {
                v.push(if r.as_os_str().is_empty() { PathBuf::from(".") } else { r.to_path_buf() });
            }
        }
    }
    v.sort();
    v.dedup();
    v
}

/// The compression the configuration asks for.
fn codec(config: &Config) -> Codec {
    match config.backup.compression {
        BackupCompression::Gzip => Codec::Gzip(config.backup.level),
        BackupCompression::Zstd => Codec::Zstd(config.backup.level as i32),
    }
}

/// What `req` backs up of the system `layout` describes; `target_dir` is the
/// target's local directory (left out of the backup), when it has one.
pub fn select(layout: &Layout, config: &Config, req: &Request, target_dir: Option<&Path>) -> Selection {
    let mut left_out = Vec::new();
    let mut refused = None;
    let paths = if req.paths.is_empty() {
        let v = mounted(layout, &req.root, &mut left_out);
        if v.is_empty() {
            refused = Some(Error::NothingMounted(req.root.clone()));
        }
        v
    } else {
        // Paths below the root only: `..` and absolute paths elsewhere would
        // store entries that restore outside the restore's target.
        match req.paths.iter().map(|p| lifeboat_archive::backup::selection_path(&req.root, p)).collect() {
            Ok(v) => v,
            Err(e) => {
                refused = Some(Error::Selection(e));
                Vec::new()
            }
        }
    };
    let mut exclude = config.backup.exclude.clone();
    exclude.push("tmp/*".into());
    // Signing: the secret key never goes into a backup (whoever reads the target could sign with it).
    exclude.extend(secret_key_excludes(&req.root, &config.paths.key_dir));
    for s in layout.swaps.iter().filter(|s| s.file) {
        exclude.extend(Path::new(&s.device).strip_prefix(&req.root).ok().map(|r| r.to_string_lossy().into_owned()));
    }
    let dirs = [Some(config.paths.work_dir.as_path()), Some(config.paths.output_dir.as_path()), target_dir];
    let exclude_dirs = dirs.into_iter().flatten().filter_map(dev_ino).collect();
    let mut options = BackupOptions {
        root: req.root.clone(),
        paths,
        exclude,
        volume_size: req.volume_size,
        codec: codec(config),
        exclude_dirs,
        read_from: Vec::new(),
        reserved: None,
    };
    if refused.is_none() && req.volume_size < MIN_VOLUME_SIZE {
        refused = Some(Error::VolumeTooSmall {
            size: human(req.volume_size),
            min: human(MIN_VOLUME_SIZE),
            min_kib: MIN_VOLUME_SIZE >> 10,
        });
    }
    if req.paths.is_empty() && refused.is_none() {
        // A filesystem of the default selection that the excludes cover is
        // left out, said once; a path given explicitly is an error instead.
        let covered: Vec<PathBuf> = options
            .paths
            .iter()
            .filter(|p| *p != Path::new(".") && options.excludes(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str())))
            .cloned()
            .collect();
        left_out.extend(covered.iter().map(|p| LeftOut::Excluded { path: req.root.join(p) }));
        options.paths.retain(|p| !covered.contains(p));
        if options.paths.is_empty() {
            refused = Some(Error::AllExcluded(req.root.clone()));
        }
    }
    let missing = if req.paths.is_empty() { missing(layout, &req.root, &options) } else { Vec::new() };
    if !missing.is_empty() && matches!(refused, None | Some(Error::NothingMounted(_) | Error::AllExcluded(_))) {
        refused = Some(Error::Incomplete(missing.clone()));
    }
    if refused.is_none() {
        refused = options.check().err().map(Error::Selection);
    }
    // Expected size for the ETA: the used space of the filesystems backed up whole.
    let expected_bytes = layout
        .filesystems
        .iter()
        .filter(|f| f.mountpoints.iter().any(|m| options.paths.iter().any(|p| req.root.join(p) == Path::new(m))))
        .filter_map(|f| f.used)
        .sum();
    Selection { options, left_out, missing, expected_bytes, refused }
}

/// The filesystems mounted at or below `root` that a backup with `options`
/// would not hold: a filesystem of the layout left out of the paths, and a
/// mount of a recreated type on a device the layout has no filesystem on
/// (capture did not see it). Not missing: those on disks the layout
/// excludes, those the excludes cover, bind mounts of a directory (their
/// filesystem is mounted elsewhere too), and network filesystems.
fn missing(layout: &Layout, root: &Path, options: &BackupOptions) -> Vec<Missing> {
    let relative = |m: &str| {
        Path::new(m)
            .strip_prefix(root)
            .ok()
            .map(|r| if r.as_os_str().is_empty() { PathBuf::from(".") } else { r.into() })
    };
    let held = |r: &Path| {
        options.paths.iter().any(|p| p == r)
            || (r != Path::new(".") && options.excludes(std::os::unix::ffi::OsStrExt::as_bytes(r.as_os_str())))
    };
    let on_excluded_disk = |device: &str| layout.disk_of(device).is_some_and(|d| d.excluded.is_some());
    let mut out: Vec<Missing> = Vec::new();
    for f in layout.filesystems.iter().filter(|f| !on_excluded_disk(&f.device)) {
        for m in &f.mountpoints {
            if relative(m).is_some_and(|r| !held(&r)) {
                out.push(Missing {
                    mountpoint: m.clone(),
                    device: f.device.clone(),
                    fstype: f.fstype.clone(),
                    why: "the selection leaves it out".into(),
                });
            }
        }
    }
    let in_layout = |m: &str| layout.filesystems.iter().any(|f| f.mountpoints.iter().any(|x| x == m));
    for m in &layout.mounts {
        let whole = m.root == "/" || m.root.is_empty() || m.fstype == "btrfs";
        if !m.source.starts_with("/dev/") || !RECREATED.contains(&m.fstype.as_str()) || !whole {
            continue;
        }
        if in_layout(&m.target) || on_excluded_disk(&m.source) || out.iter().any(|o| o.mountpoint == m.target) {
            continue;
        }
        if relative(&m.target).is_some_and(|r| !held(&r)) {
            out.push(Missing {
                mountpoint: m.target.clone(),
                device: m.source.clone(),
                fstype: m.fstype.clone(),
                why: format!("the layout has no filesystem on {} (capture did not see it)", m.source),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layout with a root filesystem on sda, /srv on sdb, and /mnt/usb on an excluded disk.
    fn layout(root: &Path) -> Layout {
        let r = root.display();
        let text = format!(
            r#"format_version = 1
[meta]
hostname = "web1"
captured_at = "2026-01-01T00:00:00Z"
lifeboat_version = "0"
kernel_release = "6.1"
machine = "x86_64"

[[disk]]
id = "/dev/sda"
kind = "disk"
size = 1000000000
logical_sector_size = 512
physical_sector_size = 512

[[disk]]
id = "/dev/sdb"
kind = "disk"
size = 1000000000
logical_sector_size = 512
physical_sector_size = 512

[[disk]]
id = "/dev/sdc"
kind = "disk"
size = 1000000000
logical_sector_size = 512
physical_sector_size = 512
excluded = "removable"

[[filesystem]]
device = "/dev/sda"
fstype = "ext4"
used = 1000
depends_on = []
mountpoints = ["{r}"]

[[filesystem]]
device = "/dev/sdb"
fstype = "ext4"
used = 500
depends_on = []
mountpoints = ["{r}/srv"]

[[filesystem]]
device = "/dev/sdc"
fstype = "vfat"
depends_on = []
mountpoints = ["{r}/mnt/usb"]

[[swap]]
device = "{r}/swapfile"
file = true
size = 1048576
"#
        );
        Layout::parse(&text, Path::new("test.toml")).expect("layout")
    }

    fn config(tmp: &Path) -> Config {
        let mut c = Config::default();
        c.paths.work_dir = tmp.join("work");
        c.paths.output_dir = tmp.join("out");
        c.paths.key_dir = tmp.join("tree/etc/lifeboat");
        c
    }

    fn request(root: &Path, paths: &[&str]) -> Request {
        Request {
            url: String::new(),
            root: root.into(),
            paths: paths.iter().map(PathBuf::from).collect(),
            volume_size: 1 << 20,
        }
    }

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("tree");
        for d in ["srv", "mnt/usb", "etc/lifeboat"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        (tmp, root)
    }

    #[test]
    fn every_filesystem_mounted_is_selected_and_one_on_an_excluded_disk_is_left_out_with_its_notice() {
        let (tmp, root) = tree();
        let s = select(&layout(&root), &config(tmp.path()), &request(&root, &[]), None);
        assert_eq!(s.options.paths, vec![PathBuf::from("."), PathBuf::from("srv")]);
        assert_eq!(
            s.left_out,
            vec![LeftOut::ExcludedDisk {
                mountpoint: format!("{}/mnt/usb", root.display()),
                device: "/dev/sdc".into(),
                why: "removable".into()
            }]
        );
        assert_eq!(s.expected_bytes, 1500);
        let o = s.into_options().expect("usable");
        assert!(o.exclude.contains(&"swapfile".to_string()), "swap files are excluded: {:?}", o.exclude);
        assert!(o.exclude.contains(&"tmp/*".to_string()));
        assert!(o.exclude.contains(&"etc/lifeboat/signing.key*".to_string()), "{:?}", o.exclude);
    }

    #[test]
    fn a_filesystem_the_excludes_cover_is_left_out_and_all_excluded_is_an_error() {
        let (tmp, root) = tree();
        let mut c = config(tmp.path());
        c.backup.exclude = vec!["srv".into()];
        let s = select(&layout(&root), &c, &request(&root, &[]), None);
        assert!(s.left_out.contains(&LeftOut::Excluded { path: root.join("srv") }), "{:?}", s.left_out);
        assert_eq!(s.options.paths, vec![PathBuf::from(".")]);
        // From above the tree, every filesystem is below the root, and the excludes cover both.
        c.backup.exclude = vec!["tree".into(), "tree/srv".into()];
        let s = select(&layout(&root), &c, &request(tmp.path(), &[]), None);
        assert_eq!(s.left_out.len(), 3, "{:?}", s.left_out);
        let e = s.into_options().expect_err("nothing left").to_string();
        assert!(e.contains("every filesystem below") && e.contains("is excluded"), "{e}");
    }

    #[test]
    fn nothing_mounted_below_the_root_is_an_error() {
        let (tmp, root) = tree();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).expect("mkdir");
        let e = select(&layout(&root), &config(tmp.path()), &request(&elsewhere, &[]), None)
            .into_options()
            .expect_err("nothing")
            .to_string();
        assert!(e.starts_with("nothing to back up: no filesystem of the layout is mounted"), "{e}");
    }

    fn mount(l: &mut Layout, source: &str, target: &str, fstype: &str, root: &str) {
        l.mounts.push(lifeboat_layout::model::Mount {
            target: target.into(),
            source: source.into(),
            fstype: fstype.into(),
            options: "rw".into(),
            root: root.into(),
        });
    }

    #[test]
    fn a_mounted_filesystem_the_layout_lacks_is_missing_and_the_backup_refused_naming_it() {
        let (tmp, root) = tree();
        let r = root.display().to_string();
        let mut l = layout(&root);
        mount(&mut l, "/dev/sda", &r, "ext4", "/");
        mount(&mut l, "/dev/sdc", &format!("{r}/mnt/usb"), "vfat", "/");
        // Capture did not see /dev/sdd (an lsblk that failed): /data would not be backed up.
        mount(&mut l, "/dev/sdd1", &format!("{r}/data"), "xfs", "/");
        // Not missing: a bind mount of a directory, NFS, a filesystem recovery does not recreate, pseudo filesystems.
        mount(&mut l, "/dev/sdd1", &format!("{r}/srv/www"), "xfs", "/www");
        mount(&mut l, "nfs:/export", &format!("{r}/net"), "nfs4", "/");
        mount(&mut l, "/dev/sr0", &format!("{r}/media/cd"), "iso9660", "/");
        let s = select(&l, &config(tmp.path()), &request(&root, &[]), None);
        assert_eq!(
            s.missing,
            vec![Missing {
                mountpoint: format!("{r}/data"),
                device: "/dev/sdd1".into(),
                fstype: "xfs".into(),
                why: "the layout has no filesystem on /dev/sdd1 (capture did not see it)".into()
            }]
        );
        let e = s.into_options().expect_err("incomplete");
        assert!(matches!(e, Error::Incomplete(_)), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(&format!("{r}/data (xfs /dev/sdd1)")) && msg.contains("nothing was written"), "{msg}");
        assert!(msg.contains("backup.exclude") && msg.contains("layout.exclude_devices"), "the fix: {msg}");

        // Excluded by configuration: left out, not missing.
        let mut c = config(tmp.path());
        c.backup.exclude = vec!["data".into()];
        let s = select(&l, &c, &request(&root, &[]), None);
        assert!(s.missing.is_empty(), "{:?}", s.missing);
        assert!(s.into_options().is_ok());
        // Paths given explicitly: the person chose what the backup holds.
        let s = select(&l, &config(tmp.path()), &request(&root, &["srv"]), None);
        assert!(s.missing.is_empty() && s.into_options().is_ok());
    }

    #[test]
    fn a_layout_whose_capture_saw_no_filesystem_is_incomplete_not_nothing_mounted() {
        let (tmp, root) = tree();
        let r = root.display().to_string();
        let mut l = layout(&root);
        l.filesystems.clear();
        mount(&mut l, "/dev/vda1", &r, "ext4", "/");
        mount(&mut l, "/dev/vda3", &format!("{r}/home"), "ext4", "/");
        let e = select(&l, &config(tmp.path()), &request(&root, &[]), None).into_options().expect_err("incomplete");
        let msg = e.to_string();
        assert!(msg.contains(&format!("\n  - {r} (ext4 /dev/vda1)")), "{msg}");
        assert!(msg.contains(&format!("\n  - {r}/home (ext4 /dev/vda3)")), "{msg}");
    }

    #[test]
    fn explicit_paths_are_checked_against_the_root() {
        let (tmp, root) = tree();
        let (l, c) = (layout(&root), config(tmp.path()));
        let ok = select(&l, &c, &request(&root, &["srv"]), None);
        assert!(ok.left_out.is_empty());
        assert_eq!(ok.into_options().expect("srv").paths, vec![PathBuf::from("srv")]);
        let outside = select(&l, &c, &request(&root, &["../etc"]), None).into_options().expect_err("..");
        assert!(matches!(outside, Error::Selection(_)), "{outside}");
        let missing = select(&l, &c, &request(&root, &["nonexistent"]), None).into_options().expect_err("missing");
        assert_eq!(missing.to_string(), "nothing was backed up");
    }

    #[test]
    fn a_volume_below_the_minimum_and_the_target_directory_are_handled() {
        let (tmp, root) = tree();
        let mut req = request(&root, &[]);
        req.volume_size = 1000;
        let e = select(&layout(&root), &config(tmp.path()), &req, None).into_options().expect_err("small").to_string();
        assert!(e.contains("below the minimum") && e.contains("--volume-size 128K"), "{e}");
        let target = root.join("srv");
        let s = select(&layout(&root), &config(tmp.path()), &request(&root, &[]), Some(&target));
        assert_eq!(s.options.exclude_dirs.len(), 1, "the target directory, by device and inode");
    }
}
