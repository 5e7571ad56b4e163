//! Incremental backups: what changed since the parent backup, and the chain
//! of backups (a full one, then increments) that a restore resolves.
//!
//! Every increment's manifest lists the whole state of the tree at its
//! time: the entries it stores (no `from`), and the unchanged ones with
//! `from` naming the backup of the chain whose volumes hold them, at their
//! offset there. So the newest manifest alone says what to restore, and
//! each file's newest copy is read once, from the one backup that holds it.
//! `deleted.list` names what the parent held and this backup does not (for
//! restoring a chain with GNU tar: docs/archive-format.md).
//!
//! A chain comes from a target that someone else may control: a parent that
//! is missing, that is another backup than the one named (its manifest's
//! BLAKE3 differs), a loop, a name that is not a plain name, a chain longer
//! than [`MAX_CHAIN`] or an entry in a backup outside the chain are errors
//! naming the backups, never a hang or a panic.

use crate::backup::{Catalog, ManifestEntry, Parent};
use crate::read::Backup;
use crate::target::Objects;
use std::collections::HashSet;
use std::sync::Arc;

/// The longest chain read (a full backup and 999 increments).
pub const MAX_CHAIN: usize = 1000;

/// The name of an increment's list of deleted paths.
pub const DELETED_LIST: &str = "deleted.list";

/// Largest `deleted.list` read.
pub const MAX_DELETED_BYTES: u64 = 4 << 30;

/// Why a chain cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A parent cannot be opened (missing, unsigned, damaged).
    #[error("backup {child} is incremental, and its parent {parent} cannot be used: {why} (restore an older full backup with --from, or make a full backup: lifeboat backup --full)")]
    Missing {
        /// The increment.
        child: String,
        /// The parent it names.
        parent: String,
        /// What is wrong with it.
        why: String,
    },
    /// The parent found is another backup than the one the increment was made against.
    #[error("backup {child} was made against a parent {parent} whose manifest has BLAKE3 {want}, but the backup of that name has {got}: the parent was replaced or damaged; the chain is not restored")]
    Swapped {
        /// The increment.
        child: String,
        /// The parent it names.
        parent: String,
        /// The manifest checksum the increment recorded.
        want: String,
        /// The manifest checksum found.
        got: String,
    },
    /// A parent name that is not a plain, older backup name of the same host.
    #[error("backup {child} names {parent:?} as its parent, which {why}: the catalog is damaged or was crafted")]
    BadParent {
        /// The increment.
        child: String,
        /// The parent it names.
        parent: String,
        /// What is wrong with the name.
        why: String,
    },
    /// The chain comes back to a backup already in it.
    #[error("the chain of backup {0} comes back to {1}: a loop (damaged or crafted catalogs); nothing is restored")]
    Loop(String, String),
    /// Longer than [`MAX_CHAIN`].
    #[error("the chain of backup {0} is longer than {MAX_CHAIN} backups: refused (make a full backup: lifeboat backup --full)")]
    TooLong(String),
}

/// A parent as the chain resolver opens it: its objects (decrypting) and its whole catalog, signature checked.
pub type Opened = (Arc<dyn Objects>, Catalog);

/// Whether a backup name is a plain name (no path, no `..`).
fn plain_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 255 && !n.contains('/') && !n.contains('\0') && n != "." && n != ".."
}

/// Resolve the chain of `head` (named `head_name` on its target):
/// `open(name)` opens a backup beside it (checking its signature). The
/// ancestors are attached to the returned backup, which every restore then
/// reads through. A full backup is returned as it is.
pub fn resolve(
    mut head: Backup,
    head_name: &str,
    open: &mut dyn FnMut(&str) -> Result<Opened, String>,
) -> Result<Backup, ChainError> {
    let mut seen: HashSet<String> = HashSet::from([head_name.to_string()]);
    let mut ancestors = Vec::new();
    let mut child = head_name.to_string();
    let mut next: Option<Parent> = head.catalog.parent.clone();
    let host = head.catalog.host.clone();
    while let Some(p) = next {
        if !plain_name(&p.name) {
            return Err(ChainError::BadParent { child, parent: p.name, why: "is not a plain backup name".into() });
        }
        if p.name.as_str() >= child.as_str() {
            return Err(ChainError::BadParent { child, parent: p.name, why: "is not older than it".into() });
        }
        if !seen.insert(p.name.clone()) {
            return Err(ChainError::Loop(head_name.into(), p.name));
        }
        if ancestors.len() + 1 >= MAX_CHAIN {
            return Err(ChainError::TooLong(head_name.into()));
        }
        let (objects, catalog) =
            open(&p.name).map_err(|why| ChainError::Missing { child: child.clone(), parent: p.name.clone(), why })?;
        if catalog.manifest.blake3 != p.manifest_blake3 {
            return Err(ChainError::Swapped {
                child,
                parent: p.name,
                want: p.manifest_blake3,
                got: catalog.manifest.blake3,
            });
        }
        if catalog.host != host {
            return Err(ChainError::BadParent {
                child,
                parent: p.name,
                why: format!("is a backup of {}, not of {host}", catalog.host),
            });
        }
        next = catalog.parent.clone();
        child = p.name.clone();
        ancestors.push((p.name, objects, catalog));
    }
    head.set_ancestors(ancestors);
    Ok(head)
}

