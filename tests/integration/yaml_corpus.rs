//! Every environments file the repository holds, parsed and validated, as snapshots: the bad-input
//! corpus (`tests/corpus/*.yml`, each with its inputs), the YAML blocks of the docs and the README, and
//! the environments texts written inline in the tests and examples. A change of YAML parser must leave
//! every snapshot as it is: the same config from the same file, and the same error with the same line and
//! column. Pure: no server, no AWS.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cloudshop_deploy::config::{self, FileConfig};
use cloudshop_deploy::github::Context;
use cloudshop_deploy::inputs::Inputs;
use cloudshop_deploy::Diagnose;

/// The environments file of a corpus case that does not bring its own (as `tests/integration/corpus.rs`).
const CORPUS_BASE: &str = "
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: stage-cloudshop-backend
";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ctx() -> Context {
    Context {
        sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
        repository: Some("octo/cloudshop".into()),
        run_id: Some("42".into()),
        run_attempt: Some("1".into()),
        workspace: PathBuf::from("/nonexistent/workspace"),
        ..Context::default()
    }
}

fn inputs(pairs: &BTreeMap<String, String>) -> Result<Inputs, String> {
    Inputs::from_env(pairs.iter().map(|(k, v)| (format!("INPUT_{k}"), v.clone())))
        .map_err(|e| format!("inputs: {e}"))
}

/// The Debug form of a config, with the compiled globs' internals (the globset and regex crates' own
/// structures, which change with their versions) left out: the patterns they were built from stay.
fn debug_config(c: &config::Config) -> String {
    let text = format!("{c:#?}");
    let mut out = String::new();
    let mut skip_until: Option<String> = None;
    for line in text.lines() {
        if let Some(end) = &skip_until {
            if line.starts_with(end.as_str()) {
                skip_until = None;
            }
            continue;
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        let body = line.trim_start();
        let value = body.split_once(": ").map_or(body, |(_, v)| v);
        let compiled = ["GlobSet {", "GlobSet(", "GlobMatcher {", "GlobMatcher("]
            .iter()
            .find(|p| value == **p);
        if let Some(p) = compiled {
            let name = &body[..body.len() - value.len()];
            let ty = p.trim_end_matches([' ', '{', '(']);
            writeln!(out, "{indent}{name}<{ty}>,").unwrap();
            let close = if p.ends_with('(') { ")" } else { "}" };
            skip_until = Some(format!("{indent}{close}"));
            continue;
        }
        writeln!(out, "{line}").unwrap();
    }
    out
}

fn error_text(e: &config::Error) -> String {
    format!("error: {e}\nhint: {}\n", e.hint())
}

/// Parse `text` and build the config for each of `envs` (every environment of the file when `None`).
fn describe(label: &str, text: Option<&str>, pairs: Option<&BTreeMap<String, String>>) -> String {
    let mut out = format!("==== {label}\n");
    let file = match text {
        None => FileConfig::default(),
        Some(t) => match config::parse_file("f.yml", t) {
            Ok(f) => f,
            Err(e) => {
                out.push_str(&error_text(&e));
                return out;
            }
        },
    };
    let runs: Vec<BTreeMap<String, String>> = match pairs {
        Some(p) => vec![p.clone()],
        None => file
            .environments
            .keys()
            .map(|name| BTreeMap::from([("environment".to_string(), name.clone())]))
            .collect(),
    };
    if runs.is_empty() {
        out.push_str("no environments\n");
    }
    for pairs in runs {
        writeln!(out, "-- inputs {pairs:?}").unwrap();
        let built = inputs(&pairs)
            .and_then(|i| config::build(&i, &file, &ctx()).map_err(|e| error_text(&e)));
        match built {
            Ok(c) => out.push_str(&debug_config(&c)),
            Err(e) => out.push_str(&e),
        }
    }
    out
}

fn files_under(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "snapshots") {
                continue;
            }
            files_under(&p, ext, out);
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| ext.contains(&x))
        {
            out.push(p);
        }
    }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap().display().to_string()
}

fn has_environments_key(text: &str) -> bool {
    text.lines()
        .any(|l| l.trim_start().starts_with("environments:"))
}

/// One case of the bad-input corpus: its inputs and environments text.
#[derive(serde::Deserialize)]
struct Case {
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    #[serde(default = "corpus_base")]
    environments: Option<String>,
}

fn corpus_base() -> Option<String> {
    Some(CORPUS_BASE.to_string())
}

#[test]
fn the_bad_input_corpus_parses_to_the_same_configs_and_errors() {
    let mut paths = Vec::new();
    files_under(&root().join("tests/corpus"), &["yml", "yaml"], &mut paths);
    paths.sort();
    assert!(paths.len() > 50, "{paths:?}");
    let mut out = String::new();
    for p in &paths {
        let text = std::fs::read_to_string(p).unwrap();
        let case: Case = yaml_serde::from_str(&text).unwrap();
        out.push_str(&describe(
            &rel(p),
            case.environments.as_deref(),
            Some(&case.inputs),
        ));
    }
    insta::assert_snapshot!(out);
}

