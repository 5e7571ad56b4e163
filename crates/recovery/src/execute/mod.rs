//! Carrying out a plan. Every step first looks whether it is already done
//! (the partition table as planned, a filesystem with the planned UUID, an
//! array or volume that exists, a restore that finished), so a recovery
//! that failed half-way is finished by running it again.
//!
//! One function per kind of step, grouped as the plan is: [`storage`]
//! (partition tables, RAID, LUKS, LVM), [`filesystems`] (mkfs, swap,
//! subvolumes, mounts), [`restore`] (the backup and the fix-ups of the
//! restored configuration), [`identity`] (a clone's own identity) and
//! [`boot`] (initramfs and GRUB); [`host`] holds what they read from the
//! running system.

mod boot;
mod filesystems;
pub mod host;
mod identity;
mod images;
pub mod restore;
mod storage;

pub use host::mounted_at;
pub use restore::replace_devices;

use crate::plan::{Action, Plan};
use crate::RecoveryError;
use lifeboat_host::{Host, SystemHost};
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
    /// What the fix-up steps decided about the restored system (kept or
    /// changed, and why), for the recovery log.
    pub decisions: Vec<String>,
    /// Seconds per phase: partitioning, storage, filesystems, restore, fix, bootloader.
    pub phases: Vec<(String, f64)>,
}

/// Restores the backup into the given root: (entries, bytes, entries lost).
pub type RestoreFn<'a> = dyn FnMut(&Path) -> Result<(u64, u64, Vec<String>), RecoveryError> + 'a;

/// Reads one file entry of the backup (an image) into a writer that takes
/// (offset, bytes); returns its size, or why it cannot be read whole and
/// unchanged.
pub type ImageFn<'a> = dyn FnMut(&str, &mut dyn FnMut(u64, &[u8]) -> std::io::Result<()>) -> Result<u64, String> + 'a;

/// Run `plan`. `say` gets one line per step as it starts; `restore`
/// restores the backup into the given root, reporting progress itself;
/// `images` reads the images of foreign partitions from it.
pub fn execute(
    plan: &Plan,
    r: &dyn Runner,
    o: &Options,
    say: &mut dyn FnMut(&str),
    restore: &mut RestoreFn<'_>,
    images: &mut ImageFn<'_>,
) -> Result<Report, RecoveryError> {
    execute_on(&SystemHost::new(), plan, r, o, say, restore, images)
}

/// [`execute`], with what is already done (devices, signatures, mounts)
/// read from `host`.
pub fn execute_on(
    host: &dyn Host,
    plan: &Plan,
    r: &dyn Runner,
    o: &Options,
    say: &mut dyn FnMut(&str),
    restore: &mut RestoreFn<'_>,
    images: &mut ImageFn<'_>,
) -> Result<Report, RecoveryError> {
    let mut x = Exec { h: host, r, o, mounted: Vec::new(), report: Report::default() };
    let result = x.all(plan, say, restore, images);
    if !o.keep_mounted || result.is_err() {
        x.unmount_all();
    }
    result.map(|()| x.report)
}

/// A plan being carried out: the host it reads, the runner, what is mounted (to unmount at the
/// end) and the report so far.
struct Exec<'a> {
    h: &'a dyn Host,
    r: &'a dyn Runner,
    o: &'a Options,
    mounted: Vec<PathBuf>,
    report: Report,
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
        images: &mut ImageFn<'_>,
    ) -> Result<(), RecoveryError> {
        let total = plan.actions.len();
        for (i, a) in plan.actions.iter().enumerate() {
            let what = a.describe();
            say(&format!("[{}/{total}] {what}", i + 1));
            let start = Instant::now();
            let already = self
                .step(a, restore, images)
                .map_err(|e| RecoveryError::Step { step: what.clone(), cause: Box::new(e) })?;
            let secs = start.elapsed().as_secs_f64();
            let phase = a.phase().as_str();
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
    fn step(
        &mut self,
        a: &Action,
        restore: &mut RestoreFn<'_>,
        images: &mut ImageFn<'_>,
    ) -> Result<bool, RecoveryError> {
        match a {
            Action::Partition { disk, script, partitions, .. } => self.partition(disk, script, partitions),
            Action::Wipe { device } => self.wipe(device),
            Action::Raid { device, uuid, cmd } => self.raid(device, uuid, cmd),
            Action::Luks { device, name, uuid, format } => self.luks(device, name, uuid, format),
            Action::Pv { device, uuid, cmd } => self.pv(device, uuid, cmd),
            Action::Vg { name, cmd } => self.vg(name, cmd),
            Action::Lv { name, cmd, .. } => self.lv(name, cmd),
            Action::Mkfs { device, fstype, uuid, cmd } => self.mkfs(device, fstype, uuid.as_deref(), cmd),
            Action::Mkswap { device, uuid, cmd } => self.mkswap(device, uuid.as_deref(), cmd),
            Action::Subvolumes { device, paths, default } => self.subvolumes(device, paths, default.as_deref()),
            Action::Mount { device, target, fstype, options } => self.mount(device, target, fstype, options.as_deref()),
            Action::WriteImage { device, kind, entry, needs, .. } => {
                self.write_image(device, *kind, entry, *needs, images)
            }
            Action::Restore { backup, .. } => restore::restore_once(&self.o.root, backup, restore, &mut self.report),
            Action::FixDevices { renames } => self.fix_devices(renames),
            Action::Identity { identity } => self.identity(identity),
            Action::Initramfs { only_if_missing_drivers, renames, .. } => {
                self.initramfs(only_if_missing_drivers.as_deref(), renames)
            }
            Action::GrubBios { disks } => self.grub_bios(disks),
            Action::GrubEfi { esp_mountpoint, id } => self.grub_efi(esp_mountpoint, id),
            Action::SystemdBoot { esp_mountpoint } => self.systemd_boot(esp_mountpoint),
        }
    }

    /// Run `f` with /dev, /proc, /sys and /run mounted inside the restored tree.
    fn in_chroot(&mut self, f: impl FnOnce(&mut Self) -> Result<(), RecoveryError>) -> Result<(), RecoveryError> {
        let root = self.o.root.clone();
        let mut binds: Vec<PathBuf> = Vec::new();
        let mut m = |x: &mut Self, args: Vec<&str>, dir: &str| -> Result<(), RecoveryError> {
            let target = root.join(dir);
            let _ = std::fs::create_dir_all(&target);
            if x.h.is_mounted_at(&target) {
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
            if self.h.is_mounted_at(Path::new(host::EFIVARS)) {
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
        for d in &self.report.decisions {
            text.push_str(&format!("DECIDED {d}\n"));
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

#[cfg(test)]
mod tests;
