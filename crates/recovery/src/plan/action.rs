//! The steps of a plan: what each one does, which phase of recovery it
//! belongs to, and how it reads in progress lines and in the plan shown
//! before anything is written. This is the one home of that text: the
//! executor and the plan's rendering both ask the action.

use lifeboat_config::human;
use lifeboat_runner::Cmd;
use serde::Serialize;
use std::collections::BTreeMap;

fn as_cmdline<S: serde::Serializer>(c: &Cmd, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&c.cmdline())
}

/// One partition of a new partition table, in sectors of the new disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedPartition {
    /// Partition number (the old one's).
    pub number: u32,
    /// Its device path on the new disk (`/dev/sdb1`).
    pub device: String,
    /// First sector.
    pub start: u64,
    /// Length in sectors.
    pub size: u64,
    /// What is on it, for the administrator (`/ (ext4)`, `swap`).
    pub what: String,
}

/// One thing recovery does, in order.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Write a new partition table (wipes the disk).
    Partition {
        /// New disk.
        disk: String,
        /// The disk in the layout.
        old: String,
        /// `gpt` or `dos`.
        label: String,
        /// The sfdisk script.
        script: String,
        /// The new partitions.
        partitions: Vec<PlannedPartition>,
        /// Sector size.
        sector: u64,
    },
    /// Erase the signatures on a disk used without a partition table.
    Wipe {
        /// The device.
        device: String,
    },
    /// Create an md RAID array.
    Raid {
        /// The array device.
        device: String,
        /// Its UUID.
        uuid: String,
        /// mdadm --create.
        #[serde(serialize_with = "as_cmdline")]
        cmd: Cmd,
    },
    /// Create and open a LUKS container.
    Luks {
        /// The device holding the header.
        device: String,
        /// Mapping name.
        name: String,
        /// LUKS UUID.
        uuid: String,
        /// `cryptsetup luksFormat` (the key file argument is added at run time).
        #[serde(serialize_with = "as_cmdline")]
        format: Cmd,
    },
    /// Create an LVM physical volume.
    Pv {
        /// Device.
        device: String,
        /// PV UUID.
        uuid: String,
        /// pvcreate.
        #[serde(serialize_with = "as_cmdline")]
        cmd: Cmd,
    },
    /// Create a volume group.
    Vg {
        /// Name.
        name: String,
        /// vgcreate.
        #[serde(serialize_with = "as_cmdline")]
        cmd: Cmd,
    },
    /// Create a logical volume.
    Lv {
        /// VG/LV.
        name: String,
        /// Size in bytes.
        size: u64,
        /// lvcreate.
        #[serde(serialize_with = "as_cmdline")]
        cmd: Cmd,
    },
    /// Make a filesystem with its old UUID, label and parameters.
    Mkfs {
        /// Device.
        device: String,
        /// Type.
        fstype: String,
        /// UUID it must get.
        uuid: Option<String>,
        /// mkfs.
        #[serde(serialize_with = "as_cmdline")]
        cmd: Cmd,
    },
    /// Make a swap area.
    Mkswap {
        /// Device.
        device: String,
        /// UUID.
        uuid: Option<String>,
        /// mkswap.
        #[serde(serialize_with = "as_cmdline")]
        cmd: Cmd,
    },
    /// Create btrfs subvolumes (mounting the top level for it).
    Subvolumes {
        /// Device.
        device: String,
        /// Paths from the top level, parents first.
        paths: Vec<String>,
        /// The default subvolume's path, if not the top level.
        default: Option<String>,
    },
    /// Mount a recreated filesystem below the recovery mount point.
    Mount {
        /// Device.
        device: String,
        /// Mount point in the restored system (`/`, `/home`).
        target: String,
        /// Type.
        fstype: String,
        /// Extra options (`subvol=@home`).
        options: Option<String>,
    },
    /// Write a foreign partition's image from the backup onto its new
    /// partition (NTFS through `ntfsclone --restore-image`, raw images byte
    /// for byte with their holes as zeros).
    WriteImage {
        /// The new partition.
        device: String,
        /// The partition in the layout.
        old: String,
        /// How the image was saved.
        kind: lifeboat_layout::model::ImageKind,
        /// Its archive path in the backup.
        entry: String,
        /// Bytes it needs on the partition.
        needs: u64,
        /// Bytes of the new partition.
        partition: u64,
    },
    /// Restore the backup into the mounted tree.
    Restore {
        /// The backup directory.
        backup: String,
        /// Entries and bytes in it.
        entries: u64,
        /// Content bytes.
        bytes: u64,
    },
    /// Rewrite device names that changed in fstab, crypttab and the GRUB configuration.
    FixDevices {
        /// Old device path → new one.
        renames: BTreeMap<String, String>,
    },
    /// Give the restored system a clone's identity: host name, addresses,
    /// machine-id, SSH host keys, and the new UUIDs in its configuration.
    Identity {
        /// What the clone gets.
        identity: crate::identity::Identity,
    },
    /// Rebuild the initramfs in the restored system.
    Initramfs {
        /// With `recover.regenerate_initramfs = auto`: rebuild only when the
        /// restored initramfs lacks a driver these new disks need (their
        /// controllers' modules, read from sysfs) or when the configuration
        /// it carries names one of `renames`.
        #[serde(skip_serializing_if = "Option::is_none")]
        only_if_missing_drivers: Option<Vec<String>>,
        /// Device names that change (old → new): with `auto`, the initramfs
        /// is rebuilt when crypttab, mdadm.conf, fstab or the initramfs
        /// tool's own configuration names one of them by either name.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        renames: BTreeMap<String, String>,
        /// Why it is rebuilt (empty with `only_if_missing_drivers`).
        #[serde(skip_serializing_if = "String::is_empty")]
        why: String,
    },
    /// Install GRUB for BIOS in these disks' boot sectors.
    GrubBios {
        /// New disks.
        disks: Vec<String>,
    },
    /// Install GRUB for UEFI on the ESP, with a boot entry and the removable fallback path.
    GrubEfi {
        /// ESP mount point in the restored system.
        esp_mountpoint: String,
        /// Boot loader id (`debian`).
        id: String,
    },
    /// Install systemd-boot on the ESP with the restored system's own
    /// `bootctl`, with a boot entry and the removable fallback path; its
    /// loader entries are restored files.
    SystemdBoot {
        /// ESP mount point in the restored system (`/boot/efi`, `/efi`, `/boot`).
        esp_mountpoint: String,
    },
}

