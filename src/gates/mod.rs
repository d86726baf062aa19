//! A deploy (or promotion) as an ordered list of gates, run by one loop.
//!
//! Each [`Gate`] is a value: a name, what it needs to run (else it is "not configured" and skipped), and
//! what undoing it means. [`run`] takes the gates in order, records each in the report's gate list (the
//! report is saved for the cancel path and the panic hook whenever a gate ends) and stops at the first
//! failure, which goes through the one rollback decision in [`undo`]: undo what was done, newest first,
//! and keep the failure as the headline with every rollback problem beneath it.
//!
//! Adding a gate is adding one entry to [`RELEASE`] and one arm to [`pass`] that calls its module.
//!
//! APIs: those of the steps each gate calls (see `crate::steps`).

mod list;
mod pass;
mod pauses;
pub mod record;
pub mod undo;

use crate::error::Error;
use crate::report::Report;

pub use list::{Cx, Gate, Kind, Release, RELEASE};
pub use record::{GateOutcome, GateRecord};
pub use undo::{Failure, Stage};

/// Run the release's gates in order; on a failure, undo what was done (newest first) through the one
/// rollback decision and return the failure, with any rollback problem beneath it.
pub async fn run(cx: &Cx<'_>, report: &mut Report) -> Result<(), Error> {
    let mut rel = Release::default();
    for gate in RELEASE {
        if cx.cfg.dry_run && !gate.read_only {
            break;
        }
        let result = pass::pass(gate.kind, cx, &mut rel, report).await;
        let outcome = match &result {
            Ok(o) => o.clone(),
            Err(_) => GateOutcome::Failed,
        };
        report.gates.push(GateRecord {
            name: gate.name,
            outcome,
        });
        crate::shutdown::snapshot(report);
        if let Err(failure) = result {
            let error = undo::after(cx, failure, &mut rel, report).await;
            crate::shutdown::snapshot(report);
            return Err(error);
        }
    }
    Ok(())
}
