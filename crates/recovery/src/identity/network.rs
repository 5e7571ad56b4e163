//! The network configuration of ifupdown, systemd-networkd and
//! NetworkManager, and resolv.conf, set to a clone's addressing.

use super::Addressing;

/// Keys of the ifupdown stanza that carry the address, dropped before the new ones are written
/// (`gateway` and `dns-nameservers` too when the clone gives its own, or DHCP).
const IFUPDOWN_ADDRESSING: &[&str] = &["address", "netmask", "broadcast", "network", "pointopoint"];

/// An ifupdown file with the `iface NAME inet…` stanza of the interface's
/// address family set to the clone's addressing; None when the file has no
/// such stanza.
pub fn rewrite_ifupdown(text: &str, a: &Addressing) -> Option<String> {
    let family = if a.is_v6() { "inet6" } else { "inet" };
    let mut out = String::new();
    let mut inside = false;
    let mut found = false;
    for line in text.split_inclusive('\n') {
        let words: Vec<&str> = line.split_whitespace().collect();
        let first = words.first().copied().unwrap_or("");
        let stanza = matches!(first, "iface" | "mapping" | "auto" | "source" | "source-directory" | "rename")
            || first.starts_with("allow-");
        if stanza {
            inside = false;
        }
        if first == "iface" && words.get(1) == Some(&a.name.as_str()) && words.get(2) == Some(&family) {
            inside = true;
            found = true;
            let method = if a.dhcp {
                if a.is_v6() {
                    "auto"
                } else {
                    "dhcp"
                }
            } else {
                "static"
            };
            out.push_str(&format!("iface {} {family} {method}\n", a.name));
            let ind = "    ";
            if let Some(ad) = &a.address {
                out.push_str(&format!("{ind}address {ad}\n"));
            }
            if let Some(g) = &a.gateway {
                out.push_str(&format!("{ind}gateway {g}\n"));
            }
            if !a.dns.is_empty() {
                out.push_str(&format!("{ind}dns-nameservers {}\n", a.dns.join(" ")));
            }
            continue;
        }
        let replaced = IFUPDOWN_ADDRESSING.contains(&first)
            || (first == "gateway" && a.replaces_gateway())
            || (first == "dns-nameservers" && a.replaces_dns());
        if inside && replaced {
            continue;
        }
        out.push_str(line);
    }
    found.then_some(out)
}

/// A stanza for an interface that no file configured, to append to /etc/network/interfaces.
pub fn ifupdown_stanza(a: &Addressing) -> String {
    let family = if a.is_v6() { "inet6" } else { "inet" };
    let stub = format!("\n# added by lifeboat recover --clone\nauto {0}\niface {0} {family} manual\n", a.name);
    rewrite_ifupdown(&stub, a).unwrap_or(stub)
}

/// A shell-style glob (`*`, `?`) as systemd's Name= uses it. Linear in
/// practice, never exponential: consecutive stars are one, and a mismatch
/// backtracks only to the last star (what an earlier star matched need
/// never change), so a pattern of thousands of stars cannot hang recovery.
pub(super) fn glob(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut i, mut j) = (0, 0);
    // After the last star: where the pattern goes on, and where in the name that try began.
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        match p.get(i) {
            Some(b'*') => {
                while p.get(i) == Some(&b'*') {
                    i += 1;
                }
                star = Some((i, j));
            }
            Some(c) if *c == b'?' || *c == n[j] => {
                i += 1;
                j += 1;
            }
            _ => match star {
                // The star takes one more byte of the name.
                Some((si, sj)) => {
                    star = Some((si, sj + 1));
                    (i, j) = (si, sj + 1);
                }
                None => return false,
            },
        }
    }
    p[i..].iter().all(|c| *c == b'*')
}

/// An INI file as sections of lines; the lines before the first header are section "".
fn sections(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            out.push((t[1..t.len() - 1].to_string(), vec![line.to_string()]));
        } else if let Some(last) = out.last_mut() {
            last.1.push(line.to_string());
        }
    }
    out
}

fn key_of(line: &str) -> Option<(&str, &str)> {
    let t = line.trim();
    if t.starts_with('#') || t.starts_with(';') {
        return None;
    }
    t.split_once('=').map(|(k, v)| (k.trim(), v.trim()))
}

