//! The drill's report: one JSON document for scripts (`report.json`, its
//! fields documented in docs/drill.md and kept stable: new fields may be
//! added, none renamed or removed without raising [`FORMAT`]) and one HTML
//! page for people (`report.html`), plus the serial console logs beside them.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The version of the report's JSON format.
pub const FORMAT: u32 = 1;

/// A drill's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Recovery succeeded, the recovered disks reached multi-user alone, and
    /// their files equal the backup (apart from what recovery changes on purpose).
    Passed,
    /// Something of that did not hold: `reason` says what.
    Failed,
}

/// Where a phase's time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Measured by the drill on the host (wall clock, between console messages).
    Measured,
    /// Reported by `lifeboat recover` on the console (its `phases:` line).
    Console,
}

/// One phase of the recovery and its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// `boot`, `partitioning`, `filesystems`, `restore`, `fix`, `bootloader`,
    /// `other` (finding the backup, planning, power-off), `first boot`.
    pub name: String,
    /// Seconds.
    pub seconds: f64,
    /// Where the time comes from.
    pub source: Source,
}

/// One blank disk the drill recovered onto.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillDisk {
    /// The disk in the saved layout it stands for (`/dev/vda`).
    pub layout_id: String,
    /// Its size in the layout, bytes.
    pub layout_size: u64,
    /// The blank disk's size, bytes (layout size × disk factor, rounded up to a MiB).
    pub size: u64,
    /// The serial number the VM gives it (the layout's, so recovery maps it to the same disk).
    pub serial: String,
    /// NVMe when the layout's disk was, virtio otherwise.
    pub nvme: bool,
    /// The image file.
    pub image: PathBuf,
}

/// Whether the recovered system reached multi-user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MultiUser {
    /// Reached.
    pub reached: bool,
    /// The console line that shows it.
    pub evidence: Option<String>,
    /// Seconds from power-on.
    pub seconds: Option<f64>,
}

/// One filesystem of the layout, compared or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparedFs {
    /// Where it is mounted in the recovered system.
    pub mountpoint: String,
    /// Its device in the layout.
    pub device: String,
    /// Its type.
    pub fstype: String,
    /// Mounted on the host and compared.
    pub compared: bool,
    /// Why not, when not.
    pub why_not: Option<String>,
}

/// One difference between the recovered files and the backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// Path in the backup (no leading `/`).
    pub path: String,
    /// `added`, `removed`, `changed`.
    pub what: String,
    /// Which properties changed, old and new.
    pub details: Vec<String>,
    /// For a change recovery makes on purpose: why (these do not fail the drill).
    pub on_purpose: Option<String>,
}

/// The comparison of the recovered disks with the backup, from the host, before their first boot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// It ran.
    pub done: bool,
    /// Manifest entries of the backup.
    pub entries: usize,
    /// The filesystems.
    pub filesystems: Vec<ComparedFs>,
    /// Differences that fail the drill.
    pub differences: Vec<Difference>,
    /// Differences recovery makes on purpose (its log, the initramfs, GRUB).
    pub changed_on_purpose: Vec<Difference>,
    /// Differences below filesystems that were not compared (not counted).
    pub not_compared: usize,
}

