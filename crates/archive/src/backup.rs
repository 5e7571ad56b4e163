//! Writing a backup: walk the trees (never crossing into other mounts), put
//! every entry into the tar stream with its metadata, hash every file's
//! content with BLAKE3 while reading it, and record the manifest.

use crate::frames::{Frame, FrameWriter, Volume};
use crate::tar::{self, Kind};
use crate::target::{Objects, Upload};
use crate::ArchiveError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One manifest line: everything known about an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Archive path, with bytes that are not UTF-8 written as `\xNN` (and `\` as `\\`).
    pub path: String,
    /// `file`, `dir`, `symlink`, `hardlink`, `char`, `block`, `fifo`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Content size.
    pub size: u64,
    /// Mode bits (permissions, setuid, setgid, sticky).
    pub mode: u32,
    /// Owner and group ids.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name, when known.
    pub user: String,
    /// Group name, when known.
    pub group: String,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Extended attribute names (ACLs are `system.posix_acl_*`, capabilities `security.capability`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<String>,
    /// BLAKE3 of each extended attribute's value, in the order of `xattrs`
    /// (format 2; empty in older backups).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattr_blake3: Vec<String>,
    /// Symlink target or hard link target path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Device numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<(u32, u32)>,
    /// BLAKE3 of the content (regular files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// Offset of the entry's first header in the uncompressed tar stream.
    pub offset: u64,
    /// Stored sparse: only the data segments, holes restored as holes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sparse: bool,
    /// Inode number when backed up (what an incremental backup compares; absent in older backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
    /// Status change time (ctime) in nanoseconds since the epoch when backed up (absent in older backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctime_ns: Option<i128>,
    /// In an incremental backup: the backup of the chain whose volumes hold
    /// this entry (at `offset` of its tar stream), when it is not this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// The archive format this version writes: 2 adds `xattr_blake3` to the
/// manifest. Version 1 backups are still read.
pub const FORMAT_VERSION: u32 = 2;

/// The format of an encrypted backup: 3 adds the catalog's `encryption`
/// (unencrypted backups are still written as [`FORMAT_VERSION`], byte for
/// byte as before).
pub const ENCRYPTED_FORMAT_VERSION: u32 = 3;

/// A block of zeros, for hashing the holes of sparse files.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Hash `n` zero bytes (a hole reads as zeros).
pub(crate) fn hash_zeros(h: &mut blake3::Hasher, mut n: u64) {
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        h.update(&ZEROS[..k]);
        n -= k as u64;
    }
}

/// The data segments of a file (SEEK_DATA/SEEK_HOLE); None when the
/// filesystem cannot tell. A trailing hole ends with a zero-length segment
/// at the end of the file, as GNU tar writes it.
fn data_segments(f: &std::fs::File, size: u64) -> Option<Vec<(u64, u64)>> {
    use rustix::fs::{seek, SeekFrom};
    let mut segs = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match seek(f, SeekFrom::Data(pos as i64)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            Err(_) => return None,
        };
        let end = seek(f, SeekFrom::Hole(start as i64)).ok()?.min(size);
        if end > start {
            segs.push((start, end - start));
        }
        pos = end;
    }
    if segs.last().is_none_or(|(o, l)| o + l < size) {
        segs.push((size, 0));
    }
    Some(segs)
}

/// Escape bytes so that any path survives JSON: UTF-8 stays, other bytes become `\xNN`.
pub fn escape_path(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for x in chunk.invalid() {
            out.push_str(&format!("\\x{x:02x}"));
        }
    }
    out
}

/// What a backup run saw that a person must know.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Entries stored.
    pub entries: u64,
    /// Regular files stored.
    pub files: u64,
    /// Content bytes read.
    pub bytes_in: u64,
    /// Compressed bytes written.
    pub bytes_out: u64,
    /// Sockets skipped (they cannot be archived).
    pub sockets_skipped: u64,
    /// Files that changed while being read.
    pub changed: Vec<String>,
    /// Files that shrank while being read: their missing tail is stored as
    /// zeros, so what the backup holds is not what the file held (also in `changed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shrank: Vec<String>,
    /// Entries that could not be read, with the reason.
    pub unreadable: Vec<String>,
    /// Incremental backups: entries unchanged since the parent (listed in
    /// the manifest, their content in an earlier backup of the chain).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unchanged: u64,
    /// Incremental backups: entries of the parent that are gone (or were
    /// replaced by another type), listed in `deleted.list`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deleted: u64,
    /// Incremental backups: files read only to compare their content with
    /// the parent's, because their metadata could not tell (changed within
    /// the timestamp granularity of the parent's walk, or a parent without inode data).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub compared: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The backup an incremental backup was made against (`backup.json`'s `parent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    /// Its name on the target (`2026-12-01T020000.123Z`), beside this one.
    pub name: String,
    /// Its creation time, as its catalog says.
    pub created: String,
    /// The BLAKE3 of its manifest (of the plaintext, when encrypted): a
    /// parent swapped for another backup of that name is refused.
    pub manifest_blake3: String,
    /// The full backup the chain starts with.
    pub full: String,
    /// How many backups the chain has up to and including this one's parent.
    pub depth: u32,
}

