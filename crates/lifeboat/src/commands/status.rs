//! `lifeboat status`: the age and result of the last layout check, rescue
//! medium, backup, verify and drill, and what is overdue; one screen for
//! people, `--json` for scripts, the exit code for Nagios/Icinga, and
//! `--prometheus FILE` for node_exporter's textfile collector.
//!
//! Every run of such a job leaves its outcome in `WORK_DIR/status/JOB.json`
//! ([`record`]); `status` reads those files and nothing else, so it is
//! instant and works without the backup target.

use super::Ctx;
use crate::cli::{BackupArgs, Command, LayoutCmd, StatusArgs};
use anyhow::Context;
use lifeboat_config::{Config, MkbackupMode};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// A job whose last run `status` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// `layout diff` (the daily check; a change found is a successful check).
    LayoutCheck,
    /// `mkrescue`, or the medium of `mkbackup`.
    Rescue,
    /// `backup`, or the backup of `mkbackup`.
    Backup,
    /// `verify`.
    Verify,
    /// `drill`.
    Drill,
}

const DAY: u64 = 86_400;

impl Job {
    /// Every job, in the order status shows them.
    pub const ALL: [Job; 5] = [Job::LayoutCheck, Job::Rescue, Job::Backup, Job::Verify, Job::Drill];

    /// The record's file name and the job's name in JSON and metrics.
    pub fn key(self) -> &'static str {
        match self {
            Job::LayoutCheck => "layout-check",
            Job::Rescue => "rescue",
            Job::Backup => "backup",
            Job::Verify => "verify",
            Job::Drill => "drill",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Job::LayoutCheck => "layout check",
            Job::Rescue => "rescue medium",
            Job::Backup => "backup",
            Job::Verify => "verify",
            Job::Drill => "drill",
        }
    }

    /// How long after its last success the job is overdue: the shipped
    /// timers' period with a day of slack (verify has no timer of its own).
    pub fn due(self) -> Duration {
        Duration::from_secs(match self {
            Job::LayoutCheck => 2 * DAY,
            Job::Rescue | Job::Backup => 8 * DAY,
            Job::Verify | Job::Drill => 32 * DAY,
        })
    }
}

/// The jobs a command line runs (none for most commands).
pub fn jobs_of(cmd: &Command, config: &Config) -> Vec<Job> {
    match cmd {
        Command::Layout(LayoutCmd::Diff { against: None, .. }) => vec![Job::LayoutCheck],
        Command::Mkrescue(_) => vec![Job::Rescue],
        Command::Mkbackup(a) => {
            let mode = a.mode.as_deref().and_then(|m| m.parse().ok()).unwrap_or(config.mkbackup.mode);
            if mode == MkbackupMode::Rescue {
                vec![Job::Rescue]
            } else {
                vec![Job::Rescue, Job::Backup]
            }
        }
        Command::Backup(BackupArgs { cmd: None, .. }) => vec![Job::Backup],
        // A medium's check is not the backup's verify.
        Command::Verify(a) if a.medium.is_none() => vec![Job::Verify],
        Command::Drill(_) => vec![Job::Drill],
        _ => Vec::new(),
    }
}

/// One job's last run, as `WORK_DIR/status/JOB.json` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the last run ended (RFC 3339, UTC).
    pub finished: String,
    /// `ok`, `changed` (a layout check that found a change), `failed` (exit 1) or `error` (exit 2).
    pub result: String,
    /// The error's first line, or what exit 1 means for this job.
    pub detail: String,
    /// When it last succeeded (RFC 3339), if ever.
    pub last_ok: Option<String>,
}

fn dir(config: &Config) -> PathBuf {
    config.paths.work_dir.join("status")
}

fn read(config: &Config, job: Job) -> Option<Record> {
    let text = std::fs::read_to_string(dir(config).join(format!("{}.json", job.key()))).ok()?;
    serde_json::from_str(&text).ok()
}

