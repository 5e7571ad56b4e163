//! The clone plan: which box becomes which clone.
//!
//! A TOML file with one `[[client]]` per box, found by its MAC address
//! (`mac`, the NIC it boots from) or its SMBIOS serial number (`serial`);
//! every other key of a client is its clone file (docs/cloning.md), checked
//! as `recover --clone` checks one:
//!
//! ```toml
//! [[client]]
//! mac = "52:54:00:00:10:01"
//! hostname = "web1"
//! [[client.interface]]
//! match = "order:1"
//! address = "192.0.2.21/24"
//! gateway = "192.0.2.1"
//! ```

use lifeboat_recovery::identity::CloneFile;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The largest clone plan read (a farm of thousands of boxes fits).
pub const MAX_PLAN_BYTES: u64 = 4 << 20;

/// Why a clone plan is refused.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file cannot be read.
    #[error("cannot read the clone plan {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file is not a valid clone plan (what is wrong, and where).
    #[error("the clone plan {0} is not valid: {1}")]
    Invalid(PathBuf, String),
}

/// One box of the plan: how it is recognised and the clone file it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its MAC address, lower case with colons (`52:54:00:00:10:01`).
    pub mac: Option<String>,
    /// Its SMBIOS serial number.
    pub serial: Option<String>,
    /// Its host name (from its clone file).
    pub hostname: String,
    /// The text of its clone file, as served to it.
    pub clone_text: String,
}

impl Client {
    /// The name the client is known by in URLs and the status: its MAC, else its serial.
    pub fn id(&self) -> &str {
        self.mac.as_deref().or(self.serial.as_deref()).unwrap_or_default()
    }
}

/// A checked clone plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClonePlan {
    /// The boxes, in the order the file lists them.
    pub clients: Vec<Client>,
}

/// A MAC address in the one spelling the plan and URLs use (`52:54:00:0a:0b:0c`),
/// accepting `-` or `:` separators and any case; None when it is not one.
pub fn normalize_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.trim().split([':', '-']).collect();
    if parts.len() != 6 || parts.iter().any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit())) {
        return None;
    }
    Some(parts.join(":").to_ascii_lowercase())
}

