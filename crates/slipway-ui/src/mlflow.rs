//! The MLflow UI from the user's own install.
//!
//! The full `mlflow` wheel ships the built React UI in `mlflow/server/js/build` (Apache-2.0;
//! `mlflow-skinny` has none). It routes by URL hash and calls the API with relative URLs, so
//! serving `index.html` at `/` and the files under `/static-files/` is all it takes; the API
//! it calls (`ajax-api/…`, `graphql`, `get-artifact`) is the server's. It is found the way ONNX
//! Runtime is: `$VIRTUAL_ENV`, then `./.venv`, then whatever `mlflow` `python3` can import.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::headers::{self, Caching};

/// How to install what this module serves, shown wherever it is missing.
pub const INSTALL_HINT: &str = "pip install mlflow==3.17.2";

/// `--mlflow-ui`: where the bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    /// Look for it (see the module documentation).
    Auto,
    /// Serve no MLflow UI.
    Off,
    /// This folder: the bundle itself (holding `index.html`) or an `mlflow` package.
    Path(PathBuf),
}

impl FromStr for Setting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Setting::Auto),
            "off" => Ok(Setting::Off),
            "" => Err("--mlflow-ui takes auto, off or a folder".into()),
            path => Ok(Setting::Path(PathBuf::from(path))),
        }
    }
}

/// A located bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The folder holding `index.html` (canonical, so that no served file leaves it).
    pub root: PathBuf,
    /// The `mlflow` version it came with, when its package says.
    pub version: Option<String>,
    index: Arc<[u8]>,
}

impl Bundle {
    /// Opens the bundle in `root` (a folder holding `index.html`).
    pub fn open(root: &Path) -> Result<Bundle, String> {
        let root = root.canonicalize().map_err(|e| format!("{}: {e}", root.display()))?;
        let index = std::fs::read(root.join("index.html"))
            .map_err(|e| format!("{} holds no MLflow UI index.html: {e}", root.display()))?;
        // build -> js -> server -> mlflow
        let version = root.ancestors().nth(3).and_then(package_version);
        Ok(Bundle { root, version, index: index.into() })
    }
}

/// Finds the bundle the setting names; `Ok(None)` when it is off or (for `auto`) absent.
/// An explicit folder that holds no bundle is an error.
pub fn locate(setting: &Setting) -> Result<Option<Bundle>, String> {
    match setting {
        Setting::Off => Ok(None),
        Setting::Path(dir) => {
            let build = dir.join("server/js/build");
            let root = if build.join("index.html").is_file() { build } else { dir.clone() };
            Bundle::open(&root).map(Some).map_err(|e| format!("--mlflow-ui {}: {e}", dir.display()))
        }
        Setting::Auto => Ok(candidates().into_iter().find_map(|pkg| Bundle::open(&pkg.join("server/js/build")).ok())),
    }
}

/// `mlflow` package folders to try, in order.
fn candidates() -> Vec<PathBuf> {
    let mut venvs: Vec<PathBuf> = std::env::var_os("VIRTUAL_ENV").map(PathBuf::from).into_iter().collect();
    venvs.push(PathBuf::from(".venv"));
    let mut found: Vec<PathBuf> = venvs.iter().flat_map(|v| site_packages(v)).map(|sp| sp.join("mlflow")).collect();
    // Finding the spec does not import mlflow (about 90 ms instead of seconds).
    let probe =
        "import importlib.util as u; s = u.find_spec('mlflow'); print(s.submodule_search_locations[0] if s else '')";
    if let Ok(out) = Command::new("python3").args(["-c", probe]).output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !dir.is_empty() {
            found.push(PathBuf::from(dir));
        }
    }
    found
}

