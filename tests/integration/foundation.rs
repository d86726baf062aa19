//! The runtime contract: inputs, config errors, OIDC credentials, outputs and masking, against the real
//! binary (and moto for STS).

use harness as common;

use common::{Action, Moto, OidcServer, RecordingServer};

const CONFIG: &str = r#"
region: us-east-1
environments:
  stage:
    role-to-assume: arn:aws:iam::123456789012:role/cloudshop-deploy-stage
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: stage-cloudshop-backend
"#;

/// A run that must fail on validation: one `::error::` line containing `want`, and no request to AWS.
fn assert_fails_before_aws(action: Action, want: &str) {
    let aws = RecordingServer::start();
    let res = action
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .run();
    assert_ne!(res.code, 0, "{}", res.dump());
    let errors = res.error_lines();
    assert_eq!(
        errors.len(),
        1,
        "exactly one ::error:: line expected\n{}",
        res.dump()
    );
    assert!(errors[0].contains(want), "`{}` lacks `{want}`", errors[0]);
    assert!(
        res.stdout.contains("\nhint: ") || res.stdout.starts_with("hint: "),
        "no hint line\n{}",
        res.dump()
    );
    assert_eq!(
        aws.count(),
        0,
        "AWS was called: {:?}",
        aws.requests.lock().unwrap()
    );
    assert_eq!(res.output("status"), "failed");
}

#[test]
fn no_inputs_is_a_clear_error_and_no_aws_call() {
    assert_fails_before_aws(Action::new(), "input `environment` is required");
}

#[test]
fn unknown_environment_is_a_clear_error_and_no_aws_call() {
    let action = Action::new()
        .file(".github/cloudshop-deploy.yml", CONFIG)
        .input("environment", "qa");
    assert_fails_before_aws(action, "unknown environment `qa` (configured: stage)");
}

#[test]
fn bad_config_names_the_key_and_line() {
    let action = Action::new()
        .file(
            ".github/cloudshop-deploy.yml",
            "environments:\n  stage:\n    clustr: x\n",
        )
        .input("environment", "stage");
    assert_fails_before_aws(action, "unknown field `clustr`");
    let action = Action::new()
        .file(
            ".github/cloudshop-deploy.yml",
            "environments:\n  stage:\n    clustr: x\n",
        )
        .input("environment", "stage");
    assert_fails_before_aws(action, "line 3");
}

#[test]
fn missing_explicit_config_file() {
    let action = Action::new()
        .input("environment", "stage")
        .input("config", "deploy/envs.yml");
    assert_fails_before_aws(action, "environments file `deploy/envs.yml` not found");
}

/// A huge `wait-timeout` used to pass validation, send `UpdateService` and then overflow the deadline.
#[test]
fn huge_wait_timeout_is_refused_before_any_aws_call() {
    let action = Action::new()
        .file(".github/cloudshop-deploy.yml", CONFIG)
        .input("environment", "stage")
        .input("command", "rollback")
        .input("wait-timeout", "18446744073709551615");
    assert_fails_before_aws(
        action,
        "invalid `wait-timeout`: `18446744073709551615` is longer than 24h",
    );
}

#[test]
fn malformed_role_arn_and_duration() {
    let action = Action::new()
        .file(".github/cloudshop-deploy.yml", CONFIG)
        .input("environment", "stage")
        .input("role-to-assume", "arn:aws:iam::12:role/x");
    assert_fails_before_aws(action, "invalid `role-to-assume`");
    let action = Action::new()
        .file(".github/cloudshop-deploy.yml", CONFIG)
        .input("environment", "stage")
        .input("wait-timeout", "forever");
    assert_fails_before_aws(action, "invalid `wait-timeout`");
}

#[test]
fn values_a_step_would_use_are_checked_before_aws() {
    let with_smoke = format!(
        "{CONFIG}    smoke:\n      checks:\n        - {{ path: /health, headers: {{ X-Api-Key: \"s3cr3t\\n\" }} }}\n"
    );
    /// The environments file, extra inputs, and the expected error.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let registry_in_file = format!("{CONFIG}    registry-url: https://collector.example.com\n");
    let cases: [Case; 5] = [
        (
            CONFIG,
            &[("registry-url", "http://[::1")],
            "invalid `registry-url`: `http://[::1` is not a URL",
        ),
        // The ECR token would travel in clear: refused before any AWS call.
        (
            CONFIG,
            &[("registry-url", "http://registry.example.com:5000")],
            "invalid `registry-url`: `http://registry.example.com:5000` uses plain http; use `https://`",
        ),
        // Only the workflow may point the credentials somewhere.
        (
            &registry_in_file,
            &[],
            "invalid `registry-url`: it cannot be set in the environments file; set the `registry-url` input",
        ),
        (
            CONFIG,
            &[
                ("frontend-bucket", "b"),
                ("frontend-dir", "build"),
                ("frontend-exclude", "a["),
            ],
            "invalid `frontend glob`: `a[`",
        ),
        (
            &with_smoke,
            &[],
            "the value of header `X-Api-Key` of `/health` is not a valid header value",
        ),
    ];
    for (config, inputs, want) in cases {
        let mut action = Action::new()
            .file(".github/cloudshop-deploy.yml", config)
            .input("environment", "stage");
        for (k, v) in inputs {
            action = action.input(k, v);
        }
        assert_fails_before_aws(action, want);
    }
}

