//! `file://` targets: a local directory, which also covers NFS and USB mounts.
//!
//! A backup is staged as `HOST/NAME.partial`, locked (`flock`) by the run
//! that writes it for as long as it runs, and renamed to `HOST/NAME` (never
//! over an existing one) after its catalog was written. A `.partial`
//! directory nobody holds the lock of is the remainder of a run that died:
//! [`FileTarget::scan`] tells the two apart, [`Target::prune_partial`]
//! removes the dead ones. A published directory without a readable
//! `backup.json` is a damaged backup, and [`Target::newest`] refuses it
//! rather than silently taking an older one.

use super::{Listed, ObjectRead, ObjectWriter, Objects, State, Target, Upload, CATALOG};
use crate::ArchiveError;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A local directory (`file:///mnt/backup`).
#[derive(Debug, Clone)]
pub struct FileTarget {
    root: PathBuf,
    /// The markers this process created, each kept open with its `flock` held until removed.
    held: Arc<Mutex<std::collections::HashMap<PathBuf, std::fs::File>>>,
}

use super::MAX_CATALOG;

/// Whether a backup directory's catalog is there and readable: `Complete` or the reason it is not.
fn catalog_state(dir: &Path) -> State {
    let cat = dir.join(CATALOG);
    match std::fs::symlink_metadata(&cat) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return State::Damaged("no backup.json: the catalog is missing".into())
        }
        Err(e) => return State::Damaged(format!("backup.json: {e}")),
        Ok(m) if !m.is_file() => return State::Damaged("backup.json is not a regular file".into()),
        Ok(m) if m.len() > MAX_CATALOG => {
            return State::Damaged(format!("backup.json is {} bytes, more than any catalog", m.len()))
        }
        Ok(_) => {}
    }
    match std::fs::read(&cat) {
        Err(e) => State::Damaged(format!("backup.json: {e}")),
        Ok(text) => super::catalog_state(&text),
    }
}

