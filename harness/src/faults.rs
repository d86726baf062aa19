//! A fault-injecting, recording HTTP proxy on loopback, for moto, the ECS simulator and a registry.
//!
//! Every request is named by its operation (`ecs:DescribeServices`, `s3:PutObject`,
//! `registry:PUT manifest`), recorded, and then either forwarded to the upstream or answered with an
//! injected fault in the wire format the real service uses, so the real SDK client classifies it as AWS
//! would: a server error (500), throttling (JSON `ThrottlingException`, query `Throttling`, S3 `SlowDown`
//! 503, registry 429), a connection closed before any response, or a stall (no answer for a while, then
//! the connection is closed). Faults come at a rate (seeded, so a run can be repeated) and/or on the Nth
//! call of an operation. The record serves tests that prove a run made no mutating call, and the IAM
//! policy check (which operations each command calls).
//!
//! `Location` headers naming the upstream are rewritten to the proxy, so a registry's upload sessions stay
//! behind it too.
//!
//! With `routes`, one proxy fronts several upstreams (one ECS simulator per environment behind the one
//! ECS endpoint a run has): a request whose body names a route's needle (its cluster) goes to that
//! route's upstream, and a request that names none (`DescribeTaskDefinition` after `DescribeServices`)
//! to the upstream of the last routed one, as a run reads one environment at a time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use rand::{Rng, SeedableRng};

/// What the proxy does instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 500 with the service's internal-error body.
    ServerError,
    /// The service's throttling reply.
    Throttle,
    /// The connection is closed before any response.
    Reset,
    /// No answer for the plan's `stall` time, then the connection is closed.
    Stall,
    /// The service's access-denied reply: the role lacks the permission.
    Denied,
}

/// When and how to inject faults.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Probability per request (0.0 to 1.0) of a fault drawn from `kinds`.
    pub rate: f64,
    /// The faults drawn from at `rate` (uniformly).
    pub kinds: Vec<Fault>,
    /// Only operations starting with one of these (`ecs:`, `s3:PutObject`) get rate faults; empty = all.
    pub only: Vec<String>,
    /// `(operation, n, fault)`: the nth call (1-based) of that exact operation gets the fault.
    pub nth: Vec<(String, usize, Fault)>,
    /// `(operation, fault)`: every call of that exact operation gets the fault (an operation that keeps
    /// failing).
    pub always: Vec<(String, Fault)>,
    /// How long a stall lasts before the connection is closed.
    pub stall: Duration,
    /// Seed of the rate draws.
    pub seed: u64,
    /// At most this many rate faults in a row for one request target (operation and path; an upload
    /// session's id left out), 0 = no limit: a transient fault passes, as real ones do, and a run at a
    /// rate cannot fail by the luck of the draw. An operation that keeps failing is `always`.
    pub max_in_a_row: usize,
    /// Keep each response body in the record (to learn secrets the services handed out).
    pub record_bodies: bool,
    /// Page a registry's tag lists as the OCI distribution spec (and ECR) do: at most this many tags (or
    /// the request's smaller `n`) after `last`, and a `Link: <...>; rel="next"` header while more remain.
    /// Debian's docker-registry (2.8) answers every tag at once.
    pub tag_page: Option<usize>,
    /// `(from, to)`: replaced in every forwarded response body, e.g. to show a listing a key no
    /// emulator can store (moto refuses keys with a line break).
    pub rewrite: Vec<(String, String)>,
    /// `(needle, upstream)`: see the module's routing note.
    pub routes: Vec<(String, String)>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            rate: 0.0,
            kinds: vec![Fault::ServerError, Fault::Throttle, Fault::Reset],
            only: Vec::new(),
            nth: Vec::new(),
            always: Vec::new(),
            stall: Duration::from_secs(5),
            seed: 7,
            max_in_a_row: 0,
            record_bodies: false,
            tag_page: None,
            rewrite: Vec::new(),
            routes: Vec::new(),
        }
    }
}

impl FaultPlan {
    /// No faults: a recording proxy.
    pub fn none() -> Self {
        FaultPlan::default()
    }

    /// `rate` of every operation, drawn from server errors, throttling and resets.
    pub fn at_rate(rate: f64) -> Self {
        FaultPlan {
            rate,
            ..FaultPlan::default()
        }
    }
}

/// One request that reached the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `service:Operation`.
    pub op: String,
    pub method: String,
    pub path: String,
    /// The fault injected instead of forwarding, if any.
    pub fault: Option<Fault>,
    /// The upstream's status, when forwarded and answered.
    pub status: Option<u16>,
    /// The upstream's response body, when the plan records bodies.
    pub response: Option<Bytes>,
}

