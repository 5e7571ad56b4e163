//! The layout file: one TOML document with a format version.
//!
//! Every block device is a node named by its device path (`id`), and every
//! node lists the nodes it is built on in `depends_on`, so a planner can order
//! recreation (disk → partition → RAID → LUKS → PV → VG → LV → filesystem).
//! Sizes are in bytes unless the field name says sectors.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layout format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Errors reading or writing a layout file.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The file cannot be read or written.
    #[error("layout file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid layout.
    #[error("layout file {path} is not a valid lifeboat layout: {message}\n  (the format is described in docs/layout-format.md; `lifeboat layout save` writes a fresh one)")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and key.
        message: String,
    },
    /// The file was written by a lifeboat with another format version.
    #[error("layout file {path} has format_version {found}, but this lifeboat reads version {FORMAT_VERSION} only; use the lifeboat that wrote it, or save the layout again with this one")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
    },
}

/// The whole layout of one machine.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Format version; readers refuse versions they do not know.
    pub format_version: u32,
    /// Where and when this was captured.
    pub meta: Meta,
    /// Whole disks, with their partition tables.
    #[serde(default, rename = "disk")]
    pub disks: Vec<Disk>,
    /// Linux software RAID (md) arrays.
    #[serde(default, rename = "raid", skip_serializing_if = "Vec::is_empty")]
    pub raids: Vec<Raid>,
    /// LVM physical volumes, volume groups and logical volumes.
    #[serde(default, skip_serializing_if = "Lvm::is_empty")]
    pub lvm: Lvm,
    /// LUKS containers.
    #[serde(default, rename = "luks", skip_serializing_if = "Vec::is_empty")]
    pub luks: Vec<Luks>,
    /// Filesystems, on any node.
    #[serde(default, rename = "filesystem", skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<Filesystem>,
    /// Swap areas (devices and files).
    #[serde(default, rename = "swap", skip_serializing_if = "Vec::is_empty")]
    pub swaps: Vec<Swap>,
    /// Foreign partitions (NTFS, unknown filesystems, raw data), saved and
    /// written back as images whose contents are not interpreted.
    #[serde(default, rename = "image", skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    /// What is mounted where now.
    #[serde(default, rename = "mount", skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// `/etc/fstab`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fstab: Vec<FstabEntry>,
    /// `/etc/crypttab`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crypttab: Vec<CrypttabEntry>,
    /// How the machine boots.
    #[serde(default)]
    pub bootloader: Bootloader,
    /// Network interfaces, routes and DNS.
    #[serde(default)]
    pub network: Network,
    /// What could not be read, and why.
    #[serde(default, rename = "note", skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
}

/// Where and when a layout was captured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Host name.
    pub hostname: String,
    /// Capture time, RFC 3339 UTC.
    pub captured_at: String,
    /// lifeboat version that captured it.
    pub lifeboat_version: String,
    /// `uname -r` of the running kernel.
    pub kernel_release: String,
    /// `uname -m`.
    pub machine: String,
}

/// Why a device is left out of recovery by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskKind {
    /// An ordinary disk.
    Disk,
    /// A loop device (backed by a file).
    Loop,
    /// A compressed RAM disk.
    Zram,
    /// A RAM disk (`/dev/ram*`).
    Ram,
    /// An optical drive.
    Optical,
    /// A removable disk (USB stick, card reader).
    Removable,
}

/// A whole disk.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Device path, e.g. `/dev/sda`; the node id.
    pub id: String,
    /// What kind of device this is.
    pub kind: DiskKind,
    /// Size in bytes.
    pub size: u64,
    /// Logical sector size in bytes.
    pub logical_sector_size: u32,
    /// Physical sector size in bytes.
    pub physical_sector_size: u32,
    /// Model, when the device reports one.
    pub model: Option<String>,
    /// Serial number, when the device reports one.
    pub serial: Option<String>,
    /// World wide name, when the device reports one.
    pub wwn: Option<String>,
    /// Transport (sata, nvme, usb, virtio, ...), when known.
    pub transport: Option<String>,
    /// Rotational (spinning) disk.
    #[serde(default)]
    pub rotational: bool,
    /// Read-only device.
    #[serde(default)]
    pub read_only: bool,
    /// Backing file of a loop device.
    pub backing_file: Option<String>,
    /// When set, this disk is recorded but not recreated by recovery, and why.
    pub excluded: Option<String>,
    /// The partition table; absent when the disk has none (or it could not be read).
    pub table: Option<PartitionTable>,
}