fn join_sections(s: &[(String, Vec<String>)]) -> String {
    let mut out = String::new();
    for (_, lines) in s {
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// A systemd-networkd `.network` file set to the clone's addressing when its
/// `[Match]` names the interface (Name= glob, or MACAddress= the old MAC); None otherwise.
pub fn rewrite_networkd(text: &str, a: &Addressing) -> Option<String> {
    let mut s = sections(text);
    let matches =
        s.iter().filter(|(n, _)| n == "Match").flat_map(|(_, l)| l).filter_map(|l| key_of(l)).any(|(k, v)| match k {
            "Name" => v.split_whitespace().any(|p| glob(p, &a.name)),
            "MACAddress" | "PermanentMACAddress" => {
                a.old_mac.as_deref().is_some_and(|m| v.split_whitespace().any(|x| x.eq_ignore_ascii_case(m)))
            }
            _ => false,
        });
    if !matches {
        return None;
    }
    // The old addresses and (when the clone gives its own) default routes go; other routes stay.
    s.retain(|(n, lines)| match n.as_str() {
        "Address" => false,
        "Route" => !(a.replaces_gateway() && lines.iter().filter_map(|l| key_of(l)).any(|(k, _)| k == "Gateway")),
        _ => true,
    });
    let mut new: Vec<String> = Vec::new();
    if a.dhcp {
        new.push(format!("DHCP={}", if a.is_v6() { "ipv6" } else { "yes" }));
    }
    new.extend(a.address.iter().map(|x| format!("Address={x}")));
    new.extend(a.gateway.iter().map(|x| format!("Gateway={x}")));
    new.extend(a.dns.iter().map(|x| format!("DNS={x}")));
    match s.iter_mut().find(|(n, _)| n == "Network") {
        Some((_, lines)) => {
            let dropped = |k: &str| {
                matches!(k, "Address" | "DHCP")
                    || (k == "Gateway" && a.replaces_gateway())
                    || (k == "DNS" && a.replaces_dns())
            };
            lines.retain(|l| !key_of(l).is_some_and(|(k, _)| dropped(k)));
            // After the header and the keys that stay, before a trailing blank line.
            let at = lines.iter().rposition(|l| !l.trim().is_empty()).map_or(lines.len(), |p| p + 1);
            lines.splice(at..at, new);
        }
        None => {
            let mut lines = vec![String::new(), "[Network]".to_string()];
            lines.extend(new);
            s.push(("Network".into(), lines));
        }
    }
    Some(join_sections(&s))
}

/// A NetworkManager keyfile set to the clone's addressing when it is the
/// interface's connection (`interface-name=`, or `mac-address=` the old MAC); None otherwise.
pub fn rewrite_nmconnection(text: &str, a: &Addressing) -> Option<String> {
    let mut s = sections(text);
    let keys = |sec: &str| -> Vec<(String, String)> {
        s.iter()
            .filter(|(n, _)| n == sec)
            .flat_map(|(_, l)| l)
            .filter_map(|l| key_of(l))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let by_name = keys("connection").iter().any(|(k, v)| k == "interface-name" && v == &a.name);
    let by_mac = ["ethernet", "802-3-ethernet"].iter().flat_map(|sec| keys(sec)).any(|(k, v)| {
        k == "mac-address" && a.old_mac.as_deref().is_some_and(|m| v.trim_end_matches(';').eq_ignore_ascii_case(m))
    });
    if !by_name && !by_mac {
        return None;
    }
    let sec = if a.is_v6() { "ipv6" } else { "ipv4" };
    // The old gateway stays when the clone gives none: a `gateway=` key, or after the first address.
    let old = keys(sec);
    let old_gateway = old.iter().find(|(k, _)| k == "gateway").map(|(_, v)| v.clone()).or_else(|| {
        old.iter()
            .find(|(k, _)| k == "address1" || k == "addresses1")
            .and_then(|(_, v)| v.split([',', ';']).nth(1).map(str::trim).filter(|g| !g.is_empty()).map(String::from))
    });
    let gateway = if a.replaces_gateway() { a.gateway.clone() } else { old_gateway };
    let mut new = vec![format!("method={}", if a.dhcp { "auto" } else { "manual" })];
    if let Some(ad) = &a.address {
        new.push(match &gateway {
            Some(g) => format!("address1={ad},{g}"),
            None => format!("address1={ad}"),
        });
    }
    if !a.dns.is_empty() {
        new.push(format!("dns={};", a.dns.join(";")));
    }
    let dropped = |k: &str| {
        k == "method"
            || k == "gateway"
            || (k == "dns" && a.replaces_dns())
            || k.strip_prefix("address").is_some_and(|r| r.chars().all(|c| c.is_ascii_digit()))
            || k.strip_prefix("addresses").is_some_and(|r| r.chars().all(|c| c.is_ascii_digit()))
    };
    match s.iter_mut().find(|(n, _)| n == sec) {
        Some((_, lines)) => {
            lines.retain(|l| !key_of(l).is_some_and(|(k, _)| dropped(k)));
            let at = lines.iter().rposition(|l| !l.trim().is_empty()).map_or(lines.len(), |p| p + 1);
            lines.splice(at..at, new);
        }
        None => {
            let mut lines = vec![String::new(), format!("[{sec}]")];
            lines.extend(new);
            s.push((sec.to_string(), lines));
        }
    }
    Some(join_sections(&s))
}

/// `/etc/resolv.conf` with its `nameserver` lines replaced by `dns` (where the first one was).
pub fn rewrite_resolv_conf(text: &str, dns: &[String]) -> String {
    let mut out = String::new();
    let mut written = false;
    let new: String = dns.iter().map(|d| format!("nameserver {d}\n")).collect();
    for line in text.lines() {
        if line.split_whitespace().next() == Some("nameserver") {
            if !written {
                out.push_str(&new);
                written = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !written {
        out.push_str(&new);
    }
    out
}
