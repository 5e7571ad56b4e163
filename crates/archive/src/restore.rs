//! Verifying and restoring a backup from its volumes, going on past damaged
//! or missing volumes and naming exactly the entries that could not be read.

use crate::backup::{glob_match, hash_zeros, ManifestEntry};
use crate::read::{next_header, read_sparse_map, Backup, Gap, Header, Stream};
use crate::tar::Kind;
use serde::Serialize;
use std::path::Path;

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Entries read and checked.
    pub entries: u64,
    /// Content bytes hashed.
    pub bytes: u64,
    /// Volumes that are missing or whose checksum differs, with the reason.
    pub damaged_volumes: Vec<String>,
    /// Entries that cannot be read (path: why).
    pub lost: Vec<String>,
}

impl VerifyReport {
    /// Whether everything is intact.
    pub fn ok(&self) -> bool {
        self.damaged_volumes.is_empty() && self.lost.is_empty()
    }
}

/// What `restore` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    /// Entries restored.
    pub restored: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Entries that could not be restored (path: why).
    pub lost: Vec<String>,
    /// What could not be checked (a restore from the tar stream alone).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<String>,
}

fn check_volumes(b: &Backup) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, v) in b.catalog.volumes.iter().enumerate() {
        // Volumes can be DVD-sized: hash them streaming, not in memory. Opened
        // as every reader opens them: a regular file, never a FIFO or device.
        let hashed = b.open_volume(i as u32 + 1).and_then(|f| {
            let mut h = blake3::Hasher::new();
            std::io::copy(&mut crate::target::ObjectReader::new(f), &mut h).map_err(|e| format!("{}: {e}", v.name))?;
            Ok(h.finalize())
        });
        match hashed {
            Err(e) => bad.push(e),
            Ok(h) if h.to_hex().as_str() != v.blake3 => {
                bad.push(format!("{}: checksum differs from backup.json (the volume is damaged)", v.name))
            }
            Ok(_) => {}
        }
    }
    bad
}

/// Position the stream at an entry and read its headers, checking that they
/// describe the entry the manifest expects, field by field.
fn header_of(s: &mut Stream, m: &ManifestEntry, c: Checks) -> Result<Header, Gap> {
    if s.offset != m.offset {
        s.seek_to(m.offset);
    }
    match next_header(s)? {
        Some(h) if crate::backup::escape_path(&h.path) == m.path || (m.path == "." && h.path == b".") => {
            let d = header_differences_with(&h, m, c);
            if d.is_empty() {
                Ok(h)
            } else {
                Err(Gap {
                    start: m.offset,
                    end: s.offset,
                    why: format!(
                        "the archive's header differs from the manifest in {} (damaged or tampered with: not restored)",
                        d.join(", ")
                    ),
                })
            }
        }
        Some(h) => Err(Gap {
            start: m.offset,
            end: m.offset,
            why: format!("the archive holds {} where the manifest expects it", crate::backup::escape_path(&h.path)),
        }),
        None => Err(Gap { start: m.offset, end: m.offset, why: "the archive ends before this entry".into() }),
    }
}

/// Where data goes: written at offsets (holes are skipped), and the final size.
trait Sink {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()>;
    fn finish(&mut self, size: u64) -> std::io::Result<()>;
}

/// Verification only: nothing is written.
struct Discard;

impl Sink for Discard {
    fn write_at(&mut self, _: u64, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, _: u64) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink for std::fs::File {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, data, offset)
    }
    fn finish(&mut self, size: u64) -> std::io::Result<()> {
        // A trailing hole: the length without writing zeros.
        self.set_len(size)
    }
}

