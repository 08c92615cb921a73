//! The `dms` Lua module: `dms.sync`, `dms.reconcile`, `dms.restore`, `dms.primary`,
//! `dms.log`, `dms.time`, `dms.json`, `dms.csv`. Every table is a read-only proxy; functions that touch the outside world reach it
//! through the run's [`Host`], which exists only while a hook runs.

use super::data::DataDir;
use super::host::{HttpCall, ImportCsvArgs, LogLevel, Services, SyncArgs};
use crate::model::{FieldValue, Name, Nanos, Point, SeriesKey, format_nanos, parse_time};
use crate::restore::RestoreArgs;
use crate::sync::{ReconcileArgs, SyncReport};
use mlua::{Lua, LuaSerdeExt, Table, Value};
use std::sync::Arc;

/// The services of the script's process, stored as Lua app data.
pub(crate) struct HostSlot(pub Option<Arc<dyn Services>>);

/// Name of the script, for log lines.
pub(crate) struct ScriptName(pub String);

fn host(lua: &Lua) -> mlua::Result<Arc<dyn Services>> {
    lua.app_data_ref::<HostSlot>()
        .and_then(|s| s.0.clone())
        .ok_or_else(|| {
            mlua::Error::runtime(
                "dms: this function is only available while a task runs (inside a hook)",
            )
        })
}

fn script_name(lua: &Lua) -> String {
    lua.app_data_ref::<ScriptName>()
        .map(|s| s.0.clone())
        .unwrap_or_default()
}

/// A read-only view of a table: a userdata whose `__index` reads the table, so neither
/// assignment nor `rawset` (which works on tables only) nor its metatable can change it.
struct ReadOnly(Table);

impl mlua::UserData for ReadOnly {
    fn add_methods<M: mlua::UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(mlua::MetaMethod::Index, |_, this, key: Value| {
            this.0.raw_get::<Value>(key)
        });
        methods.add_meta_method(
            mlua::MetaMethod::NewIndex,
            |_, _, _: mlua::MultiValue| -> mlua::Result<()> {
                Err(mlua::Error::runtime("the dms module is read-only"))
            },
        );
    }
}

/// Wraps `t` so scripts can read it but not change it or its metatable.
fn readonly(lua: &Lua, t: Table) -> mlua::Result<mlua::AnyUserData> {
    lua.create_userdata(ReadOnly(t))
}

/// Installs `dms` (and a `print` that logs) into the state's globals.
pub(crate) fn install(lua: &Lua) -> mlua::Result<()> {
    let dms = lua.create_table()?;
    dms.set("sync", lua.create_async_function(lua_sync)?)?;
    dms.set("reconcile", lua.create_async_function(lua_reconcile)?)?;
    dms.set("restore", lua.create_async_function(lua_restore)?)?;
    dms.set("primary", readonly(lua, primary_table(lua)?)?)?;
    dms.set("log", readonly(lua, log_table(lua)?)?)?;
    dms.set("time", readonly(lua, time_table(lua)?)?)?;
    dms.set("json", readonly(lua, json_table(lua)?)?)?;
    dms.set("csv", readonly(lua, csv_table(lua)?)?)?;
    dms.set("http", readonly(lua, http_table(lua)?)?)?;
    dms.set(
        "float",
        lua.create_function(|_, v: f64| Ok(Value::Number(v)))?,
    )?;
    lua.globals().set("dms", readonly(lua, dms)?)?;
    lua.globals().set(
        "print",
        lua.create_function(|lua, args: mlua::MultiValue| {
            log(lua, tracing::Level::INFO, args);
            Ok(())
        })?,
    )?;
    Ok(())
}

/// Reads a Lua option table into `T` through mlua's serde support: keys the struct does not
/// know are refused with their name, values of the wrong type say what was expected.
fn options<T: serde::de::DeserializeOwned + Default>(
    lua: &Lua,
    call: &str,
    opts: Option<Table>,
) -> mlua::Result<T> {
    let Some(t) = opts else {
        return Ok(T::default());
    };
    lua.from_value(Value::Table(t))
        .map_err(|e| mlua::Error::runtime(format!("{call}: {e}")))
}

/// `dms.sync{symbols=, intervals=, backups=, mode=, initial_days=}`: syncs and returns the
/// report as a table.
async fn lua_sync(lua: Lua, opts: Option<Table>) -> mlua::Result<Value> {
    let host = host(&lua)?;
    let args: SyncArgs = options(&lua, "dms.sync", opts)?;
    if args.initial_days == Some(0) {
        return Err(mlua::Error::runtime(
            "dms.sync: initial_days must be a positive integer",
        ));
    }
    let report = host.sync(args).await.map_err(mlua::Error::runtime)?;
    report_value(&lua, &report)
}

