//! The configuration file (`/etc/lifeboat/lifeboat.toml` by default).
//!
//! Every key has a default, so an absent file means "all defaults". Unknown
//! keys and wrong types are errors that name the key and the line. A key
//! with a fixed set of values is an enum ([`RescueFormat`],
//! [`InitramfsCompression`], [`BackupCompression`], [`MkbackupMode`],
//! [`ModuleSet`]) checked when the file is read: a bad value is one error
//! naming the key, the value and the accepted values, and code matches the
//! enum instead of comparing strings. The documentation of every key is
//! `docs/configuration.md`; a test checks that it mentions every key this
//! module knows.

mod choice;
mod size;

pub use choice::{
    BackupCompression, BadValue, DrillAccel, DrillFirmware, InitramfsCompression, MkbackupMode, ModuleSet, Regenerate,
    RescueFormat, SnapshotMode,
};
pub use size::{human, ByteSize, SizeError, PRESETS};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The default location of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/lifeboat/lifeboat.toml";

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid: syntax, unknown key, or wrong type.
    #[error("config file {path}: {message}\n  (every key and its default: docs/configuration.md, or `lifeboat config show`)")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the line, column and key.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where lifeboat keeps its work files, logs and saved layout.
    pub paths: Paths,
    /// What layout capture records and excludes.
    pub layout: LayoutConfig,
    /// What goes into the rescue system.
    pub rescue: Rescue,
    /// The file backup.
    pub backup: Backup,
    /// Writing media to an optical writer or USB stick.
    pub burn: Burn,
    /// Recovery settings.
    pub recover: Recover,
    /// What `lifeboat mkbackup` makes.
    pub mkbackup: Mkbackup,
    /// `lifeboat drill`: the rescue medium recovers in a VM.
    pub drill: Drill,
}

/// Directories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Paths {
    /// Scratch space for building media, and the run logs (`log/`).
    pub work_dir: PathBuf,
    /// Where finished media (ISO, raw image, PXE files) are written.
    pub output_dir: PathBuf,
    /// The saved layout of this machine.
    pub layout_file: PathBuf,
    /// The backup signing keys: `signing.key` (secret, root-only, made at the
    /// first backup, never backed up) and `signing.pub` (the public key that
    /// verify, restore and recover trust; the rescue medium carries it).
    pub key_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            work_dir: "/var/lib/lifeboat".into(),
            output_dir: "/var/lib/lifeboat/output".into(),
            layout_file: "/var/lib/lifeboat/layout.toml".into(),
            key_dir: "/etc/lifeboat".into(),
        }
    }
}

/// Layout capture settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayoutConfig {
    /// Recover loop devices and zram too (they are always recorded, but
    /// excluded from recovery unless this is true).
    pub include_virtual: bool,
    /// Recover removable disks (USB sticks) and optical drives too.
    pub include_removable: bool,
    /// Device names (`sdb`, `/dev/nvme1n1`) never to recover, in addition.
    pub exclude_devices: Vec<String>,
}

/// Rescue system settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rescue {
    /// Kernel image; empty means the running kernel's image, or the newest
    /// installed kernel that has its modules when the running one has none.
    pub kernel: Option<PathBuf>,
    /// Which modules to include.
    pub modules: ModuleSet,
    /// Module names for `modules = "list"`.
    pub modules_list: Vec<String>,
    /// Modules to add whatever `modules` says.
    pub extra_modules: Vec<String>,
    /// Programs (names on PATH or absolute paths) to add, with their libraries.
    pub extra_programs: Vec<String>,
    /// Files or directories to copy into the rescue system at the same path.
    pub extra_files: Vec<PathBuf>,
    /// Output format: `iso`, `raw` or `pxe`.
    pub format: RescueFormat,
    /// initramfs compression: `auto` (zstd when the kernel supports it, else gzip), `zstd`, `gzip`, `none`.
    pub compression: InitramfsCompression,
    /// Copy root's password hash into the rescue system.
    pub root_password: bool,
    /// Copy root's SSH authorized_keys and start sshd in the rescue system.
    pub ssh_authorized_keys: bool,
    /// The authorized_keys file copied with `ssh_authorized_keys`.
    pub authorized_keys_file: PathBuf,
    /// Volume label of the rescue medium.
    pub label: String,
    /// Put what reaches a remote backup target on the medium (root-only in
    /// the rescue system), so an unattended recovery can read the backup:
    /// S3 credentials, the SSH identity of an `sftp://` target. Off: the
    /// medium carries the target's address and known host keys only, and
    /// recovery asks for the secrets (or is told them in the environment).
    pub target_credentials: bool,
}