/// Take the run lock of a staging directory without waiting; None when another process holds it.
fn try_lock(dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    use rustix::fs::{flock, FlockOperation};
    let f = std::fs::File::open(dir)?;
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_partial(p: &Path) -> bool {
    p.to_string_lossy().ends_with(".partial")
}

/// A backup directory is complete when its catalog exists (written last).
pub fn is_complete(p: &Path) -> bool {
    !is_partial(p) && p.join(CATALOG).is_file()
}

/// Names that are never hosts or backups (hidden, lost+found).
fn listed_name(n: &str) -> bool {
    !n.starts_with('.') && n != "lost+found"
}

/// A name used as one path component: no separator, not `.`/`..`, not hidden.
fn component(what: &str, n: &str) -> Result<(), ArchiveError> {
    if n.is_empty() || n.contains('/') || n.contains('\0') || n.starts_with('.') {
        return Err(ArchiveError::Target(format!("{what} {n:?}"), "is not a plain name (refused)".into()));
    }
    Ok(())
}

impl FileTarget {
    /// The target of a `file:///ABSOLUTE/PATH` URL.
    pub fn from_url(url: &str) -> Result<FileTarget, ArchiveError> {
        match url.strip_prefix("file://") {
            Some(p) if p.starts_with('/') => Ok(FileTarget { root: PathBuf::from(p), held: Arc::default() }),
            _ => Err(ArchiveError::Target(
                url.into(),
                "is not a file:///ABSOLUTE/PATH URL (a local, NFS or USB directory)".into(),
            )),
        }
    }

    /// The target in directory `root`.
    pub fn new(root: &Path) -> FileTarget {
        FileTarget { root: root.to_path_buf(), held: Arc::default() }
    }

    fn marker_path(&self, key: &str) -> Result<PathBuf, ArchiveError> {
        if !super::lock::marker_key(key) {
            return Err(super::lock::bad_key(&self.url(), key));
        }
        Ok(self.root.join(key))
    }

    fn host_dir(&self, host: &str) -> Result<PathBuf, ArchiveError> {
        component("host", host)?;
        Ok(self.root.join(host))
    }

    fn err_at(&self, p: &Path, e: std::io::Error) -> ArchiveError {
        ArchiveError::Target(self.url(), format!("{}: {e}", p.display()))
    }
}

impl Target for FileTarget {
    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn local_dir(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn hosts(&self) -> Result<Vec<String>, ArchiveError> {
        let mut v: Vec<String> = std::fs::read_dir(&self.root)
            .map_err(|e| self.err_at(&self.root, e))?
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| listed_name(n))
            .collect();
        v.sort();
        Ok(v)
    }

    fn scan(&self, host: &str) -> Result<Vec<Listed>, ArchiveError> {
        let hd = self.host_dir(host)?;
        let rd = match std::fs::read_dir(&hd) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err_at(&hd, e)),
        };
        let mut dirs: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter(|e| listed_name(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        dirs.sort();
        let mut out = Vec::new();
        for dir in dirs {
            let state = if is_partial(&dir) {
                match try_lock(&dir) {
                    Ok(Some(_)) => State::Interrupted,
                    Ok(None) => State::Running,
                    // Cannot tell (gone meanwhile, or unreadable): never call it dead.
                    Err(_) => State::Running,
                }
            } else {
                catalog_state(&dir)
            };
            let bytes = std::fs::read_dir(&dir)
                .map(|rd| rd.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
                .unwrap_or(0);
            let modified = std::fs::metadata(&dir).and_then(|m| m.modified()).ok();
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            out.push(Listed { name, location: dir.display().to_string(), state, bytes, modified });
        }
        Ok(out)
    }

    fn begin(&self, host: &str, name: &str) -> Result<Arc<dyn Upload>, ArchiveError> {
        use std::os::unix::fs::DirBuilderExt;
        component("backup", name)?;
        if !self.root.is_dir() {
            return Err(ArchiveError::Target(
                self.url(),
                "does not exist or is not a directory (mount the backup filesystem, or create the directory)".into(),
            ));
        }
        let hd = self.host_dir(host)?;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&hd).map_err(|e| self.err_at(&hd, e))?;
        let staging = hd.join(format!("{name}.partial"));
        std::fs::DirBuilder::new().mode(0o700).create(&staging).map_err(|e| self.err_at(&staging, e))?;
        let lock = match try_lock(&staging) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Err(ArchiveError::Target(
                    self.url(),
                    format!("{} is locked by another process (a prune running?)", staging.display()),
                ))
            }
            Err(e) => return Err(self.err_at(&staging, e)),
        };
        // A prune that took the lock between mkdir and flock removed it: then it is unlinked.
        use std::os::unix::fs::MetadataExt;
        if lock.metadata().map(|m| m.nlink() == 0).unwrap_or(true) {
            return Err(ArchiveError::Target(
                self.url(),
                format!("{} was removed while it was being created", staging.display()),
            ));
        }
        Ok(Arc::new(Staged { url: self.url(), staging, done: hd.join(name), lock: Mutex::new(Some(lock)) }))
    }

    fn backup(&self, host: &str, name: &str) -> Result<Arc<dyn Objects>, ArchiveError> {
        component("backup", name)?;
        Ok(Arc::new(DirObjects::new(&self.host_dir(host)?.join(name))))
    }

    fn itself(&self) -> Result<Option<Arc<dyn Objects>>, ArchiveError> {
        if is_complete(&self.root) {
            return Ok(Some(Arc::new(DirObjects::new(&self.root))));
        }
        if self.root.join("manifest.jsonl").is_file() {
            if let State::Damaged(why) = catalog_state(&self.root) {
                return Err(ArchiveError::Target(self.url(), format!("this backup is incomplete or damaged: {why}")));
            }
        }
        Ok(None)
    }

    fn remove_interrupted(&self, host: &str, l: &Listed) -> Result<bool, ArchiveError> {
        if !l.name.ends_with(".partial") {
            return Ok(false);
        }
        let dir = self.host_dir(host)?.join(&l.name);
        // Hold the lock while removing: a run cannot start using it meanwhile.
        let Ok(Some(_lock)) = try_lock(&dir) else { return Ok(false) };
        std::fs::remove_dir_all(&dir).map_err(|e| self.err_at(&dir, e))?;
        Ok(true)
    }

    fn delete(&self, host: &str, name: &str) -> Result<(), ArchiveError> {
        component("backup", name)?;
        let dir = self.host_dir(host)?.join(name);
        // The catalog first: an interrupted delete leaves a damaged backup, never a complete-looking part of one.
        match std::fs::remove_file(dir.join(CATALOG)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.err_at(&dir, e)),
        }
        std::fs::remove_dir_all(&dir).map_err(|e| self.err_at(&dir, e))
    }

    /// Written to a hidden file that is locked (`flock`) first and renamed
    /// into place without replacing, so the marker is never visible unlocked
    /// while its creator lives; the lock is held until [`Target::remove_marker`]
    /// or the process's end.
    fn create_marker(&self, key: &str, data: &[u8]) -> Result<bool, ArchiveError> {
        use rustix::fs::{flock, FlockOperation};
        use std::os::unix::fs::DirBuilderExt;
        let path = self.marker_path(key)?;
        let parent = path.parent().unwrap_or(&self.root).to_path_buf();
        if !self.root.is_dir() {
            return Err(ArchiveError::Target(
                self.url(),
                "does not exist or is not a directory (mount the backup filesystem, or create the directory)".into(),
            ));
        }
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&parent).map_err(|e| self.err_at(&parent, e))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let tmp = parent.join(format!("{name}.{}.{nanos}.new", std::process::id()));
        let mut f = create_private(&tmp).map_err(|e| self.err_at(&tmp, e))?;
        let written = flock(&f, FlockOperation::NonBlockingLockExclusive)
            .map_err(std::io::Error::from)
            .and_then(|()| f.write_all(data))
            .and_then(|()| f.sync_all());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.err_at(&tmp, e));
        }
        let placed = place_new(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        let placed = match placed {
            // Neither a no-replace rename nor hard links (9p, FAT): an exclusive create, then the flock.
            Err(e) if links_unsupported(&e) => create_locked(&path, data),
            other => other.map(|made| made.then_some(f)),
        };
        match placed {
            Ok(Some(f)) => {
                self.held.lock().map_err(|_| self.err_at(&path, std::io::Error::other("poisoned")))?.insert(path, f);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(self.err_at(&path, e)),
        }
    }

    fn read_marker(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        let path = self.marker_path(key)?;
        match read_regular(&path, super::lock::MAX_MARKER) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err_at(&path, e)),
        }
    }

    fn remove_marker(&self, key: &str) -> Result<(), ArchiveError> {
        let path = self.marker_path(key)?;
        let removed = match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.err_at(&path, e)),
            _ => Ok(()),
        };
        // Unlinked first, then unlocked: nobody sees our marker unlocked.
        if let Ok(mut h) = self.held.lock() {
            h.remove(&path);
        }
        removed
    }

    /// Compared first, then renamed to a name of its own
    /// (`.lock.stale.PID.N`), where its content and `flock` are checked
    /// again before it is unlinked: only the marker judged stale is
    /// removed. Were it replaced between the comparison and the rename (a
    /// window of two system calls), the marker moved aside is another run's:
    /// it is put back without replacing anything, and false is returned.
    fn remove_stale_marker(&self, key: &str, seen: &[u8]) -> Result<bool, ArchiveError> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let path = self.marker_path(key)?;
        if self.read_marker(key)?.as_deref() != Some(seen) {
            return Ok(false);
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let aside = path.with_file_name(format!("{name}.stale.{}.{n}", std::process::id()));
        match std::fs::rename(&path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.err_at(&path, e)),
        }
        let same = read_regular(&aside, super::lock::MAX_MARKER).is_ok_and(|b| b == seen);
        if same && flock_state(&aside) != Some(true) {
            std::fs::remove_file(&aside).map_err(|e| self.err_at(&aside, e))?;
            return Ok(true);
        }
        // Another run's marker: back in place, unless a third one took the name meanwhile.
        let back = place_new(&aside, &path);
        let _ = std::fs::remove_file(&aside);
        back.map_err(|e| self.err_at(&path, e))?;
        Ok(false)
    }

    /// Alive while its creator holds the `flock`, and also for
    /// [`FRESH_MARKER`] after it was written: on filesystems without
    /// no-replace renames or hard links (9p, FAT) a marker is visible for a
    /// moment before its creator locks it.
    fn marker_alive(&self, key: &str) -> Option<bool> {
        let path = self.marker_path(key).ok()?;
        match flock_state(&path)? {
            true => Some(true),
            false => {
                let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
                let age = std::time::SystemTime::now().duration_since(modified).unwrap_or_default();
                Some(age < FRESH_MARKER)
            }
        }
    }

    fn free_space(&self) -> Result<Option<u64>, ArchiveError> {
        let st = rustix::fs::statvfs(&self.root).map_err(|e| self.err_at(&self.root, e.into()))?;
        Ok(Some(st.f_bavail.saturating_mul(st.f_frsize)))
    }
}

