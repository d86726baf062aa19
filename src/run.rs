//! The run: environment in, exit code out. Reads inputs and config, gets credentials, dispatches the
//! command, and always writes the outputs and the summary, also for a failed run.
//!
//! The steps write only their own sections of the [`Report`] (and its timeline); the run's [`Status`] is
//! decided here alone, by [`status`], from the backend's outcome and the run's result.
//!
//! The same run serves the action and the command line ([`Launch`]): they differ only in how the role is
//! assumed and where the outputs and the summary go.
//!
//! APIs: STS `GetCallerIdentity` and, with `role-to-assume`, `AssumeRoleWithWebIdentity` in Actions (see
//! `aws::credentials`) or `AssumeRole` from the command line (see `cli::credentials`); the steps' calls.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use tokio::time::Instant;

use crate::aws::credentials::{self, OidcRoleProvider, RoleSettings};
use crate::config::{self, Command, Config};
use crate::error::{Diagnose, Error};
use crate::github::{commands, files::Sinks, oidc, Context};
use crate::inputs::Inputs;
use crate::report::section::md_escape;
use crate::report::{Report, Status};
use crate::steps::deploy::{BackendOutcome, BackendReport};
use crate::steps::smoke::SmokeReport;
use crate::steps::{deploy, frontend, migrate, release, smoke, Clients};

/// Run the action with the given environment variables; print outputs, summary and errors; return the
/// process exit code.
pub async fn main_with<I>(vars: I) -> ExitCode
where
    I: IntoIterator<Item = (String, String)>,
{
    main_with_cancel(vars, std::future::pending()).await
}

/// [`main_with`], stopped when `cancel` resolves (with the signal's name): the pipeline is dropped at
/// its next `.await` and the report as the steps left it is written with `status=cancelled`.
pub async fn main_with_cancel<I, C>(vars: I, cancel: C) -> ExitCode
where
    I: IntoIterator<Item = (String, String)>,
    C: std::future::Future<Output = &'static str>,
{
    main_launched(vars, cancel, &Launch::Action).await
}

/// How the binary was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// By the runner, as the action: OIDC, the runner's files, workflow commands.
    Action,
    /// From a shell, as `cloudshop-deploy <command> --flags` (see [`crate::cli`]).
    Local(crate::cli::Local),
}

/// [`main_with_cancel`] for a run of the given kind; the environment comes already cleaned of the
/// runner's variables for a local run ([`crate::cli::parse`]).
pub async fn main_launched<I, C>(vars: I, cancel: C, launch: &Launch) -> ExitCode
where
    I: IntoIterator<Item = (String, String)>,
    C: std::future::Future<Output = &'static str>,
{
    let env: BTreeMap<String, String> = vars.into_iter().collect();
    let get = |k: &str| env.get(k).cloned();
    let started = Instant::now();
    let ctx = Context::from_env(get);
    let sinks = Sinks::from_env(get);
    crate::shutdown::set_sinks(&sinks);

    let mut report = Report::default();
    let mut cancelled_by = None;
    // The run's clients outlive a cancelled pipeline, so the cancel can stop what it left running.
    let clients_slot = std::sync::OnceLock::new();
    let result = match load(&env, &ctx) {
        Ok(cfg) => {
            report = Report::new(cfg.command.as_str(), &cfg.environment, cfg.dry_run);
            report.website_url = cfg.website_url.as_ref().map(url::Url::to_string);
            report.api_url = cfg.api_url.as_ref().map(url::Url::to_string);
            crate::shutdown::snapshot(&report);
            let result = {
                let pipeline = execute(&cfg, &ctx, &env, launch, &clients_slot, &mut report);
                tokio::pin!(pipeline);
                tokio::select! {
                    result = &mut pipeline => result,
                    signal = cancel => {
                        cancelled_by = Some(signal);
                        if crate::interrupt::is_rolling_back() {
                            // Let the rollback's in-flight request finish; it stops at its next step.
                            crate::interrupt::request_stop();
                            let grace = crate::interrupt::ROLLBACK_GRACE;
                            let _ = tokio::time::timeout(grace, &mut pipeline).await;
                        }
                        Err(Cancelled(signal).into())
                    }
                }
            };
            if cancelled_by.is_some() {
                // The dropped pipeline's multipart uploads: their aborts are on their way.
                frontend::settle_aborts(frontend::ABORT_WAIT).await;
            }
            if let (Some(signal), Some(clients)) = (cancelled_by, clients_slot.get()) {
                stop_what_was_left(clients, &mut report, signal).await;
            }
            settle_smoke(&cfg, &mut report);
            result
        }
        Err(e) => Err(e),
    };
    report.duration_seconds = started.elapsed().as_secs_f64();
    report.status = Some(match cancelled_by {
        Some(signal) => {
            report.cancelled_by = Some(signal.to_string());
            Status::Cancelled
        }
        // A listing changes nothing.
        None if report.releases.is_some() && result.is_ok() => Status::NoChange,
        None => status(report.backend.as_ref().map(|b| &b.outcome), result.is_ok()),
    });
    if let Err(e) = &result {
        report.error = Some((e.to_string(), e.hint()));
    }
    let docs = crate::error::docs_base(get);
    finish(&report, &sinks, result, docs.as_deref(), launch)
}