impl Disk {
    /// A disk of `size` bytes with 512-byte sectors and nothing else known
    /// (no table, not excluded): a start for building layouts by hand.
    pub fn new(id: &str, size: u64) -> Disk {
        Disk {
            id: id.into(),
            kind: DiskKind::Disk,
            size,
            logical_sector_size: 512,
            physical_sector_size: 512,
            model: None,
            serial: None,
            wwn: None,
            transport: None,
            rotational: false,
            read_only: false,
            backing_file: None,
            excluded: None,
            table: None,
        }
    }
}

/// An MBR (`dos`) or GPT partition table, in sectors of `sector_size` bytes.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionTable {
    /// `gpt` or `dos`.
    pub label: String,
    /// GPT disk GUID or MBR disk signature (`0x1234abcd`).
    pub id: Option<String>,
    /// Sector size the numbers below are in.
    pub sector_size: u32,
    /// First usable LBA (GPT).
    pub first_lba: Option<u64>,
    /// Last usable LBA (GPT).
    pub last_lba: Option<u64>,
    /// Partitions in table order.
    #[serde(default, rename = "partition")]
    pub partitions: Vec<Partition>,
}

/// One partition.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Device path, e.g. `/dev/sda1`; the node id.
    pub id: String,
    /// Partition number.
    pub number: u32,
    /// First sector.
    pub start: u64,
    /// Length in sectors.
    pub size: u64,
    /// Type: GPT type GUID or MBR type byte in hex (`83`, `ef`).
    #[serde(rename = "type")]
    pub part_type: String,
    /// Human name of the type, when known (`Linux filesystem`, `EFI System`).
    pub type_name: Option<String>,
    /// GPT partition GUID (PARTUUID).
    pub uuid: Option<String>,
    /// GPT partition name (PARTLABEL).
    pub name: Option<String>,
    /// GPT attributes as sfdisk writes them (`LegacyBIOSBootable GUID:63`).
    pub attrs: Option<String>,
    /// MBR boot flag.
    #[serde(default)]
    pub bootable: bool,
}

/// A Linux software RAID array.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raid {
    /// Device path (`/dev/md0`); the node id.
    pub id: String,
    /// `raid0`, `raid1`, `raid5`, ...
    pub level: String,
    /// Superblock version (`1.2`, `0.90`).
    pub metadata: String,
    /// Array UUID as mdadm prints it.
    pub uuid: String,
    /// Array name (`host:0`).
    pub name: Option<String>,
    /// Number of active devices the array is built for.
    pub raid_devices: u32,
    /// Chunk size in KiB (striped levels).
    pub chunk_kib: Option<u64>,
    /// Layout (`left-symmetric`, `near=2`).
    pub layout: Option<String>,
    /// Write-intent bitmap (`internal`, `none`, or a file).
    pub bitmap: Option<String>,
    /// Array size in bytes.
    pub size: u64,
    /// Member devices (node ids), active and spare.
    pub members: Vec<String>,
    /// Spare member devices (node ids).
    #[serde(default)]
    pub spares: Vec<String>,
    /// Nodes this is built on.
    pub depends_on: Vec<String>,
}

/// LVM: physical volumes, volume groups, logical volumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lvm {
    /// Physical volumes.
    #[serde(default, rename = "pv")]
    pub pvs: Vec<Pv>,
    /// Volume groups.
    #[serde(default, rename = "vg")]
    pub vgs: Vec<Vg>,
    /// Logical volumes, hidden ones (thin pool data and metadata) included.
    #[serde(default, rename = "lv")]
    pub lvs: Vec<Lv>,
}

