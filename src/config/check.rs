//! One HTTP check, compiled: method, path, request header map (values marked sensitive), expected
//! header names, latency limit. Shared by the read-only checks (`smoke`) and the steps of write
//! sequences (`sequence`), which may also write. No AWS API.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde::Deserialize;

use super::error::{invalid, Error};
use super::schema::{CheckFile, JsonExpect, OneOrMany};
use super::validate::parse_duration;

/// The key every check error is reported under.
pub(super) const CHECKS: &str = "smoke.checks";

/// One HTTP check, compiled from a [`CheckFile`]. It also deserializes straight from YAML, validated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "CheckFile")]
pub struct CheckSpec {
    /// Display name (default: `METHOD path`).
    pub name: Option<String>,
    /// GET, HEAD or OPTIONS.
    pub method: Method,
    /// Path relative to the base URL: starts with `/`, no space or control character.
    pub path: String,
    /// Accepted status codes (`None`: 200; an empty list: any 2xx).
    pub status: Option<OneOrMany<u16>>,
    pub json: Option<JsonExpect>,
    /// The body must contain this text.
    pub body_contains: Option<String>,
    /// Response headers that must be present and contain the given text (`""`: present).
    pub expect_headers: Vec<(HeaderName, String)>,
    /// Fail an attempt slower than this.
    pub max_latency: Option<Duration>,
    /// Request headers, every value marked sensitive (never printed).
    pub headers: HeaderMap,
}

impl TryFrom<CheckFile> for CheckSpec {
    type Error = Error;

    /// Check what the smoke step would otherwise only find after the deploy: the method, the path,
    /// header names and values, and expectations a `HEAD` reply can never meet. A bad check must cost no
    /// change in AWS.
    fn try_from(c: CheckFile) -> Result<Self, Error> {
        compile(c, CHECKS, false)
    }
}

/// Compile a check reported under `key`; `writes` also allows POST, PUT, PATCH and DELETE (the steps of
/// a write sequence). The errors come in the order a reader fixes them: method, latency, path, headers,
/// expectations.
pub(super) fn compile(c: CheckFile, key: &'static str, writes: bool) -> Result<CheckSpec, Error> {
    let method = method(&c, key, writes)?;
    let max_latency = c
        .max_latency
        .as_deref()
        .map(|l| {
            let at = if key == CHECKS {
                "smoke.checks.max-latency"
            } else {
                key
            };
            parse_duration(at, l)
        })
        .transpose()?;
    check_path(&c.path, key)?;
    let headers = request_headers(&c, key)?;
    let expect_headers = c
        .expect_headers
        .iter()
        .map(|(name, text)| Ok((header_name(name, &c.path, key)?, text.clone())))
        .collect::<Result<Vec<_>, Error>>()?;
    check_expectations(&c, &method, key)?;
    Ok(CheckSpec {
        name: c.name,
        method,
        path: c.path,
        status: c.status,
        json: c.json,
        body_contains: c.body_contains,
        expect_headers,
        max_latency,
        headers,
    })
}

/// The method: a read, or with `writes` also a write; a write outside a sequence says where it belongs.
fn method(c: &CheckFile, key: &'static str, writes: bool) -> Result<Method, Error> {
    let method = match c.method.to_ascii_uppercase().as_str() {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        "OPTIONS" => Method::OPTIONS,
        "POST" if writes => Method::POST,
        "PUT" if writes => Method::PUT,
        "PATCH" if writes => Method::PATCH,
        "DELETE" if writes => Method::DELETE,
        "POST" | "PUT" | "PATCH" | "DELETE" => {
            return Err(invalid(
                key,
                format!(
                    "method `{}` of `{}` is not GET, HEAD or OPTIONS (writes belong in a `smoke.sequences` step)",
                    c.method, c.path
                ),
            ))
        }
        _ if writes => {
            return Err(invalid(
                key,
                format!(
                    "method `{}` of `{}` is not GET, HEAD, OPTIONS, POST, PUT, PATCH or DELETE",
                    c.method, c.path
                ),
            ))
        }
        _ => {
            return Err(invalid(
                key,
                format!(
                    "method `{}` of `{}` is not GET, HEAD or OPTIONS",
                    c.method, c.path
                ),
            ))
        }
    };
    Ok(method)
}

