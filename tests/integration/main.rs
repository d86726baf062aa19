//! The integration tests, one binary: each file is a module, so the AWS SDKs and the harness are compiled
//! and linked once. The servers the tests talk to live in the dev-only `harness` crate.

// `#[path]` makes each file own its directory, so the `mod common;` each one declares finds the shim
// next to it.
#[path = "action_metadata.rs"]
mod action_metadata;
#[path = "deploy.rs"]
mod deploy;
#[path = "foundation.rs"]
mod foundation;
#[path = "frontend.rs"]
mod frontend;
#[path = "pipeline.rs"]
mod pipeline;
#[path = "promote.rs"]
mod promote;
#[path = "promote_e2e.rs"]
mod promote_e2e;
#[path = "smoke.rs"]
mod smoke;
