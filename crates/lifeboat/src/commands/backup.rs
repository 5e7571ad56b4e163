//! `lifeboat backup`.

use super::Ctx;
use crate::cli::BackupArgs;
use anyhow::{bail, Context};
use lifeboat_archive::target::{self, Target};
use lifeboat_archive::{backup::write_signed_backup, BackupOptions};
use lifeboat_config::{human, BackupCompression};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The (device, inode) of a directory, following symlinks; None when it does not exist.
fn dev_ino(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))
}

/// Say on stderr that dead runs left staging directories, and how to remove them.
fn mention_interrupted(t: &target::FileTarget, url: &str, host: &str) {
    let dead: Vec<_> =
        t.scan(host).unwrap_or_default().into_iter().filter(|l| l.state == target::State::Interrupted).collect();
    if dead.is_empty() {
        return;
    }
    let bytes: u64 = dead.iter().map(|l| l.bytes).sum();
    eprintln!(
        "lifeboat: note: {} interrupted backup(s) of {host} (dead runs, {}) are on the target: {}",
        dead.len(),
        human(bytes),
        dead.iter().map(|l| l.dir.display().to_string()).collect::<Vec<_>>().join(" ")
    );
    eprintln!("lifeboat: note: remove them with: lifeboat backup prune --partial --target {url}");
}

/// What to back up, and where.
#[derive(Debug, Clone)]
pub struct Request {
    /// Target URL.
    pub url: String,
    /// Tree root.
    pub root: PathBuf,
    /// Paths under the root; empty means every local filesystem mounted now.
    pub paths: Vec<PathBuf>,
    /// Volume size in bytes.
    pub volume_size: u64,
}

/// A published backup.
#[derive(Debug)]
pub struct Made {
    /// Its directory.
    pub dir: PathBuf,
    /// Its catalog.
    pub catalog: lifeboat_archive::Catalog,
    /// How long it took.
    pub seconds: f64,
}

