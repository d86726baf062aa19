//! Figures for the smoke step against the loopback CloudShop app (real clock, nothing asserted):
//! the cost of a passing run (health, products, CORS), of the CloudShop write sequence, of a watch round,
//! the bound on a hung endpoint, and the peak memory. The step's own log lines go to stdout; the figures go to stderr:
//!
//! ```sh
//! cargo run -q --example smoke_bench >/dev/null
//! ```

use harness as common;

use std::time::{Duration, Instant};

use cloudshop_deploy::config::{default_checks, Smoke};
use cloudshop_deploy::report::Report;
use cloudshop_deploy::steps::{smoke, watch};

fn cfg(base: &str) -> Smoke {
    Smoke {
        enabled: true,
        base_url: Some(url::Url::parse(base).expect("url")),
        test_url: None,
        checks: default_checks(),
        cors_origin: Some("http://site.example".into()),
        website_url: None,
        frontend_check: false,
        timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(2),
        retry_interval: Duration::from_millis(100),
        watch: Duration::ZERO,
        watch_interval: Duration::from_millis(100),
        watch_failures: 3,
        writes: Default::default(),
        test_sample: Default::default(),
    }
}

/// [`cfg`] with the README's CloudShop write sequence, compiled as the binary would.
fn writes_cfg(base: &str) -> Smoke {
    let yaml = format!(
        r#"
environments:
  stage:
    region: us-east-1
    cluster: stage-cluster
    service: stage-backend-blue
    ecr-repository: stage-cloudshop-backend
    api-url: {base}
    smoke:
      sequences:
        - name: product-crud
          steps:
            - {{ method: POST, path: /products, body: {{ name: "smoke-{{unique}}", price: 1.0 }}, status: 201, capture: {{ id: $.id }} }}
            - {{ path: "/products/{{id}}", body-contains: "smoke-{{unique}}" }}
            - {{ path: /products, json: {{ contains-names: ["smoke-{{unique}}"] }} }}
            - {{ method: DELETE, path: "/products/{{id}}", status: 204, cleanup: true }}
            - {{ path: "/products/{{id}}", status: 404 }}
"#
    );
    let file = cloudshop_deploy::config::parse_file("bench.yml", &yaml).expect("yaml");
    let inputs = cloudshop_deploy::inputs::Inputs::from_env([("INPUT_ENVIRONMENT", "stage")])
        .expect("inputs");
    let ctx = cloudshop_deploy::github::Context {
        sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
        ..Default::default()
    };
    let compiled = cloudshop_deploy::config::build(&inputs, &file, &ctx).expect("config");
    Smoke {
        writes: compiled.smoke.writes,
        ..cfg(base)
    }
}

fn p50_max(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[(v.len() - 1) / 2]), ms(v[v.len() - 1]))
}

fn peak_rss_kib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "n/a".into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let app = common::app::App::start_local().await;
    let base = app.base_url();

    // Passing runs: 3 concurrent checks each.
    let runs = 300;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut report = Report::default();
        let t = Instant::now();
        smoke::run(
            &cfg(&base),
            report.smoke.get_or_insert_with(Default::default),
            &mut report.phases,
        )
        .await
        .expect("passes");
        times.push(t.elapsed());
    }
    let (p50, max) = p50_max(times);
    eprintln!(
        "passing run (3 checks, loopback): p50 {p50:.2} ms, max {max:.2} ms over {runs} runs"
    );

    // The CloudShop write sequence (create, read back, list, delete, gone) after the 3 checks.
    let seq = writes_cfg(&base);
    let runs = 200;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut report = Report::default();
        let t = Instant::now();
        smoke::run(
            &seq,
            report.smoke.get_or_insert_with(Default::default),
            &mut report.phases,
        )
        .await
        .expect("the sequence passes");
        times.push(t.elapsed());
    }
    let (p50, max) = p50_max(times);
    eprintln!(
        "passing run with the 5-step write sequence (loopback): p50 {p50:.2} ms, max {max:.2} ms over {runs} runs; {} products left",
        app.products().len()
    );

    // Watch rounds: 3 checks + a probe every 100 ms for 3 s.
    let mut c = cfg(&base);
    c.watch = Duration::from_secs(3);
    let before = app.requests();
    let t = Instant::now();
    let mut report = Report::default();
    watch::run(
        &c,
        || async {
            Ok(watch::ServiceHealth {
                running: 2,
                desired: 2,
                new_stopped: Vec::new(),
            })
        },
        || async { Vec::new() },
        report.smoke.get_or_insert_with(Default::default),
        &mut report.phases,
    )
    .await
    .expect("quiet watch");
    let w = report
        .smoke
        .as_ref()
        .and_then(|s| s.watch.clone())
        .expect("watch");
    eprintln!(
        "watch: {} rounds ({} requests) in {:.2} s for a 3 s window; check p50/max {} / {} ms",
        w.rounds,
        app.requests() - before,
        t.elapsed().as_secs_f64(),
        w.checks[0].p50_ms,
        w.checks[0].max_ms
    );

    // A hung endpoint: budget 1 s, request timeout 500 ms -> the bound is 1.5 s.
    app.set_mode(common::app::Mode::Hang);
    let mut c = cfg(&base);
    c.timeout = Duration::from_secs(1);
    c.request_timeout = Duration::from_millis(500);
    let t = Instant::now();
    let mut report = Report::default();
    let _ = smoke::run(
        &c,
        report.smoke.get_or_insert_with(Default::default),
        &mut report.phases,
    )
    .await;
    let attempts: usize = report
        .smoke
        .as_ref()
        .map(|s| s.checks.iter().map(|c| c.attempts.len()).sum())
        .unwrap_or(0);
    eprintln!(
        "hung endpoint: budget 1 s + request timeout 0.5 s -> returned after {:.3} s ({attempts} attempts over 3 checks)",
        t.elapsed().as_secs_f64()
    );
    eprintln!("peak RSS: {}", peak_rss_kib());
}