/// A path joins the base URL as written: it starts with `/` and holds no space or control character.
fn check_path(path: &str, key: &'static str) -> Result<(), Error> {
    if !path.starts_with('/') {
        return Err(invalid(key, format!("path `{path}` must start with `/`")));
    }
    if path.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        return Err(invalid(
            key,
            format!(
                "path `{}` contains a space or a control character",
                path.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// `name` as a header name, or an error naming the check's `path`.
fn header_name(name: &str, path: &str, key: &'static str) -> Result<HeaderName, Error> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| invalid(key, format!("`{name}` of `{path}` is not a header name")))
}

/// The request headers, every value marked sensitive: a value is a secret as far as we know, so no
/// error echoes it.
fn request_headers(c: &CheckFile, key: &'static str) -> Result<HeaderMap, Error> {
    let mut headers = HeaderMap::new();
    for (name, value) in &c.headers {
        let hname = header_name(name, &c.path, key)?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            invalid(
                key,
                format!(
                    "the value of header `{name}` of `{}` is not a valid header value",
                    c.path
                ),
            )
        })?;
        value.set_sensitive(true);
        headers.insert(hname, value);
    }
    Ok(headers)
}

/// Expectations a reply can meet: HTTP statuses, and no body expectation on a `HEAD`.
fn check_expectations(c: &CheckFile, method: &Method, key: &'static str) -> Result<(), Error> {
    if let Some(bad) = c
        .status
        .as_ref()
        .and_then(|s| s.to_vec().into_iter().find(|n| !(100..=599).contains(n)))
    {
        return Err(invalid(
            key,
            format!(
                "status {bad} of `{}` is not an HTTP status (100-599)",
                c.path
            ),
        ));
    }
    if *method == Method::HEAD && (c.json.is_some() || c.body_contains.is_some()) {
        return Err(invalid(
            key,
            format!(
                "`HEAD {}` has no body: drop `json`/`body-contains` or use GET",
                c.path
            ),
        ));
    }
    Ok(())
}

/// The checks used when an environment configures none.
pub fn default_checks() -> Vec<CheckSpec> {
    let get = |name: &str, path: &str, json: Option<JsonExpect>| CheckSpec {
        name: Some(name.into()),
        method: Method::GET,
        path: path.into(),
        status: Some(OneOrMany::One(200)),
        json,
        body_contains: None,
        expect_headers: Vec::new(),
        max_latency: None,
        headers: HeaderMap::new(),
    };
    vec![
        get("health", "/health", None),
        get(
            "products",
            "/products",
            Some(JsonExpect {
                array: true,
                ..JsonExpect::default()
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Result<CheckSpec, String> {
        let file: CheckFile = yaml_serde::from_str(yaml).map_err(|e| e.to_string())?;
        CheckSpec::try_from(file).map_err(|e| e.to_string())
    }

    #[test]
    fn checks_compile_once() {
        let c = check(
            "{ path: /health, method: head, max-latency: 1s, headers: { X-Api-Key: s3cr3t }, expect-headers: { Content-Type: json } }",
        )
        .unwrap();
        assert_eq!(c.method, Method::HEAD);
        assert_eq!(c.max_latency, Some(Duration::from_secs(1)));
        let key = &c.headers["x-api-key"];
        assert!(key.is_sensitive());
        assert_eq!(key.to_str().unwrap(), "s3cr3t");
        assert_eq!(
            c.expect_headers,
            vec![(HeaderName::from_static("content-type"), "json".to_string())]
        );
        // The same check read straight as a `CheckSpec`.
        let direct: CheckSpec = yaml_serde::from_str(
            "{ path: /health, method: HEAD, max-latency: 1s, headers: { X-Api-Key: s3cr3t }, expect-headers: { content-type: json } }",
        )
        .unwrap();
        assert_eq!(direct, c);
    }

    #[test]
    fn bad_checks_name_the_problem_and_never_the_value() {
        let m = "invalid `smoke.checks`:";
        let cases: &[(&str, &str)] = &[
            (
                "{ path: /h, method: POST }",
                "invalid `smoke.checks`: method `POST` of `/h` is not GET, HEAD or OPTIONS",
            ),
            (
                "{ path: /h, max-latency: soon }",
                "invalid `smoke.checks.max-latency`: `soon` is not a duration (",
            ),
            ("{ path: health }", "path `health` must start with `/`"),
            (
                "{ path: \"/a\\tb\" }",
                "path `/a\\tb` contains a space or a control character",
            ),
            (
                "{ path: /h, headers: { \"bad name\": s3cr3t } }",
                "`bad name` of `/h` is not a header name",
            ),
            (
                "{ path: /h, headers: { X-Key: \"s3cr3t\\n\" } }",
                "the value of header `X-Key` of `/h` is not a valid header value",
            ),
            (
                "{ path: /h, expect-headers: { \"a:b\": x } }",
                "`a:b` of `/h` is not a header name",
            ),
            (
                "{ path: /h, method: HEAD, json: { array: true } }",
                "`HEAD /h` has no body: drop `json`/`body-contains` or use GET",
            ),
        ];
        for (yaml, want) in cases {
            let err = check(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml}: `{err}` lacks `{want}`");
            assert!(err.starts_with(m) || err.contains("max-latency"), "{err}");
            assert!(!err.contains("s3cr3t"), "a header value was echoed: {err}");
        }
    }

    #[test]
    fn default_checks_are_what_an_empty_config_would_compile_to() {
        let yaml = "[{ name: health, path: /health, status: 200 }, { name: products, path: /products, status: 200, json: { array: true } }]";
        let compiled: Vec<CheckSpec> = yaml_serde::from_str(yaml).unwrap();
        assert_eq!(compiled, default_checks());
    }
}
