//! Reading a backup back: the catalog and manifest (checked against their
//! BLAKE3), the frames of the volumes as one tar stream with gaps where
//! volumes are missing or damaged, and the pax/ustar headers in it.

use crate::backup::{Catalog, ManifestEntry};
use crate::frames::Frame;
use crate::tar::Kind;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Errors reading a backup.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The backup directory is not a complete backup.
    #[error("{0} is not a complete lifeboat backup (no backup.json): it may be a backup that was interrupted")]
    NotABackup(PathBuf),
    /// The catalog or manifest is damaged.
    #[error("{0}")]
    Damaged(String),
    /// File I/O.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// An opened backup: its catalog and manifest.
#[derive(Debug)]
pub struct Backup {
    /// The directory.
    pub dir: PathBuf,
    /// `backup.json`.
    pub catalog: Catalog,
    /// `manifest.jsonl`, in archive order.
    pub entries: Vec<ManifestEntry>,
}

impl Backup {
    /// Open a backup directory and check its manifest against the catalog.
    pub fn open(dir: &Path) -> Result<Backup, ReadError> {
        let cat = dir.join("backup.json");
        if !cat.is_file() {
            return Err(ReadError::NotABackup(dir.to_path_buf()));
        }
        let text = std::fs::read(&cat).map_err(|e| ReadError::Io(cat.display().to_string(), e))?;
        let catalog: Catalog = serde_json::from_slice(&text)
            .map_err(|e| ReadError::Damaged(format!("{} is damaged: {e}", cat.display())))?;
        let mf = dir.join(&catalog.manifest.name);
        let data = std::fs::read(&mf).map_err(|e| ReadError::Io(mf.display().to_string(), e))?;
        if blake3::hash(&data).to_hex().as_str() != catalog.manifest.blake3 {
            return Err(ReadError::Damaged(format!(
                "{} does not match its checksum in backup.json: the manifest is damaged",
                mf.display()
            )));
        }
        let mut entries = Vec::new();
        for (n, line) in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            entries.push(
                serde_json::from_slice(line)
                    .map_err(|e| ReadError::Damaged(format!("{} line {}: {e}", mf.display(), n + 1)))?,
            );
        }
        Ok(Backup { dir: dir.to_path_buf(), catalog, entries })
    }

    /// The file name of volume `n` (1-based), as the catalog lists it.
    pub fn volume_name(&self, n: u32) -> String {
        self.catalog.volumes.get(n as usize - 1).map(|v| v.name.clone()).unwrap_or_else(|| format!("vol-{n:04}"))
    }

    /// The uncompressed length of the whole tar stream.
    pub fn stream_len(&self) -> u64 {
        self.catalog.frames.last().map(|f| f.start + f.dlen).unwrap_or(0)
    }
}

/// The tar stream of a backup, frame by frame; a frame that cannot be read
/// becomes a gap, reported as an error naming the range.
#[derive(Debug)]
pub struct Stream<'a> {
    backup: &'a Backup,
    files: HashMap<u32, std::fs::File>,
    /// Frames being decompressed ahead on other cores.
    ahead: HashMap<usize, std::sync::mpsc::Receiver<Result<Vec<u8>, String>>>,
    last_loaded: Option<usize>,
    frame: usize,
    buf: Vec<u8>,
    pos: usize,
    /// Position in the uncompressed stream.
    pub offset: u64,
}

/// A range of the stream that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Why.
    pub why: String,
}

