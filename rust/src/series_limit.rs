//! Active series per (tenant, metric) in one receiver worker: `max_series_per_metric`.
//!
//! Contract: [`SeriesLimiter::admit`] says whether a series (its `SeriesId`, as the storage
//! computes it) of a tenant's metric may be stored. A series already active passes (and stays
//! active); a new one passes while the metric has fewer than `limit` active series, and is
//! refused otherwise (the caller refuses its samples and says so; nothing is dropped silently).
//! A series is active while it was admitted within the last `window_s` seconds; idle ones are
//! swept when a metric reaches its limit (at most once a second per metric), so a metric whose
//! series churn (pod names) is not refused forever.
//!
//! Memory is bounded: a metric holds at most `limit` series, and the limiter at most
//! `max_tracked` series over all tenants and metrics (16 bytes each plus the hash map's
//! overhead). Past `max_tracked` (after sweeping idle series) a new series passes unchecked and
//! is counted in [`SeriesLimiter::untracked`], so the bound never refuses a tenant below its limit.
//!
//! Each SO_REUSEPORT worker has its own limiter and counts the series it receives: the limit is
//! exact with one worker, and a tenant can have at most `workers x limit` active series per
//! metric over the instance when its series spread over several workers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::prom::series_id::{city_hash64, combine};

/// What [`SeriesLimiter::admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// An active series, or a new one within the limit.
    Yes,
    /// A new series over the metric's limit.
    Refused,
}

#[derive(Default)]
struct Metric {
    /// Series id -> second it was last admitted.
    series: HashMap<u64, u32>,
    swept_s: u32,
}

#[derive(Default)]
struct State {
    metrics: HashMap<u64, Metric>,
    tracked: usize,
}

pub struct SeriesLimiter {
    window_s: u32,
    max_tracked: usize,
    start: Instant,
    state: Mutex<State>,
    untracked: AtomicU64,
}

/// The key of a tenant's metric.
pub fn metric_key(tenant: &[u8], metric: &[u8]) -> u64 {
    combine(city_hash64(tenant), city_hash64(metric))
}

impl SeriesLimiter {
    pub fn new(window_s: u32, max_tracked: usize) -> Self {
        SeriesLimiter {
            window_s: window_s.max(1),
            max_tracked,
            start: Instant::now(),
            state: Mutex::new(State::default()),
            untracked: AtomicU64::new(0),
        }
    }

    /// Seconds since the limiter was made (the clock of `admit`).
    pub fn now_s(&self) -> u32 {
        self.start.elapsed().as_secs().min(u32::MAX as u64) as u32
    }

    /// New series let through because `max_tracked` series were already tracked.
    pub fn untracked(&self) -> u64 {
        self.untracked.load(Ordering::Relaxed)
    }

    /// Series tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().tracked
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent maps (no multi-step invariant spans a
        // panic point), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `series` of the metric `key` ([`metric_key`]) may be stored under `limit` active
    /// series, at `now_s` ([`SeriesLimiter::now_s`]). `limit` 0 admits everything untracked.
    pub fn admit(&self, key: u64, series: u64, limit: usize, now_s: u32) -> Admit {
        if limit == 0 {
            return Admit::Yes;
        }
        let window = self.window_s;
        let mut guard = self.lock();
        let state = &mut *guard;
        let m = state.metrics.entry(key).or_default();
        if let Some(seen) = m.series.get_mut(&series) {
            *seen = now_s;
            return Admit::Yes;
        }
        if m.series.len() >= limit && m.swept_s != now_s {
            m.swept_s = now_s;
            let before = m.series.len();
            m.series.retain(|_, seen| now_s.saturating_sub(*seen) < window);
            state.tracked -= before - m.series.len();
        }
        if m.series.len() >= limit {
            return Admit::Refused;
        }
        if state.tracked >= self.max_tracked {
            self.untracked.fetch_add(1, Ordering::Relaxed);
            return Admit::Yes;
        }
        m.series.insert(series, now_s);
        state.tracked += 1;
        Admit::Yes
    }

    /// Forgets series idle for a window and metrics left without series; returns how many
    /// series are tracked after.
    pub fn sweep(&self, now_s: u32) -> usize {
        let window = self.window_s;
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut tracked = 0;
        state.metrics.retain(|_, m| {
            m.series.retain(|_, seen| now_s.saturating_sub(*seen) < window);
            tracked += m.series.len();
            !m.series.is_empty()
        });
        state.tracked = tracked;
        tracked
    }
}

/// A decode's tenant and its limit: what the decoders ask for each series they meet.
pub struct Gate {
    limiter: Arc<SeriesLimiter>,
    limit: usize,
    tenant: Vec<u8>,
    now_s: u32,
}

impl Gate {
    /// None when there is no limit (no limiter, or `limit` 0).
    pub fn new(limiter: Option<Arc<SeriesLimiter>>, limit: usize, tenant: &[u8]) -> Option<Gate> {
        let limiter = limiter.filter(|_| limit > 0)?;
        Some(Gate {
            now_s: limiter.now_s(),
            limiter,
            limit,
            tenant: tenant.to_vec(),
        })
    }

