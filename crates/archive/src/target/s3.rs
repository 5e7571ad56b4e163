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
//! ([`S3Settings::grace`]) counts as interrupted and
//! [`Target::prune_partial`] removes it; a younger one is running.
//!
//! Volumes go up as multipart uploads streamed from the compressor: one part
//! ([`S3Settings::part_size`]) is buffered in memory at a time, never a
//! volume; an object smaller than a part is one PUT. Every request is
//! retried with exponential backoff on 5xx, 429, timeouts and connection
//! errors ([`S3Settings::retries`]); a part that fails for good aborts its
//! multipart upload.
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

use super::{Listed, ObjectRead, ObjectWriter, Objects, State, Target, Upload, CATALOG};
use crate::ArchiveError;
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2, ListObjectsV2Response, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The smallest part S3 accepts (but for the last).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// The default part size: one part is in memory per volume being written.
pub const DEFAULT_PART_SIZE: u64 = 8 << 20;
/// The largest part size accepted.
pub const MAX_PART_SIZE: u64 = 1 << 30;
/// S3's limit on the parts of one multipart upload.
const MAX_PARTS: u16 = 10_000;
/// The default grace period after which an upload without a catalog is dead.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(6 * 3600);
/// The largest catalog read while listing.
const MAX_CATALOG: u64 = 4 << 30;
/// The largest listing page read (1000 keys of at most 1 KiB each, and XML around them).
const MAX_LIST_PAGE: u64 = 8 << 20;
/// The most pages one listing reads (a million keys).
const MAX_LIST_PAGES: usize = 1000;
/// The largest error or control response read.
const MAX_SMALL_RESPONSE: u64 = 1 << 20;
/// How long a presigned request stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(3600);

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
            .field("retries", &self.retries)
            .field("grace", &self.grace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
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

/// What a failed request was: worth another try, or not.
enum Failure {
    Transient(String),
    Permanent(std::io::Error),
}

/// The key and secret (and session token) requests are signed with.
fn resolve_credentials(s: &S3Settings, url: &str) -> Result<Credentials, ArchiveError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if !s.access_key_id.is_empty() || !s.secret_access_key.is_empty() {
        if s.access_key_id.is_empty() || s.secret_access_key.is_empty() {
            return Err(ArchiveError::Target(
                url.into(),
                "[backup.s3] gives only one of access_key_id and secret_access_key: give both".into(),
            ));
        }
        return Ok(Credentials::new(s.access_key_id.clone(), s.secret_access_key.clone()));
    }
    if let (Some(k), Some(sec)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(match env("AWS_SESSION_TOKEN") {
            Some(t) => Credentials::new_with_token(k, sec, t),
            None => Credentials::new(k, sec),
        });
    }
    let file = if !s.credentials_file.as_os_str().is_empty() {
        s.credentials_file.clone()
    } else if let Some(f) = env("AWS_SHARED_CREDENTIALS_FILE") {
        PathBuf::from(f)
    } else if let Some(h) = env("HOME") {
        Path::new(&h).join(".aws/credentials")
    } else {
        PathBuf::from("/root/.aws/credentials")
    };
    let profile =
        if s.profile.is_empty() { env("AWS_PROFILE").unwrap_or_else(|| "default".into()) } else { s.profile.clone() };
    let none = || {
        ArchiveError::Target(
            url.into(),
            format!(
                "no S3 credentials: set access_key_id and secret_access_key in [backup.s3], or AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or profile [{profile}] in {}",
                file.display()
            ),
        )
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(none()),
        Err(e) => return Err(ArchiveError::Target(url.into(), format!("{}: {e}", file.display()))),
    };
    let p = profile_of(&text, &profile);
    match (p.get("aws_access_key_id"), p.get("aws_secret_access_key")) {
        (Some(k), Some(sec)) => Ok(match p.get("aws_session_token") {
            Some(t) => Credentials::new_with_token(k.clone(), sec.clone(), t.clone()),
            None => Credentials::new(k.clone(), sec.clone()),
        }),
        _ => Err(none()),
    }
}

/// The keys of one `[profile]` section of an AWS credentials file.
fn profile_of(text: &str, profile: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            inside = section == profile || section.strip_prefix("profile ").map(str::trim) == Some(profile);
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
    }
    out
}

