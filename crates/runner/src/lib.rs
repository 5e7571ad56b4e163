//! Every external program lifeboat starts goes through a [`Runner`].
//!
//! A runner logs the full command line, captures stderr into the error, and
//! knows which distribution package provides a missing program, so the user
//! is told what to install. [`SystemRunner`] in [`Mode::Plan`] prints the
//! commands that would change something instead of running them; that is how
//! destructive work shows its plan. [`ScriptedRunner`] answers from canned
//! output, so the logic that parses tool output is tested without root.

mod tools;

pub use tools::{package_hint, tool, Tool, TOOLS};

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Errors from running an external program.
///
/// Rules: every variant names the program (and for failures the whole
/// command line) and, where one exists, the fix.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program is not installed (not found on PATH).
    #[error("`{program}` is not installed (not found on PATH); {hint}")]
    NotFound {
        /// Program name as called.
        program: String,
        /// What to install, per distribution family.
        hint: String,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{cmdline}` failed ({status}){}", stderr_suffix(.stderr))]
    Failed {
        /// The full command line.
        cmdline: String,
        /// Exit status as text (`exit status 1`, `signal 9`).
        status: String,
        /// What the program wrote to stderr (trimmed).
        stderr: String,
    },
    /// The program could not be started or its output not read.
    #[error("cannot run `{cmdline}`: {source}")]
    Io {
        /// The full command line.
        cmdline: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

impl RunError {
    /// Short one-line reason, suitable for "could not read X: REASON" notes.
    pub fn reason(&self) -> String {
        match self {
            RunError::NotFound { program, .. } => format!("`{program}` is not installed"),
            RunError::Failed { stderr, status, .. } => {
                let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                if first.is_empty() {
                    status.clone()
                } else {
                    first.trim().to_string()
                }
            }
            RunError::Io { source, .. } => source.to_string(),
        }
    }
}

/// One external command: program, arguments and optional stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    program: String,
    args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    env: Vec<(String, String)>,
}

impl Cmd {
    /// A command that runs `program` (looked up on PATH unless it has a slash).
    pub fn new(program: impl Into<String>) -> Self {
        Cmd { program: program.into(), args: Vec::new(), stdin: None, env: Vec::new() }
    }

    /// Append one argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    /// Append several arguments.
    pub fn args<I, S>(mut self, it: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(it.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Feed these bytes to the program's stdin.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Set an environment variable for the child.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The program name.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The command line as a shell would read it (arguments quoted when needed).
    pub fn cmdline(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.env {
            out.push_str(&format!("{k}={} ", shell_quote(v)));
        }
        out.push_str(&shell_quote(&self.program));
        for a in &self.args {
            out.push(' ');
            out.push_str(&shell_quote(&a.to_string_lossy()));
        }
        out
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cmdline())
    }
}

/// Quote `s` for a POSIX shell when it holds anything but safe characters.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What a finished command produced.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Standard output as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Whether commands that change the system run or are only printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run everything.
    Run,
    /// Run read-only probes; print changing commands instead of running them.
    Plan,
}

/// Runs external programs. Probes only read; `apply` changes the system.
pub trait Runner: Send + Sync {
    /// Run a read-only command and return its output; it runs in every mode.
    fn probe(&self, cmd: &Cmd) -> Result<Output, RunError>;
    /// Run a command that changes the system; in plan mode it is only recorded.
    fn apply(&self, cmd: &Cmd) -> Result<Output, RunError>;
    /// Whether `program` can be run here.
    fn has(&self, program: &str) -> bool;
    /// The commands that `apply` was asked to run, in order.
    fn planned(&self) -> Vec<String>;
}

/// The real runner: starts processes.
#[derive(Debug)]
pub struct SystemRunner {
    mode: Mode,
    planned: Mutex<Vec<String>>,
}

impl SystemRunner {
    /// A runner in the given mode.
    pub fn new(mode: Mode) -> Self {
        SystemRunner { mode, planned: Mutex::new(Vec::new()) }
    }

    fn execute(&self, cmd: &Cmd) -> Result<Output, RunError> {
        let cmdline = cmd.cmdline();
        log::debug!("run: {cmdline}");
        if !cmd.program.contains('/') && which(&cmd.program).is_none() {
            return Err(RunError::NotFound { program: cmd.program.clone(), hint: package_hint(&cmd.program) });
        }
        let mut c = Command::new(&cmd.program);
        c.args(&cmd.args).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        // Tools that print for humans must not translate or page their output.
        c.env("LC_ALL", "C").env("LANG", "C");
        for (k, v) in &cmd.env {
            c.env(k, v);
        }
        let io = |source| RunError::Io { cmdline: cmdline.clone(), source };
        let mut child = c.spawn().map_err(io)?;
        if let Some(data) = &cmd.stdin {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(data).map_err(io)?;
            }
        }
        let out = child.wait_with_output().map_err(io)?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            let status = match out.status.code() {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".to_string(),
            };
            log::debug!("failed: {cmdline}: {status}: {}", stderr.trim());
            return Err(RunError::Failed { cmdline, status, stderr });
        }
        Ok(Output { stdout: out.stdout, stderr: out.stderr })
    }
}

impl Runner for SystemRunner {
    fn probe(&self, cmd: &Cmd) -> Result<Output, RunError> {
        self.execute(cmd)
    }

    fn apply(&self, cmd: &Cmd) -> Result<Output, RunError> {
        if let Ok(mut p) = self.planned.lock() {
            p.push(cmd.cmdline());
        }
        match self.mode {
            Mode::Run => {
                log::info!("running: {cmd}");
                self.execute(cmd)
            }
            Mode::Plan => {
                println!("would run: {cmd}");
                Ok(Output::default())
            }
        }
    }

    fn has(&self, program: &str) -> bool {
        which(program).is_some()
    }

    fn planned(&self) -> Vec<String> {
        self.planned.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// Find `program` on PATH (plus the standard sbin and bin directories when
/// PATH has no sbin directory at all).
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // cron and some non-login shells give root a PATH without the sbin
    // directories, where most storage tools live.
    if !dirs.iter().any(|d| d.ends_with("sbin")) {
        dirs.extend(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].iter().map(PathBuf::from));
    }
    dirs.into_iter().map(|d| d.join(program)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// A runner for tests: answers probes from a table of canned outputs keyed by
/// the command line, and records `apply` calls without running anything.
#[derive(Debug, Default)]
pub struct ScriptedRunner {
    answers: HashMap<String, Result<String, String>>,
    missing: Vec<String>,
    planned: Mutex<Vec<String>>,
}

impl ScriptedRunner {
    /// An empty script: every probe fails as "not scripted".
    pub fn new() -> Self {
        Self::default()
    }

    /// When `cmdline` is probed, return `stdout`.
    pub fn answer(mut self, cmdline: &str, stdout: &str) -> Self {
        self.answers.insert(cmdline.to_string(), Ok(stdout.to_string()));
        self
    }

    /// When `cmdline` is probed, fail with `stderr`.
    pub fn fail(mut self, cmdline: &str, stderr: &str) -> Self {
        self.answers.insert(cmdline.to_string(), Err(stderr.to_string()));
        self
    }

    /// Pretend `program` is not installed.
    pub fn without(mut self, program: &str) -> Self {
        self.missing.push(program.to_string());
        self
    }
}

impl Runner for ScriptedRunner {
    fn probe(&self, cmd: &Cmd) -> Result<Output, RunError> {
        if self.missing.iter().any(|m| m == cmd.program()) {
            return Err(RunError::NotFound { program: cmd.program.clone(), hint: package_hint(&cmd.program) });
        }
        match self.answers.get(&cmd.cmdline()) {
            Some(Ok(s)) => Ok(Output { stdout: s.clone().into_bytes(), stderr: Vec::new() }),
            Some(Err(e)) => {
                Err(RunError::Failed { cmdline: cmd.cmdline(), status: "exit status 1".into(), stderr: e.clone() })
            }
            None => Err(RunError::Failed {
                cmdline: cmd.cmdline(),
                status: "exit status 127".into(),
                stderr: "not scripted".into(),
            }),
        }
    }

    fn apply(&self, cmd: &Cmd) -> Result<Output, RunError> {
        if let Ok(mut p) = self.planned.lock() {
            p.push(cmd.cmdline());
        }
        Ok(Output::default())
    }

    fn has(&self, program: &str) -> bool {
        !self.missing.iter().any(|m| m == program)
    }

    fn planned(&self) -> Vec<String> {
        self.planned.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_safe_words_and_quotes_the_rest() {
        let c = Cmd::new("mkfs.ext4").args(["-L", "my root", "-U", "it's", "/dev/vda1"]);
        assert_eq!(c.cmdline(), "mkfs.ext4 -L 'my root' -U 'it'\\''s' /dev/vda1");
    }

    #[test]
    fn missing_program_names_the_package() {
        let r = SystemRunner::new(Mode::Run);
        let e = r.probe(&Cmd::new("mdadm-does-not-exist")).unwrap_err();
        assert!(matches!(e, RunError::NotFound { .. }));
        let e = ScriptedRunner::new().without("mdadm").probe(&Cmd::new("mdadm")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("`mdadm` is not installed"), "{msg}");
        assert!(msg.contains("apt-get install mdadm"), "{msg}");
    }

    #[test]
    fn failure_carries_command_and_stderr() {
        let r = SystemRunner::new(Mode::Run);
        let e = r.probe(&Cmd::new("sh").args(["-c", "echo boom >&2; exit 3"])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("sh -c 'echo boom >&2; exit 3'"), "{msg}");
        assert!(msg.contains("exit status 3") && msg.contains("boom"), "{msg}");
        assert_eq!(e.reason(), "boom");
    }

    #[test]
    fn plan_mode_prints_instead_of_running() {
        let dir = std::env::temp_dir().join(format!("lifeboat-plan-{}", std::process::id()));
        let r = SystemRunner::new(Mode::Plan);
        r.apply(&Cmd::new("mkdir").arg(&dir)).expect("plan");
        assert!(!dir.exists(), "plan mode must not run the command");
        assert_eq!(r.planned(), vec![format!("mkdir {}", dir.display())]);
    }
}