/// Make a backup and publish it atomically (with a progress line on a terminal).
pub fn make(ctx: &Ctx, req: &Request) -> anyhow::Result<Made> {
    let url = req.url.clone();
    if url.is_empty() {
        bail!("no backup target: give --target file:///DIR (or set backup.target in the config)");
    }
    let target = target::open(&url)?;
    let layout = super::layout::live(ctx);
    let paths: Vec<PathBuf> = if req.paths.is_empty() {
        // Every local filesystem mounted now, each as a unit; not those on
        // disks that recovery leaves alone (USB backup disks, loop devices).
        let mut v: Vec<PathBuf> = Vec::new();
        for f in &layout.filesystems {
            if let Some(why) = layout.disk_of(&f.device).and_then(|d| d.excluded.as_ref()) {
                for m in &f.mountpoints {
                    eprintln!("not backed up: {m} ({} is excluded from the layout: {why})", f.device);
                }
                continue;
            }
            for m in &f.mountpoints {
                if let Ok(r) = Path::new(m).strip_prefix(&req.root) {
                    v.push(if r.as_os_str().is_empty() { PathBuf::from(".") } else { r.to_path_buf() });
                }
            }
        }
        v.sort();
        v.dedup();
        v
    } else {
        // Paths below the root only: `..` and absolute paths elsewhere would
        // store entries that restore outside the restore's target.
        req.paths
            .iter()
            .map(|p| lifeboat_archive::backup::selection_path(&req.root, p))
            .collect::<Result<Vec<_>, _>>()
            .context("nothing was backed up")?
    };
    if paths.is_empty() {
        bail!(
            "nothing to back up: no filesystem of the layout is mounted at or below {} (filesystems on excluded disks are left out; give PATHS, or see layout.include_virtual)",
            req.root.display()
        );
    }
    let mut exclude = ctx.config.backup.exclude.clone();
    exclude.push("tmp/*".into());
    // Signing: the secret key never goes into a backup (whoever reads the target could sign with it).
    exclude.extend(super::trust::secret_key_excludes(&req.root, &ctx.config.paths.key_dir));
    // The target and work directories, by what they are rather than by how
    // they are named: a target reached through a symlink is still left out.
    let exclude_dirs: Vec<(u64, u64)> = [&ctx.config.paths.work_dir, &ctx.config.paths.output_dir, &target.root]
        .into_iter()
        .filter_map(|d| dev_ino(d))
        .collect();
    let min = lifeboat_archive::frames::MIN_VOLUME_SIZE;
    if req.volume_size < min {
        bail!(
            "the volume size {} is below the minimum of {} (every compressed frame must fit in a volume): give --volume-size {}K or more, or set backup.volume_size",
            human(req.volume_size),
            human(min),
            min >> 10
        );
    }
    for s in layout.swaps.iter().filter(|s| s.file) {
        exclude.extend(Path::new(&s.device).strip_prefix(&req.root).ok().map(|r| r.to_string_lossy().into_owned()));
    }
    let mut opts = BackupOptions {
        root: req.root.clone(),
        paths,
        exclude,
        volume_size: req.volume_size,
        codec: match ctx.config.backup.compression {
            BackupCompression::Gzip => lifeboat_archive::frames::Codec::Gzip(ctx.config.backup.level),
            BackupCompression::Zstd => lifeboat_archive::frames::Codec::Zstd(ctx.config.backup.level as i32),
        },
        exclude_dirs,
    };
    if req.paths.is_empty() {
        // A filesystem of the default selection that the excludes cover is
        // left out, said once; a path given explicitly is an error instead.
        let covered: Vec<PathBuf> = opts
            .paths
            .iter()
            .filter(|p| *p != Path::new(".") && opts.excludes(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str())))
            .cloned()
            .collect();
        for p in &covered {
            eprintln!("not backed up: {} (the filesystem mounted there is excluded)", req.root.join(p).display());
        }
        opts.paths.retain(|p| !covered.contains(p));
        if opts.paths.is_empty() {
            bail!("nothing to back up: every filesystem below {} is excluded (backup.exclude)", req.root.display());
        }
    }
    opts.check().context("nothing was backed up")?;
    let host = layout.meta.hostname.clone();
    // Signing: the key is made (and announced) at the first backup.
    let key = super::trust::signing_key(ctx, &host)?;
    let name = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string().replace(':', "");
    mention_interrupted(&target, &url, &host);
    let staging = target.begin(&host, &name)?;
    let start = std::time::Instant::now();
    // Expected size for the ETA: the used space of the filesystems backed up whole.
    let expected: u64 = layout
        .filesystems
        .iter()
        .filter(|f| f.mountpoints.iter().any(|m| opts.paths.iter().any(|p| req.root.join(p) == Path::new(m))))
        .filter_map(|f| f.used)
        .sum();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !ctx.json;
    let mut last = std::time::Instant::now();
    let mut progress = |bytes: u64, files: u64| {
        if !tty || last.elapsed().as_millis() < 250 {
            return;
        }
        last = std::time::Instant::now();
        let secs = start.elapsed().as_secs_f64().max(0.001);
        let rate = bytes as f64 / secs;
        let eta = if expected > bytes && rate > 0.0 {
            let left = ((expected - bytes) as f64 / rate) as u64;
            format!("  ETA {}:{:02}", left / 60, left % 60)
        } else {
            String::new()
        };
        let total = if expected > 0 { format!(" / {}", human(expected)) } else { String::new() };
        eprint!("\r  {}{total}  {files} files  {:.0} MB/s{eta}   ", human(bytes), rate / 1e6);
    };
    let result = write_signed_backup(&staging.dir, &opts, &host, Some(&key), &mut progress);
    if tty {
        eprintln!();
    }
    let catalog = match result {
        Ok(c) => c,
        Err(e) => {
            target.abort(&host, &name);
            return Err(e).context("the backup was not completed; the previous backups on the target are untouched");
        }
    };
    let done = target.publish(&host, &name)?;
    drop(staging);
    Ok(Made { dir: done, catalog, seconds: start.elapsed().as_secs_f64() })
}

