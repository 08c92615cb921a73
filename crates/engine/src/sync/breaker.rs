//! Per-run circuit breakers: a node that refuses connections or times out is retried by one
//! caller only (the probe) while the others wait; when the probe's retries are spent the node
//! is down for the rest of the run and every later call to it fails at once with "down since
//! …". So a dead backup costs one series' retry budget per run, logs one error, and leaves
//! the workers to the healthy nodes.
//!
//! Only [`ErrorKind::Unavailable`] and [`ErrorKind::Timeout`] say a node is down; other
//! failures (a refused batch, a server error on one query) are the caller's own and retried
//! by it as before.

use chrono::{DateTime, Utc};
use dms_core::node::{ErrorKind, NodeError};
use dms_core::retry::{GaveUp, Retrier, RetryPolicy};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Whether an error says the node itself cannot be reached.
pub(crate) fn is_down(e: &NodeError) -> bool {
    matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Timeout)
}

#[derive(Debug, Clone)]
enum State {
    Up,
    /// One caller is retrying; the others wait for its outcome.
    Probing,
    Down(Down),
}

/// A node found down in this run.
#[derive(Debug, Clone)]
pub(crate) struct Down {
    pub node: String,
    pub since: DateTime<Utc>,
    pub cause: String,
}

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node {} down since {} ({}); not tried",
            self.node,
            self.since.format("%Y-%m-%d %H:%M:%S UTC"),
            self.cause
        )
    }
}

/// One node's breaker.
pub(crate) struct Gate {
    node: String,
    state: watch::Sender<State>,
}

impl Gate {
    fn new(node: &str) -> Self {
        Gate {
            node: node.to_string(),
            state: watch::Sender::new(State::Up),
        }
    }

    /// Whether another caller is probing the node (a caller that could wait elsewhere, such
    /// as a fan-out lane, should step aside).
    pub(crate) fn probing(&self) -> bool {
        matches!(*self.state.borrow(), State::Probing)
    }

    /// Makes this caller the probe when the node is up.
    fn try_probe(&self) -> bool {
        self.state.send_if_modified(|s| {
            if matches!(s, State::Up) {
                *s = State::Probing;
                true
            } else {
                false
            }
        })
    }

    fn set(&self, state: State) {
        self.state.send_replace(state);
    }
}

/// The breakers of one run, one per node name.
#[derive(Default)]
pub(crate) struct Breakers {
    gates: Mutex<HashMap<String, Arc<Gate>>>,
}

impl Breakers {
    /// The gate of `node`.
    pub(crate) fn gate(&self, node: &str) -> Arc<Gate> {
        // A poisoned lock only means another thread panicked while inserting; the map is
        // still whole.
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates
            .entry(node.to_string())
            .or_insert_with(|| Arc::new(Gate::new(node)))
            .clone()
    }
}

/// Why a guarded call failed.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The node is down (found so by this caller's probe, or by another's).
    Down(String),
    /// The call failed on its own account.
    GaveUp(GaveUp<NodeError>),
    /// Shutdown stopped the wait for another caller's probe.
    Interrupted(String),
}

impl Failure {
    /// The text recorded and shown.
    pub(crate) fn text(&self) -> String {
        match self {
            Failure::Down(s) | Failure::Interrupted(s) => s.clone(),
            Failure::GaveUp(g) => g.to_string(),
        }
    }

    /// Whether the node was down (already logged once by the breaker).
    pub(crate) fn node_down(&self) -> bool {
        matches!(self, Failure::Down(_))
    }

    /// Whether shutdown stopped it.
    pub(crate) fn cancelled(&self) -> bool {
        match self {
            Failure::GaveUp(g) => g.cancelled,
            Failure::Interrupted(_) => true,
            Failure::Down(_) => false,
        }
    }
}

/// A retry loop through a node's gate: [`Retrier`] plus the breaker rules.
pub(crate) struct Guarded<'a> {
    gate: Arc<Gate>,
    retrier: Retrier<'a>,
    cancel: &'a CancellationToken,
    /// When this caller became the probe.
    probing: Option<DateTime<Utc>>,
}

impl<'a> Guarded<'a> {
    pub(crate) fn new(
        gate: Arc<Gate>,
        policy: &'a RetryPolicy,
        cancel: &'a CancellationToken,
        what: &'a str,
    ) -> Self {
        Guarded {
            gate,
            retrier: Retrier::new(policy, cancel, what),
            cancel,
            probing: None,
        }
    }

