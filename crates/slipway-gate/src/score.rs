//! One model version scored on the holdout through the serving runtime's own request path:
//! the rows go out as MLflow `dataframe_split` bodies, are decoded against the model's
//! signature by `slipway_serving::decode` and run by `Serving::execute`, exactly as a
//! deployment answers `/invocations`. So the gate's numbers are what production would score,
//! type coercions and ZipMap handling included. The metrics are `slipway_monitor`'s.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use slipway_monitor::performance::{self, Scores};
use slipway_monitor::read::number_key;
use slipway_serving::decode;
use slipway_serving::serving::{Assignment, Call, Target};
use slipway_serving::source::Selector;
use slipway_serving::tensor::Named;
use slipway_serving::{Serving, ServingError};

use crate::GateError;
use crate::holdout::Holdout;
use crate::metric::{Metric, Task};

/// Rows per scoring request: well under a deployment's default body limit (16 MiB) for a
/// few hundred columns, and large enough that a holdout of a million rows is a thousand
/// requests.
const CHUNK_ROWS: usize = 1024;
/// Single-row requests run before the timed ones, so a session's first-run allocations
/// (ONNX Runtime grows its arena on first use) are not counted as the model's latency.
const WARM_UP: usize = 5;

/// Single-row request latency through decode and run (no HTTP), over a fixed sample of rows.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub requests: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

/// One model version's numbers on the holdout.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub version: String,
    /// The gate's metric.
    pub value: f64,
    /// Every metric of the task (classification or regression) by name.
    pub metrics: BTreeMap<&'static str, f64>,
    /// Rows scored: those with a label.
    pub rows: usize,
    pub latency: Latency,
}

/// What the model answered, in the shapes the metrics take.
#[derive(Default)]
struct Answers {
    labels: Vec<String>,
    numbers: Vec<f64>,
    classes: Option<Vec<String>>,
    probabilities: Vec<f64>,
    has_probabilities: bool,
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), number_key),
        other => other.to_string(),
    }
}

/// The prediction output: the first one with one value per row (a classifier's label, a
/// regressor's value), as KServe V1 and the monitors take it.
fn prediction(outputs: &[Named]) -> Option<&Named> {
    outputs.iter().find(|o| o.classes.is_none() && o.tensor.row_width() == 1)
}

/// The class probabilities: the output that carries its classes (a ZipMap), else the first
/// with several values per row whose name says probabilities, as the monitors find it.
fn probabilities(outputs: &[Named]) -> Option<&Named> {
    outputs
        .iter()
        .find(|o| o.classes.is_some())
        .or_else(|| outputs.iter().find(|o| o.tensor.row_width() >= 2 && o.name.contains("prob")))
}

impl Answers {
    fn add(&mut self, task: Task, outputs: &[Named], rows: usize) -> Result<(), String> {
        let pred = prediction(outputs).ok_or_else(|| {
            let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
            format!("no output has one value per row (outputs: {})", names.join(", "))
        })?;
        for i in 0..rows {
            let v = pred.tensor.data.json_at(i);
            match task {
                Task::Classification => self.labels.push(text_of(&v)),
                Task::Regression => self.numbers.push(match &v {
                    Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                    Value::String(s) if s == "NaN" || s.ends_with("Infinity") => f64::NAN,
                    other => return Err(format!("output '{}' is not numeric: {other}", pred.name)),
                }),
            }
        }
        if task == Task::Classification
            && let Some(p) = probabilities(outputs)
        {
            let width = p.tensor.row_width();
            if self.classes.is_none()
                && let Some(c) = &p.classes
            {
                self.classes = Some((0..c.len()).map(|k| text_of(&c.json_at(k))).collect());
            }
            self.has_probabilities = true;
            for k in 0..rows * width {
                self.probabilities.push(p.tensor.data.json_at(k).as_f64().unwrap_or(f64::NAN));
            }
        }
        Ok(())
    }