/// The phases of a recovery, in the order they run; the report times each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Partition tables and wiped disks.
    Partitioning,
    /// RAID, LUKS and LVM.
    Storage,
    /// Filesystems, swap, subvolumes and their mounts.
    Filesystems,
    /// The backup's files.
    Restore,
    /// Device names and the initramfs of the restored system.
    Fix,
    /// The bootloader.
    Bootloader,
}

impl Phase {
    /// The phase's name in reports (`partitioning`, `storage`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Partitioning => "partitioning",
            Phase::Storage => "storage",
            Phase::Filesystems => "filesystems",
            Phase::Restore => "restore",
            Phase::Fix => "fix",
            Phase::Bootloader => "bootloader",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A clone's identity as the plan shows it: one line per thing that changes.
fn render_identity(c: &crate::identity::Identity) -> String {
    let name = c.fqdn().unwrap_or_else(|| c.hostname.clone());
    let mut t = format!("the clone's identity (instead of {}'s):", c.source_hostname);
    t.push_str(&format!("\n       host name {name} (/etc/hostname, /etc/hosts, /etc/mailname)"));
    t.push_str("\n       a new machine-id, new SSH host keys (ssh-keygen -A)");
    for a in &c.interfaces {
        t.push_str(&format!("\n       {} (ifupdown, systemd-networkd, NetworkManager)", a.summary()));
    }
    if !c.uuids.is_empty() {
        t.push_str("\n       new UUIDs in fstab, crypttab and the boot configuration:");
        for (old, new) in &c.uuids {
            t.push_str(&format!("\n         {old} -> {new}"));
        }
    }
    t
}

fn uuid_or_new(u: &Option<String>) -> String {
    u.clone().unwrap_or_else(|| "(new)".into())
}

impl Action {
    /// The phase of recovery this step belongs to.
    pub fn phase(&self) -> Phase {
        match self {
            Action::Partition { .. } | Action::Wipe { .. } => Phase::Partitioning,
            Action::Raid { .. } | Action::Luks { .. } | Action::Pv { .. } | Action::Vg { .. } | Action::Lv { .. } => {
                Phase::Storage
            }
            Action::Mkfs { .. } | Action::Mkswap { .. } | Action::Subvolumes { .. } | Action::Mount { .. } => {
                Phase::Filesystems
            }
            Action::Restore { .. } | Action::WriteImage { .. } => Phase::Restore,
            Action::FixDevices { .. } | Action::Identity { .. } | Action::Initramfs { .. } => Phase::Fix,
            Action::GrubBios { .. } | Action::GrubEfi { .. } | Action::SystemdBoot { .. } => Phase::Bootloader,
        }
    }

