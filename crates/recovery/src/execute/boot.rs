//! Making the restored system boot: its initramfs and GRUB, run inside it
//! (chroot) when it has the tools, else from the rescue system; systemd-boot
//! only with the restored system's own `bootctl`.

use super::host::EFIVARS;
use super::restore::{read_config, replace_devices};
use super::Exec;
use crate::RecoveryError;
use lifeboat_runner::Cmd;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The initramfs tools lifeboat knows, by the path that shows one is installed.
const INITRAMFS_TOOLS: &[(&str, &[&str])] = &[
    ("usr/sbin/update-initramfs", &["update-initramfs", "-u", "-k", "all"]),
    ("usr/bin/dracut", &["dracut", "--regenerate-all", "-f"]),
    ("usr/bin/mkinitcpio", &["mkinitcpio", "-P"]),
];

/// The kernel modules of the drivers between a disk and the system bus, as
/// sysfs under `sys` shows them (`/dev/vda` → `virtio_blk`, `virtio_pci`;
/// `/dev/sda` on AHCI → `sd_mod`, `ahci`); drivers built into the kernel have
/// no module and are left out. Names use `_` as `modules.dep` does not always.
pub fn disk_modules(sys: &Path, disk: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(name) = Path::new(disk).file_name() else { return out };
    let Ok(mut p) = std::fs::canonicalize(sys.join("block").join(name).join("device")) else { return out };
    let devices = sys.join("devices");
    // A device path is a few dozen levels at most; bound the walk anyway.
    for _ in 0..64 {
        if !p.starts_with(&devices) {
            break;
        }
        if let Ok(module) = std::fs::read_link(p.join("driver").join("module")) {
            if let Some(m) = module.file_name() {
                let m = m.to_string_lossy().replace('-', "_");
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        if !p.pop() {
            break;
        }
    }
    out
}

/// The module names in a listing of an initramfs (`lsinitramfs`, `lsinitrd`)
/// or in `modules.builtin`: every path ending in `.ko` (compressed or not).
pub fn listed_modules(listing: &str) -> BTreeSet<String> {
    listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter_map(|p| p.rsplit('/').next())
        .filter_map(|f| [".ko", ".ko.zst", ".ko.xz", ".ko.gz"].iter().find_map(|ext| f.strip_suffix(ext)))
        .map(|m| m.replace('-', "_"))
        .collect()
}

/// The configuration that initramfs tools copy into the initramfs or read
/// when they build it, and that may name devices: with renamed devices, an
/// initramfs built from files that name one is stale.
const INITRAMFS_CONFIG_FILES: &[&str] = &["etc/crypttab", "etc/mdadm/mdadm.conf", "etc/mdadm.conf", "etc/fstab"];
/// Directories of such configuration (every regular file in them, a level deep).
const INITRAMFS_CONFIG_DIRS: &[&str] =
    &["etc/initramfs-tools", "etc/initramfs-tools/conf.d", "etc/dracut.conf.d", "etc/mkinitcpio.conf.d"];
/// Single files of the tools' configuration.
const INITRAMFS_TOOL_FILES: &[&str] = &["etc/dracut.conf", "etc/mkinitcpio.conf"];
/// Why the restored initramfs may name a renamed device: the first file of
/// the configuration it is built from (see [`INITRAMFS_CONFIG_FILES`]) that
/// names one of `renames` by its old or its new name (after the fix-up
/// step, it holds the new one), or None.
pub fn initramfs_names_renamed(root: &Path, renames: &BTreeMap<String, String>) -> Option<String> {
    if renames.is_empty() {
        return None;
    }
    let mut files: Vec<String> =
        INITRAMFS_CONFIG_FILES.iter().chain(INITRAMFS_TOOL_FILES).map(|f| f.to_string()).collect();
    for d in INITRAMFS_CONFIG_DIRS {
        let dir = root.join(d);
        if std::fs::symlink_metadata(&dir).map(|m| !m.is_dir()).unwrap_or(true) {
            continue;
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .take(1000)
            .map(|e| format!("{d}/{}", e.file_name().to_string_lossy()))
            .collect();
        names.sort();
        files.extend(names);
    }
    let names: BTreeSet<&String> = renames.iter().flat_map(|(old, new)| [old, new]).collect();
    for f in files {
        let Some(text) = read_config(&root.join(&f)) else { continue };
        let named: Vec<&str> = names.iter().filter(|n| names_device(&text, n)).map(|n| n.as_str()).collect();
        if !named.is_empty() {
            return Some(format!("/{f} names {} and the devices are renamed", named.join(", ")));
        }
    }
    None
}

/// Whether `text` names the device `name` as a whole (`/dev/sda1`, not the start of `/dev/sda10`).
fn names_device(text: &str, name: &str) -> bool {
    replace_devices(text, &BTreeMap::from([(name.to_string(), String::new())])) != text
}

/// Where a restored system keeps the systemd-boot image that `bootctl install` copies.
const SYSTEMD_BOOT_IMAGES: &[&str] =
    &["usr/lib/systemd/boot/efi/systemd-bootx64.efi", "lib/systemd/boot/efi/systemd-bootx64.efi"];

/// The command, run in the restored system, that installs systemd-boot on
/// the ESP mounted at `esp` (EFI/systemd and the fallback EFI/BOOT/BOOTX64.EFI),
/// with a boot entry only when the firmware's variables are reachable
/// (`nvram`). The ESP checks are relaxed because the rescue system has no
/// udev for bootctl to ask what the partition is (the plan made it an ESP).
pub fn bootctl_install(esp: &str, nvram: bool) -> Vec<String> {
    let mut v: Vec<String> = ["env", "SYSTEMD_RELAX_ESP_CHECKS=1", "bootctl", "install"].map(String::from).to_vec();
    v.push(format!("--esp-path={esp}"));
    if !nvram {
        v.push("--no-variables".into());
    }
    v
}

impl Exec<'_> {
    /// Why the restored initramfs cannot be kept for `disks`: None when every
    /// initramfs in its /boot holds (or its kernel has built in) every driver
    /// module the new disks need, else the reason (also when it cannot be
    /// told: no initramfs found, no tool to list one).
    fn initramfs_lacks(&mut self, disks: &[String]) -> Option<String> {
        let root = self.o.root.clone();
        let mut needed: Vec<String> = Vec::new();
        for d in disks {
            for m in disk_modules(Path::new("/sys"), d) {
                if !needed.contains(&m) {
                    needed.push(m);
                }
            }
        }
        let boot = root.join("boot");
        let mut images: Vec<(String, String)> = std::fs::read_dir(&boot)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                let kver = n
                    .strip_prefix("initrd.img-")
                    .or_else(|| n.strip_prefix("initramfs-").and_then(|k| k.strip_suffix(".img")))?;
                Some((n.clone(), kver.to_string()))
            })
            .collect();
        images.sort();
        if images.is_empty() {
            return Some(format!("no initramfs in {}", boot.display()));
        }
        let lister = if root.join("usr/bin/lsinitramfs").exists() {
            "lsinitramfs"
        } else if root.join("usr/bin/lsinitrd").exists() {
            "lsinitrd"
        } else {
            return Some("the restored system has no lsinitramfs or lsinitrd to look into its initramfs".into());
        };
        // Listed inside the restored system with /dev, /proc and /sys in place
        // (its tools may want them; nothing may be created in its /dev).
        let mut listings: Vec<Result<String, String>> = Vec::new();
        let listed = self.in_chroot(|x| {
            for (image, _) in &images {
                let cmd = Cmd::new("chroot").arg(&root).args([lister, &format!("/boot/{image}")]);
                listings.push(x.r.probe(&cmd).map(|o| o.text()).map_err(|e| e.reason()));
            }
            Ok(())
        });
        if let Err(e) = listed {
            return Some(format!("the restored system could not be entered to list its initramfs: {e}"));
        }
        for ((image, kver), listing) in images.iter().zip(listings) {
            let listing = match listing {
                Ok(l) => l,
                Err(why) => return Some(format!("{lister} /boot/{image} failed: {why}")),
            };
            let mut have = listed_modules(&listing);
            let builtin = root.join("lib/modules").join(kver).join("modules.builtin");
            have.extend(listed_modules(&std::fs::read_to_string(builtin).unwrap_or_default()));
            let missing: Vec<&String> = needed.iter().filter(|m| !have.contains(*m)).collect();
            if !missing.is_empty() {
                let m: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                return Some(format!("/boot/{image} lacks {} (needed by {})", m.join(", "), disks.join(", ")));
            }
        }
        let kept = format!(
            "the restored initramfs holds the drivers the new disks need ({}): kept as it was",
            if needed.is_empty() { "all built in".to_string() } else { needed.join(", ") }
        );
        log::info!("{kept}");
        self.report.decisions.push(kept);
        None
    }

    /// Regenerate the initramfs with the restored system's own tool; with
    /// `only_if_missing` (the new disks), only when it lacks one of their
    /// drivers or the configuration it carries names one of `renames`.
    pub(super) fn initramfs(
        &mut self,
        only_if_missing: Option<&[String]>,
        renames: &BTreeMap<String, String>,
    ) -> Result<bool, RecoveryError> {
        if let Some(disks) = only_if_missing {
            let why = initramfs_names_renamed(&self.o.root, renames).or_else(|| self.initramfs_lacks(disks));
            match why {
                None => return Ok(false),
                Some(why) => {
                    log::info!("regenerating the initramfs: {why}");
                    self.report.decisions.push(format!("regenerating the initramfs: {why}"));
                    self.report.warnings.push(format!("the initramfs was regenerated: {why}"));
                }
            }
        }
        let root = self.o.root.clone();
        let Some((_, args)) = INITRAMFS_TOOLS.iter().find(|(p, _)| root.join(p).exists()) else {
            self.report.warnings.push(
                "the restored system has no update-initramfs, dracut or mkinitcpio: its initramfs was not regenerated"
                    .into(),
            );
            return Ok(false);
        };
        self.in_chroot(|x| x.run(&Cmd::new("chroot").arg(&root).args(args.iter().copied())).map(|_| ()))?;
        Ok(false)
    }

    /// GRUB for BIOS in the boot sector of each disk.
    pub(super) fn grub_bios(&mut self, disks: &[String]) -> Result<bool, RecoveryError> {
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

    /// GRUB for UEFI on the ESP under `id`, with a boot entry where the
    /// firmware's variables are reachable, and the removable fallback path.
    pub(super) fn grub_efi(&mut self, esp_mountpoint: &str, id: &str) -> Result<bool, RecoveryError> {
        let root = self.o.root.clone();
        // Boot entries can be written only where the firmware's variables are reachable.
        let nvram = self.h.is_mounted_at(Path::new(EFIVARS));
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
                        .arg(format!("--efi-directory={}", root.join(esp_mountpoint.trim_start_matches('/')).display()))
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

    /// systemd-boot on the ESP with the restored system's own `bootctl`
    /// (the rescue system carries none); its loader entries and
    /// loader.conf are the restored files, their root= and rd.luks.uuid=
    /// already renewed by the identity step in a clone.
    pub(super) fn systemd_boot(&mut self, esp_mountpoint: &str) -> Result<bool, RecoveryError> {
        let root = self.o.root.clone();
        let own = root.join("usr/bin/bootctl").exists() || root.join("bin/bootctl").exists();
        if !own || !SYSTEMD_BOOT_IMAGES.iter().any(|p| root.join(p).exists()) {
            return Err(RecoveryError::Unsupported(format!(
                "the source booted with systemd-boot, but the restored system has no bootctl or no {}: \
                 install systemd-boot in it (chroot {} apt-get install systemd-boot) and run `bootctl install`",
                SYSTEMD_BOOT_IMAGES[0],
                root.display()
            )));
        }
        let nvram = self.h.is_mounted_at(Path::new(EFIVARS));
        let args = bootctl_install(esp_mountpoint, nvram);
        self.in_chroot(|x| x.run(&Cmd::new("chroot").arg(&root).args(args.iter().map(String::as_str))).map(|_| ()))?;
        if !nvram {
            self.report.warnings.push("no EFI variables here (not booted with UEFI): no boot entry was written; the disk boots through EFI/BOOT/BOOTX64.EFI".into());
        }
        Ok(false)
    }
}

#[cfg(test)]
mod bootctl_tests {
    use super::bootctl_install;

    #[test]
    fn bootctl_writes_a_boot_entry_only_where_the_firmware_variables_are() {
        assert_eq!(
            bootctl_install("/boot/efi", true).join(" "),
            "env SYSTEMD_RELAX_ESP_CHECKS=1 bootctl install --esp-path=/boot/efi"
        );
        assert_eq!(
            bootctl_install("/efi", false).join(" "),
            "env SYSTEMD_RELAX_ESP_CHECKS=1 bootctl install --esp-path=/efi --no-variables"
        );
    }
}
