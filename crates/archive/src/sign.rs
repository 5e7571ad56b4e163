//! Signed catalogs: a backup is authenticated by a minisign signature of its
//! `backup.json` (which holds the BLAKE3 of the manifest and of every volume;
//! the manifest holds every entry's metadata and content BLAKE3), made with
//! this host's key.
//!
//! The key pair is made at the first backup, without a password (backups run
//! unattended): `signing.key` (root-only, 0600, never backed up) and
//! `signing.pub` in the key directory (`paths.key_dir`, `/etc/lifeboat`).
//! Only the public key is needed to verify and recover; the rescue medium
//! carries it. A retired public key stays trusted as `signing-ID.pub`, so
//! backups made with it still verify.
//!
//! Files are in minisign's formats, so `minisign -Vm backup.json -p
//! signing.pub` checks a catalog without lifeboat. Everything read from a
//! backup (the signature file) is attacker-written: bounded, and checked for
//! shape before the minisign crate parses it.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The signature of `backup.json`, beside it.
pub const SIGNATURE_FILE: &str = "backup.json.minisig";
/// The secret key in the key directory.
pub const SECRET_KEY_FILE: &str = "signing.key";
/// The public key in the key directory.
pub const PUBLIC_KEY_FILE: &str = "signing.pub";

/// A minisign signature file is about 300 bytes; anything much larger is not one.
const MAX_SIGNATURE: u64 = 16 << 10;
/// Key files are one comment line and one line of base64.
const MAX_KEY: u64 = 16 << 10;

/// A key's identifier: minisign's key number, shown as minisign shows it (16 hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u64);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

impl KeyId {
    fn of(keynum: &[u8]) -> KeyId {
        let mut b = [0u8; 8];
        for (d, s) in b.iter_mut().zip(keynum) {
            *d = *s;
        }
        KeyId(u64::from_le_bytes(b))
    }
}

/// Why a catalog is not accepted, or a key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The backup has no signature file.
    #[error("no signature ({SIGNATURE_FILE} is missing){}", match .claimed {
        Some(id) => format!("; its catalog says it was signed by key {id}, so the signature was removed"),
        None => "; its catalog names no signing key (made by a lifeboat that did not sign backups, or not by lifeboat)".into(),
    })]
    Missing {
        /// The key id the (unauthenticated) catalog claims, when it names one.
        claimed: Option<String>,
    },
    /// Signed, but by a key that is not trusted here.
    #[error("signed by another key: the signature is by key {signed_by}, and the trusted key(s) are {}", ids(.trusted))]
    OtherKey {
        /// The key that made the signature.
        signed_by: KeyId,
        /// The keys trusted here.
        trusted: Vec<KeyId>,
    },
    /// Signed by a trusted key, but the signature does not match the catalog.
    #[error("the signature (key {signed_by}) does not match: the catalog (or its signature) was changed after it was signed")]
    Mismatch {
        /// The key the signature names.
        signed_by: KeyId,
    },
    /// The signature file is not a minisign signature.
    #[error("{SIGNATURE_FILE} is not a valid minisign signature ({why})")]
    Malformed {
        /// What is wrong with it.
        why: String,
    },
    /// No public key to verify with.
    #[error("no trusted public key: {} does not exist", .dir.join(PUBLIC_KEY_FILE).display())]
    NoTrustedKey {
        /// The key directory.
        dir: PathBuf,
    },
    /// A key file cannot be used.
    #[error("key file {file}: {why}")]
    BadKey {
        /// The file.
        file: PathBuf,
        /// Why.
        why: String,
    },
    /// A key file or its directory has permissions that let others read the
    /// secret key or replace a public key.
    #[error("{file} {why}")]
    Unsafe {
        /// The file or directory.
        file: PathBuf,
        /// What is wrong, and the fix.
        why: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The signing library failed (random numbers, encoding).
    #[error("cannot sign: {0}")]
    Crypto(String),
}

fn ids(v: &[KeyId]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter().map(KeyId::to_string).collect::<Vec<_>>().join(", ")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SignError + '_ {
    move |source| SignError::Io { path: path.to_path_buf(), source }
}

/// Read at most `max` bytes of a file; a longer file is an error.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, std::io::Error> {
    let f = std::fs::File::open(path)?;
    let mut data = Vec::new();
    f.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("larger than {max} bytes")));
    }
    Ok(data)
}

