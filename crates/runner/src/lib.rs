//! Every external program lifeboat starts goes through a [`Runner`].
//!
//! A runner logs the full command line, captures stderr into the error, and
//! knows which distribution package provides a missing program, so the user
//! is told what to install. Besides commands that run to the end with their
//! output collected ([`Runner::probe`], [`Runner::apply`]), a runner starts
//! processes that stream: stdin fed from a reader or written by the caller,
//! stdout read by the caller while the process runs ([`Runner::spawn`], for
//! `zstd`/`ssh`/`dd` pipelines), and long-running ones (ssh, QEMU) behind a
//! [`Process`] handle that kills them when dropped. A [`Cmd::timeout`] kills
//! a command that overruns and gives [`RunError::TimedOut`].
//!
//! [`SystemRunner`] in [`Mode::Plan`] records the commands that would change
//! something instead of running them, and [`Runner::planned`] returns them:
//! the library never prints, the front end shows the plan.
//! [`ScriptedRunner`] answers from canned output and records what it was
//! asked to run and fed, so the logic around tools is tested without root.

mod process;
mod scripted;
mod tools;

pub use process::{Effect, Process, Streams};
pub use scripted::ScriptedRunner;
pub use tools::{package_hint, tool, Tool, TOOLS};

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

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
    /// The program ran longer than its [`Cmd::timeout`] and was killed.
    #[error("`{cmdline}` did not finish within {} and was killed", show_duration(*.limit))]
    TimedOut {
        /// The full command line.
        cmdline: String,
        /// The time limit it overran.
        limit: Duration,
    },
    /// The stream fed to the program's stdin could not be read; the program
    /// was killed so that it never took a truncated stream for a whole one.
    #[error("`{cmdline}` was stopped: its input could not be read: {source}")]
    Feed {
        /// The full command line.
        cmdline: String,
        /// Why the input could not be read.
        source: std::io::Error,
    },
}

/// A duration as a person writes it: `30s`, `1.5s`, `250ms`.
pub(crate) fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() > 0 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
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
            RunError::TimedOut { limit, .. } => format!("did not finish within {}", show_duration(*limit)),
            RunError::Feed { source, .. } => format!("its input could not be read: {source}"),
        }
    }
}

/// One external command: program, arguments, optional stdin and time limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    program: String,
    args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    env: Vec<(String, String)>,
    timeout: Option<Duration>,
}

