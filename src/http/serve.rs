//! Serving the router on a listener with the limits a daemon on an operator's machine needs:
//! a connection that does not finish its request headers within [`HEADER_TIMEOUT`] is closed
//! (slowloris), at most [`MAX_CONNECTIONS`] connections are served at once (the rest wait in
//! the kernel's backlog), and shutdown lets requests in flight finish.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a client may take to send a request's headers (and an idle keep-alive
/// connection may wait for its next request).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 512;

/// Serves `router` on `listener` until `stop` is cancelled, then waits for the connections
/// in flight to finish their requests.
pub async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                // The semaphore is never closed.
                Err(_) => break,
            },
            _ = stop.cancelled() => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off a little, go on.
                    tracing::warn!(cause = %e, "HTTP API: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        connections.spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let served = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(cause = %e, "HTTP API: connection ended with an error");
            }
            drop(permit);
        });
    }
    connections.close();
    connections.wait().await;
}
