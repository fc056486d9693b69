//! Latency histograms (HDR, microseconds), resource meters and the worker pool the
//! scenarios share.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::proc::{proc_sample, ProcSample};
use crate::BenchError;

/// Largest recordable latency: one hour, in microseconds. Larger values are clamped.
const MAX_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds with three significant digits.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    pub fn new() -> Latencies {
        Latencies(
            Histogram::new_with_bounds(1, MAX_US, 3).expect("static histogram bounds are valid"),
        )
    }

    pub fn record(&mut self, d: Duration) {
        self.record_us(d.as_micros().min(u128::from(MAX_US)) as u64);
    }

    pub fn record_us(&mut self, us: u64) {
        // Sub-microsecond values land in the first bucket rather than being lost.
        self.0.saturating_record(us.max(1));
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail.
        self.0
            .add(&other.0)
            .expect("histograms with the same bounds add");
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn summary(&self) -> LatencySummary {
        if self.0.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.0.len(),
            min_us: self.0.min(),
            mean_us: self.0.mean(),
            p50_us: self.0.value_at_quantile(0.5),
            p90_us: self.0.value_at_quantile(0.9),
            p99_us: self.0.value_at_quantile(0.99),
            p999_us: self.0.value_at_quantile(0.999),
            max_us: self.0.max(),
        }
    }
}

/// Percentiles of a [`Latencies`], in microseconds; all zero when nothing was recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// Unix time in nanoseconds, the clock embedded in chat messages: wall-clock, so that
/// separate generator processes on the same host agree on it.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// What the server (when its pid is known) and the generator itself used during a
/// measured interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Server CPU seconds (user + system) during the interval.
    pub server_cpu_s: Option<f64>,
    pub server_rss_kib_before: Option<u64>,
    pub server_rss_kib_after: Option<u64>,
    /// The generator's own CPU seconds: when it nears the interval's length on a
    /// one-core pin, the generator, not the server, was the bottleneck.
    pub client_cpu_s: f64,
}

/// Samples the server and this process at the start of an interval.
#[derive(Debug, Clone)]
pub struct Meter {
    /// The server's processes (one, or a cluster's nodes): their CPU and RSS add up.
    pids: Vec<u32>,
    server: Option<ProcSample>,
    client: ProcSample,
}

/// The sum of `pids`' samples; None for no pid.
fn sum_sample(pids: &[u32]) -> Result<Option<ProcSample>, BenchError> {
    let mut sum: Option<ProcSample> = None;
    for pid in pids {
        let s = proc_sample(*pid)?;
        sum = Some(match sum {
            None => s,
            Some(t) => ProcSample {
                cpu_seconds: t.cpu_seconds + s.cpu_seconds,
                rss_kib: t.rss_kib + s.rss_kib,
            },
        });
    }
    Ok(sum)
}

impl Meter {
    pub fn start(pid: Option<u32>) -> Result<Meter, BenchError> {
        Meter::start_all(pid.into_iter().collect())
    }

    /// Meters the server's processes `pids` together (a cluster's nodes).
    pub fn start_all(pids: Vec<u32>) -> Result<Meter, BenchError> {
        Ok(Meter {
            server: sum_sample(&pids)?,
            pids,
            client: proc_sample(std::process::id())?,
        })
    }

    /// The server's current RSS, if its pid is known.
    pub fn server_rss_now(&self) -> Result<Option<u64>, BenchError> {
        Ok(sum_sample(&self.pids)?.map(|s| s.rss_kib))
    }

    pub fn finish(&self) -> Result<Usage, BenchError> {
        let server_after = sum_sample(&self.pids)?;
        let client_after = proc_sample(std::process::id())?;
        Ok(Usage {
            server_cpu_s: match (self.server, server_after) {
                (Some(a), Some(b)) => Some(b.cpu_seconds - a.cpu_seconds),
                _ => None,
            },
            server_rss_kib_before: self.server.map(|s| s.rss_kib),
            server_rss_kib_after: server_after.map(|s| s.rss_kib),
            client_cpu_s: client_after.cpu_seconds - self.client.cpu_seconds,
        })
    }
}

/// Runs `job(0..n)` on `concurrency` tasks, each taking the next index when it is done
/// with the last, and returns the results in index order.
pub async fn run_pool<T, F, Fut>(n: usize, concurrency: usize, job: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency.clamp(1, n.max(1)))
        .map(|_| {
            let (job, next) = (job.clone(), next.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return out;
                    }
                    out.push((i, job(i).await));
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for w in workers {
        // A panicking job is a bug in the generator: surface it.
        all.extend(w.await.expect("benchmark worker panicked"));
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, t)| t).collect()
}

/// The median and maximum of a few values (presence rounds), 0 for none.
pub fn median_max(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    (median, v[v.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_recorded_values() {
        let mut h = Latencies::new();
        for us in 1..=1000 {
            h.record_us(us);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.min_us, 1);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.p999_us, 999);
        assert_eq!(s.max_us, 1000);
        assert!((s.mean_us - 500.5).abs() < 0.5);
        let mut other = Latencies::new();
        other.record(Duration::from_secs(2));
        h.merge(&other);
        assert_eq!(h.len(), 1001);
        // Three significant digits: 2 s is reported within 0.1 %.
        assert!((1_998_000..=2_002_000).contains(&h.summary().max_us));
        assert_eq!(Latencies::new().summary(), LatencySummary::default());
    }

    #[test]
    fn huge_and_zero_latencies_are_clamped_not_lost() {
        let mut h = Latencies::new();
        h.record_us(0);
        h.record(Duration::from_secs(100_000));
        assert_eq!(h.len(), 2);
        assert_eq!(h.summary().min_us, 1);
    }

    #[test]
    fn median_and_max() {
        assert_eq!(median_max(&[3.0, 1.0, 2.0]), (2.0, 3.0));
        assert_eq!(median_max(&[4.0, 1.0, 2.0, 3.0]), (2.5, 4.0));
        assert_eq!(median_max(&[]), (0.0, 0.0));
    }

    #[tokio::test]
    async fn pool_runs_every_index_once_within_the_concurrency() {
        let live = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (l, p) = (live.clone(), peak.clone());
        let out = run_pool(50, 4, move |i| {
            let (l, p) = (l.clone(), p.clone());
            async move {
                let now = l.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                l.fetch_sub(1, Ordering::SeqCst);
                i * 2
            }
        })
        .await;
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 4);
        assert!(run_pool(0, 4, |i| async move { i }).await.is_empty());
    }

    #[test]
    fn meter_measures_this_process() {
        let m = Meter::start(Some(std::process::id())).unwrap();
        let u = m.finish().unwrap();
        assert!(u.server_cpu_s.unwrap() >= 0.0);
        assert!(u.server_rss_kib_after.unwrap() > 0);
        let m = Meter::start(None).unwrap();
        let u = m.finish().unwrap();
        assert_eq!(u.server_cpu_s, None);
        assert_eq!(u.server_rss_kib_before, None);
    }
}
