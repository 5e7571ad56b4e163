//! Comparing a live tree with a backup's manifest: what was added, removed
//! or changed (content, type, owner, mode, extended attributes). This is how
//! an administrator checks a server after a suspected intrusion; it needs
//! only the manifest, not the volumes.

use crate::backup::{escape_path, glob_match, xattrs, ManifestEntry};
use crate::read::Backup;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Archive path.
    pub path: String,
    /// `added`, `removed`, `changed`, or `refused` (a manifest path that leaves the root).
    pub what: String,
    /// For `changed`: which properties (`type`, `content`, `size`, `mode`, `owner`, `mtime`, `link`,
    /// `device`, `xattr NAME`, `no longer a hard link`), each with the old and new value.
    pub details: Vec<String>,
}

fn kind_of(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else {
        "file"
    }
}

fn hash_file(p: &Path) -> Option<String> {
    use std::os::unix::fs::OpenOptionsExt;
    // Never follow a symlink put in its place, never block on a FIFO.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(p)
        .ok()?;
    let mut h = blake3::Hasher::new();
    h.update_reader(&mut f).ok()?;
    Some(h.finalize().to_hex().to_string())
}

fn live_path(root: &Path, arch: &str) -> std::path::PathBuf {
    if arch == "." {
        root.to_path_buf()
    } else {
        root.join(std::ffi::OsStr::from_bytes(&crate::read::unescape_path(arch)))
    }
}

/// Every property of the live entry `p` (already lstat'ed as `meta`) that
/// differs from the manifest's entry `e`.
fn differences(p: &Path, meta: &std::fs::Metadata, e: &ManifestEntry) -> Vec<String> {
    let mut d = Vec::new();
    let live_kind = kind_of(&meta.file_type());
    if live_kind != e.kind {
        d.push(format!("type {} -> {live_kind}", e.kind));
        return d;
    }
    if meta.mode() & 0o7777 != e.mode && e.kind != "symlink" {
        d.push(format!("mode {:o} -> {:o}", e.mode, meta.mode() & 0o7777));
    }
    if (meta.uid(), meta.gid()) != (e.uid, e.gid) {
        d.push(format!("owner {}:{} -> {}:{}", e.uid, e.gid, meta.uid(), meta.gid()));
    }
    if e.kind == "file" && meta.len() != e.size {
        d.push(format!("size {} -> {}", e.size, meta.len()));
    }
    if e.kind == "file" && (e.blake3.is_none() || hash_file(p) != e.blake3) {
        d.push("content".into());
    }
    let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    if mtime != e.mtime_ns {
        d.push(format!("mtime {} -> {}", fmt_ns(e.mtime_ns), fmt_ns(mtime)));
    }
    if e.kind == "symlink" {
        let t = std::fs::read_link(p).map(|t| escape_path(t.as_os_str().as_bytes())).unwrap_or_default();
        if Some(&t) != e.link.as_ref() {
            d.push(format!("link -> {t}"));
        }
    }
    if e.kind == "char" || e.kind == "block" {
        let r = meta.rdev();
        let live = (rustix::fs::major(r), rustix::fs::minor(r));
        if Some(live) != e.rdev {
            let (a, b) = e.rdev.unwrap_or_default();
            d.push(format!("device {a}:{b} -> {}:{}", live.0, live.1));
        }
    }
    let live = xattrs(p);
    let names: Vec<String> = live.iter().map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect();
    for n in e.xattrs.iter().filter(|n| !names.contains(n)) {
        d.push(format!("xattr {n} removed"));
    }
    for (i, (k, v)) in live.iter().enumerate() {
        let name = &names[i];
        match e.xattrs.iter().position(|n| n == name) {
            None => d.push(format!("xattr {name} added")),
            Some(j) => {
                if let Some(want) = e.xattr_blake3.get(j) {
                    if blake3::hash(v).to_hex().as_str() != want {
                        d.push(format!("xattr {} changed", String::from_utf8_lossy(k)));
                    }
                }
            }
        }
    }
    d
}