/// A marker written this recently counts as alive even when nobody holds
/// its `flock` (yet).
pub const FRESH_MARKER: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether someone holds the `flock` of the file at `path`; None when it cannot be told.
fn flock_state(path: &Path) -> Option<bool> {
    let f = std::fs::File::open(path).ok()?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockShared) {
        Ok(()) => Some(false),
        Err(rustix::io::Errno::WOULDBLOCK) => Some(true),
        Err(_) => None,
    }
}

/// Give the file `tmp` the name `path` only when nothing has that name
/// (false when something has): a rename that never replaces, or where the
/// filesystem has none (NFS), a hard link, which fails on an existing name
/// too. `tmp` may stay behind as a second name; the caller removes it.
fn place_new(tmp: &Path, path: &Path) -> std::io::Result<bool> {
    use rustix::io::Errno;
    let no_replace = rustix::fs::RenameFlags::NOREPLACE;
    match rustix::fs::renameat_with(rustix::fs::CWD, tmp, rustix::fs::CWD, path, no_replace) {
        Ok(()) => return Ok(true),
        Err(Errno::EXIST) => return Ok(false),
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::hard_link(tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Rename a directory to a name that must not exist yet. Filesystems
/// without `RENAME_NOREPLACE` (NFS, 9p, some FUSE) get a check for the name
/// and a plain rename; a non-empty directory of that name is never
/// replaced either way (rename(2) refuses it), and the host's lock on the
/// target keeps two runs of this lifeboat from racing for one name.
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::io::Errno;
    match rustix::fs::renameat_with(rustix::fs::CWD, from, rustix::fs::CWD, to, rustix::fs::RenameFlags::NOREPLACE) {
        Ok(()) => return Ok(()),
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
        Err(e) => return Err(e.into()),
    }
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "a backup of this name exists already"));
    }
    std::fs::rename(from, to)
}

