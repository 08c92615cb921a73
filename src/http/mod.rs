//! The HTTP surface of the daemon: the JSON API ([`api`]), the status page ([`web`]) and the
//! bearer-token rule both follow ([`auth`]), assembled into one router by [`router`].
//!
//! The dependency runs one way: this module reads through a [`Daemon`] handle (its app,
//! metrics and triggers); the daemon never imports it — `dms run` builds the router here and
//! hands it to [`crate::daemon::run`].

pub mod api;
pub mod auth;
pub mod guard;
pub mod serve;
pub mod web;

use crate::daemon::Daemon;
use axum::Router;
use axum::http::StatusCode;
use std::sync::Arc;

/// Largest request body any route accepts.
const BODY_LIMIT: usize = 64 * 1024;

/// The daemon's HTTP server: [`router`] served with [`serve::serve`]'s limits.
pub fn server(daemon: Arc<Daemon>) -> crate::daemon::Server {
    let router = router(daemon);
    Box::new(move |listener, stop| Box::pin(serve::serve(listener, router, stop)))
}

/// Every route of the daemon: the API, `/healthz`, `/metrics` and the status page.
pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .merge(api::routes(daemon.clone()))
        .merge(web::routes())
        .fallback(|| async { api::ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(axum::middleware::from_fn_with_state(
            daemon.clone(),
            guard::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(daemon)
}
