//! A loopback CloudWatch metrics simulator speaking the protocol the Rust SDK speaks (Smithy RPC v2
//! CBOR: `POST /service/GraniteServiceVersion20100801/operation/<Op>`), because moto serves CloudWatch
//! only in the query protocol and computes no percentiles. It keeps the datapoints `PutMetricData`
//! sends and answers `GetMetricData` with `Sum`, `SampleCount`, `Average`, `Minimum`, `Maximum` and
//! `pNN` over the raw values of each period, as CloudWatch does for one window.
//!
//! Public API: [`CwSim::start`] -> `endpoint` (`AWS_ENDPOINT_URL_CLOUDWATCH`), [`CwSim::client`] to seed
//! it with the real SDK's `PutMetricData`, [`CwSim::sink`] to store datapoints directly (the loopback
//! ALB's per-target-group metrics), [`CwSim::calls`]. `GetMetricData` matches a metric's dimensions
//! exactly, as CloudWatch does: a query by `LoadBalancer` alone never sees the per-`TargetGroup` series.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use ciborium::Value;

/// One stored value.
#[derive(Debug, Clone)]
struct Point {
    namespace: String,
    name: String,
    /// Sorted `(name, value)`.
    dims: Vec<(String, String)>,
    /// Epoch seconds.
    at: f64,
    value: f64,
}

/// The simulator; stops when dropped.
pub struct CwSim {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    points: Arc<Mutex<Vec<Point>>>,
    calls: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

fn text(v: &Value, key: &str) -> String {
    get(v, key)
        .and_then(Value::as_text)
        .unwrap_or_default()
        .to_string()
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(*f),
        Value::Integer(i) => Some(i128::from(*i) as f64),
        Value::Tag(_, inner) => number(inner),
        _ => None,
    }
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    get(v, key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn dims(v: &Value) -> Vec<(String, String)> {
    let mut d: Vec<(String, String)> = list(v, "Dimensions")
        .iter()
        .map(|d| (text(d, "Name"), text(d, "Value")))
        .collect();
    d.sort();
    d
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Text(k.to_string()), v))
            .collect(),
    )
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("encode cbor");
    out
}

/// `stat` of `values` (sorted); `None` for an unknown statistic or no value.
pub fn statistic(stat: &str, values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    Some(match stat {
        "Sum" => values.iter().sum(),
        "SampleCount" => n,
        "Average" => values.iter().sum::<f64>() / n,
        "Minimum" => values[0],
        "Maximum" => values[values.len() - 1],
        p if p.starts_with('p') => {
            let q: f64 = p[1..].parse().ok()?;
            // Nearest rank.
            let rank = ((q / 100.0) * n).ceil().max(1.0) as usize;
            values[rank.min(values.len()) - 1]
        }
        _ => return None,
    })
}

fn put(points: &Mutex<Vec<Point>>, body: &Value) {
    let namespace = text(body, "Namespace");
    let mut pts = points.lock().unwrap();
    for m in list(body, "MetricData") {
        let at = get(m, "Timestamp").and_then(number).unwrap_or(0.0);
        let mut push = |value: f64| {
            pts.push(Point {
                namespace: namespace.clone(),
                name: text(m, "MetricName"),
                dims: dims(m),
                at,
                value,
            })
        };
        let values = list(m, "Values");
        if values.is_empty() {
            push(get(m, "Value").and_then(number).unwrap_or(0.0));
        } else {
            let counts = list(m, "Counts");
            for (i, v) in values.iter().enumerate() {
                let times = counts.get(i).and_then(number).unwrap_or(1.0) as usize;
                for _ in 0..times {
                    push(number(v).unwrap_or(0.0));
                }
            }
        }
    }
}

fn get_metric_data(points: &Mutex<Vec<Point>>, body: &Value) -> Value {
    let start = get(body, "StartTime").and_then(number).unwrap_or(0.0);
    let end = get(body, "EndTime").and_then(number).unwrap_or(0.0);
    let pts = points.lock().unwrap();
    let mut results = Vec::new();
    for q in list(body, "MetricDataQueries") {
        let Some(ms) = get(q, "MetricStat") else {
            continue;
        };
        let metric = get(ms, "Metric").cloned().unwrap_or(Value::Null);
        let period = get(ms, "Period").and_then(number).unwrap_or(60.0).max(1.0);
        let stat = text(ms, "Stat");
        let (ns, name, want) = (
            text(&metric, "Namespace"),
            text(&metric, "MetricName"),
            dims(&metric),
        );
        let mut stamps = Vec::new();
        let mut values = Vec::new();
        let mut t = start;
        while t < end {
            let mut vs: Vec<f64> = pts
                .iter()
                .filter(|p| {
                    p.namespace == ns
                        && p.name == name
                        && p.dims == want
                        && p.at >= t
                        && p.at < (t + period).min(end)
                })
                .map(|p| p.value)
                .collect();
            if let Some(v) = statistic(&stat, &mut vs) {
                stamps.push(Value::Tag(1, Box::new(Value::Float(t))));
                values.push(Value::Float(v));
            }
            t += period;
        }
        results.push(map(vec![
            ("Id", Value::Text(text(q, "Id"))),
            ("Label", Value::Text(name.clone())),
            ("Timestamps", Value::Array(stamps)),
            ("Values", Value::Array(values)),
            ("StatusCode", Value::Text("Complete".into())),
        ]));
    }
    map(vec![("MetricDataResults", Value::Array(results))])
}

