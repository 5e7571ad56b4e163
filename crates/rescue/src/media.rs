//! The rescue media: a hybrid ISO (BIOS and UEFI, CD and USB), a raw disk
//! image, or PXE files; each with a SHA-256 checksum file beside it.

use crate::RescueError;
use lifeboat_runner::{Cmd, Runner};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Kernel command line pieces of the boot entries.
const CONSOLES: &str = "console=tty0 console=ttyS0,115200n8";

/// The boot menu, for GRUB (ISO, raw image, GRUB network boot).
pub fn grub_cfg(title: &str, kernel: &str, initrd: &str, auto_recover: bool) -> String {
    let default = if auto_recover { 1 } else { 0 };
    format!(
        r#"# lifeboat rescue media
set timeout=5
set default={default}
serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1
terminal_input console serial
terminal_output console serial
insmod all_video
menuentry "{title}" {{
    linux {kernel} {CONSOLES}
    initrd {initrd}
}}
menuentry "{title}: unattended recovery (erases the disks in the saved layout)" {{
    linux {kernel} {CONSOLES} lifeboat.recover=auto lifeboat.done=reboot
    initrd {initrd}
}}
menuentry "{title}: serial console only (ttyS0, 115200)" {{
    linux {kernel} console=ttyS0,115200n8
    initrd {initrd}
}}
"#
    )
}

/// What goes on an ISO.
#[derive(Debug, Clone, Copy)]
pub struct IsoContent<'a> {
    /// The kernel image.
    pub kernel: &'a Path,
    /// The initramfs.
    pub initrd: &'a Path,
    /// The GRUB menu.
    pub grub_cfg: &'a str,
    /// More files: (source, path on the medium).
    pub extra: &'a [(PathBuf, String)],
}

/// A plain ISO 9660 data disc (Rock Ridge and Joliet) holding `files`
/// (source, path on the disc); no half-written file stays behind.
pub fn data_iso(r: &dyn Runner, files: &[(PathBuf, String)], label: &str, out: &Path) -> Result<(), RescueError> {
    let tmp = out.with_extension("iso.part");
    let mut c = Cmd::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-r", "-J", "-joliet-long", "-iso-level", "3", "-graft-points", "-volid"])
        .arg(label)
        .arg("-o")
        .arg(&tmp);
    for (src, dest) in files {
        c = c.arg(format!("/{}={}", dest.trim_start_matches('/'), src.display()));
    }
    let built = r.apply(&c).map_err(RescueError::from).and_then(|_| {
        std::fs::rename(&tmp, out)
            .map_err(|source| RescueError::Io { what: format!("cannot rename {}", tmp.display()), source })
    });
    if built.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    built
}

/// Build the hybrid ISO with grub-mkrescue (GRUB for BIOS El Torito, for
/// UEFI from an EFI system partition image, and an MBR/GPT for USB sticks).
pub fn iso(r: &dyn Runner, staging: &Path, content: &IsoContent, label: &str, out: &Path) -> Result<(), RescueError> {
    let io = |what: String| move |source| RescueError::Io { what, source };
    let _ = std::fs::remove_dir_all(staging);
    let boot = staging.join("boot");
    std::fs::create_dir_all(boot.join("grub")).map_err(io(format!("cannot create {}", boot.display())))?;
    link_or_copy(content.kernel, &boot.join("vmlinuz"))?;
    link_or_copy(content.initrd, &boot.join("initrd.img"))?;
    std::fs::write(boot.join("grub/grub.cfg"), content.grub_cfg).map_err(io("cannot write grub.cfg".into()))?;
    for (src, dest) in content.extra {
        let d = staging.join(dest.trim_start_matches('/'));
        if let Some(parent) = d.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("cannot create {}", parent.display())))?;
        }
        link_or_copy(src, &d)?;
    }
    // Signed GRUB images for CDs find their root by this file.
    std::fs::create_dir_all(staging.join(".disk")).map_err(io("cannot create .disk".into()))?;
    std::fs::write(staging.join(".disk/info"), format!("{label} lifeboat rescue system\n"))
        .map_err(io("cannot write .disk/info".into()))?;
    let tmp = out.with_extension("iso.part");
    let built = (|| {
        // GRUB's modules compressed with xz when the machine has xz (grub-mkrescue
        // fails half-way without it).
        let mut c = Cmd::new("grub-mkrescue").arg("--output").arg(&tmp);
        if r.has("xz") {
            c = c.arg("--compress=xz");
        }
        r.apply(&c.args(["--fonts=", "--locales=", "--themes="]).arg(staging).args(["--", "-volid", label]))?;
        if let Some(sb) = SecureBoot::find() {
            log::info!("Secure Boot: UEFI boots through the host's signed shim and GRUB ({})", sb.shim.display());
            let signed = out.with_extension("iso.sb");
            let res = sb.remaster(r, &tmp, &signed, &staging.with_extension("sb"), label);
            if res.is_err() {
                let _ = std::fs::remove_file(&signed);
            }
            res?;
            std::fs::rename(&signed, &tmp).map_err(io(format!("cannot rename {}", signed.display())))?;
        }
        std::fs::rename(&tmp, out).map_err(io(format!("cannot rename {}", tmp.display())))
    })();
    // Nothing half-written stays behind.
    if built.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    built
}