/// Keep the outcome of a run of `jobs` for `status`. Never fails the run:
/// a record that cannot be written is logged.
pub fn record(config: &Config, jobs: &[Job], outcome: &anyhow::Result<ExitCode>) {
    if jobs.is_empty() {
        return;
    }
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    for &job in jobs {
        let (result, detail) = match outcome {
            Ok(c) if *c == ExitCode::SUCCESS => ("ok", String::new()),
            Ok(_) if job == Job::LayoutCheck => ("changed", "the layout changed: new rescue media are due".into()),
            Ok(_) => ("failed", "exit 1: see the run log".into()),
            Err(e) => ("error", e.to_string().lines().next().unwrap_or("").to_string()),
        };
        let ok = result == "ok" || result == "changed";
        let last_ok = if ok { Some(now.clone()) } else { read(config, job).and_then(|r| r.last_ok) };
        let r = Record { finished: now.clone(), result: result.into(), detail, last_ok };
        let d = dir(config);
        let file = d.join(format!("{}.json", job.key()));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&d)?;
            let tmp = d.join(format!(".{}.json.tmp", job.key()));
            std::fs::write(&tmp, serde_json::to_vec_pretty(&r).map_err(std::io::Error::other)?)?;
            std::fs::rename(&tmp, &file)
        };
        if let Err(e) = write() {
            log::warn!("cannot write {}: {e}", file.display());
        }
    }
}

/// What status says about one job.
#[derive(Debug, Serialize)]
struct Line {
    job: &'static str,
    what: &'static str,
    #[serde(flatten)]
    last: Option<Record>,
    /// Seconds since the last success (None: never succeeded).
    since_ok_seconds: Option<u64>,
    due_seconds: u64,
    overdue: bool,
    failed: bool,
}

fn age(t: &str, now: SystemTime) -> Option<Duration> {
    let t = humantime::parse_rfc3339(t).ok()?;
    Some(now.duration_since(t).unwrap_or_default())
}

fn ago(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=5_399 => format!("{} min ago", s / 60),
        5_400..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / DAY),
    }
}

fn lines(config: &Config, now: SystemTime) -> Vec<Line> {
    Job::ALL
        .iter()
        .map(|&job| {
            let last = read(config, job);
            let since_ok = last.as_ref().and_then(|r| r.last_ok.as_deref()).and_then(|t| age(t, now));
            let failed = last.as_ref().is_some_and(|r| r.result == "failed" || r.result == "error");
            Line {
                job: job.key(),
                what: job.what(),
                since_ok_seconds: since_ok.map(|d| d.as_secs()),
                due_seconds: job.due().as_secs(),
                overdue: !matches!(since_ok, Some(d) if d <= job.due()),
                failed,
                last,
            }
        })
        .collect()
}

/// Nagios/Icinga: 0 every job fresh and fine, 1 something overdue or never run, 2 a last run failed.
fn state(lines: &[Line]) -> (&'static str, u8) {
    if lines.iter().any(|l| l.failed) {
        ("critical", 2)
    } else if lines.iter().any(|l| l.overdue) {
        ("warning", 1)
    } else {
        ("ok", 0)
    }
}

/// A gauge: its name, its help text, and its value for one job (None: not exported).
type Gauge = (&'static str, &'static str, fn(&Line) -> Option<f64>);

/// Node exporter's textfile format, one gauge per job and fact.
fn prometheus(host: &str, lines: &[Line]) -> String {
    let mut out = String::new();
    let gauges: [Gauge; 4] = [
        ("lifeboat_last_run_timestamp_seconds", "When the job last ran (Unix time).", |l| {
            stamp(l.last.as_ref().map(|r| r.finished.as_str()))
        }),
        ("lifeboat_last_success_timestamp_seconds", "When the job last succeeded (Unix time).", |l| {
            stamp(l.last.as_ref().and_then(|r| r.last_ok.as_deref()))
        }),
        ("lifeboat_last_run_ok", "1 when the job's last run succeeded.", |l| {
            l.last.as_ref().map(|_| if l.failed { 0.0 } else { 1.0 })
        }),
        ("lifeboat_overdue", "1 when the job has not succeeded within its period.", |l| {
            Some(if l.overdue { 1.0 } else { 0.0 })
        }),
    ];
    for (name, help, value) in gauges {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for l in lines {
            if let Some(v) = value(l) {
                out.push_str(&format!("{name}{{host=\"{host}\",job=\"{}\"}} {v}\n", l.job));
            }
        }
    }
    out
}

fn stamp(t: Option<&str>) -> Option<f64> {
    let t = humantime::parse_rfc3339(t?).ok()?;
    Some(t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs() as f64)
}

/// Write `text` to `file` through a temporary file beside it, so the
/// collector never reads half a file.
fn write_atomically(file: &Path, text: &str) -> anyhow::Result<()> {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("lifeboat.prom");
    let tmp = file.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot write {}", file.display()))
}

