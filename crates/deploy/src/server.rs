//! The deployment server: what each route serves, and the status of every client.
//!
//! | route | what |
//! |---|---|
//! | `GET /boot.ipxe` | the iPXE script every box boots first: it chains to its own, by MAC and serial |
//! | `GET /ipxe/MAC[/SERIAL]` | the box's own script (kernel, initramfs, its command line), `exit` (boot from disk) once it is done, or a refusal for a box the plan does not name |
//! | `GET /pxe/NAME` | the rescue system's files in the served directory (`vmlinuz`, `initrd.img`) |
//! | `GET /backup/NAME` | the golden backup's objects, read-only, with `Range:` |
//! | `GET /clone/ID` | the clone file of the client (ID: its MAC or serial) |
//! | `POST /status/ID` | a client's report: `PHASE [MESSAGE]` (`booted`, `recovering`, `done`, `failed REASON`) |
//! | `GET /status`, `/status.json` | every client's phase, as text or JSON |
//!
//! Names in paths are single components of letters, digits and `.-_+:`;
//! anything else, links and other than plain files are 404, so nothing
//! outside the two served directories is ever read.

use crate::http::{self, parse_range, read_request, write_head, Range, Request};
use crate::plan::{normalize_mac, ClonePlan};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The most connections served at once (more are answered 503).
pub const MAX_CONNECTIONS: usize = 128;
/// The most connections one peer address may hold at once by default (more are answered 503). A
/// farm's box reads with up to 8 ranged GETs at once, and boxes behind one NAT (or QEMU's user
/// network) share an address: 32 lets four such boxes stream, and leaves three quarters of the slots
/// to others. `serve --max-per-peer` sets it (1..=[`MAX_CONNECTIONS`]).
pub const MAX_PER_PEER: usize = 32;
/// How long a client may take to send its whole request (head and body), however it drips it.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// The time any response may take, plus [`MIN_RATE`] for its bytes: a reader that stops reading
/// loses its connection (and its slot) instead of holding it.
const RESPONSE_BASE: Duration = Duration::from_secs(60);
/// The slowest rate (bytes per second) a response is allowed beyond [`RESPONSE_BASE`].
const MIN_RATE: u64 = 64 << 10;

/// What a deployment server serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory with the rescue system's network-boot files (`vmlinuz`, `initrd.img`).
    pub dir: PathBuf,
    /// The golden backup's directory.
    pub backup: PathBuf,
    /// The clone plan.
    pub plan: ClonePlan,
    /// The URL clients reach this server at (`http://192.0.2.5:8080`).
    pub url: String,
    /// Kernel command line arguments before lifeboat's own (consoles).
    pub kernel_args: String,
    /// What a client does after its recovery: `poweroff` or `reboot`.
    pub done: String,
    /// The most connections one peer address may hold at once (bounded to 1..=[`MAX_CONNECTIONS`]).
    pub max_per_peer: usize,
    /// Where every planned box's phase is kept across restarts of the server (none: in memory only).
    /// A box recorded `done` boots from its disk instead of being deployed again.
    pub state: Option<PathBuf>,
}

/// The largest state file read back.
const MAX_STATE: u64 = 4 << 20;

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listening address cannot be bound.
    #[error("cannot listen on {0}: {1} (is another server there? give --listen ADDRESS:PORT)")]
    Bind(String, std::io::Error),
    /// A served directory lacks what it must have.
    #[error("{0}: {1}")]
    Missing(PathBuf, String),
    /// The status of a server cannot be read.
    #[error("cannot read the status from {0}: {1}")]
    Status(String, String),
    /// The state file kept from an earlier run cannot be used.
    #[error("{0}: {1}; the file records which boxes are deployed already (they boot from their disks): fix it, or remove it to deploy every box of the plan again")]
    State(PathBuf, String),
}

/// One client as the server sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientStatus {
    /// Its MAC or serial.
    pub id: String,
    /// The host name the plan gives it (empty for a box the plan does not name).
    pub hostname: String,
    /// Its last phase: `planned`, `pxe`, `booted`, `recovering`, `done`, `failed`, `unknown` (not in the plan).
    pub phase: String,
    /// What it said with its last report.
    pub message: String,
    /// When it first asked for its boot script (seconds since the epoch).
    pub started: Option<u64>,
    /// When its phase last changed (seconds since the epoch).
    pub updated: Option<u64>,
}

/// Every client's status and what the server sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The clients, planned ones first in plan order, then unknown boxes.
    pub clients: Vec<ClientStatus>,
    /// Bytes of the golden backup sent so far, to all clients.
    pub backup_bytes_sent: u64,
}

