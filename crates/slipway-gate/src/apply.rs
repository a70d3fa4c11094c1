//! Acting on a verdict: a passed candidate is tagged and, when asked, takes the alias
//! (deployments that follow it hot-swap); a failed one is tagged rejected with the reasons.
//! With a run, the numbers and both reports are logged to it. The crate decides what is
//! written where; a [`Registry`] only carries it to the server, so the CLI and a pipeline
//! step write the same tags, metrics and files.

use async_trait::async_trait;

use crate::error::BoxError;
use crate::report::Report;
use crate::{GateError, html};

/// The version tag that holds the verdict: `passed` or `rejected`.
pub const TAG_VERDICT: &str = "slipway.gate";
/// The version tag that holds why (see [`Report::reasons`]).
pub const TAG_REASONS: &str = "slipway.gate.reasons";
/// The version tag naming the run that gated it, when known.
pub const TAG_RUN: &str = "slipway.gate.run_id";
/// Where the reports go among the run's artifacts.
pub const REPORT_HTML: &str = "gate/gate-report.html";
pub const REPORT_JSON: &str = "gate/gate-report.json";
/// MLflow's longest model-version tag value.
const MAX_TAG_VALUE: usize = 5000;

/// The audit log's actor for changes a pipeline run makes: the run, not whoever started it.
pub fn actor_for_run(run_id: &str) -> String {
    format!("pipeline-run:{run_id}")
}

/// The registry and tracking calls the gate makes.
#[async_trait]
pub trait Registry: Send + Sync {
    async fn set_alias(&self, model: &str, alias: &str, version: &str) -> Result<(), BoxError>;
    async fn set_version_tag(&self, model: &str, version: &str, key: &str, value: &str) -> Result<(), BoxError>;
    async fn log_metrics(&self, run_id: &str, metrics: &[(String, f64)]) -> Result<(), BoxError>;
    /// Stores `bytes` at `path` among the run's artifacts.
    async fn log_artifact(&self, run_id: &str, path: &str, bytes: Vec<u8>) -> Result<(), BoxError>;
}

