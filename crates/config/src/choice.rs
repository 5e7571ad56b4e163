//! Settings with a fixed set of values, checked when the file is read.
//!
//! Each enum belongs to one key and spells its values as the file does, so
//! a bad value is one error that names the key, the value and what is
//! accepted, and `lifeboat config show` prints the same spellings back.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A value that a key does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}` = \"{value}\": expected one of {}", .accepted.join(", "))]
pub struct BadValue {
    /// The key, as `section.name`.
    pub key: &'static str,
    /// The value given.
    pub value: String,
    /// Every accepted spelling.
    pub accepted: &'static [&'static str],
}

/// An enum for one key, with its spellings in the file.
macro_rules! choice {
    (
        $(#[$meta:meta])*
        $name:ident for $key:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $spelling:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// The key this setting is read from.
            pub const KEY: &'static str = $key;
            /// Every accepted spelling, in the documented order.
            pub const ACCEPTED: &'static [&'static str] = &[$($spelling),+];

            /// The spelling in the configuration file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $spelling, )+
                }
            }
        }

        impl FromStr for $name {
            type Err = BadValue;

            fn from_str(s: &str) -> Result<Self, BadValue> {
                match s {
                    $( $spelling => Ok($name::$variant), )+
                    other => Err(BadValue { key: $key, value: other.to_string(), accepted: Self::ACCEPTED }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// When recovery regenerates the restored system's initramfs (`recover.regenerate_initramfs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Regenerate {
    /// When it is needed: a clone's identities changed, renamed devices are
    /// named in the configuration it is built from, or it lacks a driver
    /// the new disks need; else the restored one is kept byte for byte.
    #[default]
    Auto,
    /// Every time.
    Always,
    /// Never.
    Never,
}

impl Regenerate {
    /// The key this setting is read from.
    pub const KEY: &'static str = "recover.regenerate_initramfs";
    /// Every accepted spelling (`true` and `false`, from earlier versions, mean always and never).
    pub const ACCEPTED: &'static [&'static str] = &["auto", "always", "never"];

    /// The spelling in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Regenerate::Auto => "auto",
            Regenerate::Always => "always",
            Regenerate::Never => "never",
        }
    }
}

impl FromStr for Regenerate {
    type Err = BadValue;

    fn from_str(s: &str) -> Result<Self, BadValue> {
        match s {
            "auto" => Ok(Regenerate::Auto),
            "always" | "true" => Ok(Regenerate::Always),
            "never" | "false" => Ok(Regenerate::Never),
            other => Err(BadValue { key: Self::KEY, value: other.to_string(), accepted: Self::ACCEPTED }),
        }
    }
}

