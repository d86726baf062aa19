//! The binary as a command line, for the night GitHub Actions is down:
//! `cloudshop-deploy deploy|promote|rollback|releases --environment prod ...`.
//!
//! Every input of `action.yml` is a flag (`--image-tag`), built from the one table in [`table`]. A
//! subcommand becomes `command`, the flags become `INPUT_*` variables, and the run goes down the same
//! path as the action's (`run::main_local`): there is no second implementation of a release. What the
//! runner would provide gets a local value: the commit from `git rev-parse HEAD`, the repository from the
//! `origin` remote, a session name naming the person. The runner's files and the OIDC request variables
//! are dropped, so a run from a shell inside a job still writes for a terminal.
//!
//! `credentials` opens the session: the standard AWS chain (`--profile`), and with `role-to-assume`,
//! STS `AssumeRole` from it.

pub mod credentials;
pub mod table;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::github::files::{self, Sinks};
use std::io::Write;

/// The subcommands, each the `command` input of the same name.
pub const SUBCOMMANDS: &[(&str, &str)] = &[
    (
        "deploy",
        "Deploy an image (default the current commit) to an environment",
    ),
    (
        "promote",
        "Copy a release verified on the source environment, then deploy it",
    ),
    (
        "rollback",
        "Go back to the last verified release (or `--revision`)",
    ),
    (
        "releases",
        "List what runs and the verified releases (read-only)",
    ),
];

/// What the command line asked for, ready for the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The environment the run reads: the process's, less the runner's, plus the inputs.
    pub env: BTreeMap<String, String>,
    pub local: Local,
}

/// What only a run from the command line has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Local {
    /// `--profile`: the shared-config profile the base credentials come from.
    pub profile: Option<String>,
    /// `--output-file`: where the `name=value` outputs go instead of stdout.
    pub output_file: Option<PathBuf>,
}

/// The variables a runner sets that a local run must not act on: its files (outputs would vanish into
/// a runner's file), the OIDC request (no OIDC outside Actions) and inputs the flags did not give.
fn runner_only(key: &str) -> bool {
    key.starts_with("INPUT_")
        || key.starts_with("ACTIONS_ID_TOKEN_")
        || matches!(
            key,
            "GITHUB_ACTIONS"
                | "GITHUB_OUTPUT"
                | "GITHUB_STEP_SUMMARY"
                | "GITHUB_ENV"
                | "GITHUB_STATE"
        )
}

/// The flags of one subcommand: every input but `command`, plus the local ones.
fn subcommand(name: &'static str, about: &'static str) -> Command {
    let mut cmd = Command::new(name).about(about).after_help(
        "Every input of action.yml is a flag; `command` is the subcommand. Credentials: the standard \
         AWS chain (environment, --profile, shared files), and with --role-to-assume an sts:AssumeRole \
         from it. See docs/cli.md.",
    );
    for spec in table::INPUTS.iter().filter(|s| s.name != "command") {
        let help = match (spec.name, spec.default) {
            ("github-token", _) => format!("{} [default: $GITHUB_TOKEN]", spec.description),
            ("role-session-name", _) => {
                "STS session name [default: cloudshop-deploy-cli-$USER]".into()
            }
            (_, Some(d)) => format!("{} [default: {d}]", spec.description),
            (_, None) => spec.description.to_string(),
        };
        let mut arg = Arg::new(spec.name)
            .long(spec.name)
            .value_name("VALUE")
            .action(ArgAction::Set)
            .help(help);
        if spec.required {
            arg = arg.required(true);
        }
        cmd = cmd.arg(arg);
    }
    let local = [
        (
            "profile",
            "PROFILE",
            "AWS shared-config profile of the base credentials [default: $AWS_PROFILE]",
        ),
        (
            "sha",
            "SHA",
            "The commit being released [default: `git rev-parse HEAD`]",
        ),
        (
            "output-file",
            "FILE",
            "Write the outputs (`name=value`) here instead of stdout",
        ),
        (
            "summary-file",
            "FILE",
            "Write the Markdown summary here instead of stdout",
        ),
    ];
    for (name, value, help) in local {
        cmd = cmd.arg(
            Arg::new(name)
                .long(name)
                .value_name(value)
                .action(ArgAction::Set)
                .help(help)
                .help_heading("Local run"),
        );
    }
    cmd
}

