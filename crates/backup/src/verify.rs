//! Checking a backup that [`crate::find`] found: every volume and checksum
//! (`verify`), or a live tree against it (`compare`).

use crate::find::{find_streamed, locate, readable, Find, Found, Source};
use crate::keys;
use crate::{Error, Feedback};
use lifeboat_archive::compare::Difference;
use lifeboat_archive::restore::VerifyReport;
use lifeboat_archive::target::{encrypt, DirObjects, Objects};
use lifeboat_archive::trust::Verdict;
use lifeboat_rescue::selfcheck::{self, Checked, MediumError};
use lifeboat_runner::{Cmd, Runner};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `verify` checked.
#[derive(Debug)]
pub struct Verified {
    /// Where the backup is.
    pub location: String,
    /// Whether its catalog is authenticated.
    pub verdict: Verdict,
    /// How many volumes it has.
    pub volumes: usize,
    /// How many entries its manifest lists (None: an encrypted backup checked without its identity).
    pub entries: Option<usize>,
    /// What was found.
    pub report: VerifyReport,
    /// The backup an incremental one was made against.
    pub parent: Option<String>,
    /// Its chain as resolved, nearest parent first (empty: a full backup, or not resolved without the identity).
    pub chain: Vec<String>,
}

/// Find the backup and read every volume of it, checking every checksum.
/// An encrypted backup without an identity is checked as stored: the
/// signature, and every stored object against its size and BLAKE3 (damage
/// and tampering are found; contents are not read).
pub fn verify(f: &Find, r: &dyn Runner, feedback: &mut dyn Feedback) -> Result<Verified, Error> {
    let raw = locate(f, r, feedback)?;
    verify_objects(f, raw, r, feedback)
}

/// [`verify`] of a backup already reached.
fn verify_objects(
    f: &Find,
    raw: Arc<dyn Objects>,
    r: &dyn Runner,
    feedback: &mut dyn Feedback,
) -> Result<Verified, Error> {
    if f.identity.is_none() && encrypt::is_encrypted(raw.as_ref()) {
        let (catalog, verdict) = keys::checked(&f.trust, &raw, feedback, lifeboat_archive::trust::verified_catalog)?;
        let report = encrypt::verify_stored(raw.as_ref(), &catalog);
        return Ok(Verified {
            location: raw.location(),
            verdict,
            volumes: catalog.volumes.len(),
            entries: None,
            report,
            parent: catalog.parent.as_ref().map(|p| p.name.clone()),
            chain: Vec::new(),
        });
    }
    let (backup, verdict) = keys::open_streamed(&f.trust, &readable(f, raw)?, feedback)?;
    // An increment: its parents are checked (present, signed, the ones it was made against).
    let backup = crate::chain::resolve(f, backup, r, feedback)?;
    // A tape: every volume hashed and every entry checked in one forward pass.
    let report = match backup.objects().sequential() {
        Some(volumes) => lifeboat_archive::restore::verify_sequential(&backup, volumes),
        None => lifeboat_archive::restore::verify(&backup),
    };
    Ok(Verified {
        location: backup.location(),
        verdict,
        volumes: backup.catalog.volumes.len(),
        entries: Some(backup.entry_count()),
        report,
        parent: backup.catalog.parent.as_ref().map(|p| p.name.clone()),
        chain: backup.ancestor_names(),
    })
}

/// Find the backup and compare the live tree at `root` with it: what was added, removed and changed.
pub fn compare(
    f: &Find,
    root: &Path,
    r: &dyn Runner,
    feedback: &mut dyn Feedback,
) -> Result<(Found, Vec<Difference>), Error> {
    let found = find_streamed(f, r, feedback)?;
    let diffs = lifeboat_archive::compare::compare(&found.backup, root);
    Ok((found, diffs))
}

/// What `verify --medium` checks.
#[derive(Debug, Clone)]
pub struct MediumRequest {
    /// The media: devices or ISO files. Empty: the medium the rescue system
    /// booted from (labelled `label`) and the others of its set, found by their labels.
    pub media: Vec<PathBuf>,
    /// The first medium's label (`rescue.label`).
    pub label: String,
    /// Where ISO files are unpacked (with xorriso) to read their backup volumes.
    pub work_dir: PathBuf,
    /// How the backup on them is trusted and decrypted (its source is the media's).
    pub find: Find,
}