impl Default for Rescue {
    fn default() -> Self {
        Rescue {
            kernel: None,
            modules: ModuleSet::Loaded,
            modules_list: Vec::new(),
            extra_modules: Vec::new(),
            extra_programs: Vec::new(),
            extra_files: Vec::new(),
            format: RescueFormat::Iso,
            compression: InitramfsCompression::Auto,
            root_password: false,
            ssh_authorized_keys: false,
            authorized_keys_file: "/root/.ssh/authorized_keys".into(),
            label: "LIFEBOAT".into(),
            target_credentials: false,
        }
    }
}

/// Backup settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backup {
    /// Where backups go (`file:///mnt/backup`); empty means no backup target.
    pub target: String,
    /// Glob patterns of paths never to back up, in addition to the automatic excludes.
    pub exclude: Vec<String>,
    /// Volume size: a preset (`cd`, `dvd`, `dvd-dl`, `bd`) or a size (`700M`, `4.7G`, `1048576`).
    pub volume_size: ByteSize,
    /// `zstd` or `gzip`.
    pub compression: BackupCompression,
    /// Compression level (zstd 1-19, gzip 1-9).
    pub level: u32,
    /// Encrypt backups to these age public keys (`age1...`); empty (and no
    /// `recipients_file` or `passphrase_file`) means backups are not encrypted.
    pub recipients: Vec<String>,
    /// An age recipients file (one `age1...` per line, `#` comments) to encrypt to as well; empty: none.
    pub recipients_file: PathBuf,
    /// A file holding a passphrase to encrypt to as well (a recovery
    /// identity for the day every key is lost); empty: none.
    pub passphrase_file: PathBuf,
    /// The age identity file (`AGE-SECRET-KEY-1...`) that decrypts backups
    /// for verify, restore and recover; empty: give `--identity FILE`. When
    /// set, `mkbackup` puts it on the rescue medium (with a warning).
    pub identity_file: PathBuf,
    /// How old a chain's full backup may get before the next backup is full
    /// again (`"7d"`: full weekly, incremental in between); empty: every
    /// backup is full unless `lifeboat backup --incremental` is given.
    pub full_every: String,
    /// Foreign partitions (NTFS, unknown filesystems, raw data) saved as
    /// images even though their disk is excluded or the backup is of chosen
    /// paths (device paths, `/dev/loop0p3`); those on the recovered disks
    /// of a whole-system backup always are.
    pub image_devices: Vec<String>,
    /// Which backups `lifeboat backup prune` keeps (`[backup.retention]`); none set: every backup is kept.
    pub retention: Retention,
    /// How `s3://` targets reach their store (`[backup.s3]`).
    pub s3: BackupS3,
    /// How `tape://` targets write (`[backup.tape]`).
    pub tape: BackupTape,
    /// Back up from snapshots (btrfs, LVM classic or thin) taken at one
    /// instant: `never`, `auto` (filesystems that cannot be snapshotted are
    /// read live, with a warning) or `always` (refuse when one cannot be).
    pub snapshot: SnapshotMode,
    /// The size of a classic LVM snapshot: a percentage of its LV (`"10%"`)
    /// or a size (`"2G"`); the volume group must have that much free.
    pub snapshot_size: String,
}

