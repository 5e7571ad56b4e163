//! `tape://` targets: a tape drive on this machine (`tape:///dev/nst0`) or
//! on another one reached over SSH (`tape://[user@]host/dev/nst0`, the way
//! rmt served tapes: `ssh host dd of=/dev/nst0`, no lifeboat on the tape
//! host). The drive is always the non-rewinding device; positioning is
//! `mt -f DEVICE rewind|fsf N`.
//!
//! A tape holds one backup as three tape files, each ended by a filemark
//! and written in whole blocks of [`TapeSettings::block_size`]
//! (docs/archive-format.md, "On tape"):
//!
//! 1. the label ([`Label`]): what backup, which host, which tape, the
//!    format versions — one block, JSON, zero-padded;
//! 2. the data: every volume in order, concatenated (the last block
//!    zero-padded), read back with the sequential reader;
//! 3. the index ([`Index`]): the catalog, the manifest, the signature (and
//!    an encrypted backup's sealed catalog) — the small objects, written
//!    last because the catalog is known only at the end.
//!
//! A reader reads the label, spaces forward over the data to the index,
//! checks the catalog, manifest and signature there, rewinds and reads the
//! data once, forward only ([`Objects::sequential`]). A tape without an
//! index (a backup that was interrupted) lists as interrupted. A tape that
//! already holds data is refused unless [`TapeSettings::overwrite`] says so.

use super::{Listed, ObjectRead, ObjectWriter, Objects, State, Target, Upload, CATALOG};
use crate::ArchiveError;
use lifeboat_runner::{shell_quote, Cmd, Effect, Process, Runner, Streams};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

mod loader;
pub use loader::{ChangerDrive, ChangerLoader, ChangerStatus, InDrive, PromptLoader, Slot};

/// The default block size: 256 KiB, suited to LTO drives.
pub const DEFAULT_BLOCK_SIZE: u64 = 256 << 10;
/// The smallest and largest block size lifeboat writes.
pub const BLOCK_SIZES: std::ops::RangeInclusive<u64> = 512..=(16 << 20);
/// The largest index file read back (catalog, manifest, signature).
const MAX_INDEX: u64 = 512 << 20;
/// The label's `format`.
pub const LABEL_FORMAT: &str = "lifeboat-tape";
/// The index's `format`.
const INDEX_FORMAT: &str = "lifeboat-tape-index";
/// The version of the tape layout.
pub const TAPE_VERSION: u32 = 1;

/// How `tape://` targets write (`[backup.tape]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeSettings {
    /// Bytes per tape block; every write is one whole block.
    pub block_size: u64,
    /// Write over a tape that already holds a backup (or other data).
    pub overwrite: bool,
    /// The changer (`/dev/sgN`, on the drive's machine) that loads the next tape; None: no changer.
    pub changer: Option<String>,
    /// Bytes of data put on one tape before the next is loaded; None: until the drive reports the end.
    pub capacity: Option<u64>,
    /// Without a changer, ask a person for the next tape on the terminal (else: stop, naming it).
    pub ask: bool,
}

impl Default for TapeSettings {
    fn default() -> Self {
        TapeSettings { block_size: DEFAULT_BLOCK_SIZE, overwrite: false, changer: None, capacity: None, ask: false }
    }
}

/// Whether someone can be asked for the next tape: stdin is a terminal, or
/// `LIFEBOAT_TAPE_ASK=1` says the answers come on stdin anyway (a script that
/// loads the tapes, the tape VM test).
pub fn may_ask() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() || std::env::var("LIFEBOAT_TAPE_ASK").is_ok_and(|v| v == "1")
}

/// A device path lifeboat passes to `mt`, `dd` and `mtx`: absolute, plain characters, no `..`.
fn plain_device(device: &str) -> bool {
    device.starts_with('/')
        && device != "/"
        && !device.contains("..")
        && device.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
}

/// The first file of a lifeboat tape: what is on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// Always [`LABEL_FORMAT`].
    pub format: String,
    /// The tape layout's version ([`TAPE_VERSION`]).
    pub version: u32,
    /// The archive format version of the backup on it.
    pub archive_version: u32,
    /// The host whose backup it is.
    pub host: String,
    /// The backup's name (its creation time).
    pub backup: String,
    /// Which tape of the backup this is (1-based).
    pub tape: u32,
    /// How many tapes the backup has, when known as the tape was written
    /// (the index, on the last tape, always says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<u32>,
    /// The block size the tape was written with.
    pub block_size: u64,
    /// Where in the backup's data this tape's data starts (0 on tape 1).
    #[serde(default)]
    pub start: u64,
}

impl Label {
    /// The tape's name for people: `HOST/BACKUP tape K`.
    pub fn name(&self) -> String {
        format!("{}/{} tape {}", self.host, self.backup, self.tape)
    }
}

/// One small object in the index file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct IndexEntry {
    name: String,
    size: u64,
}

/// The index file's first line; the objects' bytes follow it in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct IndexHead {
    format: String,
    version: u32,
    host: String,
    backup: String,
    /// How many tapes the backup has.
    tapes: u32,
    /// Bytes of the data file (the volumes), without the padding.
    data_bytes: u64,
    /// Bytes of the data on each tape, in order (absent: one tape of `data_bytes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<u64>,
    objects: Vec<IndexEntry>,
}

/// What the index file of a tape holds.
#[derive(Debug, Clone)]
struct Index {
    head: IndexHead,
    objects: BTreeMap<String, Vec<u8>>,
}

impl Index {
    fn encode(&self) -> Result<Vec<u8>, ArchiveError> {
        let mut out = serde_json::to_vec(&self.head).map_err(|e| ArchiveError::Write(std::io::Error::other(e)))?;
        out.push(b'\n');
        for e in &self.head.objects {
            out.extend_from_slice(self.objects.get(&e.name).map(Vec::as_slice).unwrap_or_default());
        }
        Ok(out)
    }

    fn decode(data: &[u8]) -> Result<Index, String> {
        let nl = data.iter().position(|&b| b == b'\n').ok_or("the index has no header line")?;
        let head: IndexHead =
            serde_json::from_slice(&data[..nl]).map_err(|e| format!("the index header is damaged: {e}"))?;
        if head.format != INDEX_FORMAT || head.version != TAPE_VERSION {
            return Err(format!(
                "the index is {} version {}, not {INDEX_FORMAT} {TAPE_VERSION}",
                head.format, head.version
            ));
        }
        let mut at = nl + 1;
        let mut objects = BTreeMap::new();
        for e in &head.objects {
            let end = usize::try_from(e.size).ok().and_then(|n| at.checked_add(n)).filter(|&end| end <= data.len());
            let Some(end) = end else { return Err(format!("the index ends inside {}", e.name)) };
            objects.insert(e.name.clone(), data[at..end].to_vec());
            at = end;
        }
        Ok(Index { head, objects })
    }
}