/// An LVM physical volume.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pv {
    /// Node id: `pv:` and the device path.
    pub id: String,
    /// The device the PV is on (node id).
    pub device: String,
    /// PV UUID.
    pub uuid: String,
    /// Volume group it belongs to.
    pub vg: Option<String>,
    /// PV size in bytes.
    pub size: u64,
    /// Offset of the first extent in bytes.
    pub pe_start: Option<u64>,
    /// Nodes this is built on.
    pub depends_on: Vec<String>,
}

/// An LVM volume group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vg {
    /// Node id: `vg:` and the VG name.
    pub id: String,
    /// VG name.
    pub name: String,
    /// VG UUID.
    pub uuid: String,
    /// Extent size in bytes.
    pub extent_size: u64,
    /// VG size in bytes.
    pub size: u64,
    /// Free bytes.
    pub free: u64,
    /// Nodes this is built on (its PVs).
    pub depends_on: Vec<String>,
}

/// One segment of a logical volume.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvSegment {
    /// Segment type (`linear`, `striped`, `raid1`, `mirror`, `thin-pool`, `thin`).
    pub segtype: String,
    /// Number of stripes (or mirror images).
    pub stripes: u32,
    /// Stripe size in bytes.
    pub stripe_size: Option<u64>,
    /// Segment size in bytes.
    pub size: u64,
    /// Devices as LVM reports them (`/dev/vdb1(0)`).
    pub devices: Option<String>,
}

/// An LVM logical volume.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lv {
    /// Node id: the device path (`/dev/mapper/vg-lv`) for visible LVs,
    /// `lv:VG/NAME` for hidden ones.
    pub id: String,
    /// Volume group.
    pub vg: String,
    /// LV name (hidden LVs without brackets).
    pub name: String,
    /// LV UUID.
    pub uuid: String,
    /// Size in bytes (virtual size for thin volumes).
    pub size: u64,
    /// `lv_attr` as LVM prints it.
    pub attr: String,
    /// Internal LV (thin pool data/metadata, mirror images).
    #[serde(default)]
    pub hidden: bool,
    /// The thin pool a thin volume lives in.
    pub pool: Option<String>,
    /// Data LV of a thin pool.
    pub data_lv: Option<String>,
    /// Metadata LV of a thin pool.
    pub metadata_lv: Option<String>,
    /// Metadata size of a thin pool in bytes.
    pub metadata_size: Option<u64>,
    /// Chunk size of a thin pool or snapshot in bytes.
    pub chunk_size: Option<u64>,
    /// Origin of a snapshot.
    pub origin: Option<String>,
    /// Segments, in order.
    #[serde(default, rename = "segment")]
    pub segments: Vec<LvSegment>,
    /// Nodes this is built on.
    pub depends_on: Vec<String>,
}

/// A LUKS container (never its keys).
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Luks {
    /// The device holding the LUKS header (node id).
    pub device: String,
    /// The opened mapping (node id, `/dev/mapper/NAME`), when open.
    pub id: Option<String>,
    /// Mapping name (`cryptroot`), from the open mapping or crypttab.
    pub name: Option<String>,
    /// LUKS version, 1 or 2.
    pub version: u32,
    /// LUKS UUID.
    pub uuid: String,
    /// LUKS2 label.
    pub label: Option<String>,
    /// Cipher and mode (`aes-xts-plain64`).
    pub cipher: String,
    /// Volume key size in bits.
    pub key_size: u32,
    /// Hash (LUKS1 header hash, LUKS2 digest hash).
    pub hash: Option<String>,
    /// Key derivation of the first key slot (`argon2id`, `pbkdf2`).
    pub pbkdf: Option<String>,
    /// Data sector size (LUKS2).
    pub sector_size: Option<u32>,
    /// Nodes this is built on.
    pub depends_on: Vec<String>,
}

