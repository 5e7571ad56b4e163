//! Verifying and restoring a backup from its volumes, going on past damaged
//! or missing volumes and naming exactly the entries that could not be read.

use crate::backup::{glob_match, hash_zeros, ManifestEntry};
use crate::read::{next_header, read_sparse_map, Backup, Gap, Header, Stream};
use crate::tar::Kind;
use serde::Serialize;
use std::path::{Path, PathBuf};

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
}

fn check_volumes(b: &Backup) -> Vec<String> {
    let mut bad = Vec::new();
    for v in &b.catalog.volumes {
        let p = b.dir.join(&v.name);
        // Volumes can be DVD-sized: hash them streaming, not in memory.
        let hashed = std::fs::File::open(&p).and_then(|mut f| {
            let mut h = blake3::Hasher::new();
            std::io::copy(&mut f, &mut h)?;
            Ok(h.finalize())
        });
        match hashed {
            Err(e) => bad.push(format!("{}: {e}", v.name)),
            Ok(h) if h.to_hex().as_str() != v.blake3 => {
                bad.push(format!("{}: checksum differs from backup.json (the volume is damaged)", v.name))
            }
            Ok(_) => {}
        }
    }
    bad
}

/// Position the stream at an entry and read its headers, checking that they
/// describe the entry the manifest expects.
fn header_of(s: &mut Stream, m: &ManifestEntry) -> Result<Header, Gap> {
    if s.offset != m.offset {
        s.seek_to(m.offset);
    }
    match next_header(s)? {
        Some(h) if crate::backup::escape_path(&h.path) == m.path || (m.path == "." && h.path == b".") => Ok(h),
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

/// Read every volume and entry; check volume checksums, tar headers and every file's BLAKE3.
pub fn verify(b: &Backup) -> VerifyReport {
    let mut r = VerifyReport { damaged_volumes: check_volumes(b), ..VerifyReport::default() };
    let mut s = Stream::new(b);
    let mut buf = vec![0u8; 1 << 20];
    for m in &b.entries {
        let res = header_of(&mut s, m)
            .and_then(|h| data(&mut s, &h, m, &mut Discard, &mut buf).map(|_| h.sparse.unwrap_or(h.size)));
        match res {
            Ok(n) => {
                r.entries += 1;
                r.bytes += n;
            }
            Err(g) => r.lost.push(format!("{}: {}", m.path, g.why)),
        }
    }
    r
}

/// Whether an archive path is selected by restore patterns (a pattern
/// selects a path, or everything below a directory it names).
pub fn selected(path: &str, patterns: &[String]) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| {
            let p = p.trim_start_matches('/').trim_end_matches('/');
            glob_match(p.as_bytes(), path.as_bytes()) || path.starts_with(&format!("{p}/"))
        })
}

/// Undo [`crate::backup::escape_path`].
pub fn unescape_path(p: &str) -> Vec<u8> {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && b[i + 1] == b'\\' {
            out.push(b'\\');
            i += 2;
        } else if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            match u8::from_str_radix(&p[i + 2..i + 4], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 4;
                }
                Err(_) => {
                    out.push(b[i]);
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn target_path(to: &Path, arch: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    if arch == b"." {
        to.to_path_buf()
    } else {
        to.join(std::ffi::OsStr::from_bytes(arch))
    }
}

/// Set owner, mode, extended attributes and time, in the order that keeps
/// them all (chown clears setuid bits and capabilities, so it comes first).
fn apply_metadata(p: &Path, h: &Header) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};
    let symlink = matches!(h.kind, Kind::Symlink(_));
    std::os::unix::fs::lchown(p, Some(h.uid), Some(h.gid))?;
    if !symlink {
        rustix::fs::chmod(p, rustix::fs::Mode::from_raw_mode(h.mode))?;
    }
    for (k, v) in &h.xattrs {
        let name = std::ffi::CString::new(k.clone()).map_err(std::io::Error::other)?;
        rustix::fs::lsetxattr(p, name.as_c_str(), v, rustix::fs::XattrFlags::empty())?;
    }
    let t = Timespec { tv_sec: h.mtime, tv_nsec: h.mtime_ns.into() };
    rustix::fs::utimensat(CWD, p, &Timestamps { last_access: t, last_modification: t }, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// The same for a file just written, through its descriptor (no path lookups).
fn apply_metadata_fd(f: &std::fs::File, h: &Header) -> std::io::Result<()> {
    use rustix::fs::{Timespec, Timestamps};
    std::os::unix::fs::fchown(f, Some(h.uid), Some(h.gid))?;
    rustix::fs::fchmod(f, rustix::fs::Mode::from_raw_mode(h.mode))?;
    for (k, v) in &h.xattrs {
        let name = std::ffi::CString::new(k.clone()).map_err(std::io::Error::other)?;
        rustix::fs::fsetxattr(f, name.as_c_str(), v, rustix::fs::XattrFlags::empty())?;
    }
    let t = Timespec { tv_sec: h.mtime, tv_nsec: h.mtime_ns.into() };
    rustix::fs::futimens(f, &Timestamps { last_access: t, last_modification: t })?;
    Ok(())
}

/// Create a new file, replacing whatever is there.
fn create_file(p: &Path) -> std::io::Result<std::fs::File> {
    let open = || std::fs::OpenOptions::new().write(true).create_new(true).open(p);
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(p)?;
            open()
        }
        other => other,
    }
}

