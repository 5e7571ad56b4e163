//! What changed between two layouts, limited to what matters for recovery.
//!
//! Both layouts are turned into JSON trees with the volatile fields removed
//! (capture time, used space, mount state, dynamic addresses), then walked
//! side by side. Array elements that have an identity (`id`, `device`,
//! `name`, `target`) are matched by it, so a new partition reads as "added",
//! not as a shift of every later one.

use crate::model::Layout;
use serde_json::Value;
use std::fmt;

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// Where, as a path (`disk[/dev/vda].table.partition[/dev/vda2].size`).
    pub path: String,
    /// Old value, absent when added.
    pub old: Option<String>,
    /// New value, absent when removed.
    pub new: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.old, &self.new) {
            (Some(o), Some(n)) => write!(f, "changed {}: {o} -> {n}", self.path),
            (None, Some(n)) => write!(f, "added   {}: {n}", self.path),
            (Some(o), None) => write!(f, "removed {}: {o}", self.path),
            (None, None) => write!(f, "changed {}", self.path),
        }
    }
}

/// Fields that change without changing what recovery must build.
const VOLATILE: &[&str] =
    &["meta", "used", "notes", "note", "active", "kernel_cmdline", "free", "state", "route", "efi_boot_order"];

fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in VOLATILE {
                m.remove(*k);
            }
            // Dynamic (DHCP, SLAAC) addresses change on their own.
            if let Some(Value::Array(a)) = m.get_mut("address") {
                a.retain(|x| x.get("dynamic") != Some(&Value::Bool(true)));
            }
            for (_, x) in m.iter_mut() {
                strip(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

fn key_of(v: &Value) -> Option<String> {
    ["id", "device", "name", "target", "number", "spec", "path"]
        .iter()
        .find_map(|k| v.get(*k).map(|x| x.as_str().map(String::from).unwrap_or_else(|| x.to_string())))
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(_) => key_of(v).unwrap_or_else(|| v.to_string()),
        _ => v.to_string(),
    }
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match y.get(k) {
                    Some(vb) => walk(&p, va, vb, out),
                    None if !va.is_null() => out.push(Change { path: p, old: Some(show(va)), new: None }),
                    None => {}
                }
            }
            for (k, vb) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                out.push(Change { path: p, old: None, new: Some(show(vb)) });
            }
        }
        (Value::Array(x), Value::Array(y)) if x.iter().chain(y).all(|e| key_of(e).is_some()) => {
            for ea in x {
                let k = key_of(ea).unwrap_or_default();
                let p = format!("{path}[{k}]");
                match y.iter().find(|eb| key_of(eb).as_deref() == Some(&k)) {
                    Some(eb) => walk(&p, ea, eb, out),
                    None => out.push(Change { path: p, old: Some(show(ea)), new: None }),
                }
            }
            for eb in y {
                let k = key_of(eb).unwrap_or_default();
                if !x.iter().any(|ea| key_of(ea).as_deref() == Some(&k)) {
                    out.push(Change { path: format!("{path}[{k}]"), old: None, new: Some(show(eb)) });
                }
            }
        }
        _ if a != b => out.push(Change { path: path.to_string(), old: Some(show(a)), new: Some(show(b)) }),
        _ => {}
    }
}

/// Differences from `old` to `new` that matter for recovery.
pub fn diff(old: &Layout, new: &Layout) -> Vec<Change> {
    let mut a = serde_json::to_value(old).unwrap_or(Value::Null);
    let mut b = serde_json::to_value(new).unwrap_or(Value::Null);
    strip(&mut a);
    strip(&mut b);
    // serde_json uses the Rust field names; rename the top level for readers.
    let mut out = Vec::new();
    walk("", &a, &b, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Image, ImageKind};

    #[test]
    fn a_new_or_relabelled_foreign_partition_is_noticed() {
        let text = "format_version = 1\n[meta]\nhostname = \"h\"\ncaptured_at = \"\"\nlifeboat_version = \"\"\nkernel_release = \"\"\nmachine = \"\"\n";
        let old = Layout::parse(text, std::path::Path::new("l.toml")).expect("layout");
        let mut new = old.clone();
        new.images.push(Image {
            device: "/dev/sda3".into(),
            kind: ImageKind::Ntfs,
            size: 1 << 30,
            fstype: Some("ntfs".into()),
            uuid: None,
            label: Some("Windows".into()),
        });
        let d: Vec<String> = diff(&old, &new).iter().map(ToString::to_string).collect();
        assert!(d.len() == 1 && d[0].starts_with("added   image") && d[0].contains("/dev/sda3"), "{d:?}");
        let mut more = new.clone();
        more.images.push(Image {
            device: "/dev/sdb1".into(),
            kind: ImageKind::Raw,
            fstype: None,
            ..new.images[0].clone()
        });
        let d: Vec<String> = diff(&new, &more).iter().map(ToString::to_string).collect();
        assert_eq!(d, ["added   image[/dev/sdb1]: /dev/sdb1"], "{d:?}");
        let mut relabelled = new.clone();
        relabelled.images[0].label = Some("Data".into());
        let d: Vec<String> = diff(&new, &relabelled).iter().map(ToString::to_string).collect();
        assert_eq!(d, ["changed image[/dev/sda3].label: Windows -> Data"], "{d:?}");
        let text = new.to_toml();
        assert!(text.contains("[[image]]\ndevice = \"/dev/sda3\"\nkind = \"ntfs\""), "{text}");
        assert_eq!(Layout::parse(&text, std::path::Path::new("l.toml")).expect("round trip"), new);
    }
}
