//! `s3://bucket/prefix` artifact roots: object_store's S3 client over the hyper stack the
//! server already ships, instead of a second HTTP stack (reqwest) for one backend.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use object_store::aws::AmazonS3Builder;
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
    HttpResponseBody, HttpService,
};
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, RetryConfig};

use crate::{ArtifactError, Result};

/// The longest a TCP (and TLS) connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one S3 request may take, body included: parts and ranged reads are a few MiB.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a failing request is retried before its error reaches the caller (object_store's
/// default of three minutes would hold a client's upload, or start-up, that long).
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an unused connection is kept for the next request.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// A bucket and the key prefix under it, from `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

impl S3Location {
    pub fn parse(uri: &str) -> Result<Self> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| ArtifactError::InvalidPath(format!("'{uri}' is not an s3://bucket/prefix URI")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(ArtifactError::InvalidPath(format!(
                "'{bucket}' in '{uri}' is not a bucket name (3-63 lowercase letters, digits, '-' or '.')"
            )));
        }
        if prefix.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") && !prefix.is_empty() {
            return Err(ArtifactError::InvalidPath(format!("the key prefix in '{uri}' has an empty or dot segment")));
        }
        Ok(Self { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }

    /// The URI that names this root in stored locations, without a trailing slash.
    pub fn uri(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Opens the bucket with the credentials, region and endpoint of the usual `AWS_*` variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...), as boto3 and the MLflow client read them.
pub fn open(location: &S3Location) -> Result<Arc<dyn ObjectStore>> {
    let s3 = AmazonS3Builder::from_env()
        .with_bucket_name(&location.bucket)
        .with_http_connector(HyperConnector)
        .with_retry(RetryConfig { max_retries: 4, retry_timeout: RETRY_TIMEOUT, ..RetryConfig::default() })
        .build()
        .map_err(|e| ArtifactError::Backend(format!("configuring {}: {e}", location.uri())))?;
    Ok(if location.prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, location.prefix.as_str())) })
}

/// Hands object_store a hyper client: HTTP/1.1, TLS as [`crate::tls::roots`] sets it up.
#[derive(Debug)]
struct HyperConnector;

impl HttpConnector for HyperConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        tcp.set_nodelay(true);
        let https = crate::tls::roots().https_or_http().enable_http1().wrap_connector(tcp);
        // Idle connections go before servers drop them (S3 closes them after about 20 s), so a
        // request rarely meets a connection closed under it.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(https);
        Ok(HttpClient::new(HyperService(client)))
    }
}

#[derive(Debug)]
struct HyperService(Client<HttpsConnector<TcpConnector>, HttpRequestBody>);

#[async_trait]
impl HttpService for HyperService {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.0.request(request))
            .await
            .map_err(|elapsed| HttpError::new(HttpErrorKind::Timeout, elapsed))?
            .map_err(|e| HttpError::new(classify(&e), e))?;
        Ok(response.map(|body| HttpResponseBody::new(body.map_err(|e| HttpError::new(body_error_kind(&e), e)))))
    }
}

/// What object_store's retry logic needs to know about a failed request.
fn classify(e: &hyper_util::client::legacy::Error) -> HttpErrorKind {
    if e.is_connect() {
        return HttpErrorKind::Connect;
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(h) = inner.downcast_ref::<hyper::Error>() {
            return body_error_kind(h);
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return io_error_kind(io);
        }
        source = inner.source();
    }
    HttpErrorKind::Request
}

fn body_error_kind(e: &hyper::Error) -> HttpErrorKind {
    if e.is_timeout() {
        HttpErrorKind::Timeout
    } else if e.is_incomplete_message() || e.is_body_write_aborted() || e.is_closed() || e.is_canceled() {
        HttpErrorKind::Interrupted
    } else if e.is_parse() {
        HttpErrorKind::Decode
    } else {
        HttpErrorKind::Request
    }
}

fn io_error_kind(e: &std::io::Error) -> HttpErrorKind {
    use std::io::ErrorKind::*;
    match e.kind() {
        TimedOut => HttpErrorKind::Timeout,
        ConnectionRefused | NotConnected | AddrNotAvailable => HttpErrorKind::Connect,
        ConnectionAborted | ConnectionReset | BrokenPipe | UnexpectedEof => HttpErrorKind::Interrupted,
        _ => HttpErrorKind::Request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_bucket_and_prefix() {
        let l = S3Location::parse("s3://my-bucket/team/ml/").unwrap();
        assert_eq!(l, S3Location { bucket: "my-bucket".into(), prefix: "team/ml".into() });
        assert_eq!(l.uri(), "s3://my-bucket/team/ml");
        assert_eq!(S3Location::parse("s3://bucket").unwrap().uri(), "s3://bucket");
        for bad in ["s3://", "s3://UPPER/x", "s3://ab", "s3://b_u/x", "s3://bucket/a//b", "s3://bucket/../x", "/tmp/x"]
        {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }
}
