//! Kernel modules and their dependencies, from `modules.dep`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Errors resolving modules.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// modules.dep cannot be read.
    #[error("cannot read {path}: {source} (are this kernel's modules installed? run depmod)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A module name that the kernel neither has as a module nor built in.
    #[error(
        "kernel module `{0}` is neither in modules.dep nor built into this kernel; check the name with `modinfo {0}`"
    )]
    Unknown(String),
}

/// The module index of one kernel.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    /// `/lib/modules/<version>`.
    pub dir: PathBuf,
    /// Module name (underscores) → relative path.
    paths: BTreeMap<String, String>,
    /// Relative path → dependency relative paths.
    deps: BTreeMap<String, Vec<String>>,
    /// Built-in module names.
    builtin: BTreeSet<String>,
}

/// The module name of a path (`kernel/fs/ext4/ext4.ko.xz` → `ext4`), with `-` as `_`.
pub fn module_name(rel: &str) -> String {
    let base = rel.rsplit('/').next().unwrap_or(rel);
    let base = base.split(".ko").next().unwrap_or(base);
    base.replace('-', "_")
}

impl ModuleIndex {
    /// Read `modules.dep` (and `modules.builtin` when present) of a modules directory.
    pub fn load(dir: &Path) -> Result<ModuleIndex, ModuleError> {
        let dep = dir.join("modules.dep");
        let text = std::fs::read_to_string(&dep).map_err(|source| ModuleError::Read { path: dep, source })?;
        let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
        Ok(ModuleIndex::parse(dir, &text, &builtin))
    }

    /// Build an index from the texts of modules.dep and modules.builtin.
    pub fn parse(dir: &Path, dep: &str, builtin: &str) -> ModuleIndex {
        let mut idx = ModuleIndex { dir: dir.to_path_buf(), ..ModuleIndex::default() };
        for line in dep.lines() {
            let Some((m, rest)) = line.split_once(':') else { continue };
            idx.paths.insert(module_name(m), m.to_string());
            idx.deps.insert(m.to_string(), rest.split_whitespace().map(String::from).collect());
        }
        idx.builtin = builtin.lines().filter(|l| !l.trim().is_empty()).map(module_name).collect();
        idx
    }

    /// Whether a module name is known (loadable or built in).
    pub fn knows(&self, name: &str) -> bool {
        let n = name.replace('-', "_");
        self.paths.contains_key(&n) || self.builtin.contains(&n)
    }

    /// Every loadable module name.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.paths.keys()
    }

    /// Every loadable module: (name, path relative to the modules directory).
    pub fn entries(&self) -> impl Iterator<Item = (&String, &String)> {
        self.paths.iter()
    }

    /// Relative path of a module.
    pub fn path_of(&self, name: &str) -> Option<&str> {
        self.paths.get(&name.replace('-', "_")).map(String::as_str)
    }

    /// The modules (relative paths) needed to load `names`, each after its
    /// dependencies, without duplicates. Built-in modules need nothing.
    pub fn load_order(&self, names: &[&str]) -> Result<Vec<String>, ModuleError> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for name in names {
            let n = name.replace('-', "_");
            match self.paths.get(&n) {
                Some(rel) => self.visit(rel, &mut seen, &mut order),
                None if self.builtin.contains(&n) => {}
                None => return Err(ModuleError::Unknown(name.to_string())),
            }
        }
        Ok(order)
    }

    fn visit(&self, rel: &str, seen: &mut BTreeSet<String>, order: &mut Vec<String>) {
        if !seen.insert(rel.to_string()) {
            return;
        }
        // modules.dep lists the whole transitive closure, most basic last.
        for d in self.deps.get(rel).into_iter().flatten().rev() {
            self.visit(d, seen, order);
        }
        order.push(rel.to_string());
    }
}

/// Firmware files a module asks for (`firmware=` in its `.modinfo` section).
pub fn firmware_of(ko: &Path) -> Vec<String> {
    use object::{Object, ObjectSection};
    let Ok(data) = std::fs::read(ko) else { return Vec::new() };
    let Ok(file) = object::File::parse(&*data) else { return Vec::new() };
    let Some(sec) = file.section_by_name(".modinfo") else { return Vec::new() };
    let Ok(bytes) = sec.data() else { return Vec::new() };
    bytes
        .split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .filter_map(|kv| kv.strip_prefix("firmware="))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n\
kernel/fs/jbd2/jbd2.ko:\nkernel/fs/mbcache.ko:\nkernel/lib/crc16.ko:\n\
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n\
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/virtio/virtio_ring.ko:\n\
kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko\nkernel/drivers/md/dm-mod.ko:\n";

    #[test]
    fn dependencies_come_first_once() {
        let idx = ModuleIndex::parse(Path::new("/x"), DEP, "kernel/drivers/ata/libata.ko\n");
        let o = idx.load_order(&["virtio_blk", "ext4", "dm-crypt", "virtio", "libata"]).expect("order");
        assert_eq!(
            o,
            vec![
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/block/virtio_blk.ko",
                "kernel/fs/jbd2/jbd2.ko",
                "kernel/fs/mbcache.ko",
                "kernel/lib/crc16.ko",
                "kernel/fs/ext4/ext4.ko",
                "kernel/drivers/md/dm-mod.ko",
                "kernel/drivers/md/dm-crypt.ko",
            ]
        );
        assert!(idx.knows("dm_crypt") && idx.knows("libata"));
        let e = idx.load_order(&["nosuchdriver"]).unwrap_err().to_string();
        assert!(e.contains("nosuchdriver") && e.contains("modinfo"), "{e}");
    }

    #[test]
    fn real_kernel_order_when_installed() {
        let Some(dir) = std::fs::read_dir("/lib/modules")
            .ok()
            .and_then(|rd| rd.flatten().map(|e| e.path()).find(|p| p.join("modules.dep").exists()))
        else {
            eprintln!("SKIP: no kernel modules installed (apt-get install linux-image-amd64)");
            return;
        };
        let idx = ModuleIndex::load(&dir).expect("load");
        let o = idx.load_order(&["virtio_blk"]).expect("virtio_blk");
        let pos = |n: &str| o.iter().position(|r| module_name(r) == n);
        // Debian builds virtio_blk as a module that needs the virtio core first.
        if let (Some(core), Some(blk)) = (pos("virtio"), pos("virtio_blk")) {
            assert!(core < blk, "{o:?}");
        }
        assert_eq!(o.last().map(|r| module_name(r)), Some("virtio_blk".into()));
    }
}
