//! What goes into the rescue system, gathered from this host: its kernel
//! modules, its own programs with their libraries, the saved layout and
//! lifeboat itself, plus the rescue system's init and network scripts.

use crate::elf::Resolver;
use crate::initramfs::Tree;
use crate::kernel::KernelChoice;
use crate::modules::{firmware_of, ModuleIndex};
use crate::RescueError;
use lifeboat_config::ModuleSet;
use lifeboat_runner::{Cmd, Runner};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Programs for recovery work, each included when the host has it.
#[rustfmt::skip]
pub const DEFAULT_PROGRAMS: &[&str] = &[
    // shell, core utilities, editors, pagers
    "bash", "sh", "ls", "cat", "cp", "mv", "rm", "ln", "mkdir", "rmdir", "chmod", "chown", "chgrp", "stat",
    "touch", "sync", "dd", "head", "tail", "grep", "sed", "awk", "find", "xargs", "sort", "uniq", "wc", "tr",
    "cut", "env", "md5sum", "sha256sum", "truncate", "diff", "cmp", "od", "mknod", "uname", "id", "date",
    "readlink", "realpath", "du", "df", "tee", "chroot", "less", "more", "vi", "vim.tiny", "nano", "file",
    "strace", "lsof", "ps", "free", "kill", "dmesg", "hostname", "stty", "tput", "clear", "reset", "setsid",
    // util-linux and partitioning
    "mount", "umount", "lsblk", "blkid", "sfdisk", "fdisk", "cfdisk", "sgdisk", "gdisk", "parted", "partprobe",
    "losetup", "wipefs", "mkswap", "swapon", "swapoff", "findmnt", "partx", "blockdev", "fsck", "switch_root",
    "fsfreeze", "fstrim", "lscpu", "lspci", "lsusb", "hdparm", "smartctl",
    // filesystems
    "mke2fs", "mkfs.ext2", "mkfs.ext3", "mkfs.ext4", "e2fsck", "fsck.ext2", "fsck.ext3", "fsck.ext4", "tune2fs",
    "dumpe2fs", "debugfs", "resize2fs", "e2label", "mkfs.xfs", "xfs_repair", "xfs_info", "xfs_db", "xfs_admin",
    "xfs_growfs", "xfs_spaceman", "fsck.xfs", "btrfs", "mkfs.btrfs", "btrfstune", "fsck.btrfs", "mkfs.fat",
    "mkfs.vfat", "fsck.fat", "fsck.vfat", "fatlabel", "dosfslabel", "ntfsfix", "ntfsclone", "ntfsresize",
    "ntfsinfo", "blkdiscard",
    // RAID, LVM, device-mapper, LUKS
    "mdadm", "lvm", "pvcreate", "pvs", "pvscan", "vgcreate", "vgs", "vgscan", "vgchange", "vgcfgrestore",
    "lvcreate", "lvs", "lvchange", "lvextend", "dmsetup", "thin_check", "thin_repair", "thin_dump", "cache_check",
    "cryptsetup",
    // boot
    "grub-install", "grub-probe", "grub-mkimage", "grub-editenv", "efibootmgr",
    // archives, network, remote
    "tar", "zstd", "gzip", "gunzip", "zcat", "xz", "cpio", "ip", "ping", "ss", "ssh", "scp", "sshd", "ssh-keygen",
    "rsync", "curl", "wget", "mount.nfs", "mount.nfs4",
    // tape drives and changers, local or on iSCSI (the st, ch and iSCSI drivers are under drivers/scsi)
    "mt", "mt-st", "mtx", "sg_map", "sg_inq", "iscsiadm", "iscsid",
    // modules and attributes
    "modprobe", "insmod", "rmmod", "lsmod", "modinfo", "depmod", "setfacl", "getfacl", "setfattr", "getfattr",
    "setcap", "getcap", "loadkeys", "setfont",
    // manual pages
    "man", "nroff", "groff", "troff", "grotty", "preconv", "tbl", "col",
];