    /// The class order of the probability columns: the model's own, or else scikit-learn's
    /// (sorted classes), when their number matches.
    fn class_order(&self, truth: &[String]) -> Option<Vec<String>> {
        if let Some(c) = &self.classes {
            return Some(c.clone());
        }
        let mut classes: Vec<String> = truth.iter().chain(&self.labels).cloned().collect();
        classes.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.total_cmp(&y),
            _ => a.cmp(b),
        });
        classes.dedup();
        let width = self.probabilities.len() / self.labels.len().max(1);
        (width == classes.len()).then_some(classes)
    }
}

/// The labelled rows and their labels, in the form the task compares them.
pub(crate) enum Truth {
    Classes(Vec<String>),
    Numbers(Vec<f64>),
}

fn metrics(metric: Metric, truth: &Truth, answers: &Answers) -> Result<BTreeMap<&'static str, f64>, String> {
    let mut out = BTreeMap::new();
    match truth {
        Truth::Classes(ys) => {
            let classes = if answers.has_probabilities { answers.class_order(ys) } else { None };
            let scores = classes.as_deref().map(|classes| Scores { classes, probabilities: &answers.probabilities });
            let m = performance::classification(ys, &answers.labels, scores).ok_or("no rows were scored")?;
            out.extend([("accuracy", m.accuracy), ("precision", m.precision), ("recall", m.recall), ("f1", m.f1)]);
            match m.roc_auc {
                Some(auc) => {
                    out.insert("roc_auc", auc);
                }
                None if metric == Metric::RocAuc && classes.is_none() => {
                    return Err("the model has no class-probability output whose classes are known".into());
                }
                None if metric == Metric::RocAuc => {
                    return Err("the holdout's labels do not hold both a positive and a negative row".into());
                }
                None => {}
            }
        }
        Truth::Numbers(ys) => {
            let m = performance::regression(ys, &answers.numbers).ok_or("no rows were scored")?;
            out.extend([("mae", m.mae), ("rmse", m.rmse), ("r2", m.r2)]);
        }
    }
    Ok(out)
}

fn p(sorted: &[f64], q: f64) -> f64 {
    // Nearest rank: the smallest value at or above the q-th share of requests.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or(f64::NAN)
}

/// Runs one scoring request as a deployment would.
async fn request(serving: &Serving, picked: &Assignment, body: &[u8], id: &str) -> Result<Vec<Named>, ServingError> {
    let started = Instant::now();
    let mut decoded = decode::mlflow_json(&picked.loaded.model, body)?;
    let call = Call { request_id: id, protocol: "mlflow", started };
    let inputs = std::mem::take(&mut decoded.inputs);
    serving.execute(picked, inputs, decoded.rows, &call).await
}

/// What every version is scored on.
pub(crate) struct Plan<'a> {
    pub model: &'a str,
    pub holdout: &'a Holdout,
    /// The rows with a label, and their labels.
    pub labelled: Vec<usize>,
    pub truth: Truth,
    pub metric: Metric,
    pub latency_sample: usize,
}

