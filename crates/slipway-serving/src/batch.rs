//! Dynamic batching. Each loaded model has a bounded queue of requests; a fixed pool of
//! worker threads takes a model that has work, stacks what is queued for it (up to
//! `max_batch_rows`, optionally waiting up to `max_wait` for more) into one run, and splits
//! the outputs back by rows. While every worker is busy the queues grow and the next batch
//! is bigger: throughput rises with load without any fixed delay at low load. A model runs on
//! at most as many workers at once as it has sessions. A full queue refuses at once (429);
//! a request whose deadline passed before its batch ran is answered as timed out, never run.
//! A small request to an idle, fast model skips the queue and runs on the caller's thread
//! ([`Workers::try_inline`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::ServingError;
use crate::metrics::Metrics;
use crate::model::OnnxModel;
use crate::tensor::{Named, Tensor};

/// How one model's queue behaves.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests that may wait; one more is refused with `Overloaded`.
    pub queue_capacity: usize,
    pub max_batch_rows: usize,
    pub max_wait: Duration,
    /// A request of at most [`INLINE_MAX_ROWS`] rows runs on the caller's thread when the
    /// model's last run took less than this; `Duration::ZERO` never runs inline.
    pub inline_below: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue_capacity: 1024,
            max_batch_rows: 64,
            max_wait: Duration::ZERO,
            inline_below: Duration::from_micros(250),
        }
    }
}

/// The request's inputs, handed back for the prediction log, and its outputs.
pub type Reply = Result<(Vec<Named>, Vec<Named>), ServingError>;

struct Job {
    inputs: Vec<Named>,
    rows: usize,
    deadline: Instant,
    enqueued: Instant,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Workers running this model, plus its place in the ready list when it has one.
    active: usize,
}

