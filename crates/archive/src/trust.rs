//! Opening a backup only when its catalog is signed by a trusted key: the one
//! place where verify, restore, compare, `backup info` and recover open a
//! backup.
//!
//! The catalog's bytes are read once; the signature is checked over those
//! bytes, and the backup opened by `Backup::open` must have parsed the same
//! catalog (a catalog swapped between the two reads is refused), so what is
//! used is what was verified. The manifest and the volumes are then bound to
//! the catalog by their BLAKE3.

use crate::backup::Catalog;
use crate::read::{Backup, ReadError};
use crate::sign::{self, KeyId, SignError, TrustedKeys};
use crate::target::{DirObjects, Objects, CATALOG};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest catalog read (a catalog lists one frame per 8 MiB of archive:
/// this is far beyond any real backup).
const MAX_CATALOG: u64 = crate::read::MAX_CATALOG_BYTES;

/// What to do with a backup whose signature is missing or wrong.
#[derive(Debug, Clone, Copy)]
pub enum Policy<'a> {
    /// Refuse it.
    Require(&'a TrustedKeys),
    /// Open it all the same (`--insecure-unsigned`), saying why it is not
    /// verified; the keys, when there are any, are still checked.
    Warn(Option<&'a TrustedKeys>),
}

/// Whether an opened backup is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by this trusted key.
    Signed(KeyId),
    /// Not verified (only under `Policy::Warn`): why.
    Unverified(String),
}

/// Why a backup was not opened.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The backup cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The signature is missing or wrong.
    #[error("refusing the backup {dir}: {source}")]
    Refused {
        /// The backup.
        dir: PathBuf,
        /// Why.
        source: SignError,
    },
    /// The catalog changed between being verified and being parsed.
    #[error("refusing the backup {0}: backup.json changed while it was being read (something is writing the backup)")]
    Changed(PathBuf),
}

