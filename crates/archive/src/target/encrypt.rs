//! Encryption as a wrapper around any target: an [`Upload`] that encrypts
//! every data object on its way to the transport ([`EncryptingUpload`]) and
//! an [`Objects`] that decrypts them on the way back ([`DecryptingObjects`]),
//! so `dir`, `memory` and `sftp` (and every transport to come) never know.
//!
//! Every encrypted object is one independent, standard age file
//! (age-encryption.org/v1, through the `age` crate): `age -d -i KEY
//! vol-0001.tar.zst` gives the volume exactly as an unencrypted backup
//! stores it, so
//!
//! ```text
//! for v in vol-*; do age -d -i key.txt "$v"; done | zstd -dc | tar -x
//! ```
//!
//! restores a backup without lifeboat. Recipients are age X25519 public keys
//! (`age1...`). age allows a passphrase (scrypt) only as the sole recipient
//! of a file, so a passphrase recipient is a *recovery identity*: each
//! backup makes a fresh X25519 identity, encrypts every object to it as
//! well, and stores that identity encrypted with the passphrase as
//! [`PASSPHRASE_IDENTITY`] (`age -d passphrase.age > key.txt` asks for it).
//!
//! What stays in clear: `backup.json` (the catalog, signed as stored, used
//! for listing without the identity) and its signature. The catalog of an
//! encrypted backup keeps no file names: the paths backed up, the exclude
//! patterns and the lists of changed, shrunk and unreadable files move into
//! the sealed catalog [`SEALED_CATALOG`], an encrypted object that the
//! reader loads after decryption (see `crate::backup::Sealed` and
//! docs/archive-format.md, "Encryption").

use super::{ObjectRead, ObjectReader, ObjectWriter, Objects, Upload, CATALOG};
use crate::frames::Volume;
use crate::ArchiveError;
use age::secrecy::SecretString;
use age::x25519;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

/// The sealed part of an encrypted backup's catalog (what names files).
pub const SEALED_CATALOG: &str = "catalog.age";
/// The recovery identity of a passphrase recipient, encrypted with the passphrase (age's scrypt).
pub const PASSPHRASE_IDENTITY: &str = "passphrase.age";
/// How every age file starts.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/";
/// The scheme an encrypted catalog names.
pub const SCHEME: &str = "age";

/// Plaintext bytes per age STREAM chunk.
const CHUNK: u64 = 64 << 10;
/// The largest age header lifeboat reads (a stanza per recipient: far more than [`MAX_RECIPIENTS`]).
const MAX_HEADER: u64 = 64 << 10;
/// Most recipients of one backup.
pub const MAX_RECIPIENTS: usize = 64;
/// How much of a stored object a ranged read fetches at once (one request on a remote transport).
const READ_AHEAD: usize = 1 << 20;

/// The objects that are never encrypted: the catalog (signed as stored,
/// listed without the identity), its signature, and the passphrase-protected
/// recovery identity (already an age file).
fn in_clear(name: &str) -> bool {
    name == CATALOG || name == crate::sign::SIGNATURE_FILE || name == PASSPHRASE_IDENTITY
}

/// The most bytes an age file of `plain` plaintext bytes takes (header, nonce, a tag per chunk).
pub fn stored_bound(plain: u64) -> u64 {
    plain.saturating_add(plain / CHUNK * 16).saturating_add(16 + 16 + MAX_HEADER)
}

/// Why encrypting or decrypting a backup failed. Every message names the
/// thing (a key, a file, the backup) and the fix.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    /// A recipient is not an age X25519 public key.
    #[error("encryption recipient {key:?} is not an age public key ({why}): give the `age1...` line that `age-keygen` prints as \"Public key\" (or `age-keygen -y KEYFILE`)")]
    BadRecipient {
        /// The recipient as given.
        key: String,
        /// Why.
        why: String,
    },
    /// Encryption was asked for with nobody to encrypt to.
    #[error("backup encryption needs at least one recipient: set backup.recipients = [\"age1...\"] (or backup.recipients_file)")]
    NoRecipients,
    /// Too many recipients.
    #[error("backup encryption has {0} recipients, more than the {MAX_RECIPIENTS} lifeboat writes")]
    TooManyRecipients(usize),
    /// A recipients or identity file cannot be read or holds something else.
    #[error("{file}: {why}")]
    File {
        /// The file (or where typed text came from).
        file: String,
        /// Why.
        why: String,
    },
    /// The backup is encrypted and no identity was given.
    #[error("the backup {backup} is encrypted and no identity was given to decrypt it: give --identity FILE (an age identity file with an AGE-SECRET-KEY-1... line: typed, or on a USB stick) or set backup.identity_file")]
    NoIdentity {
        /// The backup.
        backup: String,
    },
    /// An unattended recovery has no identity for an encrypted backup.
    #[error("unattended recovery cannot read the backup {backup}: it is encrypted and this rescue system has no identity for it; recover interactively with --identity FILE, or make the medium with backup.identity_file set (the identity is then on the medium: keep it as safe as the backups)")]
    UnattendedWithoutIdentity {
        /// The backup.
        backup: String,
    },
    /// None of the identities given decrypts the backup.
    #[error("{object}: none of the identities given ({tried}) can decrypt this backup{to}: give --identity FILE with one of its keys (or set backup.identity_file)")]
    WrongIdentity {
        /// The object that could not be decrypted.
        object: String,
        /// The public keys of the identities tried.
        tried: String,
        /// `, which is encrypted to age1...`, when the catalog says.
        to: String,
    },
    /// An object is not a valid age file, or fails to decrypt (damaged or tampered with).
    #[error("{object}: {why} (damaged or tampered with)")]
    Damaged {
        /// The object.
        object: String,
        /// Why.
        why: String,
    },
    /// Encrypting failed.
    #[error("cannot encrypt {object}: {why}")]
    Encrypt {
        /// The object.
        object: String,
        /// Why.
        why: String,
    },
}

