//! The host name where the restored system names it besides /etc/hostname:
//! hosts (and the host's old addresses there), mailname, and the home host
//! of md arrays.

/// `/etc/hosts` with the old host name (and its FQDNs) replaced by the
/// new ones; a `127.0.1.1` line is added when no line names the new host.
pub fn rewrite_hosts(text: &str, old: &str, new: &str, fqdn: Option<&str>) -> String {
    let mut out = String::new();
    let mut named = false;
    for line in text.split_inclusive('\n') {
        let (body, comment) = match line.find('#') {
            Some(p) => line.split_at(p),
            None => (line, ""),
        };
        let mut rebuilt = String::new();
        let mut first = true;
        let mut rest = body;
        while !rest.is_empty() {
            let ws = rest.len() - rest.trim_start().len();
            rebuilt.push_str(&rest[..ws]);
            rest = &rest[ws..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let tok = &rest[..end];
            rest = &rest[end..];
            if tok.is_empty() {
                continue;
            }
            let name = if first {
                tok.to_string()
            } else if tok.eq_ignore_ascii_case(old) {
                new.to_string()
            } else if tok.len() > old.len() + 1
                && tok.as_bytes()[old.len()] == b'.'
                && tok[..old.len()].eq_ignore_ascii_case(old)
            {
                fqdn.map(str::to_string).unwrap_or_else(|| format!("{new}{}", &tok[old.len()..]))
            } else {
                tok.to_string()
            };
            if !first && (name == new || Some(name.as_str()) == fqdn) {
                named = true;
            }
            first = false;
            rebuilt.push_str(&name);
        }
        out.push_str(&rebuilt);
        out.push_str(comment);
    }
    if !named {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        match fqdn {
            Some(f) => out.push_str(&format!("127.0.1.1\t{f} {new}\n")),
            None => out.push_str(&format!("127.0.1.1\t{new}\n")),
        }
    }
    out
}

/// `/etc/mailname`: the clone's FQDN with a domain; otherwise the old host
/// name replaced when the mail name is (or starts with) it; a mail domain
/// that is not the host's stays.
pub fn rewrite_mailname(text: &str, old: &str, new: &str, fqdn: Option<&str>) -> String {
    let cur = text.trim();
    let lower = cur.to_ascii_lowercase();
    let old = old.to_ascii_lowercase();
    let name = if let Some(f) = fqdn {
        f.to_string()
    } else if lower == old {
        new.to_string()
    } else if lower.starts_with(&format!("{old}.")) {
        format!("{new}{}", &cur[old.len()..])
    } else {
        cur.to_string()
    };
    format!("{name}\n")
}

/// `mdadm.conf` with the arrays of the old host (`name=web1:0`, `HOMEHOST web1`) made the new host's.
pub fn rewrite_mdadm_homehost(text: &str, old: &str, new: &str) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first().is_some_and(|w| w.eq_ignore_ascii_case("HOMEHOST")) && words.get(1) == Some(&old) {
            out.push_str(&line.replacen(old, new, 1));
            continue;
        }
        let mut l = line.to_string();
        if words.first() == Some(&"ARRAY") {
            for w in &words {
                if let Some(rest) =
                    w.strip_prefix("name=").and_then(|n| n.strip_prefix(old)).and_then(|r| r.strip_prefix(':'))
                {
                    l = l.replacen(w, &format!("name={new}:{rest}"), 1);
                }
            }
        }
        out.push_str(&l);
    }
    out
}

/// `/etc/hosts` with each line whose address is one of the source's (`old` → new) given the new address.
pub fn readdress_hosts(text: &str, addresses: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let lead = line.len() - line.trim_start().len();
        let first = line[lead..].split(|c: char| c.is_whitespace() || c == '#').next().unwrap_or("");
        match addresses.get(first) {
            Some(new) if !first.is_empty() => {
                out.push_str(&line[..lead]);
                out.push_str(new);
                out.push_str(&line[lead + first.len()..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}
