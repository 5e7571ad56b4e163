//! `lifeboat check`: one line per requirement, Passed / Failed / Not needed,
//! and for every failure the fix. Like mkcdrec's `make test`.

use lifeboat_config::{human, Config, InitramfsCompression, RescueFormat};
use lifeboat_host::{Host, SystemHost};
use lifeboat_runner::{package_hint, tool, Cmd, Runner};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod drill;

mod tape;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Required and fine.
    Passed,
    /// Required and not fine: see the fix.
    Failed,
    /// Not required by this configuration or machine.
    NotNeeded,
    /// Fine for now, but worth a look: see the fix (does not fail the preflight).
    Warning,
    /// Required, but this transport cannot tell (free space over SFTP without `statvfs@openssh.com`).
    NotChecked,
}

impl Status {
    /// The word printed in the table.
    pub fn word(self) -> &'static str {
        match self {
            Status::Passed => "Passed",
            Status::Failed => "Failed",
            Status::NotNeeded => "Not needed",
            Status::Warning => "Warning",
            Status::NotChecked => "Not checked",
        }
    }
}

/// One line of the preflight.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The whole preflight.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether everything needed passed.
    pub ok: bool,
    /// The checks in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// The table as mkcdrec printed it: name, dots, status; the fix below a failure.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let head = format!("{} ", c.name);
            let dots = ".".repeat(58usize.saturating_sub(head.chars().count()).max(2));
            out.push_str(&format!("{head}{dots} {}\n", c.status.word()));
            if !c.detail.is_empty() {
                out.push_str(&format!("    {}\n", c.detail));
            }
            if let Some(f) = &c.fix {
                out.push_str(&format!("    fix: {f}\n"));
            }
        }
        let failed = self.checks.iter().filter(|c| c.status == Status::Failed).count();
        if failed == 0 {
            out.push_str("All needed checks passed: this machine can make rescue media.\n");
        } else {
            out.push_str(&format!("{failed} check(s) failed: fix them and run `lifeboat check` again.\n"));
        }
        let warned = self.checks.iter().filter(|c| c.status == Status::Warning).count();
        if warned > 0 {
            out.push_str(&format!("{warned} warning(s): see the fix below each.\n"));
        }
        out
    }
}

fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
    Check { name: name.into(), status: Status::Passed, detail: detail.into(), fix: None }
}

fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { name: name.into(), status: Status::Failed, detail: detail.into(), fix: Some(fix.into()) }
}

fn not_needed(name: impl Into<String>, detail: impl Into<String>) -> Check {
    Check { name: name.into(), status: Status::NotNeeded, detail: detail.into(), fix: None }
}

fn warning(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { name: name.into(), status: Status::Warning, detail: detail.into(), fix: Some(fix.into()) }
}

/// What the machine has that decides which tools are needed.
#[derive(Debug, Default)]
struct Features {
    fstypes: BTreeSet<String>,
    uefi: bool,
    grub: bool,
}

fn features(host: &dyn Host, r: &dyn Runner) -> Features {
    let mut f = Features {
        uefi: Path::new("/sys/firmware/efi").exists(),
        grub: Path::new("/boot/grub/grub.cfg").exists() || Path::new("/boot/grub2/grub.cfg").exists(),
        ..Features::default()
    };
    // The same device probing as layout capture (blkid where lsblk has no udev data).
    for n in lifeboat_layout::capture::block_devices_on(host, r) {
        f.fstypes.extend(n.fstype);
    }
    for mnt in host.mounts().unwrap_or_default() {
        if mnt.source.starts_with("/dev/") {
            f.fstypes.insert(mnt.fstype);
        }
    }
    f
}

