//! The binary as a command line (`cloudshop-deploy deploy --environment stage ...`), run for real: its
//! help lists every input of action.yml, a bad command line costs exit 2 and no AWS call, a deploy from
//! a terminal ends as the action's does, and `--role-to-assume` goes through `sts:AssumeRole`.

use harness as common;

use std::path::Path;
use std::process::{Command, Output};

use common::ecs_sim::{EcsSim, Scenario};
use common::faults::{FaultPlan, FaultProxy};
use common::{Action, Moto, RecordingServer};

const BIN: &str = env!("CARGO_BIN_EXE_cloudshop-deploy");
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const REPO: &str = "stage-cloudshop-backend";

fn config(moto: &Moto) -> String {
    format!(
        "region: us-east-1\nenvironments:\n  stage:\n    cluster: stage-cluster\n    service: stage-backend\n    \
         container: backend\n    ecr-repository: {}\n",
        moto.name(REPO)
    )
}

/// A terminal's environment: no runner variables, empty AWS config files (so the SDK finds the files
/// it is pointed at), the person's name.
fn terminal_env(dir: &Path) -> Vec<(String, String)> {
    let empty = dir.join("aws-config");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.display().to_string();
    [
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_CONFIG_FILE", empty.clone()),
        ("AWS_SHARED_CREDENTIALS_FILE", empty),
        ("USER", "alice".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Run the binary in `cwd` with `args` and `env` only.
fn cli(cwd: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_lists_every_input_of_action_yml() {
    let dir = tempfile::tempdir().unwrap();
    let env = terminal_env(dir.path());
    let top = cli(dir.path(), &["--help"], &env);
    assert_eq!(top.status.code(), Some(0));
    let top = text(&top.stdout);
    for sub in ["deploy", "promote", "rollback", "releases"] {
        assert!(top.contains(&format!("\n  {sub} ")), "{sub}:\n{top}");
        let out = cli(dir.path(), &[sub, "--help"], &env);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let help = text(&out.stdout);
        // `command` is the subcommand itself.
        for name in common::action_yml_keys("inputs") {
            if name != "command" {
                assert!(
                    help.contains(&format!("--{name} <VALUE>")),
                    "`{sub} --help` lacks `--{name}`:\n{help}"
                );
            }
        }
    }
}

#[test]
fn an_unknown_or_repeated_flag_is_one_error_exit_2_and_no_aws_call() {
    let dir = tempfile::tempdir().unwrap();
    let aws = RecordingServer::start();
    let mut env = terminal_env(dir.path());
    env.push(("AWS_ENDPOINT_URL".into(), aws.endpoint.clone()));
    env.push(("AWS_ACCESS_KEY_ID".into(), "testing".into()));
    env.push(("AWS_SECRET_ACCESS_KEY".into(), "testing".into()));
    let summary = dir.path().join("summary.md");
    let summary_arg = summary.display().to_string();
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "rollback",
                "--environment",
                "prod",
                "--environment",
                "stage",
            ],
            "error: the argument '--environment <VALUE>' cannot be used multiple times",
        ),
        (
            &["deploy", "--environment", "stage", "--imagetag", SHA],
            "error: unexpected argument '--imagetag' found",
        ),
        (
            &["redeploy", "--environment", "stage"],
            "error: unrecognized subcommand 'redeploy'",
        ),
    ];
    for (args, want) in cases {
        let mut args = args.to_vec();
        args.extend(["--summary-file", &summary_arg]);
        let out = cli(dir.path(), &args, &env);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr
                .lines()
                .filter(|l| l.starts_with("error:"))
                .collect::<Vec<_>>(),
            vec![want],
            "{args:?}"
        );
        assert_eq!(text(&out.stdout), "", "{args:?}");
    }
    assert_eq!(aws.count(), 0, "{:?}", aws.requests.lock().unwrap());
    assert!(!summary.exists(), "nothing is written for a usage error");
}

/// The outputs a run printed as `name=value` lines.
fn outputs_of(text: &str) -> std::collections::BTreeMap<String, String> {
    common::parse_outputs(text)
}