/// The store's connection: bucket, credentials, HTTP agent and retry policy.
struct Client {
    url: String,
    bucket: Bucket,
    credentials: Credentials,
    agent: ureq::Agent,
    retries: u32,
    part_size: u64,
    grace: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("url", &self.url).field("bucket", &self.bucket.name()).finish_non_exhaustive()
    }
}

type Resp = ureq::http::Response<ureq::Body>;

/// Whether a transport error is worth another try (everything but a malformed request).
fn transport_failure(what: &str, e: ureq::Error) -> Failure {
    match e {
        ureq::Error::BadUri(_) | ureq::Error::InvalidProxyUrl | ureq::Error::RequireHttpsOnly(_) => {
            Failure::Permanent(std::io::Error::other(format!("{what}: {e}")))
        }
        e => Failure::Transient(format!("{what}: {e}")),
    }
}

/// A response's status as a failure, with the store's error code and message.
fn status_failure(what: &str, mut r: Resp) -> Failure {
    let status = r.status().as_u16();
    let body = r.body_mut().with_config().limit(MAX_SMALL_RESPONSE).read_to_string().unwrap_or_default();
    let tag = |t: &str| {
        body.split_once(&format!("<{t}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{t}>")))
            .map(|(v, _)| v.to_string())
    };
    let detail = match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => String::new(),
    };
    let msg = format!("{what}: the store answered {status} {detail}").trim_end().to_string();
    if status >= 500 || status == 429 || status == 408 {
        Failure::Transient(msg)
    } else {
        let kind = match status {
            404 => std::io::ErrorKind::NotFound,
            403 | 401 => std::io::ErrorKind::PermissionDenied,
            409 | 412 => std::io::ErrorKind::AlreadyExists,
            _ => std::io::ErrorKind::Other,
        };
        Failure::Permanent(std::io::Error::new(kind, msg))
    }
}

/// A short pseudo-random jitter (no randomness crate: the clock's nanoseconds).
fn jitter(max_ms: u64) -> Duration {
    let n = SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    Duration::from_millis(u64::from(n) % max_ms.max(1))
}

