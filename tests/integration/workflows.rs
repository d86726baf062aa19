//! The shipped workflows (`.github/workflows/`, `examples/workflows/`) keep the rules that make them run
//! on github.com as written and keep AWS access where it belongs:
//! - no `sudo` except in the empty-root check (Ubuntu's sudo drops `~/.cargo/bin` from PATH);
//! - `id-token: write` only in jobs that run the action: build jobs never hold it;
//! - a deploy job checks out the commit it deploys (not the default), promote and rollback jobs only the
//!   environments file (sparse);
//! - deploy jobs are serialised per environment and never cancel a rollout half-way;
//! - `timeout-minutes` covers every wait the action step configures, rollback included;
//! - pushes to main are never cancelled by the next push; the action repository offers no dispatch of a
//!   workflow that deploys (it has no app to deploy).
//!
//! Each rule is a function returning the problems it finds, run on the real files (no problem) and on a
//! broken copy (the expected problem), so every rule is shown to be able to fail.
//!
//! The docs are checked too: every YAML and JSON block in README.md and docs/ parses, the environments
//! file examples validate like the binary would, and the IAM policy files are JSON.

use harness as common;

use std::path::{Path, PathBuf};

use yaml_serde::Value;

/// Environments-file keys the workflows and docs already use but the config parser does not know yet;
/// they are stripped before validating examples. Empty this list once the keys are implemented.
const PLANNED_KEYS: &[&str] = &[];

/// Minutes a deploy job needs besides the waits: artifacts, image push or copy, preflight, frontend sync
/// and site restore.
const MARGIN_MINUTES: u64 = 10;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Workflow {
    /// Relative to the repository root.
    path: String,
    doc: Value,
}

fn load(path: &Path) -> Workflow {
    let text = std::fs::read_to_string(path).unwrap();
    Workflow {
        path: path.strip_prefix(root()).unwrap().display().to_string(),
        doc: yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    }
}

fn workflows() -> Vec<Workflow> {
    let mut out = Vec::new();
    for dir in [".github/workflows", "examples/workflows"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
            .collect();
        paths.sort();
        out.extend(paths.iter().map(|p| load(p)));
    }
    assert!(out.len() >= 7, "expected the shipped workflows");
    out
}

fn workflow(path: &str) -> Workflow {
    load(&root().join(path))
}

fn jobs(doc: &Value) -> Vec<(String, &Value)> {
    doc["jobs"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v))
                .collect()
        })
        .unwrap_or_default()
}

