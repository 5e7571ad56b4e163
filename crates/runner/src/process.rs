//! Processes that run while lifeboat works with them: stdin fed from a
//! reader or written by the caller, stdout read by the caller while the
//! process runs, a time limit, and a handle that kills the process when it
//! is dropped.
//!
//! Every spawned process has its stderr drained by a thread of its own (so
//! it cannot block on a full pipe) and kept for the error. A time limit is
//! kept by a watchdog thread that kills the process when it overruns, even
//! while the caller is blocked reading its stdout. Killing a process kills
//! its descendants first (a shell's children would otherwise keep its pipes
//! open, and the caller's read would never end); they stay in lifeboat's
//! process group, so a Ctrl-C on the terminal still reaches them all.

use crate::{Cmd, Output, RunError};
use std::fmt;
use std::io::{self, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The most stderr kept for an error message; a long-running process
/// (ssh, QEMU) may write without end, and the end is what explains a failure.
const STDERR_KEPT: usize = 1 << 20;

/// How long `wait` still collects output after a process was killed (a
/// grandchild may hold its pipes open).
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Whether a command only reads or changes the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Only reads: it runs in every mode.
    Probe,
    /// Changes the system: recorded in [`crate::Runner::planned`], and in plan mode not started.
    Apply,
}

/// Where a spawned command's stdin comes from.
enum Input {
    /// The bytes given with [`Cmd::stdin`], or nothing.
    Cmd,
    /// Copied from this reader while the command runs.
    Reader(Box<dyn Read + Send>),
    /// Written by the caller through [`Process::stdin`].
    Pipe,
}

/// How a spawned command's stdin and stdout are connected.
///
/// The default feeds stdin from [`Cmd::stdin`] (or `/dev/null`) and collects
/// stdout into the [`Output`] that [`Process::wait`] returns.
pub struct Streams {
    input: Input,
    pipe_stdout: bool,
}

impl Default for Streams {
    fn default() -> Self {
        Streams { input: Input::Cmd, pipe_stdout: false }
    }
}

impl fmt::Debug for Streams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = match self.input {
            Input::Cmd => "cmd",
            Input::Reader(_) => "reader",
            Input::Pipe => "pipe",
        };
        f.debug_struct("Streams").field("stdin", &input).field("pipe_stdout", &self.pipe_stdout).finish()
    }
}

impl Streams {
    /// Stdin from [`Cmd::stdin`] (or nothing), stdout collected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Copy stdin from `r` while the command runs. A read error from `r`
    /// kills the command (so it never sees a truncated stream as complete)
    /// and [`Process::wait`] returns [`RunError::Feed`].
    pub fn stdin_from(mut self, r: impl Read + Send + 'static) -> Self {
        self.input = Input::Reader(Box::new(r));
        self
    }

    /// The caller writes stdin through [`Process::stdin`]; it is closed by
    /// [`Process::close_stdin`] or by [`Process::wait`].
    pub fn stdin_pipe(mut self) -> Self {
        self.input = Input::Pipe;
        self
    }

    /// The caller reads stdout through [`Process::stdout`] while the command
    /// runs, instead of getting it from [`Process::wait`].
    pub fn stdout_pipe(mut self) -> Self {
        self.pipe_stdout = true;
        self
    }

    /// Whether the caller reads stdout as a stream.
    pub fn pipes_stdout(&self) -> bool {
        self.pipe_stdout
    }

    /// Whether the caller writes stdin as a stream.
    pub fn pipes_stdin(&self) -> bool {
        matches!(self.input, Input::Pipe)
    }

    /// Take the reader given with [`Streams::stdin_from`], if any.
    pub fn take_reader(&mut self) -> Option<Box<dyn Read + Send>> {
        match std::mem::replace(&mut self.input, Input::Cmd) {
            Input::Reader(r) => Some(r),
            other => {
                self.input = other;
                None
            }
        }
    }
}