/// Read an entry's data (a sparse file's map and segments too), then its
/// padding, into `sink`; the content's BLAKE3 is checked against the manifest.
/// `buf` is the caller's scratch buffer (allocated once, not per file).
fn data(s: &mut Stream, h: &Header, m: &ManifestEntry, sink: &mut dyn Sink, buf: &mut [u8]) -> Result<(), Gap> {
    let werr =
        |s: &Stream, e: std::io::Error| Gap { start: s.offset, end: s.offset, why: format!("cannot write: {e}") };
    let mut hasher = blake3::Hasher::new();
    let (segments, mut stored) = match h.sparse {
        Some(_) => read_sparse_map(s)?,
        None => (vec![(0, h.size)], 0),
    };
    let real = h.sparse.unwrap_or(h.size);
    let mut pos = 0u64;
    // Where the written data ends: a file that ends in a hole gets its length from set_len.
    let mut data_end = 0u64;
    for (off, len) in segments {
        if len > 0 {
            data_end = off + len;
        }
        hash_zeros(&mut hasher, off.saturating_sub(pos));
        let mut left = len;
        let mut at = off;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            s.read_exact(&mut buf[..n])?;
            hasher.update(&buf[..n]);
            sink.write_at(at, &buf[..n]).map_err(|e| werr(s, e))?;
            left -= n as u64;
            at += n as u64;
        }
        stored += len;
        pos = off + len;
    }
    hash_zeros(&mut hasher, real.saturating_sub(pos));
    if data_end < real {
        sink.finish(real).map_err(|e| werr(s, e))?;
    }
    let mut pad = [0u8; 512];
    s.read_exact(&mut pad[..((512 - stored % 512) % 512) as usize])?;
    if let Some(want) = &m.blake3 {
        if hasher.finalize().to_hex().as_str() != want {
            return Err(Gap {
                start: m.offset,
                end: s.offset,
                why: "content differs from its BLAKE3 in the manifest".into(),
            });
        }
    }
    Ok(())
}

/// Read every volume and entry; check volume checksums, tar headers and
/// every file's BLAKE3, and an increment's `deleted.list` ([`crate::deleted`]).
pub fn verify(b: &Backup) -> VerifyReport {
    let mut r = VerifyReport { damaged_volumes: check_volumes(b), ..VerifyReport::default() };
    verify_entries(b, &mut Stream::new(b), &mut r);
    crate::deleted::check(b, &mut r);
    r
}

/// Check every entry this backup stores from `s` (headers, data, BLAKE3)
/// into `r`. An increment's unchanged entries are in its parents' volumes:
/// verifying those checks them.
fn verify_entries(b: &Backup, s: &mut Stream, r: &mut VerifyReport) {
    let mut buf = vec![0u8; 1 << 20];
    let checks = Checks { v2: b.catalog.version >= 2, stream_only: false };
    let read = b.each_entry(&mut |m| {
        if m.from.is_some() {
            return;
        }
        let res = header_of(s, m, checks)
            .and_then(|h| data(s, &h, m, &mut Discard, &mut buf).map(|_| h.sparse.unwrap_or(h.size)));
        match res {
            Ok(n) => {
                r.entries += 1;
                r.bytes += n;
            }
            Err(g) => r.lost.push(format!("{}: {}", m.path, g.why)),
        }
    });
    // Read again for this (a streamed backup): changed since it was opened.
    if let Err(e) = read {
        r.damaged_volumes.push(e.to_string());
    }
}

/// [`verify`] of a backup whose volumes come in order from one
/// forward-only stream (a tape, a pipe): every entry as `verify` checks it,
/// and every volume's BLAKE3 hashed as its bytes pass, read once.
pub fn verify_sequential(b: &Backup, volumes: Box<dyn std::io::Read + Send>) -> VerifyReport {
    let sizes: Vec<u64> = b.catalog.volumes.iter().map(|v| v.size).collect();
    let tee = std::sync::Arc::new(std::sync::Mutex::new(VolumeHashes::new(volumes, sizes)));
    let mut r = VerifyReport::default();
    {
        let mut s = Stream::sequential(b, Box::new(SharedHashes(std::sync::Arc::clone(&tee))));
        verify_entries(b, &mut s, &mut r);
    }
    let Ok(mut t) = tee.lock() else {
        r.damaged_volumes.push("the volume hashes were lost (a reader panicked)".into());
        return r;
    };
    // What the entries did not need (the end of the tar stream, padding) is hashed too.
    if let Err(e) = std::io::copy(&mut *t, &mut std::io::sink()) {
        r.damaged_volumes.push(format!("the stream fails after the last entry: {e}"));
    }
    let done = std::mem::take(&mut t.done);
    for (i, v) in b.catalog.volumes.iter().enumerate() {
        match done.get(i) {
            None => r.damaged_volumes.push(format!("{}: the stream ends before it does (missing or cut)", v.name)),
            Some(h) if h.to_hex().as_str() != v.blake3 => {
                r.damaged_volumes.push(format!("{}: checksum differs from backup.json (the volume is damaged)", v.name))
            }
            Some(_) => {}
        }
    }
    r
}