    /// One line about the step, for progress and the recovery log.
    pub fn describe(&self) -> String {
        match self {
            Action::Partition { disk, label, partitions, .. } => {
                format!("partition {disk} ({label}, {} partitions)", partitions.len())
            }
            Action::Wipe { device } => format!("erase signatures on {device}"),
            Action::Raid { device, .. } => format!("create RAID {device}"),
            Action::Luks { device, name, .. } => format!("create LUKS on {device} as {name}"),
            Action::Pv { device, .. } => format!("create LVM PV {device}"),
            Action::Vg { name, .. } => format!("create VG {name}"),
            Action::Lv { name, .. } => format!("create LV {name}"),
            Action::Mkfs { device, fstype, .. } => format!("make {fstype} on {device}"),
            Action::Mkswap { device, .. } => format!("make swap on {device}"),
            Action::Subvolumes { device, paths, .. } => {
                format!("create btrfs subvolumes on {device}: {}", paths.join(", "))
            }
            Action::Mount { device, target, .. } => format!("mount {device} on {target}"),
            Action::Restore { backup, .. } => format!("restore {backup}"),
            Action::WriteImage { device, kind, .. } => format!("write the {kind} image onto {device}"),
            Action::FixDevices { .. } => "rename changed devices in the restored configuration".into(),
            Action::Identity { identity } => format!("give the restored system the identity of {}", identity.hostname),
            Action::Initramfs { only_if_missing_drivers: Some(_), .. } => {
                "keep the initramfs unless it lacks a driver of the new disks".into()
            }
            Action::Initramfs { .. } => "regenerate the initramfs".into(),
            Action::GrubBios { disks } => format!("install GRUB for BIOS on {}", disks.join(", ")),
            Action::GrubEfi { esp_mountpoint, .. } => format!("install GRUB for UEFI on {esp_mountpoint}"),
            Action::SystemdBoot { esp_mountpoint } => format!("install systemd-boot on {esp_mountpoint}"),
        }
    }

