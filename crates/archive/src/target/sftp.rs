//! `sftp://[user@]host[:port]/path` targets: a directory on another
//! machine, reached the way restic reaches it — the system's OpenSSH client
//! runs `ssh ... -s sftp` (through the runner) and lifeboat speaks SFTP over
//! its pipes, so `~/.ssh/config`, `known_hosts`, agents, ProxyJump and
//! bastions work exactly as the administrator's ssh does. `BatchMode=yes`:
//! ssh never asks, so an unknown host key fails the connection instead of
//! being accepted by anyone.
//!
//! The layout on the server is the directory target's: `HOST/NAME.partial`
//! while it is written, renamed to `HOST/NAME` once its catalog is there
//! (SFTP's RENAME never replaces an existing name). No lock can be held
//! over SFTP, so an upload whose newest object is older than
//! [`STALE_AFTER`] counts as interrupted.
//!
//! Why our own SFTP client ([`wire`]): the one crate that drives the system's
//! `ssh -s sftp` (openssh-sftp-client) is async-only and needs tokio's
//! pipes, while lifeboat is synchronous and its runner hands out blocking
//! pipes; the dozen SFTP v3 requests lifeboat needs are short, and having
//! them here lets every length the server sends be bounded as the rest of
//! the reader's input is.

pub mod wire;

use super::{Listed, ObjectRead, ObjectWriter, Objects, State, Target, Upload, CATALOG};
use crate::ArchiveError;
use lifeboat_runner::{Cmd, Effect, Process, Runner, Streams};
use std::io::Write;
use std::sync::{Arc, Mutex};
use wire::{Attrs, Handle, Session};

/// An upload with no new object for this long is taken as dead (a volume is
/// written in well under an hour; there is no lock to ask over SFTP).
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

use super::MAX_CATALOG;

/// The parts of an `sftp://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The login name, when given.
    pub user: Option<String>,
    /// The host (a name from `~/.ssh/config` works too).
    pub host: String,
    /// The port, when given.
    pub port: Option<u16>,
    /// The directory on the server (absolute, or relative to the login's home with `/~/`).
    pub path: String,
}

impl Address {
    /// Parse `sftp://[user@]host[:port]/path`.
    pub fn parse(url: &str) -> Result<Address, ArchiveError> {
        let bad = |why: &str| ArchiveError::Target(url.into(), format!("{why}: give sftp://[user@]host[:port]/path"));
        let rest = url.strip_prefix("sftp://").ok_or_else(|| bad("not an sftp:// URL"))?;
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no path"))?;
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.contains(']') || h.ends_with(']') => {
                (h, Some(p.parse::<u16>().map_err(|_| bad(&format!("port {p:?} is not a number from 1 to 65535")))?))
            }
            _ => (hostport, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ok = |s: &str| !s.is_empty() && !s.starts_with('-') && s.bytes().all(|b| b.is_ascii_graphic());
        if !ok(host) || user.as_deref().is_some_and(|u| !ok(u)) {
            return Err(bad("the host or user is empty, starts with '-' or holds spaces"));
        }
        let path = match path.strip_prefix("~/") {
            Some(rel) => rel.trim_end_matches('/').to_string(),
            None => format!("/{}", path.trim_end_matches('/')),
        };
        if path.split('/').any(|c| c == "..") {
            return Err(bad("the path holds '..'"));
        }
        Ok(Address { user, host: host.to_string(), port, path })
    }

    /// The `ssh` command that starts the SFTP subsystem.
    pub fn command(&self, config: Option<&str>) -> Cmd {
        let mut c = Cmd::new("ssh").args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=4",
        ]);
        if let Some(f) = config {
            c = c.args(["-F", f]);
        }
        if let Some(p) = self.port {
            c = c.args(["-p", &p.to_string()]);
        }
        if let Some(u) = &self.user {
            c = c.args(["-l", u]);
        }
        c.args(["-s", "--", &self.host, "sftp"])
    }
}

/// The ssh process and the session over its pipes.
struct Link {
    session: Session,
    /// Kept for its lifetime: dropping it kills ssh.
    process: Process,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("session", &self.session).field("ssh", &self.process.cmdline()).finish()
    }
}