/// The last component of a backup's location: its name on the target.
pub fn name_of(location: &str) -> String {
    location.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string()
}

/// What a stat of an entry now says, compared with its parent's manifest line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Same inode, size, times, owner, mode, link, device and xattrs: not read, not stored.
    Unchanged,
    /// Something differs: stored again.
    Changed,
    /// The same as far as metadata says, but metadata cannot be trusted
    /// (the parent has no inode/ctime, or the file changed within the
    /// timestamp granularity of the parent's walk): its content is hashed
    /// and compared with the parent's BLAKE3.
    Ambiguous,
    /// Another type than in the parent: the parent's path is deleted, then this one stored.
    Replaced,
}

/// How close (in ns) to the parent's walk start a ctime makes an entry ambiguous.
pub const RACY_NS: i128 = 1_000_000_000;

/// [`Prior::ctime_ns`] when the parent's line has none.
const NO_TIME: i64 = i64::MIN;

/// The kinds of entries, as one byte ([`Prior::kind`]).
const KINDS: [&str; 7] = ["file", "dir", "symlink", "hardlink", "char", "block", "fifo"];

/// What the parent's manifest recorded of one entry: what [`judge`]
/// compares, and what an unchanged entry's line takes from it (136 bytes,
/// not the whole line: a parent of a million entries fits in some 150 MiB
/// with its index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prior {
    pub(crate) size: u64,
    /// Times in ns as i64 (to the year 2262; 16 bytes an entry less than i128).
    pub(crate) mtime_ns: i64,
    /// [`NO_TIME`]: none recorded (an older backup).
    pub(crate) ctime_ns: i64,
    /// A time in the parent's line that i64 cannot hold (no real system
    /// has one): the entry is judged changed.
    pub(crate) odd_time: bool,
    pub(crate) ino: Option<u64>,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) kind: u8,
    pub(crate) sparse: bool,
    pub(crate) offset: u64,
    pub(crate) blake3: Option<[u8; 32]>,
    /// The backup that holds the entry: an index into [`ParentState`]'s names (0: the parent itself).
    pub(crate) from: u32,
    /// BLAKE3 of the link target, device numbers and xattr names.
    pub(crate) rest: [u8; 16],
    /// BLAKE3 of the xattr values' checksums, when the parent has them (format 2).
    pub(crate) xattr_values: Option<[u8; 16]>,
}

fn digest16(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let mut k = [0u8; 16];
    k.copy_from_slice(&h.finalize().as_bytes()[..16]);
    k
}

/// The link target, device numbers and xattr names of a line, as one digest.
fn rest_of(m: &ManifestEntry) -> [u8; 16] {
    let rdev = m.rdev.map(|(a, b)| format!("{a}:{b}")).unwrap_or_default();
    let names = m.xattrs.join("\0");
    digest16(&[m.link.as_deref().unwrap_or("\0none").as_bytes(), rdev.as_bytes(), names.as_bytes()])
}

fn xattr_values_of(m: &ManifestEntry) -> Option<[u8; 16]> {
    (!m.xattr_blake3.is_empty()).then(|| digest16(&[m.xattr_blake3.join(",").as_bytes()]))
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = (b[2 * i] as char).to_digit(16)?;
        let lo = (b[2 * i + 1] as char).to_digit(16)?;
        *o = (hi << 4 | lo) as u8;
    }
    Some(out)
}

