//! Reading a backup back: the catalog and manifest (checked against their
//! BLAKE3), the frames of the volumes as one tar stream with gaps where
//! volumes are missing or damaged, and the pax/ustar headers in it.
//!
//! Everything here reads files that someone else may have written (a backup
//! server, an NFS export, a disk that passed through other hands). Every
//! number taken from them is bounded before it sizes an allocation, a loop,
//! an index or a seek; names are plain file names; a malformed input is an
//! error naming the file and the field, never a panic, an abort or a hang.
//! The limits are the `MAX_*` constants below; `fuzz/` exercises all of it.

use crate::backup::{Catalog, ManifestEntry};
use crate::frames::Frame;
use crate::tar::Kind;
use crate::target::{DirObjects, ObjectRead, Objects, CATALOG};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Largest `backup.json` read (a frame table of millions of frames fits).
pub const MAX_CATALOG_BYTES: u64 = 256 << 20;
/// Largest `manifest.jsonl` read (some 50 million entries).
pub const MAX_MANIFEST_BYTES: u64 = 16 << 30;
/// Largest uncompressed frame (the writer cuts frames of at most 8 MiB).
pub const MAX_FRAME_DLEN: u64 = 64 << 20;
/// Largest compressed frame (incompressible data grows a little).
pub const MAX_FRAME_CLEN: u64 = MAX_FRAME_DLEN + (1 << 20);
/// Largest volume file (1 PiB).
pub const MAX_VOLUME_SIZE: u64 = 1 << 50;
/// Most volumes in one backup.
pub const MAX_VOLUMES: usize = 1 << 20;
/// Largest pax extended header (GNU tar refuses larger ones too).
pub const MAX_PAX_HEADER: u64 = 1 << 20;
/// Most segments in a GNU sparse 1.0 map.
pub const MAX_SPARSE_SEGMENTS: u64 = 1 << 20;
/// Largest GNU sparse 1.0 map, in bytes (2^20 segments of 20-digit numbers fit).
pub const MAX_SPARSE_MAP_BYTES: u64 = 48 << 20;
/// Largest real size of a sparse file (16 TiB, ext4's limit): its holes are
/// hashed as zeros on restore, so the size bounds the time that takes.
pub const MAX_SPARSE_REALSIZE: u64 = 1 << 44;

/// Errors reading a backup.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The backup directory is not a complete backup.
    #[error("{0} is not a complete lifeboat backup (no backup.json): it may be a backup that was interrupted")]
    NotABackup(PathBuf),
    /// The catalog or manifest is damaged.
    #[error("{0}")]
    Damaged(String),
    /// File I/O.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The backup is encrypted and was opened without its identity.
    #[error(transparent)]
    Encrypted(crate::target::encrypt::CryptError),
}

/// An opened backup: its catalog and manifest, and the objects of the
/// target it is on.
#[derive(Debug)]
pub struct Backup {
    objects: Arc<dyn Objects>,
    /// `backup.json` (of an encrypted backup: with its sealed part merged in).
    pub catalog: Catalog,
    /// `backup.json` as stored, when it differs from `catalog` (an encrypted backup).
    stored: Option<Box<Catalog>>,
    /// `manifest.jsonl`, in archive order (empty when opened streamed: see [`Backup::each_entry`]).
    pub entries: Vec<ManifestEntry>,
    /// Opened with [`Backup::open_objects_streamed`]: how many entries its
    /// manifest has (which was checked whole, and is read again for each use).
    streamed: Option<usize>,
    /// An incremental backup's chain, nearest parent first, as
    /// [`crate::chain::resolve`] found it: name, objects, whole catalog.
    ancestors: Vec<(String, Arc<dyn Objects>, Catalog)>,
}

/// One backup of a chain to read (its entries not held) and the positions,
/// in the head's entries, of those it holds ([`Backup::part_plan`]).
pub(crate) type PartPlan = (Backup, Vec<u32>);

/// Read a whole file of a backup (`backup.json.minisig` and the like): a
/// regular file, not a symbolic link, FIFO or device, of at most `max` bytes.
pub fn read_backup_file(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    crate::target::dir::read_regular(path, max)
}

/// The expected name of volume `n` (1-based) of a backup compressed with `codec`.
fn expected_volume_name(n: usize, codec: &str) -> Option<String> {
    let ext = match codec {
        "zstd" => "tar.zst",
        "gzip" => "tar.gz",
        _ => return None,
    };
    Some(format!("vol-{n:04}.{ext}"))
}

/// Check a catalog before anything uses its numbers: plain file names, the
/// volumes numbered 1..N, the frame table sorted, contiguous and inside the
/// volumes, every size bounded. The error names the field.
pub fn check_catalog(c: &Catalog) -> Result<(), String> {
    if c.format != "lifeboat-archive" {
        return Err(format!("format is {:?}, not \"lifeboat-archive\"", c.format));
    }
    if c.compression != "zstd" && c.compression != "gzip" {
        return Err(format!("compression is {:?}: lifeboat reads \"zstd\" and \"gzip\"", c.compression));
    }
    if c.manifest.name != "manifest.jsonl" {
        return Err(format!("manifest.name is {:?}, not \"manifest.jsonl\"", c.manifest.name));
    }
    if c.manifest.size > MAX_MANIFEST_BYTES {
        return Err(format!("manifest.size is {}, more than {MAX_MANIFEST_BYTES}", c.manifest.size));
    }
    if c.volumes.len() > MAX_VOLUMES {
        return Err(format!("volumes lists {} volumes, more than {MAX_VOLUMES}", c.volumes.len()));
    }
    for (i, v) in c.volumes.iter().enumerate() {
        let want = expected_volume_name(i + 1, &c.compression).unwrap_or_default();
        if v.name != want {
            return Err(format!(
                "volumes[{i}].name is {:?}, not {want:?} (volumes are plain file names, numbered from 1)",
                v.name
            ));
        }
        if v.size > MAX_VOLUME_SIZE {
            return Err(format!("volumes[{i}].size is {}, more than {MAX_VOLUME_SIZE}", v.size));
        }
    }
    match (&c.encryption, c.version) {
        (Some(e), v) if v >= crate::backup::ENCRYPTED_FORMAT_VERSION => {
            if e.scheme != crate::target::encrypt::SCHEME {
                return Err(format!("encryption.scheme is {:?}: lifeboat reads \"age\"", e.scheme));
            }
            if e.sealed.name != crate::target::encrypt::SEALED_CATALOG {
                return Err(format!("encryption.sealed.name is {:?}, not \"catalog.age\"", e.sealed.name));
            }
            if e.sealed.size > MAX_CATALOG_BYTES {
                return Err(format!("encryption.sealed.size is {}, more than {MAX_CATALOG_BYTES}", e.sealed.size));
            }
            if e.passphrase.as_ref().is_some_and(|p| p.name != crate::target::encrypt::PASSPHRASE_IDENTITY) {
                return Err("encryption.passphrase.name is not \"passphrase.age\"".into());
            }
        }
        (Some(_), v) => return Err(format!("version is {v}, but an encrypted backup is version 3 or later")),
        (None, v) if v >= crate::backup::ENCRYPTED_FORMAT_VERSION => {
            return Err(format!("version is {v}, which lifeboat writes only encrypted, and there is no encryption"))
        }
        (None, _) => {}
    }
    let (mut start, mut volume, mut offset) = (0u64, 0u32, 0u64);
    for (i, f) in c.frames.iter().enumerate() {
        let Some(v) = (f.volume as usize).checked_sub(1).and_then(|k| c.volumes.get(k)) else {
            return Err(format!(
                "frames[{i}].volume is {}: the catalog lists volumes 1 to {}",
                f.volume,
                c.volumes.len()
            ));
        };
        if f.volume < volume {
            return Err(format!("frames[{i}].volume is {} after volume {volume}: frames must be in order", f.volume));
        }
        if f.volume != volume {
            (volume, offset) = (f.volume, 0);
        }
        if f.dlen == 0 || f.dlen > MAX_FRAME_DLEN {
            return Err(format!("frames[{i}].dlen is {}: a frame holds 1 to {MAX_FRAME_DLEN} bytes", f.dlen));
        }
        if f.clen == 0 || f.clen > MAX_FRAME_CLEN {
            return Err(format!("frames[{i}].clen is {}: a compressed frame is 1 to {MAX_FRAME_CLEN} bytes", f.clen));
        }
        if f.start != start {
            return Err(format!("frames[{i}].start is {}, expected {start}: frames must be contiguous", f.start));
        }
        if f.offset != offset {
            return Err(format!(
                "frames[{i}].offset is {}, expected {offset}: frames must be contiguous in their volume",
                f.offset
            ));
        }
        offset += f.clen;
        if offset > v.size {
            return Err(format!("frames[{i}] ends at byte {offset} of {}, which has {} bytes", v.name, v.size));
        }
        start = start.checked_add(f.dlen).ok_or_else(|| format!("frames[{i}].start + dlen overflows"))?;
    }
    Ok(())
}