/// `lifeboat status`.
pub fn run(ctx: &Ctx, a: StatusArgs) -> anyhow::Result<ExitCode> {
    let host = lifeboat_backup::this_host();
    let lines = lines(&ctx.config, SystemTime::now());
    let (word, code) = state(&lines);
    if let Some(file) = &a.prometheus {
        write_atomically(file, &prometheus(&host, &lines))?;
    }
    if ctx.json {
        let v = serde_json::json!({"host": host, "state": word, "jobs": lines});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !(ctx.quiet && code == 0) {
        println!("lifeboat status of {host}: {} (records in {})", word.to_uppercase(), dir(&ctx.config).display());
        for l in &lines {
            let Some(r) = &l.last else {
                println!("  {:<14} never run                OVERDUE (due every {} d)", l.what, l.due_seconds / DAY);
                continue;
            };
            let when = age(&r.finished, SystemTime::now()).map(ago).unwrap_or_else(|| r.finished.clone());
            let mut text = format!("  {:<14} {:<8} {:<14}", l.what, r.result, when);
            if l.failed {
                match r.last_ok.as_deref().and_then(|t| age(t, SystemTime::now())) {
                    Some(d) => text.push_str(&format!(" last ok {}", ago(d))),
                    None => text.push_str(" never ok"),
                }
            }
            if l.overdue {
                text.push_str(&format!(" OVERDUE (due every {} d)", l.due_seconds / DAY));
            }
            if !r.detail.is_empty() {
                text.push_str(&format!(": {}", r.detail));
            }
            println!("{}", text.trim_end());
        }
    }
    Ok(ExitCode::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        let mut c = Config::default();
        c.paths.work_dir = dir.to_path_buf();
        c
    }

    #[test]
    fn a_failed_run_keeps_the_last_success_and_makes_the_state_critical() {
        let tmp = tempfile::tempdir().expect("tmp");
        let c = config(tmp.path());
        assert!(lines(&c, SystemTime::now()).iter().all(|l| l.overdue && l.last.is_none()), "nothing ran yet");
        record(&c, &[Job::Backup, Job::Rescue], &Ok(ExitCode::SUCCESS));
        let first = read(&c, Job::Backup).expect("record");
        assert_eq!(first.result, "ok");
        record(&c, &[Job::Backup], &Err(anyhow::anyhow!("backup target file:///x: does not exist\nmore")));
        let r = read(&c, Job::Backup).expect("record");
        assert_eq!((r.result.as_str(), r.detail.as_str()), ("error", "backup target file:///x: does not exist"));
        assert_eq!(r.last_ok, first.last_ok, "the last success is kept");
        record(&c, &[Job::LayoutCheck], &Ok(ExitCode::from(1)));
        assert_eq!(read(&c, Job::LayoutCheck).expect("record").result, "changed");
        let l = lines(&c, SystemTime::now());
        assert_eq!(state(&l), ("critical", 2));
        let backup = l.iter().find(|l| l.job == "backup").expect("backup");
        assert!(backup.failed && !backup.overdue, "failed but within its period");
        assert!(!l.iter().find(|l| l.job == "layout-check").expect("check").failed, "a change is a successful check");
    }

    #[test]
    fn jobs_are_overdue_after_their_period_and_the_metrics_say_so() {
        let tmp = tempfile::tempdir().expect("tmp");
        let c = config(tmp.path());
        for job in Job::ALL {
            record(&c, &[job], &Ok(ExitCode::SUCCESS));
        }
        let now = SystemTime::now();
        assert_eq!(state(&lines(&c, now)), ("ok", 0));
        let later = now + Duration::from_secs(3 * DAY);
        let l = lines(&c, later);
        assert_eq!(state(&l), ("warning", 1));
        let overdue: Vec<_> = l.iter().filter(|l| l.overdue).map(|l| l.job).collect();
        assert_eq!(overdue, ["layout-check"]);
        let text = prometheus("web1", &l);
        assert!(text.contains("# TYPE lifeboat_overdue gauge\n"), "{text}");
        assert!(text.contains("lifeboat_overdue{host=\"web1\",job=\"layout-check\"} 1\n"), "{text}");
        assert!(text.contains("lifeboat_last_run_ok{host=\"web1\",job=\"drill\"} 1\n"), "{text}");
    }
}