/// After a cancel: a pause the dropped pipeline was judging is answered ROLLBACK, and a migration task it
/// left running is stopped.
async fn stop_what_was_left(clients: &Clients, report: &mut Report, signal: &'static str) {
    if let Some(b) = report.backend.as_mut() {
        let paused = b.paused.take();
        if let Some(d) = deploy::hooks::roll_back_on_cancel(&clients.ecs, paused, signal).await {
            b.pauses.push(d);
        }
    }
    if let Some(m) = report.migration.as_mut() {
        migrate::stop_on_cancel(clients, m, signal).await;
    }
}

/// The run was stopped by a signal.
#[derive(Debug, thiserror::Error)]
#[error("the run was cancelled by `{0}`")]
pub struct Cancelled(pub &'static str);

impl Diagnose for Cancelled {
    fn hint(&self) -> String {
        "the summary says what the run left; re-run the job to finish the deploy".into()
    }
}

/// The run's status, decided in this one place: from how the backend step ended (deploy or rollback)
/// and whether the run as a whole succeeded. A rollback (by this run or by ECS) is reported as such
/// also when the run fails, so `rolled-back` tells a caller the previous version is serving again.
pub fn status(backend: Option<&BackendOutcome>, ok: bool) -> Status {
    match backend {
        Some(
            BackendOutcome::RolledBackByEcs
            | BackendOutcome::Failed { rolled_back: true }
            | BackendOutcome::RolledBackAfter(_)
            | BackendOutcome::RolledBack,
        ) => Status::RolledBack,
        _ if !ok => Status::Failed,
        Some(BackendOutcome::NoChange) => Status::NoChange,
        Some(BackendOutcome::Planned) => Status::Planned,
        Some(BackendOutcome::Deployed { .. }) => Status::Deployed,
        // A run that ended well has taken the backend to one of the outcomes above.
        Some(
            BackendOutcome::Started
            | BackendOutcome::Preflight
            | BackendOutcome::PreflightFailed(_)
            | BackendOutcome::Ready
            | BackendOutcome::TagsFailed
            | BackendOutcome::Superseded
            | BackendOutcome::Failed { rolled_back: false },
        )
        | None => Status::Failed,
    }
}

fn load(env: &BTreeMap<String, String>, ctx: &Context) -> Result<Config, Error> {
    let inputs = Inputs::from_env(env.iter())?;
    if let Some(token) = &inputs.github_token {
        commands::mask(token);
    }
    for name in Inputs::unknown(env.iter()) {
        commands::emit(
            commands::Level::Warning,
            Some("cloudshop-deploy"),
            &format!(
                "unknown input `{name}` is ignored; see the README for the inputs of this version"
            ),
        );
    }
    let (file, _name) = config::load_file(&inputs, &ctx.workspace)?;
    Ok(config::build(&inputs, &file, ctx)?)
}

/// Write outputs and summary, then the error (if any) with its hint, which links to its section of
/// the troubleshooting guide under `docs` (see [`crate::docs_base`]).
fn finish(
    report: &Report,
    sinks: &Sinks,
    result: Result<(), Error>,
    docs: Option<&str>,
    launch: &Launch,
) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failure = result
        .err()
        .map(|e| (e.to_string(), e.hint_with_link(docs)));
    let written = match launch {
        Launch::Action => sinks
            .write_outputs(&report.outputs(), &mut out)
            .map(|()| sinks.write_summary(&report.summary_markdown(), &mut out)),
        // A person reads the summary first and finds the outputs at the end (or in their file).
        Launch::Local(local) => {
            let summary = sinks.write_summary(&report.summary_markdown(), &mut out);
            crate::cli::write_outputs(local, sinks, &report.outputs(), &mut out).map(|()| summary)
        }
    };
    match written {
        // Without outputs the step cannot count as a success; a run error already explains itself.
        Err(e) => {
            failure.get_or_insert((e.to_string(), Diagnose::hint(&e)));
        }
        Ok(Err(e)) => {
            let _ = writeln!(
                out,
                "{}",
                commands::annotation(commands::Level::Warning, None, &e.to_string())
            );
        }
        Ok(Ok(())) => {}
    }
    if let Some((message, hint)) = &failure {
        let _ = writeln!(
            out,
            "{}",
            commands::annotation(commands::Level::Error, Some("cloudshop-deploy"), message)
        );
        let _ = writeln!(out, "hint: {hint}");
    }
    let _ = out.flush();
    exit_code(failure.is_none())
}