impl CryptError {
    fn io(self) -> std::io::Error {
        let kind = match self {
            CryptError::WrongIdentity { .. } | CryptError::NoIdentity { .. } => std::io::ErrorKind::PermissionDenied,
            CryptError::Damaged { .. } => std::io::ErrorKind::InvalidData,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, self)
    }
}

/// The CryptError an I/O error carries, when it carries one.
pub fn crypt_error(e: &std::io::Error) -> Option<&CryptError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<CryptError>())
}

/// Read a passphrase file: its first line, which must not be empty; the
/// file must not be readable by group or others.
pub fn read_passphrase(path: &Path) -> Result<String, CryptError> {
    use std::os::unix::fs::PermissionsExt;
    let file = path.display().to_string();
    let err = |why: String| CryptError::File { file: file.clone(), why };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err(format!(
            "others can read this passphrase file (mode {:o}): chmod 600 {file}",
            meta.permissions().mode() & 0o7777
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(err("holds no passphrase (its first line is empty)".into()));
    }
    Ok(line)
}

/// Who a backup is encrypted to: age X25519 public keys, and optionally a
/// passphrase (see the module documentation).
#[derive(Clone, Default)]
pub struct Recipients {
    keys: Vec<x25519::Recipient>,
    passphrase: Option<SecretString>,
}

impl fmt::Debug for Recipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipients")
            .field("keys", &self.keys())
            .field("passphrase", &self.passphrase.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// Parse one `age1...` public key.
pub fn parse_recipient(key: &str) -> Result<x25519::Recipient, CryptError> {
    let key = key.trim();
    if key.starts_with("AGE-SECRET-KEY-") {
        return Err(CryptError::BadRecipient {
            key: "AGE-SECRET-KEY-1...".into(),
            why: "this is a secret key, which must never be in the backup configuration".into(),
        });
    }
    key.parse::<x25519::Recipient>().map_err(|why| CryptError::BadRecipient { key: key.into(), why: why.into() })
}

/// The lines of an age recipients or identity file that hold keys (no comments, no blank lines), numbered from 1.
fn key_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

impl Recipients {
    /// Parse public keys (`age1...`, as `backup.recipients` lists them).
    pub fn parse<S: AsRef<str>>(keys: &[S]) -> Result<Recipients, CryptError> {
        let keys = keys.iter().map(|k| parse_recipient(k.as_ref())).collect::<Result<Vec<_>, _>>()?;
        Ok(Recipients { keys, passphrase: None })
    }

    /// Add the public keys of an age recipients file (one `age1...` per
    /// line, `#` comments), as `age -R` reads it.
    pub fn add_file(mut self, path: &Path) -> Result<Recipients, CryptError> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| CryptError::File { file: file.clone(), why: e.to_string() })?;
        for (n, line) in key_lines(&text) {
            let r = parse_recipient(line)
                .map_err(|e| CryptError::File { file: format!("{file} line {n}"), why: e.to_string() })?;
            self.keys.push(r);
        }
        Ok(self)
    }

    /// Also encrypt to a passphrase (through a recovery identity stored as [`PASSPHRASE_IDENTITY`]).
    pub fn with_passphrase(mut self, passphrase: String) -> Recipients {
        self.passphrase = Some(SecretString::from(passphrase));
        self
    }

    /// The recipients a configuration names (`backup.recipients`,
    /// `backup.recipients_file`, `backup.passphrase_file`; an empty path is
    /// none), or None when it names none: backups are then not encrypted.
    /// The passphrase file must be readable by its owner only.
    pub fn configured<S: AsRef<str>>(
        keys: &[S],
        recipients_file: Option<&Path>,
        passphrase_file: Option<&Path>,
    ) -> Result<Option<Recipients>, CryptError> {
        let mut r = Recipients::parse(keys)?;
        if let Some(f) = recipients_file.filter(|p| !p.as_os_str().is_empty()) {
            r = r.add_file(f)?;
        }
        if let Some(f) = passphrase_file.filter(|p| !p.as_os_str().is_empty()) {
            r = r.with_passphrase(read_passphrase(f)?);
        }
        Ok((!r.is_empty()).then_some(r))
    }

    /// Whether there is no one to encrypt to.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.passphrase.is_none()
    }

    /// The public keys, as `age1...` strings.
    pub fn keys(&self) -> Vec<String> {
        self.keys.iter().map(ToString::to_string).collect()
    }
}

/// What a backup is decrypted with: age X25519 identities, and/or the
/// passphrase of its passphrase recipient.
#[derive(Default)]
pub struct Identities {
    keys: Vec<x25519::Identity>,
    passphrase: Option<SecretString>,
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("public_keys", &self.public_keys())
            .field("passphrase", &self.passphrase.as_ref().map(|_| "(set)"))
            .finish()
    }
}

impl Identities {
    /// Parse an age identity file's text (`AGE-SECRET-KEY-1...` lines, `#`
    /// comments), typed or read from a USB stick; `from` names it in errors.
    pub fn parse(text: &str, from: &str) -> Result<Identities, CryptError> {
        let mut keys = Vec::new();
        for (n, line) in key_lines(text) {
            let why = if line.starts_with("age1") {
                "this is a public key (a recipient): decrypting needs the secret key, the AGE-SECRET-KEY-1... line of the key file".to_string()
            } else {
                match line.parse::<x25519::Identity>() {
                    Ok(k) => {
                        keys.push(k);
                        continue;
                    }
                    Err(e) => format!("not an age identity ({e}): expected an AGE-SECRET-KEY-1... line"),
                }
            };
            return Err(CryptError::File { file: format!("{from} line {n}"), why });
        }
        if keys.is_empty() {
            return Err(CryptError::File {
                file: from.into(),
                why: "holds no identity (no AGE-SECRET-KEY-1... line)".into(),
            });
        }
        Ok(Identities { keys, passphrase: None })
    }

