//! Where backups go. This version has `file://` (a local directory, which
//! also covers NFS and USB mounts); SSH, object storage and tape implement
//! the same interface later.
//!
//! A backup is staged as `HOST/NAME.partial`, locked (`flock`) by the run
//! that writes it for as long as it runs, and renamed to `HOST/NAME` when it
//! is complete. A `.partial` directory nobody holds the lock of is the
//! remainder of a run that died: [`FileTarget::scan`] tells the two apart,
//! [`FileTarget::prune_partial`] removes the dead ones. A published directory
//! without a readable `backup.json` is a damaged backup, and
//! [`FileTarget::newest`] refuses it rather than silently taking an older one.

use crate::ArchiveError;
use std::path::{Path, PathBuf};

/// A place that holds backups.
pub trait Target {
    /// A fresh, private, locked staging directory for a backup named `name`.
    fn begin(&self, host: &str, name: &str) -> Result<Staging, ArchiveError>;
    /// Make the staged backup visible under its name, atomically.
    fn publish(&self, host: &str, name: &str) -> Result<PathBuf, ArchiveError>;
    /// Throw away a staged backup that did not complete.
    fn abort(&self, host: &str, name: &str);
    /// Complete backups of a host, oldest first.
    fn list(&self, host: &str) -> Result<Vec<PathBuf>, ArchiveError>;
}

/// A staging directory and the lock that marks its run as alive (released when dropped).
#[derive(Debug)]
pub struct Staging {
    /// The directory (`HOST/NAME.partial`).
    pub dir: PathBuf,
    _lock: std::fs::File,
}

/// A local directory (`file:///mnt/backup`).
#[derive(Debug, Clone)]
pub struct FileTarget {
    /// The directory.
    pub root: PathBuf,
}

/// What a directory under a host's directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// A published backup with a readable catalog.
    Complete,
    /// A published backup whose catalog is missing or unreadable (the reason).
    Damaged(String),
    /// A `.partial` directory whose run is dead (nobody holds its lock).
    Interrupted,
    /// A `.partial` directory a live run is writing.
    Running,
}

/// One directory of a host's backups, as [`FileTarget::scan`] finds it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The directory.
    pub dir: PathBuf,
    /// What it is.
    pub state: State,
    /// Bytes of the files in it.
    pub bytes: u64,
    /// When it was last modified.
    pub modified: Option<std::time::SystemTime>,
}

/// Parse a target URL.
pub fn open(url: &str) -> Result<FileTarget, ArchiveError> {
    match url.strip_prefix("file://") {
        Some(p) if p.starts_with('/') => Ok(FileTarget { root: PathBuf::from(p) }),
        _ => Err(ArchiveError::Target(
            url.into(),
            "only file:///ABSOLUTE/PATH targets are supported by this version (a local, NFS or USB directory)".into(),
        )),
    }
}

/// The largest `backup.json` read (a catalog of a 100 TB backup is about 1 GiB of frame table at 8 MiB frames; be generous).
const MAX_CATALOG: u64 = 4 << 30;

/// Whether a backup directory's catalog is there and readable: `Ok` or the reason it is not.
fn catalog_state(dir: &Path) -> State {
    let cat = dir.join("backup.json");
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
        Ok(text) => match serde_json::from_slice::<crate::Catalog>(&text) {
            Ok(_) => State::Complete,
            Err(e) => State::Damaged(format!("backup.json is damaged: {e}")),
        },
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

impl FileTarget {
    fn host_dir(&self, host: &str) -> PathBuf {
        self.root.join(host)
    }

    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn err_at(&self, p: &Path, e: std::io::Error) -> ArchiveError {
        ArchiveError::Target(self.url(), format!("{}: {e}", p.display()))
    }

    /// The host directories on the target, sorted.
    pub fn hosts(&self) -> Result<Vec<String>, ArchiveError> {
        let mut v: Vec<String> = std::fs::read_dir(&self.root)
            .map_err(|e| self.err_at(&self.root, e))?
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.') && n != "lost+found")
            .collect();
        v.sort();
        Ok(v)
    }

    /// Every backup directory of a host, complete or not, oldest first (names are times).
    pub fn scan(&self, host: &str) -> Result<Vec<Listed>, ArchiveError> {
        let hd = self.host_dir(host);
        let rd = match std::fs::read_dir(&hd) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err_at(&hd, e)),
        };
        let mut dirs: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                !n.starts_with('.') && n != "lost+found"
            })
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
            out.push(Listed { dir, state, bytes, modified });
        }
        Ok(out)
    }

    /// The newest published backup of a host. A newer directory that is not
    /// a complete backup (missing or damaged `backup.json`) is an error
    /// naming it: an older backup is never taken silently in its place.
    /// Staging directories (`.partial`, running or dead) never count.
    pub fn newest(&self, host: &str) -> Result<PathBuf, ArchiveError> {
        let all = self.scan(host)?;
        let published: Vec<&Listed> = all.iter().filter(|l| !is_partial(&l.dir)).collect();
        let Some(last) = published.last() else {
            let partial = all.iter().filter(|l| l.state == State::Interrupted).count();
            let note = if partial > 0 {
                format!(" ({partial} interrupted run(s) left *.partial directories: they are not backups)")
            } else {
                String::new()
            };
            return Err(ArchiveError::Target(self.url(), format!("no complete backup of {host} in it{note}")));
        };
        match &last.state {
            State::Complete => Ok(last.dir.clone()),
            State::Damaged(why) => {
                let older = published.iter().rev().find(|l| l.state == State::Complete);
                let fix = match older {
                    Some(o) => {
                        format!("to use the newest complete one, give it explicitly: --from file://{}", o.dir.display())
                    }
                    None => "no older complete backup of this host is on the target either".into(),
                };
                Err(ArchiveError::Target(
                    self.url(),
                    format!(
                        "the newest backup of {host}, {}, is incomplete or damaged ({why}); lifeboat does not silently take an older one: {fix}",
                        last.dir.display()
                    ),
                ))
            }
            // Not reached: only staging directories are Interrupted or Running.
            State::Interrupted | State::Running => Ok(last.dir.clone()),
        }
    }

    /// The backup a URL names: the directory itself when it is a backup,
    /// else the newest backup of `host` in it ([`FileTarget::newest`]).
    pub fn choose(&self, host: &str) -> Result<PathBuf, ArchiveError> {
        if is_complete(&self.root) {
            return Ok(self.root.clone());
        }
        if self.root.join("manifest.jsonl").is_file() {
            if let State::Damaged(why) = catalog_state(&self.root) {
                return Err(ArchiveError::Target(self.url(), format!("this backup is incomplete or damaged: {why}")));
            }
        }
        self.newest(host)
    }

    /// Remove the `.partial` directories of dead runs of a host (never one a
    /// live run holds); returns what was removed.
    pub fn prune_partial(&self, host: &str) -> Result<Vec<Listed>, ArchiveError> {
        let mut removed = Vec::new();
        for l in self.scan(host)?.into_iter().filter(|l| l.state == State::Interrupted) {
            // Hold the lock while removing: a run cannot start using it meanwhile.
            let Ok(Some(_lock)) = try_lock(&l.dir) else { continue };
            std::fs::remove_dir_all(&l.dir).map_err(|e| self.err_at(&l.dir, e))?;
            removed.push(l);
        }
        Ok(removed)
    }
}