/// Is an endpoint override in force (an emulator), so S3 must use path-style addressing?
fn endpoint_override(env: &BTreeMap<String, String>) -> bool {
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
        .iter()
        .any(|k| env.get(*k).is_some_and(|v| !v.is_empty()))
}

/// Get credentials (OIDC role or the standard chain), build the clients, record the account.
pub async fn connect(
    cfg: &Config,
    ctx: &Context,
    env: &BTreeMap<String, String>,
    launch: &Launch,
    report: &mut Report,
) -> Result<Clients, Error> {
    let phase = Instant::now();
    let _group = commands::group("AWS credentials");
    let provider = match (launch, &cfg.auth.role_to_assume) {
        (Launch::Local(local), _) => {
            crate::cli::credentials::provider(cfg, local.profile.as_deref()).await?
        }
        (Launch::Action, Some(role)) => Some(oidc_role(cfg, ctx, role).await?),
        (Launch::Action, None) => {
            tracing::info!("no `role-to-assume`: using the standard AWS credential chain");
            None
        }
    };
    let sdk = crate::aws::sdk_config(&cfg.region, provider).await;
    let clients = Clients::new(sdk, endpoint_override(env));
    let account = credentials::account_id(&clients.sts).await?;
    tracing::info!(account = %account, region = %cfg.region, "AWS credentials work");
    report.aws_account_id = Some(account);
    report.phase("credentials", phase, crate::report::section::Outcome::Ok);
    Ok(clients)
}

/// The role assumed through the job's OIDC token, assumed once now so a trust-policy problem is
/// reported as such, before anything else.
async fn oidc_role(
    cfg: &Config,
    ctx: &Context,
    role: &str,
) -> Result<SharedCredentialsProvider, Error> {
    let (Some(url), Some(token)) = (&ctx.id_token_url, &ctx.id_token_request_token) else {
        return Err(credentials::Error::Oidc(oidc::Error::NoPermission).into());
    };
    let http = crate::aws::reqwest_client(Duration::from_secs(30)).map_err(|e| {
        credentials::Error::Oidc(oidc::Error::Request {
            attempts: 0,
            last: e.to_string(),
        })
    })?;
    let tokens = oidc::TokenSource {
        request_url: url.clone(),
        request_token: token.clone(),
        audience: cfg.auth.audience.clone(),
        http,
        attempts: 5,
        backoff: Duration::from_millis(500),
        required_environment: cfg.auth.github_environment.clone(),
    };
    let unsigned = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new(cfg.region.clone()))
        .http_client(crate::aws::http_client())
        .no_credentials()
        .load()
        .await;
    let provider = OidcRoleProvider::new(
        aws_sdk_sts::Client::new(&unsigned),
        tokens,
        RoleSettings {
            role_arn: role.to_string(),
            session_name: cfg.auth.session_name.clone(),
            duration: cfg.auth.duration,
            attempts: 8,
            backoff: Duration::from_millis(500),
            refresh_margin: Duration::from_secs(300),
        },
    );
    provider.credentials().await?;
    tracing::info!(role = %role, session = %cfg.auth.session_name, "assumed role through GitHub OIDC");
    Ok(SharedCredentialsProvider::new(provider))
}

