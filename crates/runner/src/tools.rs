//! Which distribution package provides each external program lifeboat uses.

/// An external program and the packages that provide it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// Program name as found on PATH.
    pub program: &'static str,
    /// Debian and Ubuntu package.
    pub debian: &'static str,
    /// Fedora and RHEL package.
    pub fedora: &'static str,
    /// SUSE package.
    pub suse: &'static str,
}

const fn t(program: &'static str, debian: &'static str, fedora: &'static str, suse: &'static str) -> Tool {
    Tool { program, debian, fedora, suse }
}

/// Every program lifeboat knows how to ask for.
pub const TOOLS: &[Tool] = &[
    t("lsblk", "util-linux", "util-linux", "util-linux"),
    t("blkid", "util-linux", "util-linux", "util-linux"),
    t("findmnt", "util-linux", "util-linux", "util-linux"),
    t("sfdisk", "fdisk", "util-linux", "util-linux"),
    t("losetup", "mount", "util-linux", "util-linux"),
    t("partx", "util-linux", "util-linux", "util-linux"),
    t("wipefs", "util-linux", "util-linux", "util-linux"),
    t("mkswap", "util-linux", "util-linux", "util-linux"),
    t("blkdiscard", "util-linux", "util-linux", "util-linux"),
    t("ntfsclone", "ntfs-3g", "ntfsprogs", "ntfsprogs"),
    t("swapon", "mount", "util-linux", "util-linux"),
    t("dumpe2fs", "e2fsprogs", "e2fsprogs", "e2fsprogs"),
    t("mkfs.ext4", "e2fsprogs", "e2fsprogs", "e2fsprogs"),
    t("tune2fs", "e2fsprogs", "e2fsprogs", "e2fsprogs"),
    t("xfs_info", "xfsprogs", "xfsprogs", "xfsprogs"),
    t("xfs_db", "xfsprogs", "xfsprogs", "xfsprogs"),
    t("mkfs.xfs", "xfsprogs", "xfsprogs", "xfsprogs"),
    t("btrfs", "btrfs-progs", "btrfs-progs", "btrfsprogs"),
    t("mkfs.btrfs", "btrfs-progs", "btrfs-progs", "btrfsprogs"),
    t("mkfs.vfat", "dosfstools", "dosfstools", "dosfstools"),
    t("fsck.vfat", "dosfstools", "dosfstools", "dosfstools"),
    t("mdadm", "mdadm", "mdadm", "mdadm"),
    t("lvm", "lvm2", "lvm2", "lvm2"),
    t("pvs", "lvm2", "lvm2", "lvm2"),
    t("thin_check", "thin-provisioning-tools", "device-mapper-persistent-data", "thin-provisioning-tools"),
    t("cryptsetup", "cryptsetup-bin", "cryptsetup", "cryptsetup"),
    t("dmsetup", "dmsetup", "device-mapper", "device-mapper"),
    t("efibootmgr", "efibootmgr", "efibootmgr", "efibootmgr"),
    t("grub-install", "grub2-common", "grub2-tools", "grub2"),
    t("grub-mkimage", "grub-common", "grub2-tools", "grub2"),
    t("grub-mkrescue", "grub-common", "grub2-tools-extra", "grub2"),
    t("xorriso", "xorriso", "xorriso", "xorriso"),
    t("mformat", "mtools", "mtools", "mtools"),
    t("mcopy", "mtools", "mtools", "mtools"),
    t("ip", "iproute2", "iproute", "iproute2"),
    t("modprobe", "kmod", "kmod", "kmod"),
    t("depmod", "kmod", "kmod", "kmod"),
    t("busybox", "busybox-static", "busybox", "busybox-static"),
    t("zstd", "zstd", "zstd", "zstd"),
    t("tar", "tar", "tar", "tar"),
    t("gzip", "gzip", "gzip", "gzip"),
    t("cpio", "cpio", "cpio", "cpio"),
    t("getfacl", "acl", "acl", "acl"),
    t("setfacl", "acl", "acl", "acl"),
    t("getfattr", "attr", "attr", "attr"),
    t("setfattr", "attr", "attr", "attr"),
    t("setcap", "libcap2-bin", "libcap", "libcap-progs"),
    t("qemu-system-x86_64", "qemu-system-x86", "qemu-system-x86", "qemu-x86"),
    t("qemu-img", "qemu-utils", "qemu-img", "qemu-tools"),
    t("sestatus", "policycoreutils", "policycoreutils", "policycoreutils"),
    t("aa-status", "apparmor", "apparmor-utils", "apparmor-parser"),
];

/// Look up the tool entry for `program`.
pub fn tool(program: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.program == program)
}

/// "install it with: apt-get install X (Debian/Ubuntu), dnf install Y (Fedora/RHEL), zypper install Z (SUSE)".
pub fn package_hint(program: &str) -> String {
    match tool(program) {
        Some(t) => format!(
            "install it with: apt-get install {} (Debian/Ubuntu), dnf install {} (Fedora/RHEL), zypper install {} (SUSE)",
            t.debian, t.fedora, t.suse
        ),
        None => format!("install the package that provides `{program}`"),
    }
}