/// A backup's description, written last (`backup.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    /// `lifeboat-archive`.
    pub format: String,
    /// Format version.
    pub version: u32,
    /// Host name.
    pub host: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Compression (`zstd`).
    pub compression: String,
    /// Maximum volume size.
    pub volume_size: u64,
    /// The volumes in order.
    pub volumes: Vec<Volume>,
    /// Where every compressed frame is.
    pub frames: Vec<Frame>,
    /// The manifest file and its BLAKE3.
    pub manifest: Volume,
    /// What was backed up, relative to the root.
    #[serde(default)]
    pub paths: Vec<String>,
    /// The patterns that were left out (configured and automatic).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Counts and warnings.
    pub stats: Stats,
    /// The key that signed this catalog (`backup.json.minisig`), 16 hex
    /// digits as minisign shows it; absent in backups made before signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// How the backup is encrypted (format 3); absent when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// An incremental backup's parent; absent in a full backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Parent>,
    /// An incremental backup's `deleted.list`: the paths of the parent that
    /// are gone, each ended by a NUL byte (as stored: encrypted, its stored size and BLAKE3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Volume>,
    /// When the walk began, in nanoseconds since the epoch: an entry whose
    /// ctime is not well before it is compared by content by the next increment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ns: Option<i128>,
}

/// How an encrypted backup is encrypted. As stored, its catalog names no
/// file: `paths`, `exclude` and the file lists of `stats` are empty, and
/// `volumes` and `manifest` give the size and BLAKE3 of the stored
/// (encrypted) objects, so `verify` checks them without the identity. The
/// frame table is in the coordinates of the decrypted volumes. The rest is
/// in the sealed catalog ([`Sealed`]), which the reader merges in after
/// decrypting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// `age`: every object but the catalog and its signature is an age file.
    pub scheme: String,
    /// The public keys (`age1...`) every object is encrypted to.
    pub recipients: Vec<String>,
    /// The sealed catalog (`catalog.age`) as stored.
    pub sealed: Volume,
    /// BLAKE3 of the sealed catalog's plaintext: binds it to this (signed) catalog.
    pub sealed_blake3: String,
    /// The recovery identity encrypted with the passphrase (`passphrase.age`), when there is a passphrase recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<Volume>,
}

/// The sealed catalog of an encrypted backup (`catalog.age`, encrypted):
/// what names files, and the plaintext size and BLAKE3 of every volume and
/// of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// What was backed up, relative to the root.
    pub paths: Vec<String>,
    /// The patterns that were left out.
    pub exclude: Vec<String>,
    /// `stats.changed`.
    pub changed: Vec<String>,
    /// `stats.shrank`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shrank: Vec<String>,
    /// `stats.unreadable`.
    pub unreadable: Vec<String>,
    /// The volumes decrypted: names, sizes, BLAKE3.
    pub volumes: Vec<Volume>,
    /// The manifest decrypted.
    pub manifest: Volume,
    /// `deleted.list` decrypted (incremental backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Volume>,
}

impl Catalog {
    /// The sealed part of a whole catalog (plaintext sizes and hashes).
    fn seal_parts(&self) -> Sealed {
        Sealed {
            paths: self.paths.clone(),
            exclude: self.exclude.clone(),
            changed: self.stats.changed.clone(),
            shrank: self.stats.shrank.clone(),
            unreadable: self.stats.unreadable.clone(),
            volumes: self.volumes.clone(),
            manifest: self.manifest.clone(),
            deleted: self.deleted.clone(),
        }
    }

    /// The whole catalog of an encrypted backup: the stored catalog with
    /// its sealed part merged in. The caller has checked the sealed part
    /// against `encryption.sealed_blake3`.
    pub fn unsealed(&self, s: Sealed) -> Catalog {
        let mut c = self.clone();
        c.paths = s.paths;
        c.exclude = s.exclude;
        c.stats.changed = s.changed;
        c.stats.shrank = s.shrank;
        c.stats.unreadable = s.unreadable;
        c.volumes = s.volumes;
        c.manifest = s.manifest;
        c.deleted = s.deleted;
        c
    }
}

/// Name lookups for owners and groups, cached.
#[derive(Debug, Default)]
struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
    passwd: Vec<(u32, String)>,
    group: Vec<(u32, String)>,
}

impl Names {
    fn load(root: &Path) -> Names {
        let read = |f: &str| -> Vec<(u32, String)> {
            std::fs::read_to_string(root.join(f))
                .or_else(|_| std::fs::read_to_string(Path::new("/").join(f)))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let mut it = l.split(':');
                    let name = it.next()?;
                    let id = it.nth(1)?.parse().ok()?;
                    Some((id, name.to_string()))
                })
                .collect()
        };
        Names { passwd: read("etc/passwd"), group: read("etc/group"), ..Names::default() }
    }

    fn user(&mut self, id: u32) -> String {
        let list = &self.passwd;
        self.users
            .entry(id)
            .or_insert_with(|| list.iter().find(|(i, _)| *i == id).map(|(_, n)| n.clone()).unwrap_or_default())
            .clone()
    }

    fn group(&mut self, id: u32) -> String {
        let list = &self.group;
        self.groups
            .entry(id)
            .or_insert_with(|| list.iter().find(|(i, _)| *i == id).map(|(_, n)| n.clone()).unwrap_or_default())
            .clone()
    }
}

/// Read all extended attributes of a path (not following symlinks).
pub fn xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = loop {
        match rustix::fs::llistxattr(p, &mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(_) => return Vec::new(),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let Ok(cname) = std::ffi::CString::new(name) else { continue };
        let mut val = vec![0u8; 256];
        loop {
            match rustix::fs::lgetxattr(p, cname.as_c_str(), &mut val) {
                Ok(len) => {
                    val.truncate(len);
                    out.push((name.to_vec(), val));
                    break;
                }
                Err(rustix::io::Errno::RANGE) => val.resize(val.len() * 8, 0),
                Err(_) => break,
            }
        }
    }
    out.sort();
    out
}