struct State {
    upstream: String,
    /// The upstream of the last routed request.
    routed: Mutex<Option<String>>,
    plan: FaultPlan,
    rng: Mutex<rand::rngs::StdRng>,
    counts: Mutex<BTreeMap<String, usize>>,
    /// Rate faults in a row per request target (see [`FaultPlan::max_in_a_row`]).
    streaks: Mutex<BTreeMap<String, usize>>,
    calls: Mutex<Vec<Call>>,
    client: reqwest::Client,
    origin: Mutex<String>,
}

/// The proxy; stops when dropped. It runs on a thread and runtime of its own, so it can be started and
/// dropped from sync and async tests alike.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Start a proxy for `upstream` (`http://127.0.0.1:PORT`) on a free loopback port.
    pub fn start(upstream: &str, plan: FaultPlan) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let endpoint = format!("http://{addr}");
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            routed: Mutex::new(None),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(plan.seed)),
            plan,
            counts: Mutex::default(),
            streaks: Mutex::default(),
            calls: Mutex::default(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            origin: Mutex::new(endpoint.clone()),
        });
        let st = state.clone();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let sock = tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => match accepted {
                            Ok((sock, _)) => sock,
                            Err(_) => break,
                        },
                    };
                    let st = st.clone();
                    tokio::spawn(async move {
                        let io = hyper_util::rt::TokioIo::new(sock);
                        let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                        // A service error (an injected reset) closes the connection without a response.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await;
                    });
                }
            });
            rt.shutdown_background();
        });
        FaultProxy {
            endpoint,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    /// The operations of the calls so far, in arrival order.
    pub fn ops(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.op).collect()
    }

    /// The calls that could have changed something (whether or not a fault stopped them).
    pub fn mutating_calls(&self) -> Vec<String> {
        self.ops()
            .into_iter()
            .filter(|op| is_mutating(op))
            .collect()
    }

    /// How many faults were injected.
    pub fn faults(&self) -> usize {
        self.calls().iter().filter(|c| c.fault.is_some()).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

/// The upstream of a request (see the module's routing note).
fn route(st: &State, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut last = st.routed.lock().unwrap();
    if let Some((_, to)) = st
        .plan
        .routes
        .iter()
        .find(|(n, _)| text.contains(n.as_str()))
    {
        *last = Some(to.trim_end_matches('/').to_string());
    }
    last.clone().unwrap_or_else(|| st.upstream.clone())
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Dropped),
    };
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let op = operation(parts.method.as_str(), &path, &query, &parts.headers, &body);
    let fault = choose(&st, &op, &path);
    let mut call = Call {
        op: op.clone(),
        method: parts.method.to_string(),
        path: path.clone(),
        fault,
        status: None,
        response: None,
    };
    match fault {
        Some(Fault::Reset) => {
            st.calls.lock().unwrap().push(call);
            return Err(Dropped);
        }
        Some(Fault::Stall) => {
            st.calls.lock().unwrap().push(call);
            tokio::time::sleep(st.plan.stall).await;
            return Err(Dropped);
        }
        Some(f) => {
            st.calls.lock().unwrap().push(call);
            return Ok(fault_response(f, &op, &parts.headers));
        }
        None => {}
    }
    let upstream = route(&st, &body);
    let url = match parts.uri.path_and_query() {
        Some(pq) => format!("{upstream}{pq}"),
        None => upstream,
    };
    let mut fwd = st.client.request(parts.method.clone(), &url);
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) {
            fwd = fwd.header(name, value);
        }
    }
    let resp = match fwd.body(body).send().await {
        Ok(r) => r,
        Err(_) => {
            st.calls.lock().unwrap().push(call);
            return Err(Dropped);
        }
    };
    let status = resp.status();
    call.status = Some(status.as_u16());
    let mut out = Response::builder().status(status);
    let origin = st.origin.lock().unwrap().clone();
    let rewriting = !st.plan.rewrite.is_empty();
    let paged = st
        .plan
        .tag_page
        .filter(|_| op == "registry:GET tags" && status.is_success());
    for (name, value) in resp.headers() {
        match name.as_str() {
            "connection" | "transfer-encoding" => {}
            // A rewritten or paged body has a length of its own.
            "content-length" if rewriting || paged.is_some() => {}
            "link" if paged.is_some() => {}
            "location" => {
                let v = value.to_str().unwrap_or("").replace(&st.upstream, &origin);
                out = out.header(name, v);
            }
            _ => out = out.header(name, value),
        }
    }
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(_) => {
            st.calls.lock().unwrap().push(call);
            return Err(Dropped);
        }
    };
    let bytes = match std::str::from_utf8(&bytes) {
        Ok(text)
            if rewriting
                && st
                    .plan
                    .rewrite
                    .iter()
                    .any(|(f, _)| text.contains(f.as_str())) =>
        {
            let mut text = text.to_string();
            for (from, to) in &st.plan.rewrite {
                text = text.replace(from.as_str(), to);
            }
            Bytes::from(text)
        }
        _ => bytes,
    };
    let bytes = match paged {
        Some(page) => {
            let (body, next) = tag_page(&bytes, &path, &query, page);
            if let Some(next) = next {
                out = out.header("link", format!("<{next}>; rel=\"next\""));
            }
            body
        }
        None => bytes,
    };
    if st.plan.record_bodies {
        call.response = Some(bytes.clone());
    }
    st.calls.lock().unwrap().push(call);
    out.body(Full::new(bytes)).map_err(|_| Dropped)
}