impl TrustError {
    /// The signature problem, when that is why the backup was refused.
    pub fn sign_error(&self) -> Option<&SignError> {
        match self {
            TrustError::Refused { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Open the backup in `dir` after checking the signature of its catalog.
pub fn open(dir: &Path, policy: Policy) -> Result<(Backup, Verdict), TrustError> {
    open_objects(Arc::new(DirObjects::new(dir)), policy)
}

/// Open a backup on a target after checking the signature of its catalog.
pub fn open_objects(objects: Arc<dyn Objects>, policy: Policy) -> Result<(Backup, Verdict), TrustError> {
    open_checked(objects, policy, Backup::open_objects)
}

/// [`open_objects`], the manifest streamed ([`Backup::open_objects_streamed`]: for verify and compare).
pub fn open_objects_streamed(objects: Arc<dyn Objects>, policy: Policy) -> Result<(Backup, Verdict), TrustError> {
    open_checked(objects, policy, Backup::open_objects_streamed)
}

fn open_checked(
    objects: Arc<dyn Objects>,
    policy: Policy,
    open: fn(Arc<dyn Objects>) -> Result<Backup, crate::read::ReadError>,
) -> Result<(Backup, Verdict), TrustError> {
    let (bytes, verdict) = verify(&objects, policy)?;
    let at = PathBuf::from(objects.location());
    let backup = open(objects)?;
    if !same_catalog(&bytes, backup.stored_catalog()) {
        return Err(TrustError::Changed(at));
    }
    Ok((backup, verdict))
}

/// The catalog of a backup, parsed from the bytes whose signature was
/// checked, without the manifest: for a reader that cannot use the
/// manifest (a restore from the tar stream alone, `restore::from_stream`),
/// which then trusts the volumes through their BLAKE3 in this catalog.
/// It is the catalog as stored: of an encrypted backup, without file names
/// and with the stored objects' hashes (what `encrypt::verify_stored`
/// checks without the identity); `read::unseal` gives the whole catalog.
pub fn verified_catalog(objects: &Arc<dyn Objects>, policy: Policy) -> Result<(Catalog, Verdict), TrustError> {
    let (bytes, verdict) = verify(objects, policy)?;
    let catalog = crate::read::parse_catalog(&bytes, &format!("{}/{CATALOG}", objects.location()))?;
    Ok((catalog, verdict))
}

/// Read `backup.json` once and check its signature under `policy`; the bytes
/// read, and what the check found.
fn verify(objects: &Arc<dyn Objects>, policy: Policy) -> Result<(Vec<u8>, Verdict), TrustError> {
    let at = objects.location();
    let bytes = match objects.read(CATALOG, MAX_CATALOG) {
        Ok(b) => b,
        // No catalog: the reader names it (an interrupted backup).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Backup::open_objects(Arc::clone(objects))
                .err()
                .map(TrustError::from)
                .unwrap_or(TrustError::Changed(at.into())))
        }
        Err(e) => return Err(ReadError::Io(format!("{at}/{CATALOG}"), e).into()),
    };
    let checked = sign::read_signature(objects.as_ref()).and_then(|sig| match policy {
        Policy::Require(keys) => sign::verify_catalog(&bytes, sig.as_deref(), keys),
        Policy::Warn(Some(keys)) => sign::verify_catalog(&bytes, sig.as_deref(), keys),
        Policy::Warn(None) => Err(SignError::NoTrustedKey { dir: PathBuf::new() }),
    });
    let verdict = match (checked, policy) {
        (Ok(id), _) => Verdict::Signed(id),
        (Err(source), Policy::Require(_)) => return Err(TrustError::Refused { dir: at.into(), source }),
        (Err(SignError::NoTrustedKey { .. }), Policy::Warn(_)) => Verdict::Unverified("no trusted public key".into()),
        (Err(e), Policy::Warn(_)) => Verdict::Unverified(e.to_string()),
    };
    Ok((bytes, verdict))
}

/// Whether `opened` is the catalog that `bytes` hold.
fn same_catalog(bytes: &[u8], opened: &Catalog) -> bool {
    let Ok(verified) = serde_json::from_slice::<Catalog>(bytes) else { return false };
    match (serde_json::to_value(&verified), serde_json::to_value(opened)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::SigningKey;

    /// A signed backup directory (a catalog and its empty manifest: no
    /// volumes are needed to open it), and the key directory.
    fn signed_backup(t: &Path) -> (PathBuf, PathBuf) {
        let keys = t.join("keys");
        let (key, _) = SigningKey::load_or_create(&keys, "h").expect("key");
        let dir = t.join("backup");
        std::fs::create_dir(&dir).expect("mkdir");
        // An empty manifest (the reader checks every entry against the volumes, which are not needed here).
        let manifest = b"";
        std::fs::write(dir.join("manifest.jsonl"), manifest).expect("manifest");
        let catalog = serde_json::json!({
            "format": "lifeboat-archive", "version": 1, "host": "h", "created": "2026-01-01T00:00:00Z",
            "compression": "zstd", "volume_size": 1048576, "volumes": [], "frames": [],
            "manifest": {"name": "manifest.jsonl", "size": manifest.len(), "blake3": blake3::hash(manifest).to_hex().to_string()},
            "stats": {"entries": 0, "files": 0, "bytes_in": 0, "bytes_out": 0, "sockets_skipped": 0, "changed": [], "unreadable": []},
            "key_id": key.id().to_string(),
        });
        let text = serde_json::to_vec_pretty(&catalog).expect("json");
        std::fs::write(dir.join(sign::SIGNATURE_FILE), key.sign(&text, "c").expect("sign")).expect("sig");
        std::fs::write(dir.join("backup.json"), &text).expect("catalog");
        (dir, keys)
    }

    #[test]
    fn a_signed_backup_opens_and_an_unsigned_or_changed_one_is_refused() {
        let t = tempfile::tempdir().expect("tmp");
        let (dir, keys) = signed_backup(t.path());
        let trusted = TrustedKeys::load(&keys).expect("keys");
        let (b, v) = open(&dir, Policy::Require(&trusted)).expect("open");
        assert_eq!(v, Verdict::Signed(trusted.keys[0].id));
        assert_eq!((b.catalog.host.as_str(), b.catalog.key_id.clone()), ("h", Some(trusted.keys[0].id.to_string())));

        // Changed by one byte, signature kept.
        let cat = dir.join("backup.json");
        let text = std::fs::read(&cat).expect("read");
        let changed = String::from_utf8(text.clone()).expect("utf8").replacen("\"host\": \"h\"", "\"host\": \"i\"", 1);
        std::fs::write(&cat, &changed).expect("write");
        let e = open(&dir, Policy::Require(&trusted)).unwrap_err();
        assert!(matches!(e.sign_error(), Some(SignError::Mismatch { .. })), "{e}");
        let (_, v) = open(&dir, Policy::Warn(Some(&trusted))).expect("open anyway");
        assert!(matches!(&v, Verdict::Unverified(why) if why.contains("was changed")), "{v:?}");
        std::fs::write(&cat, &text).expect("restore");

        // No signature.
        std::fs::remove_file(dir.join(sign::SIGNATURE_FILE)).expect("rm");
        let e = open(&dir, Policy::Require(&trusted)).unwrap_err();
        assert!(matches!(e.sign_error(), Some(SignError::Missing { claimed: Some(_) })), "{e}");
        assert!(e.to_string().contains(&dir.display().to_string()), "names the backup: {e}");
        let (_, v) = open(&dir, Policy::Warn(None)).expect("open anyway");
        assert_eq!(v, Verdict::Unverified("no trusted public key".into()));

        // Without the manifest: the verified catalog alone (a damaged manifest is no reason to trust less).
        std::fs::write(dir.join("manifest.jsonl"), b"damaged").expect("damage");
        assert!(open(&dir, Policy::Require(&trusted)).is_err());
        let e = verified_catalog(&(Arc::new(DirObjects::new(&dir)) as Arc<dyn Objects>), Policy::Require(&trusted))
            .unwrap_err();
        assert!(matches!(e.sign_error(), Some(SignError::Missing { .. })), "still refused unsigned: {e}");
        let (c, v) =
            verified_catalog(&(Arc::new(DirObjects::new(&dir)) as Arc<dyn Objects>), Policy::Warn(Some(&trusted)))
                .expect("catalog");
        assert!(matches!(v, Verdict::Unverified(_)) && c.host == "h");

        // No catalog at all: the reader's error.
        std::fs::remove_file(&cat).expect("rm");
        assert!(matches!(open(&dir, Policy::Require(&trusted)), Err(TrustError::Read(ReadError::NotABackup(_)))));
    }

    #[test]
    fn a_signed_catalog_is_verified_without_its_manifest() {
        let t = tempfile::tempdir().expect("tmp");
        let (dir, keys) = signed_backup(t.path());
        let trusted = TrustedKeys::load(&keys).expect("keys");
        std::fs::remove_file(dir.join("manifest.jsonl")).expect("rm");
        let (c, v) =
            verified_catalog(&(Arc::new(DirObjects::new(&dir)) as Arc<dyn Objects>), Policy::Require(&trusted))
                .expect("catalog");
        assert_eq!((c.host.as_str(), v), ("h", Verdict::Signed(trusted.keys[0].id)));
    }

    #[test]
    fn the_catalog_used_must_be_the_catalog_verified() {
        let t = tempfile::tempdir().expect("tmp");
        let (dir, _) = signed_backup(t.path());
        let text = std::fs::read(dir.join("backup.json")).expect("read");
        let b = Backup::open(&dir).expect("open");
        assert!(same_catalog(&text, &b.catalog));
        let other = String::from_utf8(text).expect("utf8").replacen("\"host\": \"h\"", "\"host\": \"i\"", 1);
        assert!(!same_catalog(other.as_bytes(), &b.catalog));
        assert!(!same_catalog(b"{", &b.catalog));
    }
}