/// Parse and check `backup.json` (`name` is used in messages).
pub fn parse_catalog(text: &[u8], name: &str) -> Result<Catalog, ReadError> {
    let catalog: Catalog =
        serde_json::from_slice(text).map_err(|e| ReadError::Damaged(format!("{name} is damaged: {e}")))?;
    check_catalog(&catalog).map_err(|e| ReadError::Damaged(format!("{name} is damaged: {e}")))?;
    Ok(catalog)
}

/// The whole catalog of an encrypted backup: its sealed catalog read
/// (through [`crate::target::DecryptingObjects`], which decrypts it),
/// checked against the BLAKE3 the stored catalog binds it with, and merged
/// in; an unencrypted catalog as it is. Read as stored (no identity), the
/// sealed catalog is an age file: the error says the backup is encrypted
/// and how to give the identity. [`Backup::open_objects`] does this; a
/// reader without the manifest (`restore::from_stream`) calls it on the
/// catalog `trust::verified_catalog` gives.
pub fn unseal(objects: &dyn Objects, stored: &Catalog) -> Result<Catalog, ReadError> {
    let Some(enc) = &stored.encryption else { return Ok(stored.clone()) };
    let at = objects.location();
    let name = format!("{at}/{}", enc.sealed.name);
    let data = objects.read(&enc.sealed.name, enc.sealed.size).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            return ReadError::Damaged(format!("{name} is missing: the encrypted backup is damaged"));
        }
        if crate::target::encrypt::crypt_error(&e).is_none() {
            return ReadError::Io(name.clone(), e);
        }
        // A wrong identity or a damaged age file: the error names the object and the fix.
        match e.into_inner().map(|inner| inner.downcast::<crate::target::encrypt::CryptError>()) {
            Some(Ok(c)) => ReadError::Encrypted(*c),
            _ => ReadError::Damaged(format!("{name} cannot be decrypted")),
        }
    })?;
    if crate::target::encrypt::is_age(&data) {
        return Err(ReadError::Encrypted(crate::target::encrypt::CryptError::NoIdentity { backup: at }));
    }
    if blake3::hash(&data).to_hex().as_str() != enc.sealed_blake3 {
        return Err(ReadError::Damaged(format!(
            "{name} does not match its checksum in backup.json: the sealed catalog is damaged or was replaced"
        )));
    }
    let sealed: crate::backup::Sealed =
        serde_json::from_slice(&data).map_err(|e| ReadError::Damaged(format!("{name} is damaged: {e}")))?;
    let names = |v: &[crate::frames::Volume]| v.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
    if names(&sealed.volumes) != names(&stored.volumes) || sealed.manifest.name != stored.manifest.name {
        return Err(ReadError::Damaged(format!("{name} lists other volumes than backup.json: the backup is damaged")));
    }
    let catalog = stored.unsealed(sealed);
    check_catalog(&catalog).map_err(|e| ReadError::Damaged(format!("{name} is damaged: {e}")))?;
    Ok(catalog)
}

/// Parse `manifest.jsonl` (`name` is used in messages): every entry must
/// start at a block of the tar stream, which is `stream_len` bytes long.
pub fn parse_manifest(data: &[u8], name: &str, stream_len: u64) -> Result<Vec<ManifestEntry>, ReadError> {
    let mut entries = Vec::new();
    for (n, line) in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        entries.push(parse_line(line, n, name, stream_len)?);
    }
    Ok(entries)
}

/// Largest manifest line read (a path of 4096 bytes escaped, and the names
/// and checksums of every extended attribute a file can have, fit many times).
pub const MAX_MANIFEST_LINE: u64 = 16 << 20;

/// Parse line `n` (0-based) of a manifest, and check its offset.
fn parse_line(line: &[u8], n: usize, name: &str, stream_len: u64) -> Result<ManifestEntry, ReadError> {
    let e: ManifestEntry =
        serde_json::from_slice(line).map_err(|e| ReadError::Damaged(format!("{name} line {}: {e}", n + 1)))?;
    // An increment's unchanged entry is at an offset of another backup's stream (checked by `Backup::parts`).
    if e.from.is_none() && (e.offset & 511 != 0 || e.offset >= stream_len) {
        return Err(ReadError::Damaged(format!(
            "{name} line {}: offset {} is not the start of a block of the {stream_len}-byte tar stream",
            n + 1,
            e.offset
        )));
    }
    Ok(e)
}

