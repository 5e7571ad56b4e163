//! Where backups go. This version has `file://` (a local directory, which
//! also covers NFS and USB mounts); SSH, object storage and tape implement
//! the same interface later.

use crate::ArchiveError;
use std::path::{Path, PathBuf};

/// A place that holds backups.
pub trait Target {
    /// A fresh, private staging directory for a backup named `name`.
    fn begin(&self, host: &str, name: &str) -> Result<PathBuf, ArchiveError>;
    /// Make the staged backup visible under its name, atomically.
    fn publish(&self, host: &str, name: &str) -> Result<PathBuf, ArchiveError>;
    /// Throw away a staged backup that did not complete.
    fn abort(&self, host: &str, name: &str);
    /// Complete backups of a host, oldest first.
    fn list(&self, host: &str) -> Result<Vec<PathBuf>, ArchiveError>;
}

/// A local directory (`file:///mnt/backup`).
#[derive(Debug, Clone)]
pub struct FileTarget {
    /// The directory.
    pub root: PathBuf,
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

impl FileTarget {
    fn host_dir(&self, host: &str) -> PathBuf {
        self.root.join(host)
    }

    fn err(&self, e: std::io::Error) -> ArchiveError {
        ArchiveError::Target(format!("file://{}", self.root.display()), e.to_string())
    }
}

impl Target for FileTarget {
    fn begin(&self, host: &str, name: &str) -> Result<PathBuf, ArchiveError> {
        use std::os::unix::fs::DirBuilderExt;
        if !self.root.is_dir() {
            return Err(ArchiveError::Target(
                format!("file://{}", self.root.display()),
                "does not exist or is not a directory (mount the backup filesystem, or create the directory)".into(),
            ));
        }
        let hd = self.host_dir(host);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&hd).map_err(|e| self.err(e))?;
        let staging = hd.join(format!("{name}.partial"));
        std::fs::DirBuilder::new().mode(0o700).create(&staging).map_err(|e| self.err(e))?;
        Ok(staging)
    }

    fn publish(&self, host: &str, name: &str) -> Result<PathBuf, ArchiveError> {
        let hd = self.host_dir(host);
        let done = hd.join(name);
        std::fs::rename(hd.join(format!("{name}.partial")), &done).map_err(|e| self.err(e))?;
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
        let hd = self.host_dir(host);
        if !hd.exists() {
            return Ok(Vec::new());
        }
        let mut v: Vec<PathBuf> = std::fs::read_dir(&hd)
            .map_err(|e| self.err(e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_complete(p))
            .collect();
        v.sort();
        Ok(v)
    }
}

/// A backup directory is complete when its catalog exists (written last).
pub fn is_complete(p: &Path) -> bool {
    !p.to_string_lossy().ends_with(".partial") && p.join("backup.json").is_file()
}
