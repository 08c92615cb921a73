//! Cron evaluation and the scheduler's state, with the clock passed in (pure: no I/O, no
//! sleeping), so fire times, catch-up and DST behaviour are tested against any "now".
//!
//! Schedules are read in the task's time zone on wall-clock time: each matching local time fires
//! once — a time that occurs twice when clocks fall back fires at its first occurrence, and a time
//! skipped when clocks spring forward fires at the first instant after the gap.

use crate::config::TaskSettings;
use crate::history::Trigger;
use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;

/// The first fire time of `schedule` strictly after `after`, read in `tz`.
pub fn next_after(
    schedule: &cron::Schedule,
    tz: Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let local = after.with_timezone(&tz).naive_local();
    // Walk the schedule on naive wall-clock time (the cron crate evaluated "as if UTC").
    let start = Utc.from_utc_datetime(&(local - chrono::Duration::hours(3)));
    for candidate in schedule.after(&start).take(100_000) {
        let naive = candidate.naive_utc();
        let Some(instant) = resolve(tz, naive) else {
            continue;
        };
        if instant > after {
            return Some(instant);
        }
        if naive > local + chrono::Duration::days(366 * 5) {
            break;
        }
    }
    None
}

/// The latest fire time at or before `now` and strictly after `since`, if any.
pub fn last_between(
    schedule: &cron::Schedule,
    tz: Tz,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut last = None;
    let mut t = since;
    while let Some(next) = next_after(schedule, tz, t) {
        if next > now {
            break;
        }
        last = Some(next);
        t = next;
    }
    last
}

/// The instant a local wall-clock time stands for: the earlier one when it occurs twice, the
/// end of the gap when it does not occur.
fn resolve(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(d) => Some(d.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        // Inside a spring-forward gap: the first valid minute is the end of the gap (gaps start
        // and end on whole minutes in every zone in use).
        LocalResult::None => (1..=180).find_map(|m| {
            match tz.from_local_datetime(&(naive + chrono::Duration::minutes(m))) {
                LocalResult::Single(d) | LocalResult::Ambiguous(d, _) => {
                    Some(d.with_timezone(&Utc))
                }
                LocalResult::None => None,
            }
        }),
    }
}

/// One scheduled task.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    schedule: cron::Schedule,
    tz: Tz,
    next: Option<DateTime<Utc>>,
}

/// Which scheduled tasks are due, given the time.
#[derive(Debug, Clone, Default)]
pub struct Scheduler {
    entries: Vec<Entry>,
}

impl Scheduler {
    /// Schedules every enabled task that has a schedule, as of `now`.
    pub fn new(tasks: &[TaskSettings], now: DateTime<Utc>) -> Scheduler {
        let entries = tasks
            .iter()
            .filter(|t| t.enabled)
            .filter_map(|t| {
                let c = t.schedule.as_ref()?;
                Some(Entry {
                    name: t.name.clone(),
                    schedule: c.schedule.clone(),
                    tz: t.timezone,
                    next: next_after(&c.schedule, t.timezone, now),
                })
            })
            .collect();
        Scheduler { entries }
    }

    /// Runs missed while the daemon was down: for each task with `catch_up`, one run if a fire
    /// time passed after its last recorded run (`last_runs`, by task). A task that never ran is
    /// not caught up (its first scheduled time is its first run).
    pub fn catch_ups(
        tasks: &[TaskSettings],
        last_runs: &HashMap<String, DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Vec<String> {
        tasks
            .iter()
            .filter(|t| t.enabled && t.catch_up)
            .filter_map(|t| {
                let c = t.schedule.as_ref()?;
                let last = last_runs.get(&t.name)?;
                last_between(&c.schedule, t.timezone, *last, now).map(|_| t.name.clone())
            })
            .collect()
    }

    /// Tasks due at `now` (each once, however many fire times passed), and moves each one's next
    /// fire time past `now`.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<(String, Trigger)> {
        let mut out = Vec::new();
        for e in &mut self.entries {
            if e.next.is_some_and(|n| n <= now) {
                out.push((e.name.clone(), Trigger::Cron));
                e.next = next_after(&e.schedule, e.tz, now);
            }
        }
        out
    }

