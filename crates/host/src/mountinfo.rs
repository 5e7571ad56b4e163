//! `/proc/self/mountinfo`, one [`MountEntry`] a line.
//!
//! The kernel escapes space, tab, newline and backslash in paths as `\040`,
//! `\011`, `\012` and `\134`; every path field is unescaped here, so a mount
//! point with a space compares equal to the path a caller holds.

use crate::DevNum;

/// One mount of the running system, as a line of `/proc/self/mountinfo` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountEntry {
    /// The mount's id.
    pub mount_id: u32,
    /// The id of the mount it is mounted on.
    pub parent_id: u32,
    /// The device numbers of the filesystem (`st_dev` of its files).
    pub dev: DevNum,
    /// The directory of the filesystem that is mounted here (`/@home` for a btrfs subvolume, `/` usually).
    pub root: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// Per-mount options (`rw,relatime`).
    pub options: String,
    /// Filesystem type (`ext4`, `nfs4`, `tmpfs`).
    pub fstype: String,
    /// What is mounted (`/dev/sda1`, `server:/export`, `tmpfs`).
    pub source: String,
    /// Per-filesystem options (`rw,subvol=/@home`).
    pub super_options: String,
}

/// Undo the octal escapes of mountinfo, fstab and /proc/swaps (`\040` for a
/// space, `\011` tab, `\012` newline, `\134` backslash, any other `\NNN`).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = u32::from(b[i + 1] - b'0') * 64 + u32::from(b[i + 2] - b'0') * 8 + u32::from(b[i + 3] - b'0');
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse the text of `/proc/self/mountinfo`; malformed lines are left out.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    // Fields are separated by single spaces; the optional fields end at a lone "-".
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    if l.len() < 6 || r.len() < 2 {
        return None;
    }
    Some(MountEntry {
        mount_id: l[0].parse().ok()?,
        parent_id: l[1].parse().ok()?,
        dev: l[2].parse().ok()?,
        root: unescape(l[3]),
        mount_point: unescape(l[4]),
        options: l[5].to_string(),
        fstype: unescape(r[0]),
        source: unescape(r[1]),
        super_options: r.get(2).map(|s| s.to_string()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_escape_the_kernel_writes_is_undone() {
        assert_eq!(unescape(r"/mnt/my\040disk"), "/mnt/my disk");
        assert_eq!(unescape(r"a\011b\012c\134d"), "a\tb\nc\\d");
        // Not an escape: too short, not octal, or out of a byte's range.
        assert_eq!(unescape(r"/x\04"), r"/x\04");
        assert_eq!(unescape(r"/x\089"), r"/x\089");
        assert_eq!(unescape(r"/x\777"), r"/x\777");
        assert_eq!(unescape("plain"), "plain");
    }

    #[test]
    fn lines_with_optional_fields_subvolumes_and_spaces() {
        let t = "29 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                 40 29 7:0 /@home /home\\040dir rw master:3 shared:5 - btrfs /dev/loop0 rw,subvol=/@home\n\
                 41 29 0:52 / /srv/a\\134b\\011c rw - nfs4 server:/export\\040x rw,vers=4.2\n\
                 garbage line\n\
                 42 29 x:y / /bad rw - ext4 /dev/sdz rw\n";
        let m = parse(t);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!((m[0].mount_id, m[0].parent_id, m[0].dev), (29, 1, DevNum::new(254, 0)));
        assert_eq!((m[0].mount_point.as_str(), m[0].fstype.as_str(), m[0].source.as_str()), ("/", "ext4", "/dev/vda"));
        assert_eq!(m[1].mount_point, "/home dir");
        assert_eq!(m[1].root, "/@home");
        assert_eq!(m[1].super_options, "rw,subvol=/@home");
        assert_eq!(m[2].mount_point, "/srv/a\\b\tc");
        assert_eq!(m[2].source, "server:/export x");
        assert_eq!(m[2].dev.to_string(), "0:52");
    }
}
