//! The `dms` binary: parse the command line, set up logging, run, map the outcome to an exit
//! code. Everything else lives in the library.

use clap::Parser;

use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = dms::cli::Cli::parse();
    let filter = match (&cli.log, std::env::var("RUST_LOG")) {
        (Some(f), _) => EnvFilter::try_new(f),
        (None, Ok(env)) if !env.is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(cli.default_log_filter()),
    };
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: bad log filter: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(dms::cli::run(cli))
}

/// glibc gives each thread that allocates its own arena (up to 8 per core) and keeps their
/// freed memory: with SQLite work spread over the blocking pool that grew a sync's peak RSS by
/// half. Two arenas keep it flat at no measurable cost in speed.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
