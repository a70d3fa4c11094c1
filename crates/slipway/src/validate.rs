//! `slipway validate`: checks a dataset (CSV or Parquet) against a schema inferred from a
//! reference dataset (`--reference`) or read from a file (`--schema`), and writes the inferred
//! schema for editing (`--infer-schema`). Output is JSON on stdout (`--json`) or a
//! self-contained HTML report (`--output`). The rules are `slipway-monitor`'s; this module
//! parses flags and writes the output.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use slipway_monitor::profile::{DatasetProfile, ProfileOptions};
use slipway_monitor::read::Progress;
use slipway_monitor::typing::DeclaredTypes;
use slipway_monitor::validate::{Schema, ValidationReport, validate};

use crate::output::{self, ProgressLine};
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
    /// Validate these columns as numbers (comma-separated or repeated): any number within the
    /// reference's range. Only with --reference (a schema file carries its own).
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS", conflicts_with = "schema")]
    numerical: Vec<String>,
    /// Validate these columns as category sets (comma-separated or repeated): every value must
    /// be one the reference has; CSV codes are kept as written ("001" stays "001"). Only with
    /// --reference.
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS", conflicts_with = "schema")]
    categorical: Vec<String>,
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

fn profile(path: &Path, types: &DeclaredTypes, progress: &dyn Progress) -> anyhow::Result<DatasetProfile> {
    Ok(DatasetProfile::from_file(path, None, types, &ProfileOptions::default(), progress)?)
}

fn load_schema(path: &Path) -> anyhow::Result<Schema> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read schema {}", path.display()))?;
    Schema::from_json(&text).with_context(|| format!("schema {}", path.display()))
}

pub fn run(args: ValidateArgs) -> anyhow::Result<()> {
    // The batch is read with the types the schema was inferred with, so a schema file is read
    // first (it is small); flags declare them when the schema comes from --reference.
    let loaded = args.schema.as_deref().map(load_schema).transpose()?;
    let types = match &loaded {
        Some(schema) => schema.column_types.clone(),
        None => DeclaredTypes::new(args.numerical.clone(), args.categorical.clone())?,
    };
    let reference = args.reference.as_deref();
    let files: Vec<(&'static str, &Path)> = [("reference", reference), ("current", args.current.as_deref())]
        .into_iter()
        .filter_map(|(l, p)| Some((l, p?)))
        .collect();
    let labels: Vec<&'static str> = files.iter().map(|f| f.0).collect();
    let paths: Vec<&Path> = files.iter().map(|f| f.1).collect();
    let line = ProgressLine::new(&labels, output::show_progress(output::stderr_is_terminal(), &paths));

    // Reference and current are profiled on two threads, as drift reads its two files.
    let read = std::thread::scope(|s| -> anyhow::Result<(Schema, Option<DatasetProfile>)> {
        let cur = args.current.as_deref().map(|p| {
            let (types, progress) = (&types, line.side_named("current"));
            s.spawn(move || profile(p, types, &progress))
        });
        let schema = match (loaded, reference) {
            (Some(schema), _) => schema,
            (None, Some(path)) => Schema::infer_typed(&profile(path, &types, &line.side_named("reference"))?, &types)?,
            (None, None) => anyhow::bail!("give --reference or --schema"),
        };
        let current = match cur {
            Some(h) => Some(h.join().map_err(|_| anyhow::anyhow!("the reader thread failed"))??),
            None => None,
        };
        Ok((schema, current))
    });
    line.finish();
    let (schema, current) = read?;

    if let Some(path) = &args.infer_schema {
        let text = schema.to_json()?;
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
        if !args.json {
            let n = schema.columns.len();
            output::to_stdout(|out| writeln!(out, "schema of {n} columns written to {}", path.display()))?;
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
        output::to_stdout(|out| {
            serde_json::to_writer_pretty(&mut *out, &body)?;
            writeln!(out)
        })?;
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
            output::to_stdout(|out| {
                writeln!(
                    out,
                    "{} violations in {} columns: validation {}; report written to {}",
                    report.number_of_violations,
                    report.number_of_columns,
                    if report.passed { "passed" } else { "failed" },
                    path.display()
                )
            })?;
        }
    }
    if args.fail_on_violation && !report.passed {
        std::process::exit(VIOLATION_EXIT_CODE);
    }
    Ok(())
}
