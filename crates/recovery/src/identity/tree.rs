//! The restored tree below a root directory, read and written without ever
//! following a symbolic link of it.

use super::{Applied, IdentityError};
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The restored tree below its root, reached without ever following a
/// symbolic link: every directory on the way is opened `O_NOFOLLOW` from the
/// root's descriptor down, so that a link in a (hostile or odd) backup cannot
/// make the clone read, write or remove anything outside the tree.
pub(super) struct Tree<'a> {
    root: &'a Path,
    fd: OwnedFd,
    pub(super) done: Applied,
    /// A directory that is a symbolic link (relative to the root) → the files left alone below it.
    skipped: BTreeMap<String, Vec<String>>,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// Where a path below the root leads.
enum Parent<'r> {
    /// Its directory, opened, and its last component.
    Dir(OwnedFd, &'r str),
    /// A directory on the way does not exist (or is no directory).
    Missing,
    /// A directory on the way is a symbolic link: nothing below it is touched.
    Link,
}

impl<'a> Tree<'a> {
    pub(super) fn open(root: &'a Path) -> Result<Tree<'a>, IdentityError> {
        let fd = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| IdentityError::Io(root.to_path_buf(), e.into()))?;
        Ok(Tree { root, fd, done: Applied::default(), skipped: BTreeMap::new() })
    }

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Open the directory `rel` (a path of components below the root), never through a link.
    fn dir(&mut self, rel: &str, because_of: &str) -> Result<Option<OwnedFd>, IdentityError> {
        let mut fd = rustix::io::dup(&self.fd).map_err(|e| IdentityError::Io(self.root.to_path_buf(), e.into()))?;
        let mut here = String::new();
        for c in rel.split('/').filter(|c| !c.is_empty()) {
            if !here.is_empty() {
                here.push('/');
            }
            here.push_str(c);
            match rustix::fs::statat(&fd, c, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                    self.skip(&here, because_of);
                    return Ok(None);
                }
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                Ok(_) => return Ok(None),
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(IdentityError::Io(self.path(&here), e.into())),
            }
            // O_NOFOLLOW as well: the directory may have been swapped for a link since.
            fd = match rustix::fs::openat(&fd, c, DIR_FLAGS, Mode::empty()) {
                Ok(d) => d,
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    self.skip(&here, because_of);
                    return Ok(None);
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(IdentityError::Io(self.path(&here), e.into())),
            };
        }
        Ok(Some(fd))
    }

    /// The directory of `rel`, opened, and its last component.
    fn parent<'r>(&mut self, rel: &'r str) -> Result<Parent<'r>, IdentityError> {
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        Ok(match self.dir(dir, rel)? {
            Some(fd) => Parent::Dir(fd, name),
            None if self.skipped.values().any(|v| v.iter().any(|f| f == rel)) => Parent::Link,
            None => Parent::Missing,
        })
    }

    /// Note that `file` is left alone because `link`, a directory on its way, is a symbolic link.
    fn skip(&mut self, link: &str, file: &str) {
        let files = self.skipped.entry(link.to_string()).or_default();
        if !files.iter().any(|f| f == file) {
            files.push(file.to_string());
        }
    }

    /// The text of the regular file `rel`; None when it is missing, not a
    /// regular file, or a symbolic link (which may point out of the restored
    /// tree, into the rescue system: never followed).
    pub(super) fn read(&mut self, rel: &str) -> Option<String> {
        let Ok(Parent::Dir(dir, name)) = self.parent(rel) else { return None };
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return None;
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&dir, name, flags, Mode::empty()).ok()?;
        if FileType::from_raw_mode(rustix::fs::fstat(&fd).ok()?.st_mode) != FileType::RegularFile {
            return None;
        }
        std::io::read_to_string(std::fs::File::from(fd)).ok()
    }

    /// Write `text` to `rel` (unless it is `old` already): a regular file is
    /// rewritten in place; a symbolic link (or device, FIFO, socket) is
    /// replaced by a new regular file, never written through; below a
    /// directory that is a link nothing is written (the report says so).
    pub(super) fn write(&mut self, rel: &str, old: Option<&str>, text: &str) -> Result<(), IdentityError> {
        if old == Some(text) {
            return Ok(());
        }
        let p = self.path(rel);
        let io = |e: Errno| IdentityError::Io(p.clone(), e.into());
        let dir = match self.parent(rel)? {
            Parent::Dir(dir, name) => (dir, name),
            Parent::Link => return Ok(()),
            Parent::Missing => return Err(io(Errno::NOENT)),
        };
        let (dir, name) = (&dir.0, dir.1);
        let create = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => {
                    let flags = OFlags::WRONLY | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
                    rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(io)?
                }
                FileType::Directory => {
                    self.done.warnings.push(format!("clone: /{rel} is a directory, not a file: left alone"));
                    return Ok(());
                }
                _ => {
                    rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(io)?;
                    rustix::fs::openat(dir, name, create, Mode::from_raw_mode(0o644)).map_err(io)?
                }
            },
            Err(Errno::NOENT) => rustix::fs::openat(dir, name, create, Mode::from_raw_mode(0o644)).map_err(io)?,
            Err(e) => return Err(io(e)),
        };
        let mut f = std::fs::File::from(fd);
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| IdentityError::Io(p.clone(), e))?;
        self.done.changed.push(rel.to_string());
        Ok(())
    }

    /// The names in the directory `dir` with their types (a link is a link), unsorted;
    /// `for_files` names what is skipped when a directory on the way is a link.
    pub(super) fn entries(
        &mut self,
        dir: &str,
        for_files: &str,
    ) -> Result<(OwnedFd, Vec<(String, FileType)>), IdentityError> {
        let p = self.path(dir);
        let Some(fd) = self.dir(dir, for_files)? else {
            return Err(IdentityError::Io(p, Errno::NOENT.into()));
        };
        let list = rustix::fs::Dir::read_from(&fd).map_err(|e| IdentityError::Io(p.clone(), e.into()))?;
        let mut out = Vec::new();
        for e in list.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name == "." || name == ".." {
                continue;
            }
            let Ok(st) = rustix::fs::statat(&fd, e.file_name(), AtFlags::SYMLINK_NOFOLLOW) else { continue };
            out.push((name, FileType::from_raw_mode(st.st_mode)));
        }
        Ok((fd, out))
    }

    /// Regular files directly in `dir` (or in its subdirectories, `deep`), ending in `ext`, sorted.
    pub(super) fn files(&mut self, dir: &str, ext: &str, deep: bool) -> Vec<String> {
        let mut out = Vec::new();
        let Ok((_, entries)) = self.entries(dir, &format!("{dir}/*{ext}")) else { return out };
        for (name, t) in entries {
            let rel = format!("{dir}/{name}");
            match t {
                FileType::RegularFile if name.ends_with(ext) => out.push(rel),
                FileType::Directory if deep => out.extend(self.files(&rel, ext, deep)),
                _ => {}
            }
        }
        out.sort();
        out
    }

    /// Whether `rel` is a directory or a link (not followed: writing below it reports the link).
    pub(super) fn dir_or_link(&self, rel: &str) -> bool {
        std::fs::symlink_metadata(self.path(rel)).is_ok_and(|m| m.is_dir() || m.file_type().is_symlink())
    }

    /// The report, with a warning for every directory that was a link.
    pub(super) fn finish(mut self) -> Applied {
        for (link, files) in std::mem::take(&mut self.skipped) {
            let files: Vec<String> = files.iter().map(|f| format!("/{f}")).collect();
            self.done.warnings.push(format!(
                "clone: /{link} is a symbolic link (it may lead out of the restored system): not followed, left alone below it: {}",
                files.join(", ")
            ));
        }
        self.done
    }
}