/// Manual pages of configuration files recovery work touches.
const CONFIG_MAN_PAGES: &[&str] = &["fstab.5", "crypttab.5", "mdadm.conf.5", "lvm.conf.5", "lvm.8", "dm-crypt.8"];

/// Module directories included by `modules = "loaded"`: every storage,
/// filesystem, network and USB/HID driver, so the medium works on other hardware.
#[rustfmt::skip]
pub const DRIVER_DIRS: &[&str] = &[
    "kernel/drivers/ata/", "kernel/drivers/scsi/", "kernel/drivers/nvme/", "kernel/drivers/block/",
    "kernel/drivers/md/", "kernel/drivers/virtio/", "kernel/drivers/usb/", "kernel/drivers/hid/",
    "kernel/drivers/mmc/", "kernel/drivers/message/", "kernel/drivers/cdrom/", "kernel/drivers/firmware/",
    "kernel/drivers/input/keyboard/", "kernel/drivers/input/serio/", "kernel/drivers/net/ethernet/",
    "kernel/drivers/char/virtio_console", "kernel/drivers/char/hw_random/", "kernel/fs/", "kernel/crypto/",
    "kernel/lib/", "kernel/arch/x86/crypto/", "kernel/net/packet/", "kernel/net/9p/", "kernel/net/sunrpc/", "kernel/drivers/net/",
];

/// Modules loaded at boot whatever the hardware: what recovery needs.
#[rustfmt::skip]
pub const BOOT_MODULES: &[&str] = &[
    "crc32c_generic", "ext4", "xfs", "btrfs", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "isofs", "loop",
    "dm_mod", "dm_crypt", "dm_thin_pool", "dm_snapshot", "dm_mirror", "dm_raid", "md_mod", "raid0", "raid1",
    "raid10", "raid456", "algif_skcipher", "xts", "sha256_generic", "sr_mod", "sd_mod", "af_packet", "efivarfs",
];

/// Minimal LVM configuration for a system without udev.
pub const LVM_CONF: &str = "# lifeboat: no udev here\n\
devices {\n  obtain_device_list_from_udev = 0\n  external_device_info_source = \"none\"\n}\n\
activation {\n  udev_sync = 0\n  udev_rules = 0\n  verify_udev_operations = 1\n  monitoring = 0\n}\n";

/// Everything the rescue system is built from.
#[derive(Debug, Clone)]
pub struct Contents {
    /// The kernel whose modules go in.
    pub kernel: KernelChoice,
    /// Which modules.
    pub modules: ModuleSet,
    /// Modules for `ModuleSet::List`.
    pub modules_list: Vec<String>,
    /// Modules added in any case.
    pub extra_modules: Vec<String>,
    /// Extra programs (names or paths).
    pub extra_programs: Vec<String>,
    /// Extra files or directories.
    pub extra_files: Vec<PathBuf>,
    /// The lifeboat binary to include.
    pub lifeboat: PathBuf,
    /// Files for /etc/lifeboat: (name, contents).
    pub lifeboat_files: Vec<(String, String)>,
    /// The host name of the machine.
    pub hostname: String,
    /// The banner (/etc/motd).
    pub motd: String,
    /// `/etc/lifeboat/net.static` (static addresses, routes, DNS of the original machine).
    pub net_static: String,
    /// root's password hash, when configured.
    pub root_password_hash: Option<String>,
    /// root's authorized_keys, when configured (enables sshd).
    pub authorized_keys: Option<String>,
    /// Scratch directory for staging modules.
    pub work_dir: PathBuf,
}

/// What was gathered, for the report.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// Programs included.
    pub programs: usize,
    /// Default programs the host does not have.
    pub missing_programs: Vec<String>,
    /// Kernel modules included.
    pub modules: usize,
    /// Firmware files included.
    pub firmware: usize,
}

/// Find a program by name on PATH and in the usual directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name)).filter(|p| p.exists());
    }
    lifeboat_runner::which(name).or_else(|| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().map(|d| Path::new(d).join(name)).find(|p| p.exists())
    })
}

