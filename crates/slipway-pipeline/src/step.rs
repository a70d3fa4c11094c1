//! One step of a pipeline run: its cache key, a hit (from the lock file or the tracking
//! server) restored, or a miss executed with retries, and the result recorded on its run.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use std::io::Write;
use tokio::sync::watch;

use crate::error::{PipelineError, Result};
use crate::exec::{Command, Job, Outcome};
use crate::hash::{Hasher, STATE_DIR, hash_bytes};
use crate::lock::Locked;
use crate::outs;
use crate::records::{DatasetInput, Log, RunStatus};
use crate::runner::{Context, StepState};
use crate::spec::{Action, Dep, Step};

/// A step's inputs, hashed: what its cache key is made of.
pub struct Inputs {
    pub key: String,
    /// (dependency as written, its hash or identity).
    pub deps: Vec<(String, String)>,
    pub params: BTreeMap<String, Value>,
}

/// Hashes what the step reads. Fails when a path dependency is missing.
pub async fn inputs(cx: &Context<'_>, step: &Step, hasher: &Hasher) -> Result<Inputs> {
    let mut deps = Vec::with_capacity(step.deps.len());
    for d in &step.deps {
        match d {
            Dep::Path(p) => {
                let entry = hasher
                    .entry(p.as_str())?
                    .ok_or_else(|| PipelineError::Records(format!("dependency '{p}' is missing")))?;
                deps.push((p.to_string(), entry.hash().to_string()));
            }
            Dep::Uri(uri) => deps.push((uri.clone(), cx.records.identify(uri).await?)),
            Dep::Data { name, which } => deps.push((d.describe(), cx.records.data_version(name, which).await?)),
        }
    }
    let params: BTreeMap<String, Value> =
        step.params.iter().map(|k| (k.clone(), cx.pipeline.params.get(k).cloned().unwrap_or(Value::Null))).collect();
    // The step's name stays out: two steps doing the same work share their result.
    let mut canonical = json!({
        "action": step.action.describe(),
        "env": step.env,
        "deps": deps,
        "params": params,
        "outs": step.outs.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        "wdir": step.wdir.as_str(),
        "cache_version": cx.pipeline.cache_version,
    });
    // Publishing is part of what a step does: adding it runs the step (and publishes) once.
    if let Some(name) = &step.publish {
        canonical["publish"] = json!(name);
    }
    Ok(Inputs { key: hash_bytes(canonical.to_string().as_bytes()), deps, params })
}

/// Looks for an earlier result with this key whose outs are all still stored, and puts
/// those outs in place. The lock file is asked first, then the tracking server.
pub async fn try_cache(cx: &Context<'_>, step: &Step, key: &str, hasher: &Hasher) -> Result<Option<(Locked, bool)>> {
    let from_lock = cx.lock_entry(&step.name).filter(|l| l.key == key);
    let candidate = match from_lock {
        Some(l) => Some(l),
        None => match cx.records.find_cached(cx.experiment_id(), key).await? {
            Some(c) => Some(Locked {
                key: key.to_string(),
                run_id: c.run_id,
                manifest: c.manifest,
                outs: BTreeMap::new(),
                metrics: c.metrics,
            }),
            None => None,
        },
    };
    let Some(mut hit) = candidate else { return Ok(None) };
    let Some(manifest) = outs::manifest(&cx.pipeline.root, &hit.manifest, cx.blobs).await? else {
        cx.note(&step.name, &format!("cached result of run {} has lost its outs manifest; running", hit.run_id));
        return Ok(None);
    };
    if !outs::complete(&manifest, cx.blobs).await? {
        cx.note(&step.name, &format!("cached outs of run {} were deleted from the store; running", hit.run_id));
        return Ok(None);
    }
    let fetched = outs::restore(&cx.pipeline.root, hasher, &manifest, cx.blobs).await?;
    hit.outs = manifest.iter().map(|(p, e)| (p.clone(), e.hash().to_string())).collect();
    Ok(Some((hit, fetched)))
}