impl fmt::Display for Regenerate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Regenerate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Regenerate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// A string, or the boolean earlier versions wrote.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Bool(bool),
            Text(String),
        }
        match Given::deserialize(d)? {
            Given::Bool(true) => Ok(Regenerate::Always),
            Given::Bool(false) => Ok(Regenerate::Never),
            Given::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

choice! {
    /// The rescue medium's format (`rescue.format`).
    RescueFormat for "rescue.format" {
        /// A hybrid ISO image: CD and USB, BIOS and UEFI.
        Iso = "iso",
        /// A disk image for a USB stick.
        Raw = "raw",
        /// Kernel, initramfs and boot configurations for network boot.
        Pxe = "pxe",
    }
}

impl RescueFormat {
    /// Whether the medium boots by itself (ISO or raw image), rather than over the network.
    pub fn is_bootable_medium(self) -> bool {
        match self {
            RescueFormat::Iso | RescueFormat::Raw => true,
            RescueFormat::Pxe => false,
        }
    }
}

choice! {
    /// How the rescue system's initramfs is compressed (`rescue.compression`).
    InitramfsCompression for "rescue.compression" {
        /// zstd when the kernel can unpack it, else gzip.
        Auto = "auto",
        /// zstd.
        Zstd = "zstd",
        /// gzip, which every kernel unpacks.
        Gzip = "gzip",
        /// Uncompressed.
        None = "none",
    }
}

choice! {
    /// Whether backups read from snapshots (`backup.snapshot`, `backup --snapshot[=WHEN]`).
    SnapshotMode for "backup.snapshot" {
        /// Read the live filesystems (the default).
        Never = "never",
        /// Snapshot what can be (btrfs, LVM); read the others live, with a warning.
        Auto = "auto",
        /// Snapshot every filesystem of the backup; refuse, naming them, when one cannot be.
        Always = "always",
    }
}

choice! {
    /// How backup frames are compressed (`backup.compression`).
    BackupCompression for "backup.compression" {
        /// zstd (the default: fast, good ratio).
        Zstd = "zstd",
        /// gzip, for compatibility with older tools.
        Gzip = "gzip",
    }
}

impl BackupCompression {
    /// The highest compression level (`backup.level`) this codec has.
    pub fn max_level(self) -> u32 {
        match self {
            BackupCompression::Zstd => 19,
            BackupCompression::Gzip => 9,
        }
    }
}

choice! {
    /// What `lifeboat mkbackup` makes (`mkbackup.mode`).
    MkbackupMode for "mkbackup.mode" {
        /// The rescue medium only.
        Rescue = "rescue",
        /// The rescue medium with the backup on it (numbered ISO files when one is not enough).
        Media = "media",
        /// The rescue medium plus the backup to `backup.target`.
        Target = "target",
        /// The rescue medium plus the backup to a `tape://` drive.
        Tape = "tape",
    }
}

choice! {
    /// How `lifeboat drill` runs its VMs (`drill.accel`).
    DrillAccel for "drill.accel" {
        /// KVM when a short probe shows it runs a guest here, TCG otherwise.
        Auto = "auto",
        /// KVM (hardware virtualisation), without probing.
        Kvm = "kvm",
        /// TCG (QEMU's emulation, several times slower), without probing.
        Tcg = "tcg",
    }
}

choice! {
    /// Which firmware the drill's VMs start with (`drill.firmware`).
    DrillFirmware for "drill.firmware" {
        /// The firmware the saved layout was captured under.
        Auto = "auto",
        /// SeaBIOS.
        Bios = "bios",
        /// OVMF (UEFI).
        Uefi = "uefi",
    }
}

choice! {
    /// Which kernel modules go into the rescue system (`rescue.modules`).
    ModuleSet for "rescue.modules" {
        /// The modules loaded now, plus every storage, filesystem, network and
        /// USB/HID driver (so the medium works on other hardware).
        Loaded = "loaded",
        /// Every module the kernel has.
        All = "all",
        /// Only the modules listed in `rescue.modules_list` (and their dependencies).
        List = "list",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling parses to a value that spells itself back the same way.
    fn round_trips<T: FromStr<Err = BadValue> + fmt::Display + Copy + PartialEq + fmt::Debug>(
        accepted: &[&str],
    ) -> Vec<T> {
        accepted
            .iter()
            .map(|s| {
                let v: T = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
                assert_eq!(v.to_string(), *s);
                v
            })
            .collect()
    }

    #[test]
    fn every_spelling_parses() {
        use RescueFormat as F;
        assert_eq!(round_trips::<F>(F::ACCEPTED), [F::Iso, F::Raw, F::Pxe]);
        use InitramfsCompression as I;
        assert_eq!(round_trips::<I>(I::ACCEPTED), [I::Auto, I::Zstd, I::Gzip, I::None]);
        use BackupCompression as B;
        assert_eq!(round_trips::<B>(B::ACCEPTED), [B::Zstd, B::Gzip]);
        use MkbackupMode as M;
        assert_eq!(round_trips::<M>(M::ACCEPTED), [M::Rescue, M::Media, M::Target, M::Tape]);
        use ModuleSet as S;
        assert_eq!(round_trips::<S>(S::ACCEPTED), [S::Loaded, S::All, S::List]);
    }

    #[test]
    fn a_bad_value_names_key_value_and_choices() {
        let e = "ISO".parse::<RescueFormat>().unwrap_err();
        assert_eq!(e.to_string(), "key `rescue.format` = \"ISO\": expected one of iso, raw, pxe");
        let e = "xz".parse::<BackupCompression>().unwrap_err();
        assert_eq!(e.to_string(), "key `backup.compression` = \"xz\": expected one of zstd, gzip");
        let e = "lz4".parse::<InitramfsCompression>().unwrap_err();
        assert_eq!(e.to_string(), "key `rescue.compression` = \"lz4\": expected one of auto, zstd, gzip, none");
        let e = "cloud".parse::<MkbackupMode>().unwrap_err();
        assert_eq!(e.to_string(), "key `mkbackup.mode` = \"cloud\": expected one of rescue, media, target, tape");
        let e = "some".parse::<ModuleSet>().unwrap_err();
        assert_eq!(e.to_string(), "key `rescue.modules` = \"some\": expected one of loaded, all, list");
    }

    #[test]
    fn levels_and_bootable_media() {
        assert_eq!(BackupCompression::Zstd.max_level(), 19);
        assert_eq!(BackupCompression::Gzip.max_level(), 9);
        assert!(RescueFormat::Iso.is_bootable_medium() && RescueFormat::Raw.is_bootable_medium());
        assert!(!RescueFormat::Pxe.is_bootable_medium());
    }
}

#[cfg(test)]
mod regenerate_tests {
    use super::Regenerate;

    #[test]
    fn regenerate_takes_its_words_and_the_booleans_of_earlier_versions() {
        #[derive(serde::Deserialize)]
        struct R {
            regenerate_initramfs: Regenerate,
        }
        let read =
            |v: &str| toml::from_str::<R>(&format!("regenerate_initramfs = {v}")).map(|r| r.regenerate_initramfs);
        assert_eq!(read("\"auto\"").expect("auto"), Regenerate::Auto);
        assert_eq!(read("\"always\"").expect("always"), Regenerate::Always);
        assert_eq!(read("true").expect("true"), Regenerate::Always);
        assert_eq!(read("false").expect("false"), Regenerate::Never);
        let e = read("\"sometimes\"").expect_err("accepted").to_string();
        assert!(e.contains("recover.regenerate_initramfs") && e.contains("auto, always, never"), "{e}");
        assert_eq!(Regenerate::default(), Regenerate::Auto);
    }
}