#[test]
fn role_without_id_token_permission_says_how_to_fix_it() {
    let action = Action::new()
        .file(".github/cloudshop-deploy.yml", CONFIG)
        .input("environment", "stage");
    let aws = RecordingServer::start();
    let res = action.env("AWS_ENDPOINT_URL", &aws.endpoint).run();
    assert_ne!(res.code, 0);
    assert!(
        res.stdout.contains("ACTIONS_ID_TOKEN_REQUEST_URL"),
        "{}",
        res.dump()
    );
    assert!(res.stdout.contains("id-token: write"), "{}", res.dump());
    assert_eq!(aws.count(), 0);
}

#[test]
fn oidc_role_is_assumed_and_secrets_never_printed() {
    let moto = Moto::shared();
    let oidc = OidcServer::start("repo:acme/cloudshop:environment:stage");
    let request_token = "request-token-0f9e8d7c6b5a";
    let res = Action::new()
        .file(".github/cloudshop-deploy.yml", CONFIG)
        .input("environment", "stage")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &oidc.request_url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token)
        .run();

    // The token request: URL with the encoded audience appended, bearer header.
    let reqs = oidc.requests.lock().unwrap().clone();
    assert!(!reqs.is_empty(), "no OIDC token request\n{}", res.dump());
    assert_eq!(
        reqs[0].uri,
        "/token?api-version=2.0&audience=sts.amazonaws.com"
    );
    assert_eq!(
        reqs[0].authorization.as_deref(),
        Some(&*format!("bearer {request_token}"))
    );

    // The account of the assumed role is an output (moto's default account).
    assert_eq!(
        res.output("aws-account-id"),
        "123456789012",
        "{}",
        res.dump()
    );

    // Every secret was masked, and appears nowhere but in its own mask line.
    let masked: Vec<String> = res
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("::add-mask::"))
        .map(str::to_string)
        .collect();
    assert!(
        masked.contains(&oidc.token),
        "the OIDC token was not masked"
    );
    assert!(
        masked.iter().any(|m| m == request_token),
        "the request token was not masked"
    );
    assert!(
        masked.iter().any(|m| m.starts_with("ASIA")),
        "no access key id masked: {masked:?}"
    );
    assert!(
        masked.len() >= 5,
        "expected token, request token and three credential parts: {masked:?}"
    );
    let everything = res.everything();
    for secret in &masked {
        let mask_line = format!("::add-mask::{secret}");
        let rest = everything.replace(&mask_line, "");
        assert!(
            !rest.contains(secret.as_str()),
            "secret `{}...` printed outside its mask line",
            &secret[..6.min(secret.len())]
        );
    }
    // The summary says where it ran.
    assert!(res.summary.contains("123456789012"), "{}", res.summary);
}

#[test]
fn outside_github_outputs_print_as_lines() {
    let res = Action::new()
        .without("GITHUB_OUTPUT")
        .without("GITHUB_STEP_SUMMARY")
        .run();
    assert_ne!(res.code, 0);
    assert!(
        res.stdout.lines().any(|l| l == "status=failed"),
        "{}",
        res.dump()
    );
    assert!(
        res.stdout.contains("## ❌ cloudshop-deploy"),
        "summary not printed\n{}",
        res.dump()
    );
}

#[test]
fn a_frontend_values_key_that_is_not_upper_case_is_refused() {
    let config = format!(
        "{CONFIG}    frontend:\n      bucket: stage-cloudshop-frontend-746669238399\n      dir: build\n      values:\n        sentry-dsn: https://k@sentry.example/1\n"
    );
    let action = Action::new()
        .file(".github/cloudshop-deploy.yml", &config)
        .file("build/index.html", "<html></html>")
        .input("environment", "stage");
    assert_fails_before_aws(
        action,
        "`frontend.values` key `sentry-dsn` is not made of A-Z, 0-9 and _",
    );
}

/// Prod names its protected GitHub environment: the token must come from a job in it.
const PROTECTED: &str = r#"
region: us-east-1
environments:
  prod:
    github-environment: production
    role-to-assume: arn:aws:iam::123456789012:role/cloudshop-deploy-prod
    cluster: prod-cluster
    service: prod-backend
    ecr-repository: prod-cloudshop-backend
"#;

