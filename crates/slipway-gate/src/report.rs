//! The gate's report: what was compared, on what, the numbers, each check and the verdict,
//! and what was done about it. It is the `--json` output and the JSON artifact logged to
//! the run; the HTML page renders the same struct.

use std::path::PathBuf;

use serde::Serialize;

use crate::decision::Check;
use crate::metric::Metric;
use crate::score::Scored;

/// What the models were scored on.
#[derive(Debug, Clone, Serialize)]
pub struct HoldoutSummary {
    pub path: PathBuf,
    pub label: String,
    pub features: Vec<String>,
    pub rows: usize,
    /// Rows with a usable label: the ones scored.
    pub labelled_rows: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub passed: bool,
    pub metric: Metric,
    pub lower_is_better: bool,
    pub min_delta: f64,
    pub max_latency_ms: Option<f64>,
    pub champion_alias: String,
    pub candidate: Scored,
    /// `None` when no version holds the alias.
    pub champion: Option<Scored>,
    /// How much better the candidate is, in the metric's units (see `decision::Verdict`).
    pub delta: Option<f64>,
    pub checks: Vec<Check>,
    pub holdout: HoldoutSummary,
    /// The pipeline run the gate belongs to, when known.
    pub run_id: Option<String>,
    /// What the gate changed in the registry, in order.
    pub actions: Vec<String>,
    /// Milliseconds since the epoch when scoring started.
    pub started_ms: u64,
}

impl Report {
    /// Why the verdict is what it is: the failed checks when it failed, every check when it
    /// passed. This is the text the version's `slipway.gate.reasons` tag holds.
    pub fn reasons(&self) -> String {
        let picked: Vec<&str> =
            self.checks.iter().filter(|c| self.passed || !c.passed).map(|c| c.detail.as_str()).collect();
        picked.join("; ")
    }

    /// The verdict in one line, for a terminal.
    pub fn summary(&self) -> String {
        format!(
            "{} {} version {}: {}",
            if self.passed { "PASS" } else { "FAIL" },
            self.model,
            self.candidate.version,
            self.reasons()
        )
    }
}

/// A report as `evaluate` would make it, for the tests of what reads one.
#[cfg(test)]
pub(crate) fn sample(passed: bool) -> Report {
    use crate::score::Latency;

    let scored = |version: &str, f1: f64| Scored {
        version: version.to_string(),
        value: f1,
        metrics: [("accuracy", f1 + 0.01), ("f1", f1)].into_iter().collect(),
        rows: 100,
        latency: Latency { requests: 200, p50_ms: 0.2, p95_ms: 0.4, max_ms: 1.5 },
    };
    let (cand, champ) = if passed { (0.9, 0.8) } else { (0.5, 0.8) };
    Report {
        model: "fraud<x>".to_string(),
        passed,
        metric: Metric::F1,
        lower_is_better: false,
        min_delta: 0.01,
        max_latency_ms: None,
        champion_alias: "champion".to_string(),
        candidate: scored("5", cand),
        champion: Some(scored("3", champ)),
        delta: Some(cand - champ),
        checks: vec![Check {
            name: "metric",
            passed,
            detail: format!("f1 {cand} vs {champ} for version 3 (@champion)"),
        }],
        holdout: HoldoutSummary {
            path: PathBuf::from("holdout.csv"),
            label: "y".to_string(),
            features: vec!["a".to_string(), "b".to_string()],
            rows: 100,
            labelled_rows: 100,
        },
        run_id: Some("r1".to_string()),
        actions: Vec::new(),
        started_ms: 0,
    }
}
