//! The Ray executor: each step attempt is a Ray job, submitted through the Jobs REST API of an
//! existing cluster's dashboard. The project folder goes up as the job's `working_dir`
//! package (content-addressed, uploaded once); `ray_step.py` runs the command there and sends
//! the outs back through the blob store. The job's `submission_id` is the step run id and the
//! attempt, so a submit that is retried after a lost answer attaches to the job Ray already
//! has instead of running the step twice. A job Ray no longer knows (a restarted cluster) or
//! a dashboard that stops answering is reported as a lost step, never waited on forever.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use slipway_pipeline::PipelineError;
use slipway_pipeline::exec::{Command, Executor, Job, LineSink, Outcome};
use tokio::sync::watch;

use super::zip::zip_folder;
use crate::client::Api;

const WRAPPER: &str = include_str!("ray_step.py");
const WRAPPER_NAME: &str = "_slipway_ray_step.py";
const POLL: Duration = Duration::from_millis(250);
/// How long the dashboard may stay unreachable before the step counts as lost.
const UNREACHABLE_FOR: Duration = Duration::from_secs(60);

pub struct Ray {
    api: Api,
    address: String,
    /// Packages known to be uploaded.
    uploaded: Mutex<HashSet<String>>,
}

impl Ray {
    pub fn new(address: &str) -> anyhow::Result<Ray> {
        Ok(Ray {
            api: Api::new(address)?,
            address: address.trim_end_matches('/').to_string(),
            uploaded: Mutex::default(),
        })
    }

    fn err(&self, what: &str, e: &anyhow::Error) -> PipelineError {
        PipelineError::Records(format!("Ray at {}: {what}: {e:#}", self.address))
    }

    /// Zips the project, uploads the package unless Ray has it, and returns its `gcs://` URI.
    async fn package(&self, job: &Job) -> Result<String, PipelineError> {
        let root = job.root.clone();
        let zipped = tokio::task::spawn_blocking(move || zip_folder(&root, &[(WRAPPER_NAME, WRAPPER.as_bytes())]))
            .await
            .map_err(|e| PipelineError::Records(format!("packaging the project: {e}")))?
            .map_err(|e| PipelineError::Records(format!("packaging the project: {e:#}")))?;
        let name = format!("_ray_pkg_{}.zip", &slipway_pipeline::hash::hash_bytes(&zipped)[..16]);
        let uri = format!("gcs://{name}");
        if self.uploaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&name) {
            return Ok(uri);
        }
        let path = format!("/api/packages/gcs/{name}");
        if self.api.get_bytes(&path).await.is_err() {
            self.api
                .put_bytes(&path, zipped.into())
                .await
                .map_err(|e| self.err("uploading the working_dir package", &e))?;
        }
        self.uploaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name);
        Ok(uri)
    }

    async fn submit(&self, job: &Job, package: &str) -> Result<(), PipelineError> {
        let cmd = match &job.command {
            Command::Shell(s) => s.clone(),
            Command::Argv(_) => {
                return Err(PipelineError::Records(format!(
                    "step '{}' is a built-in step; built-in steps run with --executor local",
                    job.step
                )));
            }
        };
        let mut env: serde_json::Map<String, Value> = job.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        env.insert(
            "SLIPWAY_RAY_STEP".into(),
            json!(json!({"cmd": cmd, "wdir": job.wdir, "collect": job.collect}).to_string()),
        );
        let body = json!({
            "entrypoint": format!("python {WRAPPER_NAME}"),
            "submission_id": job.submission_id,
            "runtime_env": {"working_dir": package, "env_vars": env},
            "metadata": {"slipway_step": job.step},
        });
        match self.api.call("POST", "/api/jobs/", &[], Some(body)).await {
            Ok(_) => Ok(()),
            // Ray refuses a submission id it already has: our earlier submit got through, so
            // follow that job rather than run the step again.
            Err(e) if e.to_string().contains("already exists") => Ok(()),
            Err(e) => Err(self.err("submitting the job", &e)),
        }
    }
}

#[async_trait]
impl Executor for Ray {
    fn name(&self) -> &'static str {
        "ray"
    }

    fn remote(&self) -> bool {
        true
    }

    async fn run(
        &self,
        job: &Job,
        lines: LineSink<'_>,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<Outcome, PipelineError> {
        let package = self.package(job).await?;
        self.submit(job, &package).await?;
        let id = &job.submission_id;
        let started = Instant::now();
        let mut printed = 0usize;
        let mut last_seen = Instant::now();
        let mut stop: Option<Outcome> = None;
        loop {
            let info = match self.api.call("GET", &format!("/api/jobs/{id}"), &[], None).await {
                Ok(v) => {
                    last_seen = Instant::now();
                    v
                }
                Err(e) if e.to_string().contains("404") || e.to_string().to_lowercase().contains("does not exist") => {
                    return Ok(Outcome::Lost(format!("Ray no longer knows job {id} (was the cluster restarted?)")));
                }
                Err(e) => {
                    if last_seen.elapsed() > UNREACHABLE_FOR {
                        return Ok(Outcome::Lost(format!("Ray at {} stopped answering: {e:#}", self.address)));
                    }
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            };
            if let Ok(logs) = self.api.call("GET", &format!("/api/jobs/{id}/logs"), &[], None).await {
                let text = logs["logs"].as_str().unwrap_or_default();
                if text.len() > printed {
                    // Whole lines only; a partial last line waits for the next poll.
                    let fresh = &text[printed..];
                    let upto = fresh.rfind('\n').map_or(0, |i| i + 1);
                    for line in fresh[..upto].lines() {
                        lines(line);
                    }
                    printed += upto;
                }
            }
            let status = info["status"].as_str().unwrap_or_default();
            match status {
                "SUCCEEDED" | "FAILED" | "STOPPED" => {
                    if let Some(outcome) = stop {
                        return Ok(outcome);
                    }
                    return Ok(match (status, info["driver_exit_code"].as_i64()) {
                        ("SUCCEEDED", _) => Outcome::Exited(0),
                        ("FAILED", Some(code)) => Outcome::Exited(i32::try_from(code).unwrap_or(1)),
                        (_, _) => Outcome::Lost(format!(
                            "job {id} ended {status}: {}",
                            info["message"].as_str().unwrap_or("no reason given")
                        )),
                    });
                }
                _ => {}
            }
            if stop.is_none() {
                let timed_out = job.timeout.is_some_and(|t| started.elapsed() > t);
                if timed_out || *cancel.borrow_and_update() {
                    stop = Some(if timed_out { Outcome::TimedOut } else { Outcome::Cancelled });
                    if let Err(e) = self.api.call("POST", &format!("/api/jobs/{id}/stop"), &[], None).await {
                        tracing::warn!(job = %id, error = %e, "cannot stop the Ray job");
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                _ = cancel.changed() => {}
            }
        }
    }
}
