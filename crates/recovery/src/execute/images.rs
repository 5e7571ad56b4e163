//! Writing a foreign partition's image from the backup onto its new
//! partition: NTFS through `ntfsclone --restore-image`, raw images at their
//! offsets with the holes zeroed. Every byte of the image may be hostile:
//! nothing is written past the partition the plan made for it, and an NTFS
//! image whose header asks for a larger volume is refused before ntfsclone
//! reads a byte of it.

use super::{Exec, ImageFn};
use crate::plan::images::{ntfsclone_device_size, NTFSCLONE_HEAD};
use crate::RecoveryError;
use lifeboat_layout::model::ImageKind;
use lifeboat_runner::{Cmd, Effect, Streams};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// Zeros written for the holes of a raw image when the device cannot zero itself.
static ZEROS: [u8; 64 << 10] = [0u8; 64 << 10];

/// The size of a block device (or file) in bytes.
fn device_size(device: &str) -> Result<u64, RecoveryError> {
    let mut f = std::fs::File::open(device).map_err(|e| RecoveryError::Io(device.into(), e))?;
    f.seek(SeekFrom::End(0)).map_err(|e| RecoveryError::Io(device.into(), e))
}

/// Write zeros from `from` to `to` through `put(offset, bytes)`.
fn zero_fill(from: u64, to: u64, put: &mut dyn FnMut(u64, &[u8]) -> std::io::Result<()>) -> std::io::Result<()> {
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        put(at, &ZEROS[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// The bounds every image write is held to: inside `limit` bytes.
fn bounded(offset: u64, len: usize, limit: u64) -> std::io::Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= limit => Ok(()),
        _ => Err(std::io::Error::other(format!(
            "the image writes beyond the {limit} bytes of its partition (at byte {offset}): refused"
        ))),
    }
}

impl Exec<'_> {
    /// Write the image `entry` of the kind `kind` onto `device`, which must
    /// hold at least `needs` bytes (the plan's partition).
    pub(super) fn write_image(
        &mut self,
        device: &str,
        kind: ImageKind,
        entry: &str,
        needs: u64,
        images: &mut ImageFn<'_>,
    ) -> Result<bool, RecoveryError> {
        let size = device_size(device)?;
        if size < needs {
            return Err(RecoveryError::TooSmall {
                disk: device.into(),
                size,
                why: format!("the image {entry} needs {needs} bytes; nothing was written"),
            });
        }
        match kind {
            ImageKind::Raw => self.write_raw(device, entry, size, images),
            ImageKind::Ntfs => self.write_ntfs(device, entry, size, images),
        }
        .map(|()| false)
    }

    /// A raw image: the device zeroed first (`blkdiscard --zeroout`, else
    /// zeros written into every hole), then the data at its offsets.
    fn write_raw(
        &mut self,
        device: &str,
        entry: &str,
        size: u64,
        images: &mut ImageFn<'_>,
    ) -> Result<(), RecoveryError> {
        let zeroed = self.r.apply(&Cmd::new("blkdiscard").args(["--zeroout", device])).is_ok();
        if !zeroed {
            log::info!("{device}: blkdiscard --zeroout failed; the holes of {entry} are written as zeros");
        }
        let f =
            std::fs::OpenOptions::new().write(true).open(device).map_err(|e| RecoveryError::Io(device.into(), e))?;
        let mut end = 0u64;
        let mut put = |offset: u64, data: &[u8]| -> std::io::Result<()> {
            bounded(offset, data.len(), size)?;
            f.write_all_at(data, offset)
        };
        let mut write_at = |offset: u64, data: &[u8]| -> std::io::Result<()> {
            bounded(offset, data.len(), size)?;
            if !zeroed {
                zero_fill(end, offset, &mut put)?;
            }
            put(offset, data)?;
            end = offset + data.len() as u64;
            Ok(())
        };
        let real = images(entry, &mut write_at).map_err(RecoveryError::Unsupported)?;
        if real > size {
            return Err(RecoveryError::Unsupported(format!("{entry} is {real} bytes, more than {device} ({size})")));
        }
        if !zeroed {
            zero_fill(end, real, &mut put).map_err(|e| RecoveryError::Io(device.into(), e))?;
        }
        f.sync_all().map_err(|e| RecoveryError::Io(device.into(), e))
    }

    /// An NTFS image: its header checked against the partition, then fed to
    /// `ntfsclone --restore-image --overwrite DEVICE -`.
    fn write_ntfs(
        &mut self,
        device: &str,
        entry: &str,
        size: u64,
        images: &mut ImageFn<'_>,
    ) -> Result<(), RecoveryError> {
        let cmd = Cmd::new("ntfsclone").args(["--quiet", "--restore-image", "--overwrite", device, "-"]);
        let mut head: Vec<u8> = Vec::with_capacity(NTFSCLONE_HEAD);
        let mut child: Option<lifeboat_runner::Process> = None;
        let mut pos = 0u64;
        let mut spawn_error: Option<RecoveryError> = None;
        let r = self.r;
        // An ntfsclone image is a little larger than the used part of its volume (a marker per
        // cluster, a header): never more than the partition and a 1/512 share.
        let limit = size.saturating_add(size / 512).saturating_add(1 << 20);
        let mut feed = |bytes: &[u8]| -> std::io::Result<()> {
            if child.is_none() {
                let take = (NTFSCLONE_HEAD - head.len()).min(bytes.len());
                head.extend_from_slice(&bytes[..take]);
                if head.len() < NTFSCLONE_HEAD {
                    return Ok(());
                }
                let Some(volume) = ntfsclone_device_size(&head) else {
                    return Err(std::io::Error::other("not an ntfsclone image (its header is wrong): refused"));
                };
                if volume > size {
                    return Err(std::io::Error::other(format!(
                        "its header asks for an NTFS volume of {volume} bytes, more than the {size} bytes of {device}: refused"
                    )));
                }
                let mut p = match r.spawn(&cmd, Effect::Apply, Streams::new().stdin_pipe()) {
                    Ok(p) => p,
                    Err(e) => {
                        spawn_error = Some(e.into());
                        return Err(std::io::Error::other("ntfsclone cannot be started"));
                    }
                };
                let Some(w) = p.stdin() else { return Err(std::io::Error::other("ntfsclone has no stdin")) };
                w.write_all(&head)?;
                w.write_all(&bytes[take..])?;
                child = Some(p);
            } else if let Some(w) = child.as_mut().and_then(|p| p.stdin()) {
                w.write_all(bytes)?;
            }
            Ok(())
        };
        let mut write_at = |offset: u64, data: &[u8]| -> std::io::Result<()> {
            // An image is one stream; a hole (a sparse entry) is zeros in it, fed a block at a time.
            bounded(offset, data.len(), limit)?;
            while pos < offset {
                let n = (offset - pos).min(ZEROS.len() as u64) as usize;
                feed(&ZEROS[..n])?;
                pos += n as u64;
            }
            feed(data)?;
            pos = pos.max(offset) + data.len() as u64;
            Ok(())
        };
        let read = images(entry, &mut write_at);
        if let Some(e) = spawn_error {
            return Err(e);
        }
        match (read, child) {
            (Ok(_), Some(mut p)) => {
                p.close_stdin();
                p.wait()?;
                Ok(())
            }
            (Ok(_), None) => Err(RecoveryError::Unsupported(format!("{entry} is shorter than an ntfsclone header"))),
            (Err(why), p) => {
                if let Some(p) = p {
                    let _ = p.kill();
                }
                Err(RecoveryError::Unsupported(why))
            }
        }
    }
}
