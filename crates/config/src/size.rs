//! Sizes written as presets (`cd`, `dvd`), with units (`700M`, `4.7G`) or as bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A size in bytes that reads presets and unit suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// A size that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid size `{0}`: use a preset (cd, dvd, dvd-dl, bd), a number of bytes, or a number with K, M, G or T (powers of 1024)")]
pub struct SizeError(pub String);

/// Media presets: name and usable bytes.
pub const PRESETS: &[(&str, u64)] =
    &[("cd", 700 * 1024 * 1024), ("dvd", 4_700_000_000), ("dvd-dl", 8_500_000_000), ("bd", 25_000_000_000)];

impl ByteSize {
    /// The size of a media preset.
    pub fn preset(name: &str) -> Option<ByteSize> {
        PRESETS.iter().find(|(n, _)| *n == name).map(|(_, b)| ByteSize(*b))
    }
}

impl FromStr for ByteSize {
    type Err = SizeError;
    fn from_str(s: &str) -> Result<Self, SizeError> {
        let t = s.trim().to_ascii_lowercase();
        if let Some(p) = ByteSize::preset(&t) {
            return Ok(p);
        }
        let t = t.strip_suffix("ib").or_else(|| t.strip_suffix('b')).unwrap_or(&t);
        let (num, mult) = match t.chars().last() {
            Some('k') => (&t[..t.len() - 1], 1u64 << 10),
            Some('m') => (&t[..t.len() - 1], 1 << 20),
            Some('g') => (&t[..t.len() - 1], 1 << 30),
            Some('t') => (&t[..t.len() - 1], 1 << 40),
            _ => (t, 1),
        };
        let v: f64 = num.trim().parse().map_err(|_| SizeError(s.to_string()))?;
        if !v.is_finite() || v <= 0.0 {
            return Err(SizeError(s.to_string()));
        }
        Ok(ByteSize((v * mult as f64).round() as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((n, _)) = PRESETS.iter().find(|(_, b)| *b == self.0) {
            return f.write_str(n);
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n > 0 => Ok(ByteSize(n)),
            Raw::N(n) => Err(serde::de::Error::custom(SizeError(n.to_string()))),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Format bytes for people: `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}
