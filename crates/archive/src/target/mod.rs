//! Where backups go: an object-shaped interface, one file per transport,
//! chosen by the URL's scheme.
//!
//! A backup on a target is a set of named objects under `HOST/NAME/`: the
//! volumes, `manifest.jsonl`, `backup.json.minisig` and — written last, the
//! one commit point — `backup.json`. Writing goes through an [`Upload`]:
//! objects are created once from a stream ([`Upload::create`]) and never
//! changed, and [`Upload::commit`] writes the catalog with a create-only
//! condition, so a backup is visible only when it is complete. How a
//! transport makes that true is its own: a directory stages in
//! `NAME.partial` and renames ([`dir`]); an object store writes the data
//! objects first and the catalog last with `If-None-Match: *`; a tape
//! writes sequentially with filemarks. A crash before the commit leaves at
//! most orphan data, which [`Target::prune_partial`] removes.
//!
//! Reading goes through [`Objects`]: the objects of one backup, each read by
//! byte range ([`ObjectRead::read_at`]) — or, for tapes and pipes, as one
//! sequential stream ([`crate::read::Stream::sequential`]).
//!
//! Callers never see a transport's paths: a directory target says where it
//! is on this machine through [`Target::local_dir`] (for the automatic
//! exclude of the target and the "disk that holds the backup" check), and
//! nothing else.

pub mod dir;
pub mod encrypt;
pub mod http;
pub mod lock;
pub mod memory;
pub mod s3;
pub mod sftp;
pub mod tape;

use crate::ArchiveError;
use std::fmt::Debug;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

pub use dir::{is_complete, DirObjects, FileTarget};
pub use encrypt::{DecryptingObjects, EncryptingUpload, Identities, Recipients};
pub use lock::{Holder, TargetLock};
pub use memory::MemoryTarget;
pub use s3::{S3Settings, S3Target};
pub use tape::{TapeSettings, TapeTarget};

/// The name of a backup's catalog, its commit point.
pub const CATALOG: &str = "backup.json";

/// What a backup found on a target is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// A published backup with a readable catalog.
    Complete,
    /// A published backup whose catalog is missing or unreadable (the reason).
    Damaged(String),
    /// An upload whose run is dead (a `.partial` directory nobody holds the lock of; orphan objects).
    Interrupted,
    /// An upload a live run is writing.
    Running,
}

/// One backup (or upload) of a host, as [`Target::scan`] finds it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The backup's name (its creation time, `2026-12-01T101010.123Z`).
    pub name: String,
    /// Where it is, for people: a directory, or a URL.
    pub location: String,
    /// What it is.
    pub state: State,
    /// Bytes of its objects.
    pub bytes: u64,
    /// When it was last written.
    pub modified: Option<std::time::SystemTime>,
}

/// An object being written from a stream. Dropping it without
/// [`ObjectWriter::finish`] leaves an incomplete object that is never
/// part of a committed backup.
pub trait ObjectWriter: Write + Send {
    /// Make the object durable and complete (fsync; the last part of a multipart upload).
    fn finish(self: Box<Self>) -> std::io::Result<()>;
}

/// A backup being written to a target. Shared between the threads that
/// write volumes and the one that writes the catalog.
pub trait Upload: Send + Sync + Debug {
    /// Where the backup is going, for messages.
    fn location(&self) -> String;
    /// Create a new object of this backup (never overwriting one).
    fn create(&self, name: &str) -> std::io::Result<Box<dyn ObjectWriter>>;
    /// Make the backup visible: write its catalog last, create-only.
    /// Returns the published backup's objects.
    fn commit(&self, catalog: &[u8]) -> Result<Arc<dyn Objects>, ArchiveError>;
    /// Throw away what this upload wrote (best effort: a crash leaves what [`Target::prune_partial`] removes).
    fn abort(&self);
}

/// One object opened for reading by byte range.
pub trait ObjectRead: Send + Sync + Debug {
    /// Its size in bytes.
    fn len(&self) -> u64;
    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fill `buf` from byte `offset` (an error when the object ends before).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
    /// How many frames a reader going through this object in order should
    /// have in flight at once, at least: a remote object, each of whose reads
    /// waits for round trips, wants more than there are cores ([`REMOTE_READ_AHEAD`]);
    /// 0 (local objects): as many as there are cores.
    fn read_ahead(&self) -> usize {
        0
    }
}

/// The frames a restore has in flight from a remote object (SFTP, S3): each
/// holds its compressed and decompressed bytes (about 11 MiB with 8 MiB
/// frames), so this bounds the reader's memory as well.
pub const REMOTE_READ_AHEAD: usize = 8;