/// `smoke-status` is always written for a deploy, also when the run ended (or was cancelled) before the
/// checks or before they could start: a section no step wrote into.
fn settle_smoke(cfg: &Config, report: &mut Report) {
    if !matches!(cfg.command, Command::Deploy | Command::Promote) {
        return;
    }
    if report
        .smoke
        .as_ref()
        .is_none_or(|s| *s == SmokeReport::default())
    {
        report.smoke = Some(if cfg.dry_run {
            smoke::dry_run(&cfg.smoke)
        } else {
            smoke::SmokeReport::skipped("not reached: the run ended before the smoke tests")
        });
    }
}

async fn execute(
    cfg: &Config,
    ctx: &Context,
    env: &BTreeMap<String, String>,
    launch: &Launch,
    clients_slot: &std::sync::OnceLock<Clients>,
    report: &mut Report,
) -> Result<(), Error> {
    let clients = connect(cfg, ctx, env, launch, report).await?;
    let _ = clients_slot.set(clients.clone());
    crate::shutdown::snapshot(report);
    let settings = release::Settings::new(ctx, env);
    match cfg.command {
        Command::Deploy | Command::Promote => {
            let picked = match target(&clients, cfg, &settings, report).await? {
                Target::Nothing => return Ok(()),
                Target::Own => None,
                Target::Picked(picked) => Some(picked),
            };
            let cx = crate::gates::Cx {
                clients: &clients,
                cfg: picked.as_deref().unwrap_or(cfg),
                settings: &settings,
            };
            crate::gates::run(&cx, report).await
        }
        Command::Releases => {
            let others = crate::config::others_from_env(env, ctx);
            report.releases = Some(release::releases(&clients, cfg, &others, &settings).await?);
            Ok(())
        }
        Command::Rollback => {
            // By default, the newest verified release other than the running one.
            let (default_to, choice) = match cfg.backend.revision {
                Some(_) => (None, None),
                None => {
                    let choice = release::pick(&clients, cfg, &settings).await?;
                    let section = report.release.get_or_insert_with(Default::default);
                    section.rollback_to = Some(choice.describe());
                    let revision = release::revision_of(&clients, cfg, &choice).await?;
                    (Some(revision), Some(choice))
                }
            };
            let backend = report.backend.get_or_insert_with(BackendReport::default);
            deploy::rollback_command(&clients, cfg, default_to, backend, &mut report.phases)
                .await?;
            if let Some(f) = &cfg.frontend {
                let sr = report.frontend.get_or_insert_with(Default::default);
                // The site of the release the backend went back to, when its marker names it; else
                // the release the bucket served before the live one.
                match choice.as_ref().and_then(release::Choice::frontend) {
                    Some(r) => {
                        frontend::artifact::restore_release(
                            &clients,
                            cfg,
                            f,
                            &r,
                            sr,
                            &mut report.phases,
                        )
                        .await?
                    }
                    None => {
                        frontend::artifact::restore_previous(&clients, cfg, sr, &mut report.phases)
                            .await?;
                    }
                }
            }
            Ok(())
        }
    }
}

/// What the gates of a deploy or promotion run with.
enum Target {
    /// The run's own configuration.
    Own,
    /// A promotion without `image-tag`: the configuration naming the release it picked.
    Picked(Box<Config>),
    /// Nothing to promote: the run ends `no-change`.
    Nothing,
}