/// Whether a run without a subcommand was typed by hand rather than started by a runner: not inside
/// Actions (`GITHUB_ACTIONS=true`) and no `INPUT_*` variable at all.
pub fn by_hand(vars: impl IntoIterator<Item = (String, String)>) -> bool {
    let mut in_actions = false;
    for (k, v) in vars {
        if k.starts_with("INPUT_") {
            return false;
        }
        in_actions |= k == "GITHUB_ACTIONS" && v == "true";
    }
    !in_actions
}

/// The whole command line.
pub fn command() -> Command {
    let mut cmd = Command::new("cloudshop-deploy")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Deploy CloudShop to AWS; without a subcommand, runs as the GitHub Action (INPUT_* variables)")
        .subcommand_required(true);
    for (name, about) in SUBCOMMANDS {
        cmd = cmd.subcommand(subcommand(name, about));
    }
    cmd
}

/// Parse `args` (the program name first) against `process` (the environment), in `cwd`.
pub fn parse<A, T>(
    args: A,
    process: impl IntoIterator<Item = (String, String)>,
    cwd: &Path,
) -> Result<Invocation, clap::Error>
where
    A: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    let Some((name, sub)) = matches.subcommand() else {
        return Err(command().error(
            clap::error::ErrorKind::MissingSubcommand,
            "a subcommand is required",
        ));
    };
    let mut env: BTreeMap<String, String> = process
        .into_iter()
        .filter(|(k, _)| !runner_only(k))
        .collect();
    env.insert("INPUT_COMMAND".into(), name.to_string());
    for spec in table::INPUTS.iter().filter(|s| s.name != "command") {
        if let Some(v) = sub.get_one::<String>(spec.name) {
            env.insert(
                format!("INPUT_{}", spec.name.to_ascii_uppercase()),
                v.clone(),
            );
        }
    }
    fill_local_defaults(&mut env, sub, cwd);
    let local = Local {
        profile: value(sub, "profile").or_else(|| env_value(&env, "AWS_PROFILE")),
        output_file: value(sub, "output-file").map(PathBuf::from),
    };
    Ok(Invocation { env, local })
}

fn value(m: &ArgMatches, name: &str) -> Option<String> {
    m.get_one::<String>(name).filter(|v| !v.is_empty()).cloned()
}

fn env_value(env: &BTreeMap<String, String>, key: &str) -> Option<String> {
    env.get(key).filter(|v| !v.is_empty()).cloned()
}

/// What the runner would have set, from the local machine: the commit, the repository, the person's
/// session name, the token for the approval gate, and the summary file.
fn fill_local_defaults(env: &mut BTreeMap<String, String>, sub: &ArgMatches, cwd: &Path) {
    if let Some(sha) = value(sub, "sha").or_else(|| git(cwd, &["rev-parse", "HEAD"])) {
        env.insert("GITHUB_SHA".into(), sha);
    }
    if env_value(env, "GITHUB_REPOSITORY").is_none() {
        let remote = git(cwd, &["remote", "get-url", "origin"]);
        if let Some(repo) = remote.as_deref().and_then(github_repository) {
            env.insert("GITHUB_REPOSITORY".into(), repo);
            env.entry("GITHUB_SERVER_URL".into())
                .or_insert_with(|| "https://github.com".into());
        }
    }
    if !env.contains_key("INPUT_ROLE-SESSION-NAME") {
        let user = env_value(env, "USER").unwrap_or_else(|| "local".into());
        env.insert(
            "INPUT_ROLE-SESSION-NAME".into(),
            format!("cloudshop-deploy-cli-{user}"),
        );
    }
    if !env.contains_key("INPUT_GITHUB-TOKEN") {
        if let Some(token) = env_value(env, "GITHUB_TOKEN") {
            env.insert("INPUT_GITHUB-TOKEN".into(), token);
        }
    }
    if let Some(summary) = value(sub, "summary-file") {
        env.insert("GITHUB_STEP_SUMMARY".into(), summary);
    }
}

/// The trimmed stdout of `git ARGS` in `cwd`, when git is there and succeeds.
fn git(cwd: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(cwd)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_string())
}

/// `owner/name` of a github.com remote URL (`https://github.com/o/n(.git)`, `git@github.com:o/n.git`).
fn github_repository(url: &str) -> Option<String> {
    let path = url
        .strip_prefix("https://github.com/")
        .or_else(|| url.strip_prefix("git@github.com:"))
        .or_else(|| url.strip_prefix("ssh://git@github.com/"))?;
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let (owner, name) = path.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (ok(owner) && ok(name)).then(|| format!("{owner}/{name}"))
}

