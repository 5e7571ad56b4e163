//! The command line, as clap types. Man pages and completions are generated from it.

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};
use lifeboat_config::{MkbackupMode, RescueFormat};
use std::path::PathBuf;

/// Bare-metal disaster recovery and system cloning for Linux.
///
/// lifeboat captures how a machine's storage is built, makes bootable rescue
/// media from the machine's own kernel and tools, backs up its files, and
/// rebuilds the machine from them on the same or on different disks.
#[derive(Debug, Parser)]
#[command(name = "lifeboat", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Configuration file [default: /etc/lifeboat/lifeboat.toml]
    #[arg(long, global = true, value_name = "FILE", env = "LIFEBOAT_CONFIG")]
    pub config: Option<PathBuf>,

    /// More output (-v: debug, -vv: every command run)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors: nothing on success but what the command is asked to show (lists, --json)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Machine-readable JSON on stdout, for commands that report
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Preflight: can this machine make working rescue media? One line per check, with fixes
    Check,
    /// Capture, show and compare the storage, boot and network layout
    #[command(subcommand)]
    Layout(LayoutCmd),
    /// Back up files into a compressed, tar-compatible, hashed archive on a target
    Backup(BackupArgs),
    /// Restore everything, or the paths matching PATTERNS, from a backup into a directory
    Restore(RestoreArgs),
    /// Read every volume of a backup and check every checksum; or, with --medium, check rescue media
    /// (their embedded checksums, then the backup on them); exit 1 when anything is damaged
    Verify(VerifyArgs),
    /// Compare a live tree with a backup: files added, removed and changed; exit 1 when anything differs
    Compare(CompareArgs),
    /// Make rescue media: a bootable copy of this machine's own kernel and tools, with its layout and lifeboat
    Mkrescue(MkrescueArgs),
    /// Write rescue media to an optical writer or a USB stick, and verify them by reading back
    Burn(BurnArgs),
    /// Rescue medium plus backup in one go: medium only, backup on the medium, or backup to the target
    Mkbackup(MkbackupArgs),
    /// Rebuild this machine from its layout and backup: map disks, show the plan, recreate, restore, make it boot
    Recover(RecoverArgs),
    /// Prove the rescue medium works: recover onto blank disks in an isolated VM, boot them, compare with the
    /// backup, write a report (exit 0 only when the drill passed)
    Drill(DrillArgs),
    /// The age and result of the last layout check, rescue medium, backup, verify and drill, and what is
    /// overdue (exit 0 fine, 1 overdue, 2 a last run failed: a Nagios/Icinga check)
    Status(StatusArgs),
    /// Deploy a farm: serve the rescue system (iPXE), one golden backup and each box's clone file over HTTP,
    /// and show every box's progress
    Serve(ServeArgs),
    /// Show the configuration in effect, with every default filled in, or write a commented one
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Write man pages for lifeboat and every subcommand
    Manpage(ManpageArgs),
}

