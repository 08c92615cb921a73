//! YAML syntax errors in words. The parser says where it stopped ("did not find expected key
//! at line 4 column 4"); these say why a person's file stops there: a tab in the indentation,
//! or a line indented to a column no key above it stands at.

/// A sentence on what is wrong near `line`/`column` (1-based, where the parser stopped), or
/// `None` when neither a tab nor a wrong indentation explains it.
pub(super) fn explain(text: &str, message: &str, line: usize, column: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let at = line.checked_sub(1)?;
    tab(&lines, at, message).or_else(|| indentation(&lines, at, column, message))
}

/// A tab in the indentation of the line the parser stopped on, or (when the parser speaks of a
/// token or a tab) of the nearest line before it.
fn tab(lines: &[&str], at: usize, message: &str) -> Option<String> {
    let tab_at = |l: &str| {
        let lead = l.len() - l.trim_start_matches([' ', '\t', '-']).len();
        l[..lead].find('\t')
    };
    let about_tabs = message.contains("tab") || message.contains("cannot start any token");
    let (n, col) = (0..=at.min(lines.len().checked_sub(1)?))
        .rev()
        .take(if about_tabs { usize::MAX } else { 1 })
        .find_map(|i| tab_at(lines[i]).map(|c| (i, c)))?;
    Some(format!(
        "tabs are not allowed in YAML indentation (a tab at line {} column {}); indent with spaces",
        n + 1,
        col + 1
    ))
}

/// What the parser says when a line is indented where no key stands.
const INDENTATION_MESSAGES: [&str; 4] = [
    "did not find expected key",
    "mapping values are not allowed",
    "did not find expected '-' indicator",
    "did not find expected <block end>",
];

/// A line of content: where its key starts (after any `- ` of a list item) and where the line
/// starts.
struct Entry<'a> {
    /// 0-based line number.
    line: usize,
    /// Columns a sibling may start at: the dash of a list item and its key, or the key.
    columns: Vec<usize>,
    /// The key, or the start of the content.
    key: &'a str,
    /// Ends with `:` (a block opens below it).
    opens: bool,
}

fn entry(line: usize, text: &str) -> Option<Entry<'_>> {
    let trimmed = text.trim_start_matches(' ');
    if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
        return None;
    }
    let mut col = text.len() - trimmed.len();
    let mut columns = vec![col];
    let mut rest = trimmed;
    while let Some(r) = rest.strip_prefix("- ") {
        let content = r.trim_start_matches(' ');
        col += rest.len() - content.len();
        columns.push(col);
        rest = content;
    }
    let content = rest.split(" #").next().unwrap_or(rest).trim_end();
    let key = content.split(": ").next().unwrap_or(content);
    let key = key.strip_suffix(':').unwrap_or(key);
    Some(Entry {
        line,
        columns,
        key,
        opens: content.ends_with(':'),
    })
}

/// The line the parser stopped on is indented to a column where no key above it stands.
fn indentation(lines: &[&str], at: usize, column: usize, message: &str) -> Option<String> {
    if !INDENTATION_MESSAGES.iter().any(|m| message.contains(m)) {
        return None;
    }
    let here = entry(at, lines.get(at)?)?;
    // The parser stops at the line's first character, or at its `:` when the line was read as
    // the continuation of the value above.
    if column != here.columns[0] + 1 && !message.contains("mapping values") {
        return None;
    }
    let indent = here.columns[0];
    let mut above = (0..at).rev().filter_map(|i| entry(i, lines[i]));
    let previous = above.next()?;
    if previous.opens && indent > previous.columns[0] {
        return None;
    }
    // The previous line and each line that encloses it, nearest first.
    let mut chain = vec![previous];
    for e in above {
        let innermost = chain.last().map_or(usize::MAX, |c| c.columns[0]);
        if e.columns[0] < innermost {
            let top = e.columns[0] == 0;
            chain.push(e);
            if top {
                break;
            }
        }
    }
    if chain.iter().any(|e| e.columns.contains(&indent)) {
        return None;
    }
    // Where each of them stands: its key, and the dash of a list item.
    let mut lined_up: Vec<(usize, String)> = Vec::new();
    for e in &chain {
        let (dash, key) = (e.columns[0], *e.columns.last().unwrap_or(&0));
        let mut stands = vec![(key, format!("`{}` (line {})", e.key, e.line + 1))];
        if dash != key {
            stands.push((
                dash,
                format!("the list item `- {}` (line {})", e.key, e.line + 1),
            ));
        }
        for (col, what) in stands {
            if !lined_up.iter().any(|(c, _)| *c == col) {
                lined_up.push((col, what));
            }
        }
    }
    let lined_up: Vec<String> = lined_up
        .into_iter()
        .map(|(col, what)| match col {
            0 => format!("{what} at the left margin"),
            c => format!("{what} at {}", spaces(c)),
        })
        .collect();
    Some(format!(
        "wrong indentation: line {} is indented {}, which lines up with no key above it — {}; \
         indent `{}` like the key it belongs beside, with spaces",
        at + 1,
        spaces(indent),
        lined_up.join(", "),
        here.key
    ))
}

