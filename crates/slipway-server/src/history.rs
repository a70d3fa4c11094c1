//! `GET metrics/get-history-bulk-interval`: what the MLflow UI's charts draw, one metric
//! over up to 100 runs, each run's history sampled down to `max_results` points.
//!
//! MLflow's SQL store keeps the first point of each of `max_results` equal buckets and the
//! last point. That can drop a spike a user needs to see, so here a run's lowest and highest
//! values are kept as well (the buckets shrink by as many points), as MLflow users ask
//! (mlflow #5779, #9779). Validation and messages follow MLflow's handler.

use axum::Json;
use axum::extract::State;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_store::StoreError;
use slipway_types::Metric;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{QueryArgs, one_or_many};

/// Runs one request may name.
const MAX_RUNS: usize = 100;
/// Points per run one request may ask for (MLflow's `MAX_RESULTS_PER_RUN`).
const MAX_POINTS: i64 = 2500;
/// Points per run when the request does not say: what the UI's charts ask for. (MLflow's
/// handler defaults to 2,500; a chart has no use for more points than it has pixels.)
const DEFAULT_POINTS: i64 = 320;

/// One chart's request.
pub struct HistoryInterval {
    pub run_ids: Vec<String>,
    pub metric_key: String,
    pub start_step: Option<i64>,
    pub end_step: Option<i64>,
    pub max_results: Option<i64>,
}

#[derive(Deserialize)]
pub struct Query {
    #[serde(default, deserialize_with = "one_or_many")]
    run_ids: Vec<String>,
    metric_key: Option<String>,
    start_step: Option<String>,
    end_step: Option<String>,
    max_results: Option<String>,
}

fn int(name: &str, v: Option<String>) -> ApiResult<Option<i64>> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            s.trim().parse::<i64>().map_err(|_| ApiError::invalid(format!("{name} must be an integer, got '{s}'")))
        })
        .transpose()
}

pub async fn get_history_bulk_interval(
    State(s): State<AppState>,
    QueryArgs(q): QueryArgs<Query>,
) -> ApiResult<Json<Value>> {
    let interval = HistoryInterval {
        run_ids: q.run_ids,
        metric_key: q.metric_key.filter(|k| !k.is_empty()).ok_or_else(|| ApiError::missing("metric_key"))?,
        start_step: int("start_step", q.start_step)?,
        end_step: int("end_step", q.end_step)?,
        max_results: int("max_results", q.max_results)?,
    };
    let points = sampled_history(&s, interval).await?;
    if points.is_empty() {
        return Ok(Json(json!({})));
    }
    let mut metrics = Vec::with_capacity(points.len());
    for (run_id, m) in points {
        // The metric's own wire form (NaN and infinities as MLflow writes them), plus its run.
        let mut point = serde_json::to_value(&m).map_err(|_| ApiError::from(slipway_types::MlflowError::internal()))?;
        if let Value::Object(fields) = &mut point {
            fields.insert("run_id".into(), Value::String(run_id));
        }
        metrics.push(point);
    }
    Ok(Json(json!({ "metrics": metrics })))
}

/// Checks the request and returns each run's sampled points, runs in the order asked, each
/// run's points by step. Runs that do not exist add nothing, as in MLflow.
pub async fn sampled_history(s: &AppState, r: HistoryInterval) -> ApiResult<Vec<(String, Metric)>> {
    let mut run_ids: Vec<String> = r.run_ids.into_iter().filter(|id| !id.is_empty()).collect();
    if run_ids.is_empty() {
        return Err(ApiError::missing("run_ids"));
    }
    if run_ids.len() > MAX_RUNS {
        return Err(ApiError::invalid(format!(
            "GetMetricHistoryBulkInterval request must specify at most {MAX_RUNS} run_ids. Received {} run_ids.",
            run_ids.len()
        )));
    }
    let k = r.max_results.unwrap_or(DEFAULT_POINTS);
    if !(1..=MAX_POINTS).contains(&k) {
        return Err(ApiError::invalid(format!("max_results must be between 1 and {MAX_POINTS}. Got {k}.")));
    }
    let range = match (r.start_step, r.end_step) {
        (None, None) => None,
        (Some(a), Some(b)) if a <= b => Some((a, b)),
        (Some(a), Some(b)) => {
            return Err(ApiError::invalid(format!(
                "end_step must be greater than start_step. Found start_step={a} and end_step={b}."
            )));
        }
        _ => {
            return Err(ApiError::invalid("If either start step or end step are specified, both must be specified."));
        }
    };
    let mut seen = std::collections::HashSet::new();
    run_ids.retain(|id| seen.insert(id.clone()));
    // Runs are read and sampled a few at a time (the store has several readers; at most four
    // whole histories are in memory), kept in the order asked.
    let k = usize::try_from(k).unwrap_or(1);
    let reads: Vec<_> =
        run_ids.iter().map(|id| sampled_run(s.clone(), id.clone(), r.metric_key.clone(), range, k)).collect();
    let sampled: Vec<ApiResult<Vec<Metric>>> = futures::stream::iter(reads).buffered(4).collect().await;
    let mut out = Vec::new();
    for (run_id, points) in run_ids.into_iter().zip(sampled) {
        out.extend(points?.into_iter().map(|m| (run_id.clone(), m)));
    }
    Ok(out)
}