fn is_continued(data: &[u8]) -> bool {
    let end = data.iter().position(|&b| b == b'\n' || b == 0).unwrap_or(data.len());
    serde_json::from_slice::<serde_json::Value>(&data[..end])
        .ok()
        .is_some_and(|v| v.get("format").and_then(|f| f.as_str()) == Some(CONTINUED_FORMAT))
}

fn parse_label(data: &[u8]) -> Option<Label> {
    let end = data.iter().position(|&b| b == b'\n' || b == 0).unwrap_or(data.len());
    serde_json::from_slice::<Label>(&data[..end]).ok().filter(|l| l.format == LABEL_FORMAT)
}

/// The third file of a tape that is not the last of its backup.
const CONTINUED_FORMAT: &str = "lifeboat-tape-continued";
/// The most tapes one backup may span (a bound on hostile indexes).
const MAX_TAPES: u32 = 10_000;

/// Puts the next tape of a backup into the drive: a changer loads a slot,
/// a person is asked; unattended without a changer, it fails naming the tape.
pub trait Loader: Send + Sync + Debug {
    /// Put the tape named `want` (`HOST/BACKUP tape K`) into the drive.
    /// `writing`: it is to be written (a blank or overwritable tape), else read.
    fn load(&self, want: &str, writing: bool) -> std::io::Result<()>;
}

/// Whether a write failed because the tape is full (ENOSPC, or st's early warning).
fn tape_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.raw_os_error() == Some(28)
        || e.to_string().contains("No space left on device")
}

/// A file being written on the tape; [`TapeFile::finish`] ends it with a filemark.
pub trait TapeFile: Write + Send {
    /// End the file (the drive writes the filemark when the writer closes it).
    fn finish(self: Box<Self>) -> std::io::Result<()>;
}

/// A tape drive, positioned by file: what the target needs of `mt` and `dd`.
pub trait Drive: Send + Sync + Debug {
    /// The drive for messages (`tape:///dev/nst0`).
    fn url(&self) -> String;
    /// Rewind to the start of the tape.
    fn rewind(&self) -> std::io::Result<()>;
    /// Space forward over `n` filemarks (`mt fsf N`).
    fn skip_files(&self, n: u32) -> std::io::Result<()>;
    /// Read the file at the position, up to its filemark (the position is
    /// after it then); reads ask for `block` bytes at a time.
    fn read_file(&self, block: u64) -> std::io::Result<Box<dyn Read + Send>>;
    /// Write a file at the position (the tape ends after it); every write is one block of `block` bytes.
    fn write_file(&self, block: u64) -> std::io::Result<Box<dyn TapeFile>>;
    /// What `mt status` says.
    fn status(&self) -> std::io::Result<String>;
    /// Rewind and eject the tape (`mt offline`), so that a changer can take it.
    fn eject(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where a drive is: this machine, or another reached with ssh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `[user@]host` of the machine with the drive; None: this machine.
    pub host: Option<String>,
    /// The drive's device (`/dev/nst0`).
    pub device: String,
}

impl Address {
    /// Parse `tape:///dev/nst0` or `tape://[user@]host/dev/nst0`.
    pub fn parse(url: &str) -> Result<Address, ArchiveError> {
        let fail = |why: &str| ArchiveError::Target(url.into(), why.into());
        let rest = url.strip_prefix("tape://").ok_or_else(|| fail("is not a tape:// URL"))?;
        let (host, device) = match rest.find('/') {
            Some(0) => (None, rest.to_string()),
            Some(i) => (Some(rest[..i].to_string()), rest[i..].to_string()),
            None => return Err(fail("names no device: give tape:///dev/nst0 or tape://[user@]host/dev/nst0")),
        };
        let safe = |s: &str, extra: &str| {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c) || extra.contains(c))
        };
        if !plain_device(&device) {
            return Err(fail("the device must be a plain absolute path such as /dev/nst0"));
        }
        if let Some(h) = &host {
            if !safe(h, "@:[]") || h.starts_with('-') {
                return Err(fail("the tape host must be [user@]host"));
            }
        }
        if device.rsplit('/').next().is_some_and(|n| n.starts_with("st")) {
            return Err(fail(
                "names a rewinding device (st*): give the non-rewinding one (nst*), or the tape rewinds after every file",
            ));
        }
        Ok(Address { host, device })
    }
    /// `program args` run on the drive's machine: as it is here, through
    /// `ssh -o BatchMode=yes [user@]host -- 'program args'` for a remote drive
    /// (`LIFEBOAT_SSH_CONFIG` names an ssh config file to use).
    pub fn command(&self, program: &str, args: &[String]) -> Cmd {
        match &self.host {
            None => Cmd::new(program).args(args),
            Some(host) => {
                let mut remote = vec![shell_quote(program)];
                remote.extend(args.iter().map(|a| shell_quote(a)));
                let mut c = Cmd::new("ssh");
                if let Ok(cfg) = std::env::var("LIFEBOAT_SSH_CONFIG") {
                    c = c.args(["-F", &cfg]);
                }
                c.args(["-o", "BatchMode=yes", host.as_str(), "--"]).arg(remote.join(" "))
            }
        }
    }

    /// `mt -f DEVICE args` on the drive's machine.
    pub fn mt(&self, args: &[&str]) -> Cmd {
        let mut all = vec!["-f".to_string(), self.device.clone()];
        all.extend(args.iter().map(|s| s.to_string()));
        self.command("mt", &all)
    }
}

/// What `mt status` (mt-st) says about a drive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriveStatus {
    /// A tape is loaded and ready (`ONLINE`).
    pub online: bool,
    /// The tape is write-protected (`WR_PROT`).
    pub write_protected: bool,
    /// The drive's block size: 0 is variable (any block size), None when not said.
    pub block_size: Option<u64>,
}

impl DriveStatus {
    /// Read mt-st's `mt status` text (`Tape block size 0 bytes.`, `General status bits on (...): BOT ONLINE`).
    pub fn parse(text: &str) -> DriveStatus {
        let words: Vec<&str> = text.split_whitespace().collect();
        let block_size = text
            .find("Tape block size ")
            .and_then(|i| text[i + 16..].split_whitespace().next())
            .and_then(|n| n.parse().ok());
        DriveStatus { online: words.contains(&"ONLINE"), write_protected: words.contains(&"WR_PROT"), block_size }
    }
}

/// A drive driven with `mt` and `dd` through the runner, here or over ssh.
pub struct CommandDrive {
    address: Address,
    runner: Arc<dyn Runner>,
}