impl Client {
    fn open(url: &str, settings: &S3Settings) -> Result<Client, ArchiveError> {
        let addr = Address::parse(url)?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let region = if settings.region.is_empty() {
            env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into())
        } else {
            settings.region.clone()
        };
        let given =
            if settings.endpoint.is_empty() { env("AWS_ENDPOINT_URL") } else { Some(settings.endpoint.clone()) };
        let endpoint = given.clone().unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let path_style = settings.path_style.unwrap_or(given.is_some());
        let fail = |why: String| ArchiveError::Target(url.into(), why);
        let endpoint_url = url::Url::parse(&endpoint).map_err(|e| {
            fail(format!("the S3 endpoint {endpoint:?} is not a URL ({e}): give http(s)://HOST[:PORT]"))
        })?;
        let style = if path_style { UrlStyle::Path } else { UrlStyle::VirtualHost };
        let bucket = Bucket::new(endpoint_url, style, addr.bucket.clone(), region)
            .map_err(|e| fail(format!("the S3 endpoint {endpoint:?}: {e}: give http(s)://HOST[:PORT]")))?;
        let credentials = resolve_credentials(settings, url)?;
        let part_size = match settings.part_size {
            0 => DEFAULT_PART_SIZE,
            p if (MIN_PART_SIZE..=MAX_PART_SIZE).contains(&p) => p,
            p => {
                return Err(fail(format!(
                    "part size {p} is outside {MIN_PART_SIZE}..={MAX_PART_SIZE} bytes (S3's smallest part is 5 MiB)"
                )))
            }
        };
        let timeout = settings.timeout.unwrap_or(Duration::from_secs(60));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .no_delay(true)
            .timeout_connect(Some(Duration::from_secs(15).min(timeout)))
            .timeout_per_read(Some(timeout))
            .timeout_per_write(Some(timeout))
            .timeout_recv_response(Some(timeout.max(Duration::from_secs(120))))
            .user_agent(concat!("lifeboat/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Client {
            url: url.trim_end_matches('/').to_string(),
            bucket,
            credentials,
            agent,
            retries: settings.retries.unwrap_or(5).min(20),
            part_size,
            grace: settings.grace.unwrap_or(DEFAULT_GRACE),
        })
    }

    /// Run one request with retries and exponential backoff on transient failures.
    fn retry<T>(&self, _what: &str, mut attempt: impl FnMut() -> Result<T, Failure>) -> std::io::Result<T> {
        let mut delay = Duration::from_millis(200);
        let mut tries = 0;
        loop {
            match attempt() {
                Ok(v) => return Ok(v),
                Err(Failure::Permanent(e)) => return Err(e),
                Err(Failure::Transient(why)) if tries >= self.retries => {
                    return Err(std::io::Error::other(format!("{why} (gave up after {} attempts)", tries + 1)))
                }
                Err(Failure::Transient(why)) => {
                    log::warn!("{why}; retrying in {} ms", delay.as_millis());
                    std::thread::sleep(delay + jitter(delay.as_millis() as u64 / 4));
                    delay = (delay * 2).min(Duration::from_secs(10));
                    tries += 1;
                }
            }
        }
    }

    /// A request's response when its status is a success (else a failure).
    fn expect_ok(what: &str, r: Result<Resp, ureq::Error>) -> Result<Resp, Failure> {
        let r = r.map_err(|e| transport_failure(what, e))?;
        if r.status().is_success() {
            Ok(r)
        } else {
            Err(status_failure(what, r))
        }
    }

    fn key_url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket.name())
    }

    /// The size of an object, or None when there is none.
    fn head(&self, key: &str) -> std::io::Result<Option<u64>> {
        let what = format!("HEAD {}", self.key_url(key));
        self.retry(&what, || {
            let u = self.bucket.head_object(Some(&self.credentials), key).sign(SIGNED_FOR);
            let r = self.agent.head(u.as_str()).call().map_err(|e| transport_failure(&what, e))?;
            match r.status().as_u16() {
                404 => Ok(None),
                s if (200..300).contains(&s) => {
                    let len = r
                        .headers()
                        .get("content-length")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .ok_or_else(|| {
                            Failure::Permanent(std::io::Error::other(format!("{what}: the store gives no size")))
                        })?;
                    Ok(Some(len))
                }
                _ => Err(status_failure(&what, r)),
            }
        })
    }

    /// Write a small object with one PUT (`create_only`: `If-None-Match: *`).
    fn put(&self, key: &str, data: &[u8], create_only: bool) -> std::io::Result<()> {
        let what = format!("PUT {}", self.key_url(key));
        self.retry(&what, || {
            let u = self.bucket.put_object(Some(&self.credentials), key).sign(SIGNED_FOR);
            let mut req = self.agent.put(u.as_str());
            if create_only {
                req = req.header("if-none-match", "*");
            }
            Self::expect_ok(&what, req.send(data)).map(drop)
        })
    }

    fn delete(&self, key: &str) -> std::io::Result<()> {
        let what = format!("DELETE {}", self.key_url(key));
        self.retry(&what, || {
            let u = self.bucket.delete_object(Some(&self.credentials), key).sign(SIGNED_FOR);
            let r = self.agent.delete(u.as_str()).call().map_err(|e| transport_failure(&what, e))?;
            match r.status().as_u16() {
                404 => Ok(()),
                s if (200..300).contains(&s) => Ok(()),
                _ => Err(status_failure(&what, r)),
            }
        })
    }

    /// Read a whole object of at most `max` bytes.
    fn get(&self, key: &str, max: u64) -> std::io::Result<Vec<u8>> {
        let what = format!("GET {}", self.key_url(key));
        self.retry(&what, || {
            let u = self.bucket.get_object(Some(&self.credentials), key).sign(SIGNED_FOR);
            let mut r = Self::expect_ok(&what, self.agent.get(u.as_str()).call())?;
            r.body_mut().with_config().limit(max).read_to_vec().map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => Failure::Permanent(std::io::Error::other(format!(
                    "{what}: is more than the {max} bytes it may have"
                ))),
                e => transport_failure(&what, e),
            })
        })
    }

    /// Fill `buf` from byte `offset` of an object of `len` bytes (a `Range:` GET).
    fn get_range(&self, key: &str, len: u64, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset.checked_add(buf.len() as u64).filter(|e| *e <= len).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{}: read past its end", self.key_url(key)))
        })?;
        let what = format!("GET {} bytes {offset}-{}", self.key_url(key), end - 1);
        self.retry(&what, || {
            let u = self.bucket.get_object(Some(&self.credentials), key).sign(SIGNED_FOR);
            let r = self
                .agent
                .get(u.as_str())
                .header("range", format!("bytes={offset}-{}", end - 1))
                .call()
                .map_err(|e| transport_failure(&what, e))?;
            let status = r.status().as_u16();
            let whole = offset == 0 && end == len;
            if status != 206 && !(status == 200 && whole) {
                return Err(if r.status().is_success() {
                    Failure::Permanent(std::io::Error::other(format!(
                        "{what}: the store answered {status} instead of the range (refused)"
                    )))
                } else {
                    status_failure(&what, r)
                });
            }
            if status == 206 {
                let start = r
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split_once('-'))
                    .and_then(|(s, _)| s.trim().parse::<u64>().ok());
                if start != Some(offset) {
                    return Err(Failure::Permanent(std::io::Error::other(format!(
                        "{what}: the store sent another range (refused)"
                    ))));
                }
            }
            let mut body = r.into_body().into_with_config().limit(buf.len() as u64 + 1).reader();
            body.read_exact(buf).map_err(|e| Failure::Transient(format!("{what}: {e}")))?;
            let mut extra = [0u8; 1];
            match body.read(&mut extra) {
                Ok(0) => Ok(()),
                Ok(_) => Err(Failure::Permanent(std::io::Error::other(format!(
                    "{what}: the store sent more than the range (refused)"
                )))),
                Err(e) => Err(Failure::Transient(format!("{what}: {e}"))),
            }
        })
    }

    /// Every key under `prefix` with its size and time, or (with `delimiter`) the sub-prefixes too.
    fn list(&self, prefix: &str, delimiter: bool) -> std::io::Result<(Vec<Entry>, Vec<String>)> {
        let what = format!("LIST {}", self.key_url(prefix));
        let mut token: Option<String> = None;
        let mut seen_tokens = BTreeSet::new();
        let (mut entries, mut prefixes) = (Vec::new(), Vec::new());
        for _ in 0..MAX_LIST_PAGES {
            let page: ListObjectsV2Response = self.retry(&what, || {
                let mut l: ListObjectsV2 = self.bucket.list_objects_v2(Some(&self.credentials));
                l.with_prefix(prefix);
                if delimiter {
                    l.with_delimiter("/");
                }
                if let Some(t) = &token {
                    l.with_continuation_token(t.as_str());
                }
                l.with_max_keys(1000);
                let u = l.sign(SIGNED_FOR);
                let mut r = Self::expect_ok(&what, self.agent.get(u.as_str()).call())?;
                let body = r.body_mut().with_config().limit(MAX_LIST_PAGE).read_to_vec().map_err(|e| match e {
                    ureq::Error::BodyExceedsLimit(_) => Failure::Permanent(std::io::Error::other(format!(
                        "{what}: a listing page is more than {MAX_LIST_PAGE} bytes (refused)"
                    ))),
                    e => transport_failure(&what, e),
                })?;
                ListObjectsV2::parse_response(&body).map_err(|e| {
                    Failure::Permanent(std::io::Error::other(format!("{what}: the listing is not S3's XML ({e})")))
                })
            })?;
            for c in page.contents {
                let key = decode(&c.key);
                if !key.starts_with(prefix) {
                    return Err(std::io::Error::other(format!("{what}: the store listed {key:?}, outside the prefix")));
                }
                let modified = humantime::parse_rfc3339_weak(c.last_modified.trim_end_matches('Z')).ok();
                entries.push(Entry { key, size: c.size, modified });
            }
            prefixes.extend(page.common_prefixes.into_iter().map(|p| decode(&p.prefix)));
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => {
                    if !seen_tokens.insert(t.clone()) {
                        return Err(std::io::Error::other(format!("{what}: the store repeats a continuation token")));
                    }
                    token = Some(t);
                }
                _ => return Ok((entries, prefixes)),
            }
        }
        Err(std::io::Error::other(format!("{what}: more than {MAX_LIST_PAGES} pages of keys (refused)")))
    }

    /// Start a multipart upload; its id.
    fn start_multipart(&self, key: &str) -> std::io::Result<String> {
        let what = format!("start multipart upload of {}", self.key_url(key));
        self.retry(&what, || {
            let u = self.bucket.create_multipart_upload(Some(&self.credentials), key).sign(SIGNED_FOR);
            let mut r = Self::expect_ok(&what, self.agent.post(u.as_str()).send_empty())?;
            let body = r
                .body_mut()
                .with_config()
                .limit(MAX_SMALL_RESPONSE)
                .read_to_vec()
                .map_err(|e| transport_failure(&what, e))?;
            let parsed = CreateMultipartUpload::parse_response(&body).map_err(|e| {
                Failure::Permanent(std::io::Error::other(format!("{what}: the answer is not S3's XML ({e})")))
            })?;
            Ok(parsed.upload_id().to_string())
        })
    }

    /// Upload part `n`; its ETag.
    fn upload_part(&self, key: &str, id: &str, n: u16, data: &[u8]) -> std::io::Result<String> {
        let what = format!("upload part {n} of {}", self.key_url(key));
        self.retry(&what, || {
            let u = self.bucket.upload_part(Some(&self.credentials), key, n, id).sign(SIGNED_FOR);
            let r = Self::expect_ok(&what, self.agent.put(u.as_str()).send(data))?;
            r.headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| Failure::Permanent(std::io::Error::other(format!("{what}: the store gave no ETag"))))
        })
    }

    fn complete_multipart(&self, key: &str, id: &str, etags: &[String]) -> std::io::Result<()> {
        let what = format!("complete multipart upload of {}", self.key_url(key));
        self.retry(&what, || {
            let action = self.bucket.complete_multipart_upload(
                Some(&self.credentials),
                key,
                id,
                etags.iter().map(String::as_str),
            );
            let u = action.sign(SIGNED_FOR);
            let body = action.body();
            let mut r = Self::expect_ok(&what, self.agent.post(u.as_str()).send(body.as_bytes()))?;
            // S3 may answer 200 and put the error in the body.
            let answer = r.body_mut().with_config().limit(MAX_SMALL_RESPONSE).read_to_string().unwrap_or_default();
            if answer.contains("<Error>") {
                return Err(Failure::Transient(format!("{what}: {answer}")));
            }
            Ok(())
        })
    }

    fn abort_multipart(&self, key: &str, id: &str) {
        let u = self.bucket.abort_multipart_upload(Some(&self.credentials), key, id).sign(SIGNED_FOR);
        if let Err(e) = self.agent.delete(u.as_str()).call() {
            log::warn!("abort of the multipart upload of {}: {e}", self.key_url(key));
        }
    }
}

