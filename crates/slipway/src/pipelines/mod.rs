//! `slipway run` (a pipeline, through the local executor, recorded on a tracking server) and
//! `slipway pipelines list|show|runs|logs|cancel`.

mod ray;
mod records;
mod zip;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use slipway_pipeline::exec::Local;
use slipway_pipeline::{Dag, Event, Options, Pipeline, Runner, StepState};
use tokio::sync::watch;

use crate::client::{Api, ServerArgs};
use crate::models::{print_json, print_table};
use slipway_types::time::utc;

const API: &str = "/api/2.0/mlflow";

#[derive(Args)]
pub struct RunArgs {
    /// The pipeline file, or a folder holding `slipway.yaml`.
    #[arg(default_value = ".")]
    pipeline: PathBuf,
    /// Run only this step (and the steps it needs).
    #[arg(long)]
    step: Option<String>,
    /// Run every step, ignoring cached results.
    #[arg(long)]
    force: bool,
    /// Steps that may run at once.
    #[arg(long, short, default_value_t = 1)]
    jobs: usize,
    /// Where steps run: here, or as jobs on an existing Ray cluster.
    #[arg(long, value_enum, default_value = "local")]
    executor: ExecutorKind,
    /// The Ray cluster's dashboard (its Jobs API), for --executor ray.
    #[arg(long, env = "RAY_ADDRESS", default_value = "http://127.0.0.1:8265")]
    ray_address: String,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExecutorKind {
    Local,
    Ray,
}

#[derive(Args)]
pub struct PipelinesArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: PipelinesCommand,
}

#[derive(Subcommand)]
enum PipelinesCommand {
    /// Pipelines that have runs on the server, with their latest run.
    List,
    /// A pipeline file's steps in run order, with what each needs and writes.
    Show {
        #[arg(default_value = ".")]
        pipeline: PathBuf,
    },
    /// A pipeline's runs, newest first.
    Runs { name: String },
    /// The logs of a pipeline run's steps (all, or one with --step).
    Logs {
        run_id: String,
        #[arg(long)]
        step: Option<String>,
    },
    /// Ask a running pipeline to stop: its runner kills every running step.
    Cancel { run_id: String },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn open(path: &Path) -> anyhow::Result<(Pipeline, Dag)> {
    let file = if path.is_dir() { path.join(slipway_pipeline::spec::DEFAULT_FILE) } else { path.to_path_buf() };
    if !file.is_file() {
        bail!("no pipeline file at {} (write a slipway.yaml, see `slipway run --help`)", file.display());
    }
    let pipeline = slipway_pipeline::load(&file)?;
    let dag = Dag::build(&pipeline)?;
    Ok((pipeline, dag))
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let (pipeline, dag) = open(&args.pipeline)?;
    let json_out = args.server.json;
    let rest = records::Rest::new(Api::new(&args.server.tracking_uri)?);
    let opts = Options {
        step: args.step,
        force: args.force,
        jobs: args.jobs,
        tracking_uri: args.server.tracking_uri.clone(),
        slipway_exe: std::env::current_exe().context("finding the slipway binary for built-in steps")?,
        // Set by `slipway server` for the runs its triggers start.
        trigger: std::env::var("SLIPWAY_TRIGGER")
            .ok()
            .filter(|k| !k.is_empty())
            .map(|k| (k, std::env::var("SLIPWAY_TRIGGER_SOURCE").unwrap_or_else(|_| "request".into()))),
    };
    let printer = Printer::new(&pipeline);
    let events = |e: Event| printer.event(e);
    let local = Local::default();
    let ray;
    let executor: &dyn slipway_pipeline::exec::Executor = match args.executor {
        ExecutorKind::Local => &local,
        ExecutorKind::Ray => {
            ray = ray::Ray::new(&args.ray_address)?;
            &ray
        }
    };
    let runner = Runner { pipeline: &pipeline, dag: &dag, records: &rest, blobs: &rest, executor, events: &events };
    let summary = runtime()?.block_on(async {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: stopping the running steps (Ctrl-C again to leave them)");
                let _ = tx.send(true);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        runner.run(&opts, rx).await
    });
    let summary = summary.map_err(|e| {
        if let slipway_pipeline::PipelineError::Records(m) = &e
            && m.contains("calling ")
        {
            anyhow::anyhow!(
                "{m}\n(is `slipway server` running at {}? set MLFLOW_TRACKING_URI)",
                args.server.tracking_uri
            )
        } else {
            e.into()
        }
    })?;
    if json_out {
        crate::output::to_stdout(|w| writeln!(w, "{}", serde_json::to_string_pretty(&summary).unwrap_or_default()))?;
    } else if summary.run_id.is_none() {
        eprintln!("pipeline '{}' is up to date: nothing to run", summary.pipeline);
    } else {
        eprintln!(
            "pipeline '{}' {} (run {})",
            summary.pipeline,
            summary.status,
            summary.run_id.as_deref().unwrap_or("-")
        );
    }
    match summary.status {
        "failed" => std::process::exit(1),
        "cancelled" => std::process::exit(130),
        _ => Ok(()),
    }
}

/// One line per step event on stderr, and the step's own output prefixed with its name
/// (stdout stays free for `--json`).
struct Printer {
    width: usize,
    out: Mutex<()>,
}

impl Printer {
    fn new(p: &Pipeline) -> Self {
        Printer { width: p.steps.iter().map(|s| s.name.len()).max().unwrap_or(4), out: Mutex::new(()) }
    }

