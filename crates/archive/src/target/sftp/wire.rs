//! The SFTP protocol, version 3 (draft-ietf-secsh-filexfer-02, the version
//! OpenSSH's `sftp-server` speaks), over the pipes of the system's `ssh -s
//! sftp`: the requests lifeboat needs, pipelined where volumes are moved.
//!
//! Volumes move as OpenSSH's `sftp` moves files: READ or WRITE requests of
//! [`CHUNK`] bytes, or of the larger size the server offers with the
//! `limits@openssh.com` extension (at most [`MAX_CHUNK`]), [`IN_FLIGHT`]
//! bytes of them in flight (2 MiB, the window of an OpenSSH session
//! channel), written to ssh in batches through a buffer and
//! read back through one, so the pipe carries few large writes instead of a
//! system call (and a wake-up of ssh) per request. A writer keeps its
//! requests in flight from one batch to the next ([`Session::write_queued`]),
//! so the pipeline never drains while a volume goes up.
//!
//! Everything the server sends is treated as hostile: a packet longer than
//! [`MAX_PACKET`] ends the session, every length inside a packet is checked
//! against what is left of it, a directory listing is bounded, and a reply
//! with an id that was not asked for is an error, never a hang.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufReader, BufWriter, Read, Write};

/// The largest packet accepted from the server (OpenSSH sends at most 256 KiB of data plus headers).
pub const MAX_PACKET: u32 = (256 << 10) + 1024;
/// The size of one READ or WRITE request when the server does not say
/// what it takes (every server takes 32 KiB).
pub const CHUNK: usize = 32 << 10;
/// The largest request asked for, whatever the server says it takes
/// (OpenSSH's `sftp-server` takes 255 KiB: 256 KiB less its headers).
pub const MAX_CHUNK: usize = 255 << 10;
/// How many 32 KiB READ or WRITE requests are in flight at once (OpenSSH's
/// `sftp -R` default); with larger requests, as many as fill the same
/// [`IN_FLIGHT`] bytes.
pub const WINDOW: usize = 64;
/// The bytes of READ or WRITE requests in flight at once (2 MiB, the window
/// of an OpenSSH session channel: more in flight waits in ssh's buffers).
pub const IN_FLIGHT: usize = WINDOW * CHUNK;
/// The buffers between lifeboat and ssh's pipes.
const PIPE_BUFFER: usize = 256 << 10;
/// The most entries read from one directory.
pub const MAX_DIR_ENTRIES: usize = 1 << 20;
/// The most bytes of names read from one directory.
pub const MAX_DIR_BYTES: usize = 64 << 20;
/// The longest name accepted in a listing.
pub const MAX_NAME: usize = 4096;
/// How many short READ replies one read accepts (OpenSSH sends them only at the end of a file).
pub const MAX_SHORT_READS: usize = 64;

const INIT: u8 = 1;
const VERSION: u8 = 2;
const OPEN: u8 = 3;
const CLOSE: u8 = 4;
const READ: u8 = 5;
const WRITE: u8 = 6;
const LSTAT: u8 = 7;
const OPENDIR: u8 = 11;
const READDIR: u8 = 12;
const REMOVE: u8 = 13;
const MKDIR: u8 = 14;
const RMDIR: u8 = 15;
const RENAME: u8 = 18;
const EXTENDED: u8 = 200;
const STATUS: u8 = 101;
const HANDLE: u8 = 102;
const DATA: u8 = 103;
const NAME: u8 = 104;
const ATTRS: u8 = 105;
const EXTENDED_REPLY: u8 = 201;

const FX_OK: u32 = 0;
const FX_EOF: u32 = 1;
const FX_NO_SUCH_FILE: u32 = 2;
const FX_PERMISSION_DENIED: u32 = 3;

/// Open flags.
pub const READ_FLAG: u32 = 0x01;
/// Open for writing.
pub const WRITE_FLAG: u32 = 0x02;
/// Create when missing.
pub const CREAT: u32 = 0x08;
/// Fail when it exists.
pub const EXCL: u32 = 0x20;

const ATTR_SIZE: u32 = 0x01;
const ATTR_UIDGID: u32 = 0x02;
const ATTR_PERMISSIONS: u32 = 0x04;
const ATTR_ACMODTIME: u32 = 0x08;
const ATTR_EXTENDED: u32 = 0x8000_0000;

/// What the server says about a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Size in bytes.
    pub size: Option<u64>,
    /// Mode bits including the file type.
    pub permissions: Option<u32>,
    /// Modification time (seconds since the epoch).
    pub mtime: Option<u32>,
}

impl Attrs {
    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.permissions.is_some_and(|p| p & 0o170000 == 0o100000)
    }
    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.permissions.is_some_and(|p| p & 0o170000 == 0o040000)
    }
}

/// Reads the fields of one packet, never past its end.
struct Fields<'a> {
    data: &'a [u8],
}