    /// Read an age identity file (`age -i FILE` reads the same).
    pub fn read_file(path: &Path) -> Result<Identities, CryptError> {
        let from = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| CryptError::File { file: from.clone(), why: e.to_string() })?;
        Identities::parse(&text, &from)
    }

    /// Decrypt with a backup's passphrase recipient.
    pub fn passphrase(passphrase: String) -> Identities {
        Identities { keys: Vec::new(), passphrase: Some(SecretString::from(passphrase)) }
    }

    /// These identities and `other`'s.
    pub fn and(mut self, other: Identities) -> Identities {
        self.keys.extend(other.keys);
        self.passphrase = other.passphrase.or(self.passphrase);
        self
    }

    /// The public keys of the X25519 identities (for messages).
    pub fn public_keys(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.to_public().to_string()).collect()
    }

    /// Whether there is nothing to decrypt with.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.passphrase.is_none()
    }
}

/// The identities an encrypted backup needs, or the error that says there
/// are none: interactive runs name `--identity FILE`, unattended ones say
/// that the rescue system has no identity.
pub fn require_identities(
    backup: &str,
    identities: Option<Identities>,
    unattended: bool,
) -> Result<Identities, CryptError> {
    match identities.filter(|i| !i.is_empty()) {
        Some(i) => Ok(i),
        None if unattended => Err(CryptError::UnattendedWithoutIdentity { backup: backup.into() }),
        None => Err(CryptError::NoIdentity { backup: backup.into() }),
    }
}

/// The warning to print when an identity file goes onto a rescue medium.
pub fn identity_on_medium_warning(identity_file: &Path) -> String {
    format!(
        "the rescue medium will hold the backup identity {}: anyone who has the medium can decrypt every backup encrypted to it; keep the medium as safe as the key (or leave backup.identity_file unset and give --identity FILE at recovery time)",
        identity_file.display()
    )
}

/// Whether an object's first bytes are an age file's.
pub fn is_age(data: &[u8]) -> bool {
    data.starts_with(AGE_MAGIC)
}

// ---------------------------------------------------------------- writing

/// A writer that hashes and counts what goes through it: the stored bytes.
struct Counting {
    inner: Box<dyn ObjectWriter>,
    hash: blake3::Hasher,
    size: u64,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

type StoredMap = Arc<Mutex<BTreeMap<String, Volume>>>;

/// One object being encrypted on its way to the transport.
struct EncryptingWriter {
    name: String,
    stream: age::stream::StreamWriter<Counting>,
    stored: StoredMap,
}

impl Write for EncryptingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        // age writes whole chunks; the last one only at finish.
        Ok(())
    }
}

impl ObjectWriter for EncryptingWriter {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        let EncryptingWriter { name, stream, stored } = *self;
        let mut counting = stream.finish()?;
        counting.flush()?;
        let volume =
            Volume { name: name.clone(), size: counting.size, blake3: counting.hash.finalize().to_hex().to_string() };
        counting.inner.finish()?;
        stored.lock().map_err(|_| std::io::Error::other("poisoned"))?.insert(name, volume);
        Ok(())
    }
}

/// An [`Upload`] that encrypts every object but the catalog and its
/// signature to the recipients, each as an independent age file, and
/// remembers the size and BLAKE3 of what it stored (the catalog lists
/// those, so `verify` checks the stored bytes without the identity).
pub struct EncryptingUpload {
    inner: Arc<dyn Upload>,
    recipients: Vec<x25519::Recipient>,
    stored: StoredMap,
}

impl fmt::Debug for EncryptingUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptingUpload")
            .field("inner", &self.inner)
            .field("recipients", &self.recipients())
            .finish_non_exhaustive()
    }
}

impl EncryptingUpload {
    /// Encrypt what goes to `inner` to `recipients`. With a passphrase, a
    /// fresh recovery identity is made, added to the recipients, and stored
    /// encrypted with the passphrase as [`PASSPHRASE_IDENTITY`] (age's scrypt:
    /// about a second of work).
    pub fn new(inner: Arc<dyn Upload>, recipients: &Recipients) -> Result<EncryptingUpload, ArchiveError> {
        if recipients.is_empty() {
            return Err(CryptError::NoRecipients.into());
        }
        let mut keys = recipients.keys.clone();
        let stored: StoredMap = Arc::default();
        if let Some(pass) = &recipients.passphrase {
            let recovery = x25519::Identity::generate();
            keys.push(recovery.to_public());
            let at = format!("{}/{PASSPHRASE_IDENTITY}", inner.location());
            let text = format!(
                "# lifeboat: the recovery identity of this backup, encrypted with its passphrase\n# public key: {}\n{}\n",
                recovery.to_public(),
                age::secrecy::ExposeSecret::expose_secret(&recovery.to_string())
            );
            let enc = age::Encryptor::with_user_passphrase(pass.clone());
            let named = |e: std::io::Error| ArchiveError::Write(std::io::Error::new(e.kind(), format!("{at}: {e}")));
            let w = inner.create(PASSPHRASE_IDENTITY).map_err(named)?;
            let mut counting = Counting { inner: w, hash: blake3::Hasher::new(), size: 0 };
            let mut s = enc.wrap_output(&mut counting).map_err(named)?;
            s.write_all(text.as_bytes()).map_err(named)?;
            s.finish().map_err(named)?;
            let v = Volume {
                name: PASSPHRASE_IDENTITY.into(),
                size: counting.size,
                blake3: counting.hash.finalize().to_hex().to_string(),
            };
            counting.inner.finish().map_err(named)?;
            stored.lock().map_err(|_| ArchiveError::Target(at.clone(), "poisoned".into()))?.insert(v.name.clone(), v);
        }
        if keys.len() > MAX_RECIPIENTS {
            return Err(CryptError::TooManyRecipients(keys.len()).into());
        }
        Ok(EncryptingUpload { inner, recipients: keys, stored })
    }

