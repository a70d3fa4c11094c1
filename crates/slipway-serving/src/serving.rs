//! The serving domain: deployments and their routes, lazily served registry models, and the
//! request path from a picked model to its answer (batch queue, shadow copy, prediction log,
//! metrics). A deployment's route is an `Arc` swapped whole: a request takes it once and
//! keeps its models until it answers, so a hot swap never mixes versions or drops requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use slipway_predlog::{Column, ColumnData, Entry, PredictionLog};
use slipway_types::DeploymentSpec;

use crate::ServingError;
use crate::batch::Loaded;
use crate::cache::Cache;
use crate::metrics::{Gauge, Metrics};
use crate::model::ModelId;
use crate::source::Selector;
use crate::tensor::{Data, Named};

#[derive(Debug, Clone)]
pub struct ServingConfig {
    /// Longest a request may wait for its answer (queueing included).
    pub request_timeout: Duration,
    /// Longest a request waits for its model to load.
    pub load_timeout: Duration,
    pub max_body_bytes: usize,
    /// How long a resolved alias or `latest` is trusted for lazily served models.
    pub resolve_ttl: Duration,
}

impl Default for ServingConfig {
    fn default() -> Self {
        ServingConfig {
            request_timeout: Duration::from_secs(10),
            load_timeout: Duration::from_secs(30),
            max_body_bytes: 16 << 20,
            resolve_ttl: Duration::from_secs(1),
        }
    }
}

/// A deployment's models now.
pub struct Route {
    pub primary: Arc<Loaded>,
    pub canary: Option<(Arc<Loaded>, f64)>,
    pub shadow: Option<(Arc<Loaded>, f64)>,
}

impl Route {
    fn ids(&self) -> Vec<ModelId> {
        let mut ids = vec![self.primary.model.id.clone()];
        ids.extend(self.canary.iter().map(|c| c.0.model.id.clone()));
        ids.extend(self.shadow.iter().map(|s| s.0.model.id.clone()));
        ids
    }
}

/// A deployment as this process serves it: its spec and the route requests take now.
pub struct ActiveDeployment {
    pub spec: DeploymentSpec,
    route: RwLock<Arc<Route>>,
}