/// The manifest `v` of a backup, parsed as it is read (never held whole as
/// text: a million entries make some 300 MB of it), each entry given to
/// `each`, and checked against its size and BLAKE3 in the catalog (`shown`
/// names it in messages): on an error, what `each` saw is to be thrown
/// away. A transport that cannot read by range (a tape) gives it whole.
/// Returns how many entries it has.
fn stream_manifest(
    objects: &dyn Objects,
    v: &crate::frames::Volume,
    shown: &str,
    stream_len: u64,
    each: &mut dyn FnMut(ManifestEntry),
) -> Result<usize, ReadError> {
    use std::io::BufRead;
    let damaged = || {
        ReadError::Damaged(format!(
            "{shown} does not match its size and checksum in backup.json: the manifest is damaged"
        ))
    };
    let o = match objects.open_volume(&v.name, v.size) {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            // Never more than the catalog says (a larger file is damaged, and not read).
            let data = objects.read(&v.name, v.size).map_err(|e| ReadError::Io(shown.into(), e))?;
            if data.len() as u64 != v.size || blake3::hash(&data).to_hex().as_str() != v.blake3 {
                return Err(damaged());
            }
            let entries = parse_manifest(&data, shown, stream_len)?;
            let n = entries.len();
            entries.into_iter().for_each(each);
            return Ok(n);
        }
        Err(e) => return Err(ReadError::Io(shown.into(), e)),
    };
    if o.len() != v.size {
        return Err(damaged());
    }
    let mut r = std::io::BufReader::with_capacity(1 << 20, crate::target::ObjectReader::new(o));
    let mut h = blake3::Hasher::new();
    let (mut buf, mut n, mut total) = (Vec::new(), 0usize, 0u64);
    // The first bad line: reported only when the whole file matches its checksum (else it is damaged).
    let mut bad: Option<ReadError> = None;
    loop {
        buf.clear();
        let got =
            (&mut r).take(MAX_MANIFEST_LINE).read_until(b'\n', &mut buf).map_err(|e| ReadError::Io(shown.into(), e))?;
        if got == 0 {
            break;
        }
        total += got as u64;
        h.update(&buf);
        if bad.is_some() {
            continue;
        }
        let line = match buf.strip_suffix(b"\n") {
            Some(l) => l,
            None if got as u64 == MAX_MANIFEST_LINE => {
                bad =
                    Some(ReadError::Damaged(format!("{shown} line {}: longer than {MAX_MANIFEST_LINE} bytes", n + 1)));
                continue;
            }
            None => &buf[..],
        };
        if !line.is_empty() {
            match parse_line(line, n, shown, stream_len) {
                Ok(e) => each(e),
                Err(e) => bad = Some(e),
            }
            n += 1;
        }
    }
    if total != v.size || h.finalize().to_hex().as_str() != v.blake3 {
        return Err(damaged());
    }
    match bad {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

/// Undo [`crate::backup::escape_path`] (`\\` and `\xNN`); any string is
/// accepted, bytes that are not an escape stay as they are.
pub fn unescape_path(p: &str) -> Vec<u8> {
    let b = p.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1), b.get(i + 2).copied().and_then(hex), b.get(i + 3).copied().and_then(hex)) {
            (b'\\', Some(b'\\'), _, _) => {
                out.push(b'\\');
                i += 2;
            }
            (b'\\', Some(b'x'), Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 4;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

impl Backup {
    /// Open a backup directory (see [`Backup::open_objects`]).
    pub fn open(dir: &Path) -> Result<Backup, ReadError> {
        Backup::open_objects(Arc::new(DirObjects::new(dir)))
    }

    /// Open a backup on a target: check the catalog (names, frame table,
    /// sizes) and the manifest against the catalog.
    pub fn open_objects(objects: Arc<dyn Objects>) -> Result<Backup, ReadError> {
        Backup::open_with(objects, false)
    }

    /// [`Backup::open_objects`] for a reader that goes through the entries
    /// in order, once or a few times (verify, compare): the manifest is
    /// checked the same way, line by line, but not kept; [`Backup::each_entry`]
    /// reads it again. A million entries then cost no memory at all, where
    /// held they take some 600 MiB. Such a backup is not restored from.
    pub fn open_objects_streamed(objects: Arc<dyn Objects>) -> Result<Backup, ReadError> {
        Backup::open_with(objects, true)
    }

    fn open_with(objects: Arc<dyn Objects>, streamed: bool) -> Result<Backup, ReadError> {
        let at = objects.location();
        let shown = format!("{at}/{CATALOG}");
        let text = match objects.read(CATALOG, MAX_CATALOG_BYTES) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::NotABackup(at.into())),
            Err(e) => return Err(ReadError::Io(shown, e)),
        };
        let stored = parse_catalog(&text, &shown)?;
        let (catalog, stored) = match &stored.encryption {
            None => (stored, None),
            Some(_) => (unseal(objects.as_ref(), &stored)?, Some(Box::new(stored))),
        };
        let mf = format!("{at}/{}", catalog.manifest.name);
        let stream_len = catalog.frames.last().map(|f| f.start + f.dlen).unwrap_or(0);
        let (entries, streamed) = if streamed {
            let n = stream_manifest(objects.as_ref(), &catalog.manifest, &mf, stream_len, &mut |_| {})?;
            (Vec::new(), Some(n))
        } else {
            let mut entries = Vec::new();
            stream_manifest(objects.as_ref(), &catalog.manifest, &mf, stream_len, &mut |e| entries.push(e))?;
            entries.shrink_to_fit();
            (entries, None)
        };
        Ok(Backup { objects, catalog, stored, entries, streamed, ancestors: Vec::new() })
    }

    /// `backup.json` as stored: what its signature covers (of an encrypted
    /// backup: without file names, with the stored objects' sizes and hashes).
    pub fn stored_catalog(&self) -> &Catalog {
        self.stored.as_deref().unwrap_or(&self.catalog)
    }

    /// A backup from its parts, after the same checks as [`Backup::open`]
    /// (for tests and fuzzing: nothing is read from `objects` until a volume is).
    pub fn from_parts(
        objects: Arc<dyn Objects>,
        catalog: Catalog,
        entries: Vec<ManifestEntry>,
    ) -> Result<Backup, ReadError> {
        check_catalog(&catalog).map_err(|e| ReadError::Damaged(format!("backup.json is damaged: {e}")))?;
        Ok(Backup { objects, catalog, stored: None, entries, streamed: None, ancestors: Vec::new() })
    }

    /// Attach an incremental backup's resolved chain (see [`crate::chain::resolve`]).
    pub(crate) fn set_ancestors(&mut self, a: Vec<(String, Arc<dyn Objects>, Catalog)>) {
        self.ancestors = a;
    }

    /// The names of the backups of its chain, nearest parent first (empty for a full backup).
    pub fn ancestor_names(&self) -> Vec<String> {
        self.ancestors.iter().map(|(n, ..)| n.clone()).collect()
    }

    /// Every entry of the manifest, in order: from memory, or read again
    /// (and checked again, an error when it changed since it was opened)
    /// when opened streamed.
    pub fn each_entry(&self, each: &mut dyn FnMut(&ManifestEntry)) -> Result<(), ReadError> {
        if self.streamed.is_none() {
            self.entries.iter().for_each(each);
            return Ok(());
        }
        let shown = format!("{}/{}", self.location(), self.catalog.manifest.name);
        stream_manifest(self.objects.as_ref(), &self.catalog.manifest, &shown, self.stream_len(), &mut |e| each(&e))
            .map(|_| ())
    }

    /// Whether it was opened with [`Backup::open_objects_streamed`] (its `entries` are not held).
    pub fn is_streamed(&self) -> bool {
        self.streamed.is_some()
    }

    /// How many entries its manifest has.
    pub fn entry_count(&self) -> usize {
        self.streamed.unwrap_or(self.entries.len())
    }

    /// An increment's resolved parent: name, objects, whole catalog.
    pub(crate) fn parent_backup(&self) -> Option<&(String, Arc<dyn Objects>, Catalog)> {
        self.ancestors.first()
    }

    /// Whether it is an increment (its catalog names a parent).
    pub fn is_incremental(&self) -> bool {
        self.catalog.parent.is_some()
    }

    /// Its manifest's entries, the rest dropped.
    pub fn into_entries(self) -> Vec<ManifestEntry> {
        self.entries
    }

    /// The backups to read an increment's entries from, oldest first, each
    /// with the entries it holds (in stream order); entries whose `from`
    /// names no backup of the resolved chain are returned apart, named. A
    /// full backup is one part of all its entries.
    pub fn parts(&self) -> Result<(Vec<Backup>, Vec<String>), ReadError> {
        let (plan, outside) = self.part_plan()?;
        let parts = plan
            .into_iter()
            .map(|(mut p, at)| {
                p.entries = at.into_iter().filter_map(|i| self.entries.get(i as usize).cloned()).collect();
                p
            })
            .collect();
        Ok((parts, outside))
    }

    /// [`Backup::parts`] without copying the entries: each part (its
    /// `entries` left empty) with the positions in this backup's entries of
    /// those it holds, in stream order (4 bytes an entry, where a copy of the
    /// entries takes some 600).
    pub(crate) fn part_plan(&self) -> Result<(Vec<PartPlan>, Vec<String>), ReadError> {
        if self.streamed.is_some() {
            return Err(ReadError::Damaged(format!(
                "{} was opened streamed, without its entries (lifeboat bug: open it with Backup::open_objects to restore)",
                self.location()
            )));
        }
        let part = |objects: &Arc<dyn Objects>, catalog: &Catalog| Backup {
            objects: Arc::clone(objects),
            catalog: catalog.clone(),
            stored: None,
            entries: Vec::new(),
            streamed: None,
            ancestors: Vec::new(),
        };
        let Ok(count) = u32::try_from(self.entries.len()) else {
            return Err(ReadError::Damaged(format!("{} has more than 2^32 entries (refused)", self.location())));
        };
        if !self.is_incremental() {
            return Ok((vec![(part(&self.objects, &self.catalog), (0..count).collect())], Vec::new()));
        }
        if self.ancestors.is_empty() {
            return Err(ReadError::Damaged(format!(
                "{} is an incremental backup whose chain was not resolved (lifeboat bug: open it through lifeboat_backup::find)",
                self.location()
            )));
        }
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        for (i, (n, ..)) in self.ancestors.iter().enumerate() {
            by_name.insert(n.as_str(), i + 1);
        }
        let mut groups: Vec<Vec<u32>> = vec![Vec::new(); self.ancestors.len() + 1];
        let mut outside = Vec::new();
        for (k, e) in (0..count).zip(&self.entries) {
            match e.from.as_deref().map(|f| by_name.get(f).copied()) {
                None => groups[0].push(k),
                Some(Some(i)) => groups[i].push(k),
                Some(None) => outside.push(format!(
                    "{}: its content is in backup {}, which is not in this backup's chain (refused)",
                    e.path,
                    e.from.as_deref().unwrap_or_default()
                )),
            }
        }
        let entry = |k: &u32| &self.entries[*k as usize];
        let mut parts = Vec::new();
        for (i, mut at) in groups.into_iter().enumerate().rev() {
            at.sort_by_key(|k| entry(k).offset);
            let p = match i {
                0 => part(&self.objects, &self.catalog),
                _ => {
                    let (_, o, c) = &self.ancestors[i - 1];
                    part(o, c)
                }
            };
            let stream_len = p.stream_len();
            for e in at.iter().map(entry).filter(|e| e.offset & 511 != 0 || e.offset >= stream_len) {
                outside
                    .push(format!("{}: offset {} is not in the tar stream of its backup (refused)", e.path, e.offset));
            }
            at.retain(|k| entry(k).offset & 511 == 0 && entry(k).offset < stream_len);
            if !at.is_empty() {
                parts.push((p, at));
            }
        }
        Ok((parts, outside))
    }

    /// Where the backup is, for messages (its directory, or a URL).
    pub fn location(&self) -> String {
        self.objects.location()
    }

    /// The directory on this machine that holds the backup, when it is one.
    pub fn local_dir(&self) -> Option<&Path> {
        self.objects.local_dir()
    }

    /// The objects it is read from.
    pub fn objects(&self) -> &Arc<dyn Objects> {
        &self.objects
    }

    /// The file name of volume `n` (1-based), as the catalog lists it.
    pub fn volume_name(&self, n: u32) -> String {
        (n as usize)
            .checked_sub(1)
            .and_then(|k| self.catalog.volumes.get(k))
            .map(|v| v.name.clone())
            .unwrap_or_else(|| format!("vol-{n:04}"))
    }

    /// Open volume `n` (1-based) for reading by range: on a directory a
    /// regular file (no symbolic link unless the directory is a gathered
    /// media set, no device or FIFO, never blocking). Everything that reads
    /// a volume opens it here.
    pub fn open_volume(&self, n: u32) -> Result<Arc<dyn ObjectRead>, String> {
        let name = self.volume_name(n);
        if (n as usize).checked_sub(1).and_then(|k| self.catalog.volumes.get(k)).is_none() {
            return Err(format!("{name}: the catalog has no volume {n}"));
        }
        if name.contains('/') || name.starts_with('.') || name.is_empty() {
            return Err(format!("{name}: not a plain file name (refused)"));
        }
        self.objects.open_volume(&name, MAX_VOLUME_SIZE).map_err(|e| format!("{name}: {e}"))
    }

    /// The uncompressed length of the whole tar stream.
    pub fn stream_len(&self) -> u64 {
        self.catalog.frames.last().map(|f| f.start.saturating_add(f.dlen)).unwrap_or(0)
    }
}

