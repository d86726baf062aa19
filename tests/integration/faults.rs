//! The fault proxy itself, against moto through the real SDK clients: faults are injected in the
//! services' own wire formats, so the SDK retries them and the call still succeeds; an operation that keeps
//! failing ends in an error; every call is recorded by operation.

use harness as common;

use common::faults::{Fault, FaultPlan, FaultProxy};
use common::Moto;

async fn s3_via(endpoint: &str, moto: &Moto) -> aws_sdk_s3::Client {
    let sdk = moto
        .sdk_config()
        .await
        .into_builder()
        .endpoint_url(endpoint)
        .build();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(8))
            .build(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_are_retried_and_recorded() {
    let moto = Moto::shared();
    let proxy = FaultProxy::start(
        &moto.endpoint,
        FaultPlan {
            rate: 0.3,
            kinds: vec![Fault::ServerError, Fault::Throttle, Fault::Reset],
            ..FaultPlan::default()
        },
    );
    let s3 = s3_via(&proxy.endpoint, &moto).await;
    let bucket = moto.name("faults");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    for i in 0..30 {
        s3.put_object()
            .bucket(&bucket)
            .key(format!("k{i}"))
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert_eq!(listed.key_count(), Some(30));
    let calls = proxy.calls();
    assert!(proxy.faults() >= 5, "faults injected: {}", proxy.faults());
    for kind in [Fault::ServerError, Fault::Throttle, Fault::Reset] {
        assert!(
            calls.iter().any(|c| c.fault == Some(kind)),
            "no {kind:?} in {calls:?}"
        );
    }
    assert!(calls.iter().filter(|c| c.op == "s3:PutObject").count() > 30);
    assert!(proxy
        .mutating_calls()
        .iter()
        .all(|op| op == "s3:PutObject" || op == "s3:CreateBucket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_that_keeps_failing_ends_in_its_error() {
    let moto = Moto::shared();
    let proxy = FaultProxy::start(
        &moto.endpoint,
        FaultPlan {
            always: vec![("s3:PutObject".into(), Fault::Throttle)],
            ..FaultPlan::none()
        },
    );
    let s3 = s3_via(&proxy.endpoint, &moto).await;
    let bucket = moto.name("always");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let err = s3
        .put_object()
        .bucket(&bucket)
        .key("k")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&err).map(str::to_string);
    assert_eq!(code.as_deref(), Some("SlowDown"), "{err:?}");
    assert_eq!(
        proxy.ops().iter().filter(|o| *o == "s3:PutObject").count(),
        8,
        "one call per attempt"
    );
}
