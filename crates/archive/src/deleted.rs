//! Verifying an increment's `deleted.list`: the paths of its parent that
//! are gone, each ended by a NUL byte. Whoever can write to the target can
//! write this file, and the GNU tar procedure for a chain (docs/
//! archive-format.md) runs `rm -rf` on every line of it, so `verify` checks
//! it as it checks a volume: present, of the size and BLAKE3 the (signed)
//! catalog gives, and well formed; and line by line: a relative path without
//! `..`, named once, one the parent holds, not one this backup takes
//! unchanged from the chain (a restore by tar would lose it); and every path
//! of the parent that this backup no longer lists is in it.
//!
//! Everything is streamed: the list and both manifests are read in pieces,
//! and what is held is one 16-byte key and one byte per entry of the parent
//! (some 17 MiB for a million entries), never the lists themselves.

use crate::chain::{each_line, key, DELETED_LIST, MAX_DELETED_BYTES};
use crate::read::Backup;
use crate::restore::VerifyReport;
use std::io::{BufRead, Read};

/// The longest path a line of `deleted.list` may hold.
pub const MAX_DELETED_PATH: u64 = 1 << 20;

/// Most problems named one by one; the rest are counted.
const MAX_NAMED: usize = 100;

/// Flags per parent entry (by its position in the sorted keys).
const DELETED: u8 = 1;
const LISTED: u8 = 2;
const TAKEN: u8 = 4;