/// `dms.reconcile{symbols=, intervals=, backups=, since=, until=, dry_run=}`: full-field
/// digests of every window, repairs what differs; returns the report as a table.
async fn lua_reconcile(lua: Lua, opts: Option<Table>) -> mlua::Result<Value> {
    let host = host(&lua)?;
    let args: ReconcileArgs = options(&lua, "dms.reconcile", opts)?;
    let report = host.reconcile(args).await.map_err(mlua::Error::runtime)?;
    lua.to_value(&report)
}

/// `dms.restore{from=, to=, symbols=, intervals=, since=, until=, overwrite=, dry_run=}`:
/// copies a backup into the primary (or `to`), compares the range exactly; returns the report
/// as a table.
async fn lua_restore(lua: Lua, opts: Option<Table>) -> mlua::Result<Value> {
    let host = host(&lua)?;
    let args: RestoreArgs = options(&lua, "dms.restore", opts)?;
    let report = host
        .restore(args)
        .await
        .map_err(|e| mlua::Error::runtime(format!("dms.restore: {e}")))?;
    lua.to_value(&report)
}

/// A report as a Lua table: `{records, failed, interrupted, not_started, units = {...},
/// empty_on_primary = {...}}`.
pub(crate) fn report_value(lua: &Lua, report: &SyncReport) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.set("records", report.records())?;
    t.set("failed", report.failed())?;
    t.set("interrupted", report.interrupted())?;
    t.set("not_started", report.not_started)?;
    t.set("units", lua.to_value(&report.units)?)?;
    t.set("empty_on_primary", lua.to_value(&report.empty_on_primary)?)?;
    t.set("up_to_date", report.up_to_date)?;
    Ok(Value::Table(t))
}

fn primary_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "series",
        lua.create_async_function(|lua, ()| async move {
            let host = host(&lua)?;
            let series = host.primary_series().await.map_err(mlua::Error::runtime)?;
            lua.to_value(&series)
        })?,
    )?;
    t.set(
        "symbols",
        lua.create_async_function(|lua, interval: Option<String>| async move {
            let host = host(&lua)?;
            let series = host.primary_series().await.map_err(mlua::Error::runtime)?;
            let mut symbols: Vec<String> = series
                .into_iter()
                .filter(|s| interval.as_ref().is_none_or(|i| &s.interval == i))
                .map(|s| s.symbol)
                .collect();
            symbols.sort();
            symbols.dedup();
            lua.to_value(&symbols)
        })?,
    )?;
    t.set(
        "newest",
        lua.create_async_function(|lua, (symbol, interval): (String, String)| async move {
            let host = host(&lua)?;
            let t = host
                .primary_newest(SeriesKey::new(symbol, interval))
                .await
                .map_err(mlua::Error::runtime)?;
            Ok(t)
        })?,
    )?;
    t.set(
        "write",
        lua.create_async_function(|lua, points: Table| async move {
            let host = host(&lua)?;
            let points = lua_points(host.as_ref(), points)?;
            let n = host
                .primary_write(points)
                .await
                .map_err(mlua::Error::runtime)?;
            Ok(n)
        })?,
    )?;
    t.set(
        "import_csv",
        lua.create_async_function(|lua, opts: Table| async move {
            let host = host(&lua)?;
            let args: ImportCsvArgs = options(&lua, "dms.primary.import_csv", Some(opts))?;
            let report = host
                .primary_import_csv(args)
                .await
                .map_err(|e| mlua::Error::runtime(format!("dms.primary.import_csv: {e}")))?;
            lua.to_value(&report)
        })?,
    )?;
    Ok(t)
}

fn lua_time(v: Value, at: usize) -> mlua::Result<Nanos> {
    match v {
        Value::Integer(n) => Ok(n),
        Value::String(s) => parse_time(&s.to_str()?)
            .map_err(|e| mlua::Error::runtime(format!("dms.primary.write: point {at}: {e}"))),
        other => Err(mlua::Error::runtime(format!(
            "dms.primary.write: point {at}: time must be integer nanoseconds or an RFC 3339 string, found a {}",
            other.type_name()
        ))),
    }
}

/// A series with its measurement and schema tags.
type Identity = (SeriesKey, Name, crate::model::Tags);

