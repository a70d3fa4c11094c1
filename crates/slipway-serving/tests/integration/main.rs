//! The serving stack against the real ONNX Runtime (from the `onnxruntime` wheel, found as a
//! user's machine finds it: `scripts/test.sh` points `VIRTUAL_ENV` at the project's `.venv`):
//! typed models and ZipMap outputs, the protocol routers in process, batching under
//! concurrency, overload, the memory budget, and hot swap when an alias moves.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod batching;
mod cache;
mod http;
mod model;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use slipway_serving::batch::{Limits, Workers};
use slipway_serving::cache::{Cache, CacheConfig};
use slipway_serving::metrics::Metrics;
use slipway_serving::source::{ModelSource, Selector};
use slipway_serving::{Serving, ServingConfig, ServingError};

/// LinearRegression fitted on y = 2x - 3y + 0.5z + 1.25 (skl2onnx 1.20): input X [-1, 3].
pub const LINEAR: &str = "linear_2x_minus3y_half_z_plus_1_25.onnx";
/// LogisticRegression with string labels "no"/"yes" and a ZipMap output, p(yes) =
/// sigmoid(24.4894 x + 24.818686 y - 0.6325066 z - 24.10159).
pub const LOGREG: &str = "logreg_strings_zipmap.onnx";

pub fn linear(row: &[f32]) -> f32 {
    2.0 * row[0] - 3.0 * row[1] + 0.5 * row[2] + 1.25
}

pub fn p_yes(row: &[f32]) -> f64 {
    let z = 24.4894 * f64::from(row[0]) + 24.818686 * f64::from(row[1]) - 0.6325066 * f64::from(row[2]) - 24.10159;
    1.0 / (1.0 + (-z).exp())
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// An MLflow model directory holding `onnx` (a fixture file), with an optional signature.
pub fn model_dir(root: &Path, name: &str, onnx: &str, signature: Option<&str>) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture(onnx), dir.join("model.onnx")).unwrap();
    let mut mlmodel =
        "flavors:\n  onnx:\n    data: model.onnx\n  python_function:\n    loader_module: mlflow.onnx\n".to_string();
    if let Some(sig) = signature {
        mlmodel.push_str(&format!("signature:\n  inputs: '{sig}'\n"));
    }
    std::fs::write(dir.join("MLmodel"), mlmodel).unwrap();
    dir
}

/// Models by (name, version) in directories, and aliases a test can move.
#[derive(Default)]
pub struct MapSource {
    pub dirs: Mutex<HashMap<(String, String), PathBuf>>,
    pub aliases: Mutex<HashMap<(String, String), String>>,
}

impl MapSource {
    pub fn add(&self, name: &str, version: &str, dir: PathBuf) {
        self.dirs.lock().unwrap().insert((name.into(), version.into()), dir);
    }
    pub fn alias(&self, name: &str, alias: &str, version: &str) {
        self.aliases.lock().unwrap().insert((name.into(), alias.into()), version.into());
    }
}

#[async_trait]
impl ModelSource for MapSource {
    async fn resolve(&self, model: &str, selector: &Selector) -> Result<String, ServingError> {
        let missing = || ServingError::NotFound(format!("{model} has no {selector}"));
        match selector {
            Selector::Alias(a) => {
                self.aliases.lock().unwrap().get(&(model.into(), a.clone())).cloned().ok_or_else(missing)
            }
            Selector::Version(v) => self
                .dirs
                .lock()
                .unwrap()
                .contains_key(&(model.into(), v.clone()))
                .then(|| v.clone())
                .ok_or_else(missing),
            Selector::Latest => {
                let dirs = self.dirs.lock().unwrap();
                dirs.keys().filter(|(n, _)| n == model).map(|(_, v)| v.clone()).max().ok_or_else(missing)
            }
        }
    }

    async fn fetch(&self, model: &str, version: &str, _scratch: &Path) -> Result<PathBuf, ServingError> {
        let dirs = self.dirs.lock().unwrap();
        dirs.get(&(model.into(), version.into()))
            .cloned()
            .ok_or_else(|| ServingError::NotFound(format!("{model}/{version}")))
    }
}

pub struct Setup {
    pub workers: usize,
    pub budget: u64,
    pub limits: Limits,
    pub request_timeout: Duration,
    pub min_charge: u64,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            workers: 2,
            budget: 1 << 30,
            limits: Limits::default(),
            request_timeout: Duration::from_secs(10),
            min_charge: slipway_serving::cache::MIN_CHARGE,
        }
    }
}

pub fn serving(source: Arc<dyn ModelSource>, scratch: &Path, setup: Setup) -> Arc<Serving> {
    let metrics = Arc::new(Metrics::default());
    let pool = Arc::new(Workers::start(setup.workers, metrics.clone()).unwrap());
    let config = CacheConfig {
        memory_budget: setup.budget,
        scratch_dir: scratch.to_path_buf(),
        onnxruntime_lib: None,
        limits: setup.limits,
        sessions: setup.workers,
        min_charge: setup.min_charge,
    };
    let cache = Arc::new(Cache::new(config, source, pool, metrics.clone()));
    let config = ServingConfig { request_timeout: setup.request_timeout, ..ServingConfig::default() };
    Arc::new(Serving::new(cache, metrics, config, None))
}
