//! Authenticated backups in a job: the signing key made at the first backup,
//! the trust check every reader of a backup goes through (with the fix for
//! each refusal), the public keys that rescue media carry, and the excludes
//! that keep the secret key out of every backup.

use crate::{Error, Feedback, Notice};
use lifeboat_archive::read::Backup;
use lifeboat_archive::sign::{KeyId, KeyOrigin, SignError, SigningKey, TrustedKeys, PUBLIC_KEY_FILE, SECRET_KEY_FILE};
use lifeboat_archive::target::Objects;
use lifeboat_archive::trust::{self, Policy, TrustError, Verdict};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the rescue system keeps the public keys (its `paths.key_dir`).
pub const RESCUE_KEY_DIR: &str = "/etc/lifeboat";

/// A signing key made just now, for the announcement of where its halves are.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Its id.
    pub id: KeyId,
    /// The secret key file (root-only, never backed up).
    pub secret_file: PathBuf,
    /// The public key file.
    pub public_file: PathBuf,
    /// The public key, as minisign writes it.
    pub public_text: String,
    /// Where the public key of the previous key (whose secret key was missing) was kept.
    pub retired: Option<PathBuf>,
}

/// The key that signs this host's backups in `key_dir`; made, and announced
/// through [`Notice::KeyCreated`], when there is none yet.
pub fn signing_key(key_dir: &Path, host: &str, feedback: &mut dyn Feedback) -> Result<SigningKey, Error> {
    let (key, origin) =
        SigningKey::load_or_create(key_dir, host).map_err(|e| Error::SigningKey(key_dir.to_path_buf(), e))?;
    if let KeyOrigin::Created { retired } = origin {
        feedback.notice(Notice::KeyCreated(NewKey {
            id: key.id(),
            secret_file: key.secret_key_file(),
            public_file: key.public_key_file(),
            public_text: key.public_key_text().unwrap_or_default(),
            retired,
        }));
    }
    Ok(key)
}

/// Which backups a reader accepts: those signed by a key in `key_dir`, or,
/// with `insecure` (`--insecure-unsigned`), any, with a warning.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The trusted public keys (`paths.key_dir`).
    pub key_dir: PathBuf,
    /// Use a backup whose signature is missing or wrong, saying so.
    pub insecure: bool,
}

/// What to do about a refused backup.
fn fix(e: &SignError, key_dir: &Path) -> String {
    let anyway = "--insecure-unsigned uses it all the same (never in unattended recovery)";
    match e {
        SignError::Missing { .. } => format!(
            "every backup this host's lifeboat makes is signed: trust this one only if you know where it came from; {anyway}"
        ),
        SignError::OtherKey { signed_by, .. } => format!(
            "if an older key of this host signed it, put that public key into {} as signing-{signed_by}.pub; if it is another machine's backup, use that machine's public key (paths.key_dir in --config); else it is not this host's backup: {anyway}",
            key_dir.display()
        ),
        SignError::Mismatch { .. } | SignError::Malformed { .. } => format!(
            "this is not the catalog this host signed: do not use this backup; take another one (lifeboat backup list, --from file:///DIR); {anyway}"
        ),
        SignError::NoTrustedKey { .. } => format!(
            "copy the public key of the machine that made the backup (its {PUBLIC_KEY_FILE}, kept with its rescue media and printed at its first backup) to {}, or set paths.key_dir; {anyway}",
            key_dir.join(PUBLIC_KEY_FILE).display()
        ),
        SignError::BadKey { .. } | SignError::Unsafe { .. } | SignError::Io { .. } | SignError::Crypto(_) => {
            format!("repair the key files in {} (paths.key_dir)", key_dir.display())
        }
    }
}

/// Open a backup only when its catalog is signed by a trusted key.
pub fn open(t: &Trust, objects: &Arc<dyn Objects>, feedback: &mut dyn Feedback) -> Result<(Backup, Verdict), Error> {
    checked(t, objects, feedback, |o, p| trust::open_objects(Arc::clone(o), p))
}