    fn event(&self, e: Event) {
        let _guard = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let w = self.width;
        match e {
            Event::Started { run_id, experiment_id } => {
                eprintln!("pipeline run {run_id} (experiment {experiment_id})");
            }
            Event::State { step, state } => {
                let text = match state {
                    StepState::Pending => return,
                    StepState::Running { run_id, attempt: 1 } => format!("running       run {run_id}"),
                    StepState::Running { attempt, .. } => format!("running       attempt {attempt}"),
                    StepState::Cached { from, restored, .. } => {
                        format!("cached        from run {from}{}", if restored { ", outs restored" } else { "" })
                    }
                    StepState::Done { seconds, .. } => format!("done          {seconds:.1} s"),
                    StepState::Failed { reason, .. } => format!("FAILED        {reason}"),
                    StepState::Skipped { reason } => format!("skipped       {reason}"),
                    StepState::Blocked { by } => format!("not run       '{by}' did not succeed"),
                    StepState::Cancelled => "cancelled".into(),
                };
                eprintln!("  {step:<w$}  {text}");
            }
            Event::Line { step, line } => eprintln!("  {step:<w$} | {line}"),
            Event::Note { step, text } => eprintln!("  {step:<w$}  note: {text}"),
        }
    }
}

pub fn pipelines(args: PipelinesArgs) -> anyhow::Result<()> {
    let json_out = args.server.json;
    if let PipelinesCommand::Show { pipeline } = &args.command {
        return show(pipeline, json_out);
    }
    let api = Api::new(&args.server.tracking_uri)?;
    runtime()?.block_on(async {
        match args.command {
            PipelinesCommand::Show { .. } => Ok(()),
            PipelinesCommand::List => list(&api, json_out).await,
            PipelinesCommand::Runs { name } => runs(&api, &name, json_out).await,
            PipelinesCommand::Logs { run_id, step } => logs(&api, &run_id, step.as_deref()).await,
            PipelinesCommand::Cancel { run_id } => {
                api.call("POST", &format!("/api/v1/pipeline-runs/{run_id}/cancel"), &[], None).await?;
                eprintln!("asked pipeline run {run_id} to stop; its runner stops the running steps within seconds");
                Ok(())
            }
        }
    })
}

fn show(path: &Path, json_out: bool) -> anyhow::Result<()> {
    let (p, dag) = open(path)?;
    let steps: Vec<Value> = dag
        .order
        .iter()
        .map(|&i| {
            let s = &p.steps[i];
            json!({
                "name": s.name,
                "line": s.line,
                "run": s.action.describe(),
                "needs": dag.upstream[i].iter().map(|&u| p.steps[u].name.clone()).collect::<Vec<_>>(),
                "deps": s.deps.iter().map(slipway_pipeline::spec::Dep::describe).collect::<Vec<_>>(),
                "outs": s.outs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "params": s.params,
                "when": s.when.as_ref().map(ToString::to_string),
                "cache": s.cache,
                "publish": s.publish,
            })
        })
        .collect();
    if json_out {
        return print_json(&json!({"pipeline": p.name, "experiment": p.experiment, "file": p.file, "steps": steps}));
    }
    println!("pipeline {} ({}), experiment '{}'", p.name, p.file.display(), p.experiment);
    let rows = steps
        .iter()
        .map(|s| {
            let list = |k: &str| {
                let v: Vec<&str> = s[k].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                if v.is_empty() { "-".to_string() } else { v.join(", ") }
            };
            vec![
                s["name"].as_str().unwrap_or_default().to_string(),
                list("needs"),
                list("outs"),
                s["run"].as_str().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    print_table(&["STEP", "NEEDS", "OUTS", "RUNS"], rows);
    Ok(())
}

fn tag<'a>(run: &'a Value, key: &str) -> Option<&'a str> {
    run["data"]["tags"].as_array()?.iter().find(|t| t["key"] == key)?["value"].as_str()
}

/// Every pipeline (parent) run the server holds, newest first; `name` narrows to one pipeline.
async fn pipeline_runs(api: &Api, name: Option<&str>) -> anyhow::Result<Vec<Value>> {
    let experiments =
        api.all_pages(&format!("{API}/experiments/search"), "experiments", &[("max_results", "1000")]).await?;
    let ids: Vec<Value> = experiments.iter().map(|e| e["experiment_id"].clone()).collect();
    let filter = match name {
        Some(n) => format!("tags.`slipway.pipeline` = '{}'", n.replace('\'', "\\'")),
        None => "tags.`slipway.pipeline` LIKE '%'".to_string(),
    };
    let mut runs = Vec::new();
    for chunk in ids.chunks(100) {
        let mut token = Value::Null;
        loop {
            let body = json!({
                "experiment_ids": chunk, "filter": filter, "max_results": 1000,
                "order_by": ["attributes.start_time DESC"], "page_token": token,
            });
            let page = api.call("POST", &format!("{API}/runs/search"), &[], Some(body)).await?;
            runs.extend(page["runs"].as_array().cloned().unwrap_or_default());
            match page["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = Value::String(t.to_string()),
                _ => break,
            }
        }
    }
    runs.sort_by_key(|r| std::cmp::Reverse(r["info"]["start_time"].as_i64().unwrap_or(0)));
    Ok(runs)
}

fn run_row(r: &Value) -> Vec<String> {
    vec![
        r["info"]["run_id"].as_str().unwrap_or_default().to_string(),
        tag(r, "slipway.status").unwrap_or_else(|| r["info"]["status"].as_str().unwrap_or("-")).to_string(),
        r["info"]["start_time"].as_i64().map_or_else(|| "-".into(), utc),
        tag(r, "slipway.summary").unwrap_or("-").to_string(),
    ]
}

async fn list(api: &Api, json_out: bool) -> anyhow::Result<()> {
    let runs = pipeline_runs(api, None).await?;
    let mut latest: Vec<(String, usize, &Value)> = Vec::new();
    for r in &runs {
        let name = tag(r, "slipway.pipeline").unwrap_or_default().to_string();
        match latest.iter_mut().find(|l| l.0 == name) {
            Some(l) => l.1 += 1,
            None => latest.push((name, 1, r)),
        }
    }
    if json_out {
        let items: Vec<Value> = latest.iter().map(|(n, c, r)| json!({"name": n, "runs": c, "latest": r})).collect();
        return print_json(&Value::Array(items));
    }
    let rows = latest
        .iter()
        .map(|(n, c, r)| {
            let mut row = vec![n.clone(), c.to_string()];
            row.extend(run_row(r));
            row
        })
        .collect();
    print_table(&["PIPELINE", "RUNS", "LATEST RUN", "STATUS", "STARTED", "STEPS"], rows);
    Ok(())
}

async fn runs(api: &Api, name: &str, json_out: bool) -> anyhow::Result<()> {
    let runs = pipeline_runs(api, Some(name)).await?;
    if json_out {
        return print_json(&Value::Array(runs));
    }
    if runs.is_empty() {
        bail!("no runs of pipeline '{name}' on this server");
    }
    print_table(&["RUN", "STATUS", "STARTED", "STEPS"], runs.iter().map(run_row).collect());
    Ok(())
}

async fn logs(api: &Api, run_id: &str, step: Option<&str>) -> anyhow::Result<()> {
    let run = api.call("GET", &format!("{API}/runs/get"), &[("run_id", run_id)], None).await?;
    let experiment = run["run"]["info"]["experiment_id"].clone();
    let body = json!({
        "experiment_ids": [experiment],
        "filter": format!("tags.`mlflow.parentRunId` = '{run_id}'"),
        "max_results": 1000,
        "order_by": ["attributes.start_time ASC"],
    });
    let children = api.call("POST", &format!("{API}/runs/search"), &[], Some(body)).await?;
    let mut shown = 0;
    for child in children["runs"].as_array().into_iter().flatten() {
        let Some(name) = tag(child, "slipway.step") else { continue };
        if step.is_some_and(|s| s != name) {
            continue;
        }
        let root = child["info"]["artifact_uri"].as_str().unwrap_or_default();
        let Some(path) = root.strip_prefix("mlflow-artifacts:") else { continue };
        let path = format!("/api/2.0/mlflow-artifacts/artifacts/{}/logs/{name}.log", path.trim_start_matches('/'));
        shown += 1;
        match api.get_bytes(&path).await {
            Ok(bytes) => {
                println!("==> {name} (run {})", child["info"]["run_id"].as_str().unwrap_or_default());
                crate::output::to_stdout(|w| w.write_all(&bytes))?;
            }
            Err(_) => println!("==> {name}: no log ({})", tag(child, "slipway.status").unwrap_or("not run")),
        }
    }
    if shown == 0 {
        bail!("no step logs for run {run_id}{}", step.map(|s| format!(" and step '{s}'")).unwrap_or_default());
    }
    Ok(())
}
