//! The files Slipway's own pages load, embedded in the binary and served under `/ui/assets/`.
//! Each name carries its version or a content hash, so browsers keep them for a year.

use axum::extract::Path;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::headers::{self, Caching};

/// (name, bytes). Vendored files keep their upstream names under their version folder.
const FILES: &[(&str, &[u8])] = &[
    ("uplot-1.6.32/uPlot.iife.min.js", include_bytes!("../assets/vendor/uplot-1.6.32/uPlot.iife.min.js")),
    ("uplot-1.6.32/uPlot.min.css", include_bytes!("../assets/vendor/uplot-1.6.32/uPlot.min.css")),
    ("uplot-1.6.32/LICENSE", include_bytes!("../assets/vendor/uplot-1.6.32/LICENSE")),
    ("htmx-2.0.8/htmx.min.js", include_bytes!("../assets/vendor/htmx-2.0.8/htmx.min.js")),
    ("htmx-2.0.8/LICENSE", include_bytes!("../assets/vendor/htmx-2.0.8/LICENSE")),
    (STYLE, include_bytes!("../assets/slipway.css")),
    (SCRIPT, include_bytes!("../assets/slipway.js")),
];

/// Slipway's own stylesheet and script; bump the suffix when they change.
pub const STYLE: &str = "slipway-2.css";
pub const SCRIPT: &str = "slipway-3.js";

pub async fn asset(Path(name): Path<String>) -> Response {
    let Some((_, bytes)) = FILES.iter().find(|(n, _)| *n == name) else {
        let mut resp = (StatusCode::NOT_FOUND, "not found").into_response();
        headers::page(resp.headers_mut(), Caching::Revalidate);
        return resp;
    };
    let mut resp = bytes.to_vec().into_response();
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(headers::content_type(&name)));
    headers::page(resp.headers_mut(), Caching::Immutable);
    resp
}
