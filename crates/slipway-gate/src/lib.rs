//! The challenger-vs-champion gate: a candidate model version and the version an alias
//! (`champion`) names are scored on the same holdout, through the serving runtime's own
//! request path and with the monitors' metrics, and the candidate passes when it beats the
//! champion by a margin (and, optionally, answers fast enough). `slipway gate` runs it from
//! CI/CD; a pipeline's gate step calls the same functions.
//!
//! - [`holdout`] reads the rows (CSV or Parquet) and turns them into scoring requests;
//! - [`score`] runs them through a [`Serving`] and computes the metrics;
//! - [`decision`] is the verdict on numbers alone;
//! - [`report`] and [`html`] are what a person or a script reads;
//! - [`apply`] tags the version, moves the alias and logs to the run, through a [`Registry`].
//!
//! The caller builds the `Serving` over its own model source (the tracking server over HTTP
//! for the CLI, the store in process for a server-side step), so models load exactly as the
//! deployments that would serve them load them.

pub mod apply;
pub mod decision;
mod error;
pub mod holdout;
pub mod html;
pub mod metric;
pub mod report;
pub mod score;

use std::time::{SystemTime, UNIX_EPOCH};

use slipway_serving::source::Selector;
use slipway_serving::{Serving, ServingError};

pub use apply::{Registry, actor_for_run, apply, log_to_run};
pub use decision::{Rule, decide};
pub use error::{BoxError, GateError};
pub use holdout::Holdout;
pub use metric::Metric;
pub use report::Report;

use crate::decision::Observed;
use crate::metric::Task;
use crate::report::HoldoutSummary;
use crate::score::{Plan, Truth};

/// Single-row requests timed per model unless asked otherwise.
pub const DEFAULT_LATENCY_SAMPLE: usize = 200;

/// What to compare and what the candidate must show.
#[derive(Debug, Clone)]
pub struct GateSpec {
    pub model: String,
    pub candidate: String,
    pub champion_alias: String,
    pub rule: Rule,
    pub latency_sample: usize,
    pub run_id: Option<String>,
}

impl GateSpec {
    fn check(&self) -> Result<(), GateError> {
        let invalid = |m: String| Err(GateError::InvalidOption(m));
        if !self.rule.min_delta.is_finite() {
            return invalid(format!("min-delta {} is not a finite number", self.rule.min_delta));
        }
        if let Some(ms) = self.rule.max_latency_ms
            && !(ms.is_finite() && ms > 0.0)
        {
            return invalid(format!("max-latency-ms {ms} must be a positive number"));
        }
        if self.latency_sample == 0 {
            return invalid("the latency sample must hold at least one row".into());
        }
        if self.candidate.is_empty() || !self.candidate.bytes().all(|b| b.is_ascii_digit()) {
            return invalid(format!("candidate '{}' is not a version number", self.candidate));
        }
        if self.champion_alias.is_empty() {
            return invalid("the champion alias is empty".into());
        }
        Ok(())
    }
}

fn registry_error(action: String) -> impl FnOnce(ServingError) -> GateError {
    move |e| GateError::Registry { action, source: Box::new(e) }
}

/// The version `alias` names, or `None` when no version holds it.
async fn champion(serving: &Serving, spec: &GateSpec) -> Result<Option<String>, GateError> {
    let source = serving.cache.source();
    match source.resolve(&spec.model, &Selector::Alias(spec.champion_alias.clone())).await {
        Ok(v) => Ok(Some(v)),
        Err(ServingError::NotFound(_)) => Ok(None),
        Err(e) => Err(registry_error(format!("cannot resolve {}@{}", spec.model, spec.champion_alias))(e)),
    }
}

/// Checks that the candidate exists, telling an unknown model from an unknown version.
async fn candidate(serving: &Serving, spec: &GateSpec) -> Result<(), GateError> {
    let source = serving.cache.source();
    let asked = format!("cannot look up {}/{}", spec.model, spec.candidate);
    match source.resolve(&spec.model, &Selector::Version(spec.candidate.clone())).await {
        Ok(_) => Ok(()),
        Err(ServingError::NotFound(_)) => match source.resolve(&spec.model, &Selector::Latest).await {
            Ok(_) => Err(GateError::UnknownVersion { model: spec.model.clone(), version: spec.candidate.clone() }),
            Err(ServingError::NotFound(_)) => Err(GateError::UnknownModel(spec.model.clone())),
            Err(e) => Err(registry_error(asked)(e)),
        },
        Err(e) => Err(registry_error(asked)(e)),
    }
}

