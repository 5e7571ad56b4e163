//! A clone's own identity: the host name, addresses, machine-id, SSH host
//! keys and (optionally) storage UUIDs that make a copy of a machine a
//! machine of its own, so that it can sit next to the original on the
//! network and on a shared SAN.
//!
//! The clone file ([`CloneFile`], TOML, see docs/cloning.md) says what the
//! clone is; the plan resolves it against the source's layout into an
//! [`Identity`] (which interface is meant, which UUIDs are renewed); and
//! [`apply`] rewrites the restored tree below a root directory. Everything
//! here works on plain files below that root, so it is tested on temporary
//! trees without root; only the SSH host keys need a command, which the
//! executor runs. The rewrites of one kind of file each live in
//! [`names`] (hosts, mailname), [`network`] (ifupdown, networkd,
//! NetworkManager, resolv.conf) and [`uuids`] (fstab, crypttab, GRUB);
//! [`tree`] reaches the files without following a link.

mod names;
mod network;
mod tree;
mod uuids;

pub use names::{readdress_hosts, rewrite_hosts, rewrite_mailname, rewrite_mdadm_homehost};
pub use network::{ifupdown_stanza, rewrite_ifupdown, rewrite_networkd, rewrite_nmconnection, rewrite_resolv_conf};
pub use uuids::replace_uuids;

#[cfg(test)]
use network::glob;
use rustix::fs::AtFlags;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use tree::Tree;
use uuids::{renewed, replace_mac};

/// Why a clone file cannot be used, or the restored tree cannot be changed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The clone file cannot be read.
    #[error("cannot read the clone file {}: {}", .0.display(), .1)]
    Read(PathBuf, std::io::Error),
    /// The clone file is not valid.
    #[error("clone file {}: {}; see docs/cloning.md for the format", .0.display(), .1)]
    Invalid(PathBuf, String),
    /// An interface of the clone file names no interface of the source or of this machine.
    #[error("clone file: interface `{wanted}` matches none of the source's interfaces ({known}); match by name:NAME, order:N or mac:MAC")]
    NoInterface {
        /// The `match` value.
        wanted: String,
        /// The source's interfaces, as `name mac`.
        known: String,
    },
    /// A file of the restored system cannot be read or written.
    #[error("{}: {}", .0.display(), .1)]
    Io(PathBuf, std::io::Error),
}

/// The clone file as written by the administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneFile {
    /// The clone's host name (one label, `web2`).
    pub hostname: String,
    /// Its DNS domain (`example.net`), making the FQDN `web2.example.net`.
    #[serde(default)]
    pub domain: Option<String>,
    /// The addresses of its interfaces.
    #[serde(default, rename = "interface")]
    pub interfaces: Vec<InterfaceFile>,
    /// Give filesystems, swap, partitions, LUKS, md and LVM PVs new UUIDs.
    #[serde(default)]
    pub new_uuids: bool,
}

/// One `[[interface]]` of the clone file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceFile {
    /// `mac:52:54:00:12:34:56`, `name:eth0` or `order:1` (the source's first interface).
    #[serde(rename = "match")]
    pub matches: String,
    /// A static address with its prefix (`192.0.2.12/24`, `2001:db8::12/64`).
    #[serde(default)]
    pub address: Option<String>,
    /// Take the address from DHCP instead.
    #[serde(default)]
    pub dhcp: bool,
    /// The default gateway.
    #[serde(default)]
    pub gateway: Option<String>,
    /// DNS servers.
    #[serde(default)]
    pub dns: Vec<String>,
}

/// How an interface of the clone file names an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// By hardware address (the source's, or a NIC of the machine being recovered).
    Mac(String),
    /// By the interface name in the source's configuration.
    Name(String),
    /// The n-th interface of the source's layout, from 1.
    Order(usize),
}

