//! End to end, in QEMU: a real Debian 12 system (debootstrap, its own
//! kernel and GRUB) runs `lifeboat mkbackup` on itself: under BIOS/MBR the
//! backup goes to a backup disk (mode target), under UEFI/GPT onto the
//! rescue ISO itself and a second medium (mode media, a set of two), and
//! under BIOS also to a real S3 store (Garage on the host's loopback, which
//! the VMs reach at 10.0.2.2 on QEMU's user network; the rescue system
//! recovers from it over the network it brings up with DHCP). A fresh VM boots that ISO with a blank
//! disk (the same size, larger, smaller, or under another device name:
//! SATA, NVMe) and recovers unattended. The recovered disk, compared from
//! the host before it ever boots, holds the backed-up tree with the
//! source's UUIDs; then it boots by itself to multi-user, by the same firmware.

mod common;
mod farm;
// The drill and the tape drive run in this binary too: libtest runs its
// tests two at a time (one per core), and test binaries one after another,
// so a single-VM suite of its own would leave a core idle. Tests start in
// name order: the numbers put the longest first, and the farm (which makes
// the BIOS source's backup) before the scenario that shares it.
#[path = "../../archive/tests/garage/mod.rs"]
mod garage;
#[path = "vm/drill.rs"]
mod s7_drill;
#[path = "vm/tape.rs"]
mod s8_tape;

use common::{lifeboat, root_or_skip, sh, LoopDisk};
use lifeboat_vmtest::{boot, Boot, Firmware, Media};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const GIB: u64 = 1 << 30;
const BUILD_SCRIPT: &str = include_str!("e2e/build-source.sh");

/// The source system's disk image (Debian `suite`), built once per machine
/// (and whenever the build script changes) and cached.
fn source_image(suite: &str, fw: &str) -> PathBuf {
    // Scenarios run two at a time and several start from the same image: one builds it.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let cache = lifeboat_vmtest::cache_dir();
    std::fs::create_dir_all(&cache).expect("cache dir");
    let tag = &blake3::hash(BUILD_SCRIPT.as_bytes()).to_hex()[..12];
    let img = cache.join(format!("source-{suite}-{fw}-{tag}.img"));
    if !img.exists() {
        // Images of older versions of the script are of no use any more.
        for e in std::fs::read_dir(&cache).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let old = name.starts_with(&format!("source-{suite}-{fw}-")) || name.starts_with(&format!("source-{fw}-"));
            if old && name.ends_with(".img") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let t = Instant::now();
        let script = cache.join("build-source.sh");
        std::fs::write(&script, BUILD_SCRIPT).expect("write script");
        sh(&format!("SUITE={suite} bash {} {} {fw}", script.display(), img.display()));
        eprintln!("built the {suite} {fw} source system in {:.0} s", t.elapsed().as_secs_f64());
    }
    img
}

/// What runs at boot in the source (first boot: make the medium and backup)
/// and in the recovered system (say what it booted with).
const STEP_SCRIPT: &str = r#"#!/bin/sh
if [ -e /etc/lifeboat-e2e.run ]; then
  rm -f /etc/lifeboat-e2e.run; sync
  echo "E2E-SOURCE-UP root=$(findmnt -no UUID /) srv=$(findmnt -no UUID /srv)"
  mountpoint -q /mnt/backup || mount LABEL=BACKUP /mnt/backup
  # A network target: wait for the DHCP lease (systemd-networkd).
  if grep -q '^target = "s3://' /etc/lifeboat/lifeboat.toml; then
    for i in $(seq 60); do ip -4 route | grep -q '^default' && break; sleep 1; done
    ip -4 -o addr show scope global
  fi
  start=$(date +%s)
  if lifeboat mkbackup --auto-recover > /mnt/backup/mkbackup.log 2>&1; then
    # The public signing key, carried off the machine (docs/recovery.md): the host verifies the backup with it.
    cp /etc/lifeboat/signing.pub /mnt/backup/signing.pub
    echo "E2E-MKBACKUP-OK seconds=$(( $(date +%s) - start ))"
  else
    tail -n 30 /mnt/backup/mkbackup.log; echo "E2E-MKBACKUP-FAILED"
  fi
  sync
