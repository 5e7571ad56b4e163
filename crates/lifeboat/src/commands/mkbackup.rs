//! `lifeboat mkbackup`: the rescue medium and the backup in one go, the way
//! mkcdrec's menu offered it. The medium records where the backup went, so
//! recovery finds it without questions.

use super::backup::{make, Request};
use super::recover::Location;
use super::Ctx;
use crate::cli::MkbackupArgs;
use anyhow::{bail, Context};
use lifeboat_config::{human, MkbackupMode};
use lifeboat_rescue::{mkrescue, Options};
use lifeboat_runner::{Cmd, Mode, Runner, SystemRunner};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// ISO 9660 (level 3 as grub-mkrescue writes it) keeps files below 4 GiB.
const ISO_FILE_LIMIT: u64 = (4 << 30) - (1 << 20);

/// Where a backup directory is, as the rescue system will look for it: the
/// UUID of the local filesystem that holds it, or the NFS export.
fn location_of(r: &dyn Runner, dir: &Path) -> Location {
    let mut loc = Location { kind: "target".into(), path: dir.display().to_string(), ..Location::default() };
    let Ok(out) = r.probe(&Cmd::new("findmnt").args(["-n", "-o", "SOURCE,TARGET,FSTYPE", "-T"]).arg(dir)) else {
        return loc;
    };
    let text = out.text();
    let f: Vec<&str> = text.split_whitespace().collect();
    let [source, target, fstype, ..] = f[..] else { return loc };
    let source = source.split('[').next().unwrap_or(source);
    loc.fs_mountpoint = Some(target.to_string());
    if fstype.starts_with("nfs") {
        loc.nfs = Some(source.to_string());
        return loc;
    }
    if let Ok(kv) = r.probe(&Cmd::new("blkid").args(["-p", "-o", "export", source])) {
        loc.fs_uuid =
            lifeboat_layout::capture::parse_export(&kv.text()).into_iter().find(|(k, _)| k == "UUID").map(|(_, v)| v);
    }
    loc
}