/// A connection shared by the target, its uploads and readers.
#[derive(Debug, Clone)]
struct Conn {
    url: String,
    link: Arc<Mutex<Link>>,
}

impl Conn {
    fn with<T>(&self, f: impl FnOnce(&mut Session) -> std::io::Result<T>) -> std::io::Result<T> {
        let mut l = self.link.lock().map_err(|_| std::io::Error::other("the SFTP session failed in another thread"))?;
        f(&mut l.session)
    }

    fn err(&self, e: std::io::Error) -> ArchiveError {
        ArchiveError::Target(self.url.clone(), e.to_string())
    }

    /// The URL of a path on the server (`sftp://user@host:port/srv/backup/h/b`).
    fn at(&self, path: &str) -> String {
        let authority = self.url.trim_start_matches("sftp://").split('/').next().unwrap_or("");
        let sep = if path.starts_with('/') { "" } else { "/~/" };
        format!("sftp://{authority}{sep}{path}")
    }
}

/// A directory on an SFTP server.
#[derive(Debug, Clone)]
pub struct SftpTarget {
    conn: Conn,
    root: String,
}

/// A name used as one path component.
fn plain(what: &str, n: &str) -> Result<(), ArchiveError> {
    if n.is_empty() || n.contains('/') || n.contains('\0') || n.starts_with('.') {
        return Err(ArchiveError::Target(format!("{what} {n:?}"), "is not a plain name (refused)".into()));
    }
    Ok(())
}

impl SftpTarget {
    /// Connect to the server of an `sftp://` URL with the system's ssh
    /// (`LIFEBOAT_SSH_CONFIG` names an ssh config file to use instead of `~/.ssh/config`).
    pub fn connect(url: &str, runner: &dyn Runner) -> Result<SftpTarget, ArchiveError> {
        let a = Address::parse(url)?;
        let config = std::env::var("LIFEBOAT_SSH_CONFIG").ok();
        let cmd = a.command(config.as_deref());
        let fail = |why: String| ArchiveError::Target(url.into(), why);
        let mut process = runner
            .spawn(&cmd, Effect::Probe, Streams::new().stdin_pipe().stdout_pipe())
            .map_err(|e| fail(e.to_string()))?;
        let from = process.take_stdout().ok_or_else(|| fail("ssh has no stdout".into()))?;
        let to = process.take_stdin().ok_or_else(|| fail("ssh has no stdin".into()))?;
        let session = match Session::start(to, from, url) {
            Ok(s) => s,
            Err(e) => {
                let why = match process.wait() {
                    Err(run) => run.reason(),
                    Ok(_) => e.to_string(),
                };
                let login = match &a.user {
                    Some(u) => format!("{u}@{}", a.host),
                    None => a.host.clone(),
                };
                let port = a.port.map(|p| format!(" -p {p}")).unwrap_or_default();
                return Err(fail(format!(
                    "cannot start SFTP over ssh ({why}); check that `ssh{port} {login}` logs in without a question \
                     (an unknown host key is never accepted here: connect once by hand and check its fingerprint, \
                     or add it to known_hosts)"
                )));
            }
        };
        let conn = Conn { url: url.into(), link: Arc::new(Mutex::new(Link { session, process })) };
        Ok(SftpTarget { conn, root: a.path })
    }

    fn host_dir(&self, host: &str) -> Result<String, ArchiveError> {
        plain("host", host)?;
        Ok(format!("{}/{host}", self.root))
    }

    /// What the directory `dir` (with attributes `own` and entries `entries`) is.
    fn state_of(&self, dir: &str, own: &Attrs, entries: &[(String, Attrs)]) -> State {
        if dir.ends_with(".partial") {
            let newest = entries.iter().filter_map(|(_, a)| a.mtime).chain(own.mtime).max();
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            return match newest {
                Some(t) if now.saturating_sub(u64::from(t)) < STALE_AFTER.as_secs() => State::Running,
                _ => State::Interrupted,
            };
        }
        let Some((_, a)) = entries.iter().find(|(n, _)| n == CATALOG) else {
            return State::Damaged("no backup.json: the catalog is missing".into());
        };
        if !a.is_file() {
            return State::Damaged("backup.json is not a regular file".into());
        }
        let objects = SftpObjects { conn: self.conn.clone(), dir: dir.to_string() };
        match objects.read(CATALOG, MAX_CATALOG) {
            Err(e) => State::Damaged(format!("backup.json: {e}")),
            Ok(text) => super::catalog_state(&text),
        }
    }

