//! Lua task scripts: the only module that depends on mlua.
//!
//! Each task's script is compiled once, into its own sandboxed Lua state ([`sandbox`]), when the
//! configuration is loaded. Its hooks (`symbols`, `intervals`, `run`, `on_success`,
//! `on_failure`) are kept and called per run with a `ctx` table; the `dms` module ([`api`])
//! reaches the engine and the primary through the run's [`Host`]. A hook error carries the
//! script name, line and a traceback and fails only that run.

mod api;
pub mod data;
mod host;
mod http;
pub mod ipc;
pub mod process;
mod sandbox;
pub mod worker;

pub use host::{Host, HttpCall, LogLevel, ScriptEnv, Services, SyncArgs};
pub use http::HttpAccess;
pub use process::{Launcher, ScriptProcess, ScriptRef};

use crate::config::ScriptSettings;
use crate::sync::SyncReport;
use api::{HostSlot, ScriptName};
use mlua::{Function, Lua, LuaSerdeExt, MultiValue, Table, Value};
use sandbox::Budget;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Hooks a script may define.
pub const HOOKS: [&str; 5] = ["symbols", "intervals", "run", "on_success", "on_failure"];

/// A script problem, always naming the script.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScriptError {
    /// The file could not be read.
    #[error("script {script}: cannot read: {message}")]
    Read {
        /// Script path.
        script: String,
        /// Cause.
        message: String,
    },
    /// The script does not compile or its top level failed.
    #[error("script {script}: {message}")]
    Load {
        /// Script path.
        script: String,
        /// Lua's message (with line).
        message: String,
    },
    /// The script's process failed: could not start, died, was killed, ran out of memory.
    #[error("script {script}: {message}")]
    Process {
        /// Script path.
        script: String,
        /// What happened.
        message: String,
    },
    /// A hook failed.
    #[error("script {script}: hook {hook} failed: {message}")]
    Hook {
        /// Script path.
        script: String,
        /// Hook name.
        hook: String,
        /// Lua's message with line and traceback.
        message: String,
    },
}

/// What a hook learns about the run, as `ctx`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    /// Task name.
    pub task: String,
    /// History run id.
    pub run_id: Option<i64>,
    /// `cron`, `manual`, `api`, `catch-up`, `once`.
    pub trigger: String,
    /// The task's sync mode.
    pub mode: String,
    /// The task's initial days.
    pub initial_days: u32,
    /// The task's `params`.
    pub params: serde_json::Value,
}

/// A compiled task script in its own Lua state.
pub struct TaskScript {
    lua: Lua,
    script: String,
    runner: Function,
    hooks: HashMap<&'static str, Function>,
    budget: Arc<Budget>,
    instruction_limit: u64,
}

