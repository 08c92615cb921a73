//! InfluxQL text: quoting of identifiers and string literals, and the few statements the
//! node sends. Every name or value that comes from data or configuration (symbol, interval,
//! measurement, tag key, database, retention policy) enters a query through [`quote_ident`] or
//! [`quote_literal`], never by plain formatting, so a symbol such as `X' OR symbol!='` is
//! just a string to match.

use crate::model::Nanos;
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

/// The tag sets (series keys) of `measurement` matching tag conditions (plain `"key" = 'v'`,
/// since `SHOW SERIES` only looks at tags).
pub fn show_series(measurement: &str, tags: &[(&str, &str)]) -> String {
    let mut q = format!("SHOW SERIES FROM {}", quote_ident(measurement));
    for (i, (k, v)) in tags.iter().enumerate() {
        q.push_str(if i == 0 { " WHERE " } else { " AND " });
        let _ = write!(q, "{} = {}", quote_ident(k), quote_literal(v));
    }
    q
}

/// The newest point of every tag set of `measurement`.
pub fn select_newest(measurement: &str) -> String {
    format!(
        "SELECT * FROM {} GROUP BY * ORDER BY time DESC LIMIT 1",
        quote_ident(measurement)
    )
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
}
