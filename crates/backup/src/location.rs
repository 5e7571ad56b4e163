//! Where a backup went, as the rescue medium records it for recovery
//! (`/etc/lifeboat/backup-location.json`): written by mkbackup, read by
//! recover, so that recovery finds the backup without questions.
//!
//! The file keeps the shape it has always had (media made by earlier
//! versions keep working): `{"kind": "target" | "media", "path": …,
//! "fs_uuid": …, "fs_mountpoint": …, "label": …, "nfs": …}`; in memory it
//! is one [`Location`] per way of reaching the backup.

use crate::Error;
use lifeboat_runner::{Cmd, Runner};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the location file is in the rescue system.
pub const LOCATION_FILE: &str = "/etc/lifeboat/backup-location.json";

/// Its name in the rescue system's `/etc/lifeboat`.
pub const LOCATION_NAME: &str = "backup-location.json";

/// Where a backup is, for recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "LocationFile", into = "LocationFile")]
pub enum Location {
    /// A directory, used where it was (a filesystem that could not be identified).
    Directory {
        /// The backup's directory when it was made.
        path: PathBuf,
        /// Where its filesystem was mounted, when known.
        fs_mountpoint: Option<PathBuf>,
    },
    /// On a local filesystem (a USB or second disk), found again by its UUID.
    Disk {
        /// The backup's directory when it was made.
        path: PathBuf,
        /// The UUID of the filesystem that holds it.
        fs_uuid: String,
        /// Where that filesystem was mounted.
        fs_mountpoint: PathBuf,
    },
    /// On an NFS export.
    Nfs {
        /// The backup's directory when it was made.
        path: PathBuf,
        /// The export (`server:/export`).
        export: String,
        /// Where the export was mounted.
        fs_mountpoint: PathBuf,
    },
    /// On the rescue medium itself (and the further media of its set).
    Media {
        /// The backup's directory on the medium (`backup/HOST/NAME`).
        path: String,
        /// The volume label of the first medium (`rescue.label` when not recorded).
        label: Option<String>,
    },
    /// On a remote target (`sftp://`), reached over the rescue system's network.
    Url {
        /// The backup's own URL (`sftp://vault/srv/backup/HOST/NAME`).
        url: String,
    },
}

/// `backup-location.json` as it is on the medium.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LocationFile {
    /// `target` (a directory, NFS or USB mount), `media` (on the rescue medium) or `url` (a remote target; `path` is the URL).
    kind: String,
    /// The backup directory when it was made (target), or its path on the medium (media).
    path: String,
    /// UUID of the filesystem that holds it (target).
    fs_uuid: Option<String>,
    /// Where that filesystem was mounted when the backup was made.
    fs_mountpoint: Option<String>,
    /// Volume label of the medium (media).
    label: Option<String>,
    /// The NFS export that holds it (`server:/export`), mounted at `fs_mountpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nfs: Option<String>,
}

impl TryFrom<LocationFile> for Location {
    type Error = String;

    fn try_from(f: LocationFile) -> Result<Location, String> {
        let path = PathBuf::from(&f.path);
        Ok(match (f.kind.as_str(), f.nfs, f.fs_uuid, f.fs_mountpoint) {
            ("media", ..) => Location::Media { path: f.path, label: f.label },
            ("url", ..) => Location::Url { url: f.path },
            ("target", Some(export), _, Some(mp)) => Location::Nfs { path, export, fs_mountpoint: mp.into() },
            ("target", None, Some(fs_uuid), Some(mp)) => Location::Disk { path, fs_uuid, fs_mountpoint: mp.into() },
            ("target", _, _, mp) => Location::Directory { path, fs_mountpoint: mp.map(PathBuf::from) },
            (other, ..) => return Err(format!("unknown kind `{other}`")),
        })
    }
}

impl From<Location> for LocationFile {
    fn from(l: Location) -> LocationFile {
        let shown = |p: &Path| p.display().to_string();
        let target = |path: &Path| LocationFile { kind: "target".into(), path: shown(path), ..LocationFile::default() };
        match l {
            Location::Directory { path, fs_mountpoint } => {
                LocationFile { fs_mountpoint: fs_mountpoint.as_deref().map(shown), ..target(&path) }
            }
            Location::Disk { path, fs_uuid, fs_mountpoint } => {
                LocationFile { fs_uuid: Some(fs_uuid), fs_mountpoint: Some(shown(&fs_mountpoint)), ..target(&path) }
            }
            Location::Nfs { path, export, fs_mountpoint } => {
                LocationFile { nfs: Some(export), fs_mountpoint: Some(shown(&fs_mountpoint)), ..target(&path) }
            }
            Location::Media { path, label } => {
                LocationFile { kind: "media".into(), path, label, ..LocationFile::default() }
            }
            Location::Url { url } => LocationFile { kind: "url".into(), path: url, ..LocationFile::default() },
        }
    }
}

impl Location {
    /// Where a backup directory is, as the rescue system will look for it:
    /// the UUID of the local filesystem that holds it, or the NFS export.
    pub fn of_dir(r: &dyn Runner, dir: &Path) -> Location {
        let plain = |mp: Option<&str>| Location::Directory { path: dir.into(), fs_mountpoint: mp.map(PathBuf::from) };
        let Ok(out) = r.probe(&Cmd::new("findmnt").args(["-n", "-o", "SOURCE,TARGET,FSTYPE", "-T"]).arg(dir)) else {
            return plain(None);
        };
        let text = out.text();
        let f: Vec<&str> = text.split_whitespace().collect();
        let [source, target, fstype, ..] = f[..] else { return plain(None) };
        let source = source.split('[').next().unwrap_or(source);
        if fstype.starts_with("nfs") {
            return Location::Nfs { path: dir.into(), export: source.into(), fs_mountpoint: target.into() };
        }
        let uuid = lifeboat_host::blkid::probe(r, source).ok().flatten().and_then(|s| s.uuid().map(str::to_string));
        match uuid {
            Some(fs_uuid) => Location::Disk { path: dir.into(), fs_uuid, fs_mountpoint: target.into() },
            None => plain(Some(target)),
        }
    }