/// [`open`], the manifest streamed (for verify and compare: see
/// [`lifeboat_archive::read::Backup::open_objects_streamed`]).
pub fn open_streamed(
    t: &Trust,
    objects: &Arc<dyn Objects>,
    feedback: &mut dyn Feedback,
) -> Result<(Backup, Verdict), Error> {
    checked(t, objects, feedback, |o, p| trust::open_objects_streamed(Arc::clone(o), p))
}

/// Run `f` (`trust::open`, or `trust::verified_catalog` for a restore from
/// the tar stream alone when the manifest is damaged) with the policy the
/// trusted keys and `t.insecure` give; an unauthenticated backup used all the
/// same is said through [`Notice::Unauthenticated`].
pub fn checked<T>(
    t: &Trust,
    objects: &Arc<dyn Objects>,
    feedback: &mut dyn Feedback,
    f: impl FnOnce(&Arc<dyn Objects>, Policy) -> Result<(T, Verdict), TrustError>,
) -> Result<(T, Verdict), Error> {
    let at = objects.location();
    let keys = match TrustedKeys::load(&t.key_dir) {
        Ok(k) => Some(k),
        Err(e) if !t.insecure => return Err(Error::NoTrustedKey { at, fix: fix(&e, &t.key_dir), error: e }),
        Err(_) => None,
    };
    let policy = match &keys {
        Some(k) if !t.insecure => Policy::Require(k),
        k => Policy::Warn(k.as_ref()),
    };
    match f(objects, policy) {
        Ok((b, v)) => {
            match &v {
                Verdict::Unverified(why) => feedback.notice(Notice::Unauthenticated { at, why: why.clone() }),
                Verdict::Signed(id) => log::info!("{at}: catalog signed by trusted key {id}"),
            }
            Ok((b, v))
        }
        Err(e) => match e.sign_error().map(|se| fix(se, &t.key_dir)) {
            Some(fix) => Err(Error::Refused { error: e, fix }),
            None => Err(Error::Open(e)),
        },
    }
}

/// What a rescue medium needs to verify backups: the public keys (made now
/// when this host has none, so that the backups made later verify) as files
/// for its `/etc/lifeboat`, and its configuration, which looks for them there.
pub fn for_rescue(
    config: &lifeboat_config::Config,
    host: &str,
    feedback: &mut dyn Feedback,
) -> Result<(lifeboat_config::Config, Vec<(String, String)>), Error> {
    let dir = &config.paths.key_dir;
    signing_key(dir, host, feedback)?;
    let keys = TrustedKeys::load(dir).map_err(|e| Error::PublicKeys(dir.clone(), e))?;
    let files = keys
        .keys
        .iter()
        .map(|k| (k.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), k.text.clone()))
        .collect();
    let mut cfg = config.clone();
    cfg.paths.key_dir = PathBuf::from(RESCUE_KEY_DIR);
    let mut files: Vec<(String, String)> = files;
    // The decryption identity, when the administrator named one: on the
    // medium (root-only in the rescue system), said loudly.
    let id = &config.backup.identity_file;
    if !id.as_os_str().is_empty() {
        let text = std::fs::read_to_string(id).map_err(Error::io(format!(
            "cannot read backup.identity_file {} to put it on the rescue medium",
            id.display()
        )))?;
        lifeboat_archive::target::encrypt::Identities::parse(&text, &id.display().to_string())?;
        feedback.notice(Notice::IdentityOnMedium {
            warning: lifeboat_archive::target::encrypt::identity_on_medium_warning(id),
        });
        files.push((RESCUE_IDENTITY.to_string(), text));
        cfg.backup.identity_file = PathBuf::from(RESCUE_KEY_DIR).join(RESCUE_IDENTITY);
    }
    Ok((cfg, files))
}

/// The name of the decryption identity in the rescue system's `/etc/lifeboat`.
pub const RESCUE_IDENTITY: &str = "backup-identity.txt";

