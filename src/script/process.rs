//! The parent's side of a task's script process ([`super::worker`]): start it for a run, call
//! its hooks, answer its `dms` requests with the run's [`Host`], and end it — killed when the
//! run's time is up, when dms shuts down, or when the run ends. Whatever the script does
//! happens in that process: the daemon's threads only wait on a pipe.

use super::host::{Host, emit};
use super::ipc::{FromScript, Op, ToScript, line};
use super::{RunInfo, ScriptError};
use crate::sync::SyncReport;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_util::sync::CancellationToken;

/// How a task's script is found and started.
#[derive(Debug, Clone)]
pub struct ScriptRef {
    /// The task.
    pub task: String,
    /// The script file.
    pub path: PathBuf,
    /// Its name in messages (relative to the root).
    pub shown: String,
}

/// The program and config the script processes are started with.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The `dms` binary (it runs `dms --config DIR __script TASK`).
    pub program: PathBuf,
    /// The config folder the process loads.
    pub config_dir: PathBuf,
    /// `scripts.memory_limit_mb`, for messages.
    pub memory_limit: usize,
}

/// Bytes of the process's stderr kept to explain how it ended.
const STDERR_TAIL: usize = 4096;

/// The largest message the parent reads from a script's process (one line of the pipe): a
/// longer one ends the run with an error instead of growing a buffer without end.
pub const MAX_FRAME: usize = 32 * 1024 * 1024;

/// Time a script's top level gets beyond its budget before its process is killed: the
/// instruction hook stops Lua code at the budget, this stops code the hook never sees (a
/// pattern match, a C loop).
const LOAD_GRACE: Duration = Duration::from_secs(1);

/// A running script process.
pub struct ScriptProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<Vec<u8>>>,
    hooks: Vec<String>,
    script: String,
    memory_limit: usize,
}

