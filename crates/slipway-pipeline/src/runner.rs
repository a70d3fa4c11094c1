//! A pipeline run: checks the steps against the lock file (nothing changed: nothing runs and
//! nobody is contacted), else opens a parent run and walks the DAG, up to `jobs` steps at a
//! time. A failed step blocks what needs it while independent branches go on; a cancel
//! (Ctrl-C, or `slipway pipelines cancel` seen through the tracking server) stops every
//! running step.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use tokio::sync::watch;

use crate::dag::Dag;
use crate::error::{PipelineError, Result};
use crate::exec::Executor;
use crate::hash::Hasher;
use crate::lock::{Lock, Locked};
use crate::records::{Blobs, Log, Records, RunStatus};
use crate::spec::{Pipeline, Step};
use crate::step;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running {
        run_id: String,
        attempt: u32,
    },
    /// An earlier result was reused (`restored`: its outs were fetched from the store).
    Cached {
        run_id: Option<String>,
        from: String,
        restored: bool,
    },
    Done {
        run_id: String,
        seconds: f64,
    },
    Failed {
        run_id: Option<String>,
        reason: String,
    },
    Skipped {
        reason: String,
    },
    /// Not run because a step it needs did not succeed.
    Blocked {
        by: String,
    },
    Cancelled,
}

impl StepState {
    fn succeeded(&self) -> bool {
        matches!(self, StepState::Cached { .. } | StepState::Done { .. })
    }
}

/// What the caller hears while the run goes on.
#[derive(Debug, Clone)]
pub enum Event {
    State {
        step: String,
        state: StepState,
    },
    /// A line the step printed.
    Line {
        step: String,
        line: String,
    },
    /// Something the runner wants a person to know.
    Note {
        step: String,
        text: String,
    },
    /// The parent run was opened.
    Started {
        run_id: String,
        experiment_id: String,
    },
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Only this step and what it needs.
    pub step: Option<String>,
    /// Ignore every cached result.
    pub force: bool,
    pub jobs: usize,
    pub tracking_uri: String,
    /// The `slipway` binary built-in steps run.
    pub slipway_exe: PathBuf,
    /// What started the run when the server did: (trigger key, source), tagged on the run.
    pub trigger: Option<(String, String)>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub pipeline: String,
    /// None when everything was up to date and nothing was recorded.
    pub run_id: Option<String>,
    pub status: &'static str,
    pub steps: BTreeMap<String, StepState>,
}

/// What every step of one run shares.
pub struct Context<'a> {
    pub pipeline: &'a Pipeline,
    pub records: &'a dyn Records,
    pub blobs: &'a dyn Blobs,
    pub executor: &'a dyn Executor,
    pub tracking_uri: String,
    pub slipway_exe: PathBuf,
    events: &'a (dyn Fn(Event) + Send + Sync),
    lock: Mutex<Lock>,
    run: OnceLock<(String, String)>,
}

impl Context<'_> {
    pub fn experiment_id(&self) -> &str {
        self.run.get().map_or("", |r| r.0.as_str())
    }

    pub fn parent_run(&self) -> &str {
        self.run.get().map_or("", |r| r.1.as_str())
    }

    pub fn emit(&self, step: &str, state: StepState) {
        (self.events)(Event::State { step: step.to_string(), state });
    }

    pub fn line(&self, step: &str, line: &str) {
        (self.events)(Event::Line { step: step.to_string(), line: line.to_string() });
    }

    pub fn note(&self, step: &str, text: &str) {
        (self.events)(Event::Note { step: step.to_string(), text: text.to_string() });
    }

    pub fn lock_entry(&self, step: &str) -> Option<Locked> {
        self.lock.lock().unwrap_or_else(PoisonError::into_inner).steps.get(step).cloned()
    }

    fn remember(&self, step: &str, locked: Locked) -> Result<()> {
        let mut lock = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        lock.record(step, locked)
    }

    /// A succeeded step whose records could not be finished failed after all: it is forgotten
    /// by the lock, so the next run runs it again.
    fn recorded(
        &self,
        step: &str,
        recorded: Result<()>,
        states: &mut BTreeMap<usize, StepState>,
        i: usize,
    ) -> Result<()> {
        let Err(e) = recorded else { return Ok(()) };
        let run_id = match &states[&i] {
            StepState::Done { run_id, .. } => Some(run_id.clone()),
            _ => None,
        };
        let state = StepState::Failed { run_id, reason: format!("its run could not be recorded: {e}") };
        self.emit(step, state.clone());
        states.insert(i, state);
        self.lock.lock().unwrap_or_else(PoisonError::into_inner).forget(step)
    }

    fn save_lock(&self) -> Result<()> {
        self.lock.lock().unwrap_or_else(PoisonError::into_inner).save()
    }
}