    /// The size and BLAKE3 of an object as stored (encrypted), once it is finished.
    pub fn stored(&self, name: &str) -> Option<Volume> {
        self.stored.lock().ok().and_then(|m| m.get(name).cloned())
    }

    /// Every public key the objects are encrypted to (the recovery identity's included).
    pub fn recipients(&self) -> Vec<String> {
        self.recipients.iter().map(ToString::to_string).collect()
    }
}

impl Upload for EncryptingUpload {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self, name: &str) -> std::io::Result<Box<dyn ObjectWriter>> {
        let w = self.inner.create(name)?;
        if in_clear(name) {
            return Ok(w);
        }
        let enc =
            age::Encryptor::with_recipients(self.recipients.iter().map(|r| r as &dyn age::Recipient)).map_err(|e| {
                CryptError::Encrypt { object: format!("{}/{name}", self.location()), why: e.to_string() }.io()
            })?;
        let stream = enc.wrap_output(Counting { inner: w, hash: blake3::Hasher::new(), size: 0 })?;
        Ok(Box::new(EncryptingWriter { name: name.into(), stream, stored: Arc::clone(&self.stored) }))
    }

    fn commit(&self, catalog: &[u8]) -> Result<Arc<dyn Objects>, ArchiveError> {
        self.inner.commit(catalog)
    }

    fn abort(&self) {
        self.inner.abort()
    }
}

// ---------------------------------------------------------------- reading

/// The identities, unlocked once for all objects of a backup.
struct Keys {
    location: String,
    keys: Vec<x25519::Identity>,
    passphrase: Option<SecretString>,
    /// The recovery identity that the passphrase unlocked (read once: scrypt is slow on purpose).
    recovered: OnceLock<Result<x25519::Identity, String>>,
    /// The public keys the backup is encrypted to, from its catalog (for messages).
    recipients: OnceLock<Vec<String>>,
}

impl Keys {
    fn recovered(&self, inner: &dyn Objects) -> Option<Result<&x25519::Identity, CryptError>> {
        let pass = self.passphrase.as_ref()?;
        let r = self.recovered.get_or_init(|| {
            let data = inner.read(PASSPHRASE_IDENTITY, 1 << 20).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => "this backup has no passphrase recipient".to_string(),
                _ => e.to_string(),
            })?;
            let d = age::Decryptor::new_buffered(&data[..]).map_err(|e| e.to_string())?;
            if !d.is_scrypt() {
                return Err("is not encrypted with a passphrase".into());
            }
            let id = age::scrypt::Identity::new(pass.clone());
            let mut text = String::new();
            d.decrypt(std::iter::once(&id as &dyn age::Identity))
                .map_err(|e| match e {
                    age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                        "the passphrase is wrong".to_string()
                    }
                    e => e.to_string(),
                })?
                .take(1 << 20)
                .read_to_string(&mut text)
                .map_err(|e| e.to_string())?;
            let line = key_lines(&text).map(|(_, l)| l).next().ok_or("holds no identity")?;
            line.parse::<x25519::Identity>().map_err(|e| e.to_string())
        });
        Some(r.as_ref().map_err(|why| CryptError::File {
            file: format!("{}/{PASSPHRASE_IDENTITY}", self.location),
            why: why.clone(),
        }))
    }

    fn recipients_of(&self, inner: &dyn Objects) -> &[String] {
        self.recipients.get_or_init(|| {
            inner
                .read(CATALOG, crate::read::MAX_CATALOG_BYTES)
                .ok()
                .and_then(|t| serde_json::from_slice::<crate::Catalog>(&t).ok())
                .and_then(|c| c.encryption)
                .map(|e| e.recipients)
                .unwrap_or_default()
        })
    }

    /// Decrypt an age file read from `input` (`object` names it in errors).
    fn open<R: Read>(
        &self,
        inner: &dyn Objects,
        input: R,
        object: &str,
    ) -> std::io::Result<age::stream::StreamReader<R>> {
        let damaged = |why: String| CryptError::Damaged { object: object.into(), why }.io();
        let d = age::Decryptor::new(input).map_err(|e| damaged(format!("not an age file ({e})")))?;
        let recovered = match self.recovered(inner) {
            Some(Ok(k)) => Some(k),
            Some(Err(e)) if self.keys.is_empty() => return Err(e.io()),
            _ => None,
        };
        let ids = self.keys.iter().chain(recovered).map(|k| k as &dyn age::Identity);
        d.decrypt(ids).map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => {
                let mut tried: Vec<String> = self.keys.iter().map(|k| k.to_public().to_string()).collect();
                if self.passphrase.is_some() {
                    tried.push("the passphrase".into());
                }
                let to = self.recipients_of(inner);
                CryptError::WrongIdentity {
                    object: object.into(),
                    tried: tried.join(", "),
                    to: if to.is_empty() {
                        String::new()
                    } else {
                        format!(", which is encrypted to {}", to.join(", "))
                    },
                }
                .io()
            }
            e => damaged(e.to_string()),
        })
    }
}

/// A stored object as `Read + Seek`, read by range in large pieces (one
/// request each on a remote transport).
struct RangeReader {
    object: Arc<dyn ObjectRead>,
    pos: u64,
    buf: Vec<u8>,
    buf_at: u64,
}

impl RangeReader {
    fn new(object: Arc<dyn ObjectRead>) -> RangeReader {
        RangeReader { object, pos: 0, buf: Vec::new(), buf_at: 0 }
    }
}

