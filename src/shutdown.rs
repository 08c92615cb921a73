//! One shutdown handle per process, shared by the CLI, the daemon's loops, task runs and the
//! engine: the token that stops them starting work, what stopped it (SIGINT, SIGTERM or a
//! caller), and what the stop left unfinished — so a stop is logged in one line ("interrupted
//! by SIGINT: …"), never one per series, and the CLI exits with the signal's code.
//!
//! A stop is not a failure: runs and syncs it cuts short are recorded `interrupted`, count
//! neither as failures nor in a success rate, and the next run resumes them from their
//! checkpoints.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio_util::sync::CancellationToken;

/// A signal that asks dms to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`kill`, `systemctl stop`).
    Terminate,
}

impl Signal {
    /// Its name: `SIGINT`, `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The exit code of a command it stopped: 128 + the signal's number, as shells report a
    /// process the signal ended (130, 143).
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// What a stop left unfinished, added up over the runs it cut short.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Runs recorded `interrupted`.
    pub runs: usize,
    /// Backup·series syncs stopped mid-way (recorded `interrupted`).
    pub mid_sync: usize,
    /// Backup·series syncs planned but not begun (no row; nothing of them changed).
    pub not_started: usize,
}

impl Stopped {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: Stopped) {
        self.runs += other.runs;
        self.mid_sync += other.mid_sync;
        self.not_started += other.not_started;
    }

    /// Whether anything was left unfinished.
    pub fn any(&self) -> bool {
        self.runs + self.mid_sync + self.not_started > 0
    }

    /// For people: `100 series syncs stopped (3 mid-way, 97 not started) in 1 run; they
    /// resume on the next run`.
    pub fn describe(&self) -> String {
        let syncs = self.mid_sync + self.not_started;
        let runs = match self.runs {
            0 => String::new(),
            1 => " in 1 run".to_string(),
            n => format!(" in {n} runs"),
        };
        match (syncs, self.runs) {
            (0, 0) => "nothing was left unfinished".to_string(),
            (0, 1) => "1 run stopped; the next run resumes its work".to_string(),
            (0, n) => format!("{n} runs stopped; the next runs resume their work"),
            (n, _) => format!(
                "{n} series sync{s} stopped ({} mid-way, {} not started){runs}; {they} on the next run",
                self.mid_sync,
                self.not_started,
                s = if n == 1 { "" } else { "s" },
                they = if n == 1 { "it resumes" } else { "they resume" },
            ),
        }
    }
}

struct State {
    signal: OnceLock<Signal>,
    stopped: Mutex<Stopped>,
    reported: AtomicBool,
}

/// The shutdown handle (cheap to clone; every clone is the same handle).
#[derive(Clone)]
pub struct Shutdown {
    token: CancellationToken,
    state: Arc<State>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::from(CancellationToken::new())
    }
}

impl From<CancellationToken> for Shutdown {
    /// A handle stopped when `token` is cancelled (by a caller: no signal is recorded).
    fn from(token: CancellationToken) -> Self {
        Shutdown {
            token,
            state: Arc::new(State {
                signal: OnceLock::new(),
                stopped: Mutex::new(Stopped::default()),
                reported: AtomicBool::new(false),
            }),
        }
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("stopping", &self.is_stopping())
            .field("signal", &self.signal())
            .finish()
    }
}

impl Shutdown {
    /// A handle nothing has stopped yet.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// The token cancelled by the stop.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Stops: records `by` (the first signal wins) and cancels the token.
    pub fn stop(&self, by: Option<Signal>) {
        if let Some(s) = by {
            let _ = self.state.signal.set(s);
        }
        self.token.cancel();
    }

    /// Whether a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Waits for the stop.
    pub async fn stopping(&self) {
        self.token.cancelled().await;
    }

    /// The signal that stopped it, if a signal did.
    pub fn signal(&self) -> Option<Signal> {
        self.state.signal.get().copied()
    }

    /// What stopped it, in a word: `SIGINT`, `SIGTERM` or `shutdown`.
    pub fn cause(&self) -> &'static str {
        self.signal().map_or("shutdown", Signal::name)
    }

    /// Adds to what the stop left unfinished.
    pub fn note(&self, stopped: Stopped) {
        self.state
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(stopped);
    }

    /// What the stop left unfinished so far.
    pub fn stopped(&self) -> Stopped {
        *self.state.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs the stop's one line, `interrupted by SIGINT: <what>` (`what`: by default what
    /// [`Shutdown::note`] added up) — once per handle, and only after a stop. Returns whether
    /// this call logged it.
    pub fn report(&self, what: Option<&str>) -> bool {
        if !self.is_stopping() || self.state.reported.swap(true, Ordering::SeqCst) {
            return false;
        }
        let what = what.map_or_else(|| self.stopped().describe(), str::to_string);
        tracing::warn!("interrupted by {}: {what}", self.cause());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_was_left_and_that_it_resumes() {
        let none = Stopped::default();
        assert_eq!(none.describe(), "nothing was left unfinished");
        let s = Stopped {
            runs: 1,
            mid_sync: 3,
            not_started: 97,
        };
        assert_eq!(
            s.describe(),
            "100 series syncs stopped (3 mid-way, 97 not started) in 1 run; they resume on the next run"
        );
        let one = Stopped {
            runs: 0,
            mid_sync: 1,
            not_started: 0,
        };
        assert_eq!(
            one.describe(),
            "1 series sync stopped (1 mid-way, 0 not started); it resumes on the next run"
        );
        assert!(!none.any() && s.any());
    }

    #[test]
    fn the_first_signal_is_kept_and_the_line_is_logged_once() {
        let s = Shutdown::new();
        assert!(!s.report(None), "nothing to report before a stop");
        s.stop(Some(Signal::Terminate));
        s.stop(Some(Signal::Interrupt));
        assert_eq!(s.signal(), Some(Signal::Terminate));
        assert_eq!(s.cause(), "SIGTERM");
        assert_eq!(s.signal().map(Signal::exit_code), Some(143));
        assert!(s.clone().report(None));
        assert!(!s.report(None), "once per handle");
        let by_caller = Shutdown::from(CancellationToken::new());
        by_caller.token().cancel();
        assert!(by_caller.is_stopping());
        assert_eq!(by_caller.cause(), "shutdown");
    }
}