impl std::fmt::Debug for TaskScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskScript")
            .field("script", &self.script)
            .field("hooks", &self.hooks.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TaskScript {
    /// Reads, compiles and runs the top level of `path` in a fresh sandbox; keeps its hooks.
    /// `shown` is how the script is named in messages (usually the path relative to the root).
    ///
    /// # Errors
    /// [`ScriptError::Read`] or [`ScriptError::Load`] (syntax error, top-level error, bad hook).
    pub fn compile(
        path: &Path,
        shown: &str,
        limits: &ScriptSettings,
        deadline: Instant,
    ) -> Result<TaskScript, ScriptError> {
        let source = std::fs::read(path).map_err(|e| ScriptError::Read {
            script: shown.to_string(),
            message: e.to_string(),
        })?;
        Self::compile_source(&source, shown, limits, deadline)
    }

    /// Compiles script text (see [`TaskScript::compile`]).
    ///
    /// # Errors
    /// [`ScriptError::Load`].
    pub fn compile_source(
        source: &[u8],
        shown: &str,
        limits: &ScriptSettings,
        deadline: Instant,
    ) -> Result<TaskScript, ScriptError> {
        let load_err = |e: &dyn std::fmt::Display| ScriptError::Load {
            script: shown.to_string(),
            message: e.to_string(),
        };
        if source.starts_with(b"\x1bLua") {
            return Err(load_err(&"precompiled (binary) chunks are not allowed"));
        }
        let budget = Arc::new(Budget::default());
        let lua =
            sandbox::new_state(limits.memory_limit, budget.clone()).map_err(|e| load_err(&e))?;
        lua.set_app_data(ScriptName(shown.to_string()));
        lua.set_app_data(HostSlot(None));
        api::install(&lua).map_err(|e| load_err(&e))?;
        let runner = make_runner(&lua).map_err(|e| load_err(&e))?;

        let chunk = lua
            .load(source)
            .set_name(format!("@{shown}"))
            .set_mode(mlua::chunk::ChunkMode::Text)
            .into_function()
            .map_err(|e| load_err(&clean(&e)))?;
        budget.reset(limits.instruction_limit, Some(deadline));
        let top: MultiValue = runner.call((chunk,)).map_err(|e| load_err(&clean(&e)))?;
        let returned = unpack(top).map_err(|m| load_err(&m))?;

        // Hooks come from a returned table, or else from globals.
        let from: Table = match returned {
            Value::Table(t) => t,
            Value::Nil => lua.globals(),
            other => {
                return Err(load_err(&format!(
                    "the script returned a {}; return a table of hooks or nothing",
                    other.type_name()
                )));
            }
        };
        let mut hooks = HashMap::new();
        for name in HOOKS {
            match from.get::<Value>(name).map_err(|e| load_err(&e))? {
                Value::Function(f) => {
                    hooks.insert(name, f);
                }
                Value::Nil => {}
                other => {
                    return Err(load_err(&format!(
                        "{name} must be a function, found a {}",
                        other.type_name()
                    )));
                }
            }
        }
        if hooks.contains_key("run")
            && (hooks.contains_key("symbols") || hooks.contains_key("intervals"))
        {
            return Err(load_err(
                &"define either run(ctx) or symbols(ctx)/intervals(ctx), not both",
            ));
        }
        Ok(TaskScript {
            lua,
            script: shown.to_string(),
            runner,
            hooks,
            budget,
            instruction_limit: limits.instruction_limit,
        })
    }

    /// The script's name in messages.
    pub fn name(&self) -> &str {
        &self.script
    }

    /// Whether the script defines `hook`.
    pub fn has(&self, hook: &str) -> bool {
        self.hooks.contains_key(hook)
    }

    /// Builds the `ctx` table for a run.
    ///
    /// # Errors
    /// [`ScriptError::Hook`] when the params cannot be converted.
    pub fn context(&self, info: &RunInfo) -> Result<Value, ScriptError> {
        self.lua.to_value(info).map_err(|e| ScriptError::Hook {
            script: self.script.clone(),
            hook: "ctx".into(),
            message: e.to_string(),
        })
    }

    /// Calls `symbols(ctx)` or `intervals(ctx)`: `None` when undefined or it returned nil.
    ///
    /// # Errors
    /// [`ScriptError::Hook`], also when the result is not a list of non-empty strings.
    pub async fn call_list(
        &self,
        hook: &'static str,
        ctx: &Value,
        host: &Arc<dyn Services>,
        deadline: Instant,
    ) -> Result<Option<Vec<String>>, ScriptError> {
        if !self.has(hook) {
            return Ok(None);
        }
        let v = self.call(hook, (ctx.clone(),), host, deadline).await?;
        let bad = |what: String| ScriptError::Hook {
            script: self.script.clone(),
            hook: hook.to_string(),
            message: what,
        };
        match v {
            Value::Nil => Ok(None),
            Value::Table(t) => {
                let mut out = Vec::new();
                for (i, item) in t.sequence_values::<Value>().enumerate() {
                    match item.map_err(|e| bad(e.to_string()))? {
                        Value::String(s) => {
                            let s = s.to_str().map_err(|e| bad(e.to_string()))?.to_string();
                            if s.is_empty() {
                                return Err(bad(format!(
                                    "returned an empty string at position {}",
                                    i + 1
                                )));
                            }
                            out.push(s);
                        }
                        other => {
                            return Err(bad(format!(
                                "must return a list of strings; position {} is a {}",
                                i + 1,
                                other.type_name()
                            )));
                        }
                    }
                }
                Ok(Some(out))
            }
            other => Err(bad(format!(
                "must return a list of strings, returned a {}",
                other.type_name()
            ))),
        }
    }

    /// Calls `run(ctx)`.
    ///
    /// # Errors
    /// [`ScriptError::Hook`].
    pub async fn call_run(
        &self,
        ctx: &Value,
        host: &Arc<dyn Services>,
        deadline: Instant,
    ) -> Result<(), ScriptError> {
        self.call("run", (ctx.clone(),), host, deadline)
            .await
            .map(|_| ())
    }

    /// Calls `on_success(ctx, report)` if defined.
    ///
    /// # Errors
    /// [`ScriptError::Hook`].
    pub async fn call_on_success(
        &self,
        ctx: &Value,
        report: &SyncReport,
        host: &Arc<dyn Services>,
        deadline: Instant,
    ) -> Result<(), ScriptError> {
        if !self.has("on_success") {
            return Ok(());
        }
        let r = api::report_value(&self.lua, report).map_err(|e| ScriptError::Hook {
            script: self.script.clone(),
            hook: "on_success".into(),
            message: e.to_string(),
        })?;
        self.call("on_success", (ctx.clone(), r), host, deadline)
            .await
            .map(|_| ())
    }

    /// Calls `on_failure(ctx, error)` if defined.
    ///
    /// # Errors
    /// [`ScriptError::Hook`].
    pub async fn call_on_failure(
        &self,
        ctx: &Value,
        error: &str,
        host: &Arc<dyn Services>,
        deadline: Instant,
    ) -> Result<(), ScriptError> {
        if !self.has("on_failure") {
            return Ok(());
        }
        self.call(
            "on_failure",
            (ctx.clone(), error.to_string()),
            host,
            deadline,
        )
        .await
        .map(|_| ())
    }

    async fn call(
        &self,
        hook: &str,
        args: impl mlua::IntoLuaMulti,
        host: &Arc<dyn Services>,
        deadline: Instant,
    ) -> Result<Value, ScriptError> {
        let err = |message: String| ScriptError::Hook {
            script: self.script.clone(),
            hook: hook.to_string(),
            message,
        };
        let f = self
            .hooks
            .get(hook)
            .ok_or_else(|| err("not defined".into()))?
            .clone();
        let mut all = MultiValue::new();
        all.push_back(Value::Function(f));
        all.extend(
            args.into_lua_multi(&self.lua)
                .map_err(|e| err(e.to_string()))?,
        );
        self.lua.set_app_data(HostSlot(Some(host.clone())));
        self.budget.reset(self.instruction_limit, Some(deadline));
        let res = self.runner.call_async::<MultiValue>(all).await;
        self.lua.set_app_data(HostSlot(None));
        let out = res.map_err(|e| err(clean(&e)))?;
        unpack(out).map_err(err)
    }
}

/// `runner(f, ...)` calls `f(...)` under `xpcall` with a traceback handler and returns
/// `ok, result_or_message`.
fn make_runner(lua: &Lua) -> mlua::Result<Function> {
    let handler = lua.create_function(|lua, err: Value| {
        let msg = match &err {
            Value::String(s) => s.to_string_lossy().to_string(),
            Value::Error(e) => clean(e),
            other => format!("(error object is a {} value)", other.type_name()),
        };
        Ok(lua
            .traceback(Some(&msg), 1)
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or(msg))
    })?;
    let raw_xpcall: Function = lua.named_registry_value(sandbox::RAW_XPCALL)?;
    lua.load(
        r#"
        local handler, xpcall = ...
        return function(f, ...)
            return xpcall(f, handler, ...)
        end
        "#,
    )
    .set_name("=dms-runner")
    .call::<Function>((handler, raw_xpcall))
}

/// Turns `xpcall`'s results into the first value or the error message.
fn unpack(mut out: MultiValue) -> Result<Value, String> {
    let ok = matches!(out.pop_front(), Some(Value::Boolean(true)));
    let first = out.pop_front().unwrap_or(Value::Nil);
    if ok {
        return Ok(first);
    }
    Err(match first {
        // Lua reports a memory error without calling the message handler.
        Value::String(s) if s.to_string_lossy() == "not enough memory" => {
            "memory limit exceeded (scripts.memory_limit_mb): not enough memory".to_string()
        }
        Value::String(s) => s.to_string_lossy().to_string(),
        Value::Error(e) => clean(&e),
        other => format!("error object is a {} value", other.type_name()),
    })
}

/// mlua error text without its Rust-side wrapping noise.
fn clean(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, traceback } => {
            format!("{}\n{traceback}", clean(cause))
        }
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::SyntaxError { message, .. } => format!("syntax error: {message}"),
        mlua::Error::MemoryError(m) => {
            format!("memory limit exceeded (scripts.memory_limit_mb): {m}")
        }
        other => other.to_string(),
    }
}