/// Parameters needed to recreate a filesystem faithfully.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsParams {
    /// Block size in bytes (ext, xfs data), cluster size (vfat).
    pub block_size: Option<u64>,
    /// Inode size (ext, xfs).
    pub inode_size: Option<u64>,
    /// ext: inode count; xfs: not used.
    pub inode_count: Option<u64>,
    /// ext: block count.
    pub block_count: Option<u64>,
    /// ext: reserved blocks.
    pub reserved_blocks: Option<u64>,
    /// ext: feature list as dumpe2fs prints it; xfs: `crc=1` style flags; btrfs: incompat flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// ext: journal size in bytes when known; xfs: internal log size in bytes.
    pub log_size: Option<u64>,
    /// xfs: allocation groups.
    pub ag_count: Option<u64>,
    /// xfs and vfat: sector size.
    pub sector_size: Option<u64>,
    /// xfs: stripe unit and width in blocks.
    pub sunit: Option<u64>,
    /// xfs: stripe width in blocks.
    pub swidth: Option<u64>,
    /// btrfs: data profile (`single`, `raid1`, `dup`).
    pub data_profile: Option<String>,
    /// btrfs: metadata profile.
    pub metadata_profile: Option<String>,
    /// btrfs: node size.
    pub node_size: Option<u64>,
    /// btrfs: number of devices.
    pub num_devices: Option<u64>,
    /// vfat: 12, 16 or 32.
    pub fat_bits: Option<u32>,
}

/// A btrfs subvolume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subvolume {
    /// Subvolume id.
    pub id: u64,
    /// Path from the top level (`@home`).
    pub path: String,
    /// Id of the parent subvolume.
    pub parent: u64,
    /// Read-only subvolume.
    #[serde(default)]
    pub read_only: bool,
}

/// A filesystem.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    /// The node it lives on (node id; for multi-device btrfs, the first).
    pub device: String,
    /// `ext2`, `ext3`, `ext4`, `xfs`, `btrfs`, `vfat`.
    pub fstype: String,
    /// Filesystem UUID (vfat: volume id `ABCD-1234`).
    pub uuid: Option<String>,
    /// Label.
    pub label: Option<String>,
    /// Filesystem size in bytes, when known.
    pub size: Option<u64>,
    /// Bytes in use, when mounted.
    pub used: Option<u64>,
    /// Where it is mounted now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mountpoints: Vec<String>,
    /// Creation parameters.
    #[serde(default)]
    pub params: FsParams,
    /// btrfs subvolumes.
    #[serde(default, rename = "subvolume", skip_serializing_if = "Vec::is_empty")]
    pub subvolumes: Vec<Subvolume>,
    /// btrfs default subvolume id.
    pub default_subvolume: Option<u64>,
    /// Nodes this is built on.
    pub depends_on: Vec<String>,
}

/// A swap area.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Swap {
    /// The device (node id) or swap file path.
    pub device: String,
    /// A swap file rather than a device.
    #[serde(default)]
    pub file: bool,
    /// Swap UUID.
    pub uuid: Option<String>,
    /// Swap label.
    pub label: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// In use now.
    #[serde(default)]
    pub active: bool,
    /// Nodes this is built on.
    #[serde(default)]
    pub depends_on: Vec<String>,
}

/// How a foreign partition's content is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageKind {
    /// NTFS: `ntfsclone --save-image` (its used clusters only).
    Ntfs,
    /// Anything else: every byte, all-zero blocks stored as holes.
    Raw,
}

impl ImageKind {
    /// The spelling in the layout file.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Ntfs => "ntfs",
            ImageKind::Raw => "raw",
        }
    }
}

impl std::fmt::Display for ImageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A partition whose content lifeboat does not recreate, saved as an image
/// in the backup and written back onto a partition at least as large.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// The partition (node id).
    pub device: String,
    /// How it is saved.
    pub kind: ImageKind,
    /// Size of the partition in bytes.
    pub size: u64,
    /// The signature blkid found (`ntfs`, `zfs_member`), none for raw data.
    pub fstype: Option<String>,
    /// The UUID blkid found.
    pub uuid: Option<String>,
    /// The label blkid found.
    pub label: Option<String>,
}

