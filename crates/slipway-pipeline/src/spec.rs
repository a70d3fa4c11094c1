//! `slipway.yaml`: the pipeline file a data scientist writes, read into checked [`Pipeline`]s.
//!
//! ```yaml
//! pipeline: fraud-retrain          # default: the folder's name
//! params: params.yaml              # default: params.yaml when it exists
//! steps:
//!   prepare:
//!     cmd: python prepare.py
//!     deps: [prepare.py, data:raw-events@latest]   # a data version, written to data/raw-events/
//!     outs: [data/train.csv, data/holdout.csv]
//!     publish: fraud-train                          # the outs as a new version of a data set
//!   train:
//!     cmd: python train.py --C ${train.C}
//!     deps: [train.py, data/train.csv]
//!     params: [train.seed]
//!     metrics: metrics.json
//!     retry: 2
//!     timeout: 10m
//!   gate:
//!     uses: slipway/gate
//!     with: {model: fraud, data: data/holdout.csv, label: y, metric: f1, min_delta: 0.01}
//!     after: [train]
//!     when: params.gate.enabled == true
//! ```
//!
//! Every path is relative to the file's folder and may not leave it. Unknown keys are errors
//! (a typo must not silently turn caching off), and every error names the file, the line and
//! the step.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::condition::Condition;
use crate::cron::Cron;
use crate::error::{Location, PipelineError, Result};
use crate::params::Params;

pub const DEFAULT_FILE: &str = "slipway.yaml";
const DEFAULT_PARAMS: &str = "params.yaml";

/// A checked pipeline: steps in file order, every reference resolved.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    /// The MLflow experiment its runs go to (default: the pipeline's name).
    pub experiment: String,
    pub file: PathBuf,
    /// The file's folder: every step path is relative to it.
    pub root: PathBuf,
    pub params: Params,
    /// Bumped by hand to invalidate every cached result at once.
    pub cache_version: Option<String>,
    pub steps: Vec<Step>,
    /// Schedules on which `slipway server --pipeline FILE` starts it.
    pub crons: Vec<Cron>,
}