/// How `tape:///dev/nst0` and `tape://[user@]host/dev/nst0` targets write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupTape {
    /// Bytes per tape block (a multiple of 512, at most 16M); every write is one whole block.
    pub block_size: ByteSize,
    /// Write over a tape that already holds a backup or other data (`--overwrite-tape` for one run).
    pub overwrite: bool,
    /// The changer (`/dev/sgN`, driven with `mtx`) that loads the next tape of a backup; empty: none
    /// (a person is asked at a terminal, an unattended run stops naming the tape).
    pub changer: String,
    /// Bytes of data lifeboat puts on one tape before it goes on to the next; absent: as many as the
    /// drive takes (until it reports the end of the tape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<ByteSize>,
}

impl Default for BackupTape {
    fn default() -> Self {
        BackupTape { block_size: ByteSize(256 << 10), overwrite: false, changer: String::new(), capacity: None }
    }
}

/// How `s3://bucket/prefix` targets reach their object store. Empty keys
/// come from the usual `AWS_*` environment variables and `~/.aws/credentials`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupS3 {
    /// The store's URL (`https://s3.example.net`, `http://10.0.0.5:3900`); empty: `AWS_ENDPOINT_URL`, else AWS.
    pub endpoint: String,
    /// The region requests are signed for; empty: `AWS_REGION`, else `us-east-1`.
    pub region: String,
    /// Path-style URLs (`ENDPOINT/BUCKET/KEY`) when true, virtual-host (`BUCKET.ENDPOINT/KEY`) when false; unset: path-style when an endpoint is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// The access key id; empty: `AWS_ACCESS_KEY_ID` or the credentials file.
    pub access_key_id: String,
    /// The secret access key; empty: `AWS_SECRET_ACCESS_KEY` or the credentials file.
    pub secret_access_key: String,
    /// An AWS credentials file; empty: `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
    pub credentials_file: PathBuf,
    /// The profile in the credentials file; empty: `AWS_PROFILE`, else `default`.
    pub profile: String,
    /// The size of each part of a volume's multipart upload (one part per volume being written is in memory).
    pub part_size: ByteSize,
    /// How many parts of a volume go up at once while the next is filled (1 to 64): a volume being
    /// written holds this many parts and one more in memory.
    pub parallel_parts: u32,
    /// How often a failed request is retried (with exponential backoff).
    pub retries: u32,
    /// Hours after which an upload without a catalog counts as dead (and `prune --partial` removes it);
    /// at least 1 (refused at load otherwise).
    pub grace_hours: u32,
    /// Seconds a connection may send or receive nothing before it fails (and is retried).
    pub timeout_secs: u32,
}

impl std::fmt::Debug for BackupS3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("BackupS3")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("credentials_file", &self.credentials_file)
            .field("profile", &self.profile)
            .field("part_size", &self.part_size)
            .field("parallel_parts", &self.parallel_parts)
            .field("retries", &self.retries)
            .field("grace_hours", &self.grace_hours)
            .field("timeout_secs", &self.timeout_secs)
            .finish_non_exhaustive()
    }
}

impl Default for BackupS3 {
    fn default() -> Self {
        BackupS3 {
            endpoint: String::new(),
            region: String::new(),
            path_style: None,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            credentials_file: PathBuf::new(),
            profile: String::new(),
            part_size: ByteSize(8 << 20),
            parallel_parts: 4,
            retries: 5,
            grace_hours: 6,
            timeout_secs: 60,
        }
    }
}

/// Which backups `lifeboat backup prune` keeps when no `--keep-*` option is
/// given: restic's policies, a backup being kept when any of them keeps it
/// (days, weeks, months, years in UTC). Unset (or 0): the policy is not used;
/// none set: prune refuses rather than remove anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Keep the N newest backups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N days that have backups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks that have backups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have backups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest backup of each of the last N years that have backups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
}

