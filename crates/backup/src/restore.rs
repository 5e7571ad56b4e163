//! Restoring from a backup that [`crate::find`] found: everything, the paths
//! matching patterns, or one filesystem. A backup whose signed catalog is
//! intact while its manifest is damaged or missing is restored from the tar
//! stream alone (its volumes are bound to the catalog by their BLAKE3),
//! saying so through [`Notice::StreamOnly`].

use crate::error::chain;
use crate::find::{locate, Find};
use crate::{keys, Error, Feedback, Notice};
use lifeboat_archive::restore::{self as r, RestoreReport};
use lifeboat_runner::Runner;
use std::path::PathBuf;

/// What to restore, and where.
#[derive(Debug, Clone)]
pub struct Request {
    /// The backup.
    pub find: Find,
    /// The directory to restore into (created when missing).
    pub to: PathBuf,
    /// Archive paths or glob patterns (a directory brings everything below it); empty: everything.
    pub patterns: Vec<String>,
    /// Restore only the filesystem that was mounted here, as the root of `to`.
    pub filesystem: Option<String>,
    /// Restore the state of this earlier backup of the host (its name): `--at`.
    pub at: Option<String>,
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// Where the backup is.
    pub location: String,
    /// What was restored, lost and not checked.
    pub report: RestoreReport,
    /// How long restoring took.
    pub seconds: f64,
}

impl Restored {
    /// Whether everything was restored and checked.
    pub fn complete(&self) -> bool {
        self.report.lost.is_empty() && self.report.unchecked.is_empty()
    }
}

/// Restore as `req` asks; the destination is made only after the backup opened.
pub fn restore(req: &Request, runner: &dyn Runner, feedback: &mut dyn Feedback) -> Result<Restored, Error> {
    let t = &req.find.trust;
    let found = match &req.at {
        Some(at) => crate::chain::locate_at(&req.find, at, runner, feedback)?,
        None => locate(&req.find, runner, feedback)?,
    };
    let objects = crate::find::readable(&req.find, found)?;
    let source = match keys::open(t, &objects, feedback) {
        Ok((b, _)) => Source::Manifest(crate::chain::resolve(&req.find, b, runner, feedback)?),
        Err(e) => match keys::checked(t, &objects, feedback, lifeboat_archive::trust::verified_catalog) {
            Ok((catalog, _)) if req.filesystem.is_none() => {
                feedback.notice(Notice::StreamOnly { why: chain(&e) });
                Source::Stream(r::from_stream(objects, catalog)?)
            }
            _ => return Err(e),
        },
    };
    let to = &req.to;
    std::fs::create_dir_all(to).map_err(Error::io(format!("cannot create {}", to.display())))?;
    let start = std::time::Instant::now();
    let (location, report) = match &source {
        Source::Stream(so) => (so.backup.location(), r::restore_stream_only(so, to, &req.patterns, &mut |_, _| {})?),
        Source::Manifest(b) => match &req.filesystem {
            Some(mp) => (b.location(), r::restore_filesystem(b, to, mp, &mut |_, _| {})?),
            // A tape: the volumes come in order, read once, never backwards.
            None => match b.objects().sequential() {
                Some(volumes) => (b.location(), r::restore_sequential(b, volumes, to, &req.patterns, &mut |_, _| {})?),
                None => (b.location(), r::restore(b, to, &req.patterns)?),
            },
        },
    };
    Ok(Restored { location, report, seconds: start.elapsed().as_secs_f64() })
}

/// What a restore reads: the backup with its manifest, or its tar stream alone.
enum Source {
    Manifest(lifeboat_archive::read::Backup),
    Stream(r::StreamOnly),
}
