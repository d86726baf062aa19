//! Cancellation and panics: the two ways a run ends without reaching the end of [`crate::run`].
//!
//! The binary is PID 1 in a `FROM scratch` container, where the kernel drops SIGTERM and SIGINT unless a
//! handler is installed: [`signals`] installs one for each and resolves on the first. The run races its
//! pipeline against it; the pipeline future is dropped at its next `.await` (between whole requests: an
//! S3 `PutObject` or an ECS `UpdateService` is applied whole or not at all, and the frontend deletes only
//! after every upload, so a stop never leaves a site that serves a missing file), and the report as the
//! steps left it is written with `status=cancelled`.
//!
//! A signal during a rollback is different: dropping it could leave `UpdateService` to the previous
//! revision unsent while the run says nothing. The run then asks the rollback to stop at its next step
//! (`interrupt::request_stop`) and gives the in-flight request up to `interrupt::ROLLBACK_GRACE`; the
//! rollback records how far it got ("rollback interrupted after ...") with the command that finishes it.
//!
//! A panic cannot unwind (`panic = "abort"`): the hook from [`install_panic_hook`] writes the last
//! [`snapshot`] of the report with `status=failed` and the panic message before the process aborts.
//!
//! APIs: none.

use std::future::Future;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use crate::github::{commands, files::Sinks};
use crate::report::{Report, Status};

/// Where the outputs and the summary go, once known.
static SINKS: OnceLock<Sinks> = OnceLock::new();
/// The report as the run last saw it (`None` until the run started).
static LAST: Mutex<Option<Report>> = Mutex::new(None);

/// Remember where outputs and the summary go, for the panic hook.
pub fn set_sinks(sinks: &Sinks) {
    let _ = SINKS.set(sinks.clone());
}

/// Record the report as it stands, for the panic hook.
pub fn snapshot(report: &Report) {
    if let Ok(mut last) = LAST.lock() {
        *last = Some(report.clone());
    }
}

/// Install handlers for SIGTERM and SIGINT now (so a signal is never dropped, also as PID 1); the
/// future resolves with the name of the first that arrives. Call inside the tokio runtime.
pub fn signals() -> std::io::Result<impl Future<Output = &'static str>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

/// On a panic, write the last snapshot with `status=failed` and the panic message, let the default hook
/// print the panic, and abort: also in a build that would unwind, so a panic in a spawned task never
/// lets the run go on and write its outputs a second time.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        write_panic_report(&format!("{message}{place}"), &mut std::io::stdout());
        // No request can be sent from here: name the multipart uploads left open, with the fix.
        for (object, id) in crate::steps::frontend::open_uploads() {
            crate::github::commands::emit(
                crate::github::commands::Level::Warning,
                Some("cloudshop-deploy"),
                &format!(
                    "the multipart upload `{id}` of `{object}` was left open by the panic: abort it with \
                     `aws s3api abort-multipart-upload` (its parts are billed until then)"
                ),
            );
        }
        default(info);
        std::process::abort();
    }));
}

/// Write the last snapshot as a failed run with `message` as its error (also when no snapshot exists
/// yet: the outputs then hold just `status=failed`). Never blocks on a lock the panicking code held.
pub fn write_panic_report(message: &str, out: &mut impl Write) {
    let Some(sinks) = SINKS.get() else {
        return;
    };
    let mut report = match LAST.try_lock() {
        Ok(mut last) => last.take().unwrap_or_default(),
        Err(_) => Report::default(),
    };
    report.status = Some(Status::Failed);
    report.error = Some((
        format!("the action crashed: {message}"),
        "this is a bug in cloudshop-deploy: re-run, and report it with this log".into(),
    ));
    let _ = sinks.write_outputs(&report.outputs(), out);
    let _ = sinks.write_summary(&report.summary_markdown(), out);
    let _ = writeln!(
        out,
        "{}",
        commands::annotation(
            commands::Level::Error,
            Some("cloudshop-deploy"),
            &format!("the action crashed: {message}")
        )
    );
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test that touches the process-wide sinks and snapshot.
    #[test]
    fn a_panic_writes_the_last_snapshot_as_failed() {
        let dir = tempfile::tempdir().unwrap();
        let sinks = Sinks {
            output_file: Some(dir.path().join("output")),
            summary_file: Some(dir.path().join("summary")),
        };
        set_sinks(&sinks);
        let mut report = Report::new("deploy", "stage", false);
        report.aws_account_id = Some("123456789012".into());
        snapshot(&report);
        let mut stdout = Vec::new();
        write_panic_report("index out of bounds at src/x.rs:1", &mut stdout);
        let outputs = std::fs::read_to_string(dir.path().join("output")).unwrap();
        let lines: Vec<&str> = outputs.lines().collect();
        let value = |name: &str| {
            let at = lines
                .iter()
                .position(|l| l.starts_with(&format!("{name}<<")))?;
            lines.get(at + 1).copied()
        };
        assert_eq!(value("status"), Some("failed"), "{outputs}");
        assert_eq!(value("aws-account-id"), Some("123456789012"), "{outputs}");
        let summary = std::fs::read_to_string(dir.path().join("summary")).unwrap();
        assert!(
            summary.contains("the action crashed: index out of bounds at src/x.rs:1"),
            "{summary}"
        );
        let stdout = String::from_utf8(stdout).unwrap();
        assert_eq!(
            stdout.lines().filter(|l| l.starts_with("::error")).count(),
            1,
            "{stdout}"
        );
    }
}