/// A program a rescue build cannot do without, and what it is needed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Required {
    /// The program's name (or path, for `rescue.extra_programs`).
    pub program: String,
    /// What it is needed for, for messages.
    pub why: String,
}

/// What a rescue build of `format` with these `rescue.extra_programs` fails
/// without: busybox (the rescue system's shell and tools), the image tools
/// of ISO and raw media (grub-mkrescue, xorriso, mtools), and each extra
/// program. `lifeboat check` checks these, and mkbackup before its backup.
pub fn required_programs(format: lifeboat_config::RescueFormat, extra_programs: &[String]) -> Vec<Required> {
    let need = |program: &str, why: &str| Required { program: program.into(), why: why.into() };
    let mut v = vec![need("busybox", "the rescue system's shell and tools")];
    if format.is_bootable_medium() {
        v.push(need("grub-mkrescue", "the bootable rescue image"));
        v.push(need("xorriso", "the bootable rescue image"));
        v.push(need("mformat", "the EFI boot image of the rescue medium"));
        v.push(need("mcopy", "the EFI boot image of the rescue medium"));
    }
    v.extend(extra_programs.iter().map(|p| need(p, "rescue.extra_programs")));
    v
}

/// Fail, naming each missing program with its package, when this machine
/// lacks any of [`required_programs`] (looked up as the build looks them up).
pub fn check_required(format: lifeboat_config::RescueFormat, extra_programs: &[String]) -> Result<(), RescueError> {
    let missing: Vec<String> = required_programs(format, extra_programs)
        .into_iter()
        .filter(|r| find_program(&r.program).is_none())
        .map(|r| match lifeboat_runner::tool(&r.program) {
            Some(t) => format!("{} (for {}; apt-get install {})", r.program, r.why, t.debian),
            None => format!("{} (for {})", r.program, r.why),
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RescueError::Missing(format!(
            "{}; nothing was done: the rescue build needs them (`lifeboat check` lists what is missing)",
            missing.join(", ")
        )))
    }
}

/// Add a host file at its host path (following the host's symlinked directories).
fn add(t: &mut Tree, p: &Path) -> Result<(), RescueError> {
    t.host_path(p).map_err(|source| RescueError::Io { what: format!("cannot add {}", p.display()), source })
}

