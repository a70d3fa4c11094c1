//! `slipway drift`: data drift between a reference and a current dataset (CSV or Parquet),
//! as JSON on stdout (`--json`) or a self-contained HTML report (`--output`). The numbers are
//! `slipway-monitor`'s; this module parses flags, shows progress and writes the output.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use slipway_monitor::drift::{DriftOptions, DriftReport, compare_files};
use slipway_monitor::stats::Method;
use slipway_monitor::typing::DeclaredTypes;

use crate::drift_html;
use crate::output::{self, ProgressLine};

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
    /// Test these columns as numerical (comma-separated or repeated), whatever inference says:
    /// e.g. a measurement with few distinct integer values.
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    numerical: Vec<String>,
    /// Test these columns as categorical (comma-separated or repeated): e.g. integer codes, or
    /// zero-padded codes, which a CSV then keeps as written ("001" stays "001").
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    categorical: Vec<String>,
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

#[derive(Serialize)]
struct JsonReport<'a> {
    reference: &'a std::path::Path,
    current: &'a std::path::Path,
    #[serde(flatten)]
    report: &'a DriftReport,
}

pub fn run(args: DriftArgs) -> anyhow::Result<()> {
    let options = options(&args)?;
    let types = DeclaredTypes::new(args.numerical.clone(), args.categorical.clone())?;
    let show = output::show_progress(output::stderr_is_terminal(), &[&args.reference, &args.current]);
    let line = ProgressLine::new(&["reference", "current"], show);
    let report = compare_files(&args.reference, &args.current, &options, &types, &line.side(0), &line.side(1));
    line.finish();
    let report = report?;

    if args.json {
        let body = JsonReport { reference: &args.reference, current: &args.current, report: &report };
        output::to_stdout(|out| {
            serde_json::to_writer_pretty(&mut *out, &body)?;
            writeln!(out)
        })?;
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
            output::to_stdout(|out| {
                writeln!(
                    out,
                    "{} of {} columns drifted ({:.0}%): dataset drift {}; report written to {}",
                    report.number_of_drifted_columns,
                    report.number_of_columns,
                    report.share_of_drifted_columns * 100.0,
                    if report.dataset_drift { "detected" } else { "not detected" },
                    path.display()
                )
            })?;
        }
    }
    if args.fail_on_drift && report.dataset_drift {
        std::process::exit(DRIFT_EXIT_CODE);
    }
    Ok(())
}
