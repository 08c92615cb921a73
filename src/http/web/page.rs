//! The status page's markup, written with [maud] (compiled into the binary, every text
//! escaped): the full page, the sign-in shell served instead when a token is configured and
//! not given, and a bare message page. The CSS and the shell's script are constants whose
//! hashes the Content-Security-Policy allows; nothing else runs or loads.

use super::format::{
    fmt_compact, fmt_duration, fmt_every, fmt_f, fmt_int, fmt_lag, fmt_ns, fmt_pct, fmt_stored,
    lag_text, lag_title, path_segment, plural, truncate,
};
use super::{BackupView, DEFAULT_REFRESH, MAX_ROWS, PageData, RunOutcome, View, history_href};
use crate::app::health::NodeHealth;
use crate::app::status::{SeriesStatus, State};
use crate::app::tasks::TaskSummary;
use crate::history::{HourlyThroughput, ReconcileRow, RunRow};
use chrono::{DateTime, Timelike, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::collections::{BTreeSet, HashMap};

/// The page's style sheet.
pub(super) const STYLE: &str = include_str!("style.css");
/// The sign-in shell's script (token in `sessionStorage`, bearer fetches).
pub(super) const SCRIPT: &str = include_str!("token.js");

/// `<head>`: optional meta refresh (seconds, target) and the script (shell only).
fn head(title: &str, refresh: Option<(u32, String)>, script: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            @if let Some((secs, url)) = refresh {
                meta http-equiv="refresh" content=(format!("{secs}; url={url}"));
            }
            title { (title) }
            // No favicon request.
            link rel="icon" href="data:,";
            style { (PreEscaped(STYLE)) }
            @if script {
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// The sign-in shell: a password field and no data.
pub(super) fn shell() -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("dms · sign in", None, true))
            body {
                main.signin {
                    h1 { "dms status" }
                    p {
                        "This dms has an API token. Enter it to see the status page. It is kept "
                        "in this browser tab only and sent as an "
                        code { "Authorization" }
                        " header, never in a URL."
                    }
                    form #login {
                        input type="password" name="token" aria-label="API token"
                            placeholder="API token" autocomplete="off" required;
                        button type="submit" { "Show status" }
                    }
                    p #login-msg.muted role="status" {}
                    noscript {
                        p.bad {
                            "Signing in needs JavaScript. Without it, use the JSON API: "
                            code { "curl -H 'Authorization: Bearer …' /api/dms/sync/status" }
                        }
                    }
                }
            }
        }
    }
}

/// A page with one message and a link back.
pub(super) fn message(text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("dms", None, false))
            body {
                main.signin {
                    h1 { "dms status" }
                    p { (text) }
                    p { a href="/" { "Back to the status page" } }
                }
            }
        }
    }
}

/// The full page.
pub(super) fn render(d: &PageData) -> Markup {
    let v = &d.view;
    let behind = d.status.iter().filter(|r| r.behind).count();
    let unreachable = d
        .backups
        .iter()
        .map(|b| &b.node)
        .chain(std::iter::once(&d.primary))
        .filter(|n| n.error.is_some())
        .count();
    let title = match (unreachable, behind) {
        (0, 0) => "dms · all current".to_string(),
        (0, b) => format!("dms · {b} behind"),
        (u, b) => format!("dms · {u} unreachable · {b} behind"),
    };
    // Without a token the browser reloads by itself; signed in, the shell's script does.
    let meta_refresh = (!d.signed_in)
        .then_some(v.refresh)
        .flatten()
        .map(|s| (s, v.href()));
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&title, meta_refresh, false))
            body data-refresh=(v.refresh.unwrap_or(0)) data-self=(v.href()) {
                header {
                    h1 { "dms " span.muted { "status" } }
                    (summary(unreachable, behind))
                    span.spacer {}
                    span.muted.small {
                        "Updated " time datetime=(d.now.to_rfc3339()) { (d.now.format("%H:%M:%S UTC")) }
                        " · "
                        @match v.refresh {
                            Some(s) => {
                                "auto-refresh every " (s) " s · "
                                a #refresh-toggle href=(v.with_refresh(None).href()) { "turn off" }
                            }
                            None => {
                                "auto-refresh off · "
                                a #refresh-toggle href=(v.with_refresh(Some(DEFAULT_REFRESH)).href()) { "turn on" }
                            }
                        }
                    }
                    @if d.signed_in {
                        button.quiet #forget type="button" { "Forget token" }
                    }
                }
                main {
                    @if let Some(n) = &v.notice {
                        @let (class, text) = notice_text(&n.task, n.outcome);
                        p #notice.notice.(class) role="status" { (text) }
                    }
                    @for p in &d.problems {
                        p.problem role="alert" { (p) }
                    }
                    (nodes(d))
                    (throughput(d))
                    (series(d))
                    (tasks(d))
                    (failures(d))
                }
                footer {
                    "dms daemon up since " (crate::timefmt::people(&d.started_at)) ". JSON: "
                    a href="/api/dms/sync/status" data-api="" { "status" } ", "
                    a href="/api/dms/sync/metrics" data-api="" { "metrics" } ", "
                    a href="/api/dms/tasks" data-api="" { "tasks" } "; "
                    a href="/metrics" { "Prometheus" } ", "
                    a href="/healthz" { "health" } "."
                }
            }
        }
    }
}