/// The objects of one backup, for reading.
pub trait Objects: Send + Sync + Debug {
    /// Where the backup is, for messages (a directory, or a URL).
    fn location(&self) -> String;
    /// The directory on this machine that holds it, when it is one.
    fn local_dir(&self) -> Option<&Path> {
        None
    }
    /// Open a volume, refused when it is larger than `max`, a link or not a plain object.
    fn open_volume(&self, name: &str, max: u64) -> std::io::Result<Arc<dyn ObjectRead>>;
    /// Read a small object (catalog, manifest, signature) whole, refused when larger than `max`.
    fn read(&self, name: &str, max: u64) -> std::io::Result<Vec<u8>>;
    /// Every volume in order as one sequential stream (tapes, pipes), when the transport has one.
    fn sequential(&self) -> Option<Box<dyn Read + Send>> {
        None
    }
}

/// A place that holds backups, by host.
pub trait Target: Send + Sync + Debug {
    /// Its URL (`file:///srv/backup`).
    fn url(&self) -> String;
    /// The directory on this machine that it is, when it is one.
    fn local_dir(&self) -> Option<&Path> {
        None
    }
    /// The hosts with backups on it, sorted.
    fn hosts(&self) -> Result<Vec<String>, ArchiveError>;
    /// Every backup and upload of a host, complete or not, oldest first (names are times).
    fn scan(&self, host: &str) -> Result<Vec<Listed>, ArchiveError>;
    /// Start writing a backup named `name` of `host`.
    fn begin(&self, host: &str, name: &str) -> Result<Arc<dyn Upload>, ArchiveError>;
    /// The objects of a published backup.
    fn backup(&self, host: &str, name: &str) -> Result<Arc<dyn Objects>, ArchiveError>;
    /// When the URL itself names one backup (a backup's directory), its objects.
    fn itself(&self) -> Result<Option<Arc<dyn Objects>>, ArchiveError> {
        Ok(None)
    }
    /// Remove an interrupted upload (never a running one); false when it turned out to be alive.
    fn remove_interrupted(&self, host: &str, listed: &Listed) -> Result<bool, ArchiveError>;
    /// Delete a published backup.
    fn delete(&self, host: &str, name: &str) -> Result<(), ArchiveError>;

