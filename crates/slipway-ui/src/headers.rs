//! Headers for pages and their assets.

use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderMap, X_CONTENT_TYPE_OPTIONS};

/// What the MLflow bundle needs and nothing more: its scripts, styles and fonts come from this
/// server; its CSS-in-JS injects `<style>` elements (so inline styles are allowed, inline
/// scripts are not); charts and previews draw `data:` and `blob:` images; its editor runs in
/// workers. Nothing may frame the pages from elsewhere.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; \
    worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'self'; \
    frame-ancestors 'self'; form-action 'self'";

/// How long a browser may keep an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// The name carries the content hash: kept for a year, never revalidated.
    Immutable,
    /// Revalidated on every load (`index.html`, whose asset names change with each release).
    Revalidate,
}

impl Caching {
    fn value(self) -> &'static str {
        match self {
            Caching::Immutable => "public, max-age=31536000, immutable",
            Caching::Revalidate => "no-cache",
        }
    }
}

/// Sets the headers every page and asset answer carries.
pub fn page(headers: &mut HeaderMap, caching: Caching) {
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(caching.value()));
}

/// The content type of a file, by its extension; unknown ones are bytes.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "eot" => "application/vnd.ms-fontobject",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether a file name carries a content hash (`main.c2f5f8d4.js`, `1126.8bfe0c8c.chunk.js`):
/// a dot-separated part of at least 8 hex digits.
pub fn is_hashed(name: &str) -> bool {
    name.split('.').any(|part| part.len() >= 8 && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_are_told_from_plain_ones() {
        assert!(is_hashed("main.c2f5f8d4.js"));
        assert!(is_hashed("1126.8bfe0c8c.chunk.js"));
        assert!(is_hashed("TelemetryLogger.telemetry-worker.d0f8ea2c83c08b63528f.worker.js"));
        assert!(!is_hashed("index.html"));
        assert!(!is_hashed("favicon.ico"));
        assert!(!is_hashed("manifest.json"));
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("a/b/main.c2f5f8d4.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("x.woff2"), "font/woff2");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}
