//! The kernel's initramfs archive format: cpio "newc" (`070701`) headers.

use std::io::{self, Write};

/// Writes a newc cpio archive entry by entry.
#[derive(Debug)]
pub struct CpioWriter<W: Write> {
    w: W,
    ino: u32,
    pos: u64,
}

impl<W: Write> CpioWriter<W> {
    /// Start an archive on `w`.
    pub fn new(w: W) -> Self {
        CpioWriter { w, ino: 1, pos: 0 }
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.pos % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, rdev: (u32, u32), mtime: u32) -> io::Result<()> {
        let size =
            u32::try_from(size).map_err(|_| io::Error::other(format!("{name}: too large for cpio (over 4 GiB)")))?;
        let name = name.trim_start_matches('/');
        let name = if name.is_empty() { "." } else { name };
        let ino = self.ino;
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let h = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{mtime:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            0,
            0,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0
        );
        self.put(h.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()
    }

    /// A directory.
    pub fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.header(name, 0o040000 | (perm & 0o7777), 0, (0, 0), 0)
    }

    /// A regular file with its contents.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.header(name, 0o100000 | (perm & 0o7777), data.len() as u64, (0, 0), 0)?;
        self.put(data)?;
        self.pad()
    }

    /// A symbolic link.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.header(name, 0o120777, target.len() as u64, (0, 0), 0)?;
        self.put(target.as_bytes())?;
        self.pad()
    }

    /// A character device node.
    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.header(name, 0o020000 | (perm & 0o7777), 0, (major, minor), 0)
    }

    /// Write the trailer and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 0, (0, 0), 0)?;
        self.w.flush()?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_cpio_reads_what_we_write() {
        if lifeboat_which("cpio").is_none() {
            eprintln!("SKIP: cpio is not installed (apt-get install cpio)");
            return;
        }
        let mut w = CpioWriter::new(Vec::new());
        w.dir("/etc", 0o755).expect("dir");
        w.file("/etc/hostname", 0o644, b"rescue\n").expect("file");
        w.file("/odd", 0o600, b"12345").expect("file");
        w.symlink("/bin", "usr/bin").expect("link");
        w.char_device("/dev/console", 0o600, 5, 1).expect("dev");
        let bytes = w.finish().expect("finish");
        assert_eq!(bytes.len() % 4, 0);
        let dir = tempfile::tempdir().expect("tmp");
        let archive = dir.path().join("a.cpio");
        std::fs::write(&archive, &bytes).expect("write");
        let out = std::process::Command::new("cpio")
            .args(["-t", "-v", "--quiet", "-F"])
            .arg(&archive)
            .output()
            .expect("cpio");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let list = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 5, "{list}");
        assert!(lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" etc"), "{list}");
        assert!(
            lines[1].starts_with("-rw-r--r--") && lines[1].contains(" 7 ") && lines[1].ends_with("etc/hostname"),
            "{list}"
        );
        assert!(lines[3].starts_with("lrwxrwxrwx") && lines[3].ends_with("bin -> usr/bin"), "{list}");
        assert!(lines[4].starts_with("crw-------") && lines[4].contains("5,"), "{list}");
        // Contents survive extraction.
        let out = std::process::Command::new("cpio")
            .args(["-i", "-d", "--quiet", "--no-absolute-filenames", "-F"])
            .arg(&archive)
            .current_dir(dir.path())
            .output()
            .expect("cpio -i");
        assert!(out.status.success());
        assert_eq!(std::fs::read(dir.path().join("etc/hostname")).expect("read"), b"rescue\n");
        assert_eq!(std::fs::read(dir.path().join("odd")).expect("read"), b"12345");
    }

    fn lifeboat_which(p: &str) -> Option<()> {
        std::env::split_paths(&std::env::var_os("PATH")?).any(|d| d.join(p).is_file()).then_some(())
    }
}
