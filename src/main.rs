//! Entry point: read the process environment once, run, exit with the run's code.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let debug = std::env::var("ACTIONS_STEP_DEBUG").is_ok_and(|v| v == "true")
        || std::env::var("RUNNER_DEBUG").is_ok_and(|v| v == "1");
    cloudshop_deploy::github::log::init(debug);
    cloudshop_deploy::main_with(std::env::vars()).await
}
