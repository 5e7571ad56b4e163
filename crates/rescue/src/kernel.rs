//! Finding the kernel for the rescue system.
//!
//! The running kernel's image is preferred. A machine booted from outside (a
//! VM whose hypervisor supplies the kernel) has no image on disk and no
//! modules for it; then the newest installed kernel that has its modules is
//! used, and [`KernelChoice::reason`] says so.

use std::path::{Path, PathBuf};

/// Errors finding a kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// No usable kernel image at all.
    #[error("no kernel image with modules found (running kernel {running} has no image under /boot, and no other kernel with /lib/modules is installed); install one (apt-get install linux-image-amd64, dnf install kernel-core, zypper install kernel-default) or set rescue.kernel in the config")]
    NoneFound {
        /// `uname -r`.
        running: String,
    },
    /// The configured image cannot be read.
    #[error("kernel image {path}: {source}")]
    Unreadable {
        /// The image.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The image carries no version string lifeboat can read.
    #[error("kernel image {0} has no readable version string (not an x86 bzImage?); set rescue.kernel to the vmlinuz file of an installed kernel")]
    NoVersion(PathBuf),
    /// The image's modules are not installed.
    #[error("kernel image {path} is version {version}, but /lib/modules/{version}/modules.dep does not exist; install that kernel's modules package or choose another kernel")]
    NoModules {
        /// The image.
        path: PathBuf,
        /// Its version.
        version: String,
    },
}

/// The kernel chosen for the rescue system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelChoice {
    /// The image file.
    pub image: PathBuf,
    /// Its release (`6.1.0-56-amd64`), read from the image.
    pub version: String,
    /// `/lib/modules/<version>`.
    pub modules_dir: PathBuf,
    /// Why this one: configured, running, or the fallback.
    pub reason: String,
}

/// The release string inside an x86 bzImage (the header's `kernel_version` field).
pub fn image_version(path: &Path) -> Result<String, KernelError> {
    use std::io::{Read, Seek, SeekFrom};
    let unreadable = |source| KernelError::Unreadable { path: path.to_path_buf(), source };
    let mut f = std::fs::File::open(path).map_err(unreadable)?;
    let mut hdr = [0u8; 0x210];
    f.read_exact(&mut hdr).map_err(|_| KernelError::NoVersion(path.to_path_buf()))?;
    if &hdr[0x202..0x206] != b"HdrS" {
        return Err(KernelError::NoVersion(path.to_path_buf()));
    }
    let off = u64::from(u16::from_le_bytes([hdr[0x20e], hdr[0x20f]])) + 0x200;
    f.seek(SeekFrom::Start(off)).map_err(unreadable)?;
    let mut buf = [0u8; 256];
    let n = f.read(&mut buf).map_err(unreadable)?;
    let s = String::from_utf8_lossy(&buf[..n]);
    s.split_whitespace()
        .next()
        .filter(|v| !v.is_empty())
        .map(String::from)
        .ok_or_else(|| KernelError::NoVersion(path.to_path_buf()))
}

/// Candidate image paths for a release, in the order distributions use them.
pub fn image_candidates(release: &str) -> Vec<PathBuf> {
    vec![
        PathBuf::from(format!("/boot/vmlinuz-{release}")),
        PathBuf::from(format!("/boot/vmlinux-{release}")),
        PathBuf::from(format!("/boot/bzImage-{release}")),
        PathBuf::from(format!("/lib/modules/{release}/vmlinuz")),
        PathBuf::from(format!("/usr/lib/modules/{release}/vmlinuz")),
    ]
}

fn has_modules(version: &str) -> bool {
    Path::new(&format!("/lib/modules/{version}/modules.dep")).exists()
}

/// Compare kernel releases by their numeric parts (`6.1.0-56` < `6.1.0-112`).
pub fn release_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse().ok()).collect()
}

