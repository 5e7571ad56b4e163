//! `lifeboat backup list|prune|info`: what a target holds, removing what a
//! retention policy does not keep or what dead runs left, and one backup in detail.

use super::feedback::Terminal;
use super::Ctx;
use crate::cli::{FromArgs, PruneArgs};
use lifeboat_archive::target::State;
use lifeboat_backup::list::{self, Row};
use lifeboat_backup::retention::{self, Action};
use lifeboat_config::human;
use lifeboat_runner::{Mode, SystemRunner};
use std::process::ExitCode;

fn when(t: Option<std::time::SystemTime>) -> String {
    t.map(|t| humantime::format_rfc3339_seconds(t).to_string()).unwrap_or_else(|| "?".into())
}

/// `lifeboat backup list`: the backups (damaged ones marked) on stdout;
/// runs in progress and interrupted runs on stderr.
pub fn list(ctx: &Ctx, target: Option<String>) -> anyhow::Result<ExitCode> {
    let l = list::list(&ctx.config, target.as_deref())?;
    let url = &l.url;
    if ctx.json {
        let mut v: Vec<_> = l
            .backups
            .iter()
            .map(|r| match &r.state {
                Ok((s, verdict)) => {
                    let mut info = serde_json::to_value(s)?;
                    info["signature"] = super::trust::to_json(verdict);
                    Ok(serde_json::json!({"backup": r.location, "state": "complete", "info": info}))
                }
                Err(why) => {
                    Ok(serde_json::json!({"backup": r.location, "state": "damaged", "info": null, "error": why}))
                }
            })
            .collect::<serde_json::Result<_>>()?;
        v.extend(l.uploads.iter().map(|u| {
            serde_json::json!({
                "backup": u.location,
                "state": if u.state == State::Running { "running" } else { "interrupted" },
                "info": null,
                "bytes": u.bytes,
                "modified": when(u.modified),
            })
        }));
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<22} {:<16} {:>10} {:>9} {:>7} {:<6}  backup", "created", "host", "size", "files", "ratio", "signed");
    let signed = |r: &Row| matches!(&r.state, Ok((_, lifeboat_archive::trust::Verdict::Signed(_))));
    for r in &l.backups {
        match &r.state {
            Ok((s, _)) => println!(
                "{:<22} {:<16} {:>10} {:>9} {:>7.3} {:<6}  {}",
                s.created,
                s.host,
                human(s.bytes),
                s.files,
                s.ratio,
                if signed(r) { "yes" } else { "NO" },
                match &s.parent {
                    Some(p) => format!("{}  (incremental on {p})", r.location),
                    None => r.location.clone(),
                }
            ),
            Err(why) => {
                println!("{:<22} {:<16} {:>10} {:>9} {:>7} {:<6}  {} ({why})", "?", "?", "?", "?", "?", "?", r.location)
            }
        }
    }
    let unsigned = l.backups.iter().filter(|r| r.state.is_ok() && !signed(r)).count();
    if unsigned > 0 {
        println!(
            "{unsigned} backup(s) NOT signed by a key trusted here ({}): verify, restore and recover refuse them; backup info --from file:///DIR says why",
            ctx.config.paths.key_dir.display()
        );
    }
    let damaged = l.backups.iter().filter(|r| r.state.is_err()).count();
    if damaged > 0 {
        println!("{} backup(s) in {url}, {damaged} of them incomplete or damaged", l.backups.len());
    } else {
        println!("{} backup(s) in {url}", l.backups.len());
    }
    // Not backups: said on stderr, so that the table stays a table of backups.
    for u in &l.uploads {
        let what =
            if u.state == State::Running { "in progress (a live run holds it)" } else { "INTERRUPTED (its run died)" };
        eprintln!("not a backup: {} {what}, {}, last written {}", u.location, human(u.bytes), when(u.modified));
    }
    if l.uploads.iter().any(|u| u.state == State::Interrupted) {
        eprintln!("remove the interrupted ones with: lifeboat backup prune --partial --target {url}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `lifeboat backup prune`: by policy (`--keep-*`, else `[backup.retention]`), or `--partial`.
pub fn prune(ctx: &Ctx, a: PruneArgs) -> anyhow::Result<ExitCode> {
    if a.partial {
        return prune_partial(ctx, a.target);
    }
    let n = |v: Option<u32>| v.unwrap_or(0);
    let policy = retention::Policy {
        last: n(a.keep_last),
        daily: n(a.keep_daily),
        weekly: n(a.keep_weekly),
        monthly: n(a.keep_monthly),
        yearly: n(a.keep_yearly),
    };
    let req = list::PruneRequest { url: a.target, policy, host: a.host, dry_run: a.dry_run };
    let r = list::prune(&ctx.config, &req)?;
    let refused = r.hosts.iter().any(|h| h.refused.is_some());
    let code = if refused { ExitCode::from(1) } else { ExitCode::SUCCESS };
    if ctx.json {
        let hosts: Vec<_> = r
            .hosts
            .iter()
            .map(|h| {
                let backups: Vec<_> = h
                    .backups
                    .iter()
                    .map(|j| {
                        serde_json::json!({
                            "backup": j.listed.location,
                            "name": j.listed.name,
                            "created": j.created.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                            "action": j.decision.action,
                            "removed": j.removed,
                            "reasons": j.decision.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
                            "bytes": j.listed.bytes,
                        })
                    })
                    .collect();
                serde_json::json!({"host": h.host, "refused": h.refused, "backups": backups})
            })
            .collect();
        let v = serde_json::json!({"target": r.url, "policy": r.policy, "dry_run": r.dry_run, "hosts": hosts});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(code);
    }
    if ctx.quiet {
        // Refusals still go to stderr, and make the exit 1.
        for h in r.hosts.iter().filter(|h| h.refused.is_some()) {
            eprintln!("{}: NOT pruned: {}", h.host, h.refused.as_deref().unwrap_or(""));
        }
        return Ok(code);
    }
    let remove = if r.dry_run { "would remove" } else { "removed" };
    println!(
        "prune {} with {} (days, ISO weeks, months and years in UTC){}",
        r.url,
        r.policy.describe(),
        if r.dry_run { ", dry run: nothing is removed" } else { "" }
    );
    for h in &r.hosts {
        if let Some(why) = &h.refused {
            eprintln!("{}: NOT pruned: {why}", h.host);
            continue;
        }
        for j in &h.backups {
            let why: Vec<String> = j.decision.reasons.iter().map(ToString::to_string).collect();
            let verb = match j.decision.action {
                Action::Keep => "keep",
                Action::Remove => remove,
            };
            println!("  {verb:<12} {}  {}  ({})", j.listed.location, human(j.listed.bytes), why.join(", "));
        }
        let gone: Vec<_> = h.backups.iter().filter(|j| j.decision.action == Action::Remove).collect();
        let bytes: u64 = gone.iter().map(|j| j.listed.bytes).sum();
        let (removed, freed) = if r.dry_run { ("to remove", "would be freed") } else { ("removed", "freed") };
        println!(
            "{}: {} backup(s) {removed}, {} kept, {} {freed}",
            h.host,
            gone.len(),
            h.backups.len() - gone.len(),
            human(bytes)
        );
    }
    Ok(code)
}

/// `lifeboat backup prune --partial`: remove what dead runs left (never a live run's).
fn prune_partial(ctx: &Ctx, target: Option<String>) -> anyhow::Result<ExitCode> {
    let p = list::prune_partial(&ctx.config, target.as_deref())?;
    let code = if p.refused.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) };
    if ctx.json {
        let mut v: Vec<_> =
            p.removed.iter().map(|l| serde_json::json!({"removed": l.location, "bytes": l.bytes})).collect();
        v.extend(p.refused.iter().map(|(host, why)| serde_json::json!({"host": host, "refused": why})));
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(code);
    }
    for (host, why) in &p.refused {
        eprintln!("{host}: NOT pruned: {why}");
    }
    if ctx.quiet {
        return Ok(code);
    }
    for l in &p.removed {
        println!("removed {} ({}, last written {})", l.location, human(l.bytes), when(l.modified));
    }
    let bytes: u64 = p.removed.iter().map(|l| l.bytes).sum();
    println!("{} interrupted backup(s) removed from {}, {} freed", p.removed.len(), p.url, human(bytes));
    Ok(code)
}

/// `lifeboat backup info`.
pub fn info(ctx: &Ctx, from: &FromArgs) -> anyhow::Result<ExitCode> {
    let find = super::find_of(ctx, from)?;
    let (found, d) = list::info(&find, &SystemRunner::new(Mode::Run), &mut Terminal::new(ctx.json))?;
    let (b, c) = (&found.backup, &found.backup.catalog);
    if ctx.json {
        let signature = super::trust::to_json(&found.verdict);
        let v = serde_json::json!({"backup": b.location(), "summary": d, "signature": signature, "catalog": c});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("backup   {}", b.location());
    println!("catalog  {}", super::trust::describe(&found.verdict));
    println!("host     {}  created {}", c.host, c.created);
    println!("paths    {}", c.paths.join(" "));
    println!("content  {} entries, {} files, {}", c.stats.entries, c.stats.files, human(c.stats.bytes_in));
    if let Some(p) = &c.parent {
        println!(
            "parent   {} (manifest blake3 {}), chain {} back to the full backup {}",
            p.name,
            &p.manifest_blake3[..p.manifest_blake3.len().min(16)],
            b.ancestor_names().join(" <- "),
            p.full
        );
        println!("         {} entries unchanged since it, {} deleted", c.stats.unchanged, c.stats.deleted);
    }
    println!(
        "stored   {} in {} {} volume(s) of at most {}, ratio {:.3}",
        human(d.bytes),
        c.volumes.len(),
        c.compression,
        human(c.volume_size),
        d.ratio
    );
    for v in &c.volumes {
        println!("  {}  {}  blake3 {}", v.name, human(v.size), &v.blake3[..16]);
    }
    let changed = c.stats.changed.iter().map(|p| format!("changed while being read: {p}"));
    let shrank = c.stats.shrank.iter().map(|u| format!("CHANGED, not stored as it was: {u}"));
    let unreadable = c.stats.unreadable.iter().map(|u| format!("not backed up: {u}"));
    for w in changed.chain(shrank).chain(unreadable) {
        println!("warning  {w}");
    }
    Ok(ExitCode::SUCCESS)
}