impl Status {
    /// The status as a table for people.
    pub fn table(&self) -> String {
        let mut s = format!("{:<20} {:<16} {:<11} {:>6}  {}\n", "CLIENT", "HOSTNAME", "PHASE", "SECS", "MESSAGE");
        for c in &self.clients {
            let secs = match (c.started, c.updated) {
                (Some(a), Some(b)) if b >= a => (b - a).to_string(),
                _ => "-".into(),
            };
            s.push_str(&format!("{:<20} {:<16} {:<11} {:>6}  {}\n", c.id, c.hostname, c.phase, secs, c.message));
        }
        let done = self.clients.iter().filter(|c| c.phase == "done").count();
        let failed = self.clients.iter().filter(|c| c.phase == "failed").count();
        s.push_str(&format!(
            "{done} done, {failed} failed, {} in all; {} MB of the backup sent\n",
            self.clients.len(),
            self.backup_bytes_sent / 1_000_000
        ));
        s
    }
}

/// Read the state file into the planned boxes' entries; how many of them are done. A missing file is
/// a first run. Only boxes of the plan, under the same host name, and known phases are taken back.
fn restore_state(
    path: &Path,
    plan: &ClonePlan,
    clients: &mut BTreeMap<String, ClientStatus>,
) -> Result<usize, ServeError> {
    let bad = |m: String| ServeError::State(path.to_path_buf(), m);
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(bad(e.to_string())),
    };
    let mut data = Vec::new();
    f.take(MAX_STATE + 1).read_to_end(&mut data).map_err(|e| bad(e.to_string()))?;
    if data.len() as u64 > MAX_STATE {
        return Err(bad(format!("more than {MAX_STATE} bytes")));
    }
    let saved: Vec<ClientStatus> =
        serde_json::from_slice(&data).map_err(|e| bad(format!("not a state file of lifeboat serve ({e})")))?;
    let mut done = 0;
    for s in saved {
        let Some(c) = clients.get_mut(&s.id) else { continue };
        let planned = plan.by_id(&s.id).is_some_and(|p| p.hostname == s.hostname);
        if !planned || !matches!(s.phase.as_str(), "pxe" | "booted" | "fetching" | "recovering" | "done" | "failed") {
            continue;
        }
        done += usize::from(s.phase == "done");
        c.phase = s.phase;
        c.message = s.message.chars().filter(|c| !c.is_control()).take(300).collect();
        c.started = s.started;
        c.updated = s.updated;
    }
    Ok(done)
}

/// Write the state file whole: a temporary file beside it, synced, renamed over it.
fn write_state(path: &Path, clients: &[&ClientStatus]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(clients).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A deployment server, bound and ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: Config,
    clients: Mutex<BTreeMap<String, ClientStatus>>,
    order: Vec<String>,
    sent: AtomicU64,
    slots: Mutex<Slots>,
    restored: usize,
}

/// The connections served now, in all and by peer address.
#[derive(Debug, Default)]
struct Slots {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// A connection's slot, given back when it is dropped: also when its thread panics or cannot start.
struct Slot {
    shared: Arc<Shared>,
    peer: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.shared.slots.lock().unwrap_or_else(|p| p.into_inner());
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.by_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.by_peer.remove(&self.peer);
            }
        }
    }
}

impl Shared {
    /// A slot for a connection from `peer`, or None when the server or that peer is at its limit.
    fn take_slot(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mine = s.by_peer.get(&peer).copied().unwrap_or(0);
        if s.total >= MAX_CONNECTIONS || mine >= self.config.max_per_peer.clamp(1, MAX_CONNECTIONS) {
            return None;
        }
        s.total += 1;
        *s.by_peer.entry(peer).or_insert(0) += 1;
        Some(Slot { shared: Arc::clone(self), peer })
    }
}

/// A stream whose reads (or writes) all end at one deadline, however slowly the peer drips.
struct Deadline<'a> {
    stream: &'a TcpStream,
    end: Instant,
}

impl Deadline<'_> {
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the deadline passed"));
        }
        Ok(left)
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        (&mut &*self.stream).read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        (&mut &*self.stream).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether `name` may be served from a directory: one component, plain characters.
pub fn is_served_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
}

