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
    /// `sqlite:///relative.db` or `sqlite:////absolute.db`; default `<data_dir>/slipway.db`.
    pub backend_store_uri: Option<String>,
    /// Directory of proxied artifacts; default `<data_dir>/artifacts`.
    pub artifact_root: Option<PathBuf>,
    /// `text` or `json`.
    pub log_format: String,
    /// A tracing filter such as `info` or `slipway_server=debug`.
    pub log_level: String,
    /// Read-only SQLite connections serving queries.
    pub read_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 5000,
            data_dir: PathBuf::from("./slipway-data"),
            backend_store_uri: None,
            artifact_root: None,
            log_format: "text".into(),
            log_level: "info".into(),
            read_connections: 4,
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
    pub artifact_root: Option<PathBuf>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub read_connections: Option<usize>,
}

impl Config {
    pub fn apply(&mut self, l: Layer) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = l.$f { self.$f = v; } )* };
        }
        set!(host, port, data_dir, log_format, log_level, read_connections);
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

    /// The SQLite database file this configuration names.
    pub fn sqlite_path(&self) -> anyhow::Result<PathBuf> {
        match &self.backend_store_uri {
            None => Ok(self.data_dir.join("slipway.db")),
            Some(uri) => parse_sqlite_uri(uri),
        }
    }

    pub fn artifact_dir(&self) -> PathBuf {
        self.artifact_root.clone().unwrap_or_else(|| self.data_dir.join("artifacts"))
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!("log_format must be 'text' or 'json', got '{}'", self.log_format);
        }
        if self.read_connections == 0 || self.read_connections > 64 {
            bail!("read_connections must be between 1 and 64");
        }
        self.sqlite_path()?;
        Ok(())
    }
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
    if uri.starts_with("postgresql://") || uri.starts_with("postgres://") {
        bail!("PostgreSQL backends are not available in this build yet; use sqlite:///path/to/file.db");
    }
    bail!("unsupported backend store URI '{uri}': expected sqlite:///relative.db or sqlite:////absolute.db")
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
        assert!(parse_sqlite_uri("sqlite:///").is_err());
    }

    #[test]
    fn unknown_config_keys_are_errors() {
        assert!(toml::from_str::<Layer>("prot = 1").is_err());
    }
}
