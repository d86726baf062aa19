//! One HTTP check: compiled from its spec (URL, method, headers, expectations), tried once (an attempt)
//! and judged, or retried with backoff until it passes or the budget is spent.
//!
//! Secrets: a URL's userinfo is never part of a displayed URL (reqwest turns it into basic auth), and
//! the [`Redactor`] blanks configured header values and URL credentials out of every text kept.
//!
//! APIs: plain HTTP(S) to the app (reqwest).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::redact::{display_url, Redactor};
pub use super::redirect::{redirect_policy, MAX_REDIRECTS};
use super::result::{Attempt, CheckResult};
use super::schedule;
use crate::config::{CheckSpec, JsonExpect};
use crate::report::section::error_chain;

/// The most of a body read per attempt: enough for any health or products reply, bounded for a
/// misbehaving endpoint.
const BODY_LIMIT: usize = 1 << 20;

/// Longest body excerpt kept in a result.
const EXCERPT: usize = 100;

/// What kind of judgement a check gets beyond its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An API check from the config.
    Api,
    /// The CORS preflight: `Access-Control-Allow-Origin` must be this origin or `*`.
    Cors(String),
    /// The website: 200 with an HTML content type.
    Website,
}

/// A check ready to run.
#[derive(Debug, Clone)]
pub struct Check {
    /// Display name.
    pub name: String,
    pub method: Method,
    /// The URL requested (may carry userinfo: reqwest sends it as basic auth).
    pub url: Url,
    /// The URL as printed.
    pub display_url: String,
    /// Request headers, values marked sensitive.
    pub headers: HeaderMap,
    /// Accepted statuses (empty: any 2xx).
    pub statuses: Vec<u16>,
    pub json: Option<JsonExpect>,
    /// Text the body must contain.
    pub body_contains: Option<String>,
    /// Response headers that must contain a text.
    pub expect_headers: Vec<(HeaderName, String)>,
    /// Attempts slower than this fail.
    pub max_latency: Option<Duration>,
    /// A JSON body, sent with `Content-Type: application/json` (write-sequence steps).
    pub body: Option<Vec<u8>>,
    /// Special judgement.
    pub kind: Kind,
    /// The expectation, in words.
    pub expected: String,
}

/// `base` + `path`, keeping a path prefix of the base (`https://host/api` + `/health`).
pub fn join(base: &Url, path: &str) -> Result<Url, url::ParseError> {
    let mut b = base.clone();
    b.set_query(None);
    b.set_fragment(None);
    let s = format!("{}{}", b.as_str().trim_end_matches('/'), path);
    Url::parse(&s)
}

impl Check {
    /// A configured check (compiled by the config) against the base URL. `Err` carries a message that
    /// names no secret.
    pub fn api(base: &Url, spec: &CheckSpec) -> Result<Check, String> {
        let method = spec.method.clone();
        let url = join(base, &spec.path).map_err(|e| format!("bad path `{}`: {e}", spec.path))?;
        let statuses = spec
            .status
            .as_ref()
            .map(|s| s.to_vec())
            .unwrap_or_else(|| vec![200]);
        let name = spec
            .name
            .clone()
            .unwrap_or_else(|| format!("{} {}", method, spec.path));
        let mut check = Check {
            name,
            display_url: display_url(&url),
            method,
            url,
            headers: spec.headers.clone(),
            statuses,
            json: spec.json.clone(),
            body_contains: spec.body_contains.clone(),
            expect_headers: spec.expect_headers.clone(),
            max_latency: spec.max_latency,
            body: None,
            kind: Kind::Api,
            expected: String::new(),
        };
        check.expected = check.describe_expectation();
        Ok(check)
    }

    /// The CORS preflight a browser on `origin` sends before `GET {path}`.
    pub fn cors(base: &Url, path: &str, origin: &str) -> Result<Check, String> {
        let url = join(base, path).map_err(|e| format!("bad path `{path}`: {e}"))?;
        let mut headers = HeaderMap::new();
        let origin_value = HeaderValue::from_str(origin)
            .map_err(|_| format!("`{origin}` is not a valid origin"))?;
        headers.insert(reqwest::header::ORIGIN, origin_value);
        headers.insert(
            reqwest::header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("GET"),
        );
        let mut check = Check {
            name: "cors".into(),
            method: Method::OPTIONS,
            display_url: display_url(&url),
            url,
            headers,
            statuses: Vec::new(),
            json: None,
            body_contains: None,
            expect_headers: Vec::new(),
            max_latency: None,
            body: None,
            kind: Kind::Cors(origin.to_string()),
            expected: String::new(),
        };
        check.expected = check.describe_expectation();
        Ok(check)
    }

