//! Rescue media made by `lifeboat mkrescue` on this host (from Debian's
//! kernel), booted in QEMU: the hybrid ISO from CD and from disk under
//! SeaBIOS and OVMF, and the PXE files by direct kernel boot. Each boot is
//! driven over the serial console like an administrator over IPMI SOL:
//! the banner appears, a root shell answers, the virtio disk and the virtio
//! network card are there and working.

mod common;

use common::{config, run_lifeboat};
use lifeboat_vmtest::{boot, Boot, Console, Firmware, Media, VmError};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

struct Built {
    dir: PathBuf,
    iso: PathBuf,
    raw: PathBuf,
    pxe: PathBuf,
}

/// Build the media once for all tests of this file; None when not root.
fn media() -> Option<&'static Built> {
    static BUILT: OnceLock<Option<Built>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if !common::root_or_skip("mkrescue reads the whole system") {
                return None;
            }
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("rescue-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("mkdir");
            let cfg = config(&dir, "");
            let cfg = cfg.to_str().expect("utf8");
            let out = dir.join("out");
            for format in ["iso", "raw", "pxe"] {
                let (code, stdout, stderr) = run_lifeboat(&[
                    "--config",
                    cfg,
                    "mkrescue",
                    "--format",
                    format,
                    "--output",
                    out.to_str().expect("utf8"),
                ]);
                assert_eq!(code, 0, "mkrescue --format {format}:\n{stdout}\n{stderr}");
                eprintln!("mkrescue --format {format}:\n{stdout}");
            }
            let host = common::hostname();
            Some(Built {
                iso: out.join(format!("lifeboat-{host}.iso")),
                raw: out.join(format!("lifeboat-{host}.img")),
                pxe: out.join(format!("lifeboat-{host}-pxe")),
                dir,
            })
        })
        .as_ref()
}