/// Scores `version` on the labelled rows and times single-row requests on
/// `plan.latency_sample` rows spread evenly over the holdout.
pub(crate) async fn score(serving: &Serving, plan: &Plan<'_>, version: &str) -> Result<Scored, GateError> {
    let Plan { model, holdout, ref labelled, ref truth, metric, latency_sample } = *plan;
    let load_failed = |e: ServingError| match e {
        ServingError::NotFound(_) => {
            GateError::UnknownVersion { model: model.to_string(), version: version.to_string() }
        }
        other => {
            GateError::ModelLoad { model: model.to_string(), version: version.to_string(), message: other.to_string() }
        }
    };
    let scoring_failed =
        |message: String| GateError::Scoring { model: model.to_string(), version: version.to_string(), message };
    let target = Target::Model { name: model.to_string(), selector: Selector::Version(version.to_string()) };
    let picked = serving.pick(&target, None).await.map_err(load_failed)?;

    let task = metric.task();
    let mut answers = Answers::default();
    for (n, chunk) in labelled.chunks(CHUNK_ROWS).enumerate() {
        let body = holdout.request(chunk);
        let outputs = request(serving, &picked, &body, &format!("gate-{version}-{n}"))
            .await
            .map_err(|e| scoring_failed(e.to_string()))?;
        answers.add(task, &outputs, chunk.len()).map_err(scoring_failed)?;
    }
    let metrics = metrics(metric, truth, &answers).map_err(|why| GateError::MetricUndefined {
        metric: metric.name(),
        model: model.to_string(),
        version: version.to_string(),
        why,
    })?;
    let value = metrics.get(metric.name()).copied().unwrap_or(f64::NAN);

    let rows = holdout.rows();
    let sample = latency_sample.clamp(1, rows.max(1));
    let warm = WARM_UP.min(rows);
    let picks = (0..warm).chain((0..sample).map(|k| k * rows / sample));
    let bodies: Vec<Vec<u8>> = picks.map(|row| holdout.request(&[row])).collect();
    let mut times = Vec::with_capacity(sample);
    for (i, body) in bodies.iter().enumerate() {
        let started = Instant::now();
        request(serving, &picked, body, &format!("gate-{version}-latency-{i}"))
            .await
            .map_err(|e| scoring_failed(e.to_string()))?;
        if i >= warm {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    let latency = Latency {
        requests: times.len(),
        p50_ms: p(&times, 0.50),
        p95_ms: p(&times, 0.95),
        max_ms: times.last().copied().unwrap_or(f64::NAN),
    };
    Ok(Scored { version: version.to_string(), value, metrics, rows: labelled.len(), latency })
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_serving::tensor::{Data, Tensor};

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(p(&v, 0.95), 190.0);
        assert_eq!(p(&v, 0.5), 100.0);
        assert_eq!(p(&[7.0], 0.95), 7.0);
    }

    #[test]
    fn a_zipmap_classifier_gives_labels_and_scores_in_its_class_order() {
        let outputs = vec![
            Named::new("output_label", Tensor::new(vec![2], Data::I64(vec![1, 0]))),
            Named {
                name: "output_probability".into(),
                tensor: Tensor::new(vec![2, 2], Data::F32(vec![0.25, 0.75, 0.5, 0.5])),
                classes: Some(Data::I64(vec![0, 1])),
            },
        ];
        let mut a = Answers::default();
        a.add(Task::Classification, &outputs, 2).unwrap();
        assert_eq!(a.labels, ["1", "0"]);
        assert_eq!(a.probabilities, [0.25, 0.75, 0.5, 0.5]);
        let truth = Truth::Classes(vec!["1".into(), "0".into()]);
        let m = metrics(Metric::RocAuc, &truth, &a).unwrap();
        assert_eq!((m["accuracy"], m["roc_auc"]), (1.0, 1.0));
    }

    #[test]
    fn roc_auc_without_probabilities_is_undefined_not_zero() {
        let outputs = vec![Named::new("label", Tensor::new(vec![2], Data::I64(vec![1, 0])))];
        let mut a = Answers::default();
        a.add(Task::Classification, &outputs, 2).unwrap();
        let truth = Truth::Classes(vec!["1".into(), "0".into()]);
        assert!(metrics(Metric::RocAuc, &truth, &a).unwrap_err().contains("no class-probability output"));
        assert!(metrics(Metric::F1, &truth, &a).is_ok());
    }

    #[test]
    fn a_regressor_column_of_values() {
        let outputs = vec![Named::new("variable", Tensor::new(vec![3, 1], Data::F32(vec![1.0, 2.0, 4.0])))];
        let mut a = Answers::default();
        a.add(Task::Regression, &outputs, 3).unwrap();
        let m = metrics(Metric::Rmse, &Truth::Numbers(vec![1.0, 2.0, 3.0]), &a).unwrap();
        assert!((m["rmse"] - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((m["mae"] - 1.0 / 3.0).abs() < 1e-12);
    }
}
