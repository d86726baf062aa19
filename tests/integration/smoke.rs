//! The smoke step against a real HTTP server on loopback (the miniature CloudShop API in
//! `common/app.rs`), calling the library functions directly. Each test runs on a paused tokio clock:
//! the app's slowness and hangs, the retry budget and the watch rounds all pass in virtual time, so the
//! bounds below are exact and no test waits for real.

use harness as common;

use std::time::Duration;

use cloudshop_deploy::config::{default_checks, CheckSpec, JsonExpect, Smoke};
use cloudshop_deploy::report::{Report, Section};
use cloudshop_deploy::steps::smoke::{self, Error, SmokeReport, SmokeStatus};
use cloudshop_deploy::steps::watch::{self, ServiceHealth};
use common::app::{App, Mode};
use tokio::time::Instant;
use url::Url;

const ORIGIN: &str = "http://stage-cloudshop-frontend.s3-website-us-east-1.amazonaws.com";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn cfg(app: &App) -> Smoke {
    Smoke {
        enabled: true,
        base_url: Some(Url::parse(&app.base_url()).unwrap()),
        test_url: None,
        checks: default_checks(),
        cors_origin: Some(ORIGIN.into()),
        website_url: Some(Url::parse(&app.website_url()).unwrap()),
        frontend_check: true,
        timeout: secs(30),
        request_timeout: secs(5),
        retry_interval: secs(1),
        watch: Duration::ZERO,
        watch_interval: secs(15),
        watch_failures: 3,
        writes: Default::default(),
        test_sample: Default::default(),
    }
}

/// The smoke step as the run calls it: writing its own section of `report` and the run's timeline.
async fn run(cfg: &Smoke, report: &mut Report) -> Result<(), Error> {
    let Report { smoke, phases, .. } = report;
    smoke::run(cfg, smoke.get_or_insert_with(SmokeReport::default), phases).await
}

async fn check_frontend(cfg: &Smoke, report: &mut Report) -> Result<(), Error> {
    let Report { smoke, phases, .. } = report;
    smoke::check_frontend(cfg, smoke.get_or_insert_with(SmokeReport::default), phases).await
}

/// The post-deploy watch with no signals to weigh.
async fn watch<F, Fut>(cfg: &Smoke, probe: F, report: &mut Report) -> Result<(), watch::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<ServiceHealth, cloudshop_deploy::Error>>,
{
    let Report { smoke, phases, .. } = report;
    watch::run(
        cfg,
        probe,
        || async { Vec::new() },
        smoke.get_or_insert_with(SmokeReport::default),
        phases,
    )
    .await
}

fn smoke_of(report: &Report) -> &SmokeReport {
    report.smoke.as_ref().expect("a smoke report")
}

fn check<'a>(report: &'a Report, name: &str) -> &'a smoke::CheckResult {
    smoke_of(report)
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check `{name}`: {:#?}", report.smoke))
}

/// Outputs and summary of the smoke section, as the run would write them.
fn rendered(report: &Report) -> (Vec<(String, String)>, String) {
    let mut out = Vec::new();
    let mut md = String::new();
    smoke_of(report).outputs(&mut out);
    smoke_of(report).summary(&mut md);
    (out, md)
}

