//! `recover --clone` on loop devices: a small system (ext4 root, swap) is
//! backed up and cloned onto another disk **while the source is still
//! attached and mounted**, with a new host name, address, machine-id, SSH
//! host keys and new UUIDs. The clone must carry the new identity (fstab
//! and GRUB naming the UUIDs blkid reports on the new disk), and every
//! other file must equal the backup's. Without new UUIDs the same clone is
//! refused before anything is written.

mod common;

use common::tree::{differences, snapshot};
use common::{config, root_or_skip, run_lifeboat, sh, LoopDisk};
use std::path::Path;

const MIB: u64 = 1 << 20;
const ROOT_UUID: &str = "5a1e0c10-1b2d-4f3e-8a6c-5d7e9f1a2b01";
const SWAP_UUID: &str = "5a1e0c10-1b2d-4f3e-8a6c-5d7e9f1a2b03";
const MACHINE_ID: &str = "0123456789abcdef0123456789abcdef";

/// Unmounts everything below a directory however the test ends (before the loop devices go).
struct UnmountAll(std::path::PathBuf);

impl Drop for UnmountAll {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-R").arg(&self.0).output();
    }
}

/// The restored-system files the clone changes, below `root`.
fn system_files(root: &Path) {
    sh(&format!(
        r#"set -e
cd {r}
mkdir -p etc/ssh etc/network boot/grub var/lib/dbus srv/www
echo web1 > etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\tweb1.old.example web1\n' > etc/hosts
echo web1.old.example > etc/mailname
echo {MACHINE_ID} > etc/machine-id
ln -s /etc/machine-id var/lib/dbus/machine-id
echo 'PermitRootLogin no' > etc/ssh/sshd_config
ssh-keygen -q -t ed25519 -N '' -C root@web1 -f etc/ssh/ssh_host_ed25519_key
printf 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n    address 192.0.2.11/24\n    gateway 192.0.2.1\n    mtu 1400\n' > etc/network/interfaces
printf 'nameserver 192.0.2.50\n' > etc/resolv.conf
printf 'UUID={ROOT_UUID} / ext4 errors=remount-ro 0 1\nUUID={SWAP_UUID} none swap sw 0 0\n' > etc/fstab
printf 'search --no-floppy --fs-uuid --set=root {ROOT_UUID}\nlinux /boot/vmlinuz root=UUID={ROOT_UUID} ro resume=UUID={SWAP_UUID}\n' > boot/grub/grub.cfg
printf 'root:x:0:0::/root:/bin/sh\n' > etc/passwd
head -c 2000000 /dev/urandom > srv/www/blob
seq 1 20000 > srv/www/notes
"#,
        r = root.display()
    ));
}

/// Read a layout file, with mount points below `src` made absolute as on a real system.
fn as_system(path: &Path, src: &Path) {
    let text = std::fs::read_to_string(path).expect("layout");
    let s = src.display().to_string();
    let text = text.replace(&format!("\"{s}\""), "\"/\"").replace(&format!("\"{s}/"), "\"/");
    std::fs::write(path, &text).expect("write layout");
}

fn blkid(dev: &str, tag: &str) -> String {
    sh(&format!("blkid -p -s {tag} -o value {dev} || true")).trim().to_string()
}

