//! Deterministic OHLCV sample data: the shipped `data/incoming/` files, test fixtures and the
//! benchmark's dataset all come from here, so the same inputs give the same bars everywhere.

use crate::model::{FieldValue, NANOS_PER_SEC, Name, Nanos, Point};
use crate::schema::Schema;
use chrono::{Datelike, NaiveDate, TimeZone, Weekday};
use std::sync::Arc;

/// One OHLCV bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Bar start (ns).
    pub time: Nanos,
    /// Open price.
    pub open: f64,
    /// High price.
    pub high: f64,
    /// Low price.
    pub low: f64,
    /// Close price.
    pub close: f64,
    /// Shares traded.
    pub volume: i64,
}

/// SplitMix64: small, fast, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds from a string (e.g. the symbol and interval).
    pub fn from_key(key: &str) -> Rng {
        // FNV-1a of the key.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A random-walk bar for each timestamp, seeded by `symbol` and `interval`.
pub fn bars(symbol: &str, interval: &str, times: &[Nanos]) -> Vec<Bar> {
    let mut rng = Rng::from_key(&format!("{symbol}/{interval}"));
    let mut price = 20.0 + rng.unit() * 480.0;
    let step = if interval.ends_with('d') { 0.02 } else { 0.001 };
    times
        .iter()
        .map(|&time| {
            let open = price;
            let change = (rng.unit() - 0.5) * 2.0 * step;
            let close = (open * (1.0 + change)).max(0.01);
            let high = open.max(close) * (1.0 + rng.unit() * step / 2.0);
            let low = open.min(close) * (1.0 - rng.unit() * step / 2.0);
            price = close;
            let base = if interval.ends_with('d') {
                5_000_000.0
            } else {
                12_000.0
            };
            Bar {
                time,
                open: cents(open),
                high: cents(high),
                low: cents(low.max(0.01)),
                close: cents(close),
                volume: (base * (0.5 + rng.unit())) as i64,
            }
        })
        .collect()
}

/// Weekdays from `from` to `to`, inclusive.
pub fn weekdays(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    from.iter_days()
        .take_while(|d| *d <= to)
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .collect()
}

/// Midnight UTC of each day, for daily bars.
pub fn daily_times(days: &[NaiveDate]) -> Vec<Nanos> {
    days.iter()
        .filter_map(|d| d.and_hms_opt(0, 0, 0))
        .filter_map(|d| d.and_utc().timestamp_nanos_opt())
        .collect()
}

/// Every minute of the US regular session (09:30–15:59 New York time) of each day.
pub fn us_minute_times(days: &[NaiveDate]) -> Vec<Nanos> {
    let tz = chrono_tz::America::New_York;
    let mut out = Vec::with_capacity(days.len() * 390);
    for d in days {
        let Some(open) = d.and_hms_opt(9, 30, 0) else {
            continue;
        };
        let Some(start) = tz.from_local_datetime(&open).single() else {
            continue;
        };
        let Some(start) = start.timestamp_nanos_opt() else {
            continue;
        };
        for m in 0..390 {
            out.push(start + m * 60 * NANOS_PER_SEC);
        }
    }
    out
}

/// Bars as points of `schema`, fields `open high low close` (float) and `volume` (integer).
pub fn points(schema: &Schema, symbol: &str, interval: &str, bars: &[Bar]) -> Vec<Point> {
    let (measurement, tags) = schema.identity(&crate::model::SeriesKey::new(symbol, interval));
    let keys: [Name; 5] = ["close", "high", "low", "open", "volume"].map(Arc::from);
    bars.iter()
        .map(|b| Point {
            measurement: measurement.clone(),
            tags: tags.clone(),
            fields: vec![
                (keys[0].clone(), FieldValue::Float(b.close)),
                (keys[1].clone(), FieldValue::Float(b.high)),
                (keys[2].clone(), FieldValue::Float(b.low)),
                (keys[3].clone(), FieldValue::Float(b.open)),
                (keys[4].clone(), FieldValue::Integer(b.volume)),
            ],
            time: b.time,
        })
        .collect()
}

/// Bars as CSV text: `time,open,high,low,close,volume` with RFC 3339 times.
pub fn csv(bars: &[Bar]) -> String {
    let mut s = String::from("time,open,high,low,close,volume\n");
    for b in bars {
        s.push_str(&format!(
            "{},{:.2},{:.2},{:.2},{:.2},{}\n",
            crate::model::format_nanos(b.time),
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume
        ));
    }
    s
}

/// The shipped sample: symbols, and the files `data/incoming/{symbol}_{interval}.csv`.
pub const SAMPLE_SYMBOLS: [&str; 4] = ["US.AAPL", "US.MSFT", "US.NVDA", "US.TSLA"];

/// The shipped sample's files as (file name, CSV text): `1d` bars on weekdays from
/// 2021-12-01 to 2026-11-20 and `1m` bars for the last three of those days.
pub fn shipped_sample() -> Vec<(String, String)> {
    let (Some(from), Some(to), Some(m_from)) = (
        NaiveDate::from_ymd_opt(2021, 12, 1),
        NaiveDate::from_ymd_opt(2026, 11, 20),
        NaiveDate::from_ymd_opt(2026, 11, 18),
    ) else {
        return Vec::new();
    };
    let daily = daily_times(&weekdays(from, to));
    let minutes = us_minute_times(&weekdays(m_from, to));
    let mut out = Vec::new();
    for s in SAMPLE_SYMBOLS {
        out.push((format!("{s}_1d.csv"), csv(&bars(s, "1d", &daily))));
        out.push((format!("{s}_1m.csv"), csv(&bars(s, "1m", &minutes))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_deterministic_and_sane() {
        let t: Vec<Nanos> = (0..100).map(|i| i * 60 * NANOS_PER_SEC).collect();
        let a = bars("US.AAPL", "1m", &t);
        assert_eq!(a, bars("US.AAPL", "1m", &t));
        assert_ne!(a, bars("US.MSFT", "1m", &t));
        for b in &a {
            assert!(b.low <= b.open.min(b.close) && b.high >= b.open.max(b.close));
            assert!(b.volume > 0);
        }
    }

    #[test]
    fn us_session_has_390_minutes_in_utc() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let t = us_minute_times(&[d]);
        assert_eq!(t.len(), 390);
        // 09:30 EST is 14:30 UTC.
        assert_eq!(crate::model::format_nanos(t[0]), "2026-11-20T14:30:00Z");
    }
}