else
  sw=$(swapon --show=NAME --noheadings | head -n 1)
  fw=bios; [ -d /sys/firmware/efi ] && fw=uefi
  echo "E2E-BOOTED root=$(findmnt -no UUID /) srv=$(findmnt -no UUID /srv) swap=$(blkid -s UUID -o value $sw) firmware=$fw multi-user=$(systemctl is-active multi-user.target) E2E-END"
fi
"#;

/// How the source ships its backup (`mkbackup.mode`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// To a directory on a backup disk, which the rescue system mounts by UUID.
    Target,
    /// On the rescue ISO itself.
    Media,
    /// To an S3 store over the network (`s3://`), which the rescue system
    /// reaches over its network with the credentials on the medium.
    S3,
    /// To a directory on a backup disk, with a network configuration
    /// (systemd-networkd, DHCP) that clones rewrite: the golden backup of a
    /// farm that boxes deploy by PXE from `lifeboat serve` (tests/farm).
    Farm,
}

/// The host's loopback as a guest on QEMU's user network reaches it: the
/// S3 store is there. (A `guestfwd` to it would keep the guest off every
/// other address, but QEMU moves data through one at about 100 KiB/s
/// towards the guest: a restore of 217 MiB would take 40 minutes.)
const HOST_FROM_GUEST: &str = "10.0.2.2";
/// The bucket and prefix the source backs up to.
const S3_TARGET: &str = "s3://lifeboat/fleet";

/// How the target disk is attached: the device name the rescue system sees.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Bus {
    /// /dev/vda, as on the source.
    Virtio,
    /// /dev/sdX on AHCI (a q35 machine).
    Sata,
    /// /dev/nvme0n1.
    Nvme,
}

/// One recovery: a blank disk of this size on this bus.
struct Case {
    name: &'static str,
    size: u64,
    bus: Bus,
}

/// Partition numbers of root, swap and /srv in the source image.
fn parts(fw: &str) -> (u32, u32, u32) {
    if fw == "uefi" {
        (2, 3, 4)
    } else {
        (1, 2, 3)
    }
}