/// Neither group nor others may write `p` (they could replace a trusted key).
fn check_not_writable(p: &Path) -> Result<(), SignError> {
    let m = std::fs::metadata(p).map_err(io(p))?;
    if m.mode() & 0o022 != 0 {
        return Err(SignError::Unsafe {
            file: p.to_path_buf(),
            why: format!(
                "is writable by others (mode {:04o}): whoever can write it can make lifeboat trust their backups; run chmod go-w on it",
                m.mode() & 0o7777
            ),
        });
    }
    Ok(())
}

/// The host's key pair, to sign catalogs.
pub struct SigningKey {
    sk: minisign::SecretKey,
    pk: minisign::PublicKey,
    id: KeyId,
    dir: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    // Never print the secret key (minisign's Debug would).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("id", &self.id).field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// What `load_or_create` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The key existed.
    Existing,
    /// A new key pair was made; `retired` is where the public key of the
    /// previous one (whose secret key was gone) was kept, if there was one.
    Created {
        /// `signing-ID.pub` of the previous key.
        retired: Option<PathBuf>,
    },
}

impl SigningKey {
    /// Its id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The public key file.
    pub fn public_key_file(&self) -> PathBuf {
        self.dir.join(PUBLIC_KEY_FILE)
    }

    /// The secret key file.
    pub fn secret_key_file(&self) -> PathBuf {
        self.dir.join(SECRET_KEY_FILE)
    }

    /// The public key as `signing.pub` holds it (two lines).
    pub fn public_key_text(&self) -> Result<String, SignError> {
        public_text(&self.pk)
    }

    /// Load the key pair in `dir`, or make one when there is none
    /// (`host` goes into the key's comment).
    pub fn load_or_create(dir: &Path, host: &str) -> Result<(SigningKey, KeyOrigin), SignError> {
        let secret = dir.join(SECRET_KEY_FILE);
        if secret.exists() {
            return Ok((SigningKey::load(dir)?, KeyOrigin::Existing));
        }
        create_dir(dir)?;
        // A public key without its secret key: the secret was lost (or not
        // restored, as it is never backed up). Keep the old public key
        // trusted under its id, so the backups made with it still verify.
        let public = dir.join(PUBLIC_KEY_FILE);
        let mut retired = None;
        if public.exists() {
            let old = load_public(&public)?;
            let to = dir.join(format!("signing-{}.pub", KeyId::of(old.keynum())));
            std::fs::rename(&public, &to).map_err(io(&public))?;
            retired = Some(to);
        }
        let kp = minisign::KeyPair::generate_unencrypted_keypair().map_err(|e| SignError::Crypto(e.to_string()))?;
        let comment = format!(
            "lifeboat signing key of {} (no password: keep this file root-only, never copy it onto a backup target)",
            one_line(host)
        );
        let sk_text = kp.sk.to_box(Some(&comment)).map_err(|e| SignError::Crypto(e.to_string()))?.into_string();
        // Publish the secret key with link(): it fails when another backup
        // made a key at the same moment, and then that key is used.
        let tmp = tmp_name(dir, SECRET_KEY_FILE);
        write_new(&tmp, sk_text.as_bytes(), 0o600)?;
        let linked = std::fs::hard_link(&tmp, &secret);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok((SigningKey::load(dir)?, KeyOrigin::Existing));
            }
            Err(e) => return Err(SignError::Io { path: secret, source: e }),
        }
        let key = SigningKey { id: KeyId::of(kp.pk.keynum()), sk: kp.sk, pk: kp.pk, dir: dir.to_path_buf() };
        key.write_public()?;
        sync_dir(dir);
        Ok((key, KeyOrigin::Created { retired }))
    }

    /// Load the key pair in `dir`; `signing.pub` is made again from the
    /// secret key when it is missing, and must match it when present.
    pub fn load(dir: &Path) -> Result<SigningKey, SignError> {
        let secret = dir.join(SECRET_KEY_FILE);
        let m = std::fs::symlink_metadata(&secret).map_err(io(&secret))?;
        if !m.is_file() {
            return Err(SignError::BadKey { file: secret, why: "is not a regular file".into() });
        }
        if m.mode() & 0o077 != 0 {
            return Err(SignError::Unsafe {
                file: secret,
                why: format!(
                    "can be read by others (mode {:04o}): run chmod 600 on it; anyone who read it can sign backups this host trusts, so if that may have happened, move it away and the next backup makes a new key",
                    m.mode() & 0o7777
                ),
            });
        }
        let bad = |why: String| SignError::BadKey { file: secret.clone(), why };
        let text = read_bounded(&secret, MAX_KEY).map_err(io(&secret))?;
        let text = String::from_utf8(text).map_err(|_| bad("is not a minisign secret key (not text)".into()))?;
        let boxed = minisign::SecretKeyBox::from_string(&text).map_err(|e| bad(e.to_string()))?;
        let sk = boxed.into_unencrypted_secret_key().map_err(|e| {
            bad(format!(
                "is not a minisign secret key without a password ({e}); lifeboat signs unattended and needs one (minisign -G -W makes one)"
            ))
        })?;
        let pk = minisign::PublicKey::from_secret_key(&sk).map_err(|e| bad(e.to_string()))?;
        let key = SigningKey { id: KeyId::of(pk.keynum()), sk, pk, dir: dir.to_path_buf() };
        let public = dir.join(PUBLIC_KEY_FILE);
        if public.exists() {
            let p = load_public(&public)?;
            if p.to_bytes() != key.pk.to_bytes() {
                return Err(SignError::BadKey {
                    file: public,
                    why: format!(
                        "is not the public key of {} (key {}): one of them was replaced; move the wrong one away",
                        secret.display(),
                        key.id
                    ),
                });
            }
        } else {
            key.write_public()?;
        }
        Ok(key)
    }

    fn write_public(&self) -> Result<(), SignError> {
        let public = self.public_key_file();
        let tmp = tmp_name(&self.dir, PUBLIC_KEY_FILE);
        write_new(&tmp, self.public_key_text()?.as_bytes(), 0o644)?;
        std::fs::rename(&tmp, &public).map_err(io(&public))
    }

    /// The signature file (`backup.json.minisig`) of a catalog; `comment`
    /// becomes its trusted (signed) comment, on one line.
    pub fn sign(&self, catalog: &[u8], comment: &str) -> Result<Vec<u8>, SignError> {
        let untrusted = format!("signature of a lifeboat catalog by key {}", self.id);
        let sig = minisign::sign(Some(&self.pk), &self.sk, catalog, Some(&one_line(comment)), Some(&untrusted))
            .map_err(|e| SignError::Crypto(e.to_string()))?;
        Ok(sig.into_string().into_bytes())
    }
}

