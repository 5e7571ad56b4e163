//! `mkbackup`: the rescue medium and the backup in one go, the way mkcdrec's
//! menu offered it: the medium only, the backup on the medium (split over
//! numbered media when one is not enough), or the backup to the target. The
//! medium records where the backup went ([`Location`]), so recovery finds
//! it without questions, and carries the public signing keys, so recovery
//! verifies it.

use crate::job::{live_layout, make, Made};
use crate::location::{Location, LOCATION_NAME};
use crate::select::Request as Backup;
use crate::{keys, Error, Feedback};
use lifeboat_config::{Config, MkbackupMode, RescueFormat};
use lifeboat_rescue::{mkrescue, Options};
use lifeboat_runner::Runner;
use std::path::{Path, PathBuf};

/// ISO 9660 (level 3 as grub-mkrescue writes it) keeps files below 4 GiB.
const ISO_FILE_LIMIT: u64 = (4 << 30) - (1 << 20);

/// What to make.
#[derive(Debug, Clone)]
pub struct Request {
    /// Medium only, backup on the medium, or backup to the target.
    pub mode: MkbackupMode,
    /// Where the backup goes in `target` mode (`backup.target` when None).
    pub target: Option<String>,
    /// Where the media go (`paths.output_dir` when None).
    pub output: Option<PathBuf>,
    /// Make the unattended recovery the default boot entry.
    pub auto_recover: bool,
    /// The kernel image (`rescue.kernel`, else the running kernel's, when None).
    pub kernel: Option<PathBuf>,
    /// The media's format (`rescue.format` when None).
    pub format: Option<RescueFormat>,
}

/// What mkbackup made.
#[derive(Debug)]
pub struct Outcome {
    /// The backup, unless the mode makes the medium only.
    pub backup: Option<Made>,
    /// The rescue media.
    pub rescue: lifeboat_rescue::Report,
    /// Where the layout (the one on the media) was saved.
    pub layout_file: PathBuf,
    /// How many media (ISO or raw images) were written.
    pub media: usize,
    /// The size of one medium (`backup.volume_size`).
    pub medium_size: u64,
}

impl Outcome {
    /// Entries the backup could not store as they were (unreadable, shrank
    /// while read); files that grew while read are stored as their first
    /// bytes, and do not count (on a live system there always are some).
    pub fn lost(&self) -> usize {
        self.backup.as_ref().map_or(0, Made::lost)
    }
}

