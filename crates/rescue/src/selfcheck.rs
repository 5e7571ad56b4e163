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
//! | 16 | 8 | image size in bytes (u64 LE) |
//! | 24 | 4 | this medium's number, 1-based (u32 LE) |
//! | 28 | 4 | how many media the set has (u32 LE) |
//! | 32 | 32 | BLAKE3 of the image's first *size* bytes, the two checksum areas zeroed |
//! | 64 | 1 | length of the backup ID (0..=64) |
//! | 65 | 64 | the backup ID (UTF-8), zero-padded |
//! | 136 | 4 | how many segments (u32 LE, [`segments_for`] of the size) |
//! | 144 | 256 | per segment, the first 8 bytes of its BLAKE3 (same zeroing) |
//!
//! The segment checksums say *where* a damaged medium is damaged; the files
//! there are named from the image's own directory tree ([`files_at`]).
//!
//! Every field is read as hostile: the size is bounded by the device and by
//! [`MAX_IMAGE`], the set position must be 1..=of<=999, the ID must be UTF-8,
//! the segment count must be the one the size implies; nothing is read
//! beyond the image the field describes.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

/// Where the application-use area of the primary volume descriptor starts.
pub const FIELD_OFFSET: u64 = 16 * 2048 + 883;
/// Its size.
const FIELD_LEN: usize = 512;
const MAGIC: &[u8; 16] = b"LIFEBOAT-MEDIUM1";
/// Where (in the field) the whole image's checksum is.
const HASH_AT: usize = 32;
/// Where the segment count is.
const SEGMENTS_AT: usize = 136;
/// Where the segment checksums are.
const SEG_HASH_AT: usize = 144;
/// At most this many segments, of 8 checksum bytes each.
const MAX_SEGMENTS: u64 = 32;
/// The smallest image: the system area and one volume descriptor.
const MIN_IMAGE: u64 = 17 * 2048;
/// The largest image checked (a BD-R DL holds 50 GB).
pub const MAX_IMAGE: u64 = 64 << 30;
/// Bytes read at a time.
const CHUNK: usize = 4 << 20;

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

/// What a check found on an intact medium.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Checked {
    /// The device or file checked.
    pub name: String,
    /// The medium's place in its set.
    pub position: Position,
    /// Its volume label.
    pub label: String,
    /// The image size that was read.
    pub bytes: u64,
    /// Seconds the read took.
    pub seconds: f64,
}

impl Checked {
    /// "medium 1 of 2 (LABEL)", as messages name it.
    pub fn describe(&self) -> String {
        describe(self.position.medium, self.position.of, &self.label, &self.position.backup)
    }

    /// How fast it was read, in MB/s (10^6 bytes).
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-6)
    }
}

fn describe(medium: u32, of: u32, label: &str, backup: &str) -> String {
    let backup = if backup.is_empty() { String::new() } else { format!(" of backup {backup}") };
    format!("medium {medium} of {of} ({label}){backup}")
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
    #[error("{name}: {what} is truncated: {have} bytes of {want}; make or burn it again")]
    Truncated {
        /// Device or file.
        name: String,
        /// "medium k of N (LABEL)".
        what: String,
        /// Bytes readable.
        have: u64,
        /// Bytes expected.
        want: u64,
    },
    /// The checksum does not match.
    #[error(
        "{name}: {what} is damaged at {at}: its checksum does not match; do not recover from it, make or burn it again"
    )]
    Damaged {
        /// Device or file.
        name: String,
        /// "medium k of N (LABEL)".
        what: String,
        /// Where: the files in the damaged segments, and their byte range.
        at: String,
    },
    /// A read error (a scratched disc, a failing stick).
    #[error("{name}: {what} is damaged at byte {offset}: it cannot be read ({source}); make or burn it again")]
    Unreadable {
        /// Device or file.
        name: String,
        /// "medium k of N (LABEL)".
        what: String,
        /// Where reading failed.
        offset: u64,
        /// The error.
        source: std::io::Error,
    },
    /// Opening or writing failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

