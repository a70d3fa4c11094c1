//! Prometheus text exposition (format 0.0.4) for serving: counters and histograms kept
//! here, gauges read from their owners at scrape time. Label values of models beyond the
//! first `MAX_MODELS` are folded into `_other`, so a thousand lazily served models cannot
//! blow up a scrape.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::{Mutex, PoisonError};

/// Distinct model names that get their own label value.
pub const MAX_MODELS: usize = 200;

/// Request latency buckets in seconds: 50 µs to 10 s.
const LATENCY: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
/// Rows per batch.
const ROWS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

type Labels = Vec<(&'static str, String)>;

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    models: BTreeSet<String>,
    /// Per deployment, requests per second over the last minute: (unix second, count) in a
    /// ring indexed by the second modulo 60.
    recent: BTreeMap<String, [(u64, u32); 60]>,
}

/// What one deployment answered since this process started, for Slipway's deployments page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    pub requests: u64,
    /// Answers with a 4xx or 5xx status.
    pub errors: u64,
    /// Requests in the 60 seconds before the call.
    pub last_minute: u64,
    /// Latency quantiles, as the upper bound of the histogram bucket that holds them.
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// A gauge read at scrape time.
#[derive(Debug, Clone)]
pub struct Gauge {
    pub name: &'static str,
    pub labels: Labels,
    pub value: f64,
}

