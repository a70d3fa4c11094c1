//! Loaded models by (name, version): loaded lazily on first use, one load at a time (so
//! the memory a load adds can be measured), concurrent first requests waiting on the same
//! load, and least-recently-used models evicted to stay within the memory budget. Models a
//! deployment currently routes to are pinned and never evicted. An evicted model's memory is
//! freed once its last in-flight batch has answered.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::OnceCell;

use crate::ServingError;
use crate::batch::{Limits, Loaded, Workers};
use crate::metrics::{Gauge, Metrics};
use crate::model::{LoadOptions, ModelId, OnnxModel};
use crate::source::ModelSource;

pub struct CacheConfig {
    pub memory_budget: u64,
    /// Where model files are put while they are opened.
    pub scratch_dir: PathBuf,
    pub onnxruntime_lib: Option<PathBuf>,
    pub limits: Limits,
    /// Sessions per model: how many of its batches may run at once.
    pub sessions: usize,
    /// The least a model is charged: ONNX Runtime grows an arena on a session's first run
    /// (1 MiB for a small model), which no measurement at load time sees.
    pub min_charge: u64,
}

/// The default floor of a model's charge.
pub const MIN_CHARGE: u64 = 1 << 20;

type Slot = Arc<OnceCell<Result<Arc<Loaded>, ServingError>>>;

pub struct Cache {
    config: CacheConfig,
    source: Arc<dyn ModelSource>,
    workers: Arc<Workers>,
    metrics: Arc<Metrics>,
    slots: Mutex<HashMap<ModelId, Slot>>,
    pins: Mutex<HashMap<ModelId, usize>>,
    used: AtomicU64,
    tick: AtomicU64,
    loading: tokio::sync::Mutex<()>,
}

/// Resident memory of this process, from `/proc/self/statm`.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