impl ScriptProcess {
    /// Starts the process for a run of `script`'s task and loads the script (its top level
    /// gets `budget`).
    ///
    /// # Errors
    /// [`ScriptError::Load`] when the script does not load, [`ScriptError::Process`] when the
    /// process cannot start or dies.
    pub async fn start(
        launcher: &Launcher,
        script: &ScriptRef,
        info: &RunInfo,
        budget: Duration,
        host: Option<&Host>,
        cancel: &CancellationToken,
    ) -> Result<ScriptProcess, ScriptError> {
        let process_err = |message: String| ScriptError::Process {
            script: script.shown.clone(),
            message,
        };
        let mut child = Command::new(&launcher.program)
            .arg("--config")
            .arg(&launcher.config_dir)
            .arg("__script")
            .arg(&script.task)
            .env("RUST_LOG", "warn")
            .env(
                super::worker::PARENT_PID_ENV,
                std::process::id().to_string(),
            )
            .env_remove("DMS_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                process_err(format!(
                    "cannot start the script process ({}): {e}",
                    launcher.program.display()
                ))
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(process_err("the script process has no pipes".into()));
        };
        let tail = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(keep_tail(stderr, tail.clone()));
        let mut p = ScriptProcess {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr: tail,
            hooks: Vec::new(),
            script: script.shown.clone(),
            memory_limit: launcher.memory_limit,
        };
        p.send(&ToScript::Start {
            info: info.clone(),
            budget_ms: millis(budget),
        })
        .await?;
        // The top level gets its budget in wall-clock time, whatever it runs.
        let loaded = match tokio::time::timeout(budget + LOAD_GRACE, p.next(host, cancel)).await {
            Ok(r) => r?,
            Err(_) => {
                p.kill().await;
                return Err(ScriptError::Load {
                    script: script.shown.clone(),
                    message: format!(
                        "its top level did not finish within {} s (the task's timeout) and was killed",
                        budget.as_secs_f64()
                    ),
                });
            }
        };
        match loaded {
            FromScript::Loaded { hooks } => {
                p.hooks = hooks;
                Ok(p)
            }
            FromScript::LoadFailed { message } => Err(ScriptError::Load {
                script: script.shown.clone(),
                message: strip_prefix(&message, &script.shown),
            }),
            other => Err(process_err(format!(
                "an unexpected first answer: {other:?}"
            ))),
        }
    }

    /// Whether the script defines `hook`.
    pub fn has(&self, hook: &str) -> bool {
        self.hooks.iter().any(|h| h == hook)
    }

    /// Calls `hook` (with a second argument for `on_success`/`on_failure`), serving its
    /// requests until it returns.
    ///
    /// # Errors
    /// [`ScriptError::Hook`] (the hook failed), [`ScriptError::Process`] (the process died).
    pub async fn call(
        &mut self,
        hook: &str,
        arg: Option<serde_json::Value>,
        budget: Duration,
        host: &Host,
        cancel: &CancellationToken,
    ) -> Result<serde_json::Value, ScriptError> {
        let host = Some(host);
        self.send(&ToScript::Call {
            hook: hook.to_string(),
            arg,
            budget_ms: millis(budget),
        })
        .await?;
        match self.next(host, cancel).await? {
            FromScript::Done { value } => Ok(value),
            FromScript::Failed { message } => Err(ScriptError::Hook {
                script: self.script.clone(),
                hook: hook.to_string(),
                message: strip_prefix(&message, &self.script),
            }),
            other => Err(ScriptError::Process {
                script: self.script.clone(),
                message: format!("an unexpected answer: {other:?}"),
            }),
        }
    }

    /// `symbols`/`intervals`: the list it returned (`None`: undefined or nil).
    ///
    /// # Errors
    /// As [`ScriptProcess::call`].
    pub async fn call_list(
        &mut self,
        hook: &str,
        budget: Duration,
        host: &Host,
        cancel: &CancellationToken,
    ) -> Result<Option<Vec<String>>, ScriptError> {
        if !self.has(hook) {
            return Ok(None);
        }
        let v = self.call(hook, None, budget, host, cancel).await?;
        serde_json::from_value(v).map_err(|e| ScriptError::Process {
            script: self.script.clone(),
            message: format!("{hook} answered something other than a list: {e}"),
        })
    }

    /// `on_success(ctx, report)`, if defined.
    ///
    /// # Errors
    /// As [`ScriptProcess::call`].
    pub async fn call_on_success(
        &mut self,
        report: &SyncReport,
        budget: Duration,
        host: &Host,
        cancel: &CancellationToken,
    ) -> Result<(), ScriptError> {
        if !self.has("on_success") {
            return Ok(());
        }
        let arg = serde_json::to_value(report).ok();
        self.call("on_success", arg, budget, host, cancel)
            .await
            .map(|_| ())
    }

    /// `on_failure(ctx, error)`, if defined.
    ///
    /// # Errors
    /// As [`ScriptProcess::call`].
    pub async fn call_on_failure(
        &mut self,
        error: &str,
        budget: Duration,
        host: &Host,
        cancel: &CancellationToken,
    ) -> Result<(), ScriptError> {
        if !self.has("on_failure") {
            return Ok(());
        }
        let arg = Some(serde_json::Value::String(error.to_string()));
        self.call("on_failure", arg, budget, host, cancel)
            .await
            .map(|_| ())
    }

    /// Ends the process at once.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    async fn send(&mut self, msg: &ToScript) -> Result<(), ScriptError> {
        let bytes = line(msg).map_err(|e| self.process_err(e.to_string()))?;
        if self.stdin.write_all(&bytes).await.is_err() || self.stdin.flush().await.is_err() {
            return Err(self.died().await);
        }
        Ok(())
    }

    /// Reads messages, answering requests and passing on log lines, until one that ends the
    /// current step.
    async fn next(
        &mut self,
        host: Option<&Host>,
        cancel: &CancellationToken,
    ) -> Result<FromScript, ScriptError> {
        loop {
            let read = tokio::select! {
                l = read_frame(&mut self.stdout, MAX_FRAME) => l,
                _ = cancel.cancelled() => {
                    self.kill().await;
                    return Err(self.process_err("interrupted by shutdown".into()));
                }
            };
            let l = match read {
                Ok(Some(l)) => l,
                Err(FrameError::TooLong) => {
                    self.kill().await;
                    return Err(self.process_err(format!(
                        "sent a message longer than {} MiB (a list or value too large to pass); the process was killed",
                        MAX_FRAME / (1024 * 1024)
                    )));
                }
                Ok(None) | Err(FrameError::Io) => return Err(self.died().await),
            };
            let msg: FromScript = serde_json::from_str(&l)
                .map_err(|e| self.process_err(format!("a message dms cannot read: {e}")))?;
            match msg {
                FromScript::Request { id, op } => {
                    let result = match host {
                        Some(h) => serve(h, op).await,
                        None => Err("dms is only checking the script: nothing to reach".into()),
                    };
                    self.send(&ToScript::Reply { id, result }).await?;
                }
                FromScript::Log { level, script, msg } => {
                    emit(level, &script, &crate::model::escape_controls(&msg));
                }
                other => return Ok(other),
            }
        }
    }

    fn process_err(&self, message: String) -> ScriptError {
        ScriptError::Process {
            script: self.script.clone(),
            message,
        }
    }

    /// Why the process is gone, from its exit status and the end of its stderr.
    async fn died(&mut self) -> ScriptError {
        let status = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
        // Let the stderr reader take what is left.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let tail = String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|p| p.into_inner()))
            .into_owned();
        let mb = self.memory_limit / (1024 * 1024);
        let memory = tail.contains("memory allocation of") || tail.contains("out of memory");
        let why = match status {
            _ if memory => format!(
                "exceeded the memory limit (scripts.memory_limit_mb = {mb} MB) and was stopped"
            ),
            Ok(Ok(s)) => match signal_of(&s) {
                Some(9) => "was killed (SIGKILL)".to_string(),
                Some(n) => format!("crashed (signal {n})"),
                None => format!("exited unexpectedly ({s})"),
            },
            _ => {
                self.kill().await;
                "stopped answering and was killed".to_string()
            }
        };
        let detail = tail.lines().last().map(str::trim).unwrap_or("");
        self.process_err(if detail.is_empty() || memory {
            format!("the script's process {why}")
        } else {
            format!(
                "the script's process {why}: {}",
                crate::model::escape_controls(detail)
            )
        })
    }
}