/// A running (or, in plan mode and in tests, pretended) external command.
///
/// Dropping the handle kills the process if it still runs; [`Process::wait`]
/// and [`Process::kill`] end it explicitly.
pub struct Process {
    cmdline: String,
    stdin: Option<Box<dyn Write + Send>>,
    stdout: Option<Box<dyn Read + Send>>,
    body: Body,
}

enum Body {
    /// A real process.
    Real(Box<Real>),
    /// Nothing runs: `wait` gives this result (plan mode, test doubles).
    Pretend(Option<Result<Output, RunError>>),
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("cmdline", &self.cmdline)
            .field("pid", &self.id())
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .finish()
    }
}

impl Process {
    /// A handle for a command that does not run: writes to its stdin are
    /// given to `stdin`, reads from its stdout come from `stdout`, and
    /// [`Process::wait`] returns `result`. For plan mode and test doubles.
    pub fn pretend(
        cmd: &Cmd,
        stdin: Option<Box<dyn Write + Send>>,
        stdout: Option<Box<dyn Read + Send>>,
        result: Result<Output, RunError>,
    ) -> Self {
        Process { cmdline: cmd.cmdline(), stdin, stdout, body: Body::Pretend(Some(result)) }
    }

    /// The command line, as logged.
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// The process id, when a process runs.
    pub fn id(&self) -> Option<u32> {
        match &self.body {
            Body::Real(r) => Some(r.pid),
            Body::Pretend(_) => None,
        }
    }

    /// The command's stdin, when it was spawned with [`Streams::stdin_pipe`]
    /// and not yet closed.
    pub fn stdin(&mut self) -> Option<&mut (dyn Write + Send + 'static)> {
        self.stdin.as_deref_mut()
    }

    /// Take the command's stdin away from the handle (to hand it to a
    /// protocol writer, say); dropping it closes it.
    pub fn take_stdin(&mut self) -> Option<Box<dyn Write + Send>> {
        self.stdin.take()
    }

    /// Close stdin: the command reads end of file.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The command's stdout, when it was spawned with [`Streams::stdout_pipe`].
    /// Read it to the end before [`Process::wait`]: `wait` closes it.
    pub fn stdout(&mut self) -> Option<&mut (dyn Read + Send + 'static)> {
        self.stdout.as_deref_mut()
    }

    /// Take the command's stdout away from the handle (to hand it to a
    /// decoder, say); the handle still waits for and kills the process.
    pub fn take_stdout(&mut self) -> Option<Box<dyn Read + Send>> {
        self.stdout.take()
    }

    /// Whether the process still runs (a pretended one never does).
    pub fn is_running(&mut self) -> bool {
        match &mut self.body {
            Body::Real(r) => r.status().is_none(),
            Body::Pretend(_) => false,
        }
    }

    /// Close stdin, wait for the process to end and return what it wrote.
    /// An exit status other than success is [`RunError::Failed`] with its
    /// stderr; a process that overran its [`Cmd::timeout`] is
    /// [`RunError::TimedOut`].
    pub fn wait(mut self) -> Result<Output, RunError> {
        self.stdin = None;
        self.stdout = None;
        let cmdline = self.cmdline.clone();
        match &mut self.body {
            Body::Real(r) => r.wait(cmdline),
            Body::Pretend(result) => result.take().unwrap_or_else(|| Ok(Output::default())),
        }
    }

    /// Kill the process (if it still runs) and reap it. Killing is not an
    /// error; only failing to signal or reap it is.
    pub fn kill(mut self) -> Result<(), RunError> {
        self.stdin = None;
        self.stdout = None;
        let cmdline = self.cmdline.clone();
        match &mut self.body {
            Body::Real(r) => r.kill(cmdline),
            Body::Pretend(_) => Ok(()),
        }
    }
}

/// State shared with the watchdog and the stdin feeder.
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    child: Child,
    status: Option<ExitStatus>,
    timed_out: bool,
    feed_error: Option<io::Error>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// Kill the child and its descendants unless it has already been reaped.
    fn kill(&mut self) {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
            } else {
                kill_tree(&mut self.child);
            }
        }
    }
}

