//! Foreign partitions: the steps that write their images back, each onto
//! the partition recreated for it (of its old size: their content is not
//! interpreted, so room beyond it would go unused). A partition the image
//! does not fit is refused before anything is written.

use super::action::Action;
use super::{Plan, PlannedPartition};
use crate::RecoveryError;
use lifeboat_layout::model::{ImageKind, Layout};

/// How many bytes an image of the backup needs on its partition (see
/// [`Plan::add_images`]): None when the backup holds no such entry.
pub type ImageNeeds<'a> = dyn FnMut(&str, ImageKind) -> Option<Result<u64, String>> + 'a;

/// The magic at the start of an `ntfsclone --save-image` image.
pub const NTFSCLONE_MAGIC: &[u8; 16] = b"\0ntfsclone-image";

/// Bytes of an ntfsclone image's header that [`ntfsclone_device_size`] reads.
pub const NTFSCLONE_HEAD: usize = 30;

/// The size of the NTFS volume an ntfsclone image was saved from: the
/// header is the magic, major and minor version bytes, the cluster size (32
/// bits) and the device size (64 bits), little-endian. None when `head` is
/// not such a header.
pub fn ntfsclone_device_size(head: &[u8]) -> Option<u64> {
    if head.len() < NTFSCLONE_HEAD || &head[..16] != NTFSCLONE_MAGIC {
        return None;
    }
    let mut size = [0u8; 8];
    size.copy_from_slice(&head[22..30]);
    u64::try_from(i64::from_le_bytes(size)).ok()
}

/// The new partition a device of the layout became, from the plan's
/// partition tables: its device path and size in bytes.
fn planned_partition<'a>(plan: &'a Plan, old: &str) -> Option<(&'a PlannedPartition, u64)> {
    let new = plan.renames.get(old).map(String::as_str).unwrap_or(old);
    plan.actions.iter().find_map(|a| match a {
        Action::Partition { partitions, sector, .. } => {
            partitions.iter().find(|p| p.device == new).map(|p| (p, p.size.saturating_mul(*sector)))
        }
        _ => None,
    })
}

impl Plan {
    /// Add a step that writes each foreign partition's image back onto its
    /// recreated partition. `needs(entry, kind)` says how many bytes the
    /// image in the backup needs on its partition (a raw image: its size;
    /// NTFS: the volume size in its header), None when the backup holds no
    /// such entry (the partition is then left empty, and a note says so).
    /// An image larger than its partition is refused, naming both.
    pub fn add_images(&mut self, layout: &Layout, needs: &mut ImageNeeds<'_>) -> Result<(), RecoveryError> {
        for i in &layout.images {
            let Some((p, bytes)) = planned_partition(self, &i.device) else { continue };
            let device = p.device.clone();
            let entry = i.entry_path();
            let need = match needs(&entry, i.kind) {
                None => {
                    self.notes.push(format!(
                        "{device} (as {}, {} partition) is recreated empty: the backup holds no image of it ({entry}); \
                         back it up with it in backup.image_devices, or on a disk that is recovered",
                        i.device, i.kind
                    ));
                    continue;
                }
                Some(Err(why)) => {
                    return Err(RecoveryError::Unsupported(format!(
                        "the image of {} in the backup ({entry}) cannot be read: {why}; nothing was written",
                        i.device
                    )))
                }
                Some(Ok(n)) => n,
            };
            if need > bytes {
                return Err(RecoveryError::TooSmall {
                    disk: i.device.clone(),
                    size: bytes,
                    why: format!(
                        "its {} image ({entry}) needs {} bytes, more than the {bytes} bytes of the partition {device} planned for it; nothing was written",
                        i.kind, need
                    ),
                });
            }
            self.actions.push(Action::WriteImage {
                device,
                old: i.device.clone(),
                kind: i.kind,
                entry,
                needs: need,
                partition: bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ntfsclone_header_gives_the_volume_size_and_anything_else_none() {
        let mut h = NTFSCLONE_MAGIC.to_vec();
        h.extend([10, 0]);
        h.extend(4096u32.to_le_bytes());
        h.extend((64u64 << 20).to_le_bytes());
        assert_eq!(ntfsclone_device_size(&h), Some(64 << 20));
        assert_eq!(ntfsclone_device_size(&h[..29]), None, "short");
        let mut bad = h.clone();
        bad[1] = b'N';
        assert_eq!(ntfsclone_device_size(&bad), None, "no magic");
        let mut negative = h.clone();
        negative[22..30].copy_from_slice(&(-1i64).to_le_bytes());
        assert_eq!(ntfsclone_device_size(&negative), None, "negative size");
    }
}