impl Backup {
    /// Whether backups are encrypted (any recipient is configured).
    pub fn encrypted(&self) -> bool {
        !self.recipients.is_empty()
            || !self.recipients_file.as_os_str().is_empty()
            || !self.passphrase_file.as_os_str().is_empty()
    }
}

impl Default for Backup {
    fn default() -> Self {
        Backup {
            target: String::new(),
            exclude: Vec::new(),
            volume_size: ByteSize::preset("dvd").unwrap_or(ByteSize(4_700_000_000)),
            compression: BackupCompression::Zstd,
            level: 3,
            recipients: Vec::new(),
            recipients_file: PathBuf::new(),
            passphrase_file: PathBuf::new(),
            identity_file: PathBuf::new(),
            full_every: String::new(),
            image_devices: Vec::new(),
            retention: Retention::default(),
            s3: BackupS3::default(),
            tape: BackupTape::default(),
            snapshot: SnapshotMode::Never,
            snapshot_size: "10%".into(),
        }
    }
}

/// Media burning settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Burn {
    /// Default writer or USB stick device; empty means it must be given.
    pub device: String,
    /// Write speed for optical media (`0` lets the drive choose).
    pub speed: u32,
    /// Blank rewritable media before writing.
    pub blank: bool,
    /// Read the written medium back and compare.
    pub verify: bool,
    /// Eject the medium when done.
    pub eject: bool,
}

impl Default for Burn {
    fn default() -> Self {
        Burn { device: String::new(), speed: 0, blank: false, verify: true, eject: true }
    }
}

/// Recovery settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recover {
    /// Where the recreated filesystems are mounted while files are restored.
    pub mountpoint: PathBuf,
    /// Mount points or partition device paths (as in the layout) that keep their size on a
    /// disk of another size, in addition to the ESP, BIOS boot, swap and `/boot` partitions.
    pub keep_size: Vec<String>,
    /// Shrinking onto a smaller disk is allowed only when every filesystem's used data plus
    /// this many percent still fits.
    pub headroom_percent: u32,
    /// When to regenerate the initramfs in the restored system (update-initramfs, dracut or
    /// mkinitcpio): `auto` (when device names or identities changed, or it lacks a driver the
    /// new disks need), `always` or `never`.
    pub regenerate_initramfs: Regenerate,
    /// Reinstall the bootloader the original had.
    pub bootloader: bool,
    /// Key file for LUKS containers; empty means ask for the passphrase.
    pub luks_key_file: String,
    /// Explicit disk mapping, `OLD=NEW` (`/dev/sda=/dev/nvme0n1`); `--map` adds to it.
    pub map: Vec<String>,
    /// A clone file (docs/cloning.md): recover as a clone with that identity; empty: as
    /// itself. `--clone FILE` wins.
    pub clone_file: String,
}

impl Default for Recover {
    fn default() -> Self {
        Recover {
            mountpoint: PathBuf::from("/mnt/lifeboat"),
            keep_size: Vec::new(),
            headroom_percent: 10,
            regenerate_initramfs: Regenerate::Auto,
            bootloader: true,
            luks_key_file: String::new(),
            map: Vec::new(),
            clone_file: String::new(),
        }
    }
}

/// What `lifeboat mkbackup` makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mkbackup {
    /// `rescue` (rescue medium only), `media` (rescue medium with the backup on it, split over
    /// numbered ISO files when one is not enough), `target` (rescue medium plus the backup to
    /// `backup.target`), `tape` (the backup to a `tape://` drive).
    pub mode: MkbackupMode,
}

impl Default for Mkbackup {
    fn default() -> Self {
        Mkbackup { mode: MkbackupMode::Target }
    }
}