/// Every task's script, checked for syntax (scripts run in their own process, per run:
/// see [`process`]); problems come back per task.
pub fn check_all(
    tasks: &[crate::config::TaskSettings],
    root: &Path,
) -> (HashMap<String, ScriptRef>, Vec<(String, ScriptError)>) {
    let mut ok = HashMap::new();
    let mut errs = Vec::new();
    for t in tasks {
        let Some(path) = &t.script else { continue };
        let shown = display_path(path, root);
        match check_syntax(path, &shown) {
            Ok(()) => {
                ok.insert(
                    t.name.clone(),
                    ScriptRef {
                        task: t.name.clone(),
                        path: path.clone(),
                        shown,
                    },
                );
            }
            Err(e) => errs.push((t.name.clone(), e)),
        }
    }
    (ok, errs)
}

/// Reads and parses a script without running any of it.
///
/// # Errors
/// [`ScriptError::Read`] or [`ScriptError::Load`] (syntax error, binary chunk).
pub fn check_syntax(path: &Path, shown: &str) -> Result<(), ScriptError> {
    let source = std::fs::read(path).map_err(|e| ScriptError::Read {
        script: shown.to_string(),
        message: e.to_string(),
    })?;
    let load_err = |message: String| ScriptError::Load {
        script: shown.to_string(),
        message,
    };
    if source.starts_with(b"\x1bLua") {
        return Err(load_err(
            "precompiled (binary) chunks are not allowed".into(),
        ));
    }
    // Parsing only: nothing of the script runs in this process.
    let lua = Lua::new_with(mlua::StdLib::NONE, mlua::LuaOptions::default())
        .map_err(|e| load_err(e.to_string()))?;
    lua.load(&source)
        .set_name(format!("@{shown}"))
        .set_mode(mlua::chunk::ChunkMode::Text)
        .into_function()
        .map(|_| ())
        .map_err(|e| load_err(clean(&e)))
}

/// `path` relative to `root` when it lies inside, for messages.
pub fn display_path(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .map(PathBuf::from)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}