fn summary(unreachable: usize, behind: usize) -> Markup {
    html! {
        @if unreachable == 0 && behind == 0 {
            span #summary.pill.ok { "All backups current" }
        } @else {
            span #summary.pill.bad {
                @if unreachable > 0 {
                    (unreachable) (plural(unreachable, " node", " nodes")) " unreachable"
                    @if behind > 0 { " · " }
                }
                @if behind > 0 {
                    (behind) " series behind"
                }
            }
        }
    }
}

fn notice_text(task: &str, outcome: RunOutcome) -> (&'static str, String) {
    match outcome {
        RunOutcome::Started => (
            "ok",
            format!("Started a run of {task}; it shows under Tasks."),
        ),
        RunOutcome::Running => (
            "bad",
            format!("{task} is running already; not started again."),
        ),
        RunOutcome::Unknown => ("bad", format!("There is no task called {task}.")),
        RunOutcome::Stopping => (
            "bad",
            format!("The daemon is shutting down; {task} was not started."),
        ),
        RunOutcome::Disabled => (
            "bad",
            format!("{task} is disabled (enabled: false in task.yaml); not started."),
        ),
        RunOutcome::NotRecorded => (
            "bad",
            format!(
                "{task} could not start: its run could not be recorded in the sync history (see the daemon's log)."
            ),
        ),
    }
}

fn reach_badge(n: &NodeHealth) -> Markup {
    html! {
        @if n.error.is_none() {
            span.badge.ok.reach { "reachable" }
        } @else {
            span.badge.bad.reach { "unreachable" }
        }
    }
}

/// A node's kind and location (`influxdb http://host:8086/prefix database "market"`), with
/// line breaks allowed after the separators of a URL or path (and at spaces), never inside a
/// name; the full text is also the title.
fn location(describe: &str) -> Markup {
    let mut parts: Vec<&str> = Vec::new();
    let mut start = 0;
    for (i, c) in describe.char_indices() {
        if matches!(c, '/' | '.' | ':' | '?' | '&' | '=' | ',') {
            let end = i + c.len_utf8();
            // Not between the two slashes of `://`.
            if c == '/' && describe[end..].starts_with('/') {
                continue;
            }
            parts.push(&describe[start..end]);
            start = end;
        }
    }
    parts.push(&describe[start..]);
    html! {
        p.kind.muted.small title=(describe) {
            @for (i, part) in parts.iter().enumerate() {
                @if i > 0 { wbr; }
                (part)
            }
        }
    }
}