/// Options of one backup.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The tree root: archive paths are relative to it.
    pub root: PathBuf,
    /// What to back up, relative to `root` (`.` for everything on its filesystem).
    pub paths: Vec<PathBuf>,
    /// Glob patterns (archive paths) to leave out.
    pub exclude: Vec<String>,
    /// Maximum volume size in bytes.
    pub volume_size: u64,
    /// Compression of the frames.
    pub codec: crate::frames::Codec,
    /// Directories recorded without their content, by (device, inode): the
    /// backup target and lifeboat's work directories, however they are reached.
    pub exclude_dirs: Vec<(u64, u64)>,
    /// Paths of `paths` whose content is read from another directory (a
    /// snapshot of their filesystem) instead of `root.join(path)`; their
    /// entries are still named as if read below `root`.
    pub read_from: Vec<(PathBuf, PathBuf)>,
    /// A staging directory whose [`RESERVED_DIR`] subdirectory is stored as
    /// the backup's own `.lifeboat/` entries (images of foreign partitions),
    /// after the paths; its files are hashed, verified and encrypted like any.
    pub reserved: Option<PathBuf>,
}

/// The archive directory lifeboat keeps its own entries in (images of
/// foreign partitions below `.lifeboat/images`): not part of any restored tree.
pub const RESERVED_DIR: &str = ".lifeboat";

/// Whether an archive path (as the manifest writes it) is one of lifeboat's
/// own entries, which restoring a tree and comparing leave out.
pub fn is_reserved(path: &str) -> bool {
    let p = path.strip_prefix("./").unwrap_or(path);
    p == RESERVED_DIR || p.strip_prefix(RESERVED_DIR).is_some_and(|rest| rest.starts_with('/'))
}

/// A selection error: the path and why it selects nothing (or must not be used).
fn refuse(p: &Path, why: impl Into<String>) -> ArchiveError {
    ArchiveError::Source(p.to_path_buf(), std::io::Error::new(std::io::ErrorKind::InvalidInput, why.into()))
}

/// A path given to back up, as a path relative to `root`: an absolute path
/// must lie below the root; `..` is refused (it would store `../x`, which
/// restores outside the target). `.` components are dropped; the root itself is `.`.
pub fn selection_path(root: &Path, p: &Path) -> Result<PathBuf, ArchiveError> {
    use std::path::Component;
    let rel = if p.is_absolute() {
        p.strip_prefix(root).map_err(|_| {
            refuse(p, format!("is outside the root {} (give paths relative to --root, or below it)", root.display()))
        })?
    } else {
        p
    };
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(refuse(p, "contains `..`: only paths below the root can be backed up"))
            }
        }
    }
    Ok(if out.as_os_str().is_empty() { PathBuf::from(".") } else { out })
}

impl BackupOptions {
    /// Where the selected path `p` is read: its [`BackupOptions::read_from`]
    /// directory, else `root.join(p)`.
    pub fn source_of(&self, p: &Path) -> PathBuf {
        match self.read_from.iter().find(|(sel, _)| sel == p) {
            Some((_, from)) => from.clone(),
            None => self.root.join(p),
        }
    }

    /// Whether an archive path matches an exclude pattern.
    pub fn excludes(&self, arch: &[u8]) -> bool {
        self.excluded_by(arch).next().is_some()
    }

    /// The exclude patterns an archive path matches.
    fn excluded_by<'a>(&'a self, arch: &'a [u8]) -> impl Iterator<Item = &'a str> + 'a {
        let with_slash: Vec<u8> = [b"/".as_slice(), arch].concat();
        self.exclude
            .iter()
            .filter(move |g| glob_match(g.as_bytes(), arch) || glob_match(g.as_bytes(), &with_slash))
            .map(String::as_str)
    }

    /// Refuse what cannot make an honest backup, before anything is written:
    /// a volume size below [`crate::frames::MIN_VOLUME_SIZE`], no paths, a path
    /// that is absolute, has `..`, leads out of the root through a symlink,
    /// does not exist or is excluded (it would select nothing).
    pub fn check(&self) -> Result<(), ArchiveError> {
        use crate::frames::MIN_VOLUME_SIZE;
        if self.volume_size < MIN_VOLUME_SIZE {
            return Err(ArchiveError::Write(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "the volume size of {} bytes is below the minimum of {MIN_VOLUME_SIZE} bytes (128 KiB): every compressed frame must fit in a volume",
                    self.volume_size
                ),
            )));
        }
        if self.paths.is_empty() {
            return Err(refuse(&self.root, "no paths to back up"));
        }
        let real_root = std::fs::canonicalize(&self.root).map_err(|e| ArchiveError::Source(self.root.clone(), e))?;
        for p in &self.paths {
            if selection_path(&self.root, p)? != *p && p != Path::new(".") {
                return Err(refuse(p, "is not a plain path relative to the root"));
            }
            let full = self.root.join(p);
            std::fs::symlink_metadata(&full).map_err(|e| ArchiveError::Source(full.clone(), e))?;
            if let Some(parent) = full.parent().filter(|_| p != Path::new(".")) {
                let real = std::fs::canonicalize(parent).map_err(|e| ArchiveError::Source(full.clone(), e))?;
                if !real.starts_with(&real_root) {
                    return Err(refuse(
                        &full,
                        format!("leads outside the root {} through a symbolic link", self.root.display()),
                    ));
                }
            }
            let arch = p.as_os_str().as_bytes();
            let pats: Vec<&str> = self.excluded_by(arch).collect();
            if p != Path::new(".") && !pats.is_empty() {
                return Err(refuse(&full, format!("selects nothing: it is excluded by {}", pats.join(", "))));
            }
        }
        Ok(())
    }
}