impl Target for FileTarget {
    fn begin(&self, host: &str, name: &str) -> Result<Staging, ArchiveError> {
        use std::os::unix::fs::DirBuilderExt;
        if !self.root.is_dir() {
            return Err(ArchiveError::Target(
                self.url(),
                "does not exist or is not a directory (mount the backup filesystem, or create the directory)".into(),
            ));
        }
        let hd = self.host_dir(host);
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
        Ok(Staging { dir: staging, _lock: lock })
    }

    fn publish(&self, host: &str, name: &str) -> Result<PathBuf, ArchiveError> {
        let hd = self.host_dir(host);
        let done = hd.join(name);
        std::fs::rename(hd.join(format!("{name}.partial")), &done).map_err(|e| self.err_at(&done, e))?;
        // The rename is durable only when the directory is synced.
        if let Ok(d) = std::fs::File::open(&hd) {
            let _ = d.sync_all();
        }
        Ok(done)
    }

    fn abort(&self, host: &str, name: &str) {
        let _ = std::fs::remove_dir_all(self.host_dir(host).join(format!("{name}.partial")));
    }

    fn list(&self, host: &str) -> Result<Vec<PathBuf>, ArchiveError> {
        Ok(self.scan(host)?.into_iter().filter(|l| l.state == State::Complete).map(|l| l.dir).collect())
    }
}

/// A backup directory is complete when its catalog exists (written last).
pub fn is_complete(p: &Path) -> bool {
    !is_partial(p) && p.join("backup.json").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> (tempfile::TempDir, FileTarget) {
        let tmp = tempfile::tempdir().expect("tmp");
        let t = FileTarget { root: tmp.path().to_path_buf() };
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
        assert_eq!(t.newest("h").expect("newest"), old);
        let new = fake_backup(&t, "2026-01-02T000000.000Z");
        assert_eq!(t.newest("h").expect("newest"), new);
        std::fs::write(new.join("backup.json"), b"{\"format\": tru").expect("damage");
        let e = t.newest("h").expect_err("damaged newest").to_string();
        assert!(e.contains("2026-01-02T000000.000Z") && e.contains("damaged"), "{e}");
        assert!(e.contains(&format!("--from file://{}", old.display())), "names the fix: {e}");
        std::fs::remove_file(new.join("backup.json")).expect("rm");
        let e = t.newest("h").expect_err("missing catalog").to_string();
        assert!(e.contains("no backup.json"), "{e}");
        assert_eq!(t.list("h").expect("list"), vec![old]);
    }

    #[test]
    fn a_dead_partial_is_interrupted_a_locked_one_is_running_and_only_the_dead_is_pruned() {
        let (_tmp, t) = target();
        let done = fake_backup(&t, "2026-01-01T000000.000Z");
        let live = t.begin("h", "2026-01-03T000000.000Z").expect("begin");
        std::fs::create_dir_all(t.root.join("h/2026-01-02T000000.000Z.partial")).expect("dead");
        let states: Vec<State> = t.scan("h").expect("scan").into_iter().map(|l| l.state).collect();
        assert_eq!(states, vec![State::Complete, State::Interrupted, State::Running]);
        // Staging directories never count as the newest backup.
        assert_eq!(t.newest("h").expect("newest"), done);
        let removed = t.prune_partial("h").expect("prune");
        assert_eq!(removed.len(), 1);
        assert!(removed[0].dir.ends_with("2026-01-02T000000.000Z.partial"));
        assert!(live.dir.is_dir(), "the live run's staging directory stays");
        drop(live);
        assert_eq!(t.prune_partial("h").expect("prune").len(), 1, "dead once its run ended");
    }

    #[test]
    fn no_backup_at_all_is_an_error() {
        let (_tmp, t) = target();
        assert!(t.newest("h").is_err());
    }
}