impl Server {
    /// Check the served directories and bind `listen`.
    pub fn bind(listen: &str, config: Config) -> Result<Server, ServeError> {
        for f in ["vmlinuz", "initrd.img"] {
            if !config.dir.join(f).is_file() {
                return Err(ServeError::Missing(
                    config.dir.clone(),
                    format!("has no {f}: give the directory `lifeboat mkrescue --format pxe` made"),
                ));
            }
        }
        if !config.backup.join("backup.json").is_file() {
            return Err(ServeError::Missing(
                config.backup.clone(),
                "is not a backup's directory (no backup.json)".into(),
            ));
        }
        let listener = TcpListener::bind(listen).map_err(|e| ServeError::Bind(listen.into(), e))?;
        let mut clients = BTreeMap::new();
        let mut order = Vec::new();
        for c in &config.plan.clients {
            order.push(c.id().to_string());
            clients.insert(
                c.id().to_string(),
                ClientStatus {
                    id: c.id().into(),
                    hostname: c.hostname.clone(),
                    phase: "planned".into(),
                    message: String::new(),
                    started: None,
                    updated: None,
                },
            );
        }
        let restored = match &config.state {
            Some(path) => restore_state(path, &config.plan, &mut clients)?,
            None => 0,
        };
        let shared = Shared {
            restored,
            config,
            clients: Mutex::new(clients),
            order,
            sent: AtomicU64::new(0),
            slots: Mutex::new(Slots::default()),
        };
        Ok(Server { listener, shared: Arc::new(shared) })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The status of every client now.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// How many planned boxes the state file recorded as deployed when the server started.
    pub fn restored_done(&self) -> usize {
        self.shared.restored
    }

    /// Serve until the process ends, one thread per connection.
    pub fn run(&self) {
        for stream in self.listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Ok(peer) = stream.peer_addr() else { continue };
            let Some(slot) = self.shared.take_slot(peer.ip()) else {
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                let mut s = stream;
                let _ = write_head(&mut s, 503, &[("Retry-After", "5".into())], 0);
                continue;
            };
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new().name("serve-connection".into()).spawn(move || {
                let _slot = slot;
                shared.connection(stream);
            });
            if let Err(e) = spawned {
                // The closure (its stream and slot) is dropped: the client sees the connection close.
                log::warn!("{peer}: cannot start a thread for the connection: {e}");
            }
        }
    }
}

/// What a route answers.
enum Answer {
    Text(u16, &'static str, String),
    File(PathBuf),
}

impl Shared {
    fn status(&self) -> Status {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<ClientStatus> = self.order.iter().filter_map(|id| clients.get(id).cloned()).collect();
        list.extend(clients.values().filter(|c| !self.order.contains(&c.id)).cloned());
        Status { clients: list, backup_bytes_sent: self.sent.load(Ordering::Relaxed) }
    }

    fn set_phase(&self, id: &str, phase: &str, message: &str) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        // A flood of invented ids (boxes not in the plan) does not grow the table without end.
        let unplanned = clients.keys().filter(|k| self.config.plan.by_id(k).is_none()).count();
        if !clients.contains_key(id)
            && (clients.len() >= 4096 || (self.config.plan.by_id(id).is_none() && unplanned >= 256))
        {
            return;
        }
        // What a box (or anyone on its network) says is shown on terminals: printable and short.
        let message: String = message.chars().filter(|c| !c.is_control()).take(300).collect();
        let c = clients.entry(id.to_string()).or_insert_with(|| ClientStatus {
            id: id.into(),
            hostname: String::new(),
            phase: String::new(),
            message: String::new(),
            started: None,
            updated: None,
        });
        let t = now();
        if phase == "pxe" || c.started.is_none() {
            c.started = Some(t);
        }
        c.phase = phase.into();
        log::info!("{id} ({}): {phase} {message}", c.hostname);
        c.message = message;
        c.updated = Some(t);
        if let Some(path) = &self.config.state {
            // Written while the table is locked, so the file never goes back to an older state.
            let planned: Vec<&ClientStatus> =
                clients.values().filter(|c| self.config.plan.by_id(&c.id).is_some()).collect();
            if let Err(e) = write_state(path, &planned) {
                log::warn!("{}: cannot keep the boxes' state: {e}", path.display());
            }
        }
    }

