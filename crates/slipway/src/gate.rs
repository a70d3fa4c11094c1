//! `slipway gate`: the challenger-vs-champion gate for CI/CD. A candidate version and the
//! version `--champion-alias` names are fetched from the tracking server's registry, scored
//! on the holdout by `slipway-gate` through the serving runtime, and the verdict is acted on
//! (tags, `--promote`'s alias) and logged to the run. This module parses flags, carries the
//! registry calls over HTTP, writes the reports and sets the exit status: 0 on a pass, 3 on
//! a rejection, 1 on an error.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use clap::Args;
use serde_json::json;
use slipway_gate::{BoxError, GateSpec, Holdout, Metric, Registry, Rule};

use crate::client::{Api, ServerArgs};
use crate::output;
use crate::serve::{ART, HttpSource, REG, proxied_path};
use crate::serving::{Settings, build};

/// Exit status when the candidate is rejected (errors exit 1).
pub const REJECTED_EXIT_CODE: i32 = 3;

#[derive(Args)]
pub struct GateArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The registered model.
    #[arg(long)]
    model: String,
    /// The candidate version: a number, or `latest` (the model's newest version, as a
    /// pipeline's gate step names the version its training step just registered).
    #[arg(long, value_name = "VERSION")]
    candidate: String,
    /// The alias naming the version to beat; when no version holds it, the candidate passes
    /// on its own.
    #[arg(long, default_value = "champion", value_name = "ALIAS")]
    champion_alias: String,
    /// The holdout (.csv or .parquet): the features and the label column.
    #[arg(long, value_name = "PATH")]
    data: PathBuf,
    /// The label column; every other column is a feature.
    #[arg(long, value_name = "COLUMN")]
    label: String,
    /// accuracy, precision, recall, f1, roc_auc, r2 (higher is better) or mae, rmse (lower is
    /// better).
    #[arg(long)]
    metric: String,
    /// How much better than the champion the candidate must be, in the metric's units.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    min_delta: f64,
    /// Reject a candidate whose p95 single-row latency is above this, in milliseconds.
    #[arg(long, value_name = "MS")]
    max_latency_ms: Option<f64>,
    /// Single-row requests timed per model.
    #[arg(long, default_value_t = slipway_gate::DEFAULT_LATENCY_SAMPLE, value_name = "ROWS")]
    latency_sample: usize,
    /// On a pass, point this alias at the candidate (deployments that follow it hot-swap).
    #[arg(long, value_name = "ALIAS")]
    promote: Option<String>,
    /// Write the HTML report here.
    #[arg(long, default_value = "gate-report.html", value_name = "PATH")]
    report: PathBuf,
    /// The run to log the metrics and reports to; its id names the actor of the registry
    /// changes in the audit log (`pipeline-run:<id>`).
    #[arg(long, env = "MLFLOW_RUN_ID", value_name = "RUN_ID")]
    run_id: Option<String>,
    /// The ONNX Runtime library (default: found through ORT_DYLIB_PATH, ./.slipway, python3).
    #[arg(long, env = "SLIPWAY_ONNXRUNTIME_LIB")]
    onnxruntime_lib: Option<PathBuf>,
}

/// The registry and the run over the tracking server's REST API.
struct HttpRegistry {
    api: Api,
    /// The run's artifact directory under the proxy, when there is a run.
    run_root: Option<String>,
}

#[async_trait]
impl Registry for HttpRegistry {
    async fn set_alias(&self, model: &str, alias: &str, version: &str) -> Result<(), BoxError> {
        let body = json!({ "name": model, "alias": alias, "version": version });
        self.api.call("POST", &format!("{REG}/registered-models/alias"), &[], Some(body)).await?;
        Ok(())
    }

    async fn set_version_tag(&self, model: &str, version: &str, key: &str, value: &str) -> Result<(), BoxError> {
        let body = json!({ "name": model, "version": version, "key": key, "value": value });
        self.api.call("POST", &format!("{REG}/model-versions/set-tag"), &[], Some(body)).await?;
        Ok(())
    }

    async fn log_metrics(&self, run_id: &str, metrics: &[(String, f64)]) -> Result<(), BoxError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let metrics: Vec<_> =
            metrics.iter().map(|(k, v)| json!({ "key": k, "value": v, "timestamp": now, "step": 0 })).collect();
        let body = json!({ "run_id": run_id, "metrics": metrics });
        self.api.call("POST", &format!("{REG}/runs/log-batch"), &[], Some(body)).await?;
        Ok(())
    }

    async fn log_artifact(&self, run_id: &str, path: &str, bytes: Vec<u8>) -> Result<(), BoxError> {
        let Some(root) = &self.run_root else { return Err(format!("run {run_id} has no proxied artifacts").into()) };
        self.api.put_bytes(&format!("{ART}/{root}/{path}"), bytes.into()).await?;
        Ok(())
    }
}

