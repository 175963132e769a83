//! Counters and latency histograms, written as Prometheus text at `GET /metrics`.
//!
//! Histograms are cumulative buckets with fixed upper bounds (Prometheus' own layout), so a
//! scraper can compute any quantile over any window; the counts are plain atomics and a mutex
//! around each histogram, far cheaper than one decoding step.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    n: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len()], sum: 0.0, n: 0 }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.n += 1;
    }

    /// The series of one histogram; `label` is `model="x",` or empty.
    fn write_series(&self, out: &mut String, name: &str, label: &str) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{label}le=\"{b}\"}} {c}");
        }
        let braces = if label.is_empty() { String::new() } else { format!("{{{}}}", label.trim_end_matches(',')) };
        let _ = writeln!(out, "{name}_bucket{{{label}le=\"+Inf\"}} {}\n{name}_sum{braces} {}\n{name}_count{braces} {}", self.n, self.sum, self.n);
    }
}

pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    cancelled: AtomicU64,
    rejected: AtomicU64,
    waiting: AtomicU64,
    live: AtomicU64,
    steps: AtomicU64,
    request_seconds: Mutex<Histogram>,
    first_token_seconds: Mutex<Histogram>,
    inter_token_seconds: Mutex<Histogram>,
    step_seconds: Mutex<Histogram>,
    batch_size: Mutex<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            prompt_tokens: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            live: AtomicU64::new(0),
            steps: AtomicU64::new(0),
            request_seconds: Mutex::new(Histogram::new(LATENCY_BUCKETS)),
            first_token_seconds: Mutex::new(Histogram::new(LATENCY_BUCKETS)),
            inter_token_seconds: Mutex::new(Histogram::new(LATENCY_BUCKETS)),
            step_seconds: Mutex::new(Histogram::new(LATENCY_BUCKETS)),
            batch_size: Mutex::new(Histogram::new(BATCH_BUCKETS)),
        }
    }
}