/// Where a stream's bytes come from.
#[derive(Debug)]
enum Source<'a> {
    /// The frames of a backup's volumes, read by range.
    Backup(&'a Backup),
    /// The frames of a backup's volumes, read in order from one stream
    /// (a tape, a pipe): never backwards.
    Sequential(&'a Backup, Mutex<Sequential>),
    /// A tar stream in memory (tests, fuzzing).
    Memory(&'a [u8]),
}

/// The concatenated volumes of a backup as one forward-only stream.
struct Sequential {
    reader: Box<dyn Read + Send>,
    /// Position in the concatenated volumes.
    at: u64,
    /// Where each volume starts in them (None past an overflow: a catalog no real backup has).
    starts: Vec<Option<u64>>,
}

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequential").field("at", &self.at).finish_non_exhaustive()
    }
}

impl Sequential {
    /// Read frame `f` of a backup: skip forward to it, never back.
    fn frame(&mut self, b: &Backup, f: &Frame) -> Result<Vec<u8>, String> {
        let name = b.volume_name(f.volume);
        if f.clen > MAX_FRAME_CLEN || f.dlen > MAX_FRAME_DLEN {
            return Err(format!("{name}: frame at {} is larger than a frame can be (damaged catalog)", f.offset));
        }
        // Where the frame starts in the concatenated volumes.
        let before = (f.volume as usize).checked_sub(1).and_then(|k| self.starts.get(k).copied().flatten());
        let Some(start) = before.and_then(|b| b.checked_add(f.offset)) else {
            return Err(format!("{name}: frame at {} lies beyond any volume (damaged catalog)", f.offset));
        };
        if start < self.at {
            return Err(format!(
                "{name}: frame at {} is behind the read position of a sequential source (tape or pipe): it cannot be read again",
                f.offset
            ));
        }
        let skip = start - self.at;
        let skipped = std::io::copy(&mut (&mut self.reader).take(skip), &mut std::io::sink())
            .map_err(|e| format!("{name}: {e}"))?;
        self.at += skipped;
        if skipped < skip {
            return Err(format!("{name}: the stream ends before frame at {}", f.offset));
        }
        let mut data = vec![0u8; f.clen as usize];
        self.reader.read_exact(&mut data).map_err(|e| format!("{name}: frame at {}: {e}", f.offset))?;
        self.at += f.clen;
        decode_frame(&data, f, &name, &b.catalog.compression)
    }
}

/// A frame being decompressed on another core.
type Ahead = std::sync::mpsc::Receiver<Result<Vec<u8>, String>>;

/// The tar stream of a backup, frame by frame; a frame that cannot be read
/// becomes a gap, reported as an error naming the range.
#[derive(Debug)]
pub struct Stream<'a> {
    source: Source<'a>,
    /// Open volumes.
    files: HashMap<u32, Arc<dyn ObjectRead>>,
    /// Frames being decompressed ahead on other cores.
    ahead: HashMap<usize, Ahead>,
    last_loaded: Option<usize>,
    frame: usize,
    buf: Vec<u8>,
    pos: usize,
    /// Position in the uncompressed stream.
    pub offset: u64,
    /// The real size and stored size of the sparse file whose header was
    /// read last: [`read_sparse_map`] checks the map against them.
    sparse: Option<(u64, u64)>,
}

/// A range of the stream that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Why.
    pub why: String,
}

impl Gap {
    fn at(offset: u64, why: String) -> Gap {
        Gap { start: offset, end: offset, why }
    }
}