impl MediumError {
    /// Whether the medium is damaged (and not merely without a checksum).
    pub fn is_damage(&self) -> bool {
        !matches!(self, MediumError::NoChecksum(_))
    }
}

fn label_of(pvd: &[u8]) -> String {
    // Volume identifier: PVD bytes 40..72, space-padded a-/d-characters.
    let raw = pvd.get(40..72).unwrap_or_default();
    raw.iter()
        .map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' })
        .collect::<String>()
        .trim_end()
        .to_string()
}

fn pvd_ok(pvd: &[u8]) -> bool {
    pvd.len() >= 2048 && pvd[0] == 1 && &pvd[1..6] == b"CD001"
}

/// The segment size and count for an image of `size` bytes (segments are
/// whole 2048-byte blocks, at most [`MAX_SEGMENTS`]).
pub fn segments_for(size: u64) -> (u64, u64) {
    let seg = size.div_ceil(MAX_SEGMENTS).div_ceil(2048).max(1) * 2048;
    (seg, size.div_ceil(seg))
}

/// The image's checksums: the whole and each segment's first 8 bytes.
struct Sums {
    whole: [u8; 32],
    segments: Vec<[u8; 8]>,
}

/// Where hashing stopped.
enum HashError {
    /// The medium ends at this byte.
    Eof(u64),
    /// A read failed at this byte.
    Read(u64, std::io::Error),
}

/// Read until `buf` is full or the end (retrying interrupted reads).
fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Hash the first `size` bytes, with the checksum areas of the field zeroed.
fn hash_image(f: &mut (impl Read + Seek), size: u64, progress: &mut dyn FnMut(u64, u64)) -> Result<Sums, HashError> {
    f.seek(SeekFrom::Start(0)).map_err(|e| HashError::Read(0, e))?;
    let (seg, count) = segments_for(size);
    let zeroed = [(FIELD_OFFSET + HASH_AT as u64, 32u64), (FIELD_OFFSET + SEG_HASH_AT as u64, MAX_SEGMENTS * 8)];
    let mut whole = blake3::Hasher::new();
    let mut part = blake3::Hasher::new();
    let mut segments = Vec::with_capacity(count as usize);
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < size {
        // Never across a segment boundary, so each chunk belongs to one segment.
        let seg_end = ((done / seg) + 1) * seg;
        let want = (seg_end.min(size) - done).min(CHUNK as u64) as usize;
        let n = read_full(f, &mut buf[..want]).map_err(|e| HashError::Read(done, e))?;
        if n < want {
            return Err(HashError::Eof(done + n as u64));
        }
        let (start, end) = (done, done + n as u64);
        for (at, len) in zeroed {
            let (zs, ze) = (at.max(start), (at + len).min(end));
            if zs < ze {
                buf[(zs - start) as usize..(ze - start) as usize].fill(0);
            }
        }
        whole.update(&buf[..n]);
        part.update(&buf[..n]);
        done = end;
        if done == seg_end || done == size {
            let mut s = [0u8; 8];
            s.copy_from_slice(&part.finalize().as_bytes()[..8]);
            segments.push(s);
            part = blake3::Hasher::new();
        }
        progress(done, size);
    }
    Ok(Sums { whole: *whole.finalize().as_bytes(), segments })
}

