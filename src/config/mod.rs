//! Raw inputs + the YAML environments file -> one validated [`Config`] of compiled values. Pure: no I/O
//! but reading the file, and no AWS API.
//!
//! Inputs override file values. Every problem is found here, before any AWS call: an unknown key (with
//! its line), an unknown environment, a malformed ARN, a bad duration, URL, glob or header. What comes
//! out is compiled (durations, header maps, glob sets, URLs), so no step parses a config value again.
//!
//! Layout: `schema` is the file as written, `validate` the single-value parsers, `error` the error type,
//! `sources` what every builder reads, `template` and `jsonpath` the placeholders and captures of
//! write sequences, `command` the `command` input, and one builder per part (`auth`,
//! `backend`, `check`, `smoke`, `sequence`, `frontend`, `promote`, `migrate`, `canary`), each next to the type it builds; [`build`] runs them in
//! order. The parts import the leaves, never this module.

mod auth;
mod backend;
mod canary;
mod check;
mod command;
mod error;
mod frontend;
mod jsonpath;
mod migrate;
mod promote;
mod schema;
mod sequence;
mod signals;
mod smoke;
mod sources;
mod template;
mod validate;

use std::path::{Path, PathBuf};

use crate::github::Context;
use crate::inputs::Inputs;
use sources::{environment_entry, Sources};

pub use auth::Auth;
pub use backend::Backend;
pub use canary::{Canary, CanaryFile, OnNoData};
pub use check::{default_checks, CheckSpec};
pub use command::Command;
pub use error::Error;
pub use frontend::{CacheRules, ExcludeGlobs, Frontend};
pub use jsonpath::JsonPath;
pub use migrate::{Migrate, MigrateFile};
pub use promote::{is_github_login, Approval, Promote, Token};
pub use schema::{
    CacheRule, CheckFile, CorsFile, EnvironmentFile, FileConfig, FrontendFile, JsonExpect,
    OneOrMany, SequenceFile, SmokeFile, StepFile,
};
pub use sequence::{is_production, Sequence, Step, Writes};
pub use signals::{WatchSignals, DEFAULT_ERROR_PATTERN};
pub use smoke::{Smoke, TestSample};
pub use template::{fill, fill_json, BUILTINS};
pub use validate::{
    inside_workspace, parse_bool, parse_duration, parse_list, validate_role_arn, validate_tag,
};

/// The default environments file.
pub const DEFAULT_CONFIG: &str = ".github/cloudshop-deploy.yml";

// ---------------------------------------------------------------- the validated config

/// Everything the run needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub command: Command,
    pub environment: String,
    /// A validated region name.
    pub region: String,
    /// Make no change; print the plan.
    pub dry_run: bool,
    pub auth: Auth,
    pub backend: Backend,
    pub smoke: Smoke,
    /// What the post-deploy watch reads besides the checks (`smoke.watch-signals`).
    pub signals: WatchSignals,
    /// How the new revision is judged against the old one while it takes a slice of production
    /// traffic (`canary:`; the defaults without it: the service's strategy decides whether it applies).
    pub canary: Canary,
    /// S3 frontend, when configured and not turned off.
    pub frontend: Option<Frontend>,
    /// Source of a promotion.
    pub promote: Option<Promote>,
    /// The migration task run before the service update (never for `rollback`).
    pub migrate: Option<Migrate>,
    /// An OCI layout / docker-save tarball to push before deploying.
    pub image_archive: Option<PathBuf>,
    /// Where users reach the frontend (the `website-url` output): `website-url`, else the S3 website
    /// endpoint of the frontend bucket.
    pub website_url: Option<url::Url>,
    /// Where clients reach the API (the `api-url` output): `api-url`, else the smoke tests' base URL.
    pub api_url: Option<url::Url>,
}

// ---------------------------------------------------------------- building the config