impl<'a> Stream<'a> {
    /// A stream positioned at the start.
    pub fn new(backup: &'a Backup) -> Stream<'a> {
        Stream::with_source(Source::Backup(backup))
    }

    /// A stream over a backup's volumes read in order from one forward-only
    /// reader (a tape, a pipe: `cat vol-* |`), checked frame by frame against
    /// the catalog; seeking backwards is an error, never a silent re-read.
    pub fn sequential(backup: &'a Backup, reader: Box<dyn Read + Send>) -> Stream<'a> {
        let mut starts = Vec::with_capacity(backup.catalog.volumes.len());
        let mut at = Some(0u64);
        for v in &backup.catalog.volumes {
            starts.push(at);
            at = at.and_then(|a| a.checked_add(v.size));
        }
        Stream::with_source(Source::Sequential(backup, Mutex::new(Sequential { reader, at: 0, starts })))
    }

    /// A stream over a tar stream in memory (tests and fuzzing).
    pub fn from_bytes(data: &'a [u8]) -> Stream<'a> {
        Stream::with_source(Source::Memory(data))
    }

    fn with_source(source: Source<'a>) -> Stream<'a> {
        Stream {
            source,
            files: HashMap::new(),
            ahead: HashMap::new(),
            last_loaded: None,
            frame: 0,
            buf: Vec::new(),
            pos: 0,
            offset: 0,
            sparse: None,
        }
    }

    /// The length of the whole stream.
    pub fn len(&self) -> u64 {
        match &self.source {
            Source::Backup(b) | Source::Sequential(b, _) => b.stream_len(),
            Source::Memory(d) => d.len() as u64,
        }
    }

    /// Whether the stream is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open volume `n` once; the file is shared with the threads that decompress ahead.
    fn volume(&mut self, b: &Backup, n: u32) -> Result<Arc<dyn ObjectRead>, String> {
        if let Some(f) = self.files.get(&n) {
            return Ok(Arc::clone(f));
        }
        let f = b.open_volume(n)?;
        self.files.insert(n, Arc::clone(&f));
        Ok(f)
    }

    /// Load frame `i`; when reading sequentially, start decompressing the
    /// next frames on the other cores (restore decompresses in parallel).
    fn load(&mut self, b: &Backup, i: usize) -> Result<Vec<u8>, String> {
        let frames = &b.catalog.frames;
        let Some(f) = frames.get(i).copied() else { return Err("the archive ends early".into()) };
        if let Source::Sequential(_, seq) = &self.source {
            return seq.lock().map_err(|_| "the sequential reader failed".to_string())?.frame(b, &f);
        }
        let result = match self.ahead.remove(&i) {
            Some(rx) => rx.recv().unwrap_or_else(|_| Err("decompression thread failed".into())),
            None => self
                .volume(b, f.volume)
                .and_then(|file| read_frame(file.as_ref(), &f, &b.volume_name(f.volume), &b.catalog.compression)),
        };
        if self.last_loaded.is_some_and(|l| l + 1 == i) {
            let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            // A remote volume wants more frames in flight than cores: each read waits for round trips.
            let depth = self.files.get(&f.volume).map_or(0, |v| v.read_ahead()).max(threads);
            for (j, fj) in frames.iter().copied().enumerate().skip(i + 1).take(depth) {
                if self.ahead.contains_key(&j) {
                    continue;
                }
                // A volume that cannot be opened is reported when its frame is loaded.
                let Ok(file) = self.volume(b, fj.volume) else { break };
                let name = b.volume_name(fj.volume);
                let codec = b.catalog.compression.clone();
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let _ = tx.send(read_frame(file.as_ref(), &fj, &name, &codec));
                });
                self.ahead.insert(j, rx);
            }
        } else {
            self.ahead.clear();
        }
        self.last_loaded = Some(i);
        result
    }

    /// Move to an offset of the stream (the start of an entry after a gap).
    pub fn seek_to(&mut self, offset: u64) {
        self.buf.clear();
        self.pos = 0;
        self.offset = offset;
        self.sparse = None;
        if let Source::Backup(b) | Source::Sequential(b, _) = &self.source {
            let frames = &b.catalog.frames;
            self.frame = frames.partition_point(|f| f.start.saturating_add(f.dlen) <= offset);
            if let Some(f) = frames.get(self.frame) {
                // The frame is loaded on the next read; remember where in it to start.
                self.pos = offset.saturating_sub(f.start).min(f.dlen) as usize;
            }
        }
    }

    /// Read exactly `out.len()` bytes, or report the gap that prevents it.
    pub fn read_exact(&mut self, out: &mut [u8]) -> Result<(), Gap> {
        let b = match &self.source {
            Source::Memory(data) => {
                let end = self.offset.checked_add(out.len() as u64).filter(|e| *e <= data.len() as u64);
                let Some(end) = end else {
                    return Err(Gap::at(self.offset, "the archive ends early".into()));
                };
                out.copy_from_slice(&data[self.offset as usize..end as usize]);
                self.offset = end;
                return Ok(());
            }
            Source::Backup(b) | Source::Sequential(b, _) => *b,
        };
        let mut done = 0;
        while done < out.len() {
            if self.buf.is_empty() || self.pos >= self.buf.len() {
                let skip = if self.buf.is_empty() { self.pos } else { 0 };
                if !self.buf.is_empty() {
                    self.frame += 1;
                }
                let Some(f) = b.catalog.frames.get(self.frame).copied() else {
                    return Err(Gap::at(self.offset, "the archive ends early".into()));
                };
                match self.load(b, self.frame) {
                    Ok(data) if skip < data.len() => {
                        self.buf = data;
                        self.pos = skip;
                    }
                    Ok(_) => return Err(Gap::at(self.offset, "the frame table does not cover this offset".into())),
                    Err(why) => {
                        return Err(Gap { start: f.start, end: f.start.saturating_add(f.dlen), why });
                    }
                }
            }
            let n = (self.buf.len() - self.pos).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            done += n;
            self.offset += n as u64;
        }
        Ok(())
    }
}

/// Read and decompress one frame from its volume.
fn read_frame(file: &dyn ObjectRead, f: &Frame, name: &str, codec: &str) -> Result<Vec<u8>, String> {
    let len = file.len();
    if f.clen > MAX_FRAME_CLEN || f.dlen > MAX_FRAME_DLEN {
        return Err(format!("{name}: frame at {} is larger than a frame can be (damaged catalog)", f.offset));
    }
    if f.offset.checked_add(f.clen).is_none_or(|end| end > len) {
        return Err(format!("{name}: frame at {} ends after the end of the volume ({len} bytes): truncated", f.offset));
    }
    let mut data = vec![0u8; f.clen as usize];
    file.read_at(f.offset, &mut data).map_err(|e| format!("{name}: {e}"))?;
    decode_frame(&data, f, name, codec)
}

/// Decompress one frame's bytes, checking its length against the catalog.
fn decode_frame(data: &[u8], f: &Frame, name: &str, codec: &str) -> Result<Vec<u8>, String> {
    let out = crate::frames::decompress(codec, data, f.dlen as usize).map_err(|e| format!("{name}: damaged ({e})"))?;
    if out.len() as u64 != f.dlen {
        return Err(format!("{name}: damaged (frame at {} has the wrong length)", f.offset));
    }
    Ok(out)
}

/// One entry as its headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Archive path.
    pub path: Vec<u8>,
    /// Type (with link target or device numbers).
    pub kind: Kind,
    /// Mode bits.
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Data size.
    pub size: u64,
    /// Modification time.
    pub mtime: i64,
    /// Nanoseconds.
    pub mtime_ns: u32,
    /// Extended attributes.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// A sparse file (GNU format 1.0): its real size; `size` is what is stored.
    pub sparse: Option<u64>,
}

/// A numeric field of a ustar header: octal digits (leading spaces, then up
/// to a NUL or space), all NULs for 0, or GNU's base-256 for large values.
fn parse_octal(f: &[u8]) -> Option<u64> {
    if f.first().is_some_and(|b| b & 0x80 != 0) {
        // Base-256, positive only: the rest of the first byte, then big-endian bytes.
        if f[0] & 0x40 != 0 {
            return None;
        }
        let mut v = u64::from(f[0] & 0x3f);
        for b in &f[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let f = &f[f.iter().take_while(|b| **b == b' ').count()..];
    let digits = f.iter().take_while(|b| (b'0'..=b'7').contains(b)).count();
    if !f[digits..].iter().all(|b| *b == 0 || *b == b' ') {
        return None;
    }
    f[..digits].iter().try_fold(0u64, |v, d| v.checked_mul(8)?.checked_add(u64::from(d - b'0')))
}

fn cstr(f: &[u8]) -> Vec<u8> {
    f.iter().take_while(|b| **b != 0).copied().collect()
}

/// Key-value records of a pax extended header.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// Parse a pax extended header: records `LEN key=value\n`, where LEN counts
/// the whole record. Anything else is an error naming the record.
fn parse_pax(data: &[u8]) -> Result<Records, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let rest = &data[at..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let len = std::str::from_utf8(&rest[..digits.min(20)]).ok().and_then(|s| s.parse::<usize>().ok());
        let bad = |what: &str| format!("pax record at byte {at} of the extended header: {what}");
        let Some(len) = len.filter(|_| digits > 0 && digits <= 20 && rest.get(digits) == Some(&b' ')) else {
            return Err(bad("no length"));
        };
        if len > rest.len() || len < digits + 4 {
            return Err(bad(&format!("length {len} does not fit the {} bytes left", rest.len())));
        }
        if rest[len - 1] != b'\n' {
            return Err(bad("does not end with a newline"));
        }
        let rec = &rest[digits + 1..len - 1];
        match rec.iter().position(|b| *b == b'=') {
            Some(eq) if eq > 0 => out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec())),
            _ => return Err(bad("no key=value")),
        }
        at += len;
    }
    Ok(out)
}

/// A decimal pax value that must fit `max`.
fn pax_number(v: &[u8], key: &str, max: u64) -> Result<u64, String> {
    std::str::from_utf8(v)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|n| *n <= max)
        .ok_or_else(|| format!("pax record {key} is not a number up to {max}: {:?}", String::from_utf8_lossy(v)))
}

/// A pax `mtime`: seconds (maybe negative), then optionally `.` and a fraction.
fn pax_mtime(v: &[u8]) -> Result<(i64, u32), String> {
    let bad = || format!("pax record mtime is not a time: {:?}", String::from_utf8_lossy(v));
    let (s, f) = match v.iter().position(|b| *b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &b""[..]),
    };
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    if digits.is_empty()
        || digits.len() > 19
        || !digits.iter().all(u8::is_ascii_digit)
        || !f.iter().all(u8::is_ascii_digit)
    {
        return Err(bad());
    }
    let secs = std::str::from_utf8(s).ok().and_then(|s| s.parse::<i64>().ok()).ok_or_else(bad)?;
    // Nanoseconds: the first nine digits of the fraction, padded with zeros.
    let ns = (0..9).fold(0u32, |ns, i| ns * 10 + f.get(i).map(|d| u32::from(d - b'0')).unwrap_or(0));
    Ok((secs, ns))
}