/// The first line of a program's version output.
fn version(r: &dyn Runner, program: &str) -> Option<String> {
    let arg = match program {
        "xorriso" => "-version",
        "lvm" => "version",
        "mkfs.xfs" | "mkfs.ext4" | "mkfs.vfat" => "-V",
        _ => "--version",
    };
    let out = r.probe(&Cmd::new(program).arg(arg)).ok()?;
    let text = if out.stdout.is_empty() { String::from_utf8_lossy(&out.stderr).into_owned() } else { out.text() };
    text.lines().map(str::trim).find(|l| !l.is_empty()).map(|l| l.chars().take(60).collect())
}

fn program(r: &dyn Runner, prog: &str, needed: Option<&str>, why_not: &str, show_version: bool) -> Check {
    let name = format!("Program {prog}");
    match needed {
        None => not_needed(name, why_not),
        Some(why) if r.has(prog) => {
            let v = if show_version {
                version(r, prog).map(|v| format!(" ({v})")).unwrap_or_default()
            } else {
                String::new()
            };
            pass(name, format!("found{v}; needed for {why}"))
        }
        Some(why) => fail(name, format!("not installed; needed for {why}"), package_hint(prog)),
    }
}

/// The nearest existing ancestor of a path (for free-space checks on paths not yet made).
fn existing_ancestor(p: &Path) -> PathBuf {
    p.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/")).to_path_buf()
}

fn free_space(name: &str, key: &str, dir: &Path, need: u64) -> Check {
    let at = existing_ancestor(dir);
    match rustix::fs::statvfs(&at) {
        Ok(st) => {
            let free = st.f_bavail * st.f_frsize;
            let detail =
                format!("{} free at {} (for {}; {} needed)", human(free), at.display(), dir.display(), human(need));
            if free >= need {
                pass(name, detail)
            } else {
                fail(name, detail, format!("free space there, or point `{key}` in the config at a larger filesystem"))
            }
        }
        Err(e) => {
            fail(name, format!("cannot stat {}: {e}", at.display()), format!("set `{key}` to a writable directory"))
        }
    }
}

const TARGET_REACHABLE: &str = "Backup target reachable";
const TARGET_WRITABLE: &str = "Backup target writable";
const TARGET_ROOM: &str = "Room for a backup on the target";

/// Below this much free space on the target, warn even when the expected size is unknown.
const TARGET_MIN_FREE: u64 = 1 << 30;

/// The backup target's checks: reachable, writable, with room for a
/// backup of the filesystems `host` shows (opened through the archive's
/// target interface, so every transport is checked the way backups use it).
fn target_checks(cfg: &Config, host: &dyn Host, r: &dyn Runner) -> Vec<Check> {
    let url = cfg.backup.target.trim();
    if url.is_empty() {
        let why = "no backup target configured (backup.target)";
        return vec![not_needed(TARGET_REACHABLE, why), not_needed(TARGET_WRITABLE, why), not_needed(TARGET_ROOM, why)];
    }
    if url.starts_with("tape://") {
        return tape::tape_checks(cfg, url, r);
    }
    let opened = lifeboat_archive::target::open_configured(url, r, &lifeboat_backup::job::target_settings(cfg));
    let local = opened.as_ref().ok().and_then(|t| t.local_dir().map(Path::to_path_buf));
    let expected = used_by_filesystems(host, local.as_deref());
    checks_of_target(url, opened.map_err(|e| e.to_string()), expected)
}

/// The bytes the filesystems of this machine hold (each once): about the
/// most a backup of them needs. A filesystem that is the target itself
/// (mounted at the target directory) is left out, as a backup leaves the
/// target out; one that merely holds the target counts whole (its earlier
/// backups too: an overestimate, for a warning only).
fn used_by_filesystems(host: &dyn Host, target_dir: Option<&Path>) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let target = target_dir.and_then(|d| std::fs::canonicalize(d).ok());
    let mut seen = BTreeSet::new();
    let mut used = 0u64;
    for m in host.mounts().ok()? {
        if !m.source.starts_with("/dev/") {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&m.mount_point) else { continue };
        if target.as_deref() == Some(Path::new(&m.mount_point)) || !seen.insert(meta.dev()) {
            continue;
        }
        if let Ok(st) = rustix::fs::statvfs(Path::new(&m.mount_point)) {
            used = used.saturating_add(st.f_blocks.saturating_sub(st.f_bfree).saturating_mul(st.f_frsize));
        }
    }
    Some(used)
}