fn nodes(d: &PageData) -> Markup {
    let series: BTreeSet<(&str, &str)> = d
        .status
        .iter()
        .map(|r| (r.key.series.symbol.as_str(), r.key.series.interval.as_str()))
        .collect();
    let newest = d.status.iter().filter_map(|r| r.primary_newest_ns).max();
    let p = &d.primary;
    html! {
        div.nodes {
            section #primary {
                h2 { "Primary" }
                article.card.primary.(if p.error.is_some() { "alert" } else { "" })
                    data-node=(p.name) data-reachable=(p.error.is_none()) {
                    h3 { span { (p.name) } (reach_badge(p)) }
                    (location(&p.describe))
                    @if let Some(e) = &p.error { p.err { (e) } }
                    dl.figs {
                        dt { "Series" } dd.series-count { (fmt_int(series.len() as i64)) }
                        dt { "Newest point" } dd.newest { (newest.map_or("—".into(), crate::timefmt::people_nanos)) }
                    }
                }
            }
            section #backups {
                h2 { "Backups " span.muted.small { "· last 24 h" } }
                div.cards {
                    @for b in &d.backups {
                        (backup_card(b))
                    }
                }
                @if d.backups.is_empty() {
                    p.muted { "No enabled backups in sync.yaml." }
                }
                @if !d.disabled_backups.is_empty() {
                    p.muted.small { "Disabled backups: " (d.disabled_backups.join(", ")) }
                }
            }
        }
    }
}

fn backup_card(b: &BackupView) -> Markup {
    let f = &b.figures.figures;
    let bad = b.node.error.is_some() || b.figures.behind > 0;
    html! {
        article.card.backup.(if bad { "alert" } else { "" })
            data-backup=(b.node.name) data-reachable=(b.node.error.is_none()) {
            h3 { span { (b.node.name) } (reach_badge(&b.node)) }
            (location(&b.node.describe))
            @if let Some(e) = &b.node.error { p.err { (e) } }
            dl.figs {
                dt { "Success rate" }
                dd.rate { @if f.syncs == 0 { span.muted { "no syncs" } } @else { (fmt_pct(f.success_rate)) } }
                dt { "Syncs · failed" }
                dd {
                    (fmt_int(f.syncs)) " · " span.failures.(if f.failures > 0 { "bad" } else { "" }) { (fmt_int(f.failures)) }
                    // Stopped by shutdown: neither a success nor a failure, outside the rate.
                    @if f.interrupted > 0 {
                        span.interrupted.muted title="stopped by a shutdown: not failures, not in the success rate; the next run resumes them" {
                            " · " (fmt_int(f.interrupted)) " interrupted"
                        }
                    }
                }
                dt { "Records copied" }
                dd { (fmt_int(f.records)) }
                dt { "Worst lag" }
                dd.lag title=[lag_title(b.figures.max_lag_seconds, b.node.error.is_some())] {
                    (lag_text(b.figures.max_lag_seconds, b.node.error.is_some()))
                }
                dt { "Series behind" }
                dd.behind-count.(if b.figures.behind > 0 { "bad" } else { "" }) {
                    (b.figures.behind) " of " (b.series)
                }
                dt { "Last reconcile" }
                dd.reconcile {
                    @match &b.reconcile {
                        None => { span.muted { "none yet" } }
                        Some(r) => { (reconcile_line(r)) }
                    }
                }
            }
        }
    }
}

/// What the last reconcile of a backup compared and fixed.
fn reconcile_line(r: &ReconcileRow) -> Markup {
    let c = &r.counts;
    html! {
        span.badge.run-status.(c.status.as_str()) { (c.status.as_str()) } " "
        (fmt_stored(&r.started_at)) " UTC · " (fmt_int(i64::try_from(c.windows).unwrap_or(i64::MAX))) " windows, "
        span.(if c.differing > c.repaired { "bad" } else { "" }) { (c.differing) " differed" }
        ", " (c.repaired) " repaired, " (c.rewritten) " points rewritten"
        @if c.deleted > 0 { ", " (c.deleted) " deleted" }
        @if c.extra > 0 { ", " (c.extra) " extra kept" }
        @if c.refused > 0 { ", " span.bad { (c.refused) " deletes refused" } }
        @if let Some(e) = &c.error { div.err { (truncate(e, 300)) } }
    }
}

/// One bar slot of the chart.
struct Slot {
    hour: DateTime<Utc>,
    records: i64,
    failures: i64,
}