/// Exclude patterns that keep the secret signing key (and its temporary
/// files) out of a backup of `root`: whoever reads the backup target could
/// sign backups with it.
pub fn secret_key_excludes(root: &Path, key_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let canonical = std::fs::canonicalize(key_dir).ok();
    for dir in std::iter::once(key_dir).chain(canonical.as_deref()) {
        if let Ok(rel) = dir.strip_prefix(root) {
            let rel = rel.to_string_lossy();
            let pattern =
                if rel.is_empty() { format!("{SECRET_KEY_FILE}*") } else { format!("{rel}/{SECRET_KEY_FILE}*") };
            if !out.contains(&pattern) {
                out.push(pattern);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rescue_medium_carries_the_identity_only_when_named_and_says_so() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut config = lifeboat_config::Config::default();
        config.paths.key_dir = tmp.path().join("keys");
        let mut notices = Vec::new();
        let (cfg, files) = for_rescue(&config, "h", &mut notices).expect("keys");
        assert!(files.iter().all(|(n, _)| n != RESCUE_IDENTITY), "no identity unless named");
        assert!(cfg.backup.identity_file.as_os_str().is_empty());
        // A file that is not an identity is refused by name, before any medium is made.
        let bad = tmp.path().join("id.txt");
        std::fs::write(&bad, "age1notasecret\n").expect("write");
        config.backup.identity_file = bad.clone();
        let e = for_rescue(&config, "h", &mut notices).expect_err("a public key accepted").to_string();
        assert!(e.contains("id.txt"), "{e}");
        // A real one goes on the medium, root-only, and the warning is given.
        if std::path::Path::new("/usr/bin/age-keygen").exists() {
            let good = tmp.path().join("key.txt");
            let ok = std::process::Command::new("age-keygen").arg("-o").arg(&good).output().expect("age-keygen");
            assert!(ok.status.success());
            config.backup.identity_file = good;
            let mut notices = Vec::new();
            let (cfg, files) = for_rescue(&config, "h", &mut notices).expect("keys");
            assert!(files.iter().any(|(n, t)| n == RESCUE_IDENTITY && t.contains("AGE-SECRET-KEY-1")));
            assert_eq!(cfg.backup.identity_file, Path::new(RESCUE_KEY_DIR).join(RESCUE_IDENTITY));
            assert!(notices.iter().any(|n| matches!(n, Notice::IdentityOnMedium { .. })));
        }
    }

    #[test]
    fn the_secret_key_is_left_out_of_backups_of_trees_that_hold_it() {
        assert_eq!(secret_key_excludes(Path::new("/"), Path::new("/etc/lifeboat")), vec!["etc/lifeboat/signing.key*"]);
        assert_eq!(secret_key_excludes(Path::new("/etc/lifeboat"), Path::new("/etc/lifeboat")), vec!["signing.key*"]);
        assert!(secret_key_excludes(Path::new("/srv"), Path::new("/nonexistent/keys")).is_empty());
        let key = "etc/lifeboat/signing.key";
        assert!(lifeboat_archive::backup::glob_match(b"etc/lifeboat/signing.key*", key.as_bytes()));
        assert!(lifeboat_archive::backup::glob_match(
            b"etc/lifeboat/signing.key*",
            b"etc/lifeboat/signing.key.new-1-0"
        ));
        assert!(!lifeboat_archive::backup::glob_match(b"etc/lifeboat/signing.key*", b"etc/lifeboat/signing.pub"));
    }

    #[test]
    fn no_trusted_key_is_refused_with_the_fix_and_insecure_opens_with_a_notice() {
        let tmp = tempfile::tempdir().expect("tmp");
        let t = Trust { key_dir: tmp.path().join("keys"), insecure: false };
        let mut notices = Vec::new();
        let objects: Arc<dyn Objects> = Arc::new(lifeboat_archive::target::DirObjects::new(tmp.path()));
        let e = open(&t, &objects, &mut notices).expect_err("no key").to_string();
        assert!(e.contains("refusing the backup") && e.contains("fix: copy the public key"), "{e}");
        assert!(notices.is_empty());
    }
}
