//! The shared-library closure of programs, read from their ELF headers.
//!
//! Follows what the dynamic loader does: the interpreter (`PT_INTERP`),
//! `DT_NEEDED` entries searched in `DT_RPATH` (when there is no
//! `DT_RUNPATH`), `DT_RUNPATH`, the directories of `/etc/ld.so.conf` and the
//! default directories, with `$ORIGIN`, `$LIB` and `$PLATFORM` expanded.
//! hwcaps subdirectories are deliberately not used: the rescue system may run
//! on an older CPU than the one it was built on, so the baseline library is
//! the safe choice. Programs are never run (no `ldd`).

use object::elf::{FileHeader64, DT_NEEDED, DT_RPATH, DT_RUNPATH};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::Endianness;
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Errors resolving a closure.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// A file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A needed library is not in any searched directory.
    #[error("library {library} (needed by {needed_by}) was not found in {}; install the package that provides it, or leave {needed_by} out of the rescue system", .searched.join(", "))]
    MissingLibrary {
        /// The `DT_NEEDED` name.
        library: String,
        /// The object that needs it.
        needed_by: PathBuf,
        /// Directories searched.
        searched: Vec<String>,
    },
    /// A malformed ELF file.
    #[error("{path} is not a valid ELF file: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
}

/// What one ELF object asks of the loader.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DynInfo {
    /// `PT_INTERP`.
    pub interpreter: Option<String>,
    /// `DT_NEEDED`.
    pub needed: Vec<String>,
    /// `DT_RPATH` entries.
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries.
    pub runpath: Vec<String>,
}

/// Read the dynamic information of a 64-bit ELF file; `None` for a file that
/// is not a 64-bit ELF object (a script, data, a 32-bit program).
pub fn dyn_info(path: &Path) -> Result<Option<DynInfo>, ElfError> {
    let data = std::fs::read(path).map_err(|source| ElfError::Read { path: path.to_path_buf(), source })?;
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return Ok(None);
    }
    let bad = |e: object::read::Error| ElfError::Malformed { path: path.to_path_buf(), message: e.to_string() };
    let data = &data[..];
    let hdr = FileHeader64::<Endianness>::parse(data).map_err(bad)?;
    let endian = hdr.endian().map_err(bad)?;
    let mut info = DynInfo::default();
    for ph in hdr.program_headers(endian, data).map_err(bad)? {
        if let Some(i) = ph.interpreter(endian, data).map_err(bad)? {
            info.interpreter = Some(String::from_utf8_lossy(i).into_owned());
        }
    }
    let sections = hdr.sections(endian, data).map_err(bad)?;
    if let Some((dyns, link)) = sections.dynamic(endian, data).map_err(bad)? {
        let strings = sections.strings(endian, data, link).map_err(bad)?;
        for d in dyns {
            let tag = d.d_tag(endian) as u32;
            if ![DT_NEEDED, DT_RPATH, DT_RUNPATH].contains(&tag) {
                continue;
            }
            let s = String::from_utf8_lossy(d.string(endian, strings).map_err(bad)?).into_owned();
            match tag {
                DT_NEEDED => info.needed.push(s),
                DT_RPATH => info.rpath.extend(s.split(':').filter(|x| !x.is_empty()).map(String::from)),
                _ => info.runpath.extend(s.split(':').filter(|x| !x.is_empty()).map(String::from)),
            }
        }
    }
    Ok(Some(info))
}

/// Library directories from an ld.so.conf file, following `include` lines.
pub fn ld_so_conf_dirs(conf: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    read_conf(conf, &mut out, 0);
    out
}

fn read_conf(conf: &Path, out: &mut Vec<PathBuf>, depth: u32) {
    let Ok(text) = std::fs::read_to_string(conf) else { return };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = line.strip_prefix("include").map(str::trim) {
            if depth < 8 {
                let pattern = if pattern.starts_with('/') {
                    PathBuf::from(pattern)
                } else {
                    conf.parent().unwrap_or(Path::new("/")).join(pattern)
                };
                for f in glob_one_level(&pattern) {
                    read_conf(&f, out, depth + 1);
                }
            }
        } else if line.starts_with('/') {
            out.push(PathBuf::from(line));
        }
    }
}