impl Debug for CommandDrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandDrive").field("address", &self.address).finish_non_exhaustive()
    }
}

impl CommandDrive {
    /// The drive at `address`, its commands run by `runner`.
    pub fn new(address: Address, runner: Arc<dyn Runner>) -> CommandDrive {
        CommandDrive { address, runner }
    }

    fn mt(&self, op: &[&str]) -> std::io::Result<String> {
        let out = self.runner.probe(&self.address.mt(op)).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(out.text())
    }
}

/// A file read from a running `dd`; its exit status is checked at the end.
struct DdReader {
    out: Box<dyn Read + Send>,
    process: Option<Process>,
}

impl Read for DdReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.out.read(buf)?;
        if n == 0 {
            if let Some(p) = self.process.take() {
                p.wait().map_err(|e| std::io::Error::other(e.to_string()))?;
            }
        }
        Ok(n)
    }
}

/// A file written through a running `dd`.
struct DdWriter {
    process: Process,
}

impl Write for DdWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.process.stdin() {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("dd has no stdin")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.process.stdin() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl TapeFile for DdWriter {
    fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        self.process.close_stdin();
        self.process.wait().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string()))
    }
}

impl Drive for CommandDrive {
    fn url(&self) -> String {
        format!("tape://{}{}", self.address.host.as_deref().unwrap_or(""), self.address.device)
    }

    fn rewind(&self) -> std::io::Result<()> {
        self.mt(&["rewind"]).map(|_| ())
    }

    fn skip_files(&self, n: u32) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.mt(&["fsf", &n.to_string()]).map(|_| ())
    }

    fn read_file(&self, block: u64) -> std::io::Result<Box<dyn Read + Send>> {
        let args = vec![format!("if={}", self.address.device), format!("bs={block}"), "status=none".into()];
        let mut p = self
            .runner
            .probe_stream(&self.address.command("dd", &args))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let out = p.take_stdout().ok_or_else(|| std::io::Error::other("dd has no stdout"))?;
        Ok(Box::new(DdReader { out, process: Some(p) }))
    }

    fn write_file(&self, block: u64) -> std::io::Result<Box<dyn TapeFile>> {
        let args = vec![
            format!("of={}", self.address.device),
            format!("bs={block}"),
            "iflag=fullblock".into(),
            "status=none".into(),
        ];
        let process = self
            .runner
            .spawn(&self.address.command("dd", &args), Effect::Apply, Streams::new().stdin_pipe())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Box::new(DdWriter { process }))
    }

    fn status(&self) -> std::io::Result<String> {
        self.mt(&["status"])
    }

    fn eject(&self) -> std::io::Result<()> {
        self.mt(&["offline"]).map(|_| ())
    }
}

/// Writes whole blocks: buffers to a block, pads the last one with zeros.
struct Blocks {
    file: Box<dyn TapeFile>,
    block: usize,
    buf: Vec<u8>,
    /// Bytes given, without padding.
    written: u64,
    /// Bytes in the blocks the drive took.
    flushed: u64,
}

impl Blocks {
    fn new(file: Box<dyn TapeFile>, block: u64) -> Blocks {
        let block = block as usize;
        Blocks { file, block, buf: Vec::with_capacity(block), written: 0, flushed: 0 }
    }