impl Match {
    /// Parse `mac:…`, `name:…` or `order:N`.
    pub fn parse(s: &str) -> Result<Match, String> {
        let bad = || format!("interface match `{s}` is not mac:MAC, name:NAME or order:N");
        let (kind, v) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "mac" if is_mac(v) => Ok(Match::Mac(v.to_ascii_lowercase())),
            "name" if !v.is_empty() && !v.contains(['/', ' ']) => Ok(Match::Name(v.to_string())),
            "order" => v.parse().ok().filter(|n| *n >= 1).map(Match::Order).ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// One DNS label: letters, digits and inner hyphens, 1 to 63 characters.
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `192.0.2.12/24`: an address and a prefix length that fits it.
fn is_cidr(s: &str) -> bool {
    let Some((a, p)) = s.split_once('/') else { return false };
    match (a.parse::<IpAddr>(), p.parse::<u8>()) {
        (Ok(IpAddr::V4(_)), Ok(p)) => p <= 32,
        (Ok(IpAddr::V6(_)), Ok(p)) => p <= 128,
        _ => false,
    }
}

impl CloneFile {
    /// Read and check a clone file.
    pub fn load(path: &Path) -> Result<CloneFile, IdentityError> {
        let text = std::fs::read_to_string(path).map_err(|e| IdentityError::Read(path.to_path_buf(), e))?;
        CloneFile::parse(&text).map_err(|e| IdentityError::Invalid(path.to_path_buf(), e))
    }

    /// Parse and check the text of a clone file.
    pub fn parse(text: &str) -> Result<CloneFile, String> {
        let c: CloneFile = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
        if !is_label(&c.hostname) {
            return Err(format!("hostname `{}` is not one DNS label (letters, digits, inner hyphens)", c.hostname));
        }
        if let Some(d) = &c.domain {
            if d.split('.').any(|l| !is_label(l)) {
                return Err(format!("domain `{d}` is not a DNS domain"));
            }
        }
        for i in &c.interfaces {
            Match::parse(&i.matches)?;
            match (&i.address, i.dhcp) {
                (Some(_), true) => return Err(format!("interface {}: address and dhcp = true both given", i.matches)),
                (None, false) => return Err(format!("interface {}: give address = \"A/P\" or dhcp = true", i.matches)),
                (Some(a), false) if !is_cidr(a) => {
                    return Err(format!("interface {}: address `{a}` is not ADDRESS/PREFIX", i.matches))
                }
                _ => {}
            }
            for ip in i.gateway.iter().chain(&i.dns) {
                if ip.parse::<IpAddr>().is_err() {
                    return Err(format!("interface {}: `{ip}` is not an IP address", i.matches));
                }
            }
        }
        Ok(c)
    }
}

/// What an interface of the clone gets, resolved to the source's interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Addressing {
    /// The interface name in the source's configuration.
    pub name: String,
    /// The source's hardware address of it, when known (configuration may match by it).
    pub old_mac: Option<String>,
    /// The clone's hardware address, when the clone file gave another one.
    pub new_mac: Option<String>,
    /// DHCP instead of a static address.
    pub dhcp: bool,
    /// The static address with its prefix.
    pub address: Option<String>,
    /// The default gateway.
    pub gateway: Option<String>,
    /// DNS servers.
    pub dns: Vec<String>,
    /// The source's addresses on it (without prefix), as the layout recorded them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub old_addresses: Vec<String>,
}

impl Addressing {
    /// `eth0: 192.0.2.12/24 via 192.0.2.1, DNS 192.0.2.53`.
    pub fn summary(&self) -> String {
        let mut s = self.name.clone();
        if let Some(m) = &self.new_mac {
            s.push_str(&format!(" (now {m})"));
        }
        s.push_str(": ");
        s.push_str(if self.dhcp { "DHCP" } else { self.address.as_deref().unwrap_or("") });
        if let Some(g) = &self.gateway {
            s.push_str(&format!(" via {g}"));
        }
        if !self.dns.is_empty() {
            s.push_str(&format!(", DNS {}", self.dns.join(" ")));
        }
        s
    }

    /// Whether the old default gateway goes: the clone gives its own, or DHCP does.
    fn replaces_gateway(&self) -> bool {
        self.dhcp || self.gateway.is_some()
    }

