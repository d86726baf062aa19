//! Write sequences: each sequence's steps in order, one request each, values captured from JSON replies
//! filled into later steps; after a failure only the cleanup steps still run, so a product created by a
//! sequence that then failed is deleted again.
//!
//! Retries: a write sent twice may create twice, so a step is sent once. The only exception is a
//! connection that could not be made (no byte of the request left the runner): that attempt is repeated
//! up to [`CONNECT_ATTEMPTS`] times through [`crate::retry`], the checks' interval doubling. A timeout or a reply of any status is final.
//!
//! Secrets: the report keeps paths and expectations as configured (`/products/{id}`) and the names of
//! captured values, never the values; a header value filled from a capture is masked before it is sent.
//!
//! APIs: plain HTTP(S) to the app (reqwest).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::HeaderValue;
use serde_json::Value;
use url::Url;

use super::check::{self, Check};
use super::redact::Redactor;
use super::result::{SequenceResult, StepOutcome, StepResult};
use crate::config::{fill, fill_json, Sequence, Smoke, Step, Writes};
use crate::github::commands;
use crate::retry;

/// Requests a step makes at most when its connection cannot be made.
pub const CONNECT_ATTEMPTS: u32 = 3;

/// What a filled path value may keep as is (RFC 3986 unreserved): anything else is percent-encoded, so
/// a captured `a/b` or `?x` stays inside its path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The built-in values of one run: `run_id`, and `unique` (run id, attempt, 8 random hex digits).
pub fn builtins(w: &Writes) -> BTreeMap<String, String> {
    let suffix: u32 = rand::random();
    BTreeMap::from([
        ("run_id".to_string(), w.run_id.clone()),
        (
            "unique".to_string(),
            format!("{}-{}-{suffix:08x}", w.run_id, w.run_attempt),
        ),
    ])
}

/// Run every sequence of `cfg` in order against `base`.
pub async fn run_all(
    cfg: &Smoke,
    base: &Url,
    client: &reqwest::Client,
    redact: &mut Redactor,
) -> Vec<SequenceResult> {
    let mut out = Vec::new();
    for seq in &cfg.writes.sequences {
        out.push(run_one(cfg, seq, base, client, redact).await);
    }
    out
}

/// A step's display name: its own, else `METHOD path` as configured.
fn step_name(step: &Step) -> String {
    step.check
        .name
        .clone()
        .unwrap_or_else(|| format!("{} {}", step.check.method, step.check.path))
}

/// Run one sequence: its steps in order, only the cleanup steps after a failure.
async fn run_one(
    cfg: &Smoke,
    seq: &Sequence,
    base: &Url,
    client: &reqwest::Client,
    redact: &mut Redactor,
) -> SequenceResult {
    let _group = commands::group(&format!("Write sequence {}", seq.name));
    let mut run = SequenceRun {
        cfg,
        sequence: &seq.name,
        base,
        client,
        redact,
        values: builtins(&cfg.writes),
        failed: false,
        left_behind: Vec::new(),
    };
    let mut steps = Vec::new();
    for step in &seq.steps {
        steps.push(run.step(step).await);
    }
    run.finish(steps)
}

/// One sequence as it runs: where it sends, the values filled into later steps, whether a step failed,
/// and what a failed cleanup step left behind.
struct SequenceRun<'a> {
    cfg: &'a Smoke,
    sequence: &'a str,
    base: &'a Url,
    client: &'a reqwest::Client,
    redact: &'a mut Redactor,
    values: BTreeMap<String, String>,
    failed: bool,
    left_behind: Vec<String>,
}