/// The largest environments file read: a real one is a few KiB, and a bigger one is a mistake or an attack.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Read and parse the environments file. A missing default file is an empty config; a missing file named
/// by the `config` input is an error. The file must be inside the workspace (also after following
/// symlinks) and at most [`MAX_CONFIG_BYTES`] long.
pub fn load_file(inputs: &Inputs, workspace: &Path) -> Result<(FileConfig, String), Error> {
    let (name, explicit) = match &inputs.config {
        Some(p) => (p.clone(), true),
        None => (DEFAULT_CONFIG.to_string(), false),
    };
    let path = inside_workspace("config", workspace, &name)?;
    match read_bounded(&path, workspace) {
        Ok(text) => Ok((parse_file(&name, &text)?, name)),
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            Ok((FileConfig::default(), name))
        }
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::FileMissing(name))
        }
        Err(ReadError::Io(e)) => Err(Error::File {
            path: name,
            message: e.to_string(),
        }),
        Err(ReadError::Outside) => Err(Error::Invalid {
            key: "config",
            message: format!("`{name}` leads outside the workspace through a symlink"),
        }),
        Err(ReadError::TooLarge) => Err(Error::Invalid {
            key: "config",
            message: format!("`{name}` is larger than {MAX_CONFIG_BYTES} bytes"),
        }),
    }
}

/// Why [`read_bounded`] gave no text.
enum ReadError {
    Io(std::io::Error),
    Outside,
    TooLarge,
}