/// Embed the checksum and set position into the ISO image at `path`
/// (a file xorriso just wrote).
pub fn implant(path: &Path, pos: &Position) -> Result<(), MediumError> {
    let name = path.display().to_string();
    let io = |e| MediumError::Io(name.clone(), e);
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    if !(MIN_IMAGE..=MAX_IMAGE).contains(&size) {
        return Err(MediumError::Invalid(name, format!("{size} bytes is no ISO 9660 image lifeboat makes")));
    }
    let mut pvd = vec![0u8; 2048];
    f.seek(SeekFrom::Start(16 * 2048)).map_err(io)?;
    f.read_exact(&mut pvd).map_err(io)?;
    if !pvd_ok(&pvd) {
        return Err(MediumError::Invalid(name, "no ISO 9660 primary volume descriptor".into()));
    }
    let id = pos.backup.as_bytes();
    if id.len() > 64 || pos.medium == 0 || pos.medium > pos.of || pos.of > 999 {
        return Err(MediumError::Invalid(name, "backup ID longer than 64 bytes or set position out of range".into()));
    }
    let (_, count) = segments_for(size);
    let mut field = [0u8; FIELD_LEN];
    field[..16].copy_from_slice(MAGIC);
    field[16..24].copy_from_slice(&size.to_le_bytes());
    field[24..28].copy_from_slice(&pos.medium.to_le_bytes());
    field[28..32].copy_from_slice(&pos.of.to_le_bytes());
    field[64] = id.len() as u8;
    field[65..65 + id.len()].copy_from_slice(id);
    field[SEGMENTS_AT..SEGMENTS_AT + 4].copy_from_slice(&(count as u32).to_le_bytes());
    f.seek(SeekFrom::Start(FIELD_OFFSET)).map_err(io)?;
    f.write_all(&field).map_err(io)?;
    let sums = hash_image(&mut f, size, &mut |_, _| {}).map_err(|e| match e {
        HashError::Eof(at) => io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("ends at {at}"))),
        HashError::Read(_, e) => io(e),
    })?;
    field[HASH_AT..HASH_AT + 32].copy_from_slice(&sums.whole);
    for (i, s) in sums.segments.iter().enumerate() {
        field[SEG_HASH_AT + 8 * i..SEG_HASH_AT + 8 * i + 8].copy_from_slice(s);
    }
    f.seek(SeekFrom::Start(FIELD_OFFSET)).map_err(io)?;
    f.write_all(&field).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Size of a file or block device (seek to its end).
fn length(f: &mut std::fs::File) -> std::io::Result<u64> {
    let n = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(n)
}

/// The field as read, every number bounded.
struct Field {
    size: u64,
    position: Position,
    whole: [u8; 32],
    segments: Vec<[u8; 8]>,
}

fn parse_field(field: &[u8]) -> Result<Field, String> {
    let u32_at = |i: usize| u32::from_le_bytes([field[i], field[i + 1], field[i + 2], field[i + 3]]);
    let mut size_b = [0u8; 8];
    size_b.copy_from_slice(&field[16..24]);
    let size = u64::from_le_bytes(size_b);
    let (medium, of) = (u32_at(24), u32_at(28));
    if !(MIN_IMAGE..=MAX_IMAGE).contains(&size) {
        return Err(format!("image size {size}"));
    }
    if medium == 0 || medium > of || of > 999 {
        return Err(format!("medium {medium} of {of}"));
    }
    let id_len = field[64] as usize;
    if id_len > 64 {
        return Err(format!("backup ID length {id_len}"));
    }
    let backup = std::str::from_utf8(&field[65..65 + id_len]).map_err(|_| "backup ID not UTF-8".to_string())?;
    if backup.chars().any(char::is_control) {
        return Err("backup ID with control characters".into());
    }
    let (_, count) = segments_for(size);
    if u64::from(u32_at(SEGMENTS_AT)) != count {
        return Err(format!("{} segments where the size makes {count}", u32_at(SEGMENTS_AT)));
    }
    let mut whole = [0u8; 32];
    whole.copy_from_slice(&field[HASH_AT..HASH_AT + 32]);
    let segments = (0..count as usize)
        .map(|i| {
            let mut s = [0u8; 8];
            s.copy_from_slice(&field[SEG_HASH_AT + 8 * i..SEG_HASH_AT + 8 * i + 8]);
            s
        })
        .collect();
    Ok(Field { size, position: Position { medium, of, backup: backup.to_string() }, whole, segments })
}

