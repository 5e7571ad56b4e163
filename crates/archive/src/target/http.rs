//! `http://HOST[:PORT]/PATH` and `https://…`: one backup served read-only
//! over HTTP (by `lifeboat serve`, or any web server that answers `Range:`
//! requests), for rescue systems that restore from a deployment server.
//!
//! The URL names the backup's directory: its objects are `URL/backup.json`,
//! `URL/manifest.jsonl`, the volumes. Volumes are read by byte range
//! (`Range: bytes=A-B`, answered 206 with the same `Content-Range` start
//! and exactly the bytes asked for), so many clients stream one backup at
//! once and each frame is fetched when the reader wants it. Every answer is
//! bounded: small objects by the caller's maximum, ranges by their length,
//! and object names are single path components (no `/`, no `..`), so a
//! catalog can never make the reader fetch anything outside the backup.
//! Nothing is written: listing, uploads and deletes are refused by name.

use super::{Listed, ObjectRead, Objects, Target, Upload, REMOTE_READ_AHEAD};
use crate::ArchiveError;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// How long one request may wait for the server, per read (2 s in unit tests, so a dripping server
/// is cut within seconds there).
const TIMEOUT: Duration = Duration::from_secs(if cfg!(test) { 2 } else { 60 });
/// The slowest rate (bytes per second) a response may arrive at beyond [`TIMEOUT`]: a server that
/// drips a byte now and then cannot hold a recovery for ever.
const MIN_RATE: u64 = 64 << 10;

/// The whole time a request for `bytes` bytes may take, its body included.
fn deadline(bytes: u64) -> Duration {
    TIMEOUT + Duration::from_secs(bytes / MIN_RATE)
}
/// How often a failed transfer (connection refused, reset, a 5xx) is tried again.
const RETRIES: u32 = 5;

/// A backup served over HTTP, read-only.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    base: String,
    agent: ureq::Agent,
}

type Resp = ureq::http::Response<ureq::Body>;