/// The concatenated volumes, each hashed as it passes.
struct VolumeHashes {
    reader: Box<dyn std::io::Read + Send>,
    sizes: Vec<u64>,
    /// Bytes of the current volume seen.
    at: u64,
    hasher: blake3::Hasher,
    done: Vec<blake3::Hash>,
}

impl VolumeHashes {
    fn new(reader: Box<dyn std::io::Read + Send>, sizes: Vec<u64>) -> VolumeHashes {
        let mut v = VolumeHashes { reader, sizes, at: 0, hasher: blake3::Hasher::new(), done: Vec::new() };
        v.close_empty();
        v
    }

    /// Close the volumes that are complete (empty ones at once).
    fn close_empty(&mut self) {
        while self.sizes.get(self.done.len()).is_some_and(|&n| self.at == n) {
            self.done.push(self.hasher.finalize());
            self.hasher = blake3::Hasher::new();
            self.at = 0;
        }
    }
}

impl std::io::Read for VolumeHashes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(&size) = self.sizes.get(self.done.len()) else { return Ok(0) };
        let want = (buf.len() as u64).min(size - self.at) as usize;
        let n = self.reader.read(&mut buf[..want])?;
        self.hasher.update(&buf[..n]);
        self.at += n as u64;
        self.close_empty();
        Ok(n)
    }
}

/// A handle on shared [`VolumeHashes`] for the stream to read through.
struct SharedHashes(std::sync::Arc<std::sync::Mutex<VolumeHashes>>);

impl std::io::Read for SharedHashes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.read(buf)
    }
}

/// Why a restore could not start, or chose nothing.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Patterns were given and no entry of the backup matches them.
    #[error("nothing in the backup matches {}: nothing was restored (`lifeboat backup ls` shows what it holds)", .0.join(" "))]
    NothingMatched(Vec<String>),
    /// `--filesystem` names a filesystem the backup does not hold.
    #[error("the backup holds no filesystem backed up from {0}; it holds: {1}")]
    NoFilesystem(String, String),
    /// The destination cannot be opened.
    #[error("restore destination {0}")]
    Dest(#[from] crate::dest::DestError),
    /// An incremental backup's chain cannot be read.
    #[error("{0}")]
    Chain(crate::read::ReadError),
}

/// Whether an archive path is selected by restore patterns (a pattern
/// selects a path, or everything below a directory it names). Without
/// patterns everything is, but lifeboat's own entries (`.lifeboat/`: images
/// of foreign partitions, which recovery writes onto their partitions).
pub fn selected(path: &str, patterns: &[String]) -> bool {
    (patterns.is_empty() && !crate::backup::is_reserved(path))
        || patterns.iter().any(|p| {
            let p = p.trim_start_matches('/').trim_end_matches('/');
            glob_match(p.as_bytes(), path.as_bytes()) || path.starts_with(&format!("{p}/"))
        })
}

use crate::read::unescape_path;

/// The manifest's name for an entry kind.
fn kind_name(k: &Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "dir",
        Kind::Symlink(_) => "symlink",
        Kind::Hardlink(_) => "hardlink",
        Kind::Char(..) => "char",
        Kind::Block(..) => "block",
        Kind::Fifo => "fifo",
    }
}

/// Compare an entry's tar headers with its manifest line, field by field:
/// a difference is damage (or tampering), and the entry is not restored
/// with metadata the backup did not record. Returns the fields that differ.
pub fn header_differences(h: &Header, m: &ManifestEntry, v2: bool) -> Vec<String> {
    header_differences_with(h, m, Checks { v2, stream_only: false })
}

/// What the manifest can be trusted to hold.
#[derive(Debug, Clone, Copy)]
struct Checks {
    /// Format 2: every xattr value has its BLAKE3.
    v2: bool,
    /// The manifest was rebuilt from the stream ([`from_stream`]): no content checksums.
    stream_only: bool,
}

