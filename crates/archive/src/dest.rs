//! Writing beneath a restore destination, and nowhere else.
//!
//! Every path of a backup may have been written by an attacker. A
//! [`Dest`] resolves each one beneath its root directory by a walk of
//! directory descriptors, one component at a time, with `O_NOFOLLOW`: a
//! symbolic link on the way (one the archive made earlier, or one that was
//! already in the target) is never followed, and `..`, absolute paths and
//! empty components are refused before anything is touched. Entries are made
//! under a private temporary name in their directory (files 0600,
//! directories 0700 until their final metadata) and renamed into place only
//! when they are complete, so a killed restore never leaves a file with wrong
//! content under its final name, and nobody else can read a file before its
//! real mode is set.
//!
//! Metadata calls on names go through `/proc/self/fd/DIRFD/NAME` with the
//! `l*` variants (they do not follow the last component), because chown and
//! setxattr have no safe `*at` form with a directory descriptor here.

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a path cannot be written beneath the destination.
#[derive(Debug, thiserror::Error)]
pub enum DestError {
    /// The archive path is not a plain relative path.
    #[error("refused: {0}")]
    Refused(String),
    /// A component on the way is a symbolic link (never followed).
    #[error("refused: {0} is a symbolic link in the target; nothing is written through it")]
    Symlink(String),
    /// A component on the way is not a directory.
    #[error("refused: {0} is not a directory in the target")]
    NotDir(String),
    /// A system call failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

fn show(p: &[u8]) -> String {
    crate::backup::escape_path(p)
}

/// Check that an archive path is a plain relative path: `.` (the root
/// itself), or components that are neither empty, `.` nor `..`, without a
/// leading slash or a NUL.
pub fn check_path(p: &[u8]) -> Result<(), DestError> {
    if p == b"." {
        return Ok(());
    }
    let why = if p.is_empty() {
        Some("an empty path")
    } else if p.starts_with(b"/") {
        Some("an absolute path")
    } else if p.contains(&0) {
        Some("a path with a NUL byte")
    } else if p.split(|b| *b == b'/').any(|c| c == b"..") {
        Some("a path with '..'")
    } else if p.split(|b| *b == b'/').any(|c| c.is_empty() || c == b".") {
        Some("a path with an empty or '.' component")
    } else if p.split(|b| *b == b'/').any(|c| c.len() > 255) {
        Some("a path with a component longer than 255 bytes")
    } else {
        None
    };
    match why {
        Some(w) => Err(DestError::Refused(format!("{w} ({}) would leave the target directory", show(p)))),
        None => Ok(()),
    }
}

fn split_parent(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|b| *b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (b"", p),
    }
}

/// What a failed `openat(O_DIRECTORY|O_NOFOLLOW)` of `name` in `dir` means.
fn why(dir: &OwnedFd, name: &[u8], here: &[u8], e: rustix::io::Errno) -> DestError {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
            // O_NOFOLLOW on a symlink gives ELOOP, or ENOTDIR with O_DIRECTORY.
            match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => DestError::Symlink(show(here)),
                _ => DestError::NotDir(show(here)),
            }
        }
        e => io(here, e),
    }
}

fn io(what: &[u8], e: impl Into<std::io::Error>) -> DestError {
    DestError::Io(show(what), e.into())
}

/// An entry being made under a temporary name; [`Dest::commit`] puts it in place.
#[derive(Debug)]
pub struct Pending {
    dir: Arc<OwnedFd>,
    tmp: Vec<u8>,
    name: Vec<u8>,
    rel: Vec<u8>,
}

/// A restore destination: a directory, written beneath only.
#[derive(Debug)]
pub struct Dest {
    root: Arc<OwnedFd>,
    /// The directories of the last walk, outermost first: (component, fd).
    stack: Vec<(Vec<u8>, Arc<OwnedFd>)>,
    counter: u64,
    /// Directories made because an entry below them came first (no entry of their own yet).
    implicit: std::collections::BTreeSet<Vec<u8>>,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

impl Dest {
    /// Open the destination directory (it must exist).
    pub fn open(root: &Path) -> Result<Dest, DestError> {
        if !Path::new("/proc/self/fd").is_dir() {
            return Err(DestError::Io(
                "/proc".into(),
                std::io::Error::other("restore needs /proc mounted (mount -t proc proc /proc)"),
            ));
        }
        let fd = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| DestError::Io(root.display().to_string(), e.into()))?;
        Ok(Dest { root: Arc::new(fd), stack: Vec::new(), counter: 0, implicit: Default::default() })
    }

