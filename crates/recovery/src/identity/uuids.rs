//! New storage identities in the spelling of the old ones, and replacing
//! old identities by new ones wherever the configuration names them.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// `old` with every hex digit (and every other letter or digit, for LVM's
/// UUIDs) replaced from a hash of `seed`, its separators, case and a `0x`
/// prefix kept; a 36-character UUID is marked as random (version 4).
pub(super) fn renewed(seed: &str, old: &str) -> String {
    let mut nibbles: Vec<u8> = Vec::new();
    let mut round = 0u32;
    let mut next = || {
        if nibbles.is_empty() {
            let h = Sha256::new().chain_update(seed.as_bytes()).chain_update(round.to_le_bytes()).finalize();
            round += 1;
            nibbles = h.iter().flat_map(|b| [b >> 4, b & 15]).rev().collect();
        }
        nibbles.pop().unwrap_or(0)
    };
    let upper = old.chars().any(|c| c.is_ascii_uppercase()) && !old.chars().any(|c| c.is_ascii_lowercase());
    let (prefix, body) = match old.strip_prefix("0x") {
        Some(b) => ("0x", b),
        None => ("", old),
    };
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut out: Vec<char> = prefix.chars().collect();
    for c in body.chars() {
        let n = if c.is_ascii_hexdigit() {
            let d = char::from_digit(u32::from(next()), 16).unwrap_or('0');
            if upper {
                d.to_ascii_uppercase()
            } else {
                d
            }
        } else if c.is_ascii_alphanumeric() {
            char::from(ALNUM[usize::from(next() * 16 + next()) % ALNUM.len()])
        } else {
            c
        };
        out.push(n);
    }
    let dashes = [8, 13, 18, 23];
    if out.len() == 36 && dashes.iter().all(|&i| out[i] == '-') {
        out[14] = '4';
        let v = out[19].to_digit(16).unwrap_or(0) & 3 | 8;
        out[19] = char::from_digit(v, 16).unwrap_or('8');
        if upper {
            out[19] = out[19].to_ascii_uppercase();
        }
    }
    out.into_iter().collect()
}

/// The spellings of one identity the configuration may use: as recorded,
/// and for 32 hex digits also dashed (8-4-4-4-12, blkid) and in mdadm's
/// colon form (8:8:8:8).
fn spellings(old: &str, new: &str) -> Vec<(String, String)> {
    let mut v = vec![(old.to_string(), new.to_string())];
    let hex = |s: &str| -> String { s.chars().filter(char::is_ascii_hexdigit).collect() };
    let (ho, hn) = (hex(old), hex(new));
    let all_hex = old.chars().all(|c| c.is_ascii_hexdigit() || c == '-' || c == ':');
    if ho.len() == 32 && hn.len() == 32 && all_hex {
        let dashed = |h: &str| format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
        let colon = |h: &str| format!("{}:{}:{}:{}", &h[..8], &h[8..16], &h[16..24], &h[24..]);
        v.push((dashed(&ho), dashed(&hn)));
        v.push((colon(&ho), colon(&hn)));
    }
    // The DOS disk id also appears without `0x` in PARTUUIDs (`5eed0002-01`).
    if let (Some(o), Some(n)) = (old.strip_prefix("0x"), new.strip_prefix("0x")) {
        v.push((o.to_string(), n.to_string()));
    }
    v.sort();
    v.dedup_by(|a, b| a.0.eq_ignore_ascii_case(&b.0));
    v
}

/// Replace whole identities (not part of a longer hex or alphanumeric word),
/// case-insensitively, each new one written in the case the text had.
pub fn replace_uuids(text: &str, uuids: &BTreeMap<String, String>) -> String {
    let mut pairs: Vec<(String, String)> = uuids.iter().flat_map(|(o, n)| spellings(o, n)).collect();
    pairs.retain(|(o, _)| !o.is_empty());
    pairs.sort_by_key(|(o, _)| std::cmp::Reverse(o.len()));
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'outer: while i < b.len() {
        if (i == 0 || !word(b[i - 1])) && text.is_char_boundary(i) {
            for (old, new) in &pairs {
                let end = i + old.len();
                if end <= b.len()
                    && b[i..end].eq_ignore_ascii_case(old.as_bytes())
                    && b.get(end).is_none_or(|c| !word(*c))
                {
                    let found = &text[i..end];
                    let upper = found.chars().any(|c| c.is_ascii_uppercase());
                    out.push_str(&if upper { new.to_ascii_uppercase() } else { new.to_ascii_lowercase() });
                    i = end;
                    continue 'outer;
                }
            }
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Replace a hardware address, whatever its case, keeping the case the text used.
pub(super) fn replace_mac(text: &str, old: &str, new: &str) -> String {
    let mut m = BTreeMap::new();
    m.insert(old.to_string(), new.to_string());
    replace_uuids(text, &m)
}
