//! `s3://bucket/prefix` targets: any S3-compatible object store (AWS,
//! Ceph RGW, Garage, MinIO).
//!
//! A backup is the objects `PREFIX/HOST/NAME/OBJECT`. Nothing is renamed:
//! the volumes, manifest and signature go up first, and the catalog
//! `backup.json` last, the one commit point. The commit is create-only: a
//! HEAD of the catalog first (refused when it exists), then a PUT with
//! `If-None-Match: *`. Stores that honour the header (AWS since 2024-08,
//! MinIO, Ceph RGW) make the commit atomic; Garage 2.5.0 ignores it on
//! PUT (it evaluates preconditions on GET, HEAD and copy sources only), so
//! there the HEAD check is what refuses a second commit of a name, and
//! two runs committing the same name in the same instant are not told
//! apart (backup names are times in milliseconds).
//!
//! There is no lock to ask an object store, so an upload (objects without
//! a catalog) whose newest object is older than the grace period
//! ([`S3Settings::grace`]), while no backup of its host holds a fresh lock
//! ([`super::lock::backup_alive`]: the backup's heartbeat), counts as interrupted and
//! [`Target::prune_partial`] removes it — its objects and the parts of its
//! unfinished multipart uploads (ListMultipartUploads), which no listing of
//! objects shows; a younger one is running.
//!
//! Volumes go up as multipart uploads streamed from the compressor: the
//! part being filled ([`S3Settings::part_size`]) and up to
//! [`S3Settings::parallel_parts`] parts going up at once, each on its own
//! thread, are in memory, never a volume; an object smaller than a part is
//! one PUT. Every request is retried with exponential backoff on 5xx, 429,
//! timeouts and connection errors ([`S3Settings::retries`]); a part that
//! fails for good aborts its multipart upload once the parts still going
//! up have ended, and the backup fails with nothing published.
//!
//! What "resume" is here: a backup is a new name every run (its creation
//! time) from a live filesystem, so a later run never has the bytes of an
//! interrupted run's parts and never continues its upload; within a run,
//! each part, range read and listing page is retried on its own, and a
//! completion whose answer was lost is recognised by the object's size. An
//! interrupted run's unfinished multipart uploads are aborted by
//! [`Target::prune_partial`] once the grace period has passed.
//!
//! The server is not trusted: listing responses are bounded in size and
//! count, a size it gives is checked against the bound the reader asks for
//! (the reader checks it against the catalog), and a range read must return
//! exactly the bytes asked for.
//!
//! Why `rusty-s3` + `ureq`: lifeboat is synchronous, so a blocking client
//! fits; rusty-s3 only builds and signs requests (SigV4, presigned URLs)
//! and parses the XML answers, without I/O or an async runtime of its own,
//! and ureq is a small, well-kept blocking HTTP/1.1 client with rustls.
//! The AWS SDK and rust-s3 pull in tokio and hyper; rust-s3's blocking mode
//! still runs a runtime inside.

mod client;

use super::{Listed, ObjectRead, ObjectWriter, Objects, State, Target, Upload, CATALOG};
use crate::ArchiveError;
use client::{Client, Entry, Pending, MAX_SMALL_RESPONSE};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The smallest part S3 accepts (but for the last).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// The default part size: one part is in memory per volume being written.
pub const DEFAULT_PART_SIZE: u64 = 8 << 20;
/// The default number of parts of a volume going up at once.
pub const DEFAULT_PARALLEL_PARTS: usize = 4;
/// The most parts of a volume going up at once.
pub const MAX_PARALLEL_PARTS: usize = 64;
/// The largest part size accepted.
pub const MAX_PART_SIZE: u64 = 1 << 30;
/// S3's limit on the parts of one multipart upload.
const MAX_PARTS: u16 = 10_000;
/// The default grace period after which an upload without a catalog is dead.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(6 * 3600);
use super::MAX_CATALOG;