    /// The directory `dir` (a checked relative path, empty for the root),
    /// made (0700) where it is missing; symlinks are never followed.
    fn walk(&mut self, dir: &[u8]) -> Result<Arc<OwnedFd>, DestError> {
        let comps: Vec<&[u8]> = if dir.is_empty() { Vec::new() } else { dir.split(|b| *b == b'/').collect() };
        let keep = self.stack.iter().zip(&comps).take_while(|((c, _), w)| c.as_slice() == **w).count();
        self.stack.truncate(keep);
        for (i, c) in comps.iter().enumerate().skip(keep) {
            let parent = self.stack.last().map(|(_, f)| f.clone()).unwrap_or_else(|| self.root.clone());
            let here = comps[..=i].join(&b'/');
            let fd = match rustix::fs::openat(parent.as_fd(), *c, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => {
                    match rustix::fs::mkdirat(parent.as_fd(), *c, Mode::from_raw_mode(0o700)) {
                        Ok(()) => {
                            self.implicit.insert(here.clone());
                        }
                        Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(io(&here, e)),
                    }
                    rustix::fs::openat(parent.as_fd(), *c, DIR_FLAGS, Mode::empty())
                        .map_err(|e| why(&parent, c, &here, e))?
                }
                Err(e) => return Err(why(&parent, c, &here, e)),
            };
            self.stack.push((c.to_vec(), Arc::new(fd)));
        }
        Ok(self.stack.last().map(|(_, f)| f.clone()).unwrap_or_else(|| self.root.clone()))
    }

    /// Drop the cached descriptors of `rel` and below: its name now holds something else.
    fn forget(&mut self, rel: &[u8]) {
        let comps: Vec<&[u8]> = rel.split(|b| *b == b'/').collect();
        if self.stack.len() >= comps.len() && self.stack.iter().zip(&comps).all(|((c, _), w)| c.as_slice() == *w) {
            self.stack.truncate(comps.len() - 1);
        }
    }

    fn temp_name(&mut self) -> Vec<u8> {
        self.counter += 1;
        format!(".lifeboat-restore.{}.{}", std::process::id(), self.counter).into_bytes()
    }

    fn pending(&mut self, rel: &[u8]) -> Result<Pending, DestError> {
        check_path(rel)?;
        if rel == b"." {
            return Err(DestError::Refused("the root of the target can only be a directory".into()));
        }
        let (parent, name) = split_parent(rel);
        let dir = self.walk(parent)?;
        let tmp = self.temp_name();
        Ok(Pending { dir, tmp, name: name.to_vec(), rel: rel.to_vec() })
    }