/// Records a hit as a finished child run that names the run it came from.
pub async fn record_hit(cx: &Context<'_>, step: &Step, inputs: &Inputs, hit: &Locked) -> Result<String> {
    let mut log = base_log(step, inputs);
    log.tags.push(("slipway.cached_from".into(), hit.run_id.clone()));
    log.tags.push(("slipway.outs".into(), hit.manifest.clone()));
    log.tags.push(("slipway.status".into(), "cached".into()));
    log.metrics = hit.metrics.clone();
    let run = cx.records.start_run(cx.experiment_id(), &step.name, Some(cx.parent_run()), log).await?;
    cx.records.finish(&run, RunStatus::Finished).await?;
    Ok(run)
}

/// What is left to record of a step that succeeded: its log, its outs and status, the end of
/// its run. The runner starts the steps it unblocked first; the records follow in the
/// background and the pipeline run ends only after them.
pub type Closing<'a> = futures::future::BoxFuture<'a, Result<()>>;

/// Runs the step (with its retries) on the executor and records everything on a new child run.
/// A success returns the lock entry and what is left to record.
pub async fn execute<'a>(
    cx: &'a Context<'_>,
    step: &'a Step,
    inputs: &Inputs,
    hasher: &Hasher,
    cancel: watch::Receiver<bool>,
) -> Result<(StepState, Option<(Locked, Closing<'a>)>)> {
    let mut log = base_log(step, inputs);
    log.tags.push(("slipway.status".into(), "running".into()));
    log.tags.push(("slipway.executor".into(), cx.executor.name().into()));
    let run = cx.records.start_run(cx.experiment_id(), &step.name, Some(cx.parent_run()), log).await?;
    let datasets: Vec<DatasetInput> = step
        .deps
        .iter()
        .zip(&inputs.deps)
        .map(|(d, (dep, hash))| DatasetInput {
            name: dep.clone(),
            digest: hash.chars().take(12).collect(),
            // A data version's manifest hash opens its files in the content-addressed store,
            // so readers of the run see only its digest.
            source: match d {
                Dep::Data { .. } => json!({"uri": dep}).to_string(),
                _ => json!({"uri": dep, "sha256": hash}).to_string(),
            },
        })
        .collect();
    cx.emit(&step.name, StepState::Running { run_id: run.clone(), attempt: 1 });
    let log_path =
        cx.pipeline.root.join(STATE_DIR).join("logs").join(cx.parent_run()).join(format!("{}.log", step.name));
    let started = Instant::now();
    // The datasets are recorded while the step runs.
    let log_inputs = async {
        match datasets.is_empty() {
            true => Ok(()),
            false => cx.records.log_inputs(&run, &datasets).await,
        }
    };
    let prepared = async {
        materialize(cx, step, inputs).await?;
        attempts(cx, step, &run, &log_path, cancel).await
    };
    let (logged, outcome) = futures::future::join(log_inputs, prepared).await;
    logged?;
    let finished = match outcome {
        Ok((Outcome::Exited(0), reported)) => {
            finish_success(cx, step, hasher, reported, &run).await.map_err(|e| e.to_string())
        }
        Ok((Outcome::Cancelled, _)) => {
            upload_log(cx, step, &run, &log_path).await;
            cx.records.log(&run, tags(&[("slipway.status", "cancelled")])).await?;
            cx.records.finish(&run, RunStatus::Killed).await?;
            return Ok((StepState::Cancelled, None));
        }
        Ok((other, _)) => Err(describe(&other, step)),
        Err(e) => Err(e.to_string()),
    };
    match finished {
        Ok((manifest, entries, metrics, published)) => {
            let mut done = tags(&[("slipway.status", "done"), ("slipway.outs", &manifest)]);
            if let Some(version) = published {
                done.tags.push(("slipway.published".into(), version));
            }
            done.metrics = metrics.clone();
            let locked = Locked { key: inputs.key.clone(), run_id: run.clone(), manifest, outs: entries, metrics };
            let state = StepState::Done { run_id: run.clone(), seconds: started.elapsed().as_secs_f64() };
            let closing: Closing<'a> = Box::pin(async move {
                upload_log(cx, step, &run, &log_path).await;
                cx.records.log(&run, done).await?;
                cx.records.finish(&run, RunStatus::Finished).await
            });
            Ok((state, Some((locked, closing))))
        }
        Err(reason) => {
            upload_log(cx, step, &run, &log_path).await;
            cx.records.log(&run, tags(&[("slipway.status", "failed"), ("slipway.error", &reason)])).await?;
            cx.records.finish(&run, RunStatus::Failed).await?;
            Ok((StepState::Failed { run_id: Some(run), reason }, None))
        }
    }
}