/// Check the medium (ISO file or device) at `path`; `progress(done, total)`
/// is called after each 4 MiB read.
pub fn check(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<Checked, MediumError> {
    let name = path.display().to_string();
    let io = |e| MediumError::Io(name.clone(), e);
    let start = Instant::now();
    let mut f = std::fs::File::open(path).map_err(io)?;
    let have = length(&mut f).map_err(io)?;
    if have < MIN_IMAGE {
        return Err(MediumError::NoChecksum(name));
    }
    let mut pvd = vec![0u8; 2048];
    f.seek(SeekFrom::Start(16 * 2048)).map_err(io)?;
    let n = read_full(&mut f, &mut pvd).map_err(io)?;
    let at = (FIELD_OFFSET - 16 * 2048) as usize;
    if n < pvd.len() || !pvd_ok(&pvd) || &pvd[at..at + 16] != MAGIC {
        return Err(MediumError::NoChecksum(name));
    }
    let label = label_of(&pvd);
    let field = parse_field(&pvd[at..at + FIELD_LEN]).map_err(|why| MediumError::Invalid(name.clone(), why))?;
    let p = &field.position;
    let what = describe(p.medium, p.of, &label, &p.backup);
    let size = field.size;
    let truncated = |have: u64| MediumError::Truncated { name: name.clone(), what: what.clone(), have, want: size };
    if have < size {
        return Err(truncated(have));
    }
    let sums = match hash_image(&mut f, size, progress) {
        Ok(s) => s,
        Err(HashError::Eof(at)) => return Err(truncated(at)),
        Err(HashError::Read(offset, source)) => {
            return Err(MediumError::Unreadable { name, what, offset, source });
        }
    };
    let (seg, _) = segments_for(size);
    let bad: Vec<(u64, u64)> = sums
        .segments
        .iter()
        .zip(&field.segments)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| (i as u64 * seg, ((i as u64 + 1) * seg).min(size)))
        .collect();
    if sums.whole != field.whole || !bad.is_empty() {
        let at = where_damaged(&mut f, size, &bad);
        return Err(MediumError::Damaged { name, what, at });
    }
    Ok(Checked { name, position: field.position, label, bytes: size, seconds: start.elapsed().as_secs_f64() })
}

/// The damaged byte ranges, merged, with the files in them.
fn where_damaged(f: &mut std::fs::File, size: u64, bad: &[(u64, u64)]) -> String {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &(s, e) in bad {
        match ranges.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => ranges.push((s, e)),
        }
    }
    if ranges.is_empty() {
        // Only the field's own contents differ (the segments all match).
        return format!("its checksum field (byte {FIELD_OFFSET})");
    }
    let bytes: Vec<String> = ranges.iter().map(|(s, e)| format!("{s}..{e}")).collect();
    let mut files = files_at(f, size, &ranges);
    if ranges.iter().any(|&(s, _)| s < MIN_IMAGE) {
        files.insert(0, "the system area and volume descriptors".into());
    }
    const SHOWN: usize = 5;
    let more = files.len().saturating_sub(SHOWN);
    files.truncate(SHOWN);
    let mut out = if files.is_empty() { String::from("bytes ") } else { format!("{} (bytes ", files.join(", ")) };
    out.push_str(&bytes.join(", "));
    if !files.is_empty() {
        if more > 0 {
            out.push_str(&format!(", and {more} more files"));
        }
        out.push(')');
    }
    out
}

/// Bounds of the directory walk in [`files_at`].
const MAX_RECORDS: usize = 200_000;
const MAX_DEPTH: usize = 32;
const MAX_DIR_BYTES: u64 = 16 << 20;

