//! `dms completions SHELL`: the shell completion script, generated from the clap types so it
//! always knows every subcommand and flag of this binary.

use clap::CommandFactory;
use std::process::ExitCode;

/// Arguments of `dms completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script for `args.shell` to stdout.
///
/// # Errors
/// When stdout cannot be written.
pub fn run(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    // Generated into memory: clap_complete panics on a failed write, a closed pipe must not.
    clap_complete::generate(args.shell, &mut visible_command(), "dms", &mut script);
    super::output::bytes(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// The command line without its hidden subcommands (`__script`), which the generators would
/// otherwise offer: clap cannot remove a subcommand, so the top level is rebuilt from the
/// parts completion needs (its arguments and the visible subcommands).
fn visible_command() -> clap::Command {
    let full = super::Cli::command();
    let mut cmd = clap::Command::new("dms")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}