fn steps(job: &Value) -> Vec<&Value> {
    job["steps"]
        .as_sequence()
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn uses(step: &Value) -> String {
    str_of(&step["uses"])
}

/// A step that runs cloudshop-deploy (the published action or this checkout).
fn is_action(step: &Value) -> bool {
    let u = uses(step);
    u.starts_with("cloudshop/cloudshop-deploy@") || u == "./"
}

fn action_step(job: &Value) -> Option<&Value> {
    steps(job).into_iter().find(|s| is_action(s))
}

/// The action's `command` in a job (default `deploy`).
fn command(step: &Value) -> String {
    let c = str_of(&step["with"]["command"]);
    if c.is_empty() {
        "deploy".into()
    } else {
        c
    }
}

fn is_build_step(step: &Value) -> bool {
    let run = str_of(&step["run"]);
    uses(step).starts_with("docker/build-push-action@")
        || run.contains("docker build")
        || run.contains("npm ci")
        || run.contains("npm run build")
}

fn grants_id_token(v: &Value) -> bool {
    str_of(&v["permissions"]["id-token"]) == "write" || str_of(&v["permissions"]) == "write-all"
}

// ---- rules: each returns the problems it finds -------------------------------------------------------

/// `sudo` only in the empty-root check.
fn sudo_only_for_the_empty_root(wf: &Workflow) -> Vec<String> {
    let mut out = Vec::new();
    for (name, job) in jobs(&wf.doc) {
        for step in steps(job) {
            let run = str_of(&step["run"]);
            let has_sudo = run
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .any(|w| w == "sudo");
            let step_name = str_of(&step["name"]).to_ascii_lowercase();
            if has_sudo && !step_name.contains("empty root") && !step_name.contains("empty-root") {
                out.push(format!(
                    "{}: job `{name}` step `{step_name}` runs sudo",
                    wf.path
                ));
            }
        }
    }
    out
}

/// `id-token: write` only in jobs that run the action (a caller job of a reusable workflow passes it on).
fn id_token_only_where_the_action_runs(wf: &Workflow) -> Vec<String> {
    let mut out = Vec::new();
    if grants_id_token(&wf.doc) {
        out.push(format!(
            "{}: the workflow grants id-token to every job",
            wf.path
        ));
    }
    for (name, job) in jobs(&wf.doc) {
        if !grants_id_token(job) || job.get("uses").is_some() {
            continue;
        }
        if steps(job).iter().any(|s| is_build_step(s)) {
            out.push(format!("{}: build job `{name}` holds id-token", wf.path));
        } else if action_step(job).is_none() {
            out.push(format!(
                "{}: job `{name}` holds id-token but does not run the action",
                wf.path
            ));
        }
    }
    out
}

/// Deploy jobs check out the commit they deploy; promote and rollback jobs only the environments file.
fn deploy_jobs_check_out_what_they_deploy(wf: &Workflow) -> Vec<String> {
    let mut out = Vec::new();
    for (name, job) in jobs(&wf.doc) {
        let Some(action) = action_step(job) else {
            continue;
        };
        let checkouts: Vec<&Value> = steps(job)
            .into_iter()
            .filter(|s| uses(s).starts_with("actions/checkout@"))
            .collect();
        let [checkout] = checkouts[..] else {
            out.push(format!(
                "{}: job `{name}` must check out exactly once",
                wf.path
            ));
            continue;
        };
        let with = &checkout["with"];
        if command(action) == "deploy" {
            let r = str_of(&with["ref"]);
            let tag = str_of(&action["with"]["image-tag"]);
            if r.is_empty() || r.contains("github.sha") || r.contains("github.ref") {
                out.push(format!(
                    "{}: deploy job `{name}` checks out the default ref, not the deployed one",
                    wf.path
                ));
            } else if r != tag {
                out.push(format!(
                    "{}: deploy job `{name}` checks out `{r}` but deploys image tag `{tag}`",
                    wf.path
                ));
            }
        } else if str_of(&with["sparse-checkout"]).is_empty() {
            out.push(format!(
                "{}: {} job `{name}` checks out the whole repository, not only the environments file",
                wf.path,
                command(action)
            ));
        }
    }
    out
}

/// Deploy jobs: one per environment at a time, never cancelled by the next one.
fn deploy_jobs_queue_instead_of_cancelling(wf: &Workflow) -> Vec<String> {
    let mut out = Vec::new();
    for (name, job) in jobs(&wf.doc) {
        if action_step(job).is_none() {
            continue;
        }
        let c = &job["concurrency"];
        if str_of(&c["group"]).is_empty() {
            out.push(format!(
                "{}: deploy job `{name}` has no concurrency group",
                wf.path
            ));
        }
        let cancel = str_of(&c["cancel-in-progress"]);
        if !(cancel.is_empty() || cancel == "false") {
            out.push(format!(
                "{}: deploy job `{name}` cancels in progress (`{cancel}`)",
                wf.path
            ));
        }
        let top = str_of(&wf.doc["concurrency"]["cancel-in-progress"]);
        if !(top.is_empty() || top == "false") {
            out.push(format!(
                "{}: the workflow's concurrency cancels deploy job `{name}`",
                wf.path
            ));
        }
    }
    out
}

/// Minutes of a literal humantime value (`30m`, `90s`, `1h`, `0`).
fn minutes(v: &str) -> Result<u64, String> {
    if v.contains("${{") {
        return Err(format!(
            "`{v}` is an expression; the job timeout cannot follow it"
        ));
    }
    let d = humantime::parse_duration(v.trim())
        .or_else(|e| {
            if v.trim() == "0" {
                Ok(std::time::Duration::ZERO)
            } else {
                Err(e)
            }
        })
        .map_err(|e| format!("`{v}`: {e}"))?;
    Ok(d.as_secs().div_ceil(60))
}

/// `timeout-minutes` covers the waits the action step configures: the rollout, the rollback's rollout
/// (bounded by the same `wait-timeout`) unless rollback is off, the smoke tests and the watch, plus
/// [`MARGIN_MINUTES`]. The waits must be literal in the step: they override the environments file, so the
/// job's bound is known.
fn timeouts_cover_the_waits(wf: &Workflow) -> Vec<String> {
    let mut out = Vec::new();
    for (name, job) in jobs(&wf.doc) {
        let Some(action) = action_step(job) else {
            continue;
        };
        let with = &action["with"];
        let mut need = MARGIN_MINUTES;
        let mut keys = vec!["wait-timeout", "smoke-timeout"];
        if command(action) != "rollback" {
            keys.push("watch");
        }
        for key in keys {
            let v = str_of(&with[key]);
            if v.is_empty() {
                out.push(format!(
                    "{}: job `{name}` leaves `{key}` to the environments file; set it in the step",
                    wf.path
                ));
                continue;
            }
            match minutes(&v) {
                Ok(m) => need += m,
                Err(e) => out.push(format!("{}: job `{name}` `{key}`: {e}", wf.path)),
            }
        }
        let rollback_on = str_of(&with["rollback-on-failure"]) != "false";
        if command(action) != "rollback" && rollback_on {
            need += minutes(&str_of(&with["wait-timeout"])).unwrap_or(0);
        }
        match job["timeout-minutes"].as_u64() {
            Some(t) if t >= need => {}
            Some(t) => out.push(format!(
                "{}: job `{name}` timeout-minutes {t} < {need} needed by its waits",
                wf.path
            )),
            None => out.push(format!(
                "{}: job `{name}` has no literal timeout-minutes",
                wf.path
            )),
        }
    }
    out
}

fn triggers(doc: &Value) -> Vec<String> {
    // `on` may read as the boolean `true` under YAML 1.1 rules.
    let on = doc
        .get("on")
        .or_else(|| doc.get(Value::Bool(true)))
        .cloned()
        .unwrap_or(Value::Null);
    match on {
        Value::String(s) => vec![s],
        Value::Sequence(s) => s.iter().map(str_of).collect(),
        Value::Mapping(m) => m.keys().map(str_of).collect(),
        _ => vec![],
    }
}

/// A push to main is tested to the end: the workflow-level concurrency never cancels it.
fn main_is_never_cancelled(wf: &Workflow) -> Vec<String> {
    let on = wf.doc.get("on").or_else(|| wf.doc.get(Value::Bool(true)));
    let pushes_main = on
        .map(|on| {
            on["push"]["branches"]
                .as_sequence()
                .is_some_and(|b| b.iter().any(|b| str_of(b) == "main"))
        })
        .unwrap_or(false);
    let cancel = str_of(&wf.doc["concurrency"]["cancel-in-progress"]);
    if pushes_main && cancel == "true" {
        vec![format!(
            "{}: cancel-in-progress on pushes to main leaves commits untested",
            wf.path
        )]
    } else {
        vec![]
    }
}

/// The action repository has no app: none of its own workflows that deploy may be dispatched there.
fn no_dispatch_of_a_deploy_in_the_action_repository(wf: &Workflow) -> Vec<String> {
    if !wf.path.starts_with(".github/") {
        return vec![];
    }
    let deploys = jobs(&wf.doc).iter().any(|(_, j)| action_step(j).is_some());
    if deploys && triggers(&wf.doc).iter().any(|t| t == "workflow_dispatch") {
        vec![format!(
            "{}: offers a dispatch this repository cannot serve",
            wf.path
        )]
    } else {
        vec![]
    }
}

/// Third-party actions are pinned by commit SHA; cloudshop's own action follows its major tag.
fn third_party_actions_pinned(wf: &Workflow) -> Vec<String> {
    let mut out = Vec::new();
    for (name, job) in jobs(&wf.doc) {
        let mut refs: Vec<String> = steps(job).into_iter().map(uses).collect();
        refs.push(str_of(&job["uses"]));
        for u in refs {
            if u.is_empty() || u.starts_with("./") || u.starts_with("cloudshop/") {
                continue;
            }
            let sha = u.rsplit_once('@').map(|(_, r)| r).unwrap_or("");
            if sha.len() != 40 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                out.push(format!("{}: job `{name}` uses `{u}` unpinned", wf.path));
            }
        }
    }
    out
}

