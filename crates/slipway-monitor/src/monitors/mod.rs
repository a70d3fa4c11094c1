//! Monitors on deployments, run: which windows of a monitor need (re)computing, their rows
//! read from the prediction log, the series computed against the reference and ground truth,
//! stored, and the alert rules checked over them.
//!
//! A window `[start, start + W)` is computed once it has ended, and computed again while its
//! data may still be arriving (until [`SETTLE_MS`] after its end: segments are uploaded when
//! they roll) and whenever labels for the deployment arrived after it was computed. The
//! latest [`LOOKBACK_WINDOWS`] windows are considered; older ones stay as they were stored.
//!
//! [`Monitors::run`] evaluates every monitor on an interval on whichever process, of all
//! sharing a database, holds the `monitors` lease, and feeds the labeling queues that
//! predictions route to (`feed.rs`); [`Monitors::evaluate_now`] does one at once.

pub mod alerts;
mod evaluate;
mod feed;
mod reference;
pub mod window;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use slipway_artifacts::Artifacts;
use slipway_store::MetadataStore;
use slipway_types::{Monitor, MonitorSpec, MonitorWindow};
use tokio::sync::Notify;

pub use evaluate::drift_options;
pub use reference::ReferenceData;

use crate::MonitorError;
use alerts::Webhooks;
use reference::References;
use window::{Naming, WindowRows, add_batch};

/// Windows looked at on each evaluation, the latest first.
pub const LOOKBACK_WINDOWS: i64 = 168;
/// How long after its end a window is still recomputed: the prediction log uploads a
/// segment when it rolls (every minute by default), so late rows land within this.
pub const SETTLE_MS: i64 = 90_000;

/// The lease under which one server process, of all sharing a database, evaluates monitors
/// and delivers their alerts.
const LEASE: &str = "monitors";

/// Evaluates monitors and delivers their alerts; what it keeps between passes.
pub struct Monitors {
    store: Arc<dyn MetadataStore>,
    artifacts: Artifacts,
    references: References,
    webhooks: Webhooks,
    /// One evaluation at a time, so the loop and an explicit call do not race.
    pass: tokio::sync::Mutex<()>,
    /// This process's name in the monitor lease.
    holder: String,
    /// Woken after every pass of the loop, so whoever publishes results reads them again.
    passed: Arc<Notify>,
}

impl Monitors {
    pub fn new(store: Arc<dyn MetadataStore>, artifacts: Artifacts) -> Monitors {
        Monitors {
            webhooks: Webhooks::new(store.clone()),
            store,
            artifacts,
            references: References::default(),
            pass: tokio::sync::Mutex::default(),
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            passed: Arc::new(Notify::new()),
        }
    }

    /// What the store's validation cannot check: drift method names, declared types, an
    /// uploaded schema, and that the deployment exists.
    pub async fn check(&self, spec: &MonitorSpec) -> Result<(), MonitorError> {
        slipway_store::validate::monitor(spec)?;
        drift_options(spec)?;
        evaluate::column_types(spec)?;
        evaluate::uploaded_schema(spec)?;
        self.store.get_deployment(spec.deployment.clone()).await?;
        Ok(())
    }

    /// Drops what was read for a monitor that changed or went.
    pub fn forget(&self, monitor: &str) {
        self.references.forget(monitor);
    }

    /// Notified after each pass of [`Monitors::run`].
    pub fn passes(&self) -> Arc<Notify> {
        self.passed.clone()
    }

    /// Evaluates one monitor now (waiting for a pass in progress to end); returns the windows
    /// it stored.
    pub async fn evaluate_now(&self, m: &Monitor) -> Result<Vec<MonitorWindow>, MonitorError> {
        let _pass = self.pass.lock().await;
        self.evaluate_one(m).await
    }

    async fn evaluate_one(&self, m: &Monitor) -> Result<Vec<MonitorWindow>, MonitorError> {
        let evaluated = self.evaluate(m, slipway_store::now_ms()).await?;
        if let (Some(first), Some(last)) = (evaluated.first(), evaluated.last())
            && !m.spec.alerts.is_empty()
        {
            let w = m.spec.window_ms().max(1);
            let from = first.start_ms - alerts::history_windows(m) * w;
            let history = self.store.list_monitor_windows(m.spec.name.clone(), from, last.end_ms).await?;
            let starts = evaluated.iter().map(|x| x.start_ms).collect();
            alerts::check(&self.webhooks, m, &history, &starts).await?;
        }
        Ok(evaluated)
    }