    /// The file's text, as the rescue medium carries it.
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string_pretty(self).map_err(Error::Record)
    }

    /// Parse a location file's text; `file` names it in the error.
    pub fn parse(text: &str, file: &Path) -> Result<Location, Error> {
        serde_json::from_str(text).map_err(|e| Error::LocationDamaged(file.into(), e))
    }

    /// The rescue system's location file ([`LOCATION_FILE`]), when there is one.
    pub fn of_rescue_system() -> Result<Option<Location>, Error> {
        match std::fs::read_to_string(LOCATION_FILE) {
            Ok(text) => Location::parse(&text, Path::new(LOCATION_FILE)).map(Some),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_runner::ScriptedRunner;

    #[test]
    fn a_backup_on_a_local_disk_is_found_by_uuid_and_one_on_nfs_by_its_export() {
        let r = ScriptedRunner::new()
            .answer("findmnt -n -o SOURCE,TARGET,FSTYPE -T /mnt/backup/web1/S", "/dev/sdb1 /mnt/backup ext4\n")
            .answer("blkid -p -o export /dev/sdb1", "DEVNAME=/dev/sdb1\nUUID=1234-abcd\nTYPE=ext4\n");
        assert_eq!(
            Location::of_dir(&r, Path::new("/mnt/backup/web1/S")),
            Location::Disk {
                path: "/mnt/backup/web1/S".into(),
                fs_uuid: "1234-abcd".into(),
                fs_mountpoint: "/mnt/backup".into()
            }
        );
        let r = ScriptedRunner::new().answer(
            "findmnt -n -o SOURCE,TARGET,FSTYPE -T /srv/nfs/web1/S",
            "backup.example.net:/export/backups /srv/nfs nfs4\n",
        );
        assert_eq!(
            Location::of_dir(&r, Path::new("/srv/nfs/web1/S")),
            Location::Nfs {
                path: "/srv/nfs/web1/S".into(),
                export: "backup.example.net:/export/backups".into(),
                fs_mountpoint: "/srv/nfs".into()
            }
        );
        let nothing = ScriptedRunner::new();
        assert_eq!(
            Location::of_dir(&nothing, Path::new("/b")),
            Location::Directory { path: "/b".into(), fs_mountpoint: None }
        );
    }

    #[test]
    fn every_location_round_trips_in_the_file_format_of_earlier_versions() {
        let all = [
            Location::Directory { path: "/b/h/S".into(), fs_mountpoint: Some("/b".into()) },
            Location::Directory { path: "/b/h/S".into(), fs_mountpoint: None },
            Location::Disk { path: "/mnt/b/h/S".into(), fs_uuid: "u-1".into(), fs_mountpoint: "/mnt/b".into() },
            Location::Nfs { path: "/srv/nfs/h/S".into(), export: "srv:/e".into(), fs_mountpoint: "/srv/nfs".into() },
            Location::Media { path: "backup/h/S".into(), label: Some("LIFEBOAT".into()) },
            Location::Url { url: "sftp://backup@vault:2222/srv/backup/h/S".into() },
        ];
        for l in all {
            let text = l.to_json().expect("json");
            assert_eq!(Location::parse(&text, Path::new("f")).expect("parse"), l, "{text}");
        }
    }

    #[test]
    fn the_files_earlier_versions_wrote_are_read() {
        let p = Path::new("backup-location.json");
        // As mkbackup wrote them: every key, null where unknown; nfs only when set.
        let disk =
            r#"{"kind":"target","path":"/mnt/b/h/S","fs_uuid":"1234-abcd","fs_mountpoint":"/mnt/b","label":null}"#;
        assert_eq!(
            Location::parse(disk, p).expect("disk"),
            Location::Disk { path: "/mnt/b/h/S".into(), fs_uuid: "1234-abcd".into(), fs_mountpoint: "/mnt/b".into() }
        );
        let media = r#"{"kind":"media","path":"backup/h/S","fs_uuid":null,"fs_mountpoint":null,"label":"LIFEBOAT_1"}"#;
        assert_eq!(
            Location::parse(media, p).expect("media"),
            Location::Media { path: "backup/h/S".into(), label: Some("LIFEBOAT_1".into()) }
        );
        // As the NFS VM test writes it by hand: keys left out.
        let nfs = r#"{"kind":"target","path":"/mnt/nfs/h/S","fs_mountpoint":"/mnt/nfs","nfs":"127.0.0.1:/"}"#;
        assert_eq!(
            Location::parse(nfs, p).expect("nfs"),
            Location::Nfs {
                path: "/mnt/nfs/h/S".into(),
                export: "127.0.0.1:/".into(),
                fs_mountpoint: "/mnt/nfs".into()
            }
        );
        // And what this version writes is what they wrote.
        let v: serde_json::Value =
            serde_json::from_str(&Location::parse(disk, p).expect("disk").to_json().expect("json")).expect("value");
        assert_eq!(v, serde_json::from_str::<serde_json::Value>(disk).expect("value"));
        let e = Location::parse(r#"{"kind":"tape","path":"x"}"#, p).expect_err("unknown kind");
        assert!(format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default())
            .contains("unknown kind `tape`"));
    }
}