    fn remove_tree(&self, dir: &str) -> Result<(), ArchiveError> {
        let entries = self.conn.with(|s| s.read_dir(dir)).map_err(|e| self.conn.err(e))?;
        // The catalog first: an interrupted removal leaves a damaged backup, never a complete-looking part.
        let mut names: Vec<&String> = entries.iter().filter(|(_, a)| !a.is_dir()).map(|(n, _)| n).collect();
        names.sort_by_key(|n| *n != CATALOG);
        for n in names {
            self.conn.with(|s| s.remove(&format!("{dir}/{n}"))).map_err(|e| self.conn.err(e))?;
        }
        self.conn.with(|s| s.rmdir(dir)).map_err(|e| self.conn.err(e))
    }
}

impl Target for SftpTarget {
    fn url(&self) -> String {
        self.conn.url.clone()
    }

    fn hosts(&self) -> Result<Vec<String>, ArchiveError> {
        let entries = self.conn.with(|s| s.read_dir(&self.root)).map_err(|e| self.conn.err(e))?;
        let mut v: Vec<String> = entries
            .into_iter()
            .filter(|(n, a)| a.is_dir() && !n.starts_with('.') && n != "lost+found")
            .map(|(n, _)| n)
            .collect();
        v.sort();
        Ok(v)
    }