fn to_hex(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Prior {
    /// The record of a parent's line; `from` indexes the names of the chain's backups.
    pub fn of(m: &ManifestEntry, from: u32) -> Result<Prior, String> {
        let kind = KINDS.iter().position(|k| *k == m.kind).ok_or_else(|| format!("{}: type {:?}", m.path, m.kind))?;
        let blake3 = match &m.blake3 {
            None => None,
            Some(h) => Some(hex32(h).ok_or_else(|| format!("{}: blake3 {h:?} is not a checksum", m.path))?),
        };
        let mtime = i64::try_from(m.mtime_ns).ok();
        let ctime = m.ctime_ns.map(|c| i64::try_from(c).ok().filter(|c| *c != NO_TIME));
        Ok(Prior {
            size: m.size,
            mtime_ns: mtime.unwrap_or(0),
            ctime_ns: ctime.flatten().unwrap_or(NO_TIME),
            odd_time: mtime.is_none() || ctime.is_some_and(|c| c.is_none()),
            ino: m.ino,
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            kind: kind as u8,
            sparse: m.sparse,
            offset: m.offset,
            blake3,
            from,
            rest: rest_of(m),
            xattr_values: xattr_values_of(m),
        })
    }

    /// Its content's BLAKE3, as manifests write it.
    pub fn blake3_hex(&self) -> Option<String> {
        self.blake3.as_ref().map(to_hex)
    }
}

/// Compare an entry as it is now (`now`, a manifest line made from the
/// walk's stat: ino and ctime set, no checksum) with the parent's record.
/// `parent_started_ns` is when the parent's walk began.
pub fn judge(parent: &Prior, now: &ManifestEntry, parent_started_ns: Option<i128>) -> Change {
    fn class(k: &str) -> &str {
        if k == "hardlink" {
            "file"
        } else {
            k
        }
    }
    let pkind = KINDS.get(parent.kind as usize).copied().unwrap_or("?");
    if class(pkind) != class(&now.kind) {
        return Change::Replaced;
    }
    let parent_ctime = (parent.ctime_ns != NO_TIME).then_some(i128::from(parent.ctime_ns));
    let same = pkind == now.kind
        && !parent.odd_time
        && parent.size == now.size
        && i128::from(parent.mtime_ns) == now.mtime_ns
        && parent.mode == now.mode
        && (parent.uid, parent.gid) == (now.uid, now.gid)
        && parent.rest == rest_of(now)
        && parent.xattr_values.is_none_or(|v| Some(v) == xattr_values_of(now))
        && parent.ino.is_none_or(|i| Some(i) == now.ino)
        && parent_ctime.is_none_or(|c| Some(c) == now.ctime_ns);
    if !same {
        return Change::Changed;
    }
    if now.kind != "file" {
        return Change::Unchanged;
    }
    let racy = match (parent_ctime, parent_started_ns) {
        (Some(c), Some(start)) => c.max(i128::from(parent.mtime_ns)) >= start - RACY_NS,
        _ => true,
    };
    if parent.ino.is_none() || racy {
        Change::Ambiguous
    } else {
        Change::Unchanged
    }
}

/// The parent of an increment being made: its manifest read once,
/// streamed, into an index of compact records by a 128-bit hash of each
/// path ([`Prior`]); read a second time, streamed, for the paths that are
/// gone ([`ParentState::deleted`]).
#[derive(Debug)]
pub struct ParentState {
    /// The parent's name on the target.
    pub name: String,
    /// What the increment's catalog records of it.
    pub parent: Parent,
    /// When the parent's walk began.
    pub started_ns: Option<i128>,
    objects: Arc<dyn Objects>,
    manifest: crate::frames::Volume,
    /// The backups entries are in: the parent, then the `from` names of its manifest.
    names: Vec<String>,
    priors: Vec<Prior>,
    /// The 128-bit key of each path with its entry's position, sorted by
    /// key (20 bytes an entry, a hash map takes twice that).
    index: Vec<([u8; 16], u32)>,
}

/// The 128-bit key of a path in the parent's index.
pub(crate) fn key(path: &str) -> [u8; 16] {
    digest16(&[path.as_bytes()])
}

/// Every line of a backup's manifest, streamed, checked against the size
/// and BLAKE3 its catalog gives (an error naming it when they differ: then
/// whatever `line` saw is to be thrown away).
pub(crate) fn each_line(
    objects: &dyn Objects,
    manifest: &crate::frames::Volume,
    line: &mut dyn FnMut(usize, ManifestEntry) -> Result<(), String>,
) -> Result<(), String> {
    use std::io::BufRead;
    let at = format!("{}/{}", objects.location(), manifest.name);
    let o = objects.open_volume(&manifest.name, manifest.size).map_err(|e| format!("{at}: {e}"))?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, crate::target::ObjectReader::new(o));
    let mut h = blake3::Hasher::new();
    let (mut buf, mut n, mut total) = (Vec::new(), 0usize, 0u64);
    loop {
        buf.clear();
        let got = r.read_until(b'\n', &mut buf).map_err(|e| format!("{at}: {e}"))?;
        if got == 0 {
            break;
        }
        total += got as u64;
        if total > manifest.size {
            return Err(format!("{at} is longer than its catalog says"));
        }
        h.update(&buf);
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if text.is_empty() {
            continue;
        }
        let e: ManifestEntry = serde_json::from_slice(text).map_err(|e| format!("{at} line {}: {e}", n + 1))?;
        line(n, e)?;
        n += 1;
    }
    if total != manifest.size || h.finalize().to_hex().as_str() != manifest.blake3 {
        return Err(format!("{at} does not match its size and checksum in backup.json: the manifest is damaged"));
    }
    Ok(())
}

