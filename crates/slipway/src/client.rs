//! A small JSON client for the CLI's commands that talk to a running server, over the hyper
//! stack the server already uses: http, or https trusting the system's CA roots (or those
//! `SSL_CERT_FILE` names), as `slipway_artifacts::tls` sets up for every outgoing call.

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use slipway_artifacts::tls::HttpsConnector;
use tokio::io::AsyncReadExt;

/// The flags every command that talks to a running server takes.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Server to talk to.
    #[arg(long, global = true, env = "MLFLOW_TRACKING_URI", default_value = "http://127.0.0.1:5000")]
    pub tracking_uri: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A request body: bytes in memory, or a file streamed from disk.
type Body = BoxBody<Bytes, std::io::Error>;

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

pub struct Api {
    base: String,
    client: Client<HttpsConnector<HttpConnector>, Body>,
    auth: Option<String>,
    actor: Option<String>,
}

impl Api {
    pub fn new(tracking_uri: &str) -> anyhow::Result<Self> {
        let base = tracking_uri.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("tracking URI '{tracking_uri}' must start with http:// or https://");
        }
        // The same credentials the MLflow client sends, so the audit log names the same actor.
        let auth = credentials();
        let actor = std::env::var("SLIPWAY_ACTOR").ok().or_else(|| std::env::var("USER").ok());
        // Requests are small and sequential: without TCP_NODELAY each one can wait ~40 ms on Nagle.
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        // The mlflow client's TLS variables: a CA to trust instead of the system's, and a
        // client certificate (with its key, in one PEM file) for servers that require one.
        let path = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
        let (ca, identity) = (path("MLFLOW_TRACKING_SERVER_CERT_PATH"), path("MLFLOW_TRACKING_CLIENT_CERT_PATH"));
        let tls = slipway_artifacts::tls::client(ca.as_deref(), identity.as_deref()).map_err(anyhow::Error::msg)?;
        let https = tls.https_or_http().enable_http1().wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self { base, client, auth, actor })
    }

    /// Names the caller in the audit log as `actor` (a pipeline run rather than the user who
    /// started it). HTTP Basic credentials, when set, still take precedence on the server.
    pub fn with_actor(mut self, actor: String) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Sends a request and returns the JSON answer, or the server's error as a readable failure.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut url = format!("{}{path}", self.base);
        if !query.is_empty() {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in query {
                q.append_pair(k, v);
            }
            url.push('?');
            url.push_str(&q.finish());
        }
        let mut req = hyper::Request::builder().method(method).uri(&url).header("content-type", "application/json");
        if let Some(a) = &self.auth {
            req = req.header("authorization", a);
        }
        if let Some(a) = &self.actor {
            req = req.header("x-slipway-actor", a);
        }
        let payload = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let resp = self.client.request(req.body(full(payload))?).await.with_context(|| format!("calling {url}"))?;
        let status = resp.status();
        let bytes =
            resp.into_body().collect().await.with_context(|| format!("reading the answer of {url}"))?.to_bytes();
        let value: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        if !status.is_success() {
            let code = value.get("error_code").and_then(Value::as_str).unwrap_or("ERROR");
            let message =
                value.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| value.to_string());
            bail!("{code}: {message}");
        }
        Ok(value)
    }

    /// Downloads a file's bytes (an artifact), failing on any status but 200.
    pub async fn get_bytes(&self, path: &str) -> anyhow::Result<Bytes> {
        let url = format!("{}{path}", self.base);
        let mut req = hyper::Request::builder().method("GET").uri(&url);
        if let Some(a) = &self.auth {
            req = req.header("authorization", a);
        }
        let resp =
            self.client.request(req.body(full(Bytes::new()))?).await.with_context(|| format!("calling {url}"))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.with_context(|| format!("reading {url}"))?.to_bytes();
        if !status.is_success() {
            bail!("GET {url} answered {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)]));
        }
        Ok(bytes)
    }

    /// Uploads bytes (an artifact) with PUT, failing on any status but 2xx.
    pub async fn put_bytes(&self, path: &str, body: Bytes) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.base);
        let mut req =
            hyper::Request::builder().method("PUT").uri(&url).header("content-type", "application/octet-stream");
        if let Some(a) = &self.auth {
            req = req.header("authorization", a);
        }
        if let Some(a) = &self.actor {
            req = req.header("x-slipway-actor", a);
        }
        let resp = self.client.request(req.body(full(body))?).await.with_context(|| format!("calling {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.into_body().collect().await.with_context(|| format!("reading {url}"))?.to_bytes();
            bail!("PUT {url} answered {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)]));
        }
        Ok(())
    }

    /// Uploads a file with PUT, streamed from disk in 1 MiB chunks (an out of any size).
    pub async fn put_file(&self, path: &str, file: &std::path::Path) -> anyhow::Result<()> {
        let f = tokio::fs::File::open(file).await.with_context(|| format!("opening {}", file.display()))?;
        let len = f.metadata().await.with_context(|| format!("reading {}", file.display()))?.len();
        // Reads of the file's size up to 1 MiB: a small file costs a small buffer.
        let size = usize::try_from(len).unwrap_or(usize::MAX).clamp(1, 1 << 20) + 1;
        let chunks = futures::stream::unfold(Some(f), move |state| async move {
            let mut f = state?;
            let mut buf = vec![0u8; size];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Frame::data(Bytes::from(buf))), Some(f)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        let url = format!("{}{path}", self.base);
        let mut req = hyper::Request::builder()
            .method("PUT")
            .uri(&url)
            .header("content-type", "application/octet-stream")
            .header("content-length", len);
        if let Some(a) = &self.auth {
            req = req.header("authorization", a);
        }
        if let Some(a) = &self.actor {
            req = req.header("x-slipway-actor", a);
        }
        let resp = self
            .client
            .request(req.body(StreamBody::new(chunks).boxed())?)
            .await
            .with_context(|| format!("calling {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.into_body().collect().await.with_context(|| format!("reading {url}"))?.to_bytes();
            bail!("PUT {url} answered {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)]));
        }
        Ok(())
    }

    /// Downloads a file (an artifact) into `dest`, streamed: nothing is held in memory whole.
    /// Returns the SHA-256 of what was written, hashed on the way.
    pub async fn get_to_file(&self, path: &str, dest: &std::path::Path) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let mut req = hyper::Request::builder().method("GET").uri(&url);
        if let Some(a) = &self.auth {
            req = req.header("authorization", a);
        }
        let resp =
            self.client.request(req.body(full(Bytes::new()))?).await.with_context(|| format!("calling {url}"))?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = body.collect().await.with_context(|| format!("reading {url}"))?.to_bytes();
            bail!("GET {url} answered {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)]));
        }
        // One blocking thread hashes and writes what the connection receives: the runtime only
        // moves bytes, and no write costs a trip to the blocking pool of its own.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let target = dest.to_path_buf();
        let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            use std::io::Write;
            let mut out = std::fs::File::create(&target).with_context(|| format!("creating {}", target.display()))?;
            let mut digest = slipway_pipeline::hash::Digest::default();
            while let Some(data) = rx.blocking_recv() {
                digest.update(&data);
                out.write_all(&data).with_context(|| format!("writing {}", target.display()))?;
            }
            out.flush().with_context(|| format!("writing {}", target.display()))?;
            Ok(digest.finish())
        });
        let mut received = Ok(());
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    // A writer that stopped has its error to tell, below.
                    if let Ok(data) = frame.into_data()
                        && tx.send(data).await.is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    received = Err(anyhow::Error::new(e).context(format!("reading {url}")));
                    break;
                }
            }
        }
        drop(tx);
        let written = writer.await.context("the download's writer stopped")?;
        received?;
        written
    }

    /// Follows `next_page_token` until the last page, collecting `field`.
    pub async fn all_pages(&self, path: &str, field: &str, query: &[(&str, &str)]) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            if let Some(t) = &token {
                q.push(("page_token", t));
            }
            let page = self.call("GET", path, &q, None).await?;
            if let Some(Value::Array(a)) = page.get(field) {
                items.extend(a.iter().cloned());
            }
            match page.get("next_page_token").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(items),
            }
        }
    }
}