/// `lifeboat layout ...`
#[derive(Debug, Subcommand)]
pub enum LayoutCmd {
    /// Capture the running system's layout and save it
    Save {
        /// Where to write it [default: paths.layout_file from the config]
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Show a saved layout (or the live system's) as a tree
    Show {
        /// The layout file [default: paths.layout_file]; `-` captures the live system
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Compare a saved layout with the live system; exit 1 when something that matters for recovery changed
    Diff {
        /// The saved layout [default: paths.layout_file]
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// Compare with this layout file instead of the live system
        #[arg(long, value_name = "FILE")]
        against: Option<PathBuf>,
    },
}

/// Arguments of `lifeboat mkrescue`.
#[derive(Debug, Args)]
pub struct MkrescueArgs {
    /// Kernel image [default: rescue.kernel, else the running kernel's, else the newest installed one with modules]
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Output format [default: rescue.format]
    #[arg(long, value_parser = PossibleValuesParser::new(RescueFormat::ACCEPTED.iter().copied()))]
    pub format: Option<String>,
    /// Where the media go [default: paths.output_dir]
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Make the unattended recovery the default boot entry
    #[arg(long)]
    pub auto_recover: bool,
}

/// Arguments of `lifeboat backup`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    /// `list`, `info` or `prune` instead of making a backup
    #[command(subcommand)]
    pub cmd: Option<BackupCmd>,
    /// Where the backup goes [default: backup.target], e.g. file:///mnt/backup
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// The tree root: archive paths are relative to it
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Volume size: cd, dvd, dvd-dl, bd, or a size such as 700M [default: backup.volume_size]
    #[arg(long, value_name = "SIZE")]
    pub volume_size: Option<lifeboat_config::ByteSize>,
    /// Write over a tape that already holds a backup (tape:// targets) [default: backup.tape.overwrite]
    #[arg(long)]
    pub overwrite_tape: bool,
    /// Store only what changed since the host's newest backup (a full backup when there is none)
    /// [default: as backup.full_every says]
    #[arg(long, conflicts_with = "full")]
    pub incremental: bool,
    /// A full backup, whatever backup.full_every says
    #[arg(long)]
    pub full: bool,
    /// Back up from snapshots (btrfs, LVM) taken at one instant, removed after: `always` (the
    /// default of a bare --snapshot) refuses filesystems that cannot be snapshotted, `auto` reads
    /// them live [default: backup.snapshot]
    #[arg(long, value_name = "WHEN", num_args = 0..=1, require_equals = true, default_missing_value = "always",
          value_parser = PossibleValuesParser::new(lifeboat_config::SnapshotMode::ACCEPTED.iter().copied()))]
    pub snapshot: Option<String>,
    /// Paths under the root to back up, each without crossing into other mounts
    /// [default: every local filesystem mounted now]
    #[arg(value_name = "PATHS")]
    pub paths: Vec<PathBuf>,
}

/// `lifeboat backup list|info|prune`.
#[derive(Debug, Subcommand)]
pub enum BackupCmd {
    /// The backups a target holds: date, host, size, files, compression ratio
    List {
        /// The target [default: backup.target]
        #[arg(long, value_name = "URL")]
        target: Option<String>,
    },
    /// Everything about one backup: volumes, sizes, counts, warnings
    Info(FromArgs),
    /// Remove the backups a retention policy does not keep (--keep-*, else [backup.retention]), or with --partial what interrupted runs left
    Prune(PruneArgs),
}

/// Arguments of `lifeboat backup prune`.
///
/// A backup is kept when any --keep-* policy keeps it (restic's rules; days,
/// ISO weeks, months and years in UTC, from the backup's name). Without
/// --keep-* the policy of [backup.retention] in the config applies; with no
/// policy at all nothing is removed. The newest complete backup of a host, a
/// backup still being written and a damaged backup are never removed.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The target [default: backup.target]
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Remove only the staging directories of dead runs (`*.partial` no live run holds)
    #[arg(long, conflicts_with_all = ["keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "dry_run"])]
    pub partial: bool,
    /// Keep the N newest backups
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N days that have backups
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks that have backups
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have backups
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest backup of each of the last N years that have backups
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Only the backups of this host [default: every host on the target]
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Say what would be removed and kept; remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// Which backup: a backup directory, or a target (its newest backup of this host).
#[derive(Debug, Args)]
pub struct FromArgs {
    /// file:///DIR of a backup, or of a target [default: backup.target]
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    /// Use a backup whose signature is missing or does not match this host's
    /// key (paths.key_dir), with a warning: it may not be a backup this host made
    #[arg(long)]
    pub insecure_unsigned: bool,
    /// The age identity file (AGE-SECRET-KEY-1...) that decrypts an encrypted
    /// backup [default: backup.identity_file]
    #[arg(long, value_name = "FILE")]
    pub identity: Option<std::path::PathBuf>,
}

/// Arguments of `lifeboat verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backup (its trust and identity also apply to the backup on a medium)
    #[command(flatten)]
    pub from: FromArgs,
    /// Check rescue media instead: each medium's embedded checksum (which medium of a set is damaged,
    /// and where), then every volume of the backup on them against its signed catalog. Give the
    /// devices or ISO files of every medium of a set; with none, the medium the rescue system booted
    /// from (labelled rescue.label) and the other media of its set, found by their labels. An ISO
    /// file's backup is unpacked with xorriso into paths.work_dir to be read
    #[arg(long, value_name = "DEVICE|ISO", num_args = 0.., conflicts_with = "from")]
    pub medium: Option<Vec<PathBuf>>,
}

