//! `lifeboat mkrescue`: the whole build, from the configuration and the
//! saved layout to checksummed media.

use crate::initramfs::Compression;
use crate::kernel::{self, KernelChoice};
use crate::system::{gather, Contents};
use crate::{media, selfcheck, RescueError};
use lifeboat_config::{Config, InitramfsCompression, RescueFormat};
use lifeboat_layout::Layout;
use lifeboat_runner::Runner;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// What the command line adds to the configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Kernel image (overrides `rescue.kernel`).
    pub kernel: Option<PathBuf>,
    /// The medium's format (overrides `rescue.format`).
    pub format: Option<RescueFormat>,
    /// Output directory (overrides `paths.output_dir`).
    pub output_dir: Option<PathBuf>,
    /// Make the unattended recovery the default boot entry.
    pub auto_recover: bool,
    /// More files for `/etc/lifeboat` in the rescue system (name, content),
    /// such as where the backup went.
    pub etc_files: Vec<(String, String)>,
    /// Files put on the ISO or raw image beside the boot files (source, path on the medium),
    /// such as the backup's catalog.
    pub media_files: Vec<(PathBuf, String)>,
    /// Files that go on the first medium while it has room, then onto
    /// further data media (ISO files numbered 2..N), in this order.
    pub spill_files: Vec<(PathBuf, String)>,
    /// Capacity of one medium in bytes (no limit when None: all on one).
    pub medium_size: Option<u64>,
    /// The backup the media carry (its name), recorded in each ISO's embedded
    /// checksum field ([`crate::selfcheck`]); empty for a rescue medium alone.
    pub backup_id: String,
}

/// What each medium of a set holds; written to every medium as
/// `lifeboat-media.json`, so the rescue system knows what to look for.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MediaSet {
    /// This medium's number, 1-based.
    pub medium: u32,
    /// How many media the set has.
    pub of: u32,
    /// The volume label of each medium, in order.
    pub labels: Vec<String>,
    /// The paths (on the medium) of the spilled files on each medium, in order.
    pub files: Vec<Vec<String>>,
}

/// The name of the file that describes a media set, at the root of each medium.
pub const MEDIA_SET_FILE: &str = "lifeboat-media.json";

/// The label of medium `k` of a set whose first medium is labelled `label`
/// (ISO 9660 volume ids hold 32 characters).
pub fn medium_label(label: &str, k: u32) -> String {
    if k == 1 {
        return label.to_string();
    }
    let suffix = format!("_{k}");
    let keep: String = label.chars().take(32usize.saturating_sub(suffix.len())).collect();
    format!("{keep}{suffix}")
}

/// Room that the ISO 9660 structures and GRUB's boot images take besides the files.
const ISO_OVERHEAD: u64 = 24 << 20;

