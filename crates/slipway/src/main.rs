//! The `slipway` binary: parses the command line and hands off to one module per command.

mod access;
mod client;
mod config;
mod data;
mod deployments;
mod drift;
mod drift_html;
mod gate;
mod gc;
mod import;
mod labeling;
mod memory;
mod models;
mod monitors;
mod output;
mod pipelines;
mod serve;
mod server;
mod serving;
mod validate;
mod validate_html;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "slipway", version, about = "Slipway: the MLOps platform in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tracking server (MLflow-compatible REST API and artifact proxy).
    Server(Box<server::ServerArgs>),
    /// Serve one registered model (or a local MLflow model directory): the drop-in for
    /// `mlflow models serve`.
    Serve(serve::ServeArgs),
    /// Work with the model registry of a running server.
    Models(models::ModelsArgs),
    /// Manage serving deployments of a running server.
    Deployments(deployments::DeploymentsArgs),
    /// Monitors of a running server: their windows and alerts; post ground truth from CSV.
    Monitors(monitors::MonitorsArgs),
    /// Score a candidate model version against the champion on a holdout and promote or
    /// reject it: exit status 0 on a pass, 3 on a rejection.
    Gate(gate::GateArgs),
    /// Permanently remove soft-deleted objects and their artifacts.
    Gc(gc::GcArgs),
    /// Copy another tracking server's history into this store: `slipway import mlflow`.
    Import(import::ImportArgs),
    /// Compare a current dataset with a reference one: per-column drift tests that match
    /// Evidently, as JSON or a self-contained HTML report.
    Drift(drift::DriftArgs),
    /// Check a dataset against a schema inferred from a reference (or read from a file):
    /// types, nulls, ranges and categories, as JSON or a self-contained HTML report.
    Validate(validate::ValidateArgs),
    /// Run a pipeline (`slipway.yaml`): cached steps, each recorded as an MLflow run.
    Run(pipelines::RunArgs),
    /// Pipelines and their runs on a server: list, show, runs, logs, cancel.
    Pipelines(pipelines::PipelinesArgs),
    /// Users and service accounts of a server with auth on.
    Users(access::UsersArgs),
    /// API tokens: mint (shown once), list, revoke.
    Tokens(access::TokensArgs),
    /// Who may do what: grant, revoke and list per-object permissions.
    Grants(access::GrantsArgs),
    /// Roles (groups): named sets of permissions their members hold.
    Roles(access::RolesArgs),
    /// Dataset versions: add, get, list, versions, show, diff, alias, tag.
    Data(data::DataArgs),
    /// Labeling queues: create, list, show, next, label, export.
    Labeling(labeling::LabelingArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => server::run(*args),
        Command::Serve(args) => serve::run(args),
        Command::Models(args) => models::run(args),
        Command::Deployments(args) => deployments::run(args),
        Command::Monitors(args) => monitors::run(args),
        Command::Gate(args) => gate::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Import(args) => import::run(args),
        Command::Drift(args) => drift::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Run(args) => pipelines::run(args),
        Command::Pipelines(args) => pipelines::pipelines(args),
        Command::Users(args) => access::users(args),
        Command::Tokens(args) => access::tokens(args),
        Command::Grants(args) => access::grants(args),
        Command::Roles(args) => access::roles(args),
        Command::Data(args) => data::run(args),
        Command::Labeling(args) => labeling::run(args),
    }
}