/// `<venv>/lib/python*/site-packages` folders.
fn site_packages(venv: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(venv.join("lib")) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("python")))
        .map(|p| p.join("site-packages"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// `VERSION = "3.17.2"` from `mlflow/version.py`.
fn package_version(pkg: &Path) -> Option<String> {
    let text = std::fs::read_to_string(pkg.join("version.py")).ok()?;
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("VERSION")?.trim_start().strip_prefix('=')?.trim();
        Some(rest.trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

/// `/` and `/static-files/*` for the bundle; without one, `/` says how to get it.
pub fn routes(bundle: Option<Bundle>) -> Router {
    match bundle {
        Some(bundle) => {
            Router::new().route("/", get(index)).route("/static-files/{*path}", get(asset)).with_state(Arc::new(bundle))
        }
        None => Router::new().route("/", get(missing)),
    }
}

async fn index(State(bundle): State<Arc<Bundle>>) -> Response {
    let mut resp = bundle.index.to_vec().into_response();
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers::page(resp.headers_mut(), Caching::Revalidate);
    resp
}

async fn asset(State(bundle): State<Arc<Bundle>>, uri: Uri) -> Response {
    // The path as it came off the wire: the sanitiser is the one place that decodes it.
    let raw = uri.path().strip_prefix("/static-files/").unwrap_or_default();
    let Ok(path) = slipway_artifacts::sanitize(raw) else {
        return plain(StatusCode::BAD_REQUEST, "invalid path");
    };
    if path.is_root() {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    let file = path.segments().fold(bundle.root.clone(), |p, s| p.join(s));
    // A symbolic link inside the bundle must not lead out of it; folders are not listed.
    let inside = tokio::fs::canonicalize(&file).await.ok().filter(|real| real.starts_with(&bundle.root));
    let Some(real) = inside else { return plain(StatusCode::NOT_FOUND, "not found") };
    let body = match tokio::fs::metadata(&real).await {
        Ok(m) if m.is_file() => tokio::fs::read(&real).await,
        _ => return plain(StatusCode::NOT_FOUND, "not found"),
    };
    let Ok(body) = body else { return plain(StatusCode::NOT_FOUND, "not found") };
    let name = path.to_string();
    let mut resp = body.into_response();
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(headers::content_type(&name)));
    let caching = if headers::is_hashed(&name) { Caching::Immutable } else { Caching::Revalidate };
    headers::page(resp.headers_mut(), caching);
    resp
}

async fn missing() -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Slipway</title>\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"></head><body>\
         <h1>Slipway</h1><p>The MLflow UI is not installed where this server looks for it. \
         Install it into the server's environment and restart:</p><pre>{INSTALL_HINT}</pre>\
         <p>or point <code>slipway server --mlflow-ui PATH</code> at an <code>mlflow</code> \
         package. The API answers meanwhile; see <a href=\"/health\">/health</a>.</p></body></html>"
    );
    let mut resp = html.into_response();
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers::page(resp.headers_mut(), Caching::Revalidate);
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut resp = (status, text).into_response();
    headers::page(resp.headers_mut(), Caching::Revalidate);
    resp
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    fn fake_package() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let build = dir.path().join("mlflow/server/js/build");
        std::fs::create_dir_all(build.join("static/js")).unwrap();
        std::fs::write(build.join("index.html"), "<html>ui</html>").unwrap();
        std::fs::write(build.join("static/js/main.c2f5f8d4.js"), "console.log(1)").unwrap();
        std::fs::write(build.join("manifest.json"), "{}").unwrap();
        std::fs::write(dir.path().join("mlflow/version.py"), "VERSION = \"3.17.2\"\n").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
        dir
    }

    async fn get(app: &Router, uri: &str) -> Response {
        app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn serves_the_bundle_with_caching_and_security_headers() {
        let dir = fake_package();
        let bundle = locate(&Setting::Path(dir.path().join("mlflow"))).unwrap().unwrap();
        assert_eq!(bundle.version.as_deref(), Some("3.17.2"));
        let app = routes(Some(bundle));

        let index = get(&app, "/").await;
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(index.headers()["cache-control"], "no-cache");
        assert_eq!(index.headers()["x-content-type-options"], "nosniff");
        assert!(index.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));

        let js = get(&app, "/static-files/static/js/main.c2f5f8d4.js").await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
        assert!(js.headers()["cache-control"].to_str().unwrap().contains("immutable"));
        assert_eq!(get(&app, "/static-files/manifest.json").await.headers()["cache-control"], "no-cache");
    }

    #[tokio::test]
    async fn nothing_outside_the_bundle_and_no_listings() {
        let dir = fake_package();
        let build = dir.path().join("mlflow/server/js/build");
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), build.join("link.txt")).unwrap();
        let app = routes(Some(Bundle::open(&build).unwrap()));
        for (uri, status) in [
            ("/static-files/../../../../secret.txt", StatusCode::BAD_REQUEST),
            ("/static-files/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt", StatusCode::BAD_REQUEST),
            ("/static-files/static/%252e%252e/x", StatusCode::BAD_REQUEST),
            ("/static-files/link.txt", StatusCode::NOT_FOUND),
            ("/static-files/static", StatusCode::NOT_FOUND),
            ("/static-files/static/js/", StatusCode::NOT_FOUND),
            ("/static-files/nope.js", StatusCode::NOT_FOUND),
        ] {
            let resp = get(&app, uri).await;
            assert_eq!(resp.status(), status, "{uri}");
            assert_eq!(resp.headers()["x-content-type-options"], "nosniff", "{uri}");
        }
    }

    #[tokio::test]
    async fn without_a_bundle_the_root_says_how_to_get_it() {
        let resp = get(&routes(None), "/").await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains(INSTALL_HINT));
    }

    #[test]
    fn settings_parse_and_a_wrong_folder_is_an_error() {
        assert_eq!("auto".parse::<Setting>().unwrap(), Setting::Auto);
        assert_eq!("off".parse::<Setting>().unwrap(), Setting::Off);
        assert!(locate(&Setting::Off).unwrap().is_none());
        let err = locate(&Setting::Path(PathBuf::from("/nonexistent/mlflow"))).unwrap_err();
        assert!(err.contains("/nonexistent/mlflow"), "{err}");
    }
}
