//! Logging for the binary: the filter (`--log`, `RUST_LOG`, or the command's default), checked
//! so a mistyped level is an error instead of a silent target; text or JSON lines on stderr,
//! written above the progress bar when one is drawn.

use super::Cli;
use super::progress::{AboveBar, BARS};
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `message`, fields, spans).
    Json,
}

/// Crates whose debug output is transport noise (TLS handshakes, connection pools): kept at
/// `warn` unless the filter names them.
const QUIET: &[&str] = &["rustls", "hyper", "hyper_util", "reqwest", "h2"];

/// Levels a filter may name on their own.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// A log filter that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The text is not a tracing filter.
    #[error("bad log filter {filter:?} (from {source_name}): {cause}")]
    Syntax {
        /// The filter as given.
        filter: String,
        /// `--log` or `RUST_LOG`.
        source_name: &'static str,
        /// The parser's reason.
        cause: String,
    },
    /// A bare word that looks like a misspelt level (a bare word is otherwise a target).
    #[error(
        "bad log filter {filter:?} (from {source_name}): {word:?} is not a level{hint} (levels: off, error, warn, info, debug, trace; for everything from a target named {word}, write {word}=trace)"
    )]
    NotALevel {
        /// The filter as given.
        filter: String,
        /// `--log` or `RUST_LOG`.
        source_name: &'static str,
        /// The word.
        word: String,
        /// `: did you mean …?`.
        hint: String,
    },
}

/// Sets up the global subscriber for `cli`.
///
/// # Errors
/// The filter from `--log` or `RUST_LOG` is not valid ([`filter`]).
pub fn init(cli: &Cli) -> Result<(), LogError> {
    let env = std::env::var("RUST_LOG").ok();
    let filter = filter(cli.log.as_deref(), env.as_deref(), cli.default_log_filter())?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let writer = AboveBar::new(&BARS, std::io::stderr);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match cli.log_format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

/// The filter: `--log` over `RUST_LOG` over the command's default, with [`QUIET`] crates at
/// `warn` unless it names them.
///
/// # Errors
/// The text does not parse, or names a level-like word that is no level (`warnn`, which
/// tracing would take for a target and so log nothing).
pub fn filter(flag: Option<&str>, env: Option<&str>, default: &str) -> Result<EnvFilter, LogError> {
    let (text, source_name) = match (flag, env) {
        (Some(f), _) => (f, "--log"),
        (None, Some(e)) if !e.trim().is_empty() => (e, "RUST_LOG"),
        _ => (default, "the default"),
    };
    check_words(text, source_name)?;
    let mut full = text.trim().to_string();
    for q in QUIET {
        if !names_target(text, q) {
            if !full.is_empty() {
                full.push(',');
            }
            full.push_str(&format!("{q}=warn"));
        }
    }
    EnvFilter::try_new(&full).map_err(|e| LogError::Syntax {
        filter: text.to_string(),
        source_name,
        cause: e.to_string(),
    })
}

/// Whether a directive of `text` is about `target` (or a module of it).
fn names_target(text: &str, target: &str) -> bool {
    text.split(',').any(|d| {
        let d = d.trim();
        let t = d.split(['=', '[']).next().unwrap_or("");
        t == target || t.starts_with(&format!("{target}::"))
    })
}

/// Rejects bare words close to a level name (`warnn`, `debgu`, `inf`, `warning`): tracing
/// takes any other bare word for a target, which would silently show nothing.
fn check_words(text: &str, source_name: &'static str) -> Result<(), LogError> {
    for d in text.split(',').map(str::trim) {
        if d.is_empty() || d.contains(['=', '[', ':']) {
            continue;
        }
        let lower = d.to_ascii_lowercase();
        if LEVELS.contains(&lower.as_str()) || lower.parse::<u8>().is_ok() {
            continue;
        }
        // Within two edits of a level, or one of them cut short or run on (`err`, `warning`).
        let near = LEVELS
            .iter()
            .map(|l| {
                let affix = lower.len() >= 3 && (l.starts_with(&lower) || lower.starts_with(l));
                (
                    if affix {
                        0
                    } else {
                        strsim::osa_distance(&lower, l)
                    },
                    *l,
                )
            })
            .min()
            .filter(|(dist, _)| *dist <= 2);
        if let Some((_, level)) = near {
            return Err(LogError::NotALevel {
                filter: text.to_string(),
                source_name,
                word: d.to_string(),
                hint: format!(": did you mean {level}?"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: &EnvFilter) -> String {
        f.to_string()
    }

    #[test]
    fn misspelt_levels_and_bad_syntax_are_errors() {
        for bad in ["warnn", "debgu", "inf", "dms=info,trac", "WARNING"] {
            let e = filter(Some(bad), None, "warn").unwrap_err();
            assert!(matches!(e, LogError::NotALevel { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("is not a level"), "{e}");
        }
        let e = filter(Some("nonsense=[["), None, "warn").unwrap_err();
        assert!(matches!(e, LogError::Syntax { .. }), "{e}");
        let e = filter(None, Some("warnn"), "warn").unwrap_err();
        assert!(e.to_string().contains("RUST_LOG"), "{e}");
    }

    #[test]
    fn levels_targets_and_directives_are_taken() {
        for good in [
            "debug",
            "WARN",
            "off",
            "3",
            "dms=debug",
            "dms",
            "dms::sync=trace,info",
        ] {
            filter(Some(good), None, "warn").unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn transport_crates_stay_quiet_unless_named() {
        let f = text(&filter(Some("debug"), None, "warn").unwrap());
        for q in QUIET {
            assert!(f.contains(&format!("{q}=warn")), "{f}");
        }
        let f = text(&filter(Some("debug,hyper=debug"), None, "warn").unwrap());
        assert!(
            f.contains("hyper=debug") && !f.contains("hyper=warn"),
            "{f}"
        );
        assert!(f.contains("hyper_util=warn"), "{f}");
        let f = text(&filter(None, None, "info").unwrap());
        assert!(f.contains("info") && f.contains("rustls=warn"), "{f}");
    }

    #[test]
    fn the_flag_wins_over_the_environment() {
        let f = text(&filter(Some("error"), Some("debug"), "warn").unwrap());
        assert!(
            f.starts_with("error") || f.contains(",error") || f.contains("error,"),
            "{f}"
        );
        assert!(!f.contains("debug"), "{f}");
        let f = text(&filter(None, Some("  "), "warn").unwrap());
        assert!(f.contains("warn"), "{f}");
    }
}