fn size_of(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Split `spill` over media of `capacity` bytes, the first of which
/// already holds `first_used` bytes. Files keep their order.
pub fn split_media(
    first_used: u64,
    spill: &[(PathBuf, String)],
    capacity: Option<u64>,
) -> Result<Vec<Vec<(PathBuf, String)>>, RescueError> {
    let Some(cap) = capacity else { return Ok(vec![spill.to_vec()]) };
    if first_used > cap {
        return Err(RescueError::Unsupported(format!(
            "the rescue system alone needs about {} MiB, more than one medium of {} MiB holds",
            first_used >> 20,
            cap >> 20
        )));
    }
    let mut media: Vec<Vec<(PathBuf, String)>> = vec![Vec::new()];
    let mut used = first_used;
    for f in spill {
        // Each file rounded up to the ISO block, plus its directory record.
        let need = size_of(&f.0).div_ceil(2048) * 2048 + 2048;
        if need + (1 << 20) > cap {
            return Err(RescueError::Unsupported(format!(
                "{} ({} MiB) does not fit on a medium of {} MiB: make the backup's volumes smaller",
                f.0.display(),
                need >> 20,
                cap >> 20
            )));
        }
        if used + need > cap {
            media.push(Vec::new());
            used = 1 << 20;
        }
        used += need;
        if let Some(m) = media.last_mut() {
            m.push(f.clone());
        }
    }
    Ok(media)
}

/// Embed the checksum into an ISO xorriso wrote; a medium that cannot carry
/// it is removed (nothing half-made stays behind looking complete).
fn implant(iso: &std::path::Path, pos: &selfcheck::Position) -> Result<(), RescueError> {
    let t = Instant::now();
    let done = selfcheck::implant(iso, pos);
    if done.is_err() {
        let _ = std::fs::remove_file(iso);
    }
    done?;
    log::info!(
        "{}: checksum embedded (medium {} of {}) in {:.1} s",
        iso.display(),
        pos.medium,
        pos.of,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What was built.
#[derive(Debug, Clone)]
pub struct Report {
    /// The kernel used, with the reason.
    pub kernel: KernelChoice,
    /// initramfs compression.
    pub compression: &'static str,
    /// Output files with their sizes (checksum files included).
    pub outputs: Vec<(PathBuf, u64)>,
    /// initramfs size compressed and uncompressed.
    pub initrd_size: (u64, u64),
    /// Programs, modules and firmware files included.
    pub programs: usize,
    /// Kernel modules included.
    pub modules: usize,
    /// Firmware files included.
    pub firmware: usize,
    /// Default programs the host does not have (left out).
    pub missing_programs: Vec<String>,
    /// Build time in seconds.
    pub seconds: f64,
}

/// Pick the initramfs compression from the config and the kernel's build options.
pub fn compression(setting: InitramfsCompression, kernel: &KernelChoice) -> Result<Compression, RescueError> {
    let supported = kernel::config_text(&kernel.version).map(|t| kernel::supported_compressions(&t));
    let has = |c: &str| supported.as_ref().is_none_or(|s| s.contains(&c));
    match setting {
        InitramfsCompression::None => Ok(Compression::None),
        InitramfsCompression::Gzip => Ok(Compression::Gzip(6)),
        InitramfsCompression::Zstd if has("zstd") => Ok(Compression::Zstd(9)),
        InitramfsCompression::Zstd => Err(RescueError::Unsupported(format!(
            "rescue.compression = \"zstd\": kernel {} cannot unpack it; use \"auto\" or \"gzip\"",
            kernel.version
        ))),
        InitramfsCompression::Auto if supported.as_ref().is_some_and(|s| s.contains(&"zstd")) => {
            Ok(Compression::Zstd(9))
        }
        InitramfsCompression::Auto => Ok(Compression::Gzip(6)),
    }
}

/// `/etc/lifeboat/net.static`: the original machine's static addresses (by MAC), routes and DNS.
pub fn net_static(l: &Layout) -> String {
    let mut s = String::new();
    for i in &l.network.interfaces {
        let statics: Vec<String> = i
            .addresses
            .iter()
            .filter(|a| !a.dynamic && a.family == "inet")
            .map(|a| format!("{}/{}", a.address, a.prefix))
            .collect();
        if let (Some(mac), false) = (&i.mac, statics.is_empty()) {
            let _ = writeln!(s, "addr {mac} {}", statics.join(" "));
        }
    }
    for r in &l.network.routes {
        if let (Some(gw), Some("static" | "boot")) = (&r.gateway, r.protocol.as_deref()) {
            let _ = writeln!(s, "route {} {gw}", r.destination);
        }
    }
    for n in &l.network.nameservers {
        let _ = writeln!(s, "dns {n}");
    }
    s
}

fn motd(l: &Layout, k: &KernelChoice) -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let tree = lifeboat_layout::show::tree(l);
    let stack: String = tree
        .lines()
        .skip(1)
        .take_while(|x| !x.starts_with("net:") && !x.starts_with("not captured"))
        .map(|x| format!("  {x}\n"))
        .collect();
    format!(
        "lifeboat rescue system for {host}\n\
         made {now} by lifeboat {ver} with kernel {kv}\n\
         \n\
         The machine as it was when this medium was made (layout of {captured}):\n{stack}\n\
         Nothing on the disks has been assembled, mounted or changed. What next:\n\
         \x20 lifeboat layout show /etc/lifeboat/layout.toml   the saved layout\n\
         \x20 lifeboat layout diff /etc/lifeboat/layout.toml   how the disks here differ from it\n\
         \x20 lifeboat recover                                 rebuild the machine (when this lifeboat has it)\n\
         \x20 mdadm, lvm, cryptsetup, sfdisk, mkfs.*, grub-install, ssh, rsync are here for manual work.\n",
        host = l.meta.hostname,
        ver = env!("CARGO_PKG_VERSION"),
        kv = k.version,
        captured = l.meta.captured_at,
    )
}

fn read_root_hash() -> Result<String, RescueError> {
    let shadow = std::fs::read_to_string("/etc/shadow").map_err(|source| RescueError::Io {
        what: "cannot read /etc/shadow (rescue.root_password = true)".into(),
        source,
    })?;
    shadow
        .lines()
        .find_map(|l| l.strip_prefix("root:"))
        .and_then(|rest| rest.split(':').next())
        .map(String::from)
        .ok_or_else(|| RescueError::Missing("root's entry in /etc/shadow (rescue.root_password = true)".into()))
}

/// The programs a rescue system must carry, beyond its defaults: the
/// configured `rescue.extra_programs`, and what recovering this layout
/// cannot do without (ntfsclone for the images of NTFS partitions).
pub fn layout_programs(layout: &Layout, extra: &[String]) -> Vec<String> {
    let mut v = extra.to_vec();
    let ntfs = layout.images.iter().any(|i| i.kind == lifeboat_layout::model::ImageKind::Ntfs);
    if ntfs && !v.iter().any(|p| p == "ntfsclone") {
        v.push("ntfsclone".into());
    }
    v
}

/// Build the rescue media.
pub fn mkrescue(cfg: &Config, layout: &Layout, opts: &Options, r: &dyn Runner) -> Result<Report, RescueError> {
    let start = Instant::now();
    let format = opts.format.unwrap_or(cfg.rescue.format);
    let kernel = kernel::choose(opts.kernel.as_deref().or(cfg.rescue.kernel.as_deref()))?;
    log::info!("kernel {} ({}): {}", kernel.image.display(), kernel.version, kernel.reason);
    let comp = compression(cfg.rescue.compression, &kernel)?;
    let out_dir = opts.output_dir.clone().unwrap_or_else(|| cfg.paths.output_dir.clone());
    let work = cfg.paths.work_dir.join("rescue");
    let io = |what: String| move |source| RescueError::Io { what, source };
    for d in [&out_dir, &work] {
        std::fs::create_dir_all(d).map_err(io(format!("cannot create {}", d.display())))?;
    }
    let authorized_keys = if cfg.rescue.ssh_authorized_keys {
        let f = &cfg.rescue.authorized_keys_file;
        Some(std::fs::read_to_string(f).map_err(io(format!(
            "cannot read {} (rescue.ssh_authorized_keys = true; set rescue.authorized_keys_file)",
            f.display()
        )))?)
    } else {
        None
    };
    let contents = Contents {
        kernel: kernel.clone(),
        modules: cfg.rescue.modules,
        modules_list: cfg.rescue.modules_list.clone(),
        extra_modules: cfg.rescue.extra_modules.clone(),
        extra_programs: layout_programs(layout, &cfg.rescue.extra_programs),
        extra_files: cfg.rescue.extra_files.clone(),
        lifeboat: std::env::current_exe().map_err(io("cannot find the lifeboat binary".into()))?,
        lifeboat_files: [
            ("layout.toml".to_string(), layout.to_toml()),
            ("lifeboat.toml".to_string(), cfg.to_toml()),
            ("layout.txt".to_string(), lifeboat_layout::show::tree(layout)),
        ]
        .into_iter()
        .chain(opts.etc_files.iter().cloned())
        .collect(),
        hostname: layout.meta.hostname.clone(),
        motd: motd(layout, &kernel),
        net_static: net_static(layout),
        root_password_hash: if cfg.rescue.root_password { Some(read_root_hash()?) } else { None },
        authorized_keys,
        work_dir: work.clone(),
    };
    let (tree, gathered) = gather(&contents, r)?;
    let initrd = work.join("initrd.img");
    let tmp = work.join("initrd.img.part");
    let f = std::fs::File::create(&tmp).map_err(io(format!("cannot create {}", tmp.display())))?;
    let raw_size =
        tree.write_to(std::io::BufWriter::new(f), comp).map_err(io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, &initrd).map_err(io(format!("cannot rename {}", tmp.display())))?;
    let initrd_size = std::fs::metadata(&initrd).map(|m| m.len()).unwrap_or(0);
    log::info!("initramfs: {} entries, {} MiB, {} MiB {}", tree.len(), raw_size >> 20, initrd_size >> 20, comp.name());

    let host = layout.meta.hostname.clone();
    let title = format!("lifeboat rescue system for {host}");
    let mut files = Vec::new();
    match format {
        RescueFormat::Iso | RescueFormat::Raw => {
            let ext = if format == RescueFormat::Iso { "iso" } else { "img" };
            let out = out_dir.join(format!("lifeboat-{host}.{ext}"));
            let cfg_text = media::grub_cfg(&title, "/boot/vmlinuz", "/boot/initrd.img", opts.auto_recover);
            // What does not spill: the boot files and the fixed extras.
            let first_used = size_of(&kernel.image)
                + initrd_size
                + opts.media_files.iter().map(|f| size_of(&f.0)).sum::<u64>()
                + ISO_OVERHEAD;
            let split = split_media(first_used, &opts.spill_files, opts.medium_size)?;
            let of = split.len() as u32;
            let labels: Vec<String> = (1..=of).map(|k| medium_label(&cfg.rescue.label, k)).collect();
            let set = |k: u32| MediaSet {
                medium: k,
                of,
                labels: labels.clone(),
                files: split.iter().map(|m| m.iter().map(|f| f.1.clone()).collect()).collect(),
            };
            let describe = |k: u32| -> Result<(PathBuf, String), RescueError> {
                let p = work.join(format!("media-{k}.json"));
                let text =
                    serde_json::to_string_pretty(&set(k)).map_err(|e| RescueError::Unsupported(e.to_string()))?;
                std::fs::write(&p, text).map_err(io(format!("cannot write {}", p.display())))?;
                Ok((p, MEDIA_SET_FILE.to_string()))
            };
            let mut extra = opts.media_files.clone();
            extra.extend(split[0].iter().cloned());
            if !opts.spill_files.is_empty() {
                extra.push(describe(1)?);
            }
            media::iso(
                r,
                &work.join("iso-root"),
                &media::IsoContent { kernel: &kernel.image, initrd: &initrd, grub_cfg: &cfg_text, extra: &extra },
                &labels[0],
                &out,
            )?;
            if let Some(cap) = opts.medium_size.filter(|c| size_of(&out) > *c) {
                let _ = std::fs::remove_file(&out);
                return Err(RescueError::Unsupported(format!(
                    "the first medium came out at {} MiB, more than the {} MiB one holds",
                    size_of(&out) >> 20,
                    cap >> 20
                )));
            }
            // Every ISO checks itself: its checksum and place in the set, embedded.
            let position = |k: u32| selfcheck::Position { medium: k, of, backup: opts.backup_id.clone() };
            implant(&out, &position(1))?;
            files.push(out);
            // Media 2..N: plain ISO 9660 data discs.
            for (i, m) in split.iter().enumerate().skip(1) {
                let k = i as u32 + 1;
                let out = out_dir.join(format!("lifeboat-{host}-{k}.iso"));
                let mut content = m.clone();
                content.push(describe(k)?);
                media::data_iso(r, &content, &labels[i], &out)?;
                implant(&out, &position(k))?;
                files.push(out);
            }
        }
        RescueFormat::Pxe => {
            files.extend(media::pxe(&out_dir.join(format!("lifeboat-{host}-pxe")), &kernel.image, &initrd, &title)?);
        }
    }
    let mut outputs = Vec::new();
    for f in files {
        let sum = media::write_checksum(&f)?;
        for p in [f, sum] {
            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            outputs.push((p, size));
        }
    }
    let _ = std::fs::remove_dir_all(work.join("iso-root"));
    let _ = std::fs::remove_dir_all(work.join("modules-stage"));
    Ok(Report {
        kernel,
        compression: comp.name(),
        outputs,
        initrd_size: (initrd_size, raw_size),
        programs: gathered.programs,
        modules: gathered.modules,
        firmware: gathered.firmware,
        missing_programs: gathered.missing_programs,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_with_an_ntfs_partition_needs_ntfsclone_in_the_rescue_system() {
        let head = "format_version = 1\n[meta]\nhostname = \"h\"\ncaptured_at = \"\"\nlifeboat_version = \"\"\nkernel_release = \"\"\nmachine = \"\"\n";
        let with = |kind: &str| {
            let t = format!("{head}\n[[image]]\ndevice = \"/dev/sda3\"\nkind = \"{kind}\"\nsize = 1048576\n");
            Layout::parse(&t, std::path::Path::new("l.toml")).expect("layout")
        };
        let extra = vec!["mtx".to_string()];
        assert_eq!(layout_programs(&with("ntfs"), &extra), ["mtx", "ntfsclone"]);
        assert_eq!(layout_programs(&with("raw"), &extra), ["mtx"]);
        let plain = Layout::parse(head, std::path::Path::new("l.toml")).expect("layout");
        assert!(layout_programs(&plain, &[]).is_empty());
        assert_eq!(layout_programs(&with("ntfs"), &["ntfsclone".into()]), ["ntfsclone"], "named once");
    }

    #[test]
    fn a_set_fills_the_first_medium_after_the_rescue_system_then_the_next_ones() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<(PathBuf, String)> = (1..=9)
            .map(|n| {
                let p = dir.path().join(format!("vol-{n:04}"));
                std::fs::File::create(&p).unwrap().set_len(25 << 20).unwrap();
                (p, format!("backup/h/s/vol-{n:04}"))
            })
            .collect();
        let media = split_media(95 << 20, &files, Some(200 << 20)).unwrap();
        let counts: Vec<usize> = media.iter().map(Vec::len).collect();
        assert_eq!(counts, vec![4, 5], "order kept, first medium filled after the rescue system");
        assert_eq!(media[1][0].1, "backup/h/s/vol-0005");
        assert_eq!(split_media(95 << 20, &files, None).unwrap().len(), 1, "no medium size: one medium");
        let e = split_media(95 << 20, &files, Some(20 << 20)).unwrap_err().to_string();
        assert!(e.contains("rescue system alone"), "{e}");
        let e = split_media(1 << 20, &files, Some(20 << 20)).unwrap_err().to_string();
        assert!(e.contains("vol-0001") && e.contains("smaller"), "{e}");
    }

    #[test]
    fn labels_of_further_media_are_numbered_within_32_characters() {
        assert_eq!(medium_label("LIFEBOAT", 1), "LIFEBOAT");
        assert_eq!(medium_label("LIFEBOAT", 2), "LIFEBOAT_2");
        let long = "A".repeat(32);
        assert_eq!(medium_label(&long, 12).len(), 32);
        assert!(medium_label(&long, 12).ends_with("_12"));
    }
}