    fn scan(&self, host: &str) -> Result<Vec<Listed>, ArchiveError> {
        let hd = self.host_dir(host)?;
        let entries = match self.conn.with(|s| s.read_dir(&hd)) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.conn.err(e)),
        };
        let mut dirs: Vec<(String, Attrs)> =
            entries.into_iter().filter(|(n, a)| a.is_dir() && !n.starts_with('.')).collect();
        dirs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::new();
        for (name, own) in dirs {
            let dir = format!("{hd}/{name}");
            let inside = self.conn.with(|s| s.read_dir(&dir)).unwrap_or_default();
            let state = self.state_of(&dir, &own, &inside);
            let bytes = inside.iter().filter_map(|(_, a)| a.size).fold(0u64, u64::saturating_add);
            let modified = inside
                .iter()
                .filter_map(|(_, a)| a.mtime)
                .max()
                .map(|t| std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.into()));
            out.push(Listed { location: self.conn.at(&dir), name, state, bytes, modified });
        }
        Ok(out)
    }

    fn begin(&self, host: &str, name: &str) -> Result<Arc<dyn Upload>, ArchiveError> {
        plain("backup", name)?;
        let hd = self.host_dir(host)?;
        match self.conn.with(|s| s.lstat(&self.root)) {
            Ok(a) if a.is_dir() => {}
            Ok(_) => return Err(self.conn.err(std::io::Error::other(format!("{} is not a directory", self.root)))),
            Err(e) => {
                return Err(self.conn.err(std::io::Error::new(
                    e.kind(),
                    format!("{e} (create the directory {} on the server)", self.root),
                )))
            }
        }
        if self.conn.with(|s| s.lstat(&hd)).is_err() {
            self.conn.with(|s| s.mkdir(&hd)).map_err(|e| self.conn.err(e))?;
        }
        let staging = format!("{hd}/{name}.partial");
        self.conn.with(|s| s.mkdir(&staging)).map_err(|e| self.conn.err(e))?;
        Ok(Arc::new(SftpUpload {
            target: self.clone(),
            staging,
            done: format!("{hd}/{name}"),
            location: self.conn.at(&format!("{hd}/{name}")),
        }))
    }

    fn backup(&self, host: &str, name: &str) -> Result<Arc<dyn Objects>, ArchiveError> {
        plain("backup", name)?;
        Ok(Arc::new(SftpObjects { conn: self.conn.clone(), dir: format!("{}/{name}", self.host_dir(host)?) }))
    }

    fn itself(&self) -> Result<Option<Arc<dyn Objects>>, ArchiveError> {
        match self.conn.with(|s| s.lstat(&format!("{}/{CATALOG}", self.root))) {
            Ok(a) if a.is_file() => Ok(Some(Arc::new(SftpObjects { conn: self.conn.clone(), dir: self.root.clone() }))),
            _ => Ok(None),
        }
    }

    fn remove_interrupted(&self, host: &str, l: &Listed) -> Result<bool, ArchiveError> {
        if !l.name.ends_with(".partial") {
            return Ok(false);
        }
        let dir = format!("{}/{}", self.host_dir(host)?, l.name);
        // Look again: a run that wrote meanwhile is alive.
        let own = self.conn.with(|s| s.lstat(&dir)).map_err(|e| self.conn.err(e))?;
        let inside = self.conn.with(|s| s.read_dir(&dir)).map_err(|e| self.conn.err(e))?;
        if self.state_of(&dir, &own, &inside) != State::Interrupted {
            return Ok(false);
        }
        self.remove_tree(&dir)?;
        Ok(true)
    }

    fn delete(&self, host: &str, name: &str) -> Result<(), ArchiveError> {
        plain("backup", name)?;
        let dir = format!("{}/{name}", self.host_dir(host)?);
        self.remove_tree(&dir)
    }

    /// Created with SFTP's exclusive open (`CREAT|EXCL`), then written: a
    /// marker being written reads as empty for a moment, which the lock
    /// takes as held.
    fn create_marker(&self, key: &str, data: &[u8]) -> Result<bool, ArchiveError> {
        if !super::lock::marker_key(key) {
            return Err(super::lock::bad_key(&self.url(), key));
        }
        if let Some((host, _)) = key.split_once('/') {
            let hd = self.host_dir(host)?;
            if self.conn.with(|s| s.lstat(&hd)).is_err() {
                self.conn.with(|s| s.mkdir(&hd)).map_err(|e| self.conn.err(e))?;
            }
        }
        let path = format!("{}/{key}", self.root);
        let handle = match self.conn.with(|s| s.open(&path, wire::WRITE_FLAG | wire::CREAT | wire::EXCL)) {
            Ok(h) => h,
            // SFTP v3 has no "exists" status: an exclusive open of an existing file fails with FAILURE.
            Err(_) if self.conn.with(|s| s.lstat(&path)).is_ok() => return Ok(false),
            Err(e) => return Err(self.conn.err(e)),
        };
        let mut w = SftpWriter::new(self.conn.clone(), path.clone(), handle, data.len());
        w.write_all(data).map_err(|e| self.conn.err(e))?;
        Box::new(w).finish().map_err(|e| self.conn.err(e))?;
        Ok(true)
    }

    fn read_marker(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        if !super::lock::marker_key(key) {
            return Err(super::lock::bad_key(&self.url(), key));
        }
        let (dir, name) = match key.rsplit_once('/') {
            Some((host, name)) => (self.host_dir(host)?, name),
            None => (self.root.clone(), key),
        };
        let objects = SftpObjects { conn: self.conn.clone(), dir };
        match objects.open_file_any(name, super::lock::MAX_MARKER) {
            Ok(f) => super::read_whole(&f, name, super::lock::MAX_MARKER).map(Some).map_err(|e| self.conn.err(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.conn.err(e)),
        }
    }

    fn remove_marker(&self, key: &str) -> Result<(), ArchiveError> {
        if !super::lock::marker_key(key) {
            return Err(super::lock::bad_key(&self.url(), key));
        }
        match self.conn.with(|s| s.remove(&format!("{}/{key}", self.root))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.conn.err(e)),
            _ => Ok(()),
        }
    }

    fn free_space(&self) -> Result<Option<u64>, ArchiveError> {
        self.conn.with(|s| s.free_space(&self.root)).map_err(|e| self.conn.err(e))
    }
}

/// A backup being written into `HOST/NAME.partial` on the server.
#[derive(Debug)]
struct SftpUpload {
    target: SftpTarget,
    staging: String,
    done: String,
    location: String,
}

/// About how many bytes a writer buffers before it sends them.
const BATCH: usize = 1 << 20;

