//! A medium that checks itself: a BLAKE3 of the whole ISO image, with the
//! medium's place in its set, stored in the primary volume descriptor's
//! application-use area after xorriso wrote the image (the idea of
//! checkisomd5). The isohybrid MBR/GPT, El Torito and the files stay as
//! xorriso made them: only 512 bytes the ISO 9660 standard leaves to
//! applications change.
//!
//! The field (at byte 32768 + 883 of the image, 512 bytes):
//!
//! | offset | size | what |
//! |---|---|---|
//! | 0 | 16 | magic `LIFEBOAT-MEDIUM1` |
//! | 16 | 8 | image size in bytes (u64 LE), a multiple of 2048 |
//! | 24 | 4 | this medium's number, 1-based (u32 LE) |
//! | 28 | 4 | how many media the set has (u32 LE) |
//! | 32 | 32 | BLAKE3 of the image's first *size* bytes with these 32 bytes zeroed |
//! | 64 | 1 | length of the backup ID (0..=64) |
//! | 65 | 64 | the backup ID (UTF-8), zero-padded |
//!
//! Every field is read as hostile: the size is bounded by the device and by
//! [`MAX_IMAGE`], the set position must be 1..=of<=999, the ID must be UTF-8.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

/// Where the application-use area of the primary volume descriptor starts.
pub const FIELD_OFFSET: u64 = 16 * 2048 + 883;
/// Its size.
const FIELD_LEN: usize = 512;
const MAGIC: &[u8; 16] = b"LIFEBOAT-MEDIUM1";
const HASH_AT: usize = 32;
/// The largest image checked (a BD-R DL holds 50 GB).
pub const MAX_IMAGE: u64 = 64 << 30;

/// Where a medium stands in its set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    /// This medium's number, 1-based.
    pub medium: u32,
    /// How many media the set has.
    pub of: u32,
    /// The backup the set holds (empty for a medium without one).
    pub backup: String,
}

/// What a check found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Checked {
    /// The medium's place in its set.
    pub position: Position,
    /// Its volume label.
    pub label: String,
    /// The image size that was read.
    pub bytes: u64,
    /// Seconds the read took.
    pub seconds: f64,
}

/// Why a medium did not pass.
#[derive(Debug, thiserror::Error)]
pub enum MediumError {
    /// It carries no checksum: made by another tool or an older lifeboat.
    #[error("{0}: carries no lifeboat checksum (not a lifeboat medium, or made before lifeboat embedded one); check it with its .sha256 file")]
    NoChecksum(String),
    /// The field is there but makes no sense.
    #[error("{0}: its checksum field is invalid ({1}): the medium is damaged; make it again with lifeboat mkrescue or mkbackup")]
    Invalid(String, String),
    /// Shorter than the image it says it holds.
    #[error("{name}: medium {medium} of {of} ({label}) is truncated: {have} bytes of {want}; make or burn it again")]
    Truncated {
        /// Device or file.
        name: String,
        /// Position.
        medium: u32,
        /// Set size.
        of: u32,
        /// Label.
        label: String,
        /// Bytes readable.
        have: u64,
        /// Bytes expected.
        want: u64,
    },
    /// The checksum does not match.
    #[error("{name}: medium {medium} of {of} ({label}{backup}) is DAMAGED: its checksum does not match; do not recover from it, make or burn it again")]
    Damaged {
        /// Device or file.
        name: String,
        /// Position.
        medium: u32,
        /// Set size.
        of: u32,
        /// Label.
        label: String,
        /// ", backup ID" or empty.
        backup: String,
    },
    /// Reading failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

fn label_of(pvd: &[u8]) -> String {
    // Volume identifier: PVD bytes 40..72, space-padded a-/d-characters.
    let raw = pvd.get(40..72).unwrap_or_default();
    raw.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' }).collect::<String>().trim_end().to_string()
}

fn pvd_ok(pvd: &[u8]) -> bool {
    pvd.len() >= 2048 && pvd[0] == 1 && &pvd[1..6] == b"CD001"
}

fn hash_image(f: &mut (impl Read + Seek), size: u64, progress: &mut dyn FnMut(u64, u64)) -> std::io::Result<[u8; 32]> {
    f.seek(SeekFrom::Start(0))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut done = 0u64;
    let hash_at = FIELD_OFFSET + HASH_AT as u64;
    while done < size {
        let want = ((size - done) as usize).min(buf.len());
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "short read"));
        }
        // Zero the 32 checksum bytes where this chunk overlaps them.
        let (start, end) = (done, done + n as u64);
        let (zs, ze) = (hash_at.max(start), (hash_at + 32).min(end));
        if zs < ze {
            buf[(zs - start) as usize..(ze - start) as usize].fill(0);
        }
        h.update(&buf[..n]);
        done = end;
        progress(done, size);
    }
    Ok(*h.finalize().as_bytes())
}

