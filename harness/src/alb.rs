//! A loopback weighted "ALB" for progressive-delivery tests and benchmarks: a production listener and a
//! test listener (two ports) that forward each request to one of the app servers by the listener rules'
//! current weights, as an ALB's weighted `forward` action does. The weights come from a [`Route`]: the
//! ECS simulator's progressive service deployment ([`Alb::progressive`]: the test listener reaches only
//! the new revision from TEST_TRAFFIC_SHIFT on) or any function (a rolling service: the share of RUNNING
//! tasks per task definition).
//!
//! It counts requests and 5xx per target and listener ([`Alb::served`]), keeps every hit with its time
//! ([`Alb::hits`]), and, given a [`MetricSink`], writes the per-target-group datapoints CloudWatch gets
//! from an ALB into the CloudWatch simulator: namespace `AWS/ApplicationELB`, metrics `RequestCount`,
//! `HTTPCode_Target_2XX_Count` / `HTTPCode_Target_5XX_Count` (only when non-zero, as CloudWatch reports
//! them), `TargetResponseTime` (seconds), with the dimensions `LoadBalancer` (`app/stage-alb/...`) and
//! `TargetGroup` (`targetgroup/name/id`), at the wall-clock time of the request. As on AWS, a target
//! group's metrics include the test listener's requests. With no target weighted, it answers 503.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::cw_sim::MetricSink;
use crate::ecs_sim::{Progress, RuleWeights};
use crate::elb_sim::LOAD_BALANCER;

/// The weights of both listeners now: `(target key, weight)` each, keys as in [`Alb::start`].
pub type Route = Arc<dyn Fn() -> RuleWeights + Send + Sync>;

/// Requests one target took on one listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    pub requests: u64,
    /// Answers with a 5xx status (the app's, or 502 when the target did not answer).
    pub errors: u64,
}

/// One forwarded request.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub test: bool,
    pub target: String,
    pub status: u16,
}

#[derive(Default)]
struct Stats {
    served: BTreeMap<(bool, String), Served>,
    hits: Vec<Hit>,
}

struct Shared {
    route: Route,
    /// (key, base URL, target group ARN of its metrics).
    targets: Vec<(String, String, String)>,
    stats: Mutex<Stats>,
    cw: Option<MetricSink>,
    http: reqwest::Client,
}

/// The running ALB; stopped on drop.
pub struct Alb {
    /// `http://127.0.0.1:PORT` of the production listener.
    pub production_url: String,
    /// `http://127.0.0.1:PORT` of the test listener.
    pub test_url: String,
    shared: Arc<Shared>,
    _rts: (tokio::runtime::Runtime, tokio::runtime::Runtime),
}

/// `targetgroup/name/id` of a target group ARN, as CloudWatch's `TargetGroup` dimension spells it.
pub fn target_group_dimension(arn: &str) -> Option<&str> {
    arn.find(":targetgroup/").map(|i| &arn[i + 1..])
}

/// `app/name/id` of a load balancer ARN, as CloudWatch's `LoadBalancer` dimension spells it.
pub fn load_balancer_dimension(arn: &str) -> &str {
    arn.find(":loadbalancer/")
        .map(|i| &arn[i + ":loadbalancer/".len()..])
        .unwrap_or(arn)
}

fn pick(weights: &[(String, f64)]) -> Option<String> {
    let total: f64 = weights.iter().map(|(_, w)| w.max(0.0)).sum();
    if total <= 0.0 {
        return None;
    }
    let mut x = rand::random::<f64>() * total;
    for (k, w) in weights {
        let w = w.max(0.0);
        if x < w {
            return Some(k.clone());
        }
        x -= w;
    }
    weights
        .iter()
        .rev()
        .find(|(_, w)| *w > 0.0)
        .map(|(k, _)| k.clone())
}