/// A model ready to serve: the ONNX model, its queue and its bookkeeping.
pub struct Loaded {
    pub model: OnnxModel,
    pub limits: Limits,
    /// Bytes charged against the memory budget.
    pub charge: u64,
    sessions: usize,
    max_batch_rows: AtomicUsize,
    max_wait_us: AtomicU64,
    queue: Mutex<Queue>,
    arrived: Condvar,
    batchable: AtomicBool,
    last_used: AtomicU64,
    /// Microseconds the last run took: small, fast requests run on the caller's thread.
    last_run_us: AtomicU64,
    labels: Vec<(&'static str, String)>,
}

impl Loaded {
    pub fn new(model: OnnxModel, limits: Limits, sessions: usize, charge: u64, metrics: &Metrics) -> Loaded {
        let labels = vec![("model", metrics.model_label(&model.id.name)), ("version", model.id.version.clone())];
        let batchable = model.batchable();
        Loaded {
            model,
            limits,
            charge,
            sessions: sessions.max(1),
            max_batch_rows: AtomicUsize::new(limits.max_batch_rows.max(1)),
            max_wait_us: AtomicU64::new(limits.max_wait.as_micros() as u64),
            queue: Mutex::new(Queue::default()),
            arrived: Condvar::new(),
            batchable: AtomicBool::new(batchable),
            last_used: AtomicU64::new(0),
            last_run_us: AtomicU64::new(u64::MAX),
            labels,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn queue_depth(&self) -> usize {
        self.lock().jobs.len()
    }

    pub fn touch(&self, tick: u64) {
        self.last_used.store(tick, Ordering::Relaxed);
    }

    pub fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    pub fn metric_labels(&self) -> Vec<(&'static str, String)> {
        self.labels.clone()
    }

    fn max_rows(&self) -> usize {
        if self.batchable.load(Ordering::Relaxed) { self.max_batch_rows.load(Ordering::Relaxed) } else { 1 }
    }

    fn max_wait(&self) -> Duration {
        Duration::from_micros(self.max_wait_us.load(Ordering::Relaxed))
    }

    /// A deployment's own batching settings.
    pub fn set_batching(&self, max_batch_rows: Option<u32>, max_wait_us: Option<u32>) {
        if let Some(rows) = max_batch_rows {
            self.max_batch_rows.store((rows as usize).max(1), Ordering::Relaxed);
        }
        if let Some(us) = max_wait_us {
            self.max_wait_us.store(u64::from(us), Ordering::Relaxed);
        }
    }

    /// Moves queued jobs into `batch` from the front, in order, while they stack with its
    /// first job and fit its row limit; expired ones go to `expired`.
    fn fill(&self, q: &mut Queue, batch: &mut Vec<Job>, expired: &mut Vec<Job>) {
        let now = Instant::now();
        let max_rows = self.max_rows();
        let mut rows: usize = batch.iter().map(|j| j.rows).sum();
        while let Some(job) = q.jobs.front() {
            if job.deadline <= now {
                expired.extend(q.jobs.pop_front());
                continue;
            }
            let fits = match batch.first() {
                None => true,
                Some(first) => rows + job.rows <= max_rows && stackable(&first.inputs, &job.inputs),
            };
            if !fits {
                break;
            }
            rows += job.rows;
            batch.extend(q.jobs.pop_front());
            if rows >= max_rows {
                break;
            }
        }
    }

    /// Runs jobs as one batch and answers each.
    fn run(&self, batch: Vec<Job>, metrics: &Metrics) {
        let rows: usize = batch.iter().map(|j| j.rows).sum();
        let started = Instant::now();
        let result = if batch.len() == 1 { self.model.run(&batch[0].inputs) } else { self.model.run(&stack(&batch)) };
        self.observe_run(metrics, started, rows);
        match result {
            Ok(outputs) if batch.len() == 1 => {
                let job = batch.into_iter().next();
                if let Some(job) = job {
                    let _ = job.reply.send(Ok((job.inputs, outputs)));
                }
            }
            Ok(outputs) if outputs.iter().all(|o| o.tensor.rows() == rows) => {
                let mut offset = 0;
                for job in batch {
                    let part = outputs.iter().map(|o| slice_rows(o, offset, job.rows)).collect();
                    offset += job.rows;
                    let _ = job.reply.send(Ok((job.inputs, part)));
                }
            }
            Ok(_) => {
                // An output that does not have one entry per row cannot be split: this model
                // must run requests one at a time.
                tracing::warn!(model = %self.model.id, "outputs do not follow the batch rows; batching turned off");
                self.batchable.store(false, Ordering::Relaxed);
                for job in batch {
                    let result = self.model.run(&job.inputs);
                    let _ = job.reply.send(result.map(|out| (job.inputs, out)));
                }
            }
            Err(e) if batch.len() > 1 => {
                // One bad request must not fail its neighbours: answer each on its own.
                tracing::debug!(model = %self.model.id, error = %e, "batch failed; running its requests one by one");
                for job in batch {
                    let result = self.model.run(&job.inputs);
                    let _ = job.reply.send(result.map(|out| (job.inputs, out)));
                }
            }
            Err(e) => {
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

impl Loaded {
    fn observe_run(&self, metrics: &Metrics, started: Instant, rows: usize) {
        let took = started.elapsed();
        self.last_run_us.store(took.as_micros() as u64, Ordering::Relaxed);
        metrics.observe_latency("slipway_serving_inference_duration_seconds", self.labels.clone(), took.as_secs_f64());
        metrics.observe_rows(self.labels.clone(), rows);
    }
}

/// Requests of at most this many rows may run on the caller's thread.
pub const INLINE_MAX_ROWS: usize = 16;

fn stackable(a: &[Named], b: &[Named]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name == y.name
                && x.tensor.data.elem() == y.tensor.data.elem()
                && x.tensor.shape[1..] == y.tensor.shape[1..]
        })
}

fn stack(batch: &[Job]) -> Vec<Named> {
    let mut out: Vec<Named> = batch[0].inputs.clone();
    for job in &batch[1..] {
        for (acc, part) in out.iter_mut().zip(&job.inputs) {
            acc.tensor.data.extend(&part.tensor.data);
            acc.tensor.shape[0] += part.tensor.shape[0];
        }
    }
    out
}

fn slice_rows(o: &Named, start: usize, rows: usize) -> Named {
    let width = o.tensor.row_width();
    let mut shape = o.tensor.shape.clone();
    shape[0] = rows;
    Named {
        name: o.name.clone(),
        tensor: Tensor::new(shape, o.tensor.data.slice(start * width..(start + rows) * width)),
        classes: o.classes.clone(),
    }
}

struct Shared {
    ready: Mutex<VecDeque<Arc<Loaded>>>,
    wake: Condvar,
    stop: AtomicBool,
    metrics: Arc<Metrics>,
}

/// The worker pool every loaded model submits to.
pub struct Workers {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` worker threads (at least one); fails only if the OS refuses a thread.
    pub fn start(count: usize, metrics: Arc<Metrics>) -> std::io::Result<Workers> {
        let shared = Arc::new(Shared {
            ready: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            metrics,
        });
        let mut workers = Workers { shared: shared.clone(), threads: Vec::new() };
        for i in 0..count.max(1) {
            let shared = shared.clone();
            // On failure the threads already started are stopped by `Drop`.
            let thread = std::thread::Builder::new().name(format!("slipway-infer-{i}")).spawn(move || work(&shared))?;
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// Runs a small request at once on the caller's thread when its model is idle (nothing
    /// queued, a session free) and fast: two thread hand-offs cost more than such a run.
    /// A model given a batch wait never runs inline: its deployment chose batches over
    /// single-request latency. Gives the inputs back when the request must queue instead.
    pub fn try_inline(&self, model: &Arc<Loaded>, inputs: Vec<Named>, rows: usize) -> Result<Reply, Vec<Named>> {
        let below = model.limits.inline_below.as_micros().min(u128::from(u64::MAX)) as u64;
        if rows > INLINE_MAX_ROWS || model.last_run_us.load(Ordering::Relaxed) >= below || !model.max_wait().is_zero() {
            return Err(inputs);
        }
        {
            let mut q = model.lock();
            if !q.jobs.is_empty() || q.active >= model.sessions {
                return Err(inputs);
            }
            q.active += 1;
        }
        let started = Instant::now();
        let result = model.model.run(&inputs);
        model.observe_run(&self.shared.metrics, started, rows);
        // Requests queued meanwhile found every slot taken: hand them to a worker.
        let schedule = {
            let mut q = model.lock();
            q.active -= 1;
            let schedule = !q.jobs.is_empty() && q.active < model.sessions;
            if schedule {
                q.active += 1;
            }
            schedule
        };
        if schedule {
            self.shared.ready.lock().unwrap_or_else(PoisonError::into_inner).push_back(model.clone());
            self.shared.wake.notify_one();
        }
        Ok(result.map(|outputs| (inputs, outputs)))
    }

    /// Queues a request for `model`; the receiver gets its outputs.
    pub fn submit(
        &self,
        model: &Arc<Loaded>,
        inputs: Vec<Named>,
        rows: usize,
        deadline: Instant,
    ) -> Result<oneshot::Receiver<Reply>, ServingError> {
        let (tx, rx) = oneshot::channel();
        let schedule = {
            let mut q = model.lock();
            if q.jobs.len() >= model.limits.queue_capacity {
                return Err(ServingError::Overloaded(format!(
                    "the queue of model {} is full ({} requests waiting)",
                    model.model.id, model.limits.queue_capacity
                )));
            }
            q.jobs.push_back(Job { inputs, rows, deadline, enqueued: Instant::now(), reply: tx });
            let schedule = q.active < model.sessions;
            if schedule {
                q.active += 1;
            }
            schedule
        };
        model.arrived.notify_one();
        if schedule {
            self.shared.ready.lock().unwrap_or_else(PoisonError::into_inner).push_back(model.clone());
            self.shared.wake.notify_one();
        }
        Ok(rx)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn work(shared: &Shared) {
    loop {
        let model = {
            let mut ready = shared.ready.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Some(m) = ready.pop_front() {
                    break m;
                }
                ready = shared.wake.wait(ready).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let mut batch = Vec::new();
        let mut expired = Vec::new();
        {
            let mut q = model.lock();
            model.fill(&mut q, &mut batch, &mut expired);
            // Optionally wait a little for more rows before running a small batch.
            if let Some(first) = batch.first() {
                let until = first.enqueued + model.max_wait();
                loop {
                    let rows: usize = batch.iter().map(|j| j.rows).sum();
                    let now = Instant::now();
                    if rows >= model.max_rows() || now >= until || !q.jobs.is_empty() {
                        break;
                    }
                    q = model.arrived.wait_timeout(q, until - now).unwrap_or_else(PoisonError::into_inner).0;
                    model.fill(&mut q, &mut batch, &mut expired);
                }
            }
        }
        for job in expired {
            let _ = job.reply.send(Err(ServingError::Timeout("the request waited past its deadline".into())));
        }
        if !batch.is_empty() {
            model.run(batch, &shared.metrics);
        }
        let again = {
            let mut q = model.lock();
            if q.jobs.is_empty() {
                q.active -= 1;
                false
            } else {
                true
            }
        };
        if again {
            shared.ready.lock().unwrap_or_else(PoisonError::into_inner).push_back(model);
            shared.wake.notify_one();
        }
    }
}
