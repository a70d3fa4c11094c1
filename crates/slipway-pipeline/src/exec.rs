//! Executors run one step's process to its end: the local one on this machine's processes;
//! a remote one (Ray) elsewhere. Either streams the step's output lines back and stops the
//! step when it times out or the run is cancelled.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

use crate::error::{PipelineError, Result};

/// One attempt of one step.
#[derive(Debug, Clone)]
pub struct Job {
    pub step: String,
    pub command: Command,
    pub cwd: PathBuf,
    /// Added to the inherited environment.
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    /// Unique per attempt: the step run id and the attempt (Ray refuses a reused one, so a
    /// retried submit never runs a step twice).
    pub submission_id: String,
    /// The project folder and the step's work dir inside it (what a remote executor ships).
    pub root: PathBuf,
    pub wdir: String,
    /// The outs (and metrics file) a remote executor sends back through the blob store.
    pub collect: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run by `sh -c`.
    Shell(String),
    Argv(Vec<String>),
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Shell(s) => f.write_str(s),
            Command::Argv(a) => f.write_str(&a.join(" ")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    /// Ended by a signal it did not get from us.
    Signalled(i32),
    TimedOut,
    Cancelled,
    /// The executor lost the step (a remote cluster restarted, the job vanished).
    Lost(String),
}

/// Where a running step's output lines go.
pub type LineSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

#[async_trait]
pub trait Executor: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether steps run elsewhere: their outs then come back as blobs, named by the manifest
    /// hash the step prints last as `SLIPWAY_OUTS <hash>`.
    fn remote(&self) -> bool {
        false
    }
    async fn run(&self, job: &Job, lines: LineSink<'_>, cancel: watch::Receiver<bool>) -> Result<Outcome>;
}

/// Steps as child processes of this one, each in its own process group so that a timeout
/// or a cancel stops everything the step started.
pub struct Local {
    /// How long a stopped step gets between SIGTERM and SIGKILL.
    pub grace: Duration,
}

impl Default for Local {
    fn default() -> Self {
        Local { grace: Duration::from_secs(5) }
    }
}

#[async_trait]
impl Executor for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn run(&self, job: &Job, lines: LineSink<'_>, mut cancel: watch::Receiver<bool>) -> Result<Outcome> {
        let mut cmd = match &job.command {
            Command::Shell(s) => {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c").arg(s);
                c
            }
            Command::Argv(argv) => {
                let mut c = tokio::process::Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        cmd.current_dir(&job.cwd)
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| PipelineError::io(&job.cwd, e))?;
        let group = child.id().map(|id| Pid::from_raw(id as i32));
        let out = child.stdout.take();
        let err = child.stderr.take();
        let pump = async {
            tokio::join!(pump(out, lines), pump(err, lines));
        };
        let deadline = async {
            match job.timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let cancelled = async {
            while !*cancel.borrow_and_update() {
                if cancel.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let waited = async {
            let (status, ()) = tokio::join!(child.wait(), pump);
            status
        };
        tokio::pin!(waited);
        let stop = tokio::select! {
            status = &mut waited => {
                let status = status.map_err(|e| PipelineError::io(&job.cwd, e))?;
                return Ok(match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
                    (Some(code), _) => Outcome::Exited(code),
                    (None, Some(sig)) => Outcome::Signalled(sig),
                    (None, None) => Outcome::Exited(-1),
                });
            }
            () = deadline => Outcome::TimedOut,
            () = cancelled => Outcome::Cancelled,
        };
        if let Some(pgid) = group {
            let _ = killpg(pgid, Signal::SIGTERM);
            if tokio::time::timeout(self.grace, &mut waited).await.is_err() {
                let _ = killpg(pgid, Signal::SIGKILL);
                let _ = waited.await;
            }
        }
        Ok(stop)
    }
}

async fn pump(stream: Option<impl AsyncRead + Unpin>, lines: LineSink<'_>) {
    let Some(stream) = stream else { return };
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                lines(text.trim_end_matches(['\n', '\r']));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn job(cmd: &str, timeout: Option<Duration>) -> Job {
        Job {
            step: "s".into(),
            command: Command::Shell(cmd.into()),
            cwd: std::env::temp_dir(),
            env: vec![("GREETING".into(), "hi".into())],
            timeout,
            submission_id: "r-1".into(),
            root: std::env::temp_dir(),
            wdir: String::new(),
            collect: Vec::new(),
        }
    }

    #[tokio::test]
    async fn output_exit_code_and_timeout() {
        let seen = Mutex::new(Vec::new());
        let sink = |l: &str| seen.lock().unwrap().push(l.to_string());
        let (_tx, rx) = watch::channel(false);
        let out = Local::default().run(&job("echo $GREETING; echo oops >&2; exit 3", None), &sink, rx.clone()).await;
        assert_eq!(out.unwrap(), Outcome::Exited(3));
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, ["hi", "oops"]);
        // The sleeping grandchild dies with the group: the run ends well before 30 s.
        let fast = Local { grace: Duration::from_millis(200) };
        let out = fast.run(&job("sleep 30 & sleep 30", Some(Duration::from_millis(300))), &sink, rx).await;
        assert_eq!(out.unwrap(), Outcome::TimedOut);
    }

    #[tokio::test]
    async fn cancel_stops_the_group() {
        let (tx, rx) = watch::channel(false);
        let sink = |_: &str| {};
        let local = Local { grace: Duration::from_millis(200) };
        let job = job("trap '' TERM; sleep 30", None);
        let run = local.run(&job, &sink, rx);
        let stop = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(true).unwrap();
        };
        let (out, ()) = tokio::join!(run, stop);
        assert_eq!(out.unwrap(), Outcome::Cancelled);
    }
}