    /// Waits while another caller probes the node; fails at once when it is down.
    ///
    /// # Errors
    /// [`Failure::Down`], or [`Failure::Interrupted`] on shutdown.
    pub(crate) async fn ready(&mut self) -> Result<(), Failure> {
        if self.probing.is_some() {
            return Ok(());
        }
        let mut rx = self.gate.state.subscribe();
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                State::Up => return Ok(()),
                State::Down(d) => return Err(Failure::Down(d.to_string())),
                State::Probing => {}
            }
            tokio::select! {
                // The sender lives in the gate, which this caller holds: never closed.
                _ = rx.changed() => {}
                _ = self.cancel.cancelled() => {
                    return Err(Failure::Interrupted(format!(
                        "interrupted by shutdown while node {} was being probed",
                        self.gate.node
                    )));
                }
            }
        }
    }

    /// After a success: forgets failures and, for the probe, opens the gate again.
    pub(crate) fn succeeded(&mut self) {
        self.retrier.succeeded();
        if self.probing.take().is_some() {
            self.gate.set(State::Up);
        }
    }

    /// After a failure: `Ok` to try again (after [`Guarded::ready`]), or why not.
    ///
    /// # Errors
    /// [`Failure`] when the retries are spent, retrying cannot help, or the probe found the
    /// node down.
    pub(crate) async fn failed(&mut self, error: NodeError) -> Result<(), Failure> {
        if is_down(&error) && self.probing.is_none() {
            if self.gate.try_probe() {
                self.probing = Some(Utc::now());
            } else {
                // Another caller is probing (or has just decided): wait for its outcome.
                return Ok(());
            }
        }
        match self.retrier.failed(error).await {
            Ok(()) => Ok(()),
            Err(g) => {
                let Some(since) = self.probing.take() else {
                    return Err(Failure::GaveUp(g));
                };
                if g.cancelled || !is_down(&g.error) {
                    self.gate.set(State::Up);
                    return Err(Failure::GaveUp(g));
                }
                let down = Down {
                    node: self.gate.node.clone(),
                    since,
                    cause: g.to_string(),
                };
                tracing::error!(
                    node = %down.node,
                    cause = %down.cause,
                    "node is down; the rest of this run's work for it fails without trying"
                );
                let text = down.cause.clone();
                self.gate.set(State::Down(down));
                Err(Failure::Down(text))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            times: 3,
            delay: Duration::from_secs(5),
            backoff: dms_core::retry::Backoff::Exponential,
            max_delay: Duration::MAX,
        }
    }

    async fn call(
        gate: Arc<Gate>,
        cancel: CancellationToken,
        tries: Arc<AtomicU32>,
        kind: ErrorKind,
    ) -> Result<(), Failure> {
        let policy = policy();
        let mut g = Guarded::new(gate, &policy, &cancel, "writing");
        loop {
            g.ready().await?;
            tries.fetch_add(1, Ordering::SeqCst);
            g.failed(NodeError::new("b2", kind, "connection refused"))
                .await?;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_retries_a_dead_node_and_the_rest_fail_at_once() {
        let breakers = Breakers::default();
        let cancel = CancellationToken::new();
        let tries = Arc::new(AtomicU32::new(0));
        let start = tokio::time::Instant::now();
        let calls = (0..20).map(|_| {
            call(
                breakers.gate("b2"),
                cancel.clone(),
                tries.clone(),
                ErrorKind::Unavailable,
            )
        });
        let out = futures::future::join_all(calls).await;
        // One probe: 4 tries over 5 + 10 + 20 s; the 19 others at most once each.
        assert_eq!(start.elapsed(), Duration::from_secs(35));
        assert!((4..=4 + 19).contains(&tries.load(Ordering::SeqCst)));
        assert!(out.iter().all(|r| matches!(r, Err(Failure::Down(_)))));
        let texts: Vec<String> = out.iter().map(|r| r.clone().unwrap_err().text()).collect();
        assert_eq!(
            texts.iter().filter(|t| t.contains("down since")).count(),
            19,
            "{texts:?}"
        );
        // Later calls in the run do not try at all.
        let before = tries.load(Ordering::SeqCst);
        let late = call(
            breakers.gate("b2"),
            cancel.clone(),
            tries.clone(),
            ErrorKind::Timeout,
        )
        .await;
        assert!(late.unwrap_err().text().contains("down since"));
        assert_eq!(tries.load(Ordering::SeqCst), before);
        // Another node is not affected.
        assert!(!breakers.gate("b1").probing());
    }

    #[tokio::test(start_paused = true)]
    async fn errors_that_are_not_about_the_node_do_not_trip_it() {
        let breakers = Breakers::default();
        let cancel = CancellationToken::new();
        let tries = Arc::new(AtomicU32::new(0));
        let out = call(
            breakers.gate("b2"),
            cancel.clone(),
            tries.clone(),
            ErrorKind::Server,
        )
        .await;
        assert!(matches!(out, Err(Failure::GaveUp(_))));
        let policy = policy();
        let mut g = Guarded::new(breakers.gate("b2"), &policy, &cancel, "w");
        assert!(g.ready().await.is_ok(), "still up");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_succeeds_lets_the_waiters_go_on() {
        let breakers = Breakers::default();
        let cancel = CancellationToken::new();
        let policy = policy();
        let mut probe = Guarded::new(breakers.gate("b2"), &policy, &cancel, "w");
        probe.ready().await.expect("up");
        let waiter = {
            let gate = breakers.gate("b2");
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let policy = policy;
                let mut g = Guarded::new(gate, &policy, &cancel, "w");
                g.ready().await.is_ok()
            })
        };
        // The probe fails once (waits 5 s), then succeeds.
        let failing = probe.failed(NodeError::new("b2", ErrorKind::Timeout, "slow"));
        failing.await.expect("retry");
        assert!(breakers.gate("b2").probing());
        probe.succeeded();
        assert!(waiter.await.expect("joined"));
    }
}