/// Build the rescue system's file tree.
pub fn gather(c: &Contents, r: &dyn Runner) -> Result<(Tree, Gathered), RescueError> {
    let mut t = Tree::new();
    let mut g = Gathered::default();
    for d in ["/proc", "/sys", "/dev", "/run", "/tmp", "/mnt", "/root", "/etc", "/var/log", "/var/tmp"] {
        t.mkdir(Path::new(d));
    }
    t.merged_usr_links();
    t.char_device(Path::new("/dev/console"), 0o600, 5, 1);
    t.char_device(Path::new("/dev/null"), 0o666, 1, 3);
    let busybox = find_program("busybox")
        .ok_or_else(|| RescueError::Missing("busybox (apt-get install busybox-static)".into()))?;
    t.busybox(r, &busybox, Path::new("/busybox"))
        .map_err(|source| RescueError::Io { what: "cannot add busybox".into(), source })?;

    // Programs and their libraries.
    let mut programs = Vec::new();
    for name in DEFAULT_PROGRAMS {
        match find_program(name) {
            Some(p) => programs.push(p),
            None => g.missing_programs.push(name.to_string()),
        }
    }
    for name in &c.extra_programs {
        programs.push(
            find_program(name)
                .ok_or_else(|| RescueError::Missing(format!("program `{name}` from rescue.extra_programs")))?,
        );
    }
    programs.push(c.lifeboat.clone());
    let resolver = Resolver::default();
    for f in resolver.closure(&programs)? {
        add(&mut t, &f)?;
    }
    g.programs = programs.len();
    // Loaded at run time, so no ELF header names them: NSS, DNS, unwinding.
    for lib in ["libnss_files.so.2", "libnss_dns.so.2", "libresolv.so.2", "libgcc_s.so.1"] {
        if let Some(p) = resolver.system_dirs.iter().map(|d| d.join(lib)).find(|p| p.exists()) {
            for f in resolver.closure(&[p])? {
                add(&mut t, &f)?;
            }
        }
    }
    // lifeboat under its usual name too.
    t.host_file_as(&c.lifeboat, Path::new("/usr/sbin/lifeboat"), 0o755);
    // GRUB's modules for reinstalling a bootloader.
    if t.contains(Path::new("/usr/sbin/grub-install")) || find_program("grub-install").is_some() {
        for d in ["/usr/lib/grub/i386-pc", "/usr/lib/grub/x86_64-efi"] {
            if Path::new(d).is_dir() {
                t.host_dir(Path::new(d))
                    .map_err(|source| RescueError::Io { what: format!("cannot add {d}"), source })?;
            }
        }
    }
    // Manual pages for the tools that are here, and what man needs to show them.
    if t.contains(Path::new("/usr/bin/man")) {
        for d in ["/usr/share/groff", "/etc/groff", "/usr/lib/locale/C.utf8"] {
            if Path::new(d).is_dir() {
                t.host_dir(Path::new(d))
                    .map_err(|source| RescueError::Io { what: format!("cannot add {d}"), source })?;
            }
        }
        for f in ["/etc/manpath.config"] {
            if Path::new(f).exists() {
                add(&mut t, Path::new(f))?;
            }
        }
        let names = programs.iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        let mut pages: Vec<String> =
            names.flat_map(|n| ["1", "5", "8"].map(|sec| format!("/usr/share/man/man{sec}/{n}.{sec}.gz"))).collect();
        pages.extend(CONFIG_MAN_PAGES.iter().map(|p| format!("/usr/share/man/man{}/{p}.gz", &p[p.len() - 1..])));
        for p in pages.iter().map(Path::new).filter(|p| p.exists()) {
            add(&mut t, p)?;
        }
    }
    // Terminal descriptions for the shells and editors.
    for base in ["/lib/terminfo", "/usr/share/terminfo"] {
        for entry in ["l/linux", "v/vt100", "v/vt102", "v/vt220", "x/xterm", "x/xterm-256color", "s/screen", "d/dumb"] {
            let p = Path::new(base).join(entry);
            if p.exists() {
                add(&mut t, &p)?;
            }
        }
    }
    // The console keymap, when the host has one prepared.
    for p in ["/etc/console-setup/cached_UTF-8_del.kmap.gz", "/etc/default/keyboard"] {
        if Path::new(p).exists() {
            add(&mut t, Path::new(p))?;
        }
    }
    for f in &c.extra_files {
        if f.is_dir() {
            t.host_dir(f).map_err(|source| RescueError::Io { what: format!("cannot add {}", f.display()), source })?;
        } else {
            add(&mut t, f)
                .map_err(|_| RescueError::Missing(format!("file {} from rescue.extra_files", f.display())))?;
        }
    }

    modules(c, r, &mut t, &mut g)?;
    system_files(c, &mut t);
    Ok((t, g))
}

