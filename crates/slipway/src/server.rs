//! `slipway server`: the tracking server on its embedded defaults.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use slipway_artifacts::Artifacts;
use slipway_predlog::{Config as PredlogConfig, PredictionLog};
use slipway_server::{AppState, build_app};
use slipway_serving::Serving;
use slipway_serving::source::StoreSource;
use slipway_store::MetadataStore;
use slipway_store::auth::AuthStore;
use slipway_store::import::ImportStore;
use slipway_store::postgres::PostgresStore;
use slipway_store::sqlite::SqliteStore;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, Layer, MetadataUri};
use crate::serving::Settings;

/// Where the data lives: shared by every command that opens the store directly.
#[derive(Args, Default)]
pub struct StoreArgs {
    /// TOML config file; its settings sit under environment variables and flags.
    #[arg(long, env = "SLIPWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Folder for the database and artifacts (default ./slipway-data).
    #[arg(long, env = "SLIPWAY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Metadata store: sqlite:///slipway.db (relative), sqlite:////var/lib/slipway.db, or
    /// postgresql://user:password@host:5432/slipway.
    #[arg(long, env = "SLIPWAY_BACKEND_STORE_URI")]
    backend_store_uri: Option<String>,
    /// Where artifacts live: a folder, file:///folder or s3://bucket/prefix (credentials and
    /// endpoint from the usual AWS_* variables).
    #[arg(long, env = "SLIPWAY_ARTIFACT_ROOT")]
    artifact_root: Option<String>,
    /// proxied (clients transfer artifacts through the server) or direct (clients read and
    /// write the artifact root themselves).
    #[arg(long, env = "SLIPWAY_ARTIFACT_MODE")]
    artifact_mode: Option<String>,
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
        layer.artifact_mode = self.artifact_mode.clone();
        config.apply(layer);
        config.validate()?;
        Ok(config)
    }

    pub fn config(&self) -> anyhow::Result<Config> {
        self.merge(Layer::default())
    }
}

/// Both faces of an opened store: servers get the [`MetadataStore`], `slipway import` the
/// [`ImportStore`] as well.
pub trait Store: MetadataStore + ImportStore + AuthStore {}
impl<T: MetadataStore + ImportStore + AuthStore> Store for T {}

/// Opens the metadata store and artifact root a configuration names.
pub async fn open_stores(config: &Config) -> anyhow::Result<(Arc<dyn MetadataStore>, Artifacts)> {
    let (store, artifacts) = open_store(config).await?;
    Ok((store, artifacts))
}