pub struct Runner<'a> {
    pub pipeline: &'a Pipeline,
    pub dag: &'a Dag,
    pub records: &'a dyn Records,
    pub blobs: &'a dyn Blobs,
    pub executor: &'a dyn Executor,
    pub events: &'a (dyn Fn(Event) + Send + Sync),
}

impl Runner<'_> {
    /// Runs the pipeline; `interrupt` turning true (Ctrl-C) cancels it.
    pub async fn run(&self, opts: &Options, mut interrupt: watch::Receiver<bool>) -> Result<Summary> {
        let p = self.pipeline;
        let selected: Vec<usize> = match &opts.step {
            Some(name) => {
                let i = p.steps.iter().position(|s| &s.name == name).ok_or_else(|| {
                    PipelineError::Records(format!("no step '{name}' in {} (steps: {})", p.file.display(), names(p)))
                })?;
                let keep = self.dag.with_upstream(i);
                self.dag.order.iter().copied().filter(|j| keep.contains(j)).collect()
            }
            None => self.dag.order.clone(),
        };
        let hasher = Hasher::open(&p.root);
        let cx = Context {
            pipeline: p,
            records: self.records,
            blobs: self.blobs,
            executor: self.executor,
            tracking_uri: opts.tracking_uri.clone(),
            slipway_exe: opts.slipway_exe.clone(),
            events: self.events,
            lock: Mutex::new(Lock::open(&p.root, &p.name)),
            run: OnceLock::new(),
        };
        if !opts.force
            && let Some(fresh) = self.up_to_date(&cx, &selected, &hasher).await?
        {
            hasher.save()?;
            cx.save_lock()?;
            for (name, state) in &fresh {
                cx.emit(name, state.clone());
            }
            return Ok(Summary { pipeline: p.name.clone(), run_id: None, status: "up_to_date", steps: fresh });
        }
        let experiment_id = self.records.experiment(&p.experiment).await?;
        self.close_abandoned(&cx, &experiment_id).await?;
        let parent = self
            .records
            .start_run(
                &experiment_id,
                &p.name,
                None,
                Log { tags: parent_tags(p, self.executor, opts), ..Log::default() },
            )
            .await?;
        let _ = cx.run.set((experiment_id.clone(), parent.clone()));
        (self.events)(Event::Started { run_id: parent.clone(), experiment_id });

        let (cancel_tx, cancel_rx) = watch::channel(false);
        let mut states: BTreeMap<usize, StepState> = selected.iter().map(|&i| (i, StepState::Pending)).collect();
        let mut running = FuturesUnordered::new();
        // Records of succeeded steps still being written (step::Closing).
        let mut closing = FuturesUnordered::new();

        let mut poll = tokio::time::interval(Duration::from_secs(2));
        let mut cancelled = false;
        loop {
            // Start what is ready, in DAG order, up to `jobs` at a time.
            if !cancelled {
                for &i in &selected {
                    if running.len() >= opts.jobs.max(1) {
                        break;
                    }
                    if states[&i] != StepState::Pending || !self.dag.upstream[i].iter().all(|u| finished(states.get(u)))
                    {
                        continue;
                    }
                    let verdict = self.gate(&cx, i, &states);
                    match verdict {
                        Some(state) => {
                            cx.emit(&p.steps[i].name, state.clone());
                            states.insert(i, state);
                        }
                        None => {
                            states.insert(i, StepState::Running { run_id: String::new(), attempt: 1 });
                            let step = &p.steps[i];
                            let (cx, hasher, rx) = (&cx, &hasher, cancel_rx.clone());
                            running.push(async move { (i, one(cx, step, hasher, rx, opts.force).await) });
                        }
                    }
                }
            }
            if running.is_empty() {
                let waiting = states.values().any(|s| *s == StepState::Pending);
                if !waiting || cancelled {
                    break;
                }
                continue;
            }
            tokio::select! {
                Some((i, (state, records))) = running.next() => {
                    cx.emit(&p.steps[i].name, state.clone());
                    states.insert(i, state);
                    if let Some(records) = records {
                        closing.push(async move { (i, records.await) });
                    }
                }
                Some((i, recorded)) = closing.next() => cx.recorded(&p.steps[i].name, recorded, &mut states, i)?,
                _ = poll.tick() => {
                    if !cancelled && self.records.cancel_requested(&parent).await.unwrap_or(false) {
                        cancelled = true;
                        let _ = cancel_tx.send(true);
                    }
                }
                changed = interrupt.changed(), if !cancelled => {
                    if changed.is_err() || *interrupt.borrow() {
                        cancelled = true;
                        let _ = cancel_tx.send(true);
                    }
                }
            }
        }
        while let Some((i, recorded)) = closing.next().await {
            cx.recorded(&p.steps[i].name, recorded, &mut states, i)?;
        }
        for (i, s) in states.iter_mut() {
            if *s == StepState::Pending {
                *s = StepState::Cancelled;
                cx.emit(&p.steps[*i].name, s.clone());
            }
        }
        hasher.save()?;
        cx.save_lock()?;
        let failed = states.values().any(|s| matches!(s, StepState::Failed { .. } | StepState::Blocked { .. }));
        let (status, run_status) = if cancelled || states.values().any(|s| *s == StepState::Cancelled) {
            ("cancelled", RunStatus::Killed)
        } else if failed {
            ("failed", RunStatus::Failed)
        } else {
            ("finished", RunStatus::Finished)
        };
        let counts = count(&states);
        self.records
            .log(
                &parent,
                Log {
                    tags: vec![("slipway.status".into(), status.into()), ("slipway.summary".into(), counts)],
                    ..Log::default()
                },
            )
            .await?;
        self.records.finish(&parent, run_status).await?;
        let steps = states.into_iter().map(|(i, s)| (p.steps[i].name.clone(), s)).collect();
        Ok(Summary { pipeline: p.name.clone(), run_id: Some(parent), status, steps })
    }

    /// Marks KILLED the runs of this pipeline that a runner on this machine left RUNNING
    /// when it died (`kill -9`, a crash): their runner's process is gone, so nothing will
    /// ever finish them. Runs of live runners, or of other machines, are left alone.
    async fn close_abandoned(&self, cx: &Context<'_>, experiment_id: &str) -> Result<()> {
        let here = hostname();
        let running = self.records.running(experiment_id, "slipway.pipeline", &self.pipeline.name).await?;
        for (run_id, runner) in running {
            let Some((host, pid)) = runner.as_deref().and_then(|r| r.rsplit_once(':')) else { continue };
            if host != here || pid.parse::<u32>().is_ok_and(alive) {
                continue;
            }
            for (child, _) in self.records.running(experiment_id, "mlflow.parentRunId", &run_id).await? {
                self.records.log(&child, abandoned()).await?;
                self.records.finish(&child, RunStatus::Killed).await?;
            }
            self.records.log(&run_id, abandoned()).await?;
            self.records.finish(&run_id, RunStatus::Killed).await?;
            cx.note(
                "-",
                &format!("pipeline run {run_id} was left running by a runner that died (pid {pid}); marked killed"),
            );
        }
        Ok(())
    }

    /// Decides, before a step starts, whether it must not run: something it needs failed or
    /// was skipped, or its `when:` is false.
    fn gate(&self, cx: &Context<'_>, i: usize, states: &BTreeMap<usize, StepState>) -> Option<StepState> {
        let p = self.pipeline;
        for &u in &self.dag.upstream[i] {
            match states.get(&u) {
                Some(StepState::Skipped { .. }) => {
                    return Some(StepState::Skipped { reason: format!("'{}' was skipped", p.steps[u].name) });
                }
                Some(s) if !s.succeeded() && s != &StepState::Pending => {
                    return Some(StepState::Blocked { by: p.steps[u].name.clone() });
                }
                _ => {}
            }
        }
        let when = p.steps[i].when.as_ref()?;
        let metric = |step: &str, key: &str| metric_of(cx, step, key);
        (!when.holds(&p.params, &metric)).then(|| StepState::Skipped { reason: format!("when: {when} is false") })
    }

    /// Every selected step's key and outs match the lock: the states to report, else None.
    async fn up_to_date(
        &self,
        cx: &Context<'_>,
        selected: &[usize],
        hasher: &Hasher,
    ) -> Result<Option<BTreeMap<String, StepState>>> {
        let p = self.pipeline;
        let mut states: BTreeMap<usize, StepState> = BTreeMap::new();
        for &i in selected {
            let step = &p.steps[i];
            if let Some(s) = self.gate(cx, i, &states) {
                if matches!(s, StepState::Skipped { .. }) {
                    states.insert(i, s);
                    continue;
                }
                return Ok(None);
            }
            let Some(locked) = cx.lock_entry(&step.name) else { return Ok(None) };
            if !step.cache || step.deps.iter().any(crate::spec::Dep::remote) {
                return Ok(None);
            }
            let Some(key) = local_key(cx, step, hasher).await? else { return Ok(None) };
            if key != locked.key {
                return Ok(None);
            }
            for (path, hash) in &locked.outs {
                if hasher.entry(path)?.is_none_or(|e| e.hash() != hash) {
                    return Ok(None);
                }
            }
            states.insert(i, StepState::Cached { run_id: None, from: locked.run_id, restored: false });
        }
        Ok(Some(states.into_iter().map(|(i, s)| (p.steps[i].name.clone(), s)).collect()))
    }
}