/// How `lifeboat drill` runs (`[drill]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Drill {
    /// `auto` (KVM when a short probe boots a kernel under it, else TCG), `kvm` or `tcg`.
    pub accel: DrillAccel,
    /// `auto` (the saved layout's firmware), `bios` or `uefi`.
    pub firmware: DrillFirmware,
    /// Where reports go: one directory `drill-TIME` per drill.
    pub report_dir: PathBuf,
    /// How many reports are kept (older ones are removed after each drill); at least 1.
    pub keep_reports: u32,
    /// Memory of the VMs, in MiB.
    pub memory_mib: u32,
    /// How long the rescue medium may take to boot and recover, in minutes.
    pub recovery_timeout_minutes: u32,
    /// How long the recovered system may take to reach multi-user, in minutes.
    pub boot_timeout_minutes: u32,
}

impl Default for Drill {
    fn default() -> Self {
        Drill {
            accel: DrillAccel::Auto,
            firmware: DrillFirmware::Auto,
            report_dir: "/var/lib/lifeboat/drills".into(),
            keep_reports: 10,
            memory_mib: 2048,
            recovery_timeout_minutes: 120,
            boot_timeout_minutes: 15,
        }
    }
}

impl Config {
    /// Parse configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        cfg.validate().map_err(|message| ConfigError::Invalid { path: path.to_path_buf(), message })?;
        Ok(cfg)
    }

    /// Load `path`. A missing file at the default path means all defaults; a
    /// missing file that was asked for explicitly is an error.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read { path: path.to_path_buf(), source }),
        }
    }

    /// The configuration as TOML (what `lifeboat config show` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    fn validate(&self) -> Result<(), String> {
        if self.drill.keep_reports == 0 {
            return Err("key `drill.keep_reports` = 0: keep at least 1 (the report of the drill just run)".into());
        }
        if self.drill.memory_mib < 256 {
            return Err(format!("key `drill.memory_mib` = {}: give at least 256 (MiB)", self.drill.memory_mib));
        }
        for m in &self.recover.map {
            if !m.contains('=') {
                return Err(format!("key `recover.map`: \"{m}\" is not OLD=NEW (for example \"/dev/sda=/dev/vda\")"));
            }
        }
        let part = self.backup.s3.part_size.0;
        if !(5 << 20..=1 << 30).contains(&part) {
            return Err(format!(
                "key `backup.s3.part_size` = {part}: S3 parts are 5M to 1G (the smallest S3 accepts is 5 MiB)"
            ));
        }
        if !(1..=64).contains(&self.backup.s3.parallel_parts) {
            return Err(format!(
                "key `backup.s3.parallel_parts` = {}: give 1 to 64 (parts of a volume going up at once)",
                self.backup.s3.parallel_parts
            ));
        }
        if self.backup.s3.grace_hours < 1 {
            return Err("key `backup.s3.grace_hours` = 0: give at least 1 (hours after which an upload without a \
                        catalog counts as dead; less would remove running uploads)"
                .into());
        }
        if self.backup.s3.access_key_id.is_empty() != self.backup.s3.secret_access_key.is_empty() {
            return Err("keys `backup.s3.access_key_id` and `backup.s3.secret_access_key`: give both or neither".into());
        }
        let max = self.backup.compression.max_level();
        if !(1..=max).contains(&self.backup.level) {
            return Err(format!(
                "key `backup.level` = {}: {} levels are 1 to {max}",
                self.backup.level, self.backup.compression
            ));
        }
        SnapshotSize::parse(&self.backup.snapshot_size).map_err(|why| format!("key `backup.snapshot_size`: {why}"))?;
        if self.rescue.modules == ModuleSet::List && self.rescue.modules_list.is_empty() {
            return Err("key `rescue.modules` = \"list\" needs `rescue.modules_list` with module names".into());
        }
        for r in &self.backup.recipients {
            check_age_recipient(r).map_err(|why| format!("key `backup.recipients`: {why}"))?;
        }
        if !self.backup.target.is_empty() && !self.backup.target.contains("://") {
            return Err(format!(
                "key `backup.target` = \"{}\": expected a URL such as file:///mnt/backup",
                self.backup.target
            ));
        }
        Ok(())
    }
}

