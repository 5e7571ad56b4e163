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

/// Build the hybrid ISO with grub-mkrescue (GRUB for BIOS El Torito, for
/// UEFI from an EFI system partition image, and an MBR/GPT for USB sticks).
pub fn iso(
    r: &dyn Runner,
    staging: &Path,
    kernel: &Path,
    initrd: &Path,
    grub_cfg: &str,
    label: &str,
    out: &Path,
) -> Result<(), RescueError> {
    let io = |what: String| move |source| RescueError::Io { what, source };
    let _ = std::fs::remove_dir_all(staging);
    let boot = staging.join("boot");
    std::fs::create_dir_all(boot.join("grub")).map_err(io(format!("cannot create {}", boot.display())))?;
    link_or_copy(kernel, &boot.join("vmlinuz"))?;
    link_or_copy(initrd, &boot.join("initrd.img"))?;
    std::fs::write(boot.join("grub/grub.cfg"), grub_cfg).map_err(io("cannot write grub.cfg".into()))?;
    let tmp = out.with_extension("iso.part");
    r.apply(
        &Cmd::new("grub-mkrescue")
            .arg("--output")
            .arg(&tmp)
            .args(["--compress=xz", "--fonts=", "--locales=", "--themes="])
            .arg(staging)
            .args(["--", "-volid", label]),
    )?;
    std::fs::rename(&tmp, out).map_err(io(format!("cannot rename {}", tmp.display())))?;
    Ok(())
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
    let mut f = std::fs::File::open(p)
        .map_err(|source| RescueError::Io { what: format!("cannot read {}", p.display()), source })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|source| RescueError::Io { what: format!("cannot read {}", p.display()), source })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
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
