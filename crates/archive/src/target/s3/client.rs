//! The S3 protocol for [`super`]: requests signed with SigV4 (rusty-s3
//! builds and signs them, with no I/O of its own), sent with ureq (blocking
//! HTTP/1.1 over rustls), each retried with exponential backoff on 5xx, 429,
//! timeouts and connection errors; answers bounded in size and checked
//! (a range read returns exactly the bytes asked for, a listing stays under
//! its prefix and ends); credentials from the settings, the environment or
//! the AWS credentials file.

use super::{
    Address, S3Settings, DEFAULT_GRACE, DEFAULT_PARALLEL_PARTS, DEFAULT_PART_SIZE, MAX_PARALLEL_PARTS, MAX_PART_SIZE,
    MIN_PART_SIZE,
};
use crate::ArchiveError;
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2, ListObjectsV2Response, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The largest listing page read (1000 keys of at most 1 KiB each, and XML around them).
const MAX_LIST_PAGE: u64 = 8 << 20;
/// The most pages one listing reads (a million keys).
const MAX_LIST_PAGES: usize = 1000;
/// The largest error or control response read.
pub(super) const MAX_SMALL_RESPONSE: u64 = 1 << 20;
/// How long a presigned request stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(3600);

/// What a failed request was: worth another try, or not.
pub(super) enum Failure {
    Transient(String),
    Permanent(std::io::Error),
}