/// The three checks of a target as `open` left it (the target, or why it
/// cannot be opened), with `expected` the bytes a backup may need.
fn checks_of_target(
    url: &str,
    opened: Result<Box<dyn lifeboat_archive::target::Target>, String>,
    expected: Option<u64>,
) -> Vec<Check> {
    let unreachable = |detail: String, fix: String| {
        let not = "cannot be checked: the target is not reachable";
        vec![
            fail(TARGET_REACHABLE, detail, fix),
            fail(TARGET_WRITABLE, not, format!("see \"{TARGET_REACHABLE}\"")),
            fail(TARGET_ROOM, not, format!("see \"{TARGET_REACHABLE}\"")),
        ]
    };
    let t = match opened {
        Ok(t) => t,
        Err(e) => return unreachable(
            format!("cannot open {url}: {e}"),
            "set backup.target to file:///DIR (a local, NFS or USB directory) or sftp://[user@]host[:port]/path that \
                 this machine reaches (the error above says what is wrong)"
                .into(),
        ),
    };
    let sftp = url.starts_with("sftp://");
    if let Some(dir) = t.local_dir() {
        if !dir.exists() {
            return unreachable(
                format!("{} does not exist", dir.display()),
                format!("mkdir -p {} (or mount the backup filesystem there)", dir.display()),
            );
        }
        if !dir.is_dir() {
            return unreachable(
                format!("{} is not a directory", dir.display()),
                "point backup.target at a directory".into(),
            );
        }
    }
    let mut out = Vec::new();
    match t.hosts() {
        Ok(hosts) => out.push(pass(TARGET_REACHABLE, format!("{url}: {} host(s) with backups on it", hosts.len()))),
        Err(e) => {
            let fix = if sftp {
                "create the directory on the server (mkdir -p over ssh), and check that `ssh` to it logs in without a question"
            } else {
                "mount the backup filesystem, or create the directory"
            };
            return unreachable(e.to_string(), fix.into());
        }
    }
    out.push(writable(t.as_ref(), url, sftp));
    out.push(match t.free_space() {
        Ok(Some(free)) => room(free, expected),
        Ok(None) if sftp => Check {
            name: TARGET_ROOM.into(),
            status: Status::NotChecked,
            detail: "not checked over SFTP: the server has no statvfs@openssh.com extension".into(),
            fix: None,
        },
        Ok(None) => Check {
            name: TARGET_ROOM.into(),
            status: Status::NotChecked,
            detail: format!("not checked: {url} does not say how much room it has"),
            fix: None,
        },
        Err(e) => warning(
            TARGET_ROOM,
            format!("cannot tell the free space: {e}"),
            "check the free space on the target by hand",
        ),
    });
    out
}

/// Create and remove a test object where backups go.
fn writable(t: &dyn lifeboat_archive::target::Target, url: &str, sftp: bool) -> Check {
    let key = format!(".lifeboat-check-{}", std::process::id());
    let probe = || -> Result<(), lifeboat_archive::ArchiveError> {
        // A test object left by a check that was killed is removed and made again.
        if !t.create_marker(&key, b"lifeboat check\n")? {
            t.remove_marker(&key)?;
            t.create_marker(&key, b"lifeboat check\n")?;
        }
        t.remove_marker(&key)
    };
    match probe() {
        Ok(()) => pass(TARGET_WRITABLE, format!("created and removed a test object ({key}) in {url}")),
        Err(e) => fail(
            TARGET_WRITABLE,
            format!("cannot create and remove a test object in {url}: {e}"),
            if sftp {
                "give the ssh login write permission on the directory on the server"
            } else {
                "make the directory writable by root (check NFS root_squash, and that it is not mounted read-only)"
            },
        ),
    }
}