    /// The step as the plan shows it before anything is written: what will
    /// be made, with its identity and, where it helps, the command. Step
    /// `n` (from 1); a partition table takes one line per partition.
    pub fn render(&self, n: usize) -> String {
        let body = match self {
            Action::Partition { disk, old, label, partitions, sector, .. } => {
                let mut t = format!("new {label} partition table on {disk} (as {old}):");
                for p in partitions {
                    t.push_str(&format!(
                        "\n       {:>2} {:<16} start {:>10} size {:>10}  {}",
                        p.number,
                        p.device,
                        human(p.start * sector),
                        human(p.size * sector),
                        p.what
                    ));
                }
                t
            }
            Action::Wipe { device } => format!("erase signatures on {device}"),
            Action::Raid { device, uuid, cmd } => format!("RAID {device} (UUID {uuid}): {cmd}"),
            Action::Luks { device, name, uuid, .. } => {
                format!("LUKS on {device} (UUID {uuid}), opened as /dev/mapper/{name}")
            }
            Action::Pv { device, uuid, .. } => format!("LVM physical volume {device} (UUID {uuid})"),
            Action::Vg { name, cmd } => format!("volume group {name}: {cmd}"),
            Action::Lv { name, size, .. } => format!("logical volume {name}, {}", human(*size)),
            Action::Mkfs { device, fstype, uuid, cmd } => {
                format!("{fstype} on {device}, UUID {}: {cmd}", uuid_or_new(uuid))
            }
            Action::Mkswap { device, uuid, .. } => format!("swap on {device}, UUID {}", uuid_or_new(uuid)),
            Action::Subvolumes { device, paths, default } => format!(
                "btrfs subvolumes on {device}: {}{}",
                paths.join(", "),
                default.as_ref().map(|d| format!(" (default {d})")).unwrap_or_default()
            ),
            Action::Mount { device, target, options, .. } => format!(
                "mount {device} on {target}{}",
                options.as_ref().map(|o| format!(" ({o})")).unwrap_or_default()
            ),
            Action::Restore { backup, entries, bytes } => {
                format!("restore {entries} entries ({}) from {backup}", human(*bytes))
            }
            Action::WriteImage { device, old, kind, entry, needs, partition } => {
                let how = match kind {
                    lifeboat_layout::model::ImageKind::Ntfs => {
                        format!("ntfsclone --quiet --restore-image --overwrite {device} - (the volume needs {})", human(*needs))
                    }
                    lifeboat_layout::model::ImageKind::Raw => {
                        format!("{} byte for byte, the rest zeros (blkdiscard --zeroout)", human(*needs))
                    }
                };
                format!(
                    "write the {kind} image of {old} ({entry}) onto {device} ({}): {how}; its content is not interpreted",
                    human(*partition)
                )
            }
            Action::FixDevices { renames } => format!(
                "rename devices in fstab, crypttab and the GRUB configuration: {}",
                renames.iter().map(|(a, b)| format!("{a} -> {b}")).collect::<Vec<_>>().join(", ")
            ),
            Action::Identity { identity } => render_identity(identity),
            Action::Initramfs { only_if_missing_drivers: Some(d), renames, .. } if renames.is_empty() => format!(
                "keep the restored initramfs (same device names and identities), unless it lacks a driver that {} need (then regenerate it)",
                d.join(", ")
            ),
            Action::Initramfs { only_if_missing_drivers: Some(d), renames, .. } => format!(
                "keep the restored initramfs, unless it lacks a driver that {} need or the configuration it carries \
                 (crypttab, mdadm.conf, fstab, the initramfs tool's) names a renamed device ({}) (then regenerate it)",
                d.join(", "),
                renames.iter().map(|(a, b)| format!("{a} -> {b}")).collect::<Vec<_>>().join(", ")
            ),
            Action::Initramfs { why, .. } => format!("regenerate the initramfs in the restored system ({why})"),
            Action::GrubBios { disks } => format!("install GRUB for BIOS on {}", disks.join(", ")),
            Action::GrubEfi { esp_mountpoint, id } => format!(
                "install GRUB for UEFI on the ESP ({esp_mountpoint}, EFI/{id} with a boot entry, and EFI/BOOT/BOOTX64.EFI)"
            ),
            Action::SystemdBoot { esp_mountpoint } => format!(
                "install systemd-boot on the ESP ({esp_mountpoint}) with the restored system's bootctl: EFI/systemd with a boot entry, and EFI/BOOT/BOOTX64.EFI; the loader entries are the restored ones"
            ),
        };
        format!("{n:>3}. {body}")
    }

