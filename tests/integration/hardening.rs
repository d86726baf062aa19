//! Hardening through the real binary: what it prints can neither leak a credential nor forge a workflow
//! command, whatever the log level and whatever text AWS hands back.

use harness as common;

use common::faults::{FaultPlan, FaultProxy};
use common::{Action, Moto, OidcServer};

const CONFIG: &str = r#"
region: us-east-1
environments:
  stage:
    role-to-assume: arn:aws:iam::123456789012:role/cloudshop-deploy-stage
    cluster: stage-cluster
    service: stage-backend-blue
    container: backend
    ecr-repository: stage-cloudshop-backend
"#;

/// The value of `<Tag>...</Tag>` in an XML body.
fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_string())
}

/// `CLOUDSHOP_DEPLOY_LOG=trace` asks for everything; the SDK's own trace of the STS response (the three
/// credential parts) and of the request (the OIDC token) must still never reach the log. The secrets are
/// taken from the wire (the proxy records STS's reply), not from the mask lines, so a missing mask
/// cannot hide a leak.
#[test]
fn trace_logging_never_prints_a_credential() {
    let moto = Moto::shared();
    let proxy = FaultProxy::start(
        &moto.endpoint,
        FaultPlan {
            record_bodies: true,
            ..FaultPlan::none()
        },
    );
    let oidc = OidcServer::start("repo:acme/cloudshop:environment:stage");
    let request_token = "request-token-5e4d3c2b1a09";
    let res = Action::new()
        .file(".github/cloudshop-deploy.yml", CONFIG)
        .input("environment", "stage")
        .input("dry-run", "true")
        .env("CLOUDSHOP_DEPLOY_LOG", "trace")
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &oidc.request_url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token)
        .run();
    let assumed = proxy
        .calls()
        .into_iter()
        .find(|c| c.op == "sts:AssumeRoleWithWebIdentity")
        .and_then(|c| c.response)
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .unwrap_or_else(|| panic!("no AssumeRoleWithWebIdentity reply\n{}", res.dump()));
    let mut secrets = vec![oidc.token.clone(), request_token.to_string()];
    for tag in ["AccessKeyId", "SecretAccessKey", "SessionToken"] {
        secrets.push(xml_value(&assumed, tag).unwrap_or_else(|| panic!("no {tag} in {assumed}")));
    }
    // The trace level was really in force: our own debug lines are there.
    assert!(
        res.stderr.lines().count() > 5,
        "expected a verbose log\n{}",
        res.dump()
    );
    let everything = res.everything();
    for secret in &secrets {
        let rest = everything.replace(&format!("::add-mask::{secret}"), "");
        assert!(
            !rest.contains(secret.as_str()),
            "secret `{}...` printed outside its mask line",
            &secret[..6.min(secret.len())]
        );
    }
}

/// Every line the binary prints on stderr is a log line: none starts a workflow command, also at trace.
/// The dry run must get through (ECR repository and ECS service there), so the log holds what a whole
/// run logs, not just the first error's prelude.
#[test]
fn no_stderr_line_starts_a_command() {
    use common::ecs_sim::{EcsSim, Scenario};
    let moto = Moto::shared();
    let repo = moto.name("stage-cloudshop-backend");
    common::seed::seed_ecr(&moto, &repo, &[common::pipeline::SHA], false);
    let sim = EcsSim::start(Scenario::Succeed { after: 1 });
    let oidc = OidcServer::start("repo:acme/cloudshop:environment:stage");
    let res = Action::new()
        .file(
            ".github/cloudshop-deploy.yml",
            &CONFIG
                .replace(
                    "ecr-repository: stage-cloudshop-backend",
                    &format!("ecr-repository: {repo}"),
                )
                .replace("service: stage-backend-blue", "service: stage-backend"),
        )
        .input("environment", "stage")
        .input("dry-run", "true")
        .env("CLOUDSHOP_DEPLOY_LOG", "trace")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ENDPOINT_URL_ECS", &sim.endpoint)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &oidc.request_url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "t")
        .run();
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "planned", "{}", res.dump());
    // The lines this is about: the run's own log lines are on stderr, one event per line.
    let lines: Vec<&str> = res.stderr.lines().map(str::trim).collect();
    for line in [
        "INFO AWS credentials work account=123456789012 region=us-east-1",
        "INFO plan: update service `stage-backend` in `stage-cluster` (taskDefinition: the new revision)",
    ] {
        assert!(lines.contains(&line), "{line}\n{}", res.dump());
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("INFO assumed role through GitHub OIDC role=arn:aws:iam::123456789012:role/cloudshop-deploy-stage session=")),
        "{}",
        res.dump()
    );
    for line in res.stderr.lines() {
        assert!(!line.trim_start().starts_with("::"), "{line}");
    }
}

