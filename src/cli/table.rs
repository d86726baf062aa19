//! The one table of the action's inputs: name, one-line description, default, required. `action.yml`,
//! the README's inputs table and the CLI's flags are all checked against it (or built from it), so the
//! three cannot drift. The detail of each input lives in `docs/environments.md`. No AWS API.

/// One input of `action.yml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSpec {
    /// The kebab-case name: `with: { name: ... }` in a workflow, `--name` on the command line.
    pub name: &'static str,
    /// One line, shown in `action.yml`, the README and `--help`.
    pub description: &'static str,
    /// What the runner sets when the workflow gives no value (`action.yml`'s `default:`).
    pub default: Option<&'static str>,
    /// `required: true` in `action.yml`; the runner does not enforce it, the binary does.
    pub required: bool,
}

const fn input(name: &'static str, description: &'static str) -> InputSpec {
    InputSpec {
        name,
        description,
        default: None,
        required: false,
    }
}

const fn with_default(
    name: &'static str,
    default: &'static str,
    description: &'static str,
) -> InputSpec {
    InputSpec {
        name,
        description,
        default: Some(default),
        required: false,
    }
}

/// Every input, in `action.yml`'s order.
pub const INPUTS: &[InputSpec] = &[
    with_default(
        "command",
        "deploy",
        "`deploy`, `promote`, `rollback` or `releases` (read-only listing).",
    ),
    InputSpec {
        required: true,
        ..input(
            "environment",
            "Environment of the environments file (`stage`, `prod`).",
        )
    },
    with_default(
        "config",
        ".github/cloudshop-deploy.yml",
        "Environments file, relative to the workspace.",
    ),
    input(
        "aws-region",
        "AWS region; default the environment's, else the file's `region`.",
    ),
    input(
        "role-to-assume",
        "IAM role ARN to assume (OIDC in Actions, `sts:AssumeRole` from the CLI).",
    ),
    input(
        "role-session-name",
        "STS session name; default `cloudshop-deploy-<run id>-<attempt>`.",
    ),
    input(
        "role-duration-seconds",
        "Session length, 900-43200 seconds (default 3600); refreshed on long waits.",
    ),
    with_default(
        "audience",
        "sts.amazonaws.com",
        "Audience of the OIDC token.",
    ),
    with_default(
        "dry-run",
        "false",
        "`true`: change nothing, print the plan.",
    ),
    input(
        "image-tag",
        "Image tag to deploy or promote; default the commit SHA.",
    ),
    input(
        "extra-tags",
        "More tags moved to the image once the release passed (e.g. `stage-latest`).",
    ),
    input("cluster", "ECS cluster; default the environment's."),
    input("service", "ECS service; default the environment's."),
    input(
        "container",
        "Container(s) whose image is replaced; default the environment's, else the only one.",
    ),
    input(
        "ecr-repository",
        "ECR repository; default the environment's.",
    ),
    input(
        "task-definition",
        "Task-definition JSON file to render instead of the live one.",
    ),
    input("desired-count", "Set the service's desired count."),
    input(
        "force-new-deployment",
        "`true`: deploy even when the task definition did not change.",
    ),
    input(
        "wait-timeout",
        "How long to wait for the rollout (default `30m`; `0`: don't wait).",
    ),
    input(
        "poll-interval",
        "Base interval of the rollout watch (default `3s`).",
    ),
    input(
        "rollback-on-failure",
        "Undo the release when a later gate fails (default `true`).",
    ),
    input(
        "revision",
        "`rollback`: the revision to go back to; default the last verified release.",
    ),
    input(
        "smoke-tests",
        "Run the smoke tests after the rollout (default `true` with an API URL).",
    ),
    input(
        "smoke-url",
        "Base URL of the API; default the environment's `api-url`.",
    ),
    input(
        "smoke-timeout",
        "Time budget of the smoke tests, retries included (default `2m`).",
    ),
    input(
        "website-url",
        "The frontend's URL; default the environment's `website-url`.",
    ),
    input(
        "watch",
        "Keep checking this long after a good deploy (e.g. `10m`; default `0`).",
    ),
    input("frontend", "`false` skips the frontend sync."),
    input(
        "frontend-dir",
        "Built frontend folder in the workspace; default the environment's.",
    ),
    input(
        "frontend-bucket",
        "S3 website bucket; default the environment's.",
    ),
    input("frontend-prefix", "Key prefix inside the bucket."),
    input(
        "frontend-delete",
        "Delete objects not in the build (default `true`).",
    ),
    input(
        "frontend-exclude",
        "Globs neither uploaded nor deleted (comma- or newline-separated).",
    ),
    input(
        "cloudfront-distribution-id",
        "CloudFront distribution to invalidate for changed HTML paths.",
    ),
    input(
        "source-environment",
        "`promote`: where the image comes from; default the environment's `promote-from`.",
    ),
    input(
        "image-archive",
        "OCI layout or `docker save` tarball to push under the tag before deploying.",
    ),
    input(
        "registry-url",
        "Registry base URL override (private endpoints, tests); never from the environments file.",
    ),
    with_default(
        "allow-unverified",
        "false",
        "`promote`: accept an image the source environment has not verified.",
    ),
    with_default(
        "github-token",
        "${{ github.token }}",
        "`promote`: token the approval gate reads GitHub with; masked.",
    ),
];

/// The spec of `name`, if it is an input.
pub fn spec(name: &str) -> Option<&'static InputSpec> {
    INPUTS.iter().find(|s| s.name == name)
}

/// The README's inputs table (Markdown), as `scripts/readme-tables` writes it between its markers.
pub fn readme_table() -> String {
    let mut out = String::from("| input | default | description |\n|---|---|---|\n");
    for s in INPUTS {
        let default = match s.default {
            Some(d) if !d.is_empty() => format!("`{d}`"),
            _ => String::new(),
        };
        let description = s.description.replace('|', "\\|");
        out.push_str(&format!("| `{}` | {default} | {description} |\n", s.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_descriptions_one_short_line() {
        let mut names: Vec<&str> = INPUTS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), INPUTS.len(), "an input is listed twice");
        for s in INPUTS {
            assert!(!s.description.contains('\n'), "{}: one line", s.name);
            assert!(
                (10..=100).contains(&s.description.len()),
                "{}: {} characters; the detail belongs in docs/environments.md",
                s.name,
                s.description.len()
            );
        }
    }

    #[test]
    fn the_table_matches_the_inputs_the_binary_reads() {
        let mut read = crate::inputs::Inputs::names();
        read.sort();
        let mut table: Vec<String> = INPUTS.iter().map(|s| s.name.to_string()).collect();
        table.sort();
        assert_eq!(read, table);
    }
}