impl SequenceRun<'_> {
    /// Run `step` unless an earlier step failed and it is no cleanup step; fill it, send it, judge it.
    async fn step(&mut self, step: &Step) -> StepResult {
        let mut r = StepResult {
            name: step_name(step),
            method: step.check.method.to_string(),
            path: step.check.path.clone(),
            cleanup: step.cleanup,
            outcome: StepOutcome::NotRun,
            status: None,
            // The expectation with placeholders unfilled: no captured value in the report.
            expected: Check::api(self.base, &step.check)
                .map(|c| c.expected)
                .unwrap_or_default(),
            got: String::new(),
            captured: Vec::new(),
            attempts: 0,
            latency_ms: 0,
        };
        if self.failed && !step.cleanup {
            r.got = "not run: an earlier step failed".into();
            return r;
        }
        match prepare(step, self.base, &self.values, self.redact) {
            Ok(check) => self.send(step, &check, r).await,
            Err(Prepare::Missing(name)) => {
                // Only after a failure: config checked that an earlier step captures every name.
                r.got = format!("not run: `{{{name}}}` was never captured");
                self.failed = true;
                r
            }
            Err(Prepare::Bad(why)) => {
                r.outcome = StepOutcome::Failed;
                r.got = self.redact.apply(&why);
                self.failed = true;
                if step.cleanup {
                    self.left_behind.push(format!("{} {}", r.method, r.path));
                }
                r
            }
        }
    }

    /// Send the filled `check`, judge the reply and take the step's captures from it.
    async fn send(&mut self, step: &Step, check: &Check, mut r: StepResult) -> StepResult {
        let (attempt, body, attempts) = send(self.cfg, self.client, check, self.redact).await;
        r.status = attempt.status;
        r.latency_ms = attempt.latency_ms;
        r.attempts = attempts;
        r.got = attempt.got;
        let mut passed = attempt.passed;
        if passed && !step.capture.is_empty() {
            match capture(step, body.as_deref()) {
                Ok(got) => {
                    for (name, value) in got {
                        r.captured.push(name.clone());
                        self.values.insert(name, value);
                    }
                }
                Err(why) => {
                    passed = false;
                    r.got = self.redact.apply(&format!("{}, {why}", r.got));
                }
            }
        }
        r.outcome = if passed {
            StepOutcome::Passed
        } else {
            StepOutcome::Failed
        };
        if passed {
            tracing::info!(sequence = %self.sequence, step = %r.name, got = %r.got, "step passed");
        } else {
            tracing::warn!(sequence = %self.sequence, step = %r.name, expected = %r.expected, got = %r.got, "step failed");
            self.failed = true;
            if step.cleanup {
                // The filled request names what is left (the created id); a secret stays masked.
                let path = self.redact.apply(check.url.path());
                self.left_behind.push(format!("{} {path}", r.method));
            }
        }
        r
    }

    /// The sequence's result: passed when no step failed; the cleanup steps counted.
    fn finish(self, steps: Vec<StepResult>) -> SequenceResult {
        let cleanup: Vec<&StepResult> = steps.iter().filter(|s| s.cleanup).collect();
        SequenceResult {
            name: self.sequence.to_string(),
            passed: !self.failed,
            cleanup_steps: u32::try_from(cleanup.len()).unwrap_or(u32::MAX),
            cleanup_ran: u32::try_from(
                cleanup
                    .iter()
                    .filter(|s| s.outcome != StepOutcome::NotRun)
                    .count(),
            )
            .unwrap_or(u32::MAX),
            unique: (!self.left_behind.is_empty())
                .then(|| self.values.get("unique").cloned())
                .flatten(),
            left_behind: self.left_behind,
            steps,
        }
    }
}

/// Why a step could not be sent.
enum Prepare {
    /// A placeholder whose value was never captured.
    Missing(String),
    /// A filled value that cannot be sent (a header value with a line break, say).
    Bad(String),
}

/// The step with every placeholder filled, as a check ready to send. Header values that came from a
/// capture are masked and redacted from here on.
fn prepare(
    step: &Step,
    base: &Url,
    values: &BTreeMap<String, String>,
    redact: &mut Redactor,
) -> Result<Check, Prepare> {
    let value = |name: &str| values.get(name).cloned();
    let same = |s: &str| s.to_string();
    let segment = |s: &str| utf8_percent_encode(s, SEGMENT).to_string();
    let mut spec = step.check.clone();
    spec.name = Some(step_name(step));
    spec.path = fill(&step.check.path, value, segment).map_err(Prepare::Missing)?;
    for v in spec.headers.values_mut() {
        let text = v.to_str().unwrap_or_default();
        let filled = fill(text, value, same).map_err(Prepare::Missing)?;
        if filled != text {
            redact.add(&filled);
            let _ = commands::write_mask(&mut std::io::stdout().lock(), &filled);
            let mut hv = HeaderValue::from_str(&filled).map_err(|_| {
                Prepare::Bad(
                    "a header value filled from a capture is not a valid header value".into(),
                )
            })?;
            hv.set_sensitive(true);
            *v = hv;
        }
    }
    if let Some(t) = &step.check.body_contains {
        spec.body_contains = Some(fill(t, value, same).map_err(Prepare::Missing)?);
    }
    if let Some(j) = spec.json.as_mut() {
        for n in j.contains_names.iter_mut() {
            *n = fill(n, value, same).map_err(Prepare::Missing)?;
        }
    }
    let mut check = Check::api(base, &spec).map_err(Prepare::Bad)?;
    if let Some(b) = &step.body {
        let filled = fill_json(b, &value).map_err(Prepare::Missing)?;
        check.body = Some(serde_json::to_vec(&filled).unwrap_or_default());
    }
    Ok(check)
}

/// Send a step: once, or again only while the connection could not be made (up to
/// [`CONNECT_ATTEMPTS`], the checks' `retry-interval` doubling, unjittered). Returns the requests made.
async fn send(
    cfg: &Smoke,
    client: &reqwest::Client,
    check: &Check,
    redact: &Redactor,
) -> (super::result::Attempt, Option<Vec<u8>>, u32) {
    let policy = retry::Policy::new(CONNECT_ATTEMPTS, cfg.retry_interval)
        .without_jitter()
        .log_retries_at(tracing::Level::INFO);
    let made = AtomicU32::new(0);
    let what = format!("step `{}`", check.name);
    let ex = retry::run(policy, &what, |n| {
        made.store(n, Ordering::Relaxed);
        async {
            let ex = check::exchange(client, check, cfg.request_timeout, redact).await;
            if ex.not_connected {
                retry::Outcome::Transient(NotConnected(ex))
            } else {
                retry::Outcome::Done(ex)
            }
        }
    })
    .await
    .unwrap_or_else(|NotConnected(ex)| ex);
    (ex.attempt, ex.body, made.load(Ordering::Relaxed))
}