/// Whether a hard link failed because the filesystem has none.
fn links_unsupported(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    [Errno::PERM, Errno::OPNOTSUPP, Errno::NOSYS, Errno::XDEV, Errno::INVAL, Errno::MLINK]
        .iter()
        .any(|x| e.raw_os_error() == Some(x.raw_os_error()))
}

/// Create `path` exclusively, lock it and write `data` (for filesystems
/// without no-replace renames or hard links: the marker is visible unlocked
/// for a moment). None when it exists.
fn create_locked(path: &Path, data: &[u8]) -> std::io::Result<Option<std::fs::File>> {
    use rustix::fs::{flock, FlockOperation};
    let mut f = match create_private(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(e),
    };
    let written = flock(&f, FlockOperation::NonBlockingLockExclusive)
        .map_err(std::io::Error::from)
        .and_then(|()| f.write_all(data))
        .and_then(|()| f.sync_all());
    match written {
        Ok(()) => Ok(Some(f)),
        Err(e) => {
            let _ = std::fs::remove_file(path);
            Err(e)
        }
    }
}

/// A backup being staged in `HOST/NAME.partial`, locked by this run.
#[derive(Debug)]
struct Staged {
    url: String,
    staging: PathBuf,
    done: PathBuf,
    /// The run lock, released when the upload ends.
    lock: Mutex<Option<std::fs::File>>,
}