fn throughput(d: &PageData) -> Markup {
    let ts = d.now.timestamp();
    let now_hour = DateTime::from_timestamp(ts - ts.rem_euclid(3600), 0).unwrap_or(d.now);
    let by: HashMap<(&str, &str), &HourlyThroughput> = d
        .throughput
        .iter()
        .map(|t| ((t.backup.as_str(), t.hour.as_str()), t))
        .collect();
    let charts: Vec<(&str, Vec<Slot>)> = d
        .backups
        .iter()
        .map(|b| {
            let name = b.node.name.as_str();
            let slots = (0..24)
                .rev()
                .map(|ago| {
                    let hour = now_hour - chrono::Duration::hours(ago);
                    let key = hour.format("%Y-%m-%dT%H").to_string();
                    let t = by.get(&(name, key.as_str()));
                    Slot {
                        hour,
                        records: t.map_or(0, |t| t.records),
                        failures: t.map_or(0, |t| t.failures),
                    }
                })
                .collect();
            (name, slots)
        })
        .collect();
    let max = charts
        .iter()
        .flat_map(|(_, s)| s.iter().map(|s| s.records))
        .max()
        .unwrap_or(0);
    html! {
        section #throughput {
            h2 { "Records copied per hour " span.muted.small { "· last 24 h, UTC, one scale for all backups" } }
            @if d.throughput.is_empty() {
                p.muted { "No syncs in the last 24 hours." }
            }
            div.charts {
                @for (name, slots) in &charts {
                    (chart(name, slots, max))
                }
            }
        }
    }
}

/// A bar chart of records per hour, with failed syncs marked under the axis.
fn chart(backup: &str, slots: &[Slot], max: i64) -> Markup {
    const LEFT: f64 = 34.0;
    const RIGHT: f64 = 398.0;
    const TOP: f64 = 8.0;
    const BASE: f64 = 84.0;
    let slot_w = (RIGHT - LEFT) / slots.len().max(1) as f64;
    let total: i64 = slots.iter().map(|s| s.records).sum();
    let failed: i64 = slots.iter().map(|s| s.failures).sum();
    let label = format!(
        "{backup}: {} records copied and {failed} failed syncs in the last 24 hours",
        fmt_int(total)
    );
    html! {
        figure.chart data-backup=(backup) {
            figcaption {
                strong { (backup) } " · " (fmt_int(total)) " records"
                @if failed > 0 { " · " span.bad { (failed) " failed" } }
            }
            svg.chart viewBox="0 0 400 104" role="img" aria-label=(label) {
                line.axis x1=(LEFT) y1=(BASE) x2=(RIGHT) y2=(BASE) {}
                text x=(LEFT - 6.0) y=(TOP + 8.0) text-anchor="end" { (fmt_compact(max)) }
                text x=(LEFT - 6.0) y=(BASE) text-anchor="end" { "0" }
                @for (i, s) in slots.iter().enumerate() {
                    @let x = LEFT + i as f64 * slot_w + slot_w * 0.14;
                    @let w = slot_w * 0.72;
                    @let tip = format!(
                        "{} {}–{}: {} records, {} failed",
                        backup,
                        s.hour.format("%H:00"),
                        (s.hour + chrono::Duration::hours(1)).format("%H:00"),
                        fmt_int(s.records),
                        s.failures
                    );
                    @if s.records > 0 && max > 0 {
                        @let h = ((s.records as f64 / max as f64) * (BASE - TOP)).max(1.5);
                        rect.bar x=(fmt_f(x)) y=(fmt_f(BASE - h)) width=(fmt_f(w)) height=(fmt_f(h)) {
                            title { (tip) }
                        }
                    }
                    @if s.failures > 0 {
                        rect.fail x=(fmt_f(x)) y=(BASE + 2.0) width=(fmt_f(w)) height="5" {
                            title { (tip) }
                        }
                    }
                    @if s.hour.hour() % 6 == 0 {
                        text x=(fmt_f(x + w / 2.0)) y="101" text-anchor="middle" { (s.hour.format("%H:00")) }
                    }
                }
            }
        }
    }
}

