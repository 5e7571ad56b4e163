//! lifeboat's backup archive.
//!
//! A backup is a set of objects on a target (a directory, an SFTP server,
//! an S3 store: see [`target`]): volumes `vol-NNNN.tar.zst` (independent
//! zstd frames; together one tar stream in the POSIX pax format),
//! `manifest.jsonl` (every entry with its metadata and the BLAKE3 of its
//! content) and `backup.json` (volumes, frame table, manifest checksum,
//! statistics), written last. `cat vol-* | zstd -d | tar -x` restores it
//! without lifeboat (encrypted: each volume through `age -d` first). See
//! docs/archive-format.md.

pub mod backup;
pub mod chain;
pub mod compare;
pub mod craft;
pub mod deleted;
pub mod dest;
pub mod frames;
pub mod read;
pub mod restore;
pub mod sign;
pub mod tar;
pub mod target;
pub mod trust;

use std::path::{Path, PathBuf};

pub use backup::{write_backup, BackupOptions, Catalog, ManifestEntry, Stats};

/// Errors of the archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Writing the backup failed (disk full, target gone).
    #[error("cannot write the backup: {0}")]
    Write(std::io::Error),
    /// A path to back up cannot be read at all.
    #[error("cannot back up {0}: {1}")]
    Source(PathBuf, std::io::Error),
    /// The target is not usable.
    #[error("backup target {0}: {1}")]
    Target(String, String),
    /// The catalog cannot be signed (see `sign`).
    #[error("cannot sign the backup: {0}")]
    Sign(#[from] crate::sign::SignError),
    /// The backup cannot be encrypted (see `target::encrypt`).
    #[error(transparent)]
    Crypt(#[from] crate::target::encrypt::CryptError),
}

impl ArchiveError {
    fn write(e: std::io::Error) -> ArchiveError {
        ArchiveError::Write(e)
    }
}

/// Write a file readable by root only (backups hold /etc/shadow and keys); returns its BLAKE3.
pub fn write_private(p: &Path, data: &[u8]) -> Result<String, ArchiveError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(p).map_err(ArchiveError::write)?;
    f.write_all(data).map_err(ArchiveError::write)?;
    f.sync_all().map_err(ArchiveError::write)?;
    Ok(blake3::hash(data).to_hex().to_string())
}