    /// Whether the old DNS servers go: the clone gives its own, or DHCP does.
    fn replaces_dns(&self) -> bool {
        self.dhcp || !self.dns.is_empty()
    }

    fn is_v6(&self) -> bool {
        self.address.as_deref().is_some_and(|a| a.contains(':'))
    }
}

/// A clone's identity as the plan carries it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The source's host name (the layout's), replaced where the restored tree names it.
    pub source_hostname: String,
    /// The clone's host name.
    pub hostname: String,
    /// The clone's domain.
    pub domain: Option<String>,
    /// Its interfaces.
    pub interfaces: Vec<Addressing>,
    /// Whether storage identities are renewed.
    pub new_uuids: bool,
    /// Old identity → new one (filesystem, swap, partition, LUKS, md and PV UUIDs).
    pub uuids: BTreeMap<String, String>,
}

impl Identity {
    /// Resolve a clone file against the source's interfaces (`name`, MAC, in the layout's order)
    /// and, for a MAC the source never had, this machine's (`name`, MAC).
    pub fn resolve(
        c: &CloneFile,
        source_hostname: &str,
        source: &[(String, Option<String>)],
        here: &[(String, String)],
    ) -> Result<Identity, IdentityError> {
        let known = || {
            let v: Vec<String> =
                source.iter().map(|(n, m)| format!("{n} {}", m.as_deref().unwrap_or("(no MAC)"))).collect();
            if v.is_empty() {
                "the layout records none".into()
            } else {
                v.join(", ")
            }
        };
        let mut interfaces = Vec::new();
        for i in &c.interfaces {
            let m = Match::parse(&i.matches).map_err(|e| IdentityError::Invalid(PathBuf::from("(clone file)"), e))?;
            let mac_of = |name: &str| source.iter().find(|(n, _)| n == name).and_then(|(_, m)| m.clone());
            let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
            let (name, new_mac) = match &m {
                Match::Name(n) => (Some(n.clone()), None),
                Match::Order(k) => (source.get(k - 1).map(|(n, _)| n.clone()), None),
                Match::Mac(mac) => match source.iter().find(|(_, m)| m.as_deref().is_some_and(|m| same(m, mac))) {
                    Some((n, _)) => (Some(n.clone()), None),
                    None => (here.iter().find(|(_, m)| same(m, mac)).map(|(n, _)| n.clone()), Some(mac.clone())),
                },
            };
            let Some(name) = name else {
                return Err(IdentityError::NoInterface { wanted: i.matches.clone(), known: known() });
            };
            let old_mac = mac_of(&name).map(|m| m.to_ascii_lowercase());
            let new_mac = new_mac.filter(|n| old_mac.as_deref() != Some(n.as_str()));
            interfaces.push(Addressing {
                name,
                old_mac,
                new_mac,
                dhcp: i.dhcp,
                address: i.address.clone(),
                gateway: i.gateway.clone(),
                dns: i.dns.clone(),
                old_addresses: Vec::new(),
            });
        }
        Ok(Identity {
            source_hostname: source_hostname.to_string(),
            hostname: c.hostname.clone(),
            domain: c.domain.clone(),
            interfaces,
            new_uuids: c.new_uuids,
            uuids: BTreeMap::new(),
        })
    }

    /// The source's addresses → the clone's, for the interfaces that get a
    /// static address (an old address of the same family, IPv4 or IPv6).
    pub fn readdressed(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for a in &self.interfaces {
            let Some(new) = a.address.as_deref().and_then(|x| x.split('/').next()) else { continue };
            for o in a.old_addresses.iter().filter(|o| o.contains(':') == new.contains(':')) {
                m.insert(o.clone(), new.to_string());
            }
        }
        m
    }

    /// The clone's fully qualified name, when it has a domain.
    pub fn fqdn(&self) -> Option<String> {
        self.domain.as_ref().map(|d| format!("{}.{d}", self.hostname))
    }