/// How an `s3://` target reaches its store. Empty fields are taken from the
/// environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_PROFILE`,
/// `AWS_SHARED_CREDENTIALS_FILE`) and then from `~/.aws/credentials`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// The store's URL (`https://s3.example.net`, `http://127.0.0.1:3900`); empty: AWS for the region.
    pub endpoint: String,
    /// The region the requests are signed for; empty: `AWS_REGION`, else `us-east-1`.
    pub region: String,
    /// Path-style URLs (`ENDPOINT/BUCKET/KEY`) or virtual-host (`BUCKET.ENDPOINT/KEY`); None: path-style when an endpoint is given.
    pub path_style: Option<bool>,
    /// The access key id; empty: from the environment or the credentials file.
    pub access_key_id: String,
    /// The secret access key; empty: from the environment or the credentials file.
    pub secret_access_key: String,
    /// The AWS credentials file; empty: `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
    pub credentials_file: PathBuf,
    /// The profile in the credentials file; empty: `AWS_PROFILE`, else `default`.
    pub profile: String,
    /// Bytes per multipart part; 0: [`DEFAULT_PART_SIZE`].
    pub part_size: u64,
    /// Parts of one volume going up at once (while the next is filled); 0: [`DEFAULT_PARALLEL_PARTS`].
    /// A volume being written holds up to this many parts and one more in memory.
    pub parallel_parts: usize,
    /// Retries of a failed request; None: 5.
    pub retries: Option<u32>,
    /// An upload without a catalog whose newest object is older than this is interrupted; None: [`DEFAULT_GRACE`].
    pub grace: Option<Duration>,
    /// A connection that sends or receives nothing for this long fails (and is retried); None: 60 s.
    pub timeout: Option<Duration>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("credentials_file", &self.credentials_file)
            .field("profile", &self.profile)
            .field("part_size", &self.part_size)
            .field("parallel_parts", &self.parallel_parts)
            .field("retries", &self.retries)
            .field("grace", &self.grace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The credentials `settings` resolve to for `url` (the settings, then the
/// environment, then the credentials file), as an AWS credentials file with
/// one `[default]` profile: what a rescue medium carries when told to
/// (`rescue.target_credentials`). Errors when there are none.
pub fn credentials_file_text(url: &str, settings: &S3Settings) -> Result<String, ArchiveError> {
    let c = client::resolve_credentials(settings, url)?;
    let mut text = format!("[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n", c.key(), c.secret());
    if let Some(t) = c.token() {
        text.push_str(&format!("aws_session_token = {t}\n"));
    }
    Ok(text)
}

/// Whether `settings` (or the environment, or the credentials file) give credentials for `url`.
pub fn has_credentials(url: &str, settings: &S3Settings) -> bool {
    client::resolve_credentials(settings, url).is_ok()
}

/// The parts of an `s3://bucket/prefix` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl Address {
    /// Parse `s3://bucket[/prefix]`.
    pub fn parse(url: &str) -> Result<Address, ArchiveError> {
        let bad = |why: &str| ArchiveError::Target(url.into(), format!("{why}: give s3://BUCKET[/PREFIX]"));
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.']);
        if !bucket_ok {
            return Err(bad(&format!(
                "bucket {bucket:?} is not a bucket name (3-63 lowercase letters, digits, '-' and '.')"
            )));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|c| c == ".." || c == ".") || prefix.contains("//") {
            return Err(bad("the prefix holds '.', '..' or an empty component"));
        }
        if prefix.bytes().any(|b| b.is_ascii_control()) {
            return Err(bad("the prefix holds control characters"));
        }
        Ok(Address { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }
}

/// A name used as one key component.
fn plain(what: &str, n: &str) -> Result<(), ArchiveError> {
    if n.is_empty() || n.contains('/') || n.starts_with('.') || n.bytes().any(|b| b.is_ascii_control()) {
        return Err(ArchiveError::Target(format!("{what} {n:?}"), "is not a plain name (refused)".into()));
    }
    Ok(())
}

/// A bucket (and prefix) of an S3-compatible store.
#[derive(Debug, Clone)]
pub struct S3Target {
    client: Arc<Client>,
    /// `PREFIX/` or empty.
    root: String,
}

impl S3Target {
    /// The target of an `s3://bucket/prefix` URL, reached with `settings`.
    pub fn open(url: &str, settings: &S3Settings) -> Result<S3Target, ArchiveError> {
        let addr = Address::parse(url)?;
        let client = Arc::new(Client::open(url, settings)?);
        let root = if addr.prefix.is_empty() { String::new() } else { format!("{}/", addr.prefix) };
        Ok(S3Target { client, root })
    }

    fn err(&self, e: std::io::Error) -> ArchiveError {
        ArchiveError::Target(self.client.url.clone(), e.to_string())
    }

    fn host_prefix(&self, host: &str) -> Result<String, ArchiveError> {
        plain("host", host)?;
        Ok(format!("{}{host}/", self.root))
    }

    fn objects(&self, prefix: &str, location: String) -> Arc<dyn Objects> {
        Arc::new(S3Objects { client: Arc::clone(&self.client), prefix: prefix.to_string(), location })
    }

    /// The state of one backup's objects under `prefix` (`HOST/NAME/`).
    fn state_of(&self, prefix: &str, entries: &[&Entry], pending: &[&Pending]) -> State {
        if entries.iter().any(|e| e.key.strip_prefix(prefix) == Some(CATALOG)) {
            return match self.client.get(&format!("{prefix}{CATALOG}"), MAX_CATALOG) {
                Err(e) => State::Damaged(format!("backup.json: {e}")),
                Ok(text) => super::catalog_state(&text),
            };
        }
        // An unfinished multipart upload is a sign of life too (a volume still going up).
        let newest = entries.iter().filter_map(|e| e.modified).chain(pending.iter().filter_map(|p| p.initiated)).max();
        match newest {
            Some(t) if SystemTime::now().duration_since(t).map(|age| age < self.client.grace).unwrap_or(true) => {
                State::Running
            }
            // A time the store did not give: never call it dead.
            None if !entries.is_empty() || !pending.is_empty() => State::Running,
            _ => State::Interrupted,
        }
    }

    /// Delete every object under `prefix`, the catalog first.
    fn remove_all(&self, prefix: &str) -> Result<(), ArchiveError> {
        let (entries, _) = self.client.list(prefix, false).map_err(|e| self.err(e))?;
        let mut keys: Vec<String> = entries.into_iter().map(|e| e.key).collect();
        // The catalog first: an interrupted delete leaves a damaged backup, never a complete-looking part.
        keys.sort_by_key(|k| !k.ends_with(&format!("/{CATALOG}")));
        for k in keys {
            self.client.delete(&k).map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

impl Target for S3Target {
    fn url(&self) -> String {
        self.client.url.clone()
    }

    fn hosts(&self) -> Result<Vec<String>, ArchiveError> {
        let (_, prefixes) = self.client.list(&self.root, true).map_err(|e| self.err(e))?;
        let mut v: Vec<String> = prefixes
            .iter()
            .filter_map(|p| p.strip_prefix(&self.root))
            .map(|p| p.trim_end_matches('/').to_string())
            .filter(|n| plain("host", n).is_ok() && n != "lost+found")
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }

    fn scan(&self, host: &str) -> Result<Vec<Listed>, ArchiveError> {
        let hp = self.host_prefix(host)?;
        let (entries, _) = self.client.list(&hp, false).map_err(|e| self.err(e))?;
        let pending = self.client.list_pending(&hp).map_err(|e| self.err(e))?;
        let name_of = |key: &str| {
            let (name, object) = key[hp.len()..].split_once('/')?;
            (plain("backup", name).is_ok() && !object.is_empty()).then(|| name.to_string())
        };
        type Found<'a> = (Vec<&'a Entry>, Vec<&'a Pending>);
        let mut by_name: BTreeMap<String, Found> = BTreeMap::new();
        for e in &entries {
            if let Some(name) = name_of(&e.key) {
                by_name.entry(name).or_default().0.push(e);
            }
        }
        for p in &pending {
            if let Some(name) = name_of(&p.key) {
                by_name.entry(name).or_default().1.push(p);
            }
        }
        // A backup of the host whose lock is fresh (its heartbeat) is alive, however slow its link.
        let mut alive: Option<bool> = None;
        Ok(by_name
            .into_iter()
            .map(|(name, (objects, pending))| {
                let prefix = format!("{hp}{name}/");
                let mut state = self.state_of(&prefix, &objects, &pending);
                if state == State::Interrupted && *alive.get_or_insert_with(|| super::lock::backup_alive(self, host)) {
                    state = State::Running;
                }
                let bytes = objects.iter().map(|e| e.size).fold(0u64, u64::saturating_add);
                let modified = objects.iter().filter_map(|e| e.modified).max();
                let location = format!("{}/{host}/{name}", self.client.url);
                Listed { name, location, state, bytes, modified }
            })
            .collect())
    }

    fn begin(&self, host: &str, name: &str) -> Result<Arc<dyn Upload>, ArchiveError> {
        plain("backup", name)?;
        let prefix = format!("{}{name}/", self.host_prefix(host)?);
        // A name is used once: an upload never mixes its objects into another's.
        let (there, _) = self.client.list(&prefix, false).map_err(|e| {
            ArchiveError::Target(
                self.client.url.clone(),
                format!("{e} (check the endpoint, the bucket and that the key may list and write it)"),
            )
        })?;
        if !there.is_empty() {
            return Err(ArchiveError::Target(
                self.client.url.clone(),
                format!(
                    "{}/{host}/{name} already holds {} object(s): a backup name is used once",
                    self.client.url,
                    there.len()
                ),
            ));
        }
        Ok(Arc::new(S3Upload {
            client: Arc::clone(&self.client),
            location: format!("{}/{host}/{name}", self.client.url),
            prefix,
            created: Mutex::new(BTreeSet::new()),
        }))
    }

    fn backup(&self, host: &str, name: &str) -> Result<Arc<dyn Objects>, ArchiveError> {
        plain("backup", name)?;
        Ok(self.objects(&format!("{}{name}/", self.host_prefix(host)?), format!("{}/{host}/{name}", self.client.url)))
    }

    fn itself(&self) -> Result<Option<Arc<dyn Objects>>, ArchiveError> {
        if self.root.is_empty() {
            return Ok(None);
        }
        match self.client.head(&format!("{}{CATALOG}", self.root)).map_err(|e| self.err(e))? {
            Some(_) => Ok(Some(self.objects(&self.root, self.client.url.clone()))),
            None => Ok(None),
        }
    }

    fn remove_interrupted(&self, host: &str, l: &Listed) -> Result<bool, ArchiveError> {
        plain("backup", &l.name)?;
        let prefix = format!("{}{}/", self.host_prefix(host)?, l.name);
        // Look again: a run that wrote meanwhile is alive, a catalog makes it a backup.
        let (entries, _) = self.client.list(&prefix, false).map_err(|e| self.err(e))?;
        let pending = self.client.list_pending(&prefix).map_err(|e| self.err(e))?;
        let (refs, prefs): (Vec<&Entry>, Vec<&Pending>) = (entries.iter().collect(), pending.iter().collect());
        if (refs.is_empty() && prefs.is_empty())
            || self.state_of(&prefix, &refs, &prefs) != State::Interrupted
            || super::lock::backup_alive(self, host)
        {
            return Ok(false);
        }
        // The parts of a dead run's unfinished volume, which no listing of objects shows.
        for p in &pending {
            self.client.abort_multipart(&p.key, &p.upload_id);
        }
        for e in entries {
            self.client.delete(&e.key).map_err(|e| self.err(e))?;
        }
        Ok(true)
    }

    fn create_marker(&self, key: &str, data: &[u8]) -> Result<bool, ArchiveError> {
        if !super::lock::marker_key(key) {
            return Err(super::lock::bad_key(&self.client.url, key));
        }
        let full = format!("{}{key}", self.root);
        // As the catalog: HEAD first (Garage 2.5.0 ignores If-None-Match), then a create-only PUT.
        if self.client.head(&full).map_err(|e| self.err(e))?.is_some() {
            return Ok(false);
        }
        match self.client.put(&full, data, true) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    fn read_marker(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        if !super::lock::marker_key(key) {
            return Err(super::lock::bad_key(&self.client.url, key));
        }
        match self.client.get(&format!("{}{key}", self.root), MAX_SMALL_RESPONSE) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    fn remove_marker(&self, key: &str) -> Result<(), ArchiveError> {
        if !super::lock::marker_key(key) {
            return Err(super::lock::bad_key(&self.client.url, key));
        }
        self.client.delete(&format!("{}{key}", self.root)).map_err(|e| self.err(e))
    }

    /// A plain PUT over the marker (the lock checked it is still ours first).
    fn refresh_marker(&self, key: &str, data: &[u8]) -> Result<(), ArchiveError> {
        if !super::lock::marker_key(key) {
            return Err(super::lock::bad_key(&self.client.url, key));
        }
        self.client.put(&format!("{}{key}", self.root), data, false).map_err(|e| self.err(e))
    }

    fn delete(&self, host: &str, name: &str) -> Result<(), ArchiveError> {
        plain("backup", name)?;
        self.remove_all(&format!("{}{name}/", self.host_prefix(host)?))
    }
}

/// A backup being written under `PREFIX/HOST/NAME/`.
#[derive(Debug)]
struct S3Upload {
    client: Arc<Client>,
    location: String,
    prefix: String,
    /// The objects this upload created (each once).
    created: Mutex<BTreeSet<String>>,
}

impl Upload for S3Upload {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self, name: &str) -> std::io::Result<Box<dyn ObjectWriter>> {
        plain("object", name).map_err(std::io::Error::other)?;
        if name == CATALOG {
            return Err(std::io::Error::other("the catalog is written by the commit only"));
        }
        let mut created = self.created.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        if !created.insert(name.to_string()) {
            return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, format!("{name} was already written")));
        }
        Ok(Box::new(S3Writer {
            client: Arc::clone(&self.client),
            key: format!("{}{name}", self.prefix),
            buf: Vec::new(),
            multipart: None,
            sent: 0,
            failed: false,
        }))
    }

    fn commit(&self, catalog: &[u8]) -> Result<Arc<dyn Objects>, ArchiveError> {
        let key = format!("{}{CATALOG}", self.prefix);
        let err = |e: std::io::Error| ArchiveError::Target(self.location.clone(), e.to_string());
        let exists = || {
            ArchiveError::Target(self.location.clone(), "a backup of this name was committed already (refused)".into())
        };
        // Stores that ignore If-None-Match on PUT (Garage 2.5.0) are refused a second commit by this check.
        if self.client.head(&key).map_err(err)?.is_some() {
            return Err(exists());
        }
        match self.client.put(&key, catalog, true) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // A retried PUT whose first try got through (its answer lost) finds its own catalog.
                let there = self.client.get(&key, catalog.len() as u64 + 1).map_err(err)?;
                if there != catalog {
                    return Err(exists());
                }
            }
            Err(e) => return Err(err(e)),
        }
        Ok(Arc::new(S3Objects {
            client: Arc::clone(&self.client),
            prefix: self.prefix.clone(),
            location: self.location.clone(),
        }))
    }

    fn abort(&self) {
        if let Ok(pending) = self.client.list_pending(&self.prefix) {
            for p in pending {
                self.client.abort_multipart(&p.key, &p.upload_id);
            }
        }
        let Ok((entries, _)) = self.client.list(&self.prefix, false) else { return };
        for e in entries {
            let _ = self.client.delete(&e.key);
        }
    }
}

/// A part being uploaded on its own thread: its number, and the thread
/// (which hands back the part's ETag and its buffer, for the next part).
type InFlight = (u16, std::thread::JoinHandle<std::io::Result<(String, Vec<u8>)>>);

/// A multipart upload under way: its id, the ETags of the parts done (in
/// order), and the parts still going up (oldest first).
struct Multipart {
    id: String,
    etags: Vec<String>,
    in_flight: VecDeque<InFlight>,
}

/// An object being written: the part being filled, and up to
/// [`S3Settings::parallel_parts`] parts going up at once on their own
/// threads while the compressor fills the next.
struct S3Writer {
    client: Arc<Client>,
    key: String,
    buf: Vec<u8>,
    /// The multipart upload, once the object outgrew a part.
    multipart: Option<Multipart>,
    /// Bytes of the parts handed to uploads.
    sent: u64,
    failed: bool,
}

impl S3Writer {
    /// Wait for the oldest part in flight; its buffer comes back for reuse.
    fn settle_oldest(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let Some(m) = &mut self.multipart else { return Ok(None) };
        let Some((n, thread)) = m.in_flight.pop_front() else { return Ok(None) };
        let (etag, buf) = thread
            .join()
            .map_err(|_| std::io::Error::other(format!("{}: the upload of part {n} failed", self.key)))??;
        m.etags.push(etag);
        Ok(Some(buf))
    }

    /// Hand the buffer to a new upload of the next part (starting the
    /// multipart upload first), after waiting for the oldest part when
    /// [`S3Settings::parallel_parts`] are going up already.
    fn send_part(&mut self) -> std::io::Result<()> {
        if self.multipart.is_none() {
            let id = self.client.start_multipart(&self.key)?;
            self.multipart = Some(Multipart { id, etags: Vec::new(), in_flight: VecDeque::new() });
        }
        let mut spare = None;
        while self.multipart.as_ref().is_some_and(|m| m.in_flight.len() >= self.client.parallel_parts) {
            spare = self.settle_oldest()?;
        }
        let Some(m) = &mut self.multipart else { return Err(std::io::Error::other("no multipart upload")) };
        let n =
            u16::try_from(m.etags.len() + m.in_flight.len() + 1).ok().filter(|n| *n <= MAX_PARTS).ok_or_else(|| {
                std::io::Error::other(format!("{}: more than {MAX_PARTS} parts: raise part_size", self.key))
            })?;
        let next = spare.map(|mut b| {
            b.clear();
            b
        });
        let data = std::mem::replace(&mut self.buf, next.unwrap_or_default());
        self.sent += data.len() as u64;
        let (client, key, id) = (Arc::clone(&self.client), self.key.clone(), m.id.clone());
        let thread = std::thread::Builder::new()
            .name(format!("s3-part-{n}"))
            .spawn(move || client.upload_part(&key, &id, n, &data).map(|etag| (etag, data)))?;
        m.in_flight.push_back((n, thread));
        Ok(())
    }

    /// Fail for good: wait for the parts still going up (so none lands
    /// after the abort), then abort the multipart upload so no parts are
    /// left behind.
    fn fail(&mut self, e: std::io::Error) -> std::io::Error {
        self.failed = true;
        if let Some(m) = self.multipart.take() {
            for (_, thread) in m.in_flight {
                let _ = thread.join();
            }
            self.client.abort_multipart(&self.key, &m.id);
        }
        e
    }
}

impl Write for S3Writer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            return Err(std::io::Error::other(format!("{}: an earlier part failed", self.key)));
        }
        let part = self.client.part_size as usize;
        let room = part - self.buf.len();
        let n = data.len().min(room);
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(part.min(data.len().max(1 << 20)));
        }
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= part {
            if let Err(e) = self.send_part() {
                return Err(self.fail(e));
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for S3Writer {
    fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        if self.failed {
            return Err(std::io::Error::other(format!("{}: an earlier part failed", self.key)));
        }
        if self.multipart.is_none() {
            let r = self.client.put(&self.key, &self.buf, false);
            self.failed = r.is_err();
            return r;
        }
        if !self.buf.is_empty() {
            if let Err(e) = self.send_part() {
                return Err(self.fail(e));
            }
        }
        while self.multipart.as_ref().is_some_and(|m| !m.in_flight.is_empty()) {
            if let Err(e) = self.settle_oldest() {
                return Err(self.fail(e));
            }
        }
        let Some(m) = self.multipart.take() else { return Err(std::io::Error::other("no multipart upload")) };
        match self.client.complete_multipart(&self.key, &m.id, &m.etags) {
            Ok(()) => Ok(()),
            // A retried completion whose first try got through (its answer lost): the upload is gone, the object there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.client.head(&self.key)? == Some(self.sent) => {
                Ok(())
            }
            Err(e) => {
                self.multipart = Some(m);
                Err(self.fail(e))
            }
        }
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // Dropped unfinished: leave no parts behind.
        if self.multipart.is_some() {
            self.fail(std::io::Error::other("dropped"));
        }
    }
}

/// The objects of one backup on the store.
#[derive(Debug)]
struct S3Objects {
    client: Arc<Client>,
    /// `PREFIX/HOST/NAME/`.
    prefix: String,
    /// `s3://bucket/prefix/host/name`, for messages.
    location: String,
}

/// How much a small read fetches at once: readers that hash or parse a
/// volume in small pieces (8 KiB) cost one request per block, not per piece.
const READ_BLOCK: u64 = 2 << 20;
/// Reads of at least this many bytes (a frame) are one ranged GET of their
/// own, in parallel with the others; smaller ones go through the block.
const DIRECT_READ: usize = 256 << 10;

/// A volume on the store, read by range.
#[derive(Debug)]
struct S3Object {
    client: Arc<Client>,
    key: String,
    len: u64,
    /// The block read last: its offset and bytes.
    block: Mutex<Option<(u64, Vec<u8>)>>,
}

impl ObjectRead for S3Object {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if buf.len() >= DIRECT_READ {
            return self.client.get_range(&self.key, self.len, offset, buf);
        }
        let mut block = self.block.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let end = offset.checked_add(buf.len() as u64).filter(|e| *e <= self.len).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{}: read past its end", self.key))
        })?;
        let cached = |b: &Option<(u64, Vec<u8>)>| {
            b.as_ref().is_some_and(|(at, data)| *at <= offset && end <= at + data.len() as u64)
        };
        if !cached(&block) {
            let size = READ_BLOCK.min(self.len - offset) as usize;
            let mut data = block.take().map(|(_, d)| d).unwrap_or_default();
            data.resize(size, 0);
            self.client.get_range(&self.key, self.len, offset, &mut data)?;
            *block = Some((offset, data));
        }
        let Some((at, data)) = block.as_ref() else { return Err(std::io::Error::other("no block")) };
        let from = (offset - at) as usize;
        buf.copy_from_slice(&data[from..from + buf.len()]);
        Ok(())
    }
    fn read_ahead(&self) -> usize {
        super::REMOTE_READ_AHEAD
    }
}

