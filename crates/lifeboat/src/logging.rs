//! Logging to stderr at the chosen level, and at debug level to a log file
//! of every run that does something; the newest [`KEEP_LOGS`] are kept.

use log::{LevelFilter, Log, Metadata, Record};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

struct Logger {
    console: LevelFilter,
    file: Mutex<Option<File>>,
}

impl Log for Logger {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, r: &Record<'_>) {
        if r.level() <= self.console {
            eprintln!("lifeboat: {}: {}", r.level().as_str().to_lowercase(), r.args());
        }
        if let Ok(mut f) = self.file.lock() {
            if let Some(f) = f.as_mut() {
                let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
                let _ = writeln!(f, "{now} {:5} {}", r.level(), r.args());
            }
        }
    }

    fn flush(&self) {
        if let Ok(mut f) = self.file.lock() {
            if let Some(f) = f.as_mut() {
                let _ = f.flush();
            }
        }
    }
}

/// Console level from -v/-q.
pub fn level(verbose: u8, quiet: bool) -> LevelFilter {
    match (quiet, verbose) {
        (true, _) => LevelFilter::Error,
        (false, 0) => LevelFilter::Warn,
        (false, 1) => LevelFilter::Info,
        (false, _) => LevelFilter::Debug,
    }
}

/// How many run logs `WORK_DIR/log` keeps: each run that writes one removes
/// the oldest beyond this many (a daily timer's runs stay for months).
pub const KEEP_LOGS: usize = 100;

/// Remove the oldest `lifeboat-*.log` files of `dir` beyond the newest
/// `keep` (their names start with the time, so they sort by age). Returns
/// how many were removed; a file that cannot be removed is left alone.
fn remove_old_logs(dir: &Path, keep: usize) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut logs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("lifeboat-") && name.ends_with(".log")
        })
        .collect();
    logs.sort();
    let old = logs.len().saturating_sub(keep);
    logs.iter().take(old).filter(|p| std::fs::remove_file(p).is_ok()).count()
}

/// Install the logger. With a work directory, the run also logs at debug
/// level to `WORK_DIR/log/lifeboat-TIME-PID.log` (and the oldest logs
/// beyond [`KEEP_LOGS`] are removed); returns that path.
pub fn init(console: LevelFilter, work_dir: Option<&Path>) -> Option<PathBuf> {
    let mut path = None;
    let mut removed = 0;
    let file = work_dir.and_then(|w| {
        let dir = w.join("log");
        std::fs::create_dir_all(&dir).ok()?;
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string().replace(':', "");
        let p = dir.join(format!("lifeboat-{stamp}-{}.log", std::process::id()));
        let f = File::create(&p).ok()?;
        removed = remove_old_logs(&dir, KEEP_LOGS);
        path = Some(p);
        Some(f)
    });
    let logger = Logger { console, file: Mutex::new(file) };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(LevelFilter::Debug);
    }
    if let Some(p) = &path {
        log::debug!("lifeboat {} log: {}", env!("CARGO_PKG_VERSION"), p.display());
        log::debug!("command line: {:?}", std::env::args().collect::<Vec<_>>());
        if removed > 0 {
            log::debug!("removed the {removed} oldest run log(s), keeping the newest {KEEP_LOGS}");
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_run_logs_are_kept_and_nothing_else_is_touched() {
        let tmp = tempfile::tempdir().expect("tmp");
        for i in 0..5 {
            std::fs::write(tmp.path().join(format!("lifeboat-2026-12-0{i}T000000Z-1.log")), "x").expect("log");
        }
        std::fs::write(tmp.path().join("notes.txt"), "mine").expect("other file");
        assert_eq!(remove_old_logs(tmp.path(), 3), 2);
        let mut left: Vec<String> = std::fs::read_dir(tmp.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "lifeboat-2026-12-02T000000Z-1.log",
                "lifeboat-2026-12-03T000000Z-1.log",
                "lifeboat-2026-12-04T000000Z-1.log",
                "notes.txt"
            ]
        );
        assert_eq!(remove_old_logs(tmp.path(), 3), 0);
    }
}