    /// The disk this step erases, if it erases one.
    pub fn erases(&self) -> Option<&str> {
        match self {
            Action::Partition { disk, .. } | Action::Wipe { device: disk } => Some(disk),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_table_renders_one_line_per_partition_in_bytes() {
        let a = Action::Partition {
            disk: "/dev/vdb".into(),
            old: "/dev/sda".into(),
            label: "gpt".into(),
            script: String::new(),
            partitions: vec![
                PlannedPartition {
                    number: 1,
                    device: "/dev/vdb1".into(),
                    start: 2048,
                    size: 204800,
                    what: "/boot/efi (vfat)".into(),
                },
                PlannedPartition {
                    number: 2,
                    device: "/dev/vdb2".into(),
                    start: 206848,
                    size: 2048,
                    what: "swap".into(),
                },
            ],
            sector: 512,
        };
        let text = a.render(1);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "  1. new gpt partition table on /dev/vdb (as /dev/sda):");
        assert!(lines[1].starts_with("        1 /dev/vdb1") && lines[1].ends_with("  /boot/efi (vfat)"), "{text}");
        assert!(lines[1].contains(&human(2048 * 512)) && lines[1].contains(&human(204800 * 512)), "{text}");
        assert!(lines[2].ends_with("  swap"), "{text}");
        assert_eq!(a.describe(), "partition /dev/vdb (gpt, 2 partitions)");
        assert_eq!(a.phase(), Phase::Partitioning);
        assert_eq!(a.erases(), Some("/dev/vdb"));
    }

    #[test]
    fn every_kind_has_its_phase_and_a_line() {
        let mkfs = Action::Mkfs {
            device: "/dev/vdb2".into(),
            fstype: "ext4".into(),
            uuid: None,
            cmd: Cmd::new("mkfs.ext4").arg("/dev/vdb2"),
        };
        assert_eq!(mkfs.phase(), Phase::Filesystems);
        assert_eq!(mkfs.render(12), " 12. ext4 on /dev/vdb2, UUID (new): mkfs.ext4 /dev/vdb2");
        assert_eq!(mkfs.describe(), "make ext4 on /dev/vdb2");
        assert_eq!(mkfs.erases(), None);
        let vg = Action::Vg { name: "vg0".into(), cmd: Cmd::new("vgcreate").arg("vg0") };
        assert_eq!(vg.phase(), Phase::Storage);
        let mount = Action::Mount {
            device: "/dev/vdb3".into(),
            target: "/home".into(),
            fstype: "btrfs".into(),
            options: Some("subvol=@home".into()),
        };
        assert_eq!(mount.render(3), "  3. mount /dev/vdb3 on /home (subvol=@home)");
        let i = Action::Initramfs { only_if_missing_drivers: None, renames: BTreeMap::new(), why: "always".into() };
        assert_eq!(i.phase(), Phase::Fix);
        assert_eq!(i.phase().as_str(), "fix");
        let efi = Action::GrubEfi { esp_mountpoint: "/boot/efi".into(), id: "fedora".into() };
        assert_eq!(efi.phase(), Phase::Bootloader);
        assert!(efi.render(9).contains("EFI/fedora with a boot entry"));
        let sd = Action::SystemdBoot { esp_mountpoint: "/efi".into() };
        assert_eq!(sd.phase(), Phase::Bootloader);
        assert_eq!(sd.describe(), "install systemd-boot on /efi");
        assert!(sd.render(9).contains("bootctl"));
        let restore = Action::Restore { backup: "/b/1".into(), entries: 7, bytes: 0 };
        assert_eq!(restore.phase(), Phase::Restore);
        assert_eq!(restore.describe(), "restore /b/1");
    }

    #[test]
    fn partitions_serialize_as_named_fields() {
        let a = Action::Partition {
            disk: "/dev/vdb".into(),
            old: "/dev/sda".into(),
            label: "dos".into(),
            script: "label: dos\n".into(),
            partitions: vec![PlannedPartition {
                number: 1,
                device: "/dev/vdb1".into(),
                start: 2048,
                size: 4096,
                what: "empty".into(),
            }],
            sector: 512,
        };
        let v = serde_json::to_value(&a).expect("json");
        assert_eq!(v["action"], "partition");
        assert_eq!(v["partitions"][0]["device"], "/dev/vdb1");
        assert_eq!(v["partitions"][0]["start"], 2048);
        assert_eq!(v["partitions"][0]["size"], 4096);
        let m = serde_json::to_value(Action::Mkswap { device: "/dev/x".into(), uuid: None, cmd: Cmd::new("mkswap") })
            .expect("json");
        assert_eq!(m["cmd"], "mkswap");
    }
}
