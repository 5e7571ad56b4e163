//! The test double: a runner that starts nothing.

use crate::{package_hint, Cmd, Effect, Output, Process, RunError, Runner, Streams};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

/// A runner for tests: answers probes from a table of canned outputs keyed by
/// the command line, records `apply` calls without running anything, and
/// keeps what every command was fed on stdin (bytes, a reader, or writes to
/// a spawned process's stdin), so the code that builds streams is tested
/// without the tools.
#[derive(Debug, Default)]
pub struct ScriptedRunner {
    answers: HashMap<String, Result<String, String>>,
    hanging: Vec<String>,
    missing: Vec<String>,
    planned: Mutex<Vec<String>>,
    inputs: Mutex<Vec<(String, Fed)>>,
}

/// What one command was fed; a spawned process's stdin pipe writes into it.
type Fed = Arc<Mutex<Vec<u8>>>;

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

    /// `cmdline` never finishes by itself (probed, applied or spawned): with a
    /// [`Cmd::timeout`] it fails with [`RunError::TimedOut`]; without one it
    /// fails saying that it would hang.
    pub fn hang(mut self, cmdline: &str) -> Self {
        self.hanging.push(cmdline.to_string());
        self
    }

    /// Pretend `program` is not installed.
    pub fn without(mut self, program: &str) -> Self {
        self.missing.push(program.to_string());
        self
    }

    /// Every command that was given stdin, with what it was fed, in order.
    pub fn inputs(&self) -> Vec<(String, Vec<u8>)> {
        let Ok(inputs) = self.inputs.lock() else { return Vec::new() };
        inputs.iter().map(|(c, f)| (c.clone(), f.lock().map(|b| b.clone()).unwrap_or_default())).collect()
    }

    fn installed(&self, cmd: &Cmd) -> Result<(), RunError> {
        if self.missing.iter().any(|m| m == cmd.program()) {
            return Err(RunError::NotFound { program: cmd.program().to_string(), hint: package_hint(cmd.program()) });
        }
        Ok(())
    }

    /// Keep what `cmd` is fed; returns the buffer further writes go to.
    fn feed(&self, cmd: &Cmd, initial: Vec<u8>) -> Fed {
        let fed = Arc::new(Mutex::new(initial));
        if let Ok(mut inputs) = self.inputs.lock() {
            inputs.push((cmd.cmdline(), Arc::clone(&fed)));
        }
        fed
    }

    fn record(&self, cmd: &Cmd) {
        if let Ok(mut p) = self.planned.lock() {
            p.push(cmd.cmdline());
        }
    }

    /// The error of a command scripted to hang.
    fn hung(&self, cmd: &Cmd) -> Option<RunError> {
        let cmdline = cmd.cmdline();
        if !self.hanging.contains(&cmdline) {
            return None;
        }
        Some(match cmd.limit() {
            Some(limit) => RunError::TimedOut { cmdline, limit },
            None => RunError::Failed {
                cmdline,
                status: "killed by a signal".into(),
                stderr: "scripted to hang, and the command has no timeout".into(),
            },
        })
    }

    /// What a probe of `cmd` gives.
    fn answered(&self, cmd: &Cmd) -> Result<Output, RunError> {
        if let Some(e) = self.hung(cmd) {
            return Err(e);
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
}

/// A stdin pipe that keeps what is written.
struct Recorder(Fed);

impl Write for Recorder {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().map_err(|_| io::Error::other("recorder poisoned"))?.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Runner for ScriptedRunner {
    fn probe(&self, cmd: &Cmd) -> Result<Output, RunError> {
        self.installed(cmd)?;
        if let Some(d) = cmd.input() {
            self.feed(cmd, d.to_vec());
        }
        self.answered(cmd)
    }

    fn apply(&self, cmd: &Cmd) -> Result<Output, RunError> {
        self.record(cmd);
        if let Some(d) = cmd.input() {
            self.feed(cmd, d.to_vec());
        }
        match self.hung(cmd) {
            Some(e) => Err(e),
            None => Ok(Output::default()),
        }
    }

    fn spawn(&self, cmd: &Cmd, effect: Effect, mut streams: Streams) -> Result<Process, RunError> {
        self.installed(cmd)?;
        if effect == Effect::Apply {
            self.record(cmd);
        }
        let mut stdin: Option<Box<dyn Write + Send>> = None;
        let mut fed_error = None;
        if let Some(mut r) = streams.take_reader() {
            let mut all = Vec::new();
            if let Err(source) = r.read_to_end(&mut all) {
                fed_error = Some(RunError::Feed { cmdline: cmd.cmdline(), source });
            }
            self.feed(cmd, all);
        } else if streams.pipes_stdin() {
            stdin = Some(Box::new(Recorder(self.feed(cmd, Vec::new()))));
        } else if let Some(d) = cmd.input() {
            self.feed(cmd, d.to_vec());
        }
        let mut result = match (fed_error, effect) {
            (Some(e), _) => Err(e),
            (None, Effect::Probe) => self.answered(cmd),
            (None, Effect::Apply) => self.hung(cmd).map_or(Ok(Output::default()), Err),
        };
        let mut stdout: Option<Box<dyn Read + Send>> = None;
        if streams.pipes_stdout() {
            let text = match &mut result {
                Ok(out) => std::mem::take(&mut out.stdout),
                Err(_) => Vec::new(),
            };
            stdout = Some(Box::new(io::Cursor::new(text)));
        }
        Ok(Process::pretend(cmd, stdin, stdout, result))
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
    use std::time::Duration;

    #[test]
    fn spawned_probe_streams_its_answer() {
        let r = ScriptedRunner::new().answer("ssh host cat /b/catalog", "catalog text");
        let mut p = r.probe_stream(&Cmd::new("ssh").args(["host", "cat", "/b/catalog"])).expect("spawn");
        let mut got = String::new();
        p.stdout().expect("stdout").read_to_string(&mut got).expect("read");
        assert_eq!(got, "catalog text");
        p.wait().expect("wait");
        assert!(r.planned().is_empty(), "a probe is not planned");
    }

    #[test]
    fn streamed_input_is_recorded_not_run() {
        let r = ScriptedRunner::new();
        let dd = Cmd::new("dd").args(["of=/dev/vdz", "bs=1M"]);
        r.apply_from(&dd, Box::new(io::Cursor::new(b"image".to_vec()))).expect("apply");
        let mut p = r.spawn(&Cmd::new("ssh").arg("host"), Effect::Apply, Streams::new().stdin_pipe()).expect("spawn");
        p.stdin().expect("stdin").write_all(b"volume").expect("write");
        p.wait().expect("wait");
        assert_eq!(r.planned(), vec!["dd of=/dev/vdz bs=1M".to_string(), "ssh host".to_string()]);
        assert_eq!(
            r.inputs(),
            vec![("dd of=/dev/vdz bs=1M".to_string(), b"image".to_vec()), ("ssh host".to_string(), b"volume".to_vec())]
        );
    }

    #[test]
    fn bytes_given_with_the_command_are_recorded() {
        let r = ScriptedRunner::new();
        r.apply(&Cmd::new("sfdisk").arg("/dev/vdz").stdin("label: gpt\n")).expect("apply");
        assert_eq!(r.inputs(), vec![("sfdisk /dev/vdz".to_string(), b"label: gpt\n".to_vec())]);
    }

    #[test]
    fn hanging_command_times_out_only_with_a_limit() {
        let r = ScriptedRunner::new().hang("qemu-system-x86_64");
        let e = r.probe(&Cmd::new("qemu-system-x86_64").timeout(Duration::from_secs(5))).unwrap_err();
        assert!(matches!(e, RunError::TimedOut { limit, .. } if limit == Duration::from_secs(5)), "{e}");
        let e = r.apply(&Cmd::new("qemu-system-x86_64")).unwrap_err();
        assert!(e.to_string().contains("no timeout"), "{e}");
    }

    #[test]
    fn missing_program_fails_at_spawn() {
        let r = ScriptedRunner::new().without("zstd");
        let e = r.probe_stream(&Cmd::new("zstd").arg("-dc")).unwrap_err();
        assert!(matches!(e, RunError::NotFound { .. }), "{e}");
    }
}