/// The outs manifest's hash, each out's hash, the metrics, and the data version published
/// (`NAME@VERSION`).
type Success = (String, BTreeMap<String, String>, Vec<(String, f64)>, Option<String>);

/// Writes each data version the step reads to `data/NAME` under its work dir, as the hash its
/// cache key holds names it (an alias that moved since is not followed).
async fn materialize(cx: &Context<'_>, step: &Step, inputs: &Inputs) -> Result<()> {
    for (d, (_, manifest)) in step.deps.iter().zip(&inputs.deps) {
        if let Dep::Data { name, .. } = d {
            let dest = step.wdir.under(&cx.pipeline.root).join("data").join(name);
            cx.records.materialize_data(manifest, &dest).await?;
        }
    }
    Ok(())
}

async fn finish_success(
    cx: &Context<'_>,
    step: &Step,
    hasher: &Hasher,
    reported: Option<String>,
    run: &str,
) -> Result<Success> {
    let root = &cx.pipeline.root;
    let (manifest_hash, manifest) = if cx.executor.remote() {
        // The step ran elsewhere: its outs are in the blob store; put them here too.
        let hash = reported.ok_or_else(|| PipelineError::Records("the remote step did not report its outs".into()))?;
        let manifest = outs::manifest(root, &hash, cx.blobs).await?.ok_or_else(|| {
            PipelineError::Records(format!("the remote step's outs manifest {hash} is not in the store"))
        })?;
        outs::restore(root, hasher, &manifest, cx.blobs).await?;
        (hash, manifest)
    } else {
        outs::save(root, hasher, &collected(step), cx.blobs).await?
    };
    let metrics = match &step.metrics {
        Some(m) => read_metrics(&m.under(root))?,
        None => Vec::new(),
    };
    let entries = manifest.iter().map(|(p, e)| (p.clone(), e.hash().to_string())).collect();
    let published = match &step.publish {
        Some(name) => {
            let paths: Vec<String> = step.outs.iter().map(ToString::to_string).collect();
            let origin = vec![
                ("slipway.pipeline".to_string(), cx.pipeline.name.clone()),
                ("slipway.pipeline_run".to_string(), cx.parent_run().to_string()),
                ("slipway.step_run".to_string(), run.to_string()),
            ];
            let version = cx.records.publish_data(name, root, &paths, origin).await?;
            cx.note(&step.name, &format!("outs published as data:{name}@{version}"));
            Some(format!("{name}@{version}"))
        }
        None => None,
    };
    Ok((manifest_hash, entries, metrics, published))
}

/// What a step's run keeps: its outs and its metrics file.
fn collected(step: &Step) -> Vec<crate::spec::RelPath> {
    step.outs.iter().chain(step.metrics.iter()).cloned().collect()
}

/// The line a remote step prints last: the hash of its outs manifest in the blob store.
pub const OUTS_LINE: &str = "SLIPWAY_OUTS ";

async fn attempts(
    cx: &Context<'_>,
    step: &Step,
    run: &str,
    log_path: &Path,
    cancel: watch::Receiver<bool>,
) -> Result<(Outcome, Option<String>)> {
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    }
    let file = std::fs::File::create(log_path).map_err(|e| PipelineError::io(log_path, e))?;
    let file = std::sync::Mutex::new(file);
    // Each line goes to the terminal and, at once, to the log file: a hung step's log is
    // readable while it hangs.
    let write = |text: &str| {
        let mut f = file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = f.write_all(text.as_bytes());
    };
    for o in collected(step) {
        outs::remove(&o.under(&cx.pipeline.root))?;
    }
    let reported = std::sync::Mutex::new(None::<String>);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let job = job(cx, step, run, attempt);
        let sink = |line: &str| {
            if let Some(hash) = line.strip_prefix(OUTS_LINE) {
                *reported.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(hash.trim().to_string());
            }
            cx.line(&step.name, line);
            write(&format!("{line}\n"));
        };
        write(&format!("--- attempt {attempt}: {}\n", job.command));
        let outcome = cx.executor.run(&job, &sink, cancel.clone()).await?;
        let retryable = !matches!(outcome, Outcome::Exited(0) | Outcome::Cancelled);
        if !retryable || attempt > step.retry.max {
            write(&format!("--- {}\n", describe(&outcome, step)));
            return Ok((outcome, reported.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)));
        }
        let wait = step.retry.backoff.saturating_mul(1 << (attempt - 1).min(16));
        cx.note(&step.name, &format!("{}; retrying in {:.1} s", describe(&outcome, step), wait.as_secs_f64()));
        let mut cancel = cancel.clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = cancel.wait_for(|c| *c) => return Ok((Outcome::Cancelled, None)),
        }
        cx.emit(&step.name, StepState::Running { run_id: run.to_string(), attempt: attempt + 1 });
    }
}

