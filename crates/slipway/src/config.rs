//! Server configuration in layers: defaults < config file (TOML) < `SLIPWAY_*` environment
//! variables < command-line flags.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to bind.
    pub host: String,
    pub port: u16,
    /// Where the SQLite file and the artifact folder live unless set separately.
    pub data_dir: PathBuf,
    /// `sqlite:///relative.db`, `sqlite:////absolute.db` or
    /// `postgresql://user:password@host:port/database`; default `<data_dir>/slipway.db`.
    pub backend_store_uri: Option<String>,
    /// Where artifacts live: a directory, `file:///dir` or `s3://bucket/prefix`; default
    /// `<data_dir>/artifacts`.
    pub artifact_root: Option<String>,
    /// `proxied`: clients upload and download through this server (`mlflow-artifacts:/`
    /// locations, MLflow's `--serve-artifacts`). `direct`: new experiments get locations under
    /// the root's own URI (`s3://bucket/prefix/<id>`) and clients read and write there
    /// themselves (MLflow's `--no-serve-artifacts`).
    pub artifact_mode: String,
    /// `text` or `json`.
    pub log_format: String,
    /// A tracing filter such as `info` or `slipway_server=debug`.
    pub log_level: String,
    /// Read-only SQLite connections serving queries.
    pub read_connections: usize,
    /// PostgreSQL connections this server keeps open at most (each replica has its own pool).
    pub db_pool_size: usize,
    /// Model serving: bytes loaded models may take (`2GiB`, `512MiB` or bytes); default half
    /// of the machine's memory.
    pub serving_memory_budget: Option<String>,
    /// Requests one model version may queue before it answers 429.
    pub serving_queue_capacity: usize,
    /// Rows one batch may stack.
    pub serving_max_batch_rows: usize,
    /// Longest a request may wait for its answer.
    pub serving_request_timeout_ms: u64,
    /// Largest inference request body.
    pub serving_max_body_bytes: usize,
    /// Inference worker threads; default the number of cores.
    pub serving_workers: Option<usize>,
    /// How often deployments are checked against the store and their aliases.
    pub serving_poll_ms: u64,
    /// How long a prediction-log segment stays open before it is sealed and uploaded.
    pub prediction_log_roll_secs: u64,
    /// How often monitors evaluate the windows that have ended.
    pub monitor_interval_secs: u64,
    /// The ONNX Runtime library; default: found as `slipway_serving::runtime` describes.
    pub onnxruntime_lib: Option<PathBuf>,
    /// The MLflow UI served at `/`: `auto` (from the installed `mlflow` wheel), `off`, or the
    /// folder of an `mlflow` package or of its built UI.
    pub mlflow_ui: String,
    /// Authentication and permissions (docs/design/auth.md). Off: every caller may do
    /// everything, as on a laptop. On: callers authenticate (password or token) and need
    /// permissions; the first start needs `SLIPWAY_AUTH_ADMIN_PASSWORD` to create `admin`.
    pub auth: bool,
    /// What every authenticated user may do without a grant: READ, USE, EDIT, MANAGE or
    /// NO_PERMISSIONS (the default).
    pub auth_default_permission: String,
    /// The longest lifetime, in days, a token may be given.
    pub auth_token_max_days: u32,
    /// An OpenID provider whose bearer JWTs authenticate users (its discovery document is read
    /// at start): https, or http on loopback.
    pub auth_oidc_issuer: Option<String>,
    /// The `aud` those JWTs must carry; required with an issuer.
    pub auth_oidc_audience: Option<String>,
    /// The claim naming the user (`sub` when a token lacks it).
    pub auth_oidc_username_claim: String,
    /// The claim listing the user's groups: those that exist here as roles give the user
    /// their grants for that request.
    pub auth_oidc_groups_claim: String,
    /// This server's client id at the provider: browsers log in through it (the
    /// authorization-code flow with PKCE) when set.
    pub auth_oidc_client_id: Option<String>,
    /// The client's secret, if the provider gives it one (confidential clients); never printed.
    #[serde(skip_serializing)]
    pub auth_oidc_client_secret: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM); needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Require client certificates issued by this CA (PEM).
    pub tls_client_ca: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 5000,
            data_dir: PathBuf::from("./slipway-data"),
            backend_store_uri: None,
            artifact_root: None,
            artifact_mode: "proxied".into(),
            log_format: "text".into(),
            log_level: "info".into(),
            read_connections: 4,
            db_pool_size: 16,
            serving_memory_budget: None,
            serving_queue_capacity: 1024,
            serving_max_batch_rows: 64,
            serving_request_timeout_ms: 10_000,
            serving_max_body_bytes: 16 << 20,
            serving_workers: None,
            serving_poll_ms: 2_000,
            prediction_log_roll_secs: 60,
            monitor_interval_secs: 60,
            onnxruntime_lib: None,
            mlflow_ui: "auto".into(),
            auth: false,
            auth_default_permission: "NO_PERMISSIONS".into(),
            auth_token_max_days: 90,
            auth_oidc_issuer: None,
            auth_oidc_audience: None,
            auth_oidc_username_claim: "preferred_username".into(),
            auth_oidc_groups_claim: "groups".into(),
            auth_oidc_client_id: None,
            auth_oidc_client_secret: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }
}