/// The labelled rows and their labels as the metric's task compares them.
fn truth(holdout: &Holdout, metric: Metric) -> Result<(Vec<usize>, Truth), GateError> {
    let mut rows = Vec::new();
    let truth = match metric.task() {
        Task::Classification => {
            let mut ys = Vec::new();
            for (i, cell) in holdout.labels.iter().enumerate() {
                if let Some(y) = cell.label_text() {
                    rows.push(i);
                    ys.push(y);
                }
            }
            Truth::Classes(ys)
        }
        Task::Regression => {
            let mut ys = Vec::new();
            for (i, cell) in holdout.labels.iter().enumerate() {
                match cell.label_number() {
                    Ok(Some(y)) => {
                        rows.push(i);
                        ys.push(y);
                    }
                    Ok(None) => {}
                    Err(example) => {
                        return Err(GateError::LabelNotNumeric {
                            metric: metric.name(),
                            label: holdout.label.clone(),
                            example,
                        });
                    }
                }
            }
            Truth::Numbers(ys)
        }
    };
    if rows.is_empty() {
        return Err(GateError::NoLabelledRows(holdout.label.clone()));
    }
    Ok((rows, truth))
}

fn observed(s: &score::Scored) -> Observed<'_> {
    Observed { version: &s.version, value: s.value, latency_p95_ms: Some(s.latency.p95_ms) }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Scores the candidate and the champion on `holdout` and decides. A failed gate is a
