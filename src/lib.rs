//! cloudshop-deploy: deploy CloudShop (ECS Fargate backend, S3 website frontend) from GitHub Actions.
//!
//! # Layout
//! - `main.rs`: with a subcommand, parses the command line ([`cli`]); without one, reads the process
//!   environment once; then runs ([`run::main_launched`]).
//! - [`cli`]: the binary as a command line for a run outside Actions (`deploy|promote|rollback|releases`):
//!   `table`, the one table of the inputs (flags, `action.yml` and the README are checked against it);
//!   the flags -> the same `INPUT_*` environment the action reads, with local values for the commit and
//!   the repository; `credentials`, the standard chain and `sts:AssumeRole`.
//! - [`error`]: the run's [`Error`] and the [`Diagnose`] trait (message plus one hint line) that every
//!   module's error enum implements next to its definition; a leaf.
//! - [`inputs`]: `INPUT_*` variables (both spellings) -> raw strings, `""` = unset.
//! - [`config`]: raw inputs + the YAML environments file -> a validated [`config::Config`] (pure).
//! - [`clock`]: the run's wall clock, handed to what reads the date (the watch's signal windows).
//! - [`github`]: workflow commands, the output and summary files, the OIDC token, and `rest` (the REST
//!   reads of the approval gate: the job's environment, a commit's author; and of a promotion's summary:
//!   the commits between the live release and the promoted one).
//! - [`aws`]: the HTTPS client, `SdkConfig`, OIDC role credentials, error helpers.
//! - [`shutdown`]: SIGTERM/SIGINT handlers the run races its pipeline against, and the panic hook that
//!   writes the last report snapshot before the process aborts.
//! - [`interrupt`]: a signal during a rollback asks it to stop at its next step (a leaf).
//! - [`run`]: load, connect, dispatch the command, write outputs and summary; the one place that turns
//!   the steps' outcomes into the run's [`report::Status`].
//! - [`gates`]: a deploy or promotion as an ordered list of gates (preflight, approval, image, frontend artifact,
//!   task definition, service update, rollout with the test-traffic and canary gates at its pauses
//!   (`gates::pauses`), smoke checks, frontend sync, website check, watch, finalize, marker), run by one loop that records each and, on a failure, undoes what was done
//!   through the one rollback decision (`gates::undo`).
//! - [`steps`]: async functions over SDK clients, each returning its own typed outcome and report
//!   section and recording into the run's timeline:
//!   - `steps/deploy/`: `mod.rs` (prepare, register, update, rollout), `task_def` (the JSON
//!     definition), `service` (DescribeServices, UpdateService, health), `rollback` (after a failure and
//!     `command: rollback`), `rollout/` (the rollout wait: `poller`: pacing and the poll loop; `probe`:
//!     the rolling probe and the verdicts; `blue_green`: the service-deployment probe and its pauses;
//!     `diagnosis`: stopped tasks and fixes), `hooks` (PAUSE lifecycle hooks: the preflight's check,
//!     the pause of our deployment, `ContinueServiceDeployment`), `report` (the backend section and its
//!     typed outcome), `error` (errors and hints).
//!   - `steps/image/`: the ECR image for every command: `resolve` (tags to digests), `tag` (re-tag by
//!     putting the manifest back), `copy` (promotion and archive push), `report` (the promotion's
//!     section), `error`.
//!   - `steps/smoke`: the HTTP checks (a smoke round sends each once), the write sequences, the website
//!     check (`check`: requests and judgement; `result`: what the requests got; `report`: the smoke
//!     section, the watch's table included; `schedule`: retry timing; `redact`: secrets out of URLs and
//!     headers; `sample_report`: what the test-traffic sample found).
//!   - `steps/test_sample`: the traffic sample on the test listener at a `POST_TEST_TRAFFIC_SHIFT` pause
//!     (GET requests over the checks' paths, none retried; the share of bad answers decides).
//!   - `steps/watch/`: the post-deploy watch: smoke rounds, the service and the signals, read together
//!     every interval until the window ends or bad rounds in a row are sustained (`rounds`: the pure
//!     timing and streak rules).
//!   - `steps/signals/`: what the post-deploy watch reads besides its checks (`compare`: the pure limits;
//!     `metrics`: the target group's CloudWatch metrics, read where production went; `loglines`: error lines in the log group;
//!     `unreadable`: why a signal could not be read; `report`: the section).
//!   - `steps/canary/`: the new revision against the old one in the same minutes while it takes a slice
//!     of production traffic (`groups`: which target group is the new revision's, from the listener
//!     rules; `read`: both groups' metrics and each revision's error lines, through `signals`; `judge`:
//!     the pure verdict, a two-proportion test and minimum effects; `pace`: judged again while the
//!     traffic is too little, within the step's budget; `report`: the section with its charts; `error`).
//!   - `steps/migrate/`: the migration gate between the new revision's registration and the service
//!     update (`plan`: the preflight's pure decisions; `task`: RunTask, DescribeTasks, StopTask and the
//!     streamed log lines; `report`: the section and outputs; `error`: errors and the causes in the
//!     migration's lines).
//!   - `steps/approval`: a promotion's approval gate (the GitHub environment's protection rules, the
//!     `promote.approvers` fallback, the summary section), read-only and before any write.
//!   - `steps/deploy_time`: where a finished rollout's time went (tasks' timestamps, service events),
//!     with what could make it faster.
//!   - a failed rollout's diagnosis: `steps/task_logs` (the stopped tasks' last log lines),
//!     `steps/masking` (credentials out of those lines), `steps/known_causes` (what the lines and exit
//!     codes say went wrong, with the fix), `steps/target_health` (the target groups' health and checks).
//!   - `steps/frontend`: the S3 sync (`plan`: the pure decision of uploads and deletes; `undo`: the pure
//!     decision of a rollback; `local`: the build folder; `state`: the sync state object and the live
//!     release; `pending`: the journal of a restore, finished by the next run; `s3`, `multipart`,
//!     `cloudfront`: the I/O; `release`: finalize or restore a release; `artifact`: the
//!     build as a release artifact in ECR; `report`, `error`).
//! - [`retry`]: the one retry policy (attempts, backoff, jitter) every hand-made retry goes through;
//!   a retried operation inside another tries once. A leaf.
//! - [`registry`]: an OCI distribution client, the image copy (promotion, archive push) and artifacts
//!   (the frontend build, streamed to and from disk).
//! - [`report`]: one [`report::Report`] -> step outputs and the job summary; `report/section` is the
//!   leaf every step shares (the `Section` trait, Markdown escaping, the timed phases), importing nothing
//!   from the crate.
//!
//! Nothing mutating happens before every input, the environments file and the live AWS state it depends
//! on have been checked: a bad input costs a clear error and no change.

/// A section of `docs/troubleshooting.md` an error links to, by its anchor. Every use is checked
/// against the document's headings by a test, so a hint never links to a section that is not there.
macro_rules! troubleshooting {
    ($anchor:literal) => {
        Some($anchor)
    };
}

pub mod aws;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod gates;
pub mod github;
pub mod inputs;
pub mod interrupt;
pub mod registry;
pub mod report;
pub mod retry;
pub mod run;
pub mod shutdown;
pub mod steps;

pub use error::{Diagnose, Error};
pub use run::{main_with, main_with_cancel};
