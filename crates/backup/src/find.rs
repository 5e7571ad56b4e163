//! Finding a backup again: the one way every reader (verify, restore,
//! compare, `backup info`, recover) gets a backup, from a `--from` URL (a
//! backup itself, or a target whose newest backup of the host is taken) or
//! from a [`Location`] the rescue medium recorded, mounting what it needs;
//! the backup is opened only when its catalog is signed by a trusted key.
//! There is never a silent fallback to an older backup.

use crate::keys::{self, Trust};
use crate::location::Location;
use crate::{media, Error, Feedback};
use lifeboat_archive::read::Backup;
use lifeboat_archive::target::{self, encrypt, DirObjects, Objects};
use lifeboat_archive::trust::Verdict;
use lifeboat_config::Config;
use lifeboat_runner::Runner;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where to look for a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A URL: a backup itself, or a target holding backups (its newest backup of the host).
    Url(String),
    /// Where the rescue medium says the backup went.
    Location(Location),
}

impl Source {
    /// The backup a `--from` names, else `backup.target`.
    pub fn from_arg(from: Option<&str>, config: &Config) -> Result<Source, Error> {
        let url = from.map(str::to_string).unwrap_or_else(|| config.backup.target.clone());
        if url.is_empty() {
            return Err(Error::NoBackupGiven);
        }
        Ok(Source::Url(url))
    }

    /// The backup recovery restores: `--from`, else where the rescue medium
    /// says it went ([`crate::location::LOCATION_FILE`]), else `backup.target`.
    pub fn for_recovery(from: Option<&str>, config: &Config) -> Result<Source, Error> {
        if let Some(url) = from {
            return Ok(Source::Url(url.into()));
        }
        if let Some(mut loc) = Location::of_rescue_system()? {
            if let Location::Media { label: label @ None, .. } = &mut loc {
                *label = Some(config.rescue.label.clone());
            }
            return Ok(Source::Location(loc));
        }
        if !config.backup.target.is_empty() {
            return Ok(Source::Url(config.backup.target.clone()));
        }
        Err(Error::NoBackupForRecovery)
    }
}

/// What to find, and how to trust it.
#[derive(Debug, Clone)]
pub struct Find {
    /// Where to look.
    pub source: Source,
    /// Whose newest backup a target's is.
    pub host: String,
    /// Which signatures are accepted.
    pub trust: Trust,
    /// Nobody to ask (for a medium of a set that is in no drive).
    pub unattended: bool,
    /// The age identity file that decrypts an encrypted backup (`--identity`, `backup.identity_file`).
    pub identity: Option<PathBuf>,
    /// How transports that need more than a URL reach their target (`[backup.s3]`: [`crate::job::target_settings`]).
    pub settings: target::TargetSettings,
}

/// A backup found and opened.
#[derive(Debug)]
pub struct Found {
    /// The backup.
    pub backup: Backup,
    /// Whether its catalog is authenticated.
    pub verdict: Verdict,
}

/// `f`, with the S3 credentials asked for when its target is `s3://` and
/// none are found here (a rescue medium made without them): an unattended
/// run asks nobody, and opening the target then fails naming them.
fn with_credentials(f: &Find, feedback: &mut dyn Feedback) -> Result<Find, Error> {
    let mut f = f.clone();
    let url = match &f.source {
        Source::Url(url) | Source::Location(Location::Url { url }) => url.clone(),
        _ => return Ok(f),
    };
    if url.starts_with("s3://") && !f.unattended && !target::s3::has_credentials(&url, &f.settings.s3) {
        let asked =
            feedback.s3_credentials(&url).map_err(Error::io(format!("cannot ask for the credentials of {url}")))?;
        if let Some((id, secret)) = asked {
            f.settings.s3.access_key_id = id;
            f.settings.s3.secret_access_key = secret;
        }
    }
    Ok(f)
}