/// Expand a pattern whose last component may hold `*` (all that ld.so.conf uses).
fn glob_one_level(pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else { return vec![] };
    let name = name.to_string_lossy();
    let (pre, post) = name.split_once('*').unwrap_or((&name, ""));
    if !name.contains('*') {
        return vec![pattern.to_path_buf()];
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(pre) && n.ends_with(post) && n.len() >= pre.len() + post.len()
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Resolves libraries the way the dynamic loader would.
#[derive(Debug, Clone)]
pub struct Resolver {
    /// Directories from ld.so.conf, then the defaults.
    pub system_dirs: Vec<PathBuf>,
}

impl Default for Resolver {
    fn default() -> Self {
        let mut dirs = ld_so_conf_dirs(Path::new("/etc/ld.so.conf"));
        for d in ["/lib64", "/usr/lib64", "/lib", "/usr/lib", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"] {
            dirs.push(PathBuf::from(d));
        }
        Resolver { system_dirs: dirs }
    }
}

fn expand(entry: &str, origin: &Path) -> PathBuf {
    let o = origin.to_string_lossy();
    PathBuf::from(
        entry
            .replace("${ORIGIN}", &o)
            .replace("$ORIGIN", &o)
            .replace("${LIB}", "lib64")
            .replace("$LIB", "lib64")
            .replace("${PLATFORM}", "x86_64")
            .replace("$PLATFORM", "x86_64"),
    )
}

impl Resolver {
    /// Every file (programs, interpreter, libraries) needed to run `programs`,
    /// as host paths, in a stable order. Non-ELF files are included as they
    /// are; a `#!` script brings its interpreter.
    pub fn closure(&self, programs: &[PathBuf]) -> Result<Vec<PathBuf>, ElfError> {
        let mut done: BTreeSet<PathBuf> = BTreeSet::new();
        let mut out = Vec::new();
        // Each queue item carries the RPATHs of the objects that loaded it (inherited by DT_RPATH rules).
        let mut queue: VecDeque<(PathBuf, Vec<PathBuf>)> = programs.iter().map(|p| (p.clone(), vec![])).collect();
        while let Some((path, inherited_rpath)) = queue.pop_front() {
            let canonical =
                std::fs::canonicalize(&path).map_err(|source| ElfError::Read { path: path.clone(), source })?;
            if !done.insert(canonical.clone()) {
                if !out.contains(&path) {
                    out.push(path);
                }
                continue;
            }
            out.push(path.clone());
            let Some(info) = dyn_info(&canonical)? else {
                if let Some(interp) = shebang(&canonical) {
                    queue.push_back((interp, vec![]));
                }
                continue;
            };
            if let Some(i) = &info.interpreter {
                queue.push_back((PathBuf::from(i), vec![]));
            }
            let origin = canonical.parent().unwrap_or(Path::new("/")).to_path_buf();
            let own_rpath: Vec<PathBuf> = info.rpath.iter().map(|e| expand(e, &origin)).collect();
            let runpath: Vec<PathBuf> = info.runpath.iter().map(|e| expand(e, &origin)).collect();
            let mut rpath_chain = Vec::new();
            if runpath.is_empty() {
                rpath_chain.extend(own_rpath.iter().cloned());
                rpath_chain.extend(inherited_rpath.iter().cloned());
            }
            let mut search: Vec<PathBuf> = rpath_chain.clone();
            search.extend(runpath);
            search.extend(self.system_dirs.iter().cloned());
            for lib in &info.needed {
                let found = if lib.contains('/') {
                    Some(PathBuf::from(lib)).filter(|p| p.exists())
                } else {
                    search.iter().map(|d| d.join(lib)).find(|p| is_elf64(p))
                };
                match found {
                    Some(p) => queue.push_back((p, rpath_chain.clone())),
                    None => {
                        return Err(ElfError::MissingLibrary {
                            library: lib.clone(),
                            needed_by: path.clone(),
                            searched: search.iter().map(|d| d.display().to_string()).collect(),
                        })
                    }
                }
            }
        }
        Ok(out)
    }
}

fn is_elf64(p: &Path) -> bool {
    use std::io::Read;
    let mut b = [0u8; 5];
    std::fs::File::open(p).and_then(|mut f| f.read_exact(&mut b)).is_ok() && &b[..4] == b"\x7fELF" && b[4] == 2
}

fn shebang(p: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut b = [0u8; 128];
    let n = std::fs::File::open(p).and_then(|mut f| f.read(&mut b)).ok()?;
    let line = std::str::from_utf8(b.get(..n)?).ok()?.lines().next()?;
    let interp = line.strip_prefix("#!")?.split_whitespace().next()?;
    Some(PathBuf::from(interp)).filter(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn cc() -> bool {
        Command::new("cc").arg("--version").output().is_ok_and(|o| o.status.success())
    }

    #[test]
    fn runpath_with_origin_and_missing_library() {
        if !cc() {
            eprintln!("SKIP: no C compiler (apt-get install gcc)");
            return;
        }
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        std::fs::create_dir_all(d.join("lib")).expect("mkdir");
        std::fs::write(d.join("foo.c"), "int foo(void){return 42;}\n").expect("write");
        std::fs::write(d.join("main.c"), "int foo(void); int main(void){return foo()==42?0:1;}\n").expect("write");
        let ok = |c: &mut Command| assert!(c.status().expect("cc").success());
        ok(Command::new("cc").current_dir(d).args([
            "-shared",
            "-fPIC",
            "-o",
            "lib/libfoo.so.1",
            "-Wl,-soname,libfoo.so.1",
            "foo.c",
        ]));
        ok(Command::new("cc").current_dir(d).args([
            "-o",
            "prog",
            "main.c",
            "-Llib",
            "-l:libfoo.so.1",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib",
        ]));
        let info = dyn_info(&d.join("prog")).expect("read").expect("elf");
        assert_eq!(info.runpath, vec!["$ORIGIN/lib"]);
        assert!(info.needed.contains(&"libfoo.so.1".to_string()));
        let files = Resolver::default().closure(&[d.join("prog")]).expect("closure");
        assert!(files.contains(&d.join("lib/libfoo.so.1")), "{files:?}");
        assert!(files.iter().any(|f| f.to_string_lossy().contains("libc.so.6")), "{files:?}");
        assert!(files.iter().any(|f| f.to_string_lossy().contains("ld-linux-x86-64")), "{files:?}");
        // The program really runs with what was found (sanity of the fixture).
        ok(&mut Command::new(d.join("prog")));

        std::fs::remove_file(d.join("lib/libfoo.so.1")).expect("rm");
        let e = Resolver::default().closure(&[d.join("prog")]).unwrap_err().to_string();
        assert!(e.contains("libfoo.so.1") && e.contains("prog") && e.contains("/lib"), "{e}");
    }

    #[test]
    fn scripts_bring_their_interpreter() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = dir.path().join("script");
        std::fs::write(&s, "#!/bin/sh\necho hi\n").expect("write");
        let files = Resolver::default().closure(std::slice::from_ref(&s)).expect("closure");
        assert_eq!(files[0], s);
        assert!(files.contains(&PathBuf::from("/bin/sh")), "{files:?}");
    }

    #[test]
    fn ld_so_conf_includes() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        std::fs::create_dir_all(d.join("conf.d")).expect("mkdir");
        std::fs::write(d.join("ld.so.conf"), "include conf.d/*.conf\n/opt/lib # comment\n").expect("w");
        std::fs::write(d.join("conf.d/a.conf"), "/a/lib\n").expect("w");
        std::fs::write(d.join("conf.d/b.conf"), "/b/lib\n").expect("w");
        std::fs::write(d.join("conf.d/ignored.txt"), "/c/lib\n").expect("w");
        let dirs = ld_so_conf_dirs(&d.join("ld.so.conf"));
        assert_eq!(dirs, vec![PathBuf::from("/a/lib"), PathBuf::from("/b/lib"), PathBuf::from("/opt/lib")]);
    }
}
