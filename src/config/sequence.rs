//! Write sequences (`smoke.sequences`) and whether they run here (`smoke.write`): each step compiled
//! like a check (which may also POST, PUT, PATCH or DELETE), with its JSON body, its captures and every
//! `{name}` placeholder checked against the built-in values and what earlier steps capture. No AWS API.

use std::collections::BTreeSet;

use reqwest::Method;

use super::check::{compile, CheckSpec};
use super::error::{invalid, Error};
use super::jsonpath::JsonPath;
use super::schema::{SequenceFile, SmokeFile, StepFile};
use super::template::{json_strings, vars, BUILTINS};

/// The key every sequence error is reported under.
const KEY: &str = "smoke.sequences";

/// The write sequences and whether this environment runs them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Writes {
    /// Run the sequences here.
    pub enabled: bool,
    /// Why they do not run, when they do not (for the summary).
    pub disabled_reason: Option<String>,
    pub sequences: Vec<Sequence>,
    /// `GITHUB_RUN_ID` (`local` outside Actions): the `{run_id}` value.
    pub run_id: String,
    /// `GITHUB_RUN_ATTEMPT` (`1` outside Actions), part of `{unique}`.
    pub run_attempt: String,
}

/// A named write sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub name: String,
    pub steps: Vec<Step>,
}

/// One step: a check whose path, header values, `body-contains` and `json.contains-names` may hold
/// `{name}` placeholders (filled at run time), with a JSON body and captures.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub check: CheckSpec,
    /// Sent as `application/json` (POST, PUT, PATCH only).
    pub body: Option<serde_json::Value>,
    /// `(name, path)`: the value at `path` of the JSON reply becomes `{name}` for later steps.
    pub capture: Vec<(String, JsonPath)>,
    /// Runs even after an earlier step failed.
    pub cleanup: bool,
}

/// Environment names (or GitHub environments) that count as production: a word `prod` or `production`
/// (`prod`, `production`, `eu-prod`, `prod_2`), any case.
pub fn is_production(name: &str) -> bool {
    name.split(['-', '_', '.', ' ', '/'])
        .any(|w| w.eq_ignore_ascii_case("prod") || w.eq_ignore_ascii_case("production"))
}

/// Build [`Writes`] from `smoke.write` and `smoke.sequences`. `write` defaults to true, and to false when
/// the environment's name or its `github-environment` names production.
pub(super) fn build(
    file: &SmokeFile,
    environment: &str,
    github_environment: Option<&str>,
    run_id: Option<&str>,
    run_attempt: Option<&str>,
) -> Result<Writes, Error> {
    let sequences = file
        .sequences
        .iter()
        .flatten()
        .map(sequence)
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = BTreeSet::new();
    if let Some(dup) = sequences.iter().find(|s| !names.insert(s.name.as_str())) {
        return Err(invalid(
            KEY,
            format!(
                "two sequences are named `{}`: give each its own name",
                dup.name
            ),
        ));
    }
    let prod = std::iter::once(environment)
        .chain(github_environment)
        .find(|n| is_production(n));
    let (enabled, disabled_reason) = match (file.write, prod) {
        (Some(true), _) => (true, None),
        (Some(false), _) => (false, Some("`smoke.write` is false".to_string())),
        (None, Some(p)) => (
            false,
            Some(format!(
                "`{p}` is a production environment (set `smoke.write: true` to run them there)"
            )),
        ),
        (None, None) => (true, None),
    };
    Ok(Writes {
        enabled,
        disabled_reason,
        sequences,
        run_id: run_id.unwrap_or("local").to_string(),
        run_attempt: run_attempt.unwrap_or("1").to_string(),
    })
}

/// `name` is a placeholder name (`[A-Za-z_][A-Za-z0-9_]*`).
fn is_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next()
        .is_some_and(|f| f == '_' || f.is_ascii_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_ascii_alphanumeric())
}

/// Compile one sequence: a usable name, at least one step, each step's placeholders known by then.
fn sequence(file: &SequenceFile) -> Result<Sequence, Error> {
    if !is_name(&file.name.replace('-', "_")) {
        return Err(invalid(
            KEY,
            format!(
                "sequence name `{}` must be letters, digits, `-` and `_`",
                file.name.escape_debug()
            ),
        ));
    }
    if file.steps.is_empty() {
        return Err(invalid(
            KEY,
            format!("sequence `{}` has no steps", file.name),
        ));
    }
    let mut known: Vec<String> = BUILTINS.iter().map(|s| s.to_string()).collect();
    let mut steps = Vec::new();
    for (i, s) in file.steps.iter().enumerate() {
        let at = |e: Error| match e {
            Error::Invalid { key, message } => Error::Invalid {
                key,
                message: format!("step {} of `{}`: {message}", i + 1, file.name),
            },
            other => other,
        };
        steps.push(step(s, &mut known).map_err(at)?);
    }
    Ok(Sequence {
        name: file.name.clone(),
        steps,
    })
}

