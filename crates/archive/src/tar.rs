//! Writing tar entries in the POSIX pax format that GNU tar, bsdtar and star
//! read: a ustar header, preceded by a pax extended header (`x`) when a value
//! does not fit ustar (long or non-UTF-8 names, large sizes and ids,
//! nanosecond times, extended attributes as `SCHILY.xattr.*`).

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file; its data follows the header.
    File,
    /// A directory.
    Dir,
    /// A symbolic link to this target.
    Symlink(Vec<u8>),
    /// A hard link to an earlier entry (archive path).
    Hardlink(Vec<u8>),
    /// A character device.
    Char(u32, u32),
    /// A block device.
    Block(u32, u32),
    /// A named pipe.
    Fifo,
}

/// One entry's metadata.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Archive path (relative, no leading slash; directories without the trailing slash).
    pub path: Vec<u8>,
    /// Type.
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name.
    pub uname: String,
    /// Group name.
    pub gname: String,
    /// Data size (regular files).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    pub mtime_ns: u32,
    /// Extended attributes (name, value), POSIX ACLs and capabilities included.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// For a sparse file: its data segments (offset, length). The stored
    /// data is then the sparse map ([`sparse_map`]) followed by the segments.
    pub sparse: Option<Vec<(u64, u64)>>,
}

/// The GNU sparse format 1.0 map that precedes a sparse file's data:
/// decimal lines (count, then offset and length of each segment), padded to a block.
pub fn sparse_map(segments: &[(u64, u64)]) -> Vec<u8> {
    let mut m = format!("{}\n", segments.len()).into_bytes();
    for (o, l) in segments {
        m.extend_from_slice(format!("{o}\n{l}\n").as_bytes());
    }
    let len = m.len() as u64;
    pad(&mut m, len);
    m
}

const BLOCK: usize = 512;

/// Write `v` as a NUL-terminated octal field; callers keep `v` within the field.
fn octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    if s.len() == width {
        field[..width].copy_from_slice(s.as_bytes());
        field[width] = 0;
    }
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    // "LEN key=value\n", where LEN counts its own digits too.
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn is_plain(name: &[u8], max: usize) -> bool {
    name.len() <= max && name.iter().all(|b| (0x20..0x7f).contains(b))
}

/// Largest values of ustar's octal fields (ids: 7 digits, size and mtime: 11).
const MAX_ID: u64 = 0o7777777;
const MAX_BIG: u64 = 0o77777777777;

/// A ustar header; values that do not fit are written as 0 (a pax record carries them).
fn ustar(out: &mut Vec<u8>, name: &[u8], typeflag: u8, e: &Entry, size: u64, link: &[u8]) {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    let fit = |v: u64, max: u64| if v > max { 0 } else { v };
    octal(&mut h[100..108], u64::from(e.mode & 0o7777));
    octal(&mut h[108..116], fit(u64::from(e.uid), MAX_ID));
    octal(&mut h[116..124], fit(u64::from(e.gid), MAX_ID));
    octal(&mut h[124..136], fit(size, MAX_BIG));
    octal(&mut h[136..148], fit(e.mtime.max(0) as u64, MAX_BIG));
    h[156] = typeflag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let un = e.uname.as_bytes();
    h[265..265 + un.len().min(31)].copy_from_slice(&un[..un.len().min(31)]);
    let gn = e.gname.as_bytes();
    h[297..297 + gn.len().min(31)].copy_from_slice(&gn[..gn.len().min(31)]);
    if let Kind::Char(ma, mi) | Kind::Block(ma, mi) = e.kind {
        octal(&mut h[329..337], u64::from(ma));
        octal(&mut h[337..345], u64::from(mi));
    }
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    out.extend_from_slice(&h);
}