fn series(d: &PageData) -> Markup {
    let v = &d.view;
    let rows: Vec<&SeriesStatus> = d.status.iter().filter(|r| v.shows(r)).collect();
    let backups: BTreeSet<&str> = d.backups.iter().map(|b| b.node.name.as_str()).collect();
    let symbols: BTreeSet<&str> = d
        .status
        .iter()
        .map(|r| r.key.series.symbol.as_str())
        .collect();
    let intervals: BTreeSet<&str> = d
        .status
        .iter()
        .map(|r| r.key.series.interval.as_str())
        .collect();
    let cleared = View {
        refresh: v.refresh,
        ..View::default()
    };
    html! {
        section #series {
            h2 {
                "Series "
                span #series-count.muted.small { "· " (rows.len()) " of " (d.status.len()) " backup·series" }
            }
            form #filters.filters method="get" action="/" {
                label { "Backup"
                    select name="backup" {
                        option value="" { "all" }
                        @for b in &backups {
                            option value=(b) selected[v.backup.as_deref() == Some(*b)] { (b) }
                        }
                    }
                }
                label { "Symbol"
                    input type="search" name="symbol" value=[v.symbol.as_deref()]
                        placeholder="e.g. AAPL" list="symbols";
                }
                datalist #symbols {
                    @for s in symbols.iter().take(1000) { option value=(s) {} }
                }
                label { "Interval"
                    select name="interval" {
                        option value="" { "all" }
                        @for i in &intervals {
                            option value=(i) selected[v.interval.as_deref() == Some(*i)] { (i) }
                        }
                    }
                }
                label.check { input type="checkbox" name="behind" value="1" checked[v.behind]; "behind only" }
                (refresh_field(v))
                button type="submit" { "Filter" }
                @if v.is_filtered() { a href=(cleared.href()) { "Clear" } }
            }
            div.scroll {
                table #series-table {
                    thead { tr {
                        th { "Backup" } th { "Symbol" } th { "Interval" } th { "State" } th.num { "Lag" }
                        th.wide { "Primary newest (UTC)" } th.wide { "Backup newest (UTC)" } th { "Checkpoint (UTC)" } th { "Tasks" }
                    } }
                    tbody {
                        @for r in rows.iter().take(MAX_ROWS) {
                            tr.(if r.behind { "behind" } else { "" }) data-backup=(r.key.backup)
                                data-symbol=(r.key.series.symbol) data-interval=(r.key.series.interval) data-behind=(r.behind)
                                data-state=(r.state.as_str()) {
                                td { (r.key.backup) }
                                td { (r.key.series.symbol) }
                                td { (r.key.series.interval) }
                                td.state {
                                    @if r.behind { span.badge.behind { "behind" } " " }
                                    @match r.state {
                                        State::Unknown => { span.badge.failed title=[r.error.as_deref()] { "unknown" } " " }
                                        State::Lagging => { span.muted { "lagging" } " " }
                                        State::Ahead => { span.badge.failed title="the backup holds points newer than the primary's newest: the primary lost data (dms restore brings it back; reconcile deletes none of it)" { "primary behind backup" } " " }
                                        State::Behind | State::Current => {}
                                    }
                                    @if let Some(f) = &r.future {
                                        span.badge.behind title=(format!("the primary holds a point stamped {f}, beyond future_tolerance")) { "future" } " "
                                    }
                                    @if let Some(since) = &r.stale {
                                        span.badge.behind title=(format!("the primary's newest bar has not advanced since {since}: the feed stopped?")) { "stale" } " "
                                    }
                                    @if r.last_status == Some(crate::history::Status::Failed) {
                                        span.badge.failed title=[r.last_error.as_deref()] { "last sync failed" }
                                    } @else if r.state == State::Current {
                                        span.ok { "current" }
                                    }
                                }
                                td.num title=[lag_title(r.lag_seconds, r.state == State::Unknown)] {
                                    (lag_text(r.lag_seconds, r.state == State::Unknown))
                                }
                                td.wide { (r.primary_newest_ns.map_or("—".into(), fmt_ns)) }
                                td.wide { (r.backup_newest_ns.map_or("—".into(), fmt_ns)) }
                                td { (r.checkpoint_ns.map_or("never".into(), fmt_ns)) }
                                td.tasks title="enabled tasks that maintain this series on this backup" {
                                    @if r.tasks.is_empty() { span.muted { "—" } } @else { (r.tasks.join(", ")) }
                                }
                            }
                        }
                        @if rows.is_empty() {
                            tr { td.muted colspan="9" {
                                @if d.status.is_empty() { "No series yet." } @else { "No series match the filter." }
                            } }
                        }
                    }
                }
            }
            @if rows.len() > MAX_ROWS {
                p.muted.small { "Showing the first " (MAX_ROWS) " of " (rows.len()) " rows; narrow them with the filter." }
            }
        }
    }
}

