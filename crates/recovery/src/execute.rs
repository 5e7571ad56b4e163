//! Carrying out a plan. Every step first looks whether it is already done
//! (the partition table as planned, a filesystem with the planned UUID, an
//! array or volume that exists, a restore that finished), so a recovery
//! that failed half-way is finished by running it again.

use crate::plan::{Action, Plan};
use crate::RecoveryError;
use lifeboat_runner::{Cmd, Runner};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How to carry out the plan.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the recreated filesystems are mounted.
    pub root: PathBuf,
    /// LUKS passphrase file.
    pub luks_key_file: Option<PathBuf>,
    /// Leave the filesystems mounted at the end (for `lifeboat recover --keep-mounted`).
    pub keep_mounted: bool,
}

/// One step as carried out.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// What it was.
    pub what: String,
    /// `done`, or `already done` when a rerun found it finished.
    pub status: String,
    /// Seconds it took.
    pub seconds: f64,
}

/// What a recovery did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Steps in order.
    pub steps: Vec<StepReport>,
    /// Entries restored.
    pub restored: u64,
    /// Bytes restored.
    pub bytes: u64,
    /// Entries that could not be restored.
    pub lost: Vec<String>,
    /// Warnings (something not done that the administrator should do).
    pub warnings: Vec<String>,
    /// Seconds per phase: partitioning, storage, filesystems, restore, fix, bootloader.
    pub phases: Vec<(String, f64)>,
}

/// Restores the backup into the given root: (entries, bytes, entries lost).
pub type RestoreFn<'a> = dyn FnMut(&Path) -> Result<(u64, u64, Vec<String>), RecoveryError> + 'a;

/// The marker a finished restore leaves, so a rerun does not restore again.
const RESTORE_DONE: &str = "var/log/lifeboat/restore.done";

/// Restore `backup` into `root` unless its marker says that this backup was
/// restored whole before (then true: skipped). The marker is written only
/// when nothing was lost, and removed when something was, so that rerunning
/// `recover` restores again rather than keeping a partial restore.
fn restore_once(
    root: &Path,
    backup: &str,
    restore: &mut RestoreFn<'_>,
    report: &mut Report,
) -> Result<bool, RecoveryError> {
    let marker = root.join(RESTORE_DONE);
    if std::fs::read_to_string(&marker).map(|s| s.trim() == backup).unwrap_or(false) {
        return Ok(true);
    }
    let (n, bytes, lost) = restore(root)?;
    report.restored = n;
    report.bytes = bytes;
    report.lost = lost;
    if report.lost.is_empty() {
        if let Some(d) = marker.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let _ = std::fs::write(&marker, format!("{backup}\n"));
    } else {
        let _ = std::fs::remove_file(&marker);
    }
    Ok(false)
}

fn phase_of(a: &Action) -> &'static str {
    match a {
        Action::Partition { .. } | Action::Wipe { .. } => "partitioning",
        Action::Raid { .. } | Action::Luks { .. } | Action::Pv { .. } | Action::Vg { .. } | Action::Lv { .. } => {
            "storage"
        }
        Action::Mkfs { .. } | Action::Mkswap { .. } | Action::Subvolumes { .. } | Action::Mount { .. } => "filesystems",
        Action::Restore { .. } => "restore",
        Action::FixDevices { .. } | Action::Initramfs => "fix",
        Action::GrubBios { .. } | Action::GrubEfi { .. } => "bootloader",
    }
}

/// Run `plan`. `say` gets one line per step as it starts; `restore`
/// restores the backup into the given root, reporting progress itself.
pub fn execute(
    plan: &Plan,
    r: &dyn Runner,
    o: &Options,
    say: &mut dyn FnMut(&str),
    restore: &mut RestoreFn<'_>,
) -> Result<Report, RecoveryError> {
    let mut x = Exec { r, o, mounted: Vec::new(), report: Report::default() };
    let result = x.all(plan, say, restore);
    if !o.keep_mounted || result.is_err() {
        x.unmount_all();
    }
    result.map(|()| x.report)
}

struct Exec<'a> {
    r: &'a dyn Runner,
    o: &'a Options,
    mounted: Vec<PathBuf>,
    report: Report,
}

fn blkid(r: &dyn Runner, dev: &str) -> (Option<String>, Option<String>) {
    let Ok(out) = r.probe(&Cmd::new("blkid").args(["-p", "-o", "export", dev])) else { return (None, None) };
    let kv = lifeboat_layout::capture::parse_export(&out.text());
    let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    (get("TYPE"), get("UUID"))
}