    /// The earliest next fire time.
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        self.entries.iter().filter_map(|e| e.next).min()
    }

    /// Next fire time of each scheduled task.
    pub fn next_times(&self) -> impl Iterator<Item = (&str, Option<DateTime<Utc>>)> {
        self.entries.iter().map(|e| (e.name.as_str(), e.next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::de::CronExpr;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fires(expr: &str, tz: Tz, from: &str, n: usize) -> Vec<String> {
        let c = CronExpr::parse(expr).unwrap();
        let mut t = at(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = next_after(&c.schedule, tz, t).unwrap();
            out.push(t.with_timezone(&tz).to_rfc3339());
        }
        out
    }

    fn task(name: &str, expr: &str, tz: Tz) -> TaskSettings {
        TaskSettings {
            name: name.into(),
            mode: crate::config::SyncMode::Incremental,
            sync_backups: true,
            backups: None,
            initial_days: 1,
            schedule: Some(CronExpr::parse(expr).unwrap()),
            timezone: tz,
            script: None,
            params: serde_json::Value::Null,
            enabled: true,
            timeout: std::time::Duration::from_secs(60),
            catch_up: true,
            stale_after: 2,
        }
    }

    #[test]
    fn weekday_close_fires_at_local_time_on_both_sides_of_dst() {
        let ny = chrono_tz::America::New_York;
        // US DST 2026: starts Sunday 8 March, ends Sunday 1 November.
        let f = fires("30 16 * * Mon-Fri", ny, "2026-03-05T12:00:00Z", 3);
        assert_eq!(
            f,
            [
                "2026-03-05T16:30:00-05:00",
                "2026-03-06T16:30:00-05:00",
                "2026-03-09T16:30:00-04:00"
            ]
        );
        let f = fires("30 16 * * Mon-Fri", ny, "2026-10-30T12:00:00Z", 2);
        assert_eq!(
            f,
            ["2026-10-30T16:30:00-04:00", "2026-11-02T16:30:00-05:00"]
        );
    }

    #[test]
    fn a_time_skipped_by_spring_forward_fires_once_after_the_gap() {
        let ny = chrono_tz::America::New_York;
        let f = fires("30 2 * * *", ny, "2026-03-07T12:00:00Z", 3);
        assert_eq!(
            f,
            [
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
                "2026-03-10T02:30:00-04:00"
            ]
        );
    }

    #[test]
    fn a_time_repeated_by_fall_back_fires_once() {
        let ny = chrono_tz::America::New_York;
        let f = fires("30 1 * * *", ny, "2026-10-31T12:00:00Z", 2);
        assert_eq!(
            f,
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
        );
        // Hourly across the repeated hour: 01:00 and 01:30 once each, then 02:00 EST.
        let f = fires("*/30 * * * *", ny, "2026-11-01T04:45:00Z", 4);
        assert_eq!(
            f,
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T02:00:00-05:00",
                "2026-11-01T02:30:00-05:00"
            ]
        );
    }

    #[test]
    fn macros_fire_at_their_standard_times() {
        let utc = chrono_tz::UTC;
        assert_eq!(
            fires("@hourly", utc, "2026-01-01T00:30:00Z", 2),
            ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"]
        );
        // Local midnight, on both sides of a DST change.
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            fires("@daily", ny, "2026-03-07T12:00:00Z", 2),
            ["2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00"]
        );
        assert_eq!(
            fires("@midnight", utc, "2026-01-01T00:00:00Z", 1),
            ["2026-01-02T00:00:00+00:00"]
        );
        // Sunday midnight (2026-01-07 is a Wednesday).
        assert_eq!(
            fires("@weekly", utc, "2026-01-07T12:00:00Z", 2),
            ["2026-01-11T00:00:00+00:00", "2026-01-18T00:00:00+00:00"]
        );
        assert_eq!(
            fires("@monthly", utc, "2026-01-15T00:00:00Z", 2),
            ["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"]
        );
        assert_eq!(
            fires("@yearly", utc, "2026-06-01T00:00:00Z", 2),
            ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]
        );
        assert_eq!(
            fires("@annually", utc, "2026-06-01T00:00:00Z", 1),
            ["2027-01-01T00:00:00+00:00"]
        );
    }

    #[test]
    fn due_tasks_fire_once_however_late_the_check() {
        let tasks = [task("hourly", "0 * * * *", chrono_tz::UTC)];
        let mut s = Scheduler::new(&tasks, at("2026-01-01T00:30:00Z"));
        assert_eq!(s.next_wakeup(), Some(at("2026-01-01T01:00:00Z")));
        assert!(s.due(at("2026-01-01T00:59:59Z")).is_empty());
        // Three hours late: one run, and the next is the next whole hour after now.
        assert_eq!(s.due(at("2026-01-01T04:10:00Z")).len(), 1);
        assert_eq!(s.next_wakeup(), Some(at("2026-01-01T05:00:00Z")));
        assert!(s.due(at("2026-01-01T04:20:00Z")).is_empty());
    }

    #[test]
    fn a_missed_run_is_caught_up_once_after_an_outage() {
        let ny = chrono_tz::America::New_York;
        let mut tasks = vec![
            task("daily", "30 16 * * Mon-Fri", ny),
            task("fresh", "0 * * * *", ny),
        ];
        let mut last = HashMap::new();
        // Last ran Monday; the daemon was down until Thursday morning.
        last.insert("daily".to_string(), at("2026-01-05T21:31:00Z"));
        let now = at("2026-01-08T14:00:00Z");
        assert_eq!(Scheduler::catch_ups(&tasks, &last, now), ["daily"]);
        // Nothing missed: no catch-up.
        last.insert("daily".to_string(), at("2026-01-07T21:31:00Z"));
        assert!(Scheduler::catch_ups(&tasks, &last, now).is_empty());
        // Catch-up switched off.
        last.insert("daily".to_string(), at("2026-01-05T21:31:00Z"));
        tasks[0].catch_up = false;
        assert!(Scheduler::catch_ups(&tasks, &last, now).is_empty());
    }
}