impl Image {
    /// Its archive path in a backup: `.lifeboat/images/NAME.img`, NAME
    /// the device's last path component (`sda3`).
    pub fn entry_path(&self) -> String {
        format!("{}/{}.img", IMAGES_DIR, image_name(&self.device))
    }
}

/// Where images are stored in a backup (an archive path, reserved).
pub const IMAGES_DIR: &str = ".lifeboat/images";

/// The file name part of an image: the device's last component, with
/// anything but letters, digits, `-`, `_` and `.` made `_` (never empty, never `..`).
pub fn image_name(device: &str) -> String {
    let last = device.rsplit('/').next().unwrap_or(device);
    let name: String =
        last.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        "image".into()
    } else {
        name
    }
}

/// A mounted filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// Mount point.
    pub target: String,
    /// Source as the kernel reports it.
    pub source: String,
    /// Filesystem type.
    pub fstype: String,
    /// Mount options.
    pub options: String,
    /// Path inside the filesystem that is mounted (btrfs subvolumes, bind mounts).
    pub root: String,
}

/// One `/etc/fstab` line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FstabEntry {
    /// Device spec (`UUID=...`, `/dev/...`, `LABEL=...`).
    pub spec: String,
    /// Mount point.
    pub file: String,
    /// Filesystem type.
    pub vfstype: String,
    /// Options.
    pub options: String,
    /// dump frequency.
    pub freq: u32,
    /// fsck pass.
    pub passno: u32,
}

/// One `/etc/crypttab` line.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrypttabEntry {
    /// Mapping name.
    pub name: String,
    /// Device spec.
    pub device: String,
    /// Key file (`none` when asked for).
    pub keyfile: Option<String>,
    /// Options.
    pub options: Option<String>,
}

/// An EFI boot manager entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EfiEntry {
    /// `Boot0001`.
    pub number: String,
    /// Entry label.
    pub label: String,
    /// Device path as efibootmgr prints it.
    pub path: String,
    /// Active (`*`).
    pub active: bool,
}

/// The firmware a machine booted with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// Legacy BIOS (or UEFI's compatibility module). An empty value, as a
    /// layout without a `[bootloader]` section once saved, reads as this.
    #[default]
    #[serde(alias = "")]
    Bios,
    /// UEFI (`/sys/firmware/efi` exists).
    Uefi,
}

impl Firmware {
    /// The spelling in the layout file.
    pub fn as_str(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bootloader capture found, which recovery reinstalls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BootloaderKind {
    /// GRUB's boot code in the MBR of one or more disks.
    #[serde(rename = "grub-bios")]
    GrubBios,
    /// GRUB as an EFI loader on the ESP.
    #[serde(rename = "grub-efi")]
    GrubEfi,
    /// Both: GRUB's boot code in an MBR and GRUB on the ESP.
    #[serde(rename = "grub-bios+efi")]
    GrubBiosEfi,
    /// systemd-boot on the ESP (`bootctl install`), with its loader entries.
    #[serde(rename = "systemd-boot")]
    SystemdBoot,
    /// No GRUB configuration, no ESP and no boot code: booted from outside
    /// (a hypervisor's kernel).
    #[serde(rename = "none")]
    None,
    /// Signs of a bootloader, but not one recovery knows how to reinstall
    /// (an empty value, as a layout without a `[bootloader]` section once
    /// saved, reads as this).
    #[default]
    #[serde(rename = "unknown", alias = "")]
    Unknown,
}

impl BootloaderKind {
    /// The spelling in the layout file.
    pub fn as_str(self) -> &'static str {
        match self {
            BootloaderKind::GrubBios => "grub-bios",
            BootloaderKind::GrubEfi => "grub-efi",
            BootloaderKind::GrubBiosEfi => "grub-bios+efi",
            BootloaderKind::SystemdBoot => "systemd-boot",
            BootloaderKind::None => "none",
            BootloaderKind::Unknown => "unknown",
        }
    }

    /// Whether GRUB for BIOS boots the machine (recovery installs it on disks).
    pub fn bios(self) -> bool {
        matches!(self, BootloaderKind::GrubBios | BootloaderKind::GrubBiosEfi)
    }

    /// Whether GRUB for UEFI boots the machine (recovery installs it on the ESP).
    pub fn efi(self) -> bool {
        matches!(self, BootloaderKind::GrubEfi | BootloaderKind::GrubBiosEfi)
    }
}

impl std::fmt::Display for BootloaderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the machine boots.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootloader {
    /// Firmware the machine booted with now: `uefi` or `bios`.
    pub firmware: Firmware,
    /// `grub-bios`, `grub-efi`, `grub-bios+efi`, `systemd-boot`, `none` (boots from outside), or `unknown`.
    pub kind: BootloaderKind,
    /// GRUB configuration file.
    pub grub_config: Option<String>,
    /// Disks whose MBR holds GRUB's boot code (node ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bios_boot_disks: Vec<String>,
    /// The EFI system partition (node id).
    pub esp: Option<String>,
    /// Where the ESP is mounted.
    pub esp_mountpoint: Option<String>,
    /// `.efi` loaders found on the ESP (paths inside it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub efi_loaders: Vec<String>,
    /// EFI boot order.
    pub efi_boot_order: Option<String>,
    /// EFI boot entries.
    #[serde(default, rename = "efi_entry", skip_serializing_if = "Vec::is_empty")]
    pub efi_entries: Vec<EfiEntry>,
    /// Kernel command line the machine booted with.
    pub kernel_cmdline: String,
}

/// An IP address on an interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// `inet` or `inet6`.
    pub family: String,
    /// Address.
    pub address: String,
    /// Prefix length.
    pub prefix: u32,
    /// Assigned by DHCP or autoconfiguration (not static).
    pub dynamic: bool,
}

