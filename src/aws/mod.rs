//! AWS plumbing shared by every step: the HTTPS client (rustls on ring, with the Mozilla roots embedded so
//! the binary works in an image with no CA bundle), the `SdkConfig` every client is built from, backoff
//! helpers, and the formatting of SDK errors for the Actions log.
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
use rand::Rng;

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

/// Build the `SdkConfig` for a region. With `credentials`, every client signs with them; without, the
/// standard chain is used (environment keys, profile, web identity file, container or instance role).
/// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` are honoured (that is how tests reach emulators).
pub async fn sdk_config(region: &str, credentials: Option<SharedCredentialsProvider>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .http_client(http_client())
        .retry_config(aws_config::retry::RetryConfig::adaptive().with_max_attempts(6));
    if let Some(provider) = credentials {
        loader = loader.credentials_provider(provider);
    }
    loader.load().await
}

/// Exponential backoff with full jitter: a random delay in `[base*2^(n-1)/2, base*2^(n-1)]`, capped at 30 s.
pub fn jittered(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
    let capped = exp.min(Duration::from_secs(30));
    let millis = capped.as_millis() as u64;
    if millis < 2 {
        return capped;
    }
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
}

/// "`<code>`: <message>" for an SDK error, with the service's own code and message when it sent them.
pub fn describe<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
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
        other => {
            let mut s = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(cause) = src {
                s.push_str(": ");
                s.push_str(&cause.to_string());
                src = cause.source();
            }
            s
        }
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

    #[test]
    fn jitter_stays_in_bounds() {
        for attempt in 1..15 {
            let d = jittered(Duration::from_millis(500), attempt);
            assert!(d <= Duration::from_secs(30));
            let full = Duration::from_millis(500)
                .saturating_mul(1 << (attempt - 1).min(10))
                .min(Duration::from_secs(30));
            assert!(d >= full / 2, "{d:?} < {:?}", full / 2);
        }
    }
}