/// Create a file readable by root only, never over an existing one.
fn create_private(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(p)
}

/// A file being written as an object.
#[derive(Debug)]
struct FileWriter {
    file: std::fs::File,
    path: PathBuf,
}

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf).map_err(|e| with_path(&self.path, e))
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.file.write_all(buf).map_err(|e| with_path(&self.path, e))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().map_err(|e| with_path(&self.path, e))
    }
}

impl ObjectWriter for FileWriter {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        self.file.sync_all().map_err(|e| with_path(&self.path, e))
    }
}

/// An I/O error with the path in it (ENOSPC keeps its kind and OS error).
fn with_path(p: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

/// Write a whole object into `dir` under `name`, durably.
fn write_object(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let p = dir.join(name);
    let mut f = create_private(&p).map_err(|e| with_path(&p, e))?;
    f.write_all(data).map_err(|e| with_path(&p, e))?;
    f.sync_all().map_err(|e| with_path(&p, e))
}

fn open_object(dir: &Path, name: &str) -> std::io::Result<Box<dyn ObjectWriter>> {
    component("object", name).map_err(std::io::Error::other)?;
    let path = dir.join(name);
    let file = create_private(&path).map_err(|e| with_path(&path, e))?;
    Ok(Box::new(FileWriter { file, path }))
}

impl Upload for Staged {
    fn location(&self) -> String {
        self.done.display().to_string()
    }

    fn create(&self, name: &str) -> std::io::Result<Box<dyn ObjectWriter>> {
        open_object(&self.staging, name)
    }

    fn commit(&self, catalog: &[u8]) -> Result<Arc<dyn Objects>, ArchiveError> {
        let err = |p: &Path, e: std::io::Error| ArchiveError::Target(self.url.clone(), format!("{}: {e}", p.display()));
        write_object(&self.staging, CATALOG, catalog).map_err(|e| err(&self.staging, e))?;
        // Never over an existing backup of the same name (a directory rename would replace an empty one).
        rename_no_replace(&self.staging, &self.done).map_err(|e| err(&self.done, e))?;
        // The rename is durable only when the directory is synced.
        if let Some(parent) = self.done.parent() {
            if let Ok(d) = std::fs::File::open(parent) {
                let _ = d.sync_all();
            }
        }
        if let Ok(mut l) = self.lock.lock() {
            l.take();
        }
        Ok(Arc::new(DirObjects::new(&self.done)))
    }

    fn abort(&self) {
        let _ = std::fs::remove_dir_all(&self.staging);
        if let Ok(mut l) = self.lock.lock() {
            l.take();
        }
    }
}

/// A backup written straight into an existing, empty directory (no
/// staging: for [`crate::backup::write_backup`] into a directory the caller
/// manages, and for tests).
#[derive(Debug)]
pub struct InPlace {
    dir: PathBuf,
}

impl InPlace {
    /// Write into `dir`.
    pub fn new(dir: &Path) -> InPlace {
        InPlace { dir: dir.to_path_buf() }
    }
}

impl Upload for InPlace {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn create(&self, name: &str) -> std::io::Result<Box<dyn ObjectWriter>> {
        open_object(&self.dir, name)
    }

    fn commit(&self, catalog: &[u8]) -> Result<Arc<dyn Objects>, ArchiveError> {
        write_object(&self.dir, CATALOG, catalog).map_err(ArchiveError::Write)?;
        Ok(Arc::new(DirObjects::new(&self.dir)))
    }

    fn abort(&self) {}
}

/// The objects of a backup in a directory: regular files only, never
/// through a symbolic link (unless [`DirObjects::follow_volume_links`]),
/// never blocking on a FIFO.
#[derive(Debug, Clone)]
pub struct DirObjects {
    dir: PathBuf,
    volume_links: bool,
}

impl DirObjects {
    /// The backup in `dir`.
    pub fn new(dir: &Path) -> DirObjects {
        DirObjects { dir: dir.to_path_buf(), volume_links: false }
    }

    /// Volumes may be symbolic links (a media set gathered into one
    /// directory of links by recover); the catalog, manifest and signature
    /// never are.
    pub fn follow_volume_links(mut self) -> DirObjects {
        self.volume_links = true;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Open a file of a backup for reading without following a symbolic link in
/// its last component (unless `follow`) and without blocking on a FIFO;
/// refuse anything but a regular file of at most `max` bytes.
fn open_regular(path: &Path, follow: bool, max: u64) -> std::io::Result<(std::fs::File, u64)> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = OFlags::NONBLOCK | OFlags::NOCTTY;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    let f = std::fs::OpenOptions::new().read(true).custom_flags(flags.bits() as i32).open(path).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            std::io::Error::other("is a symbolic link (refused: the files of a backup must be regular files)")
        } else {
            e
        }
    })?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("is not a regular file (refused)"));
    }
    if meta.len() > max {
        return Err(std::io::Error::other(format!(
            "is {} bytes, more than the {max} a backup's file may have",
            meta.len()
        )));
    }
    Ok((f, meta.len()))
}