/// The objects of the backup `f` names, mounting what is needed; not yet opened.
pub fn locate(f: &Find, r: &dyn Runner, feedback: &mut dyn Feedback) -> Result<Arc<dyn Objects>, Error> {
    let dir = |p: &Path| -> Arc<dyn Objects> { Arc::new(DirObjects::new(p)) };
    match &f.source {
        Source::Url(url) | Source::Location(Location::Url { url }) => {
            let f = with_credentials(f, feedback)?;
            Ok(target::open_configured(url, r, &f.settings)?.choose(&f.host)?)
        }
        Source::Location(Location::Media { path, label }) => {
            let (at, links) =
                media::open_medium(r, label.as_deref().unwrap_or_default(), path, f.unattended, feedback)?;
            // A gathered set is a directory of links that recovery made to the volumes on the media.
            Ok(if links { Arc::new(DirObjects::new(&at).follow_volume_links()) } else { dir(&at) })
        }
        Source::Location(
            l @ (Location::Directory { path, .. } | Location::Disk { path, .. } | Location::Nfs { path, .. }),
        ) => {
            if target::is_complete(path) {
                return Ok(dir(path));
            }
            let (mnt, mp) = match l {
                Location::Nfs { export, fs_mountpoint, .. } => (media::mount_nfs(r, export)?, fs_mountpoint),
                Location::Disk { fs_uuid, fs_mountpoint, .. } => (media::mount_uuid(r, fs_uuid)?, fs_mountpoint),
                _ => return Err(Error::NotThere(path.display().to_string())),
            };
            Ok(dir(&mnt.join(path.strip_prefix(mp).unwrap_or(path))))
        }
    }
}

/// The objects to read a backup through: decrypted with `f.identity` when
/// the backup is encrypted (an encrypted backup without one is an error
/// naming the fix), as stored when it is not.
pub fn readable(f: &Find, objects: Arc<dyn Objects>) -> Result<Arc<dyn Objects>, Error> {
    let ids = match &f.identity {
        Some(p) if encrypt::is_encrypted(objects.as_ref()) => Some(encrypt::Identities::read_file(p)?),
        _ => None,
    };
    Ok(encrypt::open_for_reading(objects, ids, f.unattended)?)
}

/// Find the backup `f` names and open it, refused unless its catalog is
/// signed by a trusted key (or `f.trust.insecure`, with a notice).
pub fn find(f: &Find, r: &dyn Runner, feedback: &mut dyn Feedback) -> Result<Found, Error> {
    find_with(f, r, feedback, keys::open)
}

/// [`find`], the manifest streamed: for readers that go through it in
/// order (verify, compare), never for a restore.
pub fn find_streamed(f: &Find, r: &dyn Runner, feedback: &mut dyn Feedback) -> Result<Found, Error> {
    find_with(f, r, feedback, keys::open_streamed)
}

type Open = fn(&Trust, &Arc<dyn Objects>, &mut dyn Feedback) -> Result<(Backup, Verdict), Error>;