/// The credentials the mlflow client would send: Basic from `MLFLOW_TRACKING_USERNAME` and
/// `_PASSWORD`, else `Bearer $MLFLOW_TRACKING_TOKEN`, else Basic from the `[mlflow]` section of
/// `~/.mlflow/credentials`. Unlike the mlflow client, a token in the environment beats the
/// file: the server hands the runs it starts a token of their own, whatever the file says.
fn credentials() -> Option<String> {
    use base64::Engine;
    let basic = |user: String, pass: String| {
        Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))))
    };
    if let (Ok(user), Ok(pass)) = (std::env::var("MLFLOW_TRACKING_USERNAME"), std::env::var("MLFLOW_TRACKING_PASSWORD"))
    {
        return basic(user, pass);
    }
    if let Ok(token) = std::env::var("MLFLOW_TRACKING_TOKEN") {
        return Some(format!("Bearer {token}"));
    }
    let file = std::env::var_os("HOME")
        .and_then(|home| std::fs::read_to_string(std::path::Path::new(&home).join(".mlflow/credentials")).ok())?;
    let field = |key: &str| from_credentials_file(&file, key);
    basic(field("mlflow_tracking_username")?, field("mlflow_tracking_password")?)
}

/// `key = value` in the `[mlflow]` section of an INI file.
fn from_credentials_file(text: &str, key: &str) -> Option<String> {
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[mlflow]";
        } else if in_section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_mlflow_section_of_the_credentials_file() {
        let text = "[other]\nmlflow_tracking_username = x\n[mlflow]\nmlflow_tracking_username = alice\n\
                    mlflow_tracking_password= s=cret \n";
        assert_eq!(super::from_credentials_file(text, "mlflow_tracking_username").as_deref(), Some("alice"));
        assert_eq!(super::from_credentials_file(text, "mlflow_tracking_password").as_deref(), Some("s=cret"));
        assert_eq!(super::from_credentials_file(text, "missing"), None);
    }
}
