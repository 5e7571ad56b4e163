//! The bootloader: GRUB for BIOS on the disks that held it (else the disk
//! of /boot or /), GRUB for UEFI on the ESP under the old loader's id,
//! systemd-boot on the ESP where it booted the source.

use super::action::Action;
use super::Plan;
use lifeboat_layout::model::{BootloaderKind, Layout};

/// The EFI directory the old loader lived in (`/EFI/fedora/shimx64.efi` →
/// `fedora`), leaving out the removable fallback path `EFI/BOOT`.
fn efi_loader_id(loaders: &[String]) -> Option<String> {
    loaders.iter().find_map(|l| {
        let parts: Vec<&str> = l.trim_start_matches('/').split('/').collect();
        (parts.len() == 3 && parts[0].eq_ignore_ascii_case("efi") && !parts[1].eq_ignore_ascii_case("boot"))
            .then(|| parts[1].to_string())
    })
}

/// Add the bootloader steps the layout's bootloader calls for, or a note
/// saying why there is none.
pub(super) fn bootloader(plan: &mut Plan, layout: &Layout) {
    let b = &layout.bootloader;
    let new_disk = |old: &str| plan.disks.iter().find(|m| m.old == old).map(|m| m.new.clone());
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    if b.kind.bios() {
        let mut disks: Vec<String> = b.bios_boot_disks.iter().filter_map(|d| new_disk(d)).collect();
        if disks.is_empty() {
            // The disk that holds /boot, else /.
            let holder = ["/boot", "/"].iter().find_map(|mp| {
                layout
                    .filesystems
                    .iter()
                    .find(|f| f.mountpoints.iter().any(|m| m == mp))
                    .and_then(|f| layout.disk_of(&f.device).map(|d| d.id.clone()))
            });
            disks.extend(holder.and_then(|h| new_disk(&h)));
        }
        if disks.is_empty() {
            notes.push("GRUB for BIOS was installed, but none of its disks is recreated".into());
        } else {
            actions.push(Action::GrubBios { disks });
        }
    }
    if b.kind.efi() {
        let esp_mountpoint = b.esp_mountpoint.clone().unwrap_or_else(|| "/boot/efi".into());
        let id = efi_loader_id(&b.efi_loaders).unwrap_or_else(|| "debian".into());
        actions.push(Action::GrubEfi { esp_mountpoint, id });
    }
    if b.kind == BootloaderKind::SystemdBoot {
        let esp_mountpoint = b.esp_mountpoint.clone().unwrap_or_else(|| "/boot/efi".into());
        actions.push(Action::SystemdBoot { esp_mountpoint });
    }
    if !b.kind.bios() && !b.kind.efi() && b.kind != BootloaderKind::SystemdBoot {
        notes.push(format!(
            "the layout records bootloader `{}`: no bootloader is installed, the recovered disk may not boot by itself",
            b.kind
        ));
    }
    plan.actions.extend(actions);
    plan.notes.extend(notes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_efi_id_is_the_old_loaders_directory_not_the_fallback() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(efi_loader_id(&l(&["/EFI/BOOT/BOOTX64.EFI", "/EFI/fedora/shimx64.efi"])).as_deref(), Some("fedora"));
        assert_eq!(efi_loader_id(&l(&["EFI/ubuntu/grubx64.efi"])).as_deref(), Some("ubuntu"));
        assert_eq!(efi_loader_id(&l(&["/EFI/BOOT/BOOTX64.EFI", "/EFI/a/b/c.efi"])), None);
    }
}