fn help(name: &str) -> (&'static str, &'static str) {
    match name {
        "slipway_serving_requests_total" => ("counter", "Inference requests answered, by status code."),
        "slipway_serving_request_duration_seconds" => ("histogram", "Time from request to response."),
        "slipway_serving_inference_duration_seconds" => ("histogram", "Time ONNX Runtime spent on one batch."),
        "slipway_serving_batch_size" => ("histogram", "Rows per batch run."),
        "slipway_serving_model_loads_total" => ("counter", "Model loads, by result."),
        "slipway_serving_model_evictions_total" => ("counter", "Models evicted to stay within the memory budget."),
        "slipway_serving_queue_depth" => ("gauge", "Requests waiting for a batch, per model version."),
        "slipway_serving_models_loaded" => ("gauge", "Model versions loaded."),
        "slipway_serving_model_memory_bytes" => ("gauge", "Memory charged to loaded models."),
        "slipway_serving_memory_budget_bytes" => ("gauge", "The model memory budget."),
        "slipway_serving_predictions_logged_total" => ("counter", "Rows written to the prediction log."),
        "slipway_serving_prediction_log_dropped_total" => {
            ("counter", "Rows dropped because the prediction log fell behind.")
        }
        "slipway_monitor_value" => ("gauge", "A monitor series in its latest evaluated window."),
        "slipway_monitor_window_end_seconds" => ("gauge", "When a monitor's latest evaluated window ended."),
        "slipway_monitor_alerts_total" => ("counter", "Alert firings recorded, by monitor and rule."),
        "slipway_auth_denied_total" => {
            ("counter", "Requests refused by authorization (403, or 404 for a hidden object).")
        }
        "slipway_auth_password_checks_total" => ("counter", "Password verifications run, known users or not."),
        _ => ("untyped", ""),
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn write_labels(out: &mut String, labels: &[(&'static str, String)], extra: Option<(&str, &str)>) {
    if labels.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().map(|(k, v)| (*k, v.as_str())).chain(extra) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{k}=\"{}\"", escape(v));
    }
    out.push('}');
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The label value for a model name, folded into `_other` past the cap.
    pub fn model_label(&self, model: &str) -> String {
        let mut inner = self.lock();
        if inner.models.contains(model) {
            return model.to_string();
        }
        if inner.models.len() < MAX_MODELS {
            inner.models.insert(model.to_string());
            return model.to_string();
        }
        "_other".to_string()
    }

    pub fn inc(&self, name: &'static str, labels: Labels, by: f64) {
        *self.lock().counters.entry((name, labels)).or_insert(0.0) += by;
    }

    fn observe(&self, name: &'static str, bounds: &'static [f64], labels: Labels, value: f64) {
        let mut inner = self.lock();
        let h = inner.histograms.entry((name, labels)).or_insert_with(|| Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        });
        if let Some(i) = h.bounds.iter().position(|b| value <= *b) {
            h.counts[i] += 1;
        }
        h.sum += value;
        h.count += 1;
    }

    /// Counts a request of `deployment` in its last-minute ring.
    pub fn tick(&self, deployment: &str, now_secs: u64) {
        let mut inner = self.lock();
        let ring = inner.recent.entry(deployment.to_string()).or_insert([(0, 0); 60]);
        let slot = &mut ring[(now_secs % 60) as usize];
        if slot.0 != now_secs {
            *slot = (now_secs, 0);
        }
        slot.1 += 1;
    }

    /// `deployment`'s requests, errors, last-minute count and latency quantiles.
    pub fn traffic(&self, deployment: &str, now_secs: u64) -> Traffic {
        let inner = self.lock();
        let ours = |labels: &Labels| labels.iter().any(|(k, v)| *k == "deployment" && v == deployment);
        let mut t = Traffic::default();
        for ((name, labels), n) in &inner.counters {
            if *name != "slipway_serving_requests_total" || !ours(labels) {
                continue;
            }
            let n = *n as u64;
            t.requests += n;
            let code = labels.iter().find(|(k, _)| *k == "code").and_then(|(_, v)| v.parse::<u16>().ok());
            if code.is_some_and(|c| c >= 400) {
                t.errors += n;
            }
        }
        let mut counts = vec![0u64; LATENCY.len()];
        let mut total = 0u64;
        for ((name, labels), h) in &inner.histograms {
            if *name == "slipway_serving_request_duration_seconds" && ours(labels) {
                counts.iter_mut().zip(&h.counts).for_each(|(c, n)| *c += n);
                total += h.count;
            }
        }
        let quantile = |q: f64| -> Option<f64> {
            if total == 0 {
                return None;
            }
            let want = (q * total as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (bound, n) in LATENCY.iter().zip(&counts) {
                seen += n;
                if seen >= want {
                    return Some(*bound);
                }
            }
            // Beyond the last bucket.
            LATENCY.last().copied()
        };
        t.p50_seconds = quantile(0.5);
        t.p95_seconds = quantile(0.95);
        if let Some(ring) = inner.recent.get(deployment) {
            t.last_minute = ring
                .iter()
                .filter(|(sec, _)| *sec + 60 > now_secs && *sec <= now_secs)
                .map(|(_, n)| u64::from(*n))
                .sum();
        }
        t
    }

    pub fn observe_latency(&self, name: &'static str, labels: Labels, seconds: f64) {
        self.observe(name, LATENCY, labels, seconds);
    }

    pub fn observe_rows(&self, labels: Labels, rows: usize) {
        self.observe("slipway_serving_batch_size", ROWS, labels, rows as f64);
    }

    /// The exposition text: kept series, then `gauges`.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let inner = self.lock();
        let mut out = String::new();
        let mut last = "";
        let mut header = |out: &mut String, name: &'static str| {
            if name != last {
                let (kind, text) = help(name);
                let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
                last = name;
            }
        };
        for ((name, labels), v) in &inner.counters {
            header(&mut out, name);
            out.push_str(name);
            write_labels(&mut out, labels, None);
            let _ = writeln!(out, " {v}");
        }
        for ((name, labels), h) in &inner.histograms {
            header(&mut out, name);
            let mut cumulative = 0;
            for (bound, n) in h.bounds.iter().zip(&h.counts) {
                cumulative += n;
                let _ = write!(out, "{name}_bucket");
                write_labels(&mut out, labels, Some(("le", &bound.to_string())));
                let _ = writeln!(out, " {cumulative}");
            }
            let _ = write!(out, "{name}_bucket");
            write_labels(&mut out, labels, Some(("le", "+Inf")));
            let _ = writeln!(out, " {}", h.count);
            let _ = write!(out, "{name}_sum");
            write_labels(&mut out, labels, None);
            let _ = writeln!(out, " {}", h.sum);
            let _ = write!(out, "{name}_count");
            write_labels(&mut out, labels, None);
            let _ = writeln!(out, " {}", h.count);
        }
        let mut sorted: Vec<&Gauge> = gauges.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(b.name));
        for g in sorted {
            header(&mut out, g.name);
            out.push_str(g.name);
            write_labels(&mut out, &g.labels, None);
            let _ = writeln!(out, " {}", g.value);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.inc("slipway_serving_requests_total", vec![("model", "a\"b".into()), ("code", "200".into())], 2.0);
        m.observe_rows(vec![("model", "a".into())], 3);
        let text = m.render(&[Gauge { name: "slipway_serving_models_loaded", labels: vec![], value: 1.0 }]);
        assert!(text.contains("# TYPE slipway_serving_requests_total counter\n"), "{text}");
        assert!(text.contains("slipway_serving_requests_total{model=\"a\\\"b\",code=\"200\"} 2\n"), "{text}");
        assert!(text.contains("slipway_serving_batch_size_bucket{model=\"a\",le=\"2\"} 0\n"), "{text}");
        assert!(text.contains("slipway_serving_batch_size_bucket{model=\"a\",le=\"4\"} 1\n"), "{text}");
        assert!(text.contains("slipway_serving_batch_size_bucket{model=\"a\",le=\"+Inf\"} 1\n"), "{text}");
        assert!(text.contains("slipway_serving_batch_size_sum{model=\"a\"} 3\n"), "{text}");
        assert!(text.contains("slipway_serving_models_loaded 1\n"), "{text}");
    }

    #[test]
    fn traffic_sums_a_deployments_requests_errors_latency_and_last_minute() {
        let m = Metrics::default();
        let labels = |d: &str, code: &str| vec![("deployment", d.to_string()), ("code", code.to_string())];
        m.inc("slipway_serving_requests_total", labels("fraud", "200"), 8.0);
        m.inc("slipway_serving_requests_total", labels("fraud", "503"), 2.0);
        m.inc("slipway_serving_requests_total", labels("other", "200"), 5.0);
        for ms in [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 200.0] {
            m.observe_latency(
                "slipway_serving_request_duration_seconds",
                vec![("deployment", "fraud".into())],
                ms / 1000.0,
            );
        }
        for sec in [1000, 1000, 1030, 1059] {
            m.tick("fraud", sec);
        }
        m.tick("fraud", 900); // more than a minute before
        let t = m.traffic("fraud", 1059);
        assert_eq!((t.requests, t.errors, t.last_minute), (10, 2, 4));
        assert_eq!(t.p50_seconds, Some(0.001));
        assert_eq!(t.p95_seconds, Some(0.25));
        assert_eq!(m.traffic("fraud", 1061).last_minute, 2, "the two at second 1000 have aged out");
        assert_eq!(m.traffic("nobody", 1059), Traffic::default());
    }

    #[test]
    fn model_labels_are_capped() {
        let m = Metrics::default();
        for i in 0..MAX_MODELS {
            assert_eq!(m.model_label(&format!("m{i}")), format!("m{i}"));
        }
        assert_eq!(m.model_label("one-more"), "_other");
        assert_eq!(m.model_label("m0"), "m0");
    }
}
