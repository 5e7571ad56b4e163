//! Parsers for mounts, fstab, crypttab, swaps, network and EFI boot entries.

use crate::model::{Address, CrypttabEntry, EfiEntry, FstabEntry, Interface, Mount, Route};
use serde_json::Value;

/// Undo the octal escapes (`\040` for a space) of fstab and mountinfo.
pub use lifeboat_host::unescape;

/// The layout's record of a mount the host shows.
pub fn mount_of(e: lifeboat_host::MountEntry) -> Mount {
    Mount { root: e.root, target: e.mount_point, options: e.options, fstype: e.fstype, source: e.source }
}

/// Parse `/proc/self/mountinfo` (with [`lifeboat_host::mountinfo::parse`]).
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    lifeboat_host::mountinfo::parse(text).into_iter().map(mount_of).collect()
}

/// Filesystem types that live on no block device and are never recovered.
pub fn is_pseudo_fs(fstype: &str) -> bool {
    matches!(
        fstype,
        "proc"
            | "sysfs"
            | "devtmpfs"
            | "devpts"
            | "tmpfs"
            | "cgroup"
            | "cgroup2"
            | "pstore"
            | "bpf"
            | "securityfs"
            | "debugfs"
            | "tracefs"
            | "configfs"
            | "fusectl"
            | "mqueue"
            | "hugetlbfs"
            | "autofs"
            | "binfmt_misc"
            | "efivarfs"
            | "rpc_pipefs"
            | "nsfs"
            | "ramfs"
            | "overlay"
            | "squashfs"
            | "selinuxfs"
            | "fuse.lxcfs"
            | "fuse.portal"
            | "fuse.gvfsd-fuse"
    )
}

/// Parse `/etc/fstab`.
pub fn parse_fstab(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3).then(|| FstabEntry {
                spec: unescape(f[0]),
                file: unescape(f[1]),
                vfstype: f[2].to_string(),
                options: f.get(3).unwrap_or(&"defaults").to_string(),
                freq: f.get(4).and_then(|v| v.parse().ok()).unwrap_or(0),
                passno: f.get(5).and_then(|v| v.parse().ok()).unwrap_or(0),
            })
        })
        .collect()
}

/// Parse `/etc/crypttab`.
pub fn parse_crypttab(text: &str) -> Vec<CrypttabEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 2).then(|| CrypttabEntry {
                name: f[0].to_string(),
                device: f[1].to_string(),
                keyfile: f.get(2).map(|s| s.to_string()),
                options: f.get(3).map(|s| s.to_string()),
            })
        })
        .collect()
}

/// One line of `/proc/swaps`: path, is it a file, size in bytes.
pub fn parse_proc_swaps(text: &str) -> Vec<(String, bool, u64)> {
    lifeboat_host::parse_swaps(text).into_iter().map(|s| (s.path, s.is_file, s.size)).collect()
}

/// Interfaces from `ip -json addr show` (loopback left out).
pub fn parse_ip_addr(text: &str) -> Result<Vec<Interface>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("ip printed invalid JSON: {e}"))?;
    let mut out = Vec::new();
    for i in v.as_array().into_iter().flatten() {
        let link_type = i.get("link_type").and_then(Value::as_str).unwrap_or("").to_string();
        if link_type == "loopback" {
            continue;
        }
        let addresses = i
            .get("addr_info")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| {
                Some(Address {
                    family: a.get("family")?.as_str()?.to_string(),
                    address: a.get("local")?.as_str()?.to_string(),
                    prefix: a.get("prefixlen")?.as_u64()? as u32,
                    dynamic: a.get("dynamic").and_then(Value::as_bool).unwrap_or(false),
                })
            })
            .collect();
        out.push(Interface {
            name: i.get("ifname").and_then(Value::as_str).unwrap_or("").to_string(),
            mac: i.get("address").and_then(Value::as_str).map(String::from),
            mtu: i.get("mtu").and_then(Value::as_u64).unwrap_or(0) as u32,
            state: i.get("operstate").and_then(Value::as_str).unwrap_or("").to_string(),
            link_type,
            addresses,
        });
    }
    Ok(out)
}

/// Routes from `ip -json route show`.
pub fn parse_ip_route(text: &str) -> Result<Vec<Route>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("ip printed invalid JSON: {e}"))?;
    let get = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).map(String::from);
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .map(|r| Route {
            destination: get(r, "dst").unwrap_or_else(|| "default".into()),
            gateway: get(r, "gateway"),
            dev: get(r, "dev"),
            protocol: get(r, "protocol"),
        })
        .collect())
}

/// Name servers and search domains from resolv.conf.
pub fn parse_resolv_conf(text: &str) -> (Vec<String>, Vec<String>) {
    let mut ns = Vec::new();
    let mut search = Vec::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("nameserver") => ns.extend(f.next().map(String::from)),
            Some("search") | Some("domain") => search.extend(f.map(String::from)),
            _ => {}
        }
    }
    (ns, search)
}

/// Boot order and entries from `efibootmgr` (or `efibootmgr -v`).
pub fn parse_efibootmgr(text: &str) -> (Option<String>, Vec<EfiEntry>) {
    let mut order = None;
    let mut entries = Vec::new();
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("BootOrder:") {
            order = Some(v.trim().to_string());
        } else if l.starts_with("Boot") && l.len() > 8 && l[4..8].chars().all(|c| c.is_ascii_hexdigit()) {
            let number = l[..8].to_string();
            let rest = &l[8..];
            let active = rest.starts_with('*');
            let rest = rest.trim_start_matches('*').trim_start();
            let (label, path) = rest.split_once('\t').unwrap_or((rest, ""));
            entries.push(EfiEntry { number, label: label.trim().to_string(), path: path.trim().to_string(), active });
        }
    }
    (order, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_with_escaped_space_and_btrfs_subvolume() {
        let t = "29 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                 40 29 7:0 /@home /home\\040dir rw - btrfs /dev/loop0 rw,subvol=/@home\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].target, "/home dir");
        assert_eq!(m[1].root, "/@home");
        assert_eq!(m[1].fstype, "btrfs");
    }

    #[test]
    fn fstab_and_crypttab() {
        let f = parse_fstab("# c\nUUID=abc / ext4 errors=remount-ro 0 1\n/dev/sr0 /media/cd udf,iso9660 user,noauto\n");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].passno, 1);
        assert_eq!(f[1].freq, 0);
        let c = parse_crypttab("cryptroot UUID=1234 none luks,discard\n");
        assert_eq!(c[0].keyfile.as_deref(), Some("none"));
    }

    #[test]
    fn efibootmgr_entries() {
        let t = "BootCurrent: 0001\nBootOrder: 0001,0000\nBoot0000* UiApp\tFvVol(7cb8bdc9)\nBoot0001* debian\tHD(1,GPT,2b1f,0x800,0x100000)/File(\\EFI\\debian\\shimx64.efi)\n";
        let (order, e) = parse_efibootmgr(t);
        assert_eq!(order.as_deref(), Some("0001,0000"));
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].label, "debian");
        assert!(e[1].path.contains("shimx64.efi"));
    }
}