fn header_differences_with(h: &Header, m: &ManifestEntry, c: Checks) -> Vec<String> {
    let v2 = c.v2;
    use crate::backup::escape_path;
    let mut d = Vec::new();
    if kind_name(&h.kind) != m.kind {
        d.push(format!("type ({} in the archive, {} in the manifest)", kind_name(&h.kind), m.kind));
        return d;
    }
    let size = h.sparse.unwrap_or(if h.kind == Kind::File { h.size } else { 0 });
    if size != m.size || h.sparse.is_some() != m.sparse {
        d.push(format!("size ({size} in the archive, {} in the manifest)", m.size));
    }
    if h.kind == Kind::File && m.blake3.is_none() && !c.stream_only {
        d.push("checksum (the manifest has no BLAKE3 for this file)".into());
    }
    if h.mode & 0o7777 != m.mode || h.mode > 0o7777 {
        d.push(format!("mode ({:o} in the archive, {:o} in the manifest)", h.mode, m.mode));
    }
    if (h.uid, h.gid) != (m.uid, m.gid) {
        d.push(format!("owner ({}:{} in the archive, {}:{} in the manifest)", h.uid, h.gid, m.uid, m.gid));
    }
    let mtime = i128::from(h.mtime) * 1_000_000_000 + i128::from(h.mtime_ns);
    if mtime != m.mtime_ns {
        d.push(format!("mtime ({mtime} ns in the archive, {} ns in the manifest)", m.mtime_ns));
    }
    let link = match &h.kind {
        Kind::Symlink(t) | Kind::Hardlink(t) => Some(escape_path(t)),
        _ => None,
    };
    if link != m.link {
        let show = |l: &Option<String>| l.clone().unwrap_or_else(|| "none".into());
        d.push(format!("link target ({} in the archive, {} in the manifest)", show(&link), show(&m.link)));
    }
    let rdev = match h.kind {
        Kind::Char(a, b) | Kind::Block(a, b) => Some((a, b)),
        _ => None,
    };
    if rdev != m.rdev {
        let show = |r: Option<(u32, u32)>| r.map(|(a, b)| format!("{a}:{b}")).unwrap_or_else(|| "none".into());
        d.push(format!("device numbers ({} in the archive, {} in the manifest)", show(rdev), show(m.rdev)));
    }
    let names: Vec<String> = h.xattrs.iter().map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect();
    if names != m.xattrs {
        d.push(format!("extended attribute names ({names:?} in the archive, {:?} in the manifest)", m.xattrs));
    } else if !m.xattr_blake3.is_empty() {
        // Format 2 records every value's BLAKE3.
        if m.xattr_blake3.len() != h.xattrs.len() {
            d.push("extended attribute values (the manifest lists another number of values)".into());
        }
        for ((k, v), want) in h.xattrs.iter().zip(&m.xattr_blake3) {
            if blake3::hash(v).to_hex().as_str() != want {
                d.push(format!(
                    "extended attribute {} (its value differs from the manifest)",
                    String::from_utf8_lossy(k)
                ));
            }
        }
    } else if !h.xattrs.is_empty() && v2 {
        d.push("extended attribute values (the manifest has no checksums for them)".into());
    }
    d
}

/// Restore the selected entries into `to`.
pub fn restore(b: &Backup, to: &Path, patterns: &[String]) -> Result<RestoreReport, RestoreError> {
    restore_with_progress(b, to, patterns, &mut |_, _| {})
}