    /// The website after the frontend sync: 200 and HTML.
    pub fn website(url: &Url) -> Check {
        let mut check = Check {
            name: "website".into(),
            method: Method::GET,
            display_url: display_url(url),
            url: url.clone(),
            headers: HeaderMap::new(),
            statuses: vec![200],
            json: None,
            body_contains: None,
            expect_headers: Vec::new(),
            max_latency: None,
            body: None,
            kind: Kind::Website,
            expected: String::new(),
        };
        check.expected = check.describe_expectation();
        check
    }

    /// The result of this check from its attempts: the last one decides.
    pub fn result(&self, attempts: Vec<Attempt>) -> CheckResult {
        let last = attempts.last();
        CheckResult {
            name: self.name.clone(),
            method: self.method.to_string(),
            url: self.display_url.clone(),
            expected: self.expected.clone(),
            got: last.map(|a| a.got.clone()).unwrap_or_default(),
            passed: last.is_some_and(|a| a.passed),
            attempts,
        }
    }

    fn describe_expectation(&self) -> String {
        let mut parts = Vec::new();
        if self.statuses.is_empty() {
            parts.push("2xx".to_string());
        } else {
            parts.push(
                self.statuses
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join("/"),
            );
        }
        if let Some(j) = &self.json {
            let mut s = if j.array {
                "JSON array".to_string()
            } else {
                "JSON".to_string()
            };
            if j.non_empty {
                s.push_str(", non-empty");
            }
            if !j.contains_names.is_empty() {
                s.push_str(&format!(" with names {}", j.contains_names.join(", ")));
            }
            parts.push(s);
        }
        if let Some(b) = &self.body_contains {
            parts.push(format!("body has `{b}`"));
        }
        for (k, v) in &self.expect_headers {
            if v.is_empty() {
                parts.push(format!("header `{k}`"));
            } else {
                parts.push(format!("`{k}` has `{v}`"));
            }
        }
        match &self.kind {
            Kind::Api => {}
            Kind::Cors(origin) => {
                parts.push(format!("Access-Control-Allow-Origin `{origin}` or `*`"))
            }
            Kind::Website => parts.push("HTML".into()),
        }
        if let Some(l) = self.max_latency {
            parts.push(format!("≤ {}", humantime::format_duration(l)));
        }
        parts.join(" + ")
    }
}

/// A compact, single-line excerpt of a body.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > EXCERPT {
        format!("{}…", flat.chars().take(EXCERPT).collect::<String>())
    } else {
        flat
    }
}

fn describe_json(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("JSON array of {}", a.len()),
        Value::Object(o) => format!(
            "JSON object with {} key{}",
            o.len(),
            if o.len() == 1 { "" } else { "s" }
        ),
        Value::String(_) => "JSON string".into(),
        Value::Number(_) => "JSON number".into(),
        Value::Bool(_) => "JSON boolean".into(),
        Value::Null => "JSON null".into(),
    }
}