/// Converts `{ {symbol=, interval=, time=, fields={...}, tags={...}}, ... }` into points.
fn lua_points(host: &dyn Services, points: Table) -> mlua::Result<Vec<Point>> {
    let mut names: Vec<Name> = Vec::new();
    let mut intern = |s: &str| -> Name {
        if let Some(n) = names.iter().find(|n| &***n == s) {
            return n.clone();
        }
        let n: Name = Arc::from(s);
        if names.len() < 1024 {
            names.push(n.clone());
        }
        n
    };
    let mut out = Vec::with_capacity(points.raw_len());
    let mut identity: Option<Identity> = None;
    for (i, p) in points.sequence_values::<Table>().enumerate() {
        let at = i + 1;
        let p = p.map_err(|e| {
            mlua::Error::runtime(format!("dms.primary.write: point {at} is not a table: {e}"))
        })?;
        let symbol: String = p.get("symbol").map_err(|_| {
            mlua::Error::runtime(format!(
                "dms.primary.write: point {at} needs symbol (a string)"
            ))
        })?;
        let interval: String = p.get("interval").map_err(|_| {
            mlua::Error::runtime(format!(
                "dms.primary.write: point {at} needs interval (a string)"
            ))
        })?;
        for (what, name) in [("symbol", &symbol), ("interval", &interval)] {
            crate::model::check_name(what, name)
                .map_err(|e| mlua::Error::runtime(format!("dms.primary.write: point {at}: {e}")))?;
        }
        let time = lua_time(p.get("time")?, at)?;
        let key = SeriesKey::new(symbol, interval);
        if identity.as_ref().is_none_or(|(k, _, _)| k != &key) {
            let (m, t) = host.schema().identity(&key);
            identity = Some((key, m, t));
        }
        let Some((_, measurement, base_tags)) = &identity else {
            continue;
        };
        let mut tags = base_tags.clone();
        if let Some(extra) = p.get::<Option<Table>>("tags")? {
            let mut with_extra = tags.to_vec();
            for pair in extra.pairs::<String, String>() {
                let (k, v) = pair?;
                if with_extra.iter().any(|(tk, _)| **tk == *k) {
                    return Err(mlua::Error::runtime(format!(
                        "dms.primary.write: point {at}: tag {k:?} is set by the schema"
                    )));
                }
                for (what, name) in [("tag key", &k), ("tag value", &v)] {
                    crate::model::check_name(what, name).map_err(|e| {
                        mlua::Error::runtime(format!("dms.primary.write: point {at}: {e}"))
                    })?;
                }
                with_extra.push((intern(&k), Arc::from(v.as_str())));
            }
            with_extra.sort_by(|a, b| a.0.cmp(&b.0));
            tags = with_extra.into();
        }
        let fields_t: Table = p.get("fields").map_err(|_| {
            mlua::Error::runtime(format!(
                "dms.primary.write: point {at} needs fields (a table)"
            ))
        })?;
        let mut fields = Vec::new();
        for pair in fields_t.pairs::<String, Value>() {
            let (k, v) = pair?;
            let fv = match v {
                Value::Integer(n) => FieldValue::Integer(n),
                Value::Number(f) if f.is_finite() => FieldValue::Float(f),
                Value::Boolean(b) => FieldValue::Boolean(b),
                Value::String(s) => FieldValue::String(s.to_str()?.to_string()),
                Value::Nil => continue,
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "dms.primary.write: point {at}: field {k:?} cannot hold a {} (use a number, string or boolean; no NaN/inf)",
                        other.type_name()
                    )));
                }
            };
            fields.push((intern(&k), fv));
        }
        if fields.is_empty() {
            return Err(mlua::Error::runtime(format!(
                "dms.primary.write: point {at} has no fields"
            )));
        }
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        out.push(Point {
            measurement: measurement.clone(),
            tags,
            fields,
            time,
        });
    }
    Ok(out)
}

fn log(lua: &Lua, level: tracing::Level, args: mlua::MultiValue) {
    let mut msg = String::new();
    for (i, v) in args.iter().enumerate() {
        if i > 0 {
            msg.push(' ');
        }
        match v.to_string() {
            Ok(s) => msg.push_str(&s),
            Err(_) => msg.push_str(v.type_name()),
        }
    }
    let script = script_name(lua);
    // A script's text cannot forge log lines.
    let msg = crate::model::escape_controls(&msg);
    let level = match level {
        tracing::Level::ERROR => LogLevel::Error,
        tracing::Level::WARN => LogLevel::Warn,
        tracing::Level::DEBUG | tracing::Level::TRACE => LogLevel::Debug,
        _ => LogLevel::Info,
    };
    match host(lua) {
        Ok(h) => h.log(level, &script, &msg),
        Err(_) => super::host::emit(level, &script, &msg),
    }
}

fn log_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for (name, level) in [
        ("debug", tracing::Level::DEBUG),
        ("info", tracing::Level::INFO),
        ("warn", tracing::Level::WARN),
        ("error", tracing::Level::ERROR),
    ] {
        t.set(
            name,
            lua.create_function(move |lua, args: mlua::MultiValue| {
                log(lua, level, args);
                Ok(())
            })?,
        )?;
    }
    Ok(t)
}

