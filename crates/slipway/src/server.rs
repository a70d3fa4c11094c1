//! `slipway server`: the tracking server on its embedded defaults.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use slipway_artifacts::Artifacts;
use slipway_server::{AppState, build_app};
use slipway_store::MetadataStore;
use slipway_store::sqlite::SqliteStore;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, Layer};

/// Where the data lives: shared by every command that opens the store directly.
#[derive(Args)]
pub struct StoreArgs {
    /// TOML config file; its settings sit under environment variables and flags.
    #[arg(long, env = "SLIPWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Folder for the database and artifacts (default ./slipway-data).
    #[arg(long, env = "SLIPWAY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Metadata store, e.g. sqlite:///slipway.db (relative) or sqlite:////var/lib/slipway.db.
    #[arg(long, env = "SLIPWAY_BACKEND_STORE_URI")]
    backend_store_uri: Option<String>,
    /// Folder that holds proxied artifacts.
    #[arg(long, env = "SLIPWAY_ARTIFACT_ROOT")]
    artifact_root: Option<PathBuf>,
}

impl StoreArgs {
    /// Defaults < config file < the layer given (environment and flags).
    pub fn merge(&self, mut layer: Layer) -> anyhow::Result<Config> {
        let mut config = Config::default();
        if let Some(path) = &self.config {
            config.apply(Config::load_file(path)?);
        }
        layer.data_dir = self.data_dir.clone();
        layer.backend_store_uri = self.backend_store_uri.clone();
        layer.artifact_root = self.artifact_root.clone();
        config.apply(layer);
        config.validate()?;
        Ok(config)
    }

    pub fn config(&self) -> anyhow::Result<Config> {
        self.merge(Layer::default())
    }
}

/// Opens the metadata store and artifact root a configuration names.
pub fn open_stores(config: &Config) -> anyhow::Result<(Arc<dyn MetadataStore>, Artifacts)> {
    let db = config.sqlite_path()?;
    let store = SqliteStore::open(&db, slipway_server::artifacts::SCHEME, config.read_connections)
        .with_context(|| format!("opening the metadata store at {}", db.display()))?;
    let artifact_dir = config.artifact_dir();
    let artifacts = Artifacts::local(&artifact_dir)
        .with_context(|| format!("opening the artifact root {}", artifact_dir.display()))?;
    Ok((Arc::new(store), artifacts))
}

#[derive(Args)]
pub struct ServerArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[arg(long, env = "SLIPWAY_HOST")]
    host: Option<String>,
    #[arg(long, short, env = "SLIPWAY_PORT")]
    port: Option<u16>,
    /// Log format: text or json.
    #[arg(long, env = "SLIPWAY_LOG_FORMAT")]
    log_format: Option<String>,
    /// Log filter, e.g. info or slipway_server=debug.
    #[arg(long, env = "SLIPWAY_LOG_LEVEL")]
    log_level: Option<String>,
    #[arg(long, env = "SLIPWAY_READ_CONNECTIONS")]
    read_connections: Option<usize>,
    /// Print the merged configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn merged_config(args: &ServerArgs) -> anyhow::Result<Config> {
    args.store.merge(Layer {
        host: args.host.clone(),
        port: args.port,
        log_format: args.log_format.clone(),
        log_level: args.log_level.clone(),
        read_connections: args.read_connections,
        ..Layer::default()
    })
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(&config.log_level).with_context(|| format!("invalid log level '{}'", config.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init()
    } else {
        builder.init()
    }
    Ok(())
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let config = merged_config(&args)?;
    if args.print_config {
        // Print what is in effect, derived paths included.
        let mut effective = config.clone();
        effective.backend_store_uri = Some(format!("sqlite:///{}", config.sqlite_path()?.display()));
        effective.artifact_root = Some(config.artifact_dir());
        print!("{}", toml::to_string(&effective)?);
        return Ok(());
    }
    init_logging(&config)?;
    // Blocking work is SQLite reads, bounded by the reader pool: a small blocking pool keeps
    // the number of threads (and malloc arenas) in proportion.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(config.read_connections * 2)
        .build()?
        .block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let (store, artifacts) = open_stores(&config)?;
    let (db, artifact_dir) = (config.sqlite_path()?, config.artifact_dir());
    let app = build_app(AppState { store: store.clone(), artifacts });

    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(
        address = %listener.local_addr()?,
        database = %db.display(),
        artifacts = %artifact_dir.display(),
        "slipway server listening"
    );
    slipway_server::serve(listener, app, shutdown_signal()).await?;
    tracing::info!("draining finished, closing the metadata store");
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested, finishing in-flight requests");
}
