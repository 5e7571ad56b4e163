//! Comparing a live tree with a backup's manifest: what was added, removed
//! or changed (content, type, owner, mode, extended attributes). This is how
//! an administrator checks a server after a suspected intrusion; it needs
//! only the manifest, not the volumes.

use crate::backup::{escape_path, glob_match, xattrs, ManifestEntry};
use crate::read::Backup;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Archive path.
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub what: String,
    /// For `changed`: which properties (`content`, `mode`, `owner`, `type`, `link`, `xattrs`).
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
    let mut f = std::fs::File::open(p).ok()?;
    let mut h = blake3::Hasher::new();
    h.update_reader(&mut f).ok()?;
    Some(h.finalize().to_hex().to_string())
}

fn live_path(root: &Path, arch: &str) -> std::path::PathBuf {
    if arch == "." {
        root.to_path_buf()
    } else {
        root.join(std::ffi::OsStr::from_bytes(&crate::restore::unescape_path(arch)))
    }
}

/// Differences between the live tree at `root` and the backup.
pub fn compare(b: &Backup, root: &Path) -> Vec<Difference> {
    let mut out = Vec::new();
    let known: BTreeMap<&str, &ManifestEntry> = b.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    // The target of each hard link, to compare content through it.
    for m in &b.entries {
        let p = live_path(root, &m.path);
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            out.push(Difference { path: m.path.clone(), what: "removed".into(), details: vec![] });
            continue;
        };
        let mut d = Vec::new();
        let live_kind = kind_of(&meta.file_type());
        let expected_kind = if m.kind == "hardlink" { "file" } else { m.kind.as_str() };
        if live_kind != expected_kind {
            d.push(format!("type {expected_kind} -> {live_kind}"));
        } else {
            if meta.mode() & 0o7777 != m.mode && m.kind != "symlink" && m.kind != "hardlink" {
                d.push(format!("mode {:o} -> {:o}", m.mode, meta.mode() & 0o7777));
            }
            if (meta.uid(), meta.gid()) != (m.uid, m.gid) && m.kind != "hardlink" {
                d.push(format!("owner {}:{} -> {}:{}", m.uid, m.gid, meta.uid(), meta.gid()));
            }
            if let Some(want) = &m.blake3 {
                if meta.len() != m.size || hash_file(&p).as_deref() != Some(want.as_str()) {
                    d.push("content".into());
                }
            }
            if m.kind == "symlink" {
                let t = std::fs::read_link(&p).map(|t| escape_path(t.as_os_str().as_bytes())).unwrap_or_default();
                if Some(&t) != m.link.as_ref() {
                    d.push(format!("link -> {t}"));
                }
            }
            if m.kind != "hardlink" {
                let names: Vec<String> =
                    xattrs(&p).iter().map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect();
                if names != m.xattrs {
                    d.push(format!("xattrs {:?} -> {names:?}", m.xattrs));
                }
            }
        }
        if !d.is_empty() {
            out.push(Difference { path: m.path.clone(), what: "changed".into(), details: d });
        }
    }
    // Added: new names in directories that were backed up (same filesystem, not excluded).
    let dirs: BTreeSet<&str> = b.entries.iter().filter(|e| e.kind == "dir").map(|e| e.path.as_str()).collect();
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(live_path(root, dir)) else { continue };
        let mut names: Vec<Vec<u8>> = rd.flatten().map(|e| e.file_name().as_bytes().to_vec()).collect();
        names.sort();
        for n in names {
            let mut arch = if dir == "." { Vec::new() } else { crate::restore::unescape_path(dir) };
            if !arch.is_empty() {
                arch.push(b'/');
            }
            arch.extend_from_slice(&n);
            let key = escape_path(&arch);
            let excluded = b.catalog.exclude.iter().any(|g| glob_match(g.as_bytes(), &arch));
            let socket =
                std::fs::symlink_metadata(live_path(root, &key)).map(|m| m.file_type().is_socket()).unwrap_or(false);
            if !known.contains_key(key.as_str()) && !excluded && !socket {
                out.push(Difference { path: key, what: "added".into(), details: vec![] });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}
