//! What `lifeboat mkrescue` puts on the media, inspected without booting:
//! the ISO's files and boot menu (read with xorriso, as this host cannot
//! mount ISO 9660), the checksum files, and the initramfs listed with cpio.

mod common;

use common::{config, root_or_skip, run_lifeboat, sh};

#[test]
fn iso_and_initramfs_hold_what_the_rescue_system_needs_and_no_secrets() {
    if !root_or_skip("mkrescue reads the whole system") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let cfg = config(d, "[rescue]\nextra_files = [\"/etc/debian_version\"]\n");
    let out = d.join("out");
    let (code, stdout, stderr) = run_lifeboat(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "--json",
        "mkrescue",
        "--auto-recover",
        "--output",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
    assert!(report["kernel"]["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(report["compression"], "zstd");
    assert!(
        report["modules"].as_u64().is_some_and(|n| n > 300),
        "storage, fs and network drivers: {}",
        report["modules"]
    );
    let iso = report["outputs"][0]["path"].as_str().expect("iso path").to_string();
    assert!(iso.ends_with(".iso"));
    // The checksum file beside it verifies.
    sh(&format!(
        "cd {} && sha256sum -c --quiet {}.sha256",
        out.display(),
        std::path::Path::new(&iso).file_name().expect("name").to_string_lossy()
    ));
    // The ISO: kernel, initramfs, the boot menu with the unattended entry as default, hybrid boot records.
    let listing = sh(&format!("xorriso -indev {iso} -find /boot -type f 2>/dev/null"));
    for f in ["/boot/vmlinuz", "/boot/initrd.img", "/boot/grub/grub.cfg", "/boot/grub/i386-pc/eltorito.img"] {
        assert!(listing.contains(f), "{f} missing from the ISO:\n{listing}");
    }
    let grub = sh(&format!(
        "xorriso -osirrox on -indev {iso} -extract /boot/grub/grub.cfg {0}/grub.cfg >/dev/null 2>&1; cat {0}/grub.cfg",
        d.display()
    ));
    assert!(grub.contains("set default=1") && grub.contains("lifeboat.recover=auto"), "{grub}");
    assert!(grub.contains("console=ttyS0,115200n8") && grub.contains("terminal_output console serial"), "{grub}");
    let boot = sh(&format!("xorriso -indev {iso} -report_el_torito plain 2>&1"));
    assert!(boot.contains("BIOS") && boot.contains("UEFI"), "El Torito boot images for BIOS and UEFI:\n{boot}");
    let mbr = sh(&format!("xorriso -indev {iso} -report_system_area plain 2>&1"));
    assert!(mbr.contains("MBR"), "an MBR for booting from a USB stick:\n{mbr}");

    // The initramfs (same as on the ISO), listed with GNU cpio.
    let initrd = d.join("work/rescue/initrd.img");
    let list = sh(&format!("zstd -dc {} | cpio -t --quiet", initrd.display()));
    for f in [
        "init",
        "etc/lifeboat/layout.toml",
        "etc/lifeboat/lifeboat.toml",
        "etc/lifeboat/rc.sysinit",
        "usr/sbin/lifeboat",
        "usr/sbin/mdadm",
        "usr/sbin/cryptsetup",
        "usr/sbin/sfdisk",
        "usr/bin/bash",
        "busybox/busybox",
        "etc/passwd",
        "etc/debian_version",
    ] {
        assert!(list.lines().any(|l| l == f), "{f} missing from the initramfs");
    }
    assert!(list.lines().any(|l| l.ends_with("/libc.so.6")), "libc");
    assert!(list.lines().any(|l| l.ends_with("/libnss_files.so.2")), "NSS module loaded at run time");
    assert!(
        list.lines().any(|l| l.ends_with("/virtio_blk.ko")) && list.lines().any(|l| l.ends_with("/ahci.ko")),
        "storage drivers"
    );
    assert!(list.lines().any(|l| l.ends_with("/e1000e.ko")), "network drivers for other hardware");
    assert!(list.lines().any(|l| l.ends_with("/modules.alias")), "module index for modalias loading");
    assert!(!list.lines().any(|l| l.contains("ssh_host_") && !l.ends_with(".pub")), "no private host keys");
    assert!(!list.lines().any(|l| l.contains("/wireless/")), "no wireless drivers on a server medium");
    let shadow =
        sh(&format!("cd {} && zstd -dc {} | cpio -i --quiet --to-stdout etc/shadow", d.display(), initrd.display()));
    assert!(shadow.starts_with("root:*:"), "no password hash unless configured: {shadow}");
}

#[test]
fn mkrescue_refuses_a_kernel_without_modules() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    // A bzImage header with a version whose modules are not installed.
    let mut img = vec![0u8; 0x1000];
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x20e..0x210].copy_from_slice(&0x300u16.to_le_bytes());
    img[0x500..0x50e].copy_from_slice(b"9.9.9-nothere ");
    let k = d.join("vmlinuz-9.9.9");
    std::fs::write(&k, &img).expect("write");
    let cfg = config(d, "");
    let (code, _, err) =
        run_lifeboat(&["--config", cfg.to_str().expect("utf8"), "mkrescue", "--kernel", k.to_str().expect("utf8")]);
    assert_eq!(code, 2);
    assert!(err.contains("9.9.9-nothere") && err.contains("/lib/modules/9.9.9-nothere/modules.dep"), "{err}");
    assert!(
        !d.join("out").exists() || std::fs::read_dir(d.join("out")).expect("dir").next().is_none(),
        "nothing half-written"
    );
}