/// A partial layer: whatever a config file sets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
    pub backend_store_uri: Option<String>,
    pub artifact_root: Option<String>,
    pub artifact_mode: Option<String>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub read_connections: Option<usize>,
    pub db_pool_size: Option<usize>,
    pub serving_memory_budget: Option<String>,
    pub serving_queue_capacity: Option<usize>,
    pub serving_max_batch_rows: Option<usize>,
    pub serving_request_timeout_ms: Option<u64>,
    pub serving_max_body_bytes: Option<usize>,
    pub serving_workers: Option<usize>,
    pub serving_poll_ms: Option<u64>,
    pub prediction_log_roll_secs: Option<u64>,
    pub monitor_interval_secs: Option<u64>,
    pub onnxruntime_lib: Option<PathBuf>,
    pub mlflow_ui: Option<String>,
    pub auth: Option<bool>,
    pub auth_default_permission: Option<String>,
    pub auth_token_max_days: Option<u32>,
    pub auth_oidc_issuer: Option<String>,
    pub auth_oidc_audience: Option<String>,
    pub auth_oidc_username_claim: Option<String>,
    pub auth_oidc_groups_claim: Option<String>,
    pub auth_oidc_client_id: Option<String>,
    pub auth_oidc_client_secret: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
}

impl Config {
    pub fn apply(&mut self, l: Layer) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = l.$f { self.$f = v; } )* };
        }
        set!(host, port, data_dir, artifact_mode, log_format, log_level, read_connections, db_pool_size);
        set!(serving_queue_capacity, serving_max_batch_rows, serving_request_timeout_ms, serving_max_body_bytes);
        set!(serving_poll_ms, prediction_log_roll_secs, monitor_interval_secs, mlflow_ui);
        set!(auth, auth_default_permission, auth_token_max_days, auth_oidc_username_claim, auth_oidc_groups_claim);
        if l.auth_oidc_issuer.is_some() {
            self.auth_oidc_issuer = l.auth_oidc_issuer;
        }
        if l.auth_oidc_audience.is_some() {
            self.auth_oidc_audience = l.auth_oidc_audience;
        }
        if l.auth_oidc_client_id.is_some() {
            self.auth_oidc_client_id = l.auth_oidc_client_id;
        }
        if l.auth_oidc_client_secret.is_some() {
            self.auth_oidc_client_secret = l.auth_oidc_client_secret;
        }
        for (mine, theirs) in [
            (&mut self.tls_cert, l.tls_cert),
            (&mut self.tls_key, l.tls_key),
            (&mut self.tls_client_ca, l.tls_client_ca),
        ] {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
        if l.serving_memory_budget.is_some() {
            self.serving_memory_budget = l.serving_memory_budget;
        }
        if l.serving_workers.is_some() {
            self.serving_workers = l.serving_workers;
        }
        if l.onnxruntime_lib.is_some() {
            self.onnxruntime_lib = l.onnxruntime_lib;
        }
        if l.backend_store_uri.is_some() {
            self.backend_store_uri = l.backend_store_uri;
        }
        if l.artifact_root.is_some() {
            self.artifact_root = l.artifact_root;
        }
    }

    pub fn load_file(path: &Path) -> anyhow::Result<Layer> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// `auth_default_permission` as a level; `None` for NO_PERMISSIONS.
    pub fn default_permission(&self) -> anyhow::Result<Option<slipway_auth::Level>> {
        match slipway_auth::Permission::parse(&self.auth_default_permission) {
            Some(slipway_auth::Permission::Level(level)) => Ok(Some(level)),
            Some(slipway_auth::Permission::NoPermissions) => Ok(None),
            _ => bail!(
                "auth_default_permission must be READ, USE, EDIT, MANAGE or NO_PERMISSIONS, got '{}'",
                self.auth_default_permission
            ),
        }
    }

    /// The metadata store this configuration names.
    pub fn metadata_store(&self) -> anyhow::Result<MetadataUri> {
        match &self.backend_store_uri {
            None => Ok(MetadataUri::Sqlite(self.data_dir.join("slipway.db"))),
            Some(uri) if uri.starts_with("postgresql://") || uri.starts_with("postgres://") => {
                Ok(MetadataUri::Postgres(uri.clone()))
            }
            Some(uri) => parse_sqlite_uri(uri).map(MetadataUri::Sqlite),
        }
    }

    /// The artifact root: as configured, else `<data_dir>/artifacts`.
    pub fn artifact_root(&self) -> String {
        self.artifact_root.clone().unwrap_or_else(|| self.data_dir.join("artifacts").display().to_string())
    }

    /// The server's HTTPS files, when it serves HTTPS.
    pub fn tls(&self) -> Option<slipway_server::tls::TlsFiles<'_>> {
        let (cert, key) = (self.tls_cert.as_deref()?, self.tls_key.as_deref()?);
        Some(slipway_server::tls::TlsFiles { cert, key, client_ca: self.tls_client_ca.as_deref() })
    }

    /// Whether clients read and write artifacts at the root themselves.
    pub fn direct_artifacts(&self) -> bool {
        self.artifact_mode == "direct"
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.default_permission()?;
        if !(1..=3650).contains(&self.auth_token_max_days) {
            bail!("auth_token_max_days must be 1 to 3650, got {}", self.auth_token_max_days);
        }
        if let Some(issuer) = &self.auth_oidc_issuer {
            slipway_server::auth::oidc::check_issuer(issuer).map_err(|e| anyhow::anyhow!("auth_oidc_issuer: {e}"))?;
            if self.auth_oidc_audience.as_deref().is_none_or(str::is_empty) {
                bail!("auth_oidc_audience is required with auth_oidc_issuer: the `aud` this server's tokens carry");
            }
        }
        match (&self.tls_cert, &self.tls_key, &self.tls_client_ca) {
            (Some(_), Some(_), _) | (None, None, None) => {}
            _ => bail!("tls_cert and tls_key go together (and tls_client_ca needs them)"),
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!("log_format must be 'text' or 'json', got '{}'", self.log_format);
        }
        if !matches!(self.artifact_mode.as_str(), "proxied" | "direct") {
            bail!("artifact_mode must be 'proxied' or 'direct', got '{}'", self.artifact_mode);
        }
        if self.read_connections == 0 || self.read_connections > 64 {
            bail!("read_connections must be between 1 and 64");
        }
        if self.db_pool_size == 0 || self.db_pool_size > 1024 {
            bail!("db_pool_size must be between 1 and 1024");
        }
        self.metadata_store()?;
        if let Some(b) = &self.serving_memory_budget {
            parse_bytes(b)?;
        }
        if self.serving_queue_capacity == 0 || self.serving_max_batch_rows == 0 || self.serving_workers == Some(0) {
            bail!("serving_queue_capacity, serving_max_batch_rows and serving_workers must be at least 1");
        }
        if self.serving_request_timeout_ms == 0
            || self.serving_poll_ms == 0
            || self.prediction_log_roll_secs == 0
            || self.monitor_interval_secs == 0
        {
            bail!(
                "serving_request_timeout_ms, serving_poll_ms, prediction_log_roll_secs and monitor_interval_secs \
                 must be at least 1"
            );
        }
        Ok(())
    }

    /// The model memory budget in bytes: as configured, else half of the machine's memory.
    pub fn memory_budget(&self) -> anyhow::Result<u64> {
        match &self.serving_memory_budget {
            Some(b) => parse_bytes(b),
            None => Ok(total_memory().unwrap_or(4 << 30) / 2),
        }
    }
}

