//! A test tree with every kind of entry the archive must keep, and an
//! entry-by-entry snapshot to compare trees with.

use super::sh;
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Build the tree: every file type, owners, modes, times, xattrs, ACLs,
/// capabilities, hard links, odd names; plus a socket (skipped and counted).
pub fn build_tree(t: &Path) {
    sh(&format!(
        r#"set -e
cd {t}
mkdir -p etc/ssl/private bin data/deep sticky empty
printf 'root:x:0:0::/root:/bin/bash\n' > etc/passwd
printf 'secret\n' > etc/ssl/private/key.pem; chmod 600 etc/ssl/private/key.pem
head -c 3000000 /dev/urandom > data/random.bin
seq 1 200000 > data/counting.txt
: > data/empty
cp /bin/true bin/suid; chmod 4755 bin/suid
cp /bin/true bin/pinger; setcap cap_net_raw+ep bin/pinger
chmod 1777 sticky; chmod 750 data/deep
ln data/counting.txt data/hardlink-a; ln data/counting.txt data/hardlink-b
ln -s ../etc/passwd bin/relative-link; ln -s /nonexistent/target bin/dangling-link
mknod data/null c 1 3; mknod data/loopdev b 7 200; mkfifo data/pipe
chown 1234:5678 data/random.bin; chown -h 4321:8765 bin/relative-link
setfattr -n user.note -v "hello world" data/random.bin
setfattr -n user.binary -v 0x00ff10 data/empty
setfacl -m u:1234:rx,g:5678:r data/counting.txt
setfacl -d -m u:1234:rwx data/deep
long=$(printf 'n%.0s' $(seq 1 200)); touch "data/$long"
mkdir -p "data/$(printf 'd%.0s' $(seq 1 90))/$(printf 'e%.0s' $(seq 1 90))/$(printf 'f%.0s' $(seq 1 90))"
touch "data/$(printf 'd%.0s' $(seq 1 90))/$(printf 'e%.0s' $(seq 1 90))/$(printf 'f%.0s' $(seq 1 90))/file"
touch "data/name with
newline"
touch "data/$(printf 'bad\xff\xfename')"
touch -h -d '2001-02-03 04:05:06.123456789' bin/relative-link data/random.bin
touch -d '1999-12-31 23:59:59.5' data/deep
truncate -s 64M data/sparse.img
printf hello | dd of=data/sparse.img bs=1 seek=1000000 conv=notrunc status=none
printf end | dd of=data/sparse.img bs=1 seek=33554432 conv=notrunc status=none
truncate -s 8M data/sparse-tail; printf tail | dd of=data/sparse-tail bs=1 seek=8388604 conv=notrunc status=none
python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.bind('data/socket')"
"#,
        t = t.display()
    ));
}

/// Everything about every entry that must survive, keyed by path bytes.
pub fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    let mut linked: Vec<(Vec<u8>, (u64, u64))> = Vec::new();
    let mut stack = vec![PathBuf::from(root)];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).expect("lstat");
        let rel = p.strip_prefix(root).expect("prefix").as_os_str().as_bytes().to_vec();
        let ft = m.file_type();
        let mut d = format!("mode={:o} uid={} gid={}", m.mode(), m.uid(), m.gid());
        if !ft.is_dir() {
            d.push_str(&format!(" mtime={}.{:09}", m.mtime(), m.mtime_nsec()));
        }
        if ft.is_file() {
            let data = std::fs::read(&p).expect("read");
            d.push_str(&format!(" size={} blake3={}", data.len(), blake3::hash(&data).to_hex()));
            if m.blocks() * 512 < m.len() / 2 {
                d.push_str(" sparse");
            }
            if m.nlink() > 1 {
                // The group is named by its smallest path, whatever order the directory is read in.
                let first = inodes.entry((m.dev(), m.ino())).or_insert_with(|| rel.clone());
                if rel < *first {
                    *first = rel.clone();
                }
                d.push_str(&format!(" links={} group=", m.nlink()));
                linked.push((rel.clone(), (m.dev(), m.ino())));
            }
        } else if ft.is_symlink() {
            d.push_str(&format!(" -> {}", std::fs::read_link(&p).expect("readlink").display()));
        } else if ft.is_char_device() || ft.is_block_device() {
            d.push_str(&format!(" rdev={:x}", m.rdev()));
        }
        for (k, v) in lifeboat_archive::backup::xattrs(&p) {
            d.push_str(&format!(
                " xattr:{}={}",
                String::from_utf8_lossy(&k),
                v.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ));
        }
        out.insert(rel, d);
        if ft.is_dir() {
            for e in std::fs::read_dir(&p).expect("readdir").flatten() {
                stack.push(e.path());
            }
        }
    }
    for (rel, key) in linked {
        if let (Some(d), Some(first)) = (out.get_mut(&rel), inodes.get(&key)) {
            let at = d.find(" group=").map(|i| i + 7).unwrap_or(d.len());
            d.insert_str(at, &String::from_utf8_lossy(first));
        }
    }
    out
}

pub fn differences(a: &BTreeMap<Vec<u8>, String>, b: &BTreeMap<Vec<u8>, String>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => d.push(format!("missing: {}", String::from_utf8_lossy(k))),
            Some(w) if w != v => d.push(format!("{}:\n   was {v}\n   now {w}", String::from_utf8_lossy(k))),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        d.push(format!("extra: {}", String::from_utf8_lossy(k)));
    }
    d
}