/// Arguments of `lifeboat restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup
    #[command(flatten)]
    pub from: FromArgs,
    /// Directory to restore into (created when missing)
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Archive paths or glob patterns to restore (a directory brings everything below it)
    #[arg(value_name = "PATTERNS", conflicts_with = "filesystem")]
    pub patterns: Vec<String>,
    /// Restore only the filesystem that was mounted here (such as /srv) into
    /// DIR as its root, without the filesystems mounted below it
    #[arg(long, value_name = "MOUNTPOINT")]
    pub filesystem: Option<String>,
    /// Restore the state of this earlier backup of the host (its name, as
    /// `backup list` shows it: 2026-12-01T020000.123Z) instead of the newest
    #[arg(long, value_name = "ID")]
    pub at: Option<String>,
}

/// Arguments of `lifeboat compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The backup
    #[command(flatten)]
    pub from: FromArgs,
    /// The live tree the backup was made from
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

/// Arguments of `lifeboat burn`.
#[derive(Debug, Args)]
pub struct BurnArgs {
    /// The optical writer or USB stick [default: burn.device]
    #[arg(long, value_name = "DEV")]
    pub device: Option<PathBuf>,
    /// The image [default: the newest lifeboat-*.iso or .img in paths.output_dir]
    #[arg(value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// Do not ask before erasing the device
    #[arg(long)]
    pub yes: bool,
}

/// `lifeboat config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the effective configuration as TOML
    Show,
    /// Write a configuration file listing every key with its default, commented out
    Init {
        /// Where to write it (`-`: standard output) [default: the --config file, else /etc/lifeboat/lifeboat.toml]
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// Replace an existing file
        #[arg(long)]
        force: bool,
    },
}

/// Arguments of `lifeboat status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Also write the state as Prometheus metrics to FILE (node_exporter's textfile collector), atomically
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
}

/// Arguments of `lifeboat completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `lifeboat manpage`.
#[derive(Debug, Args)]
pub struct ManpageArgs {
    /// Directory to write lifeboat.1 and lifeboat-*.1 into
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

/// Arguments of `lifeboat mkbackup`.
#[derive(Debug, clap::Args)]
pub struct MkbackupArgs {
    /// rescue: the medium only; media: the backup on the medium; target: the backup to backup.target; tape: the backup to a tape:// drive [default: mkbackup.mode]
    #[arg(long, value_parser = PossibleValuesParser::new(MkbackupMode::ACCEPTED.iter().copied()))]
    pub mode: Option<String>,
    /// Where the backup goes in `target` and `tape` mode [default: backup.target]
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Where the media go [default: paths.output_dir]
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Make the unattended recovery the default boot entry
    #[arg(long)]
    pub auto_recover: bool,
    /// Write over a tape that already holds a backup (`tape` mode) [default: backup.tape.overwrite]
    #[arg(long)]
    pub overwrite_tape: bool,
}

/// Arguments of `lifeboat serve` (docs/cloning.md, "Deploying a farm").
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The directory `mkrescue --format pxe` made (vmlinuz, initrd.img)
    #[arg(long, value_name = "DIR", required_unless_present_any = ["status", "fetch", "report"])]
    pub dir: Option<PathBuf>,
    /// The golden backup's directory [default: DIR/backup]
    #[arg(long, value_name = "DIR")]
    pub backup: Option<PathBuf>,
    /// The clone plan: a [[client]] per box, by mac or serial, with its clone file's keys
    #[arg(long, value_name = "FILE", required_unless_present_any = ["status", "fetch", "report"])]
    pub plan: Option<PathBuf>,
    /// Where to listen
    #[arg(long, value_name = "ADDRESS:PORT", default_value = "0.0.0.0:8080")]
    pub listen: String,
    /// The URL the boxes reach this server at [default: http://LISTEN]; with --status, the server to ask
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Kernel command line arguments for the rescue system, before lifeboat's own
    #[arg(long, value_name = "ARGS", default_value = "console=tty0 console=ttyS0,115200n8")]
    pub kernel_args: String,
    /// What each box does after its recovery
    #[arg(long, value_name = "WHAT", default_value = "reboot", value_parser = ["reboot", "poweroff"])]
    pub done: String,
    /// The most connections one client address may hold at once (more are answered 503): raise it when
    /// many boxes reach the server through one NAT or proxy address (each box opens up to 8)
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=128))]
    pub max_per_peer: u16,
    /// Where the server keeps every box's phase across restarts; a box recorded done boots from its
    /// disk instead of being deployed again (remove the file to deploy them all again)
    /// [default: PATHS.WORK_DIR/serve-state.json]
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Show the status of every box of a running server (--url, default http://127.0.0.1:8080) and exit
    #[arg(long)]
    pub status: bool,
    /// A box's side (its rescue system): print the text at URL (its clone file) and exit
    #[arg(long, value_name = "URL", hide = true)]
    pub fetch: Option<String>,
    /// A box's side: send the report TEXT to URL (its status address) and exit
    #[arg(long, value_name = "URL", hide = true, requires = "text")]
    pub report: Option<String>,
    /// The report: `booted`, `recovering`, `done` or `failed REASON`
    #[arg(long, value_name = "TEXT", hide = true)]
    pub text: Option<String>,
}