/// [`open_stores`], keeping the import face.
pub async fn open_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Artifacts)> {
    let artifact_root = config.artifact_root();
    let artifacts =
        Artifacts::open(&artifact_root).with_context(|| format!("opening the artifact root {artifact_root}"))?;
    artifacts.check().await.with_context(|| format!("reading the artifact root {}", artifacts.uri()))?;
    // What new experiments' artifact locations start with.
    let root = if config.direct_artifacts() { artifacts.uri() } else { slipway_server::artifacts::SCHEME };
    let uri = config.metadata_store()?;
    let opened: slipway_store::Result<Arc<dyn Store>> = match &uri {
        MetadataUri::Sqlite(db) => SqliteStore::open(db, root, config.read_connections).map(|s| Arc::new(s) as _),
        MetadataUri::Postgres(url) => {
            PostgresStore::connect(url, root, config.db_pool_size).await.map(|s| Arc::new(s) as _)
        }
    };
    let store = opened.with_context(|| format!("opening the metadata store at {uri}"))?;
    Ok((store, artifacts))
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
    /// PostgreSQL connections this server keeps open at most (default 16).
    #[arg(long, env = "SLIPWAY_DB_POOL_SIZE")]
    db_pool_size: Option<usize>,
    /// Memory loaded models may take, e.g. 2GiB (default: half of the machine's memory).
    #[arg(long, env = "SLIPWAY_SERVING_MEMORY_BUDGET")]
    serving_memory_budget: Option<String>,
    /// Requests one model version may queue before it answers 429.
    #[arg(long, env = "SLIPWAY_SERVING_QUEUE_CAPACITY")]
    serving_queue_capacity: Option<usize>,
    /// Rows one batch may stack (a deployment may set its own).
    #[arg(long, env = "SLIPWAY_SERVING_MAX_BATCH_ROWS")]
    serving_max_batch_rows: Option<usize>,
    /// Longest an inference request may wait for its answer, in milliseconds.
    #[arg(long, env = "SLIPWAY_SERVING_REQUEST_TIMEOUT_MS")]
    serving_request_timeout_ms: Option<u64>,
    /// Largest inference request body in bytes.
    #[arg(long, env = "SLIPWAY_SERVING_MAX_BODY_BYTES")]
    serving_max_body_bytes: Option<usize>,
    /// Inference worker threads (default: the number of cores).
    #[arg(long, env = "SLIPWAY_SERVING_WORKERS")]
    serving_workers: Option<usize>,
    /// How often deployments are checked against the store and their aliases, in milliseconds.
    #[arg(long, env = "SLIPWAY_SERVING_POLL_MS")]
    serving_poll_ms: Option<u64>,
    /// Seconds a prediction-log segment stays open before it is sealed and uploaded.
    #[arg(long, env = "SLIPWAY_PREDICTION_LOG_ROLL_SECS")]
    prediction_log_roll_secs: Option<u64>,
    /// Seconds between evaluations of the monitors' ended windows.
    #[arg(long, env = "SLIPWAY_MONITOR_INTERVAL_SECS")]
    monitor_interval_secs: Option<u64>,
    /// The ONNX Runtime library (default: found through ORT_DYLIB_PATH, ./.slipway, python3).
    #[arg(long, env = "SLIPWAY_ONNXRUNTIME_LIB")]
    onnxruntime_lib: Option<PathBuf>,
    /// The MLflow UI at `/`: auto (found in $VIRTUAL_ENV, ./.venv or python3's mlflow), off,
    /// or the folder of an mlflow package or of its built UI.
    #[arg(long, env = "SLIPWAY_MLFLOW_UI", value_name = "auto|off|PATH")]
    mlflow_ui: Option<String>,
    /// Require authentication and permissions (see docs/design/auth.md). The first start
    /// with it needs SLIPWAY_AUTH_ADMIN_PASSWORD, which creates the user `admin`.
    #[arg(long, env = "SLIPWAY_AUTH")]
    auth: Option<bool>,
    /// What every authenticated user may do without a grant: READ, USE, EDIT, MANAGE or
    /// NO_PERMISSIONS (the default).
    #[arg(long, env = "SLIPWAY_AUTH_DEFAULT_PERMISSION")]
    auth_default_permission: Option<String>,
    /// An OpenID provider (its issuer URL) whose bearer JWTs authenticate users, who are
    /// created on first sight.
    #[arg(long, env = "SLIPWAY_AUTH_OIDC_ISSUER", value_name = "URL")]
    auth_oidc_issuer: Option<String>,
    /// The audience (`aud`) the provider's tokens must name for this server.
    #[arg(long, env = "SLIPWAY_AUTH_OIDC_AUDIENCE")]
    auth_oidc_audience: Option<String>,
    /// This server's client id at the provider: browsers log in at /auth/login through the
    /// authorization-code flow. A client secret, if any, comes from
    /// SLIPWAY_AUTH_OIDC_CLIENT_SECRET (never the command line).
    #[arg(long, env = "SLIPWAY_AUTH_OIDC_CLIENT_ID")]
    auth_oidc_client_id: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM); with --tls-key.
    #[arg(long, env = "SLIPWAY_TLS_CERT", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "SLIPWAY_TLS_KEY", value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued by this CA (PEM).
    #[arg(long, env = "SLIPWAY_TLS_CLIENT_CA", value_name = "PEM")]
    tls_client_ca: Option<PathBuf>,
    /// A pipeline file (or its folder) this server may start: on `POST
    /// /api/v1/pipelines/NAME/runs` (what an alert rule's webhook can name) and on the file's
    /// `triggers:` cron schedules. Repeatable.
    #[arg(long = "pipeline", value_name = "FILE")]
    pipelines: Vec<PathBuf>,
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
        db_pool_size: args.db_pool_size,
        serving_memory_budget: args.serving_memory_budget.clone(),
        serving_queue_capacity: args.serving_queue_capacity,
        serving_max_batch_rows: args.serving_max_batch_rows,
        serving_request_timeout_ms: args.serving_request_timeout_ms,
        serving_max_body_bytes: args.serving_max_body_bytes,
        serving_workers: args.serving_workers,
        serving_poll_ms: args.serving_poll_ms,
        prediction_log_roll_secs: args.prediction_log_roll_secs,
        monitor_interval_secs: args.monitor_interval_secs,
        onnxruntime_lib: args.onnxruntime_lib.clone(),
        mlflow_ui: args.mlflow_ui.clone(),
        auth: args.auth,
        auth_default_permission: args.auth_default_permission.clone(),
        auth_oidc_issuer: args.auth_oidc_issuer.clone(),
        auth_oidc_audience: args.auth_oidc_audience.clone(),
        auth_oidc_client_id: args.auth_oidc_client_id.clone(),
        auth_oidc_client_secret: std::env::var("SLIPWAY_AUTH_OIDC_CLIENT_SECRET").ok().filter(|s| !s.is_empty()),
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
        tls_client_ca: args.tls_client_ca.clone(),
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
    if !args.print_config {
        crate::memory::tune();
    }
    let config = merged_config(&args)?;
    if args.print_config {
        // Print what is in effect, derived paths included.
        let mut effective = config.clone();
        effective.backend_store_uri = Some(match config.metadata_store()? {
            MetadataUri::Sqlite(path) => format!("sqlite:///{}", path.display()),
            MetadataUri::Postgres(uri) => uri,
        });
        effective.artifact_root = Some(config.artifact_root());
        print!("{}", toml::to_string(&effective)?);
        return Ok(());
    }
    init_logging(&config)?;
    // Blocking work is database work, bounded by the reader pool (SQLite) or the connection
    // pool (PostgreSQL): a small blocking pool keeps the number of threads (and malloc arenas)
    // in proportion.
    let database_threads = match config.metadata_store()? {
        MetadataUri::Sqlite(_) => config.read_connections,
        MetadataUri::Postgres(_) => config.db_pool_size,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(database_threads * 2)
        .build()?
        .block_on(serve(config, args.pipelines))
}