fn modules(c: &Contents, r: &dyn Runner, t: &mut Tree, g: &mut Gathered) -> Result<(), RescueError> {
    let idx = ModuleIndex::load(&c.kernel.modules_dir)?;
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    match c.modules {
        ModuleSet::All => wanted.extend(idx.entries().map(|(n, _)| n.clone())),
        ModuleSet::List => wanted.extend(c.modules_list.iter().cloned()),
        ModuleSet::Loaded => {
            let loaded = std::fs::read_to_string("/proc/modules").unwrap_or_default();
            wanted.extend(loaded.lines().filter_map(|l| l.split_whitespace().next()).map(String::from));
            for (name, rel) in idx.entries() {
                let in_dir = DRIVER_DIRS.iter().any(|d| rel.starts_with(d));
                // drivers/net: the top level (virtio_net, bonding) and ethernet, not wireless.
                let wireless = rel.contains("/wireless/") || rel.starts_with("kernel/drivers/net/wwan/");
                if in_dir && !wireless {
                    wanted.insert(name.clone());
                }
            }
        }
    }
    wanted.extend(c.extra_modules.iter().cloned());
    wanted.extend(BOOT_MODULES.iter().filter(|m| idx.knows(m)).map(|m| m.to_string()));
    // Loaded modules that the chosen kernel lacks (another version is running) are skipped.
    let names: Vec<&str> = wanted.iter().map(String::as_str).filter(|m| idx.knows(m)).collect();
    for m in c.extra_modules.iter().chain(&c.modules_list) {
        if !idx.knows(m) {
            return Err(RescueError::Missing(format!(
                "kernel module `{m}` (not in {}/modules.dep nor built in)",
                c.kernel.modules_dir.display()
            )));
        }
    }
    let order = idx.load_order(&names)?;
    g.modules = order.len();

    // Stage the chosen modules and let depmod write indexes that list only them.
    let stage = c.work_dir.join("modules-stage");
    let _ = std::fs::remove_dir_all(&stage);
    let mdir = stage.join("lib/modules").join(&c.kernel.version);
    let io = |what: String| move |source| RescueError::Io { what, source };
    let mut firmware = BTreeSet::new();
    for rel in &order {
        let src = c.kernel.modules_dir.join(rel);
        let dst = mdir.join(rel);
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).map_err(io(format!("cannot create {}", p.display())))?;
        }
        if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).map_err(io(format!("cannot copy {}", src.display())))?;
        }
        firmware.extend(firmware_of(&src));
    }
    for f in ["modules.order", "modules.builtin", "modules.builtin.modinfo"] {
        let src = c.kernel.modules_dir.join(f);
        if src.exists() {
            std::fs::copy(&src, mdir.join(f)).map_err(io(format!("cannot copy {}", src.display())))?;
        }
    }
    r.apply(&Cmd::new("depmod").args(["-b".as_ref(), stage.as_os_str(), c.kernel.version.as_ref()]))?;
    // Install at the host's real modules path (/usr/lib/modules on merged-/usr systems).
    let real = std::fs::canonicalize("/lib/modules").unwrap_or_else(|_| PathBuf::from("/lib/modules"));
    add(t, Path::new("/lib/modules"))?;
    add_tree(t, &mdir, &real.join(&c.kernel.version))?;
    for fw in firmware {
        for suffix in ["", ".zst", ".xz"] {
            let p = PathBuf::from(format!("/lib/firmware/{fw}{suffix}"));
            if p.exists() {
                add(t, &p)?;
                g.firmware += 1;
            }
        }
    }
    let boot: Vec<&str> = BOOT_MODULES.iter().copied().filter(|m| idx.knows(m)).collect();
    t.data(Path::new("/etc/lifeboat/modules.boot"), boot.join("\n") + "\n", 0o644);
    Ok(())
}

/// Add a staged directory's files under `dest`.
fn add_tree(t: &mut Tree, src: &Path, dest: &Path) -> Result<(), RescueError> {
    let entries = std::fs::read_dir(src)
        .map_err(|source| RescueError::Io { what: format!("cannot read {}", src.display()), source })?;
    t.mkdir(dest);
    for e in entries.flatten() {
        let p = e.path();
        let d = dest.join(e.file_name());
        if p.is_dir() {
            add_tree(t, &p, &d)?;
        } else {
            t.host_file_as(&p, &d, 0o644);
        }
    }
    Ok(())
}