    /// Add `data`; Err((e, taken)): the drive refused a block, `taken`
    /// bytes of `data` are in this file (the refused block stays in `buf`).
    fn put_some(&mut self, mut data: &[u8]) -> Result<(), (std::io::Error, usize)> {
        let mut taken = 0;
        while !data.is_empty() || self.buf.len() == self.block {
            if self.buf.len() == self.block {
                self.file.write_all(&self.buf).map_err(|e| (e, taken))?;
                self.flushed += self.block as u64;
                self.buf.clear();
                continue;
            }
            let n = (self.block - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            self.written += n as u64;
            taken += n;
            data = &data[n..];
        }
        Ok(())
    }

    fn put(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.put_some(data).map_err(|(e, _)| e)
    }

    /// End the file without the block in `buf` (the tape is full): that block and the bytes not yet given go on the next tape.
    fn split(self) -> (Vec<u8>, u64) {
        let _ = self.file.finish();
        (self.buf, self.flushed)
    }

    fn finish(mut self) -> std::io::Result<u64> {
        if !self.buf.is_empty() {
            self.buf.resize(self.block, 0);
            self.file.write_all(&self.buf)?;
        }
        self.file.flush()?;
        self.file.finish()?;
        Ok(self.written)
    }
}

/// Rewind, write `label` as the first file and open the data file after it.
fn start_tape(drive: &dyn Drive, label: &Label, block: u64) -> std::io::Result<Blocks> {
    drive.rewind().map_err(|e| std::io::Error::other(format!("cannot rewind ({e}): is a tape loaded?")))?;
    let mut text = serde_json::to_vec(label).map_err(std::io::Error::other)?;
    text.push(b'\n');
    let mut lf = Blocks::new(drive.write_file(block)?, block);
    lf.put(&text)?;
    lf.finish()?;
    Ok(Blocks::new(drive.write_file(block)?, block))
}

/// What the first file of the tape in `drive` is.
fn read_first(drive: &dyn Drive, read_block: u64) -> std::io::Result<Found> {
    drive.rewind().map_err(|e| std::io::Error::other(format!("cannot rewind ({e}): is a tape loaded?")))?;
    let mut first = Vec::new();
    let read = drive.read_file(read_block).and_then(|r| r.take(1 << 20).read_to_end(&mut first));
    Ok(match read {
        // A blank tape reads nothing, or fails with "blank check".
        Err(e) => {
            log::debug!("{}: the first file does not read ({e}): taken as blank", drive.url());
            Found::Blank
        }
        Ok(0) => Found::Blank,
        // Some drives (tgt's emulation) read an unwritten tape as zeros.
        Ok(_) if first.iter().all(|&b| b == 0) => Found::Blank,
        Ok(_) => parse_label(&first).map(Found::Lifeboat).unwrap_or(Found::Foreign),
    })
}

/// Have `loader` put tape `want` of `of`'s backup in the drive and check its label; the position is after the label then.
fn load_tape(
    drive: &dyn Drive,
    loader: Option<&Arc<dyn Loader>>,
    of: &Label,
    want: u32,
    read_block: u64,
) -> std::io::Result<Label> {
    let name = format!("{}/{} tape {want}", of.host, of.backup);
    let Some(loader) = loader else {
        return Err(std::io::Error::other(format!(
            "the backup continues on {name}, and no changer is configured (backup.tape.changer) and no one can be asked: load {name} and run again"
        )));
    };
    loader.load(&name, false)?;
    match read_first(drive, read_block)? {
        Found::Lifeboat(l) if l.host == of.host && l.backup == of.backup && l.tape == want => Ok(l),
        Found::Lifeboat(l) => {
            Err(std::io::Error::other(format!("the tape in the drive is {}, not {name}: load {name}", l.name())))
        }
        _ => Err(std::io::Error::other(format!(
            "the tape in the drive holds no lifeboat label, not {name}: load {name}"
        ))),
    }
}

/// The data file of a backup being written, across as many tapes as it needs.
struct Spanning {
    drive: Arc<dyn Drive>,
    loader: Option<Arc<dyn Loader>>,
    overwrite: bool,
    /// The label of tape 1.
    label: Label,
    block: u64,
    file: Option<Blocks>,
    /// Bytes of data on each tape already full.
    parts: Vec<u64>,
    /// Bytes given so far.
    total: u64,
    /// Bytes of data per tape (whole blocks); None: until the drive says the tape is full.
    capacity: Option<u64>,
}

impl Spanning {
    fn put(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        loop {
            let f = self.file.as_mut().ok_or_else(|| std::io::Error::other("the tape's data file is closed"))?;
            // A capacity ends the tape after that many bytes (a multiple of the block: nothing is left in the buffer).
            let room = self.capacity.map(|c| c.saturating_sub(f.written));
            if room == Some(0) {
                let f = self.file.take().ok_or_else(|| std::io::Error::other("closed"))?;
                let pending = self.next_tape(f)?;
                if let Some(f) = self.file.as_mut() {
                    f.written = pending.len() as u64;
                    f.buf = pending;
                }
                continue;
            }
            let now = room.map_or(data.len(), |r| r.min(data.len() as u64) as usize);
            match f.put_some(&data[..now]) {
                Ok(()) if now < data.len() => {
                    self.total += now as u64;
                    data = &data[now..];
                }
                Ok(()) => {
                    self.total += data.len() as u64;
                    return Ok(());
                }
                Err((e, taken)) if tape_full(&e) => {
                    self.total += taken as u64;
                    data = &data[taken..];
                    let f = self.file.take().ok_or_else(|| std::io::Error::other("closed"))?;
                    let pending = self.next_tape(f)?;
                    let f = self.file.as_mut().ok_or_else(|| std::io::Error::other("closed"))?;
                    // The refused block starts the next tape; it was counted when it was given.
                    f.written = pending.len() as u64;
                    f.buf = pending;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// The tape is full: end it (data file, a "continued" file), load the next and start it.
    fn next_tape(&mut self, full: Blocks) -> std::io::Result<Vec<u8>> {
        let (pending, flushed) = full.split();
        let tape = self.parts.len() as u32 + 1;
        if flushed == 0 {
            return Err(std::io::Error::other(format!(
                "{}/{} tape {tape} took no data block: the tape is full or too small",
                self.label.host, self.label.backup
            )));
        }
        if tape >= MAX_TAPES {
            return Err(std::io::Error::other(format!("a backup on more than {MAX_TAPES} tapes")));
        }
        self.parts.push(flushed);
        let next = Label { tape: tape + 1, start: self.parts.iter().sum(), ..self.label.clone() };
        let name = next.name();
        // Unattended without a changer: the tape ends without the "continued" note, so it lists as interrupted.
        let Some(loader) = self.loader.clone() else {
            return Err(std::io::Error::other(format!(
                "the tape is full and the backup needs another tape ({name}), but no changer is configured (backup.tape.changer) and no one can be asked (unattended): configure a changer, or run interactively to be asked for the next tape"
            )));
        };
        // A filemark and a one-block file say "not the last tape" (writes past the early warning are allowed).
        let note = serde_json::json!({ "format": CONTINUED_FORMAT, "tape": tape, "next": tape + 1 });
        let mut c = Blocks::new(self.drive.write_file(self.block)?, self.block);
        c.put(note.to_string().as_bytes())?;
        if let Err(e) = c.finish() {
            log::info!("{}: the continuation note after tape {tape} did not write ({e})", self.drive.url());
        }
        loader.load(&name, true)?;
        if !self.overwrite {
            match read_first(self.drive.as_ref(), self.block.max(1 << 20))? {
                Found::Blank => {}
                Found::Lifeboat(l) => {
                    return Err(std::io::Error::other(format!(
                        "the tape loaded for {name} holds a lifeboat backup ({}): give --overwrite-tape or load a blank tape",
                        l.name()
                    )))
                }
                Found::Foreign => {
                    return Err(std::io::Error::other(format!(
                        "the tape loaded for {name} holds data that is not a lifeboat backup: give --overwrite-tape or load a blank tape"
                    )))
                }
            }
        }
        self.file = Some(start_tape(self.drive.as_ref(), &next, self.block)?);
        Ok(pending)
    }

    /// End the last data file: (bytes per tape, all bytes).
    fn finish(mut self) -> std::io::Result<(Vec<u64>, u64)> {
        let f = self.file.take().ok_or_else(|| std::io::Error::other("closed"))?;
        f.finish()?;
        let before: u64 = self.parts.iter().sum();
        let mut parts = self.parts;
        parts.push(self.total - before);
        Ok((parts, self.total))
    }
}

/// Read a whole tape file of at most `max` bytes.
fn read_all(drive: &dyn Drive, block: u64, max: u64) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    let mut r = drive.read_file(block)?.take(max + 1);
    r.read_to_end(&mut v)?;
    if v.len() as u64 > max {
        return Err(std::io::Error::other(format!("a tape file larger than {max} bytes where lifeboat's index is")));
    }
    // Read the rest so the position is after the filemark.
    std::io::copy(&mut r.into_inner(), &mut std::io::sink())?;
    Ok(v)
}

/// What is on the tape in the drive, as read from its first file.
#[derive(Debug, Clone)]
enum Found {
    /// A lifeboat label.
    Lifeboat(Label),
    /// No data, or nothing readable (a new or erased tape).
    Blank,
    /// Data that is not a lifeboat label.
    Foreign,
}

/// A lifeboat tape's label and its index (None: the backup on it was interrupted).
type Contents = (Label, Option<Arc<Index>>);

/// A tape drive that holds (or is to hold) one backup.
pub struct TapeTarget {
    drive: Arc<dyn Drive>,
    settings: TapeSettings,
    /// The tape's label and index, once read.
    seen: Mutex<Option<Contents>>,
    /// Markers (the host lock) live in this process: the drive is opened by one process at a time anyway.
    markers: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Puts the next tape in (a changer, a person); None: a backup must fit on one tape.
    loader: Option<Arc<dyn Loader>>,
}

impl Debug for TapeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapeTarget")
            .field("drive", &self.drive)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TapeTarget {
    /// The drive a `tape://` URL names, its commands run by `runner`.
    /// With `settings.changer` it loads tapes with that changer; else, with
    /// `settings.ask`, it asks for them on the terminal.
    pub fn open(url: &str, runner: Arc<dyn Runner>, settings: &TapeSettings) -> Result<TapeTarget, ArchiveError> {
        let address = Address::parse(url)?;
        let drive: Arc<dyn Drive> = Arc::new(CommandDrive::new(address.clone(), Arc::clone(&runner)));
        let target = TapeTarget::with_drive(Arc::clone(&drive), settings)?;
        let block = target.read_block();
        let loader: Option<Arc<dyn Loader>> = match settings.changer.as_deref().filter(|c| !c.is_empty()) {
            Some(changer) => Some(Arc::new(
                ChangerLoader::new(&address, changer, drive, runner, settings.overwrite, block)
                    .map_err(|e| ArchiveError::Target(url.into(), e))?,
            )),
            None if settings.ask => Some(Arc::new(PromptLoader::terminal(drive, settings.overwrite, block))),
            None => None,
        };
        Ok(match loader {
            Some(l) => target.with_loader(l),
            None => target,
        })
    }

    /// A target on any drive (tests use an in-memory one).
    pub fn with_drive(drive: Arc<dyn Drive>, settings: &TapeSettings) -> Result<TapeTarget, ArchiveError> {
        if !BLOCK_SIZES.contains(&settings.block_size) || !settings.block_size.is_multiple_of(512) {
            return Err(ArchiveError::Target(
                drive.url(),
                format!(
                    "block size {} is not a multiple of 512 from 512 to 16M (key backup.tape.block_size)",
                    settings.block_size
                ),
            ));
        }
        if settings.capacity.is_some_and(|c| c < settings.block_size) {
            return Err(ArchiveError::Target(
                drive.url(),
                "backup.tape.capacity is less than one block (backup.tape.block_size)".into(),
            ));
        }
        Ok(TapeTarget {
            drive,
            settings: settings.clone(),
            seen: Mutex::new(None),
            markers: Mutex::new(BTreeMap::new()),
            loader: None,
        })
    }

    /// Let the target span tapes: `loader` puts the next one in.
    pub fn with_loader(mut self, loader: Arc<dyn Loader>) -> TapeTarget {
        self.loader = Some(loader);
        self
    }

    /// The drive.
    pub fn drive(&self) -> &Arc<dyn Drive> {
        &self.drive
    }

    fn err(&self, e: impl std::fmt::Display) -> ArchiveError {
        ArchiveError::Target(self.drive.url(), e.to_string())
    }

    /// Reads ask for at least 1 MiB, so a tape written with larger blocks than configured still reads.
    fn read_block(&self) -> u64 {
        self.settings.block_size.max(1 << 20)
    }

    /// Rewind and read the first file.
    fn first_file(&self) -> Result<Found, ArchiveError> {
        read_first(self.drive.as_ref(), self.read_block()).map_err(|e| self.err(e))
    }

    /// The label and index of the tape in the drive (read once, then remembered).
    fn contents(&self) -> Result<Option<Contents>, ArchiveError> {
        let mut seen = self.seen.lock().map_err(|_| self.err("poisoned"))?;
        if let Some(s) = seen.as_ref() {
            return Ok(Some(s.clone()));
        }
        let mut label = match self.first_file()? {
            Found::Lifeboat(l) => l,
            _ => return Ok(None),
        };
        // The position is after the label: skip the data, read the index
        // (on the last tape; a tape before it says "continued": load the next).
        let index = loop {
            let third = self
                .drive
                .skip_files(1)
                .and_then(|_| read_all(self.drive.as_ref(), self.read_block(), MAX_INDEX))
                .map_err(|e| e.to_string());
            if let Ok(data) = &third {
                if is_continued(data) {
                    let next = label.tape.saturating_add(1);
                    if next > MAX_TAPES {
                        return Err(self.err(format!("{}: more than {MAX_TAPES} tapes", label.name())));
                    }
                    label = load_tape(self.drive.as_ref(), self.loader.as_ref(), &label, next, self.read_block())
                        .map_err(|e| self.err(format!("the index is on the backup's last tape: {e}")))?;
                    continue;
                }
            }
            break third.and_then(|data| if data.is_empty() { Err("no index".into()) } else { Index::decode(&data) });
        };
        let index = index.and_then(|i| {
            let tapes = i.head.parts.len().max(1) as u32;
            if i.head.host != label.host || i.head.backup != label.backup {
                Err(format!("the index is of {}/{}, not of {}", i.head.host, i.head.backup, label.name()))
            } else if tapes != label.tape || i.head.tapes != tapes {
                Err(format!("the index says {} tapes, but it is on {}", i.head.tapes, label.name()))
            } else if !i.head.parts.is_empty()
                && i.head.parts.iter().try_fold(0u64, |a, &p| a.checked_add(p)) != Some(i.head.data_bytes)
            {
                Err("the index's bytes per tape do not add up to its data".into())
            } else {
                Ok(i)
            }
        });
        let index = match index {
            Ok(i) => Some(Arc::new(i)),
            Err(e) => {
                log::info!("{}: {}: no readable index ({e})", self.drive.url(), label.name());
                None
            }
        };
        *seen = Some((label, index));
        Ok(seen.clone())
    }

    fn objects(&self, label: Label, index: Arc<Index>) -> Arc<dyn Objects> {
        Arc::new(TapeObjects {
            drive: Arc::clone(&self.drive),
            loader: self.loader.clone(),
            label,
            index,
            block: self.read_block(),
        })
    }
}

impl Target for TapeTarget {
    fn url(&self) -> String {
        self.drive.url()
    }

    fn hosts(&self) -> Result<Vec<String>, ArchiveError> {
        Ok(self.contents()?.map(|(l, _)| vec![l.host]).unwrap_or_default())
    }

    fn scan(&self, host: &str) -> Result<Vec<Listed>, ArchiveError> {
        let Some((label, index)) = self.contents()? else { return Ok(Vec::new()) };
        if label.host != host {
            return Ok(Vec::new());
        }
        let (state, bytes) = match &index {
            None => (State::Interrupted, 0),
            Some(i) => {
                let state = match i.objects.get(CATALOG) {
                    Some(c) => super::catalog_state(c),
                    None => State::Damaged(format!("the index has no {CATALOG}")),
                };
                (state, i.head.data_bytes.saturating_add(i.objects.values().map(|o| o.len() as u64).sum::<u64>()))
            }
        };
        Ok(vec![Listed {
            name: label.backup.clone(),
            location: format!("{} ({})", self.drive.url(), label.name()),
            state,
            bytes,
            modified: None,
        }])
    }

    fn begin(&self, host: &str, name: &str) -> Result<Arc<dyn Upload>, ArchiveError> {
        if !self.settings.overwrite {
            let fix = "give --overwrite-tape (or backup.tape.overwrite = true) to write over it, or load another tape";
            match self.first_file()? {
                Found::Lifeboat(l) => {
                    return Err(self.err(format!("the tape in the drive holds a lifeboat backup ({}): {fix}", l.name())))
                }
                Found::Foreign => {
                    return Err(
                        self.err(format!("the tape in the drive holds data that is not a lifeboat backup: {fix}"))
                    )
                }
                Found::Blank => {}
            }
        }
        if let Ok(mut s) = self.seen.lock() {
            *s = None;
        }
        let label = Label {
            format: LABEL_FORMAT.into(),
            version: TAPE_VERSION,
            archive_version: crate::backup::FORMAT_VERSION,
            host: host.into(),
            backup: name.into(),
            tape: 1,
            of: None,
            block_size: self.settings.block_size,
            start: 0,
        };
        let block = self.settings.block_size;
        let werr = |e: std::io::Error| self.err(format!("cannot write the tape: {e}"));
        let data = start_tape(self.drive.as_ref(), &label, block).map_err(werr)?;
        let spanning = Spanning {
            drive: Arc::clone(&self.drive),
            loader: self.loader.clone(),
            overwrite: self.settings.overwrite,
            label: label.clone(),
            block,
            file: Some(data),
            parts: Vec::new(),
            total: 0,
            capacity: self.settings.capacity.map(|c| c - c % block),
        };
        Ok(Arc::new(TapeUpload {
            drive: Arc::clone(&self.drive),
            label,
            block,
            read_block: self.read_block(),
            loader: self.loader.clone(),
            data: Arc::new(Mutex::new(Some(spanning))),
            small: Arc::new(Mutex::new(Vec::new())),
        }))
    }

    fn backup(&self, host: &str, name: &str) -> Result<Arc<dyn Objects>, ArchiveError> {
        match self.contents()? {
            Some((l, Some(i))) if l.host == host && l.backup == name => Ok(self.objects(l, i)),
            Some((l, None)) => Err(self.err(format!("{} has no index: the backup on it was interrupted", l.name()))),
            Some((l, _)) => Err(self.err(format!("the tape holds {}, not {host}/{name}", l.name()))),
            None => Err(self.err("the tape in the drive holds no lifeboat backup")),
        }
    }

    /// A tape holds one backup: the URL names it, whatever host asks.
    fn itself(&self) -> Result<Option<Arc<dyn Objects>>, ArchiveError> {
        match self.contents()? {
            Some((l, Some(i))) => Ok(Some(self.objects(l, i))),
            Some((l, None)) => Err(self.err(format!(
                "{} has no index: the backup on it was interrupted (write a new backup over it)",
                l.name()
            ))),
            None => Err(self.err("the tape in the drive holds no lifeboat backup (is the right tape loaded?)")),
        }
    }

    fn remove_interrupted(&self, _host: &str, _listed: &Listed) -> Result<bool, ArchiveError> {
        // Nothing to remove: the next backup writes over it (with --overwrite-tape).
        Ok(false)
    }

    fn delete(&self, _host: &str, name: &str) -> Result<(), ArchiveError> {
        Err(self.err(format!(
            "{name}: a tape is not changed in place; write a new backup over it (--overwrite-tape) or erase it (mt -f DEVICE erase)"
        )))
    }

    fn create_marker(&self, key: &str, data: &[u8]) -> Result<bool, ArchiveError> {
        let mut m = self.markers.lock().map_err(|_| self.err("poisoned"))?;
        if m.contains_key(key) {
            return Ok(false);
        }
        m.insert(key.into(), data.to_vec());
        Ok(true)
    }

    fn read_marker(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        Ok(self.markers.lock().map_err(|_| self.err("poisoned"))?.get(key).cloned())
    }

    fn remove_marker(&self, key: &str) -> Result<(), ArchiveError> {
        self.markers.lock().map_err(|_| self.err("poisoned"))?.remove(key);
        Ok(())
    }

    fn marker_alive(&self, _key: &str) -> Option<bool> {
        Some(true)
    }
}

type DataFile = Arc<Mutex<Option<Spanning>>>;
type Small = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A backup being written to tape: volumes into the data file as they
/// come (one at a time, in order), small objects kept for the index.
struct TapeUpload {
    drive: Arc<dyn Drive>,
    label: Label,
    block: u64,
    read_block: u64,
    loader: Option<Arc<dyn Loader>>,
    data: DataFile,
    small: Small,
}

impl Debug for TapeUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapeUpload").field("drive", &self.drive).field("label", &self.label).finish_non_exhaustive()
    }
}

/// A volume streamed into the data file.
struct VolumeWriter {
    data: DataFile,
}

impl Write for VolumeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut d = self.data.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let f = d.as_mut().ok_or_else(|| std::io::Error::other("the tape's data file is closed already"))?;
        f.put(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for VolumeWriter {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        Ok(())
    }
}

/// A small object kept for the index.
struct SmallWriter {
    name: String,
    buf: Vec<u8>,
    small: Small,
}

impl Write for SmallWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() as u64 + buf.len() as u64 > MAX_INDEX {
            return Err(std::io::Error::other(format!("{} is too large for a tape's index", self.name)));
        }
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for SmallWriter {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        let mut s = self.small.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        s.push((self.name, self.buf));
        Ok(())
    }
}

impl Upload for TapeUpload {
    fn location(&self) -> String {
        format!("{} ({})", self.drive.url(), self.label.name())
    }