impl Metrics {
    /// A finished HTTP request: its route, status and duration.
    pub fn request(&self, route: &str, status: u16, took: Duration) {
        *self.requests.lock().expect("metrics").entry((route.to_string(), status)).or_default() += 1;
        self.request_seconds.lock().expect("metrics").observe(took.as_secs_f64());
        if status == 429 {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn prompt(&self, n: usize) {
        self.prompt_tokens.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn tokens(&self, n: usize) {
        self.generated_tokens.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_queue(&self, waiting: usize, live: usize) {
        self.waiting.store(waiting as u64, Ordering::Relaxed);
        self.live.store(live as u64, Ordering::Relaxed);
    }

    pub fn step(&self, batch: usize, took: Duration) {
        self.steps.fetch_add(1, Ordering::Relaxed);
        self.step_seconds.lock().expect("metrics").observe(took.as_secs_f64());
        self.batch_size.lock().expect("metrics").observe(batch as f64);
    }

    pub fn first_token(&self, took: Duration) {
        self.first_token_seconds.lock().expect("metrics").observe(took.as_secs_f64());
    }

    pub fn inter_token(&self, took: Duration) {
        self.inter_token_seconds.lock().expect("metrics").observe(took.as_secs_f64());
    }

    /// Sequences cancelled because their client left or stopped them.
    pub fn cancelled_total(&self) -> u64 {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        render(&[("", self)])
    }

    /// The exposition of several models' counters (a base and its adapters), each series
    /// labelled `model="NAME"`.
    pub fn render_by_model(parts: &[(&str, &Metrics)]) -> String {
        let labels: Vec<String> = parts.iter().map(|(n, _)| format!("model=\"{}\",", n.replace('\\', "\\\\").replace('"', "\\\""))).collect();
        let parts: Vec<(&str, &Metrics)> = parts.iter().zip(&labels).map(|((_, m), l)| (l.as_str(), *m)).collect();
        render(&parts)
    }
}

/// `name{label}`, where `label` (`model="x",` or empty) may be all the labels.
fn series(name: &str, label: &str) -> String {
    if label.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", label.trim_end_matches(','))
    }
}

/// The exposition of `parts`: each metric's HELP and TYPE once, then its series per part.
fn render(parts: &[(&str, &Metrics)]) -> String {
    let mut out = String::new();
    out.push_str("# HELP jielong_requests_total HTTP requests by route and status.\n# TYPE jielong_requests_total counter\n");
    for (label, m) in parts {
        for ((route, status), n) in m.requests.lock().expect("metrics").iter() {
            let _ = writeln!(out, "jielong_requests_total{{{label}route=\"{route}\",status=\"{status}\"}} {n}");
        }
    }
    type Counter = fn(&Metrics) -> &AtomicU64;
    let counters: [(&str, &str, &str, Counter); 7] = [
        ("jielong_prompt_tokens_total", "Prompt tokens read.", "counter", |m| &m.prompt_tokens),
        ("jielong_generated_tokens_total", "Tokens generated.", "counter", |m| &m.generated_tokens),
        ("jielong_cancelled_sequences_total", "Sequences dropped because their client hung up.", "counter", |m| &m.cancelled),
        ("jielong_rejected_requests_total", "Requests answered 429 because the queue was full.", "counter", |m| &m.rejected),
        ("jielong_decode_steps_total", "Batched forward passes.", "counter", |m| &m.steps),
        ("jielong_queue_waiting", "Sequences waiting for a decoding slot.", "gauge", |m| &m.waiting),
        ("jielong_sequences_live", "Sequences being decoded.", "gauge", |m| &m.live),
    ];
    for (name, help, kind, get) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (label, m) in parts {
            let _ = writeln!(out, "{} {}", series(name, label), get(m).load(Ordering::Relaxed));
        }
    }
    type Hist = fn(&Metrics) -> &Mutex<Histogram>;
    let hists: [(&str, &str, Hist); 5] = [
        ("jielong_request_duration_seconds", "Time from request to last byte.", |m| &m.request_seconds),
        ("jielong_time_to_first_token_seconds", "Time from admission to the first token.", |m| &m.first_token_seconds),
        ("jielong_inter_token_seconds", "Time between two tokens of one sequence.", |m| &m.inter_token_seconds),
        ("jielong_step_seconds", "One batched forward pass and sampling.", |m| &m.step_seconds),
        ("jielong_batch_size", "Sequences per forward pass.", |m| &m.batch_size),
    ];
    for (name, help, get) in hists {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (label, m) in parts {
            get(m).lock().expect("metrics").write_series(&mut out, name, label);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.first_token(Duration::from_millis(3));
        m.first_token(Duration::from_millis(30));
        m.request("/v1/completions", 200, Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains("jielong_time_to_first_token_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("jielong_time_to_first_token_seconds_bucket{le=\"0.05\"} 2"), "{text}");
        assert!(text.contains("jielong_time_to_first_token_seconds_count 2"), "{text}");
        assert!(text.contains("jielong_requests_total{route=\"/v1/completions\",status=\"200\"} 1"), "{text}");
    }

    #[test]
    fn metrics_by_model_label_every_series_and_name_each_metric_once() {
        let (a, b) = (Metrics::default(), Metrics::default());
        a.tokens(3);
        b.tokens(5);
        b.first_token(Duration::from_millis(3));
        b.request("/v1/chat/completions", 200, Duration::from_millis(1));
        let text = Metrics::render_by_model(&[("base", &a), ("ad\"x", &b)]);
        assert!(text.contains("jielong_generated_tokens_total{model=\"base\"} 3\n"), "{text}");
        assert!(text.contains("jielong_generated_tokens_total{model=\"ad\\\"x\"} 5\n"), "{text}");
        assert!(text.contains("jielong_time_to_first_token_seconds_bucket{model=\"ad\\\"x\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("jielong_time_to_first_token_seconds_count{model=\"base\"} 0"), "{text}");
        assert!(text.contains("jielong_requests_total{model=\"ad\\\"x\",route=\"/v1/chat/completions\",status=\"200\"} 1"), "{text}");
        assert_eq!(text.matches("# TYPE jielong_generated_tokens_total counter").count(), 1, "{text}");
    }
}