/// One page of a full tag list (`{"name", "tags"}`): the tags after the query's `last`, at most `n`
/// (bounded by `page`), and the next page's relative URL while more remain.
fn tag_page(full: &Bytes, path: &str, query: &str, page: usize) -> (Bytes, Option<String>) {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(full) else {
        return (full.clone(), None);
    };
    let q: BTreeMap<String, String> = reqwest::Url::parse(&format!("http://x/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let n = q
        .get("n")
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(page, |n| n.min(page))
        .max(1);
    let mut tags: Vec<String> = v["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .filter(|t| q.get("last").is_none_or(|last| t > last))
        .collect();
    tags.sort();
    let more = tags.len() > n;
    tags.truncate(n);
    let next = match tags.last() {
        Some(last) if more => Some(format!("{path}?n={n}&last={last}")),
        _ => None,
    };
    v["tags"] = serde_json::json!(tags);
    (Bytes::from(v.to_string()), next)
}

fn choose(st: &State, op: &str, path: &str) -> Option<Fault> {
    let n = {
        let mut counts = st.counts.lock().unwrap();
        let c = counts.entry(op.to_string()).or_default();
        *c += 1;
        *c
    };
    if let Some((_, f)) = st.plan.always.iter().find(|(o, _)| o == op) {
        return Some(*f);
    }
    if let Some((_, _, f)) = st.plan.nth.iter().find(|(o, k, _)| o == op && *k == n) {
        return Some(*f);
    }
    let eligible =
        st.plan.only.is_empty() || st.plan.only.iter().any(|p| op.starts_with(p.as_str()));
    if !eligible || st.plan.rate <= 0.0 || st.plan.kinds.is_empty() {
        return None;
    }
    let target = match path.find("/blobs/uploads/") {
        Some(i) => format!("{op} {}", &path[..i]),
        None => format!("{op} {path}"),
    };
    let mut streaks = st.streaks.lock().unwrap();
    let streak = streaks.entry(target).or_default();
    let mut rng = st.rng.lock().unwrap();
    let limited = st.plan.max_in_a_row > 0 && *streak >= st.plan.max_in_a_row;
    if !limited && rng.random_bool(st.plan.rate.min(1.0)) {
        *streak += 1;
        let i = rng.random_range(0..st.plan.kinds.len());
        Some(st.plan.kinds[i])
    } else {
        *streak = 0;
        None
    }
}

/// The wire protocol of a request, which decides the shape of an injected error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Json,
    Query,
    RestXml,
    Registry,
}

fn protocol(op: &str) -> Protocol {
    let service = op.split(':').next().unwrap_or("");
    match service {
        "ecs" | "ecr" | "logs" | "cloudwatch" => Protocol::Json,
        "sts" | "elasticloadbalancing" | "query" => Protocol::Query,
        "registry" => Protocol::Registry,
        _ => Protocol::RestXml,
    }
}

/// The access-denied reply of the service `op` belongs to, in its wire format.
fn denied_response(op: &str, cbor: bool) -> Response<Full<Bytes>> {
    let action = op.to_string();
    let message = format!("User is not authorized to perform: {action} (injected)");
    let (content_type, body): (&str, Vec<u8>) = if cbor {
        ("application/cbor", crate::cw_sim::denied_body())
    } else {
        match protocol(op) {
            Protocol::Json => (
                "application/x-amz-json-1.1",
                format!(r#"{{"__type":"AccessDeniedException","message":"{message}"}}"#).into(),
            ),
            Protocol::Query => (
                "text/xml",
                format!("<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>").into(),
            ),
            Protocol::Registry => (
                "application/json",
                r#"{"errors":[{"code":"DENIED","message":"injected"}]}"#.into(),
            ),
            Protocol::RestXml => (
                "application/xml",
                format!("<Error><Code>AccessDenied</Code><Message>{message}</Message><RequestId>injected</RequestId></Error>").into(),
            ),
        }
    };
    let mut r = Response::builder()
        .status(if cbor || protocol(op) != Protocol::Json {
            403
        } else {
            400
        })
        .header("content-type", content_type)
        .header("x-amzn-requestid", "injected");
    if cbor {
        r = r
            .header("smithy-protocol", "rpc-v2-cbor")
            .header("x-amzn-query-error", "AccessDenied;Sender");
    }
    r.body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn fault_response(f: Fault, op: &str, headers: &hyper::HeaderMap) -> Response<Full<Bytes>> {
    let cbor = headers
        .get("smithy-protocol")
        .is_some_and(|v| v.as_bytes() == b"rpc-v2-cbor");
    if f == Fault::Denied {
        return denied_response(op, cbor);
    }
    let (status, content_type, body): (u16, &str, String) = match (protocol(op), f) {
        // An rpcv2-cbor error body would need CBOR; a bare 500/503 is retried the same way.
        _ if cbor => (
            if f == Fault::Throttle { 503 } else { 500 },
            "application/cbor",
            String::new(),
        ),
        (Protocol::Json, Fault::Throttle) => (
            400,
            "application/x-amz-json-1.1",
            r#"{"__type":"ThrottlingException","message":"Rate exceeded (injected)"}"#.into(),
        ),
        (Protocol::Json, _) => (
            500,
            "application/x-amz-json-1.1",
            r#"{"__type":"ServerException","message":"injected server error"}"#.into(),
        ),
        (Protocol::Query, Fault::Throttle) => (
            400,
            "text/xml",
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded \
             (injected)</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
                .into(),
        ),
        (Protocol::Query, _) => (
            500,
            "text/xml",
            "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>injected \
             server error</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
                .into(),
        ),
        (Protocol::RestXml, Fault::Throttle) => (
            503,
            "application/xml",
            "<Error><Code>SlowDown</Code><Message>Please reduce your request rate. \
             (injected)</Message><RequestId>injected</RequestId></Error>"
                .into(),
        ),
        (Protocol::RestXml, _) => (
            500,
            "application/xml",
            "<Error><Code>InternalError</Code><Message>We encountered an internal error. \
             (injected)</Message><RequestId>injected</RequestId></Error>"
                .into(),
        ),
        (Protocol::Registry, Fault::Throttle) => (
            429,
            "application/json",
            r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"injected"}]}"#.into(),
        ),
        (Protocol::Registry, _) => (
            500,
            "application/json",
            r#"{"errors":[{"code":"UNKNOWN","message":"injected server error"}]}"#.into(),
        ),
    };
    // HEAD replies carry no body; S3's SDK then classifies by status alone.
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-requestid", "injected")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Name a request by its operation: `ecs:DescribeServices` (JSON protocols, by `X-Amz-Target`),
/// `cloudwatch:GetMetricData` (rpcv2 paths), `sts:AssumeRoleWithWebIdentity` (query protocol, by
/// `Action`), `s3:PutObject` (REST, by method, path and query), `cloudfront:CreateInvalidation`,
/// `registry:PUT manifest` (OCI distribution API).
pub fn operation(
    method: &str,
    path: &str,
    query: &str,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let (prefix, op) = target.split_once('.').unwrap_or(("", target));
        let service = match prefix {
            "AmazonEC2ContainerServiceV20141113" => "ecs",
            "AmazonEC2ContainerRegistry_V20150921" => "ecr",
            "Logs_20140328" => "logs",
            "GraniteServiceVersion20100801" => "cloudwatch",
            other => other,
        };
        return format!("{service}:{op}");
    }
    if let Some(rest) = path.strip_prefix("/service/") {
        // rpcv2: /service/<ServiceShape>/operation/<Op>
        let mut parts = rest.split('/');
        let svc = parts.next().unwrap_or("");
        let op = parts.nth(1).unwrap_or("");
        let service = if svc.starts_with("GraniteService") {
            "cloudwatch"
        } else {
            svc
        };
        return format!("{service}:{op}");
    }
    if path.starts_with("/v2/") || path == "/v2" {
        let kind = if path.contains("/manifests/") {
            "manifest"
        } else if path.contains("/blobs/uploads") {
            "upload"
        } else if path.contains("/blobs/") {
            "blob"
        } else if path.ends_with("/tags/list") {
            "tags"
        } else {
            "base"
        };
        return format!("registry:{method} {kind}");
    }
    let form = if query.contains("Action=") {
        query.to_string()
    } else {
        String::from_utf8_lossy(body).to_string()
    };
    if let Some(action) = form
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .filter(|a| !a.is_empty())
    {
        let service = signing_service(headers).unwrap_or(match action {
            "AssumeRoleWithWebIdentity" | "GetCallerIdentity" | "AssumeRole" => "sts",
            a if a.contains("Target") || a.contains("LoadBalancer") || a.contains("Listener") => {
                "elasticloadbalancing"
            }
            _ => "query",
        });
        return format!("{service}:{action}");
    }
    if path.starts_with("/2020-05-31/") {
        let op = match method {
            "POST" if path.ends_with("/invalidation") => "CreateInvalidation",
            "GET" if path.contains("/invalidation/") => "GetInvalidation",
            "GET" => "GetDistribution",
            _ => "Unknown",
        };
        return format!("cloudfront:{op}");
    }
    format!("s3:{}", s3_operation(method, path, query, headers))
}

fn signing_service(headers: &hyper::HeaderMap) -> Option<&'static str> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
    let service = scope.split('/').nth(3)?;
    Some(match service {
        "sts" => "sts",
        "elasticloadbalancing" => "elasticloadbalancing",
        "monitoring" => "cloudwatch",
        "logs" => "logs",
        _ => "query",
    })
}

