//! Assembling model serving for `slipway server` and `slipway serve`: the worker pool, the
//! model cache under its memory budget, and the prediction log.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use slipway_serving::batch::{Limits, Workers};
use slipway_serving::cache::{Cache, CacheConfig};
use slipway_serving::metrics::Metrics;
use slipway_serving::source::ModelSource;
use slipway_serving::{Serving, ServingConfig};

pub struct Settings {
    pub memory_budget: u64,
    pub queue_capacity: usize,
    pub max_batch_rows: usize,
    pub max_wait_us: u64,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub workers: Option<usize>,
    /// Sessions per model; default one per worker, at most two.
    pub sessions: Option<usize>,
    pub onnxruntime_lib: Option<PathBuf>,
    pub scratch_dir: PathBuf,
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

pub fn build(
    s: Settings,
    source: Arc<dyn ModelSource>,
    predlog: Option<slipway_predlog::PredictionLog>,
) -> std::io::Result<Arc<Serving>> {
    let workers = s.workers.unwrap_or_else(cores).max(1);
    let metrics = Arc::new(Metrics::default());
    let pool = Arc::new(Workers::start(workers, metrics.clone())?);
    let limits = Limits {
        queue_capacity: s.queue_capacity,
        max_batch_rows: s.max_batch_rows,
        max_wait: Duration::from_micros(s.max_wait_us),
        ..Limits::default()
    };
    let cache = Arc::new(Cache::new(
        CacheConfig {
            memory_budget: s.memory_budget,
            scratch_dir: s.scratch_dir,
            onnxruntime_lib: s.onnxruntime_lib,
            limits,
            sessions: s.sessions.unwrap_or(workers.min(2)),
            min_charge: slipway_serving::cache::MIN_CHARGE,
        },
        source,
        pool,
        metrics.clone(),
    ));
    let config = ServingConfig {
        request_timeout: s.request_timeout,
        max_body_bytes: s.max_body_bytes,
        ..ServingConfig::default()
    };
    Ok(Arc::new(Serving::new(cache, metrics, config, predlog)))
}