/// Make the backup (as the mode says) and the rescue media that recover it,
/// and save the layout they carry (`layout diff` compares against it); the
/// backup is announced through [`Feedback::made`] before the media are
/// built. `mkrescue` is this with [`MkbackupMode::Rescue`].
pub fn mkbackup(
    config: &Config,
    req: &Request,
    runner: &dyn Runner,
    feedback: &mut dyn Feedback,
) -> Result<Outcome, Error> {
    // Every program the rescue build needs, checked before the long backup
    // (without it, a missing busybox failed mkbackup only after the backup).
    let format = req.format.unwrap_or(config.rescue.format);
    lifeboat_rescue::system::check_required(format, &config.rescue.extra_programs).map_err(Error::Rescue)?;
    let mut opts = Options {
        kernel: req.kernel.clone(),
        format: req.format,
        output_dir: req.output.clone(),
        auto_recover: req.auto_recover,
        ..Options::default()
    };
    let mut staged: Option<PathBuf> = None;
    let mut backup_disk: Option<PathBuf> = None;
    let mut backup = None;
    let volume = config.backup.volume_size.0;
    // What the rescue system needs to reach a remote target (media carry
    // their backup), found before the long work so that it cannot fail after.
    let remote = match req.mode {
        MkbackupMode::Target => Some(req.target.clone().unwrap_or_else(|| config.backup.target.clone())),
        MkbackupMode::Rescue => Some(config.backup.target.clone()),
        _ => None,
    };
    let (mut access_config, mut access_files) = (config.clone(), Vec::new());
    let url = remote.unwrap_or_default();
    crate::access::for_rescue(config, &url, &mut access_config, &mut access_files, runner, feedback)?;
    match req.mode {
        MkbackupMode::Tape => {
            let url = req.target.clone().unwrap_or_else(|| config.backup.target.clone());
            if !url.starts_with("tape://") {
                return Err(Error::NotATape(url));
            }
            let made = make(
                config,
                &Backup { url: url.clone(), root: "/".into(), paths: Vec::new(), volume_size: volume },
                runner,
                feedback,
            )?;
            feedback.made(&made);
            // The medium names the drive: recovery reads the tape in it (the one backup on it).
            opts.etc_files.push((LOCATION_NAME.into(), Location::Url { url }.to_json()?));
            backup = Some(made);
        }
        MkbackupMode::Rescue => {}
        MkbackupMode::Target => {
            let url = req.target.clone().unwrap_or_else(|| config.backup.target.clone());
            let made = make(
                config,
                &Backup { url, root: "/".into(), paths: Vec::new(), volume_size: volume },
                runner,
                feedback,
            )?;
            feedback.made(&made);
            let loc = match made.local_dir() {
                Some(dir) => Location::of_dir(runner, dir),
                None => Location::Url { url: made.location() },
            };
            if !matches!(loc, Location::Nfs { .. }) {
                backup_disk = made.local_dir().and_then(lifeboat_layout::safety::device_of_file);
            }
            opts.etc_files.push((LOCATION_NAME.into(), loc.to_json()?));
            backup = Some(made);
        }
        MkbackupMode::Media => {
            let format = req.format.unwrap_or(config.rescue.format);
            if !format.is_bootable_medium() {
                return Err(Error::MediaFormat(format.to_string()));
            }
            let stage = config.paths.work_dir.join("media-backup");
            std::fs::create_dir_all(&stage).map_err(Error::io(format!("cannot create {}", stage.display())))?;
            // backup.volume_size is the medium's size here; the archive's
            // volumes are an eighth of it, so the media fill up well.
            let req = Backup {
                url: format!("file://{}", stage.display()),
                root: "/".into(),
                paths: Vec::new(),
                volume_size: (volume / 8).clamp(1 << 20, ISO_FILE_LIMIT),
            };
            let made = make(config, &req, runner, feedback)?;
            feedback.made(&made);
            let on_medium = put_on_media(&made, &mut opts)?;
            opts.medium_size = Some(volume);
            let loc = Location::Media { path: on_medium, label: Some(config.rescue.label.clone()) };
            opts.etc_files.push((LOCATION_NAME.into(), loc.to_json()?));
            staged = Some(stage);
            backup = Some(made);
        }
    }
    // Each ISO's embedded checksum names the backup the media go with.
    if let Some(made) = &backup {
        opts.backup_id = backup_id(made);
    }
    let mut layout = live_layout(config, runner)?;
    // The disk that holds the backup is what recovery reads from: it is never recreated.
    if let Some(d) = &backup_disk {
        for disk in layout.disks.iter_mut().filter(|x| Path::new(&x.id) == d.as_path()) {
            disk.excluded = Some("holds the backup (recovery reads from it)".into());
        }
    }
    // The public signing keys go onto the medium, so recovery verifies the backup.
    let (mut rescue_config, mut key_files) = keys::for_rescue(config, &layout.meta.hostname, feedback)?;
    rescue_config.backup.s3 = access_config.backup.s3;
    key_files.extend(access_files);
    opts.etc_files.extend(key_files);
    let built = mkrescue(&rescue_config, &layout, &opts, runner).map_err(Error::Rescue);
    if let Some(stage) = &staged {
        // The backup now lives on the medium; the staging copy would only fill the disk.
        let _ = std::fs::remove_dir_all(stage);
    }
    let rescue = built?;
    let layout_file = config.paths.layout_file.clone();
    layout.save(&layout_file).map_err(|e| Error::SaveLayout(layout_file.clone(), e))?;
    let media = rescue.outputs.iter().filter(|(p, _)| p.extension().is_some_and(|e| e == "iso" || e == "img")).count();
    Ok(Outcome { backup, rescue, layout_file, media, medium_size: volume })
}

/// The backup's name (its directory's or URL's last part), at most 64 bytes.
fn backup_id(made: &Made) -> String {
    let loc = made.location();
    let name = loc.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Put the staged backup's files on the media: the catalog and manifest on
/// the first medium, the volumes filling it and the next ones. Returns the
/// backup's directory on the medium (`backup/HOST/NAME`).
fn put_on_media(made: &Made, opts: &mut Options) -> Result<String, Error> {
    let dir = made.local_dir().map(Path::to_path_buf).unwrap_or_else(|| made.location().into());
    let host = &made.catalog.host;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let on_medium = format!("backup/{host}/{name}");
    let rd = std::fs::read_dir(&dir).map_err(Error::io(format!("cannot read {}", dir.display())))?;
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let file = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let list = if file.starts_with("vol-") { &mut opts.spill_files } else { &mut opts.media_files };
        list.push((p, format!("{on_medium}/{file}")));
    }
    Ok(on_medium)
}