/// Back up, publish atomically, and print the summary (or list, or show one backup).
pub fn run(ctx: &Ctx, a: BackupArgs) -> anyhow::Result<ExitCode> {
    match a.cmd {
        Some(crate::cli::BackupCmd::List { target }) => return list(ctx, target),
        Some(crate::cli::BackupCmd::Prune { target, partial }) => return prune(ctx, target, partial),
        Some(crate::cli::BackupCmd::Info(from)) => return info(ctx, &from),
        None => {}
    }
    let url = a.target.unwrap_or_else(|| ctx.config.backup.target.clone());
    let req = Request {
        url,
        root: a.root.clone(),
        paths: a.paths.clone(),
        volume_size: a.volume_size.unwrap_or(ctx.config.backup.volume_size).0,
    };
    let Made { dir: done, catalog, seconds: secs } = make(ctx, &req)?;
    let s = &catalog.stats;
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "backup": done, "seconds": secs, "catalog": catalog }))?
        );
    } else {
        let grew = s.changed.len().saturating_sub(s.shrank.len());
        if s.unreadable.is_empty() && s.shrank.is_empty() && grew == 0 {
            println!("backup {} complete", done.display());
        } else if s.unreadable.is_empty() && s.shrank.is_empty() {
            println!(
                "backup {} complete, but {grew} file(s) changed while being read: each is stored as it was when \
                 reading began (listed below)",
                done.display()
            );
        } else {
            let mut why = Vec::new();
            if !s.unreadable.is_empty() {
                why.push(format!("INCOMPLETE: {} entries could not be read", s.unreadable.len()));
            }
            if !s.shrank.is_empty() {
                why.push(format!(
                    "CHANGED: {} file(s) shrank while being read and are not stored as they were",
                    s.shrank.len()
                ));
            }
            println!("backup {} written, {} (listed below and in backup info)", done.display(), why.join("; "));
        }
        println!(
            "  {} entries ({} files), {} read, {} written in {} volume(s), ratio {:.3}, {:.0} MB/s",
            s.entries,
            s.files,
            human(s.bytes_in),
            human(s.bytes_out),
            catalog.volumes.len(),
            s.bytes_out as f64 / s.bytes_in.max(1) as f64,
            s.bytes_in as f64 / secs.max(0.001) / 1e6
        );
        if s.sockets_skipped > 0 {
            println!("  {} sockets skipped (they cannot be archived)", s.sockets_skipped);
        }
        for c in s.changed.iter().filter(|c| !s.shrank.iter().any(|x| x.starts_with(&format!("{c}: ")))) {
            println!("  changed while being read: {c}");
        }
        for c in &s.shrank {
            println!("  CHANGED while being read: {c}");
        }
        for u in &s.unreadable {
            println!("  NOT BACKED UP: {u}");
        }
    }
    // Like GNU tar ("file changed as we read it"): a file that changed while
    // it was read, or could not be read, makes the exit 1.
    Ok(if s.unreadable.is_empty() && s.changed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The backup a `--from` URL names: a backup directory, or the newest backup of this host on a target.
fn find_backup(ctx: &Ctx, from: &crate::cli::FromArgs) -> anyhow::Result<lifeboat_archive::read::Backup> {
    Ok(find_verified_backup(ctx, from)?.0)
}

/// [`find_backup`], with what its signature check found: the backup is
/// refused unless its catalog is signed by a trusted key (or `--insecure-unsigned`).
fn find_verified_backup(
    ctx: &Ctx,
    from: &crate::cli::FromArgs,
) -> anyhow::Result<(lifeboat_archive::read::Backup, lifeboat_archive::trust::Verdict)> {
    super::trust::open(ctx, &backup_dir(ctx, from)?, from.insecure_unsigned)
}

/// The directory of the backup a `--from` URL names.
fn backup_dir(ctx: &Ctx, from: &crate::cli::FromArgs) -> anyhow::Result<PathBuf> {
    let url = from.from.clone().unwrap_or_else(|| ctx.config.backup.target.clone());
    if url.is_empty() {
        bail!("no backup given: use --from file:///DIR (a backup, or a target holding backups)");
    }
    let t = target::open(&url)?;
    Ok(if target::is_complete(&t.root) {
        t.root.clone()
    } else {
        let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
        t.newest(&host)?
    })
}

/// `lifeboat verify`.
pub fn verify(ctx: &Ctx, from: crate::cli::FromArgs) -> anyhow::Result<ExitCode> {
    let (b, signature) = find_verified_backup(ctx, &from)?;
    let r = lifeboat_archive::restore::verify(&b);
    if ctx.json {
        let signature = super::trust::to_json(&signature);
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"backup": b.dir, "ok": r.ok(), "signature": signature, "report": r})
            )?
        );
    } else {
        println!(
            "backup {}: {} volumes, {} entries in the manifest",
            b.dir.display(),
            b.catalog.volumes.len(),
            b.entries.len()
        );
        println!("  catalog {}", super::trust::describe(&signature));
        for v in &r.damaged_volumes {
            println!("  DAMAGED volume {v}");
        }
        for l in &r.lost {
            println!("  UNREADABLE {l}");
        }
        if r.ok() {
            println!("  intact: {} entries, {} of content, every checksum matches", r.entries, human(r.bytes));
        } else {
            println!("  {} of {} entries readable; {} cannot be restored", r.entries, b.entries.len(), r.lost.len());
        }
    }
    Ok(if r.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `lifeboat restore`.
pub fn restore(ctx: &Ctx, a: crate::cli::RestoreArgs) -> anyhow::Result<ExitCode> {
    use lifeboat_archive::restore as r;
    let dir = backup_dir(ctx, &a.from)?;
    // A catalog that is signed and intact while the backup does not open: its
    // manifest is damaged or missing. The volumes are still bound to the
    // catalog by their BLAKE3, so the tar stream alone can be restored.
    let source = match super::trust::open(ctx, &dir, a.from.insecure_unsigned) {
        Ok((b, _)) => Source::Manifest(b),
        Err(e) => {
            let verified = lifeboat_archive::trust::verified_catalog;
            match super::trust::checked(ctx, &dir, a.from.insecure_unsigned, verified) {
                Ok((catalog, _)) if a.filesystem.is_none() => {
                    eprintln!(
                        "lifeboat: {e:#}\nlifeboat: restoring from the tar stream alone (its volumes are checked against the signed catalog)"
                    );
                    Source::Stream(r::from_stream(&dir, catalog)?)
                }
                _ => return Err(e),
            }
        }
    };
    std::fs::create_dir_all(&a.to).with_context(|| format!("cannot create {}", a.to.display()))?;
    let start = std::time::Instant::now();
    let (b, rep) = match &source {
        Source::Stream(so) => (&so.backup, r::restore_stream_only(so, &a.to, &a.patterns, &mut |_, _| {})?),
        Source::Manifest(b) => match &a.filesystem {
            Some(mp) => (b, r::restore_filesystem(b, &a.to, mp, &mut |_, _| {})?),
            None => (b, r::restore(b, &a.to, &a.patterns)?),
        },
    };
    report_restore(ctx, &a, b, &rep, start)
}

/// What a restore reads: the backup with its manifest, or its tar stream alone.
enum Source {
    Manifest(lifeboat_archive::read::Backup),
    Stream(lifeboat_archive::restore::StreamOnly),
}

/// Print what a restore did; exit 1 when anything was lost or could not be checked.
fn report_restore(
    ctx: &Ctx,
    a: &crate::cli::RestoreArgs,
    b: &lifeboat_archive::read::Backup,
    r: &lifeboat_archive::restore::RestoreReport,
    start: std::time::Instant,
) -> anyhow::Result<ExitCode> {
    let secs = start.elapsed().as_secs_f64();
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"backup": b.dir, "seconds": secs, "report": r}))?
        );
    } else {
        println!(
            "restored {} entries ({}) from {} into {} in {:.1} s",
            r.restored,
            human(r.bytes),
            b.dir.display(),
            a.to.display(),
            secs
        );
        for l in &r.lost {
            println!("  NOT RESTORED {l}");
        }
        for u in &r.unchecked {
            println!("  NOT CHECKED {u}");
        }
    }
    Ok(if r.lost.is_empty() && r.unchecked.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `lifeboat compare`.
pub fn compare(ctx: &Ctx, a: crate::cli::CompareArgs) -> anyhow::Result<ExitCode> {
    let b = find_backup(ctx, &a.from)?;
    let diffs = lifeboat_archive::compare::compare(&b, &a.root);
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&diffs)?);
    } else if diffs.is_empty() {
        println!("{} matches the backup {} ({} entries)", a.root.display(), b.dir.display(), b.entries.len());
    } else {
        for d in &diffs {
            if d.details.is_empty() {
                println!("{:<8} {}", d.what, d.path);
            } else {
                println!("{:<8} {}  ({})", d.what, d.path, d.details.join(", "));
            }
        }
        println!("{} difference(s) between {} and the backup {}", diffs.len(), a.root.display(), b.dir.display());
    }
    Ok(if diffs.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn describe(c: &lifeboat_archive::Catalog) -> serde_json::Value {
    let size: u64 = c.volumes.iter().map(|v| v.size).sum();
    serde_json::json!({
        "host": c.host,
        "created": c.created,
        "bytes": size,
        "files": c.stats.files,
        "entries": c.stats.entries,
        "content_bytes": c.stats.bytes_in,
        "ratio": size as f64 / c.stats.bytes_in.max(1) as f64,
        "volumes": c.volumes.len(),
        "compression": c.compression,
        "warnings": c.stats.changed.len() + c.stats.unreadable.len(),
        "shrank": c.stats.shrank.len(),
    })
}

fn target_of(ctx: &Ctx, target: Option<String>) -> anyhow::Result<(String, target::FileTarget)> {
    let url = target.unwrap_or_else(|| ctx.config.backup.target.clone());
    if url.is_empty() {
        bail!("no backup target: give --target file:///DIR (or set backup.target in the config)");
    }
    let t = target::open(&url)?;
    Ok((url, t))
}

fn when(t: Option<std::time::SystemTime>) -> String {
    t.map(|t| humantime::format_rfc3339_seconds(t).to_string()).unwrap_or_else(|| "?".into())
}

/// `lifeboat backup list`: the backups (damaged ones marked) on stdout;
/// runs in progress and interrupted runs (dead `.partial` directories) on stderr.
fn list(ctx: &Ctx, target: Option<String>) -> anyhow::Result<ExitCode> {
    use target::State;
    let (url, t) = target_of(ctx, target)?;
    let mut rows = Vec::new();
    let mut staging = Vec::new();
    // Signing: each backup's signature is checked and shown (the readers refuse unsigned ones).
    let keys = lifeboat_archive::sign::TrustedKeys::load(&ctx.config.paths.key_dir).ok();
    let policy = lifeboat_archive::trust::Policy::Warn(keys.as_ref());
    for host in t.hosts()? {
        for l in t.scan(&host)? {
            match &l.state {
                State::Complete => match lifeboat_archive::trust::open(&l.dir, policy) {
                    Ok((b, signature)) => {
                        let mut d = describe(&b.catalog);
                        d["signature"] = super::trust::to_json(&signature);
                        rows.push((l.dir, Ok(d)))
                    }
                    Err(e) => rows.push((l.dir, Err(format!("DAMAGED: {e}")))),
                },
                State::Damaged(why) => rows.push((l.dir, Err(format!("INCOMPLETE or DAMAGED: {why}")))),
                State::Interrupted | State::Running => staging.push(l),
            }
        }
    }
    if ctx.json {
        let mut v: Vec<_> = rows
            .iter()
            .map(|(d, i)| match i {
                Ok(i) => serde_json::json!({"backup": d, "state": "complete", "info": i}),
                Err(why) => serde_json::json!({"backup": d, "state": "damaged", "info": null, "error": why}),
            })
            .collect();
        v.extend(staging.iter().map(|l| {
            serde_json::json!({
                "backup": l.dir,
                "state": if l.state == State::Running { "running" } else { "interrupted" },
                "info": null,
                "bytes": l.bytes,
                "modified": when(l.modified),
            })
        }));
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<22} {:<16} {:>10} {:>9} {:>7} {:<6}  backup", "created", "host", "size", "files", "ratio", "signed");
    let signed = |i: &serde_json::Value| i["signature"]["verified"].as_bool() == Some(true);
    for (dir, info) in &rows {
        match info {
            Ok(i) => println!(
                "{:<22} {:<16} {:>10} {:>9} {:>7.3} {:<6}  {}",
                i["created"].as_str().unwrap_or(""),
                i["host"].as_str().unwrap_or(""),
                human(i["bytes"].as_u64().unwrap_or(0)),
                i["files"],
                i["ratio"].as_f64().unwrap_or(0.0),
                if signed(i) { "yes" } else { "NO" },
                dir.display()
            ),
            Err(why) => {
                println!(
                    "{:<22} {:<16} {:>10} {:>9} {:>7} {:<6}  {} ({why})",
                    "?",
                    "?",
                    "?",
                    "?",
                    "?",
                    "?",
                    dir.display()
                )
            }
        }
    }
    let unsigned = rows.iter().filter(|(_, i)| i.as_ref().is_ok_and(|i| !signed(i))).count();
    if unsigned > 0 {
        println!(
            "{unsigned} backup(s) NOT signed by a key trusted here ({}): verify, restore and recover refuse them; backup info --from file:///DIR says why",
            ctx.config.paths.key_dir.display()
        );
    }
    let damaged = rows.iter().filter(|(_, i)| i.is_err()).count();
    if damaged > 0 {
        println!("{} backup(s) in {url}, {damaged} of them incomplete or damaged", rows.len());
    } else {
        println!("{} backup(s) in {url}", rows.len());
    }
    // Not backups: said on stderr, so that the table stays a table of backups.
    for l in &staging {
        let what =
            if l.state == State::Running { "in progress (a live run holds it)" } else { "INTERRUPTED (its run died)" };
        eprintln!("not a backup: {} {what}, {}, last written {}", l.dir.display(), human(l.bytes), when(l.modified));
    }
    if staging.iter().any(|l| l.state == State::Interrupted) {
        eprintln!("remove the interrupted ones with: lifeboat backup prune --partial --target {url}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `lifeboat backup prune --partial`: remove the staging directories of dead runs (never of a live one).
fn prune(ctx: &Ctx, target: Option<String>, partial: bool) -> anyhow::Result<ExitCode> {
    if !partial {
        bail!("backup prune removes interrupted runs only, for now: give --partial");
    }
    let (url, t) = target_of(ctx, target)?;
    let mut removed = Vec::new();
    for host in t.hosts()? {
        removed.extend(t.prune_partial(&host)?);
    }
    if ctx.json {
        let v: Vec<_> = removed.iter().map(|l| serde_json::json!({"removed": l.dir, "bytes": l.bytes})).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    for l in &removed {
        println!("removed {} ({}, last written {})", l.dir.display(), human(l.bytes), when(l.modified));
    }
    let bytes: u64 = removed.iter().map(|l| l.bytes).sum();
    println!("{} interrupted backup(s) removed from {url}, {} freed", removed.len(), human(bytes));
    Ok(ExitCode::SUCCESS)
}

/// `lifeboat backup info`.
fn info(ctx: &Ctx, from: &crate::cli::FromArgs) -> anyhow::Result<ExitCode> {
    let (b, signature) = find_verified_backup(ctx, from)?;
    let c = &b.catalog;
    if ctx.json {
        let signature = super::trust::to_json(&signature);
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"backup": b.dir, "summary": describe(c), "signature": signature, "catalog": c})
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let d = describe(c);
    println!("backup   {}", b.dir.display());
    println!("catalog  {}", super::trust::describe(&signature));
    println!("host     {}  created {}", c.host, c.created);
    println!("paths    {}", c.paths.join(" "));
    println!("content  {} entries, {} files, {}", c.stats.entries, c.stats.files, human(c.stats.bytes_in));
    println!(
        "stored   {} in {} {} volume(s) of at most {}, ratio {:.3}",
        human(d["bytes"].as_u64().unwrap_or(0)),
        c.volumes.len(),
        c.compression,
        human(c.volume_size),
        d["ratio"].as_f64().unwrap_or(0.0)
    );
    for v in &c.volumes {
        println!("  {}  {}  blake3 {}", v.name, human(v.size), &v.blake3[..16]);
    }
    for w in c
        .stats
        .changed
        .iter()
        .map(|p| format!("changed while being read: {p}"))
        .chain(c.stats.shrank.iter().map(|u| format!("CHANGED, not stored as it was: {u}")))
        .chain(c.stats.unreadable.iter().map(|u| format!("not backed up: {u}")))
    {
        println!("warning  {w}");
    }
    Ok(ExitCode::SUCCESS)
}
