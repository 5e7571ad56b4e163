//! The guest's initramfs: a cached base with busybox, the host's storage
//! tools and Debian's kernel modules, plus a small per-run overlay.

use crate::{io, Spec, VmError};
use lifeboat_rescue::elf::Resolver;
use lifeboat_rescue::initramfs::{Compression, Tree};
use lifeboat_rescue::kernel::KernelChoice;
use lifeboat_rescue::modules::ModuleIndex;
use lifeboat_rescue::system::{find_program, LVM_CONF};
use lifeboat_runner::{Mode, SystemRunner};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Host programs put into the guest when the host has them (with their libraries).
#[rustfmt::skip]
pub const GUEST_PROGRAMS: &[&str] = &[
    "bash", "ls", "cat", "cp", "mv", "rm", "ln", "mkdir", "rmdir", "chmod", "chown", "stat", "touch", "sleep",
    "sync", "dd", "head", "tail", "grep", "sed", "awk", "find", "xargs", "sort", "uniq", "wc", "tr", "cut", "env",
    "md5sum", "sha256sum", "truncate", "diff", "cmp", "od", "mknod", "uname", "id", "date", "readlink", "realpath",
    "basename", "dirname", "seq", "tee", "printf", "true", "false", "test", "du", "df", "mount", "umount", "lsblk",
    "blkid", "sfdisk", "losetup", "wipefs", "mkswap", "swapon", "swapoff", "findmnt", "partx", "blockdev",
    "mke2fs", "mkfs.ext4", "mkfs.ext3", "mkfs.ext2", "dumpe2fs", "tune2fs", "e2fsck", "e2label", "debugfs",
    "mkfs.xfs", "xfs_info", "xfs_db", "xfs_spaceman", "xfs_admin", "xfs_growfs", "btrfs", "mkfs.btrfs", "mkfs.fat",
    "mkfs.vfat", "fsck.fat", "fatlabel", "mdadm", "lvm", "pvcreate", "vgcreate", "lvcreate", "pvs", "vgs", "lvs",
    "vgchange", "lvchange", "vgremove", "dmsetup", "thin_check", "thin_dump", "thin_repair", "cryptsetup", "ip",
    "modprobe", "insmod", "lsmod", "setfacl", "getfacl", "setfattr", "getfattr", "setcap", "getcap", "efibootmgr",
    "tar", "zstd", "gzip", "rpcbind", "rpc.nfsd", "rpc.mountd", "exportfs", "mount.nfs", "mount.nfs4",
];

/// Kernel modules loaded at guest boot (those the kernel has as modules).
#[rustfmt::skip]
pub const GUEST_MODULES: &[&str] = &[
    "virtio_pci", "virtio_blk", "virtio_net", "crc32c_generic", "ext4", "xfs", "btrfs", "vfat", "nls_cp437",
    "nls_ascii", "nls_utf8", "loop", "dm_mod", "dm_crypt", "dm_thin_pool", "dm_snapshot", "dm_mirror", "dm_raid",
    "md_mod", "raid0", "raid1", "raid10", "raid456", "9pnet_virtio", "9p", "algif_skcipher", "xts", "aes_generic",
    "sha256_generic", "sha512_generic", "cbc", "ecb", "essiv", "af_packet", "nfsd", "nfsv4",
];

/// Bump when what the base holds changes in a way the inputs do not show.
const BASE_REVISION: u32 = 1;

const INIT: &str = r#"#!/busybox/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/busybox
export DM_DISABLE_UDEV=1 HOME=/root TERM=dumb
/busybox/mkdir -p /proc /sys /dev /run /tmp /out
/busybox/mount -t proc proc /proc
/busybox/mount -t sysfs sysfs /sys
/busybox/mount -t devtmpfs devtmpfs /dev
/busybox/mount -t tmpfs tmpfs /run
/busybox/mount -t tmpfs tmpfs /tmp
/busybox/mkdir -p /dev/pts /dev/shm /run/lock /run/lvm /run/cryptsetup
/busybox/mount -t devpts devpts /dev/pts
/busybox/ln -sf /proc/self/fd /dev/fd
for m in $(/busybox/cat /etc/vmtest/modules); do
  /busybox/insmod "$m" 2>/dev/null || echo "vmtest: could not load $m" > /dev/ttyS0
done
/busybox/hostname lifeboat-vm
/busybox/mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /out 2>/dev/null
cd /
/bin/bash /test.sh > /dev/ttyS1 2>&1 < /dev/null
rc=$?
echo "LIFEBOAT-VM-EXIT=$rc" > /dev/ttyS1
/busybox/sync
/busybox/umount /out 2>/dev/null
/busybox/poweroff -f
"#;