/// No line a runner would read as a workflow command.
fn assert_human(out: &Output) {
    for line in text(&out.stdout).lines().chain(text(&out.stderr).lines()) {
        assert!(
            !line.trim_start().starts_with("::"),
            "workflow command on a terminal: {line}"
        );
    }
}

#[test]
fn a_deploy_from_a_terminal_ends_as_the_action_s_does() {
    let moto = Moto::shared();
    let digest = common::seed::seed_ecr(&moto, &moto.name(REPO), &["older", SHA], false);

    // The action, as the runner starts it.
    let action_sim = EcsSim::start(Scenario::Succeed { after: 3 });
    let action = Action::new()
        .with_moto(&moto)
        .env("AWS_ENDPOINT_URL_ECS", &action_sim.endpoint)
        .file(".github/cloudshop-deploy.yml", &config(&moto))
        .input("environment", "stage")
        .input("poll-interval", "30ms")
        .run_within(std::time::Duration::from_secs(120));
    assert_eq!(action.code, 0, "{}", action.dump());

    // The same release from a terminal: the commit is the checkout's HEAD, not a flag.
    let cli_sim = EcsSim::start(Scenario::Succeed { after: 3 });
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("cloudshop");
    std::fs::create_dir_all(ws.join(".github")).unwrap();
    std::fs::write(ws.join(".github/cloudshop-deploy.yml"), config(&moto)).unwrap();
    let mut env = terminal_env(dir.path());
    env.extend(
        [
            ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
            ("AWS_ENDPOINT_URL_ECS", cli_sim.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let summary = dir.path().join("summary.md");
    let out = cli(
        &ws,
        &[
            "deploy",
            "--environment",
            "stage",
            "--poll-interval",
            "30ms",
            "--sha",
            SHA,
            "--summary-file",
            &summary.display().to_string(),
        ],
        &env,
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert_human(&out);
    assert!(
        text(&out.stderr).contains("== AWS credentials") || stdout.contains("== AWS credentials")
    );
    let outputs = outputs_of(&stdout);
    for name in [
        "status",
        "rolled-back",
        "image-uri",
        "image-digest",
        "task-definition-arn",
        "previous-task-definition-arn",
        "smoke-status",
        "aws-account-id",
    ] {
        assert_eq!(
            outputs.get(name).map(String::as_str),
            Some(action.output(name)),
            "output `{name}`\n{stdout}"
        );
    }
    assert_eq!(outputs["status"], "deployed");
    assert_eq!(outputs["image-digest"], digest);
    assert_eq!(
        cli_sim.service_task_definition(),
        action_sim.service_task_definition()
    );
    // The same summary, in the file and not on the screen.
    let written = std::fs::read_to_string(&summary).unwrap();
    let shape = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| {
                l.starts_with("| revision |")
                    || l.starts_with("| outcome |")
                    || l.starts_with("## ")
            })
            .map(str::to_string)
            .collect()
    };
    assert_eq!(shape(&written), shape(&action.summary), "{written}");
    assert!(!shape(&written).is_empty(), "{written}");
    assert!(!stdout.contains("| outcome |"), "{stdout}");
}

#[test]
fn the_commit_defaults_to_the_checkout_s_head() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["commit", "-q", "--allow-empty", "-m", "release"]);
    git(&[
        "remote",
        "add",
        "origin",
        "git@github.com:acme/cloudshop.git",
    ]);
    let head = git(&["rev-parse", "HEAD"]);
    let inv = cloudshop_deploy::cli::parse(
        ["cloudshop-deploy", "deploy", "--environment", "stage"],
        [("USER".to_string(), "bob".to_string())],
        dir.path(),
    )
    .unwrap();
    assert_eq!(inv.env.get("GITHUB_SHA"), Some(&head));
    assert_eq!(
        inv.env.get("GITHUB_REPOSITORY").map(String::as_str),
        Some("acme/cloudshop")
    );
    assert_eq!(
        inv.env.get("GITHUB_SERVER_URL").map(String::as_str),
        Some("https://github.com")
    );
}