/// Promotions take the image tag as the workflow's input (nothing is built), and never switch the
/// verification off in the file: `allow-unverified` is passed through from an input (default false) or
/// left out.
fn promotions_take_only_what_passed(wf: &Workflow) -> Vec<String> {
    let mut out = Vec::new();
    for (name, job) in jobs(&wf.doc) {
        // A job running the action, or one calling the reusable promote workflow.
        let with = match action_step(job) {
            Some(a) if command(a) == "promote" => &a["with"],
            Some(_) => continue,
            None if str_of(&job["uses"]).contains("/promote-to-production.yml@") => &job["with"],
            None => continue,
        };
        let tag = str_of(&with["image-tag"]);
        if !tag.contains("inputs.image-tag") {
            out.push(format!(
                "{}: promote job `{name}` takes image tag `{tag}`, not the `image-tag` input",
                wf.path
            ));
        }
        if steps(job).iter().any(|s| is_build_step(s)) {
            out.push(format!("{}: promote job `{name}` builds", wf.path));
        }
        let allow = str_of(&with["allow-unverified"]);
        if !(allow.is_empty() || allow.contains("inputs.allow-unverified")) {
            out.push(format!(
                "{}: promote job `{name}` sets `allow-unverified: {allow}` in the file",
                wf.path
            ));
        }
    }
    if let Some(input) = wf.doc["on"].as_mapping().and_then(|on| {
        on.values()
            .find_map(|t| t["inputs"].get("allow-unverified"))
    }) {
        if str_of(&input["default"]) != "false" {
            out.push(format!(
                "{}: the `allow-unverified` input must default to false",
                wf.path
            ));
        }
    }
    out
}

type Rule = fn(&Workflow) -> Vec<String>;

const RULES: &[(&str, Rule)] = &[
    ("sudo", sudo_only_for_the_empty_root),
    ("id-token", id_token_only_where_the_action_runs),
    ("checkout", deploy_jobs_check_out_what_they_deploy),
    ("concurrency", deploy_jobs_queue_instead_of_cancelling),
    ("timeout", timeouts_cover_the_waits),
    ("main", main_is_never_cancelled),
    ("dispatch", no_dispatch_of_a_deploy_in_the_action_repository),
    ("pins", third_party_actions_pinned),
    ("promote", promotions_take_only_what_passed),
];

