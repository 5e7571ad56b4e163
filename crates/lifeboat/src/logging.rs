//! Logging to stderr at the chosen level, and at debug level to a log file of every run.

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

/// Install the logger. With a work directory, every run also logs at debug
/// level to `WORK_DIR/log/lifeboat-TIME-PID.log`; returns that path.
pub fn init(console: LevelFilter, work_dir: Option<&Path>) -> Option<PathBuf> {
    let mut path = None;
    let file = work_dir.and_then(|w| {
        let dir = w.join("log");
        std::fs::create_dir_all(&dir).ok()?;
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string().replace(':', "");
        let p = dir.join(format!("lifeboat-{stamp}-{}.log", std::process::id()));
        let f = File::create(&p).ok()?;
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
    }
    path
}
