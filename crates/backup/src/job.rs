//! Making a backup: open the target, select what to back up, stage a signed
//! backup on the target and publish it atomically. A run that fails leaves
//! the previous backups untouched and removes its staging directory.

use crate::select::{select, Request};
use crate::{keys, snapshot, Error, Feedback, Notice, Progress};
use lifeboat_archive::backup::{write_backup_against, write_encrypted_backup, write_signed_backup};
use lifeboat_archive::target::encrypt::Recipients;
use lifeboat_archive::target::{self, Objects, Target};
use lifeboat_archive::Catalog;
use lifeboat_config::{Config, SnapshotMode, SnapshotSize};
use lifeboat_layout::Layout;
use lifeboat_runner::Runner;
use std::path::Path;
use std::sync::Arc;

/// A published backup.
#[derive(Debug)]
pub struct Made {
    /// Its objects on the target.
    pub objects: Arc<dyn Objects>,
    /// Its catalog.
    pub catalog: Catalog,
    /// How long it took.
    pub seconds: f64,
}

impl Made {
    /// Where it is, for people (its directory, or a URL).
    pub fn location(&self) -> String {
        self.objects.location()
    }

    /// Its directory on this machine, when the target is a directory.
    pub fn local_dir(&self) -> Option<&Path> {
        self.objects.local_dir()
    }

    /// Entries not stored as they were: unreadable, or shrank while read.
    pub fn lost(&self) -> usize {
        self.catalog.stats.unreadable.len() + self.catalog.stats.shrank.len()
    }

    /// Whether every entry was read whole and unchanged (else `lifeboat backup` exits 1, as GNU tar does).
    pub fn clean(&self) -> bool {
        self.catalog.stats.unreadable.is_empty() && self.catalog.stats.changed.is_empty()
    }
}

/// The running system's layout, captured with the configured exclusions;
/// an error when capture cannot list the block devices.
pub fn live_layout(config: &Config, runner: &dyn Runner) -> Result<Layout, Error> {
    let opts = lifeboat_layout::CaptureOptions {
        include_virtual: config.layout.include_virtual,
        include_removable: config.layout.include_removable,
        exclude_devices: config.layout.exclude_devices.clone(),
    };
    Ok(lifeboat_layout::try_capture(runner, &opts)?)
}

/// The target a URL names (`backup.target` when none is given).
pub fn open_target(config: &Config, url: Option<&str>) -> Result<(String, Box<dyn Target>), Error> {
    let url = url.map(str::to_string).unwrap_or_else(|| config.backup.target.clone());
    if url.is_empty() {
        return Err(Error::NoTarget);
    }
    let runner = lifeboat_runner::SystemRunner::new(lifeboat_runner::Mode::Run);
    let t = target::open_configured(&url, &runner, &target_settings(config))?;
    Ok((url, t))
}

/// What the transports take from the configuration (`[backup.s3]`, `[backup.tape]`).
pub fn target_settings(config: &Config) -> target::TargetSettings {
    let s = &config.backup.s3;
    target::TargetSettings {
        s3: target::S3Settings {
            endpoint: s.endpoint.clone(),
            region: s.region.clone(),
            path_style: s.path_style,
            access_key_id: s.access_key_id.clone(),
            secret_access_key: s.secret_access_key.clone(),
            credentials_file: s.credentials_file.clone(),
            profile: s.profile.clone(),
            part_size: s.part_size.0,
            parallel_parts: s.parallel_parts as usize,
            retries: Some(s.retries),
            grace: Some(std::time::Duration::from_secs(u64::from(s.grace_hours) * 3600)),
            timeout: Some(std::time::Duration::from_secs(u64::from(s.timeout_secs.max(1)))),
        },
        tape: target::TapeSettings {
            block_size: config.backup.tape.block_size.0,
            overwrite: config.backup.tape.overwrite,
            changer: Some(config.backup.tape.changer.clone()).filter(|c| !c.is_empty()),
            capacity: config.backup.tape.capacity.map(|c| c.0),
            ask: target::tape::may_ask(),
        },
    }
}

/// Make a backup of the running system as `req` asks and publish it
/// atomically on its target; the selection's notices, the signing key made
/// at the first backup, dead runs left on the target and the progress go to
/// `feedback`.
pub fn make(config: &Config, req: &Request, runner: &dyn Runner, feedback: &mut dyn Feedback) -> Result<Made, Error> {
    make_kind(config, req, crate::chain::Kind::Policy, runner, feedback)
}