async fn forward(
    shared: Arc<Shared>,
    test: bool,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let weights = (shared.route)();
    let key = pick(if test {
        &weights.test
    } else {
        &weights.production
    });
    let target = key.and_then(|k| shared.targets.iter().find(|(t, ..)| *t == k).cloned());
    let Some((key, base, group)) = target else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no healthy target").into_response();
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = shared
        .http
        .request(method, format!("{base}{path}"))
        .body(body);
    if let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) {
        req = req.header(axum::http::header::CONTENT_TYPE, ct.clone());
    }
    let started = Instant::now();
    let (status, ct, bytes) = match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let ct = r.headers().get(axum::http::header::CONTENT_TYPE).cloned();
            (status, ct, r.bytes().await.unwrap_or_default())
        }
        Err(_) => (502, None, Bytes::from_static(b"bad gateway")),
    };
    record(&shared, test, (&key, &group), status, started);
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        bytes,
    )
        .into_response();
    if let Some(ct) = ct {
        resp.headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, ct);
    }
    resp
}

fn record(shared: &Shared, test: bool, (key, group): (&str, &str), status: u16, started: Instant) {
    let elapsed = started.elapsed().as_secs_f64();
    {
        let mut st = shared.stats.lock().unwrap();
        let s = st.served.entry((test, key.to_string())).or_default();
        s.requests += 1;
        if status >= 500 {
            s.errors += 1;
        }
        st.hits.push(Hit {
            at: started,
            test,
            target: key.to_string(),
            status,
        });
    }
    let (Some(cw), Some(tg)) = (&shared.cw, target_group_dimension(group)) else {
        return;
    };
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let dims = [
        ("LoadBalancer", load_balancer_dimension(LOAD_BALANCER)),
        ("TargetGroup", tg),
    ];
    let ns = "AWS/ApplicationELB";
    cw.put(ns, "RequestCount", &dims, at, 1.0);
    cw.put(ns, "TargetResponseTime", &dims, at, elapsed);
    match status {
        500..=599 => cw.put(ns, "HTTPCode_Target_5XX_Count", &dims, at, 1.0),
        200..=299 => cw.put(ns, "HTTPCode_Target_2XX_Count", &dims, at, 1.0),
        _ => {}
    }
}

fn listener(shared: Arc<Shared>, test: bool) -> (u16, tokio::runtime::Runtime) {
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            forward(shared.clone(), test, method, uri, headers, body)
        },
    );
    crate::serve_on_own_thread(app)
}

impl Alb {
    /// Listeners over `targets` (`(key, base URL)`: a target group ARN, or any key `route` names),
    /// weighted by `route` at each request; per-target-group metrics into `cw` when given.
    pub fn start(route: Route, targets: Vec<(String, String)>, cw: Option<MetricSink>) -> Alb {
        let targets = targets
            .into_iter()
            .map(|(k, u)| (k.clone(), u, k))
            .collect();
        Alb::start_grouped(route, targets, cw)
    }

    /// Like [`Alb::start`], with the target group each target's metrics belong to: `(key, base URL,
    /// target group ARN)`, e.g. both revisions of a rolling service in its one target group.
    pub fn start_grouped(
        route: Route,
        targets: Vec<(String, String, String)>,
        cw: Option<MetricSink>,
    ) -> Alb {
        let shared = Arc::new(Shared {
            route,
            targets,
            stats: Mutex::new(Stats::default()),
            cw,
            http: reqwest::Client::new(),
        });
        let (prod_port, prod_rt) = listener(shared.clone(), false);
        let (test_port, test_rt) = listener(shared.clone(), true);
        Alb {
            production_url: format!("http://127.0.0.1:{prod_port}"),
            test_url: format!("http://127.0.0.1:{test_port}"),
            shared,
            _rts: (prod_rt, test_rt),
        }
    }

    /// Listeners weighted by the listener rules of the ECS simulator's progressive service;
    /// `targets` maps each target group ARN to the app serving it.
    pub fn progressive(
        progress: Progress,
        targets: Vec<(String, String)>,
        cw: Option<MetricSink>,
    ) -> Alb {
        Alb::start(Arc::new(move || progress.weights()), targets, cw)
    }

    /// What `target` served on the test (`true`) or production listener.
    pub fn served(&self, test: bool, target: &str) -> Served {
        self.shared
            .stats
            .lock()
            .unwrap()
            .served
            .get(&(test, target.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// Every forwarded request, in order.
    pub fn hits(&self) -> Vec<Hit> {
        self.shared.stats.lock().unwrap().hits.clone()
    }
}