fn s3_operation(method: &str, path: &str, query: &str, headers: &hyper::HeaderMap) -> &'static str {
    let has = |k: &str| {
        query
            .split('&')
            .any(|kv| kv == k || kv.starts_with(&format!("{k}=")))
    };
    // Path style: /bucket or /bucket/key...
    let trimmed = path.trim_start_matches('/');
    let object =
        trimmed.contains('/') && !trimmed.ends_with('/') || trimmed.matches('/').count() > 1;
    match (method, object) {
        ("GET", false) if has("list-type") => "ListObjectsV2",
        ("GET", false) if has("location") => "GetBucketLocation",
        ("GET", false) if has("website") => "GetBucketWebsite",
        ("GET", false) => "ListObjects",
        ("HEAD", false) => "HeadBucket",
        ("POST", false) if has("delete") => "DeleteObjects",
        ("PUT", false) => "CreateBucket",
        ("DELETE", false) => "DeleteBucket",
        ("PUT", true) if has("partNumber") => "UploadPart",
        ("PUT", true) if headers.contains_key("x-amz-copy-source") => "CopyObject",
        ("PUT", true) => "PutObject",
        ("POST", true) if has("uploads") => "CreateMultipartUpload",
        ("POST", true) if has("uploadId") => "CompleteMultipartUpload",
        ("DELETE", true) if has("uploadId") => "AbortMultipartUpload",
        ("DELETE", true) => "DeleteObject",
        ("HEAD", true) => "HeadObject",
        ("GET", true) => "GetObject",
        _ => "Unknown",
    }
}