/// Read the next entry's headers (pax extended header included); `None` at
/// the end-of-archive marker. A header with a bad checksum or a malformed
/// field is an error naming the offset and the field.
pub fn next_header(s: &mut Stream) -> Result<Option<Header>, Gap> {
    s.sparse = None;
    let mut pax: Records = Vec::new();
    loop {
        let at = s.offset;
        let mut h = [0u8; 512];
        s.read_exact(&mut h)?;
        if h.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let bad = |why: String| Gap {
            start: at,
            end: at.saturating_add(512),
            why: format!("tar header at offset {at}: {why}"),
        };
        let stored = parse_octal(&h[148..156]);
        let sum: u64 =
            h.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u64::from(*b) }).sum();
        if stored != Some(sum) {
            return Err(Gap {
                start: at,
                end: at + 512,
                why: format!("tar header at offset {at} is damaged (checksum)"),
            });
        }
        let octal = |name: &str, range: std::ops::Range<usize>, max: u64| {
            parse_octal(&h[range])
                .filter(|v| *v <= max)
                .ok_or_else(|| bad(format!("field {name} is not a number up to {max}")))
        };
        let size = octal("size", 124..136, u64::MAX)?;
        let typeflag = h[156];
        if typeflag == b'x' || typeflag == b'g' {
            if size > MAX_PAX_HEADER {
                return Err(bad(format!(
                    "pax extended header of {size} bytes, more than the {MAX_PAX_HEADER} allowed"
                )));
            }
            let mut data = vec![0u8; size as usize];
            s.read_exact(&mut data)?;
            let mut padding = [0u8; 512];
            s.read_exact(&mut padding[..((512 - size % 512) % 512) as usize])?;
            let records = parse_pax(&data).map_err(bad)?;
            if typeflag == b'x' {
                pax = records;
            }
            continue;
        }
        let get = |k: &str| pax.iter().rev().find(|(key, _)| key == k.as_bytes()).map(|(_, v)| v.clone());
        let sparse = match get("GNU.sparse.major") {
            None => None,
            Some(v) if v == b"1" => {
                let real =
                    get("GNU.sparse.realsize").ok_or_else(|| bad("sparse file without GNU.sparse.realsize".into()))?;
                Some(pax_number(&real, "GNU.sparse.realsize", MAX_SPARSE_REALSIZE).map_err(bad)?)
            }
            Some(v) => {
                return Err(bad(format!(
                    "GNU.sparse.major {:?}: lifeboat reads sparse format 1.0",
                    String::from_utf8_lossy(&v)
                )))
            }
        };
        let mut path =
            get("GNU.sparse.name").filter(|_| sparse.is_some()).or_else(|| get("path")).unwrap_or_else(|| {
                let prefix = cstr(&h[345..500]);
                let name = cstr(&h[0..100]);
                if prefix.is_empty() {
                    name
                } else {
                    [prefix, b"/".to_vec(), name].concat()
                }
            });
        if path.len() > 1 && path.ends_with(b"/") {
            path.pop();
        }
        let link = get("linkpath").unwrap_or_else(|| cstr(&h[157..257]));
        if path.contains(&0) || link.contains(&0) {
            return Err(bad("path or linkpath holds a NUL byte".into()));
        }
        let num = |k: &str, range: std::ops::Range<usize>, max: u64| match get(k) {
            Some(v) => pax_number(&v, k, max).map_err(bad),
            None => octal(k, range, max),
        };
        let id = u64::from(u32::MAX);
        let (ma, mi) = (octal("devmajor", 329..337, id)? as u32, octal("devminor", 337..345, id)? as u32);
        let kind = match typeflag {
            b'1' => Kind::Hardlink(link),
            b'2' => Kind::Symlink(link),
            b'3' => Kind::Char(ma, mi),
            b'4' => Kind::Block(ma, mi),
            b'5' => Kind::Dir,
            b'6' => Kind::Fifo,
            _ => Kind::File,
        };
        let (mtime, mtime_ns) = match get("mtime") {
            Some(v) => pax_mtime(&v).map_err(bad)?,
            None => (octal("mtime", 136..148, i64::MAX as u64)? as i64, 0),
        };
        let size = num("size", 124..136, u64::MAX)?;
        if size > s.len().saturating_sub(s.offset) {
            return Err(bad(format!("field size is {size}, more than the rest of the archive")));
        }
        if let Some(real) = sparse {
            s.sparse = Some((real, size));
        }
        let xattrs =
            pax.iter().filter_map(|(k, v)| k.strip_prefix(b"SCHILY.xattr.").map(|n| (n.to_vec(), v.clone()))).collect();
        return Ok(Some(Header {
            path,
            kind,
            mode: octal("mode", 100..108, id)? as u32,
            uid: num("uid", 108..116, id)? as u32,
            gid: num("gid", 116..124, id)? as u32,
            size,
            mtime,
            mtime_ns,
            xattrs,
            sparse,
        }));
    }
}

/// Read a GNU sparse 1.0 map at the start of a sparse file's data; returns
/// the segments and the number of bytes the map took. The map is checked:
/// at most [`MAX_SPARSE_SEGMENTS`] segments in increasing order without
/// overlap, and, after [`next_header`] read the file's header, inside its
/// real size and adding up to its stored size.
pub fn read_sparse_map(s: &mut Stream) -> Result<(Vec<(u64, u64)>, u64), Gap> {
    let start = s.offset;
    let expect = s.sparse.take();
    let bad = |why: String| Gap::at(start, format!("sparse map at offset {start}: {why}"));
    let mut numbers: Vec<u64> = Vec::new();
    let mut want: Option<u64> = None;
    let (mut cur, mut digits) = (0u64, 0usize);
    let mut map_len = 0u64;
    'blocks: loop {
        if map_len >= MAX_SPARSE_MAP_BYTES {
            return Err(bad(format!("longer than {MAX_SPARSE_MAP_BYTES} bytes")));
        }
        if let Some((_, stored)) = expect.filter(|(_, stored)| map_len >= *stored) {
            return Err(bad(format!("longer than the entry's size {stored}")));
        }
        let mut block = [0u8; 512];
        s.read_exact(&mut block)?;
        map_len += 512;
        for (i, b) in block.iter().copied().enumerate() {
            match b {
                b'0'..=b'9' if digits < 20 => {
                    cur = cur
                        .checked_mul(10)
                        .and_then(|c| c.checked_add(u64::from(b - b'0')))
                        .ok_or_else(|| bad("a number does not fit 64 bits".into()))?;
                    digits += 1;
                }
                b'\n' if digits > 0 => {
                    if numbers.is_empty() {
                        if cur > MAX_SPARSE_SEGMENTS {
                            return Err(bad(format!("{cur} segments, more than {MAX_SPARSE_SEGMENTS}")));
                        }
                        want = Some(1 + 2 * cur);
                    }
                    numbers.push(cur);
                    (cur, digits) = (0, 0);
                    if want == Some(numbers.len() as u64) {
                        if block[i + 1..].iter().any(|b| *b != 0) {
                            return Err(bad(
                                "bytes after the last segment (the rest of the block must be zeros)".into()
                            ));
                        }
                        break 'blocks;
                    }
                }
                _ => return Err(bad(format!("byte {b:#04x} where a decimal number or a newline belongs"))),
            }
        }
    }
    let mut segs = Vec::with_capacity(numbers.len() / 2);
    let mut end = 0u64;
    let mut data = 0u64;
    for (i, c) in numbers.get(1..).unwrap_or(&[]).chunks_exact(2).enumerate() {
        let (off, len) = (c[0], c[1]);
        if off < end {
            return Err(bad(format!("segment {i} starts at {off}, before the end of the previous one ({end})")));
        }
        end = off.checked_add(len).ok_or_else(|| bad(format!("segment {i} ends past 2^64")))?;
        data = data.checked_add(len).ok_or_else(|| bad("the segments add up past 2^64".into()))?;
        segs.push((off, len));
    }
    if let Some((real, stored)) = expect {
        if end > real {
            return Err(bad(format!("segments end at {end}, after the file's real size {real}")));
        }
        if map_len.checked_add(data) != Some(stored) {
            return Err(bad(format!(
                "the map ({map_len} bytes) and its segments ({data} bytes) do not add up to the entry's size {stored}"
            )));
        }
    }
    Ok((segs, map_len))
}

/// Run the header and sparse-map readers over a tar stream in memory until
/// its end or the first error: what the fuzzers call. Returns the number of
/// entries read.
#[doc(hidden)]
pub fn fuzz_headers(data: &[u8]) -> Result<usize, Gap> {
    let mut s = Stream::from_bytes(data);
    let mut n = 0;
    while let Some(h) = next_header(&mut s)? {
        n += 1;
        let (segs, mut stored) = match h.sparse {
            Some(_) => read_sparse_map(&mut s)?,
            None => (vec![(0, h.size)], 0),
        };
        stored += segs.iter().map(|(_, l)| l).sum::<u64>();
        let next = s.offset.saturating_add(stored.div_ceil(512).saturating_mul(512)).min(s.len());
        s.seek_to(next);
    }
    Ok(n)
}

/// Read a sparse map from memory as if [`next_header`] had given the file
/// `realsize` and a stored size of `stored`: what the sparse-map fuzzer calls.
#[doc(hidden)]
pub fn fuzz_sparse_map(map: &[u8], realsize: u64, stored: u64) -> Result<(Vec<(u64, u64)>, u64), Gap> {
    let mut s = Stream::from_bytes(map);
    s.sparse = Some((realsize, stored));
    read_sparse_map(&mut s)
}

#[cfg(test)]
mod tests {
    //! Hostile inputs, each made as an attacker who controls the backup
    //! target would write it (tar checksums recomputed, catalog and manifest
    //! checksums matching): each is an error naming the field, never a
    //! panic, an abort or a hang.
    use super::*;
    use serde_json::json;