/// One printable line (hostnames and comments go into single-line fields).
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn public_text(pk: &minisign::PublicKey) -> Result<String, SignError> {
    Ok(pk.to_box().map_err(|e| SignError::Crypto(e.to_string()))?.into_string())
}

fn create_dir(dir: &Path) -> Result<(), SignError> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.is_dir() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
    }
    check_not_writable(dir)
}

fn write_new(p: &Path, data: &[u8], mode: u32) -> Result<(), SignError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(p).map_err(io(p))?;
    f.write_all(data).map_err(io(p))?;
    f.sync_all().map_err(io(p))
}

/// A temporary name in `dir` that no other process or thread uses.
fn tmp_name(dir: &Path, base: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    dir.join(format!("{base}.new-{}-{n}", std::process::id()))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn load_public(p: &Path) -> Result<minisign::PublicKey, SignError> {
    let bad = |why: String| SignError::BadKey { file: p.to_path_buf(), why };
    let text = read_bounded(p, MAX_KEY).map_err(io(p))?;
    let text = String::from_utf8(text).map_err(|_| bad("is not a minisign public key (not text)".into()))?;
    minisign::PublicKeyBox::from_string(&text)
        .and_then(minisign::PublicKeyBox::into_public_key)
        .map_err(|e| bad(format!("is not a minisign public key ({e})")))
}

/// One trusted public key.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// Its id.
    pub id: KeyId,
    /// The file it was read from.
    pub file: PathBuf,
    /// The file's text (what the rescue medium gets).
    pub text: String,
    pk: minisign::PublicKey,
}

/// The public keys a host trusts: `signing.pub` and the retired `signing-ID.pub` in the key directory.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    /// The key directory.
    pub dir: PathBuf,
    /// The keys, the current one (`signing.pub`) first.
    pub keys: Vec<TrustedKey>,
}

