//! Wall-clock times as the history stores them and its rows show them: RFC 3339 UTC with
//! milliseconds.

/// Current time as stored: RFC 3339 UTC with milliseconds.
pub fn now_text() -> String {
    time_text(chrono::Utc::now())
}

/// A wall-clock time as stored: RFC 3339 UTC with milliseconds.
pub fn time_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Serde for wall-clock times as stored and shown: RFC 3339 UTC with milliseconds.
pub mod wallclock {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    /// Serializes `t` as [`crate::time_text`] does.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::time_text(*t))
    }

    /// The same for optional times (`null` when absent).
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::Serializer;

        /// Serializes `t` as [`super::crate::time_text`] does, or `null`.
        ///
        /// # Errors
        /// The serializer's.
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }
    }
}
