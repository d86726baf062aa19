//! Entry point: read the process environment once, run, exit with the run's code.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let debug = std::env::var("ACTIONS_STEP_DEBUG").is_ok_and(|v| v == "true")
        || std::env::var("RUNNER_DEBUG").is_ok_and(|v| v == "1");
    let default = if debug {
        "cloudshop_deploy=debug,info"
    } else {
        "info"
    };
    let filter =
        EnvFilter::try_from_env("CLOUDSHOP_DEPLOY_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // The runner timestamps every line; ours would only add noise.
    tracing_subscriber::fmt()
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
    cloudshop_deploy::main_with(std::env::vars()).await
}