/// Whether `free` bytes hold a backup of `expected` bytes (uncompressed: a compressed one is usually smaller).
fn room(free: u64, expected: Option<u64>) -> Check {
    let fix = "free space on the target (lifeboat backup prune removes old backups), or point backup.target at a larger filesystem";
    match expected {
        Some(need) if free >= need => pass(
            TARGET_ROOM,
            format!(
                "{} free; the filesystems backed up use {} (a compressed backup is usually smaller)",
                human(free),
                human(need)
            ),
        ),
        Some(need) => warning(
            TARGET_ROOM,
            format!(
                "{} free; the filesystems backed up use {}: a backup may not fit (compressed it is usually smaller)",
                human(free),
                human(need)
            ),
            fix,
        ),
        None if free >= TARGET_MIN_FREE => {
            pass(TARGET_ROOM, format!("{} free (the size of a backup is not known)", human(free)))
        }
        None => warning(TARGET_ROOM, format!("only {} free", human(free)), fix),
    }
}

fn kernel_checks(cfg: &Config, out: &mut Vec<Check>) {
    let name = "Kernel image and its modules";
    let choice = match lifeboat_rescue::kernel::choose(cfg.rescue.kernel.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            out.push(fail(name, e.to_string(), "apt-get install linux-image-amd64 (Debian/Ubuntu: linux-image-generic), dnf install kernel-core (Fedora/RHEL), zypper install kernel-default (SUSE); or set rescue.kernel"));
            out.push(not_needed("initramfs compression supported by the kernel", "no kernel chosen"));
            return;
        }
    };
    out.push(pass(
        name,
        format!(
            "{} (version {}, modules in {}): {}",
            choice.image.display(),
            choice.version,
            choice.modules_dir.display(),
            choice.reason
        ),
    ));
    let name = "initramfs compression supported by the kernel";
    let wanted = cfg.rescue.compression;
    match lifeboat_rescue::kernel::config_text(&choice.version) {
        None => out.push(pass(
            name,
            format!("no build config for {} found; gzip will be used (every kernel can unpack it)", choice.version),
        )),
        Some(text) => {
            let supported = lifeboat_rescue::kernel::supported_compressions(&text);
            match wanted {
                InitramfsCompression::None => {
                    out.push(pass(name, "uncompressed initramfs (rescue.compression = \"none\")"))
                }
                InitramfsCompression::Auto => match supported.first() {
                    Some(best) => out.push(pass(name, format!("{best} (supported: {})", supported.join(", ")))),
                    None => out.push(fail(
                        name,
                        "the kernel config enables no initramfs compression",
                        "set rescue.compression = \"none\"",
                    )),
                },
                InitramfsCompression::Zstd | InitramfsCompression::Gzip if supported.contains(&wanted.as_str()) => {
                    out.push(pass(name, format!("{wanted} (CONFIG_RD_{}=y)", wanted.as_str().to_uppercase())))
                }
                w @ (InitramfsCompression::Zstd | InitramfsCompression::Gzip) => out.push(fail(
                    name,
                    format!(
                        "rescue.compression = \"{w}\" but kernel {} supports only: {}",
                        choice.version,
                        supported.join(", ")
                    ),
                    "set rescue.compression = \"auto\"",
                )),
            }
        }
    }
}