    /// A new identity in the spelling of `old` (UUID, FAT volume id, mdadm's
    /// colon form, LVM's alphanumeric one, `0x` DOS disk id), derived from
    /// the clone's name and `old`: a rerun of the same clone plans the same
    /// identities (and finds what it made), while clones with other names get other ones.
    pub fn renew(&self, old: &str) -> String {
        renewed(&format!("{}\0{}", self.fqdn().unwrap_or_else(|| self.hostname.clone()), old), old)
    }
}

/// Files of the restored system that name storage identities, relative to its root.
const UUID_NAMING_FILES: &[&str] = &[
    "etc/fstab",
    "etc/crypttab",
    "boot/grub/grub.cfg",
    "boot/grub2/grub.cfg",
    "etc/default/grub",
    "etc/kernel/cmdline",
    "etc/mdadm/mdadm.conf",
    "etc/mdadm.conf",
    "etc/initramfs-tools/conf.d/resume",
];

/// Directories whose files name storage identities too (the ESP's GRUB stubs, boot loader entries).
const UUID_NAMING_DIRS: &[&str] =
    &["boot/loader/entries", "boot/efi/EFI", "boot/efi/loader/entries", "efi/loader/entries"];

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The files changed, relative to the root.
    pub changed: Vec<String>,
    /// What the administrator should look at.
    pub warnings: Vec<String>,
    /// SSH host keys were there (and were removed): new ones must be made.
    pub ssh_keys_removed: bool,
}

/// Give the restored tree below `root` the clone's identity: host name,
/// /etc/hosts, /etc/mailname, `machine_id` (32 hex digits), the network
/// configuration of ifupdown, systemd-networkd and NetworkManager,
/// /etc/resolv.conf, the renewed UUIDs in fstab, crypttab and the boot
/// configuration; the SSH host keys are removed (the caller makes new ones).
/// Nothing is read, written or removed through a symbolic link of the tree
/// (the `tree` module): a file that is a link is replaced by a regular one when
/// it is written, and a file below a directory that is a link is left alone,
/// with a warning naming it.
pub fn apply(root: &Path, id: &Identity, machine_id: &str) -> Result<Applied, IdentityError> {
    let mut t = Tree::open(root)?;
    let fqdn = id.fqdn();
    // The name the restored system had: its /etc/hostname, else the layout's.
    let old_hostname = t.read("etc/hostname");
    let old = old_hostname
        .as_deref()
        .and_then(|h| h.lines().next())
        .map(|h| h.trim().split('.').next().unwrap_or("").to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| id.source_hostname.split('.').next().unwrap_or("").to_string());
    if t.dir_or_link("etc") {
        t.write("etc/hostname", old_hostname.as_deref(), &format!("{}\n", id.hostname))?;
    }
    if let Some(h) = t.read("etc/hosts") {
        let named = rewrite_hosts(&h, &old, &id.hostname, fqdn.as_deref());
        t.write("etc/hosts", Some(&h), &readdress_hosts(&named, &id.readdressed()))?;
    }
    if let Some(m) = t.read("etc/mailname") {
        t.write("etc/mailname", Some(&m), &rewrite_mailname(&m, &old, &id.hostname, fqdn.as_deref()))?;
    }
    // An empty machine-id means "make one at first boot": leave it so.
    if let Some(m) = t.read("etc/machine-id").filter(|m| !m.trim().is_empty() && m.trim() != "uninitialized") {
        t.write("etc/machine-id", Some(&m), &format!("{machine_id}\n"))?;
    }
    if let Some(m) = t.read("var/lib/dbus/machine-id") {
        t.write("var/lib/dbus/machine-id", Some(&m), &format!("{machine_id}\n"))?;
    }
    for f in ["etc/mdadm/mdadm.conf", "etc/mdadm.conf"] {
        if let Some(text) = t.read(f) {
            t.write(f, Some(&text), &rewrite_mdadm_homehost(&text, &old, &id.hostname))?;
        }
    }
    ssh_keys(&mut t)?;
    network(&mut t, id)?;
    if !id.uuids.is_empty() {
        let mut files: Vec<String> = UUID_NAMING_FILES.iter().map(|f| f.to_string()).collect();
        for d in UUID_NAMING_DIRS {
            files.extend(t.files(d, "", true).into_iter().filter(|f| f.ends_with(".cfg") || f.ends_with(".conf")));
        }
        for f in files {
            if let Some(text) = t.read(&f) {
                t.write(&f, Some(&text), &replace_uuids(&text, &id.uuids))?;
            }
        }
    }
    Ok(t.finish())
}

