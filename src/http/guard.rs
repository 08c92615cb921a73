//! Defences against the browser: a web page the operator visits must not read the daemon or
//! start work through it.
//!
//! - **DNS rebinding:** a request's `Host` must be an IP address, `localhost`, or a name in
//!   `api.allowed_hosts`; a page on `evil.example` whose name was rebound to 127.0.0.1 sends
//!   `Host: evil.example` and is refused (403).
//! - **Cross-site requests:** every state-changing request (`POST`, …) is refused when the
//!   browser says it comes from elsewhere (`Sec-Fetch-Site: cross-site`/`same-site`, or an
//!   `Origin` other than this host). The JSON API's state-changing routes also refuse the
//!   content types an HTML form can send without script (`application/x-www-form-urlencoded`,
//!   `multipart/form-data`, `text/plain`) — a client sends JSON, a custom header, or nothing
//!   at all (`curl -X POST`). Only the status page's own "Run now" form may post a form, and
//!   only from the page (same origin).
//!
//! Both hold whether or not a token is set.

use super::api::ApiError;
use crate::daemon::Daemon;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Refuses requests with a foreign `Host` and cross-site state-changing requests.
pub async fn guard(State(d): State<Arc<Daemon>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok())
        && !host_allowed(host, &d.app.settings.api.allowed_hosts)
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Host {host:?} is not a name this daemon serves as: use its IP address or localhost, or add the name to api.allowed_hosts"
            ),
        )
        .into_response();
    }
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes {
        let form_allowed = req.uri().path().starts_with("/ui/");
        if let Some(why) = cross_site(headers, form_allowed) {
            return ApiError::new(StatusCode::FORBIDDEN, format!("refused: {why}")).into_response();
        }
    }
    next.run(req).await
}

/// Whether `host` (a `Host` header: name or address, optional port) names this daemon.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::IpAddr>().is_ok() || name == "localhost" || allowed.contains(&name)
}

/// Why a state-changing request is cross-site, if it is.
fn cross_site(headers: &HeaderMap, form_allowed: bool) -> Option<&'static str> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
        && site != "none"
    {
        return Some("the browser says this request comes from another site");
    }
    if let Some(origin) = text(header::ORIGIN) {
        let host = text(header::HOST).unwrap_or_default();
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return Some("the request's Origin is not this daemon");
        }
    }
    if !form_allowed && let Some(ct) = text(header::CONTENT_TYPE) {
        let ct = ct.trim().to_ascii_lowercase();
        if [
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "text/plain",
        ]
        .iter()
        .any(|f| ct.starts_with(f))
        {
            return Some(
                "a form or plain-text body cannot change state here; send JSON, or no body",
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn hosts_are_addresses_localhost_or_allowed_names() {
        let allowed = vec!["dms.internal".to_string()];
        for ok in [
            "127.0.0.1:8686",
            "127.0.0.1",
            "[::1]:8686",
            "localhost:8686",
            "LOCALHOST",
            "10.1.2.3:80",
            "dms.internal:8686",
            "dms.internal.",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "evil.example:8686",
            "evil.example",
            "localhost.evil.example",
            "[evil]:1",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
    }

    #[test]
    fn cross_site_posts_are_refused_and_plain_clients_are_not() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8686"));
        assert_eq!(cross_site(&h, false), None, "curl -X POST");
        h.insert("content-type", HeaderValue::from_static("application/json"));
        assert_eq!(cross_site(&h, false), None);
        h.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert!(cross_site(&h, false).is_some(), "a form to the API");
        assert_eq!(cross_site(&h, true), None, "the page's own form");
        h.insert("origin", HeaderValue::from_static("http://evil.example"));
        assert!(cross_site(&h, true).is_some());
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:8686"));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h, true).is_some());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert_eq!(cross_site(&h, true), None);
    }
}