fn failed(action: String) -> impl FnOnce(BoxError) -> GateError {
    move |source| GateError::Registry { action, source }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Tags the candidate with the verdict and, on a pass, points `promote` at it. The tags go
/// first, so a deployment that swaps to the version already finds why it passed. Each
/// change is recorded in `report.actions`.
pub async fn apply(report: &mut Report, registry: &dyn Registry, promote: Option<&str>) -> Result<(), GateError> {
    let (model, version) = (report.model.clone(), report.candidate.version.clone());
    let verdict = if report.passed { "passed" } else { "rejected" };
    let reasons = report.reasons();
    let mut tags = vec![(TAG_VERDICT, verdict), (TAG_REASONS, truncate(&reasons, MAX_TAG_VALUE))];
    if let Some(run) = report.run_id.as_deref() {
        tags.push((TAG_RUN, run));
    }
    for (key, value) in tags {
        registry
            .set_version_tag(&model, &version, key, value)
            .await
            .map_err(failed(format!("cannot tag {model}/{version} {key}")))?;
    }
    report.actions.push(format!("tagged version {version} {TAG_VERDICT}={verdict}"));
    if let (true, Some(alias)) = (report.passed, promote) {
        let holder = report.champion.as_ref().filter(|_| alias == report.champion_alias).map(|c| c.version.clone());
        if holder.as_deref() == Some(version.as_str()) {
            // Nothing moves: no audit record, no swap.
            report.actions.push(format!("@{alias} already names version {version}"));
            return Ok(());
        }
        registry
            .set_alias(&model, alias, &version)
            .await
            .map_err(failed(format!("cannot point {model}@{alias} at version {version}")))?;
        let from = holder.map_or_else(String::new, |v| format!(" (was version {v})"));
        report.actions.push(format!("moved @{alias} to version {version}{from}"));
    }
    Ok(())
}

/// The run metrics: `gate.candidate.<metric>`, `gate.champion.<metric>`, `gate.delta`,
/// p95 latencies, and `gate.passed` (1 or 0).
pub fn run_metrics(report: &Report) -> Vec<(String, f64)> {
    let m = report.metric.name();
    let mut out = vec![
        (format!("gate.candidate.{m}"), report.candidate.value),
        ("gate.candidate.latency_p95_ms".to_string(), report.candidate.latency.p95_ms),
    ];
    if let Some(c) = &report.champion {
        out.push((format!("gate.champion.{m}"), c.value));
        out.push(("gate.champion.latency_p95_ms".to_string(), c.latency.p95_ms));
    }
    if let Some(d) = report.delta {
        out.push(("gate.delta".to_string(), d));
    }
    out.push(("gate.passed".to_string(), if report.passed { 1.0 } else { 0.0 }));
    out.retain(|(_, v)| v.is_finite());
    out
}

/// Logs the metrics and both reports (HTML and JSON) to `run_id`.
pub async fn log_to_run(report: &Report, registry: &dyn Registry, run_id: &str) -> Result<(), GateError> {
    registry
        .log_metrics(run_id, &run_metrics(report))
        .await
        .map_err(failed(format!("cannot log metrics to run {run_id}")))?;
    let json = serde_json::to_vec_pretty(report)
        .map_err(|e| GateError::Registry { action: "cannot serialise the report".to_string(), source: Box::new(e) })?;
    for (path, bytes) in [(REPORT_HTML, html::render(report).into_bytes()), (REPORT_JSON, json)] {
        registry
            .log_artifact(run_id, path, bytes)
            .await
            .map_err(failed(format!("cannot log {path} to run {run_id}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::report::sample;

    /// Records every call, in order; fails the calls whose text contains `fail_on`.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
        fail_on: Option<&'static str>,
    }

    impl Recorder {
        fn record(&self, call: String) -> Result<(), BoxError> {
            if self.fail_on.is_some_and(|f| call.contains(f)) {
                return Err(format!("refused {call}").into());
            }
            self.calls.lock().unwrap().push(call);
            Ok(())
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl Registry for Recorder {
        async fn set_alias(&self, model: &str, alias: &str, version: &str) -> Result<(), BoxError> {
            self.record(format!("alias {model}@{alias}={version}"))
        }
        async fn set_version_tag(&self, model: &str, version: &str, key: &str, value: &str) -> Result<(), BoxError> {
            self.record(format!("tag {model}/{version} {key}={value}"))
        }
        async fn log_metrics(&self, run_id: &str, metrics: &[(String, f64)]) -> Result<(), BoxError> {
            let keys: Vec<&str> = metrics.iter().map(|m| m.0.as_str()).collect();
            self.record(format!("metrics {run_id} {}", keys.join(",")))
        }
        async fn log_artifact(&self, run_id: &str, path: &str, bytes: Vec<u8>) -> Result<(), BoxError> {
            self.record(format!("artifact {run_id} {path} {}", !bytes.is_empty()))
        }
    }

    #[tokio::test]
    async fn a_pass_tags_then_moves_the_alias() {
        let mut report = sample(true);
        let reg = Recorder::default();
        apply(&mut report, &reg, Some("champion")).await.unwrap();
        let calls = reg.calls();
        assert_eq!(calls[0], "tag fraud<x>/5 slipway.gate=passed");
        assert!(calls[1].starts_with("tag fraud<x>/5 slipway.gate.reasons=f1 0.9 vs 0.8"), "{calls:?}");
        assert_eq!(calls[2], "tag fraud<x>/5 slipway.gate.run_id=r1");
        assert_eq!(calls[3], "alias fraud<x>@champion=5");
        assert_eq!(report.actions[1], "moved @champion to version 5 (was version 3)");
    }

    #[tokio::test]
    async fn a_pass_without_promote_or_a_fail_leaves_the_alias() {
        let mut report = sample(true);
        let reg = Recorder::default();
        apply(&mut report, &reg, None).await.unwrap();
        assert!(reg.calls().iter().all(|c| !c.starts_with("alias")));

        let mut report = sample(false);
        let reg = Recorder::default();
        apply(&mut report, &reg, Some("champion")).await.unwrap();
        let calls = reg.calls();
        assert!(calls.iter().all(|c| !c.starts_with("alias")), "{calls:?}");
        assert_eq!(calls[0], "tag fraud<x>/5 slipway.gate=rejected");
        assert!(calls[1].contains("slipway.gate.reasons=f1 0.5 vs 0.8"), "{calls:?}");
    }

    #[tokio::test]
    async fn promoting_the_champion_itself_moves_nothing() {
        let mut report = sample(true);
        report.champion = Some(report.candidate.clone());
        let reg = Recorder::default();
        apply(&mut report, &reg, Some("champion")).await.unwrap();
        assert!(reg.calls().iter().all(|c| !c.starts_with("alias")));
        assert_eq!(report.actions[1], "@champion already names version 5");
    }

    #[tokio::test]
    async fn a_refused_tag_stops_before_the_alias_moves() {
        let mut report = sample(true);
        let reg = Recorder { fail_on: Some("slipway.gate.reasons"), ..Recorder::default() };
        let err = apply(&mut report, &reg, Some("champion")).await.unwrap_err().to_string();
        assert!(err.contains("cannot tag fraud<x>/5 slipway.gate.reasons"), "{err}");
        assert!(reg.calls().iter().all(|c| !c.starts_with("alias")));
    }

    #[tokio::test]
    async fn the_run_gets_metrics_and_both_reports() {
        let reg = Recorder::default();
        log_to_run(&sample(true), &reg, "r1").await.unwrap();
        assert_eq!(
            reg.calls(),
            [
                "metrics r1 gate.candidate.f1,gate.candidate.latency_p95_ms,gate.champion.f1,gate.champion.latency_p95_ms,gate.delta,gate.passed",
                "artifact r1 gate/gate-report.html true",
                "artifact r1 gate/gate-report.json true",
            ]
        );
    }

    #[test]
    fn long_reasons_are_cut_on_a_character() {
        assert_eq!(truncate("ééé", 2), "éé");
        assert_eq!(truncate("ab", 5), "ab");
        assert_eq!(actor_for_run("abc"), "pipeline-run:abc");
    }
}
