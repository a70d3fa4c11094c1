//! `slipway serve MODEL_URI`: one model over the MLflow scoring protocol (the drop-in for
//! `mlflow models serve`), V2, V1 and `/metrics`. The model comes from a tracking server
//! (`models:/name@alias`, `models:/name/3`), fetched over its REST API, or from a local
//! MLflow model directory. An alias is polled and followed: a move loads the new version in
//! the background and swaps it in.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use clap::Args;
use serde_json::{Value, json};
use slipway_serving::ServingError;
use slipway_serving::source::{LocalSource, ModelSource, Selector};
use slipway_types::DeploymentSpec;

use crate::client::Api;
use crate::serving::{Settings, build, cores};

#[derive(Args)]
pub struct ServeArgs {
    /// models:/NAME@ALIAS, models:/NAME/VERSION, or a local MLflow model directory.
    model_uri: String,
    #[arg(long, env = "SLIPWAY_HOST", default_value = "127.0.0.1")]
    host: String,
    #[arg(long, short, default_value_t = 5001)]
    port: u16,
    /// The tracking server that holds the registry (default $MLFLOW_TRACKING_URI, else http://127.0.0.1:5000).
    #[arg(long, env = "MLFLOW_TRACKING_URI", default_value = "http://127.0.0.1:5000")]
    tracking_uri: String,
    /// Rows one batch may stack.
    #[arg(long, default_value_t = 64)]
    max_batch_rows: usize,
    /// Longest a batch waits for more requests, in microseconds (0: never wait).
    #[arg(long, default_value_t = 0)]
    max_wait_us: u64,
    /// Requests that may queue before the server answers 429.
    #[arg(long, default_value_t = 1024)]
    queue_capacity: usize,
    /// Longest a request may wait for its answer, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_body_bytes: usize,
    /// Inference worker threads (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// How often the alias is checked, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    poll_ms: u64,
    /// The ONNX Runtime library (default: found through ORT_DYLIB_PATH, ./.slipway, python3).
    #[arg(long, env = "SLIPWAY_ONNXRUNTIME_LIB")]
    onnxruntime_lib: Option<PathBuf>,
    /// The name V2 and V1 clients use (default: the registered model's name, or `model` for
    /// a local directory).
    #[arg(long)]
    name: Option<String>,
    /// Log filter, e.g. info or slipway_serving=debug.
    #[arg(long, env = "SLIPWAY_LOG_LEVEL", default_value = "info")]
    log_level: String,
}

/// What the URI names: a registered model and which version, or a directory.
fn parse_uri(uri: &str) -> anyhow::Result<(String, Selector, Option<PathBuf>)> {
    if let Some(rest) = uri.strip_prefix("models:/") {
        let (name, selector) = match rest.split_once('@') {
            Some((name, alias)) => (name, Selector::Alias(alias.to_string())),
            None => match rest.rsplit_once('/') {
                Some((name, v)) => (name, Selector::parse(v)),
                None => (rest, Selector::Latest),
            },
        };
        if name.is_empty() || matches!(&selector, Selector::Alias(a) if a.is_empty()) {
            bail!("model URI '{uri}' must look like models:/NAME@ALIAS or models:/NAME/VERSION");
        }
        return Ok((name.to_string(), selector, None));
    }
    let dir = PathBuf::from(uri);
    if !dir.join("MLmodel").is_file() {
        bail!("'{uri}' is neither models:/NAME@ALIAS, models:/NAME/VERSION nor a directory with an MLmodel file");
    }
    Ok(("model".to_string(), Selector::Version("1".into()), Some(dir)))
}

/// A tracking server's registry and artifacts over its REST API (`slipway gate` loads its
/// models through it too).
pub(crate) struct HttpSource {
    pub(crate) api: Api,
}

fn remote(e: anyhow::Error) -> ServingError {
    let text = format!("{e:#}");
    if text.contains("RESOURCE_DOES_NOT_EXIST") || text.contains("INVALID_PARAMETER_VALUE") {
        ServingError::NotFound(text)
    } else {
        ServingError::Unavailable(format!("the tracking server did not answer: {text}"))
    }
}

/// The path under the artifact proxy of an `mlflow-artifacts:` URI (with or without a
/// host); `None` for a location the tracking server does not proxy.
pub(crate) fn proxied_path(uri: &str) -> Option<String> {
    uri.strip_prefix("mlflow-artifacts:")
        .map(|r| match r.strip_prefix("//") {
            Some(with_host) => with_host.split_once('/').map_or("", |(_, p)| p),
            None => r.trim_start_matches('/'),
        })
        .map(str::to_string)
}

pub(crate) const REG: &str = "/api/2.0/mlflow";
pub(crate) const ART: &str = "/api/2.0/mlflow-artifacts/artifacts";