    /// Create a small marker object (`HOST/.lock`, `.lifeboat-check-PID`:
    /// [`lock::marker_key`] says which keys are markers) only when none of
    /// that key exists; false when one does. The lock and `lifeboat check`
    /// are built on it. A transport without create-only objects says so.
    fn create_marker(&self, key: &str, _data: &[u8]) -> Result<bool, ArchiveError> {
        Err(ArchiveError::Target(self.url(), format!("cannot create {key}: this transport has no create-only markers")))
    }
    /// Read a marker object; None when there is none.
    fn read_marker(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        Err(ArchiveError::Target(self.url(), format!("cannot read {key}: this transport has no markers")))
    }
    /// Remove a marker object (no error when it is gone already).
    fn remove_marker(&self, key: &str) -> Result<(), ArchiveError> {
        Err(ArchiveError::Target(self.url(), format!("cannot remove {key}: this transport has no markers")))
    }
    /// Remove a marker only when it still holds exactly `seen` (what was
    /// judged stale), so that a takeover never removes the live marker of a
    /// run that took the lock over first; false when it holds something
    /// else now (or is gone). The default reads, compares and removes:
    /// between the read and the removal another run may replace it, a
    /// window of one round trip. Transports that can do better override it.
    fn remove_stale_marker(&self, key: &str, seen: &[u8]) -> Result<bool, ArchiveError> {
        match self.read_marker(key)? {
            Some(now) if now == seen => {
                self.remove_marker(key)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    /// Rewrite a marker this process holds with `data` (the lock's
    /// heartbeat), where the transport needs it to tell a live holder from
    /// a dead one (S3). The default does nothing: a directory's `flock`
    /// and SFTP's recent writes tell already.
    fn refresh_marker(&self, _key: &str, _data: &[u8]) -> Result<(), ArchiveError> {
        Ok(())
    }
    /// Whether the process that created a marker is alive, when the
    /// transport can tell (a `flock` held on a directory target); None when
    /// it cannot (the lock's age decides then).
    fn marker_alive(&self, _key: &str) -> Option<bool> {
        None
    }
    /// Free bytes where backups go, when the transport can tell (statvfs of
    /// a directory, `statvfs@openssh.com` over SFTP); None when it cannot.
    fn free_space(&self) -> Result<Option<u64>, ArchiveError> {
        Ok(None)
    }

    /// The newest published backup of a host. A newer backup that is not
    /// complete (missing or damaged catalog) is an error naming it: an
    /// older backup is never taken silently in its place. Uploads (running
    /// or dead) never count.
    fn newest(&self, host: &str) -> Result<Listed, ArchiveError> {
        newest_of(&self.url(), host, self.scan(host)?)
    }

    /// The backup a URL names: the backup itself when the URL is one, else
    /// the newest backup of `host` on it ([`Target::newest`]).
    fn choose(&self, host: &str) -> Result<Arc<dyn Objects>, ArchiveError> {
        if let Some(b) = self.itself()? {
            return Ok(b);
        }
        let l = self.newest(host)?;
        self.backup(host, &l.name)
    }

    /// Remove the uploads of dead runs of a host (never a live one); returns what was removed.
    fn prune_partial(&self, host: &str) -> Result<Vec<Listed>, ArchiveError> {
        let mut removed = Vec::new();
        for l in self.scan(host)?.into_iter().filter(|l| l.state == State::Interrupted) {
            if self.remove_interrupted(host, &l)? {
                removed.push(l);
            }
        }
        Ok(removed)
    }
}

/// The newest complete backup in a scan (see [`Target::newest`]).
fn newest_of(url: &str, host: &str, all: Vec<Listed>) -> Result<Listed, ArchiveError> {
    let uploads = |l: &&Listed| matches!(l.state, State::Interrupted | State::Running);
    let published: Vec<&Listed> = all.iter().filter(|l| !uploads(l)).collect();
    let Some(last) = published.last() else {
        let partial = all.iter().filter(|l| l.state == State::Interrupted).count();
        let note = if partial > 0 {
            format!(" ({partial} interrupted run(s) left uploads behind: they are not backups)")
        } else {
            String::new()
        };
        return Err(ArchiveError::Target(url.into(), format!("no complete backup of {host} in it{note}")));
    };
    match &last.state {
        State::Damaged(why) => {
            let older = published.iter().rev().find(|l| l.state == State::Complete);
            let fix = match older {
                Some(o) => {
                    format!("to use the newest complete one, give it explicitly: --from {}", from_url(&o.location))
                }
                None => "no older complete backup of this host is on the target either".into(),
            };
            Err(ArchiveError::Target(
                url.into(),
                format!(
                    "the newest backup of {host}, {}, is incomplete or damaged ({why}); lifeboat does not silently take an older one: {fix}",
                    last.location
                ),
            ))
        }
        _ => Ok((*last).clone()),
    }
}

/// The largest catalog a target reads while listing: the reader's own bound.
pub(crate) const MAX_CATALOG: u64 = crate::read::MAX_CATALOG_BYTES;

/// What a published backup whose catalog reads as `text` is: complete only
/// when the catalog passes every check the reader makes (so listing never
/// calls a backup complete that cannot be opened).
pub(crate) fn catalog_state(text: &[u8]) -> State {
    match crate::read::parse_catalog(text, CATALOG) {
        Ok(_) => State::Complete,
        Err(e) => State::Damaged(e.to_string()),
    }
}

/// A location as a `--from` URL (a directory becomes `file://DIR`).
pub fn from_url(location: &str) -> String {
    if location.starts_with('/') {
        format!("file://{location}")
    } else {
        location.to_string()
    }
}

/// Open the target a URL names (see [`open_with`]), running external
/// programs (ssh) with the system runner.
pub fn open(url: &str) -> Result<Box<dyn Target>, ArchiveError> {
    open_with(url, &lifeboat_runner::SystemRunner::new(lifeboat_runner::Mode::Run))
}

/// Settings of the transports that need more than their URL (from the
/// configuration; every field's default reads the environment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetSettings {
    /// How `s3://` targets reach their store (`[backup.s3]`).
    pub s3: S3Settings,
    /// How `tape://` targets write (`[backup.tape]`).
    pub tape: TapeSettings,
}

/// Open the target a URL names (see [`open_configured`]) with default settings.
pub fn open_with(url: &str, runner: &dyn lifeboat_runner::Runner) -> Result<Box<dyn Target>, ArchiveError> {
    open_configured(url, runner, &TargetSettings::default())
}

/// The URLs lifeboat writes to, for messages.
const TARGET_URLS: &str = "file:///ABSOLUTE/PATH (a local, NFS or USB directory), sftp://[user@]host[:port]/path, \
     s3://bucket/prefix or tape:///dev/nst0 (tape://[user@]host/dev/nst0 over ssh)";

/// Open the target a URL names: `file:///ABSOLUTE/PATH` (a local, NFS or
/// USB directory), `sftp://[user@]host[:port]/path` (through the system's
/// ssh, which `runner` starts), `s3://bucket/prefix` (an S3-compatible
/// object store, reached as `settings.s3` says) or `tape:///dev/nst0` /
/// `tape://[user@]host/dev/nst0` (a tape drive here or over ssh, written as
/// `settings.tape` says; its `mt`/`dd` run with the system runner, as they
/// run long after this call).
pub fn open_configured(
    url: &str,
    runner: &dyn lifeboat_runner::Runner,
    settings: &TargetSettings,
) -> Result<Box<dyn Target>, ArchiveError> {
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(ArchiveError::Target(url.into(), format!("is not a target URL: give {TARGET_URLS}")));
    };
    match scheme {
        "file" => Ok(Box::new(FileTarget::from_url(url)?)),
        "sftp" => Ok(Box::new(sftp::SftpTarget::connect(url, runner)?)),
        "s3" => Ok(Box::new(S3Target::open(url, &settings.s3)?)),
        // A backup served read-only by a deployment server (`lifeboat serve`).
        "http" | "https" => Ok(Box::new(http::HttpTarget::open(url)?)),
        "tape" => {
            let system: Arc<dyn lifeboat_runner::Runner> =
                Arc::new(lifeboat_runner::SystemRunner::new(lifeboat_runner::Mode::Run));
            Ok(Box::new(TapeTarget::open(url, system, &settings.tape)?))
        }
        _ => Err(ArchiveError::Target(
            url.into(),
            format!("this version cannot write to {scheme}:// targets: give {TARGET_URLS}"),
        )),
    }
}

/// An object read from start to end as a stream.
#[derive(Debug)]
pub struct ObjectReader {
    object: Arc<dyn ObjectRead>,
    pos: u64,
}

impl ObjectReader {
    /// Read `object` from its start.
    pub fn new(object: Arc<dyn ObjectRead>) -> ObjectReader {
        ObjectReader { object, pos: 0 }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.object.len().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left).min(8 << 20) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.object.read_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Read a whole object of at most `max` bytes through [`ObjectRead`] (for transports without a cheaper whole read).
pub fn read_whole(o: &dyn ObjectRead, name: &str, max: u64) -> std::io::Result<Vec<u8>> {
    if o.len() > max {
        return Err(std::io::Error::other(format!("{name} is {} bytes, more than the {max} it may have", o.len())));
    }
    let mut v = vec![0u8; o.len() as usize];
    o.read_at(0, &mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, state: State) -> Listed {
        Listed { name: name.into(), location: format!("/t/h/{name}"), state, bytes: 0, modified: None }
    }

    #[test]
    fn the_newest_complete_backup_is_chosen_and_uploads_never_count() {
        let all = vec![
            listed("1", State::Complete),
            listed("2", State::Complete),
            listed("3.partial", State::Interrupted),
            listed("4.partial", State::Running),
        ];
        assert_eq!(newest_of("file:///t", "h", all).expect("newest").name, "2");
    }

    #[test]
    fn a_newer_damaged_backup_is_refused_naming_the_older_one_as_the_fix() {
        let all = vec![listed("1", State::Complete), listed("2", State::Damaged("no backup.json".into()))];
        let e = newest_of("file:///t", "h", all).expect_err("damaged").to_string();
        assert!(e.contains("/t/h/2") && e.contains("no backup.json"), "{e}");
        assert!(e.contains("--from file:///t/h/1"), "{e}");
    }

    #[test]
    fn no_backup_says_so_and_counts_the_interrupted_runs() {
        let e = newest_of("file:///t", "h", vec![listed("1.partial", State::Interrupted)]).expect_err("none");
        assert!(e.to_string().contains("1 interrupted run"), "{e}");
    }

    #[test]
    fn urls_choose_their_transport_and_unknown_schemes_are_refused_by_name() {
        assert_eq!(open("file:///srv/backup").expect("file").url(), "file:///srv/backup");
        let e = open("gopher://x/y").expect_err("gopher").to_string();
        assert!(e.contains("gopher://") && e.contains("file:///"), "{e}");
        assert!(open("/srv/backup").is_err(), "a bare path is not a URL");
        assert!(open("file://relative").is_err());
    }
}
