//! Text for a reqwest error that never shows its URL. A URL can carry a secret (a webhook's
//! token, a query), so the error's own text is taken after [`reqwest::Error::without_url`], and
//! its sources follow, so the cause ("Connection refused") survives.

use std::error::Error as _;

/// An HTTP client (for scripts' `dms.http` or for alerts) could not be built: the TLS set-up
/// failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot build an HTTP client: {}", reqwest_detail_ref(.0))]
pub struct ClientError(pub reqwest::Error);

fn reqwest_detail_ref(e: &reqwest::Error) -> String {
    // A build error carries no URL; its sources say what failed.
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// Describes `e` for people: `timed out`, `cannot connect` or `request failed`, then the error
/// without its URL and its sources, joined with `: `.
pub fn describe_reqwest(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", reqwest_detail(e))
}

/// The text of `e` without its URL, then each source that adds something, joined with `: `.
/// For callers that word the failure themselves (the InfluxDB node names its server).
pub(crate) fn reqwest_detail(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        // Some errors repeat their source's text in their own.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_url_and_its_secrets_stay_out_and_the_cause_stays_in() {
        // Nothing listens on a port just released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let url = format!("http://user:hunter2@127.0.0.1:{port}/hook?token=hunter2");
        let e = crate::tls::client_builder()
            .build()
            .expect("http client")
            .post(&url)
            .send()
            .await
            .expect_err("nothing listens");
        let text = describe_reqwest(e);
        assert!(
            !text.contains("hunter2") && !text.contains("/hook"),
            "{text}"
        );
        assert!(text.starts_with("cannot connect: "), "{text}");
        assert!(text.to_lowercase().contains("refused"), "{text}");
    }
}