fn bootloader_files(format: RescueFormat, out: &mut Vec<Check>) {
    let bootable = format.is_bootable_medium();
    // grub-mkimage -O i386-pc-eltorito builds the CD boot image from these.
    let grub_bios = ["cdboot.img", "boot_hybrid.img", "normal.mod", "iso9660.mod"]
        .iter()
        .all(|f| Path::new("/usr/lib/grub/i386-pc").join(f).exists());
    let grub_efi = Path::new("/usr/lib/grub/x86_64-efi/normal.mod").exists();
    let signed = lifeboat_rescue::media::SecureBoot::find().is_some();
    if !bootable {
        out.push(not_needed(
            "Bootloader files for BIOS rescue media",
            format!("rescue.format = \"{format}\" boots over the network"),
        ));
        out.push(not_needed("Bootloader files for UEFI rescue media", format!("rescue.format = \"{format}\"")));
        return;
    }
    out.push(if grub_bios {
        pass("Bootloader files for BIOS rescue media", "GRUB i386-pc images in /usr/lib/grub/i386-pc")
    } else {
        fail("Bootloader files for BIOS rescue media", "GRUB i386-pc files (cdboot.img, boot_hybrid.img, modules) are missing", "apt-get install grub-pc-bin (Debian/Ubuntu), dnf install grub2-pc-modules (Fedora/RHEL), zypper install grub2-i386-pc (SUSE)")
    });
    out.push(if grub_efi {
        pass(
            "Bootloader files for UEFI rescue media",
            if signed {
                "GRUB x86_64-efi modules, and the signed shim and GRUB: media boot with Secure Boot on"
            } else {
                "GRUB x86_64-efi modules; no signed shim and GRUB (apt-get install shim-signed grub-efi-amd64-signed), so media boot only with Secure Boot off"
            },
        )
    } else {
        fail("Bootloader files for UEFI rescue media", "GRUB x86_64-efi modules are missing", "apt-get install grub-efi-amd64-bin (Debian/Ubuntu), dnf install grub2-efi-x64-modules (Fedora/RHEL), zypper install grub2-x86_64-efi (SUSE)")
    });
}

/// Every `rescue.extra_programs` is on this machine (the rescue build fails without one).
fn extra_programs(cfg: &Config) -> Check {
    let name = "Extra programs (rescue.extra_programs)";
    let extra = &cfg.rescue.extra_programs;
    if extra.is_empty() {
        return not_needed(name, "none configured");
    }
    let missing: Vec<&str> =
        extra.iter().map(String::as_str).filter(|p| lifeboat_rescue::system::find_program(p).is_none()).collect();
    if missing.is_empty() {
        pass(name, extra.join(" "))
    } else {
        fail(
            name,
            format!("not on this machine: {}", missing.join(" ")),
            "install them, or remove them from rescue.extra_programs",
        )
    }
}

fn security_modules() -> Check {
    let name = "SELinux / AppArmor state";
    let selinux = std::fs::read_to_string("/sys/fs/selinux/enforce").ok().map(|v| v.trim() == "1");
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").ok().map(|v| v.trim() == "Y");
    let mut parts = Vec::new();
    match selinux {
        Some(true) => parts.push(
            "SELinux enforcing: backups keep security.selinux labels and recovery schedules a relabel".to_string(),
        ),
        Some(false) => parts.push("SELinux permissive: labels are kept".to_string()),
        None => parts.push("SELinux not active".to_string()),
    }
    match apparmor {
        Some(true) => {
            parts.push("AppArmor enabled (profiles are ordinary files and are restored with them)".to_string())
        }
        _ => parts.push("AppArmor not active".to_string()),
    }
    pass(name, parts.join("; "))
}

/// Run every check against this machine and configuration.
pub fn run(r: &dyn Runner, cfg: &Config) -> Report {
    run_on(&SystemHost::new(), r, cfg)
}

