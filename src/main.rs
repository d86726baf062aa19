//! Entry point: read the process environment once, install the signal handlers and the panic hook, run,
//! exit with the run's code.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let debug = std::env::var("ACTIONS_STEP_DEBUG").is_ok_and(|v| v == "true")
        || std::env::var("RUNNER_DEBUG").is_ok_and(|v| v == "1");
    cloudshop_deploy::github::log::init(debug);
    cloudshop_deploy::shutdown::install_panic_hook();
    match cloudshop_deploy::shutdown::signals() {
        Ok(cancel) => cloudshop_deploy::main_with_cancel(std::env::vars(), cancel).await,
        Err(e) => {
            tracing::warn!(error = %e, "no signal handlers: a cancel stops the run without a report");
            cloudshop_deploy::main_with(std::env::vars()).await
        }
    }
}