impl Read for RangeReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let len = self.object.len();
        if self.pos >= len || out.is_empty() {
            return Ok(0);
        }
        let end = self.buf_at + self.buf.len() as u64;
        if self.pos < self.buf_at || self.pos >= end {
            let n = (len - self.pos).min(READ_AHEAD as u64) as usize;
            self.buf.resize(n, 0);
            self.object.read_at(self.pos, &mut self.buf)?;
            self.buf_at = self.pos;
        }
        let from = (self.pos - self.buf_at) as usize;
        let n = out.len().min(self.buf.len() - from);
        out[..n].copy_from_slice(&self.buf[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.object.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

type Plain = age::stream::StreamReader<RangeReader>;

/// One decrypted object, read by range: age's STREAM is seekable, so a
/// frame is read by decrypting only the 64 KiB chunks it lies in. Readers
/// are pooled, so the threads that decompress ahead read in parallel.
struct PlainObject {
    object: String,
    len: u64,
    stored: Arc<dyn ObjectRead>,
    inner: Arc<dyn Objects>,
    keys: Arc<Keys>,
    pool: Mutex<Vec<Plain>>,
}

impl fmt::Debug for PlainObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainObject").field("object", &self.object).field("len", &self.len).finish_non_exhaustive()
    }
}

impl PlainObject {
    fn reader(&self) -> std::io::Result<Plain> {
        if let Some(r) = self.pool.lock().ok().and_then(|mut p| p.pop()) {
            return Ok(r);
        }
        self.keys.open(self.inner.as_ref(), RangeReader::new(Arc::clone(&self.stored)), &self.object)
    }
}

impl ObjectRead for PlainObject {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.len) {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end of the object"));
        }
        let mut r = self.reader()?;
        r.seek(SeekFrom::Start(offset))?;
        r.read_exact(buf).map_err(|e| {
            std::io::Error::new(e.kind(), CryptError::Damaged { object: self.object.clone(), why: e.to_string() })
        })?;
        if let Ok(mut p) = self.pool.lock() {
            p.push(r);
        }
        Ok(())
    }

    fn read_ahead(&self) -> usize {
        self.stored.read_ahead()
    }
}

/// The objects of an encrypted backup, decrypted with identities: volumes
/// by range, small objects whole, and every volume in order as one
/// plaintext stream. The catalog and its signature are read as stored.
pub struct DecryptingObjects {
    inner: Arc<dyn Objects>,
    keys: Arc<Keys>,
    /// Whether the catalog says the backup is encrypted (an unencrypted one is read as it is).
    encrypted: OnceLock<bool>,
}

impl fmt::Debug for DecryptingObjects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptingObjects").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl DecryptingObjects {
    /// Decrypt the objects of `inner` with `identities`.
    pub fn new(inner: Arc<dyn Objects>, identities: Identities) -> DecryptingObjects {
        let keys = Keys {
            location: inner.location(),
            keys: identities.keys,
            passphrase: identities.passphrase,
            recovered: OnceLock::new(),
            recipients: OnceLock::new(),
        };
        DecryptingObjects { inner, keys: Arc::new(keys), encrypted: OnceLock::new() }
    }

    /// Whether objects pass as they are stored: the catalog, its signature,
    /// and every object of a backup whose catalog says it is not encrypted
    /// (so giving an identity for an unencrypted backup is harmless). When
    /// the catalog cannot be read, objects are decrypted.
    fn as_stored(&self, name: &str) -> bool {
        in_clear(name)
            || !*self.encrypted.get_or_init(|| {
                self.inner
                    .read(CATALOG, crate::read::MAX_CATALOG_BYTES)
                    .ok()
                    .and_then(|t| serde_json::from_slice::<crate::Catalog>(&t).ok())
                    .is_none_or(|c| c.encryption.is_some())
            })
    }

    /// The objects as stored (encrypted).
    pub fn stored(&self) -> &Arc<dyn Objects> {
        &self.inner
    }

    fn named(&self, name: &str) -> String {
        format!("{}/{name}", self.inner.location())
    }
}

impl Objects for DecryptingObjects {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn local_dir(&self) -> Option<&Path> {
        self.inner.local_dir()
    }

    fn open_volume(&self, name: &str, max: u64) -> std::io::Result<Arc<dyn ObjectRead>> {
        if self.as_stored(name) {
            return self.inner.open_volume(name, max);
        }
        let stored = self.inner.open_volume(name, stored_bound(max))?;
        let object = self.named(name);
        let mut first = self.keys.open(self.inner.as_ref(), RangeReader::new(Arc::clone(&stored)), &object)?;
        // The plaintext length: age authenticates the last chunk on the way.
        let len = first
            .seek(SeekFrom::End(0))
            .map_err(|e| CryptError::Damaged { object: object.clone(), why: e.to_string() }.io())?;
        if len > max {
            return Err(std::io::Error::other(format!("{object} is {len} bytes, more than the {max} it may have")));
        }
        Ok(Arc::new(PlainObject {
            object,
            len,
            stored,
            inner: Arc::clone(&self.inner),
            keys: Arc::clone(&self.keys),
            pool: Mutex::new(vec![first]),
        }))
    }

    fn read(&self, name: &str, max: u64) -> std::io::Result<Vec<u8>> {
        if self.as_stored(name) {
            return self.inner.read(name, max);
        }
        let data = self.inner.read(name, stored_bound(max))?;
        let object = self.named(name);
        let mut out = Vec::new();
        self.keys
            .open(self.inner.as_ref(), &data[..], &object)?
            .take(max.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| CryptError::Damaged { object: object.clone(), why: e.to_string() }.io())?;
        if out.len() as u64 > max {
            return Err(std::io::Error::other(format!("is more than the {max} bytes it may have")));
        }
        Ok(out)
    }