/// The host's signed boot chain for UEFI Secure Boot (Debian's shim-signed
/// and grub-efi-amd64-signed packages).
#[derive(Debug, Clone)]
pub struct SecureBoot {
    /// shim, signed by the Microsoft UEFI CA.
    pub shim: PathBuf,
    /// GRUB for CDs, signed by the distribution (whose key shim carries).
    pub grub: PathBuf,
    /// MokManager, which shim starts when keys must be enrolled.
    pub mok_manager: Option<PathBuf>,
}

impl SecureBoot {
    /// The signed files, when the host has them.
    pub fn find() -> Option<SecureBoot> {
        let shim = PathBuf::from("/usr/lib/shim/shimx64.efi.signed");
        let grub = PathBuf::from("/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed");
        let mm = PathBuf::from("/usr/lib/shim/mmx64.efi.signed");
        (shim.exists() && grub.exists()).then(|| SecureBoot { shim, grub, mok_manager: mm.exists().then_some(mm) })
    }

    /// Rebuild `base` (made by grub-mkrescue) with an EFI system partition
    /// image that boots shim → signed GRUB → the (signed) kernel. The BIOS
    /// boot path and the files stay as grub-mkrescue made them.
    pub fn remaster(
        &self,
        r: &dyn Runner,
        base: &Path,
        out: &Path,
        tree: &Path,
        label: &str,
    ) -> Result<(), RescueError> {
        let io = |what: String| move |source| RescueError::Io { what, source };
        let _ = std::fs::remove_dir_all(tree);
        std::fs::create_dir_all(tree).map_err(io(format!("cannot create {}", tree.display())))?;
        r.apply(&Cmd::new("xorriso").args(["-osirrox", "on", "-indev"]).arg(base).args(["-extract", "/"]).arg(tree))?;
        let efi = tree.join("efi.img");
        let _ = std::fs::remove_file(&efi);
        // FAT image sized for shim, GRUB and MokManager with room to spare.
        let files: Vec<(&Path, &str)> = [
            Some((self.shim.as_path(), "::/EFI/BOOT/BOOTX64.EFI")),
            Some((self.grub.as_path(), "::/EFI/BOOT/grubx64.efi")),
            self.mok_manager.as_deref().map(|m| (m, "::/EFI/BOOT/mmx64.efi")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let bytes: u64 = files.iter().map(|(p, _)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
        let kib = (bytes / 1024 + 1024).div_ceil(1024) * 1024;
        r.apply(&Cmd::new("mkfs.vfat").args(["-C", "-n", "LIFEBOATEFI"]).arg(&efi).arg(kib.to_string()))?;
        let img = efi.to_string_lossy().into_owned();
        r.apply(&Cmd::new("mmd").args(["-i", &img, "::/EFI", "::/EFI/BOOT"]))?;
        for (src, dst) in files {
            r.apply(&Cmd::new("mcopy").args(["-i", &img]).arg(src).arg(dst))?;
        }
        let _ = std::fs::set_permissions(tree, std::os::unix::fs::PermissionsExt::from_mode(0o755));
        r.apply(
            &Cmd::new("xorriso")
                .args(["-as", "mkisofs", "-graft-points", "-r", "-J", "-joliet-long", "-volid", label])
                .args(["--grub2-mbr", "/usr/lib/grub/i386-pc/boot_hybrid.img", "--protective-msdos-label"])
                .args(["-partition_cyl_align", "off", "-partition_offset", "0"])
                .args(["-c", "/boot.catalog", "-b", "/boot/grub/i386-pc/eltorito.img", "-no-emul-boot"])
                .args(["-boot-load-size", "4", "-boot-info-table", "--grub2-boot-info"])
                .args(["-eltorito-alt-boot", "-e", "/efi.img", "-no-emul-boot", "-efi-boot-part", "--efi-boot-image"])
                .arg("-o")
                .arg(out)
                .arg(tree),
        )?;
        let _ = std::fs::remove_dir_all(tree);
        Ok(())
    }
}

/// PXE files: kernel, initramfs, and boot configurations for pxelinux, iPXE and GRUB.
pub fn pxe(dir: &Path, kernel: &Path, initrd: &Path, title: &str) -> Result<Vec<PathBuf>, RescueError> {
    let io = |what: String| move |source| RescueError::Io { what, source };
    std::fs::create_dir_all(dir.join("pxelinux.cfg")).map_err(io(format!("cannot create {}", dir.display())))?;
    let k = dir.join("vmlinuz");
    let i = dir.join("initrd.img");
    std::fs::copy(kernel, &k).map_err(io(format!("cannot copy {}", kernel.display())))?;
    std::fs::copy(initrd, &i).map_err(io(format!("cannot copy {}", initrd.display())))?;
    let pxelinux = format!(
        "DEFAULT rescue\nPROMPT 1\nTIMEOUT 50\nSERIAL 0 115200\n\
         LABEL rescue\n  MENU LABEL {title}\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND {CONSOLES}\n\
         LABEL recover\n  MENU LABEL {title}: unattended recovery\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND {CONSOLES} lifeboat.recover=auto lifeboat.done=reboot\n"
    );
    let ipxe = format!("#!ipxe\n# {title}\nkernel vmlinuz {CONSOLES}\ninitrd initrd.img\nboot\n");
    let files = [
        (dir.join("pxelinux.cfg/default"), pxelinux),
        (dir.join("lifeboat.ipxe"), ipxe),
        (dir.join("grub.cfg"), grub_cfg(title, "vmlinuz", "initrd.img", false)),
    ];
    for (p, text) in &files {
        std::fs::write(p, text).map_err(io(format!("cannot write {}", p.display())))?;
    }
    let mut out = vec![k, i];
    out.extend(files.into_iter().map(|(p, _)| p));
    Ok(out)
}

fn link_or_copy(src: &Path, dst: &Path) -> Result<(), RescueError> {
    if std::fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    std::fs::copy(src, dst).map(|_| ()).map_err(|source| RescueError::Io {
        what: format!("cannot copy {} to {}", src.display(), dst.display()),
        source,
    })
}

/// SHA-256 of a file, in hex.
pub fn sha256_file(p: &Path) -> Result<String, RescueError> {
    let f = std::fs::File::open(p)
        .map_err(|source| RescueError::Io { what: format!("cannot read {}", p.display()), source })?;
    sha256_of(f).map_err(|source| RescueError::Io { what: format!("cannot read {}", p.display()), source })
}

/// SHA-256 of everything a reader gives, in hex.
pub fn sha256_of(r: impl Read) -> std::io::Result<String> {
    let mut h = Sha256::new();
    std::io::copy(&mut std::io::BufReader::with_capacity(1 << 20, r), &mut h)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Write `FILE.sha256` beside a file, in `sha256sum -c` format.
pub fn write_checksum(p: &Path) -> Result<PathBuf, RescueError> {
    let sum = sha256_file(p)?;
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let out = PathBuf::from(format!("{}.sha256", p.display()));
    std::fs::write(&out, format!("{sum}  {name}\n"))
        .map_err(|source| RescueError::Io { what: format!("cannot write {}", out.display()), source })?;
    Ok(out)
}