/// The key from local files only (no `runs:/`/`models:/` deps); None when a dep is missing.
async fn local_key(cx: &Context<'_>, step: &Step, hasher: &Hasher) -> Result<Option<String>> {
    match step::inputs(cx, step, hasher).await {
        Ok(inputs) => Ok(Some(inputs.key)),
        Err(PipelineError::Records(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One step from its inputs to its final state.
async fn one<'a>(
    cx: &'a Context<'_>,
    step: &'a Step,
    hasher: &Hasher,
    cancel: watch::Receiver<bool>,
    force: bool,
) -> (StepState, Option<step::Closing<'a>>) {
    let attempt = async {
        let inputs = step::inputs(cx, step, hasher).await?;
        if step.cache
            && !force
            && let Some((hit, restored)) = step::try_cache(cx, step, &inputs.key, hasher).await?
        {
            let run_id = step::record_hit(cx, step, &inputs, &hit).await?;
            let from = hit.run_id.clone();
            cx.remember(&step.name, hit)?;
            return Ok((StepState::Cached { run_id: Some(run_id), from, restored }, None));
        }
        let (state, done) = step::execute(cx, step, &inputs, hasher, cancel).await?;
        let closing = match done {
            Some((locked, closing)) => {
                cx.remember(&step.name, locked)?;
                Some(closing)
            }
            None => None,
        };
        Ok::<_, PipelineError>((state, closing))
    };
    attempt.await.unwrap_or_else(|e| (StepState::Failed { run_id: None, reason: e.to_string() }, None))
}

fn finished(s: Option<&StepState>) -> bool {
    !matches!(s, Some(StepState::Pending | StepState::Running { .. }))
}

/// A metric of a step that succeeded in this run or an earlier one (the lock keeps both).
fn metric_of(cx: &Context<'_>, step: &str, key: &str) -> Option<f64> {
    cx.lock_entry(step)?.metrics.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

fn parent_tags(p: &Pipeline, executor: &dyn Executor, opts: &Options) -> Vec<(String, String)> {
    let mut tags = vec![
        ("slipway.pipeline".into(), p.name.clone()),
        ("slipway.pipeline.file".into(), p.file.display().to_string()),
        ("slipway.executor".into(), executor.name().into()),
        ("slipway.runner".into(), format!("{}:{}", hostname(), std::process::id())),
        ("slipway.status".into(), "running".into()),
        ("mlflow.runName".into(), p.name.clone()),
    ];
    if let Some((key, source)) = &opts.trigger {
        tags.push(("slipway.trigger".into(), key.clone()));
        tags.push(("slipway.trigger.source".into(), source.clone()));
    }
    tags
}

fn abandoned() -> Log {
    Log { tags: vec![("slipway.status".into(), "abandoned".into())], ..Log::default() }
}

/// Whether a process with this pid runs on this machine.
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn count(states: &BTreeMap<usize, StepState>) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for s in states.values() {
        let k = match s {
            StepState::Pending | StepState::Running { .. } | StepState::Cancelled => "cancelled",
            StepState::Cached { .. } => "cached",
            StepState::Done { .. } => "ran",
            StepState::Failed { .. } => "failed",
            StepState::Skipped { .. } => "skipped",
            StepState::Blocked { .. } => "blocked",
        };
        *by.entry(k).or_default() += 1;
    }
    by.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
}

fn names(p: &Pipeline) -> String {
    p.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}