/// A promotion without `image-tag` picks its release; one of a commit SHA gets the same summary line
/// (prod's live SHA, the commits between, the compare link), read before the gates. Read-only.
async fn target(
    clients: &Clients,
    cfg: &Config,
    settings: &release::Settings,
    report: &mut Report,
) -> Result<Target, Error> {
    match (cfg.command, &cfg.backend.image_tag) {
        (Command::Promote, None) => Ok(
            match promotion_target(clients, cfg, settings, report).await? {
                Some(picked) => Target::Picked(Box::new(picked)),
                None => Target::Nothing,
            },
        ),
        (Command::Promote, Some(tag)) if release::is_commit_sha(tag) => {
            let line = release::explanation(clients, cfg, settings, tag).await;
            report
                .release
                .get_or_insert_with(Default::default)
                .promotion = Some(line);
            Ok(Target::Own)
        }
        _ => Ok(Target::Own),
    }
}

/// A promotion without `image-tag`: the configuration naming the newest release verified on the source
/// environment, or `None` (the report says "nothing to promote", `status=no-change`) when the target
/// already runs it. Read-only.
async fn promotion_target(
    clients: &Clients,
    cfg: &Config,
    settings: &release::Settings,
    report: &mut Report,
) -> Result<Option<Config>, Error> {
    let _group = commands::group("Pick the release to promote");
    let picked = release::promotable(clients, cfg, settings).await?;
    let section = report.release.get_or_insert_with(Default::default);
    match picked {
        release::Promotable::NothingNew(v) => {
            tracing::info!(
                "nothing to promote: `{}` runs `{}` ({}), the newest verified release",
                cfg.environment,
                v.sha,
                v.digest
            );
            section.promotion = Some(format!(
                "nothing to promote: `{}` already runs `{}`, the newest release verified on the source",
                md_escape(&cfg.environment),
                md_escape(&v.sha)
            ));
            let b = &cfg.backend;
            report.backend = Some(BackendReport {
                cluster: b.cluster.clone(),
                service: b.service.clone(),
                repository: b.repository.clone(),
                image_tag: Some(v.sha.clone()),
                image_digest: Some(v.digest.clone()),
                outcome: BackendOutcome::NoChange,
                ..BackendReport::default()
            });
            Ok(None)
        }
        release::Promotable::Ship(v) => {
            tracing::info!(
                "promoting `{}` ({}), the newest release verified on the source, verified at {}",
                v.sha,
                v.digest,
                v.verified_at
            );
            let line = release::explanation(clients, cfg, settings, &v.sha).await;
            report
                .release
                .get_or_insert_with(Default::default)
                .promotion = Some(line);
            let mut picked = cfg.clone();
            picked.backend.image_tag = Some(v.sha.clone());
            Ok(Some(picked))
        }
    }
}

/// Exit code for a run result.
fn exit_code(ok: bool) -> std::process::ExitCode {
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_follows_the_backend_outcome_and_the_result() {
        use BackendOutcome as B;
        let cases: Vec<(Option<BackendOutcome>, bool, Status)> = vec![
            (None, false, Status::Failed),
            (Some(B::Deployed { watched: true }), true, Status::Deployed),
            (Some(B::Deployed { watched: false }), true, Status::Deployed),
            // Deployed, then the smoke tests failed and nothing was rolled back.
            (Some(B::Deployed { watched: true }), false, Status::Failed),
            (Some(B::NoChange), true, Status::NoChange),
            (Some(B::NoChange), false, Status::Failed),
            (Some(B::Planned), true, Status::Planned),
            // The frontend preflight failed after the backend planned.
            (Some(B::Planned), false, Status::Failed),
            (Some(B::RolledBackByEcs), false, Status::RolledBack),
            (
                Some(B::Failed { rolled_back: true }),
                false,
                Status::RolledBack,
            ),
            (
                Some(B::Failed { rolled_back: false }),
                false,
                Status::Failed,
            ),
            (
                Some(B::RolledBackAfter("smoke tests failed".into())),
                false,
                Status::RolledBack,
            ),
            (Some(B::RolledBack), true, Status::RolledBack),
            (Some(B::Superseded), false, Status::Failed),
            (Some(B::PreflightFailed("x".into())), false, Status::Failed),
            (Some(B::TagsFailed), false, Status::Failed),
            // A rollback whose own rollout failed never got past its start.
            (Some(B::Started), false, Status::Failed),
            (Some(B::Ready), false, Status::Failed),
        ];
        for (outcome, ok, want) in cases {
            assert_eq!(status(outcome.as_ref(), ok), want, "{outcome:?} ok={ok}");
        }
    }
}