/// Run every check against the storage `host` shows and this configuration
/// (the rest, such as free space and kernel features, is read off this machine).
pub fn run_on(host: &dyn Host, r: &dyn Runner, cfg: &Config) -> Report {
    let mut checks = Vec::new();
    let root = rustix::process::geteuid().is_root();
    checks.push(if root {
        pass("Running as root", "")
    } else {
        fail(
            "Running as root",
            "reading disks, LVM and LUKS headers and writing media need root",
            "run lifeboat as root (sudo lifeboat check)",
        )
    });
    let f = features(host, r);
    let has = |t: &str| f.fstypes.contains(t);
    let ext = ["ext2", "ext3", "ext4"].iter().any(|t| has(t));
    let format = cfg.rescue.format;
    let iso = format == RescueFormat::Iso;
    let bootable = format.is_bootable_medium();
    // (program, needed for (None = not needed), why not needed, show version)
    let programs: Vec<(&str, Option<&str>, &str, bool)> = vec![
        ("lsblk", Some("layout capture"), "", true),
        ("sfdisk", Some("partition tables (capture and recreation)"), "", true),
        ("blkid", Some("filesystem signatures"), "", false),
        ("ip", Some("network configuration"), "", false),
        ("dumpe2fs", ext.then_some("ext2/3/4 parameters"), "no ext2/3/4 filesystem here", false),
        ("mkfs.ext4", ext.then_some("recreating ext2/3/4 filesystems"), "no ext2/3/4 filesystem here", true),
        ("xfs_info", has("xfs").then_some("xfs geometry"), "no xfs filesystem here", false),
        ("mkfs.xfs", has("xfs").then_some("recreating xfs filesystems"), "no xfs filesystem here", true),
        ("btrfs", has("btrfs").then_some("btrfs profiles and subvolumes"), "no btrfs filesystem here", true),
        ("mkfs.btrfs", has("btrfs").then_some("recreating btrfs filesystems"), "no btrfs filesystem here", false),
        ("mkfs.vfat", has("vfat").then_some("recreating FAT filesystems (the ESP)"), "no FAT filesystem here", false),
        ("mkswap", has("swap").then_some("recreating swap"), "no swap here", false),
        ("mdadm", has("linux_raid_member").then_some("md RAID"), "no md RAID member here", true),
        ("lvm", has("LVM2_member").then_some("LVM"), "no LVM physical volume here", true),
        ("cryptsetup", has("crypto_LUKS").then_some("LUKS"), "no LUKS container here", true),
        ("efibootmgr", f.uefi.then_some("EFI boot entries"), "machine booted with BIOS", true),
        ("grub-install", f.grub.then_some("reinstalling GRUB on recovery"), "no GRUB on this machine", true),
        ("xorriso", iso.then_some("the hybrid ISO image"), "rescue.format is not iso", true),
        ("mformat", bootable.then_some("the EFI boot image of the media"), "rescue.format is pxe", false),
        ("mcopy", bootable.then_some("the EFI boot image of the media"), "rescue.format is pxe", false),
        ("grub-mkimage", bootable.then_some("the bootloader of the media"), "rescue.format is pxe", true),
        ("grub-mkrescue", bootable.then_some("the bootable rescue image"), "rescue.format is pxe", false),
        ("busybox", Some("the rescue system's shell and tools"), "", false),
    ];
    for (p, needed, why_not, v) in programs {
        debug_assert!(tool(p).is_some(), "{p} has no package entry");
        checks.push(program(r, p, needed, why_not, v));
    }
    checks.push(extra_programs(cfg));
    kernel_checks(cfg, &mut checks);
    checks.push(if Path::new("/dev/loop-control").exists() {
        pass("Loop devices", "/dev/loop-control present")
    } else {
        fail(
            "Loop devices",
            "no /dev/loop-control: disk images cannot be attached for testing and cloning",
            "modprobe loop (and add `loop` to /etc/modules)",
        )
    });
    checks.push(free_space("Free space in the work directory", "paths.work_dir", &cfg.paths.work_dir, 1 << 30));
    checks.push(free_space("Free space in the output directory", "paths.output_dir", &cfg.paths.output_dir, 1 << 30));
    checks.extend(target_checks(cfg, host, r));
    bootloader_files(format, &mut checks);
    checks.push(security_modules());
    checks.extend(drill::drill_checks(cfg, r));
    let ok = checks.iter().all(|c| c.status != Status::Failed);
    Report { ok, checks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_host::{DevNum, FixtureHost};
    use lifeboat_runner::ScriptedRunner;

    /// Without udev or lsblk: disks from sysfs, signatures from blkid, and mounted filesystems.
    fn machine() -> FixtureHost {
        FixtureHost::new()
            .disk("vda", DevNum::new(254, 0), 8 << 30)
            .partition("vda", "vda1", 1, DevNum::new(254, 1), 8 << 30)
            .disk("vdb", DevNum::new(254, 16), 8 << 30)
            .signature("/dev/vdb", &[("TYPE", "LVM2_member"), ("UUID", "pv")])
            .mount(DevNum::new(254, 1), "/dev/vda1", "/", "xfs")
            .mount(DevNum::new(0, 30), "tmpfs", "/run", "tmpfs")
    }

    fn statuses(checks: &[Check]) -> Vec<(String, Status)> {
        checks.iter().map(|c| (c.name.clone(), c.status)).collect()
    }

    #[test]
    fn a_writable_directory_target_with_room_passes_and_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().expect("tmp");
        let url = format!("file://{}", tmp.path().display());
        let t = lifeboat_archive::target::open(&url).map_err(|e| e.to_string());
        let c = checks_of_target(&url, t, Some(1));
        let s: Vec<Status> = c.iter().map(|c| c.status).collect();
        assert_eq!(s, [Status::Passed, Status::Passed, Status::Passed], "{c:?}");
        assert!(c[1].detail.contains(".lifeboat-check-"), "{}", c[1].detail);
        assert_eq!(std::fs::read_dir(tmp.path()).expect("ls").count(), 0, "the test object is removed");
        // More needed than there is: a warning with the fix, not a failure.
        let t = lifeboat_archive::target::open(&url).map_err(|e| e.to_string());
        let c = checks_of_target(&url, t, Some(u64::MAX));
        assert_eq!(c[2].status, Status::Warning);
        let r = Report { ok: true, checks: c.clone() };
        assert!(r.table().contains("All needed checks passed") && r.table().contains("1 warning(s)"), "{}", r.table());
        assert!(
            c[2].detail.contains("may not fit") && c[2].fix.as_deref().is_some_and(|f| f.contains("prune")),
            "{c:?}"
        );
    }

    #[test]
    fn a_missing_or_non_directory_target_fails_with_the_fix() {
        let tmp = tempfile::tempdir().expect("tmp");
        let missing = tmp.path().join("backup");
        let url = format!("file://{}", missing.display());
        let c = checks_of_target(&url, lifeboat_archive::target::open(&url).map_err(|e| e.to_string()), None);
        assert_eq!(c[0].status, Status::Failed);
        assert_eq!(
            c[0].fix.as_deref(),
            Some(format!("mkdir -p {} (or mount the backup filesystem there)", missing.display()).as_str())
        );
        assert!(c.iter().all(|c| c.status == Status::Failed), "{:?}", statuses(&c));
        std::fs::write(&missing, b"a file").expect("file");
        let c = checks_of_target(&url, lifeboat_archive::target::open(&url).map_err(|e| e.to_string()), None);
        assert!(c[0].detail.contains("is not a directory"), "{c:?}");
        let c = checks_of_target(
            "gopher://x/y",
            lifeboat_archive::target::open("gopher://x/y").map_err(|e| e.to_string()),
            None,
        );
        assert_eq!(c[0].status, Status::Failed);
        assert!(c[0].detail.contains("gopher://"), "{c:?}");
    }

    #[test]
    fn a_read_only_directory_is_not_writable() {
        if rustix::process::geteuid().is_root() {
            return; // root writes anyway
        }
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("ro");
        std::fs::create_dir(&dir).expect("mkdir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).expect("chmod");
        let url = format!("file://{}", dir.display());
        let c = checks_of_target(&url, lifeboat_archive::target::open(&url).map_err(|e| e.to_string()), None);
        assert_eq!(c[1].status, Status::Failed, "{c:?}");
        assert!(c[1].fix.as_deref().is_some_and(|f| f.contains("writable by root")), "{c:?}");
    }

    #[test]
    fn an_object_store_is_written_to_and_its_room_not_checked_when_it_cannot_tell() {
        let t = lifeboat_archive::target::MemoryTarget::new();
        let c = checks_of_target("mem://", Ok(Box::new(t.clone())), Some(1 << 40));
        assert_eq!(
            statuses(&c).iter().map(|s| s.1).collect::<Vec<_>>(),
            [Status::Passed, Status::Passed, Status::NotChecked]
        );
        assert!(t.keys().is_empty(), "{:?}", t.keys());
        let r = Report { ok: true, checks: c };
        assert!(r.table().contains("Not checked"), "{}", r.table());
        assert!(serde_json::to_string(&r).expect("json").contains("\"not-checked\""));
    }

    #[test]
    fn the_expected_size_is_the_used_space_of_the_filesystems_but_not_of_the_target_itself() {
        let host = FixtureHost::new().mount(DevNum::new(254, 1), "/dev/vda1", "/", "xfs").mount(
            DevNum::new(0, 30),
            "tmpfs",
            "/run",
            "tmpfs",
        );
        let all = used_by_filesystems(&host, None).expect("mounts");
        assert!(all > 0, "/ uses some space");
        assert_eq!(used_by_filesystems(&host, Some(Path::new("/tmp/lifeboat-target"))), Some(all), "a directory on /");
        assert_eq!(used_by_filesystems(&host, Some(Path::new("/"))), Some(0), "the target is the filesystem");
    }

    #[test]
    fn no_target_makes_the_target_checks_not_needed() {
        let c = target_checks(&Config::default(), &machine(), &ScriptedRunner::new());
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|c| c.status == Status::NotNeeded));
    }

    #[test]
    fn the_storage_features_come_from_signatures_and_mounts() {
        let r = ScriptedRunner::new().without("lsblk");
        let f = features(&machine(), &r);
        let types: Vec<&str> = f.fstypes.iter().map(String::as_str).collect();
        assert_eq!(types, ["LVM2_member", "xfs"], "tmpfs is not on a device");
    }

    #[test]
    fn the_tools_that_storage_needs_are_required_and_others_not() {
        let r = ScriptedRunner::new().without("lsblk").without("lvm");
        let report = run_on(&machine(), &r, &Config::default());
        let check = |name: &str| {
            report.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}")).clone()
        };
        let lvm = check("Program lvm");
        assert_eq!(lvm.status, Status::Failed);
        assert!(lvm.detail.contains("needed for LVM"), "{}", lvm.detail);
        assert!(lvm.fix.as_deref().is_some_and(|f| f.contains("lvm2")), "{:?}", lvm.fix);
        assert_eq!(check("Program xfs_info").status, Status::Passed);
        assert_eq!(check("Program mdadm").status, Status::NotNeeded);
        assert_eq!(check("Program cryptsetup").status, Status::NotNeeded);
        assert!(!report.ok);
    }

    #[test]
    fn everything_the_rescue_build_needs_is_checked() {
        let r = ScriptedRunner::new().without("busybox");
        let mut cfg = Config::default();
        cfg.rescue.extra_programs = vec!["/nonexistent/site-tool".into()];
        let report = run_on(&machine(), &r, &cfg);
        let check = |report: &Report, name: &str| {
            report.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}")).clone()
        };
        let busybox = check(&report, "Program busybox");
        assert_eq!(busybox.status, Status::Failed);
        assert!(busybox.fix.as_deref().is_some_and(|f| f.contains("busybox-static")), "{:?}", busybox.fix);
        assert_eq!(check(&report, "Program grub-mkrescue").status, Status::Passed);
        let extra = check(&report, "Extra programs (rescue.extra_programs)");
        assert_eq!(extra.status, Status::Failed);
        assert!(extra.detail.contains("/nonexistent/site-tool"), "{}", extra.detail);
        cfg.rescue.format = RescueFormat::Pxe;
        cfg.rescue.extra_programs.clear();
        let report = run_on(&machine(), &ScriptedRunner::new(), &cfg);
        assert_eq!(check(&report, "Program grub-mkrescue").status, Status::NotNeeded);
        assert_eq!(check(&report, "Extra programs (rescue.extra_programs)").status, Status::NotNeeded);
    }
}