/// Restore the selected entries into `to`, calling `progress(bytes, entries)` as it goes.
/// Patterns that select nothing are an error.
pub fn restore_with_progress(
    b: &Backup,
    to: &Path,
    patterns: &[String],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreReport, RestoreError> {
    restore_selected(b, to, patterns, progress, false)
}

/// Restore the entries `patterns` select (all without patterns); patterns
/// that select nothing are an error.
fn restore_selected(
    b: &Backup,
    to: &Path,
    patterns: &[String],
    progress: &mut dyn FnMut(u64, u64),
    stream_only: bool,
) -> Result<RestoreReport, RestoreError> {
    if !patterns.is_empty() && !b.entries.iter().any(|m| selected(&m.path, patterns)) {
        return Err(RestoreError::NothingMatched(patterns.to_vec()));
    }
    let place = |arch: &[u8]| selected(&String::from_utf8_lossy(arch), patterns).then(|| arch.to_vec());
    restore_mapped(Stream::new(b), b, to, &place, progress, stream_only)
}

/// Restore the selected entries from the backup's volumes read in order
/// from one forward-only stream (a tape, a pipe: `cat vol-* |`), with every
/// check of [`restore_with_progress`]; nothing is read twice or backwards.
pub fn restore_sequential(
    b: &Backup,
    volumes: Box<dyn std::io::Read + Send>,
    to: &Path,
    patterns: &[String],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreReport, RestoreError> {
    if !patterns.is_empty() && !b.entries.iter().any(|m| selected(&m.path, patterns)) {
        return Err(RestoreError::NothingMatched(patterns.to_vec()));
    }
    let place = |arch: &[u8]| selected(&String::from_utf8_lossy(arch), patterns).then(|| arch.to_vec());
    restore_mapped(Stream::sequential(b, volumes), b, to, &place, progress, false)
}

/// The archive prefix of the filesystem that was backed up from `mountpoint`
/// (a path relative to the backup's root, as the catalog lists it).
fn unit_prefix(mountpoint: &str) -> String {
    let p = mountpoint.trim_start_matches('/').trim_start_matches("./").trim_end_matches('/');
    if p.is_empty() {
        ".".into()
    } else {
        p.into()
    }
}

/// Where archive path `p` is inside the unit `unit` (`.` for the unit's
/// root), or None when it is not in it.
fn within<'a>(p: &'a [u8], unit: &str) -> Option<&'a [u8]> {
    if unit == "." {
        return Some(p);
    }
    if p == unit.as_bytes() {
        return Some(b".");
    }
    p.strip_prefix(unit.as_bytes())?.strip_prefix(b"/")
}

