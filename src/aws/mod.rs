//! AWS plumbing shared by every step: the HTTPS client (rustls on ring, with the Mozilla roots embedded so
//! the binary works in an image with no CA bundle), the `SdkConfig` every client is built from (the SDK's own retry
//! mode), and the formatting of SDK errors for the Actions log.
//!
//! APIs: none directly; see `credentials` for STS.

pub mod credentials;

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::region::Region;
use aws_types::SdkConfig;
use base64::Engine;

/// The embedded root certificates as one PEM bundle (from `webpki-root-certs`).
fn embedded_roots_pem() -> Vec<u8> {
    let mut pem = Vec::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.extend_from_slice(chunk);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

/// The HTTPS client for the AWS SDK: rustls with ring, embedded roots plus the system's (if any).
pub fn http_client() -> SharedHttpClient {
    let trust = TrustStore::default()
        .with_native_roots(true)
        .with_pem_certificate(embedded_roots_pem());
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    match TlsContext::builder().with_trust_store(trust).build() {
        Ok(ctx) => builder.tls_context(ctx).build_https(),
        // The embedded bundle is static data; should it ever fail to load, fall back to the defaults.
        Err(_) => builder.build_https(),
    }
}

/// The `User-Agent` of every HTTP request the action makes outside the SDK.
pub const USER_AGENT: &str = concat!("cloudshop-deploy/", env!("CARGO_PKG_VERSION"));

/// A reqwest client (for the OIDC endpoint, smoke tests, registries): rustls + embedded webpki roots.
pub fn reqwest_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .build()
}

/// Bounds on every AWS call, so an endpoint that accepts and never answers costs a bounded time and a
/// clear error instead of a hung job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CallLimits {
    /// To open a connection.
    pub connect: Duration,
    /// For one attempt, response body included (S3 parts are at most 16 MiB).
    pub attempt: Duration,
    /// For the whole operation, retries included.
    pub operation: Duration,
    /// Attempts per operation, the first included.
    pub max_attempts: u32,
    /// The first retry's delay bound: retry `n` waits a random time up to `initial_backoff * 2^(n-1)`
    /// (at most 20 s).
    pub initial_backoff: Duration,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            connect: Duration::from_secs(10),
            attempt: Duration::from_secs(60),
            operation: Duration::from_secs(180),
            max_attempts: 6,
            // The SDK's default (1 s) made each injected fault on the serial path (ECS, ECR, STS)
            // cost half a second on average; 200 ms keeps six attempts within about 3 s of waiting.
            // S3 throttling is handled by the uploads' own concurrency cut (frontend `throttle`).
            initial_backoff: Duration::from_millis(200),
        }
    }
}

impl CallLimits {
    /// The SDK's timeouts for these limits.
    fn timeout_config(&self) -> aws_config::timeout::TimeoutConfig {
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }

    /// The standard retry mode: exponential backoff with jitter and a retry quota that refills on
    /// success. Not the adaptive mode: its client-side rate limiter keeps cutting the send rate while
    /// faults go on and recovers slowly, which turned 5 s deploys into minutes under throttling.
    pub fn retry_config(&self) -> aws_config::retry::RetryConfig {
        aws_config::retry::RetryConfig::standard()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
    }
}

/// Build the `SdkConfig` for a region with the default `CallLimits`. With `credentials`, every client
/// signs with them; without, the standard chain is used (environment keys, profile, web identity file,
/// container or instance role). `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` are honoured (that is
/// how tests reach emulators).
pub async fn sdk_config(region: &str, credentials: Option<SharedCredentialsProvider>) -> SdkConfig {
    sdk_config_with(region, credentials, CallLimits::default()).await
}

/// [`sdk_config`] with explicit call limits.
async fn sdk_config_with(
    region: &str,
    credentials: Option<SharedCredentialsProvider>,
    limits: CallLimits,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .http_client(http_client())
        .timeout_config(limits.timeout_config())
        .retry_config(limits.retry_config());
    if let Some(provider) = credentials {
        loader = loader.credentials_provider(provider);
    }
    loader.load().await
}

/// "`<code>`: `<message>`" for an SDK error, with the service's own code and message when it sent them.
pub fn describe<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => e.to_string(),
            }
        }
        SdkError::TimeoutError(_) => "request timed out".to_string(),
        SdkError::DispatchFailure(d) => format!("could not reach the AWS endpoint: {d:?}"),
        other => crate::report::section::error_chain(other),
    }
}

/// The error code the service sent, if any (for decisions the SDK has no typed variant for).
pub fn code<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    err.as_service_error().and_then(|e| e.code())
}

/// Is this a throttling reply (the SDK retries these, but long waits back off further on them)?
pub fn is_throttling<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    matches!(
        code(err),
        Some(
            "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_embedded() {
        let pem = String::from_utf8(embedded_roots_pem()).unwrap();
        assert!(pem.matches("BEGIN CERTIFICATE").count() > 100);
    }

    /// An endpoint that accepts connections and never answers: the call ends in a timeout error within
    /// the operation bound, and every attempt is bounded (paused clock: no real waiting).
    #[tokio::test(start_paused = true)]
    async fn a_hung_endpoint_ends_in_a_timeout_within_the_operation_bound() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let keep = held.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                keep.lock().await.push(sock);
            }
        });
        let limits = CallLimits {
            connect: Duration::from_secs(2),
            attempt: Duration::from_secs(5),
            operation: Duration::from_secs(12),
            max_attempts: 10,
            initial_backoff: Duration::from_millis(200),
        };
        let creds =
            aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test");
        let sdk = sdk_config_with(
            "us-east-1",
            Some(SharedCredentialsProvider::new(creds)),
            limits,
        )
        .await
        .into_builder()
        .endpoint_url(format!("http://{addr}"))
        .build();
        let sts = aws_sdk_sts::Client::new(&sdk);
        let started = tokio::time::Instant::now();
        let err = sts.get_caller_identity().send().await.unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(
                err,
                aws_smithy_runtime_api::client::result::SdkError::TimeoutError(_)
            ),
            "{err:?}"
        );
        assert!(took >= Duration::from_secs(5), "{took:?}");
        assert!(took <= Duration::from_secs(13), "{took:?}");
        assert!(
            !held.lock().await.is_empty(),
            "the request reached the hung server"
        );
    }

    #[test]
    fn the_retry_mode_is_standard_not_adaptive() {
        let r = CallLimits::default().retry_config();
        assert_eq!(r.mode(), aws_config::retry::RetryMode::Standard);
        assert_eq!(r.max_attempts(), 6);
        assert_eq!(r.initial_backoff(), Duration::from_millis(200));
        assert_eq!(r.max_backoff(), Duration::from_secs(20));
    }
}
