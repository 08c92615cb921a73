//! Configuration problems as values: which file, which setting, where it stands in the file
//! (line and column, when the setting is written there in block style), and what is wrong —
//! rendered in one place ([`Problem`]'s `Display`).

use std::fmt;

/// One of the two configuration files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFile {
    /// `sync.yaml`.
    Sync,
    /// `task.yaml`.
    Task,
}

impl ConfigFile {
    /// The file's name in its folder.
    pub fn name(self) -> &'static str {
        match self {
            ConfigFile::Sync => "sync.yaml",
            ConfigFile::Task => "task.yaml",
        }
    }
}

/// One problem with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file it is in.
    pub file: ConfigFile,
    /// The setting to blame as a path of keys (`sync.retry_times`, `nodes.backups[1].url`,
    /// `tasks[0] (daily).schedule`: the task's name in brackets), when one is.
    pub key: Option<String>,
    /// Line and column (from 1) of that setting in the file, when it was found there.
    pub at: Option<(usize, usize)>,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file.name())?;
        if let Some((line, column)) = self.at {
            write!(f, " line {line} column {column}")?;
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The problems found so far, in the order found.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    /// A problem with the setting `key` of `sync.yaml`.
    pub(crate) fn sync(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.push(ConfigFile::Sync, Some(key.into()), message.into());
    }

    /// A problem with the setting `key` of `task.yaml`.
    pub(crate) fn task(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.push(ConfigFile::Task, Some(key.into()), message.into());
    }

    /// A problem of `sync.yaml` no single setting is to blame for.
    pub(crate) fn sync_file(&mut self, message: impl Into<String>) {
        self.push(ConfigFile::Sync, None, message.into());
    }

    fn push(&mut self, file: ConfigFile, key: Option<String>, message: String) {
        self.0.push(Problem {
            file,
            key,
            at: None,
            message,
        });
    }

    /// How many so far.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, each placed in its file's text where its key is found there.
    pub(crate) fn located(self, sync_text: &str, task_text: &str) -> Vec<Problem> {
        self.0
            .into_iter()
            .map(|mut p| {
                let text = match p.file {
                    ConfigFile::Sync => sync_text,
                    ConfigFile::Task => task_text,
                };
                p.at = p.key.as_deref().and_then(|k| locate(text, k));
                p
            })
            .collect()
    }
}

/// One step of a key path.
#[derive(Debug, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `nodes.backups[1].url` → `nodes`, `backups`, 1, `url`; a bracketed name after an index
/// (`tasks[0] (daily)`) is a label for people and skipped.
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else if let Some(r) = rest.strip_prefix(" (") {
            rest = r.split_once(')').map_or("", |(_, after)| after);
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some((n, after)) = r.split_once(']') else {
                break;
            };
            match n.parse() {
                Ok(i) => out.push(Step::Index(i)),
                Err(_) => break,
            }
            rest = after;
        } else {
            let end = rest.find(['.', '[', ' ']).unwrap_or(rest.len());
            out.push(Step::Key(&rest[..end]));
            rest = &rest[end..];
        }
    }
    out
}

/// A line of block YAML: its number (from 1), the column of its key (after a list dash),
/// whether it starts a list item, and its text from the key on.
struct Line<'a> {
    number: usize,
    dash: Option<usize>,
    col: usize,
    text: &'a str,
}