#[test]
fn a_token_from_the_protected_environment_proceeds() {
    let moto = Moto::shared();
    let oidc = OidcServer::in_environment("acme/cloudshop", "production");
    let res = Action::new()
        .file(".github/cloudshop-deploy.yml", PROTECTED)
        .input("environment", "prod")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &oidc.request_url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token")
        .run();
    // The role was assumed: the run went on to AWS (and failed later on the absent cluster).
    assert_eq!(
        res.output("aws-account-id"),
        "123456789012",
        "{}",
        res.dump()
    );
    assert!(
        !res.everything().contains("github-environment"),
        "{}",
        res.dump()
    );
}

#[test]
fn a_token_from_another_or_no_environment_is_refused_before_aws() {
    for (oidc, claim) in [
        (
            OidcServer::in_environment("acme/cloudshop", "stage"),
            "this job runs in GitHub environment `stage`",
        ),
        (
            OidcServer::start("repo:acme/cloudshop:ref:refs/heads/main"),
            "this job runs in no GitHub environment",
        ),
    ] {
        let aws = RecordingServer::start();
        let res = Action::new()
            .file(".github/cloudshop-deploy.yml", PROTECTED)
            .input("environment", "prod")
            .env("AWS_ENDPOINT_URL", &aws.endpoint)
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", &oidc.request_url)
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token")
            .run();
        assert_ne!(res.code, 0, "{}", res.dump());
        let errors = res.error_lines();
        assert_eq!(errors.len(), 1, "{}", res.dump());
        assert!(errors[0].contains(claim), "{}", errors[0]);
        assert!(
            errors[0].contains("requires GitHub environment `production`"),
            "{}",
            errors[0]
        );
        assert!(
            res.stdout
                .contains("hint: add `environment: production` to the job"),
            "{}",
            res.dump()
        );
        assert_eq!(
            aws.count(),
            0,
            "AWS was called: {:?}",
            aws.requests.lock().unwrap()
        );
        assert_eq!(res.output("status"), "failed");
        // The token was fetched (that is where the claim is), and never printed.
        assert!(!oidc.requests.lock().unwrap().is_empty());
        let rest = res
            .everything()
            .replace(&format!("::add-mask::{}", oidc.token), "");
        assert!(!rest.contains(&oidc.token), "the token was printed");
    }
}

#[test]
fn a_protected_environment_without_a_role_is_refused() {
    let config = PROTECTED.replace(
        "    role-to-assume: arn:aws:iam::123456789012:role/cloudshop-deploy-prod\n",
        "",
    );
    let action = Action::new()
        .file(".github/cloudshop-deploy.yml", &config)
        .input("environment", "prod");
    assert_fails_before_aws(
        action,
        "environment `prod` sets `github-environment: production`, but without `role-to-assume` there is no GitHub OIDC token to check it against",
    );
}

/// Every `troubleshooting!("anchor")` in the code names a `## anchor` section of the guide.
#[test]
fn every_troubleshooting_link_in_the_code_has_its_section() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/troubleshooting.md")).unwrap();
    let headings: std::collections::BTreeSet<&str> =
        doc.lines().filter_map(|l| l.strip_prefix("## ")).collect();
    let mut used = std::collections::BTreeSet::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for part in text.split("troubleshooting!(\"").skip(1) {
                    let anchor = part.split('"').next().unwrap().to_string();
                    used.insert((anchor, p.display().to_string()));
                }
            }
        }
    }
    assert!(used.len() >= 20, "too few links found: {used:?}");
    let missing: Vec<_> = used
        .iter()
        .filter(|(a, _)| !headings.contains(a.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "no such section in docs/troubleshooting.md: {missing:?}"
    );
}

#[test]
fn the_hint_links_to_its_troubleshooting_section() {
    let config = PROTECTED.replace(
        "    role-to-assume: arn:aws:iam::123456789012:role/cloudshop-deploy-prod\n",
        "",
    );
    let hint = |action: Action| {
        let res = action
            .file(".github/cloudshop-deploy.yml", &config)
            .input("environment", "prod")
            .run();
        res.stdout
            .lines()
            .find(|l| l.starts_with("hint: "))
            .unwrap_or_else(|| panic!("no hint\n{}", res.dump()))
            .to_string()
    };
    let on_github = hint(
        Action::new()
            .env("GITHUB_SERVER_URL", "https://github.com")
            .env("GITHUB_ACTION_REPOSITORY", "cloudshop/cloudshop-deploy")
            .env("GITHUB_ACTION_REF", "v1"),
    );
    assert!(
        on_github.ends_with("; see https://github.com/cloudshop/cloudshop-deploy/blob/v1/docs/troubleshooting.md#github-environment-without-role"),
        "{on_github}"
    );
    let local = hint(Action::new());
    assert!(
        local.ends_with("; see docs/troubleshooting.md#github-environment-without-role"),
        "{local}"
    );
}