    fn sequential(&self) -> Option<Box<dyn Read + Send>> {
        if self.as_stored("") {
            return self.inner.sequential();
        }
        let text = self.inner.read(CATALOG, crate::read::MAX_CATALOG_BYTES).ok()?;
        let catalog = serde_json::from_slice::<crate::Catalog>(&text).ok()?;
        let volumes: Vec<(String, u64)> = catalog.volumes.iter().map(|v| (v.name.clone(), v.size)).collect();
        let source: Box<dyn Read + Send> = match self.inner.sequential() {
            Some(s) => s,
            None => Box::new(InOrder {
                inner: Arc::clone(&self.inner),
                names: volumes.iter().map(|(n, s)| (n.clone(), *s)).collect(),
                current: None,
            }),
        };
        Some(Box::new(SequentialPlain {
            source: Shared(Arc::new(Mutex::new(source))),
            volumes: volumes.into(),
            current: None,
            inner: Arc::clone(&self.inner),
            keys: Arc::clone(&self.keys),
        }))
    }
}

/// The stored volumes one after the other, opened as they are reached.
struct InOrder {
    inner: Arc<dyn Objects>,
    names: std::collections::VecDeque<(String, u64)>,
    current: Option<ObjectReader>,
}

impl Read for InOrder {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(r) = self.current.as_mut() {
                let n = r.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
            let Some((name, size)) = self.names.pop_front() else { return Ok(0) };
            let o = self.inner.open_volume(&name, size)?;
            self.current = Some(ObjectReader::new(o));
        }
    }
}

/// One sequential source shared by the volumes read from it in turn.
#[derive(Clone)]
struct Shared(Arc<Mutex<Box<dyn Read + Send>>>);

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.read(buf)
    }
}

/// The volumes of an encrypted backup, read in order from one stream of
/// the stored volumes, each decrypted as the age file it is (the catalog's
/// stored sizes say where each ends).
pub struct SequentialPlain {
    source: Shared,
    volumes: std::collections::VecDeque<(String, u64)>,
    current: Option<(String, age::stream::StreamReader<std::io::Take<Shared>>)>,
    inner: Arc<dyn Objects>,
    keys: Arc<Keys>,
}

impl fmt::Debug for SequentialPlain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequentialPlain").field("volumes_left", &self.volumes.len()).finish_non_exhaustive()
    }
}

impl SequentialPlain {
    /// Decrypt `stored` — the stored volumes of the backup whose objects are
    /// `objects`, concatenated (`cat vol-*`, a tape) — as the plaintext
    /// volumes in order. The catalog (read as stored) gives the volumes'
    /// stored sizes.
    pub fn new(
        objects: &DecryptingObjects,
        stored: Box<dyn Read + Send>,
    ) -> Result<SequentialPlain, crate::read::ReadError> {
        let at = format!("{}/{CATALOG}", objects.location());
        let text = objects
            .inner
            .read(CATALOG, crate::read::MAX_CATALOG_BYTES)
            .map_err(|e| crate::read::ReadError::Io(at.clone(), e))?;
        let catalog = crate::read::parse_catalog(&text, &at)?;
        Ok(SequentialPlain {
            source: Shared(Arc::new(Mutex::new(stored))),
            volumes: catalog.volumes.iter().map(|v| (v.name.clone(), v.size)).collect(),
            current: None,
            inner: Arc::clone(&objects.inner),
            keys: Arc::clone(&objects.keys),
        })
    }
}

impl Read for SequentialPlain {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some((name, r)) = self.current.as_mut() {
                let n = r.read(buf).map_err(|e| {
                    std::io::Error::new(e.kind(), CryptError::Damaged { object: name.clone(), why: e.to_string() })
                })?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
            let Some((name, size)) = self.volumes.pop_front() else { return Ok(0) };
            let object = format!("{}/{name}", self.inner.location());
            let r = self.keys.open(self.inner.as_ref(), self.source.clone().take(size), &object)?;
            self.current = Some((object, r));
        }
    }
}

/// The objects to read a backup through: decrypted with `identities` when
/// its catalog says it is encrypted, as they are when it is not. An
/// encrypted backup without identities is [`CryptError::NoIdentity`] (or
/// [`CryptError::UnattendedWithoutIdentity`] when `unattended`).
pub fn open_for_reading(
    objects: Arc<dyn Objects>,
    identities: Option<Identities>,
    unattended: bool,
) -> Result<Arc<dyn Objects>, CryptError> {
    if !is_encrypted(objects.as_ref()) {
        return Ok(objects);
    }
    let ids = require_identities(&objects.location(), identities, unattended)?;
    Ok(Arc::new(DecryptingObjects::new(objects, ids)))
}

/// Whether a backup's catalog (read as stored) says it is encrypted; false
/// when there is no readable catalog (the reader then says what is wrong).
pub fn is_encrypted(objects: &dyn Objects) -> bool {
    objects
        .read(CATALOG, crate::read::MAX_CATALOG_BYTES)
        .ok()
        .and_then(|t| serde_json::from_slice::<crate::Catalog>(&t).ok())
        .is_some_and(|c| c.encryption.is_some())
}

