//! Query-string parsing with a JSON 400 for anything malformed: unknown or repeated parameters,
//! non-numbers, negative limits, unreadable times.

use super::ApiError;
use crate::history::Status;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;

/// The parameters of one request.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Checks that only `allowed` parameters appear, each at most once.
    pub fn new(
        q: Result<Query<Vec<(String, String)>>, QueryRejection>,
        allowed: &[&str],
    ) -> Result<Params, ApiError> {
        let Query(pairs) =
            q.map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
        for (i, (k, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {k:?}; this route takes: {}",
                    allowed.join(", ")
                )));
            }
            if pairs[..i].iter().any(|(p, _)| p == k) {
                return Err(ApiError::bad_request(format!(
                    "parameter {k:?} is given twice"
                )));
            }
        }
        Ok(Params(pairs))
    }

    /// A non-empty text value.
    pub fn text(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }

    /// A whole number.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.text(key)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("{key}: {v:?} is not a whole number"))
                })
            })
            .transpose()
    }

    /// `limit`: 1..=max, or 0 for every row (as the CLI's `--limit 0`); default `default`.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.int("limit")? {
            None => Ok(default),
            Some(n) if n >= 0 && n as u64 <= max as u64 => Ok(n as usize),
            Some(n) => Err(ApiError::bad_request(format!(
                "limit: {n} is out of range; give 1 to {max}, or 0 for every row"
            ))),
        }
    }

    /// `true`/`false`.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        self.text(key)
            .map(|v| match v.as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(ApiError::bad_request(format!(
                    "{key}: {v:?} is not true or false"
                ))),
            })
            .transpose()
    }

    /// `status`: running, success, failed or interrupted.
    pub fn status(&self) -> Result<Option<Status>, ApiError> {
        self.text("status")
            .map(|v| match Status::parse(&v) {
                Some(
                    s @ (Status::Running | Status::Success | Status::Failed | Status::Interrupted),
                ) => Ok(s),
                _ => Err(ApiError::bad_request(format!(
                    "status: {v:?} is not one of running, success, failed, interrupted"
                ))),
            })
            .transpose()
    }

    /// A time: RFC 3339, a date, or an age such as `24h` (before now).
    pub fn time(&self, key: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        self.text(key)
            .map(|v| {
                crate::input::parse_point_in_time(&v)
                    .map_err(|e| ApiError::bad_request(format!("{key}: {e}")))
            })
            .transpose()
    }
}