/// Boot a machine; None (after saying why) when QEMU cannot run here.
fn start(spec: &Boot) -> Option<Console> {
    match boot(spec) {
        Ok(c) => Some(c),
        Err(VmError::Unavailable(why)) => {
            eprintln!("SKIP: {why}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn target_disk(b: &Built, name: &str) -> PathBuf {
    let p = b.dir.join(format!("{name}-target.img"));
    let f = std::fs::File::create(&p).expect("disk");
    f.set_len(1 << 30).expect("size");
    p
}

/// What every rescue boot must show, asserted on what the serial console printed.
fn assert_rescue_shell(c: &mut Console) {
    assert_rescue_shell_and(c, false);
}

/// The rescue shell as above; `medium`: the system booted from a lifeboat
/// ISO, whose check at boot (in the background) says it passed.
fn assert_rescue_shell_and(c: &mut Console, medium: bool) {
    c.expect("lifeboat rescue system for", BOOT_TIMEOUT).expect("the banner on the serial console");
    c.expect("rescue:", BOOT_TIMEOUT).expect("a shell prompt on the serial console");
    let who = c.run("id -un", CMD_TIMEOUT).expect("id");
    assert_eq!(who.trim(), "root", "a root shell with a name");
    let disk = c
        .run("for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = target ] && echo ${d##*/}; done", CMD_TIMEOUT)
        .expect("disks");
    let disk = disk.trim();
    assert!(disk.starts_with("vd"), "the virtio disk with serial `target` is seen: {disk:?}");
    let blk = c
        .run(
            &format!(
                "blockdev --getsize64 /dev/{disk} && dd if=/dev/{disk} of=/dev/null bs=1M count=4 2>&1 | tail -n 1"
            ),
            CMD_TIMEOUT,
        )
        .expect("blockdev");
    assert!(blk.starts_with("1073741824"), "the disk has its size and reads: {blk}");
    let addr = c.run("ip -4 -o addr show", CMD_TIMEOUT).expect("ip");
    assert!(addr.contains("10.0.2.15/24"), "the virtio NIC got an address by DHCP: {addr}");
    let route = c.run("ip route", CMD_TIMEOUT).expect("ip route");
    assert!(route.contains("default via 10.0.2.2"), "{route}");
    let dns = c.run("cat /etc/resolv.conf", CMD_TIMEOUT).expect("resolv.conf");
    assert!(dns.contains("nameserver 10.0.2.3"), "{dns}");
    let tools = c.run("for t in lifeboat sfdisk mdadm lvm cryptsetup mkfs.xfs mkfs.btrfs; do command -v $t >/dev/null || echo missing $t; done; lifeboat --version", CMD_TIMEOUT).expect("tools");
    assert!(!tools.contains("missing"), "{tools}");
    assert!(tools.contains("lifeboat 0."), "{tools}");
    let man = c.run("MANPAGER=cat man sfdisk 2>&1 | head -n 1", CMD_TIMEOUT).expect("man");
    assert!(man.contains("SFDISK(8)"), "manual pages for the recovery tools: {man}");
    let layout = c.run("lifeboat layout show /etc/lifeboat/layout.toml | head -n 1", CMD_TIMEOUT).expect("layout");
    assert!(layout.contains("captured"), "the saved layout is on the medium: {layout}");
    let untouched = c.run("cat /proc/mdstat | grep -c '^md' ; ls /dev/mapper", CMD_TIMEOUT).expect("untouched");
    assert!(
        untouched.starts_with('0') && untouched.contains("control") && !untouched.contains("vg"),
        "nothing assembled by itself: {untouched}"
    );
    if medium {
        let check = c
            .run(
                "for i in $(seq 1 50); do [ -f /run/lifeboat-medium-check.status ] && break; sleep 1; done; sleep 1; cat /run/lifeboat-medium-check.log",
                CMD_TIMEOUT,
            )
            .expect("the medium check");
        assert!(check.contains("medium 1 of 1 (LIFEBOAT) passed its check"), "the boot medium checked itself: {check}");
        assert!(c.transcript().contains("lifeboat: medium check passed"), "said on the console");
    }
    c.send_line("poweroff -f").expect("poweroff");
    c.wait_poweroff(CMD_TIMEOUT).expect("powers off");
}

fn boot_iso(name: &str, firmware: Firmware, as_cdrom: bool) {
    let Some(b) = media() else { return };
    let mut spec = Boot::new(name, firmware);
    let rescue = if as_cdrom {
        Media::Cdrom(b.iso.clone())
    } else {
        Media::Disk { image: b.iso.clone(), serial: "usbstick".into(), read_only: true }
    };
    spec.media = vec![rescue, Media::Disk { image: target_disk(b, name), serial: "target".into(), read_only: false }];
    let Some(mut c) = start(&spec) else { return };
    assert_rescue_shell_and(&mut c, true);
    eprintln!("{name}: rescue shell reached and checked in {:.0} s", c.elapsed().as_secs_f64());
}

#[test]
fn iso_boots_from_cd_with_bios() {
    boot_iso("iso-bios-cd", Firmware::Bios, true);
}

#[test]
fn iso_boots_from_cd_with_uefi() {
    boot_iso("iso-uefi-cd", Firmware::Uefi, true);
}

#[test]
fn iso_boots_as_a_disk_with_bios() {
    boot_iso("iso-bios-disk", Firmware::Bios, false);
}

#[test]
fn iso_boots_as_a_disk_with_uefi() {
    boot_iso("iso-uefi-disk", Firmware::Uefi, false);
}

#[test]
fn pxe_files_boot_with_kernel_and_initrd() {
    let Some(b) = media() else { return };
    let cfg = std::fs::read_to_string(b.pxe.join("pxelinux.cfg/default")).expect("pxelinux config");
    assert!(cfg.contains("KERNEL vmlinuz") && cfg.contains("INITRD initrd.img"), "{cfg}");
    assert!(b.pxe.join("lifeboat.ipxe").exists() && b.pxe.join("grub.cfg").exists());
    let mut spec = Boot::new("pxe-direct", Firmware::Bios);
    spec.direct = Some((b.pxe.join("vmlinuz"), b.pxe.join("initrd.img"), "console=ttyS0,115200n8".into()));
    spec.media = vec![Media::Disk { image: target_disk(b, "pxe"), serial: "target".into(), read_only: false }];
    let Some(mut c) = start(&spec) else { return };
    assert_rescue_shell(&mut c);
}

#[test]
fn raw_image_boots_from_a_usb_stick_with_uefi() {
    let Some(b) = media() else { return };
    let mut spec = Boot::new("raw-uefi-usb", Firmware::Uefi);
    spec.media = vec![
        Media::Usb(b.raw.clone()),
        Media::Disk { image: target_disk(b, "usb"), serial: "target".into(), read_only: false },
    ];
    let Some(mut c) = start(&spec) else { return };
    assert_rescue_shell(&mut c);
}

#[test]
fn unattended_recovery_without_a_backup_fails_with_the_reason_and_powers_off() {
    let Some(b) = media() else { return };
    let mut spec = Boot::new("auto-recover", Firmware::Bios);
    spec.direct = Some((
        b.pxe.join("vmlinuz"),
        b.pxe.join("initrd.img"),
        "console=ttyS0,115200n8 lifeboat.recover=auto lifeboat.done=poweroff".into(),
    ));
    spec.nic = false;
    let Some(mut c) = start(&spec) else { return };
    c.expect("lifeboat: recovery failed: ", BOOT_TIMEOUT).expect("the last word on the console");
    c.wait_poweroff(CMD_TIMEOUT).expect("lifeboat.done=poweroff powers off");
    let t = c.transcript();
    let last = t.lines().rev().find(|l| l.starts_with("lifeboat: ")).expect("a lifeboat line");
    // These media record no backup and the test config names no target.
    assert!(last.contains("no backup given"), "{last}");
}

#[test]
fn drivers_for_other_hardware_load_by_modalias() {
    // A different machine: q35 chipset, the disk on an AHCI (SATA) controller,
    // an Intel e1000e network card. Nothing of this is virtio.
    let Some(b) = media() else { return };
    let mut spec = Boot::new("other-hardware", Firmware::Bios);
    spec.other_hardware = true;
    spec.direct = Some((b.pxe.join("vmlinuz"), b.pxe.join("initrd.img"), "console=ttyS0,115200n8".into()));
    spec.media = vec![Media::Disk { image: target_disk(b, "sata"), serial: "sata-target".into(), read_only: false }];
    let Some(mut c) = start(&spec) else { return };
    c.expect("rescue:", BOOT_TIMEOUT).expect("shell");
    let mods =
        c.run("lsmod | awk '{print $1}' | grep -xE 'ahci|e1000e' | sort | tr '\\n' ' '", CMD_TIMEOUT).expect("lsmod");
    assert_eq!(mods.trim(), "ahci e1000e", "drivers loaded for the hardware found");
    let disk = c
        .run("cat /sys/block/sda/size; readlink -f /sys/block/sda | grep -o '/ata[0-9]*/' | head -n 1", CMD_TIMEOUT)
        .expect("sda");
    assert!(disk.starts_with("2097152\n/ata"), "the 1 GiB disk on the SATA controller is seen: {disk}");
    let addr = c.run("ip -4 -o addr show", CMD_TIMEOUT).expect("ip");
    assert!(addr.contains("10.0.2.15/24"), "the e1000e card got an address by DHCP: {addr}");
    c.send_line("poweroff -f").expect("poweroff");
    c.wait_poweroff(CMD_TIMEOUT).expect("powers off");
}

#[test]
fn sshd_lets_in_the_configured_keys_only() {
    if media().is_none() || lifeboat_runner::which("sshd").is_none() {
        return eprintln!("SKIP: needs root and sshd on the host (apt-get install openssh-server)");
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("rescue-ssh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    common::sh(&format!("rm -f {0}/key {0}/key.pub {0}/other*; ssh-keygen -q -t ed25519 -N '' -f {0}/key; ssh-keygen -q -t ed25519 -N '' -f {0}/other", dir.display()));
    let cfg = config(
        &dir,
        &format!("[rescue]\nssh_authorized_keys = true\nauthorized_keys_file = \"{}/key.pub\"\n", dir.display()),
    );
    let out = dir.join("out");
    let (code, stdout, stderr) = run_lifeboat(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "mkrescue",
        "--format",
        "pxe",
        "--output",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let pxe = std::fs::read_dir(&out).expect("out").flatten().map(|e| e.path()).find(|p| p.is_dir()).expect("pxe dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let mut spec = Boot::new("rescue-sshd", Firmware::Bios);
    spec.direct = Some((pxe.join("vmlinuz"), pxe.join("initrd.img"), "console=ttyS0,115200n8".into()));
    spec.ssh_port = Some(port);
    spec.media = vec![Media::Disk { image: dir.join("t.img"), serial: "target".into(), read_only: false }];
    std::fs::File::create(dir.join("t.img")).expect("disk").set_len(64 << 20).expect("size");
    let Some(mut c) = start(&spec) else { return };
    c.expect("rescue:", BOOT_TIMEOUT).expect("shell");
    let ssh = |key: &str| {
        std::process::Command::new("ssh")
            .args(["-p", &port.to_string(), "-i", &format!("{}/{key}", dir.display())])
            .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"])
            .args(["-o", "ConnectTimeout=20", "root@127.0.0.1", "id -un; cat /sys/block/vda/serial"])
            .output()
            .expect("ssh")
    };
    let mut last = String::new();
    for _ in 0..10 {
        let o = ssh("key");
        if o.status.success() {
            assert_eq!(
                String::from_utf8_lossy(&o.stdout).trim_end(),
                "root\ntarget",
                "a root shell over SSH sees the disk"
            );
            let denied = ssh("other");
            assert!(!denied.status.success(), "a key that is not configured is refused");
            c.send_line("poweroff -f").expect("poweroff");
            return;
        }
        last = String::from_utf8_lossy(&o.stderr).into_owned();
        std::thread::sleep(Duration::from_secs(3));
    }
    panic!("ssh into the rescue system failed: {last}\nconsole:\n{}", c.transcript());
}

#[test]
fn iso_boots_with_secure_boot_through_the_hosts_signed_shim() {
    let Some(b) = media() else { return };
    if lifeboat_rescue::media::SecureBoot::find().is_none() {
        return eprintln!(
            "SKIP: no signed shim and GRUB on this host (apt-get install shim-signed grub-efi-amd64-signed)"
        );
    }
    let mut spec = Boot::new("iso-secure-boot", Firmware::UefiSecureBoot);
    spec.media = vec![
        Media::Cdrom(b.iso.clone()),
        Media::Disk { image: target_disk(b, "sb"), serial: "target".into(), read_only: false },
    ];
    let Some(mut c) = start(&spec) else { return };
    c.expect("rescue:", BOOT_TIMEOUT).expect("shell");
    let sb = c.run("dmesg | grep -i 'secure boot' | head -n 3", CMD_TIMEOUT).expect("dmesg");
    assert!(sb.contains("Secure boot enabled"), "the kernel ran under Secure Boot: {sb}");
    assert_rescue_shell(&mut c);
}

#[test]
fn ip_on_the_kernel_command_line_overrides_dhcp() {
    let Some(b) = media() else { return };
    let mut spec = Boot::new("ip-override", Firmware::Bios);
    spec.direct = Some((
        b.pxe.join("vmlinuz"),
        b.pxe.join("initrd.img"),
        "console=ttyS0,115200n8 ip=10.0.2.20::10.0.2.2:255.255.255.0:rescuehost:eth0:off".into(),
    ));
    let Some(mut c) = start(&spec) else { return };
    c.expect("rescue:", BOOT_TIMEOUT).expect("shell");
    let net = c.run("ip -4 -o addr show dev eth0; ip route; hostname", CMD_TIMEOUT).expect("ip");
    assert!(net.contains("10.0.2.20/24"), "the address from ip=: {net}");
    assert!(!net.contains("10.0.2.15"), "no DHCP address besides: {net}");
    assert!(net.contains("default via 10.0.2.2") && net.contains("rescuehost"), "{net}");
    c.send_line("poweroff -f").expect("poweroff");
    c.wait_poweroff(CMD_TIMEOUT).expect("powers off");
}
