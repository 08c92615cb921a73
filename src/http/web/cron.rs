//! Cron schedules in words for the status page: "at 16:30 on Mon–Fri", "every hour at :05",
//! "every 2 seconds".
//!
//! The words are read from the *parsed* schedule (the sets of seconds, minutes, hours, days the
//! `cron` crate will fire on), not from the text, so they say what the scheduler really does.
//! Numeric weekdays are standard cron's: the config rewrites them as names before the crate
//! reads them (`1-5` is Mon–Fri), and macros as their fields (`@daily` reads "at 00:00 every
//! day"). Shapes not recognised here give `None`, and the page shows only the expression:
//! better no words than wrong ones.

use cron::{Schedule, TimeUnitSpec};

/// Day names by the `cron` crate's weekday ordinal (1 = Sunday).
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Month names by ordinal (1 = January).
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Describes `schedule` in words, or `None` when its shape is not one of the common ones.
pub fn describe(schedule: &Schedule) -> Option<String> {
    if !schedule.years().is_all() {
        return None;
    }
    let days = if schedule.months().is_all() {
        days(schedule)?
    } else {
        dates(schedule)?
    };
    let seconds = values(schedule.seconds());
    let minutes = values(schedule.minutes());
    let hours = values(schedule.hours());
    let every_minute = schedule.minutes().is_all();
    let every_hour = schedule.hours().is_all();

    // Several times a minute.
    if every_minute && every_hour {
        let what = if schedule.seconds().is_all() {
            "every second".to_string()
        } else if let Some(n) = step(&seconds, 60) {
            format!("every {n} seconds")
        } else if seconds == [0] {
            "every minute".to_string()
        } else {
            return None;
        };
        return Some(frequency(what, days));
    }
    let [second] = seconds[..] else {
        return None;
    };
    if every_hour {
        let what = if let Some(n) = step(&minutes, 60).filter(|_| second == 0) {
            format!("every {n} minutes")
        } else if let [m] = minutes[..] {
            format!("every hour at {}", past_the_hour(m, second))
        } else {
            return None;
        };
        return Some(frequency(what, days));
    }
    if let [m] = minutes[..] {
        if let Some(n) = step(&hours, 24) {
            let what = format!("every {n} hours at {}", past_the_hour(m, second));
            return Some(frequency(what, days));
        }
        if hours.len() <= 4 {
            return Some(at_times(&minutes, &hours, second, days));
        }
        let (first, last) = contiguous(&hours)?;
        let what = format!(
            "every hour at {} from {} to {}",
            past_the_hour(m, second),
            clock(first, m, second),
            clock(last, m, second)
        );
        return Some(frequency(what, days));
    }
    if second == 0 && (every_minute || step(&minutes, 60).is_some()) {
        let (first, last) = contiguous(&hours)?;
        let what = match step(&minutes, 60) {
            Some(n) => format!("every {n} minutes"),
            None => "every minute".to_string(),
        };
        let end = minutes.last().copied().unwrap_or(0);
        let what = format!(
            "{what} from {} to {}",
            clock(first, 0, 0),
            clock(last, end, 0)
        );
        return Some(frequency(what, days));
    }
    if minutes.len() * hours.len() <= 4 {
        return Some(at_times(&minutes, &hours, second, days));
    }
    None
}

/// The included ordinals of one field.
fn values(spec: &impl TimeUnitSpec) -> Vec<u32> {
    spec.iter().collect()
}

/// `n` when `values` is exactly 0, n, 2n, … below `modulus` and `n` divides `modulus` (so the
/// gap is also `n` across the wrap), with `n > 1`.
fn step(values: &[u32], modulus: u32) -> Option<u32> {
    let n = *values.get(1)?;
    (n > 1
        && modulus.is_multiple_of(n)
        && values.iter().copied().eq((0..modulus).step_by(n as usize)))
    .then_some(n)
}

/// `(first, last)` when `values` is a run of consecutive numbers.
fn contiguous(values: &[u32]) -> Option<(u32, u32)> {
    let (&first, &last) = (values.first()?, values.last()?);
    (values.len() as u32 == last - first + 1).then_some((first, last))
}

/// `:05`, or `:05:30` with seconds.
fn past_the_hour(minute: u32, second: u32) -> String {
    if second == 0 {
        format!(":{minute:02}")
    } else {
        format!(":{minute:02}:{second:02}")
    }
}

/// `16:30`, or `16:30:15` with seconds.
fn clock(hour: u32, minute: u32, second: u32) -> String {
    if second == 0 {
        format!("{hour:02}:{minute:02}")
    } else {
        format!("{hour:02}:{minute:02}:{second:02}")
    }
}

/// "at 09:30 and 16:30 on Mon–Fri" / "at 00:00 every day".
fn at_times(minutes: &[u32], hours: &[u32], second: u32, days: Days) -> String {
    let times: Vec<String> = hours
        .iter()
        .flat_map(|&h| minutes.iter().map(move |&m| clock(h, m, second)))
        .collect();
    let when = match days {
        Days::Every => "every day".to_string(),
        Days::Some(d) => d,
    };
    format!("at {} {when}", list(&times))
}

/// A frequency phrase with its days: "every hour at :05" / "every 5 minutes on Mon–Fri".
fn frequency(what: String, days: Days) -> String {
    match days {
        Days::Every => what,
        Days::Some(d) => format!("{what} {d}"),
    }
}

/// Which days a schedule fires on.
enum Days {
    /// Every day.
    Every,
    /// A phrase such as "on Mon–Fri" or "on the 1st of the month".
    Some(String),
}