/// Kill `child` (not yet reaped, so its id is still its own) and every
/// process below it. The descendants are found while `child` still holds
/// them (once it dies they are handed to init and lose their link to it).
fn kill_tree(child: &mut Child) {
    let below = descendants(child.id());
    let _ = child.kill();
    for pid in below {
        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::Kill);
        }
    }
}

/// The processes below `pid`, from `/proc/PID/task/TID/children`.
fn descendants(pid: u32) -> Vec<i32> {
    let mut found: Vec<i32> = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else { continue };
        for t in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(t.path().join("children")) else { continue };
            for c in text.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
                let Ok(c32) = i32::try_from(c) else { continue };
                if !found.contains(&c32) {
                    found.push(c32);
                    todo.push(c);
                }
            }
        }
    }
    found
}

struct Real {
    pid: u32,
    shared: Arc<Shared>,
    limit: Option<Duration>,
    stderr: Option<mpsc::Receiver<Vec<u8>>>,
    stdout: Option<mpsc::Receiver<io::Result<Vec<u8>>>>,
    watchdog: Option<JoinHandle<()>>,
    ended: bool,
}

impl Real {
    fn status(&self) -> Option<ExitStatus> {
        let mut g = self.shared.lock();
        if g.status.is_none() {
            if let Ok(Some(st)) = g.child.try_wait() {
                g.status = Some(st);
            }
        }
        g.status
    }

    fn stop_watchdog(&mut self) {
        self.shared.wake.notify_all();
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
    }

    fn wait(&mut self, cmdline: String) -> Result<Output, RunError> {
        let mut nap = Duration::from_millis(1);
        let status = loop {
            {
                let mut g = self.shared.lock();
                if let Some(st) = g.status {
                    break st;
                }
                match g.child.try_wait() {
                    Ok(Some(st)) => {
                        g.status = Some(st);
                        break st;
                    }
                    Ok(None) => {}
                    Err(source) => return Err(RunError::Io { cmdline, source }),
                }
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(50));
        };
        self.ended = true;
        self.stop_watchdog();
        let (timed_out, feed_error) = {
            let mut g = self.shared.lock();
            (g.timed_out, g.feed_error.take())
        };
        let grace = (timed_out || feed_error.is_some()).then_some(DRAIN_GRACE);
        let stderr = receive(self.stderr.take(), grace).unwrap_or_default();
        let stdout = receive(self.stdout.take(), grace)
            .transpose()
            .map_err(|source| RunError::Io { cmdline: cmdline.clone(), source })?;
        if let Some(source) = feed_error {
            log::debug!("failed: {cmdline}: its input could not be read: {source}");
            return Err(RunError::Feed { cmdline, source });
        }
        if timed_out {
            let limit = self.limit.unwrap_or_default();
            log::debug!("timed out: {cmdline} after {}", crate::show_duration(limit));
            return Err(RunError::TimedOut { cmdline, limit });
        }
        if !status.success() {
            let status = match status.code() {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".to_string(),
            };
            let stderr = String::from_utf8_lossy(&stderr).into_owned();
            log::debug!("failed: {cmdline}: {status}: {}", stderr.trim());
            return Err(RunError::Failed { cmdline, status, stderr });
        }
        Ok(Output { stdout: stdout.unwrap_or_default(), stderr })
    }

    fn kill(&mut self, cmdline: String) -> Result<(), RunError> {
        self.ended = true;
        let r = {
            let mut g = self.shared.lock();
            g.kill();
            match g.status {
                Some(_) => Ok(()),
                None => g.child.wait().map(|st| g.status = Some(st)),
            }
        };
        self.stop_watchdog();
        log::debug!("killed: {cmdline}");
        r.map_err(|source| RunError::Io { cmdline, source })
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        if !self.ended {
            let mut g = self.shared.lock();
            g.kill();
            if g.status.is_none() {
                if let Ok(st) = g.child.wait() {
                    g.status = Some(st);
                }
            }
        }
        self.stop_watchdog();
    }
}