fn job(cx: &Context<'_>, step: &Step, run: &str, attempt: u32) -> Job {
    let command = match &step.action {
        Action::Cmd(c) => Command::Shell(c.clone()),
        Action::Uses { name, with } => {
            let sub = name.trim_start_matches("slipway/");
            let mut argv = vec![cx.slipway_exe.to_string_lossy().into_owned(), sub.to_string()];
            for (k, v) in with {
                argv.push(format!("--{}", k.replace('_', "-")));
                argv.push(v.clone());
            }
            Command::Argv(argv)
        }
    };
    let mut env = vec![
        ("MLFLOW_TRACKING_URI".to_string(), cx.tracking_uri.clone()),
        ("MLFLOW_RUN_ID".to_string(), run.to_string()),
        ("MLFLOW_EXPERIMENT_ID".to_string(), cx.experiment_id().to_string()),
        ("SLIPWAY_PIPELINE_RUN_ID".to_string(), cx.parent_run().to_string()),
        ("SLIPWAY_STEP".to_string(), step.name.clone()),
    ];
    env.extend(step.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Job {
        step: step.name.clone(),
        command,
        cwd: step.wdir.under(&cx.pipeline.root),
        env,
        timeout: step.timeout,
        submission_id: format!("{run}-{attempt}"),
        root: cx.pipeline.root.clone(),
        wdir: step.wdir.as_str().to_string(),
        collect: collected(step).iter().map(|p| p.as_str().to_string()).collect(),
    }
}

fn describe(outcome: &Outcome, step: &Step) -> String {
    match outcome {
        Outcome::Exited(code) => format!("exited with status {code}"),
        Outcome::Signalled(sig) => format!("killed by signal {sig}"),
        Outcome::TimedOut => format!("timed out after {}", seconds(step.timeout.unwrap_or_default())),
        Outcome::Cancelled => "cancelled".into(),
        Outcome::Lost(why) => format!("lost by the executor: {why}"),
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn base_log(step: &Step, inputs: &Inputs) -> Log {
    let params = inputs
        .params
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            )
        })
        .collect();
    Log {
        params,
        metrics: Vec::new(),
        tags: vec![
            ("slipway.step".into(), step.name.clone()),
            ("slipway.cache_key".into(), inputs.key.clone()),
            ("mlflow.runName".into(), step.name.clone()),
        ],
    }
}

fn tags(pairs: &[(&str, &str)]) -> Log {
    Log { tags: pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect(), ..Log::default() }
}

async fn upload_log(cx: &Context<'_>, step: &Step, run: &str, path: &Path) {
    if let Err(e) = cx.records.upload_artifact(run, &format!("logs/{}.log", step.name), path).await {
        cx.note(&step.name, &format!("could not store the log: {e}"));
    }
}

/// The numbers in a metrics JSON file, nested keys joined by `.`.
pub fn read_metrics(path: &Path) -> Result<Vec<(String, f64)>> {
    let text =
        std::fs::read(path).map_err(|e| PipelineError::Records(format!("metrics file {}: {e}", path.display())))?;
    let value: Value = serde_json::from_slice(&text)
        .map_err(|e| PipelineError::Records(format!("metrics file {} is not JSON: {e}", path.display())))?;
    let mut out = Vec::new();
    flatten("", &value, &mut out);
    Ok(out)
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, f64)>) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                out.push((prefix.to_string(), f));
            }
        }
        Value::Bool(b) => out.push((prefix.to_string(), if *b { 1.0 } else { 0.0 })),
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        _ => {}
    }
}
