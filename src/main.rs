//! Entry point: with a subcommand, the command line (`cloudshop-deploy deploy --environment stage`);
//! without one, the action, reading the process environment (`INPUT_*`) as the runner sets it. Either way:
//! install the signal handlers and the panic hook, run, exit with the run's code.

use std::process::ExitCode;

use cloudshop_deploy::run::Launch;

#[tokio::main]
async fn main() -> ExitCode {
    let (env, launch) = if std::env::args_os().len() > 1 {
        let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
        // A usage error (an unknown flag, a flag twice) exits here with code 2, before anything runs.
        let inv = cloudshop_deploy::cli::parse(std::env::args_os(), std::env::vars(), &cwd)
            .unwrap_or_else(|e| e.exit());
        cloudshop_deploy::github::commands::set_terminal();
        if let Err(e) = cloudshop_deploy::cli::truncate_files(&inv) {
            eprintln!("error: failed to create the output or summary file: {e}");
            return ExitCode::FAILURE;
        }
        (inv.env, Launch::Local(inv.local))
    } else if cloudshop_deploy::cli::by_hand(std::env::vars()) {
        // Typed at a terminal with no subcommand: the action's inputs are absent, so say how to use it.
        eprintln!("{}", cloudshop_deploy::cli::command().render_help());
        return ExitCode::from(2);
    } else {
        (std::env::vars().collect(), Launch::Action)
    };
    let debug = env.get("ACTIONS_STEP_DEBUG").is_some_and(|v| v == "true")
        || env.get("RUNNER_DEBUG").is_some_and(|v| v == "1");
    cloudshop_deploy::github::log::init(debug);
    cloudshop_deploy::shutdown::install_panic_hook();
    match cloudshop_deploy::shutdown::signals() {
        Ok(cancel) => cloudshop_deploy::run::main_launched(env, cancel, &launch).await,
        Err(e) => {
            tracing::warn!(error = %e, "no signal handlers: a cancel stops the run without a report");
            cloudshop_deploy::run::main_launched(env, std::future::pending(), &launch).await
        }
    }
}