/// Compile one step; `known` holds the names usable so far and gains this step's captures.
fn step(s: &StepFile, known: &mut Vec<String>) -> Result<Step, Error> {
    let check = compile(s.check(), KEY, true)?;
    let carries_body = matches!(check.method, Method::POST | Method::PUT | Method::PATCH);
    if s.body.is_some() && !carries_body {
        return Err(invalid(
            KEY,
            format!(
                "`{} {}` sends no body: drop `body` or use POST, PUT or PATCH",
                check.method, s.path
            ),
        ));
    }
    check_placeholders(s, known)?;
    if !s.capture.is_empty() && check.method == Method::HEAD {
        return Err(invalid(
            KEY,
            format!("`HEAD {}` has no body to capture from: use GET", s.path),
        ));
    }
    let capture = captures(s, known)?;
    Ok(Step {
        check,
        body: s.body.clone(),
        capture,
        cleanup: s.cleanup,
    })
}

/// Every placeholder in a text filled at run time (path, header values, body, expectations) is a
/// built-in or captured by an earlier step.
fn check_placeholders(s: &StepFile, known: &[String]) -> Result<(), Error> {
    // Every text that is filled at run time, with where it is, for the error.
    let mut texts: Vec<(&str, &str)> = vec![("path", s.path.as_str())];
    texts.extend(s.headers.values().map(|v| ("headers", v.as_str())));
    texts.extend(
        s.body_contains
            .iter()
            .map(|t| ("body-contains", t.as_str())),
    );
    if let Some(j) = &s.json {
        texts.extend(
            j.contains_names
                .iter()
                .map(|t| ("json.contains-names", t.as_str())),
        );
    }
    if let Some(b) = &s.body {
        texts.extend(json_strings(b).into_iter().map(|t| ("body", t)));
    }
    for (place, text) in texts {
        if let Some(unknown) = vars(text)
            .into_iter()
            .find(|v| !known.iter().any(|k| k == v))
        {
            let captured: Vec<&str> = known
                .iter()
                .map(String::as_str)
                .filter(|k| !BUILTINS.contains(k))
                .collect();
            // A header value may be a secret: name the placeholder, never the value.
            return Err(invalid(
                KEY,
                format!(
                    "unknown placeholder `{{{unknown}}}` in `{place}` of `{}`: earlier steps capture {}; built in: {}",
                    s.path,
                    if captured.is_empty() {
                        "nothing".to_string()
                    } else {
                        captured.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                    },
                    BUILTINS.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The step's captures, compiled; each name joins `known` for the steps after it.
fn captures(s: &StepFile, known: &mut Vec<String>) -> Result<Vec<(String, JsonPath)>, Error> {
    let mut capture = Vec::new();
    for (name, path) in &s.capture {
        if !is_name(name) {
            return Err(invalid(
                KEY,
                format!(
                    "capture name `{}` of `{}` must be a letter or `_`, then letters, digits or `_`",
                    name.escape_debug(),
                    s.path
                ),
            ));
        }
        if BUILTINS.contains(&name.as_str()) {
            return Err(invalid(
                KEY,
                format!(
                    "capture name `{name}` of `{}` is a built-in value: pick another name",
                    s.path
                ),
            ));
        }
        let p = JsonPath::parse(path)
            .map_err(|e| invalid(KEY, format!("capture `{name}` of `{}`: {e}", s.path)))?;
        capture.push((name.clone(), p));
        if !known.contains(name) {
            known.push(name.clone());
        }
    }
    Ok(capture)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CloudShop sample of the README.
    const CRUD: &str = r#"
write: true
sequences:
  - name: product-crud
    steps:
      - name: create
        method: POST
        path: /products
        body: { name: "smoke-{unique}", description: "smoke test run {run_id}", price: 1.5, stock: 1 }
        status: [200, 201]
        capture: { id: $.id }
      - name: read back
        path: /products/{id}
        body-contains: "smoke-{unique}"
      - name: listed
        path: /products
        json: { array: true, contains-names: ["smoke-{unique}"] }
      - name: delete
        method: DELETE
        path: /products/{id}
        status: [200, 204]
        cleanup: true
      - name: gone
        path: /products/{id}
        status: 404
"#;

    fn writes(yaml: &str, env: &str, gh: Option<&str>) -> Result<Writes, String> {
        let file: SmokeFile = yaml_serde::from_str(yaml).map_err(|e| e.to_string())?;
        build(&file, env, gh, Some("7"), None).map_err(|e| e.to_string())
    }

    #[test]
    fn the_sample_compiles() {
        let w = writes(CRUD, "stage", None).unwrap();
        assert!(w.enabled);
        assert_eq!((w.run_id.as_str(), w.run_attempt.as_str()), ("7", "1"));
        let s = &w.sequences[0];
        assert_eq!(s.name, "product-crud");
        assert_eq!(s.steps.len(), 5);
        assert_eq!(s.steps[0].check.method, Method::POST);
        assert_eq!(s.steps[0].capture[0].0, "id");
        assert_eq!(s.steps[0].capture[0].1.to_string(), "$.id");
        assert!(s.steps[3].cleanup && !s.steps[4].cleanup);
        assert_eq!(s.steps[3].check.method, Method::DELETE);
    }

    #[test]
    fn write_defaults_to_on_except_in_production() {
        let seqs = "sequences: [{ name: s, steps: [{ path: /health }] }]";
        let on = |yaml: &str, env: &str, gh: Option<&str>| writes(yaml, env, gh).unwrap();
        assert!(on(seqs, "stage", None).enabled);
        assert!(on(seqs, "dev", Some("staging")).enabled);
        for (env, gh) in [
            ("prod", None),
            ("production", None),
            ("eu-prod", None),
            ("stage", Some("Production")),
        ] {
            let w = on(seqs, env, gh);
            assert!(!w.enabled, "{env} {gh:?}");
            assert!(w
                .disabled_reason
                .unwrap()
                .contains("is a production environment"));
        }
        assert!(
            !is_production("product-demo")
                && !is_production("preprod")
                && !is_production("reproduction")
        );
        assert!(on(&format!("{{ write: true, {} }}", &seqs), "prod", None).enabled);
        let off = on(&format!("{{ write: false, {} }}", &seqs), "stage", None);
        assert_eq!(
            off.disabled_reason.as_deref(),
            Some("`smoke.write` is false")
        );
    }

    #[test]
    fn bad_steps_name_the_problem_once() {
        let one = |step: &str| {
            format!("sequences: [{{ name: crud, steps: [{{ method: POST, path: /products, capture: {{ id: $.id }} }}, {step}] }}]")
        };
        let cases: &[(&str, &str)] = &[
            ("{ method: FETCH, path: /p }", "step 2 of `crud`: method `FETCH` of `/p` is not GET, HEAD, OPTIONS, POST, PUT, PATCH or DELETE"),
            ("{ path: /p, body: { a: 1 } }", "step 2 of `crud`: `GET /p` sends no body: drop `body` or use POST, PUT or PATCH"),
            ("{ method: DELETE, path: /p, body: x }", "`DELETE /p` sends no body"),
            ("{ path: \"/products/{idd}\" }", "unknown placeholder `{idd}` in `path` of `/products/{idd}`: earlier steps capture `id`; built in: `run_id`, `unique`"),
            ("{ method: POST, path: /p, body: { name: \"{nope}\" } }", "unknown placeholder `{nope}` in `body`"),
            ("{ path: /p, headers: { X-Key: \"{secret}-s3cr3t\" } }", "unknown placeholder `{secret}` in `headers`"),
            ("{ path: /p, body-contains: \"{later}\", capture: { later: $.x } }", "unknown placeholder `{later}` in `body-contains`"),
            ("{ path: /p, capture: { id: \"$.items[*]\" } }", "capture `id` of `/p`: `$.items[*]` is not a supported JSONPath"),
            ("{ path: /p, capture: { unique: $.x } }", "capture name `unique` of `/p` is a built-in value"),
            ("{ path: /p, capture: { 2x: $.x } }", "capture name `2x` of `/p` must be"),
            ("{ method: HEAD, path: /p, capture: { x: $.x } }", "`HEAD /p` has no body to capture from"),
        ];
        for (step, want) in cases {
            let err = writes(&one(step), "stage", None).unwrap_err();
            assert!(err.starts_with("invalid `smoke.sequences`: "), "{err}");
            assert!(err.contains(want), "{step}: `{err}` lacks `{want}`");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
        for (yaml, want) in [
            ("sequences: [{ name: a, steps: [] }]", "sequence `a` has no steps"),
            ("sequences: [{ name: a, steps: [{ path: /x }] }, { name: a, steps: [{ path: /y }] }]", "two sequences are named `a`"),
            ("sequences: [{ name: \"a b\", steps: [{ path: /x }] }]", "sequence name `a b` must be"),
        ] {
            let err = writes(yaml, "stage", None).unwrap_err();
            assert!(err.contains(want), "{yaml}: {err}");
        }
        // A write in a plain check points at the sequences.
        let err = writes("{}", "stage", None).map(|_| ()).and_then(|_| {
            let f: super::super::schema::CheckFile =
                yaml_serde::from_str("{ method: POST, path: /p }").unwrap();
            CheckSpec::try_from(f)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        assert!(err
            .unwrap_err()
            .contains("writes belong in a `smoke.sequences` step"));
    }
}