#[test]
fn every_shipped_workflow_keeps_every_rule() {
    let mut problems = Vec::new();
    for wf in workflows() {
        for (_, rule) in RULES {
            problems.extend(rule(&wf));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_rules_see_the_jobs_they_are_about() {
    // Guard against rules that pass because they match nothing.
    let deploy = workflow(".github/workflows/deploy.yml");
    let names: Vec<String> = jobs(&deploy.doc)
        .into_iter()
        .filter(|(_, j)| action_step(j).is_some())
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["deploy"]);
    assert!(jobs(&deploy.doc)
        .iter()
        .any(|(n, j)| n == "build" && steps(j).iter().any(|s| is_build_step(s))));
    for path in [
        ".github/workflows/promote-to-production.yml",
        ".github/workflows/rollback.yml",
    ] {
        let wf = workflow(path);
        assert_eq!(
            jobs(&wf.doc)
                .iter()
                .filter(|(_, j)| action_step(j).is_some())
                .count(),
            1,
            "{path}"
        );
    }
    let ci = workflow(".github/workflows/ci.yml");
    assert!(triggers(&ci.doc).contains(&"push".to_string()));
}

// ---- each rule fails on a broken copy ----------------------------------------------------------------

/// `path` with `edit` applied to its text; the problems `rule` finds there.
fn broken(path: &str, edit: impl Fn(&str) -> String, rule: Rule) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    let changed = edit(&text);
    assert_ne!(changed, text, "the edit must change {path}");
    let wf = Workflow {
        path: path.into(),
        doc: yaml_serde::from_str(&changed).unwrap(),
    };
    rule(&wf)
}

fn expect(problems: Vec<String>, needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got {problems:#?}"
    );
}

#[test]
fn sudo_outside_the_empty_root_check_fails() {
    let p = broken(
        ".github/workflows/ci.yml",
        |t| {
            t.replace(
                "run: scripts/test",
                "run: sudo --preserve-env=PATH scripts/test",
            )
        },
        sudo_only_for_the_empty_root,
    );
    expect(p, "runs sudo");
    // The same command in a step named for the empty-root check is allowed.
    let p = broken(
        ".github/workflows/ci.yml",
        |t| {
            t.replace("run: scripts/test", "run: sudo scripts/check-static")
                .replace("name: Test", "name: Empty-root check")
        },
        sudo_only_for_the_empty_root,
    );
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn a_build_job_with_id_token_fails() {
    let p = broken(
        ".github/workflows/deploy.yml",
        |t| {
            t.replacen(
                "contents: read # no id-token",
                "id-token: write\n      contents: read # no id-token",
                1,
            )
        },
        id_token_only_where_the_action_runs,
    );
    expect(p, "build job `build` holds id-token");
    let p = broken(
        ".github/workflows/promote-to-production.yml",
        |t| t.replacen("permissions: {}", "permissions:\n  id-token: write", 1),
        id_token_only_where_the_action_runs,
    );
    expect(p, "grants id-token to every job");
    let p = broken(
        ".github/workflows/rollback.yml",
        |t| {
            t.replacen(
                "  resolve:\n    runs-on: ubuntu-24.04\n    timeout-minutes: 5\n    permissions:\n      contents: read",
                "  resolve:\n    runs-on: ubuntu-24.04\n    timeout-minutes: 5\n    permissions:\n      contents: read\n      id-token: write",
                1,
            )
        },
        id_token_only_where_the_action_runs,
    );
    expect(
        p,
        "job `resolve` holds id-token but does not run the action",
    );
}

#[test]
fn a_deploy_job_checking_out_the_default_ref_fails() {
    let p = broken(
        ".github/workflows/deploy.yml",
        |t| t.replace("          ref: ${{ needs.build.outputs.sha }}\n", ""),
        deploy_jobs_check_out_what_they_deploy,
    );
    expect(p, "checks out the default ref");
    let p = broken(
        ".github/workflows/deploy.yml",
        |t| {
            t.replace(
                "ref: ${{ needs.build.outputs.sha }}",
                "ref: ${{ github.sha }}",
            )
        },
        deploy_jobs_check_out_what_they_deploy,
    );
    expect(p, "checks out the default ref");
    let p = broken(
        ".github/workflows/deploy.yml",
        |t| {
            t.replace(
                "image-tag: ${{ needs.build.outputs.sha }}",
                "image-tag: ${{ inputs.ref }}",
            )
        },
        deploy_jobs_check_out_what_they_deploy,
    );
    expect(p, "but deploys image tag");
    let p = broken(
        ".github/workflows/promote-to-production.yml",
        |t| {
            t.replace(
                "          sparse-checkout: ${{ inputs.config }}\n          sparse-checkout-cone-mode: false\n\n      - name: Promote",
                "\n      - name: Promote",
            )
        },
        deploy_jobs_check_out_what_they_deploy,
    );
    expect(p, "promote job `promote` checks out the whole repository");
}

#[test]
fn a_promotion_that_skips_verification_or_builds_fails() {
    for path in [
        ".github/workflows/promote-to-production.yml",
        "examples/workflows/promote-to-production.yml",
    ] {
        assert!(
            promotions_take_only_what_passed(&workflow(path)).is_empty(),
            "{path}"
        );
        let p = broken(
            path,
            |t| {
                t.replace(
                    "allow-unverified: ${{ inputs.allow-unverified }}",
                    "allow-unverified: true",
                )
            },
            promotions_take_only_what_passed,
        );
        expect(p, "sets `allow-unverified: true` in the file");
        let p = broken(
            path,
            |t| {
                t.replace(
                    "image-tag: ${{ inputs.image-tag }}",
                    "image-tag: ${{ github.sha }}",
                )
            },
            promotions_take_only_what_passed,
        );
        expect(p, "not the `image-tag` input");
        let p = broken(
            path,
            |t| {
                t.replacen(
                    "        type: boolean\n        default: false",
                    "        type: boolean\n        default: true",
                    1,
                )
            },
            promotions_take_only_what_passed,
        );
        expect(p, "must default to false");
    }
    let p = broken(
        ".github/workflows/promote-to-production.yml",
        |t| {
            t.replace(
                "      - name: Promote\n",
                "      - run: npm ci && npm run build\n      - name: Promote\n",
            )
        },
        promotions_take_only_what_passed,
    );
    expect(p, "promote job `promote` builds");
}

#[test]
fn a_deploy_job_that_cancels_fails() {
    let p = broken(
        ".github/workflows/deploy.yml",
        |t| {
            t.replace(
                "      cancel-in-progress: false\n",
                "      cancel-in-progress: true\n",
            )
        },
        deploy_jobs_queue_instead_of_cancelling,
    );
    expect(p, "cancels in progress");
    let p = broken(
        ".github/workflows/rollback.yml",
        |t| {
            t.replace("    concurrency:\n      group: cloudshop-deploy-${{ inputs.environment }}\n      cancel-in-progress: false\n", "")
        },
        deploy_jobs_queue_instead_of_cancelling,
    );
    expect(p, "has no concurrency group");
}

#[test]
fn a_timeout_shorter_than_the_waits_fails() {
    // The job timeout the issue found: 60 minutes for 30m + 30m rollback + smoke + a 10m watch.
    let p = broken(
        ".github/workflows/deploy.yml",
        |t| {
            t.replace(
                "timeout-minutes: 100\n    environment:",
                "timeout-minutes: 60\n    environment:",
            )
        },
        timeouts_cover_the_waits,
    );
    expect(p, "timeout-minutes 60 < 82");
    let p = broken(
        ".github/workflows/promote-to-production.yml",
        |t| t.replace("          watch: 10m\n", "          watch: 40m\n"),
        timeouts_cover_the_waits,
    );
    expect(p, "timeout-minutes 100 < 112");
    let p = broken(
        ".github/workflows/rollback.yml",
        |t| {
            t.replace(
                "          wait-timeout: 30m\n",
                "          wait-timeout: ${{ inputs.wait }}\n",
            )
        },
        timeouts_cover_the_waits,
    );
    expect(p, "is an expression");
    let p = broken(
        ".github/workflows/rollback.yml",
        |t| t.replace("          smoke-timeout: 2m\n", ""),
        timeouts_cover_the_waits,
    );
    expect(p, "leaves `smoke-timeout` to the environments file");
}

#[test]
fn cancelling_pushes_to_main_fails() {
    let p = broken(
        ".github/workflows/ci.yml",
        |t| {
            t.replace(
                "cancel-in-progress: ${{ github.ref != 'refs/heads/main' }}",
                "cancel-in-progress: true",
            )
        },
        main_is_never_cancelled,
    );
    expect(p, "leaves commits untested");
}

#[test]
fn a_dispatch_in_the_action_repository_fails() {
    let p = broken(
        ".github/workflows/promote-to-production.yml",
        |t| {
            t.replacen(
                "on:\n  workflow_call:",
                "on:\n  workflow_dispatch:\n  workflow_call:",
                1,
            )
        },
        no_dispatch_of_a_deploy_in_the_action_repository,
    );
    expect(p, "offers a dispatch");
}

#[test]
fn an_unpinned_third_party_action_fails() {
    let p = broken(
        ".github/workflows/deploy.yml",
        |t| {
            t.replace(
                "docker/setup-buildx-action@e468171a9de216ec08956ac3ada2f0791b6bd435",
                "docker/setup-buildx-action@v3",
            )
        },
        third_party_actions_pinned,
    );
    expect(p, "unpinned");
}

// ---- docs -----------------------------------------------------------------------------------------

/// Fenced blocks of `lang` in a Markdown text.
fn blocks<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
    text.split(&format!("```{lang}\n"))
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default())
        .collect()
}

