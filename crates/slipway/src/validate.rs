//! `slipway validate`: checks a dataset (CSV or Parquet) against a schema inferred from a
//! reference dataset (`--reference`) or read from a file (`--schema`), and writes the inferred
//! schema for editing (`--infer-schema`). Output is JSON on stdout (`--json`) or a
//! self-contained HTML report (`--output`). The rules are `slipway-monitor`'s; this module
//! parses flags and writes the output.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use slipway_monitor::profile::{DatasetProfile, ProfileOptions};
use slipway_monitor::read::NoProgress;
use slipway_monitor::validate::{Schema, ValidationReport, validate};

use crate::validate_html;

/// Exit status when `--fail-on-violation` is given and a rule is broken (errors exit 1).
pub const VIOLATION_EXIT_CODE: i32 = 3;

#[derive(Args)]
pub struct ValidateArgs {
    /// Infer the schema from this dataset (.csv or .parquet), e.g. the training data.
    #[arg(long, conflicts_with = "schema", required_unless_present = "schema")]
    reference: Option<PathBuf>,
    /// Read the schema from this JSON file (as written by --infer-schema, possibly edited).
    #[arg(long)]
    schema: Option<PathBuf>,
    /// The dataset to check (.csv or .parquet).
    #[arg(long, required_unless_present = "infer_schema")]
    current: Option<PathBuf>,
    /// Write the schema inferred from --reference to this JSON file.
    #[arg(long, value_name = "PATH", requires = "reference")]
    infer_schema: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write the HTML report here (default validation-report.html unless --json is given).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Exit with status 3 when any rule is broken (by default the exit status is 0 whatever
    /// the result).
    #[arg(long)]
    fail_on_violation: bool,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<&'a Path>,
    current: &'a Path,
    #[serde(flatten)]
    report: &'a ValidationReport,
}

fn profile(path: &Path) -> anyhow::Result<DatasetProfile> {
    Ok(DatasetProfile::from_file(path, None, &ProfileOptions::default(), &NoProgress)?)
}

fn load_schema(path: &Path) -> anyhow::Result<Schema> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read schema {}", path.display()))?;
    Schema::from_json(&text).with_context(|| format!("schema {}", path.display()))
}

pub fn run(args: ValidateArgs) -> anyhow::Result<()> {
    // Reference and current are profiled on two threads, as drift reads its two files.
    let (schema, current) = std::thread::scope(|s| -> anyhow::Result<(Schema, Option<DatasetProfile>)> {
        let cur = args.current.as_deref().map(|p| s.spawn(move || profile(p)));
        let schema = match (&args.schema, &args.reference) {
            (Some(path), _) => load_schema(path)?,
            (None, Some(reference)) => Schema::infer(&profile(reference)?),
            (None, None) => anyhow::bail!("give --reference or --schema"),
        };
        let current = match cur {
            Some(h) => Some(h.join().map_err(|_| anyhow::anyhow!("the reader thread failed"))??),
            None => None,
        };
        Ok((schema, current))
    })?;

    if let Some(path) = &args.infer_schema {
        let text = schema.to_json()?;
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
        if !args.json {
            println!("schema of {} columns written to {}", schema.columns.len(), path.display());
        }
    }
    let (Some(current), Some(current_path)) = (current, args.current.as_deref()) else {
        return Ok(());
    };
    let report = validate(&schema, &current);

    if args.json {
        let body = JsonReport {
            reference: args.reference.as_deref(),
            schema: args.schema.as_deref(),
            current: current_path,
            report: &report,
        };
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &body).context("cannot write the json report")?;
        writeln!(out).context("cannot write the json report")?;
    }
    let html_path = match (&args.output, args.json) {
        (Some(p), _) => Some(p.clone()),
        (None, false) => Some(PathBuf::from("validation-report.html")),
        (None, true) => None,
    };
    if let Some(path) = html_path {
        let source = args.schema.as_deref().or(args.reference.as_deref()).unwrap_or(Path::new(""));
        let html = validate_html::render(&report, source, args.schema.is_some(), current_path);
        std::fs::write(&path, html).with_context(|| format!("cannot write {}", path.display()))?;
        if !args.json {
            println!(
                "{} violations in {} columns: validation {}; report written to {}",
                report.number_of_violations,
                report.number_of_columns,
                if report.passed { "passed" } else { "failed" },
                path.display()
            );
        }
    }
    if args.fail_on_violation && !report.passed {
        std::process::exit(VIOLATION_EXIT_CODE);
    }
    Ok(())
}