/// The text of `path`, refused when its real path leaves the workspace or it is over the size bound.
fn read_bounded(path: &Path, workspace: &Path) -> Result<String, ReadError> {
    use std::io::Read;
    let real = path.canonicalize().map_err(ReadError::Io)?;
    if let Ok(ws) = workspace.canonicalize() {
        if !real.starts_with(&ws) {
            return Err(ReadError::Outside);
        }
    }
    let file = std::fs::File::open(&real).map_err(ReadError::Io)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(bytes)
        .map_err(|e| ReadError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Parse environments-file text: blank text is an empty config; an error carries the parser's line and
/// column.
pub fn parse_file(name: &str, text: &str) -> Result<FileConfig, Error> {
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    yaml_serde::from_str(text).map_err(|e| Error::File {
        path: name.to_string(),
        message: e.to_string(),
    })
}

/// Build the validated config from inputs, the file and the run context. The parts are built in a
/// fixed order, so of several problems the same one is always reported.
pub fn build(inputs: &Inputs, file: &FileConfig, ctx: &Context) -> Result<Config, Error> {
    let command = Command::parse(inputs.command.as_deref())?;
    let environment = inputs.environment.clone().ok_or(Error::NoEnvironment)?;
    let env = environment_entry(file, &environment)?;
    let src = Sources {
        inputs,
        file,
        env: &env,
        environment: &environment,
        ctx,
    };

    let region = inputs
        .aws_region
        .clone()
        .or_else(|| env.region.clone())
        .or_else(|| file.region.clone())
        .ok_or_else(|| src.missing("aws-region"))?;
    validate::validate_region(&region)?;
    let dry_run = inputs
        .dry_run
        .as_deref()
        .map(|v| parse_bool("dry-run", v))
        .transpose()?
        .unwrap_or(false);

    let auth = auth::build(&src)?;
    let backend = backend::build(&src, command)?;
    let smoke = smoke::build(&src)?;
    let signals = signals::build(
        env.smoke.as_ref().and_then(|s| s.watch_signals.as_ref()),
        smoke.watch,
    )?;
    let canary = canary::build(env.canary.as_ref())?;
    let frontend = frontend::build(&src, command)?;
    let promote = promote_of(&src, command, &region)?;
    let migrate = migrate::build(env.migrate.as_ref(), command)?;
    let image_archive = inputs
        .image_archive
        .as_deref()
        .map(|p| inside_workspace("image-archive", &ctx.workspace, p))
        .transpose()?;

    let website_url = smoke.website_url.clone().or_else(|| {
        frontend
            .as_ref()
            .and_then(|f| url::Url::parse(&s3_website_endpoint(&f.bucket, &region)).ok())
    });
    let api_url = env
        .api_url
        .as_deref()
        .map(|u| validate::validate_url("api-url", u))
        .transpose()?
        .or_else(|| smoke.base_url.clone());

    Ok(Config {
        command,
        environment,
        region,
        dry_run,
        auth,
        backend,
        smoke,
        signals,
        canary,
        frontend,
        promote,
        migrate,
        image_archive,
        website_url,
        api_url,
    })
}

/// The source of a promotion, or of the releases listed beside this environment's; `None` otherwise.
fn promote_of(src: &Sources, command: Command, region: &str) -> Result<Option<Promote>, Error> {
    Ok(match command {
        Command::Promote => Some(promote::build(src, region)?),
        // The source's releases are listed beside this environment's, when it has one.
        Command::Releases
            if src.env.promote_from.is_some() || src.inputs.source_environment.is_some() =>
        {
            Some(promote::build(src, region)?)
        }
        Command::Deploy | Command::Rollback | Command::Releases => None,
    })
}

/// For `command: releases`: every environment of the file other than the run's, each built as if the
/// run named it, from the inputs that are not about one environment (`command`, `config`,
/// `registry-url`). An entry that does not build is that environment's error, not the run's.
pub fn others(
    inputs: &Inputs,
    file: &FileConfig,
    ctx: &Context,
) -> Vec<(String, Result<Config, Error>)> {
    file.environments
        .keys()
        .filter(|name| Some(*name) != inputs.environment.as_ref())
        .map(|name| {
            let neutral = Inputs {
                command: inputs.command.clone(),
                environment: Some(name.clone()),
                config: inputs.config.clone(),
                registry_url: inputs.registry_url.clone(),
                ..Inputs::default()
            };
            (name.clone(), build(&neutral, file, ctx))
        })
        .collect()
}

/// [`others`] from the run's variables (the environments file is read again: the run's config keeps
/// only its own environment). Empty when the inputs or the file cannot be read, which the run's own
/// load has already reported.
pub fn others_from_env(
    vars: &std::collections::BTreeMap<String, String>,
    ctx: &Context,
) -> Vec<(String, Result<Config, Error>)> {
    let Ok(inputs) = Inputs::from_env(vars.iter()) else {
        return Vec::new();
    };
    match load_file(&inputs, &ctx.workspace) {
        Ok((file, _)) => others(&inputs, &file, ctx),
        Err(_) => Vec::new(),
    }
}

/// The S3 static-website endpoint of `bucket`. The older regions spell it `s3-website-REGION`, the
/// others `s3-website.REGION` (AWS's "Website endpoints" table).
pub fn s3_website_endpoint(bucket: &str, region: &str) -> String {
    const DASH: &[&str] = &[
        "us-east-1",
        "us-west-1",
        "us-west-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-northeast-1",
        "eu-west-1",
        "sa-east-1",
        "us-gov-west-1",
    ];
    let sep = if DASH.contains(&region) { '-' } else { '.' };
    format!("http://{bucket}.s3-website{sep}{region}.amazonaws.com")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SAMPLE: &str = r#"
region: us-east-1
environments:
  stage:
    role-to-assume: arn:aws:iam::746669238399:role/cloudshop-deploy-stage
    cluster: stage-cluster
    service: stage-backend-blue
    container: backend
    ecr-repository: stage-cloudshop-backend
    api-url: http://stage-alb-458962299.us-east-1.elb.amazonaws.com
    website-url: http://stage-cloudshop-frontend-746669238399.s3-website-us-east-1.amazonaws.com
    frontend: { bucket: stage-cloudshop-frontend-746669238399, dir: frontend/build }
  prod:
    promote-from: stage
    role-to-assume: arn:aws:iam::746669238399:role/cloudshop-deploy-prod
    cluster: prod-cluster
    service: prod-backend
    ecr-repository: prod-cloudshop-backend
"#;

    fn ctx() -> Context {
        Context {
            sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            run_id: Some("42".into()),
            run_attempt: Some("2".into()),
            workspace: PathBuf::from("/github/workspace"),
            ..Context::default()
        }
    }

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        Inputs::from_env(
            pairs
                .iter()
                .map(|(k, v)| (format!("INPUT_{k}"), v.to_string())),
        )
        .unwrap()
    }

    fn build_sample(pairs: &[(&str, &str)]) -> Result<Config, Error> {
        build(
            &inputs(pairs),
            &parse_file("f.yml", SAMPLE).unwrap(),
            &ctx(),
        )
    }

    #[test]
    fn a_promotion_needs_no_frontend_folder_unless_it_builds_its_own() {
        let file = |extra: &str| {
            parse_file(
                "f.yml",
                &format!("{SAMPLE}    frontend: {{ bucket: prod-cloudshop-frontend-746669238399{extra} }}\n"),
            )
            .unwrap()
        };
        let promote = inputs(&[
            ("ENVIRONMENT", "prod"),
            ("COMMAND", "promote"),
            ("IMAGE-TAG", "0123456789abcdef0123456789abcdef01234567"),
        ]);
        let f = build(&promote, &file(""), &ctx())
            .unwrap()
            .frontend
            .unwrap();
        assert_eq!((f.dir, f.artifact), (None, true));
        let rollback = inputs(&[("ENVIRONMENT", "prod"), ("COMMAND", "rollback")]);
        assert!(build(&rollback, &file(""), &ctx())
            .unwrap()
            .frontend
            .is_some());
        // A deploy syncs a folder; so does a promotion of an environment that builds its own.
        let deploy = inputs(&[("ENVIRONMENT", "prod")]);
        let err = build(&deploy, &file(""), &ctx()).unwrap_err().to_string();
        assert!(err.contains("frontend-dir"), "{err}");
        let err = build(&promote, &file(", artifact: false"), &ctx())
            .unwrap_err()
            .to_string();
        assert!(err.contains("frontend-dir"), "{err}");
    }

    #[test]
    fn stage_from_file_with_defaults() {
        let c = build_sample(&[("ENVIRONMENT", "stage")]).unwrap();
        assert_eq!(c.command, Command::Deploy);
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.backend.cluster, "stage-cluster");
        assert_eq!(c.backend.containers, vec!["backend"]);
        assert_eq!(
            c.backend.image_tag.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        assert_eq!(c.backend.wait_timeout, Duration::from_secs(1800));
        assert!(c.backend.rollback_on_failure);
        assert_eq!(c.auth.session_name, "cloudshop-deploy-42-2");
        assert_eq!(c.auth.duration, Duration::from_secs(3600));
        assert_eq!(c.auth.audience, "sts.amazonaws.com");
        let f = c.frontend.unwrap();
        assert_eq!(
            f.dir,
            Some(PathBuf::from("/github/workspace/frontend/build"))
        );
        assert!(f.delete);
        assert_eq!(c.smoke.checks.len(), 2);
        assert_eq!(
            c.smoke.cors_origin.as_deref(),
            Some("http://stage-cloudshop-frontend-746669238399.s3-website-us-east-1.amazonaws.com")
        );
        assert_eq!(c.smoke.timeout, Duration::from_secs(120));
        assert_eq!(
            c.api_url.as_ref().map(url::Url::as_str),
            Some("http://stage-alb-458962299.us-east-1.elb.amazonaws.com/")
        );
        assert_eq!(
            c.website_url.as_ref().map(url::Url::as_str),
            Some(
                "http://stage-cloudshop-frontend-746669238399.s3-website-us-east-1.amazonaws.com/"
            )
        );
    }

    #[test]
    fn website_url_falls_back_to_the_bucket_endpoint() {
        let c = build_sample(&[
            ("ENVIRONMENT", "prod"),
            ("FRONTEND-BUCKET", "web-b"),
            ("FRONTEND-DIR", "web"),
        ])
        .unwrap();
        assert_eq!(
            c.website_url.as_ref().map(url::Url::as_str),
            Some("http://web-b.s3-website-us-east-1.amazonaws.com/")
        );
        assert_eq!(c.api_url, None);
        assert_eq!(
            s3_website_endpoint("b", "eu-central-1"),
            "http://b.s3-website.eu-central-1.amazonaws.com"
        );
    }

    #[test]
    fn inputs_override_the_file() {
        let c = build_sample(&[
            ("ENVIRONMENT", "stage"),
            ("CLUSTER", "other"),
            ("WAIT-TIMEOUT", "1h 5m"),
            ("AWS-REGION", "eu-west-1"),
            ("EXTRA-TAGS", "latest, stage\nv1"),
            ("FRONTEND", "false"),
        ])
        .unwrap();
        assert_eq!(c.backend.cluster, "other");
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.backend.wait_timeout, Duration::from_secs(3900));
        assert_eq!(c.backend.extra_tags, vec!["latest", "stage", "v1"]);
        assert!(c.frontend.is_none());
    }

    #[test]
    fn promote_takes_the_source_from_the_file() {
        let c = build_sample(&[
            ("ENVIRONMENT", "prod"),
            ("COMMAND", "promote"),
            ("IMAGE-TAG", "abc1234"),
        ])
        .unwrap();
        let p = c.promote.unwrap();
        assert_eq!(p.source_environment, "stage");
        assert_eq!(p.source_repository, "stage-cloudshop-backend");
        // Without `image-tag` the run picks the newest release verified on the source.
        let c = build_sample(&[("ENVIRONMENT", "prod"), ("COMMAND", "promote")]).unwrap();
        assert_eq!(c.backend.image_tag, None);
        assert_eq!(c.promote.unwrap().source_environment, "stage");
    }

    #[test]
    fn errors_name_the_problem() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "input `environment` is required"),
            (
                &[("ENVIRONMENT", "qa")],
                "unknown environment `qa` (configured: prod, stage)",
            ),
            (
                &[
                    ("ENVIRONMENT", "stage"),
                    ("ROLE-TO-ASSUME", "arn:aws:iam::123:role/x"),
                ],
                "invalid `role-to-assume`",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("WAIT-TIMEOUT", "soon")],
                "invalid `wait-timeout`: `soon` is not a duration",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("ROLE-DURATION-SECONDS", "60")],
                "outside 900..=43200",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("DRY-RUN", "maybe")],
                "invalid `dry-run`",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("COMMAND", "destroy")],
                "`destroy` is not a command",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("IMAGE-TAG", "a b")],
                "not a valid image tag",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("FRONTEND-DIR", "../../etc")],
                "outside the workspace",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("AWS-REGION", "Mars")],
                "not an AWS region",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("REGISTRY-URL", "http://[::1")],
                "invalid `registry-url`: `http://[::1` is not a URL (",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("REGISTRY-URL", "http://registry.example.com")],
                "invalid `registry-url`: `http://registry.example.com` uses plain http; use `https://`",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("REGISTRY-URL", "http://10.0.0.5:5000")],
                "uses plain http",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("REGISTRY-URL", "ftp://127.0.0.1")],
                "has scheme `ftp`",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("REGISTRY-URL", "https://u:p@r.example.com")],
                "must not contain credentials",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("FRONTEND-EXCLUDE", "*.map\na[")],
                "invalid `frontend glob`: `a[`: ",
            ),
            (
                &[("ENVIRONMENT", "stage"), ("SMOKE-TIMEOUT", "later")],
                "invalid `smoke-timeout`: `later` is not a duration",
            ),
        ];
        for (pairs, want) in cases {
            let err = build_sample(pairs).unwrap_err().to_string();
            assert!(err.contains(want), "{pairs:?}: `{err}` lacks `{want}`");
        }
    }

    #[test]
    fn values_arrive_compiled() {
        let yaml = format!(
            "{SAMPLE}    frontend:\n      bucket: b\n      dir: web\n      exclude: ['*.map']\n      cache-control: [{{ glob: 'static/**', value: max-age=60 }}]\n    smoke:\n      checks:\n        - {{ path: /health, max-latency: 2s, headers: {{ X-Api-Key: s3cr3t }} }}\n"
        );
        let c = build(
            &inputs(&[
                ("ENVIRONMENT", "prod"),
                ("FRONTEND-EXCLUDE", ".env"),
                ("REGISTRY-URL", "http://127.0.0.1:5000"),
            ]),
            &parse_file("f.yml", &yaml).unwrap(),
            &ctx(),
        )
        .unwrap();
        assert_eq!(
            c.backend.registry_url.as_ref().map(url::Url::as_str),
            Some("http://127.0.0.1:5000/")
        );
        let f = c.frontend.unwrap();
        assert_eq!(f.exclude.patterns(), ["*.map", ".env"]);
        assert!(f.exclude.is_match("static/main.js.map") && f.exclude.is_match(".env"));
        assert_eq!(f.cache_rules.find("static/a.js"), Some("max-age=60"));
        assert_eq!(f.cache_rules.find("index.html"), None);
        let check = &c.smoke.checks[0];
        assert_eq!(check.max_latency, Some(Duration::from_secs(2)));
        assert_eq!(check.method, reqwest::Method::GET);
        assert!(check.headers["x-api-key"].is_sensitive());
    }

    #[test]
    fn registry_url_is_refused_in_the_file_and_loopback_http_is_allowed() {
        let yaml = format!("{SAMPLE}    registry-url: https://evil.example.com\n");
        let err = build(
            &inputs(&[("ENVIRONMENT", "prod")]),
            &parse_file("f.yml", &yaml).unwrap(),
            &ctx(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("cannot be set in the environments file")
                && err.contains("`registry-url` input"),
            "{err}"
        );
        for ok in [
            "https://1.dkr.ecr.us-east-1.amazonaws.com",
            "http://127.0.0.2:5000",
            "http://localhost:5000",
            "http://[::1]:5000",
        ] {
            let c = build_sample(&[("ENVIRONMENT", "stage"), ("REGISTRY-URL", ok)]);
            assert!(c.is_ok(), "{ok}: {:?}", c.err());
        }
    }

    #[test]
    fn unknown_key_has_a_line_number() {
        let err = parse_file(
            "f.yml",
            "region: us-east-1\nenvironments:\n  stage:\n    clustr: x\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown field `clustr`"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn smoke_checks_are_validated_before_anything_runs() {
        let with_checks = |checks: &str| {
            let yaml = format!(
                "region: us-east-1\nenvironments:\n  stage:\n    cluster: c\n    service: s\n    ecr-repository: r\n    api-url: http://api.example\n    smoke:\n      checks:\n{checks}"
            );
            build(
                &inputs(&[("ENVIRONMENT", "stage")]),
                &parse_file("f.yml", &yaml).unwrap(),
                &ctx(),
            )
        };
        let ok =
            with_checks("        - { path: /health, headers: { X-Api-Key: s3cr3t } }\n").unwrap();
        assert_eq!(ok.smoke.checks.len(), 1);
        assert_eq!(ok.smoke.retry_interval, Duration::from_secs(1));
        for (checks, want) in [
            ("        - { path: health }\n", "must start with `/`"),
            ("        - { path: /a b }\n", "space"),
            (
                "        - { path: /h, headers: { \"bad name\": x } }\n",
                "not a header name",
            ),
            (
                "        - { path: /h, headers: { X-Key: \"s3cr3t\\n\" } }\n",
                "not a valid header value",
            ),
            (
                "        - { path: /h, method: HEAD, body-contains: ok }\n",
                "has no body",
            ),
            (
                "        - { path: /h, method: POST }\n",
                "is not GET, HEAD or OPTIONS",
            ),
        ] {
            let err = with_checks(checks).unwrap_err().to_string();
            assert!(err.contains(want), "{checks}: `{err}` lacks `{want}`");
            assert!(!err.contains("s3cr3t"), "a header value was echoed: {err}");
        }
    }
}