    fn create(&self, name: &str) -> std::io::Result<Box<dyn ObjectWriter>> {
        if name.starts_with("vol-") {
            Ok(Box::new(VolumeWriter { data: Arc::clone(&self.data) }))
        } else {
            Ok(Box::new(SmallWriter { name: name.into(), buf: Vec::new(), small: Arc::clone(&self.small) }))
        }
    }

    fn commit(&self, catalog: &[u8]) -> Result<Arc<dyn Objects>, ArchiveError> {
        let fail = |e: String| ArchiveError::Target(self.drive.url(), format!("cannot write the tape: {e}"));
        let data = self.data.lock().map_err(|_| fail("poisoned".into()))?.take();
        let (parts, data_bytes) = match data {
            Some(d) => d.finish().map_err(|e| fail(e.to_string()))?,
            None => return Err(fail("the data file was closed already".into())),
        };
        let tapes = parts.len() as u32;
        let parts = if tapes > 1 { parts } else { Vec::new() };
        let mut objects: BTreeMap<String, Vec<u8>> =
            self.small.lock().map_err(|_| fail("poisoned".into()))?.drain(..).collect();
        objects.insert(CATALOG.into(), catalog.to_vec());
        let head = IndexHead {
            format: INDEX_FORMAT.into(),
            version: TAPE_VERSION,
            host: self.label.host.clone(),
            backup: self.label.backup.clone(),
            tapes,
            data_bytes,
            parts,
            objects: objects.iter().map(|(n, v)| IndexEntry { name: n.clone(), size: v.len() as u64 }).collect(),
        };
        let index = Index { head, objects };
        let mut f = Blocks::new(self.drive.write_file(self.block).map_err(|e| fail(e.to_string()))?, self.block);
        f.put(&index.encode()?).map_err(|e| fail(e.to_string()))?;
        f.finish().map_err(|e| fail(e.to_string()))?;
        Ok(Arc::new(TapeObjects {
            drive: Arc::clone(&self.drive),
            loader: self.loader.clone(),
            label: self.label.clone(),
            index: Arc::new(index),
            block: self.read_block,
        }))
    }

