//! The `slipway` binary: parses the command line and hands off to one module per command.

mod config;
mod server;

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
    Server(server::ServerArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => server::run(args),
    }
}