impl<'a> Stream<'a> {
    /// A stream positioned at the start.
    pub fn new(backup: &'a Backup) -> Stream<'a> {
        Stream {
            backup,
            files: HashMap::new(),
            ahead: HashMap::new(),
            last_loaded: None,
            frame: 0,
            buf: Vec::new(),
            pos: 0,
            offset: 0,
        }
    }

    /// Load frame `i`; when reading sequentially, start decompressing the
    /// next frames on the other cores (restore decompresses in parallel).
    fn load(&mut self, i: usize) -> Result<Vec<u8>, String> {
        let frames = &self.backup.catalog.frames;
        let f = frames[i];
        let result = match self.ahead.remove(&i) {
            Some(rx) => rx.recv().unwrap_or_else(|_| Err("decompression thread failed".into())),
            None => {
                let name = self.backup.volume_name(f.volume);
                if !self.files.contains_key(&f.volume) {
                    let file = std::fs::File::open(self.backup.dir.join(&name)).map_err(|e| format!("{name}: {e}"))?;
                    self.files.insert(f.volume, file);
                }
                let file = self.files.get_mut(&f.volume).ok_or("volume not open")?;
                read_frame(file, &f, &name, &self.backup.catalog.compression)
            }
        };
        if self.last_loaded.is_some_and(|l| l + 1 == i) {
            let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            for (j, fj) in frames.iter().copied().enumerate().skip(i + 1).take(threads) {
                if self.ahead.contains_key(&j) {
                    continue;
                }
                let name = self.backup.volume_name(fj.volume);
                let path = self.backup.dir.join(&name);
                let codec = self.backup.catalog.compression.clone();
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let r = std::fs::File::open(&path)
                        .map_err(|e| format!("{name}: {e}"))
                        .and_then(|mut file| read_frame(&mut file, &fj, &name, &codec));
                    let _ = tx.send(r);
                });
                self.ahead.insert(j, rx);
            }
        } else {
            self.ahead.clear();
        }
        self.last_loaded = Some(i);
        result
    }

    /// Move to an offset of the stream (the start of an entry after a gap).
    pub fn seek_to(&mut self, offset: u64) {
        let frames = &self.backup.catalog.frames;
        self.frame = frames.partition_point(|f| f.start + f.dlen <= offset);
        self.buf.clear();
        self.pos = 0;
        self.offset = offset;
        if let Some(f) = frames.get(self.frame) {
            // The frame is loaded on the next read; remember where in it to start.
            self.pos = (offset - f.start) as usize;
        }
    }

    /// Read exactly `out.len()` bytes, or report the gap that prevents it.
    pub fn read_exact(&mut self, out: &mut [u8]) -> Result<(), Gap> {
        let mut done = 0;
        while done < out.len() {
            if self.buf.is_empty() || self.pos >= self.buf.len() {
                let skip = if self.buf.is_empty() { self.pos } else { 0 };
                if !self.buf.is_empty() {
                    self.frame += 1;
                }
                let Some(f) = self.backup.catalog.frames.get(self.frame).copied() else {
                    return Err(Gap { start: self.offset, end: self.offset, why: "the archive ends early".into() });
                };
                match self.load(self.frame) {
                    Ok(b) => {
                        self.buf = b;
                        self.pos = skip;
                    }
                    Err(why) => {
                        return Err(Gap { start: f.start, end: f.start + f.dlen, why });
                    }
                }
            }
            let n = (self.buf.len() - self.pos).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            done += n;
            self.offset += n as u64;
        }
        Ok(())
    }
}

/// Read and decompress one frame from its volume.
fn read_frame(file: &mut std::fs::File, f: &Frame, name: &str, codec: &str) -> Result<Vec<u8>, String> {
    let mut data = vec![0u8; f.clen as usize];
    file.seek(SeekFrom::Start(f.offset))
        .and_then(|_| file.read_exact(&mut data))
        .map_err(|e| format!("{name}: {e}"))?;
    let out = crate::frames::decompress(codec, &data, f.dlen as usize).map_err(|e| format!("{name}: damaged ({e})"))?;
    if out.len() as u64 != f.dlen {
        return Err(format!("{name}: damaged (frame at {} has the wrong length)", f.offset));
    }
    Ok(out)
}

/// One entry as its headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Archive path.
    pub path: Vec<u8>,
    /// Type (with link target or device numbers).
    pub kind: Kind,
    /// Mode bits.
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Data size.
    pub size: u64,
    /// Modification time.
    pub mtime: i64,
    /// Nanoseconds.
    pub mtime_ns: u32,
    /// Extended attributes.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// A sparse file (GNU format 1.0): its real size; `size` is what is stored.
    pub sparse: Option<u64>,
}

fn parse_octal(f: &[u8]) -> Option<u64> {
    let s: String = f.iter().take_while(|b| **b != 0 && **b != b' ').map(|b| *b as char).collect();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s.trim(), 8).ok()
}

fn cstr(f: &[u8]) -> Vec<u8> {
    f.iter().take_while(|b| **b != 0).copied().collect()
}

fn parse_pax(data: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(sp) = rest.iter().position(|b| *b == b' ') {
        let Some(len) = std::str::from_utf8(&rest[..sp]).ok().and_then(|s| s.parse::<usize>().ok()) else { break };
        if len > rest.len() || len < sp + 2 {
            break;
        }
        let rec = &rest[sp + 1..len - 1];
        if let Some(eq) = rec.iter().position(|b| *b == b'=') {
            out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        }
        rest = &rest[len..];
    }
    out
}

