//! The one TLS client set-up, for everything Slipway calls over HTTPS (S3, alert webhooks):
//! rustls with ring, trusting the system's roots — `SSL_CERT_FILE` and `SSL_CERT_DIR` replace
//! them, as they do for OpenSSL — or Mozilla's when the system has none.

use std::path::Path;
use std::sync::Arc;

use hyper_rustls::HttpsConnectorBuilder;
use hyper_rustls::builderstates::WantsSchemes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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

/// A client as the mlflow client makes one from `MLFLOW_TRACKING_SERVER_CERT_PATH` (`ca`: trust
/// only the certificates in that PEM file, as `requests`' `verify=` does) and
/// `MLFLOW_TRACKING_CLIENT_CERT_PATH` (`identity`: one PEM file with the client's certificate
/// chain and its private key, as `requests`' `cert=` takes, presented to servers that ask).
/// Neither given: [`roots`].
pub fn client(ca: Option<&Path>, identity: Option<&Path>) -> Result<HttpsConnectorBuilder<WantsSchemes>, String> {
    if ca.is_none() && identity.is_none() {
        return Ok(roots());
    }
    let mut trusted = rustls::RootCertStore::empty();
    match ca {
        Some(ca) => {
            for cert in certificates(ca)? {
                trusted.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            trusted.add_parsable_certificates(found.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(trusted);
    let config = match identity {
        Some(path) => {
            let chain = certificates(path)?;
            let key = PrivateKeyDer::from_pem_file(path).map_err(|e| {
                format!("{}: no private key ({e}); the file must hold the certificate and its key", path.display())
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(HttpsConnectorBuilder::new().with_tls_config(config))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}
