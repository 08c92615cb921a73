//! The Lua state a task script runs in: only safe libraries, a text-only `load`, a memory limit,
//! and an instruction/time budget enforced by a global hook (inherited by coroutines).

use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Value, VmState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Registry key of the unwrapped `xpcall`, which the hook runner uses.
pub const RAW_XPCALL: &str = "dms.raw_xpcall";

/// Instructions between two budget checks.
const HOOK_EVERY: u32 = 1000;

/// The per-call budget a hook checks.
#[derive(Default)]
pub struct Budget {
    remaining: AtomicU64,
    deadline: std::sync::Mutex<Option<Instant>>,
    /// Set once a limit was hit in this call; `pcall` and friends then re-raise instead of
    /// letting the script swallow the error.
    tripped: AtomicBool,
}

impl Budget {
    /// Resets the budget before a hook call.
    pub fn reset(&self, instructions: u64, deadline: Option<Instant>) {
        self.remaining.store(instructions, Ordering::SeqCst);
        self.tripped.store(false, Ordering::SeqCst);
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = deadline;
    }

    fn check(&self) -> mlua::Result<()> {
        let r = self.limits();
        if r.is_err() {
            self.tripped.store(true, Ordering::SeqCst);
        }
        r
    }

    fn limits(&self) -> mlua::Result<()> {
        let left = self.remaining.load(Ordering::SeqCst);
        if left < u64::from(HOOK_EVERY) {
            self.remaining.store(0, Ordering::SeqCst);
            return Err(mlua::Error::runtime(
                "instruction budget exhausted (scripts.instruction_limit): is there an endless loop?",
            ));
        }
        self.remaining
            .store(left - u64::from(HOOK_EVERY), Ordering::SeqCst);
        let deadline = *self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(mlua::Error::runtime(
                "time budget exhausted (the task's timeout)",
            ));
        }
        Ok(())
    }
}

/// Creates a sandboxed Lua state.
///
/// # Errors
/// mlua errors while building the globals (not expected in practice).
pub fn new_state(memory_limit: usize, budget: Arc<Budget>) -> mlua::Result<Lua> {
    let libs = StdLib::TABLE
        | StdLib::STRING
        | StdLib::MATH
        | StdLib::UTF8
        | StdLib::COROUTINE
        | StdLib::OS;
    let lua = Lua::new_with(libs, LuaOptions::default())?;
    let g = lua.globals();

    // Keep only the pure parts of `os`.
    let os: mlua::Table = g.get("os")?;
    let safe_os = lua.create_table()?;
    for f in ["time", "clock", "date", "difftime"] {
        safe_os.set(f, os.get::<Value>(f)?)?;
    }
    g.set("os", safe_os)?;

    // No file access, no bytecode, no GC control.
    for name in ["dofile", "loadfile", "collectgarbage"] {
        g.set(name, Value::Nil)?;
    }
    let string: mlua::Table = g.get("string")?;
    string.set("dump", Value::Nil)?;

    // `load` accepts text chunks only.
    let raw_load: mlua::Function = g.get("load")?;
    let text_load = lua
        .load(
            r#"
            local raw_load = ...
            return function(chunk, name, mode, env)
                if mode ~= nil and mode ~= "t" then
                    error("load: only text chunks are allowed (mode 't')", 2)
                end
                if env == nil then
                    return raw_load(chunk, name, "t")
                end
                return raw_load(chunk, name, "t", env)
            end
            "#,
        )
        .set_name("=dms-sandbox")
        .call::<mlua::Function>(raw_load)?;
    g.set("load", text_load)?;

    // Errors from the limits must not be swallowed: once tripped, the protected-call functions
    // re-raise them. The hook runner keeps the raw xpcall.
    lua.set_named_registry_value(RAW_XPCALL, g.get::<mlua::Function>("xpcall")?)?;
    let b = budget.clone();
    let tripped = lua.create_function(move |_, ()| Ok(b.tripped.load(Ordering::SeqCst)))?;
    lua.load(
        r#"
        local tripped, raw_pcall, raw_xpcall, raw_resume = ...
        -- Captured now: a script that replaces the global `error` cannot swallow a limit.
        local type, tostring, error = type, tostring, error
        local function pass(ok, err, ...)
            if not ok then
                if tripped() then
                    error(err, 0)
                end
                -- Errors raised by dms functions arrive as userdata; scripts get their text.
                if type(err) == "userdata" then
                    err = tostring(err)
                end
                return ok, err
            end
            return ok, err, ...
        end
        pcall = function(f, ...) return pass(raw_pcall(f, ...)) end
        xpcall = function(f, h, ...) return pass(raw_xpcall(f, h, ...)) end
        coroutine.resume = function(co, ...) return pass(raw_resume(co, ...)) end
        "#,
    )
    .set_name("=dms-sandbox")
    .call::<()>((
        tripped,
        g.get::<mlua::Function>("pcall")?,
        g.get::<mlua::Function>("xpcall")?,
        g.get::<mlua::Table>("coroutine")?
            .get::<mlua::Function>("resume")?,
    ))?;

    lua.set_memory_limit(memory_limit)?;
    let b = budget.clone();
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |_lua, _debug| {
            b.check()?;
            Ok(VmState::Continue)
        },
    )?;
    Ok(lua)
}