/// The fenced YAML blocks of a Markdown file that hold an `environments:` key.
fn yaml_blocks(md: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        let fence = line.trim_start();
        match &mut current {
            None if fence.starts_with("```yaml") || fence.starts_with("```yml") => {
                current = Some(String::new())
            }
            Some(_) if fence.starts_with("```") => {
                blocks.extend(current.take().filter(|b| has_environments_key(b)))
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn the_docs_environments_files_parse_to_the_same_configs() {
    let mut paths = vec![root().join("README.md")];
    files_under(&root().join("docs"), &["md"], &mut paths);
    files_under(&root().join("docs"), &["yml", "yaml"], &mut paths);
    files_under(&root().join("examples"), &["yml", "yaml", "md"], &mut paths);
    paths.sort();
    let mut out = String::new();
    let mut seen = 0;
    for p in &paths {
        let text = std::fs::read_to_string(p).unwrap();
        let blocks = if p.extension().is_some_and(|x| x == "md") {
            yaml_blocks(&text)
        } else if has_environments_key(&text) && !text.contains("\njobs:") {
            vec![text]
        } else {
            Vec::new()
        };
        for (i, b) in blocks.iter().enumerate() {
            seen += 1;
            out.push_str(&describe(&format!("{} #{i}", rel(p)), Some(b), None));
        }
    }
    assert!(
        seen >= 3,
        "found only {seen} environments files in the docs"
    );
    insta::assert_snapshot!(out);
}

/// What a `{name}` of an inline `format!` template becomes: a URL for the ones that hold one, an empty
/// mapping for the ones that insert a block, else a number (valid as a name, a port or a count).
fn placeholder(name: &str) -> &'static str {
    match name {
        "api" | "web" | "base" | "website" | "stage_api" | "prod_api" => "http://127.0.0.1:7000",
        "smoke" | "signals" | "smoke_extra" | "CRUD" => "{}",
        "watch" => "1m",
        _ => "7000",
    }
}

/// An inline `format!` template made concrete: `{{`/`}}` unescaped, each `{name}` a [`placeholder`].
fn fill_template(lit: &str) -> String {
    let named = regex_lite::Regex::new(r"\{([A-Za-z_0-9.]*)(:[?#x0-9<>^.]*)?\}").unwrap();
    let mut out = String::new();
    let mut last = 0;
    for c in named.captures_iter(lit) {
        let m = c.get(0).unwrap();
        out.push_str(&lit[last..m.start()].replace("{{", "{").replace("}}", "}"));
        out.push_str(placeholder(&c[1]));
        last = m.end();
    }
    out.push_str(&lit[last..].replace("{{", "{").replace("}}", "}"));
    out
}

/// Raw string literals (`r"..."`, `r#"..."#`) of a Rust file that hold an `environments:` key.
fn inline_environments(src: &str) -> Vec<String> {
    let lit = regex_lite::Regex::new(r##"(?s)r#"(.*?)"#|r"(.*?)""##).unwrap();
    lit.captures_iter(src)
        .filter_map(|c| c.get(1).or_else(|| c.get(2)))
        .map(|m| m.as_str())
        .filter(|t| has_environments_key(t))
        .map(|t| {
            let looks_like_template = t.contains("{{") || t.contains("}}") || {
                let named = regex_lite::Regex::new(r"\{[A-Za-z_0-9]*(:[?#]*)?\}").unwrap();
                named.is_match(t)
            };
            if looks_like_template {
                fill_template(t)
            } else {
                t.to_string()
            }
        })
        .collect()
}

#[test]
fn the_inline_environments_of_the_tests_and_examples_parse_to_the_same_configs() {
    let mut paths = Vec::new();
    files_under(&root().join("tests"), &["rs"], &mut paths);
    files_under(&root().join("examples"), &["rs"], &mut paths);
    paths.retain(|p| !p.ends_with("tests/integration/yaml_corpus.rs"));
    paths.sort();
    let mut out = String::new();
    let mut seen = 0;
    for p in &paths {
        let text = std::fs::read_to_string(p).unwrap();
        for (i, t) in inline_environments(&text).iter().enumerate() {
            seen += 1;
            out.push_str(&describe(&format!("{} #{i}", rel(p)), Some(t), None));
        }
    }
    assert!(seen >= 10, "found only {seen} inline environments texts");
    insta::assert_snapshot!(out);
}

/// The parser's own message after the file name: what went wrong, where (line and column).
#[test]
fn parse_errors_keep_their_line_and_column() {
    let cases = [
        (
            "region: us-east-1\nenvironments:\n  stage:\n    clustr: x\n",
            "environments.stage: unknown field `clustr`, expected one of `region`, `role-to-assume`, \
             `github-environment`, `cluster`, `service`, `container`, `ecr-repository`, `api-url`, \
             `website-url`, `promote-from`, `registry-url`, `wait-timeout`, `rollback-on-failure`, \
             `desired-count`, `frontend`, `smoke`, `diagnosis`, `migrate`, `canary`, `promote` at line 4 column 5",
        ),
        (
            "region: us-east-1\nenvironments:\n  stage: [a, b\n",
            "environments.stage: invalid type: sequence, expected struct EnvironmentFile at line 3 column 10",
        ),
        (
            "region: us-east-1\nenvironments:\n  stage:\n    desired-count: many\n",
            "environments.stage.desired-count: invalid type: string \"many\", expected i32 at line 4 column 20",
        ),
        (
            "environments:\n  stage:\n\tcluster: x\n",
            "found character that cannot start any token at line 3 column 1, while scanning for the next token",
        ),
        (
            "environments:\n  stage:\n    cluster: \"x\n",
            "found unexpected end of stream at line 4 column 1, while scanning a quoted scalar at line 3 column 14",
        ),
        (
            "region: us-east-1\nregion: us-east-2\n",
            "duplicate field `region`",
        ),
        (
            "environments:\n  stage: &a\n    cluster: *b\n",
            "unknown anchor at line 3 column 14",
        ),
    ];
    for (text, want) in cases {
        let err = config::parse_file("f.yml", text).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("invalid environments file `f.yml`: {want}"),
            "{text:?}"
        );
    }
}