/// How often `backup.full_every` wants a full backup; None: every backup is full (unless `--incremental`).
pub fn full_every(config: &Config) -> Result<Option<std::time::Duration>, Error> {
    let v = config.backup.full_every.trim();
    if v.is_empty() {
        return Ok(None);
    }
    humantime::parse_duration(v).map(Some).map_err(|e| {
        Error::Target(lifeboat_archive::ArchiveError::Target(
            "backup.full_every".into(),
            format!("{v:?} is not a duration ({e}): give e.g. \"7d\" or \"24h\", or \"\" for full backups only"),
        ))
    })
}

/// [`make`], full or incremental as `kind` says: an increment stores only
/// what changed since the host's newest backup (see
/// [`lifeboat_archive::chain`]); when there is none to build on (or it is
/// encrypted and no identity is configured, or the chain's full backup is
/// older than `backup.full_every`) a full backup is made and said so
/// through [`Notice::FullBackup`].
pub fn make_kind(
    config: &Config,
    req: &Request,
    kind: crate::chain::Kind,
    runner: &dyn Runner,
    feedback: &mut dyn Feedback,
) -> Result<Made, Error> {
    let every = full_every(config)?;
    let (url, target) = open_target(config, Some(&req.url))?;
    let mut layout = live_layout(config, runner)?;
    let work_dir = &config.paths.work_dir;
    // Snapshots: one snapshot backup at a time; what a killed run left is removed first.
    let snapshot_lock = match config.backup.snapshot {
        SnapshotMode::Never => None,
        _ => {
            let lock = snapshot::lock(work_dir)?;
            let stale = snapshot::stale(&layout, work_dir);
            if !stale.is_empty() {
                let (removed, left) = snapshot::remove_stale(&stale, runner);
                for what in removed {
                    feedback.notice(Notice::StaleSnapshotRemoved { what });
                }
                for l in left {
                    feedback.notice(Notice::SnapshotLeftOver(l));
                }
                layout = live_layout(config, runner)?;
            }
            Some(lock)
        }
    };
    let images = crate::images::chosen(&layout, config, req.paths.is_empty());
    if !images.is_empty() {
        // Made before the selection, so that it is left out of the walk by
        // device and inode: the images are staged in it.
        let _ = std::fs::create_dir_all(&config.paths.work_dir);
    }
    // Refused here, before the upload begins, when the selection misses a
    // mounted filesystem: nothing is staged, nothing published.
    let selection = select(&layout, config, req, target.local_dir());
    for l in &selection.left_out {
        feedback.notice(Notice::LeftOut(l.clone()));
    }
    let expected = selection.expected_bytes;
    let mut opts = selection.into_options()?;
    let name = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string().replace(':', "");
    // Which snapshots, refused before anything is taken or written.
    let snapshot_plan = match &snapshot_lock {
        None => None,
        Some(_) => {
            let size = SnapshotSize::parse(&config.backup.snapshot_size).map_err(|why| {
                Error::Target(lifeboat_archive::ArchiveError::Target("backup.snapshot_size".into(), why))
            })?;
            // Mount points are real paths: the root as one too (`--root .`, a symlink).
            let root = std::fs::canonicalize(&req.root).unwrap_or_else(|_| req.root.clone());
            Some(snapshot::plan(&layout, &root, &opts.paths, config.backup.snapshot, size, &name)?)
        }
    };
    // Foreign partitions: staged as images before the upload begins (and
    // before the lock: staging a large partition takes its time).
    let unknown = crate::images::unknown_devices(&layout, config);
    if !unknown.is_empty() {
        return Err(Error::UnknownImageDevices(unknown));
    }
    let staged = crate::images::stage(&images, &config.paths.work_dir, runner)?;
    opts.reserved = staged.as_ref().map(|s| s.dir.clone());
    let host = layout.meta.hostname.clone();
    // Signing: the key is made (and announced) at the first backup.
    let key = keys::signing_key(&config.paths.key_dir, &host, feedback)?;
    // Encryption (backup.recipients, recipients_file, passphrase_file): checked before anything is written.
    let b = &config.backup;
    let recipients = Recipients::configured(&b.recipients, Some(&b.recipients_file), Some(&b.passphrase_file))?;
    // The host's lock on the target, from begin to commit: a prune waits for it (and this for a prune).
    let mut lock = target::lock::acquire(target.as_ref(), &host, "backup", BACKUP_WAITS_FOR_LOCK)?;
    let find = crate::find::Find {
        source: crate::find::Source::Url(url.clone()),
        host: host.clone(),
        trust: keys::Trust { key_dir: config.paths.key_dir.clone(), insecure: false },
        unattended: true,
        identity: Some(b.identity_file.clone()).filter(|p| !p.as_os_str().is_empty()),
        settings: target_settings(config),
    };
    let parent = match crate::chain::parent_for(kind, every, target.as_ref(), &find, &host, runner, feedback) {
        Ok(p) => p,
        Err(why) => {
            feedback.notice(Notice::FullBackup { why });
            None
        }
    };
    mention_interrupted(target.as_ref(), &url, &host, feedback);
    // The snapshots, taken last before writing (so they live as briefly as they can).
    let snapshots = match (snapshot_plan, snapshot_lock) {
        (Some(plan), Some(lock)) => {
            for l in &plan.live {
                feedback.notice(Notice::ReadLive(l.clone()));
            }
            let taken = snapshot::take(&plan, lock, work_dir, runner)?;
            read_from_snapshots(&mut opts, &taken, config, target.local_dir());
            feedback.notice(Notice::SnapshotsTaken { snapshots: taken.taken.clone(), seconds: taken.seconds });
            Some(taken)
        }
        _ => None,
    };
    let upload = target.begin(&host, &name)?;
    let start = std::time::Instant::now();
    let mut progress = |bytes: u64, files: u64| {
        // The lock's heartbeat (every few minutes): a slow upload is never judged dead.
        if let Err(e) = lock.heartbeat() {
            log::warn!("cannot refresh the lock on {url}: {e}");
        }
        feedback.progress(&Progress { bytes, files, expected, elapsed: start.elapsed() });
    };
    // The upload is aborted (its staging removed) when writing fails.
    let result = match (&recipients, &parent) {
        (Some(to), None) => write_encrypted_backup(upload, &opts, &host, Some(&key), to, &mut progress),
        (None, None) => write_signed_backup(upload, &opts, &host, Some(&key), &mut progress),
        (to, Some(p)) => write_backup_against(upload, &opts, &host, Some(&key), to.as_ref(), Some(p), &mut progress),
    };
    feedback.progress_end();
    for l in snapshots.map(snapshot::Snapshots::release).unwrap_or_default() {
        feedback.notice(Notice::SnapshotLeftOver(l));
    }
    drop(staged);
    let (catalog, objects) = result.map_err(Error::NotCompleted)?;
    if let Err(e) = lock.release() {
        log::warn!("the backup is published, but its lock on {url} was not released: {e}");
    }
    Ok(Made { objects, catalog, seconds: start.elapsed().as_secs_f64() })
}