/// What a drain thread sent, waiting at most `grace` when given.
fn receive<T>(rx: Option<mpsc::Receiver<T>>, grace: Option<Duration>) -> Option<T> {
    let rx = rx?;
    match grace {
        Some(g) => rx.recv_timeout(g).ok(),
        None => rx.recv().ok(),
    }
}

/// Start `cmd` for real with its streams connected as `streams` says.
pub(crate) fn start(cmd: &Cmd, streams: Streams) -> Result<Process, RunError> {
    let cmdline = cmd.cmdline();
    let mut c = Command::new(cmd.program());
    c.args(cmd.arguments());
    // Tools that print for humans must not translate or page their output.
    c.env("LC_ALL", "C").env("LANG", "C");
    for (k, v) in cmd.environment() {
        c.env(k, v);
    }
    let pipe_stdin = matches!(streams.input, Input::Pipe);
    let feed: Option<Box<dyn Read + Send>> = match streams.input {
        Input::Cmd => cmd.input().map(|d| Box::new(io::Cursor::new(d.to_vec())) as Box<dyn Read + Send>),
        Input::Reader(r) => Some(r),
        Input::Pipe => None,
    };
    let stdin_piped = feed.is_some() || pipe_stdin;
    c.stdin(if stdin_piped { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|source| RunError::Io { cmdline: cmdline.clone(), source })?;
    let pid = child.id();
    let child_stdin = child.stdin.take();
    let child_stdout = child.stdout.take();
    let child_stderr = child.stderr.take();
    let shared = Arc::new(Shared {
        state: Mutex::new(State { child, status: None, timed_out: false, feed_error: None }),
        wake: Condvar::new(),
    });
    let stderr = child_stderr.map(|mut e| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read_tail(&mut e, STDERR_KEPT));
        });
        rx
    });
    let (stdout_pipe, stdout) = match child_stdout {
        Some(o) if streams.pipe_stdout => (Some(Box::new(o) as Box<dyn Read + Send>), None),
        Some(mut o) => {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = tx.send(o.read_to_end(&mut buf).map(|_| buf));
            });
            (None, Some(rx))
        }
        None => (None, None),
    };
    let mut stdin_pipe: Option<Box<dyn Write + Send>> = None;
    if let Some(sink) = child_stdin {
        match feed {
            Some(src) => {
                let s = Arc::clone(&shared);
                std::thread::spawn(move || feed_stdin(src, sink, &s));
            }
            None => stdin_pipe = Some(Box::new(sink)),
        }
    }
    let watchdog = cmd.limit().map(|limit| {
        let s = Arc::clone(&shared);
        let deadline = Instant::now() + limit;
        std::thread::spawn(move || watch(&s, deadline))
    });
    Ok(Process {
        cmdline,
        stdin: stdin_pipe,
        stdout: stdout_pipe,
        body: Body::Real(Box::new(Real { pid, shared, limit: cmd.limit(), stderr, stdout, watchdog, ended: false })),
    })
}

/// Read `r` to its end, keeping at most the last `keep` bytes.
fn read_tail(r: &mut impl Read, keep: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > 2 * keep {
                    out.drain(..out.len() - keep);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if out.len() > keep {
        out.drain(..out.len() - keep);
    }
    out
}

/// Copy `src` into the child's stdin. A read error kills the child, so a
/// truncated stream never looks complete to it; a write error means the
/// child stopped reading, which its exit status explains.
fn feed_stdin(mut src: Box<dyn Read + Send>, mut sink: ChildStdin, shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let mut g = shared.lock();
                if g.status.is_none() {
                    g.feed_error = Some(e);
                    g.kill();
                }
                return;
            }
        };
        if sink.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Kill the child when `deadline` passes before it ends.
fn watch(shared: &Shared, deadline: Instant) {
    let mut g = shared.lock();
    loop {
        if g.status.is_some() {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            match g.child.try_wait() {
                Ok(Some(st)) => g.status = Some(st),
                _ => {
                    kill_tree(&mut g.child);
                    g.timed_out = true;
                }
            }
            return;
        }
        g = match shared.wake.wait_timeout(g, deadline - now) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
    }
}
