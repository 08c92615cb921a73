//! The script's process: `dms __script TASK` (hidden), started by dms for each task run. It
//! runs the task's Lua in its sandbox under an operating-system memory limit, and asks the
//! parent over its stdin/stdout ([`super::ipc`]) for everything outside: syncs, the primary,
//! HTTP, the log. The parent kills it when the task's time is up, so nothing a script does —
//! a loop inside a C function, a finalizer that never returns — outlives its timeout or
//! reaches the daemon.

use super::host::{HttpCall, ImportCsvArgs, LogLevel, Services, SyncArgs};
use super::ipc::{FromScript, Op, ToScript, line};
use super::{TaskScript, display_path};
use crate::model::{Nanos, Point, SeriesKey};
use crate::restore::RestoreArgs;
use crate::schema::Schema;
use crate::sync::{ReconcileArgs, SyncReport};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// Memory the process may use beyond `scripts.memory_limit_mb`: the program itself, its
/// runtime and buffers. What the Lua state uses is held to the limit by Lua's allocator;
/// what Rust allocates for the script (a CSV, a decoded JSON) is held to limit + this.
pub const HEADROOM: usize = 96 * 1024 * 1024;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<serde_json::Value, String>>>>>;

/// The parent's side of the `dms` module, over the pipe.
struct Remote {
    /// Lines for the writer task, which writes them to stdout in order.
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    next: AtomicU64,
    schema: Schema,
    data_dir: PathBuf,
}

impl Remote {
    fn send(&self, msg: &FromScript) -> Result<(), String> {
        let bytes = line(msg).map_err(|e| e.to_string())?;
        self.out
            .send(bytes)
            .map_err(|_| "the pipe to dms is closed".to_string())
    }

    async fn ask(&self, op: Op) -> Result<serde_json::Value, String> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        self.send(&FromScript::Request { id, op })?;
        rx.await
            .map_err(|_| "dms stopped answering the script".to_string())?
    }

    async fn ask_as<T: serde::de::DeserializeOwned>(&self, op: Op) -> Result<T, String> {
        let v = self.ask(op).await?;
        serde_json::from_value(v).map_err(|e| format!("a bad answer from dms: {e}"))
    }
}

#[async_trait::async_trait]
impl Services for Remote {
    async fn sync(&self, args: SyncArgs) -> Result<SyncReport, String> {
        self.ask_as(Op::Sync(args)).await
    }
    async fn reconcile(&self, args: ReconcileArgs) -> Result<serde_json::Value, String> {
        self.ask(Op::Reconcile(args)).await
    }
    async fn restore(&self, args: RestoreArgs) -> Result<serde_json::Value, String> {
        self.ask(Op::Restore(args)).await
    }
    async fn primary_series(&self) -> Result<Vec<SeriesKey>, String> {
        self.ask_as(Op::PrimarySeries).await
    }
    async fn primary_newest(&self, series: SeriesKey) -> Result<Option<Nanos>, String> {
        self.ask_as(Op::PrimaryNewest(series)).await
    }
    async fn primary_write(&self, points: Vec<Point>) -> Result<usize, String> {
        self.ask_as(Op::PrimaryWrite(points)).await
    }
    async fn primary_import_csv(&self, args: ImportCsvArgs) -> Result<serde_json::Value, String> {
        self.ask(Op::ImportCsv(args)).await
    }
    async fn http(&self, req: HttpCall) -> Result<serde_json::Value, String> {
        self.ask(Op::Http(req)).await
    }
    fn log(&self, level: LogLevel, script: &str, msg: &str) {
        // Best effort: a log line the parent cannot take is lost, never an error.
        let _ = self.send(&FromScript::Log {
            level,
            script: script.to_string(),
            msg: msg.to_string(),
        });
    }
    fn schema(&self) -> &Schema {
        &self.schema
    }
    fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// Holds the process to `limit` bytes of writable memory (`RLIMIT_DATA`, which counts the
/// heap and private mappings): an allocation past it fails, and the process ends.
fn limit_memory(limit: usize) {
    #[cfg(unix)]
    {
        let bytes = limit.saturating_add(HEADROOM) as libc::rlim_t;
        let lim = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: bytes,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        unsafe {
            libc::setrlimit(libc::RLIMIT_DATA, &lim);
        }
    }
    #[cfg(not(unix))]
    let _ = limit;
}

/// Leaves SIGINT and SIGTERM to the parent: Ctrl-C in a terminal (and `systemctl stop`)
/// signals every process of the group, but a run stopped by shutdown is the parent's to
/// record as interrupted — it kills this process itself. A script process that died of the
/// signal first would look like a crashed script.
fn leave_signals_to_the_parent() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" installs no handler and touches no
    // memory of ours; it is safe from any thread.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
}

/// Environment variable with the PID of the dms process that started this one.
pub const PARENT_PID_ENV: &str = "DMS_SCRIPT_PARENT";

