//! InfluxQL text: quoting of identifiers and string literals, and the few statements the
//! node sends. Every name or value that comes from data or configuration (symbol, interval,
//! measurement, tag key, database, retention policy) enters a query through [`quote_ident`] or
//! [`quote_literal`], never by plain formatting, so a symbol such as `X' OR symbol!='` is
//! just a string to match.

use dms_core::model::Nanos;
use std::fmt::Write;

/// Quotes an identifier (measurement, tag key, database, retention policy): double quotes,
/// with `\`, `"` and newline escaped as InfluxQL's scanner expects.
pub fn quote_ident(name: &str) -> String {
    quote(name, '"')
}

/// Quotes a string literal (a tag value): single quotes, with `\`, `'` and newline escaped.
pub fn quote_literal(value: &str) -> String {
    quote(value, '\'')
}

fn quote(s: &str, q: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// A tag condition `"key"::tag = 'value'` (the `::tag` keeps a field of the same name out).
pub fn tag_equals(key: &str, value: &str) -> String {
    format!("{}::tag = {}", quote_ident(key), quote_literal(value))
}

/// One page of a series: the points of the tag sets matching `conditions` from `start` to
/// `end` (both inclusive), oldest first, at most `limit` per tag set.
pub fn select_page(
    measurement: &str,
    conditions: &[String],
    start: Nanos,
    end: Nanos,
    limit: usize,
) -> String {
    let mut q = format!("SELECT * FROM {} WHERE ", quote_ident(measurement));
    for c in conditions {
        q.push_str(c);
        q.push_str(" AND ");
    }
    // Integer time literals are nanoseconds since the epoch.
    let _ = write!(
        q,
        "time >= {start} AND time <= {end} GROUP BY * ORDER BY time ASC LIMIT {limit}"
    );
    q
}

/// One point of every tag set of `measurement` matching `filter` from `start` to `end`: the
/// answer holds one series per tag set with points there. Bounded in time and documented by
/// every InfluxDB version, unlike `SHOW SERIES` (absent from InfluxDB 3's InfluxQL).
pub fn select_tag_sets(
    measurement: &str,
    filter: Option<&str>,
    start: Nanos,
    end: Nanos,
) -> String {
    format!(
        "SELECT * FROM {} {} GROUP BY * LIMIT 1",
        quote_ident(measurement),
        where_in(filter, start, end)
    )
}

/// The newest point of every tag set of `measurement`.
pub fn select_newest(measurement: &str) -> String {
    format!(
        "SELECT * FROM {} GROUP BY * ORDER BY time DESC LIMIT 1",
        quote_ident(measurement)
    )
}

/// The earliest time InfluxDB stores: conditions go no further (past it the server's time
/// arithmetic overflows and a condition can match everything).
pub const MIN_TIME: Nanos = i64::MIN + 2;
/// The latest time InfluxDB stores.
pub const MAX_TIME: Nanos = i64::MAX - 1;

/// The newest point of every tag set of `measurement` at or before `horizon`.
pub fn select_newest_until(measurement: &str, horizon: Nanos) -> String {
    format!(
        "SELECT * FROM {} WHERE time <= {horizon} GROUP BY * ORDER BY time DESC LIMIT 1",
        quote_ident(measurement)
    )
}

/// The newest point of every tag set of `measurement` after `horizon`.
pub fn select_newest_after(measurement: &str, horizon: Nanos) -> String {
    format!(
        "SELECT * FROM {} WHERE time > {horizon} GROUP BY * ORDER BY time DESC LIMIT 1",
        quote_ident(measurement)
    )
}

/// One condition matching any of several tag sets, each given by its tag conditions
/// ([`tag_equals`]): `(a AND b) OR (c AND d)`.
pub fn any_of(tag_sets: &[Vec<String>]) -> String {
    let sets: Vec<String> = tag_sets
        .iter()
        .map(|c| format!("({})", c.join(" AND ")))
        .collect();
    sets.join(" OR ")
}

/// `WHERE` with an optional condition (from [`any_of`]) and a time range, both inclusive.
fn where_in(filter: Option<&str>, start: Nanos, end: Nanos) -> String {
    match filter {
        Some(f) => format!("WHERE ({f}) AND time >= {start} AND time <= {end}"),
        None => format!("WHERE time >= {start} AND time <= {end}"),
    }
}

/// The first (`first`) or last point of `measurement` from `start` to `end` matching
/// `filter`, over all its tag sets.
pub fn select_edge(
    measurement: &str,
    filter: Option<&str>,
    start: Nanos,
    end: Nanos,
    first: bool,
) -> String {
    format!(
        "SELECT * FROM {} {} ORDER BY time {} LIMIT 1",
        quote_ident(measurement),
        where_in(filter, start, end),
        if first { "ASC" } else { "DESC" }
    )
}

/// One aggregate column of a digest statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate<'a> {
    /// `count(field)` as column `count_<field>`.
    Count(&'a str),
    /// `sum(field)` as column `sum_<field>`.
    Sum(&'a str),
}

/// Per-window aggregates of `measurement` from `start` to `end` (both inclusive) matching
/// `filter`: the `columns`, in windows of `window` ns aligned to the epoch, per tag set
/// (`GROUP BY *`: every tag); windows without points are left out.
pub fn select_digests(
    measurement: &str,
    filter: Option<&str>,
    (start, end): (Nanos, Nanos),
    window: Nanos,
    columns: &[Aggregate<'_>],
) -> String {
    let mut q = String::from("SELECT ");
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            q.push_str(", ");
        }
        let (f, field) = match c {
            Aggregate::Count(f) => ("count", f),
            Aggregate::Sum(f) => ("sum", f),
        };
        let alias = format!("{f}_{field}");
        let _ = write!(q, "{f}({}) AS {}", quote_ident(field), quote_ident(&alias));
    }
    let _ = write!(
        q,
        " FROM {} {} GROUP BY time({window}ns), * fill(none)",
        quote_ident(measurement),
        where_in(filter, start, end)
    );
    q
}

/// Deletes the points of the tag sets matching `conditions` at exactly `time`. InfluxDB
/// applies it to every retention policy of the database.
pub fn delete_at(measurement: &str, conditions: &[String], time: Nanos) -> String {
    let mut q = format!("DELETE FROM {} WHERE ", quote_ident(measurement));
    for c in conditions {
        q.push_str(c);
        q.push_str(" AND ");
    }
    let _ = write!(q, "time >= {time} AND time <= {time}");
    q
}

/// The retention policies of `database`.
pub fn show_retention_policies(database: &str) -> String {
    format!("SHOW RETENTION POLICIES ON {}", quote_ident(database))
}

/// One point, if retention policy `policy` holds any, of the tag sets matching `conditions`
/// from `start` to `end`.
pub fn select_any_in_policy(
    policy: &str,
    measurement: &str,
    conditions: &[String],
    start: Nanos,
    end: Nanos,
) -> String {
    let mut q = format!(
        "SELECT * FROM {}.{} WHERE ",
        quote_ident(policy),
        quote_ident(measurement)
    );
    for c in conditions {
        q.push_str(c);
        q.push_str(" AND ");
    }
    let _ = write!(q, "time >= {start} AND time <= {end} LIMIT 1");
    q
}

/// The field keys and types of `measurement`.
pub fn show_field_keys(measurement: &str) -> String {
    format!("SHOW FIELD KEYS FROM {}", quote_ident(measurement))
}

/// Every measurement of the database.
pub const SHOW_MEASUREMENTS: &str = "SHOW MEASUREMENTS";

/// Creates a database (a no-op when it exists).
pub fn create_database(database: &str) -> String {
    format!("CREATE DATABASE {}", quote_ident(database))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_escape_quotes_backslashes_and_newlines() {
        assert_eq!(quote_ident("kline"), r#""kline""#);
        assert_eq!(quote_ident(r#"a"b"#), r#""a\"b""#);
        assert_eq!(quote_ident(r"a\b"), r#""a\\b""#);
        assert_eq!(quote_ident("a\nb"), r#""a\nb""#);
        assert_eq!(quote_ident("it's"), r#""it's""#);
        assert_eq!(quote_ident("株式"), "\"株式\"");
    }

    #[test]
    fn literals_escape_quotes_backslashes_and_newlines() {
        assert_eq!(quote_literal("US.AAPL"), "'US.AAPL'");
        assert_eq!(quote_literal("it's"), r"'it\'s'");
        assert_eq!(quote_literal(r#"say "hi""#), r#"'say "hi"'"#);
        assert_eq!(quote_literal(r"a\"), r"'a\\'");
        assert_eq!(quote_literal("a\nb"), r"'a\nb'");
    }

    #[test]
    fn an_injection_attempt_stays_one_literal() {
        let q = quote_literal("X' OR symbol!='");
        assert_eq!(q, r"'X\' OR symbol!=\''");
        // Every quote inside is escaped: the literal ends only at the last character.
        let inner = &q[1..q.len() - 1];
        let mut escaped = false;
        for c in inner.chars() {
            assert!(escaped || c != '\'', "unescaped quote in {q}");
            escaped = !escaped && c == '\\';
        }
        // A trailing backslash cannot escape the closing quote.
        let q = quote_literal("X\\");
        assert!(q.ends_with("\\\\'"));
    }

    #[test]
    fn page_query_quotes_every_name() {
        let q = select_page(
            "kline",
            &[
                tag_equals("symbol", "X' OR symbol!='"),
                tag_equals("interval", "1m"),
            ],
            5,
            9,
            100,
        );
        assert_eq!(
            q,
            r#"SELECT * FROM "kline" WHERE "symbol"::tag = 'X\' OR symbol!=\'' AND "interval"::tag = '1m' AND time >= 5 AND time <= 9 GROUP BY * ORDER BY time ASC LIMIT 100"#
        );
        assert_eq!(
            select_newest(r#"k"1"#),
            r#"SELECT * FROM "k\"1" GROUP BY * ORDER BY time DESC LIMIT 1"#
        );
        assert_eq!(create_database("my db"), r#"CREATE DATABASE "my db""#);
    }

    #[test]
    fn reconciliation_statements_quote_every_name() {
        let evil = [
            tag_equals("symbol", "X' OR symbol!='"),
            tag_equals("in\"terval", "1d"),
        ];
        assert_eq!(
            select_newest_until(r#"k"1"#, 5),
            r#"SELECT * FROM "k\"1" WHERE time <= 5 GROUP BY * ORDER BY time DESC LIMIT 1"#
        );
        assert_eq!(
            select_newest_after("kline", -5),
            r#"SELECT * FROM "kline" WHERE time > -5 GROUP BY * ORDER BY time DESC LIMIT 1"#
        );
        let filter = any_of(&[evil.to_vec(), vec![tag_equals("symbol", "B")]]);
        assert_eq!(
            select_digests(
                "kline",
                Some(&filter),
                (0, 9),
                86_400_000_000_000,
                &[Aggregate::Count("close\""), Aggregate::Sum("close\"")],
            ),
            r#"SELECT count("close\"") AS "count_close\"", sum("close\"") AS "sum_close\"" FROM "kline" WHERE (("symbol"::tag = 'X\' OR symbol!=\'' AND "in\"terval"::tag = '1d') OR ("symbol"::tag = 'B')) AND time >= 0 AND time <= 9 GROUP BY time(86400000000000ns), * fill(none)"#
        );
        assert_eq!(
            select_digests("kline_1d", None, (1, 2), 7, &[Aggregate::Sum("v")]),
            r#"SELECT sum("v") AS "sum_v" FROM "kline_1d" WHERE time >= 1 AND time <= 2 GROUP BY time(7ns), * fill(none)"#
        );
        assert_eq!(
            select_edge("kline", None, 1, 2, false),
            r#"SELECT * FROM "kline" WHERE time >= 1 AND time <= 2 ORDER BY time DESC LIMIT 1"#
        );
        assert_eq!(
            delete_at("kline", &evil, 42),
            r#"DELETE FROM "kline" WHERE "symbol"::tag = 'X\' OR symbol!=\'' AND "in\"terval"::tag = '1d' AND time >= 42 AND time <= 42"#
        );
        assert_eq!(
            select_any_in_policy("one year", "kline", &evil[..1], 3, 4),
            r#"SELECT * FROM "one year"."kline" WHERE "symbol"::tag = 'X\' OR symbol!=\'' AND time >= 3 AND time <= 4 LIMIT 1"#
        );
    }
}