fn fmt_latency(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Judge one reply: `(passed, what was got)`. Pure, so every rule has a table test.
pub fn evaluate(
    check: &Check,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    latency: Duration,
) -> (bool, String) {
    match judge(check, status, headers, body, latency) {
        Ok(got) => (true, got),
        Err(got) => (false, got),
    }
}

/// The rules in the order a reader wants the first broken one: status, the kind's own rule, expected
/// headers, JSON, body text, latency. `Ok` says what a passing reply got; `Err` what broke.
fn judge(
    check: &Check,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    latency: Duration,
) -> Result<String, String> {
    let status_ok = if check.statuses.is_empty() {
        (200..300).contains(&status)
    } else {
        check.statuses.contains(&status)
    };
    if !status_ok {
        let ex = excerpt(body);
        return Err(if ex.is_empty() {
            status.to_string()
        } else {
            format!("{status}: {ex}")
        });
    }
    let mut got = vec![status.to_string()];
    got.extend(judge_kind(&check.kind, status, headers)?);
    for (name, want) in &check.expect_headers {
        let Some(v) = headers.get(name) else {
            return Err(format!("{status}, no `{name}` header"));
        };
        let v = String::from_utf8_lossy(v.as_bytes());
        if !v.to_ascii_lowercase().contains(&want.to_ascii_lowercase()) {
            return Err(format!("{status}, `{name}: {v}`"));
        }
    }
    if let Some(j) = &check.json {
        got.push(judge_json(j, status, body)?);
    }
    if let Some(text) = &check.body_contains {
        if !String::from_utf8_lossy(body).contains(text.as_str()) {
            return Err(format!("{status}, body lacks `{text}`: {}", excerpt(body)));
        }
    }
    if let Some(limit) = check.max_latency {
        if latency > limit {
            return Err(format!(
                "{status} in {} (limit {})",
                fmt_latency(latency),
                humantime::format_duration(limit)
            ));
        }
    }
    Ok(got.join(", "))
}

/// The CORS preflight's allowed origin, or the website's HTML content type; nothing for an API check.
fn judge_kind(kind: &Kind, status: u16, headers: &HeaderMap) -> Result<Option<String>, String> {
    match kind {
        Kind::Api => Ok(None),
        Kind::Cors(origin) => {
            match headers
                .get(reqwest::header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
            {
                None => Err(format!("{status}, no Access-Control-Allow-Origin")),
                Some(v) if v == "*" || v.trim_end_matches('/') == origin => {
                    Ok(Some(format!("Access-Control-Allow-Origin `{v}`")))
                }
                Some(v) => Err(format!("{status}, Access-Control-Allow-Origin `{v}`")),
            }
        }
        Kind::Website => {
            let ct = headers
                .get(reqwest::header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
                .unwrap_or_default();
            if !ct.to_ascii_lowercase().contains("text/html") {
                let shown = if ct.is_empty() {
                    "no content type"
                } else {
                    &ct
                };
                return Err(format!("{status}, {shown}"));
            }
            Ok(Some("HTML".into()))
        }
    }
}

/// The JSON expectations: an array, not empty, holding objects with the given names. `Ok` is the
/// body's shape in words.
fn judge_json(j: &JsonExpect, status: u16, body: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| format!("{status}, not JSON: {}", excerpt(body)))?;
    let shape = describe_json(&v);
    if j.array && !v.is_array() {
        return Err(format!("{status}, {shape} (expected an array)"));
    }
    let len = match &v {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => 0,
    };
    if j.non_empty && len == 0 {
        return Err(format!("{status}, empty {shape}"));
    }
    if !j.contains_names.is_empty() {
        let names: Vec<&str> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|o| o.get("name").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let missing: Vec<&str> = j
            .contains_names
            .iter()
            .map(String::as_str)
            .filter(|n| !names.contains(n))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{status}, {shape} without name {}",
                missing.join(", ")
            ));
        }
    }
    Ok(shape)
}

/// A transport error in words, without the URL (it may carry userinfo) and with its causes.
fn describe_error(e: &reqwest::Error) -> String {
    if e.is_redirect() {
        // The policy's own error says why (see `redirect_policy`).
        return std::error::Error::source(e)
            .map(ToString::to_string)
            .unwrap_or_else(|| "redirect not followed".into());
    }
    let head = if e.is_connect() {
        "could not connect".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_body() || e.is_decode() {
        "broken response body".to_string()
    } else {
        "request failed".to_string()
    };
    // The error's own text carries the URL, so only its causes follow the head.
    match std::error::Error::source(e) {
        Some(cause) => format!("{head}: {}", error_chain(cause)),
        None => head,
    }
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = BODY_LIMIT.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= BODY_LIMIT {
            break;
        }
    }
    Ok(body)
}

/// What one exchange left: the attempt, the body when a reply came, and whether the connection could
/// not be made at all (so no byte of the request was sent, and sending it again cannot repeat a write).
pub struct Exchange {
    pub attempt: Attempt,
    pub body: Option<Vec<u8>>,
    pub not_connected: bool,
}