/// Restore one filesystem of the backup (the unit backed up from
/// `mountpoint`, such as `/srv`) into `to` as its root, without what other
/// filesystems mounted below it held. Errors name the filesystems the
/// backup does hold.
pub fn restore_filesystem(
    b: &Backup,
    to: &Path,
    mountpoint: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreReport, RestoreError> {
    let units: Vec<String> = b.catalog.paths.iter().map(|p| unit_prefix(p)).collect();
    let want = unit_prefix(mountpoint);
    if !units.contains(&want) {
        let held: Vec<String> =
            units.iter().map(|u| if u == "." { "/".to_string() } else { format!("/{u}") }).collect();
        return Err(RestoreError::NoFilesystem(mountpoint.into(), held.join(", ")));
    }
    // The filesystems mounted below this one: their contents are not its own
    // (their mount point directories are).
    let nested: Vec<&String> = units.iter().filter(|u| **u != want && within(u.as_bytes(), &want).is_some()).collect();
    let place = |arch: &[u8]| -> Option<Vec<u8>> {
        if crate::backup::is_reserved(&String::from_utf8_lossy(arch)) {
            return None;
        }
        if nested.iter().any(|n| within(arch, n).is_some_and(|r| r != b".")) {
            return None;
        }
        within(arch, &want).map(<[u8]>::to_vec)
    };
    restore_mapped(Stream::new(b), b, to, &place, progress, false)
}

fn xattr_name(k: &[u8]) -> std::io::Result<std::ffi::CString> {
    std::ffi::CString::new(k.to_vec()).map_err(std::io::Error::other)
}

fn timestamps(h: &Header) -> rustix::fs::Timestamps {
    let t = rustix::fs::Timespec { tv_sec: h.mtime, tv_nsec: h.mtime_ns.into() };
    rustix::fs::Timestamps { last_access: t, last_modification: t }
}

/// Set owner, mode, extended attributes and time through a descriptor, in
/// the order that keeps them all (chown clears setuid bits and capabilities).
fn apply_metadata_fd(f: &std::fs::File, h: &Header) -> std::io::Result<()> {
    std::os::unix::fs::fchown(f, Some(h.uid), Some(h.gid))?;
    rustix::fs::fchmod(f, rustix::fs::Mode::from_raw_mode(h.mode & 0o7777))?;
    for (k, v) in &h.xattrs {
        rustix::fs::fsetxattr(f, xattr_name(k)?.as_c_str(), v, rustix::fs::XattrFlags::empty())?;
    }
    rustix::fs::futimens(f, &timestamps(h))?;
    Ok(())
}

/// The same for a symlink, device node or FIFO under its temporary name
/// (its path through /proc, never followed).
fn apply_metadata_pending(p: &Pending, h: &Header) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, CWD};
    let path = Dest::proc_path(p);
    std::os::unix::fs::lchown(&path, Some(h.uid), Some(h.gid))?;
    if !matches!(h.kind, Kind::Symlink(_)) {
        Dest::chmod_pending(p, h.mode & 0o7777)?;
    }
    for (k, v) in &h.xattrs {
        rustix::fs::lsetxattr(&path, xattr_name(k)?.as_c_str(), v, rustix::fs::XattrFlags::empty())?;
    }
    rustix::fs::utimensat(CWD, &path, &timestamps(h), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Give a symlink, device node or FIFO its metadata and put it in place
/// (in place also when the metadata cannot all be set: then named).
fn commit_node(dest: &mut Dest, p: Pending, h: &Header) -> Result<(), String> {
    let meta = apply_metadata_pending(&p, h);
    dest.commit(p).map_err(|e| e.to_string())?;
    meta.map_err(|e| format!("restored, but its metadata could not be set: {e}"))
}

/// Restore the entries that `place` maps to a path (relative to `to`; `.`
/// is `to` itself); hard link targets are mapped the same way.
///
/// Every path is resolved beneath `to` without following symlinks (see
/// [`crate::dest`]); every header is checked against the manifest; a file
/// is written under a private temporary name, checked against its BLAKE3,
/// and only then renamed into place with its metadata. A hard link may only
/// point at a file restored earlier in this run.
fn restore_mapped(
    s: Stream,
    b: &Backup,
    to: &Path,
    place: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    progress: &mut dyn FnMut(u64, u64),
    stream_only: bool,
) -> Result<RestoreReport, RestoreError> {
    if b.is_streamed() {
        return Err(RestoreError::Chain(crate::read::ReadError::Damaged(format!(
            "{} was opened streamed, without its entries (lifeboat bug: open it with Backup::open_objects to restore)",
            b.location()
        ))));
    }
    let mut dest = Dest::open(to)?;
    let mut r = RestoreReport::default();
    // An increment: each entry from the backup of its chain that holds it, oldest first.
    // (The parts hold positions in b's entries, not copies of them.)
    let owned;
    let parts: Vec<(Stream, &Backup, Option<&[u32]>)> = if b.is_incremental() {
        let (p, outside) = b.part_plan().map_err(RestoreError::Chain)?;
        owned = p;
        r.lost.extend(outside);
        owned.iter().map(|(p, at)| (Stream::new(p), p, Some(at.as_slice()))).collect()
    } else {
        vec![(s, b, None)]
    };
    let mut dirs: Vec<(Vec<u8>, Header)> = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    // Files that hard links of this restore point at, and those of them restored so far.
    let link_targets: HashSet<Vec<u8>> = b
        .entries
        .iter()
        .filter(|m| m.kind == "hardlink")
        .filter_map(|m| m.link.as_deref().and_then(|t| place(&unescape_path(t))))
        .collect();
    let mut restored_targets: HashSet<Vec<u8>> = HashSet::new();
    for (mut s, part, at) in parts {
        let checks = Checks { v2: part.catalog.version >= 2, stream_only };
        let entries: Box<dyn Iterator<Item = &ManifestEntry>> = match at {
            None => Box::new(b.entries.iter()),
            Some(at) => Box::new(at.iter().filter_map(|k| b.entries.get(*k as usize))),
        };
        for m in entries {
            let arch = unescape_path(&m.path);
            let Some(rel) = place(&arch) else { continue };
            let lose = |r: &mut RestoreReport, why: String| r.lost.push(format!("{}: {why}", m.path));
            if let Err(e) = check_path(&arch).and_then(|_| check_path(&rel)) {
                lose(&mut r, e.to_string());
                continue;
            }
            let h = match header_of(&mut s, m, checks) {
                Ok(h) => h,
                Err(g) => {
                    lose(&mut r, g.why);
                    continue;
                }
            };
            let made: Result<(), String> = match &h.kind {
                Kind::Dir => dest.dir(&rel).map(|()| dirs.push((rel.clone(), h.clone()))).map_err(|e| e.to_string()),
                Kind::File => match dest.file(&rel) {
                    Ok((mut f, p)) => match data(&mut s, &h, m, &mut f, &mut buf) {
                        Ok(()) => {
                            // The content is right: it goes in place even where the filesystem
                            // cannot hold all of the metadata (it then stays private, and is named).
                            let meta = apply_metadata_fd(&f, &h);
                            drop(f);
                            dest.commit(p).map_err(|e| e.to_string()).and_then(|()| {
                                r.bytes += h.sparse.unwrap_or(h.size);
                                if link_targets.contains(&rel) {
                                    restored_targets.insert(rel.clone());
                                }
                                meta.map_err(|e| format!("restored, but its metadata could not be set: {e}"))
                            })
                        }
                        Err(g) => {
                            dest.discard(p);
                            Err(g.why)
                        }
                    },
                    Err(e) => Err(e.to_string()),
                },
                Kind::Hardlink(t) => match place(t) {
                    Some(t) if restored_targets.contains(&t) => {
                        dest.hardlink(&rel, &t).and_then(|p| dest.commit(p)).map_err(|e| e.to_string())
                    }
                    _ => Err(format!(
                        "refused: a hard link to {}, which is not a file restored earlier in this run",
                        crate::backup::escape_path(t)
                    )),
                },
                Kind::Symlink(t) => {
                    dest.symlink(&rel, t).map_err(|e| e.to_string()).and_then(|p| commit_node(&mut dest, p, &h))
                }
                Kind::Char(..) | Kind::Block(..) | Kind::Fifo => {
                    let (ft, dev) = match h.kind {
                        Kind::Char(ma, mi) => (rustix::fs::FileType::CharacterDevice, rustix::fs::makedev(ma, mi)),
                        Kind::Block(ma, mi) => (rustix::fs::FileType::BlockDevice, rustix::fs::makedev(ma, mi)),
                        _ => (rustix::fs::FileType::Fifo, 0),
                    };
                    dest.node(&rel, ft, dev).map_err(|e| e.to_string()).and_then(|p| commit_node(&mut dest, p, &h))
                }
            };
            match made {
                Ok(()) => r.restored += 1,
                Err(why) => lose(&mut r, why),
            }
            progress(r.bytes, r.restored);
        }
    }
    for why in dest.finish() {
        r.lost.push(format!("a directory made for the entries below it: {why}"));
    }
    // Directories last, deepest first: creating their contents changed their times.
    for (rel, h) in dirs.iter().rev() {
        if let Err(e) = dest.open_dir(rel).map_err(|e| e.to_string()).and_then(|f| {
            apply_metadata_fd(&f, h).map_err(|e| format!("{}: metadata not set: {e}", crate::backup::escape_path(rel)))
        }) {
            r.lost.push(e);
        }
    }
    Ok(r)
}

use crate::dest::{check_path, Dest, Pending};
use std::collections::HashSet;

/// A backup whose manifest is damaged or missing, read from its tar stream
/// alone: the entries as the headers describe them, and what could not be
/// checked.
#[derive(Debug)]
pub struct StreamOnly {
    /// The backup with a manifest rebuilt from the headers (no content checksums).
    pub backup: Backup,
    /// What is not checked, or not readable, said for the report.
    pub unchecked: Vec<String>,
}

/// Rebuild the entry list of a backup from its tar stream, for when its
/// manifest is damaged or missing. Only volumes whose BLAKE3 matches the
/// catalog are read (the catalog is what the signature covers, so their
/// bytes are the ones this host wrote); the stream ends at the first volume
/// that is damaged or missing. Files get no content checksum: a damaged
/// manifest means their content is checked only through their volume's.
/// The catalog of an encrypted backup is unsealed first
/// ([`crate::read::unseal`]: `objects` must decrypt).
pub fn from_stream(
    objects: std::sync::Arc<dyn crate::target::Objects>,
    catalog: crate::backup::Catalog,
) -> Result<StreamOnly, crate::read::ReadError> {
    let mut catalog = crate::read::unseal(objects.as_ref(), &catalog)?;
    let mut unchecked = vec!["the manifest is damaged: entries are restored from the tar stream alone, \
        checked through the BLAKE3 of their volumes (signed catalog), not one by one"
        .to_string()];
    let probe = Backup::from_parts(std::sync::Arc::clone(&objects), catalog.clone(), Vec::new())?;
    let bad = check_volumes(&probe);
    if let Some(first) = catalog
        .volumes
        .iter()
        .enumerate()
        .find(|(_, v)| bad.iter().any(|b| b.starts_with(&format!("{}:", v.name))))
        .map(|(i, _)| i as u32 + 1)
    {
        catalog.frames.retain(|f| f.volume < first);
        unchecked.push(format!(
            "volume {first} and the ones after it are not read ({}): the entries in them are not restored",
            bad.join("; ")
        ));
    }
    let mut b = Backup::from_parts(objects, catalog, Vec::new())?;
    let mut s = Stream::new(&b);
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let offset = s.offset;
        let h = match next_header(&mut s) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(g) => {
                unchecked.push(format!("the tar stream cannot be read after offset {offset}: {}", g.why));
                break;
            }
        };
        let stored = if h.kind == Kind::File { h.size } else { 0 };
        let mut left = stored + (512 - stored % 512) % 512;
        let mut gap = None;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            if let Err(g) = s.read_exact(&mut buf[..n]) {
                gap = Some(g);
                break;
            }
            left -= n as u64;
        }
        let e = crate::tar::Entry {
            path: h.path.clone(),
            kind: h.kind.clone(),
            mode: h.mode & 0o7777,
            uid: h.uid,
            gid: h.gid,
            uname: String::new(),
            gname: String::new(),
            size: if h.kind == Kind::File { h.sparse.unwrap_or(h.size) } else { 0 },
            mtime: h.mtime,
            mtime_ns: h.mtime_ns,
            xattrs: h.xattrs.clone(),
            sparse: h.sparse.map(|_| Vec::new()),
        };
        entries.push(crate::backup::manifest_entry(&e, &h.kind, &h.path, offset, None));
        if let Some(g) = gap {
            unchecked.push(format!("the tar stream cannot be read after offset {}: {}", s.offset, g.why));
            break;
        }
    }
    drop(s);
    b.entries = entries;
    Ok(StreamOnly { backup: b, unchecked })
}