/// An object being written; volumes go out in batches of about 1 MiB (whole
/// WRITE requests of the session's size) whose requests stay in flight
/// across batches (up to [`wire::IN_FLIGHT`] bytes), so the
/// compressor's next frame is sent while the server still acknowledges
/// the last one.
struct SftpWriter {
    conn: Conn,
    path: String,
    handle: Option<Handle>,
    offset: u64,
    buf: Vec<u8>,
    /// A batch is sent once this many bytes are buffered: whole WRITE requests.
    batch: usize,
    /// The WRITE requests sent and not yet acknowledged.
    queued: std::collections::VecDeque<u32>,
}

impl SftpWriter {
    fn new(conn: Conn, path: String, handle: Handle, chunk: usize) -> SftpWriter {
        let chunk = chunk.max(1);
        let batch = (BATCH / chunk).max(1) * chunk;
        SftpWriter {
            conn,
            path,
            handle: Some(handle),
            offset: 0,
            buf: Vec::with_capacity(batch),
            batch,
            queued: std::collections::VecDeque::new(),
        }
    }

    /// Send the buffer, or with `whole` only its whole batches, keeping the
    /// rest for the next (its replies are awaited later, as the window fills
    /// or at the end).
    fn send(&mut self, whole: bool) -> std::io::Result<()> {
        let n = if whole { self.buf.len() / self.batch * self.batch } else { self.buf.len() };
        if n == 0 {
            return Ok(());
        }
        let h = self.handle.clone().ok_or_else(|| std::io::Error::other("the object is closed"))?;
        let (offset, path) = (self.offset, self.path.clone());
        let (buf, queued) = (&self.buf[..n], &mut self.queued);
        self.conn.with(|s| s.write_queued(&h, offset, buf, queued, &path))?;
        self.offset += n as u64;
        self.buf.drain(..n);
        Ok(())
    }
}

impl Write for SftpWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.batch {
            self.send(true)?;
        }
        Ok(data.len())
    }
    /// Sends what is buffered; the server's acknowledgements are awaited by [`ObjectWriter::finish`].
    fn flush(&mut self) -> std::io::Result<()> {
        self.send(false)
    }
}

impl ObjectWriter for SftpWriter {
    fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        self.send(false)?;
        let h = self.handle.take().ok_or_else(|| std::io::Error::other("the object is closed"))?;
        let path = self.path.clone();
        let queued = &mut self.queued;
        self.conn.with(|s| {
            let written = s.await_writes(queued, &path).and_then(|()| s.fsync(&h, &path));
            // Closed either way: a failed write leaves no handle open on the server.
            let closed = s.close(&h);
            written.and(closed)
        })
    }
}

impl Drop for SftpWriter {
    fn drop(&mut self) {
        let path = self.path.clone();
        let queued = &mut self.queued;
        let handle = self.handle.take();
        // Collect the replies still in flight (they would otherwise wait among another request's), then close.
        let _ = self.conn.with(|s| {
            let _ = s.await_writes(queued, &path);
            match handle {
                Some(h) => s.close(&h),
                None => Ok(()),
            }
        });
    }
}

impl SftpUpload {
    fn open(&self, name: &str) -> std::io::Result<SftpWriter> {
        plain("object", name).map_err(std::io::Error::other)?;
        let path = format!("{}/{name}", self.staging);
        let conn = self.target.conn.clone();
        let (handle, chunk) =
            conn.with(|s| Ok((s.open(&path, wire::WRITE_FLAG | wire::CREAT | wire::EXCL)?, s.write_chunk())))?;
        Ok(SftpWriter::new(conn, path, handle, chunk))
    }
}

impl Upload for SftpUpload {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self, name: &str) -> std::io::Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(self.open(name)?))
    }

    fn commit(&self, catalog: &[u8]) -> Result<Arc<dyn Objects>, ArchiveError> {
        let conn = &self.target.conn;
        let mut w = Box::new(self.open(CATALOG).map_err(|e| conn.err(e))?);
        w.write_all(catalog).map_err(|e| conn.err(e))?;
        w.finish().map_err(|e| conn.err(e))?;
        // SFTP v3 RENAME never replaces: a backup of the same name stays as it was.
        conn.with(|s| s.rename(&self.staging, &self.done)).map_err(|e| conn.err(e))?;
        Ok(Arc::new(SftpObjects { conn: conn.clone(), dir: self.done.clone() }))
    }

    fn abort(&self) {
        let _ = self.target.remove_tree(&self.staging);
    }
}