/// Put this lifeboat, its configuration, the step script and files with
/// every attribute the archive keeps into a copy of the source image
/// (`s3_port`: the store's port on the host, for mode S3).
fn prepare_source(img: &Path, fw: &str, mode: Mode, work: &Path, s3_port: u16) {
    let (root_part, _, srv_part) = parts(fw);
    let mut a = LoopDisk::attach(img, false);
    let m = work.join("prep");
    a.mount(&a.part(root_part), &m, "");
    a.mount(&a.part(srv_part), &m.join("srv"), "");
    let bin = m.join("usr/local/sbin/lifeboat");
    std::fs::create_dir_all(bin.parent().expect("parent")).expect("mkdir");
    // The static build when there is one (make test builds it): what is installed and goes into rescue media.
    let built = common::guest_lifeboat();
    sh(&format!("strip -o {} {}", bin.display(), built.display()));
    std::fs::create_dir_all(m.join("etc/lifeboat")).expect("mkdir");
    let config = match mode {
        // The farm's golden backup is this one: its boxes have one disk, so
        // the backup disk is left out of the layout (the drill keeps it in).
        Mode::Target | Mode::Farm => {
            "[backup]\ntarget = \"file:///mnt/backup\"\nvolume_size = \"256M\"\n[mkbackup]\nmode = \"target\"\n\
                       [layout]\nexclude_devices = [\"vdb\"]\n"
        }
        // Media of 200 MiB, so that the backup (about 210 MiB) and the rescue
        // system need a set of two. The backup disk only carries the ISOs
        // out and is left out of the layout, as an external disk would be.
        Mode::Media => {
            "[backup]\nvolume_size = \"200M\"\n[mkbackup]\nmode = \"media\"\n[layout]\nexclude_devices = [\"vdb\"]\n"
        }
        // The medium carries the store's credentials, so the recovery runs unattended.
        Mode::S3 => {
            "[backup]\nvolume_size = \"256M\"\n[mkbackup]\nmode = \"target\"\n[layout]\nexclude_devices = [\"vdb\"]\n\
                     [rescue]\ntarget_credentials = true\n"
        }
    };
    let s3 = if mode == Mode::S3 {
        format!(
            "[backup.s3]\nendpoint = \"http://{HOST_FROM_GUEST}:{s3_port}\"\nregion = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            garage::REGION,
            garage::KEY_ID,
            garage::SECRET
        )
    } else {
        String::new()
    };
    let target = if mode == Mode::S3 { format!("target = \"{S3_TARGET}\"\n") } else { String::new() };
    // TOML: the target goes into the [backup] table the mode's text opens.
    let config = config.replacen("[backup]\n", &format!("[backup]\n{target}"), 1);
    std::fs::write(
        m.join("etc/lifeboat/lifeboat.toml"),
        format!("[paths]\noutput_dir = \"/mnt/backup/rescue\"\n{config}{s3}"),
    )
    .expect("config");
    if mode != Mode::Media {
        // DHCP on the network card with systemd-networkd (part of Debian's
        // systemd), which the farm's clones rewrite; harmless without a card.
        std::fs::create_dir_all(m.join("etc/systemd/network")).expect("mkdir");
        std::fs::write(m.join("etc/systemd/network/50-e2e.network"), "[Match]\nName=eth0\n[Network]\nDHCP=yes\n")
            .expect("network");
        let wants = m.join("etc/systemd/system/multi-user.target.wants");
        std::fs::create_dir_all(&wants).expect("mkdir");
        let _ = std::os::unix::fs::symlink(
            "/lib/systemd/system/systemd-networkd.service",
            wants.join("systemd-networkd.service"),
        );
    }
    std::fs::write(m.join("etc/lifeboat-e2e.sh"), STEP_SCRIPT).expect("script");
    std::fs::write(m.join("etc/lifeboat-e2e.run"), "").expect("flag");
    sh(&format!(
        r#"set -e; cd {0}/srv; mkdir -p www data
head -c 20000000 /dev/urandom > data/random.bin; seq 1 300000 > www/index.txt
ln www/index.txt www/hardlink; ln -s index.txt www/symlink
cp {0}/bin/true data/pinger; setcap cap_net_raw+ep data/pinger; chmod 4755 data/pinger
setfacl -m u:1234:rx www/index.txt; setfattr -n user.origin -v e2e data/random.bin
truncate -s 100M data/sparse.img; printf x | dd of=data/sparse.img bs=1 seek=50000000 conv=notrunc status=none
mknod data/null c 1 3; chown -R 1000:1000 www; chmod 1777 data"#,
        m.display()
    ));
}

/// Compare a recovered disk with the backup (before it boots, so nothing has changed on it yet).
fn compare_with_backup(target: &Path, from: &str, fw: &str, work: &Path) -> Vec<String> {
    let (root_part, _, srv_part) = parts(fw);
    let mut t = LoopDisk::attach(target, true);
    let tm = work.join("cmp-target");
    t.mount(&t.part(root_part), &tm, "ro");
    t.mount(&t.part(srv_part), &tm.join("srv"), "ro");
    // The backup is signed by the source's key: compare trusts it through that public key.
    let out = lifeboat()
        .arg("--config")
        .arg(work.join("trust.toml"))
        .args(["compare", "--from", from])
        .arg("--root")
        .arg(&tm)
        .output()
        .expect("run compare");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // 0: the same, 1: differences (listed); anything else is an error, such as a refused signature.
    assert!(matches!(out.status.code(), Some(0 | 1)), "compare did not run: {}", String::from_utf8_lossy(&out.stderr));
    // What recovery changes on purpose: its own log, the regenerated
    // initramfs and GRUB's files (reinstalled on the new disk).
    text.lines()
        .filter(|l| !l.contains(" difference(s) between "))
        .filter(|l| {
            let path = l.split_whitespace().nth(1).unwrap_or("");
            !(path.starts_with("var/log/lifeboat")
                || path.starts_with("boot/initrd.img-")
                || path.starts_with("boot/grub")
                // grub-install writes its EFI files again (same content, new times).
                || path.starts_with("boot/efi/EFI")
                // The ESP is not mounted here: this is its mount point directory on the root
                // filesystem, which the backup records as the ESP's own root (0700, no time on FAT).
                || path == "boot/efi"
                || path.starts_with("var/lib/initramfs-tools")
                || path == "boot"
                || path == "var/log"
                // mkinitramfs's scratch directory: the time of /var/tmp.
                || path == "var/tmp")
        })
        .map(String::from)
        .collect()
}

