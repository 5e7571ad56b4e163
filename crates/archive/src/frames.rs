//! The compressed stream: the tar stream cut into chunks, each compressed on
//! its own as an independent zstd frame by a pool of threads (all cores),
//! written in order into volumes of at most the configured size. Frames are
//! independent, so lifeboat can start decompressing at any frame (the index
//! says which), and the concatenated volumes are still one valid zstd stream
//! of one tar archive for `zstd -d | tar -x`.

use crate::target::{ObjectWriter, Upload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Where one frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Volume number (1-based).
    pub volume: u32,
    /// Byte offset of the frame in its volume.
    pub offset: u64,
    /// Compressed length.
    pub clen: u64,
    /// Offset of the frame's first byte in the uncompressed tar stream.
    pub start: u64,
    /// Uncompressed length.
    pub dlen: u64,
}

/// One finished volume file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// File name (`vol-0001.tar.zst`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the file.
    pub blake3: String,
}

/// How frames are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zstd at a level (the default: fast, good ratio).
    Zstd(i32),
    /// gzip at a level, for compatibility with older tools; each frame is one gzip member.
    Gzip(u32),
}

impl Codec {
    /// The name recorded in the catalog.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Zstd(_) => "zstd",
            Codec::Gzip(_) => "gzip",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Codec::Zstd(_) => "tar.zst",
            Codec::Gzip(_) => "tar.gz",
        }
    }
}

/// Decompress one frame of a backup written with the named codec: exactly
/// `dlen` bytes (at most [`crate::read::MAX_FRAME_DLEN`]), or an error; a
/// frame that would decompress to more is damaged, and is never inflated
/// past `dlen` (a frame from an untrusted volume can be a decompression bomb).
pub fn decompress(codec: &str, data: &[u8], dlen: usize) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    if dlen as u64 > crate::read::MAX_FRAME_DLEN {
        return Err(Error::new(ErrorKind::InvalidData, format!("frame of {dlen} bytes is larger than a frame can be")));
    }
    let out = match codec {
        "gzip" => {
            let mut out = Vec::with_capacity(dlen);
            flate2::read::GzDecoder::new(data).take(dlen as u64 + 1).read_to_end(&mut out)?;
            out
        }
        "zstd" => zstd::bulk::decompress(data, dlen)?,
        _ => return Err(Error::new(ErrorKind::InvalidData, format!("unknown compression {codec:?}"))),
    };
    if out.len() != dlen {
        return Err(Error::new(ErrorKind::InvalidData, format!("{} bytes where the catalog says {dlen}", out.len())));
    }
    Ok(out)
}

/// The name of volume `n`.
pub fn volume_name(n: u32, codec: Codec) -> String {
    format!("vol-{n:04}.{}", codec.extension())
}

struct Output {
    codec: Codec,
    upload: Arc<dyn Upload>,
    max: u64,
    file: Option<(Box<dyn ObjectWriter>, blake3::Hasher)>,
    number: u32,
    size: u64,
    volumes: Vec<Volume>,
    frames: Vec<Frame>,
    start: u64,
}

impl Output {
    /// Where the volume being written goes, for errors.
    fn path(&self) -> String {
        format!("{}/{}", self.upload.location(), volume_name(self.number, self.codec))
    }

    /// An I/O error writing the current volume, with where it goes (ENOSPC keeps its kind and OS error).
    fn err(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(e.kind(), format!("{}: {e}", self.path()))
    }

    fn close(&mut self) -> std::io::Result<()> {
        if let Some((mut f, h)) = self.file.take() {
            f.flush().map_err(|e| self.err(e))?;
            f.finish().map_err(|e| self.err(e))?;
            self.volumes.push(Volume {
                name: volume_name(self.number, self.codec),
                size: self.size,
                blake3: h.finalize().to_hex().to_string(),
            });
        }
        Ok(())
    }

    fn write_frame(&mut self, data: &[u8], dlen: u64) -> std::io::Result<()> {
        if self.file.is_some() && self.size + data.len() as u64 > self.max {
            self.close()?;
        }
        if self.file.is_none() {
            self.number += 1;
            self.size = 0;
            let f = self.upload.create(&volume_name(self.number, self.codec)).map_err(|e| self.err(e))?;
            self.file = Some((f, blake3::Hasher::new()));
        }
        if let Some((f, h)) = self.file.as_mut() {
            if let Err(e) = f.write_all(data) {
                return Err(self.err(e));
            }
            h.update(data);
        }
        self.frames.push(Frame {
            volume: self.number,
            offset: self.size,
            clen: data.len() as u64,
            start: self.start,
            dlen,
        });
        self.size += data.len() as u64;
        self.start += dlen;
        Ok(())
    }
}

type Job = (u64, Vec<u8>);
/// What the writer thread hands back: volumes, frames, compressed bytes.
type Written = (Vec<Volume>, Vec<Frame>, u64);
type Done = (u64, std::io::Result<Vec<u8>>, u64);

