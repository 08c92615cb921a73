//! Who may see data: the `Authorization: Bearer` rule shared by the API and the status page.

use crate::config::Secret;
use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether a request may see data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Access {
    /// No token is configured.
    Open,
    /// The right bearer token came with the request.
    Granted,
    /// A token is configured and the request brought none.
    Missing,
    /// The request brought a wrong token.
    Wrong,
}

impl Access {
    /// Whether the request may go on.
    pub fn allowed(self) -> bool {
        matches!(self, Access::Open | Access::Granted)
    }
}

/// Checks the `Authorization: Bearer` header against `token` (the scheme name is
/// case-insensitive, as RFC 7235 says).
pub fn access(token: Option<&Secret>, headers: &HeaderMap) -> Access {
    let Some(token) = token else {
        return Access::Open;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim_start().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
        });
    match given {
        None => Access::Missing,
        Some(g) if same_secret(g, token.expose()) => Access::Granted,
        Some(_) => Access::Wrong,
    }
}

/// Compares digests of the two in constant time, so neither where they differ nor their
/// lengths show in the time taken.
fn same_secret(given: &str, token: &str) -> bool {
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(token.as_bytes()),
    );
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_exact() {
        let token = Secret::new("s3cret-token".into());
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(v));
            access(Some(&token), &h)
        };
        assert_eq!(access(Some(&token), &HeaderMap::new()), Access::Missing);
        assert_eq!(access(None, &HeaderMap::new()), Access::Open);
        assert_eq!(with("Bearer s3cret-token"), Access::Granted);
        assert_eq!(with("bearer s3cret-token"), Access::Granted);
        assert_eq!(with("Bearer s3cret-toke"), Access::Wrong);
        assert_eq!(with("Basic s3cret-token"), Access::Missing);
    }
}
