//! Backup jobs: what to back up, signing and publishing on a target, where
//! the backup is for recovery, and finding it again.
//!
//! The front ends (the `lifeboat` command) parse arguments, call one function
//! here and print what it returns. Nothing here prints: what a job has to
//! say while it runs (notices, progress, a medium to insert) goes to the
//! caller's [`Feedback`].
//!
//! - [`select`]: the paths and excludes of a backup, from the layout and the configuration.
//! - [`images`]: images of foreign partitions (NTFS, raw data), staged and stored as `.lifeboat/images/`.
//! - [`job`]: make a backup: open the target, write the signed backup, publish it.
//! - [`keys`]: the signing key, the trust check every reader goes through, the public keys for rescue media.
//! - [`location`]: where a backup went, as the rescue medium records it (`backup-location.json`).
//! - [`media`]: block devices by signature, read-only mounts, a backup spread over a set of media.
//! - [`find`]: the one way a backup is found again, from a URL or a [`location::Location`].
//! - [`access`]: what a rescue medium carries to reach an `s3://` or `sftp://` target.
//! - [`mkbackup`]: the rescue medium and the backup in one go.
//! - [`list`]: what a target holds (`backup list`), pruning dead runs and by policy, one backup's details.
//! - [`retention`]: which backups a `--keep-*` policy keeps (restic's rules), as a pure function.
//! - [`snapshot`]: `backup --snapshot`: btrfs and LVM snapshots taken at one instant, read, and always removed.
//! - [`verify`] and [`restore`]: reading a backup that [`find`] found.

pub mod access;
pub mod chain;
pub mod error;
pub mod find;
pub mod images;
pub mod job;
pub mod keys;
pub mod list;
pub mod location;
pub mod media;
pub mod mkbackup;
pub mod restore;
pub mod retention;
pub mod select;
pub mod snapshot;
pub mod verify;

pub use error::Error;

/// Something a job says while it runs; the front end decides how to show it.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A filesystem of the default selection is not backed up.
    LeftOut(select::LeftOut),
    /// Dead runs left staging directories of this host on the target.
    Interrupted {
        /// The host.
        host: String,
        /// The target's URL.
        url: String,
        /// Where their uploads are (staging directories).
        locations: Vec<String>,
        /// Their bytes together.
        bytes: u64,
    },
    /// The first backup made this host's signing key.
    KeyCreated(keys::NewKey),
    /// A backup is used although it is not authenticated (`--insecure-unsigned`).
    Unauthenticated {
        /// Where the backup is.
        at: String,
        /// Why it is not verified.
        why: String,
    },
    /// Medium `k` of a set was found and mounted.
    MediumFound {
        /// Its number.
        k: u32,
        /// How many media the set has.
        of: u32,
        /// Its label.
        label: String,
        /// The drive it is in.
        device: String,
    },
    /// A medium passed its embedded checksum check.
    MediumChecked {
        /// "medium k of N (LABEL)".
        what: String,
        /// The drive it is in.
        device: String,
        /// Bytes read.
        bytes: u64,
        /// Seconds it took.
        seconds: f64,
    },
    /// A medium carries no embedded checksum (made by an older lifeboat): not checked.
    MediumUnchecked {
        /// The drive it is in.
        device: String,
    },
    /// A damaged medium is used anyway (the person said so).
    MediumDamagedUsed {
        /// What is damaged where.
        message: String,
    },
    /// Recovery goes on without medium `k` (the person said skip).
    MediumSkipped {
        /// Its number.
        k: u32,
    },
    /// The rescue medium carries the backup's decryption identity (`backup.identity_file`).
    IdentityOnMedium {
        /// What that means, and the alternative.
        warning: String,
    },
    /// The rescue medium carries the secrets that reach a remote target (`rescue.target_credentials`).
    CredentialsOnMedium {
        /// The target.
        url: String,
        /// What that means, and the alternative.
        warning: String,
    },
    /// The rescue medium reaches a remote target only with secrets it does not carry.
    NoCredentialsOnMedium {
        /// The target.
        url: String,
        /// What recovery then needs.
        how: String,
    },
    /// The manifest cannot be used, so the restore reads the tar stream alone.
    StreamOnly {
        /// Why the backup did not open with its manifest.
        why: String,
    },
    /// The backup reads these snapshots (taken one after another in `seconds`).
    SnapshotsTaken {
        /// Each snapshot, for people.
        snapshots: Vec<String>,
        /// How long taking them took.
        seconds: f64,
    },
    /// `--snapshot=auto`: a filesystem that cannot be snapshotted is read live (it may change while read).
    ReadLive(snapshot::Unsnapshottable),
    /// A snapshot a killed run left was found and removed.
    StaleSnapshotRemoved {
        /// What was removed.
        what: String,
    },
    /// A snapshot could not be removed (now or from a killed run).
    SnapshotLeftOver(snapshot::Leftover),
    /// An incremental backup was asked for (`--incremental`, `backup.full_every`), and a full one is made.
    FullBackup {
        /// Why there is nothing to build on.
        why: String,
    },
}

/// How far a backup has got, for a progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Content bytes read so far.
    pub bytes: u64,
    /// Files read so far.
    pub files: u64,
    /// The expected content bytes (the used space of the filesystems backed up whole); 0 when unknown.
    pub expected: u64,
    /// Time since writing began.
    pub elapsed: std::time::Duration,
}

/// A medium of a set that is in no drive.
#[derive(Debug, Clone)]
pub struct MissingMedium {
    /// Its number.
    pub k: u32,
    /// How many media the set has.
    pub of: u32,
    /// Its volume label.
    pub label: String,
}

/// What to do about a [`MissingMedium`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediumAnswer {
    /// It was put in: look again.
    Retry,
    /// Go on without it (what it holds is then not restored).
    Skip,
    /// Nobody can put it in: fail, naming it.
    GiveUp,
}

/// Where a job's notices, progress and questions go.
pub trait Feedback {
    /// Something worth saying.
    fn notice(&mut self, notice: Notice);
    /// Progress while a backup is written (called often; throttle when showing it).
    fn progress(&mut self, _progress: &Progress) {}
    /// Writing the backup ended (a progress line can be finished).
    fn progress_end(&mut self) {}
    /// A backup was published (mkbackup then goes on to build the media).
    fn made(&mut self, _made: &job::Made) {}
    /// A medium of a set is in no drive: ask for it.
    fn medium_missing(&mut self, _medium: &MissingMedium) -> std::io::Result<MediumAnswer> {
        Ok(MediumAnswer::GiveUp)
    }
    /// A medium failed its check (`message` says which, and where): ask
    /// whether to use it anyway (false: stop; nobody to ask is false).
    fn medium_damaged(&mut self, _message: &str) -> std::io::Result<bool> {
        Ok(false)
    }
    /// An `s3://` target has no credentials here: ask for the access key id
    /// and secret (None: nobody to ask, or nothing given).
    fn s3_credentials(&mut self, _url: &str) -> std::io::Result<Option<(String, String)>> {
        Ok(None)
    }
}

/// Feedback that keeps the notices (for tests and for callers that show them later).
impl Feedback for Vec<Notice> {
    fn notice(&mut self, notice: Notice) {
        self.push(notice);
    }
}

/// The host name of the running system (what a `--from` target's newest backup is looked up by).
pub fn this_host() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}