fn markdown_files() -> Vec<PathBuf> {
    let mut out = vec![root().join("README.md")];
    for e in walkdir::WalkDir::new(root().join("docs")) {
        let e = e.unwrap();
        if e.path().extension().is_some_and(|x| x == "md") {
            out.push(e.path().to_path_buf());
        }
    }
    out.sort();
    out
}

fn without_planned_keys(block: &str) -> String {
    block
        .lines()
        .filter(|l| !PLANNED_KEYS.iter().any(|k| l.trim_start().starts_with(k)))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn every_yaml_and_json_block_in_the_docs_parses() {
    let mut yaml = 0;
    let mut json = 0;
    let mut environments_files = 0;
    for path in markdown_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        for b in blocks(&text, "yaml") {
            let v: Value = yaml_serde::from_str(b).unwrap_or_else(|e| panic!("{name}: {e}\n{b}"));
            yaml += 1;
            // A whole environments file validates as the binary would read it.
            if v.get("environments").is_some() {
                cloudshop_deploy::config::parse_file(&name, &without_planned_keys(b))
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{b}"));
                environments_files += 1;
            }
        }
        for b in blocks(&text, "json") {
            serde_json::from_str::<serde_json::Value>(b)
                .unwrap_or_else(|e| panic!("{name}: {e}\n{b}"));
            json += 1;
        }
    }
    assert!(yaml >= 10, "{yaml} YAML blocks");
    assert!(json >= 1, "{json} JSON blocks");
    assert!(
        environments_files >= 2,
        "{environments_files} environments files"
    );
}

/// Every shell block in the README and `docs/` is valid shell (`bash -n`), so a copied command at least
/// parses.
#[test]
fn every_shell_block_in_the_docs_parses() {
    let mut n = 0;
    for path in markdown_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        for b in blocks(&text, "sh").into_iter().chain(blocks(&text, "bash")) {
            let out = std::process::Command::new("bash")
                .args(["-n", "-c", b])
                .output()
                .expect("run bash");
            assert!(
                out.status.success(),
                "{name}: {}\n{b}",
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert!(n >= 5, "{n} shell blocks");
}

#[test]
fn the_iam_files_are_valid_policies() {
    let dir = root().join("docs/iam");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["Version"], "2012-10-17", "{}", p.display());
        let statements = v["Statement"].as_array().unwrap();
        assert!(!statements.is_empty());
        for s in statements {
            assert_eq!(s["Effect"], "Allow", "{}", p.display());
            assert!(s["Action"].is_array() || s["Action"].is_string());
            // Least privilege: a resource wildcard only where the API has no resource-level permission.
            let actions: Vec<String> = match &s["Action"] {
                serde_json::Value::String(a) => vec![a.clone()],
                a => a
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect(),
            };
            if s["Resource"] == "*" {
                for a in &actions {
                    // `ecs:ListTasks` takes no task ARN; it is scoped by the `ecs:cluster` condition.
                    let scoped = a == "ecs:ListTasks" && s["Condition"].is_object();
                    assert!(
                        scoped || WILDCARD_ONLY.contains(&a.as_str()),
                        "{}: `{a}` on Resource \"*\"",
                        p.display()
                    );
                }
            }
        }
        n += 1;
    }
    assert!(n >= 5, "{n} policy files in docs/iam");
}

/// Operations IAM cannot scope to a resource.
const WILDCARD_ONLY: &[&str] = &[
    "sts:GetCallerIdentity",
    "ecr:GetAuthorizationToken",
    "ecs:DescribeTaskDefinition",
    "ecs:RegisterTaskDefinition",
    "ecs:ListTaskDefinitions",
    "sts:AssumeRoleWithWebIdentity",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeRules",
    "cloudwatch:GetMetricData",
];

// ---- the documented IAM policies against the code ---------------------------------------------------

/// SDK operations the product code calls, as IAM actions: every `.operation()` whose receiver is an SDK
/// client (`ecs`, `ecr`, `s3`, `sts`, `cf`/`cloudfront`, `logs`, `elb`, `cloudwatch`), on the same line or the line before (fluent
/// builders split over lines). Test modules are cut off at `#[cfg(test)]`.
fn called_iam_actions() -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for e in walkdir::WalkDir::new(root().join("src")) {
        let e = e.unwrap();
        if e.path().extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut prev_tail = String::new();
        for line in code.lines() {
            let joined = format!("{prev_tail}{}", line.trim_start());
            for (service, receivers) in [
                ("ecs", &["ecs"][..]),
                ("ecr", &["ecr"][..]),
                ("s3", &["s3"][..]),
                ("sts", &["sts"][..]),
                ("cloudfront", &["cf", "cloudfront"][..]),
                ("logs", &["logs"][..]),
                ("elasticloadbalancing", &["elb"][..]),
                ("cloudwatch", &["cloudwatch"][..]),
            ] {
                for r in receivers {
                    for (i, _) in joined.match_indices(&format!("{r}.")) {
                        let before = joined[..i].chars().last();
                        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                            continue; // `foo_ecs.` is not the client
                        }
                        let rest = &joined[i + r.len() + 1..];
                        let op: String = rest
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit()
                            })
                            .collect();
                        // Client methods that are not AWS operations, and collections named like a client.
                        let not_an_operation =
                            ["clone", "config", "is_empty", "iter", "len"].contains(&op.as_str());
                        if !op.is_empty() && !not_an_operation && rest[op.len()..].starts_with("()")
                        {
                            out.insert(iam_action(service, &op));
                        }
                    }
                }
            }
            // A line that ends with a client (`let out = ecs` / `.ecs`) continues on the next one.
            let t = line.trim_end();
            prev_tail = [
                "ecs",
                "ecr",
                "s3",
                "sts",
                "cf",
                "cloudfront",
                "logs",
                "elb",
                "cloudwatch",
            ]
            .iter()
            .find(|r| t.ends_with(&format!(".{r}")) || t.ends_with(&format!(" {r}")))
            .map(|r| format!(" {r}"))
            .unwrap_or_default();
        }
    }
    out
}