/// Remove the source's SSH host keys (private and public), of etc/ssh itself
/// (a link there, into the rescue system say, is not followed).
fn ssh_keys(t: &mut Tree<'_>) -> Result<(), IdentityError> {
    let Ok((dir, entries)) = t.entries("etc/ssh", "etc/ssh/ssh_host_*") else { return Ok(()) };
    let mut names: Vec<String> = entries.into_iter().map(|(n, _)| n).filter(|n| n.starts_with("ssh_host_")).collect();
    names.sort();
    for name in names {
        let rel = format!("etc/ssh/{name}");
        rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty())
            .map_err(|e| IdentityError::Io(t.path(&rel), e.into()))?;
        t.done.changed.push(rel);
        t.done.ssh_keys_removed = true;
    }
    Ok(())
}

/// The interfaces' configuration in each network system the tree has, and resolv.conf.
fn network(t: &mut Tree<'_>, id: &Identity) -> Result<(), IdentityError> {
    let mut ifupdown = vec!["etc/network/interfaces".to_string()];
    ifupdown.extend(t.files("etc/network/interfaces.d", "", false));
    let networkd = t.files("etc/systemd/network", ".network", false);
    let nm = t.files("etc/NetworkManager/system-connections", ".nmconnection", false);
    // Files that may pin the old hardware address of an interface whose MAC changes.
    let mut pinning = t.files("etc/systemd/network", ".link", false);
    pinning.push("etc/udev/rules.d/70-persistent-net.rules".into());
    for a in &id.interfaces {
        let mut configured = 0;
        for (files, rewrite) in [
            (&ifupdown, rewrite_ifupdown as fn(&str, &Addressing) -> Option<String>),
            (&networkd, rewrite_networkd),
            (&nm, rewrite_nmconnection),
        ] {
            for f in files {
                let Some(text) = t.read(f) else { continue };
                if let Some(new) = rewrite(&text, a) {
                    configured += 1;
                    let new = match (&a.old_mac, &a.new_mac) {
                        (Some(o), Some(n)) => replace_mac(&new, o, n),
                        _ => new,
                    };
                    t.write(f, Some(&text), &new)?;
                }
            }
        }
        if let (Some(o), Some(n)) = (&a.old_mac, &a.new_mac) {
            for f in &pinning {
                if let Some(text) = t.read(f) {
                    t.write(f, Some(&text), &replace_mac(&text, o, n))?;
                }
            }
        }
        if configured == 0 {
            match t.read("etc/network/interfaces") {
                Some(text) => {
                    let mut new = text.clone();
                    if !new.is_empty() && !new.ends_with('\n') {
                        new.push('\n');
                    }
                    new.push_str(&ifupdown_stanza(a));
                    t.write("etc/network/interfaces", Some(&text), &new)?;
                }
                None => t.done.warnings.push(format!(
                    "clone: no ifupdown, systemd-networkd or NetworkManager configuration of {} was found; configure {} by hand",
                    a.name,
                    a.summary()
                )),
            }
        }
    }
    if !t.files("etc/netplan", ".yaml", false).is_empty() && !id.interfaces.is_empty() {
        t.done.warnings.push(
            "clone: /etc/netplan is not rewritten (netplan regenerates networkd/NetworkManager files at boot): set the clone's addresses there".into(),
        );
    }
    let dns: Vec<String> = id.interfaces.iter().filter(|a| !a.dhcp).flat_map(|a| a.dns.iter().cloned()).collect();
    if !dns.is_empty() {
        // A link (systemd-resolved's stub) follows the network configuration by itself.
        if let Some(text) = t.read("etc/resolv.conf") {
            t.write("etc/resolv.conf", Some(&text), &rewrite_resolv_conf(&text, &dns))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