impl ActiveDeployment {
    pub fn route(&self) -> Arc<Route> {
        self.route.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Where a request goes.
pub enum Target<'a> {
    Deployment(&'a str),
    Model { name: String, selector: Selector },
}

/// The model a request was given to.
pub struct Assignment {
    pub deployment: Option<Arc<ActiveDeployment>>,
    pub loaded: Arc<Loaded>,
    pub role: &'static str,
    shadow: Option<(Arc<Loaded>, f64)>,
}

impl Assignment {
    pub fn deployment_name(&self) -> &str {
        self.deployment.as_ref().map_or("-", |d| d.spec.name.as_str())
    }
}

/// What the request path needs to know of the caller.
pub struct Call<'a> {
    pub request_id: &'a str,
    pub protocol: &'static str,
    pub started: Instant,
}

pub struct Serving {
    pub cache: Arc<Cache>,
    pub metrics: Arc<Metrics>,
    pub config: ServingConfig,
    predlog: Option<PredictionLog>,
    deployments: RwLock<BTreeMap<String, Arc<ActiveDeployment>>>,
    resolved: Mutex<HashMap<(String, Selector), (String, Instant)>>,
    random: AtomicU64,
    /// Gauges other parts of the server publish on `/metrics` (the monitors' latest values).
    published: RwLock<Vec<Gauge>>,
    /// Series read at each scrape from other parts of the server (the auth layer's counters),
    /// by the name they were registered under.
    sources: RwLock<BTreeMap<&'static str, MetricSource>>,
}

/// Series another part of the server exposes on `/metrics`, read when it is scraped.
pub type MetricSource = Arc<dyn Fn() -> Vec<Gauge> + Send + Sync>;

fn selector_of(alias: &Option<String>, version: &Option<String>) -> Selector {
    match (alias, version) {
        (Some(a), _) => Selector::Alias(a.clone()),
        (None, Some(v)) => Selector::Version(v.clone()),
        (None, None) => Selector::Latest,
    }
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

impl Serving {
    pub fn new(
        cache: Arc<Cache>,
        metrics: Arc<Metrics>,
        config: ServingConfig,
        predlog: Option<PredictionLog>,
    ) -> Serving {
        let seed = now_us() as u64 ^ u64::from(std::process::id());
        Serving {
            cache,
            metrics,
            config,
            predlog,
            deployments: RwLock::new(BTreeMap::new()),
            resolved: Mutex::new(HashMap::new()),
            random: AtomicU64::new(seed),
            published: RwLock::new(Vec::new()),
            sources: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn predlog(&self) -> Option<&PredictionLog> {
        self.predlog.as_ref()
    }

    /// A uniform number in [0, 1) (splitmix64 over a counter: cheap and good enough to split
    /// traffic).
    fn uniform(&self) -> f64 {
        let mut z = self.random.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn deployment(&self, name: &str) -> Option<Arc<ActiveDeployment>> {
        self.deployments.read().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
    }

    pub fn deployments(&self) -> Vec<Arc<ActiveDeployment>> {
        self.deployments.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    async fn load(&self, model: &str, selector: &Selector) -> Result<Arc<Loaded>, ServingError> {
        let version = self.cache.source().resolve(model, selector).await?;
        let id = ModelId { name: model.to_string(), version };
        tokio::time::timeout(self.config.load_timeout, self.cache.get(&id))
            .await
            .map_err(|_| ServingError::Unavailable(format!("model {id} is still loading; try again shortly")))?
    }

    /// Loads what `spec` names; an error says which part failed and leaves nothing changed.
    async fn build_route(&self, spec: &DeploymentSpec) -> Result<Route, ServingError> {
        let primary = self.load(&spec.model, &selector_of(&spec.alias, &spec.version)).await?;
        let mut route = Route { primary, canary: None, shadow: None };
        if let Some(c) = &spec.canary {
            let loaded =
                self.load(&spec.model, &selector_of(&c.alias, &c.version)).await.map_err(|e| with_role("canary", e))?;
            route.canary = Some((loaded, c.weight.unwrap_or(0.0)));
        }
        if let Some(s) = &spec.shadow {
            let loaded =
                self.load(&spec.model, &selector_of(&s.alias, &s.version)).await.map_err(|e| with_role("shadow", e))?;
            route.shadow = Some((loaded, s.weight.unwrap_or(1.0)));
        }
        for (loaded, _) in
            route.canary.iter().chain(route.shadow.iter()).chain(std::iter::once(&(route.primary.clone(), 1.0)))
        {
            loaded.set_batching(spec.max_batch_rows, spec.max_wait_us);
        }
        Ok(route)
    }

    /// Checks that `spec` can be served (its versions exist and run) without installing it.
    pub async fn check(&self, spec: &DeploymentSpec) -> Result<(), ServingError> {
        self.build_route(spec).await.map(drop)
    }

    /// Installs or replaces a deployment. Its models are loaded first; requests keep using
    /// the previous route until the new one is swapped in.
    pub async fn apply(&self, spec: &DeploymentSpec) -> Result<(), ServingError> {
        let route = Arc::new(self.build_route(spec).await?);
        for id in route.ids() {
            self.cache.pin(&id);
        }
        let old = {
            let mut deployments = self.deployments.write().unwrap_or_else(PoisonError::into_inner);
            match deployments.get(&spec.name) {
                Some(d) if d.spec == *spec => {
                    let mut slot = d.route.write().unwrap_or_else(PoisonError::into_inner);
                    Some(std::mem::replace(&mut *slot, route.clone()))
                }
                _ => {
                    let fresh = Arc::new(ActiveDeployment { spec: spec.clone(), route: RwLock::new(route.clone()) });
                    deployments.insert(spec.name.clone(), fresh).map(|d| d.route())
                }
            }
        };
        if let Some(old) = old {
            for id in old.ids() {
                self.cache.unpin(&id);
            }
            if old.primary.model.id != route.primary.model.id {
                tracing::info!(
                    deployment = %spec.name,
                    from = %old.primary.model.id.version,
                    to = %route.primary.model.id.version,
                    "deployment swapped to a new version"
                );
            }
        }
        Ok(())
    }

    pub fn remove(&self, name: &str) -> bool {
        let removed = self.deployments.write().unwrap_or_else(PoisonError::into_inner).remove(name);
        if let Some(d) = &removed {
            for id in d.route().ids() {
                self.cache.unpin(&id);
            }
        }
        removed.is_some()
    }

    /// Brings deployments in line with `specs` (the store's list) and follows moved aliases:
    /// new or changed specs are applied, missing ones removed, and a deployment whose alias
    /// now names another version is reloaded and swapped. Failures are logged and retried on
    /// the next call; the old route keeps serving.
    pub async fn reconcile(&self, specs: &[DeploymentSpec]) {
        // A reconcile follows a change (here or on another replica): lazily served aliases
        // are resolved afresh too.
        self.resolved.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let current: Vec<Arc<ActiveDeployment>> = self.deployments();
        for d in &current {
            if !specs.iter().any(|s| s.name == d.spec.name) {
                self.remove(&d.spec.name);
            }
        }
        for spec in specs {
            let stale = match self.deployment(&spec.name) {
                None => true,
                Some(d) if d.spec != *spec => true,
                Some(d) => self.moved(&d).await,
            };
            if stale && let Err(e) = self.apply(spec).await {
                tracing::warn!(deployment = %spec.name, error = %e, "deployment not (re)loaded; will retry");
            }
        }
    }

    /// Whether any alias the deployment follows names another version than its route.
    async fn moved(&self, d: &ActiveDeployment) -> bool {
        let route = d.route();
        let spec = &d.spec;
        let parts = [
            (selector_of(&spec.alias, &spec.version), Some(&route.primary)),
            (
                spec.canary.as_ref().map_or(Selector::Latest, |c| selector_of(&c.alias, &c.version)),
                route.canary.as_ref().map(|c| &c.0),
            ),
            (
                spec.shadow.as_ref().map_or(Selector::Latest, |s| selector_of(&s.alias, &s.version)),
                route.shadow.as_ref().map(|s| &s.0),
            ),
        ];
        for (selector, loaded) in parts {
            let Some(loaded) = loaded else { continue };
            if matches!(selector, Selector::Version(_)) {
                continue;
            }
            match self.cache.source().resolve(&spec.model, &selector).await {
                Ok(v) if v != loaded.model.id.version => return true,
                Ok(_) => {}
                Err(e) => tracing::debug!(deployment = %spec.name, error = %e, "cannot resolve a deployment's alias"),
            }
        }
        false
    }

    /// Resolves an alias or `latest` for a lazily served model, trusting an answer briefly.
    async fn resolve_cached(&self, name: &str, selector: &Selector) -> Result<String, ServingError> {
        if let Selector::Version(v) = selector {
            return Ok(v.clone());
        }
        let key = (name.to_string(), selector.clone());
        if let Some((v, at)) = self.resolved.lock().unwrap_or_else(PoisonError::into_inner).get(&key)
            && at.elapsed() < self.config.resolve_ttl
        {
            return Ok(v.clone());
        }
        let v = self.cache.source().resolve(name, selector).await?;
        let mut resolved = self.resolved.lock().unwrap_or_else(PoisonError::into_inner);
        if resolved.len() > 10_000 {
            resolved.clear();
        }
        resolved.insert(key, (v.clone(), Instant::now()));
        Ok(v)
    }

    /// Chooses the model that answers: the deployment's primary or canary, or a registry model.
    pub async fn pick(&self, target: &Target<'_>, route_key: Option<&str>) -> Result<Assignment, ServingError> {
        match target {
            Target::Deployment(name) => {
                let d = self
                    .deployment(name)
                    .ok_or_else(|| ServingError::NotFound(format!("no deployment named '{name}'")))?;
                let route = d.route();
                let draw = match route_key {
                    Some(key) => {
                        let h = key
                            .bytes()
                            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
                        (h >> 11) as f64 / (1u64 << 53) as f64
                    }
                    None => self.uniform(),
                };
                let (loaded, role) = match &route.canary {
                    Some((canary, weight)) if draw < *weight => (canary.clone(), "canary"),
                    _ => (route.primary.clone(), "primary"),
                };
                Ok(Assignment { shadow: route.shadow.clone(), deployment: Some(d), loaded, role })
            }
            Target::Model { name, selector } => {
                let version = self.resolve_cached(name, selector).await?;
                let id = ModelId { name: name.clone(), version };
                let loaded =
                    tokio::time::timeout(self.config.load_timeout, self.cache.get(&id)).await.map_err(|_| {
                        ServingError::Unavailable(format!("model {id} is still loading; try again shortly"))
                    })??;
                Ok(Assignment { deployment: None, loaded, role: "primary", shadow: None })
            }
        }
    }

    /// Runs a decoded request on the picked model and returns its outputs; copies it to the
    /// shadow and writes the prediction log when they apply.
    pub async fn execute(
        &self,
        picked: &Assignment,
        inputs: Vec<Named>,
        rows: usize,
        call: &Call<'_>,
    ) -> Result<Vec<Named>, ServingError> {
        let shadow_inputs = match &picked.shadow {
            Some((_, share)) if self.uniform() < *share => Some(inputs.clone()),
            _ => None,
        };
        let (inputs, outputs) = self.run(&picked.loaded, inputs, rows, call.started).await?;
        let deployment = picked.deployment_name().to_string();
        let sample = picked.deployment.as_ref().map_or(0.0, |d| d.spec.log_sample.unwrap_or(1.0));
        if let Some(log) = &self.predlog
            && sample > 0.0
            && (sample >= 1.0 || self.uniform() < sample)
        {
            log.record(entry(&deployment, &picked.loaded, picked.role, call, rows, &inputs, &outputs));
        }
        if let (Some(shadow_inputs), Some((shadow, _))) = (shadow_inputs, picked.shadow.clone()) {
            let this_log = self.predlog.clone();
            let request_id = call.request_id.to_string();
            let protocol = call.protocol;
            let metrics = self.metrics.clone();
            let cache = self.cache.clone();
            let timeout = self.config.request_timeout;
            tokio::spawn(async move {
                let started = Instant::now();
                let Ok(rx) = cache.workers().submit(&shadow, shadow_inputs, rows, started + timeout) else {
                    metrics.inc("slipway_serving_shadow_dropped_total", vec![("deployment", deployment)], 1.0);
                    return;
                };
                if let Ok(Ok(Ok((inputs, outputs)))) = tokio::time::timeout(timeout, rx).await
                    && let Some(log) = this_log
                {
                    let call = Call { request_id: &request_id, protocol, started };
                    log.record(entry(&deployment, &shadow, "shadow", &call, rows, &inputs, &outputs));
                }
            });
        }
        Ok(outputs)
    }

    async fn run(
        &self,
        loaded: &Arc<Loaded>,
        inputs: Vec<Named>,
        rows: usize,
        started: Instant,
    ) -> Result<(Vec<Named>, Vec<Named>), ServingError> {
        let deadline = started + self.config.request_timeout;
        if Instant::now() >= deadline {
            return Err(ServingError::Timeout("the request timed out before it ran".into()));
        }
        let inputs = match self.cache.workers().try_inline(loaded, inputs, rows) {
            Ok(reply) => return reply,
            Err(inputs) => inputs,
        };
        let rx = self.cache.workers().submit(loaded, inputs, rows, deadline)?;
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(ServingError::Unavailable("the inference worker stopped".into())),
            Err(_) => Err(ServingError::Timeout(format!(
                "no answer within the request timeout of {} ms",
                self.config.request_timeout.as_millis()
            ))),
        }
    }

    /// Counts one answered request.
    pub fn observe(
        &self,
        deployment: &str,
        model: Option<&Loaded>,
        protocol: &'static str,
        status: u16,
        started: Instant,
    ) {
        let (name, version) = match model {
            Some(m) => {
                let mut labels = m.metric_labels().into_iter();
                (labels.next().map_or_else(String::new, |l| l.1), labels.next().map_or_else(String::new, |l| l.1))
            }
            None => ("-".to_string(), "-".to_string()),
        };
        let base = vec![
            ("deployment", deployment.to_string()),
            ("model", name),
            ("version", version),
            ("protocol", protocol.to_string()),
        ];
        let mut with_code = base.clone();
        with_code.push(("code", status.to_string()));
        self.metrics.inc("slipway_serving_requests_total", with_code, 1.0);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.metrics.tick(deployment, now);
        self.metrics.observe_latency("slipway_serving_request_duration_seconds", base, started.elapsed().as_secs_f64());
    }

    /// Replaces the gauges published beside serving's own on `/metrics`.
    pub fn publish_gauges(&self, gauges: Vec<Gauge>) {
        *self.published.write().unwrap_or_else(PoisonError::into_inner) = gauges;
    }

    /// Adds (or replaces, under the same `key`) series read at every scrape of `/metrics`.
    pub fn set_metric_source(&self, key: &'static str, source: MetricSource) {
        self.sources.write().unwrap_or_else(PoisonError::into_inner).insert(key, source);
    }

    /// The exposition text for `/metrics`.
    pub fn render_metrics(&self) -> String {
        let mut gauges: Vec<Gauge> = self.cache.gauges();
        gauges.extend(self.published.read().unwrap_or_else(PoisonError::into_inner).iter().cloned());
        for source in self.sources.read().unwrap_or_else(PoisonError::into_inner).values() {
            gauges.extend(source());
        }
        if let Some(log) = &self.predlog {
            for d in self.deployments() {
                let name = d.spec.name.clone();
                gauges.push(Gauge {
                    name: "slipway_serving_predictions_logged_total",
                    labels: vec![("deployment", name.clone())],
                    value: log.logged_total(&name) as f64,
                });
                gauges.push(Gauge {
                    name: "slipway_serving_prediction_log_dropped_total",
                    labels: vec![("deployment", name.clone())],
                    value: log.dropped_total(&name) as f64,
                });
            }
        }
        self.metrics.render(&gauges)
    }
}

fn with_role(role: &str, e: ServingError) -> ServingError {
    match e {
        ServingError::NotFound(m) => ServingError::NotFound(format!("{role}: {m}")),
        ServingError::NotServable(m) => ServingError::NotServable(format!("{role}: {m}")),
        other => other,
    }
}

fn column(n: &Named) -> Column {
    let width = n.tensor.row_width();
    let data = match &n.tensor.data {
        Data::Bool(v) => ColumnData::Bool(v.clone()),
        Data::I8(v) => ColumnData::I32(v.iter().map(|x| i32::from(*x)).collect()),
        Data::I16(v) => ColumnData::I32(v.iter().map(|x| i32::from(*x)).collect()),
        Data::I32(v) => ColumnData::I32(v.clone()),
        Data::I64(v) => ColumnData::I64(v.clone()),
        Data::U8(v) => ColumnData::I32(v.iter().map(|x| i32::from(*x)).collect()),
        Data::U16(v) => ColumnData::I32(v.iter().map(|x| i32::from(*x)).collect()),
        Data::U32(v) => ColumnData::I64(v.iter().map(|x| i64::from(*x)).collect()),
        Data::U64(v) => ColumnData::I64(v.iter().map(|x| *x as i64).collect()),
        Data::F32(v) => ColumnData::F32(v.clone()),
        Data::F64(v) => ColumnData::F64(v.clone()),
        Data::Str(v) => ColumnData::Str(v.clone()),
    };
    Column { name: n.name.clone(), width, data }
}

fn entry(
    deployment: &str,
    loaded: &Loaded,
    role: &'static str,
    call: &Call<'_>,
    rows: usize,
    inputs: &[Named],
    outputs: &[Named],
) -> Entry {
    Entry {
        request_id: call.request_id.to_string(),
        timestamp_us: now_us(),
        deployment: deployment.to_string(),
        model: loaded.model.id.name.clone(),
        version: loaded.model.id.version.clone(),
        role,
        protocol: call.protocol,
        status: 200,
        latency_us: call.started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32,
        rows,
        inputs: inputs.iter().map(column).collect(),
        outputs: outputs.iter().map(column).collect(),
    }
}