fn healthy(running: i32) -> ServiceHealth {
    ServiceHealth {
        running,
        desired: 2,
        new_stopped: Vec::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_healthy_app_passes_at_the_first_attempt() {
    let app = App::start_local().await;
    let cfg = cfg(&app);
    let mut report = Report::default();
    run(&cfg, &mut report).await.unwrap();

    let s = smoke_of(&report);
    assert_eq!(s.status, SmokeStatus::Passed);
    assert_eq!(s.checks.len(), 3, "health, products, cors");
    for c in &s.checks {
        assert!(c.passed, "{c:?}");
        assert_eq!(c.attempts.len(), 1, "{c:?}");
    }
    assert_eq!(check(&report, "products").got, "200, JSON array of 3");
    assert_eq!(
        check(&report, "cors").got,
        format!("200, Access-Control-Allow-Origin `{ORIGIN}`")
    );
    assert_eq!(app.requests(), 3);
    let preflight = app
        .seen()
        .into_iter()
        .find(|s| s.method == "OPTIONS")
        .unwrap();
    assert_eq!(preflight.uri, "/products");
    assert_eq!(preflight.header("origin"), Some(ORIGIN));
    assert_eq!(
        preflight.header("access-control-request-method"),
        Some("GET")
    );

    let (out, md) = rendered(&report);
    assert_eq!(out[0], ("smoke-status".into(), "passed".into()));
    let v: serde_json::Value = serde_json::from_str(&out[1].1).unwrap();
    assert_eq!(v["checks"][0]["url"], format!("{}/health", app.base_url()));
    assert_eq!(v["checks"][1]["expected"], "200 + JSON array");
    assert_eq!(v["checks"][1]["attempts"], 1);
    assert!(md.contains("### ✅ Smoke tests: passed"), "{md}");
    assert_eq!(report.phases.phases().last().unwrap().name, "smoke tests");
}

#[tokio::test(start_paused = true)]
async fn configured_checks_names_docs_and_a_path_prefix() {
    let app = App::start_local().await;
    let mut cfg = cfg(&app);
    // A base URL with a trailing slash and a path prefix must not lose or double the slash.
    cfg.base_url = Some(Url::parse(&format!("{}/", app.base_url())).unwrap());
    cfg.cors_origin = None;
    let products: CheckSpec = yaml_serde::from_str(
        "{ name: catalogue, path: /products, json: { array: true, non-empty: true, contains-names: [Laptop, Mouse, Keyboard] }, expect-headers: { content-type: application/json } }",
    )
    .unwrap();
    let docs: CheckSpec =
        yaml_serde::from_str("{ path: /docs, body-contains: Swagger UI, method: GET }").unwrap();
    let head: CheckSpec = yaml_serde::from_str("{ path: /health, method: HEAD }").unwrap();
    cfg.checks = vec![products, docs, head];
    let mut report = Report::default();
    run(&cfg, &mut report).await.unwrap();
    assert_eq!(check(&report, "catalogue").got, "200, JSON array of 3");
    assert!(check(&report, "GET /docs").passed);
    assert!(check(&report, "HEAD /health").passed);
    let uris: Vec<String> = app.seen().into_iter().map(|s| s.uri).collect();
    assert!(uris.iter().all(|u| !u.starts_with("//")), "{uris:?}");
    assert_eq!(app.requests_to("/docs"), 1);

    // A missing name fails with what was there.
    cfg.checks[0].json = Some(JsonExpect {
        contains_names: vec!["Tablet".into()],
        ..JsonExpect::default()
    });
    cfg.timeout = Duration::ZERO;
    let mut report = Report::default();
    run(&cfg, &mut report).await.unwrap_err();
    assert_eq!(
        check(&report, "catalogue").got,
        "200, JSON array of 3 without name Tablet"
    );
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_until_the_budget_is_spent() {
    let app = App::start_local().await;
    app.set_mode(Mode::Status(500));
    let cfg = cfg(&app);
    let started = Instant::now();
    let mut report = Report::default();
    let err = run(&cfg, &mut report).await.unwrap_err();
    let elapsed = started.elapsed();

    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "failed to verify `{}/`: 3 of 3 smoke checks failed:",
            app.base_url()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("health got 500: Internal Server Error"),
        "{msg}"
    );
    let hint = cloudshop_deploy::Diagnose::hint(&err);
    assert!(
        hint.starts_with("the new version does not answer"),
        "{hint}"
    );
    let s = smoke_of(&report);
    assert_eq!(s.status, SmokeStatus::Failed);
    for c in &s.checks {
        assert!(!c.passed);
        // Backoff from 1 s over a 30 s budget: several attempts, not a hammering.
        assert!((4..=12).contains(&c.attempts.len()), "{c:?}");
        assert!(c.attempts.iter().all(|a| a.status == Some(500)));
    }
    // The budget was used, and not overrun (500s answer at once).
    assert!(elapsed >= cfg.timeout, "{elapsed:?}");
    assert!(elapsed <= cfg.timeout + cfg.request_timeout, "{elapsed:?}");
    let (out, md) = rendered(&report);
    assert_eq!(out[0].1, "failed");
    assert!(
        md.contains("<details><summary>attempts of <code>health</code>"),
        "{md}"
    );
    assert_eq!(
        report.phases.phases().last().unwrap().outcome,
        cloudshop_deploy::report::Outcome::Failed
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_start_is_waited_for() {
    let app = App::start_local().await;
    // The first 7 requests fail (the new tasks are warming up), then everything answers.
    app.set_mode(Mode::FailBetween(0, 7));
    let cfg = cfg(&app);
    let mut report = Report::default();
    run(&cfg, &mut report).await.unwrap();
    let s = smoke_of(&report);
    assert_eq!(s.status, SmokeStatus::Passed);
    let total: usize = s.checks.iter().map(|c| c.attempts.len()).sum();
    assert_eq!(total as u64, app.requests());
    assert!(total > 7, "{total}");
    for c in &s.checks {
        let last = c.attempts.last().unwrap();
        assert!(last.passed);
        assert!(c.attempts[..c.attempts.len() - 1].iter().all(|a| !a.passed));
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_answer_fails_a_latency_limit() {
    let app = App::start_local().await;
    app.set_mode(Mode::Slow(secs(3)));
    let mut cfg = cfg(&app);
    cfg.checks[0].max_latency = Some(secs(1));
    cfg.cors_origin = None;
    cfg.timeout = secs(10);
    let mut report = Report::default();
    let err = run(&cfg, &mut report).await.unwrap_err();
    assert!(
        err.to_string().contains("1 of 2 smoke checks failed"),
        "{err}"
    );

    let health = check(&report, "health");
    assert!(!health.passed);
    assert_eq!(health.expected, "200 + ≤ 1s");
    assert_eq!(health.got, "200 in 3.0 s (limit 1s)");
    assert!(health.attempts.iter().all(|a| a.latency_ms >= 3000));
    // Without a limit, slow is fine: the latency is recorded.
    let products = check(&report, "products");
    assert!(products.passed);
    assert_eq!(products.attempts.len(), 1);
    assert!(products.latency().0 >= 3000, "{products:?}");
}

#[tokio::test(start_paused = true)]
async fn a_hung_endpoint_costs_at_most_the_budget_plus_one_request_timeout() {
    let app = App::start_local().await;
    app.set_mode(Mode::Hang);
    for (timeout, request_timeout) in [(secs(30), secs(5)), (secs(7), secs(5)), (secs(1), secs(10))]
    {
        let mut cfg = cfg(&app);
        cfg.timeout = timeout;
        cfg.request_timeout = request_timeout;
        let started = Instant::now();
        let mut report = Report::default();
        let err = run(&cfg, &mut report).await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            elapsed <= timeout + request_timeout,
            "{timeout:?} + {request_timeout:?}: took {elapsed:?}"
        );
        assert!(elapsed >= timeout.max(request_timeout), "{elapsed:?}");
        assert!(
            matches!(
                err,
                Error::Checks {
                    failed: 3,
                    unreachable: true,
                    ..
                }
            ),
            "{err}"
        );
        for c in &smoke_of(&report).checks {
            assert!(
                c.attempts.iter().all(|a| a.status.is_none()
                    && a.got
                        == format!(
                            "no answer within {}",
                            humantime::format_duration(request_timeout)
                        )
                    && a.latency_ms == request_timeout.as_millis() as u64),
                "{c:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn wrong_json_fails_the_products_check_only() {
    let app = App::start_local().await;
    app.set_mode(Mode::WrongJson);
    let mut cfg = cfg(&app);
    cfg.timeout = secs(5);
    let mut report = Report::default();
    let err = run(&cfg, &mut report).await.unwrap_err();
    assert!(
        err.to_string().contains(
            "1 of 3 smoke checks failed: products got 200, JSON object with 1 key (expected an array)"
        ),
        "{err}"
    );
    assert!(check(&report, "health").passed);
    assert!(check(&report, "cors").passed);
    let (out, md) = rendered(&report);
    let v: serde_json::Value = serde_json::from_str(&out[1].1).unwrap();
    assert_eq!(v["checks"][1]["passed"], false);
    // Failures first in the table.
    assert!(
        md.find("| products |").unwrap() < md.find("| health |").unwrap(),
        "{md}"
    );
}

#[tokio::test(start_paused = true)]
async fn missing_or_wrong_cors_headers_fail_with_a_cors_hint() {
    let app = App::start_local().await;
    for (mode, got) in [
        (
            Mode::NoCors,
            "200, no Access-Control-Allow-Origin".to_string(),
        ),
        (
            Mode::CorsOrigin("http://localhost:3000".into()),
            "200, Access-Control-Allow-Origin `http://localhost:3000`".to_string(),
        ),
    ] {
        app.set_mode(mode);
        let mut cfg = cfg(&app);
        cfg.timeout = secs(3);
        let mut report = Report::default();
        let err = run(&cfg, &mut report).await.unwrap_err();
        assert!(matches!(&err, Error::Checks { failed: 1, .. }), "{err}");
        assert_eq!(check(&report, "cors").got, got);
        let hint = cloudshop_deploy::Diagnose::hint(&err);
        assert!(hint.contains(ORIGIN) && hint.contains("CORS"), "{hint}");
    }
    // `cors: false`: no preflight at all.
    app.set_mode(Mode::NoCors);
    let before = app.requests_to("/products");
    let mut cfg = cfg(&app);
    cfg.cors_origin = None;
    let mut report = Report::default();
    run(&cfg, &mut report).await.unwrap();
    assert_eq!(smoke_of(&report).checks.len(), 2);
    assert_eq!(app.requests_to("/products"), before + 1);
}

#[tokio::test(start_paused = true)]
async fn redirect_loops_are_cut_off() {
    let app = App::start_local().await;
    let mut cfg = cfg(&app);
    cfg.checks = vec![yaml_serde::from_str("{ name: loop, path: /loop }").unwrap()];
    cfg.cors_origin = None;
    cfg.timeout = Duration::ZERO;
    let mut report = Report::default();
    run(&cfg, &mut report).await.unwrap_err();
    let c = check(&report, "loop");
    assert_eq!(c.attempts.len(), 1, "a zero budget still makes one attempt");
    assert!(c.got.starts_with("more than 5 redirects"), "{}", c.got);
    assert_eq!(app.requests_to("/loop"), smoke::MAX_REDIRECTS + 1);
}

#[tokio::test(start_paused = true)]
async fn configured_headers_never_follow_a_redirect_to_another_host() {
    let app = App::start_local().await;
    let mut cfg = cfg(&app);
    cfg.checks = vec![yaml_serde::from_str(
        "{ name: away, path: /away, headers: { X-Api-Key: hdr-s3cr3t } }",
    )
    .unwrap()];
    cfg.cors_origin = None;
    cfg.timeout = Duration::ZERO;
    let mut report = Report::default();
    run(&cfg, &mut report).await.unwrap_err();
    let got = &check(&report, "away").got;
    assert!(
        got.starts_with("redirect to another origin `http://localhost:")
            && got.ends_with("` not followed: the checks send configured headers"),
        "{got}"
    );
    assert_eq!(app.requests(), 1, "{:?}", app.seen());
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_api_fails_with_a_reachability_hint() {
    // A port nobody listens on: the listener is dropped before the run.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = App::start_local().await;
    let mut cfg = cfg(&app);
    cfg.base_url = Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap());
    cfg.timeout = secs(2);
    let mut report = Report::default();
    let err = run(&cfg, &mut report).await.unwrap_err();
    let health = check(&report, "health");
    assert!(
        health.got.starts_with("could not connect"),
        "{}",
        health.got
    );
    assert!(health.attempts.iter().all(|a| a.status.is_none()));
    let hint = cloudshop_deploy::Diagnose::hint(&err);
    assert!(
        hint.starts_with("nothing answered at `http://127.0.0.1:"),
        "{hint}"
    );
}

#[tokio::test(start_paused = true)]
async fn userinfo_and_header_values_never_reach_the_report() {
    let app = App::start_local().await;
    app.set_mode(Mode::EchoHeaders);
    let mut cfg = cfg(&app);
    let port = app.base_url().rsplit(':').next().unwrap().to_string();
    cfg.base_url =
        Some(Url::parse(&format!("http://smoke-user:pa%24s-s3cr3t@127.0.0.1:{port}")).unwrap());
    cfg.website_url = cfg.base_url.clone();
    cfg.checks[0].headers.insert(
        "x-api-key",
        reqwest::header::HeaderValue::from_static("hdr-s3cr3t-value"),
    );
    cfg.timeout = secs(2);
    let mut report = Report::default();
    let err = run(&cfg, &mut report).await.unwrap_err();
    let web_err = check_frontend(&cfg, &mut report).await.unwrap_err();

    // The credentials were sent...
    let seen = app.seen();
    let first = seen.iter().find(|s| s.uri == "/health").unwrap();
    assert_eq!(first.header("x-api-key"), Some("hdr-s3cr3t-value"));
    assert_eq!(
        first.header("authorization"),
        Some("Basic c21va2UtdXNlcjpwYSRzLXMzY3IzdA==") // smoke-user:pa$s-s3cr3t
    );
    // ...and echoed back in the 500 bodies, but nothing the step keeps or prints repeats them.
    let (out, md) = rendered(&report);
    let health = check(&report, "health");
    assert!(health.got.contains("x-api-key: ***"), "{}", health.got);
    let everything = format!(
        "{err}\n{}\n{web_err}\n{}\n{out:?}\n{md}\n{:?}\n{}",
        cloudshop_deploy::Diagnose::hint(&err),
        cloudshop_deploy::Diagnose::hint(&web_err),
        report,
        serde_json::to_string(&report).unwrap()
    );
    for secret in [
        "hdr-s3cr3t-value",
        "s3cr3t",
        "pa$s",
        "pa%24s",
        "smoke-user",
        "c21va2Ut",
    ] {
        assert!(
            !everything.contains(secret),
            "`{secret}` leaked:\n{everything}"
        );
    }
    assert!(
        md.contains(&format!("`GET http://127.0.0.1:{port}/health`")),
        "{md}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_website_must_answer_html() {
    let app = App::start_local().await;
    let mut cfg = cfg(&app);
    cfg.timeout = secs(3);
    let mut report = Report::default();
    check_frontend(&cfg, &mut report).await.unwrap();
    let s = smoke_of(&report);
    assert_eq!(s.website.as_ref().unwrap().got, "200, HTML");
    assert_eq!(s.status, SmokeStatus::Passed);

    // A JSON page is not the website.
    cfg.website_url = Some(Url::parse(&format!("{}/health", app.base_url())).unwrap());
    let err = check_frontend(&cfg, &mut report).await.unwrap_err();
    assert!(
        err.to_string().contains("got 200, application/json after"),
        "{err}"
    );
    assert_eq!(smoke_of(&report).status, SmokeStatus::Failed);

    app.set_mode(Mode::Status(403));
    cfg.website_url = Some(Url::parse(&app.website_url()).unwrap());
    let err = check_frontend(&cfg, &mut report).await.unwrap_err();
    assert!(err.to_string().contains("got 403"), "{err}");
    let (out, _) = rendered(&report);
    let v: serde_json::Value = serde_json::from_str(&out[1].1).unwrap();
    assert_eq!(v["website"]["passed"], false);
}

fn watch_cfg(app: &App) -> Smoke {
    let mut c = cfg(app);
    c.watch = secs(600);
    c.watch_interval = secs(15);
    c.watch_failures = 3;
    c
}

#[tokio::test(start_paused = true)]
async fn a_quiet_watch_passes_every_round() {
    let app = App::start_local().await;
    let cfg = watch_cfg(&app);
    let mut probes = 0;
    let started = Instant::now();
    let mut report = Report::default();
    watch(
        &cfg,
        || {
            probes += 1;
            async { Ok(healthy(2)) }
        },
        &mut report,
    )
    .await
    .unwrap();
    let w = smoke_of(&report).watch.clone().unwrap();
    assert_eq!((w.rounds_planned, w.rounds, w.bad_rounds), (40, 40, 0));
    assert_eq!(probes, 40);
    assert_eq!(app.requests(), 40 * 3);
    assert!(w.passed);
    assert_eq!(w.service.as_deref(), Some("2/2 running"));
    assert_eq!(w.checks.len(), 3);
    assert!(w.checks.iter().all(|c| c.requests == 40 && c.failed == 0));
    // It lasted the watch, and one round longer at most.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= cfg.watch && elapsed <= cfg.watch + cfg.request_timeout,
        "{elapsed:?}"
    );
    assert_eq!(smoke_of(&report).status, SmokeStatus::Passed);
}

#[tokio::test(start_paused = true)]
async fn a_sustained_failure_during_the_watch_is_an_error() {
    let app = App::start_local().await;
    // 5 good rounds of 3 requests, then the app fails for good.
    app.set_mode(Mode::FailAfter(15));
    let cfg = watch_cfg(&app);
    let started = Instant::now();
    let mut report = Report::default();
    let err = watch(&cfg, || async { Ok(healthy(2)) }, &mut report)
        .await
        .unwrap_err();
    match &err {
        watch::Error::Sustained {
            streak,
            round,
            rounds,
            seen,
            ..
        } => {
            assert_eq!((*streak, *round, *rounds), (3, 8, 40));
            assert!(seen.starts_with("round 6: health: 500"), "{seen}");
            assert!(seen.contains("| round 8:"), "{seen}");
        }
        other => panic!("{other}"),
    }
    // It stopped at the 8th round (no need to watch a broken version for 10 minutes).
    assert!(started.elapsed() <= secs(8 * 15) + cfg.request_timeout);
    assert_eq!(app.requests(), 8 * 3);
    let s = smoke_of(&report);
    assert_eq!(s.status, SmokeStatus::Failed);
    let w = s.watch.as_ref().unwrap();
    assert_eq!((w.rounds, w.bad_rounds, w.max_consecutive), (8, 3, 3));
    assert!(!w.passed);
    let (out, md) = rendered(&report);
    assert_eq!(out[0].1, "failed");
    assert!(md.contains("#### ❌ Post-deploy watch: failed"), "{md}");
    assert!(md.contains("| 6 | 90 s | health: 500"), "{md}");
    assert_eq!(report.phases.phases().last().unwrap().name, "watch");
}

#[tokio::test(start_paused = true)]
async fn one_bad_round_is_forgiven() {
    let app = App::start_local().await;
    // Round 3 (requests 6, 7, 8) fails, and then round 20 alone: never 3 in a row.
    app.set_mode(Mode::FailBetween(6, 9));
    let cfg = watch_cfg(&app);
    let mut report = Report::default();
    let mut round = 0;
    watch(
        &cfg,
        || {
            round += 1;
            let health = if round == 20 {
                ServiceHealth {
                    running: 1,
                    desired: 2,
                    new_stopped: vec!["Task failed ELB health checks".into()],
                }
            } else {
                healthy(2)
            };
            async move { Ok(health) }
        },
        &mut report,
    )
    .await
    .unwrap();
    let w = smoke_of(&report).watch.clone().unwrap();
    assert_eq!((w.rounds, w.bad_rounds, w.max_consecutive), (40, 2, 1));
    assert!(w.passed);
    assert_eq!(w.bad[0].round, 3);
    assert_eq!(w.bad[1].round, 20);
    assert_eq!(
        w.bad[1].seen,
        "service: stopped: Task failed ELB health checks"
    );
    assert_eq!(smoke_of(&report).status, SmokeStatus::Passed);
}

#[tokio::test(start_paused = true)]
async fn stopped_tasks_fail_the_watch_even_when_the_api_answers() {
    let app = App::start_local().await;
    let mut cfg = watch_cfg(&app);
    cfg.watch_failures = 2;
    let mut report = Report::default();
    let err = watch(
        &cfg,
        || async {
            Ok(ServiceHealth {
                running: 1,
                desired: 2,
                new_stopped: vec!["Essential container in task exited".into()],
            })
        },
        &mut report,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains(
            "2 bad watch rounds in a row (round 2 of 40): round 1: service: stopped: Essential container in task exited"
        ),
        "{err}"
    );
    // Fewer running than desired alone is not a failure (replacements, scaling), no running task is.
    let mut report = Report::default();
    watch(&cfg, || async { Ok(healthy(1)) }, &mut report)
        .await
        .unwrap();
    let mut report = Report::default();
    watch(&cfg, || async { Ok(healthy(0)) }, &mut report)
        .await
        .unwrap_err();
}

#[tokio::test(start_paused = true)]
async fn a_hung_app_during_the_watch_is_bounded_per_round() {
    let app = App::start_local().await;
    app.set_mode(Mode::Hang);
    let mut cfg = watch_cfg(&app);
    cfg.watch = secs(60);
    let started = Instant::now();
    let mut report = Report::default();
    let err = watch(&cfg, || async { Ok(healthy(2)) }, &mut report)
        .await
        .unwrap_err();
    assert!(
        matches!(err, watch::Error::Sustained { round: 3, .. }),
        "{err}"
    );
    // Round 3 is due at 45 s and lasts one request timeout.
    assert_eq!(started.elapsed(), secs(45) + cfg.request_timeout);
    let w = smoke_of(&report).watch.clone().unwrap();
    assert!(w.checks.iter().all(|c| c.max_ms == 5000 && c.failed == 3));
}

/// What the watch signals report (a regression of the metrics or the logs) makes a round bad, counted
/// with the checks' and the service's own: a lone regression is forgiven, three in a row end the watch on
/// the round they became sustained. A signal read slower than the interval delays its round, never
/// doubles one.
#[tokio::test(start_paused = true)]
async fn regressions_the_signals_report_count_as_bad_rounds() {
    let app = App::start_local().await;
    let cfg = watch_cfg(&app);
    let started = Instant::now();
    let calls = std::cell::Cell::new(0u32);
    let mut report = Report::default();
    let Report { smoke, phases, .. } = &mut report;
    let err = watch::run(
        &cfg,
        || async { Ok(healthy(2)) },
        || {
            calls.set(calls.get() + 1);
            let k = calls.get();
            async move {
                if k == 5 {
                    // CloudWatch answers slowly this round.
                    tokio::time::sleep(secs(20)).await;
                }
                if k == 2 || (5..=7).contains(&k) {
                    vec![format!("5xx rate 8.0% (round {k})")]
                } else {
                    Vec::new()
                }
            }
        },
        smoke.get_or_insert_with(SmokeReport::default),
        phases,
    )
    .await
    .unwrap_err();
    match &err {
        watch::Error::Sustained {
            streak,
            round,
            seen,
            ..
        } => {
            assert_eq!((*streak, *round), (3, 7));
            assert_eq!(
                seen,
                "round 5: 5xx rate 8.0% (round 5) | round 6: 5xx rate 8.0% (round 6) | round 7: 5xx rate 8.0% (round 7)"
            );
        }
        other => panic!("{other}"),
    }
    assert_eq!(calls.get(), 7);
    // Round 5 was due at 75 s and took 20 s; round 6 started at once (95 s), round 7 on time (105 s).
    assert_eq!(started.elapsed(), secs(105));
    let w = smoke_of(&report).watch.clone().unwrap();
    assert_eq!((w.rounds, w.bad_rounds), (7, 4));
    assert_eq!(w.bad[0].round, 2);
    assert_eq!(app.requests(), 7 * 3, "the checks ran every round");
}

/// The threaded variant the binary-level tests use: served from its own runtime while the caller blocks.
#[test]
fn the_app_serves_from_its_own_thread_too() {
    let app = App::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = cfg(&app);
    let mut report = Report::default();
    rt.block_on(run(&cfg, &mut report)).unwrap();
    rt.block_on(check_frontend(&cfg, &mut report)).unwrap();
    assert_eq!(app.requests(), 4);
    app.set_mode(Mode::Status(502));
    let mut cfg = cfg;
    cfg.timeout = Duration::ZERO;
    let mut report = Report::default();
    rt.block_on(run(&cfg, &mut report)).unwrap_err();
    assert_eq!(check(&report, "health").got, "502: Internal Server Error");
    assert_eq!(app.requests(), 7);
}

/// The `X-Api-Key` of each request a [`redirector`] got.
type Keys = std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>;

/// A server on `ip` that answers `/health` with `{"status":"ok"}` and any other path with a 302 to
/// `to` (when set), recording the `X-Api-Key` it gets.
async fn redirector(ip: &str, to: Option<String>) -> (Url, Keys) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let base = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let keys = Keys::default();
    let seen = keys.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (seen, to) = (seen.clone(), to.clone());
        async move {
            let key = req
                .headers()
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            seen.lock().unwrap().push(key);
            let r = axum::response::Response::builder();
            match (req.uri().path(), to) {
                ("/health", _) | (_, None) => r
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(r#"{"status":"ok"}"#)),
                (_, Some(to)) => r
                    .status(302)
                    .header("location", to)
                    .body(axum::body::Body::empty()),
            }
            .unwrap()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, keys)
}

fn one_check(base: &Url, yaml: &str) -> Smoke {
    Smoke {
        base_url: Some(base.clone()),
        test_url: None,
        checks: vec![yaml_serde::from_str(yaml).unwrap()],
        cors_origin: None,
        website_url: None,
        frontend_check: false,
        timeout: Duration::ZERO,
        ..cfg_template()
    }
}

fn cfg_template() -> Smoke {
    Smoke {
        enabled: true,
        base_url: None,
        test_url: None,
        checks: Vec::new(),
        cors_origin: None,
        website_url: None,
        frontend_check: false,
        timeout: secs(30),
        request_timeout: secs(5),
        retry_interval: secs(1),
        watch: Duration::ZERO,
        watch_interval: secs(15),
        watch_failures: 3,
        writes: Default::default(),
        test_sample: Default::default(),
    }
}

/// 127.0.0.1 redirects to 127.0.0.2 (another origin): a check with a configured header is not followed
/// there, and neither is one to the same host on another port (another origin too); without headers the
/// redirect is followed and nothing configured goes along.
#[tokio::test(start_paused = true)]
async fn configured_headers_never_reach_another_origin() {
    let (other, other_keys) = redirector("127.0.0.2", None).await;
    let (same_host, same_host_keys) = redirector("127.0.0.1", None).await;
    for (to, keys) in [(&other, &other_keys), (&same_host, &same_host_keys)] {
        let target = to.join("/health").unwrap().to_string();
        let (base, first) = redirector("127.0.0.1", Some(target)).await;
        let cfg = one_check(
            &base,
            "{ name: away, path: /go, headers: { X-Api-Key: hdr-s3cr3t } }",
        );
        let mut report = Report::default();
        run(&cfg, &mut report).await.unwrap_err();
        let got = &check(&report, "away").got;
        let origin = to.origin().ascii_serialization();
        assert_eq!(
            got,
            &format!("redirect to another origin `{origin}` not followed: the checks send configured headers")
        );
        assert_eq!(
            first.lock().unwrap().as_slice(),
            [Some("hdr-s3cr3t".to_string())]
        );
        assert!(
            keys.lock().unwrap().is_empty(),
            "{to} got {:?}",
            keys.lock().unwrap()
        );
    }
    // No configured headers: the redirect is followed, and the other origin sees no key.
    let (base, _) = redirector(
        "127.0.0.1",
        Some(other.join("/health").unwrap().to_string()),
    )
    .await;
    let mut report = Report::default();
    run(&one_check(&base, "{ name: away, path: /go }"), &mut report)
        .await
        .unwrap();
    assert_eq!(other_keys.lock().unwrap().as_slice(), [None]);
}

/// A redirect to the instance metadata address is refused by the policy, without connecting (also when
/// the check sends no headers).
#[tokio::test(start_paused = true)]
async fn a_redirect_to_the_metadata_address_is_refused() {
    for to in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.170.2/v2/credentials/x",
        "http://[fe80::1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ] {
        let (base, _) = redirector("127.0.0.1", Some(to.into())).await;
        let mut report = Report::default();
        let started = Instant::now();
        run(&one_check(&base, "{ name: meta, path: /go }"), &mut report)
            .await
            .unwrap_err();
        let got = &check(&report, "meta").got;
        assert!(
            got.ends_with("` not followed: a link-local or cloud metadata address"),
            "{to}: {got}"
        );
        // Refused, not tried: no connect timeout passed (the clock is paused, so any wait would show).
        assert_eq!(started.elapsed(), Duration::ZERO, "{to}");
    }
}