fn time_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "now",
        lua.create_function(|_, ()| Ok(crate::model::now_nanos()))?,
    )?;
    t.set(
        "parse",
        lua.create_function(|_, s: String| {
            parse_time(&s).map_err(|e| mlua::Error::runtime(format!("dms.time.parse: {e}")))
        })?,
    )?;
    t.set(
        "format",
        lua.create_function(|_, t: i64| Ok(format_nanos(t)))?,
    )?;
    for (name, unit) in [
        ("seconds", crate::model::NANOS_PER_SEC),
        ("minutes", 60 * crate::model::NANOS_PER_SEC),
        ("hours", 3600 * crate::model::NANOS_PER_SEC),
        ("days", crate::model::NANOS_PER_DAY),
    ] {
        t.set(
            name,
            lua.create_function(move |_, n: f64| {
                let v = n * unit as f64;
                if !v.is_finite() || v.abs() > i64::MAX as f64 {
                    return Err(mlua::Error::runtime("dms.time: duration out of range"));
                }
                Ok(v as i64)
            })?,
        )?;
    }
    Ok(t)
}

fn json_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "encode",
        lua.create_function(|lua, v: Value| {
            let j: serde_json::Value = lua
                .from_value(v)
                .map_err(|e| mlua::Error::runtime(format!("dms.json.encode: {e}")))?;
            Ok(j.to_string())
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, s: String| {
            let j: serde_json::Value = serde_json::from_str(&s)
                .map_err(|e| mlua::Error::runtime(format!("dms.json.decode: {e}")))?;
            lua.to_value(&j)
        })?,
    )?;
    Ok(t)
}

/// Largest file `dms.csv.read` accepts.
const MAX_CSV_BYTES: u64 = 256 * 1024 * 1024;

fn data_dir(lua: &Lua, what: &str) -> mlua::Result<DataDir> {
    let host = host(lua)?;
    DataDir::open(host.data_dir()).map_err(|e| mlua::Error::runtime(format!("{what}: {e}")))
}

fn csv_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "read",
        lua.create_async_function(|lua, path: String| async move {
            let dir = data_dir(&lua, "dms.csv.read")?;
            let shown = path.clone();
            let (headers, rows) = tokio::task::spawn_blocking(move || {
                let bytes = dir.read(&path, MAX_CSV_BYTES).map_err(|e| e.to_string())?;
                read_csv(&bytes)
            })
            .await
            .map_err(|e| mlua::Error::runtime(format!("dms.csv.read: {e}")))?
            .map_err(|e| mlua::Error::runtime(format!("dms.csv.read {shown:?}: {e}")))?;
            let out = lua.create_table_with_capacity(rows.len(), 0)?;
            for row in rows {
                let r = lua.create_table_with_capacity(0, headers.len())?;
                for (h, v) in headers.iter().zip(row) {
                    r.set(h.as_str(), v)?;
                }
                out.push(r)?;
            }
            Ok(out)
        })?,
    )?;
    t.set(
        "exists",
        lua.create_function(|lua, path: String| {
            Ok(data_dir(lua, "dms.csv.exists").is_ok_and(|d| d.exists(&path)))
        })?,
    )?;
    t.set(
        "list",
        lua.create_function(|lua, dir: Option<String>| {
            let rel = dir.unwrap_or_default();
            data_dir(lua, "dms.csv.list")?
                .list(&rel)
                .map_err(|e| mlua::Error::runtime(format!("dms.csv.list: {e}")))
        })?,
    )?;
    Ok(t)
}

type CsvData = (Vec<String>, Vec<Vec<String>>);

fn read_csv(bytes: &[u8]) -> Result<CsvData, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| e.to_string())?;
        rows.push(rec.iter().map(str::to_string).collect());
    }
    Ok((headers, rows))
}

fn header_list(opts: &Option<Table>) -> mlua::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if let Some(o) = opts
        && let Some(h) = o.get::<Option<Table>>("headers")?
    {
        for pair in h.pairs::<String, String>() {
            out.push(pair?);
        }
    }
    Ok(out)
}

fn http_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "get",
        lua.create_async_function(|lua, (url, opts): (String, Option<Table>)| async move {
            let host = host(&lua)?;
            let headers = header_list(&opts)?;
            let answer = host
                .http(HttpCall {
                    post: false,
                    url,
                    body: None,
                    headers,
                })
                .await
                .map_err(|e| mlua::Error::runtime(format!("dms.http.get: {e}")))?;
            lua.to_value(&answer)
        })?,
    )?;
    t.set(
        "post",
        lua.create_async_function(
            |lua, (url, body, opts): (String, String, Option<Table>)| async move {
                let host = host(&lua)?;
                let headers = header_list(&opts)?;
                let answer = host
                    .http(HttpCall {
                        post: true,
                        url,
                        body: Some(body),
                        headers,
                    })
                    .await
                    .map_err(|e| mlua::Error::runtime(format!("dms.http.post: {e}")))?;
                lua.to_value(&answer)
            },
        )?,
    )?;
    Ok(t)
}