fn signal_of(s: &std::process::ExitStatus) -> Option<i32> {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        s.signal()
    }
    #[cfg(not(unix))]
    {
        let _ = s;
        None
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The worker's messages already name the script (`script X: …`); the parent adds it again.
fn strip_prefix(message: &str, script: &str) -> String {
    let prefix = format!("script {script}: ");
    let m = message.strip_prefix(&prefix).unwrap_or(message);
    for hook in super::HOOKS {
        let p = format!("hook {hook} failed: ");
        if let Some(rest) = m.strip_prefix(&p) {
            return rest.to_string();
        }
    }
    m.to_string()
}

/// Why a frame could not be read.
#[derive(Debug)]
enum FrameError {
    /// Longer than the cap.
    TooLong,
    /// The pipe failed or the line is not text.
    Io,
}

/// Reads one line (without its newline) of at most `max` bytes; `None` at the end of the pipe.
/// A longer line is an error as soon as the cap is passed, before it is all read.
async fn read_frame<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<String>, FrameError> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await.map_err(|_| FrameError::Io)?;
        if buf.is_empty() {
            // The end of the pipe; a partial last line is no message.
            return Ok(None);
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max + 1 {
            return Err(FrameError::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            line.pop();
            return String::from_utf8(line)
                .map(Some)
                .map_err(|_| FrameError::Io);
        }
    }
}

/// Keeps the last [`STDERR_TAIL`] bytes of the process's stderr.
async fn keep_tail(mut stderr: tokio::process::ChildStderr, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            return;
        }
        let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
        t.extend_from_slice(&buf[..n]);
        if t.len() > STDERR_TAIL {
            let cut = t.len() - STDERR_TAIL;
            t.drain(..cut);
        }
    }
}

/// Answers one request of the script with the run's host.
async fn serve(host: &Host, op: Op) -> Result<serde_json::Value, String> {
    let json = |v: Result<serde_json::Value, serde_json::Error>| v.map_err(|e| e.to_string());
    match op {
        Op::Sync(args) => {
            let report = host.sync(args).await.map_err(|e| e.to_string())?;
            json(serde_json::to_value(report))
        }
        Op::Reconcile(args) => {
            let report = host.reconcile(args).await.map_err(|e| e.to_string())?;
            json(serde_json::to_value(report))
        }
        Op::Restore(args) => {
            let report = host.restore(args).await.map_err(|e| e.to_string())?;
            json(serde_json::to_value(report))
        }
        Op::PrimarySeries => {
            let series = host.primary_series().await.map_err(|e| e.to_string())?;
            json(serde_json::to_value(series))
        }
        Op::PrimaryNewest(s) => {
            let t = host.primary_newest(s).await.map_err(|e| e.to_string())?;
            json(serde_json::to_value(t))
        }
        Op::PrimaryWrite(points) => {
            // The process is not trusted: names are checked again here.
            for p in &points {
                let check =
                    |what, name| crate::model::check_name(what, name).map_err(|e| e.to_string());
                check("measurement", &p.measurement)?;
                for (k, v) in p.tags.iter() {
                    check("tag key", k)?;
                    check("tag value", v)?;
                }
            }
            let n = host
                .primary_write(points)
                .await
                .map_err(|e| e.to_string())?;
            json(serde_json::to_value(n))
        }
        Op::ImportCsv(args) => {
            let shown = args.file.clone();
            let report = host
                .import_csv(args)
                .await
                .map_err(|e| format!("importing {shown:?}: {e}"))?;
            json(serde_json::to_value(report))
        }
        Op::Http(call) => {
            let answer = host.http(call).await?;
            json(serde_json::to_value(answer))
        }
    }
}

/// Loads `script` in its own process as a run would (top level, hooks), then ends it:
/// `dms config check`'s test that a script loads. The top level gets `budget` (the task's
/// timeout) in wall-clock time; `cancel` ends the check at once.
///
/// # Errors
/// What loading it gives.
pub async fn check_load(
    launcher: &Launcher,
    script: &ScriptRef,
    budget: Duration,
    cancel: &CancellationToken,
) -> Result<(), ScriptError> {
    let info = RunInfo {
        task: script.task.clone(),
        run_id: None,
        trigger: "check".into(),
        mode: "incremental".into(),
        initial_days: 0,
        params: serde_json::Value::Object(Default::default()),
    };
    let mut p = ScriptProcess::start(launcher, script, &info, budget, None, cancel).await?;
    p.kill().await;
    Ok(())
}