#[async_trait]
impl ModelSource for HttpSource {
    async fn resolve(&self, model: &str, selector: &Selector) -> Result<String, ServingError> {
        let version_of = |v: &Value| v["model_version"]["version"].as_str().map(str::to_string);
        let found = match selector {
            Selector::Alias(alias) => {
                let v = self
                    .api
                    .call("GET", &format!("{REG}/registered-models/alias"), &[("name", model), ("alias", alias)], None)
                    .await;
                version_of(&v.map_err(remote)?)
            }
            Selector::Version(version) => {
                let v = self
                    .api
                    .call("GET", &format!("{REG}/model-versions/get"), &[("name", model), ("version", version)], None)
                    .await;
                version_of(&v.map_err(remote)?)
            }
            Selector::Latest => {
                let body = json!({ "name": model });
                let v = self
                    .api
                    .call("POST", &format!("{REG}/registered-models/get-latest-versions"), &[], Some(body))
                    .await;
                let v = v.map_err(remote)?;
                v["model_versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|mv| mv["version"].as_str().and_then(|s| s.parse::<u64>().ok()))
                    .max()
                    .map(|n| n.to_string())
            }
        };
        found.ok_or_else(|| ServingError::NotFound(format!("registered model '{model}' has no {selector}")))
    }

    async fn fetch(&self, model: &str, version: &str, scratch: &Path) -> Result<PathBuf, ServingError> {
        let v = self
            .api
            .call(
                "GET",
                &format!("{REG}/model-versions/get-download-uri"),
                &[("name", model), ("version", version)],
                None,
            )
            .await
            .map_err(remote)?;
        let uri = v["artifact_uri"].as_str().unwrap_or_default().to_string();
        let root = proxied_path(&uri).ok_or_else(|| {
            ServingError::NotServable(format!(
                "model version {model}/{version} lives at '{uri}', which is not served by the tracking server"
            ))
        })?;
        let mut dirs = vec![root.clone()];
        let mut files = 0;
        while let Some(dir) = dirs.pop() {
            let listed = self.api.call("GET", ART, &[("path", &dir)], None).await.map_err(remote)?;
            for f in listed["files"].as_array().into_iter().flatten() {
                let Some(path) = f["path"].as_str() else { continue };
                let full = format!("{dir}/{path}");
                if f["is_dir"].as_bool().unwrap_or(false) {
                    dirs.push(full);
                    continue;
                }
                let rel = full.strip_prefix(&root).unwrap_or(&full).trim_start_matches('/');
                if rel.split('/').any(|s| s == ".." || s == "." || s.is_empty()) {
                    return Err(ServingError::NotServable(format!(
                        "the tracking server listed an unsafe path '{rel}'"
                    )));
                }
                let bytes = self.api.get_bytes(&format!("{ART}/{full}")).await.map_err(remote)?;
                let target = scratch.join(rel);
                let write = async {
                    if let Some(parent) = target.parent() {
                        tokio::fs::create_dir_all(parent).await?;
                    }
                    tokio::fs::write(&target, &bytes).await
                };
                write
                    .await
                    .map_err(|e| ServingError::Unavailable(format!("cannot write {}: {e}", target.display())))?;
                files += 1;
            }
        }
        if files == 0 {
            return Err(ServingError::NotServable(format!("model version {model}/{version} has no files at '{uri}'")));
        }
        Ok(scratch.to_path_buf())
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid log level '{}'", args.log_level))?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let (registered, selector, dir) = parse_uri(&args.model_uri)?;
    let name = args.name.clone().unwrap_or_else(|| registered.clone());
    if let Err(e) = slipway_serving::runtime::locate(args.onnxruntime_lib.as_deref()) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let workers = args.workers.unwrap_or_else(cores).max(1);
    tokio::runtime::Builder::new_multi_thread().worker_threads(workers.max(2)).enable_all().build()?.block_on(serve(
        args,
        (name, registered),
        selector,
        dir,
        workers,
    ))
}

/// `names`: what clients call the model, and its registered name.
async fn serve(
    args: ServeArgs,
    names: (String, String),
    selector: Selector,
    dir: Option<PathBuf>,
    workers: usize,
) -> anyhow::Result<()> {
    let (name, registered) = names;
    let source: Arc<dyn ModelSource> = match dir {
        Some(dir) => Arc::new(LocalSource { dir }),
        None => Arc::new(HttpSource { api: Api::new(&args.tracking_uri)? }),
    };
    let scratch = std::env::temp_dir().join(format!("slipway-serve-{}", std::process::id()));
    let settings = Settings {
        memory_budget: u64::MAX,
        queue_capacity: args.queue_capacity,
        max_batch_rows: args.max_batch_rows,
        max_wait_us: args.max_wait_us,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        max_body_bytes: args.max_body_bytes,
        workers: Some(workers),
        sessions: Some(workers),
        onnxruntime_lib: args.onnxruntime_lib.clone(),
        scratch_dir: scratch.clone(),
    };
    let serving = build(settings, source, None).context("starting the inference workers")?;
    let (alias, version) = match &selector {
        Selector::Alias(a) => (Some(a.clone()), None),
        Selector::Version(v) => (None, Some(v.clone())),
        Selector::Latest => (None, None),
    };
    let spec = DeploymentSpec { name: name.clone(), model: registered, alias, version, ..DeploymentSpec::default() };
    if let Err(e) = serving.apply(&spec).await {
        eprintln!("error: cannot serve {}: {e}", args.model_uri);
        std::process::exit(2);
    }
    let follower = serving.clone();
    let poll = Duration::from_millis(args.poll_ms.max(1));
    let followed = spec.clone();
    if !matches!(selector, Selector::Version(_)) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                follower.reconcile(std::slice::from_ref(&followed)).await;
            }
        });
    }
    let app = slipway_serving::http::standalone(serving, name);
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(address = %listener.local_addr()?, model = %args.model_uri, "slipway serve listening");
    slipway_server::serve(listener, app, crate::server::shutdown_signal()).await?;
    let _ = std::fs::remove_dir_all(scratch);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_uris_parse() {
        let (n, s, d) = parse_uri("models:/fraud@champion").unwrap();
        assert_eq!((n.as_str(), s, d), ("fraud", Selector::Alias("champion".into()), None));
        assert_eq!(parse_uri("models:/fraud/3").unwrap().1, Selector::Version("3".into()));
        assert_eq!(parse_uri("models:/fraud").unwrap().1, Selector::Latest);
        assert!(parse_uri("models:/@x").is_err());
        assert!(parse_uri("/nonexistent/dir").is_err());
    }
}