/// One run's points in `range`, in step order, sampled down to `k`.
async fn sampled_run(
    s: AppState,
    run_id: String,
    key: String,
    range: Option<(i64, i64)>,
    k: usize,
) -> ApiResult<Vec<Metric>> {
    let mut points = history(s, run_id, key).await?;
    if let Some((a, b)) = range {
        points.retain(|m| (a..=b).contains(&m.step));
    }
    points.sort_by(|a, b| (a.step, a.timestamp).cmp(&(b.step, b.timestamp)).then(a.value.total_cmp(&b.value)));
    let values: Vec<f64> = points.iter().map(|m| m.value).collect();
    let keep = sample(&values, k);
    let mut points: Vec<Option<Metric>> = points.into_iter().map(Some).collect();
    Ok(keep.into_iter().filter_map(|i| points[i].take()).collect())
}

/// The whole history of one metric of one run; none when the run does not exist.
async fn history(s: AppState, run_id: String, key: String) -> ApiResult<Vec<Metric>> {
    let mut points = Vec::new();
    let mut token = None;
    loop {
        let page = match s.store.get_metric_history(run_id.clone(), key.clone(), None, token).await {
            Ok(page) => page,
            Err(StoreError::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        points.extend(page.items);
        token = page.next_page_token;
        if token.is_none() {
            return Ok(points);
        }
    }
}

/// Which of `values` (a run's points in step order) to keep, at most `k`, ascending: all when
/// they fit; else the lowest and highest value and the last point, and the first point of each
/// of `k - (those)` equal buckets (so the first point is always kept).
pub fn sample(values: &[f64], k: usize) -> Vec<usize> {
    let n = values.len();
    if n <= k {
        return (0..n).collect();
    }
    let by_value = |f: fn(&f64, &f64) -> bool| {
        (0..n).filter(|&i| !values[i].is_nan()).reduce(|best, i| if f(&values[i], &values[best]) { i } else { best })
    };
    let mut extremes: Vec<usize> =
        [by_value(|a, b| a < b), by_value(|a, b| a > b), Some(n - 1)].into_iter().flatten().collect();
    extremes.sort_unstable();
    extremes.dedup();
    let buckets = k.saturating_sub(extremes.len()).max(1);
    let (q, r) = (n / buckets, n % buckets);
    let mut keep: Vec<usize> = (0..buckets).map(|b| b * q + b.min(r)).chain(extremes).collect();
    keep.sort_unstable();
    keep.dedup();
    // k < 4: the extremes alone may outnumber k; keep the first, then the last ones.
    if keep.len() > k {
        let tail = keep.split_off(keep.len() - (k - 1));
        keep.truncate(1);
        keep.extend(tail);
        keep.truncate(k);
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_histories_are_kept_whole() {
        assert_eq!(sample(&[1.0, 2.0, 3.0], 5), vec![0, 1, 2]);
        assert_eq!(sample(&[], 5), Vec::<usize>::new());
    }

    #[test]
    fn first_last_and_extremes_survive_and_the_rest_is_even() {
        let mut values: Vec<f64> = (0..1000).map(|i| f64::from(i) * 0.001).collect();
        values[537] = 99.0; // a spike between buckets
        values[123] = -5.0; // a dip
        let keep = sample(&values, 320);
        assert_eq!(keep.len(), 320);
        assert_eq!(keep[0], 0);
        assert_eq!(*keep.last().unwrap(), 999);
        assert!(keep.contains(&537) && keep.contains(&123));
        assert!(keep.windows(2).all(|w| w[0] < w[1]));
        // Even spacing elsewhere: no gap wider than two buckets.
        assert!(keep.windows(2).all(|w| w[1] - w[0] <= 2 * 1000 / 317 + 1), "{keep:?}");
    }

    #[test]
    fn tiny_budgets_still_keep_first_and_last() {
        let values: Vec<f64> = (0..100).map(f64::from).collect();
        assert_eq!(sample(&values, 1).len(), 1);
        let two = sample(&values, 2);
        assert_eq!(two, vec![0, 99]);
        let nan: Vec<f64> = vec![f64::NAN; 10];
        let keep = sample(&nan, 3);
        assert!(keep.contains(&0) && keep.contains(&9) && keep.len() <= 3);
    }
}