/// The run's artifact directory under the proxy; fails early for an unknown run.
async fn run_root(api: &Api, run_id: &str) -> anyhow::Result<String> {
    let run = api.call("GET", &format!("{REG}/runs/get"), &[("run_id", run_id)], None).await?;
    let uri = run["run"]["info"]["artifact_uri"].as_str().unwrap_or_default();
    match proxied_path(uri) {
        Some(root) if !root.is_empty() => Ok(root.trim_end_matches('/').to_string()),
        _ => bail!("run {run_id} keeps its artifacts at '{uri}', which the tracking server does not proxy"),
    }
}

/// The model's highest version number (the newest of each stage's latest).
async fn latest_version(tracking_uri: &str, model: &str) -> anyhow::Result<String> {
    let api = Api::new(tracking_uri)?;
    let m = api.call("GET", &format!("{REG}/registered-models/get"), &[("name", model)], None).await?;
    let newest = m["registered_model"]["latest_versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["version"].as_str()?.parse::<u64>().ok())
        .max();
    newest.map(|v| v.to_string()).with_context(|| format!("model '{model}' has no versions to gate"))
}

pub fn run(args: GateArgs) -> anyhow::Result<()> {
    let metric = Metric::parse(&args.metric)?;
    slipway_serving::runtime::locate(args.onnxruntime_lib.as_deref())?;
    let holdout = Holdout::read(&args.data, &args.label)?;
    let run_id = args.run_id.clone().filter(|r| !r.is_empty());
    let spec = GateSpec {
        model: args.model.clone(),
        candidate: args.candidate.clone(),
        champion_alias: args.champion_alias.clone(),
        rule: Rule { metric, min_delta: args.min_delta, max_latency_ms: args.max_latency_ms },
        latency_sample: args.latency_sample,
        run_id: run_id.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut spec = spec;
    if spec.candidate == "latest" {
        spec.candidate = rt.block_on(latest_version(&args.server.tracking_uri, &spec.model))?;
    }
    let report = rt.block_on(gate(&args, &spec, &holdout))?;
    if args.server.json {
        output::to_stdout(|out| {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)
        })?;
    } else {
        output::to_stdout(|out| {
            writeln!(out, "{}", report.summary())?;
            for action in &report.actions {
                writeln!(out, "  {action}")?;
            }
            writeln!(out, "report written to {}", args.report.display())
        })?;
    }
    if !report.passed {
        std::process::exit(REJECTED_EXIT_CODE);
    }
    Ok(())
}

async fn gate(args: &GateArgs, spec: &GateSpec, holdout: &Holdout) -> anyhow::Result<slipway_gate::Report> {
    let mut api = Api::new(&args.server.tracking_uri)?;
    let mut root = None;
    if let Some(run) = &spec.run_id {
        root = Some(run_root(&api, run).await.with_context(|| format!("cannot log to run {run}"))?);
        // Inside a pipeline the actor is the pipeline run the gate step belongs to.
        let pipeline_run = std::env::var("SLIPWAY_PIPELINE_RUN_ID").ok().filter(|r| !r.is_empty());
        api = api.with_actor(slipway_gate::actor_for_run(pipeline_run.as_deref().unwrap_or(run)));
    }
    let registry = HttpRegistry { api, run_root: root };
    let scratch = std::env::temp_dir().join(format!("slipway-gate-{}", std::process::id()));
    // One worker and one session: requests run one at a time, so the latency sample times a
    // model alone, as an idle deployment answers.
    let settings = Settings {
        memory_budget: u64::MAX,
        queue_capacity: 1024,
        max_batch_rows: 64,
        max_wait_us: 0,
        request_timeout: Duration::from_secs(120),
        max_body_bytes: 16 << 20,
        workers: Some(1),
        sessions: Some(1),
        onnxruntime_lib: args.onnxruntime_lib.clone(),
        scratch_dir: scratch.clone(),
    };
    let source = Arc::new(HttpSource { api: Api::new(&args.server.tracking_uri)? });
    let serving = build(settings, source, None).context("starting the inference worker")?;
    let evaluated = slipway_gate::evaluate(&serving, spec, holdout).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let mut report = evaluated?;
    let applied = slipway_gate::apply(&mut report, &registry, args.promote.as_deref()).await;
    let html = slipway_gate::html::render(&report);
    std::fs::write(&args.report, html).with_context(|| format!("cannot write {}", args.report.display()))?;
    applied?;
    if let Some(run) = &spec.run_id {
        slipway_gate::log_to_run(&report, &registry, run).await?;
    }
    Ok(report)
}
