//! `slipway drift`: data drift between a reference and a current dataset (CSV or Parquet),
//! as JSON on stdout (`--json`) or a self-contained HTML report (`--output`). The numbers are
//! `slipway-monitor`'s; this module parses flags, shows progress and writes the output.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use slipway_monitor::drift::{DriftOptions, DriftReport, compare_files};
use slipway_monitor::read::Progress;
use slipway_monitor::stats::Method;

use crate::drift_html;

/// Exit status when `--fail-on-drift` is given and the dataset drifts (errors exit 1).
pub const DRIFT_EXIT_CODE: i32 = 3;

#[derive(Args)]
pub struct DriftArgs {
    /// The reference dataset (.csv or .parquet), e.g. the training data.
    #[arg(long)]
    reference: PathBuf,
    /// The current dataset (.csv or .parquet), e.g. recent production inputs.
    #[arg(long)]
    current: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write the HTML report here (default drift-report.html unless --json is given).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Use this test for a column: COLUMN=METHOD, with METHOD one of ks, chisquare, z,
    /// wasserstein, jensenshannon, psi, kl_div, hellinger. Repeatable.
    #[arg(long = "column-method", value_name = "COLUMN=METHOD")]
    column_method: Vec<String>,
    /// Use this threshold for a column: COLUMN=NUMBER. Repeatable.
    #[arg(long = "column-threshold", value_name = "COLUMN=NUMBER")]
    column_threshold: Vec<String>,
    /// Only these columns (comma-separated), in this order.
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// The dataset drifts when at least this share of its columns drift.
    #[arg(long, default_value_t = slipway_monitor::drift::DEFAULT_DRIFT_SHARE)]
    drift_share: f64,
    /// Exit with status 3 when the dataset drifts (by default the exit status is 0 whatever
    /// the verdict).
    #[arg(long)]
    fail_on_drift: bool,
}

fn split_pair<'a>(flag: &str, s: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    match s.rsplit_once('=') {
        Some((col, value)) if !col.is_empty() && !value.is_empty() => Ok((col, value)),
        _ => anyhow::bail!("invalid {flag} '{s}': expected COLUMN=VALUE"),
    }
}

fn options(args: &DriftArgs) -> anyhow::Result<DriftOptions> {
    let mut methods = HashMap::new();
    for s in &args.column_method {
        let (col, m) = split_pair("--column-method", s)?;
        methods.insert(col.to_string(), Method::parse(m)?);
    }
    let mut thresholds = HashMap::new();
    for s in &args.column_threshold {
        let (col, t) = split_pair("--column-threshold", s)?;
        let value: f64 = t
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| slipway_monitor::MonitorError::InvalidThreshold(t.to_string()))?;
        thresholds.insert(col.to_string(), value);
    }
    if !(0.0..=1.0).contains(&args.drift_share) {
        anyhow::bail!("invalid --drift-share {}: expected a number from 0 to 1", args.drift_share);
    }
    Ok(DriftOptions { methods, thresholds, columns: args.columns.clone(), drift_share: args.drift_share })
}

/// Files smaller than this are read without a progress line.
const PROGRESS_MIN_BYTES: u64 = 16 << 20;

/// One stderr line showing how far each file has been read, redrawn at most 10 times a second.
struct ProgressLine {
    state: Mutex<([f64; 2], Instant)>,
}

struct Side<'a> {
    line: &'a ProgressLine,
    index: usize,
}

impl Progress for Side<'_> {
    fn update(&self, done: u64, total: u64) {
        let Ok(mut state) = self.line.state.lock() else { return };
        state.0[self.index] = if total == 0 { 1.0 } else { done as f64 / total as f64 };
        if state.1.elapsed() < Duration::from_millis(100) && done < total {
            return;
        }
        state.1 = Instant::now();
        let [r, c] = state.0;
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\rreading: reference {:>3.0}%  current {:>3.0}%", r * 100.0, c * 100.0);
        let _ = err.flush();
    }
}

struct Silent;

impl Progress for Silent {
    fn update(&self, _done: u64, _total: u64) {}
}

#[derive(Serialize)]
struct JsonReport<'a> {
    reference: &'a std::path::Path,
    current: &'a std::path::Path,
    #[serde(flatten)]
    report: &'a DriftReport,
}

pub fn run(args: DriftArgs) -> anyhow::Result<()> {
    let options = options(&args)?;
    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let show = std::io::stderr().is_terminal() && size(&args.reference).max(size(&args.current)) >= PROGRESS_MIN_BYTES;
    let line = ProgressLine { state: Mutex::new(([0.0; 2], Instant::now())) };
    let (rp, cp) = (Side { line: &line, index: 0 }, Side { line: &line, index: 1 });
    let report = if show {
        let r = compare_files(&args.reference, &args.current, &options, &rp, &cp);
        eprintln!();
        r
    } else {
        compare_files(&args.reference, &args.current, &options, &Silent, &Silent)
    }?;

    if args.json {
        let body = JsonReport { reference: &args.reference, current: &args.current, report: &report };
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &body).context("cannot write the json report")?;
        writeln!(out).context("cannot write the json report")?;
    }
    let html_path = match (&args.output, args.json) {
        (Some(p), _) => Some(p.clone()),
        (None, false) => Some(PathBuf::from("drift-report.html")),
        (None, true) => None,
    };
    if let Some(path) = html_path {
        let html = drift_html::render(&report, &args.reference, &args.current);
        std::fs::write(&path, html).with_context(|| format!("cannot write {}", path.display()))?;
        if !args.json {
            println!(
                "{} of {} columns drifted ({:.0}%): dataset drift {}; report written to {}",
                report.number_of_drifted_columns,
                report.number_of_columns,
                report.share_of_drifted_columns * 100.0,
                if report.dataset_drift { "detected" } else { "not detected" },
                path.display()
            );
        }
    }
    if args.fail_on_drift && report.dataset_drift {
        std::process::exit(DRIFT_EXIT_CODE);
    }
    Ok(())
}