/// A network interface.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Name (`eth0`).
    pub name: String,
    /// Hardware address.
    pub mac: Option<String>,
    /// MTU.
    pub mtu: u32,
    /// Operational state.
    pub state: String,
    /// Link type (`ether`, `loopback`).
    pub link_type: String,
    /// Addresses.
    #[serde(default, rename = "address")]
    pub addresses: Vec<Address>,
}

/// A route.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination (`default`, `10.0.0.0/8`).
    pub destination: String,
    /// Gateway.
    pub gateway: Option<String>,
    /// Interface.
    pub dev: Option<String>,
    /// Who set it (`kernel`, `dhcp`, `static`, `boot`).
    pub protocol: Option<String>,
}

/// Network configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Interfaces (loopback left out).
    #[serde(default, rename = "interface")]
    pub interfaces: Vec<Interface>,
    /// Routes, IPv4 and IPv6.
    #[serde(default, rename = "route")]
    pub routes: Vec<Route>,
    /// DNS servers from resolv.conf.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// DNS search domains.
    #[serde(default)]
    pub search: Vec<String>,
    /// Network configuration files present (ifupdown, netplan, NetworkManager, networkd).
    #[serde(default)]
    pub config_files: Vec<String>,
}

/// Something capture could not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// What was not read (`/dev/vda partition table`, `LVM`).
    pub what: String,
    /// Why, and what it means for recovery.
    pub why: String,
}

impl Lvm {
    /// No PV, VG or LV.
    pub fn is_empty(&self) -> bool {
        self.pvs.is_empty() && self.vgs.is_empty() && self.lvs.is_empty()
    }
}

/// Largest layout file read (captured ones are a few KiB).
const MAX_LAYOUT_BYTES: usize = 16 << 20;
/// Largest sector size of a partition table.
const MAX_SECTOR_SIZE: u32 = 1 << 20;
/// Largest byte offset on a disk (2^62: sums of a few stay within u64).
const MAX_BYTES: u64 = 1 << 62;