/// Nanoseconds since the epoch as `SECONDS.NANOSECONDS`.
fn fmt_ns(ns: i128) -> String {
    format!("{}.{:09}", ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

/// Differences between the live tree at `root` and the backup: for every
/// entry its type, content (hard links too), size, mode with
/// setuid/setgid/sticky, owner, mtime, symlink target, device numbers and
/// every extended attribute by value (format 2 backups; by name in older
/// ones); and the entries added and removed.
///
/// The manifest is gone through twice, in order, never held (a backup
/// opened with [`Backup::open_objects_streamed`] reads it from its target
/// each time): first for a 16-byte key of every path (what is added is a
/// live name without one), the directories and the files hard links point
/// at; then every entry is compared with the live tree as it comes, the
/// hard links at the end, against the files they point at.
pub fn compare(b: &Backup, root: &Path) -> Vec<Difference> {
    let mut out = Vec::new();
    let (mut keys, mut dirs, mut link_targets) = (Vec::new(), Vec::new(), HashSet::new());
    let first = b.each_entry(&mut |m| {
        keys.push(crate::chain::key(&m.path));
        // lifeboat's own entries (images of foreign partitions) are no part of the tree.
        if m.kind == "dir" && !crate::backup::is_reserved(&m.path) {
            dirs.push(m.path.clone());
        }
        if m.kind == "hardlink" {
            if let Some(t) = &m.link {
                link_targets.insert(crate::chain::key(t));
            }
        }
    });
    if let Err(e) = first {
        return vec![unreadable(e)];
    }
    keys.sort_unstable();
    let known = |p: &str| keys.binary_search(&crate::chain::key(p)).is_ok();
    let (mut targets, mut links) = (HashMap::new(), Vec::new());
    let second = b.each_entry(&mut |m| {
        if crate::backup::is_reserved(&m.path) {
            return;
        }
        if m.kind == "hardlink" {
            links.push(m.clone());
            return;
        }
        if m.kind == "file" && link_targets.contains(&crate::chain::key(&m.path)) {
            targets.insert(m.path.clone(), m.clone());
        }
        out.extend(compare_entry(root, m, m));
    });
    if let Err(e) = second {
        return vec![unreadable(e)];
    }
    for m in &links {
        // A hard link is compared as the file it links to.
        let e = m.link.as_deref().and_then(|t| targets.get(t)).unwrap_or(m);
        out.extend(compare_entry(root, m, e));
    }
    // Added: new names in directories that were backed up (same filesystem, not excluded).
    dirs.sort();
    dirs.dedup();
    for dir in &dirs {
        let Ok(rd) = std::fs::read_dir(live_path(root, dir)) else { continue };
        let mut names: Vec<Vec<u8>> = rd.flatten().map(|e| e.file_name().as_bytes().to_vec()).collect();
        names.sort();
        for n in names {
            let mut arch = if dir == "." { Vec::new() } else { crate::read::unescape_path(dir) };
            if !arch.is_empty() {
                arch.push(b'/');
            }
            arch.extend_from_slice(&n);
            let key = escape_path(&arch);
            let excluded = b.catalog.exclude.iter().any(|g| glob_match(g.as_bytes(), &arch));
            let socket =
                std::fs::symlink_metadata(live_path(root, &key)).map(|m| m.file_type().is_socket()).unwrap_or(false);
            if !known(&key) && !excluded && !socket {
                out.push(Difference { path: key, what: "added".into(), details: vec![] });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The manifest could not be read (again): one difference that says so.
fn unreadable(e: crate::read::ReadError) -> Difference {
    Difference { path: ".".into(), what: "refused".into(), details: vec![format!("the manifest cannot be read: {e}")] }
}

/// The difference of one manifest entry `m` from the live tree, compared
/// with what it should be, `e` (the file a hard link points at, else `m`).
fn compare_entry(root: &Path, m: &ManifestEntry, e: &ManifestEntry) -> Option<Difference> {
    let arch = crate::read::unescape_path(&m.path);
    if let Err(e) = crate::dest::check_path(&arch) {
        return Some(Difference { path: m.path.clone(), what: "refused".into(), details: vec![e.to_string()] });
    }
    let p = live_path(root, &m.path);
    let Ok(meta) = std::fs::symlink_metadata(&p) else {
        return Some(Difference { path: m.path.clone(), what: "removed".into(), details: vec![] });
    };
    let mut d = differences(&p, &meta, e);
    if m.kind == "hardlink" {
        let target = m.link.as_deref().unwrap_or_default();
        let same = std::fs::symlink_metadata(live_path(root, target))
            .is_ok_and(|t| (t.dev(), t.ino()) == (meta.dev(), meta.ino()));
        if !same {
            d.push(format!("no longer a hard link of {target}"));
        }
    }
    (!d.is_empty()).then(|| Difference { path: m.path.clone(), what: "changed".into(), details: d })
}