/// Read the selection from the snapshots: each path from its snapshot,
/// named as if read live; lifeboat's own directories (work, output, a
/// directory target) left out there too, and btrfs snapshot directories.
fn read_from_snapshots(
    opts: &mut lifeboat_archive::BackupOptions,
    taken: &snapshot::Snapshots,
    config: &Config,
    target_dir: Option<&Path>,
) {
    opts.read_from.clone_from(&taken.read_from);
    opts.exclude.push(snapshot::EXCLUDE.into());
    let dirs = [Some(config.paths.work_dir.as_path()), Some(config.paths.output_dir.as_path()), target_dir];
    for d in dirs.into_iter().flatten().filter_map(|d| std::fs::canonicalize(d).ok()) {
        if let Some(seen) = taken.in_snapshot(&d).as_deref().and_then(crate::select::dev_ino) {
            opts.exclude_dirs.push(seen);
        }
    }
}

/// How long a backup waits for a prune of its host to finish.
pub const BACKUP_WAITS_FOR_LOCK: std::time::Duration = std::time::Duration::from_secs(600);

/// Say that dead runs left staging directories (and so how to remove them).
fn mention_interrupted(t: &dyn Target, url: &str, host: &str, feedback: &mut dyn Feedback) {
    let dead: Vec<_> =
        t.scan(host).unwrap_or_default().into_iter().filter(|l| l.state == target::State::Interrupted).collect();
    if dead.is_empty() {
        return;
    }
    feedback.notice(Notice::Interrupted {
        host: host.into(),
        url: url.into(),
        bytes: dead.iter().map(|l| l.bytes).sum(),
        locations: dead.into_iter().map(|l| l.location).collect(),
    });
}
