//! `slipway gc`: permanently removes soft-deleted experiments, runs, logged models and model
//! versions whose deletion is older than `--older-than`, with their artifacts. This is the
//! command's edge (flags, the stores from the configuration, the report); the collection is
//! `slipway_gc`'s.

use clap::Args;
use slipway_gc::GcReport;

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
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(async {
        let (store, artifacts) = open_stores(&config).await?;
        let report = slipway_gc::collect(&*store, &artifacts, older_than, args.dry_run).await?;
        store.close().await;
        anyhow::Ok(report)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &GcReport) {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    println!(
        "gc {verb}: {} experiments, {} runs, {} logged models, {} model versions; {} artifact files ({}); \
         {} pipeline-cache blobs ({})",
        r.experiments,
        r.runs,
        r.logged_models,
        r.model_versions,
        r.artifact_files,
        human_bytes(r.artifact_bytes),
        r.cache_blobs,
        human_bytes(r.cache_bytes)
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