/// Simple glob: `*` matches any run of characters (including `/`), `?` one character.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// Whether a file's content was read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Short {
    /// Every byte was read.
    Complete,
    /// End of file at this offset, before the size recorded in the header.
    Shrank(u64),
    /// A read failed at this offset.
    Failed(u64, String),
}

/// The manifest line of an entry written at `offset` (`blake`: its content's BLAKE3).
pub(crate) fn manifest_entry(
    e: &tar::Entry,
    kind: &Kind,
    path: &[u8],
    offset: u64,
    blake: Option<String>,
) -> ManifestEntry {
    let (kname, link, rdev) = match kind {
        Kind::File => ("file", None, None),
        Kind::Dir => ("dir", None, None),
        Kind::Symlink(t) => ("symlink", Some(escape_path(t)), None),
        Kind::Hardlink(t) => ("hardlink", Some(escape_path(t)), None),
        Kind::Char(a, b) => ("char", None, Some((*a, *b))),
        Kind::Block(a, b) => ("block", None, Some((*a, *b))),
        Kind::Fifo => ("fifo", None, None),
    };
    ManifestEntry {
        path: escape_path(path),
        kind: kname.into(),
        size: e.size,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        user: e.uname.clone(),
        group: e.gname.clone(),
        mtime_ns: i128::from(e.mtime) * 1_000_000_000 + i128::from(e.mtime_ns),
        xattrs: e.xattrs.iter().map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect(),
        xattr_blake3: e.xattrs.iter().map(|(_, v)| blake3::hash(v).to_hex().to_string()).collect(),
        link,
        rdev,
        blake3: blake,
        offset,
        sparse: e.sparse.is_some(),
        ino: None,
        ctime_ns: None,
        from: None,
    }
}

struct Walker<'a> {
    opts: &'a BackupOptions,
    progress: &'a mut dyn FnMut(u64, u64),
    reported: u64,
    out: FrameWriter,
    names: Names,
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Directories recorded: a mount point is met twice when its parent
    /// filesystem and its own are both backed up, and is recorded once.
    dirs: std::collections::HashSet<Vec<u8>>,
    manifest: ManifestOut,
    stats: Stats,
    buf: Vec<u8>,
    /// Read buffer, allocated once (not per file).
    chunk: Vec<u8>,
    /// An incremental backup's parent.
    parent: Option<&'a crate::chain::ParentState>,
    /// Which of the parent's entries the walk met (the others are deleted).
    seen: Vec<bool>,
    /// Unchanged directories on the way down: stored after all when an
    /// entry below them is (so GNU tar restores their times after writing
    /// into them), else listed as unchanged when the walk leaves them.
    pending: Vec<PendingDir>,
}

/// `manifest.jsonl` as the walk writes it: streamed to its object line by
/// line (a million entries make some 300 MB of it), hashed and counted on
/// the way.
struct ManifestOut {
    out: std::io::BufWriter<Box<dyn crate::target::ObjectWriter>>,
    hasher: blake3::Hasher,
    len: u64,
    /// The line being written, allocated once.
    line: Vec<u8>,
    /// `location/manifest.jsonl`, for messages.
    at: String,
}

impl ManifestOut {
    fn create(upload: &dyn Upload, name: &str) -> Result<ManifestOut, ArchiveError> {
        let at = format!("{}/{name}", upload.location());
        let w = upload.create(name).map_err(|e| named(&at, e))?;
        Ok(ManifestOut {
            out: std::io::BufWriter::with_capacity(1 << 20, w),
            hasher: blake3::Hasher::new(),
            len: 0,
            line: Vec::new(),
            at,
        })
    }

    fn write(&mut self, m: &ManifestEntry) -> Result<(), ArchiveError> {
        use std::io::Write;
        self.line.clear();
        serde_json::to_writer(&mut self.line, m).map_err(|e| ArchiveError::Write(std::io::Error::other(e)))?;
        self.line.push(b'\n');
        self.hasher.update(&self.line);
        self.len += self.line.len() as u64;
        self.out.write_all(&self.line).map_err(|e| named(&self.at, e))
    }

    /// Make the object durable; returns its size and BLAKE3.
    fn finish(self) -> Result<(u64, String), ArchiveError> {
        let at = self.at;
        let w = self.out.into_inner().map_err(|e| named(&at, e.into_error()))?;
        w.finish().map_err(|e| named(&at, e))?;
        Ok((self.len, self.hasher.finalize().to_hex().to_string()))
    }
}

/// An I/O error of an object, naming it (ENOSPC says where).
fn named(at: &str, e: std::io::Error) -> ArchiveError {
    ArchiveError::Write(std::io::Error::new(e.kind(), format!("{at}: {e}")))
}

/// An unchanged directory of an increment, not yet decided on.
struct PendingDir {
    entry: tar::Entry,
    line: ManifestEntry,
}

/// Whether archive path `p` is below directory `d` (`.` is above everything).
fn below(p: &[u8], d: &[u8]) -> bool {
    d == b"." || (p.len() > d.len() && p.starts_with(d) && p[d.len()] == b'/')
}

