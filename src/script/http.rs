//! `dms.http`: HTTP requests from scripts, only to hosts in `scripts.http_allow` (redirects
//! included), with a time limit and a cap on the body size.

use crate::config::ScriptSettings;
use crate::node::{ClientError, describe_reqwest};
use std::sync::Arc;

/// Largest response body a script may receive.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// The HTTP client scripts use.
#[derive(Clone)]
pub struct HttpAccess {
    client: reqwest::Client,
    allow: Arc<Vec<String>>,
}

/// A response handed to a script.
#[derive(Debug, serde::Serialize)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body as text (invalid UTF-8 replaced).
    pub body: String,
    /// Response headers (lower-case names).
    pub headers: std::collections::BTreeMap<String, String>,
}

fn host_allowed(allow: &[String], url: &reqwest::Url) -> bool {
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allow.iter().any(|a| match a.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(&format!(".{suffix}")),
        None => *a == host,
    })
}

impl HttpAccess {
    /// A client restricted to the allow-list.
    ///
    /// # Errors
    /// [`ClientError`] when the client could not be built (TLS set-up).
    pub fn new(settings: &ScriptSettings) -> Result<HttpAccess, ClientError> {
        let allow = Arc::new(settings.http_allow.clone());
        let policy_allow = allow.clone();
        let client = crate::node::http_client_builder()
            .timeout(settings.http_timeout)
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 5 {
                    attempt.error("too many redirects")
                } else if host_allowed(&policy_allow, attempt.url()) {
                    attempt.follow()
                } else {
                    attempt.error("redirect to a host outside scripts.http_allow")
                }
            }))
            .build()
            .map_err(ClientError)?;
        Ok(HttpAccess { client, allow })
    }

    /// Sends a request if the URL's host is allowed.
    ///
    /// # Errors
    /// A message: host not allowed, bad URL, connection failure, body too large.
    pub async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<String>,
        headers: Vec<(String, String)>,
    ) -> Result<Answer, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
        if !host_allowed(&self.allow, &parsed) {
            return Err(format!(
                "host {:?} is not in scripts.http_allow",
                parsed.host_str().unwrap_or("")
            ));
        }
        let mut req = self.client.request(method, parsed);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let mut resp = req.send().await.map_err(describe_reqwest)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(describe_reqwest)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("response body is larger than {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_hosts_and_subdomains_only() {
        let allow = vec!["api.example.com".to_string(), "*.vendor.net".to_string()];
        let ok = |u: &str| host_allowed(&allow, &reqwest::Url::parse(u).unwrap());
        assert!(ok("https://api.example.com/x"));
        assert!(ok("https://API.example.com:8443/x"));
        assert!(ok("http://eu.vendor.net/"));
        assert!(!ok("http://vendor.net/"));
        assert!(!ok("http://evil-vendor.net/"));
        assert!(!ok("http://api.example.com.evil.org/"));
        assert!(!ok("http://127.0.0.1/"));
        assert!(!ok("file:///etc/passwd"));
    }
}