impl Cmd {
    /// A command that runs `program` (looked up on PATH unless it has a slash).
    pub fn new(program: impl Into<String>) -> Self {
        Cmd { program: program.into(), args: Vec::new(), stdin: None, env: Vec::new(), timeout: None }
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

    /// Kill the command when it runs longer than `limit`; it then fails
    /// with [`RunError::TimedOut`].
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// The program name.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments, in order.
    pub fn arguments(&self) -> &[OsString] {
        &self.args
    }

    /// The environment variables set for the child.
    pub fn environment(&self) -> &[(String, String)] {
        &self.env
    }

    /// The bytes fed to stdin, if any.
    pub fn input(&self) -> Option<&[u8]> {
        self.stdin.as_deref()
    }

    /// The time limit, if any.
    pub fn limit(&self) -> Option<Duration> {
        self.timeout
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

/// Whether commands that change the system run or are only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run everything.
    Run,
    /// Run read-only probes; record changing commands instead of running them.
    Plan,
}

/// Runs external programs. Probes only read; `apply` changes the system.
pub trait Runner: Send + Sync {
    /// Run a read-only command and return its output; it runs in every mode.
    fn probe(&self, cmd: &Cmd) -> Result<Output, RunError>;
    /// Run a command that changes the system; in plan mode it is only recorded.
    fn apply(&self, cmd: &Cmd) -> Result<Output, RunError>;
    /// Start `cmd` with its stdin and stdout connected as `streams` says and
    /// return the running process. An [`Effect::Apply`] command is recorded
    /// in [`Runner::planned`]; in plan mode it is not started: its stdin
    /// discards what is written (a reader given is never read), its stdout
    /// is empty, and `wait` succeeds.
    fn spawn(&self, cmd: &Cmd, effect: Effect, streams: Streams) -> Result<Process, RunError>;
    /// Whether `program` can be run here.
    fn has(&self, program: &str) -> bool;
    /// The commands that `apply` (and `spawn` with [`Effect::Apply`]) was
    /// asked to run, in order: in plan mode, the plan for the front end to show.
    fn planned(&self) -> Vec<String>;

    /// Run a changing command with its stdin copied from `input` (a `dd` fed
    /// with an image, an `ssh` fed with a backup volume) and wait for it.
    fn apply_from(&self, cmd: &Cmd, input: Box<dyn Read + Send>) -> Result<Output, RunError> {
        self.spawn(cmd, Effect::Apply, Streams::new().stdin_from(input))?.wait()
    }

    /// Start a read-only command whose stdout the caller reads while it runs
    /// (`zstd -dc`, `ssh host cat FILE`); read it, then `wait`.
    fn probe_stream(&self, cmd: &Cmd) -> Result<Process, RunError> {
        self.spawn(cmd, Effect::Probe, Streams::new().stdout_pipe())
    }
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

    /// The mode this runner was made with.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Record `cmd` as asked for; true when it must really run.
    fn record(&self, cmd: &Cmd) -> bool {
        if let Ok(mut p) = self.planned.lock() {
            p.push(cmd.cmdline());
        }
        match self.mode {
            Mode::Run => {
                log::info!("running: {cmd}");
                true
            }
            Mode::Plan => {
                log::debug!("planned: {cmd}");
                false
            }
        }
    }

    fn start(&self, cmd: &Cmd, streams: Streams) -> Result<Process, RunError> {
        log::debug!("run: {}", cmd.cmdline());
        if !cmd.program.contains('/') && which(&cmd.program).is_none() {
            return Err(RunError::NotFound { program: cmd.program.clone(), hint: package_hint(&cmd.program) });
        }
        process::start(cmd, streams)
    }
}

impl Runner for SystemRunner {
    fn probe(&self, cmd: &Cmd) -> Result<Output, RunError> {
        self.start(cmd, Streams::new())?.wait()
    }

    fn apply(&self, cmd: &Cmd) -> Result<Output, RunError> {
        if self.record(cmd) {
            self.start(cmd, Streams::new())?.wait()
        } else {
            Ok(Output::default())
        }
    }

    fn spawn(&self, cmd: &Cmd, effect: Effect, streams: Streams) -> Result<Process, RunError> {
        if effect == Effect::Probe || self.record(cmd) {
            return self.start(cmd, streams);
        }
        let stdin = streams.pipes_stdin().then(|| Box::new(std::io::sink()) as Box<dyn std::io::Write + Send>);
        let stdout = streams.pipes_stdout().then(|| Box::new(std::io::empty()) as Box<dyn Read + Send>);
        Ok(Process::pretend(cmd, stdin, stdout, Ok(Output::default())))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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
    fn plan_mode_records_instead_of_running() {
        let dir = std::env::temp_dir().join(format!("lifeboat-plan-{}", std::process::id()));
        let r = SystemRunner::new(Mode::Plan);
        r.apply(&Cmd::new("mkdir").arg(&dir)).expect("plan");
        assert!(!dir.exists(), "plan mode must not run the command");
        assert_eq!(r.planned(), vec![format!("mkdir {}", dir.display())]);
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lifeboat-runner-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    }

    /// A reader that fails after giving some bytes, like a backup volume on a failing disk.
    struct Failing(usize);

    impl Read for Failing {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk read error"));
            }
            let n = self.0.min(b.len());
            b[..n].fill(b'x');
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn stdin_streams_from_a_reader() {
        let r = SystemRunner::new(Mode::Run);
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let out = r.apply_from(&Cmd::new("cat"), Box::new(std::io::Cursor::new(data.clone()))).expect("cat");
        assert_eq!(out.stdout.len(), data.len());
        assert!(out.stdout == data, "cat gives back what it was fed");
        let out = r
            .spawn(
                &Cmd::new("wc").arg("-c"),
                Effect::Probe,
                Streams::new().stdin_from(std::io::repeat(b'a').take(12345)),
            )
            .expect("spawn")
            .wait()
            .expect("wc");
        assert_eq!(out.text().trim(), "12345");
    }

    #[test]
    fn stdin_pipe_and_stdout_stream_while_running() {
        let r = SystemRunner::new(Mode::Run);
        let mut p = r.spawn(&Cmd::new("cat"), Effect::Probe, Streams::new().stdin_pipe().stdout_pipe()).expect("spawn");
        assert!(p.id().is_some() && p.is_running());
        p.stdin().expect("stdin").write_all(b"one line\n").expect("write");
        let mut line = [0u8; 9];
        p.stdout().expect("stdout").read_exact(&mut line).expect("read while it runs");
        assert_eq!(&line, b"one line\n");
        p.close_stdin();
        let mut rest = Vec::new();
        p.stdout().expect("stdout").read_to_end(&mut rest).expect("read to end");
        assert!(rest.is_empty());
        assert!(p.wait().expect("wait").stdout.is_empty(), "a piped stdout is the caller's");
    }

    #[test]
    fn stdout_streams_to_the_caller() {
        let r = SystemRunner::new(Mode::Run);
        let mut p = r.probe_stream(&Cmd::new("sh").args(["-c", "seq 1 100000; echo done >&2"])).expect("spawn");
        let mut out = p.take_stdout().expect("stdout");
        let mut text = String::new();
        out.read_to_string(&mut text).expect("read");
        assert_eq!(text.lines().count(), 100_000);
        assert_eq!(text.lines().last(), Some("100000"));
        let done = p.wait().expect("wait");
        assert_eq!(String::from_utf8_lossy(&done.stderr).trim(), "done");
    }

    #[test]
    fn a_failing_input_stops_the_command() {
        let r = SystemRunner::new(Mode::Run);
        let e = r.apply_from(&Cmd::new("cat"), Box::new(Failing(100_000))).unwrap_err();
        assert!(matches!(e, RunError::Feed { .. }), "{e}");
        assert!(e.to_string().contains("disk read error") && e.to_string().contains("`cat`"), "{e}");
    }

    #[test]
    fn streamed_failure_carries_stderr() {
        let r = SystemRunner::new(Mode::Run);
        let mut p = r
            .probe_stream(&Cmd::new("sh").args(["-c", "echo partial; echo 'ssh: no route' >&2; exit 255"]))
            .expect("spawn");
        let mut text = String::new();
        p.stdout().expect("stdout").read_to_string(&mut text).expect("read");
        assert_eq!(text, "partial\n");
        let e = p.wait().unwrap_err();
        assert!(e.to_string().contains("exit status 255") && e.reason() == "ssh: no route", "{e}");
    }

    #[test]
    fn spawned_process_is_killed_by_kill_and_by_drop() {
        let r = SystemRunner::new(Mode::Run);
        let started = Instant::now();
        let mut p = r.spawn(&Cmd::new("sleep").arg("30"), Effect::Apply, Streams::new()).expect("spawn");
        assert!(p.is_running());
        p.kill().expect("kill");
        let p = r.spawn(&Cmd::new("sleep").arg("30"), Effect::Apply, Streams::new()).expect("spawn");
        let pid = p.id().expect("pid");
        drop(p);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "dropping the handle kills and reaps the process");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(r.planned(), vec!["sleep 30".to_string(), "sleep 30".to_string()]);
    }

    #[test]
    fn overrunning_command_is_killed_and_named() {
        let r = SystemRunner::new(Mode::Run);
        let started = Instant::now();
        let e = r.probe(&Cmd::new("sleep").arg("30").timeout(Duration::from_millis(200))).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "killed at the limit");
        assert!(matches!(&e, RunError::TimedOut { limit, .. } if *limit == Duration::from_millis(200)), "{e}");
        assert_eq!(e.to_string(), "`sleep 30` did not finish within 200ms and was killed");
        // The limit holds while the caller is blocked reading a stream.
        let mut p = r.probe_stream(&Cmd::new("sleep").arg("30").timeout(Duration::from_secs(1))).expect("spawn");
        let mut buf = Vec::new();
        let _ = p.stdout().expect("stdout").read_to_end(&mut buf);
        assert!(started.elapsed() < Duration::from_secs(8));
        assert!(matches!(p.wait(), Err(RunError::TimedOut { .. })));
        // A shell's children go with it: they would hold the stream open.
        let t = Instant::now();
        let mut p = r
            .probe_stream(&Cmd::new("sh").args(["-c", "sleep 30; echo late"]).timeout(Duration::from_millis(300)))
            .expect("spawn");
        let mut buf = Vec::new();
        let _ = p.stdout().expect("stdout").read_to_end(&mut buf);
        assert!(t.elapsed() < Duration::from_secs(8), "the reader saw end of file at the limit");
        assert!(matches!(p.wait(), Err(RunError::TimedOut { .. })));
        // A command that finishes in time is not affected.
        let out = r.probe(&Cmd::new("echo").arg("quick").timeout(Duration::from_secs(30))).expect("in time");
        assert_eq!(out.text(), "quick\n");
    }

    #[test]
    fn a_process_handle_can_move_to_another_thread() {
        fn send<T: Send>(_: &T) {}
        let r = SystemRunner::new(Mode::Run);
        let p = r.probe_stream(&Cmd::new("echo").arg("moved")).expect("spawn");
        send(&p);
        let out = std::thread::spawn(move || {
            let mut p = p;
            let mut text = String::new();
            p.stdout().expect("stdout").read_to_string(&mut text).map(|_| text)
        })
        .join()
        .expect("thread")
        .expect("read");
        assert_eq!(out, "moved\n");
    }

    #[test]
    fn plan_mode_records_streamed_commands_without_running_them() {
        let dir = scratch("plan-stream");
        let file = dir.join("written");
        let r = SystemRunner::new(Mode::Plan);
        let write = Cmd::new("sh").arg("-c").arg(format!("cat > {}", file.display()));
        // The reader is never read: plan mode consumes nothing.
        r.apply_from(&write, Box::new(Failing(0))).expect("planned");
        let mut p = r.spawn(&write, Effect::Apply, Streams::new().stdin_pipe().stdout_pipe()).expect("planned");
        assert!(p.id().is_none() && !p.is_running());
        p.stdin().expect("stdin").write_all(b"discarded").expect("write");
        let mut out = Vec::new();
        p.stdout().expect("stdout").read_to_end(&mut out).expect("read");
        assert!(out.is_empty());
        p.wait().expect("wait");
        assert!(!file.exists(), "plan mode must not run a streamed command");
        assert_eq!(r.planned(), vec![write.cmdline(), write.cmdline()]);
        // Probes still run in plan mode.
        let mut p = r.probe_stream(&Cmd::new("echo").arg("probe")).expect("probe");
        let mut text = String::new();
        p.stdout().expect("stdout").read_to_string(&mut text).expect("read");
        assert_eq!(text, "probe\n");
        p.wait().expect("wait");
        assert_eq!(r.planned().len(), 2, "probes are not planned");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