async fn serve(config: Config, pipeline_files: Vec<PathBuf>) -> anyhow::Result<()> {
    let (store, artifacts) = open_store(&config).await?;
    let auth = if config.auth { Some(start_auth(&config, store.clone()).await?) } else { None };
    let store: Arc<dyn MetadataStore> = store;
    let db = config.metadata_store()?;
    let tls = match config.tls() {
        Some(files) => Some(slipway_server::tls::server_config(&files).map_err(|e| anyhow::anyhow!("TLS: {e}"))?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    let serving = start_serving(&config, store.clone(), artifacts.clone())?;
    let mut state = AppState::new(store.clone(), artifacts, Some(serving.clone()));
    state.mlflow_ui = mlflow_ui(&config)?;
    state.auth = auth.clone();
    if !pipeline_files.is_empty() {
        // The runs it starts talk to this server over loopback (or the address it is bound to).
        let local = listener.local_addr()?;
        let url = if local.ip().is_unspecified() {
            format!("{scheme}://127.0.0.1:{}", local.port())
        } else {
            format!("{scheme}://{local}")
        };
        let triggers = slipway_pipeline::trigger::Triggers::load(
            &pipeline_files,
            store.clone(),
            std::env::current_exe().context("finding the slipway binary for pipeline runs")?,
            url,
            config.data_dir.join("pipeline-logs"),
        )?;
        let triggers = match &auth {
            // The runs it starts authenticate as the pipelines' service account.
            Some(auth) => {
                let account = slipway_server::auth::runs::PipelineCredentials::new(auth.clone()).await?;
                tracing::info!(
                    account = slipway_server::auth::runs::PIPELINE_ACCOUNT,
                    "triggered pipeline runs act as this service account: grant it what they need"
                );
                triggers.with_credentials(Arc::new(account))
            }
            None => triggers,
        };
        let triggers = Arc::new(triggers);
        for p in triggers.list() {
            tracing::info!(pipeline = %p.name, file = %p.file.display(), crons = ?p.crons, "pipeline registered");
        }
        triggers.clone().run_cron(Duration::from_secs(20));
        state.pipelines = Some(triggers);
    }
    // Changes other replicas commit wake the deployment sync as this server's own do.
    store.watch_changes(state.registry_changed.clone());
    slipway_server::deployments::sync(state.clone(), Duration::from_millis(config.serving_poll_ms));
    slipway_server::monitors::run(state.clone(), Duration::from_secs(config.monitor_interval_secs));
    let app = build_app(state.clone());
    tracing::info!(
        address = %listener.local_addr()?,
        database = %db,
        artifacts = %state.artifacts.uri(),
        artifact_mode = %config.artifact_mode,
        scheme,
        "slipway server listening"
    );
    match tls {
        Some(tls) => slipway_server::serve_tls(listener, tls, app, shutdown_signal()).await?,
        None => slipway_server::serve(listener, app, shutdown_signal()).await?,
    }
    state.monitors.step_down().await;
    if let Some(log) = serving.predlog() {
        match log.flush().await {
            Ok(files) => tracing::info!(files = files.len(), "prediction log flushed"),
            Err(e) => tracing::warn!(error = %e, "prediction log flush failed; segments stay in the spool"),
        }
    }
    tracing::info!("draining finished, closing the metadata store");
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The auth layer, with an administrator: one that exists, or `admin` made from
/// `SLIPWAY_AUTH_ADMIN_PASSWORD`. There is no default password.
async fn start_auth(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Arc<slipway_server::auth::Auth>> {
    let settings = slipway_server::auth::AuthConfig {
        default_permission: config.default_permission()?,
        token_max_days: config.auth_token_max_days,
        hash_workers: std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(2)),
        secure_cookies: config.tls_cert.is_some(),
        ..Default::default()
    };
    let auth_store: Arc<dyn AuthStore> = store;
    let mut auth = slipway_server::auth::Auth::new(auth_store.clone(), settings);
    if let (Some(issuer), Some(audience)) = (&config.auth_oidc_issuer, &config.auth_oidc_audience) {
        let oidc = slipway_server::auth::oidc::OidcConfig {
            issuer: issuer.clone(),
            audience: audience.clone(),
            username_claim: config.auth_oidc_username_claim.clone(),
            groups_claim: config.auth_oidc_groups_claim.clone(),
            client_id: config.auth_oidc_client_id.clone(),
            client_secret: config.auth_oidc_client_secret.clone(),
        };
        let provider = slipway_server::auth::oidc::Oidc::discover(oidc)
            .await
            .map_err(|e| anyhow::anyhow!("the OpenID provider {issuer}: {e}"))?;
        tracing::info!(issuer, "bearer JWTs from the OpenID provider are accepted");
        auth.oidc = Some(Arc::new(provider));
    }
    let auth = Arc::new(auth);
    let admins = auth_store.list_principals().await?.into_iter().filter(|p| p.is_admin && !p.disabled).count();
    if admins == 0 {
        let password = std::env::var("SLIPWAY_AUTH_ADMIN_PASSWORD").map_err(|_| {
            anyhow::anyhow!(
                "auth is on and there is no administrator: set SLIPWAY_AUTH_ADMIN_PASSWORD (12 characters or more) \
                 to create the user 'admin' on this start"
            )
        })?;
        let hash = auth.hash_password(&password).await.map_err(|e| anyhow::anyhow!("{}", e.error.message))?;
        let new = slipway_store::auth::NewPrincipal {
            kind: slipway_store::auth::PrincipalKind::User,
            name: "admin".into(),
            password_hash: Some(hash),
            is_admin: true,
        };
        match auth_store.create_principal(new, "slipway server".into()).await {
            Ok(_) => tracing::info!("created the administrator 'admin'"),
            Err(slipway_store::StoreError::AlreadyExists(_)) => {
                anyhow::bail!(
                    "auth is on, there is no administrator, and a user 'admin' exists: make one an administrator with `slipway users` or the API"
                )
            }
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(default_permission = %config.auth_default_permission, "authentication is on");
    Ok(auth)
}

/// The MLflow UI bundle, when one is configured or found; a folder named explicitly that holds
/// none stops the start.
fn mlflow_ui(config: &Config) -> anyhow::Result<Option<slipway_ui::mlflow::Bundle>> {
    let setting: slipway_ui::mlflow::Setting = config.mlflow_ui.parse().map_err(anyhow::Error::msg)?;
    let bundle = slipway_ui::mlflow::locate(&setting).map_err(anyhow::Error::msg)?;
    match &bundle {
        Some(b) => {
            let version = b.version.as_deref().unwrap_or("unknown");
            tracing::info!(root = %b.root.display(), version, "serving the MLflow UI at /");
            if version != slipway_server::MLFLOW_COMPAT_VERSION {
                tracing::warn!(
                    version,
                    speaks = slipway_server::MLFLOW_COMPAT_VERSION,
                    "the MLflow UI found is another version than the API this server speaks; pages may call \
                     endpoints it lacks (pip install mlflow=={})",
                    slipway_server::MLFLOW_COMPAT_VERSION
                );
            }
        }
        None if setting == slipway_ui::mlflow::Setting::Auto => tracing::warn!(
            "no MLflow UI found ($VIRTUAL_ENV, ./.venv, python3); `/` says how to install it ({})",
            slipway_ui::mlflow::INSTALL_HINT
        ),
        None => {}
    }
    Ok(bundle)
}

/// Model serving over this server's own registry and artifacts.
fn start_serving(config: &Config, store: Arc<dyn MetadataStore>, artifacts: Artifacts) -> anyhow::Result<Arc<Serving>> {
    if let Err(e) = slipway_serving::runtime::locate(config.onnxruntime_lib.as_deref()) {
        tracing::warn!(error = %e, "model serving cannot run models until ONNX Runtime is installed");
    }
    let serving_dir = config.data_dir.join("serving");
    let predlog = PredictionLog::start(
        artifacts.clone(),
        PredlogConfig {
            spool_dir: serving_dir.join("prediction-log-spool"),
            roll_after: Duration::from_secs(config.prediction_log_roll_secs),
            ..PredlogConfig::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("starting the prediction log: {e}"))?;
    let settings = Settings {
        memory_budget: config.memory_budget()?,
        queue_capacity: config.serving_queue_capacity,
        max_batch_rows: config.serving_max_batch_rows,
        max_wait_us: 0,
        request_timeout: Duration::from_millis(config.serving_request_timeout_ms),
        max_body_bytes: config.serving_max_body_bytes,
        workers: config.serving_workers,
        sessions: None,
        onnxruntime_lib: config.onnxruntime_lib.clone(),
        scratch_dir: serving_dir.join("models"),
    };
    crate::serving::build(settings, Arc::new(StoreSource { store, artifacts }), Some(predlog))
        .context("starting the inference workers")
}

pub async fn shutdown_signal() {
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