/// The IAM action that authorises an SDK operation.
fn iam_action(service: &str, op: &str) -> String {
    let s3 = |a: &str| format!("s3:{a}");
    match (service, op) {
        ("s3", "head_object") => s3("GetObject"),
        ("s3", "list_objects_v2") => s3("ListBucket"),
        ("s3", "delete_objects") => s3("DeleteObject"),
        // A copy within the bucket: `s3:GetObject` on the source (granted with the reads) and
        // `s3:PutObject` on the target.
        ("s3", "copy_object") => s3("PutObject"),
        ("s3", "create_multipart_upload" | "upload_part" | "complete_multipart_upload") => {
            s3("PutObject")
        }
        _ => {
            let camel: String = op
                .split('_')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            format!("{service}:{camel}")
        }
    }
}

/// What is authorised without an SDK call of the same name: the OCI registry traffic of image pushes and
/// promotions (ECR authorises blob and upload requests with these actions), passing the task roles
/// that a new task-definition revision names, and tagging the migration task `RunTask` creates tagged.
const REGISTRY_AND_IMPLIED: &[&str] = &[
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:GetDownloadUrlForLayer",
    "ecr:ListImages",
    "iam:PassRole",
    "ecs:TagResource",
];

#[test]
fn the_policies_grant_exactly_what_the_code_calls() {
    let called = called_iam_actions();
    // The scan sees the calls it must see (a scan that finds nothing would prove nothing).
    for a in [
        "ecs:UpdateService",
        "ecr:PutImage",
        "s3:PutObject",
        "sts:GetCallerIdentity",
    ] {
        assert!(called.contains(a), "{a} not found in src: {called:?}");
    }
    // Assuming the role is the trust policy's business, not a permission of the role.
    let needed: std::collections::BTreeSet<String> = called
        .iter()
        .filter(|a| *a != "sts:AssumeRoleWithWebIdentity")
        .cloned()
        .chain(REGISTRY_AND_IMPLIED.iter().map(|a| a.to_string()))
        .collect();
    let mut granted = std::collections::BTreeSet::new();
    for f in [
        "deploy-stage.json",
        "promote-prod.json",
        "rollback-stage.json",
        "rollback-prod.json",
        "releases-prod.json",
        "cloudfront-invalidation.json",
    ] {
        granted.extend(common::policy_actions(f));
    }
    let missing: Vec<_> = needed.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&needed).collect();
    assert!(
        missing.is_empty(),
        "the code calls, no policy grants: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "a policy grants, the code never calls: {extra:?}"
    );
    // Each command's own needs.
    let deploy = common::policy_actions("deploy-stage.json");
    let promote = common::policy_actions("promote-prod.json");
    let rollback = common::policy_actions("rollback-prod.json");
    assert!(promote.is_superset(&deploy), "promote deploys too");
    assert!(
        promote.contains("ecr:GetDownloadUrlForLayer"),
        "promote reads the source"
    );
    assert!(rollback.contains("ecs:ListServiceDeployments"));
    assert!(
        rollback.contains("ecr:ListImages") && rollback.contains("ecr:GetDownloadUrlForLayer"),
        "a rollback reads the verification markers"
    );
    assert!(!rollback.contains("ecs:ListTaskDefinitions"));
    let releases = common::policy_actions("releases-prod.json");
    assert!(
        rollback.is_superset(&releases),
        "listing releases needs nothing a rollback does not: {:?}",
        releases.difference(&rollback).collect::<Vec<_>>()
    );
    assert!(
        !rollback.contains("ecr:PutImage"),
        "a rollback writes no image"
    );
}

#[test]
fn the_source_repository_is_readable_by_the_promotion() {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/iam/promote-prod.json")).unwrap(),
    )
    .unwrap();
    let source = v["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["Resource"]
                .as_str()
                .is_some_and(|r| r.ends_with(":repository/stage-cloudshop-backend"))
        })
        .expect("a statement on the stage repository");
    let actions: Vec<&str> = source["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for a in [
        "ecr:DescribeRepositories",
        "ecr:DescribeImages",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ] {
        assert!(actions.contains(&a), "{a} on the promotion source");
    }
    assert!(
        !actions.contains(&"ecr:PutImage"),
        "the source is read only"
    );
}

#[test]
fn the_release_image_stage_follows_the_container_action_rules() {
    // The published image is the Dockerfile's `release` stage (the default last stage is checked by
    // tests/action_metadata.rs): the prebuilt binary for the target architecture, alone.
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stage = text
        .split("\nFROM ")
        .find(|s| s.starts_with("scratch AS release"))
        .expect("a `FROM scratch AS release` stage");
    let stage = stage.split("\nFROM ").next().unwrap();
    assert!(stage.contains("ARG TARGETARCH"));
    assert!(stage.contains("COPY dist/linux/${TARGETARCH}/cloudshop-deploy /cloudshop-deploy"));
    assert!(stage.contains("ENTRYPOINT [\"/cloudshop-deploy\"]"));
    for line in stage.lines() {
        let l = line.trim_start().to_ascii_uppercase();
        assert!(
            !l.starts_with("USER ") && !l.starts_with("WORKDIR ") && !l.starts_with("RUN "),
            "{line}"
        );
    }
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(
        !ignore.lines().any(|l| l.trim() == "dist"),
        "the release stage copies from dist/"
    );
    let release = workflow(".github/workflows/release.yml");
    let text = yaml_serde::to_string(&release.doc).unwrap();
    assert!(text.contains("target: release"));
    assert!(text.contains("platforms: linux/amd64,linux/arm64"));
    assert!(text.contains("org.opencontainers.image.source="));
}