/// An exchange whose connection could not be made: nothing was sent, so it may be sent again.
struct NotConnected(check::Exchange);

impl std::fmt::Display for NotConnected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("could not connect; nothing was sent")
    }
}

/// The values a step captures from its JSON reply: strings as they are, numbers and booleans as
/// written. `Err` names the path that is missing or not a plain value.
fn capture(step: &Step, body: Option<&[u8]>) -> Result<Vec<(String, String)>, String> {
    let v: Value = body
        .and_then(|b| serde_json::from_slice(b).ok())
        .ok_or_else(|| "the reply is not JSON: nothing to capture".to_string())?;
    step.capture
        .iter()
        .map(|(name, path)| match path.get(&v) {
            Some(Value::String(s)) => Ok((name.clone(), s.clone())),
            Some(x @ (Value::Number(_) | Value::Bool(_))) => Ok((name.clone(), x.to_string())),
            Some(_) => Err(format!("`{path}` is not a string or a number")),
            None => Err(format!("no `{path}` in the reply")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{JsonPath, Writes};

    fn step(capture: &[(&str, &str)]) -> Step {
        Step {
            check: crate::config::default_checks().remove(0),
            body: None,
            capture: capture
                .iter()
                .map(|(n, p)| (n.to_string(), JsonPath::parse(p).unwrap()))
                .collect(),
            cleanup: false,
        }
    }

    #[test]
    fn captures_take_plain_values_only() {
        let s = step(&[("id", "$.id"), ("name", "$.name")]);
        let got = capture(&s, Some(br#"{"id": 42, "name": "smoke-1"}"#)).unwrap();
        assert_eq!(
            got,
            vec![
                ("id".into(), "42".into()),
                ("name".into(), "smoke-1".into())
            ]
        );
        assert_eq!(
            capture(&s, Some(br#"{"name": "x"}"#)).unwrap_err(),
            "no `$.id` in the reply"
        );
        assert_eq!(
            capture(&s, Some(br#"{"id": {"a": 1}, "name": "x"}"#)).unwrap_err(),
            "`$.id` is not a string or a number"
        );
        assert!(capture(&s, Some(b"<html>"))
            .unwrap_err()
            .contains("not JSON"));
        assert!(capture(&s, None).is_err());
    }

    #[test]
    fn placeholders_are_filled_and_path_values_encoded() {
        let mut s = step(&[]);
        s.check.path = "/products/{id}".into();
        s.check.body_contains = Some("smoke-{unique}".into());
        s.check.method = reqwest::Method::POST;
        s.body = Some(serde_json::json!({"name": "smoke-{unique}"}));
        let base = Url::parse("http://127.0.0.1:9/api").unwrap();
        let mut values = builtins(&Writes {
            run_id: "77".into(),
            run_attempt: "2".into(),
            ..Writes::default()
        });
        let unique = values["unique"].clone();
        assert!(
            unique.starts_with("77-2-") && unique.len() == 13,
            "{unique}"
        );
        values.insert("id".into(), "a/b c".into());
        let c = prepare(&s, &base, &values, &mut Redactor::default())
            .ok()
            .unwrap();
        assert_eq!(c.url.as_str(), "http://127.0.0.1:9/api/products/a%2Fb%20c");
        assert_eq!(c.name, "health", "the configured name is kept");
        assert_eq!(c.body_contains, Some(format!("smoke-{unique}")));
        let body: Value = serde_json::from_slice(c.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["name"], format!("smoke-{unique}"));
        values.remove("id");
        assert!(matches!(
            prepare(&s, &base, &values, &mut Redactor::default()),
            Err(Prepare::Missing(n)) if n == "id"
        ));
    }

    #[test]
    fn a_header_filled_from_a_capture_is_redacted_from_then_on() {
        let mut s = step(&[]);
        s.check
            .headers
            .insert("authorization", HeaderValue::from_static("Bearer {token}"));
        let base = Url::parse("http://127.0.0.1:9").unwrap();
        let mut values = BTreeMap::new();
        values.insert("token".to_string(), "tok-s3cr3t".to_string());
        let mut redact = Redactor::default();
        let c = prepare(&s, &base, &values, &mut redact).ok().unwrap();
        let sent = &c.headers["authorization"];
        assert_eq!(sent.to_str().unwrap(), "Bearer tok-s3cr3t");
        assert!(sent.is_sensitive());
        assert_eq!(redact.apply("echo: Bearer tok-s3cr3t"), "echo: ***");
        // A value that cannot be a header is refused without echoing it.
        values.insert("token".to_string(), "a\nb".to_string());
        match prepare(&s, &base, &values, &mut redact) {
            Err(Prepare::Bad(why)) => assert!(!why.contains("a\nb"), "{why}"),
            _ => panic!("a line break in a header value was accepted"),
        }
    }
}