/// The key and secret (and session token) requests are signed with.
pub(super) fn resolve_credentials(s: &S3Settings, url: &str) -> Result<Credentials, ArchiveError> {
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
pub(super) struct Client {
    pub(super) url: String,
    bucket: Bucket,
    credentials: Credentials,
    agent: ureq::Agent,
    retries: u32,
    pub(super) part_size: u64,
    /// Parts of one volume going up at once.
    pub(super) parallel_parts: usize,
    pub(super) grace: Duration,
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
    pub(super) fn open(url: &str, settings: &S3Settings) -> Result<Client, ArchiveError> {
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
            .timeout_recv_response(Some(timeout))
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
            parallel_parts: match settings.parallel_parts {
                0 => DEFAULT_PARALLEL_PARTS,
                n => n.min(MAX_PARALLEL_PARTS),
            },
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
    /// One page of a listing (GET of a signed URL), at most [`MAX_LIST_PAGE`] bytes.
    fn list_page(&self, what: &str, url: &str) -> Result<Vec<u8>, Failure> {
        let mut r = Self::expect_ok(what, self.agent.get(url).call())?;
        r.body_mut().with_config().limit(MAX_LIST_PAGE).read_to_vec().map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => Failure::Permanent(std::io::Error::other(format!(
                "{what}: a listing page is more than {MAX_LIST_PAGE} bytes (refused)"
            ))),
            e => transport_failure(what, e),
        })
    }

    fn expect_ok(what: &str, r: Result<Resp, ureq::Error>) -> Result<Resp, Failure> {
        let r = r.map_err(|e| transport_failure(what, e))?;
        if r.status().is_success() {
            Ok(r)
        } else {
            Err(status_failure(what, r))
        }
    }

    pub(super) fn key_url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket.name())
    }

    /// The size of an object, or None when there is none.
    pub(super) fn head(&self, key: &str) -> std::io::Result<Option<u64>> {
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
    pub(super) fn put(&self, key: &str, data: &[u8], create_only: bool) -> std::io::Result<()> {
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

    pub(super) fn delete(&self, key: &str) -> std::io::Result<()> {
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
    pub(super) fn get(&self, key: &str, max: u64) -> std::io::Result<Vec<u8>> {
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
    pub(super) fn get_range(&self, key: &str, len: u64, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
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
    pub(super) fn list(&self, prefix: &str, delimiter: bool) -> std::io::Result<(Vec<Entry>, Vec<String>)> {
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
                let body = self.list_page(&what, u.as_str())?;
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
    pub(super) fn start_multipart(&self, key: &str) -> std::io::Result<String> {
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
    pub(super) fn upload_part(&self, key: &str, id: &str, n: u16, data: &[u8]) -> std::io::Result<String> {
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

    pub(super) fn complete_multipart(&self, key: &str, id: &str, etags: &[String]) -> std::io::Result<()> {
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

    pub(super) fn abort_multipart(&self, key: &str, id: &str) {
        let u = self.bucket.abort_multipart_upload(Some(&self.credentials), key, id).sign(SIGNED_FOR);
        if let Err(e) = self.agent.delete(u.as_str()).call() {
            log::warn!("abort of the multipart upload of {}: {e}", self.key_url(key));
        }
    }
}

/// A multipart upload the store holds unfinished (a volume being written, or one a dead run left).
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) key: String,
    pub(super) upload_id: String,
    pub(super) initiated: Option<SystemTime>,
}

/// One page of ListMultipartUploads.
#[derive(serde::Deserialize)]
struct PendingPage {
    #[serde(rename = "Upload", default)]
    uploads: Vec<PendingItem>,
    #[serde(rename = "IsTruncated", default)]
    truncated: String,
    #[serde(rename = "NextKeyMarker", default)]
    next_key: String,
    #[serde(rename = "NextUploadIdMarker", default)]
    next_upload: String,
}

#[derive(serde::Deserialize)]
struct PendingItem {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "UploadId")]
    upload_id: String,
    #[serde(rename = "Initiated", default)]
    initiated: String,
}

impl Client {
    /// The unfinished multipart uploads under `prefix` (ListMultipartUploads, paginated and bounded).
    pub(super) fn list_pending(&self, prefix: &str) -> std::io::Result<Vec<Pending>> {
        let what = format!("LIST multipart uploads {}", self.key_url(prefix));
        let (mut key_marker, mut id_marker) = (String::new(), String::new());
        let mut out = Vec::new();
        for _ in 0..MAX_LIST_PAGES {
            let page: PendingPage = self.retry(&what, || {
                // A GET of the bucket itself with `?uploads`: rusty-s3 has no action for it, its signing does.
                let mut a = self.bucket.get_object(Some(&self.credentials), "");
                a.query_mut().insert("uploads", "");
                a.query_mut().insert("prefix", prefix.to_string());
                a.query_mut().insert("max-uploads", "1000");
                if !key_marker.is_empty() {
                    a.query_mut().insert("key-marker", key_marker.clone());
                    a.query_mut().insert("upload-id-marker", id_marker.clone());
                }
                let u = a.sign(SIGNED_FOR);
                let body = self.list_page(&what, u.as_str())?;
                quick_xml::de::from_reader(body.as_slice()).map_err(|e| {
                    Failure::Permanent(std::io::Error::other(format!("{what}: the listing is not S3's XML ({e})")))
                })
            })?;
            for u in page.uploads {
                if !u.key.starts_with(prefix) {
                    return Err(std::io::Error::other(format!(
                        "{what}: the store listed {:?}, outside the prefix",
                        u.key
                    )));
                }
                let initiated = humantime::parse_rfc3339_weak(u.initiated.trim_end_matches('Z')).ok();
                out.push(Pending { key: u.key, upload_id: u.upload_id, initiated });
            }
            if page.truncated != "true" {
                return Ok(out);
            }
            if page.next_key.is_empty() || (page.next_key == key_marker && page.next_upload == id_marker) {
                return Err(std::io::Error::other(format!("{what}: the store's pages do not advance")));
            }
            (key_marker, id_marker) = (page.next_key, page.next_upload);
        }
        Err(std::io::Error::other(format!("{what}: more than {MAX_LIST_PAGES} pages (refused)")))
    }
}

/// Undo the URL encoding of keys in listings (`encoding-type=url`).
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// One listed object.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) key: String,
    pub(super) size: u64,
    pub(super) modified: Option<SystemTime>,
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

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

    /// A fake store: answers each connection with the next canned response, then closes it.
    pub(crate) fn fake(answers: Vec<String>) -> (Client, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::Write;
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = std::sync::Arc::clone(&count);
        std::thread::spawn(move || {
            for (answer, conn) in answers.into_iter().zip(l.incoming()) {
                let Ok(mut conn) = conn else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).map(|n| n == 1).unwrap_or(false) {
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let body = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                let _ = std::io::copy(&mut (&mut conn).take(body), &mut std::io::sink());
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        let s = S3Settings {
            endpoint: format!("http://127.0.0.1:{port}"),
            region: "r".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            retries: Some(2),
            ..S3Settings::default()
        };
        (Client::open("s3://bucket", &s).expect("client"), count)
    }

    pub(crate) fn answer(status: &str, headers: &[&str], body: &str) -> String {
        let mut a = format!("HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
        for h in headers {
            a.push_str(h);
            a.push_str("\r\n");
        }
        a + "\r\n" + body
    }

    #[test]
    fn a_range_read_gets_exactly_the_range_or_is_refused() {
        let (c, _) = fake(vec![answer("206 Partial Content", &["content-range: bytes 2-4/10"], "234")]);
        let mut buf = [0u8; 3];
        c.get_range("k", 10, 2, &mut buf).expect("range");
        assert_eq!(&buf, b"234");
        let (c, _) = fake(vec![answer("200 OK", &[], "0123456789")]);
        let e = c.get_range("k", 10, 2, &mut buf).expect_err("whole object for a range").to_string();
        assert!(e.contains("instead of the range"), "{e}");
        let (c, _) = fake(vec![answer("206 Partial Content", &["content-range: bytes 0-2/10"], "012")]);
        assert!(c.get_range("k", 10, 2, &mut buf).expect_err("another range").to_string().contains("another range"));
        let (c, _) = fake(vec![answer("206 Partial Content", &["content-range: bytes 2-4/10"], "23456")]);
        assert!(c.get_range("k", 10, 2, &mut buf).expect_err("more").to_string().contains("more than the range"));
        assert!(c.get_range("k", 10, 9, &mut buf).is_err(), "past the end is refused before asking");
    }

    #[test]
    fn a_5xx_is_retried_and_a_4xx_is_not() {
        let (c, count) = fake(vec![
            answer("503 Slow Down", &[], "<Error><Code>SlowDown</Code></Error>"),
            answer("200 OK", &[], "data"),
        ]);
        assert_eq!(c.get("k", 100).expect("retried"), b"data");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
        let (c, count) = fake(vec![
            answer("403 Forbidden", &[], "<Error><Code>AccessDenied</Code><Message>no</Message></Error>"),
            answer("200 OK", &[], "data"),
        ]);
        let e = c.get("k", 100).expect_err("403");
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("AccessDenied: no"), "{e}");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
        let (c, _) = fake(vec![answer("200 OK", &[], "0123456789")]);
        assert!(c.get("k", 5).expect_err("too big").to_string().contains("more than the 5 bytes"));
    }

    #[test]
    fn a_listing_that_loops_or_leaves_its_prefix_is_refused() {
        let page = |key: &str, token: &str| {
            answer(
                "200 OK",
                &[],
                &format!(
                    "<?xml version=\"1.0\"?><ListBucketResult><Contents><Key>{key}</Key>\
                     <LastModified>2026-12-02T01:00:00.000Z</LastModified><ETag>\"e\"</ETag><Size>3</Size>\
                     </Contents><NextContinuationToken>{token}</NextContinuationToken></ListBucketResult>"
                ),
            )
        };
        let (c, _) = fake(vec![page("p/a", "t1"), page("p/b", "t1")]);
        assert!(c.list("p/", false).expect_err("loop").to_string().contains("repeats a continuation token"));
        let (c, _) = fake(vec![page("other/a", "")]);
        assert!(c.list("p/", false).expect_err("outside").to_string().contains("outside the prefix"));
        let (c, _) = fake(vec![page("p/a", "")]);
        let (entries, _) = c.list("p/", false).expect("one page");
        assert_eq!((entries[0].key.as_str(), entries[0].size), ("p/a", 3));
        assert!(entries[0].modified.is_some(), "the time is parsed");
    }
}