/// Stores datapoints into a [`CwSim`] without a request (cheap enough for one per proxied request).
#[derive(Clone)]
pub struct MetricSink(Arc<Mutex<Vec<Point>>>);

impl MetricSink {
    /// One value of `namespace`/`name` with `dims` at `at` (epoch seconds).
    pub fn put(&self, namespace: &str, name: &str, dims: &[(&str, &str)], at: f64, value: f64) {
        let mut d: Vec<(String, String)> = dims
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        d.sort();
        self.0.lock().unwrap().push(Point {
            namespace: namespace.into(),
            name: name.into(),
            dims: d,
            at,
            value,
        });
    }
}

impl CwSim {
    /// A handle that stores datapoints directly.
    pub fn sink(&self) -> MetricSink {
        MetricSink(self.points.clone())
    }

    pub fn start() -> CwSim {
        let points: Arc<Mutex<Vec<Point>>> = Arc::default();
        let calls: Arc<Mutex<Vec<String>>> = Arc::default();
        let (p, c) = (points.clone(), calls.clone());
        let app = Router::new().route(
            "/service/{svc}/operation/{op}",
            post(
                move |Path((_svc, op)): Path<(String, String)>, body: Bytes| {
                    let (p, c) = (p.clone(), c.clone());
                    async move {
                        c.lock().unwrap().push(op.clone());
                        let req: Value = ciborium::from_reader(&body[..]).unwrap_or(Value::Null);
                        let (status, reply) = match op.as_str() {
                            "PutMetricData" => {
                                put(&p, &req);
                                (StatusCode::OK, map(vec![]))
                            }
                            "GetMetricData" => (StatusCode::OK, get_metric_data(&p, &req)),
                            other => (
                                StatusCode::BAD_REQUEST,
                                map(vec![
                                    ("__type", Value::Text("InvalidAction".into())),
                                    ("message", Value::Text(format!("{other} is not simulated"))),
                                ]),
                            ),
                        };
                        (
                            status,
                            [
                                ("content-type", "application/cbor"),
                                ("smithy-protocol", "rpc-v2-cbor"),
                            ],
                            encode(&reply),
                        )
                    }
                },
            ),
        );
        let (port, rt) = crate::serve_on_own_thread(app);
        CwSim {
            endpoint: format!("http://127.0.0.1:{port}"),
            points,
            calls,
            _rt: rt,
        }
    }

    /// A CloudWatch client for this simulator (static test credentials), to seed it.
    pub async fn client(&self) -> aws_sdk_cloudwatch::Client {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_types::region::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .http_client(cloudshop_deploy::aws::http_client())
            .load()
            .await;
        aws_sdk_cloudwatch::Client::new(&sdk)
    }

    /// The operations called, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// How many values are stored.
    pub fn stored(&self) -> usize {
        self.points.lock().unwrap().len()
    }
}

/// A CBOR error body for a denied call, as CloudWatch (a query-compatible service) sends it: the code in
/// `__type` and in `x-amzn-query-error`.
pub fn denied_body() -> Vec<u8> {
    encode(&map(vec![
        (
            "__type",
            Value::Text("com.amazonaws.cloudwatch#AccessDenied".into()),
        ),
        (
            "message",
            Value::Text("User is not authorized to perform: cloudwatch:GetMetricData".into()),
        ),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_over_raw_values() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(statistic("Sum", &mut v), Some(15.0));
        assert_eq!(statistic("SampleCount", &mut v), Some(5.0));
        assert_eq!(statistic("Average", &mut v), Some(3.0));
        assert_eq!(statistic("p50", &mut v), Some(3.0));
        assert_eq!(statistic("p95", &mut v), Some(5.0));
        let mut many: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(statistic("p95", &mut many), Some(95.0));
        assert_eq!(statistic("Sum", &mut []), None);
        assert_eq!(statistic("tm99", &mut v), None);
    }
}
