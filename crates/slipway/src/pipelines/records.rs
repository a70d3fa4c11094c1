//! The pipeline runner's records and blob store over a tracking server's REST API: runs
//! through MLflow's tracking endpoints, outs through the artifact proxy under
//! `slipway-cache/sha256/`, so they live wherever the server keeps artifacts (disk or S3).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{Value, json};
use slipway_pipeline::PipelineError;
use slipway_pipeline::records::{Blobs, Cached, DatasetInput, Log, Records, RunStatus};

use crate::client::Api;

const API: &str = "/api/2.0/mlflow";
const PROXY: &str = "/api/2.0/mlflow-artifacts/artifacts";
const CACHE_ROOT: &str = "slipway-cache/sha256";
/// MLflow's log-batch limits.
const MAX_METRICS: usize = 1000;
const MAX_PARAMS: usize = 100;
const MAX_TAGS: usize = 100;

pub struct Rest {
    api: std::sync::Arc<Api>,
    /// Run id -> its artifact root path under the proxy.
    artifact_roots: Mutex<HashMap<String, String>>,
    /// Blobs known to be stored.
    present: Mutex<HashSet<String>>,
    /// Held while a data version is written into the project.
    materializing: tokio::sync::Mutex<()>,
}

impl Rest {
    pub fn new(api: Api) -> Self {
        Rest {
            api: std::sync::Arc::new(api),
            artifact_roots: Mutex::default(),
            present: Mutex::default(),
            materializing: tokio::sync::Mutex::default(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, PipelineError> {
        self.api.call(method, path, query, body).await.map_err(records)
    }

    async fn artifact_root(&self, run_id: &str) -> Result<String, PipelineError> {
        if let Some(root) = self.artifact_roots.lock().unwrap_or_else(PoisonError::into_inner).get(run_id) {
            return Ok(root.clone());
        }
        let run = self.call("GET", &format!("{API}/runs/get"), &[("run_id", run_id)], None).await?;
        let root = proxy_path(&run["run"]["info"]["artifact_uri"])?;
        self.artifact_roots.lock().unwrap_or_else(PoisonError::into_inner).insert(run_id.to_string(), root.clone());
        Ok(root)
    }
}

fn records(e: anyhow::Error) -> PipelineError {
    PipelineError::Records(format!("{e:#}"))
}

/// `mlflow-artifacts:/1/abc/artifacts` -> `1/abc/artifacts`.
fn proxy_path(uri: &Value) -> Result<String, PipelineError> {
    let uri = uri.as_str().unwrap_or_default();
    uri.strip_prefix("mlflow-artifacts:")
        .map(|p| p.trim_start_matches('/').to_string())
        .ok_or_else(|| PipelineError::Records(format!("run artifact URI '{uri}' is not served by the artifact proxy")))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn blob_path(hash: &str) -> String {
    format!("{CACHE_ROOT}/{}/{hash}", &hash[..2.min(hash.len())])
}

fn kv(pairs: &[(String, String)]) -> Vec<Value> {
    pairs.iter().map(|(k, v)| json!({"key": k, "value": v})).collect()
}

#[async_trait]
impl Records for Rest {
    async fn experiment(&self, name: &str) -> Result<String, PipelineError> {
        for _ in 0..2 {
            match self
                .api
                .call("GET", &format!("{API}/experiments/get-by-name"), &[("experiment_name", name)], None)
                .await
            {
                Ok(v) => return Ok(v["experiment"]["experiment_id"].as_str().unwrap_or_default().to_string()),
                Err(e) if e.to_string().starts_with("RESOURCE_DOES_NOT_EXIST") => {}
                Err(e) => return Err(records(e)),
            }
            match self.api.call("POST", &format!("{API}/experiments/create"), &[], Some(json!({"name": name}))).await {
                Ok(v) => return Ok(v["experiment_id"].as_str().unwrap_or_default().to_string()),
                // Someone else created it meanwhile: read it.
                Err(e) if e.to_string().starts_with("RESOURCE_ALREADY_EXISTS") => {}
                Err(e) => return Err(records(e)),
            }
        }
        Err(PipelineError::Records(format!("experiment '{name}' could be neither read nor created")))
    }

    async fn start_run(
        &self,
        experiment_id: &str,
        name: &str,
        parent: Option<&str>,
        log: Log,
    ) -> Result<String, PipelineError> {
        let mut tags = log.tags.clone();
        if let Some(p) = parent {
            tags.push(("mlflow.parentRunId".into(), p.to_string()));
        }
        let body = json!({
            "experiment_id": experiment_id,
            "run_name": name,
            "start_time": now_ms(),
            "tags": kv(&tags.drain(..tags.len().min(MAX_TAGS)).collect::<Vec<_>>()),
        });
        let run = self.call("POST", &format!("{API}/runs/create"), &[], Some(body)).await?;
        let info = &run["run"]["info"];
        let run_id = info["run_id"].as_str().unwrap_or_default().to_string();
        if let Ok(root) = proxy_path(&info["artifact_uri"]) {
            self.artifact_roots.lock().unwrap_or_else(PoisonError::into_inner).insert(run_id.clone(), root);
        }
        self.log(&run_id, Log { tags, ..log }).await?;
        Ok(run_id)
    }

    async fn log(&self, run_id: &str, log: Log) -> Result<(), PipelineError> {
        let ts = now_ms();
        let (mut metrics, mut params, mut tags) = (log.metrics.as_slice(), log.params.as_slice(), log.tags.as_slice());
        while !(metrics.is_empty() && params.is_empty() && tags.is_empty()) {
            let (m, rest_m) = metrics.split_at(metrics.len().min(MAX_METRICS));
            let (p, rest_p) = params.split_at(params.len().min(MAX_PARAMS));
            let (t, rest_t) = tags.split_at(tags.len().min(MAX_TAGS));
            let body = json!({
                "run_id": run_id,
                "metrics": m.iter().map(|(k, v)| json!({"key": k, "value": v, "timestamp": ts, "step": 0})).collect::<Vec<_>>(),
                "params": kv(p),
                "tags": kv(t),
            });
            self.call("POST", &format!("{API}/runs/log-batch"), &[], Some(body)).await?;
            (metrics, params, tags) = (rest_m, rest_p, rest_t);
        }
        Ok(())
    }

    async fn log_inputs(&self, run_id: &str, inputs: &[DatasetInput]) -> Result<(), PipelineError> {
        let datasets: Vec<Value> = inputs
            .iter()
            .map(|d| {
                json!({
                    "dataset": {"name": d.name, "digest": d.digest, "source_type": "local", "source": d.source},
                    "tags": [{"key": "mlflow.data.context", "value": "input"}],
                })
            })
            .collect();
        self.call("POST", &format!("{API}/runs/log-inputs"), &[], Some(json!({"run_id": run_id, "datasets": datasets})))
            .await
            .map(drop)
    }

    async fn finish(&self, run_id: &str, status: RunStatus) -> Result<(), PipelineError> {
        let body = json!({"run_id": run_id, "status": status.as_mlflow(), "end_time": now_ms()});
        self.call("POST", &format!("{API}/runs/update"), &[], Some(body)).await.map(drop)
    }

    async fn find_cached(&self, experiment_id: &str, key: &str) -> Result<Option<Cached>, PipelineError> {
        let body = json!({
            "experiment_ids": [experiment_id],
            "filter": format!("tags.`slipway.cache_key` = '{key}' AND attributes.status = 'FINISHED'"),
            "order_by": ["attributes.start_time DESC"],
            "max_results": 10,
        });
        let found = self.call("POST", &format!("{API}/runs/search"), &[], Some(body)).await?;
        for run in found["runs"].as_array().into_iter().flatten() {
            let tag = |k: &str| {
                run["data"]["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["key"] == k)
                    .and_then(|t| t["value"].as_str())
            };
            let Some(manifest) = tag("slipway.outs") else { continue };
            let origin = tag("slipway.cached_from").or(run["info"]["run_id"].as_str()).unwrap_or_default();
            let metrics = run["data"]["metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| Some((m["key"].as_str()?.to_string(), m["value"].as_f64()?)))
                .collect();
            return Ok(Some(Cached { run_id: origin.to_string(), manifest: manifest.to_string(), metrics }));
        }
        Ok(None)
    }

    async fn upload_artifact(&self, run_id: &str, artifact_path: &str, file: &Path) -> Result<(), PipelineError> {
        let root = self.artifact_root(run_id).await?;
        self.api.put_file(&format!("{PROXY}/{root}/{artifact_path}"), file).await.map_err(records)
    }

    async fn cancel_requested(&self, run_id: &str) -> Result<bool, PipelineError> {
        let run = self.call("GET", &format!("{API}/runs/get"), &[("run_id", run_id)], None).await?;
        let tags = run["run"]["data"]["tags"].as_array().cloned().unwrap_or_default();
        Ok(tags.iter().any(|t| t["key"] == "slipway.cancel" && t["value"] == "requested"))
    }

    async fn running(
        &self,
        experiment_id: &str,
        tag: &str,
        value: &str,
    ) -> Result<Vec<(String, Option<String>)>, PipelineError> {
        let body = json!({
            "experiment_ids": [experiment_id],
            "filter": format!("tags.`{tag}` = '{}' AND attributes.status = 'RUNNING'", value.replace('\'', "")),
            "max_results": 1000,
        });
        let found = self.call("POST", &format!("{API}/runs/search"), &[], Some(body)).await?;
        Ok(found["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|run| {
                let runner = run["data"]["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["key"] == "slipway.runner")
                    .and_then(|t| t["value"].as_str())
                    .map(str::to_string);
                (run["info"]["run_id"].as_str().unwrap_or_default().to_string(), runner)
            })
            .collect())
    }

    async fn identify(&self, uri: &str) -> Result<String, PipelineError> {
        if let Some(rest) = uri.strip_prefix("runs:/") {
            let run_id = rest.split('/').next().unwrap_or_default();
            let run = self.call("GET", &format!("{API}/runs/get"), &[("run_id", run_id)], None).await?;
            let info = &run["run"]["info"];
            return Ok(format!("{uri} status={} end={}", info["status"], info["end_time"]));
        }
        let Some(rest) = uri.strip_prefix("models:/") else {
            return Err(PipelineError::Records(format!("'{uri}' is neither runs:/ nor models:/")));
        };
        let mv = match rest.split_once('@') {
            Some((name, alias)) => {
                self.call("GET", &format!("{API}/registered-models/alias"), &[("name", name), ("alias", alias)], None)
                    .await?
            }
            None => {
                let (name, version) = rest.rsplit_once('/').unwrap_or((rest, ""));
                self.call("GET", &format!("{API}/model-versions/get"), &[("name", name), ("version", version)], None)
                    .await?
            }
        };
        let v = &mv["model_version"];
        Ok(format!("models:/{}/{} run={} source={}", v["name"], v["version"], v["run_id"], v["source"]))
    }

    async fn data_version(&self, name: &str, which: &str) -> Result<String, PipelineError> {
        let version = crate::data::fetch_version(&self.api, name, which).await.map_err(records)?;
        match version["manifest"].as_str() {
            Some(hash) => Ok(hash.to_string()),
            None => Err(PipelineError::Records(format!("data:{name}@{which} names no manifest"))),
        }
    }

    async fn materialize_data(&self, manifest: &str, dest: &Path) -> Result<(), PipelineError> {
        // Steps running at once may read one data folder (the same version: the pipeline file
        // refuses two versions in one place); one writes it, the next finds it right.
        let _one = self.materializing.lock().await;
        crate::data::materialize(&self.api, manifest, dest).await.map_err(records)
    }

    async fn publish_data(
        &self,
        name: &str,
        root: &Path,
        paths: &[String],
        tags: Vec<(String, String)>,
    ) -> Result<i64, PipelineError> {
        let paths: Vec<std::path::PathBuf> = paths.iter().map(|p| root.join(p)).collect();
        let new = crate::data::NewVersion { name, paths: &paths, aliases: Vec::new(), tags, message: None, jobs: 8 };
        let v = crate::data::add(&self.api, new, crate::data::Reuse::Unchanged).await.map_err(records)?;
        v["version"]["version"]
            .as_i64()
            .ok_or_else(|| PipelineError::Records(format!("the server's answer names no version of {name}")))
    }
}

#[async_trait]
impl Blobs for Rest {
    async fn has(&self, hash: &str) -> Result<bool, PipelineError> {
        if self.present.lock().unwrap_or_else(PoisonError::into_inner).contains(hash) {
            return Ok(true);
        }
        let dir = blob_path(hash);
        let dir = dir.rsplit_once('/').map_or(dir.as_str(), |d| d.0);
        let listed = self.call("GET", PROXY, &[("path", dir)], None).await?;
        let mut present = self.present.lock().unwrap_or_else(PoisonError::into_inner);
        for f in listed["files"].as_array().into_iter().flatten() {
            if let Some(name) = f["path"].as_str() {
                present.insert(name.rsplit('/').next().unwrap_or(name).to_string());
            }
        }
        Ok(present.contains(hash))
    }

    async fn put(&self, hash: &str, file: &Path) -> Result<(), PipelineError> {
        if self.has(hash).await? {
            return Ok(());
        }
        self.api.put_file(&format!("{PROXY}/{}", blob_path(hash)), file).await.map_err(records)?;
        self.present.lock().unwrap_or_else(PoisonError::into_inner).insert(hash.to_string());
        Ok(())
    }

    async fn get(&self, hash: &str, dest: &Path) -> Result<(), PipelineError> {
        let tmp =
            dest.with_file_name(format!(".{}.slipway-tmp", dest.file_name().and_then(|n| n.to_str()).unwrap_or("out")));
        let got = self.api.get_to_file(&format!("{PROXY}/{}", blob_path(hash)), &tmp).await;
        let wrong = match got {
            Ok(got) if got == hash => None,
            Ok(got) => {
                Some(PipelineError::Records(format!("the server sent other bytes for blob {hash} (sha256 {got})")))
            }
            Err(e) => Some(records(e)),
        };
        if let Some(e) = wrong {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        tokio::fs::rename(&tmp, dest).await.map_err(|e| PipelineError::io(dest, e))
    }
}