impl ParentState {
    /// The parent named `name` on its target (its objects, decrypting, and
    /// its whole catalog, signature checked) for a new increment: its
    /// manifest, the whole state at its time (an increment's lists
    /// everything), read streaming; errors name what makes it unusable.
    pub fn read(name: &str, objects: Arc<dyn Objects>, catalog: &Catalog) -> Result<ParentState, String> {
        let depth = catalog.parent.as_ref().map(|p| p.depth).unwrap_or(0).saturating_add(1);
        if depth as usize >= MAX_CHAIN {
            return Err(format!("its chain has {depth} backups already (at most {MAX_CHAIN})"));
        }
        let full = catalog.parent.as_ref().map(|p| p.full.clone()).unwrap_or_else(|| name.to_string());
        let parent = Parent {
            name: name.into(),
            created: catalog.created.clone(),
            manifest_blake3: catalog.manifest.blake3.clone(),
            full,
            depth,
        };
        let mut names = vec![name.to_string()];
        let mut priors = Vec::new();
        let mut index = Vec::new();
        each_line(objects.as_ref(), &catalog.manifest, &mut |n, e| {
            let from = match &e.from {
                None => 0,
                Some(f) => match names.iter().position(|x| x == f) {
                    Some(i) => i,
                    None if names.len() < MAX_CHAIN => {
                        names.push(f.clone());
                        names.len() - 1
                    }
                    None => return Err(format!("its manifest names more than {MAX_CHAIN} backups")),
                },
            };
            let n = u32::try_from(n).map_err(|_| "its manifest has too many entries".to_string())?;
            index.push((key(&e.path), n));
            priors.push(Prior::of(&e, from as u32)?);
            Ok(())
        })?;
        priors.shrink_to_fit();
        index.sort_unstable();
        index.shrink_to_fit();
        if let Some(w) = index.windows(2).find(|w| w[0].0 == w[1].0) {
            // Named from another read: only the keys are held.
            let (dup, mut path) = (w[0].0, String::new());
            let _ = each_line(objects.as_ref(), &catalog.manifest, &mut |_, e| {
                if path.is_empty() && key(&e.path) == dup {
                    path = e.path;
                }
                Ok(())
            });
            return Err(format!("its manifest lists {path} twice"));
        }
        Ok(ParentState {
            name: name.into(),
            parent,
            started_ns: catalog.started_ns,
            objects,
            manifest: catalog.manifest.clone(),
            names,
            priors,
            index,
        })
    }

    /// The parent's record of a path, with its index. (A 128-bit hash
    /// collision between two paths would go unnoticed; the record must still
    /// match the stat in every field for the entry to count as unchanged.)
    pub fn get(&self, path: &str) -> Option<(usize, &Prior)> {
        let k = key(path);
        let at = self.index.binary_search_by(|(x, _)| x.cmp(&k)).ok()?;
        let i = self.index.get(at)?.1 as usize;
        self.priors.get(i).map(|p| (i, p))
    }

    /// The name of the backup that holds an entry the parent lists.
    pub fn holder(&self, p: &Prior) -> &str {
        self.names.get(p.from as usize).map(String::as_str).unwrap_or(&self.name)
    }

    /// How many entries the parent has.
    pub fn len(&self) -> usize {
        self.priors.len()
    }

    /// Whether the parent has no entries.
    pub fn is_empty(&self) -> bool {
        self.priors.is_empty()
    }