    fn abort(&self) {
        // End the data file (a filemark): the tape then holds a label and no index, which lists as interrupted.
        if let Ok(mut d) = self.data.lock() {
            if let Some(d) = d.take() {
                let _ = d.finish();
            }
        }
    }
}

/// The backup on a tape: its small objects from the index (in memory),
/// its volumes only as one sequential stream.
struct TapeObjects {
    drive: Arc<dyn Drive>,
    loader: Option<Arc<dyn Loader>>,
    /// The label of the tape the index was read from (the last).
    label: Label,
    index: Arc<Index>,
    block: u64,
}

impl Debug for TapeObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapeObjects").field("drive", &self.drive).field("label", &self.label).finish_non_exhaustive()
    }
}

/// The data of a backup read tape after tape, forward only.
struct Joined {
    drive: Arc<dyn Drive>,
    loader: Option<Arc<dyn Loader>>,
    label: Label,
    block: u64,
    current: std::io::Take<Box<dyn Read + Send>>,
    parts: Vec<u64>,
    /// The tape being read (1-based).
    tape: u32,
}

impl Read for Joined {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if self.current.limit() > 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{}/{} tape {}: its data ends early", self.label.host, self.label.backup, self.tape),
                ));
            }
            let Some(&next) = self.parts.get(self.tape as usize) else { return Ok(0) };
            // Read the rest of this data file (an extra block written at the early warning) before the tape leaves.
            let l = load_tape(self.drive.as_ref(), self.loader.as_ref(), &self.label, self.tape + 1, self.block)?;
            if l.start != self.parts[..self.tape as usize].iter().sum::<u64>() {
                return Err(std::io::Error::other(format!(
                    "{}: its label starts at byte {}, not where tape {} ended",
                    l.name(),
                    l.start,
                    self.tape
                )));
            }
            self.tape += 1;
            self.current = self.drive.read_file(self.block)?.take(next);
        }
    }
}