fn base_tree(kernel: &KernelChoice) -> Result<Tree, VmError> {
    let mut t = Tree::new();
    for d in ["/proc", "/sys", "/dev", "/run", "/tmp", "/out", "/root", "/etc", "/mnt"] {
        t.mkdir(Path::new(d));
    }
    t.merged_usr_links();
    t.char_device(Path::new("/dev/console"), 0o600, 5, 1);
    t.char_device(Path::new("/dev/null"), 0o666, 1, 3);
    // busybox applets in a directory of their own, after the real tools on PATH.
    t.busybox(&SystemRunner::new(Mode::Run), Path::new("/bin/busybox"), Path::new("/busybox"))
        .map_err(io("cannot add busybox"))?;
    let programs: Vec<PathBuf> = GUEST_PROGRAMS.iter().filter_map(|p| find_program(p)).collect();
    let files = Resolver::default().closure(&programs).map_err(|e| VmError::Build(e.to_string()))?;
    for f in &files {
        t.host_path(f).map_err(io(format!("cannot add {}", f.display())))?;
    }
    // Libraries loaded at run time: NSS for user names, libgcc_s for unwinding.
    for lib in ["libnss_files.so.2", "libgcc_s.so.1"] {
        if let Some(p) = Resolver::default().system_dirs.iter().map(|d| d.join(lib)).find(|p| p.exists()) {
            t.host_path(&p).map_err(io(format!("cannot add {}", p.display())))?;
        }
    }
    t.data(
        Path::new("/etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        0o644,
    );
    t.data(Path::new("/etc/group"), "root:x:0:\ndisk:x:6:\nnogroup:x:65534:\n", 0o644);
    t.data(Path::new("/etc/nsswitch.conf"), "passwd: files\ngroup: files\n", 0o644);
    t.data(Path::new("/etc/lvm/lvm.conf"), LVM_CONF, 0o644);
    t.data(Path::new("/etc/mdadm/mdadm.conf"), "AUTO -all\n", 0o644);
    t.data(Path::new("/etc/fstab"), "", 0o644);
    // What the RPC tools of an NFS server and client read.
    for f in ["/etc/netconfig", "/etc/protocols", "/etc/services", "/etc/rpc"] {
        if Path::new(f).exists() {
            t.host_path(Path::new(f)).map_err(io(format!("cannot add {f}")))?;
        }
    }
    // Modules in load order, as absolute paths for insmod.
    let idx = ModuleIndex::load(&kernel.modules_dir).map_err(|e| VmError::Build(e.to_string()))?;
    let wanted: Vec<&str> = GUEST_MODULES.iter().copied().filter(|m| idx.knows(m)).collect();
    let order = idx.load_order(&wanted).map_err(|e| VmError::Build(e.to_string()))?;
    let mut list = String::new();
    for rel in &order {
        let p = kernel.modules_dir.join(rel);
        t.host_path(&p).map_err(io(format!("cannot add {}", p.display())))?;
        list.push_str(&format!("{}\n", p.display()));
    }
    t.data(Path::new("/etc/vmtest/modules"), list, 0o644);
    t.data(Path::new("/init"), INIT, 0o755);
    Ok(t)
}

fn base_key(kernel: &KernelChoice) -> String {
    let mut h = DefaultHasher::new();
    BASE_REVISION.hash(&mut h);
    // Any change to how the base is made makes a new one.
    include_str!("base.rs").hash(&mut h);
    kernel.version.hash(&mut h);
    INIT.hash(&mut h);
    LVM_CONF.hash(&mut h);
    GUEST_PROGRAMS.hash(&mut h);
    GUEST_MODULES.hash(&mut h);
    for p in GUEST_PROGRAMS.iter().filter_map(|p| find_program(p)) {
        p.hash(&mut h);
        if let Ok(m) = std::fs::metadata(&p) {
            m.len().hash(&mut h);
        }
    }
    format!("{:016x}", h.finish())
}

/// The cached base initramfs for this kernel and tool set, built when absent.
pub fn build_cached(kernel: &KernelChoice, cache: &Path) -> Result<PathBuf, VmError> {
    // Tests run in threads: build once per process; other processes race
    // only to an atomic rename of identical content.
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let path = cache.join(format!("base-{}-{}.cpio.gz", kernel.version, base_key(kernel)));
    if path.exists() {
        return Ok(path);
    }
    let start = std::time::Instant::now();
    let tree = base_tree(kernel)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let f = std::fs::File::create(&tmp).map_err(io(format!("cannot create {}", tmp.display())))?;
    let size = tree
        .write_to(std::io::BufWriter::new(f), Compression::Gzip(1))
        .map_err(io(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(io(format!("cannot rename {}", tmp.display())))?;
    log::info!(
        "built VM base initramfs {} ({} entries, {} MiB uncompressed) in {:.1} s",
        path.display(),
        tree.len(),
        size >> 20,
        start.elapsed().as_secs_f64()
    );
    Ok(path)
}

/// The run's initramfs: the cached base, zero padding, then an uncompressed
/// archive with the script, lifeboat (when given) and the spec's files.
pub fn write_initrd(base: &Path, out: &Path, spec: &Spec) -> Result<(), VmError> {
    let mut t = Tree::new();
    t.data(Path::new("/test.sh"), spec.script.clone(), 0o755);
    let mut programs = Vec::new();
    for (host, guest) in &spec.files {
        t.host_file_as(host, Path::new(guest), file_mode(host));
        if file_mode(host) & 0o111 != 0 {
            programs.push(host.clone());
        }
    }
    // Libraries of added programs that the base may lack (it has libc and friends).
    if !programs.is_empty() {
        let files = Resolver::default().closure(&programs).map_err(|e| VmError::Build(e.to_string()))?;
        for f in files.iter().filter(|f| !programs.contains(f)) {
            t.host_path(f).map_err(io(format!("cannot add {}", f.display())))?;
        }
    }
    let mut bytes = std::fs::read(base).map_err(io(format!("cannot read {}", base.display())))?;
    // The kernel looks for the next archive at a 4-byte boundary after the compressed one.
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    let mut f = std::fs::File::create(out).map_err(io(format!("cannot create {}", out.display())))?;
    f.write_all(&bytes).map_err(io(format!("cannot write {}", out.display())))?;
    t.write_to(&mut f, Compression::None).map_err(io(format!("cannot write {}", out.display())))?;
    Ok(())
}

fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644)
}