/// Where the setting at `path` stands in block-style YAML `text`: (line, column) of its key,
/// or of the deepest enclosing key found when the rest is written in flow style or absent.
pub(crate) fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let lines: Vec<Line<'_>> = text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let t = l.trim_start();
            if t.is_empty() || t.starts_with('#') || t == "---" {
                return None;
            }
            let indent = l.len() - t.len();
            Some(match t.strip_prefix("- ") {
                Some(after) => {
                    let rest = after.trim_start();
                    Line {
                        number: i + 1,
                        dash: Some(indent),
                        col: indent + 2 + (after.len() - rest.len()),
                        text: rest,
                    }
                }
                None => Line {
                    number: i + 1,
                    dash: None,
                    col: indent,
                    text: t,
                },
            })
        })
        .collect();
    let mut range = 0..lines.len();
    let mut found = None;
    for step in steps(path) {
        match step {
            Step::Key(k) => {
                // The block's own keys sit at its smallest key column.
                let Some(level) = range.clone().map(|i| lines[i].col).min() else {
                    return found;
                };
                let Some(hit) = range.clone().find(|&i| {
                    let l = &lines[i];
                    l.col == level && l.text.strip_prefix(k).is_some_and(|r| r.starts_with(':'))
                }) else {
                    return found;
                };
                found = Some((lines[hit].number, lines[hit].col + 1));
                // Its value: the lines below, deeper than the key (or list items at its own
                // column, which YAML allows under a key).
                let col = lines[hit].col;
                let end = (hit + 1..range.end)
                    .find(|&i| {
                        let l = &lines[i];
                        match l.dash {
                            Some(d) => d < col,
                            None => l.col <= col,
                        }
                    })
                    .unwrap_or(range.end);
                range = hit + 1..end;
            }
            Step::Index(n) => {
                let Some(level) = range.clone().filter_map(|i| lines[i].dash).min() else {
                    return found;
                };
                let items: Vec<usize> = range
                    .clone()
                    .filter(|&i| lines[i].dash == Some(level))
                    .collect();
                let Some(&start) = items.get(n) else {
                    return found;
                };
                let end = items.get(n + 1).copied().unwrap_or(range.end);
                found = Some((lines[start].number, level + 1));
                range = start..end;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNC: &str = "\
# comment
sync:
  retry_times: 50
  incremental:
    batch_size: 5000
    check_interval: 0
nodes:
  primary:
    name: primary
  backups:
    - name: backup1
      type: sqlite
    - name: backup2
      url: ftp://x
  flow:
    - {name: b3, url: nope}
";

    #[test]
    fn settings_are_found_where_they_stand() {
        assert_eq!(locate(SYNC, "sync.retry_times"), Some((3, 3)));
        assert_eq!(
            locate(SYNC, "sync.incremental.check_interval"),
            Some((6, 5))
        );
        assert_eq!(locate(SYNC, "nodes.backups[1].url"), Some((14, 7)));
        assert_eq!(locate(SYNC, "nodes.backups[0].name"), Some((11, 7)));
        assert_eq!(locate(SYNC, "nodes.backups[1]"), Some((13, 5)));
        // Flow style: the deepest key written in block style.
        assert_eq!(locate(SYNC, "nodes.flow[0].url"), Some((16, 5)));
        // Absent: nothing, or the enclosing key.
        assert_eq!(locate(SYNC, "api.listen"), None);
        assert_eq!(locate(SYNC, "sync.timeout"), Some((2, 1)));
        // A key of the same name deeper down is not taken for a top-level one.
        assert_eq!(locate("a:\n  name: x\nname: y\n", "name"), Some((3, 1)));
    }

    #[test]
    fn list_items_at_the_keys_column_and_labels_in_paths() {
        let tasks = "tasks:\n- name: daily\n  schedule: x\n- name: other\n  schedule: y\n";
        assert_eq!(locate(tasks, "tasks[1] (other).schedule"), Some((5, 3)));
        assert_eq!(locate(tasks, "tasks[0] (daily).name"), Some((2, 3)));
        assert_eq!(
            steps("tasks[0] (a.b).backups"),
            vec![Step::Key("tasks"), Step::Index(0), Step::Key("backups")]
        );
    }

    #[test]
    fn a_problem_reads_file_place_key_and_words() {
        let p = Problem {
            file: ConfigFile::Sync,
            key: Some("sync.retry_times".into()),
            at: Some((3, 3)),
            message: "at most 20".into(),
        };
        assert_eq!(
            p.to_string(),
            "sync.yaml line 3 column 3: sync.retry_times: at most 20"
        );
        let p = Problem {
            at: None,
            key: None,
            ..p
        };
        assert_eq!(p.to_string(), "sync.yaml: at most 20");
    }
}