    /// A new regular file for `rel`, open for writing under a temporary name, mode 0600.
    pub fn file(&mut self, rel: &[u8]) -> Result<(std::fs::File, Pending), DestError> {
        let p = self.pending(rel)?;
        let fd = rustix::fs::openat(
            p.dir.as_fd(),
            p.tmp.as_slice(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io(rel, e))?;
        Ok((std::fs::File::from(fd), p))
    }

    /// A symbolic link for `rel` under a temporary name.
    pub fn symlink(&mut self, rel: &[u8], target: &[u8]) -> Result<Pending, DestError> {
        let p = self.pending(rel)?;
        rustix::fs::symlinkat(target, p.dir.as_fd(), p.tmp.as_slice()).map_err(|e| io(rel, e))?;
        Ok(p)
    }

    /// A hard link for `rel` to `target`, an entry already restored beneath the root.
    pub fn hardlink(&mut self, rel: &[u8], target: &[u8]) -> Result<Pending, DestError> {
        check_path(target)?;
        let (tparent, tname) = split_parent(target);
        if target == b"." {
            return Err(DestError::Refused("a hard link to the root directory".into()));
        }
        let tdir = self.walk(tparent)?;
        let p = self.pending(rel)?;
        // No AT_SYMLINK_FOLLOW: a symlink at the target would be linked itself, never followed.
        rustix::fs::linkat(tdir.as_fd(), tname, p.dir.as_fd(), p.tmp.as_slice(), AtFlags::empty())
            .map_err(|e| io(rel, e))?;
        Ok(p)
    }

    /// A device node or FIFO for `rel` under a temporary name, mode 0600.
    pub fn node(&mut self, rel: &[u8], ft: FileType, dev: u64) -> Result<Pending, DestError> {
        let p = self.pending(rel)?;
        rustix::fs::mknodat(p.dir.as_fd(), p.tmp.as_slice(), ft, Mode::from_raw_mode(0o600), dev)
            .map_err(|e| io(rel, e))?;
        Ok(p)
    }

    /// The path through which metadata of a pending entry is set without following it.
    pub fn proc_path(p: &Pending) -> PathBuf {
        let mut s = format!("/proc/self/fd/{}/", p.dir.as_raw_fd()).into_bytes();
        s.extend_from_slice(&p.tmp);
        PathBuf::from(std::ffi::OsStr::from_bytes(&s))
    }

    /// Set a device node's or FIFO's mode (after its owner: chown clears setuid bits).
    pub fn chmod_pending(p: &Pending, mode: u32) -> std::io::Result<()> {
        // The temporary name is ours, in a directory reached without symlinks.
        rustix::fs::chmodat(p.dir.as_fd(), p.tmp.as_slice(), Mode::from_raw_mode(mode), AtFlags::empty())?;
        Ok(())
    }

    /// Put a pending entry in place, replacing a file, link or empty
    /// directory of that name (a directory that is not empty stays, and the
    /// entry is refused).
    pub fn commit(&mut self, p: Pending) -> Result<(), DestError> {
        let rename = || rustix::fs::renameat(p.dir.as_fd(), p.tmp.as_slice(), p.dir.as_fd(), p.name.as_slice());
        let r = match rename() {
            Err(rustix::io::Errno::ISDIR) | Err(rustix::io::Errno::NOTEMPTY) | Err(rustix::io::Errno::EXIST) => {
                match rustix::fs::unlinkat(p.dir.as_fd(), p.name.as_slice(), AtFlags::REMOVEDIR) {
                    Ok(()) => rename(),
                    Err(_) => Err(rustix::io::Errno::ISDIR),
                }
            }
            other => other,
        };
        self.forget(&p.rel);
        if let Err(e) = r {
            self.discard(p.clone_ref());
            return Err(match e {
                rustix::io::Errno::ISDIR => DestError::Io(
                    show(&p.rel),
                    std::io::Error::other("a directory that is not empty is in the way in the target"),
                ),
                e => io(&p.rel, e),
            });
        }
        Ok(())
    }

    /// Remove a pending entry that will not be put in place.
    pub fn discard(&mut self, p: Pending) {
        let _ = rustix::fs::unlinkat(p.dir.as_fd(), p.tmp.as_slice(), AtFlags::empty());
    }

    /// Make the directory `rel` (0700 until [`Dest::open_dir`] gives it its
    /// metadata), replacing a non-directory of that name; `.` is the root.
    pub fn dir(&mut self, rel: &[u8]) -> Result<(), DestError> {
        check_path(rel)?;
        if rel == b"." {
            return Ok(());
        }
        let (parent, name) = split_parent(rel);
        let pfd = self.walk(parent)?;
        self.implicit.remove(rel);
        match rustix::fs::mkdirat(pfd.as_fd(), name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(io(rel, e)),
        }
        let st = rustix::fs::statat(pfd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| io(rel, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            // A file or symlink where the backup has a directory: replace it (as GNU tar does).
            self.forget(rel);
            rustix::fs::unlinkat(pfd.as_fd(), name, AtFlags::empty()).map_err(|e| io(rel, e))?;
            rustix::fs::mkdirat(pfd.as_fd(), name, Mode::from_raw_mode(0o700)).map_err(|e| io(rel, e))?;
        }
        Ok(())
    }

    /// Open the directory `rel` (`.`: the root) to set its metadata, without following symlinks.
    pub fn open_dir(&mut self, rel: &[u8]) -> Result<std::fs::File, DestError> {
        check_path(rel)?;
        if rel == b"." {
            let fd = self.root.try_clone().map_err(|e| io(rel, e))?;
            return Ok(std::fs::File::from(fd));
        }
        let (parent, name) = split_parent(rel);
        let pfd = self.walk(parent)?;
        let fd =
            rustix::fs::openat(pfd.as_fd(), name, DIR_FLAGS, Mode::empty()).map_err(|e| why(&pfd, name, rel, e))?;
        Ok(std::fs::File::from(fd))
    }

    /// Give the directories that were made only because something below
    /// them was restored (no entry of their own) the mode a new directory
    /// gets: 0755.
    pub fn finish(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        let dirs: Vec<Vec<u8>> = std::mem::take(&mut self.implicit).into_iter().collect();
        for d in dirs {
            let r = self
                .open_dir(&d)
                .and_then(|f| rustix::fs::fchmod(&f, Mode::from_raw_mode(0o755)).map_err(|e| io(&d, e)));
            if let Err(e) = r {
                failed.push(e.to_string());
            }
        }
        failed
    }
}

impl Pending {
    fn clone_ref(&self) -> Pending {
        Pending { dir: self.dir.clone(), tmp: self.tmp.clone(), name: self.name.clone(), rel: self.rel.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_target_are_refused() {
        for bad in [&b"../x"[..], b"/etc/passwd", b"a/../../x", b"a//b", b"a/./b", b"", b"a/", b"a\0b", b".."] {
            assert!(check_path(bad).is_err(), "{}", show(bad));
        }
        for good in [&b"."[..], b"a", b"a/b/c", b"...", b"a/..b", b"\xff\xfe"] {
            assert!(check_path(good).is_ok(), "{}", show(good));
        }
        let e = check_path(b"../etc/shadow").unwrap_err().to_string();
        assert!(e.contains("../etc/shadow") && e.contains(".."), "{e}");
    }

    #[test]
    fn nothing_is_written_through_a_symlink_on_the_way() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("link")).unwrap();
        let mut d = Dest::open(t.path()).unwrap();
        let e = d.file(b"link/x").unwrap_err();
        assert!(matches!(e, DestError::Symlink(_) | DestError::NotDir(_)), "{e}");
        assert!(d.dir(b"link/sub").is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // A directory entry replaces the symlink itself, and then files go into the new directory.
        d.dir(b"link").unwrap();
        let (f, p) = d.file(b"link/x").unwrap();
        drop(f);
        d.commit(p).unwrap();
        assert!(t.path().join("link/x").is_file());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_file_is_private_until_committed_and_then_replaces_what_was_there() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), b"old").unwrap();
        let mut d = Dest::open(t.path()).unwrap();
        let (mut f, p) = d.file(b"f").unwrap();
        std::io::Write::write_all(&mut f, b"new").unwrap();
        let tmp = Dest::proc_path(&p);
        assert_eq!(std::fs::symlink_metadata(&tmp).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"old", "the final name is untouched until commit");
        d.commit(p).unwrap();
        assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn directories_are_private_until_their_metadata_and_implicit_ones_get_0755() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let mut d = Dest::open(t.path()).unwrap();
        d.dir(b"a").unwrap();
        let (_, p) = d.file(b"b/c/f").unwrap();
        d.commit(p).unwrap();
        let mode = |p: &str| std::fs::metadata(t.path().join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("a"), 0o700);
        assert_eq!(mode("b/c"), 0o700);
        assert!(d.finish().is_empty());
        assert_eq!(mode("b"), 0o755);
        assert_eq!(mode("b/c"), 0o755);
        assert_eq!(mode("a"), 0o700, "a has an entry of its own: its metadata comes from it");
    }

    #[test]
    fn entries_below_a_directory_that_was_replaced_go_into_what_replaced_it() {
        let t = tempfile::tempdir().unwrap();
        let mut d = Dest::open(t.path()).unwrap();
        d.dir(b"a").unwrap();
        let (_, p) = d.file(b"a/x").unwrap();
        d.commit(p).unwrap();
        // A file "a" cannot replace the directory that is not empty; a later "a/y" still lands in it.
        let (_, p) = d.file(b"a").unwrap();
        assert!(d.commit(p).is_err());
        let (_, p) = d.file(b"a/y").unwrap();
        d.commit(p).unwrap();
        assert!(t.path().join("a/y").is_file());
        // An empty directory is replaced by the file, and "b/z" then is refused, not lost in an unlinked directory.
        d.dir(b"b").unwrap();
        let (_, p) = d.file(b"b").unwrap();
        d.commit(p).unwrap();
        assert!(t.path().join("b").is_file());
        assert!(matches!(d.file(b"b/z"), Err(DestError::NotDir(_))));
    }

    #[test]
    fn a_hard_link_to_a_symlink_links_the_symlink_not_its_target() {
        let t = tempfile::tempdir().unwrap();
        let mut d = Dest::open(t.path()).unwrap();
        let p = d.symlink(b"s", b"/etc/shadow").unwrap();
        d.commit(p).unwrap();
        let p = d.hardlink(b"h", b"s").unwrap();
        d.commit(p).unwrap();
        assert!(std::fs::symlink_metadata(t.path().join("h")).unwrap().file_type().is_symlink());
        assert!(d.hardlink(b"h2", b"../x").is_err());
    }
}
