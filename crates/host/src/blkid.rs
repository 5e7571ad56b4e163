//! Content signatures, as `blkid -p -o export` prints them.

use crate::HostError;
use lifeboat_runner::{Cmd, RunError, Runner};

/// What `blkid -p` found on a device: its `KEY=value` pairs in order
/// (`TYPE`, `UUID`, `LABEL`, `VERSION`, `PTTYPE`, `PARTUUID`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signature {
    /// The pairs, as printed.
    pub fields: Vec<(String, String)>,
}

impl Signature {
    /// A signature from `KEY=value` pairs (for fixtures).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Signature { fields: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// Parse `blkid -o export` output (`KEY=value` lines).
    pub fn parse(text: &str) -> Self {
        Signature { fields: parse_export(text) }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The content type (`ext4`, `swap`, `LVM2_member`, `crypto_LUKS`).
    pub fn fstype(&self) -> Option<&str> {
        self.get("TYPE")
    }

    /// The content's UUID.
    pub fn uuid(&self) -> Option<&str> {
        self.get("UUID")
    }

    /// The content's label.
    pub fn label(&self) -> Option<&str> {
        self.get("LABEL")
    }

    /// The signature's version (`1.0`, `FAT32`, `LVM2 001`).
    pub fn version(&self) -> Option<&str> {
        self.get("VERSION")
    }

    /// The partition table type (`gpt`, `dos`).
    pub fn pttype(&self) -> Option<&str> {
        self.get("PTTYPE")
    }
}

/// `KEY=value` lines, as `blkid -o export` prints them.
pub fn parse_export(text: &str) -> Vec<(String, String)> {
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The command that probes `device` directly (not from the udev database).
pub fn command(device: &str) -> Cmd {
    Cmd::new("blkid").args(["-p", "-o", "export", device])
}

/// Probe `device` with `blkid -p` through `r`. Exit status 2 (nothing
/// found) and empty output are None.
pub fn probe(r: &dyn Runner, device: &str) -> Result<Option<Signature>, HostError> {
    match r.probe(&command(device)) {
        Ok(out) => {
            let s = Signature::parse(&out.text());
            Ok((!s.fields.is_empty()).then_some(s))
        }
        Err(RunError::Failed { status, .. }) if status == "exit status 2" => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_runner::ScriptedRunner;

    #[test]
    fn export_output_and_what_blkid_found_nothing_on() {
        let r = ScriptedRunner::new()
            .answer(
                "blkid -p -o export /dev/vdb1",
                "DEVNAME=/dev/vdb1\nUUID=1234-abcd\nVERSION=FAT32\nTYPE=vfat\nLABEL=a=b\n",
            )
            .answer("blkid -p -o export /dev/vdc", "");
        let s = probe(&r, "/dev/vdb1").expect("probe").expect("signature");
        assert_eq!((s.fstype(), s.uuid(), s.version()), (Some("vfat"), Some("1234-abcd"), Some("FAT32")));
        assert_eq!(s.label(), Some("a=b"), "only the first = separates");
        assert_eq!(s.pttype(), None);
        assert_eq!(probe(&r, "/dev/vdc").expect("probe"), None);
        assert!(probe(&r, "/dev/vdd").is_err(), "a probe that could not run is an error");
    }
}
