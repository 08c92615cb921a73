//! `dms man [--out DIR]`: the manual page in roff, generated from the clap types — `dms(1)` on
//! stdout, or one page per subcommand (`dms.1`, `dms-run.1`, `dms-history-prune.1`, …) in a
//! folder.

use clap::CommandFactory;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `dms man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write one page per command and subcommand into this folder (created if missing) instead
    /// of printing dms(1).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints `dms(1)`, or writes every page into `args.out`.
///
/// # Errors
/// When stdout or a page cannot be written.
pub fn run(args: ManArgs) -> anyhow::Result<ExitCode> {
    // No `help` subcommand: it would be listed as a page that does not exist.
    let cmd = super::Cli::command().disable_help_subcommand(true);
    match args.out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            super::output::bytes(&ascii(&page))?;
        }
        Some(dir) => {
            for path in write_pages(cmd, &dir)? {
                super::output::line(path.display())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the page of `cmd` and of each visible subcommand, recursively, as
/// `<dir>/<name>.1`; returns the files written.
fn write_pages(mut cmd: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    // Gives every subcommand its display name ("dms-history-prune"), which names its page.
    cmd.build();
    let mut written = Vec::new();
    let mut pending = vec![cmd];
    while let Some(cmd) = pending.pop() {
        pending.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        let man = clap_mangen::Man::new(cmd);
        let path = dir.join(man.get_filename());
        let mut page = Vec::new();
        man.render(&mut page)?;
        std::fs::write(&path, ascii(&page))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    written.sort();
    Ok(written)
}

/// The page with every character outside ASCII (the help's dashes, `…`, `·`) written as a
/// roff escape (`\[u2014]`): troff reads its input as Latin-1 unless a preprocessor converts
/// it, so raw UTF-8 would render as noise (and `groff -ww` warns).
fn ascii(page: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(page);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out.into_bytes()
}