/// One attempt: request, read the body, judge; cut off after `timeout` whatever the server does.
pub async fn attempt(
    client: &reqwest::Client,
    check: &Check,
    timeout: Duration,
    redact: &Redactor,
) -> Attempt {
    exchange(client, check, timeout, redact).await.attempt
}

/// [`attempt`], keeping the reply's body and whether the connection failed.
pub async fn exchange(
    client: &reqwest::Client,
    check: &Check,
    timeout: Duration,
    redact: &Redactor,
) -> Exchange {
    let started = Instant::now();
    let exchange = async {
        let mut req = client
            .request(check.method.clone(), check.url.clone())
            .headers(check.headers.clone());
        if let Some(body) = &check.body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = read_capped(resp).await?;
        Ok::<_, reqwest::Error>((status, headers, body))
    };
    let outcome = tokio::time::timeout(timeout, exchange).await;
    let latency = started.elapsed();
    let mut kept = None;
    let mut not_connected = false;
    let (status, passed, got) = match outcome {
        Err(_) => (
            None,
            false,
            format!("no answer within {}", humantime::format_duration(timeout)),
        ),
        Ok(Err(e)) => {
            not_connected = e.is_connect();
            (None, false, describe_error(&e))
        }
        Ok(Ok((status, headers, body))) => {
            let (passed, got) = evaluate(check, status, &headers, &body, latency);
            kept = Some(body);
            (Some(status), passed, got)
        }
    };
    let got = redact.apply(&got);
    tracing::debug!(check = %check.name, status = ?status, latency_ms = latency.as_millis() as u64, %got, "attempt");
    Exchange {
        attempt: Attempt {
            status,
            latency_ms: latency.as_millis() as u64,
            passed,
            got,
        },
        body: kept,
        not_connected,
    }
}