    /// Whether the series `id` of `metric` may be stored.
    pub fn admit(&self, metric: &[u8], id: u64) -> bool {
        let key = metric_key(&self.tenant, metric);
        self.limiter.admit(key, id, self.limit, self.now_s) == Admit::Yes
    }

    /// The refusal reason of a new series of `metric`.
    pub fn reason(&self, metric: &[u8]) -> String {
        format!(
            "new series of metric {:?} over the tenant's limit of {} series per metric (max_series_per_metric)",
            String::from_utf8_lossy(metric),
            self.limit
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_series_over_the_limit_are_refused_known_ones_pass() {
        let l = SeriesLimiter::new(3600, 1000);
        let k = metric_key(b"team-a", b"http_requests_total");
        assert_eq!(l.admit(k, 1, 2, 0), Admit::Yes);
        assert_eq!(l.admit(k, 2, 2, 0), Admit::Yes);
        assert_eq!(l.admit(k, 3, 2, 0), Admit::Refused);
        assert_eq!(l.admit(k, 1, 2, 5), Admit::Yes);
        // Another metric, another tenant: their own counts.
        assert_eq!(l.admit(metric_key(b"team-a", b"up"), 3, 2, 5), Admit::Yes);
        assert_eq!(l.admit(metric_key(b"team-b", b"http_requests_total"), 3, 2, 5), Admit::Yes);
        assert_eq!(l.tracked(), 4);
    }

    #[test]
    fn idle_series_stop_counting_after_the_window() {
        let l = SeriesLimiter::new(60, 1000);
        let k = metric_key(b"t", b"m");
        assert_eq!(l.admit(k, 1, 2, 0), Admit::Yes);
        assert_eq!(l.admit(k, 2, 2, 30), Admit::Yes);
        assert_eq!(l.admit(k, 3, 2, 59), Admit::Refused);
        // Series 1 idle for 60 s: swept, its place taken.
        assert_eq!(l.admit(k, 3, 2, 60), Admit::Yes);
        assert_eq!(l.admit(k, 1, 2, 61), Admit::Refused);
        assert_eq!(l.sweep(95), 1);
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn past_max_tracked_new_series_pass_untracked() {
        let l = SeriesLimiter::new(3600, 2);
        let k = metric_key(b"t", b"m");
        assert_eq!(l.admit(k, 1, 10, 0), Admit::Yes);
        assert_eq!(l.admit(k, 2, 10, 0), Admit::Yes);
        assert_eq!(l.admit(k, 3, 10, 0), Admit::Yes);
        assert_eq!(l.untracked(), 1);
        assert_eq!(l.tracked(), 2);
        assert_eq!(l.admit(k, 9, 0, 0), Admit::Yes); // no limit: not tracked at all
        assert_eq!(l.untracked(), 1);
    }
}
