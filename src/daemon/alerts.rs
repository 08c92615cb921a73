//! Failure alerts: a JSON POST to the configured webhook when a task run fails or a backup·series
//! turns behind. Delivery is retried in the background; failing to alert is logged, never fatal.

use crate::config::AlertSettings;
use crate::node::{ClientError, describe_reqwest};
use crate::retry::{Backoff, RetryPolicy, Retryable, with_retry};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Posts alert events to the webhook, if one is configured.
#[derive(Clone)]
pub struct Alerter {
    client: reqwest::Client,
    settings: AlertSettings,
}

/// What happened.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Alert {
    /// A task run failed.
    TaskFailed {
        /// Task.
        task: String,
        /// History run id.
        run_id: i64,
        /// What started it.
        trigger: String,
        /// Why it failed.
        error: String,
    },
    /// Series of a backup turned `behind`: lag over `max_gap_hours` that the check loop could
    /// not fix (its catch-up failed, or the backup is down). One alert per backup and pass.
    Behind {
        /// Backup.
        backup: String,
        /// How many series turned behind.
        count: usize,
        /// The first of them (`SYMBOL@INTERVAL`, at most 20).
        series: Vec<String>,
        /// The largest lag among them, in seconds (absent when none was ever synced).
        max_lag_seconds: Option<f64>,
        /// Why dms could not catch them up.
        cause: String,
    },
    /// A checkpoint claimed more than its backup holds (restored, wiped, database dropped)
    /// and was moved back; the gap is being synced.
    Rewound {
        /// Backup and series.
        #[serde(flatten)]
        key: crate::model::BackupSeries,
        /// The checkpoint before (RFC 3339).
        from: String,
        /// The backup's newest point, the new checkpoint (RFC 3339); `null` when it holds none.
        to: Option<String>,
    },
    /// The sync history cannot be written (deleted or replaced file, full disk, …).
    HistoryFailed {
        /// Why.
        error: String,
    },
    /// The primary's newest bar of these series has not advanced for the task's `stale_after`
    /// successful runs in a row: the feed stopped. Sent once, when they turn stale.
    Stale {
        /// Task that maintains them.
        task: String,
        /// How many series.
        count: usize,
        /// The first of them (`SYMBOL@INTERVAL`, at most 20).
        series: Vec<String>,
        /// Runs in a row.
        runs: u32,
    },
    /// The primary holds a point stamped after now + `future_tolerance`.
    Future {
        /// Backup and series.
        #[serde(flatten)]
        key: crate::model::BackupSeries,
        /// The future-dated point's time (RFC 3339).
        time: String,
    },
}

/// Why one delivery failed.
#[derive(Debug)]
struct DeliveryError(String);

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Retryable for DeliveryError {
    /// A webhook that refuses one alert may take the next try (a restarting receiver, a
    /// proxy's 502): every failure is retried.
    fn retryable(&self) -> bool {
        true
    }
}

impl Alerter {
    /// An alerter, or `None` when no webhook is configured.
    ///
    /// # Errors
    /// [`ClientError`] when a webhook is configured but no HTTP client can be built: alerts
    /// are never turned off in silence.
    pub fn new(settings: &AlertSettings) -> Result<Option<Alerter>, ClientError> {
        if settings.webhook.is_none() {
            return Ok(None);
        }
        let client = crate::node::http_client_builder()
            .timeout(settings.timeout)
            .build()
            .map_err(ClientError)?;
        Ok(Some(Alerter {
            client,
            settings: settings.clone(),
        }))
    }

    /// Sends `alert` in the background with retries.
    pub fn send(&self, alert: Alert) {
        let this = self.clone();
        tokio::spawn(async move { this.deliver(alert).await });
    }

    async fn deliver(&self, alert: Alert) {
        let Some(url) = &self.settings.webhook else {
            return;
        };
        let body = serde_json::json!({
            "source": "dms",
            "time": crate::history::now_text(),
            "alert": alert,
        })
        .to_string();
        let policy = RetryPolicy {
            times: self.settings.retries,
            delay: Duration::from_secs(1),
            backoff: Backoff::Exponential,
            max_delay: Duration::from_secs(60),
        };
        let post = || async {
            let res = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(DeliveryError(format!("HTTP {}", r.status()))),
                Err(e) => Err(DeliveryError(describe_reqwest(e))),
            }
        };
        // Delivery never stops for shutdown: an alert in flight is worth its retries.
        let never = CancellationToken::new();
        if let Err(g) = with_retry(&policy, &never, "alert delivery", post).await {
            tracing::error!(cause = %g.error, attempts = g.attempts, "could not deliver an alert to the webhook");
        }
    }
}