/// Write the outputs as `name=value` lines (a multi-line value in the runner's heredoc form): to
/// `--output-file`, else to `stdout`.
pub fn write_outputs(
    local: &Local,
    sinks: &Sinks,
    outputs: &[(String, String)],
    stdout: &mut impl Write,
) -> Result<(), files::Error> {
    match &local.output_file {
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| files::Error::Io {
                    path: path.clone(),
                    source,
                })?;
            sinks.write_outputs(outputs, &mut file)
        }
        None => sinks.write_outputs(outputs, stdout),
    }
}

/// Start the files a local run writes empty: a second run must not append to the first one's.
pub fn truncate_files(inv: &Invocation) -> std::io::Result<()> {
    let summary = inv.env.get("GITHUB_STEP_SUMMARY").map(PathBuf::from);
    for path in [summary, inv.local.output_file.clone()]
        .into_iter()
        .flatten()
    {
        std::fs::write(path, "")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in(args: &[&str], env: &[(&str, &str)]) -> Result<Invocation, clap::Error> {
        let dir = tempfile::tempdir().unwrap();
        parse(
            std::iter::once("cloudshop-deploy").chain(args.iter().copied()),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            dir.path(),
        )
    }

    #[test]
    fn no_subcommand_is_by_hand_only_outside_a_runner_and_without_inputs() {
        let vars = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(by_hand(vars(&[("HOME", "/root")])));
        assert!(!by_hand(vars(&[("INPUT_ENVIRONMENT", "stage")])));
        assert!(!by_hand(vars(&[("GITHUB_ACTIONS", "true")])));
        assert!(by_hand(vars(&[("GITHUB_ACTIONS", "false")])));
    }

    #[test]
    fn flags_become_inputs_and_the_runner_s_variables_are_dropped() {
        let inv = parse_in(
            &[
                "rollback",
                "--environment",
                "prod",
                "--revision",
                "7",
                "--sha",
                "abc",
            ],
            &[
                ("INPUT_IMAGE-TAG", "stray"),
                ("GITHUB_OUTPUT", "/runner/out"),
                ("ACTIONS_ID_TOKEN_REQUEST_URL", "http://x"),
                ("AWS_REGION", "eu-west-1"),
                ("USER", "alice"),
            ],
        )
        .unwrap();
        let get = |k: &str| inv.env.get(k).map(String::as_str);
        assert_eq!(get("INPUT_COMMAND"), Some("rollback"));
        assert_eq!(get("INPUT_ENVIRONMENT"), Some("prod"));
        assert_eq!(get("INPUT_REVISION"), Some("7"));
        assert_eq!(get("INPUT_IMAGE-TAG"), None);
        assert_eq!(get("GITHUB_OUTPUT"), None);
        assert_eq!(get("ACTIONS_ID_TOKEN_REQUEST_URL"), None);
        assert_eq!(get("AWS_REGION"), Some("eu-west-1"));
        assert_eq!(get("GITHUB_SHA"), Some("abc"));
        assert_eq!(
            get("INPUT_ROLE-SESSION-NAME"),
            Some("cloudshop-deploy-cli-alice")
        );
    }

    #[test]
    fn a_flag_twice_or_unknown_is_a_usage_error() {
        let twice =
            parse_in(&["deploy", "--environment", "a", "--environment", "b"], &[]).unwrap_err();
        assert_eq!(twice.exit_code(), 2);
        let unknown =
            parse_in(&["deploy", "--environment", "a", "--imagetag", "x"], &[]).unwrap_err();
        assert_eq!(unknown.exit_code(), 2);
        let missing = parse_in(&["deploy"], &[]).unwrap_err();
        assert_eq!(missing.exit_code(), 2);
    }

    #[test]
    fn github_remotes_name_the_repository() {
        let cases = [
            (
                "https://github.com/acme/cloudshop.git",
                Some("acme/cloudshop"),
            ),
            ("git@github.com:acme/cloudshop.git", Some("acme/cloudshop")),
            (
                "ssh://git@github.com/acme/cloud.shop",
                Some("acme/cloud.shop"),
            ),
            ("https://gitlab.com/acme/cloudshop", None),
            ("https://github.com/acme", None),
        ];
        for (url, want) in cases {
            assert_eq!(github_repository(url).as_deref(), want, "{url}");
        }
    }
}
