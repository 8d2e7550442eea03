//! The server's counters, rendered as Prometheus text for `GET /metrics`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the request latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The span `nmt_sentences_per_second` averages over.
const RATE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Metrics {
    /// Requests by (route, HTTP status).
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Translate requests' latency: count per bucket (the last one +Inf), sum in microseconds.
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
    sentences: AtomicU64,
    /// Sentences finished, by time, over the last `RATE_WINDOW`.
    recent: Mutex<VecDeque<(Instant, u64)>>,
    batches: AtomicU64,
    batch_rows: AtomicU64,
    /// Requests waiting for or in a search.
    pub queue_depth: AtomicUsize,
}

impl Metrics {
    pub fn request(&self, route: &'static str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap()
            .entry((route, status))
            .or_default() += 1;
    }

    pub fn latency(&self, took: Duration) {
        let s = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// One beam search over `rows` sentences finished.
    pub fn batch(&self, rows: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batch_rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.sentences.fetch_add(rows as u64, Ordering::Relaxed);
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap();
        recent.push_back((now, rows as u64));
        while recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            recent.pop_front();
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(
            w,
            "# HELP nmt_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(w, "# TYPE nmt_requests_total counter");
        for ((route, status), n) in self.requests.lock().unwrap().iter() {
            let _ = writeln!(
                w,
                "nmt_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            w,
            "# HELP nmt_request_seconds Latency of POST /v1/translate."
        );
        let _ = writeln!(w, "# TYPE nmt_request_seconds histogram");
        let mut cumulative = 0;
        for (i, bucket) in self.latency_buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(w, "nmt_request_seconds_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(w, "nmt_request_seconds_sum {sum}");
        let _ = writeln!(w, "nmt_request_seconds_count {cumulative}");
        let counter = |w: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            w,
            "nmt_sentences_total",
            "Sentences translated.",
            self.sentences.load(Ordering::Relaxed),
        );
        counter(
            w,
            "nmt_batches_total",
            "Beam searches run (requests arriving together share one).",
            self.batches.load(Ordering::Relaxed),
        );
        counter(
            w,
            "nmt_batch_rows_total",
            "Sentences over all beam searches.",
            self.batch_rows.load(Ordering::Relaxed),
        );
        let now = Instant::now();
        let recent: u64 = self
            .recent
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW)
            .map(|(_, n)| n)
            .sum();
        let rate = recent as f64 / RATE_WINDOW.as_secs_f64();
        let _ = writeln!(w, "# HELP nmt_sentences_per_second Sentences translated per second over the last 10 s.\n# TYPE nmt_sentences_per_second gauge\nnmt_sentences_per_second {rate}");
        let depth = self.queue_depth.load(Ordering::Relaxed);
        let _ = writeln!(w, "# HELP nmt_queue_depth Translate requests waiting for or in a search.\n# TYPE nmt_queue_depth gauge\nnmt_queue_depth {depth}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_histogram_and_rate() {
        let m = Metrics::default();
        m.request("/v1/translate", 200);
        m.request("/v1/translate", 200);
        m.request("/v1/translate", 400);
        m.latency(Duration::from_millis(30));
        m.latency(Duration::from_secs(60));
        m.batch(5);
        let text = m.render();
        assert!(
            text.contains("nmt_requests_total{route=\"/v1/translate\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("nmt_requests_total{route=\"/v1/translate\",status=\"400\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("nmt_request_seconds_bucket{le=\"0.025\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("nmt_request_seconds_bucket{le=\"0.05\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("nmt_request_seconds_bucket{le=\"+Inf\"} 2"),
            "{text}"
        );
        assert!(text.contains("nmt_sentences_total 5"), "{text}");
        assert!(text.contains("nmt_sentences_per_second 0.5"), "{text}");
    }
}
