//! What a target holds (`backup list`), removing what dead runs left
//! (`backup prune --partial`), and the summary of one backup (`backup info`).

use crate::{Error, Feedback};
use lifeboat_archive::sign::TrustedKeys;
use lifeboat_archive::target::{Listed, State};
use lifeboat_archive::trust::{self, Policy, Verdict};
use lifeboat_archive::Catalog;
use serde::Serialize;

/// The numbers of one backup, as `backup list` and `backup info` show them.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The host it is of.
    pub host: String,
    /// When it was made.
    pub created: String,
    /// Bytes stored (its volumes).
    pub bytes: u64,
    /// Files in it.
    pub files: u64,
    /// Entries in it.
    pub entries: u64,
    /// Content bytes read.
    pub content_bytes: u64,
    /// Stored bytes per content byte.
    pub ratio: f64,
    /// Volumes.
    pub volumes: usize,
    /// `zstd` or `gzip`.
    pub compression: String,
    /// Entries that changed while read or could not be read.
    pub warnings: usize,
    /// Files that shrank while read (not stored as they were).
    pub shrank: usize,
}

impl Summary {
    /// The summary of a catalog.
    pub fn of(c: &Catalog) -> Summary {
        let bytes: u64 = c.volumes.iter().map(|v| v.size).sum();
        Summary {
            host: c.host.clone(),
            created: c.created.clone(),
            bytes,
            files: c.stats.files,
            entries: c.stats.entries,
            content_bytes: c.stats.bytes_in,
            ratio: bytes as f64 / c.stats.bytes_in.max(1) as f64,
            volumes: c.volumes.len(),
            compression: c.compression.clone(),
            warnings: c.stats.changed.len() + c.stats.unreadable.len(),
            shrank: c.stats.shrank.len(),
        }
    }
}

/// A published backup on a target.
#[derive(Debug, Clone)]
pub struct Row {
    /// Where it is.
    pub location: String,
    /// Its summary and signature, or why it cannot be read ("DAMAGED: …").
    pub state: Result<(Summary, Verdict), String>,
}

/// What a target holds.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The target's URL.
    pub url: String,
    /// The published backups of every host, oldest first per host.
    pub backups: Vec<Row>,
    /// Uploads that are not backups: running, or left by dead runs.
    pub uploads: Vec<Listed>,
}

/// The backups (damaged ones said so, each with whether a key trusted here,
/// in `paths.key_dir`, signed it) and the uploads on the target at `url`
/// (`backup.target` when None).
pub fn list(config: &lifeboat_config::Config, url: Option<&str>) -> Result<Listing, Error> {
    let (url, t) = crate::job::open_target(config, url)?;
    let keys = TrustedKeys::load(&config.paths.key_dir).ok();
    let policy = Policy::Warn(keys.as_ref());
    let mut backups = Vec::new();
    let mut uploads = Vec::new();
    for host in t.hosts()? {
        for l in t.scan(&host)? {
            let state = match &l.state {
                State::Complete => t
                    .backup(&host, &l.name)
                    .map_err(|e| e.to_string())
                    .and_then(|o| trust::open_objects(o, policy).map_err(|e| e.to_string()))
                    .map(|(b, v)| (Summary::of(&b.catalog), v))
                    .map_err(|e| format!("DAMAGED: {e}")),
                State::Damaged(why) => Err(format!("INCOMPLETE or DAMAGED: {why}")),
                State::Interrupted | State::Running => {
                    uploads.push(l);
                    continue;
                }
            };
            backups.push(Row { location: l.location, state });
        }
    }
    Ok(Listing { url, backups, uploads })
}

/// What `backup prune --partial` removed.
#[derive(Debug, Clone)]
pub struct Pruned {
    /// The target's URL.
    pub url: String,
    /// The uploads of dead runs that were removed.
    pub removed: Vec<Listed>,
}

/// Remove the uploads of dead runs of every host on the target at `url`
/// (`backup.target` when None); never one a live run holds.
pub fn prune_partial(config: &lifeboat_config::Config, url: Option<&str>) -> Result<Pruned, Error> {
    let (url, t) = crate::job::open_target(config, url)?;
    let mut removed = Vec::new();
    for host in t.hosts()? {
        removed.extend(t.prune_partial(&host)?);
    }
    Ok(Pruned { url, removed })
}

/// One backup, for `backup info`: found as [`crate::find::find`] finds it.
pub fn info(
    f: &crate::find::Find,
    r: &dyn lifeboat_runner::Runner,
    feedback: &mut dyn Feedback,
) -> Result<(crate::find::Found, Summary), Error> {
    let found = crate::find::find(f, r, feedback)?;
    let summary = Summary::of(&found.backup.catalog);
    Ok((found, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_backup(dir: &std::path::Path, bytes_in: u64) {
        std::fs::create_dir_all(dir).expect("mkdir");
        let c = format!(
            r#"{{"format":"lifeboat-archive","version":1,"host":"h","created":"2026-01-01T00:00:00Z",
            "compression":"zstd","volume_size":1048576,"volumes":[],"frames":[],
            "manifest":{{"name":"manifest.jsonl","size":0,"blake3":""}},
            "stats":{{"entries":3,"files":2,"bytes_in":{bytes_in},"bytes_out":0,"sockets_skipped":0,"changed":["a"],"unreadable":[]}}}}"#
        );
        std::fs::write(dir.join("backup.json"), c).expect("write");
    }

    #[test]
    fn a_listing_shows_complete_damaged_and_dead_runs_and_prune_removes_only_the_dead() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path();
        fake_backup(&root.join("h/2026-01-01T000000.000Z"), 10);
        std::fs::create_dir_all(root.join("h/2026-01-02T000000.000Z")).expect("damaged");
        std::fs::create_dir_all(root.join("h/2026-01-03T000000.000Z.partial")).expect("dead run");
        let mut c = lifeboat_config::Config::default();
        c.backup.target = format!("file://{}", root.display());
        c.paths.key_dir = root.join("keys");
        let l = list(&c, None).expect("list");
        assert_eq!(l.url, c.backup.target);
        assert_eq!(l.backups.len(), 2);
        // The fake backup has no manifest: it is listed, as damaged, with why.
        assert!(l.backups[0].state.as_ref().expect_err("no manifest").starts_with("DAMAGED: "));
        assert!(l.backups[1].state.as_ref().expect_err("no catalog").starts_with("INCOMPLETE or DAMAGED: "));
        assert_eq!(l.uploads.len(), 1);
        assert_eq!(l.uploads[0].state, State::Interrupted);
        let p = prune_partial(&c, None).expect("prune");
        assert_eq!(p.removed.len(), 1);
        assert!(!root.join("h/2026-01-03T000000.000Z.partial").exists());
        assert!(list(&c, None).expect("list").uploads.is_empty());
        assert!(matches!(prune_partial(&lifeboat_config::Config::default(), None), Err(Error::NoTarget)));
    }

    #[test]
    fn a_summary_counts_what_the_catalog_says() {
        let tmp = tempfile::tempdir().expect("tmp");
        fake_backup(tmp.path(), 100);
        let c: Catalog =
            serde_json::from_slice(&std::fs::read(tmp.path().join("backup.json")).expect("read")).expect("catalog");
        let s = Summary::of(&c);
        assert_eq!((s.entries, s.files, s.content_bytes, s.warnings, s.volumes), (3, 2, 100, 1, 0));
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(v["ratio"], 0.0);
        assert_eq!(v["compression"], "zstd");
    }
}