/// Hidden fields that carry the current view through a form (refresh, filters).
fn refresh_field(v: &View) -> Markup {
    html! {
        @match v.refresh {
            None => { input type="hidden" name="refresh" value="off"; }
            Some(DEFAULT_REFRESH) => {}
            Some(n) => { input type="hidden" name="refresh" value=(n); }
        }
    }
}

fn view_fields(v: &View) -> Markup {
    html! {
        @for (k, val) in v.params() {
            input type="hidden" name=(k) value=(val);
        }
    }
}

fn tasks(d: &PageData) -> Markup {
    html! {
        section #tasks {
            h2 { "Tasks" }
            @if d.tasks.is_empty() {
                p.muted { "No tasks in task.yaml." }
            } @else {
                div.scroll {
                    table {
                        thead { tr {
                            th { "Task" } th { "Schedule" } th { "Next run (UTC)" } th { "Last run (UTC)" }
                        } }
                        tbody {
                            @for t in &d.tasks { (task_row(d, t)) }
                        }
                    }
                }
            }
            p #check-loop.muted.small {
                @match d.check_every {
                    Some(every) => {
                        "Check loop: every " (fmt_every(every.as_secs_f64()))
                        " the daemon compares each backup with the primary and syncs what differs, between task runs; "
                        @match &d.check {
                            Some(r) => {
                                "it last synced at " (fmt_stored(&r.started_at)) " UTC (" (r.status.as_str()) ")."
                            }
                            None => { "it has not had anything to sync yet." }
                        }
                    }
                    None => { "Check loop off (sync.incremental.enabled: false): only task runs sync the backups." }
                }
            }
        }
    }
}

fn task_row(d: &PageData, t: &TaskSummary) -> Markup {
    html! {
        tr data-task=(t.name) {
            td {
                strong { (t.name) }
                @if !t.enabled { " " span.badge.skipped { "disabled" } }
                // A disabled task is run on purpose only (dms task run --force, the API's
                // force=true): no button for it.
                @if t.enabled {
                    form.run method="post" action=(format!("/ui/tasks/{}/run", path_segment(&t.name))) data-task=(t.name) {
                        (view_fields(&d.view))
                        button type="submit" disabled[t.running] { "Run now" }
                    }
                }
            }
            td.wrap {
                @match &t.schedule {
                    Some(expr) => {
                        @if let Some(w) = super::cron::describe(&expr.schedule) { span.words { (w) } br; }
                        code { (expr.text) } " " span.muted.small { (t.timezone.name()) } br;
                        span.muted.small.catch-up {
                            @if !t.enabled {
                                "Disabled: the schedule does not run (enabled: false)."
                            } @else if d.catch_up.contains(&t.name) {
                                "A run missed while dms was down runs once at start (catch_up)."
                            } @else {
                                "Runs missed while dms was down are skipped (catch_up: false)."
                            }
                        }
                    }
                    None => { span.muted { "manual runs only" } }
                }
            }
            td {
                @match &t.next_run {
                    Some(n) => {
                        (fmt_stored(&n.with_timezone(&Utc))) br;
                        span.muted.small { "in " (fmt_lag((n.with_timezone(&Utc) - d.now).num_milliseconds().max(0) as f64 / 1000.0)) }
                    }
                    None => { span.muted { "—" } }
                }
            }
            td.wrap.last-run {
                @if t.running { span.badge.running { "running" } " " }
                @match &t.last_run {
                    Some(r) => { (last_run(r)) }
                    None => { @if !t.running { span.muted { "never" } } }
                }
            }
        }
    }
}