/// Read the next entry's headers (pax extended header included); `None` at
/// the end-of-archive marker. A header with a bad checksum is an error.
pub fn next_header(s: &mut Stream) -> Result<Option<Header>, Gap> {
    let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        let at = s.offset;
        let mut h = [0u8; 512];
        s.read_exact(&mut h)?;
        if h.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let stored = parse_octal(&h[148..156]);
        let mut sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        sum -= h[148..156].iter().map(|b| u64::from(*b)).sum::<u64>();
        sum += 8 * u64::from(b' ');
        if stored != Some(sum) {
            return Err(Gap {
                start: at,
                end: at + 512,
                why: format!("tar header at offset {at} is damaged (checksum)"),
            });
        }
        let size = parse_octal(&h[124..136]).unwrap_or(0);
        let typeflag = h[156];
        if typeflag == b'x' || typeflag == b'g' {
            let mut data = vec![0u8; size as usize];
            s.read_exact(&mut data)?;
            let mut padding = vec![0u8; ((512 - size % 512) % 512) as usize];
            s.read_exact(&mut padding)?;
            if typeflag == b'x' {
                pax = parse_pax(&data);
            }
            continue;
        }
        let get = |k: &str| pax.iter().rev().find(|(key, _)| key == k.as_bytes()).map(|(_, v)| v.clone());
        let sparse = (get("GNU.sparse.major").as_deref() == Some(b"1".as_slice()))
            .then(|| {
                get("GNU.sparse.realsize").and_then(|v| String::from_utf8(v).ok()).and_then(|v| v.parse::<u64>().ok())
            })
            .flatten();
        let mut path =
            get("GNU.sparse.name").filter(|_| sparse.is_some()).or_else(|| get("path")).unwrap_or_else(|| {
                let prefix = cstr(&h[345..500]);
                let name = cstr(&h[0..100]);
                if prefix.is_empty() {
                    name
                } else {
                    [prefix, b"/".to_vec(), name].concat()
                }
            });
        if path.len() > 1 && path.ends_with(b"/") {
            path.pop();
        }
        let link = get("linkpath").unwrap_or_else(|| cstr(&h[157..257]));
        let num = |k: &str, field: &[u8]| {
            get(k)
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|v| v.parse::<u64>().ok())
                .or_else(|| parse_octal(field))
        };
        let (ma, mi) = (parse_octal(&h[329..337]).unwrap_or(0) as u32, parse_octal(&h[337..345]).unwrap_or(0) as u32);
        let kind = match typeflag {
            b'1' => Kind::Hardlink(link),
            b'2' => Kind::Symlink(link),
            b'3' => Kind::Char(ma, mi),
            b'4' => Kind::Block(ma, mi),
            b'5' => Kind::Dir,
            b'6' => Kind::Fifo,
            _ => Kind::File,
        };
        let (mtime, mtime_ns) = match get("mtime").and_then(|v| String::from_utf8(v).ok()) {
            Some(v) => {
                let (s, f) = v.split_once('.').unwrap_or((&v, "0"));
                let ns = format!("{f:0<9}")[..9].parse::<u32>().unwrap_or(0);
                (s.parse::<i64>().unwrap_or(0), ns)
            }
            None => (parse_octal(&h[136..148]).unwrap_or(0) as i64, 0),
        };
        let xattrs =
            pax.iter().filter_map(|(k, v)| k.strip_prefix(b"SCHILY.xattr.").map(|n| (n.to_vec(), v.clone()))).collect();
        return Ok(Some(Header {
            path,
            kind,
            mode: parse_octal(&h[100..108]).unwrap_or(0) as u32,
            uid: num("uid", &h[108..116]).unwrap_or(0) as u32,
            gid: num("gid", &h[116..124]).unwrap_or(0) as u32,
            size: num("size", &h[124..136]).unwrap_or(0),
            mtime,
            mtime_ns,
            xattrs,
            sparse,
        }));
    }
}

/// Read a GNU sparse 1.0 map at the start of a sparse file's data; returns
/// the segments and the number of bytes the map took.
pub fn read_sparse_map(s: &mut Stream) -> Result<(Vec<(u64, u64)>, u64), Gap> {
    let mut text = Vec::new();
    let mut numbers: Vec<u64>;
    let mut want: Option<usize> = None;
    loop {
        let mut block = [0u8; 512];
        s.read_exact(&mut block)?;
        text.extend_from_slice(&block);
        numbers = text
            .split(|b| *b == b'\n')
            .take_while(|l| !l.is_empty() && l.iter().all(u8::is_ascii_digit))
            .filter_map(|l| std::str::from_utf8(l).ok()?.parse().ok())
            .collect();
        if want.is_none() {
            want = numbers.first().map(|n| 1 + 2 * *n as usize);
        }
        if want.is_some_and(|w| numbers.len() >= w) {
            break;
        }
        if text.len() > 64 << 20 {
            return Err(Gap { start: s.offset, end: s.offset, why: "sparse map too large (damaged)".into() });
        }
    }
    let segs = numbers[1..].chunks(2).map(|c| (c[0], c[1])).collect();
    Ok((segs, text.len() as u64))
}
