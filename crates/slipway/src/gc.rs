//! `slipway gc`: permanently removes soft-deleted experiments, runs, logged models and model
//! versions whose deletion is older than `--older-than`, with their artifacts.
//!
//! Artifacts go first, then the object's rows, one object per transaction: interrupted, the
//! next run finds the same rows and finishes. Anything under a live model version's storage
//! location is never removed.

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use slipway_artifacts::{ArtifactPath, Removal};

use crate::server::{StoreArgs, open_stores};

#[derive(Args)]
pub struct GcArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Only what was deleted longer ago than this: e.g. 30d, 12h, 45m, 10s, 2w.
    #[arg(long, default_value = "30d")]
    older_than: String,
    /// Report what would be removed, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    dry_run: bool,
    experiments: u64,
    runs: u64,
    logged_models: u64,
    model_versions: u64,
    artifact_files: u64,
    artifact_bytes: u64,
    /// Artifact locations outside this server's store, left alone.
    skipped: Vec<String>,
}

/// Parses `30d`, `12h`, `45m`, `10s`, `2w` into milliseconds.
pub fn parse_duration_ms(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 =
        num.parse().map_err(|_| anyhow::anyhow!("invalid duration '{s}': expected e.g. 30d, 12h, 45m, 10s"))?;
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => anyhow::bail!("invalid duration unit in '{s}': use s, m, h, d or w"),
    };
    n.checked_mul(unit_ms).ok_or_else(|| anyhow::anyhow!("duration '{s}' is too large"))
}

pub fn run(args: GcArgs) -> anyhow::Result<()> {
    let older_than = parse_duration_ms(&args.older_than)?;
    let config = args.store.config()?;
    let report = tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(collect(
        &config,
        older_than,
        args.dry_run,
    ))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

async fn collect(config: &crate::config::Config, older_than_ms: i64, dry_run: bool) -> anyhow::Result<Report> {
    let (store, artifacts) = open_stores(config).await?;
    let cutoff = slipway_store::now_ms() - older_than_ms;
    let plan = store.gc_plan(cutoff).await?;
    // A protected location in our store that cannot be read stops GC: dropping it from the
    // keep-list could remove a registered model's files.
    let mut keep: Vec<ArtifactPath> = Vec::new();
    for location in plan.protected.iter().filter(|l| artifacts.owns(l)) {
        keep.push(artifacts.locate(location).with_context(|| format!("protected artifact location '{location}'"))?);
    }
    let mut report = Report { dry_run, ..Report::default() };
    let mut removed = Removal::default();

    // Removes the artifacts under one location, or notes that it is not ours to remove.
    let mut sweep = async |location: &str, report: &mut Report| -> anyhow::Result<()> {
        match artifacts.locate(location) {
            Ok(path) if !path.is_root() => removed += artifacts.remove_tree(&path, &keep, dry_run).await?,
            _ => report.skipped.push(location.to_string()),
        }
        Ok(())
    };

    for (id, location) in &plan.experiments {
        sweep(location, &mut report).await?;
        if !dry_run {
            store.purge_experiment(id.clone()).await?;
        }
        report.experiments += 1;
    }
    for location in &plan.experiment_children {
        // Usually already swept with the experiment's folder; a run stored elsewhere is not.
        if !plan.experiments.iter().any(|(_, e)| location.starts_with(&format!("{e}/"))) {
            sweep(location, &mut report).await?;
        }
    }
    for (run_id, location) in &plan.runs {
        sweep(location, &mut report).await?;
        if !dry_run {
            store.purge_run(run_id.clone()).await?;
        }
        report.runs += 1;
    }
    for (model_id, location) in &plan.logged_models {
        sweep(location, &mut report).await?;
        if !dry_run {
            store.purge_logged_model(model_id.clone()).await?;
        }
        report.logged_models += 1;
    }
    for (name, version) in &plan.model_versions {
        if !dry_run {
            store.purge_model_version(name.clone(), *version).await?;
        }
        report.model_versions += 1;
    }
    report.artifact_files = removed.files;
    report.artifact_bytes = removed.bytes;
    store.close().await;
    Ok(report)
}

fn print_report(r: &Report) {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    println!(
        "gc {verb}: {} experiments, {} runs, {} logged models, {} model versions; {} artifact files ({})",
        r.experiments,
        r.runs,
        r.logged_models,
        r.model_versions,
        r.artifact_files,
        human_bytes(r.artifact_bytes)
    );
    for s in &r.skipped {
        println!("  left alone (not in this server's artifact store): {s}");
    }
    if r.dry_run {
        println!("dry run: nothing was changed");
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30d").unwrap(), 30 * 86_400_000);
        assert_eq!(parse_duration_ms("0s").unwrap(), 0);
        assert_eq!(parse_duration_ms("2w").unwrap(), 14 * 86_400_000);
        assert!(parse_duration_ms("30").is_err());
        assert!(parse_duration_ms("d").is_err());
        assert!(parse_duration_ms("5y").is_err());
    }
}