/// Could this operation change something? Reads are `Describe*`, `Get*`, `List*`, `Head*`,
/// `BatchGet*`, `BatchCheck*`, `Filter*` and registry `GET`/`HEAD`.
pub fn is_mutating(op: &str) -> bool {
    let (service, name) = op.split_once(':').unwrap_or(("", op));
    if service == "registry" {
        return !(name.starts_with("GET") || name.starts_with("HEAD"));
    }
    if service == "sts" {
        return false;
    }
    ![
        "Describe",
        "Get",
        "List",
        "Head",
        "BatchGet",
        "BatchCheck",
        "Filter",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// The IAM action that authorises a recorded operation: the AWS APIs as themselves (S3's REST names
/// mapped to their actions), and the registry's HTTP traffic as the ECR actions that authorise it on a real
/// ECR registry; `None` for the registry's base check (the token itself, `ecr:GetAuthorizationToken`).
pub fn iam_action(op: &str) -> Option<String> {
    let action = match op {
        "registry:GET base" => return None,
        "registry:GET manifest" | "registry:HEAD manifest" => "ecr:BatchGetImage",
        "registry:HEAD blob" => "ecr:BatchCheckLayerAvailability",
        "registry:GET blob" => "ecr:GetDownloadUrlForLayer",
        "registry:POST upload" => "ecr:InitiateLayerUpload",
        "registry:PATCH upload" => "ecr:UploadLayerPart",
        "registry:PUT upload" => "ecr:CompleteLayerUpload",
        "registry:PUT manifest" => "ecr:PutImage",
        "registry:GET tags" => "ecr:ListImages",
        "s3:ListObjectsV2" | "s3:ListObjects" | "s3:HeadBucket" => "s3:ListBucket",
        "s3:HeadObject" => "s3:GetObject",
        // `CopyObject` is authorised by `s3:GetObject` on the source and `s3:PutObject` on the target.
        "s3:CreateMultipartUpload"
        | "s3:UploadPart"
        | "s3:CompleteMultipartUpload"
        | "s3:CopyObject" => "s3:PutObject",
        "s3:DeleteObjects" => "s3:DeleteObject",
        other => other,
    };
    Some(action.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> hyper::HeaderMap {
        let mut m = hyper::HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn operations_are_named_like_iam_actions() {
        let none = h(&[]);
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            hyper::HeaderMap,
            &'a [u8],
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                "POST",
                "/",
                "",
                h(&[(
                    "x-amz-target",
                    "AmazonEC2ContainerServiceV20141113.UpdateService",
                )]),
                b"{}",
                "ecs:UpdateService",
            ),
            (
                "POST",
                "/",
                "",
                h(&[(
                    "x-amz-target",
                    "AmazonEC2ContainerRegistry_V20150921.PutImage",
                )]),
                b"{}",
                "ecr:PutImage",
            ),
            (
                "POST",
                "/",
                "",
                none.clone(),
                b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15",
                "sts:AssumeRoleWithWebIdentity",
            ),
            (
                "GET",
                "/bucket",
                "list-type=2&prefix=",
                none.clone(),
                b"",
                "s3:ListObjectsV2",
            ),
            (
                "PUT",
                "/bucket/assets/a.js",
                "",
                none.clone(),
                b"x",
                "s3:PutObject",
            ),
            (
                "HEAD",
                "/bucket/index.html",
                "",
                none.clone(),
                b"",
                "s3:HeadObject",
            ),
            (
                "POST",
                "/bucket",
                "delete",
                none.clone(),
                b"<Delete/>",
                "s3:DeleteObjects",
            ),
            (
                "POST",
                "/bucket/big.bin",
                "uploads",
                none.clone(),
                b"",
                "s3:CreateMultipartUpload",
            ),
            (
                "PUT",
                "/bucket/big.bin",
                "partNumber=1&uploadId=u",
                none.clone(),
                b"",
                "s3:UploadPart",
            ),
            (
                "POST",
                "/2020-05-31/distribution/E1/invalidation",
                "",
                none.clone(),
                b"",
                "cloudfront:CreateInvalidation",
            ),
            (
                "PUT",
                "/v2/app/manifests/v1",
                "",
                none.clone(),
                b"",
                "registry:PUT manifest",
            ),
            (
                "HEAD",
                "/v2/app/blobs/sha256:ab",
                "",
                none.clone(),
                b"",
                "registry:HEAD blob",
            ),
            (
                "POST",
                "/v2/app/blobs/uploads/",
                "",
                none.clone(),
                b"",
                "registry:POST upload",
            ),
        ];
        for (method, path, query, headers, body, want) in cases {
            assert_eq!(
                operation(method, path, query, &headers, body),
                want,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn reads_are_not_mutating() {
        for op in [
            "ecs:DescribeServices",
            "ecr:BatchGetImage",
            "ecr:BatchCheckLayerAvailability",
            "s3:ListObjectsV2",
            "s3:HeadObject",
            "sts:AssumeRoleWithWebIdentity",
            "registry:GET manifest",
            "registry:HEAD blob",
            "logs:FilterLogEvents",
        ] {
            assert!(!is_mutating(op), "{op}");
        }
        for op in [
            "ecs:UpdateService",
            "ecs:RegisterTaskDefinition",
            "ecr:PutImage",
            "s3:PutObject",
            "s3:DeleteObjects",
            "cloudfront:CreateInvalidation",
            "registry:PUT manifest",
            "registry:POST upload",
        ] {
            assert!(is_mutating(op), "{op}");
        }
    }
}
