//! `lifeboat verify` and `lifeboat compare`: check a backup, or a live tree against it.

use super::feedback::Terminal;
use super::Ctx;
use crate::cli::{CompareArgs, FromArgs, VerifyArgs};
use lifeboat_config::human;
use lifeboat_runner::{Mode, SystemRunner};
use std::process::ExitCode;

/// `lifeboat verify`: exit 1 when anything is damaged.
pub fn verify(ctx: &Ctx, a: VerifyArgs) -> anyhow::Result<ExitCode> {
    if let Some(media) = a.medium {
        return verify_medium(ctx, &a.from, media);
    }
    let find = super::find_of(ctx, &a.from)?;
    let v = lifeboat_backup::verify::verify(&find, &SystemRunner::new(Mode::Run), &mut Terminal::new(ctx.json))?;
    let r = &v.report;
    if ctx.json {
        let signature = super::trust::to_json(&v.verdict);
        let j = serde_json::json!({"backup": v.location, "ok": r.ok(), "signature": signature,
            "decrypted": v.entries.is_some(), "report": r});
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else if !(ctx.quiet && r.ok()) {
        match v.entries {
            Some(n) => println!("backup {}: {} volumes, {n} entries in the manifest", v.location, v.volumes),
            None => println!(
                "backup {}: {} volumes, encrypted: checked as stored (signature, every object's size and BLAKE3); \
                 give --identity FILE to check every entry",
                v.location, v.volumes
            ),
        }
        println!("  catalog {}", super::trust::describe(&v.verdict));
        if let Some(p) = &v.parent {
            match v.chain.is_empty() {
                true => println!("  incremental on {p} (its chain is not checked without the identity)"),
                false => println!("  incremental on {p}: chain {} present, signed and the one it was made against (verify each to read its volumes)", v.chain.join(" <- ")),
            }
        }
        for v in &r.damaged_volumes {
            println!("  DAMAGED volume {v}");
        }
        for l in &r.lost {
            println!("  UNREADABLE {l}");
        }
        match v.entries {
            _ if !r.ok() && v.entries.is_none() => println!("  the stored backup is damaged or was changed"),
            None => println!("  intact as stored: {} objects, {}", r.entries, human(r.bytes)),
            Some(_) if r.ok() => {
                println!("  intact: {} entries, {} of content, every checksum matches", r.entries, human(r.bytes))
            }
            Some(n) => println!("  {} of {n} entries readable; {} cannot be restored", r.entries, r.lost.len()),
        }
    }
    Ok(if r.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `lifeboat verify --medium`: each medium's embedded checksum, then the
/// backup on the media; exit 1 when a medium or the backup is damaged.
fn verify_medium(ctx: &Ctx, from: &FromArgs, media: Vec<std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    use lifeboat_backup::verify::{verify_medium, MediumRequest};
    let cfg = &ctx.config;
    let find = lifeboat_backup::find::Find {
        source: lifeboat_backup::find::Source::Url(String::new()),
        host: lifeboat_backup::this_host(),
        trust: lifeboat_backup::keys::Trust { key_dir: cfg.paths.key_dir.clone(), insecure: from.insecure_unsigned },
        unattended: true,
        identity: from.identity.clone().or_else(|| {
            let f = &cfg.backup.identity_file;
            (!f.as_os_str().is_empty()).then(|| f.clone())
        }),
        settings: lifeboat_backup::job::target_settings(cfg),
    };
    let req = MediumRequest { media, label: cfg.rescue.label.clone(), work_dir: cfg.paths.work_dir.clone(), find };
    let v = verify_medium(&req, &SystemRunner::new(Mode::Run), &mut Terminal::new(true))?;
    if ctx.json {
        let media: Vec<serde_json::Value> = v
            .media
            .iter()
            .map(|m| match &m.result {
                Ok(c) => serde_json::json!({"device": m.device, "ok": true, "medium": c.position.medium,
                    "of": c.position.of, "label": c.label, "backup": c.position.backup, "bytes": c.bytes,
                    "seconds": c.seconds, "mb_per_s": c.mb_per_s()}),
                Err(e) => serde_json::json!({"device": m.device, "ok": false, "error": e.to_string()}),
            })
            .collect();
        let missing: Vec<serde_json::Value> =
            v.missing.iter().map(|(k, l)| serde_json::json!({"medium": k, "label": l})).collect();
        let damaged: Vec<serde_json::Value> =
            v.damaged_volumes.iter().map(|(d, k)| serde_json::json!({"volume": d, "medium": k})).collect();
        let backup = v.backup.as_ref().map(|b| {
            serde_json::json!({"backup": b.location, "ok": b.report.ok(),
                "signature": super::trust::to_json(&b.verdict), "report": b.report})
        });
        let j = serde_json::json!({"ok": v.ok(), "media": media, "missing": missing, "backup": backup,
            "damaged_volumes": damaged, "backup_note": v.backup_note});
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        for m in &v.media {
            match &m.result {
                Ok(c) if !ctx.quiet => println!(
                    "{}: {} passed its check: {} in {:.1} s ({:.0} MB/s)",
                    m.device,
                    c.describe(),
                    human(c.bytes),
                    c.seconds,
                    c.mb_per_s()
                ),
                Ok(_) => {}
                Err(e) => println!("{e}"),
            }
        }
        for (k, l) in &v.missing {
            println!("medium {k} ({l}) is in no drive: not checked");
        }
        if let Some(b) = &v.backup {
            let r = &b.report;
            match r.ok() {
                true if !ctx.quiet => println!(
                    "backup {} on the media: {} volumes intact, {} entries, {} of content; catalog {}",
                    b.location,
                    b.volumes,
                    r.entries,
                    human(r.bytes),
                    super::trust::describe(&b.verdict)
                ),
                true => {}
                false => {
                    for (d, k) in &v.damaged_volumes {
                        println!("  DAMAGED volume {d} (on medium {k})");
                    }
                    for l in &r.lost {
                        println!("  UNREADABLE {l}");
                    }
                    println!(
                        "backup {} on the media is damaged: {} entries cannot be restored",
                        b.location,
                        r.lost.len()
                    );
                }
            }
        }
        if let Some(n) = &v.backup_note {
            println!("{}{n}", if v.backup_failed { "" } else { "note: " });
        }
    }
    Ok(if v.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `lifeboat compare`: exit 1 when anything differs.
pub fn compare(ctx: &Ctx, a: CompareArgs) -> anyhow::Result<ExitCode> {
    let find = super::find_of(ctx, &a.from)?;
    let (found, diffs) =
        lifeboat_backup::verify::compare(&find, &a.root, &SystemRunner::new(Mode::Run), &mut Terminal::new(ctx.json))?;
    let (b, root) = (&found.backup, a.root.display());
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(&diffs)?);
    } else if diffs.is_empty() {
        if !ctx.quiet {
            println!("{root} matches the backup {} ({} entries)", b.location(), b.entry_count());
        }
    } else {
        for d in &diffs {
            if d.details.is_empty() {
                println!("{:<8} {}", d.what, d.path);
            } else {
                println!("{:<8} {}  ({})", d.what, d.path, d.details.join(", "));
            }
        }
        println!("{} difference(s) between {root} and the backup {}", diffs.len(), b.location());
    }
    Ok(if diffs.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