/// Every installed kernel image with its version and whether its modules exist.
pub fn installed() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir("/boot")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .collect();
    for e in std::fs::read_dir("/lib/modules").into_iter().flatten().flatten() {
        paths.push(e.path().join("vmlinuz"));
    }
    for p in paths {
        if let Ok(v) = image_version(&p) {
            if seen.insert(v.clone()) {
                out.push((p, v));
            }
        }
    }
    out.sort_by_key(|(_, v)| release_key(v));
    out
}

/// Choose the kernel: the configured image, else the running kernel's, else
/// the newest installed kernel that has its modules.
pub fn choose(configured: Option<&Path>) -> Result<KernelChoice, KernelError> {
    let make = |image: PathBuf, reason: String| -> Result<KernelChoice, KernelError> {
        let version = image_version(&image)?;
        if !has_modules(&version) {
            return Err(KernelError::NoModules { path: image, version });
        }
        Ok(KernelChoice { modules_dir: PathBuf::from(format!("/lib/modules/{version}")), image, version, reason })
    };
    if let Some(p) = configured {
        return make(p.to_path_buf(), "set in the config (rescue.kernel)".into());
    }
    let running = rustix::system::uname().release().to_string_lossy().into_owned();
    if let Some(p) = image_candidates(&running).into_iter().find(|p| p.is_file()) {
        if image_version(&p).ok().as_deref() == Some(running.as_str()) && has_modules(&running) {
            return make(p, "the running kernel".into());
        }
    }
    let best = installed().into_iter().rev().find(|(_, v)| has_modules(v));
    match best {
        Some((p, v)) => make(
            p,
            format!(
                "the running kernel {running} has no image{} on this machine (booted from outside?), so the newest installed kernel with modules ({v}) is used",
                if has_modules(&running) { "" } else { " and no modules" }
            ),
        ),
        None => Err(KernelError::NoneFound { running }),
    }
}

/// initramfs compressions, best first, with the kernel config option that enables each.
pub const COMPRESSIONS: &[(&str, &str)] =
    &[("zstd", "CONFIG_RD_ZSTD"), ("xz", "CONFIG_RD_XZ"), ("gzip", "CONFIG_RD_GZIP")];

/// The kernel's build configuration text, from /boot/config-V or the modules directory.
pub fn config_text(version: &str) -> Option<String> {
    [format!("/boot/config-{version}"), format!("/lib/modules/{version}/config")]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
}

/// Compressions the kernel can unpack, best first, from its configuration text.
pub fn supported_compressions(config: &str) -> Vec<&'static str> {
    COMPRESSIONS
        .iter()
        .filter(|(_, opt)| config.lines().any(|l| l.trim() == format!("{opt}=y")))
        .map(|(c, _)| *c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_string_is_read_from_the_image_header() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("vmlinuz");
        let mut img = vec![0u8; 0x1000];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20e..0x210].copy_from_slice(&0x300u16.to_le_bytes());
        let s = b"6.1.0-99-amd64 (debian-kernel@lists.debian.org) #1 SMP";
        img[0x500..0x500 + s.len()].copy_from_slice(s);
        std::fs::write(&p, &img).expect("write");
        assert_eq!(image_version(&p).expect("version"), "6.1.0-99-amd64");
        std::fs::write(&p, b"not a kernel").expect("write");
        assert!(matches!(image_version(&p), Err(KernelError::NoVersion(_))));
    }

    #[test]
    fn releases_sort_numerically() {
        let mut v = vec!["6.1.0-112-amd64", "6.1.0-56-amd64", "5.10.0-9-amd64"];
        v.sort_by_key(|x| release_key(x));
        assert_eq!(v, vec!["5.10.0-9-amd64", "6.1.0-56-amd64", "6.1.0-112-amd64"]);
    }

    #[test]
    fn compressions_from_config() {
        let c = "CONFIG_RD_GZIP=y\n# CONFIG_RD_XZ is not set\nCONFIG_RD_ZSTD=y\n";
        assert_eq!(supported_compressions(c), vec!["zstd", "gzip"]);
    }
}
