//! Building a backup entry by entry, with any headers, manifest lines and
//! names: what an attacker who can write to the backup target can make
//! (every checksum correct). The hostile-input tests and the fuzzing seeds
//! use it; lifeboat itself never writes backups this way.

use crate::backup::{manifest_entry, Catalog, ManifestEntry, Stats, FORMAT_VERSION};
use crate::frames::{Codec, FrameWriter, Volume};
use crate::tar::{self, Entry, Kind};
use crate::ArchiveError;
use std::path::{Path, PathBuf};

/// A backup being crafted in a directory.
#[derive(Debug)]
pub struct Crafter {
    dir: PathBuf,
    out: FrameWriter,
    manifest: Vec<u8>,
    /// The catalog's `paths` (what was backed up), `.` by default.
    pub paths: Vec<String>,
}

/// An entry with plain metadata: mode 0644 (0755 for directories), owned by
/// the calling user, a fixed time.
pub fn entry(path: &[u8], kind: Kind, size: u64) -> Entry {
    let mode = if kind == Kind::Dir { 0o755 } else { 0o644 };
    Entry {
        path: path.to_vec(),
        kind,
        mode,
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
        uname: String::new(),
        gname: String::new(),
        size,
        mtime: 1_700_000_000,
        mtime_ns: 0,
        xattrs: Vec::new(),
        sparse: None,
    }
}

impl Crafter {
    /// Start a backup in `dir` (which must exist), in 1 MiB zstd volumes.
    pub fn new(dir: &Path) -> Crafter {
        Crafter {
            dir: dir.to_path_buf(),
            out: FrameWriter::new(std::sync::Arc::new(crate::target::dir::InPlace::new(dir)), 1 << 20, Codec::Zstd(1)),
            manifest: Vec::new(),
            paths: vec![".".into()],
        }
    }

    /// Where the next byte goes in the tar stream.
    pub fn offset(&self) -> u64 {
        self.out.written
    }

    /// Append raw bytes to the tar stream.
    pub fn raw(&mut self, bytes: &[u8]) -> Result<(), ArchiveError> {
        self.out.write_all(bytes).map_err(ArchiveError::Write)
    }

    /// Append an entry's headers, `data` and padding; returns the manifest
    /// line that describes it truthfully (not yet recorded: change it, then [`Crafter::record`]).
    pub fn entry(&mut self, e: &Entry, data: &[u8]) -> Result<ManifestEntry, ArchiveError> {
        let offset = self.offset();
        let mut buf = Vec::new();
        tar::write_header(&mut buf, e);
        buf.extend_from_slice(data);
        tar::pad(&mut buf, data.len() as u64);
        self.raw(&buf)?;
        let blake = (e.kind == Kind::File).then(|| blake3::hash(data).to_hex().to_string());
        Ok(manifest_entry(e, &e.kind, &e.path, offset, blake))
    }

    /// Add a manifest line.
    pub fn record(&mut self, m: &ManifestEntry) {
        if let Ok(line) = serde_json::to_vec(m) {
            self.manifest.extend_from_slice(&line);
            self.manifest.push(b'\n');
        }
    }

    /// Append an entry and its truthful manifest line.
    pub fn add(&mut self, e: &Entry, data: &[u8]) -> Result<(), ArchiveError> {
        let m = self.entry(e, data)?;
        self.record(&m);
        Ok(())
    }

    /// End the tar stream, write the volumes, the manifest and `backup.json`
    /// (unsigned). `edit` may change the catalog before it is written.
    pub fn finish(mut self, edit: impl FnOnce(&mut Catalog)) -> Result<Catalog, ArchiveError> {
        let mut end = Vec::new();
        tar::end(&mut end);
        self.raw(&end)?;
        let (volumes, frames, compressed) = self.out.finish().map_err(ArchiveError::Write)?;
        let mf = crate::write_private(&self.dir.join("manifest.jsonl"), &self.manifest)?;
        let mut catalog = Catalog {
            format: "lifeboat-archive".into(),
            version: FORMAT_VERSION,
            host: "crafted".into(),
            created: "2026-12-01T00:00:00Z".into(),
            compression: "zstd".into(),
            volume_size: 1 << 20,
            volumes,
            frames,
            manifest: Volume { name: "manifest.jsonl".into(), size: self.manifest.len() as u64, blake3: mf },
            paths: self.paths.clone(),
            exclude: Vec::new(),
            stats: Stats { bytes_out: compressed, ..Stats::default() },
            key_id: None,
            encryption: None,
            parent: None,
            deleted: None,
            started_ns: None,
        };
        edit(&mut catalog);
        let text = serde_json::to_vec_pretty(&catalog).map_err(|e| ArchiveError::Write(std::io::Error::other(e)))?;
        crate::write_private(&self.dir.join("backup.json"), &text)?;
        Ok(catalog)
    }
}
