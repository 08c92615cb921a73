//! Serving the router on a listener with the limits a daemon on an operator's machine needs.
//! Every connection is bounded from its first byte:
//!
//! - HTTP/1.1 only, so no protocol detection runs before the header timeout: the clock of
//!   [`HEADER_TIMEOUT`] starts when the connection is accepted, and restarts when a keep-alive
//!   connection waits for its next request (idle connections are closed after it). A client
//!   that sends nothing, half a request or half an HTTP/2 preface is cut off by it; a whole
//!   HTTP/2 preface is refused at once.
//! - A request (body and handler) must finish within [`REQUEST_TIMEOUT`] (408 otherwise).
//! - A client that stops reading its answer is cut off once a write has waited
//!   [`WRITE_TIMEOUT`] for room in the socket.
//! - At most [`MAX_CONNECTIONS`] connections are served at once (fewer when the soft limit of
//!   open files, raised towards the hard one, is lower); the rest wait in the kernel's backlog.
//!   So a few hundred silent connections cannot take every slot, and those that hold one are
//!   closed after the header timeout.
//! - Shutdown lets requests in flight finish.

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a client may take to send a request's headers, counted from the moment the
/// connection is accepted (and how long an idle keep-alive connection may wait for its next
/// request).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one request may take from its headers to its answer (reading the body included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a write of an answer may wait for a client that does not read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once, at most (fewer when the process may not open that many files).
pub const MAX_CONNECTIONS: usize = 4096;

/// Files kept free for everything else the daemon opens (nodes, history, scripts).
const RESERVED_FILES: u64 = 256;

/// How many connections to serve at once: [`MAX_CONNECTIONS`], after raising the soft limit of
/// open files towards its hard limit, and never so many that the daemon runs out of files.
fn connection_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 512;
        }
        let want = (MAX_CONNECTIONS as u64 + RESERVED_FILES).min(lim.rlim_max);
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = want;
            }
        }
        lim.rlim_cur
    };
    usize::try_from(soft.saturating_sub(RESERVED_FILES))
        .unwrap_or(MAX_CONNECTIONS)
        .clamp(16, MAX_CONNECTIONS)
}

/// Serves `router` on `listener` until `stop` is cancelled, then waits for the connections
/// in flight to finish their requests.
pub async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
    let router = router.layer(axum::middleware::from_fn(request_timeout));
    let limit = connection_limit();
    tracing::debug!(connections = limit, "HTTP API: connection limit");
    let permits = Arc::new(tokio::sync::Semaphore::new(limit));
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
            let io = TokioIo::new(WriteDeadline::new(stream, WRITE_TIMEOUT));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(io, service);
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

/// Ends a request that takes longer than [`REQUEST_TIMEOUT`] (a body sent a byte at a time, a
/// handler stuck on a node) with 408.
async fn request_timeout(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => super::api::ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request took longer than {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
    }
}

/// A stream whose writes fail with `TimedOut` once one has waited `limit` for the peer to
/// make room (a client that does not read its answer). Reads pass through untouched: the
/// header and request timeouts bound them.
struct WriteDeadline<T> {
    inner: T,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
    waiting: bool,
}

impl<T> WriteDeadline<T> {
    fn new(inner: T, limit: Duration) -> Self {
        WriteDeadline {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            waiting: false,
        }
    }

    /// Turns a write's `Pending` into a timeout once it has lasted `limit`; any answer of
    /// the stream stops the clock.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(r) => {
                self.waiting = false;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if !self.waiting {
                    self.waiting = true;
                    self.timer.as_mut().reset(Instant::now() + self.limit);
                }
                match self.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not read its answer",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, polled)
    }
}