/// The recovery log that recovery wrote into the recovered root filesystem.
fn recovery_log(target: &Path, fw: &str, work: &Path) -> String {
    let (root_part, _, _) = parts(fw);
    let mut t = LoopDisk::attach(target, true);
    let m = work.join("log-target");
    t.mount(&t.part(root_part), &m, "ro");
    sh(&format!("cat {}/var/log/lifeboat/recover-*.log", m.display()))
}

fn uuids(img: &Path, fw: &str) -> (String, String, String) {
    let (r, w, s) = parts(fw);
    let a = LoopDisk::attach(img, true);
    for _ in 0..50 {
        if Path::new(&a.part(s)).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let u = |n: u32| sh(&format!("blkid -p -s UUID -o value {}p{n}", a.dev)).trim().to_string();
    (u(r), u(s), u(w))
}

/// The target disk as the machine attaches it.
fn target_media(image: &Path, bus: Bus, serial: &str) -> Media {
    match bus {
        Bus::Nvme => Media::Nvme { image: image.to_path_buf(), serial: serial.into() },
        _ => Media::Disk { image: image.to_path_buf(), serial: serial.into(), read_only: false },
    }
}

/// The network of a VM: none, or (with the S3 store) QEMU's user network,
/// where the guest gets its address by DHCP and reaches the store on the
/// host at [`HOST_FROM_GUEST`] (the only address it is configured to use).
fn network(b: &mut Boot, store: Option<&garage::Garage>) {
    b.nic = store.is_some();
}

fn scenario(fw: &str, mode: Mode, cases: &[Case]) {
    scenario_of("bookworm", fw, mode, cases)
}

/// What the source made with `mkbackup`, with what the host needs to read
/// it: shared by the scenarios that start from the same source (the BIOS
/// recoveries from a backup disk and the farm), removed with its directory
/// when the last of them is done.
struct Made {
    dir: tempfile::TempDir,
    /// The source's disk after mkbackup.
    src: PathBuf,
    /// The backup disk (ext4, label BACKUP): the backup and the ISOs.
    backup: PathBuf,
    iso: PathBuf,
    /// The second medium of a media set.
    iso2: PathBuf,
    /// What the recovered disks are compared with (`--from`).
    from: String,
    /// Root, /srv and swap UUIDs of the source.
    source_uuids: (String, String, String),
    /// The source boot's phase times.
    times: Vec<(String, f64)>,
}

impl Made {
    /// The configuration that trusts the source's signing key (and reaches the S3 store).
    fn trust(&self) -> PathBuf {
        self.dir.path().join("trust.toml")
    }
}

/// The prefix of the directories of [`Made`] (with the test process's id).
const MADE_PREFIX: &str = "lifeboat-e2e-made-";

/// The source of `suite`/`fw` as `mode` makes it, made once for the
/// scenarios that share it: the BIOS source's backup-disk mode serves the
/// farm and the BIOS recovery (two users), every other one a single
/// scenario. It is removed when the last user is done; when a filter runs
/// only one of the two, the directory is left and the next run removes it.
fn made(suite: &str, fw: &str, mode: Mode, store: Option<&garage::Garage>) -> Arc<OnceLock<Made>> {
    type Cell = OnceLock<Made>;
    static MADE: Mutex<BTreeMap<String, (Arc<Cell>, usize)>> = Mutex::new(BTreeMap::new());
    static STALE: std::sync::Once = std::sync::Once::new();
    STALE.call_once(|| {
        // Directories left by earlier runs whose process is gone.
        for e in std::fs::read_dir("/var/tmp").into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(MADE_PREFIX).and_then(|r| r.split('-').next()) else { continue };
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
    // The farm's golden backup is the backup-disk one.
    let mode = if mode == Mode::Farm { Mode::Target } else { mode };
    let key = format!("{suite}-{fw}-{mode:?}");
    let users = if suite == "bookworm" && fw == "bios" && mode == Mode::Target { 2 } else { 1 };
    let cell = {
        let mut m = MADE.lock().unwrap_or_else(|e| e.into_inner());
        let entry = m.entry(key.clone()).or_insert_with(|| (Arc::new(OnceLock::new()), users));
        entry.1 -= 1;
        let cell = entry.0.clone();
        if entry.1 == 0 {
            // The last user: the source goes when its scenarios are done.
            m.remove(&key);
        }
        cell
    };
    // A second scenario waits here for the first one's mkbackup (or makes
    // it, if the first failed before it was made).
    cell.get_or_init(|| make_source(suite, fw, mode, store));
    cell
}

/// Boot the source system and run `mkbackup` in it.
fn make_source(suite: &str, fw: &str, mode: Mode, store: Option<&garage::Garage>) -> Made {
    let firmware = if fw == "uefi" { Firmware::Uefi } else { Firmware::Bios };
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{MADE_PREFIX}{}-", std::process::id()))
        .tempdir_in("/var/tmp")
        .expect("tmp");
    let w = tmp.path();
    let mut times: Vec<(String, f64)> = Vec::new();
    let t = Instant::now();
    let src = w.join("source.img");
    sh(&format!("cp --sparse=always {} {}", source_image(suite, fw).display(), src.display()));
    times.push(("source image".into(), t.elapsed().as_secs_f64()));
    prepare_source(&src, fw, mode, w, store.map_or(0, |g| g.nodes[0].s3_port));
    let backup = w.join("backup.img");
    sh(&format!("truncate -s 3G {0} && mkfs.ext4 -q -F -L BACKUP {0}", backup.display()));
    let source_uuids = uuids(&src, fw);

    // 1. The source makes its rescue medium and backup (mkbackup).
    let t = Instant::now();
    let mut b = Boot::new(&format!("{fw} source"), firmware);
    network(&mut b, store);
    b.media = vec![
        Media::Disk { image: src.clone(), serial: "system".into(), read_only: false },
        Media::Disk { image: backup.clone(), serial: "backup".into(), read_only: false },
    ];
    let mut c = boot(&b).expect("boot source");
    c.expect("E2E-SOURCE-UP", Duration::from_secs(600)).expect("the source system boots");
    let end = c.expect("E2E-MKBACKUP-", Duration::from_secs(1800)).expect("mkbackup finishes");
    let tr = c.transcript();
    assert!(tr[end..].starts_with("OK"), "mkbackup failed in the source:\n{}", &tr[tr.len().saturating_sub(4000)..]);
    c.wait_poweroff(Duration::from_secs(120)).expect("source powers off");
    times.push((format!("boot source + mkbackup (mode {mode:?})"), t.elapsed().as_secs_f64()));
    drop(c);
    // The ISO, and a copy of the backup to compare the recovered disks with.
    let iso = w.join("rescue.iso");
    let iso2 = w.join("rescue-2.iso");
    let copy = w.join("backup-copy");
    {
        let mut a = LoopDisk::attach(&backup, true);
        let m = w.join("get-iso");
        a.mount(&a.dev.clone(), &m, "ro");
        sh(&format!("cp {}/rescue/lifeboat-source.iso {}", m.display(), iso.display()));
        if mode == Mode::Media {
            let second = m.join("rescue/lifeboat-source-2.iso");
            assert!(
                second.exists(),
                "the backup did not fill a second medium: {}",
                sh(&format!("ls -l {}/rescue", m.display()))
            );
            assert!(!m.join("rescue/lifeboat-source-3.iso").exists(), "two media are enough");
            sh(&format!("cp {} {}", second.display(), iso2.display()));
            for f in [&iso, &iso2] {
                let size = std::fs::metadata(f).expect("iso").len();
                assert!(size <= 200 << 20, "{} is {size} bytes, more than the medium holds", f.display());
            }
        }
        let log = sh(&format!("cat {}/mkbackup.log", m.display()));
        // The source's public signing key, which verifies its backup here.
        std::fs::create_dir_all(w.join("keys")).expect("mkdir");
        sh(&format!("cp {}/signing.pub {}/keys/signing.pub", m.display(), w.display()));
        // The host reads an S3 backup from the store itself.
        let s3 = store.map(|g| {
            format!(
                "[backup.s3]\nendpoint = \"{}\"\nregion = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
                g.endpoint(0),
                garage::REGION,
                garage::KEY_ID,
                garage::SECRET
            )
        });
        std::fs::write(
            w.join("trust.toml"),
            format!("[paths]\nkey_dir = \"{}/keys\"\n{}", w.display(), s3.unwrap_or_default()),
        )
        .expect("cfg");
        eprintln!(
            "{}",
            log.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        for l in
            log.lines().filter(|l| l.starts_with("backup ") || l.starts_with("layout saved") || l.starts_with("wrote "))
        {
            times.push((format!("mkbackup: {l}"), 0.0));
        }
        match mode {
            Mode::Target | Mode::Farm => sh(&format!("cp -a {}/source {}", m.display(), copy.display())),
            // The backup stays in the store; the host reads it from there.
            Mode::S3 => String::new(),
            // The backup is on the ISOs: the host has no iso9660, xorriso reads them.
            Mode::Media => sh(&format!(
                "set -e; for i in {0} {1}; do rm -rf {2}.part; xorriso -osirrox on -indev $i -extract /backup/source {2}.part >/dev/null 2>&1; \
                 mkdir -p {2}; cp -a {2}.part/. {2}/; chmod -R u+w {2}.part; rm -rf {2}.part; done",
                iso.display(),
                iso2.display(),
                copy.display()
            )),
        };
    }
    // The copy holds the source host's backups (one): compare and restore are given that backup itself.
    let from = if mode == Mode::S3 {
        let out = lifeboat()
            .arg("--config")
            .arg(w.join("trust.toml"))
            .args(["--json", "backup", "list", "--target", S3_TARGET])
            .output()
            .expect("run backup list");
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("backup list --json");
        let made: Vec<&str> = list.as_array().expect("a list").iter().filter_map(|b| b["backup"].as_str()).collect();
        assert_eq!(made.len(), 1, "one backup of the source in the store: {list}");
        assert_eq!(list[0]["state"], "complete", "{list}");
        made[0].to_string()
    } else {
        let made: Vec<PathBuf> = std::fs::read_dir(&copy).expect("backup copy").flatten().map(|e| e.path()).collect();
        assert_eq!(made.len(), 1, "one backup of the source: {made:?}");
        format!("file://{}", made[0].display())
    };

    Made { dir: tmp, src, backup, iso, iso2, from, source_uuids, times }
}

/// A scenario whose source runs Debian `suite`.
fn scenario_of(suite: &str, fw: &str, mode: Mode, cases: &[Case]) {
    let firmware = if fw == "uefi" { Firmware::Uefi } else { Firmware::Bios };
    // The S3 store (one Garage node on the host's loopback), for mode S3.
    let store = match mode {
        Mode::S3 => match garage::binary("the S3 recovery round trip") {
            Some(bin) => Some(garage::Garage::start(&bin, 1)),
            None => return,
        },
        _ => None,
    };
    let shared = made(suite, fw, mode, store.as_ref());
    let Made { src, backup, iso, iso2, from, source_uuids, times: made_times, .. } =
        shared.get().expect("the source was made");
    let mut times = made_times.clone();
    let tmp = tempfile::tempdir_in("/var/tmp").expect("tmp");
    let w = tmp.path();
    std::fs::copy(shared.get().expect("made").trust(), w.join("trust.toml")).expect("trust.toml");
    // 2. Recover onto blank disks.
    for Case { name, size, bus } in cases {
        let (name, size, bus) = (*name, *size, *bus);
        let target = w.join(format!("target-{name}.img"));
        sh(&format!("truncate -s {size} {}", target.display()));
        let t = Instant::now();
        let mut b = Boot::new(&format!("{fw} rescue ({name})"), firmware);
        network(&mut b, store.as_ref());
        b.other_hardware = bus == Bus::Sata;
        b.media = vec![Media::Cdrom(iso.clone()), target_media(&target, bus, "target")];
        if mode == Mode::Media {
            // The second medium of the set in a second drive.
            b.media.push(Media::Cdrom(iso2.clone()));
        }
        if mode == Mode::Target {
            // QEMU cannot put a read-only image on an AHCI port; the rescue system mounts it read-only anyway.
            b.media.push(Media::Disk { image: backup.clone(), serial: "backup".into(), read_only: bus != Bus::Sata });
        }
        let mut c = boot(&b).expect("boot rescue");
        let end = c.expect("lifeboat: recovery ", Duration::from_secs(1800)).expect("unattended recovery ends");
        let tr = c.transcript();
        assert!(
            tr[end..].starts_with("succeeded"),
            "{name}: recovery failed:\n{}",
            &tr[tr.len().saturating_sub(5000)..]
        );
        // The progress goes to every console: each line once.
        let mut seen = std::collections::BTreeSet::new();
        for l in tr.lines().filter(|l| l.starts_with("phases:") || l.starts_with("recovered onto")) {
            if seen.insert(l.to_string()) {
                times.push((format!("{name}: {l}"), 0.0));
            }
        }
        c.wait_poweroff(Duration::from_secs(120)).expect("rescue powers off (lifeboat.done=reboot)");
        times.push((format!("{name}: rescue boot + recovery"), t.elapsed().as_secs_f64()));
        drop(c);
        let diffs = compare_with_backup(&target, from, fw, w);
        assert!(diffs.is_empty(), "{name}: the recovered tree differs from the backup:\n{}", diffs.join("\n"));
        assert_eq!(&uuids(&target, fw), source_uuids, "{name}: root, /srv and swap keep their UUIDs");
        // Every source here carries the drivers of every disk it is
        // recovered onto (virtio, AHCI, NVMe) and names its devices by UUID:
        // its initramfs is kept byte for byte, also under new device names.
        let log = recovery_log(&target, fw, w);
        assert!(
            log.contains("kept as it was") && !log.contains("regenerating the initramfs"),
            "{name}: the initramfs was regenerated:\n{log}"
        );
        if fw == "uefi" {
            // The rescue system reached the firmware's variables: GRUB was
            // installed with a boot entry (efibootmgr), not only on the removable path.
            let entry = log.lines().find(|l| l.contains("grub-install") && l.contains("--bootloader-id=debian"));
            assert!(entry.is_some_and(|l| !l.contains("--no-nvram")), "{name}: no boot entry written:\n{log}");
        }

        // 3. The recovered disk boots by itself to multi-user.
        let t = Instant::now();
        let mut b = Boot::new(&format!("{fw} recovered ({name})"), firmware);
        b.nic = false;
        b.other_hardware = bus == Bus::Sata;
        b.media = vec![target_media(&target, bus, "system")];
        let mut c = boot(&b).expect("boot recovered");
        let at = c.expect("E2E-BOOTED", Duration::from_secs(600)).expect("the recovered system boots");
        c.expect_from(at, "E2E-END", Duration::from_secs(30)).expect("marker line");
        let tr = c.transcript();
        let line = tr[at..].lines().next().unwrap_or("").to_string();
        let (r, s, sw) = &source_uuids;
        assert!(line.contains(&format!("root={r}")) && line.contains(&format!("srv={s}")), "{name}: {line}");
        assert!(line.contains(&format!("swap={sw}")), "{name}: swap in use with its UUID: {line}");
        assert!(line.contains("multi-user=active"), "{name}: reaches multi-user: {line}");
        if fw == "uefi" {
            assert!(line.contains("firmware=uefi"), "{name}: booted by UEFI: {line}");
        }
        times.push((format!("{name}: boot recovered"), t.elapsed().as_secs_f64()));
    }
    if mode == Mode::Farm {
        farm::deploy(w, iso, Path::new(from.trim_start_matches("file://")), src, &mut times);
    }
    // Kept beside the cached images, so the numbers of the last run can be read after CI.
    let text: String =
        times
            .iter()
            .map(|(what, secs)| {
                if *secs > 0.0 {
                    format!("{suite} {fw} {what}: {secs:.0} s\n")
                } else {
                    format!("{suite} {fw} {what}\n")
                }
            })
            .collect();
    eprint!("{text}");
    let file = format!("e2e-timings-{suite}-{fw}-{}.txt", format!("{mode:?}").to_lowercase());
    let _ = std::fs::write(lifeboat_vmtest::cache_dir().join(file), text);
}

/// Starts after the farm and S3 scenarios: by then the farm has made the
/// source's backup, which this one shares.
#[test]
fn s4_bios_target_mbr_system_is_recovered_unattended_onto_a_smaller_sata_disk_and_boots() {
    if !root_or_skip("QEMU recovery round trip") {
        return;
    }
    // Another machine (q35, AHCI: /dev/sda, not /dev/vda) with a smaller
    // disk. Onto a disk of the same size: the Debian 11 and 13 scenarios,
    // and the drill (its recovery is that case); onto a larger one:
    // the S3 scenario and UEFI's NVMe one.
    scenario("bios", Mode::Target, &[Case { name: "sata-smaller", size: 2 * GIB + GIB / 2, bus: Bus::Sata }]);
}

#[test]
fn s2_uefi_gpt_system_with_its_backup_on_the_rescue_iso_is_recovered_and_boots() {
    if !root_or_skip("QEMU recovery round trip") {
        return;
    }
    let cases = [
        Case { name: "same", size: 3 * GIB, bus: Bus::Virtio },
        Case { name: "nvme-larger", size: 4 * GIB, bus: Bus::Nvme },
    ];
    scenario("uefi", Mode::Media, &cases);
}

#[test]
fn s3_bios_system_backed_up_to_s3_is_recovered_over_the_rescue_network_and_boots() {
    if !root_or_skip("QEMU recovery round trip from S3") {
        return;
    }
    scenario("bios", Mode::S3, &[Case { name: "s3-larger", size: 4 * GIB, bus: Bus::Virtio }]);
}

/// Run alone with `cargo test -p lifeboat --test recover_vm farm` (the
/// drill: `s7_drill`, the tape drive: `s8_tape`).
#[test]
fn s1_bios_farm_boxes_deploy_one_golden_backup_by_pxe_each_as_its_own_clone() {
    if !root_or_skip("QEMU farm deployment") {
        return;
    }
    scenario("bios", Mode::Farm, &[]);
}

#[test]
fn s5_debian_11_bios_system_is_recovered_unattended_and_boots() {
    if !root_or_skip("QEMU recovery round trip of Debian 11") {
        return;
    }
    scenario_of("bullseye", "bios", Mode::Target, &[Case { name: "same", size: 3 * GIB, bus: Bus::Virtio }]);
}

#[test]
fn s6_debian_13_bios_system_is_recovered_unattended_and_boots() {
    if !root_or_skip("QEMU recovery round trip of Debian 13") {
        return;
    }
    scenario_of("trixie", "bios", Mode::Target, &[Case { name: "same", size: 3 * GIB, bus: Bus::Virtio }]);
}
