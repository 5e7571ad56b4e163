//! The little HTTP/1.1 the deployment server speaks: one request per
//! connection, every part of it bounded before it is read (the request
//! head, the number of headers, a body), single byte ranges.
//!
//! Written here rather than taken from a crate: tiny_http 0.12 reads header
//! lines without any bound (a client sending one endless header line grows
//! the server's memory until it dies), and hyper brings an async runtime
//! for what is a few static files and four small routes.

use std::io::{BufRead, BufReader, Read, Write};

/// The largest request head (request line and headers) read.
pub const MAX_HEAD: usize = 16 << 10;
/// The most headers a request may have.
pub const MAX_HEADERS: usize = 64;
/// The largest request body read (status reports).
pub const MAX_BODY: usize = 4 << 10;

/// A request, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, `POST`…
    pub method: String,
    /// The path, without its query (`/backup/vol-0001.tar.zst`).
    pub path: String,
    /// The query after `?`, when there is one.
    pub query: Option<String>,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
    /// The body (at most [`MAX_BODY`] bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The value of a header (its name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A request that is refused before it is served: the status to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status (400, 411, 413, 431, 501).
    pub status: u16,
    /// Why, for the answer's body and the log.
    pub why: String,
}

fn refuse(status: u16, why: impl Into<String>) -> Refusal {
    Refusal { status, why: why.into() }
}