/// Ends this process when the dms process that started it is gone, however it ended
/// (`kill -9` included): the kernel sends SIGKILL when the parent dies
/// (`PR_SET_PDEATHSIG`, Linux), a watchdog thread checks the parent every 200 ms (other
/// systems, and a parent that died before the first check), and [`read_stdin`] exits when the
/// pipe from the parent closes. None of them depends on the script giving the runtime a
/// chance: the script may spin in a C function.
fn die_with_the_parent() {
    let expected = std::env::var(PARENT_PID_ENV)
        .ok()
        .and_then(|v| v.parse::<libc::pid_t>().ok());
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of this process.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    // SAFETY: getppid has no preconditions.
    let parent = expected.unwrap_or_else(|| unsafe { libc::getppid() });
    let orphaned = move || {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() != parent }
    };
    if orphaned() {
        std::process::exit(3);
    }
    let watchdog = std::thread::Builder::new()
        .name("parent-watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(200));
                if orphaned() {
                    std::process::exit(3);
                }
            }
        });
    if watchdog.is_err() {
        // Without the thread the pipe and the death signal still end the process.
        eprintln!("warning: cannot start the parent watchdog");
    }
}

/// The script process's main: load the config, limit memory, load the script, answer calls
/// until the parent closes the pipe.
pub async fn run(config_dir: &Path, task: &str) -> ExitCode {
    leave_signals_to_the_parent();
    die_with_the_parent();
    let settings = match crate::config::load(config_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(path) = settings.task(task).and_then(|t| t.script.clone()) else {
        eprintln!("error: task {task:?} has no script");
        return ExitCode::from(2);
    };
    limit_memory(settings.scripts.memory_limit);
    let (out, lines) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_stdout(lines));
    let remote = Arc::new(Remote {
        out,
        pending: Pending::default(),
        next: AtomicU64::new(1),
        schema: settings.schema.clone(),
        data_dir: settings.scripts.data_dir.clone(),
    });
    let (calls, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(read_stdin(remote.pending.clone(), calls));
    let Some(ToScript::Start { info, budget_ms }) = rx.recv().await else {
        return ExitCode::from(2);
    };
    let shown = display_path(&path, &settings.root);
    let services: Arc<dyn Services> = remote.clone();
    let deadline = Instant::now() + Duration::from_millis(budget_ms);
    let script = match TaskScript::compile(&path, &shown, &settings.scripts, deadline) {
        Ok(s) => s,
        Err(e) => {
            let _ = remote.send(&FromScript::LoadFailed {
                message: e.to_string(),
            });
            drop(remote);
            drop(services);
            let _ = writer.await;
            return ExitCode::SUCCESS;
        }
    };
    let hooks = super::HOOKS
        .iter()
        .filter(|h| script.has(h))
        .map(|h| h.to_string())
        .collect();
    if remote.send(&FromScript::Loaded { hooks }).is_err() {
        return ExitCode::SUCCESS;
    }
    while let Some(msg) = rx.recv().await {
        let ToScript::Call {
            hook,
            arg,
            budget_ms,
        } = msg
        else {
            continue;
        };
        let deadline = Instant::now() + Duration::from_millis(budget_ms);
        let answer = match call(&script, &info, &hook, arg, &services, deadline).await {
            Ok(value) => FromScript::Done { value },
            Err(message) => FromScript::Failed { message },
        };
        if remote.send(&answer).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

/// Writes queued lines to stdout, flushing each.
async fn write_stdout(mut lines: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut out = tokio::io::stdout();
    while let Some(l) = lines.recv().await {
        if out.write_all(&l).await.is_err() || out.flush().await.is_err() {
            return;
        }
    }
}

/// Calls `hook` with `ctx` (and its second argument), returning its value as JSON.
async fn call(
    script: &TaskScript,
    info: &super::RunInfo,
    hook: &str,
    arg: Option<serde_json::Value>,
    services: &Arc<dyn Services>,
    deadline: Instant,
) -> Result<serde_json::Value, String> {
    let ctx = script.context(info).map_err(|e| e.to_string())?;
    let v = match hook {
        "symbols" | "intervals" => {
            let h = if hook == "symbols" {
                "symbols"
            } else {
                "intervals"
            };
            let list = script
                .call_list(h, &ctx, services, deadline)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_value(list).map_err(|e| e.to_string())?
        }
        "run" => {
            script
                .call_run(&ctx, services, deadline)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::Value::Null
        }
        "on_success" => {
            let report: SyncReport = arg
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            script
                .call_on_success(&ctx, &report, services, deadline)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::Value::Null
        }
        "on_failure" => {
            let error = arg
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            script
                .call_on_failure(&ctx, &error, services, deadline)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::Value::Null
        }
        other => return Err(format!("no hook is called {other:?}")),
    };
    Ok(v)
}

/// Routes the parent's messages: replies to the requests waiting for them, everything else
/// to the main loop. Ends the process when the parent closes the pipe.
async fn read_stdin(pending: Pending, calls: mpsc::UnboundedSender<ToScript>) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        let Ok(msg) = serde_json::from_str::<ToScript>(&l) else {
            continue;
        };
        match msg {
            ToScript::Reply { id, result } => {
                let waiter = pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                if let Some(tx) = waiter {
                    let _ = tx.send(result);
                }
            }
            other => {
                if calls.send(other).is_err() {
                    return;
                }
            }
        }
    }
    // The parent closed the pipe or is gone: nothing this process does can reach anyone, and
    // the script may be spinning where no hook sees it. End at once.
    pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
    std::process::exit(0);
}
