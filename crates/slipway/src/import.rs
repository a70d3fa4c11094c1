//! `slipway import mlflow`: flags, the stores from the configuration, a progress line on a
//! terminal, and the report. The import itself is `slipway_import`'s.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use slipway_import::{ImportOptions, ImportReport, Progress, ProgressCounts};

use crate::server::{StoreArgs, open_store};

#[derive(Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    source: Source,
}

#[derive(Subcommand)]
enum Source {
    /// Copy an MLflow tracking server (its database and artifact root) into this store.
    Mlflow(MlflowArgs),
}

#[derive(Args)]
struct MlflowArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// MLflow's --backend-store-uri: sqlite:////path/mlflow.db or postgresql://user:pw@host/db.
    #[arg(long = "from", value_name = "URI")]
    from: String,
    /// Where MLflow keeps artifacts: its --artifacts-destination (a folder or s3://bucket/prefix),
    /// or the folder its file:// artifact locations point into. Without it only metadata is copied.
    #[arg(long, value_name = "DIR|S3_URI")]
    artifacts_from: Option<String>,
    /// MLflow's auth database (its basic-auth app's database_uri, e.g. sqlite:///basic_auth.db):
    /// its users (with their password hashes), roles and permissions become Slipway's.
    #[arg(long, value_name = "URI")]
    auth_db: Option<String>,
    /// The MLflow workspace to import (MLflow 3.17 and later).
    #[arg(long, default_value = "default")]
    workspace: String,
    /// Who the registry's audit log names for imported changes.
    #[arg(long, default_value = "import")]
    actor: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let Source::Mlflow(args) = args.source;
    let config = args.store.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(async {
        let (store, artifacts) = open_store(&config).await?;
        let locations_root = if config.direct_artifacts() {
            artifacts.uri().to_string()
        } else {
            slipway_artifacts::PROXY_SCHEME.into()
        };
        let options = ImportOptions {
            from: args.from.clone(),
            artifacts_from: args.artifacts_from.clone(),
            workspace: args.workspace.clone(),
            actor: args.actor.clone(),
            locations_root,
        };
        let mut report = slipway_import::import_mlflow(&*store, &artifacts, &options, &mut Line::new()).await?;
        if let Some(uri) = &args.auth_db {
            let auth = slipway_import::auth::import_mlflow_auth(&*store, uri, &args.workspace, &args.actor).await?;
            report.auth = Some(auth);
        }
        anyhow::Ok(report)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// One stderr line, redrawn at most 10 times a second, when stderr is a terminal.
struct Line {
    drawn: Option<Instant>,
    enabled: bool,
}

impl Line {
    fn new() -> Self {
        Line { drawn: None, enabled: std::io::stderr().is_terminal() }
    }

    fn draw(&mut self, now: &ProgressCounts, last: bool) {
        if !self.enabled || (!last && self.drawn.is_some_and(|t| t.elapsed() < Duration::from_millis(100))) {
            return;
        }
        self.drawn = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\rimporting: runs {}/{}  metric points {}  artifacts {:.1} MB{}",
            now.runs_done,
            now.runs_total,
            now.metric_points,
            now.artifact_bytes as f64 / 1e6,
            if last { "\n" } else { "" }
        );
        let _ = err.flush();
    }
}

impl Progress for Line {
    fn advanced(&mut self, now: &ProgressCounts) {
        self.draw(now, false);
    }

    fn finished(&mut self, now: &ProgressCounts) {
        self.draw(now, true);
    }
}

fn print_report(r: &ImportReport) {
    println!("imported {} (schema {})", r.source, r.schema_revision.as_deref().unwrap_or("unknown"));
    println!("{:<18} {:>8} {:>8} {:>10} {:>8}", "", "created", "updated", "unchanged", "skipped");
    for (name, c) in [
        ("experiments", &r.experiments),
        ("runs", &r.runs),
        ("logged models", &r.logged_models),
        ("registered models", &r.registered_models),
    ] {
        println!("{name:<18} {:>8} {:>8} {:>10} {:>8}", c.created, c.updated, c.unchanged, c.skipped);
    }
    println!("model versions: {}, metric points: {}", r.model_versions, r.metric_points);
    println!(
        "artifacts: {} files copied ({} bytes), {} already present",
        r.artifact_files_copied, r.artifact_bytes_copied, r.artifact_files_present
    );
    let mut skipped: Vec<&String> = r.skipped.iter().collect();
    if let Some(a) = &r.auth {
        println!("auth: {} (schema {})", a.source, a.schema_revision.as_deref().unwrap_or("unknown"));
        for (name, c) in [("users", &a.users), ("roles", &a.roles)] {
            println!("{name:<18} {:>8} {:>8} {:>10} {:>8}", c.created, c.updated, c.unchanged, c.skipped);
        }
        println!("permissions: {}, role members: {}", a.grants, a.memberships);
        skipped.extend(&a.skipped);
    }
    if !skipped.is_empty() {
        println!("skipped:");
        for s in skipped {
            println!("  {s}");
        }
    }
}