/// A stream that fails on its first read.
struct Failing(String);

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other(self.0.clone()))
    }
}

impl Objects for TapeObjects {
    fn location(&self) -> String {
        format!("{} ({})", self.drive.url(), self.label.name())
    }

    fn open_volume(&self, name: &str, _max: u64) -> std::io::Result<Arc<dyn ObjectRead>> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("{name} is on tape: it is read sequentially (restore and verify do; this command cannot)"),
        ))
    }

    fn read(&self, name: &str, max: u64) -> std::io::Result<Vec<u8>> {
        match self.index.objects.get(name) {
            Some(v) if v.len() as u64 > max => {
                Err(std::io::Error::other(format!("{name} is {} bytes, more than the {max} it may have", v.len())))
            }
            Some(v) => Ok(v.clone()),
            None => Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{name} is not on the tape"))),
        }
    }

    /// Rewind, skip the label, and read the data file: the volumes in
    /// order, tape after tape (tape 1 is loaded first when the index came from a later one).
    fn sequential(&self) -> Option<Box<dyn Read + Send>> {
        let parts = if self.index.head.parts.is_empty() {
            vec![self.index.head.data_bytes]
        } else {
            self.index.head.parts.clone()
        };
        let start = if parts.len() > 1 {
            load_tape(self.drive.as_ref(), self.loader.as_ref(), &self.label, 1, self.block)
                .and_then(|_| self.drive.read_file(self.block))
        } else {
            self.drive.rewind().and_then(|_| self.drive.skip_files(1)).and_then(|_| self.drive.read_file(self.block))
        };
        Some(match start {
            Ok(r) => Box::new(Joined {
                drive: Arc::clone(&self.drive),
                loader: self.loader.clone(),
                label: self.label.clone(),
                block: self.block,
                current: r.take(parts[0]),
                parts,
                tape: 1,
            }),
            Err(e) => Box::new(Failing(format!("{}: cannot position the tape at its data: {e}", self.drive.url()))),
        })
    }
}

/// A tape in memory, for tests: files of blocks, a position, filemarks.
#[derive(Debug, Default)]
pub struct MemoryDrive {
    state: Mutex<MemTape>,
    /// Tapes not in the drive (a changer's slots); `load` swaps one in.
    shelf: Mutex<Vec<MemTape>>,
    /// Blocks a tape takes before writes fail with ENOSPC (None: no end).
    capacity: Mutex<Option<usize>>,
}

#[derive(Debug, Default)]
struct MemTape {
    /// Each file's blocks.
    files: Vec<Vec<Vec<u8>>>,
    /// The file the head is at.
    at: usize,
    /// A write failed at the end of the tape already.
    warned: bool,
}

impl MemoryDrive {
    /// A blank tape.
    pub fn new() -> MemoryDrive {
        MemoryDrive::default()
    }

    /// `n` tapes of `blocks` blocks each: one in the drive, the others on the shelf (slots 1..n).
    pub fn library(n: usize, blocks: usize) -> MemoryDrive {
        let d = MemoryDrive::default();
        if let Ok(mut c) = d.capacity.lock() {
            *c = Some(blocks);
        }
        if let Ok(mut s) = d.shelf.lock() {
            s.resize_with(n.saturating_sub(1), MemTape::default);
        }
        d
    }

    /// Put the tape in the drive on the shelf at `slot` and take the one there (0-based, swapping).
    pub fn swap(&self, slot: usize) {
        if let (Ok(mut s), Ok(mut shelf)) = (self.state.lock(), self.shelf.lock()) {
            if let Some(t) = shelf.get_mut(slot) {
                std::mem::swap(&mut *s, t);
                s.at = 0;
            }
        }
    }

    /// The size of every block of every file (to check that writes were whole blocks).
    pub fn block_sizes(&self) -> Vec<Vec<usize>> {
        self.state
            .lock()
            .map(|s| s.files.iter().map(|f| f.iter().map(Vec::len).collect()).collect())
            .unwrap_or_default()
    }