/// The Terraform of docs/iam reads every policy file there (trust included), so "Terraform applies the
/// JSON files" holds for each one; the branch trust form is the one documented as not used.
#[test]
fn the_iam_terraform_reads_every_policy_file() {
    let tf = std::fs::read_to_string(root().join("docs/iam/main.tf")).unwrap();
    for e in std::fs::read_dir(root().join("docs/iam")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        if !name.ends_with(".json") || name == "trust-branch-main.json" {
            continue;
        }
        assert!(
            tf.contains(&format!("\"{name}\"")) || tf.contains(&format!("/{name}\"")),
            "main.tf does not read {name}"
        );
    }
    assert!(
        !tf.contains("aws_iam_policy_document"),
        "a policy written in Terraform instead of read from its file"
    );
}

/// A copy of the action repository's release inputs (action.yml, .github/workflows, scripts/pin-release)
/// in a fresh git repository, with `edit` applied to each workflow's text.
fn release_checkout(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join(".github/workflows")).unwrap();
    std::fs::create_dir_all(d.join("scripts")).unwrap();
    std::fs::copy(root().join("action.yml"), d.join("action.yml")).unwrap();
    std::fs::copy(
        root().join("scripts/pin-release"),
        d.join("scripts/pin-release"),
    )
    .unwrap();
    for e in std::fs::read_dir(root().join(".github/workflows")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            d.join(".github/workflows").join(p.file_name().unwrap()),
            edit(&text),
        )
        .unwrap();
    }
    git(d, &["init", "-q"]);
    git(d, &["add", "-A"]);
    git(d, &["commit", "-qm", "before the release"]);
    dir
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .envs([
            ("GIT_AUTHOR_NAME", "t"),
            ("GIT_AUTHOR_EMAIL", "t@example.com"),
            ("GIT_COMMITTER_NAME", "t"),
            ("GIT_COMMITTER_EMAIL", "t@example.com"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn pin_release(dir: &Path, image: &str) -> std::process::Output {
    std::process::Command::new("bash")
        .arg("scripts/pin-release")
        .args([image, "1.2.0"])
        .current_dir(dir)
        .env("GITHUB_REPOSITORY", "cloudshop/cloudshop-deploy")
        .envs([
            ("GIT_AUTHOR_NAME", "t"),
            ("GIT_AUTHOR_EMAIL", "t@example.com"),
            ("GIT_COMMITTER_NAME", "t"),
            ("GIT_COMMITTER_EMAIL", "t@example.com"),
        ])
        .output()
        .unwrap()
}

/// Pinning: a reusable workflow at a release's tag or SHA runs that release's image. The release job
/// runs scripts/pin-release, which makes two commits: action.yml runs the image by digest, then every
/// workflow that calls the action calls it at the first commit's SHA. Checked by running the script on a
/// copy of the real files: every action step of every reusable workflow names that SHA, and the
/// action.yml at that SHA names the digest. A call at another ref than `@vN` makes the script refuse.
#[test]
fn a_released_reusable_workflow_runs_the_image_of_its_own_release() {
    let release = std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap();
    assert!(
        release.contains("scripts/pin-release \"$IMAGE_REF\" \"$VERSION\""),
        "the release job pins with scripts/pin-release"
    );
    let image = format!(
        "ghcr.io/cloudshop/cloudshop-deploy@sha256:{}",
        "a".repeat(64)
    );
    let dir = release_checkout(|t| t.to_string());
    let d = dir.path();
    let out = pin_release(d, &image);
    assert!(out.status.success(), "{out:?}");
    let action_sha = git(d, &["rev-parse", "HEAD~1"]);
    let pinned_action = git(d, &["show", &format!("{action_sha}:action.yml")]);
    assert!(
        pinned_action
            .lines()
            .any(|l| l == format!("  image: docker://{image}")),
        "{pinned_action}"
    );
    let mut calls = 0;
    for e in std::fs::read_dir(d.join(".github/workflows")).unwrap() {
        let w = load_at(&e.unwrap().path());
        for (name, job) in jobs(&w) {
            for step in steps(job) {
                let u = uses(step);
                if u.starts_with("cloudshop/cloudshop-deploy@") {
                    calls += 1;
                    assert_eq!(
                        u,
                        format!("cloudshop/cloudshop-deploy@{action_sha}"),
                        "{name}"
                    );
                }
            }
        }
    }
    assert!(
        calls >= 3,
        "deploy, promote and rollback call the action: {calls}"
    );
    // The release's own tree: the head commit's action.yml is the pinned one too.
    assert_eq!(
        git(d, &["show", "HEAD:action.yml"]),
        pinned_action,
        "the second commit leaves action.yml alone"
    );

    // A call the script cannot rewrite (a branch) stops the release before any commit.
    let dir = release_checkout(|t| {
        t.replace(
            "uses: cloudshop/cloudshop-deploy@v1",
            "uses: cloudshop/cloudshop-deploy@main",
        )
    });
    let before = git(dir.path(), &["rev-parse", "HEAD"]);
    let out = pin_release(dir.path(), &image);
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("::error::"));
    assert_eq!(git(dir.path(), &["rev-parse", "HEAD"]), before);
}

/// A workflow file's YAML, by absolute path.
fn load_at(path: &Path) -> Value {
    yaml_serde::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// GitHub's heading anchor: lowercase, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// docs/reliability.md names the tests that hold each guarantee: every `file::test` it names is a test
/// of that file of tests/integration, so a renamed or deleted test cannot leave a guarantee unbacked.
#[test]
fn the_tests_the_reliability_page_names_exist() {
    let text = std::fs::read_to_string(root().join("docs/reliability.md")).unwrap();
    let mut named = 0;
    for code in text.split('`').skip(1).step_by(2) {
        let Some((file, test)) = code.split_once("::") else {
            continue;
        };
        let path = root().join("tests/integration").join(format!("{file}.rs"));
        if !path.exists() || test.contains(':') {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(
            source.contains(&format!("fn {test}()")),
            "docs/reliability.md names `{code}`, which tests/integration/{file}.rs does not have"
        );
        named += 1;
    }
    assert!(named >= 30, "only {named} tests named");
}

/// The troubleshooting guide's index lists every section (`##` and `###`) once, and nothing else: a
/// reader who scans the table finds each failure the guide explains.
#[test]
fn the_troubleshooting_index_lists_every_section() {
    use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};
    let text = std::fs::read_to_string(root().join("docs/troubleshooting.md")).unwrap();
    let mut headings = Vec::new();
    let mut current: Option<String> = None;
    for event in Parser::new(&text) {
        match event {
            Event::Start(Tag::Heading { level, .. }) if level != HeadingLevel::H1 => {
                current = Some(String::new())
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = current.as_mut() {
                    h.push_str(&t)
                }
            }
            Event::End(TagEnd::Heading(_)) => headings.extend(current.take().map(|h| slug(&h))),
            _ => {}
        }
    }
    let index = &text[..text.find("\n## ").unwrap()];
    let listed: Vec<String> = index
        .lines()
        .filter(|l| l.starts_with("| ["))
        .filter_map(|l| l.split("](#").nth(1))
        .filter_map(|rest| rest.split(')').next())
        .map(str::to_string)
        .collect();
    let mut sorted_listed = listed.clone();
    sorted_listed.sort();
    let missing: Vec<&String> = headings.iter().filter(|h| !listed.contains(h)).collect();
    let extra: Vec<&String> = listed.iter().filter(|l| !headings.contains(l)).collect();
    assert!(missing.is_empty(), "sections not in the index: {missing:?}");
    assert!(extra.is_empty(), "index rows without a section: {extra:?}");
    sorted_listed.dedup();
    assert_eq!(sorted_listed.len(), listed.len(), "a section listed twice");
    assert!(headings.len() > 40, "{headings:?}");
    let mut unique = headings.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), headings.len(), "two sections with one anchor");
}

#[test]
fn links_in_the_docs_resolve_to_files_and_anchors() {
    let mut checked = 0;
    for path in markdown_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let dir = path.parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let target: String = text[i + 2..].chars().take_while(|c| *c != ')').collect();
            if target.starts_with("http") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file = if file.is_empty() {
                path.clone()
            } else {
                dir.join(file)
            };
            assert!(
                file.exists(),
                "{}: link to missing {}",
                path.display(),
                file.display()
            );
            if !anchor.is_empty() {
                let t = std::fs::read_to_string(&file).unwrap();
                let anchors: Vec<String> = t
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .map(|l| slug(l.trim_start_matches('#')))
                    .collect();
                assert!(
                    anchors.iter().any(|a| a == anchor),
                    "{}: no heading for #{anchor} in {}",
                    path.display(),
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked} links");
}

#[test]
fn the_examples_use_cloudshops_real_names() {
    // CloudShop's one environments file, in the quick start (the README and the reference link to it).
    let quick = std::fs::read_to_string(root().join("docs/quick-start.md")).unwrap();
    let file = blocks(&quick, "yaml")
        .into_iter()
        .find(|b| b.starts_with("region:"))
        .expect("the environments-file example");
    let v: Value = yaml_serde::from_str(file).unwrap();
    let expected = [
        (
            "stage",
            [
                "stage-cluster",
                "stage-backend-blue",
                "stage-cloudshop-backend",
                "http://stage-alb-458962299.us-east-1.elb.amazonaws.com",
                "stage-cloudshop-frontend-746669238399",
            ],
        ),
        (
            "prod",
            [
                "prod-cluster",
                "prod-backend-blue",
                "prod-cloudshop-backend",
                "http://prod-alb-564047131.us-east-1.elb.amazonaws.com",
                "prod-cloudshop-frontend-746669238399",
            ],
        ),
    ];
    for (env, [cluster, service, repo, api, bucket]) in expected {
        let e = &v["environments"][env];
        assert_eq!(str_of(&e["cluster"]), cluster);
        assert_eq!(str_of(&e["service"]), service);
        assert_eq!(str_of(&e["ecr-repository"]), repo);
        assert_eq!(str_of(&e["api-url"]), api);
        assert_eq!(str_of(&e["frontend"]["bucket"]), bucket);
        assert!(str_of(&e["role-to-assume"]).starts_with("arn:aws:iam::746669238399:role/"));
    }
    assert_eq!(str_of(&v["region"]), "us-east-1");
    let reference = std::fs::read_to_string(root().join("docs/environments.md")).unwrap();
    assert!(
        reference.contains("/ecs/stage/backend-blue")
            && reference.contains("/ecs/prod/backend-blue")
    );
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("Linux runners"));
    // Exactly the two set-up commands open the README.
    let first = blocks(&readme, "sh")[0];
    let commands: Vec<&str> = first
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(commands, ["scripts/demo", "scripts/test"]);
    assert!(readme.find("```sh\n") < readme.find("## "));
}

#[test]
fn the_trust_policy_shown_in_the_iam_docs_is_the_file() {
    let doc = std::fs::read_to_string(root().join("docs/iam/README.md")).unwrap();
    let shown: serde_json::Value = serde_json::from_str(blocks(&doc, "json")[0]).unwrap();
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/iam/trust-production.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(shown, file);
}