/// Arguments of `lifeboat recover`.
#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    /// The saved layout [default: /etc/lifeboat/layout.toml in the rescue system, else paths.layout_file]
    #[arg(long, value_name = "FILE")]
    pub layout: Option<PathBuf>,
    /// The backup: file:///DIR of a backup or of a target [default: where the rescue medium says it went, else backup.target]
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    /// Recreate the storage only; restore no files
    #[arg(long, conflicts_with = "from")]
    pub no_restore: bool,
    /// Map an old disk to a new one (repeatable); then only the mapped disks are recreated (cloning)
    #[arg(long = "map", value_name = "OLD=NEW")]
    pub map: Vec<String>,
    /// A file of OLD=NEW lines (`#` comments allowed)
    #[arg(long, value_name = "FILE")]
    pub map_file: Option<PathBuf>,
    /// Print the plan and stop
    #[arg(long)]
    pub plan: bool,
    /// Do not ask before erasing the disks in the plan
    #[arg(long)]
    pub yes: bool,
    /// Unattended: find the backup where the medium says, ask nothing, refuse an unsafe or ambiguous plan
    #[arg(long)]
    pub auto: bool,
    /// Where to mount the recreated filesystems [default: recover.mountpoint]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Passphrase file for LUKS containers [default: recover.luks_key_file]
    #[arg(long, value_name = "FILE")]
    pub luks_key_file: Option<PathBuf>,
    /// Leave the recovered filesystems mounted at the end
    #[arg(long)]
    pub keep_mounted: bool,
    /// Restore from a backup whose signature is missing or does not match the
    /// trusted key (the rescue medium's, or paths.key_dir), with a warning; never with --auto
    #[arg(long, conflicts_with = "auto")]
    pub insecure_unsigned: bool,
    /// Recover as a clone with the identity in FILE (host name, addresses,
    /// new machine-id and SSH host keys, optionally new UUIDs; see docs/cloning.md)
    #[arg(long = "clone", value_name = "FILE")]
    pub clone_file: Option<PathBuf>,
    /// The age identity file that decrypts an encrypted backup [default:
    /// backup.identity_file]
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

/// Arguments of `lifeboat drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The rescue medium [default: paths.output_dir/lifeboat-HOST.iso]; the further media of its set
    /// (lifeboat-HOST-2.iso, ...) beside it go in further drives
    #[arg(long, value_name = "ISO")]
    pub medium: Option<PathBuf>,
    /// The backup the recovered files are compared with
    #[command(flatten)]
    pub from: FromArgs,
    /// The saved layout the medium carries [default: paths.layout_file]
    #[arg(long, value_name = "FILE")]
    pub layout: Option<PathBuf>,
    /// What holds the backup, attached read-only to the VM: a disk image or block device [default: the
    /// disk that holds a file:// backup; none for a backup on the media]
    #[arg(long, value_name = "IMAGE")]
    pub backup_disk: Option<PathBuf>,
    /// Firmware of the VMs [default: drill.firmware]
    #[arg(long, value_parser = PossibleValuesParser::new(["bios", "uefi"]))]
    pub firmware: Option<String>,
    /// Size of the blank disks relative to the layout's (0.8: smaller, 1.5: larger)
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub disk_factor: f64,
    /// Where the report goes (a directory drill-TIME in it) [default: drill.report_dir]
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Keep the recovered disk images beside the report
    #[arg(long)]
    pub keep_disks: bool,
}