/// Embed the checksum and set position into the ISO image at `path`
/// (a file xorriso just wrote).
pub fn implant(path: &Path, pos: &Position) -> Result<(), MediumError> {
    let name = path.display().to_string();
    let io = |e| MediumError::Io(name.clone(), e);
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let mut pvd = vec![0u8; 2048];
    f.seek(SeekFrom::Start(16 * 2048)).map_err(io)?;
    f.read_exact(&mut pvd).map_err(io)?;
    if !pvd_ok(&pvd) || size % 2048 != 0 || size > MAX_IMAGE {
        return Err(MediumError::Invalid(name, "not an ISO 9660 image xorriso wrote".into()));
    }
    let id = pos.backup.as_bytes();
    if id.len() > 64 || pos.medium == 0 || pos.medium > pos.of || pos.of > 999 {
        return Err(MediumError::Invalid(name, "backup ID longer than 64 bytes or set position out of range".into()));
    }
    let mut field = [0u8; FIELD_LEN];
    field[..16].copy_from_slice(MAGIC);
    field[16..24].copy_from_slice(&size.to_le_bytes());
    field[24..28].copy_from_slice(&pos.medium.to_le_bytes());
    field[28..32].copy_from_slice(&pos.of.to_le_bytes());
    field[64] = id.len() as u8;
    field[65..65 + id.len()].copy_from_slice(id);
    f.seek(SeekFrom::Start(FIELD_OFFSET)).map_err(io)?;
    f.write_all(&field).map_err(io)?;
    let sum = hash_image(&mut f, size, &mut |_, _| {}).map_err(io)?;
    f.seek(SeekFrom::Start(FIELD_OFFSET + HASH_AT as u64)).map_err(io)?;
    f.write_all(&sum).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Size of a file or block device (seek to its end).
fn length(f: &mut std::fs::File) -> std::io::Result<u64> {
    let n = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(n)
}

/// Check the medium (ISO file or device) at `path`; `progress(done, total)`
/// is called after each 4 MiB read.
pub fn check(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<Checked, MediumError> {
    let name = path.display().to_string();
    let io = |e| MediumError::Io(name.clone(), e);
    let start = Instant::now();
    let mut f = std::fs::File::open(path).map_err(io)?;
    let have = length(&mut f).map_err(io)?;
    let mut pvd = vec![0u8; 2048];
    if have < 17 * 2048 {
        return Err(MediumError::NoChecksum(name));
    }
    f.seek(SeekFrom::Start(16 * 2048)).map_err(io)?;
    f.read_exact(&mut pvd).map_err(io)?;
    let at = (FIELD_OFFSET - 16 * 2048) as usize;
    let field = &pvd[at..at + FIELD_LEN];
    if !pvd_ok(&pvd) || &field[..16] != MAGIC {
        return Err(MediumError::NoChecksum(name));
    }
    let label = label_of(&pvd);
    let u32_at = |i: usize| u32::from_le_bytes([field[i], field[i + 1], field[i + 2], field[i + 3]]);
    let mut size_b = [0u8; 8];
    size_b.copy_from_slice(&field[16..24]);
    let size = u64::from_le_bytes(size_b);
    let (medium, of) = (u32_at(24), u32_at(28));
    let id_len = field[64] as usize;
    let invalid = |why: &str| MediumError::Invalid(name.clone(), why.to_string());
    if size < 17 * 2048 || size % 2048 != 0 || size > MAX_IMAGE {
        return Err(invalid(&format!("image size {size}")));
    }
    if medium == 0 || medium > of || of > 999 {
        return Err(invalid(&format!("medium {medium} of {of}")));
    }
    if id_len > 64 {
        return Err(invalid("backup ID length"));
    }
    let backup = std::str::from_utf8(&field[65..65 + id_len]).map_err(|_| invalid("backup ID not UTF-8"))?.to_string();
    let position = Position { medium, of, backup };
    let truncated = |have: u64| MediumError::Truncated {
        name: name.clone(),
        medium,
        of,
        label: label.clone(),
        have,
        want: size,
    };
    if have < size {
        return Err(truncated(have));
    }
    let mut want = [0u8; 32];
    want.copy_from_slice(&field[HASH_AT..HASH_AT + 32]);
    let sum = match hash_image(&mut f, size, progress) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(truncated(have)),
        Err(e) => return Err(io(e)),
    };
    if sum != want {
        let backup = if position.backup.is_empty() { String::new() } else { format!(", backup {}", position.backup) };
        return Err(MediumError::Damaged { name, medium, of, label, backup });
    }
    Ok(Checked { position, label, bytes: size, seconds: start.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_iso(dir: &Path, blocks: u64) -> std::path::PathBuf {
        let p = dir.join("m.iso");
        let mut img = vec![0u8; (blocks * 2048) as usize];
        // An MBR signature, as isohybrid writes, which must survive.
        img[510] = 0x55;
        img[511] = 0xaa;
        let pvd = 16 * 2048;
        img[pvd] = 1;
        img[pvd + 1..pvd + 6].copy_from_slice(b"CD001");
        img[pvd + 40..pvd + 72].copy_from_slice(format!("{:<32}", "LIFEBOAT_2").as_bytes());
        for (i, b) in img.iter_mut().enumerate().skip(20 * 2048) {
            *b = (i % 251) as u8;
        }
        std::fs::write(&p, img).unwrap();
        p
    }

    fn pos() -> Position {
        Position { medium: 2, of: 3, backup: "20261202T091500Z".into() }
    }

    #[test]
    fn an_implanted_image_passes_and_keeps_its_boot_record() {
        let d = tempfile::tempdir().unwrap();
        let p = fake_iso(d.path(), 64);
        implant(&p, &pos()).unwrap();
        let mut calls = 0;
        let c = check(&p, &mut |_, _| calls += 1).unwrap();
        assert_eq!(c.position, pos());
        assert_eq!(c.label, "LIFEBOAT_2");
        assert_eq!(c.bytes, 64 * 2048);
        assert!(calls >= 1);
        let img = std::fs::read(&p).unwrap();
        assert_eq!(&img[510..512], &[0x55, 0xaa]);
        // A device longer than the image (a USB stick) still passes.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[7u8; 4096]).unwrap();
        check(&p, &mut |_, _| {}).unwrap();
    }

    #[test]
    fn one_changed_byte_or_a_truncation_fails_naming_the_medium() {
        let d = tempfile::tempdir().unwrap();
        let p = fake_iso(d.path(), 64);
        implant(&p, &pos()).unwrap();
        let good = std::fs::read(&p).unwrap();
        for at in [100usize, 40 * 2048 + 5, (FIELD_OFFSET as usize) + 24] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            std::fs::write(&p, &bad).unwrap();
            let e = check(&p, &mut |_, _| {}).unwrap_err().to_string();
            assert!(e.contains("DAMAGED") || e.contains("invalid"), "{at}: {e}");
            if at != FIELD_OFFSET as usize + 24 {
                assert!(e.contains("medium 2 of 3 (LIFEBOAT_2, backup 20261202T091500Z)"), "{e}");
            }
        }
        std::fs::write(&p, &good[..good.len() - 2048]).unwrap();
        let e = check(&p, &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("medium 2 of 3"), "{e}");
    }

    #[test]
    fn hostile_fields_are_refused_without_reading_beyond_the_medium() {
        let d = tempfile::tempdir().unwrap();
        let p = fake_iso(d.path(), 64);
        assert!(matches!(check(&p, &mut |_, _| {}), Err(MediumError::NoChecksum(_))));
        implant(&p, &pos()).unwrap();
        let good = std::fs::read(&p).unwrap();
        let f = FIELD_OFFSET as usize;
        let cases: [(usize, &[u8]); 4] = [
            (f + 16, &u64::MAX.to_le_bytes()),
            (f + 16, &(1u64 << 40).to_le_bytes()),
            (f + 24, &[0, 0, 0, 0]),
            (f + 64, &[200]),
        ];
        for (at, bytes) in cases {
            let mut bad = good.clone();
            bad[at..at + bytes.len()].copy_from_slice(bytes);
            std::fs::write(&p, &bad).unwrap();
            assert!(check(&p, &mut |_, _| {}).is_err());
        }
        std::fs::write(&p, &good[..1000]).unwrap();
        assert!(matches!(check(&p, &mut |_, _| {}), Err(MediumError::NoChecksum(_))));
    }
}