#[test]
fn a_clone_next_to_its_source_gets_its_own_identity_and_every_other_file_is_the_backups() {
    if !root_or_skip("cloning onto loop devices") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let src = dir.join("src");
    let cfg = config(dir, "[recover]\nregenerate_initramfs = false\nbootloader = false\n");
    let cfg = cfg.to_str().expect("utf8");
    let mut source = LoopDisk::new(dir, "src", 512 * MIB);
    source.partition(
        "label: gpt\n\
         start=2048, size=655360, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\n\
         start=657408, size=65536, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=swap",
    );
    sh(&format!("mkfs.ext4 -q -F -L root -U {ROOT_UUID} {}", source.part(1)));
    sh(&format!("mkswap -L swap0 -U {SWAP_UUID} {} >/dev/null", source.part(2)));
    source.mount(&source.part(1), &src, "");
    system_files(&src);
    let old_key = std::fs::read_to_string(src.join("etc/ssh/ssh_host_ed25519_key.pub")).expect("old key");
    let layout_file = dir.join("layout.toml");
    let (code, out, err) =
        run_lifeboat(&["--config", cfg, "layout", "save", "-o", layout_file.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}{err}");
    as_system(&layout_file, &src);
    std::fs::create_dir_all(dir.join("backups")).expect("mkdir");
    let bk = format!("file://{}/backups", dir.display());
    let (code, out, err) =
        run_lifeboat(&["--config", cfg, "backup", "--target", &bk, "--root", src.to_str().expect("utf8"), "."]);
    assert_eq!(code, 0, "backup: {out}{err}");
    let before = snapshot(&src);

    let target = LoopDisk::new(dir, "clone", 512 * MIB);
    let root = dir.join("clone-root");
    let _unmount = UnmountAll(root.clone());
    let clone_file = dir.join("web2.toml");
    let clone_text = "hostname = \"web2\"\ndomain = \"example.net\"\nnew_uuids = NEW\n\n[[interface]]\nmatch = \"name:eth0\"\naddress = \"192.0.2.12/24\"\ngateway = \"192.0.2.1\"\ndns = [\"192.0.2.53\"]\n";
    let map = format!("{}={}", source.dev, target.dev);
    let recover = |extra: &[&str]| {
        let base = [
            "--config",
            cfg,
            "recover",
            "--layout",
            layout_file.to_str().expect("utf8"),
            "--from",
            &bk,
            "--map",
            &map,
            "--root",
            root.to_str().expect("utf8"),
            "--clone",
            clone_file.to_str().expect("utf8"),
        ];
        run_lifeboat(&[&base[..], extra].concat())
    };

    // Without new UUIDs, next to the mounted source: refused, nothing written.
    std::fs::write(&clone_file, clone_text.replace("NEW", "false")).expect("clone file");
    let (code, out, err) = recover(&["--yes"]);
    assert_eq!(code, 2, "a clone with the source's UUIDs next to it must be refused: {out}{err}");
    assert!(err.contains(ROOT_UUID) && err.contains("new_uuids = true"), "{err}");
    let head = sh(&format!("head -c 1048576 {} | tr -d '\\0' | wc -c", target.dev));
    assert_eq!(head.trim(), "0", "the first MiB of the target must still be zero");

    // With new UUIDs: the plan shows the identity step and writes nothing.
    std::fs::write(&clone_file, clone_text.replace("NEW", "true")).expect("clone file");
    let (code, out, err) = recover(&["--plan"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("the clone's identity") && out.contains("host name web2.example.net"), "{out}");
    assert!(out.contains("eth0: 192.0.2.12/24 via 192.0.2.1, DNS 192.0.2.53"), "{out}");
    assert!(out.contains(&format!("{ROOT_UUID} -> ")) && out.contains(&format!("{SWAP_UUID} -> ")), "{out}");
    assert!(blkid(&target.dev, "PTTYPE").is_empty(), "--plan wrote to the disk");
    // The same clone from the configuration's recover.clone_file.
    let cfg2 = dir.join("with-clone-file.toml");
    let text = std::fs::read_to_string(cfg).expect("config");
    let key = format!("bootloader = false\nclone_file = \"{}\"\n", clone_file.display());
    std::fs::write(&cfg2, text.replace("bootloader = false\n", &key)).expect("config");
    let (code, out, err) = run_lifeboat(&[
        "--config",
        cfg2.to_str().expect("utf8"),
        "recover",
        "--layout",
        layout_file.to_str().expect("utf8"),
        "--from",
        &bk,
        "--map",
        &map,
        "--plan",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("host name web2.example.net") && out.contains(&format!("{ROOT_UUID} -> ")), "{out}");

    let (code, out, err) = recover(&["--yes", "--keep-mounted"]);
    assert_eq!(code, 0, "clone: {out}{err}");
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(read("etc/hostname"), "web2\n");
    assert_eq!(read("etc/hosts"), "127.0.0.1\tlocalhost\n127.0.1.1\tweb2.example.net web2\n");
    assert_eq!(read("etc/mailname"), "web2.example.net\n");
    let mid = read("etc/machine-id");
    assert!(mid.trim().len() == 32 && mid.trim().chars().all(|c| c.is_ascii_hexdigit()), "{mid}");
    assert_ne!(mid.trim(), MACHINE_ID, "a new machine-id");
    assert!(std::fs::symlink_metadata(root.join("var/lib/dbus/machine-id")).expect("dbus").file_type().is_symlink());
    let new_key = read("etc/ssh/ssh_host_ed25519_key.pub");
    assert_ne!(new_key, old_key, "new SSH host keys");
    assert!(root.join("etc/ssh/ssh_host_rsa_key").exists(), "every default key type is made");
    let interfaces = read("etc/network/interfaces");
    assert!(interfaces.contains("iface eth0 inet static\n    address 192.0.2.12/24\n    gateway 192.0.2.1\n    dns-nameservers 192.0.2.53\n    mtu 1400\n"), "{interfaces}");
    assert_eq!(read("etc/resolv.conf"), "nameserver 192.0.2.53\n");
    // fstab and GRUB name the UUIDs the new filesystem and swap have.
    let (new_root, new_swap) = (blkid(&target.part(1), "UUID"), blkid(&target.part(2), "UUID"));
    assert!(!new_root.is_empty() && new_root != ROOT_UUID, "new root UUID {new_root}");
    assert!(!new_swap.is_empty() && new_swap != SWAP_UUID, "new swap UUID {new_swap}");
    assert_eq!(
        read("etc/fstab"),
        format!("UUID={new_root} / ext4 errors=remount-ro 0 1\nUUID={new_swap} none swap sw 0 0\n")
    );
    let grub = read("boot/grub/grub.cfg");
    assert!(grub.contains(&format!("--set=root {new_root}\n")), "{grub}");
    assert!(grub.contains(&format!("root=UUID={new_root} ro resume=UUID={new_swap}")), "{grub}");
    let (old_part, new_part) = (blkid(&source.part(1), "PART_ENTRY_UUID"), blkid(&target.part(1), "PART_ENTRY_UUID"));
    assert!(!new_part.is_empty() && new_part != old_part, "a new partition UUID: {old_part} {new_part}");
    // The source is untouched.
    assert_eq!(blkid(&source.part(1), "UUID"), ROOT_UUID);
    assert_eq!(std::fs::read_to_string(src.join("etc/hostname")).expect("source"), "web1\n");

    // Every other file is the backup's.
    let changed = [
        "etc/hostname",
        "etc/hosts",
        "etc/mailname",
        "etc/machine-id",
        "etc/network/interfaces",
        "etc/resolv.conf",
        "etc/fstab",
        "boot/grub/grub.cfg",
    ];
    let diffs: Vec<String> = differences(&before, &snapshot(&root))
        .into_iter()
        .filter(|d| {
            let path = d.trim_start_matches("extra: ").trim_start_matches("missing: ");
            let path = path.split(':').next().unwrap_or(path);
            !(changed.contains(&path)
                || path.starts_with("etc/ssh/ssh_host_")
                || path == "etc/ssh"
                || path.starts_with("var/log/lifeboat")
                || path == "var/log"
                || path == "etc"
                || path == "lost+found")
        })
        .collect();
    assert!(diffs.is_empty(), "the clone differs from the backup beyond its identity:\n{}", diffs.join("\n"));
    drop(_unmount);
}
