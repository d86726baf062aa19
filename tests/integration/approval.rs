//! The approval gate of a promotion through the real binary, against a loopback server that answers
//! like GitHub's REST API: `promote.require-approval: true` and an environment without required
//! reviewers (or none at all) is one `::error::` and zero writes on every AWS API and the registry;
//! with reviewers the promotion proceeds; the `promote.approvers` fallback refuses the commit's author
//! and an unlisted login, and admits another listed login; a login GitHub could not have is a config
//! error before any call. The promotion world is `release.rs`'s.

use std::time::Duration;

use harness::faults::{FaultPlan, FaultProxy};
use harness::github_api::{GithubApi, TOKEN};
use harness::RunResult;

use crate::release::{world, World, SHA_A, SHA_B};

/// Prod's `promote:` block in the world's environments file.
fn config(w: &World, promote: &str) -> String {
    w.config().replace(
        "    promote-from: stage\n",
        &format!("    promote-from: stage\n    promote: {promote}\n"),
    )
}

/// A promotion of `sha` dispatched by `actor`, with the GitHub API at `api`.
fn promote(
    w: &World,
    api: &GithubApi,
    promote_block: &str,
    sha: &str,
    actor: &str,
) -> harness::Action {
    w.action("prod", sha)
        .file(".github/cloudshop-deploy.yml", &config(w, promote_block))
        .env("GITHUB_API_URL", &api.url)
        .env("GITHUB_ACTOR", "someone-else")
        .env("GITHUB_TRIGGERING_ACTOR", actor)
        .input("github-token", TOKEN)
        .input("command", "promote")
}

/// The promotion, run with every AWS and registry call through recording proxies: refused with one
/// `::error::` containing `needle`, and nothing written anywhere.
fn refused(w: &World, action: harness::Action, needle: &str) -> RunResult {
    let aws = FaultProxy::start(&w.moto.endpoint, FaultPlan::none());
    let ecs = FaultProxy::start(&w.prod_sim.endpoint, FaultPlan::none());
    let reg = FaultProxy::start(&w.reg.url, FaultPlan::none());
    let res = action
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_ENDPOINT_URL_ECS", &ecs.endpoint)
        .input("registry-url", &reg.endpoint)
        .run_within(Duration::from_secs(120));
    assert_ne!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "failed", "{}", res.dump());
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    assert!(errors[0].contains(needle), "{}", errors[0]);
    for (name, proxy) in [("ECR/S3", &aws), ("ECS", &ecs), ("registry", &reg)] {
        assert!(
            proxy.mutating_calls().is_empty(),
            "{name}: {:?}",
            proxy.mutating_calls()
        );
    }
    assert!(w.prod_sim.mutating_calls().is_empty());
    assert!(!res.summary.contains(TOKEN), "{}", res.summary);
    res
}

#[test]
fn a_promotion_needs_a_real_approval() {
    let w = world();
    w.build(SHA_A);
    w.build(SHA_B);
    assert_eq!(w.deploy_stage(SHA_A, true).output("status"), "deployed");
    assert_eq!(w.deploy_stage(SHA_B, true).output("status"), "deployed");
    let api = GithubApi::start();
    api.commit(SHA_A, Some("alice"));
    api.commit(SHA_B, Some("alice"));
    let required = "{ require-approval: true }";

    // No `prod` environment at all: refused, and the reason names it.
    let res = refused(
        &w,
        promote(&w, &api, required, SHA_A, "alice"),
        "GitHub environment `prod` does not exist",
    );
    assert!(res.stdout.contains("GitHub Enterprise"), "{}", res.dump());

    // An environment without required reviewers (a private repository on a Team plan): refused, with
    // the fix, and its rules in the summary.
    api.environment("prod", &[]);
    let res = refused(
        &w,
        promote(&w, &api, required, SHA_A, "alice"),
        "GitHub environment `prod` has no required reviewers",
    );
    assert!(
        res.stdout.contains("promote.approvers") && res.stdout.contains("GitHub Enterprise"),
        "{}",
        res.dump()
    );
    for line in [
        "### Approval",
        "| required reviewers | none |",
        "| wait timer | 10 min |",
        "| branch policy | protected branches |",
        "| approval | **refused** |",
    ] {
        assert!(res.summary.contains(line), "{line}: {}", res.summary);
    }
    assert!(api
        .requests()
        .contains(&"/repos/acme/cloudshop/environments/prod".to_string()));

    // A login GitHub could not have in `approvers`: a config error naming the key, and no call.
    let before = api.requests().len();
    refused(
        &w,
        promote(
            &w,
            &api,
            "{ require-approval: true, approvers: [bob, -eve] }",
            SHA_A,
            "bob",
        ),
        "promote.approvers",
    );
    assert_eq!(api.requests().len(), before, "no GitHub call");

    // The fallback refuses the commit's author and a login not listed.
    let fallback = "{ require-approval: true, approvers: [alice, bob] }";
    refused(
        &w,
        promote(&w, &api, fallback, SHA_A, "alice"),
        "`alice` dispatched it and is the commit's author",
    );
    refused(
        &w,
        promote(&w, &api, fallback, SHA_A, "mallory"),
        "`mallory` dispatched it and is not in `promote.approvers`",
    );

    // With required reviewers, the promotion proceeds and the summary names them.
    api.environment("prod", &["carol"]);
    let res = promote(&w, &api, required, SHA_A, "alice").run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    assert!(
        res.summary.contains("| required reviewers | `carol` |")
            && res
                .summary
                .contains("| approval | approved by the environment's required reviewers |"),
        "{}",
        res.summary
    );

    // Without reviewers, another listed login than the author promotes B.
    api.environment("prod", &[]);
    let res = promote(&w, &api, fallback, SHA_B, "bob").run_within(Duration::from_secs(120));
    assert_eq!(res.output("status"), "deployed", "{}", res.dump());
    assert!(
        res.summary.contains("| dispatched by | `bob` |")
            && res.summary.contains("| commit author | `alice` |")
            && res.summary.contains("dispatched by a listed approver"),
        "{}",
        res.summary
    );
    assert!(!res.summary.contains(TOKEN) && !res.stdout.contains(&format!("Bearer {TOKEN}")));
}