/// The size of a classic LVM snapshot (`backup.snapshot_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSize {
    /// This percentage (1 to 100) of the snapshotted LV's size.
    Percent(u32),
    /// This many bytes.
    Bytes(u64),
}

impl SnapshotSize {
    /// Read `"10%"` or a size (`"2G"`, `"512M"`); the error says what is accepted.
    pub fn parse(s: &str) -> Result<SnapshotSize, String> {
        let t = s.trim();
        if let Some(n) = t.strip_suffix('%') {
            return match n.trim().parse::<u32>() {
                Ok(p) if (1..=100).contains(&p) => Ok(SnapshotSize::Percent(p)),
                _ => Err(format!(
                    "\"{s}\": give a percentage of the LV from 1% to 100% (e.g. \"10%\"), or a size (\"2G\")"
                )),
            };
        }
        match t.parse::<ByteSize>() {
            Ok(b) if b.0 >= 1 << 20 => Ok(SnapshotSize::Bytes(b.0)),
            _ => Err(format!("\"{s}\": give a size of at least 1M (e.g. \"2G\"), or a percentage of the LV (\"10%\")")),
        }
    }

    /// The bytes this asks for a snapshot of an LV of `lv_size` bytes.
    pub fn bytes_for(self, lv_size: u64) -> u64 {
        match self {
            SnapshotSize::Percent(p) => lv_size / 100 * u64::from(p) + lv_size % 100 * u64::from(p) / 100,
            SnapshotSize::Bytes(b) => b,
        }
    }
}