/// Whether `s` can be a serial number in a URL path (printable, no `/`, bounded).
pub(crate) fn is_serial(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl ClonePlan {
    /// Read and check a clone plan.
    pub fn load(path: &Path) -> Result<ClonePlan, PlanError> {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|e| PlanError::Read(path.to_path_buf(), e))?;
        let mut text = String::new();
        f.take(MAX_PLAN_BYTES + 1).read_to_string(&mut text).map_err(|e| PlanError::Read(path.to_path_buf(), e))?;
        if text.len() as u64 > MAX_PLAN_BYTES {
            return Err(PlanError::Invalid(path.to_path_buf(), format!("larger than {MAX_PLAN_BYTES} bytes")));
        }
        ClonePlan::parse(&text).map_err(|e| PlanError::Invalid(path.to_path_buf(), e))
    }

    /// Parse and check the text of a clone plan: every client has a MAC or
    /// a serial, no MAC, serial or host name twice, each clone file valid.
    pub fn parse(text: &str) -> Result<ClonePlan, String> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
        if let Some(k) = doc.keys().find(|k| *k != "client") {
            return Err(format!("unknown key `{k}` (a clone plan has only [[client]] tables)"));
        }
        let Some(list) = doc.get("client") else { return Ok(ClonePlan::default()) };
        let list = list.as_array().ok_or("`client` must be [[client]] tables")?;
        let (mut macs, mut serials, mut names) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        let mut clients = Vec::new();
        for (i, c) in list.iter().enumerate() {
            let n = i + 1;
            let mut table = c.as_table().cloned().ok_or(format!("client {n} is not a table"))?;
            let mut take = |key: &str| -> Result<Option<String>, String> {
                match table.remove(key) {
                    None => Ok(None),
                    Some(toml::Value::String(s)) => Ok(Some(s)),
                    Some(_) => Err(format!("client {n}: `{key}` must be a string")),
                }
            };
            let mac = match take("mac")? {
                None => None,
                Some(m) => Some(normalize_mac(&m).ok_or(format!("client {n}: `{m}` is not a MAC address"))?),
            };
            let serial = take("serial")?;
            if let Some(s) = &serial {
                if !is_serial(s) {
                    return Err(format!("client {n}: serial `{s}` has characters other than letters, digits, `-_.`"));
                }
            }
            if mac.is_none() && serial.is_none() {
                return Err(format!("client {n}: give `mac` or `serial`, how the box is recognised"));
            }
            let clone_text = toml::to_string(&table).map_err(|e| format!("client {n}: {e}"))?;
            let clone = CloneFile::parse(&clone_text).map_err(|e| format!("client {n}: {e}"))?;
            let name = match &clone.domain {
                Some(d) => format!("{}.{d}", clone.hostname),
                None => clone.hostname.clone(),
            };
            if !names.insert(name.clone()) {
                return Err(format!("client {n}: host name {name} is given twice"));
            }
            if let Some(m) = &mac {
                if !macs.insert(m.clone()) {
                    return Err(format!("client {n}: MAC {m} is given twice"));
                }
            }
            if let Some(s) = &serial {
                if !serials.insert(s.clone()) {
                    return Err(format!("client {n}: serial {s} is given twice"));
                }
            }
            clients.push(Client { mac, serial, hostname: clone.hostname, clone_text });
        }
        Ok(ClonePlan { clients })
    }

    /// The client a MAC address or a serial number names (the MAC first).
    pub fn find(&self, mac: Option<&str>, serial: Option<&str>) -> Option<&Client> {
        let mac = mac.and_then(normalize_mac);
        mac.as_deref()
            .and_then(|m| self.clients.iter().find(|c| c.mac.as_deref() == Some(m)))
            .or_else(|| serial.and_then(|s| self.clients.iter().find(|c| c.serial.as_deref() == Some(s))))
    }

    /// The client whose id (MAC or serial, as in URLs) is `id`.
    pub fn by_id(&self, id: &str) -> Option<&Client> {
        self.find(Some(id), None).or_else(|| self.find(None, Some(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"
[[client]]
mac = "52-54-00-00-10-01"
hostname = "web1"
domain = "example.net"
[[client.interface]]
match = "order:1"
address = "192.0.2.21/24"
gateway = "192.0.2.1"

[[client]]
serial = "SN-0002"
hostname = "web2"
new_uuids = true
[[client.interface]]
match = "order:1"
dhcp = true
"#;

    #[test]
    fn clients_are_found_by_mac_in_any_spelling_or_by_serial_and_get_their_clone_file() {
        let p = ClonePlan::parse(PLAN).expect("plan");
        assert_eq!(p.clients.len(), 2);
        let c = p.find(Some("52:54:00:00:10:01"), None).expect("web1");
        assert_eq!((c.hostname.as_str(), c.id()), ("web1", "52:54:00:00:10:01"));
        assert_eq!(p.find(Some("52:54:00:00:10:01".to_uppercase().as_str()), None), Some(c));
        let back = CloneFile::parse(&c.clone_text).expect("clone file");
        assert_eq!(back.domain.as_deref(), Some("example.net"));
        assert_eq!(back.interfaces.len(), 1);
        assert!(!c.clone_text.contains("mac ="), "{}", c.clone_text);
        let s = p.find(Some("52:54:00:ff:ff:ff"), Some("SN-0002")).expect("web2 by serial");
        assert_eq!(s.hostname, "web2");
        assert!(CloneFile::parse(&s.clone_text).expect("clone").new_uuids);
        assert_eq!(p.by_id("SN-0002"), Some(s));
        assert_eq!(p.find(Some("nonsense"), None), None);
        assert_eq!(ClonePlan::parse("").expect("empty").clients.len(), 0);
    }

    #[test]
    fn bad_plans_are_refused_naming_the_client_and_what_is_wrong() {
        let cases = [
            ("[[client]]\nhostname = \"a\"\n", "give `mac` or `serial`"),
            ("[[client]]\nmac = \"52:54:00:00:10\"\nhostname = \"a\"\n", "not a MAC"),
            ("[[client]]\nmac = \"52:54:00:00:10:01\"\nhostname = \"a_b\"\n", "DNS label"),
            ("[[client]]\nmac = \"52:54:00:00:10:01\"\nhostname = \"a\"\ncolour = 1\n", "colour"),
            (
                "[[client]]\nmac = \"52:54:00:00:10:01\"\nhostname = \"a\"\n[[client]]\nmac = \"52:54:00:00:10:01\"\nhostname = \"b\"\n",
                "MAC 52:54:00:00:10:01 is given twice",
            ),
            (
                "[[client]]\nmac = \"52:54:00:00:10:01\"\nhostname = \"a\"\n[[client]]\nserial = \"x\"\nhostname = \"a\"\n",
                "host name a is given twice",
            ),
            ("[[client]]\nserial = \"../x\"\nhostname = \"a\"\n", "serial"),
            ("[[client]]\nmac = 5\nhostname = \"a\"\n", "must be a string"),
            ("server = 1\n", "unknown key `server`"),
            ("client = 1\n", "[[client]]"),
        ];
        for (text, want) in cases {
            let e = ClonePlan::parse(text).expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
            if want != "unknown key `server`" && want != "[[client]]" {
                assert!(e.contains("client "), "{e}");
            }
        }
    }

    #[test]
    fn macs_are_normalised_or_refused() {
        assert_eq!(normalize_mac("52-54-00-AA-bb-0C").as_deref(), Some("52:54:00:aa:bb:0c"));
        for bad in ["", "52:54:00:aa:bb", "52:54:00:aa:bb:0c:0d", "zz:54:00:aa:bb:0c", "525:4:00:aa:bb:0c"] {
            assert_eq!(normalize_mac(bad), None, "{bad}");
        }
    }
}