/// A node of a disk tree (the layout before, the recovered disks after).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// What it is (`/dev/vda`, `/dev/vda1`, `ext4 /`).
    pub label: String,
    /// More about it (size, UUID).
    pub detail: String,
    /// What is built on it.
    pub children: Vec<Node>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT`].
    pub format: u32,
    /// The verdict.
    pub verdict: Verdict,
    /// Why it failed, in a sentence (none when passed).
    pub reason: Option<String>,
    /// The host whose medium was drilled.
    pub host: String,
    /// When the drill started (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended.
    pub finished_at: String,
    /// The lifeboat that ran it.
    pub lifeboat_version: String,
    /// The rescue medium (and the further media of its set).
    pub media: Vec<PathBuf>,
    /// The backup the files were compared with.
    pub backup: String,
    /// How the backup reached the VM (read-only).
    pub backup_attached: Option<String>,
    /// `bios` or `uefi`.
    pub firmware: String,
    /// `kvm` or `tcg`.
    pub accel: String,
    /// Why that accelerator.
    pub accel_reason: String,
    /// The blank disks' size relative to the layout's.
    pub disk_factor: f64,
    /// The blank disks.
    pub disks: Vec<DrillDisk>,
    /// The phases in order, with their times.
    pub phases: Vec<Phase>,
    /// The measured recovery time objective: medium power-on to the
    /// recovered system at multi-user (rescue boot and recovery, plus first
    /// boot), seconds; none when the drill did not get that far.
    pub rto_seconds: Option<f64>,
    /// Whether the recovered system reached multi-user.
    pub multi_user: MultiUser,
    /// The recovered files against the backup.
    pub comparison: Comparison,
    /// The saved layout.
    pub layout_before: Vec<Node>,
    /// The recovered disks as the host reads them.
    pub layout_after: Vec<Node>,
    /// The console logs beside the report (file names).
    pub console_logs: Vec<String>,
    /// What else the reader should know.
    pub notes: Vec<String>,
}

impl Report {
    /// The JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// Text made safe for HTML (element content and attribute values):
/// markup characters escaped, control characters other than newline and
/// tab shown as `^X` (a console log holds escape sequences and stray bytes).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            '\u{7f}' => out.push_str("^?"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn rows(nodes: &[Node], depth: usize, out: &mut Vec<(usize, String, String)>) {
    for n in nodes {
        out.push((depth, n.label.clone(), n.detail.clone()));
        rows(&n.children, depth + 1, out);
    }
}

/// The disks before and after as one SVG picture: two columns of boxes,
/// each indented under what it is built on.
pub fn svg(before: &[Node], after: &[Node]) -> String {
    const ROW: usize = 26;
    const WIDTH: usize = 380;
    const INDENT: usize = 22;
    let (mut b, mut a) = (Vec::new(), Vec::new());
    rows(before, 0, &mut b);
    rows(after, 0, &mut a);
    let height = 40 + ROW * b.len().max(a.len()).max(1);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\" \
         font-family=\"sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"disks before and after\">\n",
        w = 2 * WIDTH + 40
    );
    for (col, title, list) in [(0usize, "saved layout (before)", &b), (1, "recovered disks (after)", &a)] {
        let x0 = 10 + col * (WIDTH + 20);
        s.push_str(&format!("<text x=\"{x0}\" y=\"20\" font-weight=\"bold\">{}</text>\n", escape_html(title)));
        for (i, (depth, label, detail)) in list.iter().enumerate() {
            let x = x0 + depth * INDENT;
            let y = 30 + i * ROW;
            let fill = ["#dbe9f6", "#e3f1dc", "#fbeed5", "#f3e0ef"][depth.min(&3).to_owned()];
            s.push_str(&format!(
                "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{}\" rx=\"3\" fill=\"{fill}\" stroke=\"#667\"/>\
                 <text x=\"{}\" y=\"{}\"><tspan font-weight=\"bold\">{}</tspan> {}</text>\n",
                WIDTH - depth * INDENT,
                ROW - 4,
                x + 6,
                y + 15,
                escape_html(label),
                escape_html(detail)
            ));
        }
    }
    s.push_str("</svg>\n");
    s
}

fn secs(s: f64) -> String {
    if s >= 60.0 {
        format!("{:.0} min {:02.0} s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{s:.1} s")
    }
}

/// The HTML page: verdict, the time of every phase (the measured RTO), the
/// disks before and after, the differences, and the console logs (escaped).
pub fn html(r: &Report, consoles: &[(String, String)]) -> String {
    let e = escape_html;
    let mut h = String::new();
    let (word, colour) = match r.verdict {
        Verdict::Passed => ("PASSED", "#1a7f37"),
        Verdict::Failed => ("FAILED", "#c62828"),
    };
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>lifeboat drill of {host}: {word}</title>\n<style>body{{font-family:sans-serif;max-width:70em;margin:1em auto;padding:0 1em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}\
         pre{{background:#f6f6f6;padding:8px;overflow-x:auto;max-height:40em}}.v{{color:#fff;background:{colour};padding:2px 10px}}</style>\
         </head><body>\n<h1>Drill of {host}: <span class=\"v\">{word}</span></h1>\n",
        host = e(&r.host)
    ));
    if let Some(reason) = &r.reason {
        h.push_str(&format!("<p><strong>Why:</strong> {}</p>\n", e(reason)));
    }
    let media: Vec<String> = r.media.iter().map(|m| m.display().to_string()).collect();
    h.push_str("<table>\n");
    for (k, v) in [
        ("started", r.started_at.clone()),
        ("finished", r.finished_at.clone()),
        ("medium", media.join(", ")),
        ("backup", r.backup.clone()),
        ("backup attached (read-only)", r.backup_attached.clone().unwrap_or_else(|| "on the media".into())),
        ("firmware", r.firmware.clone()),
        ("accelerator", format!("{} ({})", r.accel, r.accel_reason)),
        ("disk factor", format!("{}", r.disk_factor)),
        ("lifeboat", r.lifeboat_version.clone()),
    ] {
        h.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", e(k), e(&v)));
    }
    h.push_str("</table>\n<h2>Recovery time</h2>\n<table><tr><th>phase</th><th>time</th><th>from</th></tr>\n");
    for p in &r.phases {
        let from = match p.source {
            Source::Measured => "measured",
            Source::Console => "recover's report",
        };
        h.push_str(&format!("<tr><td>{}</td><td>{}</td><td>{from}</td></tr>\n", e(&p.name), secs(p.seconds)));
    }
    if let Some(rto) = r.rto_seconds {
        h.push_str(&format!(
            "<tr><th>measured RTO (power-on to multi-user)</th><th>{}</th><th></th></tr>\n",
            secs(rto)
        ));
    }
    h.push_str("</table>\n");
    let mu = &r.multi_user;
    h.push_str(&format!(
        "<p>Multi-user: {}{}</p>\n",
        if mu.reached { "reached" } else { "not reached" },
        mu.evidence.as_ref().map(|l| format!(" (<code>{}</code>)", e(l))).unwrap_or_default()
    ));
    h.push_str(
        "<h2>Disks</h2>\n<table><tr><th>layout disk</th><th>layout size</th><th>drill disk</th><th>serial</th></tr>\n",
    );
    for d in &r.disks {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            e(&d.layout_id),
            d.layout_size,
            d.size,
            e(&d.serial)
        ));
    }
    h.push_str("</table>\n");
    h.push_str(&svg(&r.layout_before, &r.layout_after));
    let c = &r.comparison;
    h.push_str(&format!(
        "<h2>Files against the backup</h2>\n<p>{}: {} difference(s), {} changed by recovery on purpose, {} below filesystems not compared.</p>\n",
        if c.done { format!("{} manifest entries compared", c.entries) } else { "not compared".into() },
        c.differences.len(),
        c.changed_on_purpose.len(),
        c.not_compared
    ));
    h.push_str("<table><tr><th>mount point</th><th>device</th><th>type</th><th>compared</th></tr>\n");
    for f in &c.filesystems {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            e(&f.mountpoint),
            e(&f.device),
            e(&f.fstype),
            if f.compared { "yes".to_string() } else { format!("no: {}", e(f.why_not.as_deref().unwrap_or(""))) }
        ));
    }
    h.push_str("</table>\n");
    for (title, list) in [("Differences", &c.differences), ("Changed by recovery on purpose", &c.changed_on_purpose)] {
        if list.is_empty() {
            continue;
        }
        h.push_str(&format!("<h3>{title}</h3>\n<table><tr><th>what</th><th>path</th><th>details</th></tr>\n"));
        for d in list.iter() {
            let mut details = d.details.join(", ");
            if let Some(why) = &d.on_purpose {
                details = if details.is_empty() { why.clone() } else { format!("{details} — {why}") };
            }
            h.push_str(&format!("<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n", e(&d.what), e(&d.path), e(&details)));
        }
        h.push_str("</table>\n");
    }
    if !r.notes.is_empty() {
        h.push_str("<h2>Notes</h2>\n<ul>\n");
        for n in &r.notes {
            h.push_str(&format!("<li>{}</li>\n", e(n)));
        }
        h.push_str("</ul>\n");
    }
    for (name, text) in consoles {
        h.push_str(&format!("<h2>Serial console: {}</h2>\n<pre>{}</pre>\n", e(name), e(text)));
    }
    h.push_str("</body></html>\n");
    h
}

/// Remove all but the newest `keep` report directories (`drill-*`) in
/// `dir`; their names sort by time. Returns the ones removed.
pub fn keep_newest(dir: &Path, keep: usize) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("drill-") && e.path().is_dir())
        .map(|e| e.path())
        .collect();
    found.sort();
    let n = found.len().saturating_sub(keep);
    let old: Vec<PathBuf> = found.into_iter().take(n).collect();
    for d in &old {
        if let Err(e) = std::fs::remove_dir_all(d) {
            log::warn!("cannot remove the old drill report {}: {e}", d.display());
        }
    }
    old
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Report {
        Report {
            format: FORMAT,
            verdict: Verdict::Passed,
            reason: None,
            host: "db1".into(),
            started_at: "2026-12-02T05:00:00Z".into(),
            finished_at: "2026-12-02T05:04:00Z".into(),
            lifeboat_version: "0.1.0".into(),
            media: vec!["/var/lib/lifeboat/output/lifeboat-db1.iso".into()],
            backup: "file:///mnt/backup/db1/2026-12-02T041601.438Z".into(),
            backup_attached: Some("/dev/sdb".into()),
            firmware: "bios".into(),
            accel: "tcg".into(),
            accel_reason: "KVM is not usable".into(),
            disk_factor: 1.0,
            disks: vec![DrillDisk {
                layout_id: "/dev/vda".into(),
                layout_size: 3 << 30,
                size: 3 << 30,
                serial: "system".into(),
                nvme: false,
                image: "/w/disk0.img".into(),
            }],
            phases: vec![
                Phase { name: "boot".into(), seconds: 20.5, source: Source::Measured },
                Phase { name: "restore".into(), seconds: 47.7, source: Source::Console },
                Phase { name: "first boot".into(), seconds: 28.0, source: Source::Measured },
            ],
            rto_seconds: Some(132.0),
            multi_user: MultiUser {
                reached: true,
                evidence: Some("Reached target multi-user.target".into()),
                seconds: Some(28.0),
            },
            comparison: Comparison { done: true, entries: 15233, ..Comparison::default() },
            layout_before: vec![Node {
                label: "/dev/vda".into(),
                detail: "3.0 GiB dos".into(),
                children: vec![Node { label: "/dev/vda1".into(), detail: "2.0 GiB".into(), children: Vec::new() }],
            }],
            layout_after: Vec::new(),
            console_logs: vec!["console-rescue.log".into()],
            notes: Vec::new(),
        }
    }

    #[test]
    fn json_has_the_documented_fields_and_reads_back() {
        let r = sample();
        let text = r.to_json();
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        for key in [
            "format",
            "verdict",
            "reason",
            "host",
            "started_at",
            "finished_at",
            "media",
            "backup",
            "firmware",
            "accel",
            "disk_factor",
            "disks",
            "phases",
            "rto_seconds",
            "multi_user",
            "comparison",
            "layout_before",
            "layout_after",
            "console_logs",
            "notes",
        ] {
            assert!(v.get(key).is_some(), "report.json lacks `{key}`");
        }
        assert_eq!(v["verdict"], "passed");
        assert_eq!(v["phases"][1]["source"], "console");
        assert_eq!(v["phases"][0]["name"], "boot");
        assert_eq!(v["comparison"]["differences"].as_array().map(Vec::len), Some(0));
        let back: Report = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, r);
    }

    #[test]
    fn a_hostile_console_log_cannot_inject_markup_into_the_page() {
        let hostile =
            "login: </pre><script>alert(1)</script><img src=x onerror=alert(2)>\u{1b}[2J\u{0}\u{7}&amp; \"'\n";
        let mut r = sample();
        r.host = "<b>db1</b>".into();
        r.reason = Some("failed <because>".into());
        let page = html(&r, &[("rescue".into(), hostile.into())]);
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<b>db1"), "{page}");
        assert!(page.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("^[[2J^@^G&amp;amp; &quot;&#39;"), "control characters are shown, not sent");
        assert_eq!(page.matches("<pre>").count(), page.matches("</pre>").count());
        assert!(page.contains("PASSED") && page.contains("measured RTO"));
        assert!(page.contains("2 min 12 s"), "the RTO in minutes: {page}");
        assert!(page.contains("Content-Security-Policy"), "no script runs even if something slipped through");
    }

    #[test]
    fn svg_draws_one_box_per_node_in_two_columns_with_escaped_labels() {
        let before = vec![Node {
            label: "/dev/vda".into(),
            detail: "<3 GiB>".into(),
            children: vec![
                Node { label: "/dev/vda1".into(), detail: "ext4 /".into(), children: Vec::new() },
                Node { label: "/dev/vda2".into(), detail: "swap".into(), children: Vec::new() },
            ],
        }];
        let after = vec![Node { label: "/dev/vda".into(), detail: "3.0 GiB".into(), children: Vec::new() }];
        let s = svg(&before, &after);
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(s.matches("<rect").count(), 4);
        assert!(s.contains("&lt;3 GiB&gt;") && !s.contains("<3 GiB>"));
        assert!(s.contains("saved layout (before)") && s.contains("recovered disks (after)"));
        // Children are indented under their disk.
        assert!(s.contains("<rect x=\"10\" y=\"30\"") && s.contains("<rect x=\"32\" y=\"56\""), "{s}");
        assert!(s.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn only_the_newest_reports_are_kept() {
        let d = tempfile::tempdir().expect("tmp");
        for n in ["drill-20261201T010000Z", "drill-20261202T010000Z", "drill-20261203T010000Z", "other"] {
            std::fs::create_dir(d.path().join(n)).expect("mkdir");
        }
        let removed = keep_newest(d.path(), 2);
        assert_eq!(removed, vec![d.path().join("drill-20261201T010000Z")]);
        assert!(d.path().join("drill-20261203T010000Z").exists() && d.path().join("other").exists());
    }
}
