//! Foreign partitions: those whose content lifeboat does not recreate
//! (NTFS, a filesystem of another kind, raw data), saved as images.
//!
//! A partition is foreign when it is none of: a filesystem recovery makes
//! (ext2/3/4, XFS, btrfs, FAT), swap, a container recovery rebuilds (LUKS,
//! LVM PV, md RAID member), an MBR extended partition, a BIOS boot
//! partition (GRUB rewrites it), or empty (no signature and its first MiB
//! all zeros).

use crate::model::ImageKind;

/// Signatures of what recovery recreates itself.
const RECREATED: &[&str] =
    &["ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "swap", "crypto_LUKS", "LVM2_member", "linux_raid_member"];

/// Partition types that are never imaged: MBR extended containers, the BIOS
/// boot partition, swap (GPT and MBR).
const NEVER_IMAGED_TYPES: &[&str] =
    &["5", "05", "f", "0f", "85", "21686148-6449-6e6f-744e-656564454649", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", "82"];

/// How many bytes at the start of a partition without a signature are read
/// to tell raw data from an empty partition.
pub const EMPTY_HEAD: usize = 1 << 20;

/// How a partition with the signature `fstype` (blkid TYPE) and type
/// `part_type` is saved, or None when recovery recreates it or it is empty.
/// `head_is_zero` is asked only for a partition without a signature.
pub fn image_kind(fstype: Option<&str>, part_type: &str, head_is_zero: impl FnOnce() -> bool) -> Option<ImageKind> {
    if NEVER_IMAGED_TYPES.contains(&part_type.to_ascii_lowercase().as_str()) {
        return None;
    }
    match fstype {
        Some(t) if RECREATED.contains(&t) => None,
        Some("ntfs") => Some(ImageKind::Ntfs),
        Some(_) => Some(ImageKind::Raw),
        None if head_is_zero() => None,
        None => Some(ImageKind::Raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    const MS_DATA: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";

    #[test]
    fn ntfs_is_an_ntfs_image_and_other_signatures_raw_ones() {
        let never = || panic!("a partition with a signature is not read");
        assert_eq!(image_kind(Some("ntfs"), MS_DATA, never), Some(ImageKind::Ntfs));
        assert_eq!(image_kind(Some("ntfs"), "7", never), Some(ImageKind::Ntfs));
        for t in ["zfs_member", "BitLocker", "iso9660", "exfat", "ufs", "hfsplus"] {
            assert_eq!(image_kind(Some(t), LINUX, never), Some(ImageKind::Raw), "{t}");
        }
    }

    #[test]
    fn what_recovery_recreates_is_not_imaged() {
        for t in RECREATED {
            assert_eq!(image_kind(Some(t), LINUX, || false), None, "{t}");
        }
    }

    #[test]
    fn extended_bios_boot_and_swap_partitions_are_never_imaged() {
        for ty in ["5", "f", "85", "21686148-6449-6E6F-744E-656564454649", "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "82"]
        {
            assert_eq!(image_kind(None, ty, || false), None, "{ty}");
            assert_eq!(image_kind(Some("ntfs"), ty, || false), None, "{ty}");
        }
    }

    #[test]
    fn without_a_signature_data_is_raw_and_zeros_are_empty() {
        assert_eq!(image_kind(None, LINUX, || false), Some(ImageKind::Raw));
        assert_eq!(image_kind(None, "da", || false), Some(ImageKind::Raw));
        assert_eq!(image_kind(None, LINUX, || true), None);
    }
}