impl Layout {
    /// Read and check a layout file.
    pub fn load(path: &Path) -> Result<Layout, LayoutError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| LayoutError::Io { path: path.to_path_buf(), source })?;
        Layout::parse(&text, path)
    }

    /// Parse layout text; `path` is used in messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Layout, LayoutError> {
        if text.len() > MAX_LAYOUT_BYTES {
            return Err(LayoutError::Invalid {
                path: path.to_path_buf(),
                message: format!("{} bytes, more than a layout file can have ({MAX_LAYOUT_BYTES})", text.len()),
            });
        }
        // Check the version before the schema, so that a newer file says
        // "newer version", not "unknown field".
        let raw: toml::Table = toml::from_str(text).map_err(|e| LayoutError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        match raw.get("format_version") {
            Some(toml::Value::Integer(v)) if *v == i64::from(FORMAT_VERSION) => {}
            Some(toml::Value::Integer(v)) => return Err(LayoutError::Version { path: path.to_path_buf(), found: *v }),
            Some(_) => {
                return Err(LayoutError::Invalid {
                    path: path.to_path_buf(),
                    message: "`format_version` must be an integer".into(),
                })
            }
            None => {
                return Err(LayoutError::Invalid {
                    path: path.to_path_buf(),
                    message: "missing `format_version` at the top of the file".into(),
                })
            }
        }
        let layout: Layout = toml::from_str(text).map_err(|e| LayoutError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        layout.check_bounds().map_err(|message| LayoutError::Invalid { path: path.to_path_buf(), message })?;
        Ok(layout)
    }

    /// Numbers that recovery computes with must not overflow: a partition's
    /// end in bytes, the usable area of a table. A layout file can be
    /// hand-edited or come from a backup medium someone else wrote.
    fn check_bounds(&self) -> Result<(), String> {
        for d in &self.disks {
            let Some(t) = &d.table else { continue };
            if t.sector_size > MAX_SECTOR_SIZE {
                return Err(format!("disk {}: sector_size {} is more than {MAX_SECTOR_SIZE}", d.id, t.sector_size));
            }
            let sector = u64::from(t.sector_size.max(512));
            let bytes = |lba: u64| lba.checked_mul(sector).filter(|b| *b <= MAX_BYTES);
            for (what, lba) in [("first_lba", t.first_lba), ("last_lba", t.last_lba)] {
                if lba.is_some_and(|l| bytes(l).is_none()) {
                    return Err(format!("disk {}: {what} is beyond any disk", d.id));
                }
            }
            for p in &t.partitions {
                if p.start.checked_add(p.size).and_then(bytes).is_none() {
                    return Err(format!(
                        "partition {} of disk {}: start {} + size {} sectors is beyond any disk",
                        p.id, d.id, p.start, p.size
                    ));
                }
            }
        }
        for i in &self.images {
            if i.size > MAX_BYTES {
                return Err(format!("image of {}: size {} is beyond any disk", i.device, i.size));
            }
        }
        Ok(())
    }

    /// The layout as TOML text.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_else(|e| format!("# cannot render layout: {e}\n"));
        format!(
            "# lifeboat layout of {} captured {}\n# format: docs/layout-format.md\n{body}",
            self.meta.hostname, self.meta.captured_at
        )
    }

    /// Write the layout atomically (a temporary file renamed into place), mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), LayoutError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| LayoutError::Io { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("tmp");
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
        f.write_all(self.to_toml().as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Every node id with the ids it is built on. Partitions depend on their
    /// disk; everything else lists its dependencies explicitly.
    pub fn dependencies(&self) -> BTreeMap<String, Vec<String>> {
        let mut g: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in &self.disks {
            g.entry(d.id.clone()).or_default();
            for p in d.table.iter().flat_map(|t| &t.partitions) {
                g.insert(p.id.clone(), vec![d.id.clone()]);
            }
        }
        for r in &self.raids {
            g.insert(r.id.clone(), r.depends_on.clone());
        }
        for l in &self.luks {
            if let Some(id) = &l.id {
                g.insert(id.clone(), l.depends_on.clone());
            }
        }
        for p in &self.lvm.pvs {
            g.insert(p.id.clone(), p.depends_on.clone());
        }
        for v in &self.lvm.vgs {
            g.insert(v.id.clone(), v.depends_on.clone());
        }
        for l in &self.lvm.lvs {
            g.insert(l.id.clone(), l.depends_on.clone());
        }
        for f in &self.filesystems {
            g.insert(format!("fs:{}", f.device), f.depends_on.clone());
        }
        for s in self.swaps.iter().filter(|s| !s.file) {
            g.insert(format!("swap:{}", s.device), s.depends_on.clone());
        }
        g
    }

    /// The disk a node id belongs to (a disk or one of its partitions).
    pub fn disk_of(&self, id: &str) -> Option<&Disk> {
        self.disks.iter().find(|d| d.id == id || d.table.iter().flat_map(|t| &t.partitions).any(|p| p.id == id))
    }

    /// The image a foreign partition is saved as.
    pub fn image_of(&self, id: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.device == id)
    }

    /// The filesystem on a node.
    pub fn filesystem_on(&self, id: &str) -> Option<&Filesystem> {
        self.filesystems.iter().find(|f| f.device == id)
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    /// The example layout of docs/layout-format.md.
    fn example() -> String {
        let doc = include_str!("../../../docs/layout-format.md");
        let start = doc.find("format_version = 1\n\n[meta]").unwrap_or(0);
        let end = doc[start..].find("```").map(|e| start + e).unwrap_or(doc.len());
        doc[start..end].to_string()
    }

    #[test]
    fn partitions_beyond_any_disk_are_refused_naming_them() {
        let p = Path::new("layout.toml");
        assert!(Layout::parse(&example(), p).is_ok());
        let bad = example().replace("start = 2048\n", &format!("start = {}\n", i64::MAX));
        let e = Layout::parse(&bad, p).expect_err("accepted").to_string();
        assert!(e.contains("partition /dev/vda1 of disk /dev/vda") && e.contains("beyond any disk"), "{e}");
        let bad = example().replace("sector_size = 512\n", "sector_size = 4294967295\n");
        assert!(Layout::parse(&bad, p).expect_err("accepted").to_string().contains("sector_size"));
        let huge = format!("{}\n{}", example(), "#".repeat(MAX_LAYOUT_BYTES));
        assert!(Layout::parse(&huge, p).expect_err("accepted").to_string().contains("more than a layout file"));
    }

    #[test]
    fn bootloader_kinds_and_firmware_keep_their_spellings() {
        let p = Path::new("layout.toml");
        let with = |firmware: &str, kind: &str| {
            format!(
                "{}\n[bootloader]\nfirmware = \"{firmware}\"\nkind = \"{kind}\"\nkernel_cmdline = \"\"\n",
                example()
            )
        };
        for (kind, want, bios, efi) in [
            ("grub-bios", BootloaderKind::GrubBios, true, false),
            ("grub-efi", BootloaderKind::GrubEfi, false, true),
            ("grub-bios+efi", BootloaderKind::GrubBiosEfi, true, true),
            ("systemd-boot", BootloaderKind::SystemdBoot, false, false),
            ("none", BootloaderKind::None, false, false),
            ("unknown", BootloaderKind::Unknown, false, false),
            ("", BootloaderKind::Unknown, false, false),
        ] {
            let l = Layout::parse(&with("uefi", kind), p).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(l.bootloader.kind, want, "{kind}");
            assert_eq!((want.bios(), want.efi()), (bios, efi), "{kind}");
            assert_eq!(l.bootloader.firmware, Firmware::Uefi);
            if !kind.is_empty() {
                assert!(l.to_toml().contains(&format!("kind = \"{kind}\"")), "{kind} is written as it was read");
            }
        }
        assert_eq!(Layout::parse(&with("bios", "none"), p).expect("bios").bootloader.firmware, Firmware::Bios);
        let e = Layout::parse(&with("uefi", "lilo"), p).expect_err("lilo accepted").to_string();
        assert!(e.contains("lilo") && e.contains("grub-bios+efi"), "{e}");
        let e = Layout::parse(&with("openfirmware", "none"), p).expect_err("accepted").to_string();
        assert!(e.contains("openfirmware") && e.contains("uefi"), "{e}");
    }
}