/// The objects of one backup on the server.
#[derive(Debug)]
struct SftpObjects {
    conn: Conn,
    dir: String,
}

/// A volume open on the server, read by range.
#[derive(Debug)]
struct SftpFile {
    conn: Conn,
    path: String,
    handle: Handle,
    len: u64,
}

impl ObjectRead for SftpFile {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.len) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{}: read past its end", self.path),
            ));
        }
        self.conn.with(|s| s.read_at(&self.handle, offset, buf, &self.path))
    }
    fn read_ahead(&self) -> usize {
        super::REMOTE_READ_AHEAD
    }
}

impl Drop for SftpFile {
    fn drop(&mut self) {
        let _ = self.conn.with(|s| s.close(&self.handle));
    }
}

impl SftpObjects {
    fn open_file(&self, name: &str, max: u64) -> std::io::Result<SftpFile> {
        plain("object", name).map_err(std::io::Error::other)?;
        self.open_file_any(name, max)
    }

    /// [`SftpObjects::open_file`] for any name in the directory (markers are hidden names).
    fn open_file_any(&self, name: &str, max: u64) -> std::io::Result<SftpFile> {
        let path = format!("{}/{name}", self.dir);
        let a = self.conn.with(|s| s.lstat(&path))?;
        // Attacker-written: a regular file, never a link or a device, and bounded.
        if !a.is_file() {
            return Err(std::io::Error::other(format!("{path}: is not a regular file (refused)")));
        }
        let len = a.size.ok_or_else(|| std::io::Error::other(format!("{path}: the server gives no size")))?;
        if len > max {
            return Err(std::io::Error::other(format!("{path}: is {len} bytes, more than the {max} it may have")));
        }
        let handle = self.conn.with(|s| s.open(&path, wire::READ_FLAG))?;
        Ok(SftpFile { conn: self.conn.clone(), path, handle, len })
    }
}

impl Objects for SftpObjects {
    fn location(&self) -> String {
        self.conn.at(&self.dir)
    }

    fn open_volume(&self, name: &str, max: u64) -> std::io::Result<Arc<dyn ObjectRead>> {
        Ok(Arc::new(self.open_file(name, max)?))
    }

    fn read(&self, name: &str, max: u64) -> std::io::Result<Vec<u8>> {
        let f = self.open_file(name, max)?;
        super::read_whole(&f, name, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_user_port_and_home_relative_paths() {
        let a = Address::parse("sftp://backup@vault.example:2222/srv/backup/").expect("parse");
        assert_eq!(
            a,
            Address {
                user: Some("backup".into()),
                host: "vault.example".into(),
                port: Some(2222),
                path: "/srv/backup".into()
            }
        );
        let a = Address::parse("sftp://vault/~/backups").expect("parse");
        assert_eq!((a.user, a.port, a.path.as_str()), (None, None, "backups"));
        let a = Address::parse("sftp://[::1]:22/b").expect("v6");
        assert_eq!((a.host.as_str(), a.port), ("::1", Some(22)));
    }

    #[test]
    fn urls_that_would_become_ssh_options_or_leave_the_path_are_refused() {
        for bad in [
            "sftp://-oProxyCommand=x/p",
            "sftp://u@-host/p",
            "sftp://host:99999/p",
            "sftp://host",
            "sftp://ho st/p",
            "sftp://host/a/../b",
            "sftp:///p",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_ssh_command_never_asks_and_ends_its_options_before_the_host() {
        let a = Address::parse("sftp://u@h:2200/p").expect("parse");
        let c = a.command(Some("/etc/lifeboat/ssh_config")).cmdline();
        assert!(c.contains("BatchMode=yes") && c.contains("-F /etc/lifeboat/ssh_config"), "{c}");
        assert!(c.ends_with("-p 2200 -l u -s -- h sftp"), "{c}");
    }
}