impl Objects for S3Objects {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn open_volume(&self, name: &str, max: u64) -> std::io::Result<Arc<dyn ObjectRead>> {
        plain("object", name).map_err(std::io::Error::other)?;
        let key = format!("{}{name}", self.prefix);
        let len = self.client.head(&key)?.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{}: no such object", self.client.key_url(&key)))
        })?;
        if len > max {
            return Err(std::io::Error::other(format!(
                "{}: is {len} bytes, more than the {max} it may have",
                self.client.key_url(&key)
            )));
        }
        Ok(Arc::new(S3Object { client: Arc::clone(&self.client), key, len, block: Mutex::new(None) }))
    }

    fn read(&self, name: &str, max: u64) -> std::io::Result<Vec<u8>> {
        plain("object", name).map_err(std::io::Error::other)?;
        self.client.get(&format!("{}{name}", self.prefix), max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_bucket_and_prefix_and_bad_ones_are_refused() {
        let a = Address::parse("s3://backups/fleet/eu/").expect("parse");
        assert_eq!(a, Address { bucket: "backups".into(), prefix: "fleet/eu".into() });
        assert_eq!(Address::parse("s3://backups").expect("bare").prefix, "");
        for bad in ["s3://", "s3://Up", "s3://ab", "s3://b_x/p", "s3://bucket/../x", "s3://bucket/a//b", "file:///x"] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    fn upload(c: Client) -> S3Upload {
        S3Upload {
            client: Arc::new(c),
            location: "s3://bucket/h/b".into(),
            prefix: "h/b/".into(),
            created: Mutex::new(BTreeSet::new()),
        }
    }

    #[test]
    fn a_commit_whose_answer_was_lost_finds_its_own_catalog_and_another_is_refused() {
        use client::tests::{answer, fake};
        let ours = "{\"catalog\":1}";
        let (c, _) = fake(vec![
            answer("404 Not Found", &[], ""),
            answer("412 Precondition Failed", &[], "<Error><Code>PreconditionFailed</Code></Error>"),
            answer("200 OK", &[], ours),
        ]);
        upload(c).commit(ours.as_bytes()).expect("our own catalog");
        let (c, _) = fake(vec![
            answer("404 Not Found", &[], ""),
            answer("412 Precondition Failed", &[], "<Error><Code>PreconditionFailed</Code></Error>"),
            answer("200 OK", &[], "{\"catalog\":2}"),
        ]);
        let e = upload(c).commit(ours.as_bytes()).expect_err("another run's").to_string();
        assert!(e.contains("committed already"), "{e}");
    }

    #[test]
    fn a_completion_whose_answer_was_lost_is_taken_when_the_object_is_whole() {
        use client::tests::{answer, fake};
        let start = "<?xml version=\"1.0\"?><InitiateMultipartUploadResult><Bucket>bucket</Bucket>\
                     <Key>h/b/vol</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>";
        let part = MIN_PART_SIZE as usize;
        let script = |size: usize| {
            vec![
                answer("200 OK", &[], start),
                answer("200 OK", &["etag: \"e1\""], ""),
                answer("404 Not Found", &[], "<Error><Code>NoSuchUpload</Code></Error>"),
                // HEAD: the object's size, no body.
                format!("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {size}\r\n\r\n"),
            ]
        };
        for (size, ok) in [(part, true), (part - 1, false)] {
            let (mut c, _) = fake(script(size));
            c.part_size = MIN_PART_SIZE;
            let up = upload(c);
            let mut w = up.create("vol").expect("create");
            w.write_all(&vec![7u8; part]).expect("one part");
            assert_eq!(w.finish().is_ok(), ok, "size {size}");
        }
    }

    /// A fake store that answers every request by what it is, on its own
    /// thread per connection (parts arrive in parallel): `answer(method,
    /// path and query, attempt of this request)` gives the response. Returns
    /// the client and the log of requests (`"PUT part 2"`, `"end part 2"`,
    /// `"complete <body>"`, `"abort"`) with the most parts seen at once.
    #[allow(clippy::type_complexity)]
    fn store(
        answer: impl Fn(&str, &str, usize) -> String + Send + Sync + 'static,
    ) -> (Client, Arc<Mutex<Vec<String>>>, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::Read;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (most, now) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let attempts: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let answer = Arc::new(answer);
        let (log2, most2) = (Arc::clone(&log), Arc::clone(&most));
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { return };
                let (log, most, now, attempts, answer) = (
                    Arc::clone(&log2),
                    Arc::clone(&most2),
                    Arc::clone(&now),
                    Arc::clone(&attempts),
                    Arc::clone(&answer),
                );
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).map(|n| n == 1).unwrap_or(false) {
                        head.push(byte[0]);
                    }
                    let text = String::from_utf8_lossy(&head).to_string();
                    let mut words = text.split_whitespace();
                    let (method, target) = (words.next().unwrap_or("").to_string(), words.next().unwrap_or(""));
                    let target = target.to_string();
                    let len = text
                        .to_ascii_lowercase()
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().to_string()))
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                    let mut body = Vec::new();
                    let _ = (&mut conn).take(len).read_to_end(&mut body);
                    let part = target.split(['?', '&']).find_map(|q| q.strip_prefix("partNumber=")).map(str::to_string);
                    let label = match (&*method, &part) {
                        ("PUT", Some(n)) => format!("part {n}"),
                        ("POST", _) if target.contains("uploadId=") => {
                            format!("complete {}", String::from_utf8_lossy(&body))
                        }
                        ("POST", _) => "start".into(),
                        ("DELETE", _) => "abort".into(),
                        _ => format!("{method} {target}"),
                    };
                    let attempt = {
                        let mut a = attempts.lock().expect("attempts");
                        let n = a.entry(label.clone()).or_default();
                        *n += 1;
                        *n
                    };
                    log.lock().expect("log").push(label.clone());
                    let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(at_once, Ordering::SeqCst);
                    let reply = answer(&method, &target, attempt);
                    now.fetch_sub(1, Ordering::SeqCst);
                    if label.starts_with("part") {
                        log.lock().expect("log").push(format!("end {label}"));
                    }
                    let _ = conn.write_all(reply.as_bytes());
                });
            }
        });
        let s = S3Settings {
            endpoint: format!("http://127.0.0.1:{port}"),
            region: "r".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            retries: Some(2),
            part_size: MIN_PART_SIZE,
            parallel_parts: 3,
            ..S3Settings::default()
        };
        (Client::open("s3://bucket", &s).expect("client"), log, most)
    }

    /// The store's answer to a multipart upload whose part `bad` fails on the attempts `fails` says.
    fn multipart_answer(bad: &'static str, fails: fn(usize) -> bool) -> impl Fn(&str, &str, usize) -> String {
        use client::tests::answer;
        move |method: &str, target: &str, attempt: usize| {
            let part = target.split(['?', '&']).find_map(|q| q.strip_prefix("partNumber="));
            match (method, part) {
                ("POST", _) if target.contains("uploads") => answer(
                    "200 OK",
                    &[],
                    "<?xml version=\"1.0\"?><InitiateMultipartUploadResult><Bucket>bucket</Bucket>\
                     <Key>h/b/vol</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>",
                ),
                ("PUT", Some(n)) => {
                    // Slow enough that parts overlap.
                    std::thread::sleep(Duration::from_millis(150));
                    if n == bad && fails(attempt) {
                        answer("503 Slow Down", &[], "<Error><Code>SlowDown</Code></Error>")
                    } else {
                        answer("200 OK", &[&format!("etag: \"e{n}\"")], "")
                    }
                }
                ("POST", _) => answer("200 OK", &[], "<CompleteMultipartUploadResult></CompleteMultipartUploadResult>"),
                ("DELETE", _) => answer("204 No Content", &[], ""),
                _ => answer("404 Not Found", &[], ""),
            }
        }
    }

    #[test]
    fn parts_go_up_in_parallel_and_a_failed_part_is_retried_in_its_place() {
        let (c, log, most) = store(multipart_answer("2", |attempt| attempt == 1));
        let up = upload(c);
        let mut w = up.create("vol").expect("create");
        let part = MIN_PART_SIZE as usize;
        w.write_all(&vec![1u8; 4 * part + 1000]).expect("four parts and a tail");
        w.finish().expect("the retried part completes the volume");
        let log = log.lock().expect("log").clone();
        assert_eq!(log.iter().filter(|l| *l == "part 2").count(), 2, "part 2 was retried: {log:?}");
        let complete = log.iter().find(|l| l.starts_with("complete")).expect("completed");
        let etags: Vec<&str> = complete.match_indices("&quot;e").map(|(i, _)| &complete[i + 6..i + 8]).collect();
        let etags = if etags.is_empty() {
            complete.match_indices("\"e").map(|(i, _)| &complete[i + 1..i + 3]).collect()
        } else {
            etags
        };
        assert_eq!(etags, ["e1", "e2", "e3", "e4", "e5"], "the parts in order: {complete}");
        let at_once = most.load(std::sync::atomic::Ordering::SeqCst);
        assert!((2..=3).contains(&at_once), "{at_once} parts at once (parallel_parts = 3)");
        assert!(!log.iter().any(|l| l == "abort"), "{log:?}");
    }

    #[test]
    fn a_part_that_fails_every_retry_fails_the_volume_and_aborts_after_the_others_end() {
        let (c, log, _) = store(multipart_answer("2", |_| true));
        let up = upload(c);
        let mut w = up.create("vol").expect("create");
        let part = MIN_PART_SIZE as usize;
        let wrote = w.write_all(&vec![1u8; 4 * part + 1000]);
        let e = match wrote {
            Err(e) => e,
            Ok(()) => w.finish().expect_err("a part that never goes up"),
        };
        assert!(e.to_string().contains("part 2") && e.to_string().contains("gave up"), "{e}");
        let log = log.lock().expect("log").clone();
        assert_eq!(log.iter().filter(|l| *l == "part 2").count(), 3, "tried 1 + 2 retries: {log:?}");
        assert!(!log.iter().any(|l| l.starts_with("complete")), "never completed: {log:?}");
        let abort = log.iter().position(|l| l == "abort").expect("aborted");
        let last_end = log.iter().rposition(|l| l.starts_with("end part")).expect("parts");
        assert!(abort > last_end, "the abort comes after every part in flight ended: {log:?}");
    }
}