fn days(schedule: &Schedule) -> Option<Days> {
    match (
        schedule.days_of_month().is_all(),
        schedule.days_of_week().is_all(),
    ) {
        (true, true) => Some(Days::Every),
        (true, false) => {
            let days = values(schedule.days_of_week());
            Some(Days::Some(format!("on {}", weekdays(&days)?)))
        }
        (false, true) => {
            let days = values(schedule.days_of_month());
            if days.len() > 4 {
                return None;
            }
            let names: Vec<String> = days.iter().map(|&d| ordinal(d)).collect();
            Some(Days::Some(format!("on the {} of the month", list(&names))))
        }
        // The cron crate needs both to match (not either, as classic cron does): too easy to
        // misread, so no words.
        (false, false) => None,
    }
}

/// A few days of one month, every year ("on 1 Jan", `@yearly`); other shapes with months
/// give no words.
fn dates(schedule: &Schedule) -> Option<Days> {
    let [month] = values(schedule.months())[..] else {
        return None;
    };
    if schedule.days_of_month().is_all() || !schedule.days_of_week().is_all() {
        return None;
    }
    let days = values(schedule.days_of_month());
    if days.len() > 4 {
        return None;
    }
    let month = MONTHS.get(month.checked_sub(1)? as usize)?;
    let days: Vec<String> = days.iter().map(u32::to_string).collect();
    Some(Days::Some(format!("on {} {month}", list(&days))))
}

/// "Mon–Fri", "Sat and Sun", "Mon, Wed and Fri" from weekday ordinals (1 = Sunday).
fn weekdays(days: &[u32]) -> Option<String> {
    let name = |d: u32| WEEKDAYS.get(d.checked_sub(1)? as usize).copied();
    // Runs of consecutive days; three or more read as a range.
    let mut parts = Vec::new();
    let mut i = 0;
    while i < days.len() {
        let mut j = i;
        while j + 1 < days.len() && days[j + 1] == days[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}–{}", name(days[i])?, name(days[j])?));
        } else {
            for &d in &days[i..=j] {
                parts.push(name(d)?.to_string());
            }
        }
        i = j + 1;
    }
    // Saturday and Sunday read better weekend-last than in the crate's Sunday-first order.
    if parts.len() == 2 && parts[0] == "Sun" && parts[1] == "Sat" {
        parts.reverse();
    }
    Some(list(&parts))
}

/// "1st", "2nd", "23rd", "11th".
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// "a", "a and b", "a, b and c".
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::de::CronExpr;

    fn words(expr: &str) -> Option<String> {
        describe(&CronExpr::parse(expr).unwrap().schedule)
    }

    #[test]
    fn common_schedules_read_as_words() {
        for (expr, want) in [
            ("30 16 * * Mon-Fri", "at 16:30 on Mon–Fri"),
            ("5 * * * *", "every hour at :05"),
            ("*/2 * * * * *", "every 2 seconds"),
            ("* * * * * *", "every second"),
            ("* * * * *", "every minute"),
            ("*/15 * * * *", "every 15 minutes"),
            ("0 0 * * *", "at 00:00 every day"),
            ("0 9,17 * * *", "at 09:00 and 17:00 every day"),
            ("30 9 * * Sat,Sun", "at 09:30 on Sat and Sun"),
            ("0 6 * * Mon,Wed,Fri", "at 06:00 on Mon, Wed and Fri"),
            ("0 3 1 * *", "at 03:00 on the 1st of the month"),
            ("0 3 1,15 * *", "at 03:00 on the 1st and 15th of the month"),
            ("5 */2 * * *", "every 2 hours at :05"),
            (
                "5 9-16 * * Mon-Fri",
                "every hour at :05 from 09:05 to 16:05 on Mon–Fri",
            ),
            (
                "*/15 9-16 * * Mon-Fri",
                "every 15 minutes from 09:00 to 16:45 on Mon–Fri",
            ),
            ("15 30 16 * * Fri", "at 16:30:15 on Fri"),
            ("0 */10 * * * Mon-Fri", "every 10 minutes on Mon–Fri"),
        ] {
            assert_eq!(words(expr).as_deref(), Some(want), "{expr}");
        }
    }

    #[test]
    fn numeric_weekdays_follow_classic_cron() {
        // The config turns numeric weekdays into names the standard way (1 = Monday).
        assert_eq!(words("0 8 * * 1-5").as_deref(), Some("at 08:00 on Mon–Fri"));
    }

    #[test]
    fn macros_read_as_their_fields() {
        for (expr, want) in [
            ("@hourly", "every hour at :00"),
            ("@daily", "at 00:00 every day"),
            ("@midnight", "at 00:00 every day"),
            ("@weekly", "at 00:00 on Sun"),
            ("@monthly", "at 00:00 on the 1st of the month"),
            ("@yearly", "at 00:00 on 1 Jan"),
            ("@annually", "at 00:00 on 1 Jan"),
            ("0 12 1,15 Jul *", "at 12:00 on 1 and 15 Jul"),
        ] {
            assert_eq!(words(expr).as_deref(), Some(want), "{expr}");
        }
    }

    #[test]
    fn unusual_shapes_fall_back_to_the_expression() {
        for expr in [
            "*/7 * * * *",               // 7 does not divide 60: the gap across the hour is 4 min
            "0 0 1 * Mon",               // day of month AND weekday
            "0 0 * Jan *",               // months
            "0 0 1 Jan,Jul *",           // several months
            "0 0 1 Jan Mon",             // a date and a weekday
            "0 0 0 * * * 2030",          // years
            "10,20,40 * * * * *",        // odd seconds
            "0 5,10,20,40,50 1-3 * * *", // many times
            "0 0 1,2,3,4,5,6 * *",       // many days of the month
        ] {
            assert_eq!(words(expr), None, "{expr}");
        }
    }
}