impl Step {
    /// Where each data dep is written (`data/NAME` under the work dir) and which version.
    pub fn data_dests(&self) -> Vec<(String, String)> {
        self.deps
            .iter()
            .filter_map(|d| match d {
                Dep::Data { name, which } => {
                    let dir = if self.wdir.as_str().is_empty() { String::new() } else { format!("{}/", self.wdir) };
                    Some((format!("{dir}data/{name}"), which.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub line: usize,
    pub action: Action,
    pub deps: Vec<Dep>,
    /// Steps that must finish first although no file connects them.
    pub after: Vec<String>,
    /// Param keys whose values belong to the cache key (those `${…}` names included).
    pub params: BTreeSet<String>,
    pub outs: Vec<RelPath>,
    pub metrics: Option<RelPath>,
    pub env: BTreeMap<String, String>,
    pub retry: Retry,
    pub timeout: Option<Duration>,
    pub when: Option<Condition>,
    pub wdir: RelPath,
    /// `cache: false` always runs the step (a step with side effects, such as a promotion).
    pub cache: bool,
    /// A data set the step's outs become a new version of each time it runs and they changed.
    pub publish: Option<String>,
}

/// What a step runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A shell command, `${param}` references already replaced.
    Cmd(String),
    /// A step built into slipway (`slipway/gate`), with its arguments.
    Uses { name: String, with: BTreeMap<String, String> },
}

impl Action {
    /// The canonical text that goes into the cache key.
    pub fn describe(&self) -> String {
        match self {
            Action::Cmd(cmd) => cmd.clone(),
            Action::Uses { name, with } => {
                let args: Vec<String> = with.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("uses {name} {}", args.join(" "))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dep {
    /// A file or folder in the project.
    Path(RelPath),
    /// A run's artifact (`runs:/RUN/path`) or a registered model (`models:/name/3`,
    /// `models:/name@alias`): hashed by what the server says they are now.
    Uri(String),
    /// A data version (`data:NAME@VERSION`, `data:NAME` for the latest; an alias resolved
    /// when the step runs), hashed by its manifest and written to `data/NAME` under the
    /// step's work dir before it runs.
    Data { name: String, which: String },
}

impl Dep {
    /// The dependency as the pipeline file writes it.
    pub fn describe(&self) -> String {
        match self {
            Dep::Path(p) => p.to_string(),
            Dep::Uri(u) => u.clone(),
            Dep::Data { name, which } => format!("data:{name}@{which}"),
        }
    }

    /// Whether what it is can change without the project changing: the server must be asked.
    pub fn remote(&self) -> bool {
        !matches!(self, Dep::Path(_))
    }
}

/// A data set's name as the server takes it: a letter or digit, then letters, digits, `.`,
/// `_`, `-`, at most 128 (so never `.` or `..`).
fn data_set_name(name: &str) -> bool {
    name.len() <= 128
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Further attempts after the first failure.
    pub max: u32,
    /// The wait before the first retry; it doubles for each next one.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { max: 0, backoff: Duration::from_secs(1) }
    }
}

/// A path inside the project: relative, normalised, never `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    pub fn parse(raw: &str) -> std::result::Result<Self, String> {
        let trimmed = raw.trim().trim_end_matches('/');
        if trimmed.is_empty() || trimmed == "." {
            return Ok(RelPath(String::new()));
        }
        let mut parts = Vec::new();
        for c in Path::new(trimmed).components() {
            match c {
                Component::Normal(p) => match p.to_str() {
                    Some(s) => parts.push(s),
                    None => return Err(format!("'{raw}' is not valid UTF-8")),
                },
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(format!("'{raw}' leaves the project folder; paths are relative to it"));
                }
            }
        }
        Ok(RelPath(parts.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn under(&self, root: &Path) -> PathBuf {
        if self.0.is_empty() { root.to_path_buf() } else { root.join(&self.0) }
    }

    /// The first `len` bytes, cut at a `/`.
    pub(crate) fn prefix(&self, len: usize) -> RelPath {
        RelPath(self.0[..len].to_string())
    }

    /// Where the paths inside this folder start in sorted order (`data/`).
    pub(crate) fn inside_start(&self) -> RelPath {
        RelPath(format!("{}/", self.0))
    }

    /// Whether `self` is `other` or lies inside it.
    pub fn within(&self, other: &RelPath) -> bool {
        other.0.is_empty()
            || self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.starts_with(&other.0)
                && self.0.as_bytes()[other.0.len()] == b'/')
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "." } else { &self.0 })
    }
}

// ---------------------------------------------------------------------------------------
// The file as written

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    pipeline: Option<String>,
    experiment: Option<String>,
    params: Option<String>,
    cache_version: Option<Value>,
    steps: serde_yaml_ng::Mapping,
    #[serde(default)]
    triggers: Vec<RawTrigger>,
}

/// When `slipway server` (given this file) starts the pipeline by itself.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    cron: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    cmd: Option<String>,
    uses: Option<String>,
    #[serde(default)]
    with: BTreeMap<String, Value>,
    #[serde(default)]
    deps: Vec<String>,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    params: Vec<String>,
    #[serde(default)]
    outs: Vec<String>,
    metrics: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, Value>,
    retry: Option<RawRetry>,
    timeout: Option<Value>,
    when: Option<String>,
    wdir: Option<String>,
    cache: Option<bool>,
    publish: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRetry {
    Count(u32),
    Full { max: u32, backoff: Option<Value> },
}

const BUILT_INS: &[&str] = &["slipway/gate"];

/// Reads and checks the pipeline file at `file` (its params file too). The DAG is checked
/// separately by [`crate::dag::Dag::build`].
pub fn load(file: &Path) -> Result<Pipeline> {
    let text = std::fs::read_to_string(file).map_err(|e| PipelineError::io(file, e))?;
    parse(file, &text)
}

pub fn parse(file: &Path, text: &str) -> Result<Pipeline> {
    let root = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let at_line =
        |line: usize, step: Option<&str>| Location { file: file.to_path_buf(), line, step: step.map(str::to_string) };
    let raw: RawPipeline = serde_yaml_ng::from_str(text).map_err(|e| PipelineError::Invalid {
        at: at_line(e.location().map_or(0, |l| l.line()), None),
        message: e.to_string(),
    })?;
    let name = match raw.pipeline {
        Some(n) => n,
        None => folder_name(&root),
    };
    if name.trim().is_empty() {
        return Err(PipelineError::Invalid { at: at_line(0, None), message: "the pipeline needs a name".into() });
    }
    let params_file = match &raw.params {
        Some(p) => Some(rel(p, &at_line(line_of_key(text, "params", 0), None))?),
        None => Some(RelPath(DEFAULT_PARAMS.into())).filter(|p| p.under(&root).is_file()),
    };
    let params = match params_file {
        Some(p) => Params::load(&p.under(&root))?,
        None => Params::default(),
    };
    if raw.steps.is_empty() {
        return Err(PipelineError::Invalid {
            at: at_line(line_of_key(text, "steps", 0), None),
            message: "'steps' is empty: a pipeline needs at least one step".into(),
        });
    }
    let mut steps = Vec::with_capacity(raw.steps.len());
    for (key, value) in raw.steps {
        let Some(step_name) = key.as_str().map(str::to_string) else {
            return Err(PipelineError::Invalid {
                at: at_line(line_of_key(text, "steps", 0), None),
                message: format!("step names are strings, got {key:?}"),
            });
        };
        let line = line_of_step(text, &step_name);
        let at = at_line(line, Some(&step_name));
        let raw_step: RawStep = serde_yaml_ng::from_value(value)
            .map_err(|e| PipelineError::Invalid { at: at.clone(), message: e.to_string() })?;
        let step = check_step(step_name, line, raw_step, &params, &at)?;
        // Two steps writing one data folder with different versions would delete each other's
        // files while they run.
        for (dest, which) in step.data_dests() {
            let clash = steps.iter().find_map(|other: &Step| {
                other.data_dests().into_iter().find(|(d, w)| *d == dest && *w != which).map(|_| other.name.clone())
            });
            if let Some(other) = clash {
                return Err(PipelineError::Invalid {
                    at,
                    message: format!("step '{other}' writes another version to {dest}: give one of them another wdir"),
                });
            }
        }
        steps.push(step);
    }
    let cache_version = raw.cache_version.map(|v| scalar(&v));
    let crons =
        raw.triggers.iter().map(|t| Cron::parse(&t.cron)).collect::<std::result::Result<Vec<_>, _>>().map_err(
            |message| PipelineError::Invalid { at: at_line(line_of_key(text, "triggers", 0), None), message },
        )?;
    Ok(Pipeline {
        experiment: raw.experiment.unwrap_or_else(|| name.clone()),
        name,
        file: file.to_path_buf(),
        root,
        params,
        cache_version,
        steps,
        crons,
    })
}

fn check_step(name: String, line: usize, raw: RawStep, params: &Params, at: &Location) -> Result<Step> {
    let invalid = |message: String| PipelineError::Invalid { at: at.clone(), message };
    if !valid_name(&name) {
        return Err(invalid(format!("step name '{name}' may hold only letters, digits, '-', '_' and '.'")));
    }
    let mut used = BTreeSet::new();
    let action = match (raw.cmd, raw.uses) {
        (Some(cmd), None) => {
            if !raw.with.is_empty() {
                return Err(invalid("'with' goes with 'uses', not 'cmd'".into()));
            }
            Action::Cmd(params.interpolate(&cmd, &mut used).map_err(invalid)?)
        }
        (None, Some(uses)) => {
            if !BUILT_INS.contains(&uses.as_str()) {
                return Err(invalid(format!("unknown built-in step '{uses}' (known: {})", BUILT_INS.join(", "))));
            }
            let mut with = BTreeMap::new();
            for (k, v) in raw.with {
                with.insert(k, params.interpolate(&scalar(&v), &mut used).map_err(invalid)?);
            }
            Action::Uses { name: uses, with }
        }
        (Some(_), Some(_)) => return Err(invalid("a step has either 'cmd' or 'uses', not both".into())),
        (None, None) => return Err(invalid("a step needs 'cmd' (a shell command) or 'uses' (a built-in step)".into())),
    };
    for key in &raw.params {
        if params.get(key).is_none() {
            return Err(invalid(format!("param '{key}' is not in the params file")));
        }
    }
    used.extend(raw.params);
    let mut deps = Vec::with_capacity(raw.deps.len());
    for d in &raw.deps {
        deps.push(if d.starts_with("runs:/") || d.starts_with("models:/") {
            Dep::Uri(d.clone())
        } else if let Some(spec) = d.strip_prefix("data:") {
            let (name, which) = spec.split_once('@').unwrap_or((spec, "latest"));
            if !data_set_name(name) || which.is_empty() || which.contains('/') {
                return Err(invalid(format!(
                    "dependency '{d}': a data version is data:NAME@VERSION (a number, an alias or latest)"
                )));
            }
            Dep::Data { name: name.to_string(), which: which.to_string() }
        } else if d.contains(":/") {
            return Err(invalid(format!(
                "dependency '{d}': only project paths, data: versions, runs:/ and models:/ URIs are dependencies"
            )));
        } else {
            Dep::Path(rel(d, at)?)
        });
    }
    let outs = raw.outs.iter().map(|o| rel(o, at)).collect::<Result<Vec<_>>>()?;
    let publish = match raw.publish {
        Some(name) if !data_set_name(&name) => {
            return Err(invalid(format!("publish: '{name}' is no data set name (letters, digits, '.', '_', '-')")));
        }
        Some(_) if outs.is_empty() => return Err(invalid("publish: the step has no outs to publish".into())),
        Some(name) => {
            // A version names each out by its last component, so two must not share one.
            let mut seen = BTreeSet::new();
            if let Some(twice) =
                outs.iter().map(|o| o.as_str().rsplit('/').next().unwrap_or("")).find(|b| !seen.insert(*b))
            {
                return Err(invalid(format!(
                    "publish: two outs are named '{twice}'; a data version holds each out under its last name"
                )));
            }
            Some(name)
        }
        None => None,
    };
    if let Some(empty) = outs.iter().find(|o| o.as_str().is_empty()) {
        return Err(invalid(format!("out '{empty}' is the whole project folder")));
    }
    let mut env = BTreeMap::new();
    for (k, v) in raw.env {
        env.insert(k, params.interpolate(&scalar(&v), &mut used).map_err(invalid)?);
    }
    let retry = match raw.retry {
        None => Retry::default(),
        Some(RawRetry::Count(max)) => Retry { max, ..Retry::default() },
        Some(RawRetry::Full { max, backoff }) => Retry {
            max,
            backoff: match backoff {
                Some(b) => duration(&b).map_err(|e| invalid(format!("retry.backoff: {e}")))?,
                None => Retry::default().backoff,
            },
        },
    };
    let timeout = raw.timeout.map(|t| duration(&t)).transpose().map_err(|e| invalid(format!("timeout: {e}")))?;
    let when = raw.when.map(|w| Condition::parse(&w)).transpose().map_err(|e| invalid(format!("when: {e}")))?;
    for key in when.iter().flat_map(Condition::params) {
        if params.get(key).is_none() {
            return Err(invalid(format!("when: param '{key}' is not in the params file")));
        }
        used.insert(key.to_string());
    }
    Ok(Step {
        name,
        line,
        action,
        deps,
        after: raw.after,
        params: used,
        outs,
        metrics: raw.metrics.map(|m| rel(&m, at)).transpose()?,
        env,
        retry,
        timeout,
        when,
        wdir: raw.wdir.map(|w| rel(&w, at)).transpose()?.unwrap_or(RelPath(String::new())),
        cache: raw.cache.unwrap_or(true),
        publish,
    })
}

fn rel(raw: &str, at: &Location) -> Result<RelPath> {
    RelPath::parse(raw).map_err(|message| PipelineError::Invalid { at: at.clone(), message })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn folder_name(root: &Path) -> String {
    let abs = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    abs.file_name().and_then(|n| n.to_str()).unwrap_or("pipeline").to_string()
}

/// A YAML scalar as the text a command line would get (`0.01`, `true`, `abc`).
pub(crate) fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `90`, `90s`, `500ms`, `10m`, `2h`.
pub fn duration(v: &Value) -> std::result::Result<Duration, String> {
    let text = scalar(v);
    let t = text.trim();
    let (num, unit) = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).map_or((t, ""), |i| t.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("'{text}' is not a duration such as 30s, 10m or 2h"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("'{text}' is not a duration such as 30s, 10m or 2h")),
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("'{text}' must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The line of a top-level key (1-based), or 0.
fn line_of_key(text: &str, key: &str, indent: usize) -> usize {
    text.lines()
        .position(|l| {
            let body = l.trim_start();
            l.len() - body.len() == indent && body.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .map_or(0, |i| i + 1)
}

/// The line where step `name` starts under `steps:` (1-based), or 0.
fn line_of_step(text: &str, name: &str) -> usize {
    let start = line_of_key(text, "steps", 0);
    text.lines()
        .enumerate()
        .skip(start)
        .find(|(_, l)| {
            let body = l.trim_start();
            let key = body.trim_start_matches(['"', '\'']);
            l.len() > body.len()
                && key
                    .strip_prefix(name)
                    .is_some_and(|r| r.trim_start_matches(['"', '\'']).trim_start().starts_with(':'))
        })
        .map_or(0, |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Pipeline> {
        parse(Path::new("/nonexistent/proj/slipway.yaml"), text)
    }

    #[test]
    fn a_full_step_reads_back() {
        let p = parse_text(
            "pipeline: demo\nsteps:\n  train:\n    cmd: python train.py\n    deps: [train.py, data/, models:/m@champion]\n    outs: [model.onnx]\n    metrics: metrics.json\n    env: {SEED: 3}\n    retry: {max: 2, backoff: 500ms}\n    timeout: 10m\n",
        )
        .unwrap();
        let s = &p.steps[0];
        assert_eq!((p.name.as_str(), s.name.as_str(), s.line), ("demo", "train", 3));
        assert_eq!(s.deps[1], Dep::Path(RelPath("data".into())));
        assert_eq!(s.deps[2], Dep::Uri("models:/m@champion".into()));
        assert_eq!(s.env["SEED"], "3");
        assert_eq!(s.retry, Retry { max: 2, backoff: Duration::from_millis(500) });
        assert_eq!(s.timeout, Some(Duration::from_secs(600)));
        assert_eq!(p.experiment, "demo");
    }

    #[test]
    fn data_deps_name_a_version_or_the_latest_and_publish_needs_outs() {
        let p = parse_text(
            "steps:\n  a:\n    cmd: x\n    deps: [data:churn@train, data:raw]\n    outs: [o]\n    publish: clean\n",
        )
        .unwrap();
        let s = &p.steps[0];
        assert_eq!(s.deps[0], Dep::Data { name: "churn".into(), which: "train".into() });
        assert_eq!(s.deps[1].describe(), "data:raw@latest");
        assert!(s.deps.iter().all(Dep::remote));
        assert_eq!(s.publish.as_deref(), Some("clean"));
        for bad in ["data:@1", "data:a b@1", "data:a@", "data:a@1/2", "data:..@1", "data:.@1"] {
            let err =
                parse_text(&format!("steps:\n  a:\n    cmd: x\n    deps: [\"{bad}\"]\n")).unwrap_err().to_string();
            assert!(err.contains("data:NAME@VERSION"), "{bad}: {err}");
        }
        let err = parse_text("steps:\n  a:\n    cmd: x\n    publish: clean\n").unwrap_err().to_string();
        assert!(err.contains("no outs"), "{err}");
        let err = parse_text("steps:\n  a:\n    cmd: x\n    outs: [p/m.pkl, q/m.pkl]\n    publish: clean\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'m.pkl'"), "{err}");
        // Two versions of one set in one folder would delete each other's files; one version
        // read by two steps, or two versions in two work dirs, is fine.
        let two = "steps:\n  a:\n    cmd: x\n    deps: [data:raw@1]\n  b:\n    cmd: y\n    deps: [data:raw@2]\n";
        let err = parse_text(two).unwrap_err().to_string();
        assert!(err.contains("data/raw") && err.contains("step 'a'"), "{err}");
        parse_text("steps:\n  a:\n    cmd: x\n    deps: [data:raw@1]\n  b:\n    cmd: y\n    deps: [data:raw@1]\n")
            .unwrap();
        parse_text(
            "steps:\n  a:\n    cmd: x\n    deps: [data:raw@1]\n  b:\n    cmd: y\n    wdir: b\n    deps: [data:raw@2]\n",
        )
        .unwrap();
    }

    #[test]
    fn errors_name_file_line_and_step() {
        let err = parse_text("steps:\n  a:\n    cmd: x\n  b:\n    cmd: y\n    outz: [q]\n").unwrap_err().to_string();
        assert!(err.starts_with("/nonexistent/proj/slipway.yaml:4 (step 'b'): unknown field `outz`"), "{err}");
        let err = parse_text("steps:\n  a:\n    cmd: x\n    deps: [../secret]\n").unwrap_err().to_string();
        assert!(err.contains(":2 (step 'a')") && err.contains("leaves the project folder"), "{err}");
        let err = parse_text("steps: [\n").unwrap_err().to_string();
        assert!(err.starts_with("/nonexistent/proj/slipway.yaml:"), "{err}");
        let err = parse_text("steps:\n  a: {uses: slipway/nope}\n").unwrap_err().to_string();
        assert!(err.contains("unknown built-in step 'slipway/nope'"), "{err}");
        let err = parse_text("steps:\n  a: {cmd: x, timeout: soon}\n").unwrap_err().to_string();
        assert!(err.contains("timeout: 'soon' is not a duration"), "{err}");
    }

    #[test]
    fn rel_paths_stay_inside() {
        assert_eq!(RelPath::parse("./a/./b/").unwrap().as_str(), "a/b");
        assert!(RelPath::parse("/etc/passwd").is_err());
        assert!(RelPath::parse("a/../../b").is_err());
        let data = RelPath::parse("data").unwrap();
        assert!(RelPath::parse("data/x.csv").unwrap().within(&data));
        assert!(!RelPath::parse("database.csv").unwrap().within(&data));
    }
}