fn system_files(c: &Contents, t: &mut Tree) {
    let etc = |t: &mut Tree, p: &str, data: &str, mode: u32| t.data(Path::new(p), data.to_string(), mode);
    etc(t, "/init", include_str!("assets/init"), 0o755);
    etc(t, "/etc/lifeboat/rc.sysinit", include_str!("assets/rc.sysinit"), 0o755);
    etc(t, "/etc/lifeboat/network.sh", include_str!("assets/network.sh"), 0o755);
    etc(t, "/etc/lifeboat/udhcpc.script", include_str!("assets/udhcpc.script"), 0o755);
    etc(t, "/etc/lifeboat/shell", include_str!("assets/shell"), 0o755);
    etc(t, "/etc/lifeboat/net.static", &c.net_static, 0o644);
    etc(t, "/root/.bash_profile", include_str!("assets/bash_profile"), 0o644);
    etc(t, "/root/.bashrc", "PS1='rescue:\\w# '\n", 0o644);
    etc(t, "/etc/motd", &c.motd, 0o644);
    etc(t, "/etc/hostname", &format!("{}\n", c.hostname), 0o644);
    etc(t, "/etc/hosts", &format!("127.0.0.1 localhost\n127.0.1.1 {}\n::1 localhost\n", c.hostname), 0o644);
    etc(t, "/etc/resolv.conf", "", 0o644);
    etc(t, "/etc/fstab", "# lifeboat rescue system: nothing is mounted from disk by itself\n", 0o644);
    etc(t, "/etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n", 0o644);
    etc(t, "/etc/lvm/lvm.conf", LVM_CONF, 0o644);
    // Never assemble arrays by itself: recovery decides what to build.
    etc(t, "/etc/mdadm/mdadm.conf", "AUTO -all\n", 0o644);
    etc(t, "/etc/shells", "/bin/bash\n/bin/sh\n", 0o644);
    // Users and groups: root and the ones programs here need, so nothing says "I have no name!".
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/bash\n");
    let mut group = String::from("root:x:0:\ntty:x:5:\ndisk:x:6:\nshadow:x:42:\nutmp:x:43:\n");
    if c.authorized_keys.is_some() {
        passwd.push_str("sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n");
    }
    passwd.push_str("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    group.push_str("nogroup:x:65534:\n");
    etc(t, "/etc/passwd", &passwd, 0o644);
    etc(t, "/etc/group", &group, 0o644);
    let hash = c.root_password_hash.as_deref().unwrap_or("*");
    etc(t, "/etc/shadow", &format!("root:{hash}:20000:0:99999:7:::\n"), 0o600);
    if let Some(keys) = &c.authorized_keys {
        etc(t, "/root/.ssh/authorized_keys", keys, 0o600);
        etc(
            t,
            "/etc/ssh/sshd_config",
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPrintMotd yes\nSubsystem sftp internal-sftp\n",
            0o644,
        );
        etc(t, "/etc/lifeboat/sshd.enabled", "", 0o644);
    }
    for (name, text) in &c.lifeboat_files {
        t.data(&Path::new("/etc/lifeboat").join(name), text.clone(), 0o600);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_config::RescueFormat;

    #[test]
    fn the_image_tools_are_required_for_bootable_media_only_and_extra_programs_always() {
        let names = |f, extra: &[String]| -> Vec<String> {
            required_programs(f, extra).into_iter().map(|r| r.program).collect()
        };
        assert_eq!(names(RescueFormat::Pxe, &[]), ["busybox"]);
        let iso = names(RescueFormat::Iso, &["site-tool".to_string()]);
        assert_eq!(iso, ["busybox", "grub-mkrescue", "xorriso", "mformat", "mcopy", "site-tool"]);
        assert_eq!(names(RescueFormat::Raw, &[]).len(), 5);
    }

    #[test]
    fn a_missing_program_is_named_with_what_it_is_for() {
        let e = check_required(RescueFormat::Pxe, &["/nonexistent/site-tool".to_string()]).expect_err("missing");
        let text = e.to_string();
        assert!(text.contains("/nonexistent/site-tool (for rescue.extra_programs)"), "{text}");
        assert!(text.contains("nothing was done"), "{text}");
    }
}