/// report with `passed: false`; an error means no verdict could be reached.
pub async fn evaluate(serving: &Serving, spec: &GateSpec, holdout: &Holdout) -> Result<Report, GateError> {
    spec.check()?;
    let started_ms = now_ms();
    candidate(serving, spec).await?;
    let champion_version = champion(serving, spec).await?;
    let (labelled, truth) = truth(holdout, spec.rule.metric)?;
    let plan = Plan {
        model: &spec.model,
        holdout,
        labelled,
        truth,
        metric: spec.rule.metric,
        latency_sample: spec.latency_sample,
    };
    let cand = score::score(serving, &plan, &spec.candidate).await?;
    let champ = match champion_version {
        Some(v) if v == cand.version => Some(cand.clone()),
        Some(v) => Some(score::score(serving, &plan, &v).await?),
        None => None,
    };
    let verdict = decide(&spec.rule, &spec.champion_alias, &observed(&cand), champ.as_ref().map(observed).as_ref());
    Ok(Report {
        model: spec.model.clone(),
        passed: verdict.passed,
        metric: spec.rule.metric,
        lower_is_better: spec.rule.metric.lower_is_better(),
        min_delta: spec.rule.min_delta,
        max_latency_ms: spec.rule.max_latency_ms,
        champion_alias: spec.champion_alias.clone(),
        candidate: cand,
        champion: champ,
        delta: verdict.delta,
        checks: verdict.checks,
        holdout: HoldoutSummary {
            path: holdout.path.clone(),
            label: holdout.label.clone(),
            features: holdout.features.clone(),
            rows: holdout.rows(),
            labelled_rows: plan.labelled.len(),
        },
        run_id: spec.run_id.clone(),
        actions: Vec::new(),
        started_ms,
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use async_trait::async_trait;
    use slipway_serving::ServingConfig;
    use slipway_serving::batch::{Limits, Workers};
    use slipway_serving::cache::{Cache, CacheConfig};
    use slipway_serving::metrics::Metrics;
    use slipway_serving::source::ModelSource;

    use super::*;
    use crate::holdout::Cell;

    /// Model "m" with versions 1 and 2 and `@champion` on 1; "down" always fails to answer.
    struct FakeSource;

    #[async_trait]
    impl ModelSource for FakeSource {
        async fn resolve(&self, model: &str, selector: &Selector) -> Result<String, ServingError> {
            let missing = || ServingError::NotFound(format!("{model} has no {selector}"));
            match (model, selector) {
                ("down", _) => Err(ServingError::Unavailable("the tracking server did not answer".into())),
                ("m", Selector::Version(v)) if v == "1" || v == "2" => Ok(v.clone()),
                ("m", Selector::Alias(a)) if a == "champion" => Ok("1".into()),
                ("m", Selector::Latest) => Ok("2".into()),
                _ => Err(missing()),
            }
        }
        async fn fetch(&self, _model: &str, _version: &str, _scratch: &Path) -> Result<PathBuf, ServingError> {
            Err(ServingError::NotServable("no files in this test".into()))
        }
    }

    fn serving() -> Serving {
        let metrics = Arc::new(Metrics::default());
        let workers = Arc::new(Workers::start(1, metrics.clone()).unwrap());
        let config = CacheConfig {
            memory_budget: 1 << 30,
            scratch_dir: std::env::temp_dir(),
            onnxruntime_lib: None,
            limits: Limits::default(),
            sessions: 1,
            min_charge: 0,
        };
        let cache = Arc::new(Cache::new(config, Arc::new(FakeSource), workers, metrics.clone()));
        Serving::new(cache, metrics, ServingConfig::default(), None)
    }

    fn spec(model: &str, candidate: &str, alias: &str) -> GateSpec {
        GateSpec {
            model: model.into(),
            candidate: candidate.into(),
            champion_alias: alias.into(),
            rule: Rule { metric: Metric::F1, min_delta: 0.01, max_latency_ms: None },
            latency_sample: 10,
            run_id: None,
        }
    }

    fn holdout(labels: Vec<Cell>) -> Holdout {
        let n = labels.len();
        Holdout::from_columns("h.csv".into(), "y".into(), vec![("x".into(), vec![Cell::Float(1.0); n])], labels)
            .unwrap()
    }

    #[tokio::test]
    async fn an_unknown_model_is_told_from_an_unknown_version() {
        let s = serving();
        let h = holdout(vec![Cell::Int(1)]);
        let err = evaluate(&s, &spec("nope", "1", "champion"), &h).await.unwrap_err();
        assert!(matches!(err, GateError::UnknownModel(ref m) if m == "nope"), "{err}");
        let err = evaluate(&s, &spec("m", "7", "champion"), &h).await.unwrap_err();
        assert_eq!(err.to_string(), "registered model 'm' has no version 7");
        // A server that does not answer is neither: no verdict, and no "does not exist".
        let err = evaluate(&s, &spec("down", "1", "champion"), &h).await.unwrap_err();
        assert!(matches!(err, GateError::Registry { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_unset_alias_is_no_champion_but_a_failing_server_is_an_error() {
        let s = serving();
        assert_eq!(champion(&s, &spec("m", "2", "champion")).await.unwrap().as_deref(), Some("1"));
        assert_eq!(champion(&s, &spec("m", "2", "prod")).await.unwrap(), None);
        assert!(champion(&s, &spec("down", "2", "champion")).await.is_err());
    }

    #[tokio::test]
    async fn a_model_that_cannot_load_is_a_load_error_naming_the_version() {
        let s = serving();
        let err = evaluate(&s, &spec("m", "2", "champion"), &holdout(vec![Cell::Int(1)])).await.unwrap_err();
        assert!(matches!(err, GateError::ModelLoad { ref version, .. } if version == "2"), "{err}");
    }

    #[tokio::test]
    async fn options_and_labels_are_checked_before_any_model_loads() {
        let s = serving();
        let mut bad = spec("m", "2", "champion");
        bad.rule.max_latency_ms = Some(0.0);
        assert!(matches!(evaluate(&s, &bad, &holdout(vec![Cell::Int(1)])).await, Err(GateError::InvalidOption(_))));
        let unlabelled = holdout(vec![Cell::Null, Cell::Float(f64::NAN)]);
        let err = evaluate(&s, &spec("m", "2", "champion"), &unlabelled).await.unwrap_err();
        assert!(matches!(err, GateError::NoLabelledRows(_)), "{err}");
        let mut rmse = spec("m", "2", "champion");
        rmse.rule.metric = Metric::Rmse;
        let err = evaluate(&s, &rmse, &holdout(vec![Cell::Int(1), Cell::Text("yes".into())])).await.unwrap_err();
        assert!(err.to_string().contains("rmse needs numeric labels") && err.to_string().contains("'yes'"), "{err}");
    }
}