/// One medium's embedded checksum check.
#[derive(Debug)]
pub struct MediumResult {
    /// The device or ISO file.
    pub device: String,
    /// Passed, or why not.
    pub result: Result<Checked, MediumError>,
}

/// What `verify --medium` found.
#[derive(Debug)]
pub struct MediaVerified {
    /// Every medium checked, in set order.
    pub media: Vec<MediumResult>,
    /// Media of the set that are in no drive (number, label).
    pub missing: Vec<(u32, String)>,
    /// The backup on the media, its volumes checked against its signed catalog.
    pub backup: Option<Verified>,
    /// Damaged volumes with the medium each is on.
    pub damaged_volumes: Vec<(String, u32)>,
    /// Why the backup's volumes were not checked (none on the media, a medium missing, unreadable).
    pub backup_note: Option<String>,
    /// Whether the backup could not be read at all.
    pub backup_failed: bool,
}

impl MediaVerified {
    /// Every medium passed and the backup on them (when checked) is intact.
    pub fn ok(&self) -> bool {
        self.media.iter().all(|m| m.result.is_ok())
            && !self.backup_failed
            && self.backup.as_ref().is_none_or(|b| b.report.ok())
    }
}

/// Check media: each one's embedded checksum (naming the damaged medium of a
/// set and where it is damaged), then every volume of the backup on them
/// against its signed catalog (when every medium of the set is here).
pub fn verify_medium(req: &MediumRequest, r: &dyn Runner, feedback: &mut dyn Feedback) -> Result<MediaVerified, Error> {
    let mut media = Vec::new();
    let mut missing = Vec::new();
    let check = |device: String| {
        let result = selfcheck::check(Path::new(&device), &mut |_, _| {});
        MediumResult { device, result }
    };
    if req.media.is_empty() {
        let first =
            crate::media::medium_device(r, &req.label, 1).ok_or_else(|| Error::NoMediumToCheck(req.label.clone()))?;
        media.push(check(first));
        let of = media[0].result.as_ref().map(|c| c.position.of).unwrap_or(1);
        for k in 2..=of {
            let label = lifeboat_rescue::medium_label(&req.label, k);
            match crate::media::medium_device(r, &req.label, k) {
                Some(d) => media.push(check(d)),
                None => missing.push((k, label)),
            }
        }
    } else {
        media.extend(req.media.iter().map(|p| check(p.display().to_string())));
    }
    let mut out = MediaVerified {
        media,
        missing,
        backup: None,
        damaged_volumes: Vec::new(),
        backup_note: None,
        backup_failed: false,
    };
    match backup_on_media(req, &out, r, feedback) {
        Ok((verified, on)) => {
            if let Some(v) = &verified {
                for d in &v.report.damaged_volumes {
                    let k = on.iter().find(|(n, _)| d.starts_with(n.as_str())).map_or(0, |(_, k)| *k);
                    out.damaged_volumes.push((d.clone(), k));
                }
            }
            out.backup = verified;
        }
        Err(Note::Skipped(why)) => out.backup_note = Some(why),
        Err(Note::Failed(why)) => {
            out.backup_note = Some(why);
            out.backup_failed = true;
        }
    }
    Ok(out)
}

/// Each file of the backup with the medium it is on.
type VolumesOn = Vec<(String, u32)>;

/// Why the backup on the media was not verified.
enum Note {
    /// Nothing to verify, or not all of it here.
    Skipped(String),
    /// It could not be read.
    Failed(String),
}

/// A medium's files, readable: a mount (a device) or an unpacked copy (an ISO file).
struct Readable {
    dir: PathBuf,
    mounted: bool,
}

/// Make medium `k`'s backup files readable in `dir`.
fn readable_medium(r: &dyn Runner, device: &str, dir: &Path) -> Result<Readable, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let is_dev =
        std::fs::metadata(device).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()));
    if is_dev {
        crate::media::mount_ro(r, device, dir, Some("iso9660")).map_err(|e| format!("{e}"))?;
        return Ok(Readable { dir: dir.into(), mounted: true });
    }
    if !r.has("xorriso") {
        return Err("reading the backup in an ISO file needs xorriso (apt install xorriso)".into());
    }
    // An ISO file: its backup and set description unpacked (this needs no
    // root and no ISO 9660 driver; it needs room for the backup in the work directory).
    let set_file = format!("/{}", lifeboat_rescue::MEDIA_SET_FILE);
    let c = Cmd::new("xorriso")
        .args(["-osirrox", "on:auto_chmod_on", "-indev"])
        .arg(device)
        .args(["-extract_l", "/"])
        .arg(dir)
        .args(["/backup", set_file.as_str(), "--"]);
    // A data medium has no set file when alone; xorriso then reports a missing file.
    let _ = r.apply(&c);
    Ok(Readable { dir: dir.into(), mounted: false })
}