/// Where the metadata lives.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataUri {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URI.
    Postgres(String),
}

impl std::fmt::Display for MetadataUri {
    /// The location for logs: a file path, or the PostgreSQL URI without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataUri::Sqlite(path) => write!(f, "{}", path.display()),
            MetadataUri::Postgres(uri) => match (uri.find("://"), uri.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    let user = &uri[scheme + 3..at];
                    let user = user.split(':').next().unwrap_or_default();
                    write!(f, "{}{user}{}", &uri[..scheme + 3], &uri[at..])
                }
                _ => f.write_str(uri),
            },
        }
    }
}

/// `123`, `64KiB`, `512MiB`, `2GiB` (also `KB`/`MB`/`GB`, `K`/`M`/`G`, binary multiples).
pub fn parse_bytes(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().with_context(|| format!("'{text}' is not a size such as 512MiB or 2GiB"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => bail!("unknown size unit '{other}' in '{text}' (use B, KiB, MiB, GiB)"),
    };
    if !n.is_finite() || n <= 0.0 {
        bail!("size '{text}' must be positive");
    }
    Ok((n * scale as f64) as u64)
}

fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// SQLAlchemy's convention, which MLflow users already write: three slashes and a relative
/// path, or four slashes and an absolute one.
pub fn parse_sqlite_uri(uri: &str) -> anyhow::Result<PathBuf> {
    if let Some(rest) = uri.strip_prefix("sqlite:///") {
        if rest.is_empty() {
            bail!("backend store URI '{uri}' names no database file");
        }
        return Ok(PathBuf::from(rest));
    }
    bail!(
        "unsupported backend store URI '{uri}': expected sqlite:///relative.db, sqlite:////absolute.db or \
         postgresql://user:password@host:port/database"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_override_in_order() {
        let mut c = Config::default();
        c.apply(toml::from_str("port = 6000\nhost = \"0.0.0.0\"").unwrap());
        c.apply(Layer { port: Some(7000), ..Layer::default() });
        assert_eq!((c.host.as_str(), c.port), ("0.0.0.0", 7000));
    }

    #[test]
    fn sqlite_uris_follow_sqlalchemy() {
        assert_eq!(parse_sqlite_uri("sqlite:///rel/x.db").unwrap(), PathBuf::from("rel/x.db"));
        assert_eq!(parse_sqlite_uri("sqlite:////abs/x.db").unwrap(), PathBuf::from("/abs/x.db"));
        assert!(parse_sqlite_uri("mysql://x").is_err());
        let pg = Config { backend_store_uri: Some("postgresql://u:secret@db:5432/s".into()), ..Config::default() };
        let uri = pg.metadata_store().unwrap();
        assert_eq!(uri, MetadataUri::Postgres("postgresql://u:secret@db:5432/s".into()));
        assert_eq!(uri.to_string(), "postgresql://u@db:5432/s", "the password stays out of logs");
        assert!(parse_sqlite_uri("sqlite:///").is_err());
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
        assert!(parse_bytes("0").is_err());
    }

    #[test]
    fn an_oidc_issuer_needs_an_audience_and_https_off_loopback() {
        let with = |layer: &str| {
            let mut c = Config::default();
            c.apply(toml::from_str(layer).unwrap());
            c.validate()
        };
        assert!(with("auth_oidc_issuer = \"https://id.example.com\"\nauth_oidc_audience = \"slipway\"").is_ok());
        assert!(with("auth_oidc_issuer = \"http://127.0.0.1:9000\"\nauth_oidc_audience = \"slipway\"").is_ok());
        let no_audience = with("auth_oidc_issuer = \"https://id.example.com\"").unwrap_err().to_string();
        assert!(no_audience.contains("auth_oidc_audience"), "{no_audience}");
        assert!(with("auth_oidc_issuer = \"http://id.example.com\"\nauth_oidc_audience = \"s\"").is_err());
    }

    #[test]
    fn unknown_config_keys_are_errors() {
        assert!(toml::from_str::<Layer>("prot = 1").is_err());
    }
}