/// Append the header(s) of an entry (its data, if any, must follow, then [`pad`]).
pub fn write_header(out: &mut Vec<u8>, e: &Entry) {
    let mut path = e.path.clone();
    if e.kind == Kind::Dir && !path.ends_with(b"/") {
        path.push(b'/');
    }
    let (typeflag, link): (u8, &[u8]) = match &e.kind {
        Kind::File => (b'0', b""),
        Kind::Hardlink(t) => (b'1', t),
        Kind::Symlink(t) => (b'2', t),
        Kind::Char(..) => (b'3', b""),
        Kind::Block(..) => (b'4', b""),
        Kind::Dir => (b'5', b""),
        Kind::Fifo => (b'6', b""),
    };
    let mut size = if e.kind == Kind::File { e.size } else { 0 };
    let mut pax = Vec::new();
    if let Some(segs) = &e.sparse {
        // GNU tar's sparse format 1.0: the real name and size in pax records,
        // a placeholder name in the header, the map at the start of the data.
        pax_record(&mut pax, "GNU.sparse.major", b"1");
        pax_record(&mut pax, "GNU.sparse.minor", b"0");
        pax_record(&mut pax, "GNU.sparse.name", &path);
        pax_record(&mut pax, "GNU.sparse.realsize", e.size.to_string().as_bytes());
        size = sparse_map(segs).len() as u64 + segs.iter().map(|(_, l)| l).sum::<u64>();
        let split = path.iter().rposition(|b| *b == b'/').map(|i| i + 1).unwrap_or(0);
        let mut placeholder = path[..split].to_vec();
        placeholder.extend_from_slice(b"GNUSparseFile.0/");
        placeholder.extend_from_slice(&path[split..]);
        path = placeholder;
    }
    let utf8 = std::str::from_utf8(&path).is_ok() && std::str::from_utf8(link).is_ok();
    if !utf8 {
        pax_record(&mut pax, "hdrcharset", b"BINARY");
    }
    if !is_plain(&path, 100) {
        pax_record(&mut pax, "path", &path);
    }
    if !is_plain(link, 100) {
        pax_record(&mut pax, "linkpath", link);
    }
    if e.mtime_ns != 0 || e.mtime < 0 || e.mtime as u64 > MAX_BIG {
        pax_record(&mut pax, "mtime", format!("{}.{:09}", e.mtime, e.mtime_ns).as_bytes());
    }
    if e.uname.len() > 31 {
        pax_record(&mut pax, "uname", e.uname.as_bytes());
    }
    if e.gname.len() > 31 {
        pax_record(&mut pax, "gname", e.gname.as_bytes());
    }
    for (k, v) in &e.xattrs {
        let key = format!("SCHILY.xattr.{}", String::from_utf8_lossy(k));
        pax_record(&mut pax, &key, v);
    }
    // Values too large for ustar's octal fields.
    if u64::from(e.uid) > MAX_ID {
        pax_record(&mut pax, "uid", e.uid.to_string().as_bytes());
    }
    if u64::from(e.gid) > MAX_ID {
        pax_record(&mut pax, "gid", e.gid.to_string().as_bytes());
    }
    if size > MAX_BIG {
        pax_record(&mut pax, "size", size.to_string().as_bytes());
    }
    if !pax.is_empty() {
        let x = Entry { kind: Kind::File, mode: 0o644, xattrs: Vec::new(), sparse: None, ..e.clone() };
        // GNU tar names pax headers "DIR/PaxHeaders/NAME"; the name only matters to very old readers.
        let base = path.rsplit(|b| *b == b'/').find(|s| !s.is_empty()).unwrap_or(b"x");
        let mut name = b"PaxHeaders/".to_vec();
        name.extend_from_slice(&base[..base.len().min(80)]);
        ustar(out, &name, b'x', &x, pax.len() as u64, b"");
        out.extend_from_slice(&pax);
        pad(out, pax.len() as u64);
    }
    ustar(out, &path, typeflag, e, size, link);
}

/// Pad data of `len` bytes to the next 512-byte block.
pub fn pad(out: &mut Vec<u8>, len: u64) {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

/// The end-of-archive marker: two zero blocks.
pub fn end(out: &mut Vec<u8>) {
    out.resize(out.len() + 2 * BLOCK, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_beyond_ustar_go_into_pax_records_once() {
        let e = Entry {
            path: b"f".to_vec(),
            kind: Kind::File,
            mode: 0o644,
            uid: 3_000_000,
            gid: 7,
            uname: String::new(),
            gname: String::new(),
            size: 0,
            mtime: 1,
            mtime_ns: 5,
            xattrs: Vec::new(),
            sparse: None,
        };
        let mut out = Vec::new();
        write_header(&mut out, &e);
        let text = String::from_utf8_lossy(&out);
        assert_eq!(text.matches(" uid=3000000\n").count(), 1, "{text}");
        assert_eq!(text.matches(" mtime=1.000000005\n").count(), 1);
        assert!(!text.contains(" gid="), "gid fits ustar");
        assert_eq!(out.len(), 3 * 512, "pax header, its data (one block), the ustar header");
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, "path", b"abc");
        assert_eq!(v, b"12 path=abc\n");
        let mut v = Vec::new();
        let long = vec![b'x'; 95];
        pax_record(&mut v, "path", &long);
        assert!(v.starts_with(b"105 path="), "{}", String::from_utf8_lossy(&v[..10]));
        assert_eq!(v.len(), 105);
        // Across the 2-to-3-digit boundary the declared length stays exact.
        for n in 80..120 {
            let mut v = Vec::new();
            pax_record(&mut v, "path", &vec![b'y'; n]);
            let declared: usize = std::str::from_utf8(&v[..v.iter().position(|b| *b == b' ').unwrap_or(0)])
                .ok()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            assert_eq!(declared, v.len(), "value of {n} bytes");
        }
    }
}