/// Whether a path of `deleted.list` is one `rm -rf` may be given below a
/// restore's root: not empty, not absolute, no empty, `.` or `..` component.
pub fn safe_path(p: &[u8]) -> bool {
    !p.is_empty() && p[0] != b'/' && p.split(|b| *b == b'/').all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// The named problems, with a count of the ones left unnamed.
#[derive(Default)]
struct Problems {
    named: Vec<String>,
    more: u64,
}

impl Problems {
    fn push(&mut self, p: String) {
        if self.named.len() < MAX_NAMED {
            self.named.push(p);
        } else {
            self.more += 1;
        }
    }

    fn into_lines(mut self, what: &str) -> Vec<String> {
        if self.more > 0 {
            self.named.push(format!("{what}: and {} more problems of this list", self.more));
        }
        self.named
    }
}

/// Check an increment's `deleted.list` against its catalog, its parent's
/// manifest and its own; damage to the object goes to `r.damaged_volumes`,
/// each wrong line to `r.lost`. A full backup has none, and is not checked.
pub fn check(b: &Backup, r: &mut VerifyReport) {
    let Some(parent) = &b.catalog.parent else { return };
    let at = format!("{}/{DELETED_LIST}", b.location());
    let Some(list) = &b.catalog.deleted else {
        r.damaged_volumes.push(format!(
            "{at}: the catalog of this incremental backup names no deleted.list (damaged or crafted catalog)"
        ));
        return;
    };
    let Some((pname, pobjects, pcatalog)) = b.parent_backup() else {
        r.damaged_volumes.push(format!(
            "{at}: the parent {} was not resolved, so the list cannot be checked against it (lifeboat bug)",
            parent.name
        ));
        return;
    };
    // The parent's paths, as sorted keys; one byte of flags each.
    let mut keys: Vec<[u8; 16]> = Vec::new();
    if let Err(e) = each_line(pobjects.as_ref(), &pcatalog.manifest, &mut |_, e| {
        keys.push(key(&e.path));
        Ok(())
    }) {
        r.damaged_volumes.push(format!("{at}: cannot be checked: the parent's manifest: {e}"));
        return;
    }
    keys.sort_unstable();
    keys.dedup();
    let mut flags = vec![0u8; keys.len()];
    let find = |k: &[u8; 16]| keys.binary_search(k).ok();

    let mut lines = Problems::default();
    let mut deleted = 0u64;
    match read_list(b, list, &mut |p| {
        let shown = crate::backup::escape_path(p);
        deleted += 1;
        if !safe_path(p) {
            lines.push(format!("{shown}: {DELETED_LIST} names it, which is not a plain relative path (forged: a restore by tar would delete outside its target)"));
            return;
        }
        match find(&key(&shown)) {
            None => lines.push(format!(
                "{shown}: {DELETED_LIST} names it, but the parent {pname} does not hold it (damaged or forged)"
            )),
            Some(i) if flags[i] & DELETED != 0 => lines.push(format!("{shown}: {DELETED_LIST} names it twice")),
            Some(i) => flags[i] |= DELETED,
        }
    }) {
        Ok(()) => {}
        Err(e) => r.damaged_volumes.push(format!("{}/{}: {e}", b.location(), list.name)),
    }

    // This backup's manifest: what it lists of the parent's paths, and how.
    let mut taken = Vec::new();
    if let Err(e) = each_line(b.objects().as_ref(), &b.catalog.manifest, &mut |_, e| {
        if let Some(i) = find(&key(&e.path)) {
            flags[i] |= LISTED;
            if e.from.is_some() {
                flags[i] |= TAKEN;
                if flags[i] & DELETED != 0 && taken.len() < MAX_NAMED {
                    taken.push(e.path.clone());
                }
            }
        }
        Ok(())
    }) {
        r.damaged_volumes.push(format!("{at}: cannot be checked: {e}"));
        return;
    }
    for p in taken {
        lines.push(format!(
            "{p}: {DELETED_LIST} names it, but this backup takes it unchanged from the chain (forged or damaged: a restore by tar would lose it)"
        ));
    }
    // What the parent holds and this backup neither lists nor deletes: named from a second read of the parent.
    let missing = flags.iter().filter(|f| *f & (DELETED | LISTED) == 0).count();
    if missing > 0 {
        let _ = each_line(pobjects.as_ref(), &pcatalog.manifest, &mut |_, e| {
            if find(&key(&e.path)).is_some_and(|i| flags[i] & (DELETED | LISTED) == 0) {
                lines.push(format!(
                    "{}: the parent {pname} holds it, but this backup neither lists it nor names it in {DELETED_LIST} (damaged or forged)",
                    e.path
                ));
            }
            Ok(())
        });
    }
    if deleted != b.catalog.stats.deleted && r.damaged_volumes.is_empty() {
        lines.push(format!(
            "{at}: names {deleted} paths where the catalog counts {} (damaged or forged)",
            b.catalog.stats.deleted
        ));
    }
    r.lost.extend(lines.into_lines(&at));
}

/// Stream `deleted.list`: every path to `path`; an error when the object is
/// missing, not of its catalog size and BLAKE3, or not NUL-ended lines (the
/// paths seen before are still given: the error says the list is damaged).
fn read_list(b: &Backup, list: &crate::frames::Volume, path: &mut dyn FnMut(&[u8])) -> Result<(), String> {
    if list.size > MAX_DELETED_BYTES {
        return Err(format!("is {} bytes by the catalog, more than {MAX_DELETED_BYTES} (refused)", list.size));
    }
    let o = b.objects().open_volume(&list.name, list.size).map_err(|e| e.to_string())?;
    if o.len() != list.size {
        return Err(format!("is {} bytes where backup.json says {} (damaged)", o.len(), list.size));
    }
    let mut rd = std::io::BufReader::with_capacity(1 << 20, crate::target::ObjectReader::new(o));
    let mut h = blake3::Hasher::new();
    let (mut buf, mut total, mut malformed) = (Vec::new(), 0u64, None);
    loop {
        buf.clear();
        let got = (&mut rd).take(MAX_DELETED_PATH + 1).read_until(0, &mut buf).map_err(|e| e.to_string())?;
        if got == 0 {
            break;
        }
        total += got as u64;
        h.update(&buf);
        match buf.strip_suffix(&[0]) {
            _ if malformed.is_some() => {}
            Some([]) => malformed = Some(format!("an empty line at byte {}", total - 1)),
            Some(p) => path(p),
            None if got as u64 > MAX_DELETED_PATH => {
                malformed = Some(format!("a line longer than {MAX_DELETED_PATH} bytes at byte {}", total - got as u64))
            }
            None => malformed = Some("its last line has no NUL ending".into()),
        }
    }
    if total != list.size || h.finalize().to_hex().as_str() != list.blake3 {
        return Err("checksum differs from backup.json (the list of deletions is damaged)".into());
    }
    match malformed {
        Some(m) => Err(format!("is not a list of NUL-ended paths: {m} (damaged or forged)")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_safe_to_delete() {
        for ok in [&b"a"[..], b"a/b", b"a b/c\xff", b".hidden/x", b"a/..b"] {
            assert!(safe_path(ok), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [&b""[..], b"/etc", b"..", b"a/../../etc", b"a//b", b"./a", b"a/.", b"a/"] {
            assert!(!safe_path(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
