//! Making the restored system boot: its initramfs and GRUB, run inside it
//! (chroot) when it has the tools, else from the rescue system.

use super::host::EFIVARS;
use super::Exec;
use crate::RecoveryError;
use lifeboat_runner::Cmd;
use std::path::Path;

/// The initramfs tools lifeboat knows, by the path that shows one is installed.
const INITRAMFS_TOOLS: &[(&str, &[&str])] = &[
    ("usr/sbin/update-initramfs", &["update-initramfs", "-u", "-k", "all"]),
    ("usr/bin/dracut", &["dracut", "--regenerate-all", "-f"]),
    ("usr/bin/mkinitcpio", &["mkinitcpio", "-P"]),
];

impl Exec<'_> {
    /// Regenerate the initramfs with the restored system's own tool.
    pub(super) fn initramfs(&mut self) -> Result<bool, RecoveryError> {
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
}
