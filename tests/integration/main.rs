//! The integration tests, one binary: each file is a module, so the AWS SDKs and the harness are compiled
//! and linked once instead of once per file. The servers the tests talk to (moto, the OIDC endpoint, the
//! app, the ECS simulator, the registry) live in the dev-only `harness` crate.

mod action_metadata;
mod approval;
mod canary;
mod cancel;
mod cli;
mod corpus;
mod demo;
mod deploy;
mod ecs_sim_timing;
mod fault_e2e;
mod faults;
mod foundation;
mod frontend;
mod frontend_multipart;
mod frontend_release;
mod hardening;
mod hostile_text;
mod layout;
mod lifecycle;
mod migrate;
mod pipeline;
mod progressive;
mod progressive_sim;
mod promote;
mod promote_e2e;
mod release;
mod releases;
mod signals;
mod smoke;
mod traffic_sim;
mod workflows;
mod writes;
mod yaml_corpus;