/// The status change time of a stat, in ns.
fn ctime_ns(meta: &std::fs::Metadata) -> i128 {
    i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec())
}

/// The BLAKE3 of a file's whole content (holes read as zeros), or None when it cannot be read.
fn hash_content(p: &Path, buf: &mut [u8]) -> Option<String> {
    let mut f = std::fs::File::open(p).ok()?;
    let mut h = blake3::Hasher::new();
    loop {
        match f.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(h.finalize().to_hex().to_string())
}

impl Walker<'_> {
    fn excluded(&self, arch: &[u8]) -> bool {
        self.opts.excludes(arch)
    }

    fn write_line(&mut self, m: &ManifestEntry) -> Result<(), ArchiveError> {
        self.manifest.write(m)
    }

    /// List the pending directories the walk has left (`path` is not below them) as unchanged.
    fn leave_dirs(&mut self, path: &[u8]) -> Result<(), ArchiveError> {
        while let Some(d) = self.pending.last() {
            if below(path, &d.entry.path) {
                break;
            }
            if let Some(d) = self.pending.pop() {
                self.write_line(&d.line)?;
                self.stats.unchanged += 1;
            }
        }
        Ok(())
    }

    /// Store the pending directories (every one is above the entry about to be stored).
    fn store_pending(&mut self) -> Result<(), ArchiveError> {
        for d in std::mem::take(&mut self.pending) {
            let offset = self.out.written;
            self.buf.clear();
            tar::write_header(&mut self.buf, &d.entry);
            self.out.write_all(&self.buf).map_err(ArchiveError::write)?;
            let mut m = d.line;
            (m.offset, m.from) = (offset, None);
            self.write_line(&m)?;
            self.stats.entries += 1;
        }
        Ok(())
    }

    /// Compare an entry with the parent: true when it is unchanged (and listed so, or pending).
    fn unchanged(
        &mut self,
        full: &Path,
        e: &tar::Entry,
        kind: &Kind,
        meta: &std::fs::Metadata,
    ) -> Result<bool, ArchiveError> {
        use crate::chain::Change;
        let Some(p) = self.parent else { return Ok(false) };
        let mut now = manifest_entry(e, kind, &e.path, 0, None);
        (now.ino, now.ctime_ns) = (Some(meta.ino()), Some(ctime_ns(meta)));
        let Some((i, pm)) = p.get(&now.path) else { return Ok(false) };
        let pm = pm.clone();
        let mut change = crate::chain::judge(&pm, &now, p.started_ns);
        if change != Change::Replaced {
            if let Some(s) = self.seen.get_mut(i) {
                *s = true;
            }
        }
        if change == Change::Ambiguous {
            self.stats.compared += 1;
            change = match (hash_content(full, &mut self.chunk), pm.blake3_hex()) {
                (Some(h), Some(want)) if h == want => Change::Unchanged,
                _ => Change::Changed,
            };
        }
        if change != Change::Unchanged {
            return Ok(false);
        }
        (now.offset, now.blake3, now.sparse) = (pm.offset, pm.blake3_hex(), pm.sparse);
        now.from = Some(p.holder(&pm).to_string());
        if *kind == Kind::Dir {
            self.pending.push(PendingDir { entry: e.clone(), line: now });
        } else {
            self.write_line(&now)?;
            self.stats.unchanged += 1;
        }
        Ok(true)
    }

    fn walk(&mut self, full: &Path, arch: &[u8], dev: u64) -> Result<(), ArchiveError> {
        if !arch.is_empty() && self.excluded(arch) {
            return Ok(());
        }
        // A mount point whose filesystem is read from a snapshot: that walk
        // records it (with its own root's metadata), not this one.
        let here = if arch.is_empty() { Path::new(".") } else { Path::new(std::ffi::OsStr::from_bytes(arch)) };
        if self.opts.read_from.iter().any(|(sel, from)| sel == here && from != full) {
            return Ok(());
        }
        let meta = match std::fs::symlink_metadata(full) {
            Ok(m) => m,
            Err(e) => {
                self.stats.unreadable.push(format!("{}: {e}", full.display()));
                return Ok(());
            }
        };
        self.entry(full, arch, &meta)?;
        // The target and work directories: recorded, their content is not.
        let skip = meta.is_dir() && self.opts.exclude_dirs.contains(&(meta.dev(), meta.ino()));
        if meta.is_dir() && meta.dev() == dev && !skip {
            let mut children: Vec<_> = match std::fs::read_dir(full) {
                Ok(rd) => rd.flatten().map(|e| e.file_name()).collect(),
                Err(e) => {
                    self.stats.unreadable.push(format!("{}: {e}", full.display()));
                    return Ok(());
                }
            };
            children.sort();
            for c in children {
                let mut a = arch.to_vec();
                if !a.is_empty() {
                    a.push(b'/');
                }
                a.extend_from_slice(c.as_bytes());
                self.walk(&full.join(&c), &a, dev)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, full: &Path, arch: &[u8], meta: &std::fs::Metadata) -> Result<(), ArchiveError> {
        let ft = meta.file_type();
        if ft.is_socket() {
            self.stats.sockets_skipped += 1;
            return Ok(());
        }
        let path = if arch.is_empty() { b".".to_vec() } else { arch.to_vec() };
        if ft.is_dir() && !self.dirs.insert(path.clone()) {
            return Ok(());
        }
        let rdev = meta.rdev();
        let (ma, mi) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        let mut kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(std::fs::read_link(full).map(|t| t.as_os_str().as_bytes().to_vec()).unwrap_or_default())
        } else if ft.is_char_device() {
            Kind::Char(ma, mi)
        } else if ft.is_block_device() {
            Kind::Block(ma, mi)
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            Kind::File
        };
        if !ft.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            match self.links.get(&key) {
                Some(first) => kind = Kind::Hardlink(first.clone()),
                None => {
                    self.links.insert(key, path.clone());
                }
            }
        }
        let mut e = tar::Entry {
            path: path.clone(),
            kind: kind.clone(),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            uname: self.names.user(meta.uid()),
            gname: self.names.group(meta.gid()),
            size: if kind == Kind::File { meta.len() } else { 0 },
            mtime: meta.mtime(),
            mtime_ns: meta.mtime_nsec() as u32,
            xattrs: if matches!(kind, Kind::Hardlink(_)) { Vec::new() } else { xattrs(full) },
            sparse: None,
        };
        if self.parent.is_some() {
            self.leave_dirs(&path)?;
            if self.unchanged(full, &e, &kind, meta)? {
                return Ok(());
            }
            self.store_pending()?;
        }
        let offset = self.out.written;
        let mut blake = None;
        // Open a file before writing its header: an unreadable file is skipped whole.
        let file = if kind == Kind::File {
            match std::fs::File::open(full) {
                Ok(f) => Some(f),
                Err(err) => {
                    self.stats.unreadable.push(format!("{}: {err}", full.display()));
                    return Ok(());
                }
            }
        } else {
            None
        };
        if let Some(f) = &file {
            // Holes stay holes: a file with fewer blocks than its size is stored sparse.
            if e.size > 0 && meta.blocks() * 512 < e.size {
                e.sparse = data_segments(f, e.size);
            }
        }
        self.buf.clear();
        tar::write_header(&mut self.buf, &e);
        self.out.write_all(&self.buf).map_err(ArchiveError::write)?;
        if let Some(mut f) = file {
            let mut h = blake3::Hasher::new();
            let segs = e.sparse.clone().unwrap_or_else(|| vec![(0, e.size)]);
            let (stored, short) = self.file_data(&mut f, &segs, e.sparse.is_some(), e.size, &mut h)?;
            let grew = f.metadata().map(|m| m.len() != e.size || m.mtime() != e.mtime).unwrap_or(false);
            match &short {
                Short::Complete => {}
                Short::Shrank(at) => self.stats.shrank.push(format!(
                    "{}: shrank from {} to {at} bytes while being read (the rest is stored as zeros)",
                    escape_path(&path),
                    e.size
                )),
                Short::Failed(at, err) => self
                    .stats
                    .unreadable
                    .push(format!("{}: read error at byte {at}: {err} (the rest is stored as zeros)", full.display())),
            }
            if short != Short::Complete || grew {
                self.stats.changed.push(escape_path(&path));
            }
            self.buf.clear();
            tar::pad(&mut self.buf, stored);
            self.out.write_all(&self.buf).map_err(ArchiveError::write)?;
            self.stats.files += 1;
            self.stats.bytes_in += stored;
            blake = Some(h.finalize().to_hex().to_string());
        }
        self.stats.entries += 1;
        if self.stats.bytes_in - self.reported >= 8 << 20 || self.stats.entries.is_multiple_of(1000) {
            self.reported = self.stats.bytes_in;
            (self.progress)(self.stats.bytes_in, self.stats.files);
        }
        self.record(&e, &kind, &path, offset, blake, meta)
    }

    /// Write a file's data: its segments (one, `(0, size)`, for an ordinary
    /// file), after the sparse map when `sparse`, hashing holes as zeros.
    /// Returns the bytes stored and whether all of them were read (when the
    /// file shrank or a read failed, the missing bytes are stored as zeros, so
    /// the tar stream stays whole).
    fn file_data(
        &mut self,
        f: &mut std::fs::File,
        segs: &[(u64, u64)],
        sparse: bool,
        size: u64,
        h: &mut blake3::Hasher,
    ) -> Result<(u64, Short), ArchiveError> {
        use std::io::{Seek, SeekFrom};
        let mut stored = 0;
        if sparse {
            let map = tar::sparse_map(segs);
            self.out.write_all(&map).map_err(ArchiveError::write)?;
            stored += map.len() as u64;
        }
        let chunk = &mut self.chunk;
        let mut pos = 0u64;
        let mut short = Short::Complete;
        for (off, len) in segs {
            hash_zeros(h, off - pos);
            if sparse && short == Short::Complete {
                if let Err(e) = f.seek(SeekFrom::Start(*off)) {
                    short = Short::Failed(*off, e.to_string());
                }
            }
            let mut left = *len;
            while left > 0 {
                let want = chunk.len().min(left as usize);
                let got = if short == Short::Complete { f.read(&mut chunk[..want]) } else { Ok(0) };
                let n = match got {
                    Ok(n) if n > 0 => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => {
                        if short == Short::Complete {
                            let at = off + len - left;
                            short = match other {
                                Err(e) => Short::Failed(at, e.to_string()),
                                Ok(_) => Short::Shrank(at),
                            };
                        }
                        chunk[..want].fill(0);
                        want
                    }
                };
                h.update(&chunk[..n]);
                self.out.write_all(&chunk[..n]).map_err(ArchiveError::write)?;
                left -= n as u64;
            }
            stored += len;
            pos = off + len;
        }
        hash_zeros(h, size.saturating_sub(pos));
        Ok((stored, short))
    }

    fn record(
        &mut self,
        e: &tar::Entry,
        kind: &Kind,
        path: &[u8],
        offset: u64,
        blake: Option<String>,
        meta: &std::fs::Metadata,
    ) -> Result<(), ArchiveError> {
        let mut m = manifest_entry(e, kind, path, offset, blake);
        (m.ino, m.ctime_ns) = (Some(meta.ino()), Some(ctime_ns(meta)));
        self.write_line(&m)
    }
}