/// Restore the selected entries into `to`.
pub fn restore(b: &Backup, to: &Path, patterns: &[String]) -> RestoreReport {
    restore_with_progress(b, to, patterns, &mut |_, _| {})
}

/// Restore the selected entries into `to`, calling `progress(bytes, entries)` as it goes.
pub fn restore_with_progress(
    b: &Backup,
    to: &Path,
    patterns: &[String],
    progress: &mut dyn FnMut(u64, u64),
) -> RestoreReport {
    let place = |arch: &[u8]| selected(&String::from_utf8_lossy(arch), patterns).then(|| arch.to_vec());
    restore_mapped(b, to, &place, progress)
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
) -> Result<RestoreReport, String> {
    let units: Vec<String> = b.catalog.paths.iter().map(|p| unit_prefix(p)).collect();
    let want = unit_prefix(mountpoint);
    if !units.contains(&want) {
        let held: Vec<String> =
            units.iter().map(|u| if u == "." { "/".to_string() } else { format!("/{u}") }).collect();
        return Err(format!(
            "the backup holds no filesystem backed up from {mountpoint}; it holds: {}",
            held.join(", ")
        ));
    }
    // The filesystems mounted below this one: their contents are not its own
    // (their mount point directories are).
    let nested: Vec<&String> = units.iter().filter(|u| **u != want && within(u.as_bytes(), &want).is_some()).collect();
    let place = |arch: &[u8]| -> Option<Vec<u8>> {
        if nested.iter().any(|n| within(arch, n).is_some_and(|r| r != b".")) {
            return None;
        }
        within(arch, &want).map(<[u8]>::to_vec)
    };
    Ok(restore_mapped(b, to, &place, progress))
}

/// Restore the entries that `place` maps to a path (relative to `to`; `.`
/// is `to` itself); hard link targets are mapped the same way.
fn restore_mapped(
    b: &Backup,
    to: &Path,
    place: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    progress: &mut dyn FnMut(u64, u64),
) -> RestoreReport {
    let mut r = RestoreReport::default();
    let mut s = Stream::new(b);
    let mut dirs: Vec<(PathBuf, Header)> = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut last_parent: Option<PathBuf> = None;
    for (m, rel) in b.entries.iter().filter_map(|m| place(&unescape_path(&m.path)).map(|rel| (m, rel))) {
        let h = match header_of(&mut s, m) {
            Ok(h) => h,
            Err(g) => {
                r.lost.push(format!("{}: {}", m.path, g.why));
                continue;
            }
        };
        let p = target_path(to, &rel);
        // Entries come in tree order: the parent is usually the one just made.
        if let Some(parent) = p.parent() {
            if last_parent.as_deref() != Some(parent) {
                let _ = std::fs::create_dir_all(parent);
                last_parent = Some(parent.to_path_buf());
            }
        }
        let kind = h.kind.clone();
        let made: Result<(), String> = match &kind {
            Kind::Dir => std::fs::create_dir_all(&p).map_err(|e| e.to_string()),
            Kind::File => {
                match create_file(&p) {
                    Ok(mut f) => match data(&mut s, &h, m, &mut f, &mut buf) {
                        Ok(()) => {
                            r.bytes += h.sparse.unwrap_or(h.size);
                            // Metadata through the open file; hard links to it come later.
                            apply_metadata_fd(&f, &h)
                                .map_err(|e| format!("restored, but its metadata could not be set: {e}"))
                        }
                        Err(g) => {
                            drop(f);
                            let _ = std::fs::remove_file(&p);
                            Err(g.why)
                        }
                    },
                    Err(e) => Err(e.to_string()),
                }
            }
            Kind::Symlink(t) => {
                let _ = std::fs::remove_file(&p);
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(t), &p).map_err(|e| e.to_string())
            }
            Kind::Hardlink(t) => {
                let _ = std::fs::remove_file(&p);
                let t = place(t).unwrap_or_else(|| t.clone());
                std::fs::hard_link(target_path(to, &t), &p)
                    .map_err(|e| format!("hard link to a file that was not restored: {e}"))
            }
            Kind::Char(..) | Kind::Block(..) | Kind::Fifo => {
                let _ = std::fs::remove_file(&p);
                let (ft, dev) = match kind {
                    Kind::Char(ma, mi) => (rustix::fs::FileType::CharacterDevice, rustix::fs::makedev(ma, mi)),
                    Kind::Block(ma, mi) => (rustix::fs::FileType::BlockDevice, rustix::fs::makedev(ma, mi)),
                    _ => (rustix::fs::FileType::Fifo, 0),
                };
                rustix::fs::mknodat(rustix::fs::CWD, &p, ft, rustix::fs::Mode::from_raw_mode(h.mode), dev)
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(why) = made {
            r.lost.push(format!("{}: {why}", m.path));
            continue;
        }
        progress(r.bytes, r.restored);
        if matches!(h.kind, Kind::Hardlink(_)) {
            r.restored += 1;
            continue;
        }
        if h.kind == Kind::Dir {
            dirs.push((p, h));
        } else if h.kind != Kind::File {
            if let Err(e) = apply_metadata(&p, &h) {
                r.lost.push(format!("{}: restored, but its metadata could not be set: {e}", m.path));
                continue;
            }
        }
        r.restored += 1;
    }
    // Directories last, deepest first: creating their contents changed their times.
    for (p, h) in dirs.iter().rev() {
        if let Err(e) = apply_metadata(p, h) {
            r.lost.push(format!("{}: metadata not set: {e}", p.display()));
        }
    }
    r
}

use std::os::unix::ffi::OsStrExt;