    /// Replace block `b` of file `f` (for tests of damage).
    pub fn damage(&self, f: usize, b: usize) {
        if let Ok(mut s) = self.state.lock() {
            if let Some(block) = s.files.get_mut(f).and_then(|f| f.get_mut(b)) {
                block.iter_mut().for_each(|x| *x ^= 0x5a);
            }
        }
    }
}

/// A file being written to a [`MemoryDrive`].
struct MemFile {
    drive: Arc<MemoryDrive>,
    index: usize,
}

impl Write for MemFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let cap = *self.drive.capacity.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let mut s = self.drive.state.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let used: usize = s.files.iter().map(Vec::len).sum();
        // Like st at the early warning: the first write past it fails with ENOSPC, later ones (a filemark, a note) go on.
        if cap.is_some_and(|c| used >= c) && !s.warned {
            s.warned = true;
            return Err(std::io::Error::from_raw_os_error(28));
        }
        let f = s.files.get_mut(self.index).ok_or_else(|| std::io::Error::other("file gone"))?;
        f.push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TapeFile for MemFile {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        Ok(())
    }
}

/// A [`MemoryDrive`] shared with the test that looks at it.
#[derive(Debug, Clone)]
pub struct SharedMemoryDrive(pub Arc<MemoryDrive>);

impl Drive for SharedMemoryDrive {
    fn url(&self) -> String {
        "tape://memory".into()
    }

    fn rewind(&self) -> std::io::Result<()> {
        self.0.state.lock().map_err(|_| std::io::Error::other("poisoned"))?.at = 0;
        Ok(())
    }

    fn skip_files(&self, n: u32) -> std::io::Result<()> {
        let mut s = self.0.state.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        if s.at + n as usize > s.files.len() {
            return Err(std::io::Error::other("end of data"));
        }
        s.at += n as usize;
        Ok(())
    }

    fn read_file(&self, block: u64) -> std::io::Result<Box<dyn Read + Send>> {
        let mut s = self.0.state.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let Some(f) = s.files.get(s.at) else { return Err(std::io::Error::other("blank check: end of data")) };
        if f.iter().any(|b| b.len() as u64 > block) {
            return Err(std::io::Error::other("a block is larger than the read size"));
        }
        let data: Vec<u8> = f.concat();
        s.at += 1;
        Ok(Box::new(std::io::Cursor::new(data)))
    }

    fn write_file(&self, _block: u64) -> std::io::Result<Box<dyn TapeFile>> {
        let mut s = self.0.state.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let at = s.at;
        s.files.truncate(at);
        if at == 0 {
            s.warned = false;
        }
        s.files.push(Vec::new());
        s.at = at + 1;
        Ok(Box::new(MemFile { drive: Arc::clone(&self.0), index: at }))
    }

    fn status(&self) -> std::io::Result<String> {
        Ok("memory tape drive\nGeneral status bits on (41010000):\n BOT ONLINE IM_REP_EN\n".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_local_or_remote_non_rewinding_drive() {
        assert_eq!(Address::parse("tape:///dev/nst0").unwrap(), Address { host: None, device: "/dev/nst0".into() });
        assert_eq!(
            Address::parse("tape://root@tapehost/dev/nst1").unwrap(),
            Address { host: Some("root@tapehost".into()), device: "/dev/nst1".into() }
        );
        let e = Address::parse("tape:///dev/st0").unwrap_err().to_string();
        assert!(e.contains("nst"), "{e}");
        assert!(Address::parse("tape://host").is_err());
        assert!(Address::parse("tape://-oProxy/dev/nst0").is_err());
        assert!(Address::parse("tape:///dev/nst0;rm").is_err());
    }

    #[test]
    fn remote_commands_go_through_ssh_with_the_device_quoted() {
        let r: Arc<dyn Runner> = Arc::new(lifeboat_runner::ScriptedRunner::new());
        let d = CommandDrive::new(Address::parse("tape://backup@th/dev/nst0").unwrap(), r);
        let c = d.address.command("dd", &["of=/dev/nst0".into(), "bs=262144".into()]);
        assert_eq!(c.program(), "ssh");
        let line = c.cmdline();
        assert!(line.contains("BatchMode=yes") && line.contains("backup@th"), "{line}");
        assert!(line.contains("dd of=/dev/nst0 bs=262144"), "{line}");
        assert_eq!(d.url(), "tape://backup@th/dev/nst0");
    }

    #[test]
    fn mt_status_tells_online_write_protect_and_block_size() {
        let text = "SCSI 2 tape drive:\nFile number=0, block number=0, partition=0.\n\
                    Tape block size 512 bytes. Density code 0x0 (default).\n\
                    Soft error count since last status=0\nGeneral status bits on (45010000):\n BOT WR_PROT ONLINE IM_REP_EN\n";
        let s = DriveStatus::parse(text);
        assert_eq!(s, DriveStatus { online: true, write_protected: true, block_size: Some(512) });
        let s = DriveStatus::parse("Tape block size 0 bytes.\nGeneral status bits on (50000):\n DR_OPEN IM_REP_EN\n");
        assert_eq!(s, DriveStatus { online: false, write_protected: false, block_size: Some(0) });
    }

    #[test]
    fn blocks_are_whole_and_the_last_is_padded() {
        let drive = Arc::new(MemoryDrive::new());
        let d = SharedMemoryDrive(Arc::clone(&drive));
        let mut b = Blocks::new(d.write_file(512).unwrap(), 512);
        b.put(&[1u8; 700]).unwrap();
        b.put(&[2u8; 400]).unwrap();
        assert_eq!(b.finish().unwrap(), 1100);
        assert_eq!(drive.block_sizes(), vec![vec![512, 512, 512]]);
    }

    #[test]
    fn the_index_round_trips_and_refuses_truncation() {
        let mut objects = BTreeMap::new();
        objects.insert("backup.json".to_string(), b"{}".to_vec());
        objects.insert("manifest.jsonl".to_string(), b"line\n".to_vec());
        let head = IndexHead {
            format: INDEX_FORMAT.into(),
            version: TAPE_VERSION,
            host: "h".into(),
            backup: "b".into(),
            tapes: 1,
            data_bytes: 9,
            parts: Vec::new(),
            objects: objects.iter().map(|(n, v)| IndexEntry { name: n.clone(), size: v.len() as u64 }).collect(),
        };
        let data = Index { head, objects: objects.clone() }.encode().unwrap();
        let back = Index::decode(&data).unwrap();
        assert_eq!(back.objects, objects);
        assert!(Index::decode(&data[..data.len() - 2]).unwrap_err().contains("ends inside"));
    }
}