    /// `deleted.list`: the paths of the parent's entries that `seen` (by
    /// index) does not mark, each ended by NUL; the manifest streamed again.
    pub fn deleted(&self, seen: &[bool]) -> Result<(Vec<u8>, u64), String> {
        let (mut list, mut count) = (Vec::new(), 0u64);
        each_line(self.objects.as_ref(), &self.manifest, &mut |n, e| {
            if !seen.get(n).copied().unwrap_or(false) {
                list.extend_from_slice(&crate::read::unescape_path(&e.path));
                list.push(0);
                count += 1;
            }
            Ok(())
        })?;
        Ok((list, count))
    }
}

/// The paths of a `deleted.list` (each ended by NUL), as raw bytes.
pub fn parse_deleted(data: &[u8]) -> Vec<Vec<u8>> {
    data.split(|b| *b == 0).filter(|p| !p.is_empty()).map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn entry(path: &str, kind: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            kind: kind.into(),
            size: 10,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime_ns: 1_000_000_000_000,
            xattrs: Vec::new(),
            xattr_blake3: Vec::new(),
            link: None,
            rdev: None,
            blake3: None,
            offset: 0,
            sparse: false,
            ino: Some(7),
            ctime_ns: Some(1_000_000_000_000),
            from: None,
        }
    }

    const LONG_AFTER: Option<i128> = Some(2_000_000_000_000);

    fn judge(p: &ManifestEntry, now: &ManifestEntry, started: Option<i128>) -> Change {
        super::judge(&Prior::of(p, 0).expect("record"), now, started)
    }

    #[test]
    fn the_same_stat_is_unchanged_and_any_field_that_differs_is_a_change() {
        let p = entry("a", "file");
        assert_eq!(judge(&p, &entry("a", "file"), LONG_AFTER), Change::Unchanged);
        type Edit = Box<dyn Fn(&mut ManifestEntry)>;
        let edits: Vec<Edit> = vec![
            Box::new(|e| e.size = 11),
            Box::new(|e| e.mtime_ns += 1),
            Box::new(|e| e.ctime_ns = Some(5)),
            Box::new(|e| e.ino = Some(8)),
            Box::new(|e| e.mode = 0o600),
            Box::new(|e| e.uid = 1),
            Box::new(|e| e.xattrs = vec!["user.x".into()]),
        ];
        for edit in edits {
            let mut now = entry("a", "file");
            edit(&mut now);
            assert_eq!(judge(&p, &now, LONG_AFTER), Change::Changed, "{now:?}");
        }
        assert_eq!(judge(&p, &entry("a", "dir"), LONG_AFTER), Change::Replaced);
        let mut l = entry("a", "symlink");
        l.link = Some("x".into());
        let mut l2 = l.clone();
        l2.link = Some("y".into());
        assert_eq!(judge(&l, &l2, LONG_AFTER), Change::Changed);
        assert_eq!(judge(&l, &l.clone(), LONG_AFTER), Change::Unchanged);
    }

    #[test]
    fn a_file_changed_during_the_parents_walk_or_without_inode_data_is_compared_by_content() {
        let p = entry("a", "file");
        // ctime within the granularity window of the parent's start.
        assert_eq!(judge(&p, &entry("a", "file"), Some(1_000_500_000_000)), Change::Ambiguous);
        assert_eq!(judge(&p, &entry("a", "file"), None), Change::Ambiguous);
        let mut old = entry("a", "file");
        old.ino = None;
        old.ctime_ns = None;
        assert_eq!(judge(&old, &entry("a", "file"), LONG_AFTER), Change::Ambiguous);
        // A directory is metadata only: never ambiguous.
        let mut d = entry(".", "dir");
        d.ino = None;
        assert_eq!(judge(&d, &entry(".", "dir"), None), Change::Unchanged);
    }

    fn backup(name: &str, parent: Option<(&str, &str)>) -> Opened {
        let objects: Arc<dyn Objects> = Arc::new(crate::target::DirObjects::new(std::path::Path::new("/nonexistent")));
        let mut c: Catalog = serde_json::from_str(&format!(
            r#"{{"format":"lifeboat-archive","version":2,"host":"h","created":"x","compression":"zstd",
            "volume_size":1048576,"volumes":[],"frames":[],
            "manifest":{{"name":"manifest.jsonl","size":0,"blake3":"m-{name}"}},
            "stats":{{"entries":0,"files":0,"bytes_in":0,"bytes_out":0,"sockets_skipped":0,"changed":[],"unreadable":[]}}}}"#
        ))
        .expect("catalog");
        c.parent = parent.map(|(p, m)| Parent {
            name: p.into(),
            created: "x".into(),
            manifest_blake3: m.into(),
            full: "a".into(),
            depth: 1,
        });
        (objects, c)
    }

    fn head(parent: Option<(&str, &str)>) -> Backup {
        let (o, c) = backup("z", parent);
        Backup::from_parts(o, c, Vec::new()).expect("head")
    }

    fn resolve_with(
        head: Backup,
        store: &HashMap<&str, Opened>,
        opened: &mut Vec<String>,
    ) -> Result<Backup, ChainError> {
        resolve(head, "z", &mut |n| {
            opened.push(n.to_string());
            store.get(n).cloned().ok_or_else(|| "it is not on the target".to_string())
        })
    }

    #[test]
    fn a_chain_resolves_back_to_its_full_backup() {
        let store = HashMap::from([("a", backup("a", None)), ("b", backup("b", Some(("a", "m-a"))))]);
        let mut opened = Vec::new();
        let b = resolve_with(head(Some(("b", "m-b"))), &store, &mut opened).expect("chain");
        assert_eq!(opened, ["b", "a"]);
        assert_eq!(b.ancestor_names(), ["b", "a"]);
        let full = resolve_with(head(None), &store, &mut Vec::new()).expect("full");
        assert!(full.ancestor_names().is_empty());
    }

    #[test]
    fn hostile_chains_are_errors_naming_the_backups() {
        let mut opened = Vec::new();
        // A missing parent.
        let e = resolve_with(head(Some(("b", "m-b"))), &HashMap::new(), &mut opened).expect_err("missing");
        assert!(matches!(e, ChainError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("parent b cannot be used: it is not on the target"), "{e}");
        // A parent swapped for another backup of that name.
        let store = HashMap::from([("b", backup("b", None))]);
        let e = resolve_with(head(Some(("b", "m-other"))), &store, &mut opened).expect_err("swapped");
        assert!(matches!(e, ChainError::Swapped { .. }), "{e}");
        // A loop: b names c, c names b (names must get older, so the loop is
        // found by the order as well as by the set).
        let store = HashMap::from([("b", backup("b", Some(("c", "m-c")))), ("c", backup("c", Some(("b", "m-b"))))]);
        let e = resolve_with(head(Some(("b", "m-b"))), &store, &mut opened).expect_err("loop");
        assert!(matches!(e, ChainError::BadParent { .. } | ChainError::Loop(..)), "{e}");
        // A parent that names itself.
        let store = HashMap::from([("b", backup("b", Some(("b", "m-b"))))]);
        let e = resolve_with(head(Some(("b", "m-b"))), &store, &mut opened).expect_err("self");
        assert!(matches!(e, ChainError::BadParent { .. } | ChainError::Loop(..)), "{e}");
        // Names that are paths.
        for bad in ["../../etc", "", "a/b", ".."] {
            let e = resolve_with(head(Some((bad, "m"))), &HashMap::new(), &mut opened).expect_err(bad);
            assert!(matches!(e, ChainError::BadParent { .. }), "{bad}: {e}");
        }
        // An absurdly long chain: refused at MAX_CHAIN, without opening more.
        let names: Vec<String> = (0..MAX_CHAIN + 5).map(|i| format!("n{i:06}")).collect();
        let mut store = HashMap::new();
        for i in 1..names.len() {
            store.insert(names[i].as_str(), backup(&names[i], Some((&names[i - 1], &format!("m-{}", names[i - 1])))));
        }
        store.insert(names[0].as_str(), backup(&names[0], None));
        let last = names.last().expect("names");
        let (o, mut c) = backup("z", None);
        c.parent = Some(Parent {
            name: last.clone(),
            created: "x".into(),
            manifest_blake3: format!("m-{last}"),
            full: "a".into(),
            depth: u32::MAX,
        });
        let mut opened = Vec::new();
        let e = resolve(Backup::from_parts(o, c, Vec::new()).expect("head"), "zz", &mut |n| {
            opened.push(n.to_string());
            store.get(n).cloned().ok_or_else(|| "gone".to_string())
        })
        .expect_err("too long");
        assert!(matches!(e, ChainError::TooLong(_)), "{e}");
        assert!(opened.len() < MAX_CHAIN, "{}", opened.len());
    }

    #[test]
    fn a_deleted_list_is_nul_separated_raw_paths() {
        assert_eq!(parse_deleted(b"a\0b c\0\xff\0"), vec![b"a".to_vec(), b"b c".to_vec(), vec![0xff]]);
        assert!(parse_deleted(b"").is_empty());
    }
}