/// The smallest volume size: a frame is at most half a volume and at least
/// 64 KiB, and incompressible data grows by a few bytes, so a volume of
/// 128 KiB is the smallest that every frame fits in.
pub const MIN_VOLUME_SIZE: u64 = 128 << 10;

/// Compresses chunks on all cores and writes them in order.
#[derive(Debug)]
pub struct FrameWriter {
    chunk: usize,
    buf: Vec<u8>,
    seq: u64,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<std::io::Result<Written>>>,
    /// Uncompressed bytes accepted so far.
    pub written: u64,
}

impl FrameWriter {
    /// Volumes go to `upload`, each at most `volume_size` bytes.
    pub fn new(upload: Arc<dyn Upload>, volume_size: u64, codec: Codec) -> FrameWriter {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        // A frame must fit in a volume: chunks of at most half a volume (zstd
        // stores incompressible data with a few bytes of overhead).
        let chunk = ((volume_size / 2) as usize).clamp(64 << 10, 8 << 20);
        // A deep queue: stretches of small files (where reading is the slow
        // part) and of large ones (compression) even out.
        let (jtx, jrx) = sync_channel::<Job>(threads * 6);
        let (dtx, drx) = sync_channel::<Done>(threads * 2);
        let jrx = Arc::new(Mutex::new(jrx));
        let workers = (0..threads)
            .map(|_| {
                let jrx = Arc::clone(&jrx);
                let dtx = dtx.clone();
                std::thread::spawn(move || {
                    // One compression context per thread, reused for every frame.
                    let mut z = match codec {
                        Codec::Zstd(level) => zstd::bulk::Compressor::new(level).ok(),
                        Codec::Gzip(_) => None,
                    };
                    loop {
                        let job = jrx.lock().ok().and_then(|r| r.recv().ok());
                        let Some((seq, data)) = job else { break };
                        let dlen = data.len() as u64;
                        let c = match (codec, z.as_mut()) {
                            (Codec::Zstd(_), Some(z)) => z.compress(&data),
                            (Codec::Zstd(level), None) => zstd::bulk::compress(&data, level),
                            (Codec::Gzip(level), _) => {
                                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
                                e.write_all(&data).and_then(|_| e.finish())
                            }
                        };
                        if dtx.send((seq, c, dlen)).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        drop(dtx);
        let out = Output {
            codec,
            upload,
            max: volume_size,
            file: None,
            number: 0,
            size: 0,
            volumes: Vec::new(),
            frames: Vec::new(),
            start: 0,
        };
        let writer = std::thread::spawn(move || write_in_order(out, drx));
        FrameWriter {
            chunk,
            buf: Vec::with_capacity(chunk),
            seq: 0,
            jobs: Some(jtx),
            workers,
            writer: Some(writer),
            written: 0,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
        let tx = self.jobs.as_ref().ok_or_else(|| std::io::Error::other("archive already finished"))?;
        if tx.send((self.seq, data)).is_err() {
            return Err(self.stopped());
        }
        self.seq += 1;
        Ok(())
    }

    /// Why the pipeline stopped taking data: the writer thread's own error
    /// (ENOSPC on a volume, with its path), collected by joining it. The
    /// workers end once the writer is gone, so the join cannot hang.
    fn stopped(&mut self) -> std::io::Error {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        match self.writer.take().map(|w| w.join()) {
            Some(Ok(Err(e))) => e,
            Some(Ok(Ok(_))) => std::io::Error::other("the archive writer stopped before the end of the stream"),
            Some(Err(_)) => std::io::Error::other("the archive writer thread failed"),
            None => std::io::Error::other("the archive writer already stopped"),
        }
    }

    /// Add bytes of the tar stream.
    pub fn write_all(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        self.written += data.len() as u64;
        while !data.is_empty() {
            let room = self.chunk - self.buf.len();
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == self.chunk {
                self.send()?;
            }
        }
        Ok(())
    }

    /// Flush everything; returns the volumes and the frame table.
    pub fn finish(mut self) -> std::io::Result<Written> {
        self.send()?;
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        match self.writer.take().map(|w| w.join()) {
            Some(Ok(r)) => r,
            _ => Err(std::io::Error::other("archive writer thread failed")),
        }
    }
}

fn write_in_order(mut out: Output, done: Receiver<Done>) -> std::io::Result<Written> {
    let mut pending: BTreeMap<u64, (Vec<u8>, u64)> = BTreeMap::new();
    let mut next = 0u64;
    let mut compressed = 0u64;
    for (seq, data, dlen) in done {
        let data = data.map_err(|e| std::io::Error::new(e.kind(), format!("compressing frame {seq}: {e}")))?;
        pending.insert(seq, (data, dlen));
        while let Some((data, dlen)) = pending.remove(&next) {
            compressed += data.len() as u64;
            out.write_frame(&data, dlen)?;
            next += 1;
        }
    }
    out.close()?;
    Ok((out.volumes, out.frames, compressed))
}