/// Check that a recipient is an age X25519 public key: `age1` and 58
/// Bech32 characters whose checksum is right, so a typo is caught when the
/// configuration is read rather than when a backup starts.
pub fn check_age_recipient(key: &str) -> Result<(), String> {
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let fix = "give the `age1...` public key that `age-keygen` prints (or `age-keygen -y KEYFILE`)";
    if key.starts_with("AGE-SECRET-KEY-") {
        return Err(format!(
            "a secret key (AGE-SECRET-KEY-1...) is not a recipient and must never be in the configuration: {fix}"
        ));
    }
    let Some(data) = key.strip_prefix("age1") else {
        return Err(format!("\"{key}\" is not an age public key: {fix}"));
    };
    let values: Option<Vec<u8>> = data.bytes().map(|c| CHARSET.iter().position(|x| *x == c).map(|p| p as u8)).collect();
    let Some(values) = values.filter(|v| v.len() == 58) else {
        return Err(format!("\"{key}\" is not an age public key (62 lowercase Bech32 characters): {fix}"));
    };
    // BIP-173 checksum over the expanded human-readable part `age` and the data.
    let mut chk: u32 = 1;
    let hrp = b"age";
    let expanded = hrp.iter().map(|c| c >> 5).chain([0]).chain(hrp.iter().map(|c| c & 31)).chain(values);
    for v in expanded {
        let top = chk >> 25;
        chk = ((chk & 0x1ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in [0x3b6a_57b2u32, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3].iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    if chk != 1 {
        return Err(format!("\"{key}\" has a wrong checksum (a typo?): {fix}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(parse("").expect("empty"), Config::default());
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let text = Config::default().to_toml();
        assert_eq!(parse(&text).expect("round trip"), Config::default());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("[paths]\nwork_dir = \"/x\"\nwrok_dir = \"/y\"\n").unwrap_err().to_string();
        assert!(e.contains("wrok_dir"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let e = parse("[backup]\n\nlevel = \"high\"\n").unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("level") || e.contains("integer"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = parse("[backup]\nlevel = 25\n").unwrap_err().to_string();
        assert!(e.contains("backup.level"), "{e}");
        let e = parse("[rescue]\nformat = \"floppy\"\n").unwrap_err().to_string();
        assert!(e.contains("rescue.format") && e.contains("iso"), "{e}");
        let e = parse("[backup]\ntarget = \"/mnt/x\"\n").unwrap_err().to_string();
        assert!(e.contains("file:///mnt/backup"), "{e}");
    }

    #[test]
    fn fixed_choices_parse_from_the_file() {
        let c = parse(
            "[rescue]\nformat = \"pxe\"\ncompression = \"none\"\nmodules = \"all\"\n\
             [backup]\ncompression = \"gzip\"\nlevel = 9\n[mkbackup]\nmode = \"media\"\n",
        )
        .expect("valid");
        assert_eq!(c.rescue.format, RescueFormat::Pxe);
        assert_eq!(c.rescue.compression, InitramfsCompression::None);
        assert_eq!(c.rescue.modules, ModuleSet::All);
        assert_eq!(c.backup.compression, BackupCompression::Gzip);
        assert_eq!(c.mkbackup.mode, MkbackupMode::Media);
        assert!(c.to_toml().contains("format = \"pxe\""), "config show spells values as the file does");
    }

    #[test]
    fn a_bad_choice_is_one_error_naming_key_value_and_choices() {
        for (text, key, value, accepted, line) in [
            ("[rescue]\nformat = \"floppy\"\n", "rescue.format", "floppy", "iso, raw, pxe", 2),
            ("[rescue]\n\ncompression = \"lz4\"\n", "rescue.compression", "lz4", "auto, zstd, gzip, none", 3),
            ("[rescue]\nmodules = \"some\"\n", "rescue.modules", "some", "loaded, all, list", 2),
            ("[backup]\ncompression = \"xz\"\n", "backup.compression", "xz", "zstd, gzip", 2),
            ("[mkbackup]\nmode = \"cloud\"\n", "mkbackup.mode", "cloud", "rescue, media, target, tape", 2),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(&format!("key `{key}` = \"{value}\": expected one of {accepted}")), "{e}");
            assert!(e.contains(&format!("line {line}")), "{e}");
        }
        let e = parse("[backup]\ncompression = \"gzip\"\nlevel = 12\n").unwrap_err().to_string();
        assert!(e.contains("backup.level") && e.contains("gzip levels are 1 to 9"), "{e}");
    }

    #[test]
    fn encryption_recipients_are_checked_at_load() {
        let good = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        let c = parse(&format!("[backup]\nrecipients = [\"{good}\"]\nidentity_file = \"/media/usb/key.txt\"\n"))
            .expect("valid");
        assert_eq!(c.backup.recipients, vec![good.to_string()]);
        assert_eq!(c.backup.identity_file, PathBuf::from("/media/usb/key.txt"));
        assert!(c.backup.encrypted() && !Config::default().backup.encrypted());
        let typo = good.replace("8p", "8q");
        for (bad, says) in [
            (typo.as_str(), "wrong checksum"),
            ("age1short", "62 lowercase"),
            ("ssh-ed25519 AAAA", "not an age public key"),
            ("AGE-SECRET-KEY-1QQQ", "secret key"),
        ] {
            let e = parse(&format!("[backup]\nrecipients = [\"{bad}\"]\n")).unwrap_err().to_string();
            assert!(e.contains("backup.recipients") && e.contains(says) && e.contains("age-keygen"), "{bad}: {e}");
        }
        let e = parse("[backup]\nrecipients = [\"AGE-SECRET-KEY-1QQQ\"]\n").unwrap_err().to_string();
        assert!(!e.contains("1QQQ"), "a secret key is never echoed: {e}");
    }

    #[test]
    fn s3_settings_have_defaults_are_checked_and_never_print_the_secret() {
        let d = Config::default().backup.s3;
        assert_eq!((d.part_size.0, d.retries, d.grace_hours, d.path_style), (8 << 20, 5, 6, None));
        let c = parse(
            "[backup.s3]\nendpoint = \"http://127.0.0.1:3900\"\nregion = \"garage\"\npath_style = true\n\
             access_key_id = \"GK1\"\nsecret_access_key = \"hunter2\"\npart_size = \"16M\"\n",
        )
        .expect("valid");
        assert_eq!((c.backup.s3.path_style, c.backup.s3.part_size.0), (Some(true), 16 << 20));
        assert_eq!(parse(&c.to_toml()).expect("round trip"), c);
        assert!(!format!("{c:?}").contains("hunter2"));
        let e = parse("[backup.s3]\npart_size = \"1M\"\n").unwrap_err().to_string();
        assert!(e.contains("backup.s3.part_size"), "{e}");
        let e = parse("[backup.s3]\naccess_key_id = \"GK1\"\n").unwrap_err().to_string();
        assert!(e.contains("both"), "{e}");
        assert_eq!(parse("[backup.s3]\nparallel_parts = 8\n").expect("8").backup.s3.parallel_parts, 8);
        let e = parse("[backup.s3]\nparallel_parts = 0\n").unwrap_err().to_string();
        assert!(e.contains("backup.s3.parallel_parts"), "{e}");
        let e = parse("[backup.s3]\ngrace_hours = 0\n").unwrap_err().to_string();
        assert!(e.contains("backup.s3.grace_hours"), "{e}");
    }

    #[test]
    fn retention_is_a_table_of_keep_counts_unset_by_default() {
        assert_eq!(Config::default().backup.retention, Retention::default());
        let c = parse("[backup.retention]\nkeep_last = 3\nkeep_daily = 7\nkeep_weekly = 4\n").expect("valid");
        assert_eq!(c.backup.retention.keep_last, Some(3));
        assert_eq!((c.backup.retention.keep_weekly, c.backup.retention.keep_monthly), (Some(4), None));
        assert_eq!(parse(&c.to_toml()).expect("round trip"), c);
        let e = parse("[backup.retention]\nkeep_hourly = 1\n").unwrap_err().to_string();
        assert!(e.contains("keep_hourly") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn volume_size_presets_and_sizes() {
        let c = parse("[backup]\nvolume_size = \"cd\"\n").expect("cd");
        assert_eq!(c.backup.volume_size.0, 700 * 1024 * 1024);
        let c = parse("[backup]\nvolume_size = \"1.5G\"\n").expect("1.5G");
        assert_eq!(c.backup.volume_size.0, 1_610_612_736);
        let c = parse("[backup]\nvolume_size = 4096\n").expect("int");
        assert_eq!(c.backup.volume_size.0, 4096);
        let e = parse("[backup]\nvolume_size = \"huge\"\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("huge"), "{e}");
    }

    #[test]
    fn missing_default_file_is_defaults_but_explicit_is_error() {
        let p = Path::new("/nonexistent/lifeboat.toml");
        assert_eq!(Config::load(p, false).expect("defaults"), Config::default());
        assert!(Config::load(p, true).unwrap_err().to_string().contains("/nonexistent/lifeboat.toml"));
    }

    #[test]
    fn documentation_mentions_every_key() {
        let doc = include_str!("../../../docs/configuration.md");
        let value: toml::Value = toml::from_str(&Config::default().to_toml()).expect("toml");
        let mut keys = Vec::new();
        if let toml::Value::Table(sections) = value {
            for (section, v) in sections {
                if let toml::Value::Table(t) = v {
                    keys.extend(t.keys().map(|k| format!("{section}.{k}")));
                }
            }
        }
        // Options that default to "unset" are not rendered; list them by hand.
        keys.push("rescue.kernel".into());
        for k in keys {
            assert!(doc.contains(&format!("`{k}`")), "docs/configuration.md does not document `{k}`");
        }
    }
}
