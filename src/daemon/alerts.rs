//! Failure alerts: a JSON POST to the configured webhook when a task run fails or a backup·series
//! turns behind. Delivery is retried in the background; failing to alert is logged, never fatal.

use crate::config::AlertSettings;
use std::time::Duration;

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
    /// A backup·series lags more than `max_gap_hours` (or was never synced).
    Behind {
        /// Backup and series.
        #[serde(flatten)]
        key: crate::model::BackupSeries,
        /// Lag in seconds, if it was ever synced.
        lag_seconds: Option<f64>,
    },
}

impl Alerter {
    /// An alerter, or `None` when no webhook is configured.
    pub fn new(settings: &AlertSettings) -> Option<Alerter> {
        settings.webhook.as_ref()?;
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .ok()?;
        Some(Alerter {
            client,
            settings: settings.clone(),
        })
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
            "time": chrono::Utc::now().to_rfc3339(),
            "alert": alert,
        });
        let mut delay = Duration::from_secs(1);
        for attempt in 0..=self.settings.retries {
            let res = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await;
            let why = match res {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => without_url(&e),
            };
            if attempt == self.settings.retries {
                tracing::error!(cause = %why, attempts = attempt + 1, "could not deliver an alert to the webhook");
                return;
            }
            tracing::warn!(cause = %why, attempt = attempt + 1, "alert delivery failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }
}

/// An error's text without the URL (a webhook URL often carries a secret).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}