/// Undo the URL encoding of keys in listings (`encoding-type=url`).
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// One listed object.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    size: u64,
    modified: Option<SystemTime>,
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
    fn state_of(&self, prefix: &str, entries: &[&Entry]) -> State {
        if entries.iter().any(|e| e.key.strip_prefix(prefix) == Some(CATALOG)) {
            return match self.client.get(&format!("{prefix}{CATALOG}"), MAX_CATALOG) {
                Err(e) => State::Damaged(format!("backup.json: {e}")),
                Ok(text) => match serde_json::from_slice::<crate::Catalog>(&text) {
                    Ok(_) => State::Complete,
                    Err(e) => State::Damaged(format!("backup.json is damaged: {e}")),
                },
            };
        }
        let newest = entries.iter().filter_map(|e| e.modified).max();
        match newest {
            Some(t) if SystemTime::now().duration_since(t).map(|age| age < self.client.grace).unwrap_or(true) => {
                State::Running
            }
            // A time the store did not give: never call it dead.
            None if !entries.is_empty() => State::Running,
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
        let mut by_name: BTreeMap<String, Vec<&Entry>> = BTreeMap::new();
        for e in &entries {
            let Some((name, object)) = e.key[hp.len()..].split_once('/') else { continue };
            if plain("backup", name).is_err() || object.is_empty() {
                continue;
            }
            by_name.entry(name.to_string()).or_default().push(e);
        }
        Ok(by_name
            .into_iter()
            .map(|(name, objects)| {
                let prefix = format!("{hp}{name}/");
                let state = self.state_of(&prefix, &objects);
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
        let refs: Vec<&Entry> = entries.iter().collect();
        if refs.is_empty() || self.state_of(&prefix, &refs) != State::Interrupted {
            return Ok(false);
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
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists()),
            Err(e) => return Err(err(e)),
        }
        Ok(Arc::new(S3Objects {
            client: Arc::clone(&self.client),
            prefix: self.prefix.clone(),
            location: self.location.clone(),
        }))
    }

    fn abort(&self) {
        let Ok((entries, _)) = self.client.list(&self.prefix, false) else { return };
        for e in entries {
            let _ = self.client.delete(&e.key);
        }
    }
}

/// An object being written: one buffered part at a time.
struct S3Writer {
    client: Arc<Client>,
    key: String,
    buf: Vec<u8>,
    /// The multipart upload's id and the ETags of its parts, once the object outgrew a part.
    multipart: Option<(String, Vec<String>)>,
    failed: bool,
}

impl S3Writer {
    /// Upload the buffer as the next part (starting the multipart upload first).
    fn send_part(&mut self) -> std::io::Result<()> {
        if self.multipart.is_none() {
            let id = self.client.start_multipart(&self.key)?;
            self.multipart = Some((id, Vec::new()));
        }
        let Some((id, etags)) = &mut self.multipart else { return Err(std::io::Error::other("no multipart upload")) };
        let n = u16::try_from(etags.len() + 1).ok().filter(|n| *n <= MAX_PARTS).ok_or_else(|| {
            std::io::Error::other(format!("{}: more than {MAX_PARTS} parts: raise part_size", self.key))
        })?;
        let etag = self.client.upload_part(&self.key, id, n, &self.buf)?;
        etags.push(etag);
        self.buf.clear();
        Ok(())
    }

    /// Fail for good: abort the multipart upload so no parts are left behind.
    fn fail(&mut self, e: std::io::Error) -> std::io::Error {
        self.failed = true;
        if let Some((id, _)) = self.multipart.take() {
            self.client.abort_multipart(&self.key, &id);
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
        let Some((id, etags)) = self.multipart.take() else { return Err(std::io::Error::other("no multipart upload")) };
        match self.client.complete_multipart(&self.key, &id, &etags) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.multipart = Some((id, etags));
                Err(self.fail(e))
            }
        }
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // Dropped unfinished: leave no parts behind.
        if let Some((id, _)) = self.multipart.take() {
            self.client.abort_multipart(&self.key, &id);
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
        if buf.len() as u64 >= READ_BLOCK {
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

    #[test]
    fn the_credentials_file_profile_is_read() {
        let text = "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n\n[profile other]\n\
                    aws_access_key_id=OK\naws_secret_access_key=OS\naws_session_token = T\n";
        let d = profile_of(text, "default");
        assert_eq!(d.get("aws_access_key_id").map(String::as_str), Some("AK"));
        let o = profile_of(text, "other");
        assert_eq!(o.get("aws_session_token").map(String::as_str), Some("T"));
        assert!(profile_of(text, "none").is_empty());
    }

    #[test]
    fn settings_decide_endpoint_style_and_bounds() {
        let s = S3Settings {
            endpoint: "http://127.0.0.1:3900".into(),
            region: "garage".into(),
            access_key_id: "GK1".into(),
            secret_access_key: "secret".into(),
            ..S3Settings::default()
        };
        let c = Client::open("s3://bucket/p", &s).expect("open");
        assert_eq!(c.bucket.base_url().as_str(), "http://127.0.0.1:3900/bucket/", "path-style with an endpoint");
        assert_eq!(c.part_size, DEFAULT_PART_SIZE);
        let s2 = S3Settings { path_style: Some(false), endpoint: "https://s3.example.net".into(), ..s.clone() };
        assert_eq!(
            Client::open("s3://bucket", &s2).expect("vhost").bucket.base_url().as_str(),
            "https://bucket.s3.example.net/"
        );
        let small = S3Settings { part_size: 1 << 20, ..s.clone() };
        assert!(Client::open("s3://bucket", &small).is_err(), "parts under 5 MiB are refused");
        let half = S3Settings { secret_access_key: String::new(), ..s };
        assert!(Client::open("s3://bucket", &half).expect_err("half").to_string().contains("both"));
        assert!(!format!("{:?}", S3Settings { secret_access_key: "hunter2".into(), ..S3Settings::default() })
            .contains("hunter2"));
    }

    #[test]
    fn listed_keys_are_url_decoded() {
        assert_eq!(decode("h/2026-12-01T101010.123Z/vol%2B1"), "h/2026-12-01T101010.123Z/vol+1");
    }
}
