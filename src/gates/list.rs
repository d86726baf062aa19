//! The release's gates as values, in order, and what they hand on to each other.
//!
//! APIs: none.

use crate::config::Config;
use crate::steps::{deploy, frontend, image, release, Clients};

/// What a gate did that a failure later undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    /// The service runs the new revision: point it back at the previous one.
    Service,
    /// The bucket holds (part of) the new release: put the previous one back.
    Site,
}

/// The gates of a release, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Preflight,
    Approval,
    Image,
    FrontendArtifact,
    Register,
    Migration,
    ServiceUpdate,
    Rollout,
    SmokeChecks,
    DeployTime,
    FrontendSync,
    WebsiteCheck,
    Watch,
    Finalize,
    Marker,
}

/// One gate: what it is called, what it needs, and what undoing it means.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    pub kind: Kind,
    pub name: &'static str,
    /// What must be configured (or have happened) for it to run.
    pub needs: &'static str,
    /// What undoing it means when a later gate fails.
    pub undo: &'static str,
    /// Read-only: a dry run stops at the first gate that is not.
    pub read_only: bool,
}

/// The release. A dry run runs the read-only head of it and stops.
pub const RELEASE: &[Gate] = &[
    Gate {
        kind: Kind::Preflight,
        name: "preflight",
        needs: "always: image, service, task definition, frontend build, source release",
        undo: "nothing: read-only",
        read_only: true,
    },
    Gate {
        kind: Kind::Approval,
        name: "approval",
        needs: "a promotion: reads the job's GitHub environment (and the commit's author for `promote.approvers`)",
        undo: "nothing: read-only",
        read_only: true,
    },
    Gate {
        kind: Kind::Image,
        name: "image",
        needs: "a promotion or an image archive",
        undo: "nothing: the image is addressed by digest and no tag moves before the marker",
        read_only: false,
    },
    Gate {
        kind: Kind::FrontendArtifact,
        name: "frontend artifact",
        needs: "a frontend whose build is published or promoted as an artifact",
        undo: "nothing: an artifact without a marker is never promoted",
        read_only: false,
    },
    Gate {
        kind: Kind::Register,
        name: "task definition",
        needs: "a change to the task definition",
        undo: "nothing: the new revision is left unused",
        read_only: false,
    },
    Gate {
        kind: Kind::Migration,
        name: "migration",
        needs: "a `migrate` step and a service update",
        undo: "nothing: migrations are expand/contract, so the previous release runs on the new schema",
        read_only: false,
    },
    Gate {
        kind: Kind::ServiceUpdate,
        name: "service update",
        needs: "a change to the service",
        undo: "roll the service back to the revision it ran before",
        read_only: false,
    },
    Gate {
        kind: Kind::Rollout,
        name: "rollout",
        needs: "a service update and `wait-timeout` above 0",
        undo: "the service update's undo",
        read_only: false,
    },
    Gate {
        kind: Kind::SmokeChecks,
        name: "smoke checks",
        needs: "`smoke` enabled with an `api-url`",
        undo: "nothing: write sequences clean up after themselves",
        read_only: false,
    },
    Gate {
        kind: Kind::DeployTime,
        name: "deploy time",
        needs: "always (best effort, never fails)",
        undo: "nothing: read-only",
        read_only: false,
    },
    Gate {
        kind: Kind::FrontendSync,
        name: "frontend sync",
        needs: "a `frontend`",
        undo: "restore the previous release's objects and state, byte for byte",
        read_only: false,
    },
    Gate {
        kind: Kind::WebsiteCheck,
        name: "website check",
        needs: "a synced frontend and the website check enabled with a `website-url`",
        undo: "nothing: read-only",
        read_only: false,
    },
    Gate {
        kind: Kind::Watch,
        name: "watch",
        needs: "smoke checks and a `watch` above 0",
        undo: "nothing: read-only",
        read_only: false,
    },
    Gate {
        kind: Kind::Finalize,
        name: "frontend finalize",
        needs: "a synced frontend",
        undo: "none: the release is final (stale files and backups deleted)",
        read_only: false,
    },
    Gate {
        kind: Kind::Marker,
        name: "marker",
        needs: "a rollout watched to its end",
        undo: "none: bookkeeping after the release is final",
        read_only: false,
    },
];

/// What the gates handed on to each other, as far as the release got.
#[derive(Default)]
pub struct Release {
    pub(crate) source: Option<image::SourceImage>,
    pub(crate) prepared: Option<deploy::Prepared>,
    pub(crate) frontend: Option<(frontend::Prepared, frontend::artifact::Plan)>,
    pub(crate) registered: Option<String>,
    pub(crate) migration: Option<crate::steps::migrate::MigratePlan>,
    /// When the register gate began: the phase `register and update` spans both gates.
    pub(crate) update_started: Option<tokio::time::Instant>,
    pub(crate) deployed: Option<deploy::Deployed>,
    pub(crate) deploy_started: Option<std::time::SystemTime>,
    pub(crate) synced: Option<frontend::Synced>,
    /// What to undo on a failure, oldest first.
    pub(crate) done: Vec<Undo>,
}

/// The run's fixed context: clients, config, release settings.
pub struct Cx<'a> {
    pub clients: &'a Clients,
    pub cfg: &'a Config,
    pub settings: &'a release::Settings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_starts_read_only_and_names_each_gate_once() {
        assert!(RELEASE[0].read_only);
        let first_write = RELEASE.iter().position(|g| !g.read_only).unwrap();
        assert!(RELEASE[first_write..].iter().all(|g| !g.read_only));
        let mut names: Vec<_> = RELEASE.iter().map(|g| g.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RELEASE.len());
        let order: Vec<_> = RELEASE.iter().map(|g| g.kind).collect();
        let at = |k| order.iter().position(|x| *x == k).unwrap();
        // The service changes only after the image and the frontend artifact exist; the site only after
        // the API it calls passed its checks; the marker last.
        assert!(at(Kind::Image) < at(Kind::ServiceUpdate));
        // A promotion's approval is checked before its first write.
        assert!(RELEASE[at(Kind::Approval)].read_only);
        assert!(at(Kind::Approval) < first_write);
        // The migration runs with the registered revision, before any task of it serves.
        assert!(at(Kind::Register) < at(Kind::Migration));
        assert!(at(Kind::Migration) < at(Kind::ServiceUpdate));
        assert!(at(Kind::FrontendArtifact) < at(Kind::ServiceUpdate));
        assert!(at(Kind::SmokeChecks) < at(Kind::FrontendSync));
        assert!(at(Kind::Watch) < at(Kind::Finalize));
        assert_eq!(order.last(), Some(&Kind::Marker));
    }
}
