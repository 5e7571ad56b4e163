//! A tree of files for an initramfs, gathered from the host and written as
//! one compressed newc archive.

use crate::cpio::CpioWriter;
use lifeboat_runner::{Cmd, Runner};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir(u32),
    /// A file copied from the host at write time.
    HostFile(PathBuf, u32),
    /// A file with given contents.
    Data(Vec<u8>, u32),
    /// A symbolic link.
    Symlink(String),
    /// A character device.
    CharDev(u32, u32, u32),
}

/// Compression of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain cpio.
    None,
    /// gzip at the given level.
    Gzip(u32),
    /// zstd at the given level, on all cores.
    Zstd(i32),
}

impl Compression {
    /// The name as the kernel config and lifeboat's config spell it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip(_) => "gzip",
            Compression::Zstd(_) => "zstd",
        }
    }
}

/// The files of an initramfs, keyed by their path inside it.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    entries: BTreeMap<PathBuf, Entry>,
}

fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Tree::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a path is in the tree.
    pub fn contains(&self, p: &Path) -> bool {
        self.entries.contains_key(&clean(p))
    }

    /// Make a directory and its parents.
    pub fn mkdir(&mut self, p: &Path) {
        let p = clean(p);
        for a in p.ancestors().collect::<Vec<_>>().into_iter().rev() {
            if a != Path::new("/") {
                self.entries.entry(a.to_path_buf()).or_insert(Entry::Dir(0o755));
            }
        }
    }

    fn put(&mut self, p: &Path, e: Entry) {
        let p = clean(p);
        if let Some(parent) = p.parent() {
            self.mkdir(parent);
        }
        self.entries.insert(p, e);
    }

    /// A file with the given contents.
    pub fn data(&mut self, p: &Path, data: impl Into<Vec<u8>>, mode: u32) {
        self.put(p, Entry::Data(data.into(), mode));
    }

    /// A symlink.
    pub fn symlink(&mut self, p: &Path, target: &str) {
        self.put(p, Entry::Symlink(target.to_string()));
    }

    /// The host's merged-/usr links (`/sbin -> usr/sbin`, ...) as they are:
    /// tools look in fixed places (mount finds `mount.nfs` only in /sbin).
    pub fn merged_usr_links(&mut self) {
        for d in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            if let Ok(target) = std::fs::read_link(d) {
                self.symlink(Path::new(d), &target.to_string_lossy());
            }
        }
    }

    /// A character device node.
    pub fn char_device(&mut self, p: &Path, mode: u32, major: u32, minor: u32) {
        self.put(p, Entry::CharDev(mode, major, minor));
    }

    /// A host file copied from `src` to `dest`.
    pub fn host_file_as(&mut self, src: &Path, dest: &Path, mode: u32) {
        self.put(dest, Entry::HostFile(src.to_path_buf(), mode));
    }

    /// Copy a host path into the tree at the same place, the way the host
    /// lays it out: symlinked directories (`/lib` → `usr/lib`) and symlinked
    /// files become symlinks, and their targets are copied too.
    pub fn host_path(&mut self, p: &Path) -> std::io::Result<()> {
        self.host_path_depth(p, 0)
    }

    fn host_path_depth(&mut self, p: &Path, depth: u32) -> std::io::Result<()> {
        if depth > 16 {
            return Err(std::io::Error::other(format!("{}: too many levels of symlinks", p.display())));
        }
        let p = clean(p);
        // Reproduce symlinked parent directories first.
        let mut real = PathBuf::from("/");
        for c in p.parent().unwrap_or(Path::new("/")).components().skip(1) {
            let next = real.join(c);
            let meta = std::fs::symlink_metadata(&next)?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&next)?;
                if !self.contains(&next) {
                    self.put(&next, Entry::Symlink(target.to_string_lossy().into_owned()));
                }
                real = clean(&next.parent().unwrap_or(Path::new("/")).join(&target));
            } else {
                real = next;
            }
        }
        let Some(name) = p.file_name() else { return Ok(()) };
        let here = real.join(name);
        if self.contains(&here) {
            return Ok(());
        }
        let meta = std::fs::symlink_metadata(&here)?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&here)?;
            self.put(&here, Entry::Symlink(target.to_string_lossy().into_owned()));
            let abs = clean(&here.parent().unwrap_or(Path::new("/")).join(&target));
            self.host_path_depth(&abs, depth + 1)
        } else if meta.is_dir() {
            self.mkdir(&here);
            Ok(())
        } else {
            self.put(&here, Entry::HostFile(here.clone(), meta.permissions().mode() & 0o7777));
            Ok(())
        }
    }

    /// busybox at `DIR/busybox` with a link per applet in `DIR`. Keep DIR
    /// last on PATH: the host's own tools come first.
    pub fn busybox(&mut self, r: &dyn Runner, busybox: &Path, dir: &Path) -> std::io::Result<()> {
        self.host_file_as(busybox, &dir.join("busybox"), 0o755);
        let list = r.probe(&Cmd::new(busybox.to_string_lossy()).arg("--list")).map_err(std::io::Error::other)?;
        for applet in list.text().lines().filter(|a| !a.is_empty() && *a != "busybox") {
            self.symlink(&dir.join(applet), "busybox");
        }
        Ok(())
    }

    /// Total size of the file contents, in bytes (host files as they are now).
    pub fn content_size(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match e {
                Entry::HostFile(p, _) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
                Entry::Data(d, _) => d.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// Copy a host directory recursively (files, links, subdirectories).
    pub fn host_dir(&mut self, dir: &Path) -> std::io::Result<()> {
        self.host_path(dir)?;
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                self.host_dir(&e.path())?;
            } else {
                self.host_path(&e.path())?;
            }
        }
        Ok(())
    }

    /// Write the tree as a newc archive to `w`; returns the uncompressed size.
    pub fn write_to<W: Write>(&self, w: W, compression: Compression) -> std::io::Result<u64> {
        struct Counting<W: Write>(W, u64);
        impl<W: Write> Write for Counting<W> {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let n = self.0.write(b)?;
                self.1 += n as u64;
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                self.0.flush()
            }
        }
        match compression {
            Compression::None => {
                let c = self.write_cpio(Counting(w, 0))?;
                Ok(c.1)
            }
            Compression::Gzip(level) => {
                let gz = flate2::write::GzEncoder::new(w, flate2::Compression::new(level));
                let c = self.write_cpio(Counting(gz, 0))?;
                c.0.finish()?;
                Ok(c.1)
            }
            Compression::Zstd(level) => {
                let mut z = zstd::stream::write::Encoder::new(w, level)?;
                let threads = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
                z.multithread(threads)?;
                // The kernel's decompressor checks the content checksum when present.
                z.include_checksum(true)?;
                let c = self.write_cpio(Counting(z, 0))?;
                c.0.finish()?;
                Ok(c.1)
            }
        }
    }

    fn write_cpio<W: Write>(&self, w: W) -> std::io::Result<W> {
        let mut c = CpioWriter::new(std::io::BufWriter::new(w));
        for (p, e) in &self.entries {
            let name = p.to_string_lossy();
            match e {
                Entry::Dir(m) => c.dir(&name, *m)?,
                Entry::Data(d, m) => c.file(&name, *m, d)?,
                Entry::HostFile(src, m) => {
                    let d = std::fs::read(src)
                        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", src.display())))?;
                    c.file(&name, *m, &d)?
                }
                Entry::Symlink(t) => c.symlink(&name, t)?,
                Entry::CharDev(m, ma, mi) => c.char_device(&name, *m, *ma, *mi)?,
            }
        }
        c.finish()?.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinked_dirs_and_files_are_reproduced() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        std::fs::create_dir_all(d.join("usr/lib")).expect("mkdir");
        std::os::unix::fs::symlink("usr/lib", d.join("lib")).expect("ln");
        std::fs::write(d.join("usr/lib/libx.so.1.2"), b"x").expect("w");
        std::os::unix::fs::symlink("libx.so.1.2", d.join("usr/lib/libx.so.1")).expect("ln");
        let mut t = Tree::new();
        t.host_path(&d.join("lib/libx.so.1")).expect("add");
        let lib = clean(&d.join("lib"));
        assert_eq!(t.entries.get(&lib), Some(&Entry::Symlink("usr/lib".into())));
        assert_eq!(t.entries.get(&d.join("usr/lib/libx.so.1")), Some(&Entry::Symlink("libx.so.1.2".into())));
        assert!(matches!(t.entries.get(&d.join("usr/lib/libx.so.1.2")), Some(Entry::HostFile(..))));
    }
}