#[test]
fn role_to_assume_is_assumed_with_sts_assume_role_and_used() {
    let moto = Moto::shared();
    common::seed::seed_ecr(&moto, &moto.name(REPO), &[SHA], false);
    let proxy = FaultProxy::start(
        &moto.endpoint,
        FaultPlan {
            record_bodies: true,
            ..FaultPlan::none()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".github")).unwrap();
    std::fs::write(
        dir.path().join(".github/cloudshop-deploy.yml"),
        config(&moto),
    )
    .unwrap();
    let sim = EcsSim::start(Scenario::Succeed { after: 2 });
    let mut env = terminal_env(dir.path());
    env.extend(
        [
            ("AWS_ENDPOINT_URL", proxy.endpoint.as_str()),
            ("AWS_ENDPOINT_URL_ECS", sim.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let role = "arn:aws:iam::123456789012:role/cloudshop-break-glass";
    let out = cli(
        dir.path(),
        &[
            "deploy",
            "--environment",
            "stage",
            "--sha",
            SHA,
            "--dry-run",
            "true",
            "--role-to-assume",
            role,
        ],
        &env,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_human(&out);
    let calls = proxy.calls();
    let ops: Vec<&str> = calls.iter().map(|c| c.op.as_str()).collect();
    let assume = ops.iter().position(|o| *o == "sts:AssumeRole");
    assert!(assume.is_some(), "{ops:?}");
    assert!(!ops.contains(&"sts:AssumeRoleWithWebIdentity"), "{ops:?}");
    // The identity check after it signs with the assumed session: moto answers with the role's session.
    let identity = calls
        .iter()
        .find(|c| c.op == "sts:GetCallerIdentity")
        .and_then(|c| c.response.clone())
        .map(|b| text(&b))
        .unwrap_or_default();
    assert!(
        identity.contains("assumed-role/cloudshop-break-glass/cloudshop-deploy-cli-alice"),
        "{identity}"
    );
    // The session's keys appear nowhere on the screen.
    let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for (_, secret) in common::secrets::sts_credentials_recorded(&proxy) {
        assert!(!printed.contains(&secret), "a credential was printed");
    }
}

#[test]
fn profile_names_the_base_credentials_in_the_shared_files() {
    let moto = Moto::shared();
    common::seed::seed_ecr(&moto, &moto.name(REPO), &[SHA], false);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".github")).unwrap();
    std::fs::write(
        dir.path().join(".github/cloudshop-deploy.yml"),
        config(&moto),
    )
    .unwrap();
    let sim = EcsSim::start(Scenario::Succeed { after: 2 });
    let mut env = terminal_env(dir.path());
    let files = dir.path().join("aws-shared");
    std::fs::write(
        &files,
        "[profile oncall]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    env.retain(|(k, _)| !k.starts_with("AWS_CONFIG_FILE"));
    env.extend(
        [
            ("AWS_CONFIG_FILE", files.display().to_string()),
            ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
            ("AWS_ENDPOINT_URL_ECS", sim.endpoint.clone()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let args = [
        "releases",
        "--environment",
        "stage",
        "--sha",
        SHA,
        "--output-file",
    ];
    let outputs = dir.path().join("outputs");
    let outputs_arg = outputs.display().to_string();
    // Without the profile there are no credentials at all.
    let mut without: Vec<&str> = args.to_vec();
    without.push(&outputs_arg);
    let out = cli(dir.path(), &without, &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(&outputs).unwrap();
    assert!(written.contains("status=failed\n"), "{written}");
    assert!(!written.contains("aws-account-id="), "{written}");
    // With it, the run signs with the profile's keys.
    let mut with = without.clone();
    with.extend(["--profile", "oncall"]);
    let out = cli(dir.path(), &with, &env);
    assert_human(&out);
    let written = std::fs::read_to_string(&outputs).unwrap();
    assert!(
        written.contains("aws-account-id=123456789012\n"),
        "{written}\n{}",
        text(&out.stderr)
    );
    // The file holds this run's outputs only, not the first run's too.
    assert_eq!(written.matches("status=").count(), 1, "{written}");
}

/// What a person sees for `rollback --help`, whole.
#[test]
fn rollback_help_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(
        dir.path(),
        &["rollback", "--help"],
        &terminal_env(dir.path()),
    );
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!(text(&out.stdout));
}