fn spaces(n: usize) -> String {
    match n {
        1 => "1 space".to_string(),
        n => format!("{n} spaces"),
    }
}

#[cfg(test)]
mod tests {
    use crate::{ConfigError, parse_str, raw};
    use std::path::Path;

    fn sync_error(text: &str) -> String {
        match parse_str::<raw::SyncFile>(Path::new("sync.yaml"), text) {
            Err(ConfigError::Parse { message, .. }) => message,
            other => panic!("not a parse error: {other:?}"),
        }
    }

    fn task_error(text: &str) -> String {
        match parse_str::<raw::TaskFile>(Path::new("task.yaml"), text) {
            Err(ConfigError::Parse { message, .. }) => message,
            other => panic!("not a parse error: {other:?}"),
        }
    }

    #[test]
    fn a_tab_in_the_indentation_is_named() {
        for (text, line) in [
            ("sync:\n\tretry_times: 2\n", 2),
            ("sync:\n  incremental:\n  \tbatch_size: 2\n", 3),
        ] {
            let m = sync_error(text);
            assert!(
                m.starts_with(&format!(
                    "tabs are not allowed in YAML indentation (a tab at line {line} column "
                )),
                "{m}"
            );
            assert!(m.contains("indent with spaces"), "{m}");
            // The parser's own phrase and position stay.
            assert!(m.contains(&format!("at line {line} column")), "{m}");
        }
        // A tab inside a value is no indentation problem.
        assert!(
            parse_str::<raw::SyncFile>(Path::new("s"), "sync:\n  retry_times: 2\t# x\n").is_ok()
        );
    }

    #[test]
    fn a_key_between_two_levels_is_wrong_indentation() {
        let m = sync_error("sync:\n  incremental:\n    batch_size: 1\n   retry_times: 2\n");
        assert!(
            m.starts_with(
                "wrong indentation: line 4 is indented 3 spaces, which lines up with no key \
                 above it — `batch_size` (line 3) at 4 spaces, `incremental` (line 2) at 2 \
                 spaces, `sync` (line 1) at the left margin; indent `retry_times` like the key \
                 it belongs beside"
            ),
            "{m}"
        );
        assert!(
            m.contains("did not find expected key at line 4 column 4"),
            "{m}"
        );
        let m = sync_error("sync:\n  retry_times: 2\n retry_delay: 1\n");
        assert!(m.contains("line 3 is indented 1 space,"), "{m}");
    }

    #[test]
    fn a_misaligned_task_key_names_the_list_item() {
        let m =
            task_error("tasks:\n  - name: t1\n    schedule: \"0 * * * *\"\n     timezone: UTC\n");
        assert!(
            m.starts_with(
                "wrong indentation: line 4 is indented 5 spaces, which lines up with no key \
                 above it — `schedule` (line 3) at 4 spaces, the list item `- name` (line 2) at \
                 2 spaces, `tasks` (line 1) at the left margin; indent `timezone`"
            ),
            "{m}"
        );
        let m = task_error("tasks:\n  - name: t1\n  - name: t2\n   - name: t3\n");
        assert!(
            m.starts_with("wrong indentation: line 4 is indented 3 spaces"),
            "{m}"
        );
    }

    #[test]
    fn other_syntax_errors_keep_only_the_parser_words() {
        let m = sync_error("sync:\n  retry_times: [1, 2\n");
        assert!(
            !m.contains("wrong indentation") && !m.contains("tabs"),
            "{m}"
        );
        let m = sync_error("sync:\n  retry_delay: \"1\n");
        assert!(
            !m.contains("wrong indentation") && !m.contains("tabs"),
            "{m}"
        );
    }
}
