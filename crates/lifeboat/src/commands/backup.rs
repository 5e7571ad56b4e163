//! `lifeboat backup`.

use super::Ctx;
use crate::cli::BackupArgs;
use anyhow::{bail, Context};
use lifeboat_archive::target::{self, Target};
use lifeboat_archive::{write_backup, BackupOptions};
use lifeboat_config::human;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `dir` relative to `root`, as an exclude pattern for everything below it.
fn below(root: &Path, dir: &Path) -> Option<String> {
    let rel = dir.strip_prefix(root).ok()?;
    let rel = rel.to_string_lossy();
    (!rel.is_empty()).then(|| format!("{rel}/*"))
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
        req.paths.clone()
    };
    if paths.is_empty() {
        bail!(
            "nothing to back up: no filesystem of the layout is mounted at or below {} (filesystems on excluded disks are left out; give PATHS, or see layout.include_virtual)",
            req.root.display()
        );
    }
    let mut exclude = ctx.config.backup.exclude.clone();
    exclude.push("tmp/*".into());
    for dir in [&ctx.config.paths.work_dir, &ctx.config.paths.output_dir, &target.root] {
        exclude.extend(below(&req.root, dir));
    }
    for s in layout.swaps.iter().filter(|s| s.file) {
        exclude.extend(Path::new(&s.device).strip_prefix(&req.root).ok().map(|r| r.to_string_lossy().into_owned()));
    }
    let opts = BackupOptions {
        root: req.root.clone(),
        paths,
        exclude,
        volume_size: req.volume_size,
        codec: if ctx.config.backup.compression == "gzip" {
            lifeboat_archive::frames::Codec::Gzip(ctx.config.backup.level)
        } else {
            lifeboat_archive::frames::Codec::Zstd(ctx.config.backup.level as i32)
        },
    };
    let host = layout.meta.hostname.clone();
    let name = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string().replace(':', "");
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
    let result = write_backup(&staging, &opts, &host, &mut progress);
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
    Ok(Made { dir: done, catalog, seconds: start.elapsed().as_secs_f64() })
}

/// Back up, publish atomically, and print the summary (or list, or show one backup).
pub fn run(ctx: &Ctx, a: BackupArgs) -> anyhow::Result<ExitCode> {
    match a.cmd {
        Some(crate::cli::BackupCmd::List { target }) => return list(ctx, target),
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
        if s.unreadable.is_empty() {
            println!("backup {} complete", done.display());
        } else {
            println!(
                "backup {} written, INCOMPLETE: {} entries could not be read (listed below and in backup info)",
                done.display(),
                s.unreadable.len()
            );
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
        for c in &s.changed {
            println!("  changed while being read: {c}");
        }
        for u in &s.unreadable {
            println!("  NOT BACKED UP: {u}");
        }
    }
    Ok(if s.unreadable.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The backup a `--from` URL names: a backup directory, or the newest backup of this host on a target.
fn find_backup(ctx: &Ctx, from: &crate::cli::FromArgs) -> anyhow::Result<lifeboat_archive::read::Backup> {
    let url = from.from.clone().unwrap_or_else(|| ctx.config.backup.target.clone());
    if url.is_empty() {
        bail!("no backup given: use --from file:///DIR (a backup, or a target holding backups)");
    }
    let t = target::open(&url)?;
    let dir = if target::is_complete(&t.root) {
        t.root.clone()
    } else {
        let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
        t.list(&host)?.pop().with_context(|| {
            format!("no complete backup of {host} in {url} (a directory named *.partial is an interrupted one)")
        })?
    };
    Ok(lifeboat_archive::read::Backup::open(&dir)?)
}

/// `lifeboat verify`.
pub fn verify(ctx: &Ctx, from: crate::cli::FromArgs) -> anyhow::Result<ExitCode> {
    let b = find_backup(ctx, &from)?;
    let r = lifeboat_archive::restore::verify(&b);
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"backup": b.dir, "ok": r.ok(), "report": r}))?);
    } else {
        println!(
            "backup {}: {} volumes, {} entries in the manifest",
            b.dir.display(),
            b.catalog.volumes.len(),
            b.entries.len()
        );
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
    let b = find_backup(ctx, &a.from)?;
    std::fs::create_dir_all(&a.to).with_context(|| format!("cannot create {}", a.to.display()))?;
    let start = std::time::Instant::now();
    let r = match &a.filesystem {
        Some(mp) => {
            lifeboat_archive::restore::restore_filesystem(&b, &a.to, mp, &mut |_, _| {}).map_err(anyhow::Error::msg)?
        }
        None => lifeboat_archive::restore::restore(&b, &a.to, &a.patterns),
    };
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
    }
    Ok(if r.lost.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
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
    })
}

/// `lifeboat backup list`.
fn list(ctx: &Ctx, target: Option<String>) -> anyhow::Result<ExitCode> {
    let url = target.unwrap_or_else(|| ctx.config.backup.target.clone());
    if url.is_empty() {
        bail!("no backup target: give --target file:///DIR (or set backup.target in the config)");
    }
    let t = target::open(&url)?;
    let mut rows = Vec::new();
    let hosts = std::fs::read_dir(&t.root).with_context(|| format!("cannot read {}", t.root.display()))?;
    for h in hosts.flatten().filter(|h| h.path().is_dir()) {
        let host = h.file_name().to_string_lossy().into_owned();
        for dir in t.list(&host)? {
            match lifeboat_archive::read::Backup::open(&dir) {
                Ok(b) => rows.push((dir, Some(describe(&b.catalog)))),
                Err(_) => rows.push((dir, None)),
            }
        }
    }
    if ctx.json {
        let v: Vec<_> = rows.iter().map(|(d, i)| serde_json::json!({"backup": d, "info": i})).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<22} {:<16} {:>10} {:>9} {:>7}  backup", "created", "host", "size", "files", "ratio");
    for (dir, info) in &rows {
        match info {
            Some(i) => println!(
                "{:<22} {:<16} {:>10} {:>9} {:>7.3}  {}",
                i["created"].as_str().unwrap_or(""),
                i["host"].as_str().unwrap_or(""),
                human(i["bytes"].as_u64().unwrap_or(0)),
                i["files"],
                i["ratio"].as_f64().unwrap_or(0.0),
                dir.display()
            ),
            None => println!(
                "{:<22} {:<16} {:>10} {:>9} {:>7}  {} (DAMAGED catalog or manifest)",
                "?",
                "?",
                "?",
                "?",
                "?",
                dir.display()
            ),
        }
    }
    println!("{} backup(s) in {url}", rows.len());
    Ok(ExitCode::SUCCESS)
}

/// `lifeboat backup info`.
fn info(ctx: &Ctx, from: &crate::cli::FromArgs) -> anyhow::Result<ExitCode> {
    let b = find_backup(ctx, from)?;
    let c = &b.catalog;
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"backup": b.dir, "summary": describe(c), "catalog": c}))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let d = describe(c);
    println!("backup   {}", b.dir.display());
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
        .chain(c.stats.unreadable.iter().map(|u| format!("not backed up: {u}")))
    {
        println!("warning  {w}");
    }
    Ok(ExitCode::SUCCESS)
}
