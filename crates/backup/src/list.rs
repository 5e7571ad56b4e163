//! What a target holds (`backup list`), removing what dead runs left
//! (`backup prune --partial`), removing what a retention policy does not
//! keep (`backup prune --keep-*`), and the summary of one backup (`backup info`).

use crate::retention::{self, decide, time_of_created, time_of_name, Action, Candidate, Decision};
use crate::{Error, Feedback};
use lifeboat_archive::sign::TrustedKeys;
use lifeboat_archive::target::lock;
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
    /// The backup an incremental one was made against; None for a full backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Incremental: entries unchanged since the parent (not stored again).
    pub unchanged: u64,
    /// Incremental: entries of the parent that are gone.
    pub deleted: u64,
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
            parent: c.parent.as_ref().map(|p| p.name.clone()),
            unchanged: c.stats.unchanged,
            deleted: c.stats.deleted,
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
    /// The hosts left alone, and why (their backups are locked by a running backup or prune).
    pub refused: Vec<(String, String)>,
}

/// Remove the uploads of dead runs of every host on the target at `url`
/// (`backup.target` when None); never one a live run holds. Each host's
/// removals run under its lock on the target, as [`prune`]'s do; a host
/// whose lock another run holds is left alone and said so ([`Pruned::refused`]).
pub fn prune_partial(config: &lifeboat_config::Config, url: Option<&str>) -> Result<Pruned, Error> {
    let (url, t) = crate::job::open_target(config, url)?;
    let (mut removed, mut refused) = (Vec::new(), Vec::new());
    for host in t.hosts()? {
        let l = match lock::acquire(t.as_ref(), &host, "prune", std::time::Duration::ZERO) {
            Ok(l) => l,
            Err(e) => {
                refused.push((host, e.to_string()));
                continue;
            }
        };
        removed.extend(t.prune_partial(&host)?);
        l.release()?;
    }
    Ok(Pruned { url, removed, refused })
}

/// What `backup prune --keep-*` decided about one backup, and whether it is gone.
#[derive(Debug, Clone)]
pub struct Judged {
    /// The backup (or upload) as the target listed it.
    pub listed: Listed,
    /// When it was made (UTC), from its name or its catalog.
    pub created: Option<std::time::SystemTime>,
    /// Keep or remove, and why.
    pub decision: Decision,
    /// Whether it was deleted (false in a dry run).
    pub removed: bool,
}

/// What `backup prune --keep-*` did to one host's backups.
#[derive(Debug, Clone)]
pub struct HostPruned {
    /// The host.
    pub host: String,
    /// Every backup and upload of it, oldest first.
    pub backups: Vec<Judged>,
    /// Why nothing was done to this host (its backups are locked by a running backup), when so.
    pub refused: Option<String>,
}

/// What `backup prune --keep-*` did.
#[derive(Debug, Clone)]
pub struct Retained {
    /// The target's URL.
    pub url: String,
    /// The policy applied.
    pub policy: retention::Policy,
    /// Whether nothing was deleted on purpose (`--dry-run`).
    pub dry_run: bool,
    /// Per host.
    pub hosts: Vec<HostPruned>,
}

/// How `backup prune --keep-*` runs.
#[derive(Debug, Clone, Default)]
pub struct PruneRequest {
    /// The target (`backup.target` when None).
    pub url: Option<String>,
    /// The policy given on the command line; empty: `[backup.retention]`.
    pub policy: retention::Policy,
    /// Only this host's backups (every host on the target when None).
    pub host: Option<String>,
    /// Decide and report, delete nothing.
    pub dry_run: bool,
}