/// Restore the selected entries of a backup read from its stream alone
/// (see [`from_stream`]); what could not be checked is in the report's
/// `unchecked`, and makes it incomplete.
pub fn restore_stream_only(
    so: &StreamOnly,
    to: &Path,
    patterns: &[String],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreReport, RestoreError> {
    let mut r = restore_selected(&so.backup, to, patterns, progress, true)?;
    r.unchecked = so.unchecked.clone();
    Ok(r)
}

/// A sink that hands each piece of data to a function.
struct FnSink<'a>(&'a mut dyn FnMut(u64, &[u8]) -> std::io::Result<()>);

impl Sink for FnSink<'_> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        (self.0)(offset, data)
    }
    fn finish(&mut self, _: u64) -> std::io::Result<()> {
        Ok(())
    }
}

/// Read one file entry of a backup (of an increment: from the backup of its
/// chain that holds it) and hand its data to `write_at(offset, bytes)` in
/// increasing offsets, a sparse file's holes skipped; its headers are
/// checked against the manifest first and its content against its BLAKE3
/// at the end (an error then means what was handed on is not the content
/// that was backed up). Returns the entry's size, holes included. This is
/// how recovery writes the image of a foreign partition onto its device.
pub fn read_entry(
    b: &Backup,
    path: &str,
    write_at: &mut dyn FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> Result<u64, String> {
    let owned;
    let part: &Backup = if b.is_incremental() {
        let (parts, _) = b.parts().map_err(|e| e.to_string())?;
        owned = parts;
        owned
            .iter()
            .rev()
            .find(|p| p.entries.iter().any(|m| m.path == path))
            .ok_or_else(|| format!("{path}: not in the backup or its chain"))?
    } else {
        b
    };
    let m = part
        .entries
        .iter()
        .find(|m| m.path == path)
        .ok_or_else(|| format!("{path}: not in the backup {}", b.location()))?;
    if m.kind != "file" {
        return Err(format!("{path}: a {} in the backup, not a file", m.kind));
    }
    let mut s = Stream::new(part);
    let checks = Checks { v2: part.catalog.version >= 2, stream_only: false };
    let h = header_of(&mut s, m, checks).map_err(|g| format!("{path}: {}", g.why))?;
    if h.kind != Kind::File {
        return Err(format!("{path}: not a file in the archive"));
    }
    let mut buf = vec![0u8; 1 << 20];
    data(&mut s, &h, m, &mut FnSink(write_at), &mut buf).map_err(|g| format!("{path}: {}", g.why))?;
    Ok(h.sparse.unwrap_or(h.size))
}