impl Cache {
    pub fn new(
        config: CacheConfig,
        source: Arc<dyn ModelSource>,
        workers: Arc<Workers>,
        metrics: Arc<Metrics>,
    ) -> Cache {
        Cache {
            config,
            source,
            workers,
            metrics,
            slots: Mutex::new(HashMap::new()),
            pins: Mutex::new(HashMap::new()),
            used: AtomicU64::new(0),
            tick: AtomicU64::new(0),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    pub fn source(&self) -> &Arc<dyn ModelSource> {
        &self.source
    }

    pub fn workers(&self) -> &Arc<Workers> {
        &self.workers
    }

    /// The loaded model, loading it first when needed.
    pub async fn get(self: &Arc<Self>, id: &ModelId) -> Result<Arc<Loaded>, ServingError> {
        let slot = self.slots.lock().unwrap_or_else(PoisonError::into_inner).entry(id.clone()).or_default().clone();
        let this = self.clone();
        let key = id.clone();
        let result = slot
            .get_or_init(|| async move {
                // A task of its own: a caller that gives up does not abandon the load.
                let task = tokio::spawn(async move { this.load(key).await });
                task.await.unwrap_or_else(|e| Err(ServingError::Unavailable(format!("model load failed: {e}"))))
            })
            .await
            .clone();
        match result {
            Ok(loaded) => {
                loaded.touch(self.tick.fetch_add(1, Ordering::Relaxed));
                Ok(loaded)
            }
            Err(e) => {
                // Forget the failure so a later request tries again.
                let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
                if slots.get(id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    slots.remove(id);
                }
                Err(e)
            }
        }
    }

    /// The model if it is loaded now, without loading it.
    pub fn peek(&self, id: &ModelId) -> Option<Arc<Loaded>> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.get(id).and_then(|s| s.get()).and_then(|r| r.as_ref().ok()).cloned()
    }

    pub fn pin(&self, id: &ModelId) {
        *self.pins.lock().unwrap_or_else(PoisonError::into_inner).entry(id.clone()).or_insert(0) += 1;
    }

    pub fn unpin(&self, id: &ModelId) {
        let mut pins = self.pins.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = pins.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                pins.remove(id);
            }
        }
    }

    pub fn loaded(&self) -> Vec<Arc<Loaded>> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.values().filter_map(|s| s.get()).filter_map(|r| r.as_ref().ok()).cloned().collect()
    }

    pub fn memory_used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    async fn load(self: Arc<Self>, id: ModelId) -> Result<Arc<Loaded>, ServingError> {
        let _one_at_a_time = self.loading.lock().await;
        let started = Instant::now();
        let result = self.load_inner(&id).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics.inc("slipway_serving_model_loads_total", vec![("result", outcome.to_string())], 1.0);
        match &result {
            Ok(l) => {
                tracing::info!(model = %id, charge = l.charge, millis = started.elapsed().as_millis() as u64, "model loaded")
            }
            Err(e) => tracing::warn!(model = %id, error = %e, "model load failed"),
        }
        result
    }

    async fn load_inner(&self, id: &ModelId) -> Result<Arc<Loaded>, ServingError> {
        let scratch = self.config.scratch_dir.join(format!("{}-{}", id.version, uuid::Uuid::new_v4()));
        tokio::fs::create_dir_all(&scratch)
            .await
            .map_err(|e| ServingError::Unavailable(format!("cannot create the model cache directory: {e}")))?;
        let fetched = self.source.fetch(&id.name, &id.version, &scratch).await;
        let opened = match fetched {
            Ok(dir) => {
                let options = LoadOptions {
                    onnxruntime_lib: self.config.onnxruntime_lib.clone(),
                    sessions: self.config.sessions,
                    keep_zipmap: false,
                };
                let key = id.clone();
                tokio::task::spawn_blocking(move || {
                    // The runtime's one-time start is nobody's model: load it before measuring.
                    crate::runtime::environment(options.onnxruntime_lib.as_deref())?;
                    let before = rss_bytes();
                    let model = OnnxModel::load(&dir, key, &options)?;
                    Ok::<_, ServingError>((model, rss_bytes().saturating_sub(before)))
                })
                .await
                .unwrap_or_else(|e| Err(ServingError::Unavailable(format!("model load failed: {e}"))))
            }
            Err(e) => Err(e),
        };
        // ONNX Runtime has read the files (external weights included) into its sessions.
        let _ = tokio::fs::remove_dir_all(&scratch).await;
        let (model, rss_delta) = opened?;
        let sessions = self.config.sessions.max(1) as u64;
        // ONNX Runtime reports no per-session memory: charge what the load measurably added,
        // never less than twice the model's files per session, nor less than the floor.
        let charge = rss_delta.max(2 * model.file_bytes * sessions).max(self.config.min_charge);
        self.make_room(id, charge)?;
        self.used.fetch_add(charge, Ordering::Relaxed);
        Ok(Arc::new(Loaded::new(model, self.config.limits, self.config.sessions, charge, &self.metrics)))
    }

    /// Evicts least recently used, unpinned models until `charge` more bytes fit.
    fn make_room(&self, loading: &ModelId, charge: u64) -> Result<(), ServingError> {
        let budget = self.config.memory_budget;
        if charge > budget {
            return Err(ServingError::Unavailable(format!(
                "model {loading} needs about {charge} bytes, more than the whole memory budget of {budget}"
            )));
        }
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let pins = self.pins.lock().unwrap_or_else(PoisonError::into_inner);
        while self.used.load(Ordering::Relaxed) + charge > budget {
            let victim = slots
                .iter()
                .filter(|(id, _)| *id != loading && !pins.contains_key(*id))
                .filter_map(|(id, s)| {
                    s.get().and_then(|r| r.as_ref().ok()).map(|l| (id.clone(), l.last_used(), l.charge))
                })
                .min_by_key(|(_, used, _)| *used);
            let Some((id, _, freed)) = victim else {
                return Err(ServingError::Unavailable(format!(
                    "the memory budget of {budget} bytes is taken by models in use; model {loading} cannot be loaded now"
                )));
            };
            slots.remove(&id);
            self.used.fetch_sub(freed, Ordering::Relaxed);
            self.metrics.inc("slipway_serving_model_evictions_total", Vec::new(), 1.0);
            tracing::info!(model = %id, freed, "model evicted");
        }
        Ok(())
    }

    /// The cache's gauges for a scrape.
    pub fn gauges(&self) -> Vec<Gauge> {
        let loaded = self.loaded();
        let mut gauges = vec![
            Gauge { name: "slipway_serving_models_loaded", labels: Vec::new(), value: loaded.len() as f64 },
            Gauge { name: "slipway_serving_model_memory_bytes", labels: Vec::new(), value: self.memory_used() as f64 },
            Gauge {
                name: "slipway_serving_memory_budget_bytes",
                labels: Vec::new(),
                value: self.config.memory_budget as f64,
            },
        ];
        for l in loaded.iter().take(crate::metrics::MAX_MODELS) {
            gauges.push(Gauge {
                name: "slipway_serving_queue_depth",
                labels: l.metric_labels(),
                value: l.queue_depth() as f64,
            });
        }
        gauges
    }
}