fn is_block(p: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).map(|m| m.file_type().is_block_device()).unwrap_or(false)
}

/// Where the kernel shows the UEFI variables (when efivarfs is mounted).
const EFIVARS: &str = "/sys/firmware/efi/efivars";

/// Whether something is mounted exactly at `p`.
pub fn mounted_at(p: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = p.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(p.as_ref()))
}

/// Replace whole device names (`/dev/sda1`, not the start of `/dev/sda10`).
pub fn replace_devices(text: &str, renames: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    'outer: while i < b.len() {
        if b[i] == b'/' && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'/')) {
            // Longest match first.
            let mut best: Option<(&String, &String)> = None;
            for (old, new) in renames {
                if text[i..].starts_with(old.as_str()) {
                    let next = b.get(i + old.len()).copied();
                    let boundary = !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == b'_');
                    if boundary && best.is_none_or(|(o, _)| o.len() < old.len()) {
                        best = Some((old, new));
                    }
                }
            }
            if let Some((old, new)) = best {
                out.push_str(new);
                i += old.len();
                continue 'outer;
            }
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

impl Exec<'_> {
    fn run(&self, c: &Cmd) -> Result<String, RecoveryError> {
        Ok(self.r.apply(c)?.text())
    }

    fn all(
        &mut self,
        plan: &Plan,
        say: &mut dyn FnMut(&str),
        restore: &mut RestoreFn<'_>,
    ) -> Result<(), RecoveryError> {
        let total = plan.actions.len();
        for (i, a) in plan.actions.iter().enumerate() {
            let what = describe(a);
            say(&format!("[{}/{total}] {what}", i + 1));
            let start = Instant::now();
            let already =
                self.step(a, restore).map_err(|e| RecoveryError::Step { step: what.clone(), cause: Box::new(e) })?;
            let secs = start.elapsed().as_secs_f64();
            let phase = phase_of(a);
            match self.report.phases.iter_mut().find(|p| p.0 == phase) {
                Some(p) => p.1 += secs,
                None => self.report.phases.push((phase.to_string(), secs)),
            }
            if already {
                say("      already done (a previous run made it)");
            }
            self.report.steps.push(StepReport {
                what,
                status: if already { "already done".into() } else { "done".into() },
                seconds: secs,
            });
        }
        self.write_log(plan);
        Ok(())
    }

    /// Carry out one action; Ok(true) when it was already done.
    fn step(&mut self, a: &Action, restore: &mut RestoreFn<'_>) -> Result<bool, RecoveryError> {
        match a {
            Action::Partition { disk, script, partitions, .. } => {
                if self.table_matches(disk, partitions) {
                    return Ok(true);
                }
                self.r.apply(
                    &Cmd::new("sfdisk")
                        .args([
                            "--no-reread",
                            "--no-tell-kernel",
                            "-q",
                            "--wipe",
                            "always",
                            "--wipe-partitions",
                            "always",
                        ])
                        .arg(disk)
                        .stdin(script.clone()),
                )?;
                self.reread(disk, &partitions.iter().map(|p| p.1.clone()).collect::<Vec<_>>())?;
                // Old signatures inside the new partitions would confuse mkfs and blkid.
                for (_, dev, ..) in partitions {
                    let _ = self.r.apply(&Cmd::new("wipefs").args(["-q", "-a", dev]));
                }
                Ok(false)
            }
            Action::Wipe { device } => {
                self.run(&Cmd::new("wipefs").args(["-q", "-a", device]))?;
                Ok(false)
            }
            Action::Raid { device, uuid, cmd } => {
                if is_block(device) {
                    if let Ok(o) = self.r.probe(&Cmd::new("mdadm").args(["--detail", "--export", device])) {
                        let want = uuid.replace([':', '-'], "").to_ascii_lowercase();
                        if o.text().lines().any(|l| {
                            l.strip_prefix("MD_UUID=")
                                .is_some_and(|v| v.replace([':', '-'], "").to_ascii_lowercase() == want)
                        }) {
                            return Ok(true);
                        }
                    }
                }
                self.run(cmd)?;
                Ok(false)
            }
            Action::Luks { device, name, uuid, format } => {
                let key = self.o.luks_key_file.clone().ok_or_else(|| {
                    RecoveryError::Unsupported(format!("{device}: LUKS needs a passphrase; give --luks-key-file"))
                })?;
                let mapper = format!("/dev/mapper/{name}");
                if is_block(&mapper) {
                    return Ok(true);
                }
                let (t, u) = blkid(self.r, device);
                let fresh = !(t.as_deref() == Some("crypto_LUKS") && u.as_deref() == Some(uuid.as_str()));
                if fresh {
                    self.run(&format.clone().arg(format!("--key-file={}", key.display())).arg(device))?;
                }
                self.run(&Cmd::new("cryptsetup").args(["open", "--key-file"]).arg(&key).args([device, name]))?;
                Ok(!fresh)
            }
            Action::Pv { device, uuid, cmd } => {
                let (t, u) = blkid(self.r, device);
                if t.as_deref() == Some("LVM2_member")
                    && u.as_deref().map(|x| x.replace('-', "")) == Some(uuid.replace('-', ""))
                {
                    return Ok(true);
                }
                self.run(cmd)?;
                Ok(false)
            }
            Action::Vg { name, cmd } => {
                if self.r.probe(&Cmd::new("vgs").args(["--noheadings", name])).is_ok() {
                    return Ok(true);
                }
                self.run(cmd)?;
                Ok(false)
            }
            Action::Lv { name, cmd, .. } => {
                if self.r.probe(&Cmd::new("lvs").args(["--noheadings", name])).is_ok() {
                    return Ok(true);
                }
                self.run(cmd)?;
                // Without udev nobody makes the /dev/VG/LV nodes: ask LVM to.
                let _ = self.r.apply(&Cmd::new("vgmknodes").arg(name.split('/').next().unwrap_or(name)));
                Ok(false)
            }
            Action::Mkfs { device, fstype, uuid, cmd } => {
                let (t, u) = blkid(self.r, device);
                let same_type =
                    t.as_deref() == Some(fstype.as_str()) || (fstype == "vfat" && t.as_deref() == Some("vfat"));
                if same_type
                    && uuid.is_some()
                    && u.as_ref().map(|x| x.to_ascii_lowercase()) == uuid.as_ref().map(|x| x.to_ascii_lowercase())
                {
                    return Ok(true);
                }
                self.run(cmd)?;
                Ok(false)
            }
            Action::Mkswap { device, uuid, cmd } => {
                let (t, u) = blkid(self.r, device);
                if t.as_deref() == Some("swap") && uuid.is_some() && u == *uuid {
                    return Ok(true);
                }
                self.run(cmd)?;
                Ok(false)
            }
            Action::Subvolumes { device, paths, default } => self.subvolumes(device, paths, default.as_deref()),
            Action::Mount { device, target, fstype, options } => {
                let dir = self.o.root.join(target.trim_start_matches('/'));
                if mounted_at(&dir) {
                    self.mounted.push(dir);
                    return Ok(true);
                }
                std::fs::create_dir_all(&dir).map_err(|e| RecoveryError::Io(dir.display().to_string(), e))?;
                let mut c = Cmd::new("mount").args(["-t", fstype]);
                if let Some(opt) = options {
                    c = c.args(["-o", opt]);
                }
                self.run(&c.arg(device).arg(&dir))?;
                self.mounted.push(dir);
                Ok(false)
            }
            Action::Restore { backup, .. } => restore_once(&self.o.root, backup, restore, &mut self.report),
            Action::FixDevices { renames } => {
                for f in [
                    "etc/fstab",
                    "etc/crypttab",
                    "boot/grub/grub.cfg",
                    "boot/grub2/grub.cfg",
                    "etc/default/grub",
                    "etc/mdadm/mdadm.conf",
                    "etc/mdadm.conf",
                ] {
                    let p = self.o.root.join(f);
                    let Ok(text) = std::fs::read_to_string(&p) else { continue };
                    let new = replace_devices(&text, renames);
                    if new != text {
                        std::fs::write(&p, new).map_err(|e| RecoveryError::Io(p.display().to_string(), e))?;
                        log::info!("renamed devices in /{f}");
                    }
                }
                self.selinux_relabel();
                Ok(false)
            }
            Action::Initramfs => {
                let root = self.o.root.clone();
                let tool = [
                    ("usr/sbin/update-initramfs", vec!["update-initramfs", "-u", "-k", "all"]),
                    ("usr/bin/dracut", vec!["dracut", "--regenerate-all", "-f"]),
                    ("usr/bin/mkinitcpio", vec!["mkinitcpio", "-P"]),
                ]
                .into_iter()
                .find(|(p, _)| root.join(p).exists());
                let Some((_, args)) = tool else {
                    self.report.warnings.push("the restored system has no update-initramfs, dracut or mkinitcpio: its initramfs was not regenerated".into());
                    return Ok(false);
                };
                self.in_chroot(|x| x.run(&Cmd::new("chroot").arg(&root).args(&args)).map(|_| ()))?;
                Ok(false)
            }
            Action::GrubBios { disks } => {
                let root = self.o.root.clone();
                let own = root.join("usr/sbin/grub-install").exists() && root.join("usr/lib/grub/i386-pc").is_dir();
                self.in_chroot(|x| {
                    for d in disks {
                        let c = if own {
                            Cmd::new("chroot").arg(&root).args(["grub-install", "--target=i386-pc", d])
                        } else {
                            Cmd::new("grub-install")
                                .arg("--target=i386-pc")
                                .arg(format!("--boot-directory={}", root.join("boot").display()))
                                .arg(d)
                        };
                        x.run(&c)?;
                    }
                    Ok(())
                })?;
                Ok(false)
            }
            Action::GrubEfi { esp_mountpoint, id } => {
                let root = self.o.root.clone();
                // Boot entries can be written only where the firmware's variables are reachable.
                let nvram = mounted_at(Path::new(EFIVARS));
                let own = root.join("usr/sbin/grub-install").exists() && root.join("usr/lib/grub/x86_64-efi").is_dir();
                self.in_chroot(|x| {
                    let base = |extra: &[&str]| {
                        if own {
                            Cmd::new("chroot")
                                .arg(&root)
                                .args(["grub-install", "--target=x86_64-efi"])
                                .arg(format!("--efi-directory={esp_mountpoint}"))
                                .args(extra.iter().copied())
                        } else {
                            Cmd::new("grub-install")
                                .arg("--target=x86_64-efi")
                                .arg(format!(
                                    "--efi-directory={}",
                                    root.join(esp_mountpoint.trim_start_matches('/')).display()
                                ))
                                .arg(format!("--boot-directory={}", root.join("boot").display()))
                                .args(extra.iter().copied())
                        }
                    };
                    let idarg = format!("--bootloader-id={id}");
                    let mut first = vec![idarg.as_str()];
                    if !nvram {
                        first.push("--no-nvram");
                    }
                    x.run(&base(&first))?;
                    // The fallback path boots on firmware that has no entry for this disk (new hardware).
                    x.run(&base(&["--removable", "--no-nvram"]))?;
                    Ok(())
                })?;
                if !nvram {
                    self.report.warnings.push("no EFI variables here (not booted with UEFI): no boot entry was written; the disk boots through EFI/BOOT/BOOTX64.EFI".into());
                }
                Ok(false)
            }
        }
    }

    fn table_matches(&self, disk: &str, parts: &[(u32, String, u64, u64, String)]) -> bool {
        let Ok(out) = self.r.probe(&Cmd::new("sfdisk").args(["--json", disk])) else { return false };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else { return false };
        let Some(have) = v.pointer("/partitiontable/partitions").and_then(|p| p.as_array()) else { return false };
        have.len() == parts.len()
            && parts.iter().all(|(_, dev, start, size, _)| {
                have.iter().any(|h| {
                    h.get("node").and_then(|n| n.as_str()) == Some(dev.as_str())
                        && h.get("start").and_then(|n| n.as_u64()) == Some(*start)
                        && h.get("size").and_then(|n| n.as_u64()) == Some(*size)
                })
            })
            && parts.iter().all(|p| is_block(&p.1))
    }

    /// Make the kernel see the new table and wait for the partition nodes.
    fn reread(&self, disk: &str, nodes: &[String]) -> Result<(), RecoveryError> {
        // Re-reading fails while a disk is held; partx updates and adds the
        // partitions one by one (and works on loop devices), so try them all.
        let _ = self.r.apply(&Cmd::new("blockdev").args(["--rereadpt", disk]));
        let _ = self.r.apply(&Cmd::new("partx").args(["-u", disk]));
        let _ = self.r.apply(&Cmd::new("partx").args(["-a", disk]));
        for _ in 0..50 {
            if nodes.iter().all(|n| is_block(n)) {
                return Ok(());
            }
            // No udev and no devtmpfs: make the nodes from sysfs.
            for n in nodes {
                let name = n.trim_start_matches("/dev/");
                if let Ok(dev) = std::fs::read_to_string(format!("/sys/class/block/{name}/dev")) {
                    if let Some((ma, mi)) = dev.trim().split_once(':') {
                        if !Path::new(n).exists() {
                            let _ = self.r.apply(&Cmd::new("mknod").args([n.as_str(), "b", ma, mi]));
                        }
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let missing: Vec<&String> = nodes.iter().filter(|n| !is_block(n)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(RecoveryError::Unsupported(format!(
                "the kernel did not show the new partitions {} of {disk} (try `partx -u {disk}` and run recover again)",
                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )))
        }
    }

    fn subvolumes(&mut self, device: &str, paths: &[String], default: Option<&str>) -> Result<bool, RecoveryError> {
        let top = PathBuf::from(format!("/run/lifeboat-btrfs-{}", device.replace('/', "_")));
        std::fs::create_dir_all(&top).map_err(|e| RecoveryError::Io(top.display().to_string(), e))?;
        self.run(&Cmd::new("mount").args(["-t", "btrfs", "-o", "subvolid=5", device]).arg(&top))?;
        let result = (|| {
            let mut already = true;
            for p in paths {
                if !top.join(p).exists() {
                    already = false;
                    self.run(&Cmd::new("btrfs").args(["subvolume", "create"]).arg(top.join(p)))?;
                }
            }
            if let Some(d) = default {
                let out = self.run(&Cmd::new("btrfs").args(["subvolume", "list"]).arg(&top))?;
                let id =
                    out.lines().find(|l| l.ends_with(&format!(" path {d}"))).and_then(|l| l.split_whitespace().nth(1));
                if let Some(id) = id {
                    self.run(&Cmd::new("btrfs").args(["subvolume", "set-default", id]).arg(&top))?;
                }
            }
            Ok(already)
        })();
        let _ = self.r.apply(&Cmd::new("umount").arg(&top));
        let _ = std::fs::remove_dir(&top);
        result
    }

    fn selinux_relabel(&mut self) {
        let cfg = std::fs::read_to_string(self.o.root.join("etc/selinux/config")).unwrap_or_default();
        let on = cfg.lines().any(|l| {
            let l = l.trim();
            l == "SELINUX=enforcing" || l == "SELINUX=permissive"
        });
        if on {
            let _ = std::fs::write(self.o.root.join(".autorelabel"), "");
            log::info!("SELinux: the restored system relabels its files on the next boot (/.autorelabel)");
        }
    }

    /// Run `f` with /dev, /proc, /sys and /run mounted inside the restored tree.
    fn in_chroot(&mut self, f: impl FnOnce(&mut Self) -> Result<(), RecoveryError>) -> Result<(), RecoveryError> {
        let root = self.o.root.clone();
        let mut binds: Vec<PathBuf> = Vec::new();
        let mut m = |x: &mut Self, args: Vec<&str>, dir: &str| -> Result<(), RecoveryError> {
            let target = root.join(dir);
            let _ = std::fs::create_dir_all(&target);
            if mounted_at(&target) {
                return Ok(());
            }
            x.run(&Cmd::new("mount").args(args).arg(&target))?;
            binds.push(target);
            Ok(())
        };
        let r = (|| {
            m(self, vec!["--bind", "/dev"], "dev")?;
            m(self, vec!["-t", "devpts", "devpts"], "dev/pts")?;
            m(self, vec!["-t", "proc", "proc"], "proc")?;
            m(self, vec!["-t", "sysfs", "sysfs"], "sys")?;
            if mounted_at(Path::new(EFIVARS)) {
                m(self, vec!["-t", "efivarfs", "efivarfs"], "sys/firmware/efi/efivars")?;
            }
            m(self, vec!["-t", "tmpfs", "tmpfs"], "run")?;
            f(self)
        })();
        for b in binds.iter().rev() {
            let _ = self.r.apply(&Cmd::new("umount").arg(b));
        }
        r
    }

    fn write_log(&mut self, plan: &Plan) {
        let dir = self.o.root.join("var/log/lifeboat");
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string().replace(':', "");
        let mut text = format!("lifeboat {} recovery, {stamp}\n\n{}\n", env!("CARGO_PKG_VERSION"), plan.render());
        for s in &self.report.steps {
            text.push_str(&format!("{:>8.1}s  {:<13} {}\n", s.seconds, s.status, s.what));
        }
        text.push_str("\ncommands run:\n");
        for c in self.r.planned() {
            text.push_str(&format!("  {c}\n"));
        }
        for l in &self.report.lost {
            text.push_str(&format!("NOT RESTORED {l}\n"));
        }
        for w in &self.report.warnings {
            text.push_str(&format!("WARNING {w}\n"));
        }
        let _ = std::fs::write(dir.join(format!("recover-{stamp}.log")), text);
    }

    fn unmount_all(&mut self) {
        let _ = self.r.apply(&Cmd::new("sync"));
        while let Some(m) = self.mounted.pop() {
            if let Err(e) = self.r.apply(&Cmd::new("umount").arg(&m)) {
                log::warn!("cannot unmount {}: {e}", m.display());
            }
        }
    }
}

/// One line about an action, for progress and the log.
pub fn describe(a: &Action) -> String {
    match a {
        Action::Partition { disk, label, partitions, .. } => {
            format!("partition {disk} ({label}, {} partitions)", partitions.len())
        }
        Action::Wipe { device } => format!("erase signatures on {device}"),
        Action::Raid { device, .. } => format!("create RAID {device}"),
        Action::Luks { device, name, .. } => format!("create LUKS on {device} as {name}"),
        Action::Pv { device, .. } => format!("create LVM PV {device}"),
        Action::Vg { name, .. } => format!("create VG {name}"),
        Action::Lv { name, .. } => format!("create LV {name}"),
        Action::Mkfs { device, fstype, .. } => format!("make {fstype} on {device}"),
        Action::Mkswap { device, .. } => format!("make swap on {device}"),
        Action::Subvolumes { device, paths, .. } => {
            format!("create btrfs subvolumes on {device}: {}", paths.join(", "))
        }
        Action::Mount { device, target, .. } => format!("mount {device} on {target}"),
        Action::Restore { backup, .. } => format!("restore {backup}"),
        Action::FixDevices { .. } => "rename changed devices in the restored configuration".into(),
        Action::Initramfs => "regenerate the initramfs".into(),
        Action::GrubBios { disks } => format!("install GRUB for BIOS on {}", disks.join(", ")),
        Action::GrubEfi { esp_mountpoint, .. } => format!("install GRUB for UEFI on {esp_mountpoint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_are_replaced_whole() {
        let mut m = std::collections::BTreeMap::new();
        m.insert("/dev/sda1".to_string(), "/dev/vda1".to_string());
        m.insert("/dev/sda".to_string(), "/dev/vda".to_string());
        let t = "/dev/sda1 / ext4\n/dev/sda10 /x ext4\nroot=/dev/sda1 ro\n# /dev/sda\nUUID=x /dev/sdab\n";
        assert_eq!(
            replace_devices(t, &m),
            "/dev/vda1 / ext4\n/dev/sda10 /x ext4\nroot=/dev/vda1 ro\n# /dev/vda\nUUID=x /dev/sdab\n"
        );
    }

    #[test]
    fn a_restore_that_lost_entries_leaves_no_marker_and_reruns() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path();
        let mut report = Report::default();
        let runs = std::cell::Cell::new(0);
        let mut lossy = |_: &Path| -> Result<(u64, u64, Vec<String>), RecoveryError> {
            runs.set(runs.get() + 1);
            Ok((10, 100, vec!["etc/passwd: volume vol-0002.tar.zst is missing".to_string()]))
        };
        assert!(!restore_once(root, "/b/1", &mut lossy, &mut report).expect("restore"));
        assert!(!root.join(RESTORE_DONE).exists(), "no marker after a restore that lost entries");
        assert!(!restore_once(root, "/b/1", &mut lossy, &mut report).expect("restore"));
        assert_eq!(runs.get(), 2, "a rerun restores again");
        let mut whole = |_: &Path| -> Result<(u64, u64, Vec<String>), RecoveryError> { Ok((10, 100, Vec::new())) };
        assert!(!restore_once(root, "/b/1", &mut whole, &mut report).expect("restore"));
        assert_eq!(std::fs::read_to_string(root.join(RESTORE_DONE)).expect("marker"), "/b/1\n");
        assert!(restore_once(root, "/b/1", &mut lossy, &mut report).expect("skip"), "a whole restore is not redone");
        // A later lossy restore of another backup removes the marker.
        assert!(!restore_once(root, "/b/2", &mut lossy, &mut report).expect("restore"));
        assert!(!root.join(RESTORE_DONE).exists());
    }
}
