//! What `lifeboat mkrescue` puts on the media, inspected without booting:
//! the ISO's files and boot menu (read with xorriso, as this host cannot
//! mount ISO 9660), the checksum files, the initramfs listed with cpio, and
//! the checksum each ISO carries in itself (`lifeboat verify --medium`).

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
    // The embedded checksum: xorriso still reads the volume descriptor, and the medium checks itself.
    let pvd = sh(&format!("xorriso -indev {iso} -pvd_info 2>&1"));
    assert!(pvd.contains("Volume Id    : LIFEBOAT") && pvd.contains("App Id"), "{pvd}");
    let c = cfg.to_str().expect("utf8");
    let (code, stdout, stderr) = run_lifeboat(&["--config", c, "--json", "verify", "--medium", &iso]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(
        (v["ok"].as_bool(), v["media"][0]["medium"].as_u64(), v["media"][0]["of"].as_u64()),
        (Some(true), Some(1), Some(1))
    );
    let bytes = v["media"][0]["bytes"].as_u64().expect("bytes");
    eprintln!(
        "medium check: {} MB at {:.0} MB/s",
        bytes / 1_000_000,
        v["media"][0]["mb_per_s"].as_f64().expect("rate")
    );
    assert!(v["backup_note"].as_str().is_some_and(|n| n.contains("no backup")), "{stdout}");
    // One byte changed inside a file of the image: the check fails naming the medium and the file.
    let damaged = d.join("damaged.iso");
    std::fs::copy(&iso, &damaged).expect("copy");
    flip_byte_in(&damaged, "/boot/initrd.img");
    let (code, stdout, stderr) = run_lifeboat(&["--config", c, "verify", "--medium", damaged.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("medium 1 of 1 (LIFEBOAT) is damaged at /boot/initrd.img"), "{stdout}");
    // A truncated copy (an interrupted download) is named as such.
    let short = d.join("short.iso");
    sh(&format!("head -c $(( $(stat -c %s {iso}) - 1048576 )) {iso} > {}", short.display()));
    let (code, stdout, _) = run_lifeboat(&["--config", c, "verify", "--medium", short.to_str().expect("utf8")]);
    assert!(code == 1 && stdout.contains("medium 1 of 1 (LIFEBOAT) is truncated"), "{stdout}");

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

/// Change one byte in the middle of the file `path` inside the ISO image `iso`
/// (its place read with xorriso).
fn flip_byte_in(iso: &std::path::Path, path: &str) {
    let lba = sh(&format!("xorriso -indev {} -find {path} -exec report_lba 2>/dev/null", iso.display()));
    let line = lba.lines().find(|l| l.starts_with("File data lba:")).unwrap_or_else(|| panic!("{path}: {lba}"));
    let fields: Vec<u64> = line
        .trim_start_matches("File data lba:")
        .split(',')
        .take(4)
        .map(|f| f.trim().parse().expect("number"))
        .collect();
    let (start, size) = (fields[1] * 2048, fields[3]);
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(iso).expect("open");
    let at = start + size / 2;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).and_then(|_| f.read_exact(&mut b)).expect("read");
    b[0] ^= 0x10;
    f.seek(SeekFrom::Start(at)).and_then(|_| f.write_all(&b)).expect("write");
}

#[test]
fn a_media_set_checks_itself_and_names_the_damaged_medium_of_the_set() {
    if !root_or_skip("mkrescue reads the whole system") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let cfg_path = config(d, "[backup]\nvolume_size = \"2M\"\nlevel = 1\n");
    let c = cfg_path.to_str().expect("utf8");
    // A small backup of several volumes, as mkbackup stages it.
    let tree = d.join("tree");
    std::fs::create_dir_all(&tree).expect("tree");
    sh(&format!("head -c 6000000 /dev/urandom > {0}/random; seq 1 200000 > {0}/numbers", tree.display()));
    std::fs::create_dir_all(d.join("target")).expect("target");
    let backup = common::back_up(&cfg_path, &tree, &d.join("target"), &[]);
    let (code, out, err) = run_lifeboat(&["--config", c, "layout", "save"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let name = backup.file_name().expect("name").to_string_lossy().into_owned();
    let on_medium = format!("backup/{}/{name}", common::hostname());
    let mut opts =
        lifeboat_rescue::Options { output_dir: Some(d.join("out")), backup_id: name.clone(), ..Default::default() };
    let mut vols = Vec::new();
    for e in std::fs::read_dir(&backup).expect("backup").flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let entry = (e.path(), format!("{on_medium}/{file}"));
        if file.starts_with("vol-") {
            vols.push(entry)
        } else {
            opts.media_files.push(entry)
        }
    }
    vols.sort();
    assert!(vols.len() >= 3, "{vols:?}");
    // Media just large enough for the rescue system and one volume: the rest go on medium 2.
    let config = lifeboat_config::Config::load(&cfg_path, true).expect("config");
    let layout = lifeboat_layout::Layout::load(&d.join("layout.toml")).expect("layout");
    let kernel = lifeboat_rescue::kernel::choose(None).expect("kernel");
    let probe = lifeboat_rescue::mkrescue(
        &config,
        &layout,
        &lifeboat_rescue::Options { output_dir: Some(d.join("probe")), ..Default::default() },
        &lifeboat_runner::SystemRunner::new(lifeboat_runner::Mode::Run),
    )
    .expect("mkrescue");
    let initrd = probe.initrd_size.0;
    let size = |p: &std::path::Path| std::fs::metadata(p).expect("size").len();
    let first: u64 =
        size(&kernel.image) + initrd + opts.media_files.iter().map(|f| size(&f.0)).sum::<u64>() + (24 << 20);
    opts.medium_size = Some(first + size(&vols[0].0).div_ceil(2048) * 2048 + 2048 + (1 << 20) + 4096);
    opts.spill_files = vols;
    let runner = lifeboat_runner::SystemRunner::new(lifeboat_runner::Mode::Run);
    let built = lifeboat_rescue::mkrescue(&config, &layout, &opts, &runner).expect("mkrescue of a set");
    let isos: Vec<String> =
        built.outputs.iter().map(|(p, _)| p.display().to_string()).filter(|p| p.ends_with(".iso")).collect();
    assert_eq!(isos.len(), 2, "{isos:?}");
    for iso in &isos {
        let pvd = sh(&format!("xorriso -indev {iso} -pvd_info 2>&1"));
        assert!(pvd.contains("Volume Id"), "{pvd}");
    }
    // Both media pass, and every volume of the backup on them is intact.
    let mut args = vec!["--config", c, "--json", "verify", "--medium"];
    args.extend(isos.iter().map(String::as_str));
    let (code, stdout, stderr) = run_lifeboat(&args);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["media"][1]["medium"].as_u64(), Some(2), "{stdout}");
    assert_eq!(v["media"][1]["label"], "LIFEBOAT_2");
    assert_eq!(v["media"][1]["backup"], name.as_str());
    assert_eq!(v["backup"]["ok"].as_bool(), Some(true), "{stdout}");
    // One medium alone: it passes, and the volumes wait for the whole set.
    let (code, stdout, _) = run_lifeboat(&["--config", c, "verify", "--medium", &isos[0]]);
    assert!(
        code == 0 && stdout.contains("medium 1 of 2 (LIFEBOAT)") && stdout.contains("every medium of the set"),
        "{stdout}"
    );
    // Damage a volume on the second medium: the message names medium 2 of 2, the file, and the volume.
    let second = std::path::Path::new(&isos[1]);
    let set: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("work/rescue/media-2.json")).expect("set")).expect("json");
    let vol = set["files"][1][0].as_str().expect("a volume on medium 2").to_string();
    flip_byte_in(second, &format!("/{vol}"));
    let mut args = vec!["--config", c, "verify", "--medium"];
    args.extend(isos.iter().map(String::as_str));
    let (code, stdout, stderr) = run_lifeboat(&args);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("medium 2 of 2 (LIFEBOAT_2) of backup {name} is damaged at /{vol}")), "{stdout}");
    assert!(stdout.contains("medium 1 of 2 (LIFEBOAT) of backup") && stdout.contains("passed its check"), "{stdout}");
    let file = vol.rsplit('/').next().expect("name");
    assert!(stdout.contains(&format!("DAMAGED volume {file}")) && stdout.contains("(on medium 2)"), "{stdout}");
}