impl TrustedKeys {
    /// Load the trusted keys of a key directory. None at all is an error.
    pub fn load(dir: &Path) -> Result<TrustedKeys, SignError> {
        let mut files = Vec::new();
        let current = dir.join(PUBLIC_KEY_FILE);
        if current.exists() {
            files.push(current);
        }
        let mut retired: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                            n.strip_prefix("signing-")
                                .and_then(|r| r.strip_suffix(".pub"))
                                .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()))
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        retired.sort();
        files.extend(retired);
        if files.is_empty() {
            return Err(SignError::NoTrustedKey { dir: dir.to_path_buf() });
        }
        check_not_writable(dir)?;
        let mut keys = Vec::new();
        for file in files {
            check_not_writable(&file)?;
            let pk = load_public(&file)?;
            let text = public_text(&pk)?;
            keys.push(TrustedKey { id: KeyId::of(pk.keynum()), file, text, pk });
        }
        Ok(TrustedKeys { dir: dir.to_path_buf(), keys })
    }

    /// The ids of the trusted keys.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.id).collect()
    }
}

/// The key id a catalog claims (`key_id`), when it is 16 hex digits; only a
/// hint for messages: nothing in an unverified catalog is trusted.
fn claimed_key(catalog: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(catalog).ok()?;
    let id = v.get("key_id")?.as_str()?;
    (id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| id.to_string())
}

/// Parse a signature file, checking its shape first: the minisign crate
/// indexes into the decoded signatures and must only see well-formed ones.
fn parse_signature(data: &[u8]) -> Result<(minisign::SignatureBox, KeyId), SignError> {
    let bad = |why: &str| SignError::Malformed { why: why.into() };
    if data.len() as u64 > MAX_SIGNATURE {
        return Err(bad("too large"));
    }
    let text = std::str::from_utf8(data).map_err(|_| bad("not text"))?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() != 4 {
        return Err(bad("it must have 4 lines"));
    }
    let b64 = |s: &str, len: usize| {
        let s = s.trim();
        s.len() == len && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    };
    // 74 bytes (algorithm, key id, signature) and a 64-byte signature, in base64.
    if !b64(lines[1], 100) || !b64(lines[3], 88) {
        return Err(bad("a signature line has the wrong length"));
    }
    let sb = minisign::SignatureBox::from_string(text).map_err(|e| bad(&e.to_string()))?;
    if !sb.is_prehashed() {
        return Err(bad("a legacy (not prehashed) signature, which lifeboat does not make"));
    }
    let id = KeyId::of(sb.keynum());
    Ok((sb, id))
}

/// Check the signature `signature` (the bytes of `backup.json.minisig`, None
/// when there is none) of the catalog bytes `catalog` against the trusted
/// keys; returns the key that signed it.
pub fn verify_catalog(catalog: &[u8], signature: Option<&[u8]>, trusted: &TrustedKeys) -> Result<KeyId, SignError> {
    let Some(signature) = signature else {
        return Err(SignError::Missing { claimed: claimed_key(catalog) });
    };
    let (sb, id) = parse_signature(signature)?;
    let Some(key) = trusted.keys.iter().find(|k| k.id == id) else {
        return Err(SignError::OtherKey { signed_by: id, trusted: trusted.ids() });
    };
    minisign::verify(&key.pk, &sb, std::io::Cursor::new(catalog), true, false, false)
        .map_err(|_| SignError::Mismatch { signed_by: id })?;
    Ok(id)
}