fn bad(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("the SFTP server sent a malformed reply ({why})"))
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> std::io::Result<&'a [u8]> {
        if n > self.data.len() {
            return Err(bad("a field runs past the end of its packet"));
        }
        let (a, b) = self.data.split_at(n);
        self.data = b;
        Ok(a)
    }
    fn u32(&mut self) -> std::io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> std::io::Result<u64> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }
    fn bytes(&mut self) -> std::io::Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn attrs(&mut self) -> std::io::Result<Attrs> {
        let flags = self.u32()?;
        let mut a = Attrs::default();
        if flags & ATTR_SIZE != 0 {
            a.size = Some(self.u64()?);
        }
        if flags & ATTR_UIDGID != 0 {
            self.u32()?;
            self.u32()?;
        }
        if flags & ATTR_PERMISSIONS != 0 {
            a.permissions = Some(self.u32()?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            self.u32()?;
            a.mtime = Some(self.u32()?);
        }
        if flags & ATTR_EXTENDED != 0 {
            let n = self.u32()?;
            for _ in 0..n {
                self.bytes()?;
                self.bytes()?;
            }
        }
        Ok(a)
    }
}

/// Builds the payload of one request.
#[derive(Default)]
struct Packet(Vec<u8>);

impl Packet {
    fn new(kind: u8, id: u32) -> Packet {
        let mut p = Packet(Vec::with_capacity(64));
        p.0.extend_from_slice(&[0, 0, 0, 0, kind]);
        p.u32(id);
        p
    }
    fn u32(&mut self, v: u32) -> &mut Packet {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Packet {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Packet {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
    fn finish(mut self) -> Vec<u8> {
        let n = (self.0.len() - 4) as u32;
        self.0[..4].copy_from_slice(&n.to_be_bytes());
        self.0
    }
}

/// One reply from the server.
#[derive(Debug)]
enum Reply {
    Status(u32, String),
    Handle(Vec<u8>),
    Data(Vec<u8>),
    Name(Vec<(String, Attrs)>),
    Attrs(Attrs),
    Extended(Vec<u8>),
}

/// An SFTP session over a pair of pipes.
pub struct Session {
    to: BufWriter<Box<dyn Write + Send>>,
    from: BufReader<Box<dyn Read + Send>>,
    next: u32,
    /// Replies that arrived while another was awaited (servers may answer out of order).
    early: HashMap<u32, Reply>,
    extensions: HashSet<String>,
    /// Bytes per READ and per WRITE request (from `limits@openssh.com`, else [`CHUNK`]).
    read_chunk: usize,
    write_chunk: usize,
    /// Where, for messages.
    pub url: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("url", &self.url).field("extensions", &self.extensions).finish()
    }
}

/// An open file or directory handle.
#[derive(Debug, Clone)]
pub struct Handle(Vec<u8>);

fn status_error(code: u32, msg: &str, what: &str) -> std::io::Error {
    use std::io::ErrorKind;
    let kind = match code {
        FX_NO_SUCH_FILE => ErrorKind::NotFound,
        FX_PERMISSION_DENIED => ErrorKind::PermissionDenied,
        FX_EOF => ErrorKind::UnexpectedEof,
        _ => ErrorKind::Other,
    };
    let msg = if msg.is_empty() { format!("SFTP status {code}") } else { msg.to_string() };
    std::io::Error::new(kind, format!("{what}: {msg}"))
}

impl Session {
    /// Start a session over `to` (the server's stdin) and `from` (its stdout).
    pub fn start(to: Box<dyn Write + Send>, from: Box<dyn Read + Send>, url: &str) -> std::io::Result<Session> {
        let mut s = Session {
            to: BufWriter::with_capacity(PIPE_BUFFER, to),
            from: BufReader::with_capacity(PIPE_BUFFER, from),
            next: 1,
            early: HashMap::new(),
            extensions: HashSet::new(),
            read_chunk: CHUNK,
            write_chunk: CHUNK,
            url: url.into(),
        };
        let mut init = Vec::new();
        init.extend_from_slice(&5u32.to_be_bytes());
        init.push(INIT);
        init.extend_from_slice(&3u32.to_be_bytes());
        s.to.write_all(&init)?;
        s.to.flush()?;
        let (kind, body) = s.packet()?;
        if kind != VERSION {
            return Err(bad("no VERSION reply to INIT"));
        }
        let mut f = Fields { data: &body };
        let version = f.u32()?;
        if version < 3 {
            return Err(std::io::Error::other(format!("the SFTP server speaks version {version}; lifeboat needs 3")));
        }
        while !f.data.is_empty() {
            let name = String::from_utf8_lossy(f.bytes()?).into_owned();
            f.bytes()?;
            s.extensions.insert(name);
        }
        if s.has("limits@openssh.com") {
            s.ask_limits()?;
        }
        Ok(s)
    }

    /// Ask the server how large a request it takes (`limits@openssh.com`:
    /// max packet, read and write lengths, open handles, each a u64), and use
    /// that, bounded to [`CHUNK`]..=[`MAX_CHUNK`] and to what fits in the
    /// packets both sides accept; 0 means "no limit given". Fewer, larger
    /// requests cost the server (and ssh) less per byte: OpenSSH's
    /// `sftp-server` then writes 255 KiB per request instead of 32 KiB.
    fn ask_limits(&mut self) -> std::io::Result<()> {
        let id = self.id();
        let mut p = Packet::new(EXTENDED, id);
        p.bytes(b"limits@openssh.com");
        self.send(p)?;
        self.to.flush()?;
        let data = match self.reply(id)? {
            Reply::Extended(data) => data,
            // A server that advertises it and then refuses it keeps the default size.
            Reply::Status(..) => return Ok(()),
            _ => return Err(bad("expected an EXTENDED_REPLY to limits@openssh.com")),
        };
        let mut f = Fields { data: &data };
        let (packet, read, write) = (f.u64()?, f.u64()?, f.u64()?);
        // Room for a READ/WRITE's headers (id, handle, offset, length) in the packet.
        let by_packet = if packet == 0 { u64::MAX } else { packet.saturating_sub(1024) };
        let pick = |n: u64| -> usize {
            let n = if n == 0 { u64::MAX } else { n };
            n.min(by_packet).clamp(CHUNK as u64, MAX_CHUNK as u64) as usize
        };
        (self.read_chunk, self.write_chunk) = (pick(read), pick(write));
        Ok(())
    }

    /// How many requests of `chunk` bytes keep [`IN_FLIGHT`] bytes in flight.
    fn window(chunk: usize) -> usize {
        (IN_FLIGHT / chunk.max(1)).clamp(4, WINDOW)
    }

    /// The bytes of one WRITE request: a writer that sends whole multiples of it sends no short requests.
    pub fn write_chunk(&self) -> usize {
        self.write_chunk
    }

    /// Whether the server has an extension (`fsync@openssh.com`).
    pub fn has(&self, extension: &str) -> bool {
        self.extensions.contains(extension)
    }

    fn packet(&mut self) -> std::io::Result<(u8, Vec<u8>)> {
        let mut len = [0u8; 4];
        self.from.read_exact(&mut len).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the SFTP session ended (ssh exited)")
            } else {
                e
            }
        })?;
        let len = u32::from_be_bytes(len);
        if len == 0 || len > MAX_PACKET {
            return Err(bad(&format!("a packet of {len} bytes")));
        }
        let mut kind = [0u8; 1];
        self.from.read_exact(&mut kind)?;
        let mut body = vec![0u8; len as usize - 1];
        self.from.read_exact(&mut body)?;
        Ok((kind[0], body))
    }

    fn send(&mut self, p: Packet) -> std::io::Result<()> {
        self.to.write_all(&p.finish())
    }

    fn id(&mut self) -> u32 {
        let id = self.next;
        self.next = self.next.wrapping_add(1).max(1);
        id
    }

    /// Read replies until the one with `id` arrives.
    fn reply(&mut self, id: u32) -> std::io::Result<Reply> {
        if let Some(r) = self.early.remove(&id) {
            return Ok(r);
        }
        self.to.flush()?;
        loop {
            let (kind, body) = self.packet()?;
            let mut f = Fields { data: &body };
            let got = f.u32()?;
            let r = match kind {
                STATUS => {
                    let code = f.u32()?;
                    // Old servers send no message.
                    let msg = if f.data.is_empty() {
                        String::new()
                    } else {
                        String::from_utf8_lossy(f.bytes()?).into_owned()
                    };
                    Reply::Status(code, msg)
                }
                HANDLE => Reply::Handle(f.bytes()?.to_vec()),
                DATA => Reply::Data(f.bytes()?.to_vec()),
                NAME => {
                    let n = f.u32()? as usize;
                    // Each entry takes at least 12 bytes: a count beyond that is a lie.
                    if n > f.data.len() / 12 {
                        return Err(bad("a NAME count larger than its packet"));
                    }
                    let mut v = Vec::with_capacity(n);
                    for _ in 0..n {
                        let name = String::from_utf8_lossy(f.bytes()?).into_owned();
                        f.bytes()?;
                        v.push((name, f.attrs()?));
                    }
                    Reply::Name(v)
                }
                ATTRS => Reply::Attrs(f.attrs()?),
                EXTENDED_REPLY => Reply::Extended(f.data.to_vec()),
                other => return Err(bad(&format!("reply type {other}"))),
            };
            if got == id {
                return Ok(r);
            }
            if got == 0 || got >= self.next || self.early.len() > WINDOW * 2 {
                return Err(bad(&format!("a reply to request {got}, which was not asked for")));
            }
            self.early.insert(got, r);
        }
    }

    fn status(&mut self, id: u32, what: &str) -> std::io::Result<()> {
        match self.reply(id)? {
            Reply::Status(FX_OK, _) => Ok(()),
            Reply::Status(code, msg) => Err(status_error(code, &msg, what)),
            _ => Err(bad("expected a STATUS")),
        }
    }

    fn path_request(&mut self, kind: u8, path: &str) -> std::io::Result<u32> {
        let id = self.id();
        let mut p = Packet::new(kind, id);
        p.bytes(path.as_bytes());
        self.send(p)?;
        Ok(id)
    }

    /// The attributes of `path`, not following a symbolic link.
    pub fn lstat(&mut self, path: &str) -> std::io::Result<Attrs> {
        let id = self.path_request(LSTAT, path)?;
        match self.reply(id)? {
            Reply::Attrs(a) => Ok(a),
            Reply::Status(code, msg) => Err(status_error(code, &msg, path)),
            _ => Err(bad("expected ATTRS")),
        }
    }

    /// Open a file with `flags`; new files get mode 0600.
    pub fn open(&mut self, path: &str, flags: u32) -> std::io::Result<Handle> {
        let id = self.id();
        let mut p = Packet::new(OPEN, id);
        p.bytes(path.as_bytes()).u32(flags).u32(ATTR_PERMISSIONS).u32(0o600);
        self.send(p)?;
        self.handle(id, path)
    }

    fn handle(&mut self, id: u32, path: &str) -> std::io::Result<Handle> {
        match self.reply(id)? {
            Reply::Handle(h) if h.len() <= 256 => Ok(Handle(h)),
            Reply::Status(code, msg) => Err(status_error(code, &msg, path)),
            _ => Err(bad("expected a HANDLE")),
        }
    }

    /// Close a handle.
    pub fn close(&mut self, h: &Handle) -> std::io::Result<()> {
        let id = self.id();
        let mut p = Packet::new(CLOSE, id);
        p.bytes(&h.0);
        self.send(p)?;
        self.status(id, "close")
    }

    /// Write `data` at `offset`, in pipelined chunks, and wait for every reply.
    pub fn write_at(&mut self, h: &Handle, offset: u64, data: &[u8], what: &str) -> std::io::Result<()> {
        let mut queued = VecDeque::new();
        self.write_queued(h, offset, data, &mut queued, what)?;
        self.await_writes(&mut queued, what)
    }

    /// Send `data` at `offset` as WRITE requests of the session's size, adding
    /// their ids to `queued` and waiting only for the oldest replies that
    /// keep at most [`IN_FLIGHT`] bytes in flight: the rest are still in flight when
    /// this returns ([`Session::await_writes`] waits for them). A failed
    /// reply is an error naming `what`.
    pub fn write_queued(
        &mut self,
        h: &Handle,
        offset: u64,
        data: &[u8],
        queued: &mut VecDeque<u32>,
        what: &str,
    ) -> std::io::Result<()> {
        let (size, window) = (self.write_chunk, Self::window(self.write_chunk));
        for (k, chunk) in data.chunks(size).enumerate() {
            while queued.len() >= window {
                let Some(id) = queued.pop_front() else { break };
                self.status(id, what)?;
            }
            let id = self.id();
            // The header alone, then the chunk straight into the pipe's buffer (no copy into a packet).
            let mut p = Packet::new(WRITE, id);
            p.bytes(&h.0).u64(offset + (k * size) as u64).u32(chunk.len() as u32);
            let mut head = p.0;
            let n = (head.len() - 4 + chunk.len()) as u32;
            head[..4].copy_from_slice(&n.to_be_bytes());
            self.to.write_all(&head)?;
            self.to.write_all(chunk)?;
            queued.push_back(id);
        }
        // Out to ssh now: the server writes while the caller fills the next batch.
        self.to.flush()
    }

    /// Wait for the replies of every WRITE in `queued`; the first failure is the error.
    pub fn await_writes(&mut self, queued: &mut VecDeque<u32>, what: &str) -> std::io::Result<()> {
        let mut first = Ok(());
        while let Some(id) = queued.pop_front() {
            let r = self.status(id, what);
            if first.is_ok() {
                first = r;
            }
            // A session that ended has no more replies to give.
            if first.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) {
                queued.clear();
            }
        }
        first
    }

    /// Fill `buf` from `offset`, in pipelined chunks; the file ending first is
    /// an error, and so is a server that keeps answering short reads.
    pub fn read_at(&mut self, h: &Handle, offset: u64, buf: &mut [u8], what: &str) -> std::io::Result<()> {
        let mut start = 0usize;
        let mut short = 0usize;
        while start < buf.len() {
            start += self.read_run(h, offset + start as u64, &mut buf[start..], what)?;
            if start < buf.len() {
                short += 1;
                if short > MAX_SHORT_READS {
                    return Err(bad(&format!("more than {MAX_SHORT_READS} short reads of {what}")));
                }
            }
        }
        Ok(())
    }

    /// Read from `offset` into `buf` with pipelined requests until a reply
    /// comes back short; the bytes filled from the start of `buf` (never 0).
    fn read_run(&mut self, h: &Handle, offset: u64, buf: &mut [u8], what: &str) -> std::io::Result<usize> {
        let mut pending: VecDeque<(u32, usize, usize)> = VecDeque::new();
        let mut sent = 0usize;
        let mut done = 0usize;
        let (size, window) = (self.read_chunk, Self::window(self.read_chunk));
        while done < buf.len() {
            while sent < buf.len() && pending.len() < window {
                let n = size.min(buf.len() - sent);
                let id = self.id();
                let mut p = Packet::new(READ, id);
                p.bytes(&h.0).u64(offset + sent as u64).u32(n as u32);
                self.send(p)?;
                pending.push_back((id, sent, n));
                sent += n;
            }
            let Some((id, at, n)) = pending.pop_front() else { break };
            let r = self.reply(id)?;
            let stop = match r {
                Reply::Data(d) if d.len() == n => {
                    buf[at..at + n].copy_from_slice(&d);
                    done += n;
                    None
                }
                // A short read: what came counts; the rest is asked for again.
                Reply::Data(d) if !d.is_empty() && d.len() < n => {
                    buf[at..at + d.len()].copy_from_slice(&d);
                    Some(Ok(at + d.len()))
                }
                Reply::Data(d) if d.is_empty() => Some(Err(bad("an empty DATA reply"))),
                Reply::Data(_) => Some(Err(bad("a DATA reply longer than asked for"))),
                Reply::Status(code, msg) => Some(Err(status_error(code, &msg, what))),
                _ => Some(Err(bad("expected DATA"))),
            };
            if let Some(end) = stop {
                for (id, _, _) in pending.drain(..) {
                    let _ = self.reply(id);
                }
                return end;
            }
        }
        Ok(done)
    }

    /// Every entry of a directory except `.` and `..`, bounded.
    pub fn read_dir(&mut self, path: &str) -> std::io::Result<Vec<(String, Attrs)>> {
        let id = self.path_request(OPENDIR, path)?;
        let h = self.handle(id, path)?;
        let mut out = Vec::new();
        let (mut bytes, mut idle) = (0usize, 0usize);
        let r = loop {
            let id = self.id();
            let mut p = Packet::new(READDIR, id);
            p.bytes(&h.0);
            self.send(p)?;
            match self.reply(id)? {
                Reply::Name(v) => {
                    let before = out.len();
                    for (n, a) in v {
                        if n == "." || n == ".." {
                            continue;
                        }
                        if n.len() > MAX_NAME {
                            return Err(bad(&format!("a name of {} bytes in {path}", n.len())));
                        }
                        bytes += n.len();
                        out.push((n, a));
                    }
                    // A server that answers READDIR forever with nothing new is broken (or hostile).
                    idle = if out.len() == before { idle + 1 } else { 0 };
                    if idle > 3 {
                        break Err(bad(&format!("READDIR of {path} answers without entries and without end")));
                    }
                    if out.len() > MAX_DIR_ENTRIES || bytes > MAX_DIR_BYTES {
                        break Err(std::io::Error::other(format!(
                            "{path}: more than {MAX_DIR_ENTRIES} entries or {MAX_DIR_BYTES} bytes of names"
                        )));
                    }
                }
                Reply::Status(FX_EOF, _) => break Ok(()),
                Reply::Status(code, msg) => break Err(status_error(code, &msg, path)),
                _ => break Err(bad("expected NAME")),
            }
        };
        let closed = self.close(&h);
        r.and(closed).map(|()| out)
    }

    /// Make a directory with mode 0700.
    pub fn mkdir(&mut self, path: &str) -> std::io::Result<()> {
        let id = self.id();
        let mut p = Packet::new(MKDIR, id);
        p.bytes(path.as_bytes()).u32(ATTR_PERMISSIONS).u32(0o700);
        self.send(p)?;
        self.status(id, path)
    }

    /// Remove a file.
    pub fn remove(&mut self, path: &str) -> std::io::Result<()> {
        let id = self.path_request(REMOVE, path)?;
        self.status(id, path)
    }

    /// Remove an empty directory.
    pub fn rmdir(&mut self, path: &str) -> std::io::Result<()> {
        let id = self.path_request(RMDIR, path)?;
        self.status(id, path)
    }

    /// Rename, failing when `to` exists (SFTP v3 RENAME; OpenSSH refuses an existing target).
    pub fn rename(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        let id = self.id();
        let mut p = Packet::new(RENAME, id);
        p.bytes(from.as_bytes()).bytes(to.as_bytes());
        self.send(p)?;
        self.status(id, to)
    }

    /// The free bytes (for an unprivileged user) of the filesystem holding
    /// `path` (`statvfs@openssh.com`); None when the server has no such extension.
    pub fn free_space(&mut self, path: &str) -> std::io::Result<Option<u64>> {
        if !self.has("statvfs@openssh.com") {
            return Ok(None);
        }
        let id = self.id();
        let mut p = Packet::new(EXTENDED, id);
        p.bytes(b"statvfs@openssh.com").bytes(path.as_bytes());
        self.send(p)?;
        match self.reply(id)? {
            Reply::Extended(data) => {
                // f_bsize, f_frsize, f_blocks, f_bfree, f_bavail, ... (PROTOCOL of OpenSSH).
                let mut f = Fields { data: &data };
                let (_bsize, frsize, _blocks, _bfree, bavail) = (f.u64()?, f.u64()?, f.u64()?, f.u64()?, f.u64()?);
                Ok(Some(bavail.saturating_mul(frsize)))
            }
            Reply::Status(code, msg) => Err(status_error(code, &msg, path)),
            _ => Err(bad("expected an EXTENDED_REPLY")),
        }
    }

    /// Make a file's data durable on the server (`fsync@openssh.com`; a no-op without it).
    pub fn fsync(&mut self, h: &Handle, what: &str) -> std::io::Result<()> {
        if !self.has("fsync@openssh.com") {
            return Ok(());
        }
        let id = self.id();
        let mut p = Packet::new(EXTENDED, id);
        p.bytes(b"fsync@openssh.com").bytes(&h.0);
        self.send(p)?;
        self.status(id, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers INIT and then sends `rest`.
    fn session_with(rest: Vec<u8>) -> std::io::Result<Session> {
        let mut from = Vec::new();
        from.extend_from_slice(&5u32.to_be_bytes());
        from.push(VERSION);
        from.extend_from_slice(&3u32.to_be_bytes());
        from.extend_from_slice(&rest);
        Session::start(Box::new(std::io::sink()), Box::new(std::io::Cursor::new(from)), "sftp://test")
    }

    fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        v.push(kind);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn an_oversized_packet_ends_the_session_instead_of_allocating() {
        let mut s = session_with((u32::MAX).to_be_bytes().to_vec()).expect("start");
        let e = s.lstat("/x").expect_err("accepted");
        assert!(e.to_string().contains("malformed"), "{e}");
    }

    #[test]
    fn a_name_count_beyond_its_packet_is_refused() {
        let mut body = 1u32.to_be_bytes().to_vec();
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        let mut s = session_with(packet(NAME, &body)).expect("start");
        assert!(s.lstat("/x").is_err());
    }

    #[test]
    fn a_reply_nobody_asked_for_is_an_error_not_a_hang() {
        let mut body = 77u32.to_be_bytes().to_vec();
        body.extend_from_slice(&0u32.to_be_bytes());
        let mut s = session_with(packet(STATUS, &body)).expect("start");
        let e = s.remove("/x").expect_err("accepted");
        assert!(e.to_string().contains("not asked for"), "{e}");
    }

    #[test]
    fn a_missing_file_is_not_found_and_a_truncated_reply_is_malformed() {
        let mut body = 1u32.to_be_bytes().to_vec();
        body.extend_from_slice(&FX_NO_SUCH_FILE.to_be_bytes());
        body.extend_from_slice(&4u32.to_be_bytes());
        body.extend_from_slice(b"gone");
        let mut s = session_with(packet(STATUS, &body)).expect("start");
        assert_eq!(s.lstat("/x").expect_err("found").kind(), std::io::ErrorKind::NotFound);
        let mut s = session_with(packet(ATTRS, &1u32.to_be_bytes())).expect("start");
        assert!(s.lstat("/x").expect_err("short").to_string().contains("malformed"));
    }

    fn data(id: u32, d: &[u8]) -> Vec<u8> {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&(d.len() as u32).to_be_bytes());
        body.extend_from_slice(d);
        packet(DATA, &body)
    }

    #[test]
    fn a_server_answering_one_byte_at_a_time_is_refused_without_recursing() {
        let mut rest = Vec::new();
        for id in 1..=80 {
            rest.extend(data(id, b"x"));
        }
        let mut s = session_with(rest).expect("start");
        let mut buf = vec![0u8; 1000];
        let e = s.read_at(&Handle(b"h".to_vec()), 0, &mut buf, "vol").expect_err("accepted");
        assert!(e.to_string().contains("short reads"), "{e}");
        // A few short reads are fine: the rest is asked for again.
        let mut rest = data(1, b"ab");
        rest.extend(data(2, b"cd"));
        let mut s = session_with(rest).expect("start");
        let mut buf = [0u8; 4];
        s.read_at(&Handle(b"h".to_vec()), 0, &mut buf, "vol").expect("read");
        assert_eq!(&buf, b"abcd");
    }

    #[test]
    fn a_directory_listing_without_end_is_refused() {
        let mut handle = 1u32.to_be_bytes().to_vec();
        handle.extend_from_slice(&1u32.to_be_bytes());
        handle.push(b'h');
        let mut rest = packet(HANDLE, &handle);
        for id in 2..=10 {
            let mut body = (id as u32).to_be_bytes().to_vec();
            body.extend_from_slice(&0u32.to_be_bytes());
            rest.extend(packet(NAME, &body));
        }
        let mut s = session_with(rest).expect("start");
        let e = s.read_dir("/srv/backup").expect_err("endless listing accepted");
        assert!(e.to_string().contains("without end"), "{e}");
    }

    #[test]
    fn attributes_parse_with_every_flag() {
        let mut b = Vec::new();
        b.extend_from_slice(
            &(ATTR_SIZE | ATTR_UIDGID | ATTR_PERMISSIONS | ATTR_ACMODTIME | ATTR_EXTENDED).to_be_bytes(),
        );
        b.extend_from_slice(&1234u64.to_be_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&0o100600u32.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&99u32.to_be_bytes());
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&1u32.to_be_bytes());
        b.push(b'k');
        b.extend_from_slice(&0u32.to_be_bytes());
        let a = Fields { data: &b }.attrs().expect("attrs");
        assert_eq!(a, Attrs { size: Some(1234), permissions: Some(0o100600), mtime: Some(99) });
        assert!(a.is_file() && !a.is_dir());
    }

    /// What the fake server does with the requests of a window.
    #[derive(Clone, Copy, Default)]
    struct Quirks {
        /// Answer each group of this many requests in reverse order (0: in order).
        reverse_groups: usize,
        /// Close the connection after answering this many requests.
        close_after: Option<usize>,
        /// Answer the READ with this request number (from 1) with half the bytes asked for.
        short_read: Option<usize>,
        /// Answer the WRITE with this request number (from 1) with a FAILURE status.
        fail_write: Option<usize>,
        /// Offer `limits@openssh.com` with this read and write length, and refuse longer requests.
        limits: Option<usize>,
    }

    /// An SFTP server over a socket pair (pipes both ways, as ssh's are)
    /// serving one file: READ from `file`, WRITE into it, LSTAT of anything.
    /// Returns the session and the server thread, which hands back the file.
    fn serve(file: Vec<u8>, q: Quirks) -> (Session, std::thread::JoinHandle<Vec<u8>>) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        let server = std::thread::spawn(move || {
            let mut file = file;
            let mut r = std::io::BufReader::new(theirs.try_clone().expect("clone"));
            let mut w = theirs;
            let read_packet = |r: &mut std::io::BufReader<std::os::unix::net::UnixStream>| -> Option<Vec<u8>> {
                let mut len = [0u8; 4];
                r.read_exact(&mut len).ok()?;
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                r.read_exact(&mut body).ok()?;
                Some(body)
            };
            let Some(init) = read_packet(&mut r) else { return file };
            assert_eq!(init[0], INIT);
            let mut version = 3u32.to_be_bytes().to_vec();
            if q.limits.is_some() {
                for field in [&b"limits@openssh.com"[..], b"1"] {
                    version.extend_from_slice(&(field.len() as u32).to_be_bytes());
                    version.extend_from_slice(field);
                }
            }
            w.write_all(&packet(VERSION, &version)).expect("version");
            let (mut seen, mut answered, mut group) = (0usize, 0usize, Vec::new());
            while let Some(body) = read_packet(&mut r) {
                seen += 1;
                let mut f = Fields { data: &body[1..] };
                let id = f.u32().expect("id");
                let status = |code: u32| {
                    let mut b = id.to_be_bytes().to_vec();
                    b.extend_from_slice(&code.to_be_bytes());
                    packet(STATUS, &b)
                };
                let answer = match body[0] {
                    READ => {
                        f.bytes().expect("handle");
                        let (offset, mut n) = (f.u64().expect("offset") as usize, f.u32().expect("len") as usize);
                        assert!(n <= q.limits.unwrap_or(CHUNK), "a READ of {n} bytes");
                        if q.short_read == Some(seen) {
                            n /= 2;
                        }
                        if offset >= file.len() {
                            status(FX_EOF)
                        } else {
                            data(id, &file[offset..(offset + n).min(file.len())])
                        }
                    }
                    WRITE => {
                        f.bytes().expect("handle");
                        let offset = f.u64().expect("offset") as usize;
                        let d = f.bytes().expect("data");
                        assert!(d.len() <= q.limits.unwrap_or(CHUNK), "a WRITE of {} bytes", d.len());
                        if q.fail_write == Some(seen) {
                            status(4)
                        } else {
                            if file.len() < offset + d.len() {
                                file.resize(offset + d.len(), 0);
                            }
                            file[offset..offset + d.len()].copy_from_slice(d);
                            status(FX_OK)
                        }
                    }
                    LSTAT => {
                        let mut b = id.to_be_bytes().to_vec();
                        b.extend_from_slice(&ATTR_SIZE.to_be_bytes());
                        b.extend_from_slice(&(file.len() as u64).to_be_bytes());
                        packet(ATTRS, &b)
                    }
                    EXTENDED if q.limits.is_some() => {
                        assert_eq!(f.bytes().expect("name"), b"limits@openssh.com");
                        let n = q.limits.unwrap_or(CHUNK) as u64;
                        let mut b = id.to_be_bytes().to_vec();
                        for v in [n + 1024, n, n, 0] {
                            b.extend_from_slice(&v.to_be_bytes());
                        }
                        packet(EXTENDED_REPLY, &b)
                    }
                    other => panic!("unexpected request {other}"),
                };
                group.push(answer);
                // A group waits for more requests only while more have arrived (never a deadlock).
                if q.reverse_groups > 1 && group.len() < q.reverse_groups && !r.buffer().is_empty() {
                    continue;
                }
                if q.reverse_groups > 1 {
                    group.reverse();
                }
                for a in group.drain(..) {
                    if q.close_after == Some(answered) {
                        return file;
                    }
                    answered += 1;
                    w.write_all(&a).expect("answer");
                }
            }
            file
        });
        let to = ours.try_clone().expect("clone");
        let s = Session::start(Box::new(to), Box::new(ours), "sftp://fake").expect("start");
        (s, server)
    }

    fn content(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    #[test]
    fn replies_out_of_order_land_where_their_requests_asked() {
        let file = content(4 << 20);
        let (mut s, server) = serve(file.clone(), Quirks { reverse_groups: 8, ..Quirks::default() });
        let mut buf = vec![0u8; 4 << 20];
        s.read_at(&Handle(b"h".to_vec()), 0, &mut buf, "vol").expect("read");
        assert!(buf == file, "the bytes came back in the wrong places");
        // Writes acknowledged out of order complete as well, across batches.
        let mut queued = VecDeque::new();
        let new = content(3 << 20).into_iter().map(|b| b ^ 0x5a).collect::<Vec<u8>>();
        for (k, batch) in new.chunks(1 << 20).enumerate() {
            s.write_queued(&Handle(b"h".to_vec()), (k << 20) as u64, batch, &mut queued, "vol").expect("write");
            assert!(!queued.is_empty(), "a batch waits only for the oldest replies, not for all");
        }
        s.await_writes(&mut queued, "vol").expect("acknowledged");
        drop(s);
        let written = server.join().expect("server");
        assert!(written[..3 << 20] == new[..], "the writes landed where they were asked");
    }

    #[test]
    fn a_server_offering_larger_requests_gets_them_whole_and_in_place() {
        let file = content(3 << 20);
        let limit = 255 << 10;
        let q = Quirks { reverse_groups: 3, limits: Some(limit), ..Quirks::default() };
        let (mut s, server) = serve(file.clone(), q);
        assert_eq!(s.write_chunk(), limit);
        let mut buf = vec![0u8; (3 << 20) - 5];
        s.read_at(&Handle(b"h".to_vec()), 5, &mut buf, "vol").expect("read");
        assert!(buf[..] == file[5..], "the bytes came back in the wrong places");
        let new = content(5 << 20).into_iter().map(|b| b ^ 0x33).collect::<Vec<u8>>();
        let mut queued = VecDeque::new();
        s.write_queued(&Handle(b"h".to_vec()), 0, &new, &mut queued, "vol").expect("write");
        assert!(queued.len() <= IN_FLIGHT / limit, "{} requests in flight", queued.len());
        s.await_writes(&mut queued, "vol").expect("acknowledged");
        drop(s);
        assert!(server.join().expect("no request was longer than offered") == new);
    }

    #[test]
    fn what_a_server_says_it_takes_is_bounded() {
        // VERSION with limits@openssh.com, then the EXTENDED_REPLY to request 1.
        let start = |packet_len: u64, read: u64, write: u64| {
            let mut body = 3u32.to_be_bytes().to_vec();
            for field in [&b"limits@openssh.com"[..], b"1"] {
                body.extend_from_slice(&(field.len() as u32).to_be_bytes());
                body.extend_from_slice(field);
            }
            let mut from = packet(VERSION, &body);
            let mut reply = 1u32.to_be_bytes().to_vec();
            for v in [packet_len, read, write, 0] {
                reply.extend_from_slice(&v.to_be_bytes());
            }
            from.extend(packet(EXTENDED_REPLY, &reply));
            Session::start(Box::new(std::io::sink()), Box::new(std::io::Cursor::new(from)), "sftp://t")
        };
        let s = start(262144, 261120, 261120).expect("OpenSSH's limits");
        assert_eq!((s.read_chunk, s.write_chunk), (261120, 261120));
        let s = start(u64::MAX, u64::MAX, u64::MAX).expect("huge");
        assert_eq!((s.read_chunk, s.write_chunk), (MAX_CHUNK, MAX_CHUNK), "never more than lifeboat accepts");
        let s = start(0, 0, 0).expect("no limits");
        assert_eq!(s.write_chunk, MAX_CHUNK);
        let s = start(4096, 100, 1).expect("tiny");
        assert_eq!((s.read_chunk, s.write_chunk), (CHUNK, CHUNK), "32 KiB is what every server takes");
        let s = start(100_000, 70_000, 50_000).expect("packet-bound");
        assert_eq!((s.read_chunk, s.write_chunk), (70_000, 50_000));
        let s = start(60_000, 70_000, 50_000).expect("packet-bound");
        assert_eq!(s.read_chunk, 60_000 - 1024, "a request fits in a packet");
        // A reply cut short is an error, not a guess.
        let mut body = 3u32.to_be_bytes().to_vec();
        for field in [&b"limits@openssh.com"[..], b"1"] {
            body.extend_from_slice(&(field.len() as u32).to_be_bytes());
            body.extend_from_slice(field);
        }
        let mut from = packet(VERSION, &body);
        from.extend(packet(EXTENDED_REPLY, &1u32.to_be_bytes()));
        assert!(Session::start(Box::new(std::io::sink()), Box::new(std::io::Cursor::new(from)), "t").is_err());
    }

    #[test]
    fn a_server_that_closes_mid_window_is_an_error_not_a_hang() {
        let (mut s, _server) = serve(content(4 << 20), Quirks { close_after: Some(10), ..Quirks::default() });
        let mut buf = vec![0u8; 4 << 20];
        let e = s.read_at(&Handle(b"h".to_vec()), 0, &mut buf, "vol").expect_err("a read past the close");
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        let (mut s, _server) = serve(Vec::new(), Quirks { close_after: Some(10), ..Quirks::default() });
        let mut queued = VecDeque::new();
        let e = match s.write_queued(&Handle(b"h".to_vec()), 0, &content(4 << 20), &mut queued, "vol") {
            Err(e) => e,
            Ok(()) => s.await_writes(&mut queued, "vol").expect_err("writes past the close"),
        };
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        // What a dropped writer does: collect the rest, which ends at once on a session that ended.
        assert!(s.await_writes(&mut queued, "vol").is_err());
        assert!(queued.is_empty(), "nothing is left waiting on a session that ended");
    }

    #[test]
    fn a_short_read_in_the_middle_of_a_window_is_asked_again() {
        let file = content(2 << 20);
        let (mut s, _server) =
            serve(file.clone(), Quirks { short_read: Some(6), reverse_groups: 4, ..Quirks::default() });
        let mut buf = vec![0u8; 2 << 20];
        s.read_at(&Handle(b"h".to_vec()), 0, &mut buf, "vol").expect("read");
        assert!(buf == file, "the rest of a short read was asked for again");
        // The session is still in step: the next request gets its own answer.
        assert_eq!(s.lstat("/x").expect("lstat").size, Some(2 << 20));
    }

    #[test]
    fn a_failed_write_in_the_window_is_reported_and_the_session_stays_in_step() {
        let (mut s, _server) = serve(Vec::new(), Quirks { fail_write: Some(3), ..Quirks::default() });
        let e = s.write_at(&Handle(b"h".to_vec()), 0, &content(1 << 20), "vol-0001").expect_err("failure");
        assert!(e.to_string().contains("vol-0001"), "{e}");
        assert_eq!(s.lstat("/x").expect("lstat").size, Some(1 << 20), "every other write landed, in step");
    }
}