/// Write a backup of the options' trees into `dir` (which must exist and be
/// empty), with no staging: the caller owns the directory. `progress(bytes,
/// files)` is called as content is read. Returns the catalog, also written
/// as `backup.json`.
pub fn write_backup(
    dir: &Path,
    opts: &BackupOptions,
    host: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Catalog, ArchiveError> {
    let up: Arc<dyn Upload> = Arc::new(crate::target::dir::InPlace::new(dir));
    write_signed_backup(up, opts, host, None, progress).map(|(c, _)| c)
}

/// Write a backup of the options' trees to an upload of a target and
/// commit it: the volumes and the manifest first, then the catalog's
/// signature by `key` (`backup.json.minisig`), and the catalog last, so a
/// visible catalog always has its signature beside it. When anything
/// fails the upload is aborted: nothing that looks like a backup is left.
/// Returns the catalog and the published backup's objects.
pub fn write_signed_backup(
    upload: Arc<dyn Upload>,
    opts: &BackupOptions,
    host: &str,
    key: Option<&crate::sign::SigningKey>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Catalog, Arc<dyn Objects>), ArchiveError> {
    let r = write_and_commit(&upload, opts, host, key, None, None, progress);
    if r.is_err() {
        upload.abort();
    }
    r
}

/// A backup, full or incremental, encrypted or not: [`write_signed_backup`]
/// or [`write_encrypted_backup`] when `parent` is None; else an increment
/// against `parent` (see [`crate::chain`]): only what changed since is read
/// and stored, the manifest lists the whole state, `deleted.list` what is gone.
pub fn write_backup_against(
    upload: Arc<dyn Upload>,
    opts: &BackupOptions,
    host: &str,
    key: Option<&crate::sign::SigningKey>,
    recipients: Option<&crate::target::Recipients>,
    parent: Option<&crate::chain::ParentState>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Catalog, Arc<dyn Objects>), ArchiveError> {
    let r = match recipients {
        None => write_and_commit(&upload, opts, host, key, None, parent, progress),
        Some(to) => match crate::target::EncryptingUpload::new(Arc::clone(&upload), to) {
            Ok(enc) => {
                let enc = Arc::new(enc);
                let wrapped: Arc<dyn Upload> = Arc::clone(&enc) as Arc<dyn Upload>;
                write_and_commit(&wrapped, opts, host, key, Some(&enc), parent, progress)
            }
            Err(e) => Err(e),
        },
    };
    if r.is_err() {
        upload.abort();
    }
    r
}

/// [`write_signed_backup`], encrypted to `recipients`: every volume, the
/// manifest and the sealed catalog go to `upload` as age files
/// ([`crate::target::encrypt`]); the catalog, stored in clear, names no
/// file (see [`Encryption`]) and is what the signature covers. Returns the
/// whole catalog (as a reader with the identity sees it) and the published
/// backup's objects as stored (wrap them in
/// [`crate::target::DecryptingObjects`] to read).
pub fn write_encrypted_backup(
    upload: Arc<dyn Upload>,
    opts: &BackupOptions,
    host: &str,
    key: Option<&crate::sign::SigningKey>,
    recipients: &crate::target::Recipients,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Catalog, Arc<dyn Objects>), ArchiveError> {
    let enc = match crate::target::EncryptingUpload::new(Arc::clone(&upload), recipients) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            upload.abort();
            return Err(e);
        }
    };
    let wrapped: Arc<dyn Upload> = Arc::clone(&enc) as Arc<dyn Upload>;
    let r = write_and_commit(&wrapped, opts, host, key, Some(&enc), None, progress);
    if r.is_err() {
        upload.abort();
    }
    r
}

