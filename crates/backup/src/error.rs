//! The errors of backup jobs.
//!
//! Rules for every error here:
//! - it names the thing (target URL, backup directory, key directory,
//!   device, medium label) and, where there is one, the fix;
//! - a cause is kept as its `#[source]`, never flattened into the text, so
//!   the front end prints it as "caused by"; the exceptions are the trust
//!   errors, whose one message already carries the cause and its fix;
//! - nothing is downgraded to a warning here: a job returns the error and
//!   the caller decides (the one deliberate fallback, a restore from the tar
//!   stream alone, says so through [`crate::Notice::StreamOnly`]).

use lifeboat_archive::sign::SignError;
use lifeboat_archive::trust::TrustError;
use lifeboat_archive::ArchiveError;
use std::path::PathBuf;

/// Why a backup job did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No target was given or configured.
    #[error("no backup target: give --target file:///DIR (or set backup.target in the config)")]
    NoTarget,
    /// `backup prune` was given no policy and the configuration has none.
    #[error("no retention policy: give --keep-last N, --keep-daily N, --keep-weekly N, --keep-monthly N or --keep-yearly N, or set them in [backup.retention] of the config (keep_last = N, ...); nothing was removed (--partial removes only what interrupted runs left)")]
    NoRetentionPolicy,
    /// No backup was given to read, and none is configured.
    #[error("no backup given: use --from file:///DIR (a backup, or a target holding backups)")]
    NoBackupGiven,
    /// Recovery was given no backup and the rescue medium names none.
    #[error("no backup given: use --from file:///DIR, or --no-restore to recreate the storage only")]
    NoBackupForRecovery,
    /// The target cannot be opened, listed or written.
    #[error(transparent)]
    Target(#[from] ArchiveError),
    /// An incremental backup's chain cannot be resolved (a parent missing, replaced, a loop).
    #[error(transparent)]
    Chain(#[from] lifeboat_archive::chain::ChainError),
    /// The backup is encrypted and cannot be decrypted (no identity, a wrong
    /// one), or the configured recipients are wrong.
    #[error(transparent)]
    Crypt(#[from] lifeboat_archive::target::encrypt::CryptError),
    /// A path given to back up selects nothing or must not be used.
    #[error("nothing was backed up")]
    Selection(#[source] ArchiveError),
    /// The default selection found no filesystem.
    #[error("nothing to back up: no filesystem of the layout is mounted at or below {} (filesystems on excluded disks are left out; give PATHS, or see layout.include_virtual)", .0.display())]
    NothingMounted(PathBuf),
    /// The backup would not hold every filesystem mounted now; nothing was written.
    #[error("refusing to make a backup that misses mounted filesystems; nothing was written:{}\n  fix: capture again with `lifeboat layout show -` to see what the layout lacks (`lifeboat layout save` says what could not be captured); to leave one out on purpose, add it to backup.exclude (its path without the leading /) or its disk to layout.exclude_devices", missing_lines(.0))]
    Incomplete(Vec<crate::select::Missing>),
    /// `backup --snapshot` (always): a filesystem of the backup cannot be snapshotted; nothing was written.
    #[error("refusing the snapshot backup: these filesystems cannot be snapshotted; nothing was written:{}\n  fix: back them up live with --snapshot=auto (backup.snapshot = \"auto\"), leave them out with backup.exclude, or put them on LVM or btrfs", unsnapshottable_lines(.0))]
    CannotSnapshot(Vec<crate::snapshot::Unsnapshottable>),
    /// A volume group has less free space than its classic snapshots need; nothing was taken or written.
    #[error("no room for the snapshots of {} in volume group {vg}: they need {} (backup.snapshot_size), {vg} has {} free; nothing was written\n  fix: set a smaller backup.snapshot_size (a snapshot must hold what is written during the backup), add a disk to {vg} (vgextend), or use --snapshot=never", .lvs.join(", "), hsize(.need), hsize(.free))]
    NoRoomForSnapshot {
        /// The volume group.
        vg: String,
        /// The LVs to snapshot in it (`VG/LV`).
        lvs: Vec<String>,
        /// The bytes their snapshots need together.
        need: u64,
        /// The VG's free bytes.
        free: u64,
    },
    /// Another snapshot backup runs.
    #[error("another `lifeboat backup --snapshot` holds {}: wait for it to end (its snapshots are its own)", .0.display())]
    SnapshotBusy(PathBuf),
    /// A snapshot cannot be taken or mounted; those taken before are removed.
    #[error("cannot take the {what} of {mountpoint}; nothing was written{}", leftover_lines(.leftovers))]
    Snapshot {
        /// The filesystem's mount point.
        mountpoint: String,
        /// The snapshot.
        what: String,
        /// What could not be removed again.
        leftovers: Vec<crate::snapshot::Leftover>,
        /// Why.
        #[source]
        source: Box<lifeboat_runner::RunError>,
    },
    /// The directory an LVM snapshot is mounted on cannot be made.
    #[error("cannot create {} to mount a snapshot on (paths.work_dir); nothing was written{}", .dir.display(), leftover_lines(.leftovers))]
    SnapshotDir {
        /// The directory.
        dir: PathBuf,
        /// What could not be removed again.
        leftovers: Vec<crate::snapshot::Leftover>,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The running system's layout cannot be captured.
    #[error(transparent)]
    Capture(#[from] lifeboat_layout::CaptureError),
    /// Every filesystem of the default selection is excluded.
    #[error("nothing to back up: every filesystem below {} is excluded (backup.exclude)", .0.display())]
    AllExcluded(PathBuf),
    /// The volume size cannot hold a compressed frame.
    #[error("the volume size {size} is below the minimum of {min} (every compressed frame must fit in a volume): give --volume-size {min_kib}K or more, or set backup.volume_size")]
    VolumeTooSmall {
        /// The size asked for.
        size: String,
        /// The minimum.
        min: String,
        /// The minimum in KiB.
        min_kib: u64,
    },
    /// A foreign partition cannot be saved as an image; nothing was written to the target.
    #[error("cannot save the foreign partition {device} as an image: {why}; nothing was written to the target")]
    Image {
        /// The partition (empty when the staging directory failed).
        device: String,
        /// Why, with the fix.
        why: String,
    },
    /// `backup.image_devices` names a device the layout has no foreign partition on.
    #[error("backup.image_devices lists {}, but the layout has no foreign partition there (NTFS, an unknown filesystem or raw data; see `lifeboat layout show`); fix the list", .0.join(", "))]
    UnknownImageDevices(Vec<String>),
    /// Writing the backup failed; nothing was published.
    #[error("the backup was not completed; the previous backups on the target are untouched")]
    NotCompleted(#[source] ArchiveError),
    /// The signing key cannot be loaded or made.
    #[error("cannot use the backup signing key in {} (paths.key_dir)", .0.display())]
    SigningKey(PathBuf, #[source] SignError),
    /// The public keys cannot be read (for a rescue medium).
    #[error("cannot read the public keys in {} (paths.key_dir)", .0.display())]
    PublicKeys(PathBuf, #[source] SignError),
    /// No key is trusted here, so no backup can be verified.
    #[error("refusing the backup {at}: {error}\n  fix: {fix}")]
    NoTrustedKey {
        /// Where the backup is.
        at: String,
        /// Why no key is trusted.
        error: SignError,
        /// What to do.
        fix: String,
    },
    /// The backup's signature is missing or wrong.
    #[error("{error}\n  fix: {fix}")]
    Refused {
        /// The refusal.
        error: TrustError,
        /// What to do.
        fix: String,
    },
    /// The backup cannot be read.
    #[error(transparent)]
    Open(TrustError),
    /// The backup cannot be read.
    #[error(transparent)]
    Read(#[from] lifeboat_archive::read::ReadError),
    /// Restoring failed.
    #[error(transparent)]
    Restore(#[from] lifeboat_archive::restore::RestoreError),
    /// A file or directory cannot be used.
    #[error("{what}")]
    Io {
        /// What could not be done, naming the path.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// What reaches a remote target from the rescue system cannot be put on the medium.
    #[error("cannot make the rescue medium reach {url}: {why}")]
    TargetAccess {
        /// The target.
        url: String,
        /// Why, with the fix.
        why: String,
    },
    /// The rescue medium's `backup-location.json` cannot be read.
    #[error("{} is damaged", .0.display())]
    LocationDamaged(PathBuf, #[source] serde_json::Error),
    /// A device cannot be mounted.
    #[error("cannot mount {0} to read the backup")]
    Mount(String, #[source] lifeboat_runner::RunError),
    /// The NFS export that holds the backup cannot be mounted.
    #[error("cannot mount the NFS export {0} that holds the backup: is the network up (ip addr) and the server reachable? Or mount it yourself and give --from")]
    MountNfs(String, #[source] lifeboat_runner::RunError),
    /// No drive holds the rescue medium the backup is on.
    #[error("the backup is on the rescue medium, but no medium labelled {0} is in a drive")]
    NoMedium(String),
    /// `verify --medium` without a device, and no rescue medium is in a drive.
    #[error("no medium labelled {0} is in a drive (booted from the network?): give the device or ISO file to check, such as lifeboat verify --medium /dev/sr0")]
    NoMediumToCheck(String),
    /// A medium failed its embedded checksum check (the message names it, where, and the fix).
    #[error("{0}")]
    MediumDamaged(String),
    /// A medium of a set is in no drive, and nobody can be asked for it.
    #[error("medium {k} of {of} (label {label}) is not in any drive: attach every medium of the set at once (more drives, or virtual media), or recover interactively")]
    MediumMissing {
        /// Its number.
        k: u32,
        /// How many media the set has.
        of: u32,
        /// Its label.
        label: String,
    },
    /// No disk here has the filesystem the backup was written to.
    #[error("the backup is on the filesystem with UUID {0}, and no disk here has it: attach the backup disk, or give --from")]
    NoDisk(String),
    /// The backup is not where it was written, and the location says no more.
    #[error("the backup was written to {0} and is not there: mount it (NFS, USB) or give --from")]
    NotThere(String),
    /// A mkbackup mode this version cannot make.
    #[error("mkbackup mode `{0}` is not available in this version of lifeboat; use --mode target with a directory, NFS or USB mount, or --mode media")]
    ModeUnavailable(String),
    /// `mkbackup --mode tape` without a tape drive to write to.
    #[error("mkbackup mode `tape` writes to a tape drive: give --target tape:///dev/nst0 (or tape://[user@]host/dev/nst0), or set backup.target to one; `{0}` is not a tape:// URL")]
    NotATape(String),
    /// The backup cannot go on media of this format.
    #[error("mkbackup mode `media` puts the backup on the ISO or raw image; rescue.format is `{0}`")]
    MediaFormat(String),
    /// Building the rescue media failed.
    #[error("cannot make the rescue media")]
    Rescue(#[source] lifeboat_rescue::RescueError),
    /// The layout cannot be saved.
    #[error("cannot save the layout to {}", .0.display())]
    SaveLayout(PathBuf, #[source] lifeboat_layout::LayoutError),
    /// The rescue medium's record of the backup cannot be written.
    #[error("cannot record where the backup went")]
    Record(#[source] serde_json::Error),
}

/// A size for people.
fn hsize(b: &u64) -> String {
    lifeboat_config::human(*b)
}

/// One indented line for each filesystem that cannot be snapshotted.
fn unsnapshottable_lines(v: &[crate::snapshot::Unsnapshottable]) -> String {
    v.iter().map(|m| format!("\n  - {m}")).collect()
}

/// What could not be removed after a failed snapshot, with the command that removes it.
fn leftover_lines(v: &[crate::snapshot::Leftover]) -> String {
    v.iter().map(|l| format!("\n  LEFT OVER: {} ({}); remove it with: {}", l.what, l.why, l.fix)).collect()
}

/// One indented line for each missing filesystem.
fn missing_lines(missing: &[crate::select::Missing]) -> String {
    missing.iter().map(|m| format!("\n  - {m}")).collect()
}

impl Error {
    /// An I/O error, with what could not be done.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// An error with its causes, on one line (`a: b: c`).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