/// Read one request; None when the client closed the connection before sending one.
pub fn read_request(stream: impl Read) -> Result<Option<Request>, Refusal> {
    let mut r = BufReader::new(stream.take((MAX_HEAD + MAX_BODY) as u64 + 1));
    let mut head_len = 0usize;
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.by_ref().take((MAX_HEAD - head_len + 1) as u64).read_until(b'\n', &mut line).map_err(|e| match e
            .kind()
        {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                refuse(408, "the request took too long to arrive")
            }
            _ => refuse(400, format!("reading the request: {e}")),
        })?;
        if n == 0 {
            return if lines.is_empty() && head_len == 0 {
                Ok(None)
            } else {
                Err(refuse(400, "the request ends early"))
            };
        }
        head_len += n;
        if head_len > MAX_HEAD {
            return Err(refuse(431, format!("the request head is longer than {MAX_HEAD} bytes")));
        }
        if !line.ends_with(b"\n") {
            return Err(refuse(400, "the request ends early"));
        }
        let text = String::from_utf8(line).map_err(|_| refuse(400, "the request head is not text"))?;
        let text = text.trim_end_matches(['\r', '\n']).to_string();
        if text.is_empty() {
            if lines.is_empty() {
                continue; // a stray line break before the request line is allowed
            }
            break;
        }
        lines.push(text);
        if lines.len() > MAX_HEADERS + 1 {
            return Err(refuse(431, format!("more than {MAX_HEADERS} headers")));
        }
    }
    let mut parts = lines[0].split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refuse(400, "the request line is not METHOD TARGET HTTP/1.x"));
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return Err(refuse(505, format!("{version} is not HTTP/1.0 or 1.1")));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(refuse(400, "the method is not a word in capitals"));
    }
    if !target.starts_with('/') {
        return Err(refuse(400, "the request target is not a path"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let mut headers = Vec::new();
    for l in &lines[1..] {
        let (name, value) =
            l.split_once(':').ok_or_else(|| refuse(400, format!("a header without a colon: {l:.40}")))?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(refuse(400, "a header name with spaces"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut req = Request { method: method.to_string(), path, query, headers, body: Vec::new() };
    if req.header("transfer-encoding").is_some() {
        return Err(refuse(501, "chunked request bodies are not taken; send Content-Length"));
    }
    if let Some(len) = req.header("content-length") {
        let len: usize = len.parse().map_err(|_| refuse(400, "Content-Length is not a number"))?;
        if len > MAX_BODY {
            return Err(refuse(413, format!("a body of {len} bytes, more than {MAX_BODY}")));
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).map_err(|_| refuse(400, "the body ends before its Content-Length"))?;
        req.body = body;
    } else if req.method == "POST" || req.method == "PUT" {
        return Err(refuse(411, "a POST needs Content-Length"));
    }
    Ok(Some(req))
}

/// A path component with its `%HH` escapes decoded (iPXE writes the colons
/// of a MAC as `%3A`); None when it is not UTF-8 afterwards. What it
/// decodes to is checked by the caller like any other name (`%2e%2e` is `..`).
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// What a `Range:` header asks of an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// No range, or one this server ignores (several ranges, another unit, bad syntax): the whole object.
    Whole,
    /// Bytes `start..=end`, both inside the object.
    Part(u64, u64),
    /// A range that lies outside the object: 416.
    Unsatisfiable,
}

/// Parse a `Range:` value (`bytes=A-B`, `bytes=A-`, `bytes=-N`) against an object of `size` bytes.
/// Syntax this server does not take is ignored, as RFC 9110 allows: the whole object is sent.
pub fn parse_range(value: Option<&str>, size: u64) -> Range {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else { return Range::Whole };
    if spec.contains(',') || spec.len() > 64 {
        return Range::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return Range::Whole };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.len() <= 20 && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    match (a.is_empty(), num(a), b.is_empty(), num(b)) {
        // bytes=-N: the last N bytes.
        (true, _, false, Some(n)) => {
            if n == 0 || size == 0 {
                Range::Unsatisfiable
            } else {
                Range::Part(size - n.min(size), size - 1)
            }
        }
        (false, Some(start), true, _) => {
            if start >= size {
                Range::Unsatisfiable
            } else {
                Range::Part(start, size - 1)
            }
        }
        (false, Some(start), false, Some(end)) => {
            if end < start {
                Range::Whole
            } else if start >= size {
                Range::Unsatisfiable
            } else {
                Range::Part(start, end.min(size - 1))
            }
        }
        // Numbers too large for u64, letters: not a range this server takes.
        _ => Range::Whole,
    }
}

/// The reason phrase of the statuses this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Write a response head (the connection closes after the body).
pub fn write_head(w: &mut dyn Write, status: u16, headers: &[(&str, String)], len: u64) -> std::io::Result<()> {
    let mut h = format!("HTTP/1.1 {status} {}\r\nContent-Length: {len}\r\nConnection: close\r\n", reason(status));
    for (n, v) in headers {
        h.push_str(&format!("{n}: {v}\r\n"));
    }
    h.push_str("\r\n");
    w.write_all(h.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Result<Option<Request>, Refusal> {
        read_request(s.as_bytes())
    }

    #[test]
    fn requests_are_read_with_their_headers_query_and_body() {
        let r = req("GET /clone/52:54:00:00:10:01?x=1 HTTP/1.1\r\nHost: a\r\nRange: bytes=0-9\r\n\r\n")
            .expect("ok")
            .expect("some");
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.query.as_deref()),
            ("GET", "/clone/52:54:00:00:10:01", Some("x=1"))
        );
        assert_eq!(r.header("range"), Some("bytes=0-9"));
        let r = req("POST /status/x HTTP/1.0\r\nContent-Length: 4\r\n\r\ndone").expect("ok").expect("some");
        assert_eq!(r.body, b"done");
        assert_eq!(req("").expect("closed"), None);
    }

    #[test]
    fn hostile_requests_are_refused_with_the_right_status() {
        let huge_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD * 4));
        assert_eq!(req(&huge_header).expect_err("huge").status, 431);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(req(&format!("GET / HTTP/1.1\r\n{many}\r\n")).expect_err("many").status, 431);
        let endless = "G".repeat(MAX_HEAD * 2);
        assert_eq!(req(&endless).expect_err("endless line").status, 431);
        assert_eq!(req("GET / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n").expect_err("body").status, 413);
        assert_eq!(req("POST /status/x HTTP/1.1\r\n\r\n").expect_err("no length").status, 411);
        assert_eq!(req("POST /s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").expect_err("chunked").status, 501);
        assert_eq!(req("GET / HTTP/2\r\n\r\n").expect_err("version").status, 505);
        assert_eq!(req("GET http://evil/ HTTP/1.1\r\n\r\n").expect_err("absolute").status, 400);
        assert_eq!(req("GET / HTTP/1.1 x\r\n\r\n").expect_err("words").status, 400);
        assert_eq!(req("GET / HTTP/1.1\r\nno colon\r\n\r\n").expect_err("header").status, 400);
        assert_eq!(req("GET / HTTP/1.1\r\nHost: a").expect_err("cut").status, 400);
        assert_eq!(req("GET / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc").expect_err("short body").status, 400);
        assert_eq!(req("get / HTTP/1.1\r\n\r\n").expect_err("method").status, 400);
    }

    #[test]
    fn escapes_are_decoded_once() {
        assert_eq!(percent_decode("52%3A54%3a00").as_deref(), Some("52:54:00"));
        assert_eq!(percent_decode("%2e%2e").as_deref(), Some(".."));
        assert_eq!(percent_decode("%252e").as_deref(), Some("%2e"), "once, not twice");
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn ranges_inside_the_object_are_served_and_absurd_ones_refused_or_ignored() {
        use Range::*;
        assert_eq!(parse_range(None, 100), Whole);
        assert_eq!(parse_range(Some("bytes=0-0"), 100), Part(0, 0));
        assert_eq!(parse_range(Some("bytes=10-19"), 100), Part(10, 19));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Part(90, 99));
        assert_eq!(parse_range(Some("bytes=90-1000"), 100), Part(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Part(90, 99));
        assert_eq!(parse_range(Some("bytes=-1000"), 100), Part(0, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=100-200"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=18446744073709551615-"), 100), Unsatisfiable);
        // Not ranges this server takes: ignored.
        assert_eq!(parse_range(Some("bytes=99999999999999999999999-"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=5-2"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=a-b"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=+1-2"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=-"), 100), Whole);
    }
}