/// `lifeboat mkbackup`.
pub fn run(ctx: &Ctx, a: MkbackupArgs) -> anyhow::Result<ExitCode> {
    let mode = match a.mode.as_deref() {
        Some(m) => m.parse()?,
        None => ctx.config.mkbackup.mode,
    };
    let r = SystemRunner::new(Mode::Run);
    let mut opts = Options { output_dir: a.output.clone(), auto_recover: a.auto_recover, ..Options::default() };
    let mut staged: Option<PathBuf> = None;
    let mut backup_disk: Option<PathBuf> = None;
    // Entries the backup could not store as they were (unreadable, shrank while read).
    let mut lost = 0usize;
    let volume = ctx.config.backup.volume_size.0;
    match mode {
        MkbackupMode::Tape => bail!(
            "mkbackup mode `tape` is not available in this version of lifeboat; use --mode target with a directory, NFS or USB mount, or --mode media"
        ),
        MkbackupMode::Rescue => {}
        MkbackupMode::Target => {
            let url = a.target.clone().unwrap_or_else(|| ctx.config.backup.target.clone());
            let req = Request { url, root: PathBuf::from("/"), paths: Vec::new(), volume_size: volume };
            let made = make(ctx, &req)?;
            lost = report(&made);
            let loc = location_of(&r, &made.dir);
            if loc.nfs.is_none() {
                backup_disk = lifeboat_layout::safety::device_of_file(&made.dir);
            }
            opts.etc_files.push(("backup-location.json".into(), serde_json::to_string_pretty(&loc)?));
        }
        MkbackupMode::Media => {
            let format = ctx.config.rescue.format;
            if !format.is_bootable_medium() {
                bail!("mkbackup mode `media` puts the backup on the ISO or raw image; rescue.format is `{format}`");
            }
            let stage = ctx.config.paths.work_dir.join("media-backup");
            std::fs::create_dir_all(&stage).with_context(|| format!("cannot create {}", stage.display()))?;
            // backup.volume_size is the medium's size here; the archive's
            // volumes are an eighth of it, so the media fill up well.
            let req = Request {
                url: format!("file://{}", stage.display()),
                root: PathBuf::from("/"),
                paths: Vec::new(),
                volume_size: (volume / 8).clamp(1 << 20, ISO_FILE_LIMIT),
            };
            let made = make(ctx, &req)?;
            lost = report(&made);
            let host = &made.catalog.host;
            let name = made.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let on_medium = format!("backup/{host}/{name}");
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&made.dir)?.flatten().map(|e| e.path()).collect();
            entries.sort();
            for p in entries {
                let file = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                // The catalog and manifest go on the first medium; the volumes fill it and the next ones.
                let list = if file.starts_with("vol-") { &mut opts.spill_files } else { &mut opts.media_files };
                list.push((p, format!("{on_medium}/{file}")));
            }
            opts.medium_size = Some(volume);
            let loc = Location {
                kind: "media".into(),
                path: on_medium,
                label: Some(ctx.config.rescue.label.clone()),
                ..Location::default()
            };
            opts.etc_files.push(("backup-location.json".into(), serde_json::to_string_pretty(&loc)?));
            staged = Some(stage);
        }
    }
    let mut layout = super::layout::live(ctx);
    // The disk that holds the backup is what recovery reads from: it is never recreated.
    if let Some(d) = &backup_disk {
        for disk in layout.disks.iter_mut().filter(|x| Path::new(&x.id) == d.as_path()) {
            disk.excluded = Some("holds the backup (recovery reads from it)".into());
        }
    }
    // The public signing keys go onto the medium, so recovery verifies the backup.
    let rescue_config = super::trust::for_rescue(ctx, &layout.meta.hostname, &mut opts.etc_files)?;
    let built = mkrescue(&rescue_config, &layout, &opts, &r).context("cannot make the rescue media");
    if let Some(stage) = &staged {
        // The backup now lives on the medium; the staging copy would only fill the disk.
        let _ = std::fs::remove_dir_all(stage);
    }
    let built = built?;
    let saved = &ctx.config.paths.layout_file;
    layout.save(saved).with_context(|| format!("cannot save the layout to {}", saved.display()))?;
    for (p, s) in &built.outputs {
        println!("wrote {} ({})", p.display(), human(*s));
    }
    let media = built.outputs.iter().filter(|(p, _)| p.extension().is_some_and(|e| e == "iso" || e == "img")).count();
    if mode == MkbackupMode::Media && media > 1 {
        println!(
            "the backup fills {media} media of {}: burn them all; recovery boots from the first and reads the others from any drive",
            human(volume)
        );
    }
    println!("kernel: {} ({})", built.kernel.version, built.kernel.reason);
    println!("layout saved to {}; rescue media built in {:.1} s", saved.display(), built.seconds);
    if lost > 0 {
        println!("the backup is INCOMPLETE: {lost} entries are not stored as they were (listed above); exit 1");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Print the backup's summary and warnings; returns how many entries are not stored as they were.
///
/// Files that grew or were touched while being read are stored as their
/// first bytes when reading began, and are named here; on a live system
/// (journals, logs) there always are some, so they do not fail mkbackup
/// (`lifeboat backup` exits 1 for them, as GNU tar does).
fn report(made: &super::backup::Made) -> usize {
    let s = &made.catalog.stats;
    println!(
        "backup {}: {} entries, {} read, {} written, {:.1} s",
        made.dir.display(),
        s.entries,
        human(s.bytes_in),
        human(s.bytes_out),
        made.seconds
    );
    for c in s.changed.iter().filter(|c| !s.shrank.iter().any(|x| x.starts_with(&format!("{c}: ")))) {
        println!("  changed while being read (stored as it was when reading began): {c}");
    }
    for c in &s.shrank {
        println!("  CHANGED while being read, not stored as it was: {c}");
    }
    for u in &s.unreadable {
        println!("  NOT BACKED UP: {u}");
    }
    s.unreadable.len() + s.shrank.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_runner::ScriptedRunner;

    #[test]
    fn a_backup_on_a_local_disk_is_found_by_uuid_and_one_on_nfs_by_its_export() {
        let r = ScriptedRunner::new()
            .answer("findmnt -n -o SOURCE,TARGET,FSTYPE -T /mnt/backup/web1/S", "/dev/sdb1 /mnt/backup ext4\n")
            .answer("blkid -p -o export /dev/sdb1", "DEVNAME=/dev/sdb1\nUUID=1234-abcd\nTYPE=ext4\n");
        let l = location_of(&r, Path::new("/mnt/backup/web1/S"));
        assert_eq!(
            (l.fs_uuid.as_deref(), l.fs_mountpoint.as_deref(), l.nfs),
            (Some("1234-abcd"), Some("/mnt/backup"), None)
        );
        let r = ScriptedRunner::new().answer(
            "findmnt -n -o SOURCE,TARGET,FSTYPE -T /srv/nfs/web1/S",
            "backup.example.net:/export/backups /srv/nfs nfs4\n",
        );
        let l = location_of(&r, Path::new("/srv/nfs/web1/S"));
        assert_eq!(l.nfs.as_deref(), Some("backup.example.net:/export/backups"));
        assert_eq!((l.fs_uuid, l.fs_mountpoint.as_deref()), (None, Some("/srv/nfs")));
    }
}