/// The paths of the files whose data overlap `ranges`, read from the
/// image's ISO 9660 directory tree (Rock Ridge names where there are).
/// Hostile input: every extent is bounded by `size`, the walk by record
/// count, depth and directory size; a directory seen twice is not walked
/// again. Whatever cannot be read is left out.
pub fn files_at(f: &mut (impl Read + Seek), size: u64, ranges: &[(u64, u64)]) -> Vec<String> {
    let mut pvd = vec![0u8; 2048];
    if f.seek(SeekFrom::Start(16 * 2048)).is_err() || read_full(f, &mut pvd).ok() != Some(2048) || !pvd_ok(&pvd) {
        return Vec::new();
    }
    let Some(root) = record(&pvd[156..190]) else { return Vec::new() };
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut todo = vec![(root.lba, root.len, String::new(), 0usize)];
    let mut records = 0usize;
    while let Some((lba, len, dir, depth)) = todo.pop() {
        let start = u64::from(lba) * 2048;
        let len = u64::from(len);
        if depth > MAX_DEPTH || len > MAX_DIR_BYTES || start + len > size || !seen.insert(lba) {
            continue;
        }
        let mut data = vec![0u8; len as usize];
        if f.seek(SeekFrom::Start(start)).is_err() || read_full(f, &mut data).ok() != Some(data.len()) {
            continue;
        }
        let mut i = 0usize;
        while i < data.len() && records < MAX_RECORDS {
            let rl = data[i] as usize;
            if rl == 0 {
                // Records do not cross block boundaries: go on at the next block.
                i = (i / 2048 + 1) * 2048;
                continue;
            }
            let Some(r) = data.get(i..i + rl).and_then(record) else { break };
            i += rl;
            records += 1;
            if r.name.is_empty() {
                continue; // "." and ".."
            }
            let path = format!("{dir}/{}", r.name);
            if r.dir {
                todo.push((r.lba, r.len, path, depth + 1));
                continue;
            }
            let (s, e) = (u64::from(r.lba) * 2048, u64::from(r.lba) * 2048 + u64::from(r.len));
            if ranges.iter().any(|&(rs, re)| s < re && rs < e) && !out.contains(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// One directory record: its extent, size, whether a directory, and its
/// name ("" for "." and "..").
struct Record {
    lba: u32,
    len: u32,
    dir: bool,
    name: String,
}

fn record(r: &[u8]) -> Option<Record> {
    if r.len() < 34 || (r[0] as usize) > r.len() || r[0] < 34 {
        return None;
    }
    let r = &r[..r[0] as usize];
    let lba = u32::from_le_bytes([r[2], r[3], r[4], r[5]]);
    let len = u32::from_le_bytes([r[10], r[11], r[12], r[13]]);
    let dir = r[25] & 0x02 != 0;
    let name_len = r[32] as usize;
    let raw = r.get(33..33 + name_len)?;
    if name_len == 1 && raw[0] <= 1 {
        return Some(Record { lba, len, dir, name: String::new() });
    }
    // The system use area (Rock Ridge) follows the name, padded to an even offset.
    let su_start = 33 + name_len + (1 - name_len % 2);
    let name = r.get(su_start..).and_then(rock_ridge_name).unwrap_or_else(|| {
        let n = String::from_utf8_lossy(raw).into_owned();
        let n = n.split(';').next().unwrap_or_default().to_string();
        n.strip_suffix('.').map(str::to_string).unwrap_or(n)
    });
    // A name that could climb or hide a path is shown escaped.
    let name = name.replace('/', "%2F");
    Some(Record { lba, len, dir, name })
}

/// The Rock Ridge alternate name (NM entries) in a system use area.
fn rock_ridge_name(mut su: &[u8]) -> Option<String> {
    let mut name = Vec::new();
    let mut found = false;
    while su.len() >= 4 {
        let len = su[2] as usize;
        if len < 4 || len > su.len() {
            break;
        }
        if &su[..2] == b"NM" && len >= 5 {
            let flags = su[4];
            if flags & 0x06 == 0 {
                name.extend_from_slice(&su[5..len]);
                found = true;
            }
        }
        su = &su[len..];
    }
    (found && !name.is_empty()).then(|| String::from_utf8_lossy(&name).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic ISO-like image: an MBR signature, a PVD whose root
    /// directory holds one file (Rock Ridge name `vol-0001`, blocks 40..48)
    /// and a directory `boot` with `initrd.img` (blocks 50..60).
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
        let rec = |lba: u32, len: u32, dir: bool, iso: &[u8], rr: Option<&str>| {
            let mut r = vec![0u8; 33];
            r[2..6].copy_from_slice(&lba.to_le_bytes());
            r[10..14].copy_from_slice(&len.to_le_bytes());
            r[25] = if dir { 2 } else { 0 };
            r[32] = iso.len() as u8;
            r.extend_from_slice(iso);
            if iso.len().is_multiple_of(2) {
                r.push(0);
            }
            if let Some(n) = rr {
                r.extend_from_slice(&[b'N', b'M', 5 + n.len() as u8, 1, 0]);
                r.extend_from_slice(n.as_bytes());
            }
            if !r.len().is_multiple_of(2) {
                r.push(0);
            }
            r[0] = r.len() as u8;
            r
        };
        let put_dir = |img: &mut Vec<u8>, lba: usize, recs: &[Vec<u8>]| {
            let mut at = lba * 2048;
            img[at..at + 2048].fill(0);
            for r in recs {
                img[at..at + r.len()].copy_from_slice(r);
                at += r.len();
            }
        };
        let root = rec(18, 2048, true, &[0], None);
        img[pvd + 156..pvd + 156 + root.len()].copy_from_slice(&root);
        put_dir(
            &mut img,
            18,
            &[
                rec(18, 2048, true, &[0], None),
                rec(18, 2048, true, &[1], None),
                rec(40, 8 * 2048, false, b"VOL_0001.;1", Some("vol-0001")),
                rec(19, 2048, true, b"BOOT", Some("boot")),
                // A hostile record: a directory pointing back at the root (walked once).
                rec(18, 2048, true, b"LOOP", None),
            ],
        );
        put_dir(
            &mut img,
            19,
            &[
                rec(19, 2048, true, &[0], None),
                rec(18, 2048, true, &[1], None),
                rec(50, 10 * 2048, false, b"INITRD.IMG;1", None),
                // Beyond the image: never read.
                rec(u32::MAX, u32::MAX, true, b"FAR", None),
            ],
        );
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
        assert_eq!(c.describe(), "medium 2 of 3 (LIFEBOAT_2) of backup 20261202T091500Z");
        assert!(calls >= 1);
        let img = std::fs::read(&p).unwrap();
        assert_eq!(&img[510..512], &[0x55, 0xaa]);
        // Implanting again (a rebuilt medium) gives the same field.
        implant(&p, &pos()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), img);
        // A device longer than the image (a USB stick) still passes.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[7u8; 4096]).unwrap();
        check(&p, &mut |_, _| {}).unwrap();
    }

    #[test]
    fn an_image_of_any_size_is_split_into_at_most_32_whole_block_segments() {
        for size in [MIN_IMAGE, MIN_IMAGE + 1, 64 * 2048, 700 << 20, (700 << 20) + 2047, MAX_IMAGE] {
            let (seg, n) = segments_for(size);
            assert!(
                seg.is_multiple_of(2048) && (1..=32).contains(&n) && seg * n >= size && seg * (n - 1) < size,
                "{size}"
            );
        }
    }

    #[test]
    fn one_changed_byte_anywhere_fails_naming_the_medium_and_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = fake_iso(d.path(), 64);
        implant(&p, &pos()).unwrap();
        let good = std::fs::read(&p).unwrap();
        let cases = [
            (100usize, "the system area and volume descriptors"),
            (42 * 2048 + 5, "/vol-0001"),
            (55 * 2048, "/boot/INITRD.IMG"),
            (63 * 2048 + 2047, "bytes"),
            // The backup ID in the field: still damage, never a pass.
            (FIELD_OFFSET as usize + 70, "the system area and volume descriptors"),
        ];
        for (at, named) in cases {
            let mut bad = good.clone();
            bad[at] ^= 1;
            std::fs::write(&p, &bad).unwrap();
            let e = check(&p, &mut |_, _| {}).unwrap_err();
            assert!(matches!(e, MediumError::Damaged { .. }), "{at}: {e}");
            let e = e.to_string();
            assert!(e.contains("is damaged at") && e.contains(named), "{at}: {e}");
            if at != FIELD_OFFSET as usize + 70 {
                assert!(e.contains("medium 2 of 3 (LIFEBOAT_2) of backup 20261202T091500Z"), "{e}");
            }
        }
        // The whole-image checksum alone differs: the field itself is named.
        let mut bad = good.clone();
        bad[FIELD_OFFSET as usize + HASH_AT] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        let e = check(&p, &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains("damaged at its checksum field"), "{e}");
    }

    #[test]
    fn a_truncated_medium_fails_naming_the_medium() {
        let d = tempfile::tempdir().unwrap();
        let p = fake_iso(d.path(), 64);
        implant(&p, &pos()).unwrap();
        let good = std::fs::read(&p).unwrap();
        std::fs::write(&p, &good[..good.len() - 2048]).unwrap();
        let e = check(&p, &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("medium 2 of 3 (LIFEBOAT_2)"), "{e}");
        assert!(e.contains(&format!("{} bytes of {}", good.len() - 2048, good.len())), "{e}");
    }

    #[test]
    fn hostile_fields_are_refused_without_reading_beyond_the_medium() {
        let d = tempfile::tempdir().unwrap();
        let p = fake_iso(d.path(), 64);
        assert!(matches!(check(&p, &mut |_, _| {}), Err(MediumError::NoChecksum(_))));
        implant(&p, &pos()).unwrap();
        let good = std::fs::read(&p).unwrap();
        let f = FIELD_OFFSET as usize;
        let cases: [(usize, &[u8]); 9] = [
            (f + 16, &u64::MAX.to_le_bytes()),
            (f + 16, &(1u64 << 40).to_le_bytes()),
            (f + 16, &0u64.to_le_bytes()),
            (f + 24, &[0, 0, 0, 0]),
            (f + 24, &[9, 0, 0, 0]),
            (f + 28, &[0xff, 0xff, 0xff, 0xff]),
            (f + 64, &[200]),
            (f + 65, &[0xff, 0xfe]),
            (f + SEGMENTS_AT, &[0xff, 0xff, 0, 0]),
        ];
        for (at, bytes) in cases {
            let mut bad = good.clone();
            bad[at..at + bytes.len()].copy_from_slice(bytes);
            std::fs::write(&p, &bad).unwrap();
            let e = check(&p, &mut |_, _| {}).unwrap_err();
            assert!(e.is_damage(), "{at}: {e}");
        }
        // A size larger than the file (but within bounds): truncated, not a hang or a huge read.
        let mut bad = good.clone();
        bad[f + 16..f + 24].copy_from_slice(&(1u64 << 30).to_le_bytes());
        std::fs::write(&p, &bad).unwrap();
        assert!(matches!(check(&p, &mut |_, _| {}), Err(MediumError::Invalid(..) | MediumError::Truncated { .. })));
        // Garbage instead of the field, a non-ISO, and a tiny file: no checksum, no panic.
        let mut bad = good.clone();
        bad[f..f + FIELD_LEN].fill(0xa5);
        std::fs::write(&p, &bad).unwrap();
        assert!(matches!(check(&p, &mut |_, _| {}), Err(MediumError::NoChecksum(_))));
        let mut bad = good.clone();
        bad[f + 16..f + FIELD_LEN].fill(0xa5);
        std::fs::write(&p, &bad).unwrap();
        assert!(check(&p, &mut |_, _| {}).unwrap_err().is_damage());
        std::fs::write(&p, &good[..1000]).unwrap();
        assert!(matches!(check(&p, &mut |_, _| {}), Err(MediumError::NoChecksum(_))));
        std::fs::write(&p, vec![0u8; 40 * 2048]).unwrap();
        assert!(matches!(check(&p, &mut |_, _| {}), Err(MediumError::NoChecksum(_))));
        assert!(matches!(implant(&p, &pos()), Err(MediumError::Invalid(..))));
    }

    #[test]
    fn the_directory_walk_survives_hostile_records() {
        let d = tempfile::tempdir().unwrap();
        let p = fake_iso(d.path(), 64);
        let mut f = std::fs::File::open(&p).unwrap();
        let all = files_at(&mut f, 64 * 2048, &[(0, 64 * 2048)]);
        assert_eq!(all, ["/boot/INITRD.IMG", "/vol-0001"]);
        // Random bytes over the directories: no panic, no hang.
        let mut img = std::fs::read(&p).unwrap();
        for seed in 0..200u32 {
            let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
            for b in img[18 * 2048..20 * 2048].iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            let mut c = std::io::Cursor::new(&img);
            let _ = files_at(&mut c, img.len() as u64, &[(0, img.len() as u64)]);
        }
        for b in [0u8, 1, 33, 34, 255] {
            let _ = record(&[b; 40]);
            let _ = record(&[b; 3]);
        }
    }
}