    /// A ustar header with a correct checksum.
    fn header(name: &str, typeflag: u8, size: u64, edit: impl FnOnce(&mut [u8; 512])) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        edit(&mut h);
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h.to_vec()
    }

    fn padded(mut v: Vec<u8>) -> Vec<u8> {
        v.resize(v.len().div_ceil(512) * 512, 0);
        v
    }

    /// A pax extended header with these records (raw bytes, lengths right).
    fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut data = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        raw_pax(&data)
    }

    fn raw_pax(data: &[u8]) -> Vec<u8> {
        let mut out = header("PaxHeaders/x", b'x', data.len() as u64, |_| {});
        out.extend_from_slice(&padded(data.to_vec()));
        out
    }

    /// A sparse file: pax records, header, the map text, `data` bytes of segments.
    fn sparse(realsize: &str, map: &str, data: usize, size: Option<u64>) -> Vec<u8> {
        let map = padded(map.as_bytes().to_vec());
        let stored = size.unwrap_or((map.len() + data) as u64);
        let mut t = pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"f"),
            ("GNU.sparse.realsize", realsize.as_bytes()),
        ]);
        t.extend(header("GNUSparseFile.0/f", b'0', stored, |_| {}));
        t.extend(map);
        t.extend(padded(vec![b'd'; data]));
        t
    }

    fn end(mut t: Vec<u8>) -> Vec<u8> {
        t.extend([0u8; 1024]);
        t
    }

    /// A backup directory holding `tar` in one zstd frame; `edit` changes the
    /// catalog before it is written.
    fn backup_dir(tar: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let vol = zstd::bulk::compress(tar, 3).expect("zstd");
        std::fs::write(dir.path().join("vol-0001.tar.zst"), &vol).expect("write");
        let manifest = format!(
            "{}\n",
            json!({"path": "f", "type": "file", "size": 0, "mode": 420, "uid": 0, "gid": 0, "user": "", "group": "",
                   "mtime_ns": 0, "offset": 0})
        );
        std::fs::write(dir.path().join("manifest.jsonl"), &manifest).expect("write");
        let vh = blake3::hash(&vol).to_hex().to_string();
        let mut c = json!({
            "format": "lifeboat-archive", "version": 1, "host": "h", "created": "2026-01-01T00:00:00Z",
            "compression": "zstd", "volume_size": 1 << 30,
            "volumes": [{"name": "vol-0001.tar.zst", "size": vol.len(), "blake3": vh}],
            "frames": [{"volume": 1, "offset": 0, "clen": vol.len(), "start": 0, "dlen": tar.len()}],
            "manifest": {"name": "manifest.jsonl", "size": manifest.len(),
                         "blake3": blake3::hash(manifest.as_bytes()).to_hex().to_string()},
            "stats": {"entries": 1, "files": 1, "bytes_in": 0, "bytes_out": 0, "sockets_skipped": 0,
                      "changed": [], "unreadable": []}
        });
        edit(&mut c);
        std::fs::write(dir.path().join("backup.json"), serde_json::to_vec(&c).expect("json")).expect("write");
        dir
    }

    /// Open a backup made by [`backup_dir`]; the error's text.
    fn open_err(tar: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let dir = backup_dir(tar, edit);
        match Backup::open(dir.path()) {
            Ok(_) => panic!("a damaged catalog was accepted"),
            Err(e) => e.to_string(),
        }
    }

    /// Read every header (and sparse map) of `tar` stored in a backup; the first error.
    fn read_all(tar: &[u8]) -> Result<usize, Gap> {
        let dir = backup_dir(tar, |_| {});
        let b = Backup::open(dir.path()).expect("open");
        let mut s = Stream::new(&b);
        let mut n = 0;
        while let Some(h) = next_header(&mut s)? {
            n += 1;
            let (segs, map) = match h.sparse {
                Some(_) => read_sparse_map(&mut s)?,
                None => (vec![(0, h.size)], 0),
            };
            let stored = map + segs.iter().map(|(_, l)| l).sum::<u64>();
            s.seek_to(s.offset + stored.div_ceil(512) * 512);
        }
        // The in-memory reader that the fuzzers use agrees.
        assert_eq!(fuzz_headers(tar).map_err(|g| g.why), Ok(n));
        Ok(n)
    }

    fn err_of(tar: &[u8]) -> String {
        let e = read_all(tar).expect_err("malformed input accepted");
        assert_eq!(fuzz_headers(tar).map_err(|g| g.why), Err(e.why.clone()));
        e.why
    }

    #[test]
    fn valid_entries_read_as_before() {
        let mut t = pax(&[("mtime", b"1700000000.5"), ("path", "dir/é".as_bytes()), ("SCHILY.xattr.user.a", b"v")]);
        t.extend(header("x", b'0', 3, |_| {}));
        t.extend(padded(b"abc".to_vec()));
        t.extend(header("d/", b'5', 0, |_| {}));
        t.extend(sparse("1000", "2\n0\n10\n1000\n0\n", 10, None));
        let t = end(t);
        assert_eq!(read_all(&t).expect("valid"), 3);
        let mut s = Stream::from_bytes(&t);
        let h = next_header(&mut s).expect("header").expect("entry");
        assert_eq!((h.path.as_slice(), h.mtime, h.mtime_ns, h.size), ("dir/é".as_bytes(), 1700000000, 500_000_000, 3));
        assert_eq!(h.xattrs, vec![(b"user.a".to_vec(), b"v".to_vec())]);
    }

    #[test]
    fn a_non_ascii_pax_mtime_is_an_error_naming_mtime() {
        // main panicked: format!("{f:0<9}")[..9] cut a character in two.
        let mut t = pax(&[("mtime", "1.éééééé".as_bytes())]);
        t.extend(header("x", b'0', 0, |_| {}));
        assert!(err_of(&end(t)).contains("mtime"));
        let mut t = pax(&[("mtime", b"12x")]);
        t.extend(header("x", b'0', 0, |_| {}));
        assert!(err_of(&end(t)).contains("mtime"));
    }

    #[test]
    fn a_sparse_map_with_an_odd_count_is_an_error() {
        // main panicked: numbers[1..].chunks(2) gave a chunk of one.
        let e = err_of(&end(sparse("100", "1\n0\n5\n7\n", 5, None)));
        assert!(e.contains("sparse map"), "{e}");
    }

    #[test]
    fn a_sparse_map_count_that_overflows_is_an_error() {
        // main panicked in debug builds (1 + 2 * n overflowed).
        let e = err_of(&end(sparse("100", &format!("{}\n0\n5\n", u64::MAX / 2 + 1), 5, None)));
        assert!(e.contains("segments, more than"), "{e}");
        // A count that does not fit 64 bits at all.
        let e = err_of(&end(sparse("100", "99999999999999999999999\n", 0, None)));
        assert!(e.contains("sparse map"), "{e}");
    }

    #[test]
    fn a_sparse_map_claiming_huge_counts_is_refused_at_once() {
        // main read and re-parsed up to 64 MiB of map, quadratically.
        let e = err_of(&end(sparse("100", "1000000000000\n0\n5\n", 5, None)));
        assert!(e.contains("segments, more than"), "{e}");
    }

    #[test]
    fn sparse_segments_must_be_ordered_and_inside_the_real_size() {
        let e = err_of(&end(sparse("100", "2\n50\n5\n10\n5\n", 10, None)));
        assert!(e.contains("segment 1 starts at 10"), "{e}");
        let e = err_of(&end(sparse("100", "1\n98\n5\n", 5, None)));
        assert!(e.contains("after the file's real size 100"), "{e}");
        let e = err_of(&end(sparse("100", &format!("1\n{}\n5\n", u64::MAX - 1), 5, None)));
        assert!(e.contains("past 2^64"), "{e}");
        // The map and the segments must add up to the stored size.
        let e = err_of(&end(sparse("100", "1\n0\n5\n", 5, Some(512 + 400))));
        assert!(e.contains("do not add up"), "{e}");
        // A map that is not numbers.
        let e = err_of(&end(sparse("100", "1\n0\nfive\n", 5, None)));
        assert!(e.contains("decimal number"), "{e}");
    }

    #[test]
    fn a_huge_sparse_realsize_is_an_error_naming_it() {
        // main hashed 2^50 zero bytes on restore (days).
        let e = err_of(&end(sparse(&(1u64 << 50).to_string(), "1\n0\n5\n", 5, None)));
        assert!(e.contains("GNU.sparse.realsize"), "{e}");
        let e = err_of(&end(sparse("12ab", "1\n0\n5\n", 5, None)));
        assert!(e.contains("GNU.sparse.realsize"), "{e}");
    }

    #[test]
    fn a_huge_pax_header_size_is_an_error_not_an_allocation() {
        // main allocated vec![0u8; size] from the header: 64 GiB aborted.
        let t = end(header("PaxHeaders/x", b'x', 0, |h| h[124..136].copy_from_slice(b"777777777777")));
        let e = err_of(&t);
        assert!(e.contains("pax extended header of") && e.contains("more than"), "{e}");
        // Base-256 sizes are read too, and bounded the same way.
        let t = end(header("PaxHeaders/x", b'x', 0, |h| {
            h[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        }));
        assert!(err_of(&t).contains("pax extended header of"));
    }

    #[test]
    fn malformed_pax_records_are_errors() {
        for data in [&b"5 a=b"[..], b"99 a=b\n", b"x a=b\n", b"6 ab\n\n", b"7 a=bc", b"0 =\n", b"4 =\n"] {
            let mut t = raw_pax(data);
            t.extend(header("x", b'0', 0, |_| {}));
            let e = err_of(&end(t));
            assert!(e.contains("pax record at byte 0"), "{data:?}: {e}");
        }
    }

    #[test]
    fn malformed_numeric_fields_are_errors_naming_them() {
        let t = end(header("x", b'0', 0, |h| h[100..108].copy_from_slice(b"1\xc3\xa94567\0")));
        assert!(err_of(&t).contains("field mode"));
        let t = end(header("x", b'0', 0, |h| h[100..108].copy_from_slice(b"0009\0\0\0\0")));
        assert!(err_of(&t).contains("field mode"));
        let mut t = pax(&[("uid", b"4294967296")]);
        t.extend(header("x", b'0', 0, |_| {}));
        assert!(err_of(&end(t)).contains("uid"));
        let t = end(header("x", b'0', 5000, |_| {}));
        assert!(err_of(&t).contains("field size is 5000, more than the rest of the archive"));
        let mut t = pax(&[("path", b"a\0b")]);
        t.extend(header("x", b'0', 0, |_| {}));
        assert!(err_of(&end(t)).contains("NUL"));
    }

    #[test]
    fn a_damaged_checksum_is_still_reported() {
        let mut t = end(header("x", b'0', 0, |_| {}));
        t[10] = b'y';
        assert!(err_of(&t).contains("checksum"));
    }

    #[test]
    fn volume_names_must_be_plain_and_numbered() {
        for name in
            ["/dev/zero", "../vol-0001.tar.zst", "", "vol-0001.tar.zst\0", "vol-0002.tar.zst", "a/vol-0001.tar.zst"]
        {
            let e = open_err(&end(Vec::new()), |c| c["volumes"][0]["name"] = json!(name));
            assert!(e.contains("volumes[0].name") && e.contains("backup.json"), "{name:?}: {e}");
        }
        let e = open_err(&end(Vec::new()), |c| c["manifest"]["name"] = json!("../../etc/shadow"));
        assert!(e.contains("manifest.name"), "{e}");
        let e = open_err(&end(Vec::new()), |c| c["compression"] = json!("lz4"));
        assert!(e.contains("compression"), "{e}");
    }

    #[test]
    fn an_inconsistent_frame_table_is_refused_naming_the_field() {
        let t = end(Vec::new());
        // main: volume 0 underflowed in volume_name (n - 1).
        assert!(open_err(&t, |c| c["frames"][0]["volume"] = json!(0)).contains("frames[0].volume is 0"));
        assert!(open_err(&t, |c| c["frames"][0]["volume"] = json!(7)).contains("frames[0].volume is 7"));
        // main: offset - f.start underflowed after a seek.
        assert!(open_err(&t, |c| c["frames"][0]["start"] = json!(1000)).contains("frames[0].start is 1000"));
        // main: vec![0u8; clen] aborted.
        assert!(open_err(&t, |c| c["frames"][0]["clen"] = json!(1u64 << 50)).contains("frames[0].clen"));
        // main: the zstd output buffer was sized from dlen.
        assert!(open_err(&t, |c| c["frames"][0]["dlen"] = json!(u64::MAX)).contains("frames[0].dlen"));
        assert!(open_err(&t, |c| c["frames"][0]["offset"] = json!(5)).contains("frames[0].offset is 5"));
        assert!(open_err(&t, |c| c["volumes"][0]["size"] = json!(3)).contains("frames[0] ends at byte"));
        let e = open_err(&t, |c| {
            let f = c["frames"][0].clone();
            c["frames"] = json!([f, f]);
        });
        assert!(e.contains("frames[1].start"), "{e}");
    }

    #[test]
    fn manifest_offsets_must_be_blocks_of_the_stream() {
        let dir = backup_dir(&end(Vec::new()), |_| {});
        let mf = dir.path().join("manifest.jsonl");
        let line = json!({"path": "f", "type": "file", "size": 0, "mode": 420, "uid": 0, "gid": 0, "user": "",
                          "group": "", "mtime_ns": 0, "offset": 4096});
        let text = format!("{line}\n");
        std::fs::write(&mf, &text).expect("write");
        let cat = dir.path().join("backup.json");
        let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cat).expect("read")).expect("json");
        c["manifest"]["size"] = json!(text.len());
        c["manifest"]["blake3"] = json!(blake3::hash(text.as_bytes()).to_hex().to_string());
        std::fs::write(&cat, serde_json::to_vec(&c).expect("json")).expect("write");
        let e = Backup::open(dir.path()).expect_err("accepted").to_string();
        assert!(e.contains("manifest.jsonl line 1: offset 4096"), "{e}");
    }

    #[test]
    fn volumes_that_are_links_devices_or_fifos_are_gaps_not_hangs() {
        let t = end(header("x", b'0', 0, |_| {}));
        let dir = backup_dir(&t, |_| {});
        let vol = dir.path().join("vol-0001.tar.zst");
        std::fs::rename(&vol, dir.path().join("real")).expect("rename");
        std::os::unix::fs::symlink("real", &vol).expect("symlink");
        let b = Backup::open(dir.path()).expect("open");
        let e = next_header(&mut Stream::new(&b)).expect_err("a link was followed");
        assert!(e.why.contains("vol-0001.tar.zst") && e.why.contains("symbolic link"), "{}", e.why);
        // A media set gathered into a directory of links says so.
        let linked = Backup::open_objects(Arc::new(DirObjects::new(dir.path()).follow_volume_links())).expect("open");
        assert!(next_header(&mut Stream::new(&linked)).expect("through the link").is_some());
        std::fs::remove_file(&vol).expect("rm");
        rustix::fs::mknodat(rustix::fs::CWD, &vol, rustix::fs::FileType::Fifo, 0o600.into(), 0).expect("mkfifo");
        let e = next_header(&mut Stream::new(&b)).expect_err("a FIFO was read");
        assert!(e.why.contains("not a regular file"), "{}", e.why);
        std::fs::remove_file(dir.path().join("backup.json")).expect("rm");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("backup.json")).expect("symlink");
        assert!(Backup::open(dir.path()).expect_err("followed").to_string().contains("symbolic link"));
    }

    #[test]
    fn seeking_anywhere_never_panics() {
        let t = end(header("x", b'0', 0, |_| {}));
        let dir = backup_dir(&t, |_| {});
        let b = Backup::open(dir.path()).expect("open");
        for at in [0, 1, 511, 512, 1535, 1536, 1537, u64::MAX] {
            let mut s = Stream::new(&b);
            s.seek_to(at);
            let _ = next_header(&mut s);
            let mut m = Stream::from_bytes(&t);
            m.seek_to(at);
            let _ = next_header(&mut m);
        }
        assert_eq!(b.volume_name(0), "vol-0000");
    }

    #[test]
    fn unescape_path_takes_any_string() {
        // restore::unescape_path on main panicked on "\x" before a multi-byte character.
        assert_eq!(unescape_path("\\xé"), "\\xé".as_bytes());
        assert_eq!(unescape_path("a\\x41\\\\b\\xff\\x4"), b"aA\\b\xff\\x4");
        assert_eq!(unescape_path(&crate::backup::escape_path(b"\xff\\x\xc3")), b"\xff\\x\xc3");
    }

    #[test]
    fn decompress_never_inflates_past_dlen() {
        let big = vec![0u8; 1 << 20];
        let z = zstd::bulk::compress(&big, 3).expect("zstd");
        assert!(crate::frames::decompress("zstd", &z, 1000).is_err());
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut g, &big).expect("gz");
        let g = g.finish().expect("gz");
        assert!(crate::frames::decompress("gzip", &g, 1000).is_err());
        assert_eq!(crate::frames::decompress("gzip", &g, 1 << 20).expect("gz").len(), 1 << 20);
        assert!(crate::frames::decompress("zstd", &z, usize::MAX).is_err());
        assert!(crate::frames::decompress("lz4", &z, 10).is_err());
    }
}