    fn connection(&self, stream: TcpStream) {
        let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        let request = Deadline { stream: &stream, end: Instant::now() + REQUEST_DEADLINE };
        let mut stream = Deadline { stream: &stream, end: Instant::now() + RESPONSE_BASE };
        let req = match read_request(request) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(refusal) => {
                log::warn!("{peer}: refused ({}): {}", refusal.status, refusal.why);
                let body = format!("{}\n", refusal.why);
                let _ = write_head(
                    &mut stream,
                    refusal.status,
                    &[("Content-Type", "text/plain".into())],
                    body.len() as u64,
                )
                .and_then(|_| stream.write_all(body.as_bytes()));
                return;
            }
        };
        log::debug!("{peer}: {} {}", req.method, req.path);
        let head = req.method == "HEAD";
        let result =
            match self.route(&req) {
                Answer::Text(status, kind, body) => {
                    write_head(&mut stream, status, &[("Content-Type", kind.into())], body.len() as u64)
                        .and_then(|_| if head { Ok(()) } else { stream.write_all(body.as_bytes()) })
                }
                Answer::File(path) => self.send_file(&mut stream, &req, &path, head),
            };
        if let Err(e) = result {
            log::debug!("{peer}: {} {}: {e}", req.method, req.path);
        }
    }

    fn route(&self, req: &Request) -> Answer {
        let text = |s: u16, b: String| Answer::Text(s, "text/plain; charset=utf-8", b);
        let Some(decoded) =
            req.path.trim_start_matches('/').split('/').map(http::percent_decode).collect::<Option<Vec<String>>>()
        else {
            return text(400, "a path that is not UTF-8\n".into());
        };
        let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
        let get = req.method == "GET" || req.method == "HEAD";
        match (req.method.as_str(), parts.as_slice()) {
            (_, ["boot.ipxe"]) if get => text(200, self.chain_script()),
            (_, ["ipxe", mac]) if get => text(200, self.client_script(mac, None)),
            (_, ["ipxe", mac, serial]) if get => text(200, self.client_script(mac, Some(serial))),
            (_, ["pxe", name]) if get => self.file(&self.config.dir, name),
            (_, ["backup", name]) if get => self.file(&self.config.backup, name),
            (_, ["clone", id]) if get => match self.config.plan.by_id(id) {
                Some(c) => text(200, c.clone_text.clone()),
                None => text(404, format!("no client {id} in the clone plan\n")),
            },
            (_, ["status"]) if get => text(200, self.status().table()),
            (_, ["status.json"]) if get => {
                Answer::Text(200, "application/json", serde_json::to_string_pretty(&self.status()).unwrap_or_default())
            }
            ("POST", ["status", id]) => self.report(id, &req.body),
            (_, ["boot.ipxe" | "ipxe" | "pxe" | "backup" | "clone" | "status" | "status.json", ..]) => {
                text(405, "not allowed\n".into())
            }
            _ => text(404, "not found\n".into()),
        }
    }

    fn report(&self, id: &str, body: &[u8]) -> Answer {
        let text = |s: u16, b: &str| Answer::Text(s, "text/plain; charset=utf-8", b.to_string());
        let id = normalize_mac(id).unwrap_or_else(|| id.to_string());
        if self.config.plan.by_id(&id).is_none() {
            return text(404, "no such client in the clone plan\n");
        }
        let body = String::from_utf8_lossy(body);
        let line = body.lines().next().unwrap_or_default().trim();
        let (phase, message) = line.split_once(' ').unwrap_or((line, ""));
        if !matches!(phase, "booted" | "fetching" | "recovering" | "done" | "failed") {
            return text(400, "the phase is one of booted, fetching, recovering, done, failed\n");
        }
        // Done is final: a report cannot make a deployed box deploy (erase its disks) again.
        let done = self.clients.lock().map(|c| c.get(&id).is_some_and(|s| s.phase == "done")).unwrap_or(true);
        if done {
            return text(409, "this box is deployed already\n");
        }
        let message: String = message.chars().filter(|c| !c.is_control()).take(300).collect();
        self.set_phase(&id, phase, &message);
        text(200, "ok\n")
    }

    fn file(&self, dir: &Path, name: &str) -> Answer {
        let nf = || Answer::Text(404, "text/plain; charset=utf-8", "not found\n".into());
        if !is_served_name(name) {
            return nf();
        }
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_file() => Answer::File(path),
            _ => nf(),
        }
    }

    fn send_file(&self, w: &mut Deadline, req: &Request, path: &Path, head: bool) -> std::io::Result<()> {
        let mut f = std::fs::File::open(path)?;
        let size = f.metadata()?.len();
        let backup = path.starts_with(&self.config.backup);
        let (status, start, len, mut headers) = match parse_range(req.header("range"), size) {
            Range::Whole => (200, 0, size, vec![]),
            Range::Part(a, b) => (206, a, b - a + 1, vec![("Content-Range", format!("bytes {a}-{b}/{size}"))]),
            Range::Unsatisfiable => {
                return write_head(w, 416, &[("Content-Range", format!("bytes */{size}"))], 0);
            }
        };
        headers.push(("Accept-Ranges", "bytes".into()));
        headers.push(("Content-Type", "application/octet-stream".into()));
        // A byte range may take its share of time at the slowest allowed rate, and no more.
        w.end = Instant::now() + RESPONSE_BASE + Duration::from_secs(len / MIN_RATE);
        write_head(w, status, &headers, len)?;
        if head {
            return Ok(());
        }
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(start))?;
        let sent = std::io::copy(&mut f.take(len), w)?;
        if backup {
            self.sent.fetch_add(sent, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The first script: chain to the box's own one, by its MAC and SMBIOS serial.
    fn chain_script(&self) -> String {
        format!(
            "#!ipxe\nchain {}/ipxe/${{net0/mac}}/${{serial:uristring}} || chain {}/ipxe/${{net0/mac}}\n",
            self.config.url, self.config.url
        )
    }

    /// The script of one box.
    fn client_script(&self, mac: &str, serial: Option<&str>) -> String {
        let url = &self.config.url;
        // Only a serial of plain characters is kept or shown (it comes from the box's URL).
        let serial = serial.filter(|s| crate::plan::is_serial(s));
        let Some(client) = self.config.plan.find(Some(mac), serial) else {
            let id = normalize_mac(mac).unwrap_or_else(|| "?".into());
            self.set_phase(&id, "unknown", &format!("not in the clone plan (serial {})", serial.unwrap_or("-")));
            return format!(
                "#!ipxe\necho lifeboat: {id} (serial {}) is not in the clone plan: booting from disk\nsleep 5\nexit\n",
                serial.unwrap_or("-")
            );
        };
        let id = client.id().to_string();
        let done = self.clients.lock().map(|c| c.get(&id).is_some_and(|s| s.phase == "done")).unwrap_or(false);
        if done {
            return format!(
                "#!ipxe\necho lifeboat: {} is deployed already: booting from disk\nexit\n",
                client.hostname
            );
        }
        self.set_phase(&id, "pxe", "fetching the rescue system");
        format!(
            "#!ipxe\necho lifeboat: deploying {host} ({id}) from {url}\n\
             kernel {url}/pxe/vmlinuz initrd=initrd.img {args} lifeboat.recover=auto lifeboat.done={done} \
             lifeboat.from={url}/backup lifeboat.clone={url}/clone/{id} lifeboat.status={url}/status/{id}\n\
             initrd {url}/pxe/initrd.img\nboot\n",
            host = client.hostname,
            args = self.config.kernel_args,
            done = self.config.done,
        )
    }
}

fn client_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// A box's side (the rescue system's boot script): GET a small text from
/// the server (its clone file), at most 1 MiB, tried again for a minute.
pub fn fetch_text(url: &str) -> Result<String, ServeError> {
    let fail = |e: String| ServeError::Status(url.into(), e);
    let mut last = String::new();
    for _ in 0..12 {
        match client_agent().get(url).call() {
            Ok(mut r) if r.status() == 200 => {
                return r.body_mut().with_config().limit(1 << 20).read_to_string().map_err(|e| fail(e.to_string()))
            }
            Ok(r) if r.status().is_client_error() => return Err(fail(format!("the server answered {}", r.status()))),
            Ok(r) => last = format!("the server answered {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    Err(fail(last))
}

/// A box's side: POST its phase (`done`, `failed REASON`) to the server.
pub fn send_report(url: &str, text: &str) -> Result<(), ServeError> {
    let r = client_agent().post(url).send(text).map_err(|e| ServeError::Status(url.into(), e.to_string()))?;
    if r.status() != 200 {
        return Err(ServeError::Status(url.into(), format!("the server answered {}", r.status())));
    }
    Ok(())
}

/// Read the status of a running server at `url` (`http://HOST:PORT`).
pub fn fetch_status(url: &str) -> Result<Status, ServeError> {
    let fail = |e: String| ServeError::Status(url.into(), e);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .new_agent();
    let mut r =
        agent.get(&format!("{}/status.json", url.trim_end_matches('/'))).call().map_err(|e| fail(e.to_string()))?;
    if r.status() != 200 {
        return Err(fail(format!("the server answered {}", r.status())));
    }
    let text = r.body_mut().with_config().limit(16 << 20).read_to_string().map_err(|e| fail(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| fail(format!("not a lifeboat status: {e}")))
}