/// The suite-wide secret check ([`common::secrets`]) knows moto's secrets from the wire: the ECR token
/// moto hands out is the one it computes (deterministic per account), and every credential moto's STS
/// hands out is in what it collects.
#[tokio::test]
async fn the_suite_wide_secret_check_knows_moto_secrets() {
    use base64::Engine;
    use common::secrets::{self, SecretKind};
    let moto = Moto::shared();
    let sdk = moto.sdk_config().await;

    let auth = aws_sdk_ecr::Client::new(&sdk)
        .get_authorization_token()
        .send()
        .await
        .expect("GetAuthorizationToken");
    let token = auth
        .authorization_data()
        .first()
        .and_then(|d| d.authorization_token())
        .expect("a token")
        .to_string();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&token)
        .expect("base64");
    let password = String::from_utf8(decoded).expect("utf-8");
    let password = password.strip_prefix("AWS:").expect("AWS:password");
    let known = secrets::moto_ecr_secrets("123456789012");
    assert!(known.contains(&(SecretKind::EcrToken, token)));
    assert!(known.contains(&(SecretKind::EcrPassword, password.to_string())));

    // STS's reply, as the recording proxy an OIDC run goes through sees it.
    let proxy = FaultProxy::start(
        &moto.endpoint,
        FaultPlan {
            record_bodies: true,
            ..FaultPlan::none()
        },
    );
    let via_proxy = sdk.to_builder().endpoint_url(&proxy.endpoint).build();
    let assumed = aws_sdk_sts::Client::new(&via_proxy)
        .assume_role_with_web_identity()
        .role_arn("arn:aws:iam::123456789012:role/cloudshop-deploy-stage")
        .role_session_name("secret-check")
        .web_identity_token("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
        .send()
        .await
        .expect("AssumeRoleWithWebIdentity");
    let creds = assumed.credentials().expect("credentials");
    let collected = secrets::sts_credentials_recorded(&proxy);
    assert!(collected.contains(&(SecretKind::AccessKeyId, creds.access_key_id().to_string())));
    assert!(collected.contains(&(
        SecretKind::SecretAccessKey,
        creds.secret_access_key().to_string()
    )));
    assert!(collected.contains(&(SecretKind::SessionToken, creds.session_token().to_string())));
}

/// The check runs on every run of the binary: a run that prints a known secret (here the request token,
/// given as the environment's name, which the error echoes) panics naming the kind, never the value.
#[test]
fn a_run_that_prints_a_secret_fails_the_suite_wide_check() {
    let request_token = "request-token-a1b2c3d4e5f6";
    let run = std::panic::catch_unwind(|| {
        Action::new()
            .file(".github/cloudshop-deploy.yml", CONFIG)
            .input("environment", request_token)
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", "http://127.0.0.1:9/token")
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token)
            .run()
    });
    let message = run
        .err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .expect("the run printed the request token, so the check must panic");
    assert!(message.contains("RequestToken in stdout"), "{message}");
    assert!(!message.contains(request_token), "{message}");
}