/// Read the signature of a backup: None when there is none.
pub fn read_signature(objects: &dyn crate::target::Objects) -> Result<Option<Vec<u8>>, SignError> {
    let p = PathBuf::from(format!("{}/{SIGNATURE_FILE}", objects.location()));
    // Attacker-written: on a directory a regular file, never a link, FIFO or device.
    match objects.read(SIGNATURE_FILE, MAX_SIGNATURE) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(SignError::Malformed { why: "too large".into() }),
        Err(source) => Err(SignError::Io { path: p, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dir: &Path) -> SigningKey {
        let (k, origin) = SigningKey::load_or_create(dir, "host1").expect("key");
        assert_eq!(origin, KeyOrigin::Created { retired: None });
        k
    }

    #[test]
    fn a_new_key_is_private_and_signs_catalogs_that_verify() {
        let t = tempfile::tempdir().expect("tmp");
        let dir = t.path().join("keys");
        let k = key(&dir);
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").mode() & 0o777;
        assert_eq!(mode(&dir.join(SECRET_KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.join(PUBLIC_KEY_FILE)), 0o644);
        assert_eq!(mode(&dir), 0o700);
        let text = std::fs::read_to_string(dir.join(PUBLIC_KEY_FILE)).expect("pub");
        assert!(text.starts_with(&format!("untrusted comment: minisign public key: {}\n", k.id())), "{text}");
        // No temporary files are left.
        assert_eq!(std::fs::read_dir(&dir).expect("ls").count(), 2);
        let cat = b"{\"format\":\"lifeboat-archive\"}\n";
        let sig = k.sign(cat, "lifeboat catalog of host1\nsecond line").expect("sign");
        let s = String::from_utf8(sig.clone()).expect("utf8");
        assert_eq!(s.lines().count(), 4, "{s}");
        assert!(s.lines().nth(2).is_some_and(|l| l == "trusted comment: lifeboat catalog of host1 second line"), "{s}");
        let trusted = TrustedKeys::load(&dir).expect("trusted");
        assert_eq!(verify_catalog(cat, Some(&sig), &trusted).expect("verify"), k.id());
        // Loading again gives the same key.
        let (again, origin) = SigningKey::load_or_create(&dir, "host1").expect("again");
        assert_eq!((again.id(), origin), (k.id(), KeyOrigin::Existing));
    }

    #[test]
    fn missing_other_key_and_changed_catalogs_are_refused_with_the_reason() {
        let t = tempfile::tempdir().expect("tmp");
        let k = key(&t.path().join("a"));
        let other = key(&t.path().join("b"));
        let trusted = TrustedKeys::load(&t.path().join("a")).expect("trusted");
        let cat = b"{\"key_id\":\"0123456789ABCDEF\",\"x\":1}";
        let e = verify_catalog(cat, None, &trusted).unwrap_err();
        assert!(matches!(&e, SignError::Missing { claimed: Some(c) } if c == "0123456789ABCDEF"), "{e}");
        assert!(e.to_string().contains("no signature") && e.to_string().contains("0123456789ABCDEF"), "{e}");
        let e = verify_catalog(b"{}", None, &trusted).unwrap_err();
        assert!(e.to_string().contains("names no signing key"), "{e}");
        let sig = other.sign(cat, "c").expect("sign");
        let e = verify_catalog(cat, Some(&sig), &trusted).unwrap_err();
        assert!(
            matches!(e, SignError::OtherKey { signed_by, ref trusted } if signed_by == other.id() && trusted == &[k.id()])
        );
        assert!(e.to_string().contains(&other.id().to_string()) && e.to_string().contains(&k.id().to_string()), "{e}");
        let sig = k.sign(cat, "c").expect("sign");
        let mut changed = cat.to_vec();
        changed[cat.len() - 2] = b'2';
        let e = verify_catalog(&changed, Some(&sig), &trusted).unwrap_err();
        assert!(matches!(e, SignError::Mismatch { signed_by } if signed_by == k.id()), "{e}");
        assert!(e.to_string().contains("was changed"), "{e}");
        // A changed trusted comment breaks the signature too.
        let s = String::from_utf8(sig).expect("utf8").replace("trusted comment: c", "trusted comment: d");
        assert!(matches!(verify_catalog(cat, Some(s.as_bytes()), &trusted), Err(SignError::Mismatch { .. })));
    }

    #[test]
    fn malformed_signatures_are_errors_never_panics() {
        let t = tempfile::tempdir().expect("tmp");
        let k = key(t.path());
        let trusted = TrustedKeys::load(t.path()).expect("trusted");
        let cat = b"catalog";
        let good = String::from_utf8(k.sign(cat, "c").expect("sign")).expect("utf8");
        let lines: Vec<&str> = good.lines().collect();
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\xff\xfe".to_vec(),
            vec![b'a'; 100_000],
            lines[..3].join("\n").into_bytes(),
            format!("{}\n{}\n{}\nAAAA\n", lines[0], lines[1], lines[2]).into_bytes(),
            format!("{}\nAAAA\n{}\n{}\n", lines[0], lines[2], lines[3]).into_bytes(),
            format!("x\n{}\n{}\n{}\n", lines[1], lines[2], lines[3]).into_bytes(),
            format!("{}\n{}\nx\n{}\n", lines[0], lines[1], lines[3]).into_bytes(),
            format!("{}\n{}\n{}\n{}\n", lines[0], "!".repeat(100), lines[2], lines[3]).into_bytes(),
            format!("{}\n{}\n{}\n{}\n", lines[0], lines[1], lines[2], "=".repeat(88)).into_bytes(),
            format!("{}\n{}\n{}\n{}\n", lines[0], "A".repeat(100), lines[2], lines[3]).into_bytes(),
        ];
        // Every byte of the signed lines flipped in turn (not the untrusted
        // comment, which is not signed, nor the final newline).
        for i in lines[0].len() + 1..good.len() - 1 {
            let mut b = good.clone().into_bytes();
            b[i] ^= 0x01;
            cases.push(b);
        }
        for (i, c) in cases.iter().enumerate() {
            assert!(verify_catalog(cat, Some(c), &trusted).is_err(), "case {i}: {:?}", String::from_utf8_lossy(c));
        }
    }

    #[test]
    fn a_lost_secret_key_makes_a_new_key_and_the_old_public_key_stays_trusted() {
        let t = tempfile::tempdir().expect("tmp");
        let old = key(t.path());
        let sig = old.sign(b"old", "c").expect("sign");
        std::fs::remove_file(t.path().join(SECRET_KEY_FILE)).expect("rm");
        let (new, origin) = SigningKey::load_or_create(t.path(), "h").expect("new");
        let retired = t.path().join(format!("signing-{}.pub", old.id()));
        assert_eq!(origin, KeyOrigin::Created { retired: Some(retired.clone()) });
        assert_ne!(new.id(), old.id());
        let trusted = TrustedKeys::load(t.path()).expect("trusted");
        assert_eq!(trusted.ids(), vec![new.id(), old.id()]);
        assert_eq!(verify_catalog(b"old", Some(&sig), &trusted).expect("old verifies"), old.id());
        let sig = new.sign(b"new", "c").expect("sign");
        assert_eq!(verify_catalog(b"new", Some(&sig), &trusted).expect("new verifies"), new.id());
    }

    #[test]
    fn a_missing_public_key_is_made_again_and_a_wrong_one_is_refused() {
        let t = tempfile::tempdir().expect("tmp");
        let k = key(t.path());
        let public = t.path().join(PUBLIC_KEY_FILE);
        let text = std::fs::read_to_string(&public).expect("pub");
        std::fs::remove_file(&public).expect("rm");
        assert_eq!(SigningKey::load(t.path()).expect("load").id(), k.id());
        assert_eq!(std::fs::read_to_string(&public).expect("pub again"), text);
        let other = tempfile::tempdir().expect("tmp");
        key(other.path());
        std::fs::copy(other.path().join(PUBLIC_KEY_FILE), &public).expect("cp");
        let e = SigningKey::load(t.path()).unwrap_err();
        assert!(matches!(e, SignError::BadKey { .. }) && e.to_string().contains("replaced"), "{e}");
    }

    #[test]
    fn keys_readable_or_writable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("tmp");
        key(t.path());
        let secret = t.path().join(SECRET_KEY_FILE);
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = SigningKey::load(t.path()).unwrap_err();
        assert!(matches!(e, SignError::Unsafe { .. }) && e.to_string().contains("chmod 600"), "{e}");
        let public = t.path().join(PUBLIC_KEY_FILE);
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let e = TrustedKeys::load(t.path()).unwrap_err();
        assert!(matches!(e, SignError::Unsafe { .. }) && e.to_string().contains("go-w"), "{e}");
    }

    #[test]
    fn no_key_and_a_damaged_key_are_named() {
        let t = tempfile::tempdir().expect("tmp");
        let e = TrustedKeys::load(t.path()).unwrap_err();
        assert!(e.to_string().contains("signing.pub does not exist"), "{e}");
        std::fs::write(t.path().join(PUBLIC_KEY_FILE), "untrusted comment: x\nnot a key\n").expect("write");
        let e = TrustedKeys::load(t.path()).unwrap_err();
        assert!(matches!(e, SignError::BadKey { .. }), "{e}");
        let secret = t.path().join(SECRET_KEY_FILE);
        write_new(&secret, b"untrusted comment: x\nAAAA\n", 0o600).expect("write");
        assert!(matches!(SigningKey::load(t.path()).unwrap_err(), SignError::BadKey { .. }));
    }

    #[test]
    fn two_first_backups_at_once_end_with_one_key() {
        let t = tempfile::tempdir().expect("tmp");
        let dir = t.path().join("k");
        let ids: Vec<KeyId> = std::thread::scope(|s| {
            let hs: Vec<_> =
                (0..4).map(|_| s.spawn(|| SigningKey::load_or_create(&dir, "h").map(|(k, _)| k.id()))).collect();
            hs.into_iter().map(|h| h.join().expect("thread").expect("key")).collect()
        });
        assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
        assert_eq!(SigningKey::load(&dir).expect("load").id(), ids[0]);
    }
}