fn find_with(f: &Find, r: &dyn Runner, feedback: &mut dyn Feedback, open: Open) -> Result<Found, Error> {
    // Asked once: the parents of an increment are read with the same credentials.
    let f = &with_credentials(f, feedback)?;
    let objects = readable(f, locate(f, r, feedback)?)?;
    let (backup, verdict) = open(&f.trust, &objects, feedback)?;
    // An increment: its chain resolved (every parent checked), so readers see its whole state.
    let backup = crate::chain::resolve(f, backup, r, feedback)?;
    Ok(Found { backup, verdict })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_runner::ScriptedRunner;

    fn fake_backup(dir: &Path) {
        std::fs::create_dir_all(dir).expect("mkdir");
        let c = r#"{"format":"lifeboat-archive","version":1,"host":"h","created":"2026-01-01T00:00:00Z",
            "compression":"zstd","volume_size":1048576,"volumes":[],"frames":[],
            "manifest":{"name":"manifest.jsonl","size":0,"blake3":""},
            "stats":{"entries":0,"files":0,"bytes_in":0,"bytes_out":0,"sockets_skipped":0,"changed":[],"unreadable":[]}}"#;
        std::fs::write(dir.join("backup.json"), c).expect("write");
    }

    /// Answers the credentials question (as a person at the rescue console would).
    struct Typist(usize);
    impl Feedback for Typist {
        fn notice(&mut self, _: crate::Notice) {}
        fn s3_credentials(&mut self, _url: &str) -> std::io::Result<Option<(String, String)>> {
            self.0 += 1;
            Ok(Some(("GKtyped".into(), "typed-secret".into())))
        }
    }

    #[test]
    fn s3_credentials_are_asked_for_once_when_missing_and_never_unattended() {
        std::env::remove_var("AWS_ACCESS_KEY_ID");
        let mut settings = target::TargetSettings::default();
        settings.s3.credentials_file = "/nonexistent/credentials".into();
        let mut f = Find {
            source: Source::Url("s3://bucket/fleet".into()),
            host: "h".into(),
            trust: Trust { key_dir: "/nonexistent".into(), insecure: false },
            unattended: false,
            identity: None,
            settings,
        };
        let mut typist = Typist(0);
        let asked = with_credentials(&f, &mut typist).expect("asked");
        assert_eq!((typist.0, asked.settings.s3.access_key_id.as_str()), (1, "GKtyped"));
        // What was typed is what the parents of an increment are read with: not asked again.
        let again = with_credentials(&asked, &mut typist).expect("again");
        assert_eq!((typist.0, again.settings.s3.secret_access_key.as_str()), (1, "typed-secret"));
        f.unattended = true;
        let none = with_credentials(&f, &mut typist).expect("unattended");
        assert!(typist.0 == 1 && none.settings.s3.access_key_id.is_empty(), "nobody is asked unattended");
    }

    fn find_at(source: Source, host: &str) -> Result<Arc<dyn Objects>, Error> {
        let f = Find {
            source,
            host: host.into(),
            trust: Trust { key_dir: "/nonexistent".into(), insecure: false },
            unattended: true,
            identity: None,
            settings: target::TargetSettings::default(),
        };
        locate(&f, &ScriptedRunner::new(), &mut Vec::new())
    }

    #[test]
    fn a_url_of_a_backup_is_that_backup_and_a_url_of_a_target_its_newest_of_the_host() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (old, new) = (tmp.path().join("h/2026-01-01T000000.000Z"), tmp.path().join("h/2026-01-02T000000.000Z"));
        fake_backup(&old);
        fake_backup(&new);
        let url = |p: &Path| Source::Url(format!("file://{}", p.display()));
        let o = find_at(url(&old), "h").expect("the backup itself");
        assert_eq!(o.local_dir(), Some(old.as_path()));
        let o = find_at(url(tmp.path()), "h").expect("newest");
        assert_eq!(o.local_dir(), Some(new.as_path()));
        let e = find_at(url(tmp.path()), "other").expect_err("no backup of other").to_string();
        assert!(e.contains("no complete backup of other"), "{e}");
        assert!(find_at(Source::Url("ftp://x".into()), "h").is_err());
    }

    #[test]
    fn a_location_that_is_still_there_is_used_and_one_that_is_not_names_the_fix() {
        let tmp = tempfile::tempdir().expect("tmp");
        let b = tmp.path().join("h/S");
        fake_backup(&b);
        let here = Location::Directory { path: b.clone(), fs_mountpoint: None };
        assert_eq!(find_at(Source::Location(here), "h").expect("there").local_dir(), Some(b.as_path()));
        let gone = Location::Directory { path: tmp.path().join("gone"), fs_mountpoint: None };
        let e = find_at(Source::Location(gone), "h").expect_err("gone").to_string();
        assert!(e.contains("is not there: mount it (NFS, USB) or give --from"), "{e}");
    }

    #[test]
    fn without_a_url_the_configured_target_is_used_and_without_either_it_is_an_error() {
        let mut c = Config::default();
        assert!(matches!(Source::from_arg(None, &c), Err(Error::NoBackupGiven)));
        c.backup.target = "file:///b".into();
        assert_eq!(Source::from_arg(None, &c).expect("target"), Source::Url("file:///b".into()));
        assert_eq!(Source::from_arg(Some("file:///x"), &c).expect("from"), Source::Url("file:///x".into()));
    }
}