/// Check every stored object of a backup against the BLAKE3 and size its
/// catalog (as stored) gives — volumes, manifest, sealed catalog and
/// passphrase identity — without decrypting anything: what `verify` can
/// do without the identity. `objects` are the objects as stored (not a
/// [`DecryptingObjects`]: [`DecryptingObjects::stored`] gives them);
/// `catalog` is the stored catalog, best the one whose signature was
/// checked (`crate::trust::verified_catalog`).
pub fn verify_stored(objects: &dyn Objects, catalog: &crate::Catalog) -> crate::restore::VerifyReport {
    let mut r = crate::restore::VerifyReport::default();
    let mut all: Vec<&Volume> = catalog.volumes.iter().collect();
    all.push(&catalog.manifest);
    all.extend(catalog.deleted.iter());
    if let Some(e) = &catalog.encryption {
        all.push(&e.sealed);
        all.extend(e.passphrase.iter());
    }
    for v in all {
        let hashed = objects.open_volume(&v.name, v.size).and_then(|o| {
            if o.len() != v.size {
                return Err(std::io::Error::other(format!("is {} bytes where backup.json says {}", o.len(), v.size)));
            }
            let mut h = blake3::Hasher::new();
            std::io::copy(&mut ObjectReader::new(o), &mut h)?;
            Ok(h.finalize())
        });
        match hashed {
            Err(e) => r.damaged_volumes.push(format!("{}: {e}", v.name)),
            Ok(h) if h.to_hex().as_str() != v.blake3 => {
                r.damaged_volumes.push(format!("{}: checksum differs from backup.json (damaged)", v.name))
            }
            Ok(_) => {
                r.entries += 1;
                r.bytes += v.size;
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{MemoryTarget, Target};

    fn key() -> x25519::Identity {
        x25519::Identity::generate()
    }

    fn ids(k: &x25519::Identity) -> Identities {
        let text = age::secrecy::ExposeSecret::expose_secret(&k.to_string()).to_string();
        Identities::parse(&format!("# created: now\n# public key: {}\n{text}\n", k.to_public()), "key.txt")
            .expect("identity")
    }

    fn write(up: &dyn Upload, name: &str, data: &[u8]) {
        let mut w = up.create(name).expect("create");
        w.write_all(data).expect("write");
        w.finish().expect("finish");
    }

    /// A plaintext larger than several age chunks, not periodic.
    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn objects_are_standard_age_files_and_read_back_by_range_whole_and_in_order() {
        let k = key();
        let t = MemoryTarget::new();
        let up = EncryptingUpload::new(
            t.begin("h", "b").expect("begin"),
            &Recipients::parse(&[k.to_public().to_string()]).expect("r"),
        )
        .expect("upload");
        let (a, b) = (text(300_000), text(70_000));
        write(&up, "vol-0001.tar.zst", &a);
        write(&up, "vol-0002.tar.zst", &b);
        write(&up, crate::sign::SIGNATURE_FILE, b"sig");
        let stored_a = up.stored("vol-0001.tar.zst").expect("stored");
        assert!(stored_a.size > a.len() as u64 && stored_a.size <= stored_bound(a.len() as u64));
        assert!(up.stored(crate::sign::SIGNATURE_FILE).is_none(), "the signature stays in clear");
        let catalog = serde_json::json!({"format": "lifeboat-archive", "version": 3, "host": "h", "created": "x",
            "encryption": {"scheme": "age", "recipients": [], "sealed_blake3": "",
                "sealed": {"name": "catalog.age", "size": 0, "blake3": ""}},
            "compression": "zstd", "volume_size": 1, "frames": [],
            "volumes": [stored_a, up.stored("vol-0002.tar.zst").expect("stored")],
            "manifest": {"name": "manifest.jsonl", "size": 0, "blake3": ""}, "stats": {"entries": 0, "files": 0,
            "bytes_in": 0, "bytes_out": 0, "sockets_skipped": 0, "changed": [], "unreadable": []}});
        let raw = up.commit(&serde_json::to_vec(&catalog).expect("json")).expect("commit");

        // Stored: an age file, decrypted by age itself.
        let stored = raw.read("vol-0001.tar.zst", 1 << 30).expect("read");
        assert!(is_age(&stored) && !stored.windows(64).any(|w| a.windows(64).next() == Some(w)));
        let plain = age::decrypt(&k, &stored).expect("age decrypts");
        assert_eq!(plain, a);
        assert_eq!(raw.read(crate::sign::SIGNATURE_FILE, 10).expect("sig"), b"sig");

        let d = DecryptingObjects::new(Arc::clone(&raw), ids(&k));
        assert_eq!(d.read("vol-0002.tar.zst", 1 << 20).expect("whole"), b);
        let v = d.open_volume("vol-0001.tar.zst", 1 << 30).expect("open");
        assert_eq!(v.len(), a.len() as u64);
        for (off, len) in
            [(0usize, 10usize), (65_530, 20), (65_536, 65_536), (200_000, 100_000), (299_999, 1), (0, 300_000)]
        {
            let mut buf = vec![0u8; len];
            v.read_at(off as u64, &mut buf).expect("range");
            assert_eq!(buf, a[off..off + len], "{off}+{len}");
        }
        let mut past = [0u8; 2];
        assert!(v.read_at(299_999, &mut past).is_err());
        let mut all = Vec::new();
        d.sequential().expect("sequential").read_to_end(&mut all).expect("read");
        assert_eq!(all, [a.clone(), b.clone()].concat());
        // The same from a stream of the stored volumes (`cat vol-*`, a tape).
        let cat = [stored, raw.read("vol-0002.tar.zst", 1 << 30).expect("read")].concat();
        let mut all = Vec::new();
        SequentialPlain::new(&d, Box::new(std::io::Cursor::new(cat)))
            .expect("sequential")
            .read_to_end(&mut all)
            .expect("read");
        assert_eq!(all, [a, b].concat());
    }

    #[test]
    fn a_wrong_identity_names_the_keys_tried_and_the_recipients() {
        let (k, other) = (key(), key());
        let t = MemoryTarget::new();
        let up = EncryptingUpload::new(
            t.begin("h", "b").expect("begin"),
            &Recipients::parse(&[k.to_public().to_string()]).expect("r"),
        )
        .expect("upload");
        write(&up, "manifest.jsonl", b"secret");
        let raw = up.commit(b"{}").expect("commit");
        let d = DecryptingObjects::new(raw, ids(&other));
        let e = d.read("manifest.jsonl", 100).expect_err("wrong key");
        assert!(matches!(crypt_error(&e), Some(CryptError::WrongIdentity { .. })), "{e}");
        let s = e.to_string();
        assert!(s.contains(&other.to_public().to_string()) && s.contains("--identity FILE"), "{s}");
        assert!(s.contains("mem://h/b/manifest.jsonl"), "names the object: {s}");
    }

    #[test]
    fn a_passphrase_recipient_is_a_recovery_identity_age_can_unlock() {
        let k = key();
        let t = MemoryTarget::new();
        let r = Recipients::parse(&[k.to_public().to_string()]).expect("r").with_passphrase("correct horse".into());
        let up = EncryptingUpload::new(t.begin("h", "b").expect("begin"), &r).expect("upload");
        assert_eq!(up.recipients().len(), 2);
        write(&up, "manifest.jsonl", b"secret");
        let raw = up.commit(b"{}").expect("commit");
        let d = DecryptingObjects::new(Arc::clone(&raw), Identities::passphrase("correct horse".into()));
        assert_eq!(d.read("manifest.jsonl", 100).expect("by passphrase"), b"secret");
        let d = DecryptingObjects::new(Arc::clone(&raw), Identities::passphrase("wrong".into()));
        let e = d.read("manifest.jsonl", 100).expect_err("wrong passphrase").to_string();
        assert!(e.contains("passphrase is wrong") && e.contains(PASSPHRASE_IDENTITY), "{e}");
        // The recovery identity is a standard scrypt age file.
        let stored = raw.read(PASSPHRASE_IDENTITY, 1 << 20).expect("read");
        let id = age::scrypt::Identity::new(SecretString::from("correct horse".to_string()));
        let text = String::from_utf8(age::decrypt(&id, &stored).expect("age -d")).expect("utf8");
        assert!(text.contains("AGE-SECRET-KEY-1"), "{text}");
    }

    #[test]
    fn keys_are_checked_with_the_fix_in_the_message() {
        let e = Recipients::parse(&["age1notakey"]).expect_err("bad").to_string();
        assert!(e.contains("age1notakey") && e.contains("age-keygen"), "{e}");
        let secret = age::secrecy::ExposeSecret::expose_secret(&key().to_string()).to_string();
        let e = Recipients::parse(&[secret.as_str()]).expect_err("secret").to_string();
        assert!(e.contains("secret key") && !e.contains(&secret[20..]), "never echoes a secret: {e}");
        let e = Identities::parse(&key().to_public().to_string(), "stick/key.txt").expect_err("public").to_string();
        assert!(e.contains("stick/key.txt line 1") && e.contains("AGE-SECRET-KEY-1"), "{e}");
        assert!(Identities::parse("# nothing\n", "k").is_err());
        assert!(EncryptingUpload::new(MemoryTarget::new().begin("h", "b").expect("b"), &Recipients::default()).is_err());
        let e = require_identities("mem://h/b", None, true).expect_err("none").to_string();
        assert!(e.contains("unattended") && e.contains("--identity FILE"), "{e}");
        let e = require_identities("mem://h/b", Some(Identities::default()), false).expect_err("none").to_string();
        assert!(e.contains("mem://h/b") && e.contains("backup.identity_file"), "{e}");
    }

    #[test]
    fn the_configuration_names_the_recipients_or_none() {
        use std::os::unix::fs::PermissionsExt;
        assert!(Recipients::configured::<&str>(&[], None, Some(Path::new(""))).expect("none").is_none());
        let t = tempfile::tempdir().expect("tmp");
        let file = t.path().join("recipients.txt");
        let (a, b) = (key().to_public().to_string(), key().to_public().to_string());
        std::fs::write(&file, format!("# the admins\n{b}\n\n")).expect("write");
        let r = Recipients::configured(&[a.as_str()], Some(&file), None).expect("ok").expect("some");
        assert_eq!(r.keys(), vec![a.clone(), b]);
        std::fs::write(&file, "age1typo\n").expect("write");
        let e = Recipients::configured(&[a.as_str()], Some(&file), None).expect_err("bad").to_string();
        assert!(e.contains("recipients.txt line 1"), "{e}");
        let pass = t.path().join("pass");
        std::fs::write(&pass, "horse battery\n").expect("write");
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = Recipients::configured::<&str>(&[], None, Some(&pass)).expect_err("readable").to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let r = Recipients::configured::<&str>(&[], None, Some(&pass)).expect("ok").expect("some");
        assert!(r.keys().is_empty() && !r.is_empty());
        assert_eq!(read_passphrase(&pass).expect("read"), "horse battery");
    }

    #[test]
    fn a_damaged_object_is_an_error_not_plaintext() {
        let k = key();
        let t = MemoryTarget::new();
        let up = EncryptingUpload::new(
            t.begin("h", "b").expect("begin"),
            &Recipients::parse(&[k.to_public().to_string()]).expect("r"),
        )
        .expect("upload");
        write(&up, "vol-0001.tar.zst", &text(200_000));
        let raw = up.commit(b"{}").expect("commit");
        let mut stored = raw.read("vol-0001.tar.zst", 1 << 30).expect("read");
        let at = stored.len() / 2;
        stored[at] ^= 1;
        t.tamper("h/b/vol-0001.tar.zst", stored);
        let d = DecryptingObjects::new(raw, ids(&k));
        let v = d.open_volume("vol-0001.tar.zst", 1 << 30).expect("the header and last chunk are intact");
        let mut buf = vec![0u8; 200_000];
        let e = v.read_at(0, &mut buf).expect_err("damaged");
        assert!(e.to_string().contains("vol-0001.tar.zst") && e.to_string().contains("tampered"), "{e}");
        let mut small = [0u8; 10];
        v.read_at(0, &mut small).expect("the first chunk is intact");
    }
}