    /// Evaluates every window of `m` that needs it, up to the last one ended by `now_ms`;
    /// returns the windows it stored.
    async fn evaluate(&self, m: &Monitor, now_ms: i64) -> Result<Vec<MonitorWindow>, MonitorError> {
        let spec = &m.spec;
        let w = spec.window_ms().max(1);
        let last_end = now_ms.div_euclid(w) * w;
        let first = last_end - LOOKBACK_WINDOWS * w;
        let stored: HashMap<i64, MonitorWindow> = self
            .store
            .list_monitor_windows(spec.name.clone(), first, last_end)
            .await?
            .into_iter()
            .map(|x| (x.start_ms, x))
            .collect();
        let labels_at = self.store.ground_truth_updated(spec.deployment.clone()).await?.unwrap_or(i64::MIN);
        let needed: Vec<i64> = (0..LOOKBACK_WINDOWS)
            .map(|i| first + i * w)
            .filter(|start| match stored.get(start) {
                None => true,
                Some(x) => x.computed_at < x.end_ms + SETTLE_MS || labels_at >= x.computed_at,
            })
            .collect();
        let (Some(&from), Some(&last)) = (needed.first(), needed.last()) else { return Ok(Vec::new()) };
        let to = last + w;

        let reference = self.references.get(self.store.as_ref(), &self.artifacts, m).await?;
        let naming = Naming {
            features: spec.features.as_deref(),
            prediction: spec.prediction.as_deref(),
            probabilities: spec.probabilities.as_deref(),
        };
        let mut rows: BTreeMap<i64, WindowRows> = BTreeMap::new();
        let log = |e: slipway_predlog::PredlogError| MonitorError::PredictionLog(e.to_string());
        let segments =
            slipway_predlog::list_segments_between(&self.artifacts, &spec.deployment, from * 1000, to * 1000)
                .await
                .map_err(log)?;
        for path in segments {
            let batches = slipway_predlog::read_segment(&self.artifacts, &path).await.map_err(log)?;
            for b in &batches {
                add_batch(b, from, to, w, &naming, &mut rows);
            }
        }
        let options = drift_options(spec)?;
        let mut out = Vec::new();
        for start in needed {
            let window = rows.remove(&start);
            let ids: Vec<String> = match &window {
                Some(r) => {
                    let unique: HashSet<&str> = r.keys.iter().map(|(id, _)| id.as_str()).collect();
                    unique.into_iter().map(str::to_string).collect()
                }
                None => Vec::new(),
            };
            let labels = if ids.is_empty() {
                Vec::new()
            } else {
                self.store.get_ground_truth(spec.deployment.clone(), ids).await?
            };
            let (spec, reference, options) = (spec.clone(), reference.clone(), options.clone());
            let computed = tokio::task::spawn_blocking(move || {
                evaluate::compute(&spec, &reference, &options, start, w, window, labels, slipway_store::now_ms())
            })
            .await
            .map_err(|e| MonitorError::Internal(format!("a window's computation stopped: {e}")))?;
            self.store.put_monitor_window(computed.clone()).await?;
            out.push(computed);
        }
        Ok(out)
    }

    /// Evaluates every monitor every `interval` until the process ends, on whichever server
    /// process holds the monitor lease (one of all the replicas on a database; it lapses
    /// after three intervals without renewal). A process that becomes the holder first
    /// resumes the alert deliveries a previous holder left pending. Every pass, led or not,
    /// ends with [`Monitors::passes`] notified, so every replica publishes stored results.
    pub fn run(self: Arc<Self>, interval: Duration) {
        tokio::spawn(async move {
            let ttl_ms = i64::try_from(interval.as_millis() * 3).unwrap_or(i64::MAX);
            let mut leading = false;
            loop {
                let lead = match self.store.take_lease(LEASE.into(), self.holder.clone(), ttl_ms).await {
                    Ok(lead) => lead,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take the monitor lease; not evaluating this pass");
                        false
                    }
                };
                if lead && !leading {
                    tracing::info!("this server now evaluates monitors");
                    alerts::resume(&self.webhooks).await;
                }
                leading = lead;
                match self.store.list_monitors().await {
                    Ok(all) if lead => {
                        let _pass = self.pass.lock().await;
                        for m in all {
                            if let Err(e) = self.evaluate_one(&m).await {
                                e.log_for(&m.spec.name);
                            }
                        }
                        self.feed_all().await;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot list monitors"),
                }
                self.passed.notify_one();
                tokio::time::sleep(interval).await;
            }
        });
    }

    /// Gives the monitor lease up at shutdown, so another replica takes over at its next pass
    /// instead of after the lease lapses.
    pub async fn step_down(&self) {
        if let Err(e) = self.store.release_lease(LEASE.into(), self.holder.clone()).await {
            tracing::warn!(error = %e, "cannot release the monitor lease; it lapses on its own");
        }
    }
}

/// The start of the windows an evaluation looks at: older ones are history, not news.
pub fn recent(m: &Monitor) -> i64 {
    slipway_store::now_ms() - LOOKBACK_WINDOWS * m.spec.window_ms().max(1)
}
