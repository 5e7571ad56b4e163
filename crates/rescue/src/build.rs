//! `lifeboat mkrescue`: the whole build, from the configuration and the
//! saved layout to checksummed media.

use crate::initramfs::Compression;
use crate::kernel::{self, KernelChoice};
use crate::system::{gather, Contents};
use crate::{media, RescueError};
use lifeboat_config::Config;
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
    /// `iso`, `raw` or `pxe` (overrides `rescue.format`).
    pub format: Option<String>,
    /// Output directory (overrides `paths.output_dir`).
    pub output_dir: Option<PathBuf>,
    /// Make the unattended recovery the default boot entry.
    pub auto_recover: bool,
    /// More files for `/etc/lifeboat` in the rescue system (name, content),
    /// such as where the backup went.
    pub etc_files: Vec<(String, String)>,
    /// Files put on the ISO or raw image beside the boot files (source, path on the medium),
    /// such as the backup volumes.
    pub media_files: Vec<(PathBuf, String)>,
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
pub fn compression(setting: &str, kernel: &KernelChoice) -> Result<Compression, RescueError> {
    let supported = kernel::config_text(&kernel.version).map(|t| kernel::supported_compressions(&t));
    let has = |c: &str| supported.as_ref().is_none_or(|s| s.contains(&c));
    match setting {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip(6)),
        "zstd" if has("zstd") => Ok(Compression::Zstd(9)),
        "auto" if supported.as_ref().is_some_and(|s| s.contains(&"zstd")) => Ok(Compression::Zstd(9)),
        "auto" => Ok(Compression::Gzip(6)),
        other => Err(RescueError::Unsupported(format!(
            "rescue.compression = \"{other}\": kernel {} cannot unpack it (or this lifeboat cannot write it); use \"auto\", \"zstd\" or \"gzip\"",
            kernel.version
        ))),
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

/// Build the rescue media.
pub fn mkrescue(cfg: &Config, layout: &Layout, opts: &Options, r: &dyn Runner) -> Result<Report, RescueError> {
    let start = Instant::now();
    let format = opts.format.clone().unwrap_or_else(|| cfg.rescue.format.clone());
    if !["iso", "raw", "pxe"].contains(&format.as_str()) {
        return Err(RescueError::Unsupported(format!("format `{format}`: use iso, raw or pxe")));
    }
    let kernel = kernel::choose(opts.kernel.as_deref().or(cfg.rescue.kernel.as_deref()))?;
    log::info!("kernel {} ({}): {}", kernel.image.display(), kernel.version, kernel.reason);
    let comp = compression(&cfg.rescue.compression, &kernel)?;
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
        modules: cfg.rescue.modules.clone(),
        modules_list: cfg.rescue.modules_list.clone(),
        extra_modules: cfg.rescue.extra_modules.clone(),
        extra_programs: cfg.rescue.extra_programs.clone(),
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
    match format.as_str() {
        "iso" | "raw" => {
            let ext = if format == "iso" { "iso" } else { "img" };
            let out = out_dir.join(format!("lifeboat-{host}.{ext}"));
            let cfg_text = media::grub_cfg(&title, "/boot/vmlinuz", "/boot/initrd.img", opts.auto_recover);
            media::iso(
                r,
                &work.join("iso-root"),
                &media::IsoContent {
                    kernel: &kernel.image,
                    initrd: &initrd,
                    grub_cfg: &cfg_text,
                    extra: &opts.media_files,
                },
                &cfg.rescue.label,
                &out,
            )?;
            files.push(out);
        }
        _ => {
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
