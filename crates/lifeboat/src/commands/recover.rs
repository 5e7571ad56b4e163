//! `lifeboat recover`: rebuild this machine from its layout and backup,
//! showing the plan and asking before anything is erased.

use super::feedback::Terminal;
use super::Ctx;
use crate::cli::RecoverArgs;
use lifeboat_backup::{Feedback, MediumAnswer, MissingMedium, Notice};
use lifeboat_config::human;
use lifeboat_layout::Layout;
use lifeboat_recovery::recover::{recover, Console, Error, Outcome, Request};
use lifeboat_recovery::Plan;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Where an unattended run leaves its one-line failure reason for the console.
const FAILURE_FILE: &str = "/run/lifeboat-failure";

/// `lifeboat recover`; with --auto, a failure's reason is left for the console.
pub fn run(ctx: &Ctx, a: RecoverArgs) -> anyhow::Result<ExitCode> {
    if a.auto {
        let _ = std::fs::remove_file(FAILURE_FILE);
    }
    let result = run_recovery(ctx, &a);
    if let (true, Err(e)) = (a.auto, &result) {
        let _ = std::fs::write(FAILURE_FILE, format!("{}\n", e.to_string().lines().next().unwrap_or("")));
    }
    result
}

fn run_recovery(ctx: &Ctx, a: &RecoverArgs) -> anyhow::Result<ExitCode> {
    let req = Request {
        layout: a.layout.clone(),
        from: a.from.clone(),
        no_restore: a.no_restore,
        map: a.map.clone(),
        map_file: a.map_file.clone(),
        plan_only: a.plan,
        yes: a.yes,
        auto: a.auto,
        root: a.root.clone(),
        luks_key_file: a.luks_key_file.clone(),
        keep_mounted: a.keep_mounted,
        insecure_unsigned: a.insecure_unsigned,
        clone_file: a.clone_file.clone(),
        identity: a.identity.clone(),
    };
    let mut console = Screen::new(ctx.json, a.plan);
    // -q: the plan only when it is asked for or before the question; no steps, no progress.
    console.quiet = ctx.quiet;
    console.tty &= !ctx.quiet;
    console.quiet_plan = ctx.quiet && !a.plan && (a.yes || a.auto);
    let (plan, report, secs) = match recover(&ctx.config, &req, &mut console)? {
        Outcome::Planned(plan) => {
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            }
            return Ok(ExitCode::SUCCESS);
        }
        Outcome::Declined => {
            println!("Nothing was changed.");
            return Ok(ExitCode::from(1));
        }
        Outcome::Recovered { plan, report, seconds } => (plan, report, seconds),
    };
    if ctx.json {
        let v = serde_json::json!({"plan": plan, "report": report, "seconds": secs});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if ctx.quiet {
        for l in &report.lost {
            println!("NOT RESTORED {l}");
        }
    } else {
        let phases: Vec<String> = report.phases.iter().map(|(p, t)| format!("{p} {t:.1} s")).collect();
        println!("phases: {}", phases.join(", "));
        for l in &report.lost {
            println!("NOT RESTORED {l}");
        }
        for w in &report.warnings {
            println!("warning: {w}");
        }
        println!(
            "recovered onto {} in {secs:.1} s: {} entries ({}) restored{}",
            plan.disks.iter().map(|d| d.new.as_str()).collect::<Vec<_>>().join(", "),
            report.restored,
            human(report.bytes),
            if report.lost.is_empty() { String::new() } else { format!(", {} NOT restored", report.lost.len()) }
        );
    }
    if !report.lost.is_empty() {
        if a.auto {
            let _ = std::fs::write(FAILURE_FILE, format!("{} entries could not be restored\n", report.lost.len()));
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The terminal during a recovery: the plan, the questions, the steps and the restore's progress.
#[derive(Debug)]
struct Screen {
    term: Terminal,
    /// JSON output of the plan alone: the plan is printed as JSON at the end, not as text.
    json_plan: bool,
    /// stderr is a terminal (and no JSON): progress on one line, else a line every 10 s.
    tty: bool,
    /// When the last progress line was written, since the restore began.
    last: Duration,
    /// `-q`: no steps, no progress, no restore summary.
    quiet: bool,
    /// `-q` and nothing will be asked: the plan is not shown either.
    quiet_plan: bool,
}

impl Screen {
    fn new(json: bool, plan_only: bool) -> Screen {
        Screen {
            term: Terminal::new(json),
            json_plan: json && plan_only,
            tty: std::io::stderr().is_terminal() && !json,
            last: Duration::ZERO,
            quiet: false,
            quiet_plan: false,
        }
    }
}

impl Feedback for Screen {
    fn notice(&mut self, notice: Notice) {
        self.term.notice(notice)
    }

    fn medium_missing(&mut self, m: &MissingMedium) -> std::io::Result<MediumAnswer> {
        self.term.medium_missing(m)
    }

    fn s3_credentials(&mut self, url: &str) -> std::io::Result<Option<(String, String)>> {
        self.term.s3_credentials(url)
    }

    fn medium_damaged(&mut self, message: &str) -> std::io::Result<bool> {
        self.term.medium_damaged(message)
    }
}

impl Console for Screen {
    fn as_feedback(&mut self) -> &mut dyn Feedback {
        self
    }

    fn plan(&mut self, plan: &Plan, layout: &Layout, layout_file: &Path) {
        if self.json_plan || self.quiet_plan {
            return;
        }
        let m = &layout.meta;
        println!("Recovery plan for {} (layout {} captured {}):", m.hostname, layout_file.display(), m.captured_at);
        print!("{}", plan.render());
    }

    fn passphrase(&mut self) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::OpenOptionsExt;
        eprint!("Passphrase for the new LUKS containers: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let p = PathBuf::from("/run/lifeboat-luks-key");
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&p)?;
        f.write_all(line.trim_end_matches('\n').as_bytes())?;
        Ok(p)
    }

    fn confirm(&mut self, erased: &[String]) -> Result<bool, Error> {
        if !std::io::stdin().is_terminal() {
            return Err(Error::NotAsking(erased.to_vec()));
        }
        eprint!("This ERASES {}. Type YES to go on: ", erased.join(", "));
        let mut line = String::new();
        std::io::stderr().flush().and_then(|()| std::io::stdin().lock().read_line(&mut line)).map_err(Error::Ask)?;
        Ok(line.trim() == "YES")
    }

    fn step(&mut self, line: &str) {
        if self.quiet {
            log::info!("{line}");
        } else {
            println!("{line}");
        }
    }

    fn restore_progress(&mut self, bytes: u64, n: u64, total: u64, elapsed: Duration) {
        let every = Duration::from_millis(if self.tty { 250 } else { 10_000 });
        if self.quiet || elapsed.saturating_sub(self.last) < every {
            return;
        }
        self.last = elapsed;
        let rate = bytes as f64 / elapsed.as_secs_f64().max(0.001);
        let left = if rate > 0.0 { (total.saturating_sub(bytes) as f64 / rate) as u64 } else { 0 };
        let line = format!(
            "  {} / {}  {n} entries  {:.0} MB/s  ETA {}:{:02}",
            human(bytes),
            human(total),
            rate / 1e6,
            left / 60,
            left % 60
        );
        if self.tty {
            eprint!("\r{line}   ");
        } else {
            println!("{line}");
        }
    }

    fn restored(&mut self, entries: u64, bytes: u64, seconds: f64) {
        if self.tty {
            eprintln!();
        }
        self.last = Duration::ZERO;
        if self.quiet {
            return;
        }
        println!("  restored {entries} entries ({}) in {seconds:.1} s", human(bytes));
    }
}