/// Remove the backups a retention policy does not keep (restic's rules,
/// [`crate::retention::decide`]), for every host on the target or one.
/// The policy is the request's, else `[backup.retention]`; none at all is
/// refused ([`Error::NoRetentionPolicy`]) rather than removing everything.
/// Each host's deletes run under its lock on the target; a host whose lock
/// a backup holds is left alone and said so ([`HostPruned::refused`]).
pub fn prune(config: &lifeboat_config::Config, req: &PruneRequest) -> Result<Retained, Error> {
    let policy =
        if req.policy.is_empty() { retention::Policy::from_config(&config.backup.retention) } else { req.policy };
    if policy.is_empty() {
        return Err(Error::NoRetentionPolicy);
    }
    let (url, t) = crate::job::open_target(config, req.url.as_deref())?;
    let hosts = match &req.host {
        Some(h) => vec![h.clone()],
        None => t.hosts()?,
    };
    let mut out = Vec::new();
    for host in hosts {
        let lock = if req.dry_run {
            None
        } else {
            match lock::acquire(t.as_ref(), &host, "prune", std::time::Duration::ZERO) {
                Ok(l) => Some(l),
                Err(e) => {
                    out.push(HostPruned { host, backups: Vec::new(), refused: Some(e.to_string()) });
                    continue;
                }
            }
        };
        // Listed under the lock: no backup of this host is published meanwhile.
        let listed = t.scan(&host)?;
        let candidates: Vec<Candidate> = listed
            .iter()
            .map(|l| Candidate {
                name: l.name.clone(),
                state: l.state.clone(),
                created: created_of(t.as_ref(), &host, l),
                parent: parent_of(t.as_ref(), &host, l),
            })
            .collect();
        let decisions = decide(&candidates, &policy, std::time::SystemTime::now());
        let mut backups = Vec::new();
        for ((listed, c), decision) in listed.into_iter().zip(candidates).zip(decisions) {
            let remove = decision.action == Action::Remove && !req.dry_run;
            if remove {
                t.delete(&host, &listed.name)?;
                log::info!("removed {} ({})", listed.location, policy.describe());
            }
            backups.push(Judged { listed, created: c.created, decision, removed: remove });
        }
        if let Some(l) = lock {
            l.release()?;
        }
        out.push(HostPruned { host, backups, refused: None });
    }
    Ok(Retained { url, policy, dry_run: req.dry_run, hosts: out })
}

/// A backup's time: from its name, else its catalog's `created` (complete backups only).
fn created_of(t: &dyn lifeboat_archive::target::Target, host: &str, l: &Listed) -> Option<std::time::SystemTime> {
    if let Some(at) = time_of_name(&l.name) {
        return Some(at);
    }
    time_of_created(&catalog_of(t, host, l)?.created)
}

/// A complete backup's catalog, as stored (in clear also when the backup is encrypted).
fn catalog_of(t: &dyn lifeboat_archive::target::Target, host: &str, l: &Listed) -> Option<Catalog> {
    if l.state != State::Complete {
        return None;
    }
    let text = t
        .backup(host, &l.name)
        .ok()?
        .read(lifeboat_archive::target::CATALOG, lifeboat_archive::read::MAX_CATALOG_BYTES)
        .ok()?;
    serde_json::from_slice(&text).ok()
}

/// The parent an incremental backup's catalog names (complete backups only;
/// the catalog is in clear also when the backup is encrypted).
fn parent_of(t: &dyn lifeboat_archive::target::Target, host: &str, l: &Listed) -> Option<String> {
    catalog_of(t, host, l)?.parent.map(|p| p.name)
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
        // A host whose lock a live run holds is left alone, and said so.
        std::fs::create_dir_all(root.join("h/2026-01-04T000000.000Z.partial")).expect("dead run");
        let (_, t) = crate::job::open_target(&c, None).expect("target");
        let held = lock::acquire(t.as_ref(), "h", "backup", std::time::Duration::ZERO).expect("lock");
        let p = prune_partial(&c, None).expect("prune");
        assert!(p.removed.is_empty(), "{:?}", p.removed);
        assert_eq!(p.refused.len(), 1);
        assert!(p.refused[0].0 == "h" && p.refused[0].1.contains("locked by a backup"), "{:?}", p.refused);
        drop(held);
        assert_eq!(prune_partial(&c, None).expect("prune").removed.len(), 1);
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