/// The stored size and hash of an object an encrypting upload finished.
fn stored_of(enc: &crate::target::EncryptingUpload, name: &str) -> Result<Volume, ArchiveError> {
    enc.stored(name).ok_or_else(|| {
        ArchiveError::Target(
            enc.location(),
            format!("{name} was not stored encrypted (lifeboat bug: refusing to publish)"),
        )
    })
}

fn write_and_commit(
    upload: &Arc<dyn Upload>,
    opts: &BackupOptions,
    host: &str,
    key: Option<&crate::sign::SigningKey>,
    enc: Option<&Arc<crate::target::EncryptingUpload>>,
    parent: Option<&crate::chain::ParentState>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Catalog, Arc<dyn Objects>), ArchiveError> {
    use std::io::Write;
    opts.check()?;
    let started = std::time::SystemTime::now();
    let started_ns = started.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i128).ok();
    let manifest_name = "manifest.jsonl";
    let mut w = Walker {
        opts,
        progress,
        reported: 0,
        out: FrameWriter::new(Arc::clone(upload), opts.volume_size, opts.codec),
        names: Names::load(&opts.root),
        links: HashMap::new(),
        dirs: std::collections::HashSet::new(),
        manifest: ManifestOut::create(upload.as_ref(), manifest_name)?,
        stats: Stats::default(),
        buf: Vec::with_capacity(4096),
        chunk: vec![0u8; 1 << 20],
        parent,
        seen: vec![false; parent.map(|p| p.len()).unwrap_or(0)],
        pending: Vec::new(),
    };
    for p in &opts.paths {
        let full = opts.source_of(p);
        let dev = std::fs::symlink_metadata(&full).map_err(|e| ArchiveError::Source(full.clone(), e))?.dev();
        let arch: Vec<u8> = if p == Path::new(".") { Vec::new() } else { p.as_os_str().as_bytes().to_vec() };
        let arch = arch.strip_prefix(b"/").map(<[u8]>::to_vec).unwrap_or(arch);
        w.walk(&full, &arch, dev)?;
    }
    if let Some(dir) = &opts.reserved {
        let full = dir.join(RESERVED_DIR);
        let dev = std::fs::symlink_metadata(&full).map_err(|e| ArchiveError::Source(full.clone(), e))?.dev();
        w.walk(&full, RESERVED_DIR.as_bytes(), dev)?;
    }
    // Directories still pending are unchanged; what the parent had and the walk did not meet is deleted.
    for d in std::mem::take(&mut w.pending) {
        w.write_line(&d.line)?;
        w.stats.unchanged += 1;
    }
    let deleted = match parent {
        None => None,
        Some(p) => {
            let (list, count) = p.deleted(&w.seen).map_err(|e| ArchiveError::Target(p.name.clone(), e))?;
            w.stats.deleted = count;
            let sum = put_object(upload.as_ref(), crate::chain::DELETED_LIST, &list)?;
            Some(Volume { name: crate::chain::DELETED_LIST.into(), size: list.len() as u64, blake3: sum })
        }
    };
    let mut end = Vec::new();
    tar::end(&mut end);
    w.out.write_all(&end).map_err(ArchiveError::write)?;
    let (volumes, frames, compressed) = w.out.finish().map_err(ArchiveError::write)?;
    let manifest = w.manifest;
    let mut stats = w.stats;
    stats.bytes_out = compressed;
    if stats.entries == 0 && stats.unchanged == 0 {
        let paths: Vec<String> = opts.paths.iter().map(|p| opts.root.join(p).display().to_string()).collect();
        return Err(refuse(
            Path::new(&paths.join(" ")),
            "selects nothing to back up (sockets only, or everything excluded)",
        ));
    }
    let (manifest_size, mf) = manifest.finish()?;
    let catalog = Catalog {
        format: "lifeboat-archive".into(),
        version: FORMAT_VERSION,
        host: host.to_string(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        compression: opts.codec.name().into(),
        volume_size: opts.volume_size,
        volumes,
        frames,
        manifest: Volume { name: manifest_name.into(), size: manifest_size, blake3: mf },
        paths: opts.paths.iter().map(|p| p.display().to_string()).collect(),
        exclude: opts.exclude.clone(),
        stats,
        key_id: key.map(|k| k.id().to_string()),
        encryption: None,
        parent: parent.map(|p| p.parent.clone()),
        deleted,
        started_ns,
    };
    let stored = match enc {
        None => catalog.clone(),
        Some(enc) => {
            let sealed = to_json(&catalog.seal_parts())?;
            let sealed_blake3 = put_object(upload.as_ref(), crate::target::encrypt::SEALED_CATALOG, &sealed)?;
            let mut s = catalog.clone();
            s.version = ENCRYPTED_FORMAT_VERSION;
            s.paths.clear();
            s.exclude.clear();
            s.stats.changed.clear();
            s.stats.shrank.clear();
            s.stats.unreadable.clear();
            s.volumes = catalog.volumes.iter().map(|v| stored_of(enc, &v.name)).collect::<Result<_, _>>()?;
            s.manifest = stored_of(enc, manifest_name)?;
            if s.deleted.is_some() {
                s.deleted = Some(stored_of(enc, crate::chain::DELETED_LIST)?);
            }
            s.encryption = Some(Encryption {
                scheme: crate::target::encrypt::SCHEME.into(),
                recipients: enc.recipients(),
                sealed: stored_of(enc, crate::target::encrypt::SEALED_CATALOG)?,
                sealed_blake3,
                passphrase: enc.stored(crate::target::encrypt::PASSPHRASE_IDENTITY),
            });
            s
        }
    };
    let catalog = Catalog { version: stored.version, encryption: stored.encryption.clone(), ..catalog };
    let mut text = to_json(&stored)?;
    text.write_all(b"\n").map_err(ArchiveError::write)?;
    if let Some(k) = key {
        let comment = format!("lifeboat catalog of {host}, created {}", catalog.created);
        put_object(upload.as_ref(), crate::sign::SIGNATURE_FILE, &k.sign(&text, &comment)?)?;
    }
    let objects = upload.commit(&text)?;
    Ok((catalog, objects))
}

/// Pretty JSON of a catalog or its sealed part.
fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, ArchiveError> {
    serde_json::to_vec_pretty(v).map_err(|e| ArchiveError::Write(std::io::Error::other(e)))
}

/// Write a whole object of an upload durably; returns its BLAKE3 (ENOSPC names the object).
fn put_object(upload: &dyn Upload, name: &str, data: &[u8]) -> Result<String, ArchiveError> {
    let named = |e: std::io::Error| {
        ArchiveError::Write(std::io::Error::new(e.kind(), format!("{}/{name}: {e}", upload.location())))
    };
    let mut w = upload.create(name).map_err(named)?;
    w.write_all(data).map_err(named)?;
    w.finish().map_err(named)?;
    Ok(blake3::hash(data).to_hex().to_string())
}