fn last_run(r: &RunRow) -> Markup {
    let took = r
        .finished_at
        .map(|f| fmt_duration((f - r.started_at).num_milliseconds()));
    html! {
        span.badge.run-status.(r.status.as_str()) { (r.status.as_str()) } " "
        @if r.trigger == "catch-up" {
            span.trigger title="a scheduled run missed while dms was down (catch_up)" { (r.trigger) }
        } @else {
            span.trigger { (r.trigger) }
        }
        " · " (fmt_stored(&r.started_at))
        @if let Some(t) = took { " · " (t) }
        @if let Some(e) = &r.error { div.err { (truncate(e, 400)) } }
        @if let Some(w) = r.warning.as_ref().filter(|w| r.error.as_ref() != Some(*w)) {
            div.warning { span.badge.skipped { "warning" } " " (truncate(w, 400)) }
        }
    }
}

fn failures(d: &PageData) -> Markup {
    let v = &d.view;
    let mut all: Vec<(&str, &str)> = vec![("status", "failed")];
    if let Some(b) = &v.backup {
        all.push(("backup", b));
    }
    if let Some(i) = &v.interval {
        all.push(("interval", i));
    }
    html! {
        section #failures {
            h2 {
                "Latest failures "
                span.muted.small {
                    "· by backup and cause"
                    @if v.is_filtered() { ", matching the filter" }
                }
            }
            @if d.failures.is_empty() {
                p.muted { "No failed syncs in the history." }
            } @else {
                ol.failures {
                    @for g in &d.failures { (failure_group(d, g)) }
                }
                p.small {
                    @if d.failures_capped {
                        span.muted { "Grouped from the newest " (fmt_int(super::FAILURE_ROWS as i64)) " failed syncs. " }
                    }
                    a href=(history_href(&all)) data-api="" { "All failed syncs (JSON)" }
                }
            }
        }
    }
}

/// Most series named in one failure group; the rest are counted.
const GROUP_SERIES: usize = 6;

fn failure_group(d: &PageData, g: &super::failures::FailureGroup) -> Markup {
    let last = g.latest.started_at;
    let when = |t: &DateTime<Utc>| {
        if t.date_naive() == d.now.date_naive() {
            t.format("%H:%M").to_string()
        } else {
            t.format("%Y-%m-%d %H:%M").to_string()
        }
    };
    let series_href = |s: &crate::model::SeriesKey| {
        history_href(&[
            ("backup", &g.backup),
            ("symbol", &s.symbol),
            ("interval", &s.interval),
            ("status", "failed"),
        ])
    };
    html! {
        li data-backup=(g.backup) data-count=(g.count) data-cause=(g.cause) {
            div.head {
                strong { (g.backup) } " " span.cause { (g.cause) } " — "
                span.count { (fmt_int(g.count as i64)) (plural(g.count, " failed sync", " failed syncs")) }
                @if g.count == 1 {
                    " at " (when(&last)) " UTC"
                } @else {
                    " since " (when(&g.first)) " UTC, the last at " (when(&last))
                }
            }
            div.series.small {
                @for (i, (s, n)) in g.series.iter().take(GROUP_SERIES).enumerate() {
                    @if i > 0 { ", " }
                    a href=(series_href(s)) data-api="" title=(format!("failed syncs of {} {} on {} (JSON)", s.symbol, s.interval, g.backup)) {
                        (s.symbol) " " (s.interval)
                    }
                    @if g.series.len() > 1 { span.muted { " ×" (n) } }
                }
                @if g.series.len() > GROUP_SERIES {
                    span.muted { " and " (g.series.len() - GROUP_SERIES) " more" }
                }
            }
            div.err { (truncate(g.latest.error.as_deref().unwrap_or("(no error text)"), 1000)) }
            div.muted.small {
                "The latest: " (fmt_stored(&last)) " UTC"
                @if let Some(run) = g.latest.run_id { " · run " (run) }
            }
        }
    }
}