/// The backup directories (`backup/HOST/NAME`) on a readable medium.
fn backups_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for h in std::fs::read_dir(dir.join("backup")).into_iter().flatten().flatten() {
        for b in std::fs::read_dir(h.path()).into_iter().flatten().flatten() {
            if b.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(format!("backup/{}/{}", h.file_name().to_string_lossy(), b.file_name().to_string_lossy()));
            }
        }
    }
    out.sort();
    out
}

fn backup_on_media(
    req: &MediumRequest,
    m: &MediaVerified,
    r: &dyn Runner,
    feedback: &mut dyn Feedback,
) -> Result<(Option<Verified>, VolumesOn), Note> {
    if !m.missing.is_empty() {
        let names: Vec<String> = m.missing.iter().map(|(k, l)| format!("medium {k} ({l})")).collect();
        return Err(Note::Skipped(format!(
            "the backup's volumes are checked when every medium of the set is here; not in any drive: {}",
            names.join(", ")
        )));
    }
    let base = req.work_dir.join("medium-check");
    let mut opened: Vec<(u32, Readable)> = Vec::new();
    let result = (|| {
        for (i, medium) in m.media.iter().enumerate() {
            let k = medium.result.as_ref().map_or(i as u32 + 1, |c| c.position.medium);
            let readable = readable_medium(r, &medium.device, &base.join(format!("medium-{}", i + 1)))
                .map_err(|e| Note::Failed(format!("{}: cannot read its files: {e}", medium.device)))?;
            opened.push((k, readable));
        }
        opened.sort_by_key(|(k, _)| *k);
        let of = m.media.iter().filter_map(|x| x.result.as_ref().ok()).map(|c| c.position.of).max().unwrap_or(1);
        let first = opened.first().map(|(_, x)| x.dir.clone()).unwrap_or_default();
        let backups = backups_in(&first);
        let Some(path) = backups.last() else {
            return Err(Note::Skipped("no backup on the medium (a rescue medium alone)".into()));
        };
        let given: Vec<u32> = opened.iter().map(|(k, _)| *k).collect();
        if (1..=of).any(|k| !given.contains(&k)) {
            return Err(Note::Skipped(format!(
                "the backup's volumes are checked when every medium of the set is given ({} of {of} here)",
                given.len()
            )));
        }
        // One directory of links to the volumes of every medium, as recovery gathers them.
        let all = base.join("set");
        let _ = std::fs::remove_dir_all(&all);
        std::fs::create_dir_all(&all).map_err(|e| Note::Failed(format!("cannot create {}: {e}", all.display())))?;
        let mut on = Vec::new();
        for (k, x) in &opened {
            let dir = x.dir.join(path);
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                on.push((e.file_name().to_string_lossy().into_owned(), *k));
            }
            if dir.is_dir() {
                crate::media::link_all(&dir, &all).map_err(|e| Note::Failed(e.to_string()))?;
            }
        }
        let find = Find { source: Source::Url(format!("file://{}", all.display())), ..req.find.clone() };
        // A directory of links to the volumes on the media, as recovery gathers a set.
        let objects: Arc<dyn Objects> = Arc::new(DirObjects::new(&all).follow_volume_links());
        let v = verify_objects(&find, objects, r, feedback)
            .map_err(|e| Note::Failed(format!("the backup {path} on the media: {e}")))?;
        Ok((Some(v), on))
    })();
    let mut still_mounted = false;
    for (_, x) in opened.iter().filter(|(_, x)| x.mounted) {
        if let Err(e) = r.apply(&Cmd::new("umount").arg(&x.dir)) {
            log::warn!("cannot unmount {}: {e}", x.dir.display());
            still_mounted = true;
        }
    }
    // Never remove below a mount that is still there.
    if !still_mounted {
        let _ = std::fs::remove_dir_all(&base);
    }
    result
}