/// Try `check` until it passes or `deadline` passes; every attempt is kept. The last attempt starts no
/// later than `deadline` and lasts at most `request_timeout` (see [`schedule`]).
pub async fn until_pass(
    client: &reqwest::Client,
    check: &Check,
    deadline: Instant,
    request_timeout: Duration,
    retry_base: Duration,
    redact: &Redactor,
) -> CheckResult {
    let mut attempts = Vec::new();
    loop {
        let a = attempt(client, check, request_timeout, redact).await;
        let passed = a.passed;
        attempts.push(a);
        if passed {
            break;
        }
        let done = u32::try_from(attempts.len()).unwrap_or(u32::MAX);
        match schedule::retry_delay(done, Instant::now(), deadline, retry_base) {
            Some(d) => tokio::time::sleep(d).await,
            None => break,
        }
    }
    check.result(attempts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OneOrMany;

    fn spec(path: &str) -> CheckSpec {
        CheckSpec {
            name: None,
            method: Method::GET,
            path: path.into(),
            status: None,
            json: None,
            body_contains: None,
            expect_headers: Vec::new(),
            max_latency: None,
            headers: HeaderMap::new(),
        }
    }

    fn base() -> Url {
        Url::parse("https://user:pa%20ss@api.example.com/v1/").unwrap()
    }

    #[test]
    fn urls_keep_the_base_path_and_never_print_userinfo() {
        let c = Check::api(&base(), &spec("/health")).unwrap();
        assert_eq!(
            c.url.as_str(),
            "https://user:pa%20ss@api.example.com/v1/health"
        );
        assert_eq!(c.display_url, "https://api.example.com/v1/health");
        assert_eq!(c.name, "GET /health");
        let plain = Url::parse("http://127.0.0.1:8000").unwrap();
        assert_eq!(
            join(&plain, "/products?limit=3").unwrap().as_str(),
            "http://127.0.0.1:8000/products?limit=3"
        );
    }

    fn judge(c: &Check, status: u16, hdrs: &[(&str, &str)], body: &str, ms: u64) -> (bool, String) {
        let mut h = HeaderMap::new();
        for (k, v) in hdrs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        evaluate(c, status, &h, body.as_bytes(), Duration::from_millis(ms))
    }

    #[test]
    fn replies_are_judged() {
        let products = {
            let mut s = spec("/products");
            s.json = Some(JsonExpect {
                array: true,
                non_empty: true,
                contains_names: vec!["Laptop".into(), "Mouse".into()],
            });
            s.max_latency = Some(Duration::from_secs(1));
            s.expect_headers
                .push((HeaderName::from_static("content-type"), "json".into()));
            Check::api(&base(), &s).unwrap()
        };
        assert_eq!(
            products.expected,
            "200 + JSON array, non-empty with names Laptop, Mouse + `content-type` has `json` + ≤ 1s"
        );
        let json = [("content-type", "application/json")];
        let good = r#"[{"name":"Laptop"},{"name":"Mouse"},{"name":"Keyboard"}]"#;
        type Case<'a> = (
            &'a Check,
            u16,
            &'a [(&'a str, &'a str)],
            &'a str,
            u64,
            bool,
            &'a str,
        );
        let cases: &[Case] = &[
            (&products, 200, &json, good, 5, true, "200, JSON array of 3"),
            (
                &products,
                500,
                &json,
                "Internal  Server\nError",
                5,
                false,
                "500: Internal Server Error",
            ),
            (&products, 503, &[], "", 5, false, "503"),
            (
                &products,
                200,
                &json,
                r#"{"error":"x"}"#,
                5,
                false,
                "200, JSON object with 1 key (expected an array)",
            ),
            (
                &products,
                200,
                &json,
                "[]",
                5,
                false,
                "200, empty JSON array of 0",
            ),
            (
                &products,
                200,
                &json,
                r#"[{"name":"Laptop"}]"#,
                5,
                false,
                "200, JSON array of 1 without name Mouse",
            ),
            (
                &products,
                200,
                &json,
                "<html>",
                5,
                false,
                "200, not JSON: <html>",
            ),
            (
                &products,
                200,
                &[("content-type", "text/html")],
                good,
                5,
                false,
                "200, `content-type: text/html`",
            ),
            (
                &products,
                200,
                &[],
                good,
                5,
                false,
                "200, no `content-type` header",
            ),
            (
                &products,
                200,
                &json,
                good,
                3000,
                false,
                "200 in 3.0 s (limit 1s)",
            ),
        ];
        for (c, status, hdrs, body, ms, pass, got) in cases {
            assert_eq!(
                judge(c, *status, hdrs, body, *ms),
                (*pass, got.to_string()),
                "{status} {body}"
            );
        }
    }

    #[test]
    fn statuses_body_and_kinds_are_judged() {
        let mut s = spec("/docs");
        s.status = Some(OneOrMany::Many(vec![200, 204]));
        s.body_contains = Some("swagger".into());
        let docs = Check::api(&base(), &s).unwrap();
        assert_eq!(docs.expected, "200/204 + body has `swagger`");
        assert!(judge(&docs, 204, &[], "the swagger ui", 1).0);
        assert_eq!(
            judge(&docs, 200, &[], "nothing", 1),
            (false, "200, body lacks `swagger`: nothing".into())
        );

        let cors = Check::cors(&base(), "/products", "http://site.example").unwrap();
        assert_eq!(cors.method, Method::OPTIONS);
        let acao = "access-control-allow-origin";
        assert!(judge(&cors, 200, &[(acao, "http://site.example")], "", 1).0);
        assert!(judge(&cors, 204, &[(acao, "*")], "", 1).0);
        assert_eq!(
            judge(&cors, 200, &[], "", 1),
            (false, "200, no Access-Control-Allow-Origin".into())
        );
        assert_eq!(
            judge(&cors, 200, &[(acao, "http://evil.example")], "", 1),
            (
                false,
                "200, Access-Control-Allow-Origin `http://evil.example`".into()
            )
        );
        assert_eq!(
            judge(&cors, 400, &[], "Disallowed CORS origin", 1),
            (false, "400: Disallowed CORS origin".into())
        );

        let site = Check::website(&Url::parse("http://site.example/").unwrap());
        assert!(
            judge(
                &site,
                200,
                &[("content-type", "text/html; charset=utf-8")],
                "<html>",
                1
            )
            .0
        );
        assert_eq!(
            judge(&site, 200, &[("content-type", "text/plain")], "hi", 1),
            (false, "200, text/plain".into())
        );
        assert_eq!(judge(&site, 404, &[], "", 1), (false, "404".into()));
    }
}
