//! The one TLS client set-up, for everything Slipway calls over HTTPS (S3, alert webhooks):
//! rustls with ring, trusting the system's roots — `SSL_CERT_FILE` and `SSL_CERT_DIR` replace
//! them, as they do for OpenSSL — or Mozilla's when the system has none.

use hyper_rustls::HttpsConnectorBuilder;
use hyper_rustls::builderstates::WantsSchemes;

pub use hyper_rustls::HttpsConnector;

pub fn roots() -> HttpsConnectorBuilder<WantsSchemes> {
    match HttpsConnectorBuilder::new().with_native_roots() {
        Ok(builder) => builder,
        Err(e) => {
            tracing::warn!(error = %e, "no system CA certificates; trusting Mozilla's roots");
            HttpsConnectorBuilder::new().with_webpki_roots()
        }
    }
}