/// Read a whole regular file of at most `max` bytes (see [`open_regular`]).
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let (f, len) = open_regular(path, false, max)?;
    let mut data = Vec::with_capacity(len as usize);
    f.take(max).read_to_end(&mut data)?;
    Ok(data)
}

/// A volume file, read by position.
#[derive(Debug)]
struct FileObject {
    file: std::fs::File,
    len: u64,
}

impl ObjectRead for FileObject {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, offset)
    }
}

impl Objects for DirObjects {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn local_dir(&self) -> Option<&Path> {
        Some(&self.dir)
    }

    fn open_volume(&self, name: &str, max: u64) -> std::io::Result<Arc<dyn ObjectRead>> {
        let (file, len) = open_regular(&self.dir.join(name), self.volume_links, max)?;
        Ok(Arc::new(FileObject { file, len }))
    }

    fn read(&self, name: &str, max: u64) -> std::io::Result<Vec<u8>> {
        read_regular(&self.dir.join(name), max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> (tempfile::TempDir, FileTarget) {
        let tmp = tempfile::tempdir().expect("tmp");
        let t = FileTarget::new(tmp.path());
        (tmp, t)
    }

    fn fake_backup(t: &FileTarget, name: &str) -> PathBuf {
        let d = t.root.join("h").join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        // A catalog as this version writes it (fields added later have defaults).
        let c = r#"{"format":"lifeboat-archive","version":1,"host":"h","created":"2026-01-01T00:00:00Z",
            "compression":"zstd","volume_size":1048576,"volumes":[],"frames":[],
            "manifest":{"name":"manifest.jsonl","size":0,"blake3":""},
            "stats":{"entries":0,"files":0,"bytes_in":0,"bytes_out":0,"sockets_skipped":0,"changed":[],"unreadable":[]}}"#;
        std::fs::write(d.join("backup.json"), c).expect("write");
        d
    }

    #[test]
    fn the_newest_backup_is_taken_and_a_newer_damaged_one_is_refused() {
        let (_tmp, t) = target();
        let old = fake_backup(&t, "2026-01-01T000000.000Z");
        assert_eq!(t.newest("h").expect("newest").location, old.display().to_string());
        let new = fake_backup(&t, "2026-01-02T000000.000Z");
        assert_eq!(t.newest("h").expect("newest").name, "2026-01-02T000000.000Z");
        std::fs::write(new.join("backup.json"), b"{\"format\": tru").expect("damage");
        let e = t.newest("h").expect_err("damaged newest").to_string();
        assert!(e.contains("2026-01-02T000000.000Z") && e.contains("damaged"), "{e}");
        assert!(e.contains(&format!("--from file://{}", old.display())), "names the fix: {e}");
        std::fs::remove_file(new.join("backup.json")).expect("rm");
        let e = t.newest("h").expect_err("missing catalog").to_string();
        assert!(e.contains("no backup.json"), "{e}");
    }

    #[test]
    fn a_dead_partial_is_interrupted_a_locked_one_is_running_and_only_the_dead_is_pruned() {
        let (_tmp, t) = target();
        fake_backup(&t, "2026-01-01T000000.000Z");
        let live = t.begin("h", "2026-01-03T000000.000Z").expect("begin");
        std::fs::create_dir_all(t.root.join("h/2026-01-02T000000.000Z.partial")).expect("dead");
        let states: Vec<State> = t.scan("h").expect("scan").into_iter().map(|l| l.state).collect();
        assert_eq!(states, vec![State::Complete, State::Interrupted, State::Running]);
        // Staging directories never count as the newest backup.
        assert_eq!(t.newest("h").expect("newest").name, "2026-01-01T000000.000Z");
        let removed = t.prune_partial("h").expect("prune");
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].name, "2026-01-02T000000.000Z.partial");
        assert!(t.root.join("h/2026-01-03T000000.000Z.partial").is_dir(), "the live run's staging directory stays");
        drop(live);
        assert_eq!(t.prune_partial("h").expect("prune").len(), 1, "dead once its run ended");
    }

    #[test]
    fn a_commit_writes_the_catalog_last_and_never_replaces_a_backup() {
        let (_tmp, t) = target();
        let up = t.begin("h", "b1").expect("begin");
        let mut w = up.create("vol-0001.tar.zst").expect("create");
        w.write_all(b"data").expect("write");
        w.finish().expect("finish");
        assert!(up.create("vol-0001.tar.zst").is_err(), "an object is written once");
        assert!(up.create("../escape").is_err(), "object names are plain names");
        assert!(t.newest("h").is_err(), "nothing is visible before the commit");
        let b = up.commit(b"{}").expect("commit");
        assert_eq!(b.read("vol-0001.tar.zst", 10).expect("read"), b"data");
        assert_eq!(t.scan("h").expect("scan").len(), 1);
        // A second run with the same name cannot replace it.
        let up2 = t.begin("h", "b1").expect("begin again");
        assert!(up2.commit(b"{}").is_err(), "create-only commit");
        up2.abort();
        assert_eq!(t.backup("h", "b1").expect("b1").read("vol-0001.tar.zst", 10).expect("kept"), b"data");
        assert!(t.begin("../x", "b").is_err() && t.begin("h", "a/b").is_err(), "names are refused");
    }

    #[test]
    fn volumes_are_read_by_range_and_links_are_refused_unless_asked() {
        let (tmp, _t) = target();
        std::fs::write(tmp.path().join("real"), b"0123456789").expect("write");
        std::os::unix::fs::symlink("real", tmp.path().join("vol-0001.tar.zst")).expect("link");
        let o = DirObjects::new(tmp.path());
        assert!(o.open_volume("vol-0001.tar.zst", 100).is_err(), "a link is refused");
        let o = o.follow_volume_links();
        let v = o.open_volume("vol-0001.tar.zst", 100).expect("followed");
        let mut buf = [0u8; 3];
        v.read_at(4, &mut buf).expect("range");
        assert_eq!(&buf, b"456");
        assert!(o.open_volume("vol-0001.tar.zst", 5).is_err(), "bounded");
        std::os::unix::fs::symlink("real", tmp.path().join("backup.json")).expect("link");
        assert!(o.read("backup.json", 100).is_err(), "the catalog is never a link");
    }

    /// Date a file back past [`FRESH_MARKER`].
    fn age(path: &Path) {
        let then = std::time::SystemTime::now() - FRESH_MARKER * 6;
        std::fs::File::options().write(true).open(path).expect("open").set_modified(then).expect("mtime");
    }

    #[test]
    fn two_takeovers_of_one_stale_lock_leave_exactly_one_holder() {
        let (tmp, t) = target();
        let stale = br#"{"purpose":"backup","machine":"gone","pid":1,"since":0,"token":"old"}"#;
        std::fs::create_dir_all(tmp.path().join("h")).expect("mkdir");
        std::fs::write(tmp.path().join("h/.lock"), stale).expect("write");
        age(&tmp.path().join("h/.lock"));
        // Run A and run B both judged it stale; A removes it and takes the lock.
        let a = super::super::lock::acquire(&t, "h", "prune", std::time::Duration::ZERO).expect("A takes over");
        // B, late, removes only the marker it judged stale: A's stays.
        assert!(!t.remove_stale_marker("h/.lock", stale).expect("B"), "not the stale one any more");
        assert_eq!(t.marker_alive("h/.lock"), Some(true));
        let e = super::super::lock::acquire(&t, "h", "backup", std::time::Duration::ZERO).expect_err("B waits");
        assert!(e.to_string().contains("locked by a prune"), "{e}");
        let names: Vec<_> =
            std::fs::read_dir(tmp.path().join("h")).expect("ls").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from(".lock")], "nothing moved aside is left");
        drop(a);
        assert_eq!(t.read_marker("h/.lock").expect("read"), None);
    }

    #[test]
    fn a_marker_is_create_only_flocked_while_held_and_hidden_from_listings() {
        let (tmp, t) = target();
        assert!(t.create_marker("h/.lock", b"one").expect("create"), "made");
        assert!(!t.create_marker("h/.lock", b"two").expect("again"), "create-only");
        assert_eq!(t.read_marker("h/.lock").expect("read").as_deref(), Some(&b"one"[..]));
        assert_eq!(t.marker_alive("h/.lock"), Some(true), "this process holds its flock");
        assert!(t.scan("h").expect("scan").is_empty(), "a marker is no backup");
        let names: Vec<_> =
            std::fs::read_dir(tmp.path().join("h")).expect("ls").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from(".lock")], "no temporary file left");
        t.remove_marker("h/.lock").expect("remove");
        assert_eq!(t.read_marker("h/.lock").expect("read"), None);
        t.remove_marker("h/.lock").expect("removing a gone marker is fine");
        // Left by a process that died: nobody holds its flock.
        std::fs::write(tmp.path().join("h/.lock"), b"dead").expect("write");
        assert_eq!(t.marker_alive("h/.lock"), Some(true), "just written: maybe not locked yet");
        age(&tmp.path().join("h/.lock"));
        assert_eq!(t.marker_alive("h/.lock"), Some(false));
        assert!(
            t.create_marker("h/backup", b"x").is_err() && t.create_marker("../.x", b"x").is_err(),
            "marker names only"
        );
        assert!(t.free_space().expect("statvfs").is_some());
        // Where neither no-replace renames nor hard links exist: an exclusive create, locked.
        let p = tmp.path().join("h/.other");
        let held = create_locked(&p, b"x").expect("create").expect("made");
        assert!(create_locked(&p, b"y").expect("again").is_none(), "create-only");
        assert_eq!(t.marker_alive("h/.other"), Some(true));
        drop(held);
        age(&p);
        assert_eq!(t.marker_alive("h/.other"), Some(false));
        assert!(links_unsupported(&std::io::Error::from_raw_os_error(rustix::io::Errno::PERM.raw_os_error())));
        assert!(!links_unsupported(&std::io::Error::from_raw_os_error(rustix::io::Errno::ACCESS.raw_os_error())));
    }

    #[test]
    fn no_backup_at_all_is_an_error() {
        let (_tmp, t) = target();
        assert!(t.newest("h").is_err());
    }
}