impl HttpTarget {
    /// The target a `http://` or `https://` URL names (the backup's directory).
    pub fn open(url: &str) -> Result<HttpTarget, ArchiveError> {
        let bad = |why: &str| ArchiveError::Target(url.into(), why.into());
        let parsed = url::Url::parse(url).map_err(|e| bad(&format!("is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().unwrap_or_default().is_empty() {
            return Err(bad("give http://HOST[:PORT]/PATH of a backup's directory"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
            return Err(bad("an http:// backup URL has no query, fragment or user: give http://HOST[:PORT]/PATH"));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .no_delay(true)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_per_read(Some(TIMEOUT))
            .timeout_recv_response(Some(TIMEOUT))
            .user_agent(concat!("lifeboat/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(HttpTarget { base: parsed.as_str().trim_end_matches('/').to_string(), agent })
    }

    fn refused(&self, what: &str) -> ArchiveError {
        ArchiveError::Target(
            self.base.clone(),
            format!("{what}: an http:// target is one backup served read-only (back up to file://, sftp:// or s3://)"),
        )
    }
}

impl Target for HttpTarget {
    fn url(&self) -> String {
        self.base.clone()
    }
    fn hosts(&self) -> Result<Vec<String>, ArchiveError> {
        Err(self.refused("cannot list hosts"))
    }
    fn scan(&self, _host: &str) -> Result<Vec<Listed>, ArchiveError> {
        Err(self.refused("cannot list backups"))
    }
    fn begin(&self, _host: &str, _name: &str) -> Result<Arc<dyn Upload>, ArchiveError> {
        Err(self.refused("cannot write a backup"))
    }
    fn backup(&self, _host: &str, _name: &str) -> Result<Arc<dyn Objects>, ArchiveError> {
        Err(self.refused("cannot choose a backup by name"))
    }
    fn itself(&self) -> Result<Option<Arc<dyn Objects>>, ArchiveError> {
        Ok(Some(Arc::new(HttpObjects { base: self.base.clone(), agent: self.agent.clone() })))
    }
    fn remove_interrupted(&self, _host: &str, _listed: &Listed) -> Result<bool, ArchiveError> {
        Err(self.refused("cannot remove uploads"))
    }
    fn delete(&self, _host: &str, _name: &str) -> Result<(), ArchiveError> {
        Err(self.refused("cannot delete"))
    }
}

/// The objects of a backup served over HTTP.
#[derive(Debug, Clone)]
pub struct HttpObjects {
    base: String,
    agent: ureq::Agent,
}

/// Whether `name` is one object of a backup: a single path component.
pub fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
}

impl HttpObjects {
    fn url_of(&self, name: &str) -> std::io::Result<String> {
        if !is_object_name(name) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name:?} is not an object name of a backup (refused)"),
            ));
        }
        Ok(format!("{}/{name}", self.base))
    }

    /// Send a request again on transfer failures and server errors; other answers are returned.
    fn call(&self, what: &str, send: impl Fn() -> Result<Resp, ureq::Error>) -> std::io::Result<Resp> {
        let mut delay = Duration::from_millis(200);
        let mut last = String::new();
        for _ in 0..=RETRIES {
            match send() {
                Ok(r) if r.status().is_server_error() => last = format!("the server answered {}", r.status()),
                Ok(r) => return Ok(r),
                Err(e @ (ureq::Error::BadUri(_) | ureq::Error::RequireHttpsOnly(_))) => {
                    return Err(std::io::Error::other(format!("{what}: {e}")))
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        Err(std::io::Error::other(format!("{what}: {last} ({} tries)", RETRIES + 1)))
    }

    fn not_found(what: &str, status: u16) -> std::io::Error {
        let kind = if status == 404 { std::io::ErrorKind::NotFound } else { std::io::ErrorKind::Other };
        std::io::Error::new(kind, format!("{what}: the server answered {status}"))
    }
}

/// The total size in a `Content-Range: bytes A-B/TOTAL` value.
fn content_range(v: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b, total) = (a.trim().parse().ok()?, b.trim().parse().ok()?, total.trim().parse().ok()?);
    (a <= b && b < total).then_some((a, b, total))
}

impl Objects for HttpObjects {
    fn location(&self) -> String {
        self.base.clone()
    }

    fn open_volume(&self, name: &str, max: u64) -> std::io::Result<Arc<dyn ObjectRead>> {
        let url = self.url_of(name)?;
        let what = format!("GET {url}");
        // One byte tells the size (HEAD answers are not always honest about it).
        let r = self.call(&what, || {
            self.agent.get(&url).config().timeout_global(Some(deadline(1))).build().header("range", "bytes=0-0").call()
        })?;
        let status = r.status().as_u16();
        let len = match status {
            206 => {
                let v = r.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or_default();
                match content_range(v) {
                    Some((0, 0, total)) => total,
                    _ => return Err(std::io::Error::other(format!("{what}: a bad Content-Range {v:?} (refused)"))),
                }
            }
            // An empty object has no byte 0: servers answer 416 with its size.
            416 => {
                let v = r.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or_default();
                if v.trim() != "bytes */0" {
                    return Err(std::io::Error::other(format!("{what}: the server refused ranges ({v:?})")));
                }
                0
            }
            200 => return Err(std::io::Error::other(format!("{what}: the server does not answer Range requests"))),
            s => return Err(Self::not_found(&what, s)),
        };
        if len > max {
            return Err(std::io::Error::other(format!("{what}: {len} bytes, more than the {max} a volume may have")));
        }
        Ok(Arc::new(HttpObject { url, len, agent: self.agent.clone(), objects: self.clone() }))
    }

    fn read(&self, name: &str, max: u64) -> std::io::Result<Vec<u8>> {
        let url = self.url_of(name)?;
        let what = format!("GET {url}");
        let mut r =
            self.call(&what, || self.agent.get(&url).config().timeout_global(Some(deadline(max))).build().call())?;
        let status = r.status().as_u16();
        if status != 200 {
            return Err(Self::not_found(&what, status));
        }
        r.body_mut().with_config().limit(max).read_to_vec().map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => {
                std::io::Error::other(format!("{what}: more than the {max} bytes {name} may have (refused)"))
            }
            e => std::io::Error::other(format!("{what}: {e}")),
        })
    }
}

/// One volume served over HTTP, read by ranged GETs.
#[derive(Debug)]
struct HttpObject {
    url: String,
    len: u64,
    agent: ureq::Agent,
    objects: HttpObjects,
}

impl ObjectRead for HttpObject {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset.checked_add(buf.len() as u64).filter(|e| *e <= self.len).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{}: read past its end", self.url))
        })?;
        let what = format!("GET {} bytes {offset}-{}", self.url, end - 1);
        let mut tries = 0;
        loop {
            let r = self.objects.call(&what, || {
                self.agent
                    .get(&self.url)
                    .config()
                    .timeout_global(Some(deadline(buf.len() as u64)))
                    .build()
                    .header("range", format!("bytes={offset}-{}", end - 1))
                    .call()
            })?;
            let status = r.status().as_u16();
            if status != 206 {
                return Err(std::io::Error::other(format!(
                    "{what}: the server answered {status} instead of the range"
                )));
            }
            let v = r.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if content_range(v) != Some((offset, end - 1, self.len)) {
                return Err(std::io::Error::other(format!(
                    "{what}: the server sent another range ({v:?}) or the object changed (refused)"
                )));
            }
            let mut body = r.into_body().into_with_config().limit(buf.len() as u64 + 1).reader();
            match body.read_exact(buf) {
                Ok(()) => {}
                // A connection cut in the middle of a body: fetch the range again.
                Err(e) if tries < RETRIES => {
                    log::warn!("{what}: {e}; trying again");
                    tries += 1;
                    continue;
                }
                Err(e) => return Err(std::io::Error::other(format!("{what}: {e}"))),
            }
            let mut extra = [0u8; 1];
            return match body.read(&mut extra) {
                Ok(0) => Ok(()),
                Ok(_) => Err(std::io::Error::other(format!("{what}: the server sent more than the range (refused)"))),
                Err(e) => Err(std::io::Error::other(format!("{what}: {e}"))),
            };
        }
    }

    fn read_ahead(&self) -> usize {
        REMOTE_READ_AHEAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A server that answers each request with what `answer` makes of its
    /// request line and headers; returns its base URL.
    fn serve(answer: impl Fn(&str, &[String]) -> Vec<u8> + Send + 'static) -> String {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    headers.push(h.trim().to_ascii_lowercase());
                }
                let mut s = s;
                let _ = s.write_all(&answer(line.trim(), &headers));
            }
        });
        format!("http://127.0.0.1:{port}/backup")
    }

    fn ranged(data: &'static [u8]) -> impl Fn(&str, &[String]) -> Vec<u8> {
        move |line, headers| {
            if !line.starts_with("GET /backup/vol-1 ") {
                return b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec();
            }
            let range = headers.iter().find_map(|h| h.strip_prefix("range: bytes=")).expect("range");
            let (a, b) = range.split_once('-').expect("a-b");
            let (a, b): (usize, usize) = (a.parse().expect("a"), b.parse().expect("b"));
            let mut out = format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes {a}-{b}/{}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                data.len(),
                b - a + 1
            )
            .into_bytes();
            out.extend_from_slice(&data[a..=b]);
            out
        }
    }

    /// A server that sends the head of the range at once and then its body a byte every 300 ms:
    /// each read arrives within the per-read timeout, the whole never does.
    fn dripping(data: &'static [u8]) -> String {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().expect("clone"));
                    let (mut line, mut headers) = (String::new(), Vec::new());
                    let _ = r.read_line(&mut line);
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                            break;
                        }
                        headers.push(h.trim().to_ascii_lowercase());
                    }
                    let out = ranged(data)(line.trim(), &headers);
                    let at = out.windows(4).position(|w| w == b"\r\n\r\n").map_or(out.len(), |p| p + 4);
                    let mut s = s;
                    let _ = s.write_all(&out[..at]);
                    for b in &out[at..] {
                        std::thread::sleep(Duration::from_millis(300));
                        if s.write_all(std::slice::from_ref(b)).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://127.0.0.1:{port}/backup")
    }

    #[test]
    fn a_server_that_drips_its_answer_is_cut_at_the_deadline_instead_of_holding_the_recovery() {
        static DATA: [u8; 64] = [7u8; 64];
        let url = dripping(&DATA);
        let o = objects(&url);
        let t = std::time::Instant::now();
        // The size probe is one byte: it arrives within its deadline.
        let v = o.open_volume("vol-1", 1 << 20).expect("open");
        let mut buf = [0u8; 32];
        let e = v.read_at(0, &mut buf).expect_err("a dripping body must not be waited for");
        // Six tries of at most the 2 s deadline each (retries back off nothing for a body), not 32 × 0.3 s × 6.
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
        assert!(e.to_string().contains("bytes 0-31"), "{e}");
    }

    fn objects(url: &str) -> Arc<dyn Objects> {
        HttpTarget::open(url).expect("open").itself().expect("itself").expect("a backup")
    }

    #[test]
    fn volumes_are_read_by_range_and_their_size_comes_from_content_range() {
        let url = serve(ranged(b"0123456789abcdef"));
        let o = objects(&url);
        let v = o.open_volume("vol-1", 1 << 20).expect("open");
        assert_eq!(v.len(), 16);
        assert_eq!(v.read_ahead(), REMOTE_READ_AHEAD, "frames in flight from a remote object");
        let mut buf = [0u8; 5];
        v.read_at(10, &mut buf).expect("read");
        assert_eq!(&buf, b"abcde");
        assert!(v.read_at(12, &mut buf).is_err(), "past the end");
        assert!(o.open_volume("vol-1", 15).is_err(), "larger than max");
        let e = o.open_volume("vol-2", 1 << 20).expect_err("missing");
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn names_outside_the_backup_are_refused_before_any_request() {
        let o = objects("http://127.0.0.1:9/backup");
        for bad in ["..", "../etc/passwd", "a/b", "", ".", "x%2f..", "a\\b", "vol?x=1"] {
            let e = o.read(bad, 100).expect_err(bad);
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad}: {e}");
        }
        assert!(is_object_name("vol-000001.lbv") && is_object_name("backup.json.minisig"));
    }

    #[test]
    fn a_server_that_ignores_ranges_or_sends_another_range_or_too_much_is_refused() {
        let url = serve(|_, _| b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nabcd".to_vec());
        let e = objects(&url).open_volume("v", 100).expect_err("no ranges").to_string();
        assert!(e.contains("Range"), "{e}");

        let url = serve(|_, h| {
            if h.iter().any(|h| h == "range: bytes=0-0") {
                b"HTTP/1.1 206 P\r\ncontent-range: bytes 0-0/10\r\ncontent-length: 1\r\nconnection: close\r\n\r\na"
                    .to_vec()
            } else {
                b"HTTP/1.1 206 P\r\ncontent-range: bytes 0-3/10\r\ncontent-length: 4\r\nconnection: close\r\n\r\nabcd"
                    .to_vec()
            }
        });
        let v = objects(&url).open_volume("v", 100).expect("open");
        let mut buf = [0u8; 2];
        assert!(v.read_at(4, &mut buf).expect_err("other range").to_string().contains("another range"));

        let url = serve(|_, h| {
            if h.iter().any(|h| h == "range: bytes=0-0") {
                b"HTTP/1.1 206 P\r\ncontent-range: bytes 0-0/10\r\ncontent-length: 1\r\nconnection: close\r\n\r\na"
                    .to_vec()
            } else {
                b"HTTP/1.1 206 P\r\ncontent-range: bytes 2-3/10\r\nconnection: close\r\n\r\nabcdefgh".to_vec()
            }
        });
        let v = objects(&url).open_volume("v", 100).expect("open");
        assert!(v.read_at(2, &mut buf).expect_err("too much").to_string().contains("more than the range"));
    }

    #[test]
    fn small_objects_are_bounded_by_the_callers_maximum() {
        let url = serve(|_, _| {
            let mut v = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
            v.extend(vec![b'x'; 10_000]);
            v
        });
        let e = objects(&url).read("backup.json", 1000).expect_err("too big").to_string();
        assert!(e.contains("more than the 1000"), "{e}");
    }

    #[test]
    fn urls_are_checked_and_writing_is_refused_by_name() {
        for bad in ["http://", "ftp://h/x", "http://h/x?y=1", "http://u@h/x"] {
            assert!(HttpTarget::open(bad).is_err(), "{bad}");
        }
        let t = HttpTarget::open("http://10.0.2.100/backup/").expect("open");
        assert_eq!(t.url(), "http://10.0.2.100/backup");
        let e = t.begin("h", "n").expect_err("write").to_string();
        assert!(e.contains("read-only"), "{e}");
        assert!(t.scan("h").is_err() && t.hosts().is_err());
        assert_eq!(content_range("bytes 0-0/7"), Some((0, 0, 7)));
        assert_eq!(content_range("bytes 5-2/7"), None);
        assert_eq!(content_range("bytes 0-7/7"), None);
    }
}
