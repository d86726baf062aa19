//! Hostile text from AWS through the real binary: S3 keys of stale objects in the website bucket, service
//! event messages and stopped-task reasons (from the ECS simulator) carrying newlines followed by workflow
//! commands (`::error::`, `::add-mask::`, `::stop-commands::`, `::set-output`) and Markdown/HTML (links,
//! images, `<img>`). Whatever the action logs or summarises, no printed line starts a command other than
//! the action's own, and the job summary renders no link, image or HTML from that text; the text itself
//! is still there to read.

use harness as common;

use std::time::Duration;

use common::ecs_sim::{EcsSim, Scenario, StopReason};
use common::faults::{FaultPlan, FaultProxy};
use common::seed::{create_bucket, rt, seed_ecr};
use common::{Action, Moto, RunResult};
use pulldown_cmark::{Event, Options, Parser, Tag};

/// Appended to every service event and stopped-task reason.
const HOSTILE_AWS: &str = " [x](https://evil.example/a) ![i](https://evil.example/i.png) <img src=x onerror=alert(1)>\n::error::FORGED-1\n::add-mask::FORGED-2\n::stop-commands::FORGED-3\n::set-output name=status::FORGED-4";

/// Keys of stale objects in the bucket (deleted by the sync, listed in the plan). moto refuses a key with
/// a line break, so it stores `__NL__` and the proxy in front of it turns that into an XML-escaped line
/// break in the listing: the action sees the key S3 would show.
const HOSTILE_KEYS: [&str; 3] = [
    "stale.js__NL__::error title=forged::FORGED-5",
    "[x](https://evil.example/k)![i](https://evil.example/k.png)<img src=x onerror=alert(2)>.js",
    "old/k.css__NL__::add-mask::FORGED-6__NL__::stop-commands::FORGED-7",
];

/// The workflow commands the action itself issues.
const OWN_COMMANDS: [&str; 6] = [
    "group", "endgroup", "error", "warning", "notice", "add-mask",
];

fn config(moto: &Moto) -> String {
    format!(
        r#"
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: {repo}
    frontend: {{ bucket: {bucket}, dir: build }}
    smoke: {{ enabled: false }}
"#,
        repo = moto.name("stage-cloudshop-backend"),
        bucket = moto.name("stage-frontend"),
    )
}

fn world(scenario: Scenario) -> (Moto, EcsSim) {
    let moto = Moto::shared();
    seed_ecr(
        &moto,
        &moto.name("stage-cloudshop-backend"),
        &[common::pipeline::SHA],
        false,
    );
    let bucket = moto.name("stage-frontend");
    create_bucket(&moto, &bucket);
    rt().block_on(async {
        let s3 = moto.s3().await;
        for key in HOSTILE_KEYS {
            s3.put_object()
                .bucket(&bucket)
                .key(key)
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"old"))
                .send()
                .await
                .expect("put a hostile key");
        }
    });
    let sim = EcsSim::start(scenario);
    sim.append_text(HOSTILE_AWS);
    (moto, sim)
}

fn deploy(moto: &Moto, sim: &EcsSim) -> RunResult {
    let proxy = FaultProxy::start(
        &moto.endpoint,
        FaultPlan {
            rewrite: vec![("__NL__".into(), "&#10;".into())],
            ..FaultPlan::none()
        },
    );
    Action::new()
        .with_moto(moto)
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .env("AWS_ENDPOINT_URL_ECS", &sim.endpoint)
        .file(".github/cloudshop-deploy.yml", &config(moto))
        .file("build/index.html", "<!doctype html><p>cloudshop</p>")
        .file("build/static/js/main.js", "console.log('cloudshop')")
        .input("environment", "stage")
        .input("poll-interval", "30ms")
        .input("wait-timeout", "60s")
        .run_within(Duration::from_secs(180))
}

/// The command a line starts (`error` of `::error title=x::y`), if it starts one.
fn command_of(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("::")?;
    let end = rest.find([' ', ':']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Every printed line: stderr starts no command at all; stdout only the action's own, and none whose
/// value is hostile text (`::error::FORGED-1`, `::add-mask::FORGED-2`).
fn assert_no_forged_command(res: &RunResult) {
    for line in res.stderr.lines() {
        assert!(
            command_of(line).is_none(),
            "stderr line starts a command: {line:?}\n{}",
            res.dump()
        );
    }
    for line in res.stdout.lines() {
        let Some(cmd) = command_of(line) else {
            continue;
        };
        assert!(
            OWN_COMMANDS.contains(&cmd),
            "stdout line starts `::{cmd}`: {line:?}\n{}",
            res.dump()
        );
        // The value (after the second `::`) is never the hostile text itself.
        let value = line
            .trim_start()
            .strip_prefix("::")
            .and_then(|r| r.split_once("::"))
            .map(|(_, v)| v)
            .unwrap_or("");
        assert!(
            !value.starts_with("FORGED") && !value.starts_with("forged"),
            "forged command: {line:?}"
        );
    }
    // No output beyond the action's own, and `status` is the action's.
    let declared = common::action_yml_keys("outputs");
    for name in res.outputs.keys() {
        assert!(declared.contains(name), "output `{name}` forged");
    }
    let status = res.output("status");
    assert!(!status.contains("FORGED"), "{status}");
}

/// The summary, parsed as GitHub parses it: no link, no image, no HTML but the action's own layout
/// tags; the hostile markers still readable as text.
fn assert_inert_summary(res: &RunResult, must_show: &[&str]) {
    let md = &res.summary;
    let own_html = [
        "<details>",
        "</details>",
        "<summary>",
        "</summary>",
        "<code>",
        "</code>",
        "<br>",
    ];
    let mut text = String::new();
    for event in Parser::new_ext(md, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. }) => {
                panic!("a link or image to `{dest_url}` in the summary:\n{md}")
            }
            Event::Html(h) | Event::InlineHtml(h) => {
                let h = h.trim();
                assert!(
                    own_html.iter().any(|o| h.starts_with(o)) && !h.contains("<img"),
                    "HTML from AWS text in the summary: `{h}`\n{md}"
                );
            }
            Event::Text(t) | Event::Code(t) => text.push_str(&t),
            _ => text.push(' '),
        }
    }
    for needle in must_show {
        assert!(
            text.contains(needle),
            "`{needle}` is not in the summary's text:\n{md}"
        );
    }
}

/// A deploy that succeeds: the service events (with hostile text) are logged during the watch, and the
/// stale hostile keys are planned, logged and deleted.
#[test]
fn hostile_keys_and_events_of_a_good_deploy_forge_nothing() {
    let (moto, sim) = world(Scenario::Succeed { after: 3 });
    let res = deploy(&moto, &sim);
    assert_eq!(res.code, 0, "{}", res.dump());
    assert_eq!(res.output("status"), "deployed");
    assert_eq!(res.output("frontend-deleted"), "3", "{}", res.dump());
    // The hostile text was there to be printed: events and keys reached the log.
    assert!(res.stderr.contains("FORGED-1"), "{}", res.dump());
    assert!(res.stderr.contains("FORGED-5"), "{}", res.dump());
    // ... with their line breaks: the listing the action read had them (the proxy's rewrite).
    assert!(!res.everything().contains("__NL__"), "{}", res.dump());
    assert_no_forged_command(&res);
    assert_inert_summary(&res, &["FORGED-5", "evil.example/k.png"]);
}

/// A deploy whose tasks fail: the stopped-task reasons (hostile) reach the diagnosis, the error line and
/// the summary; still nothing forged.
#[test]
fn hostile_stop_reasons_of_a_failed_deploy_forge_nothing() {
    let (moto, sim) = world(Scenario::TasksFail {
        reason: StopReason::EssentialExited,
        after: 2,
    });
    let res = deploy(&moto, &sim);
    assert_ne!(res.code, 0, "{}", res.dump());
    let errors = res.error_lines();
    assert_eq!(errors.len(), 1, "{}", res.dump());
    // The reason is in the one error line, its line breaks escaped.
    assert!(errors[0].contains("FORGED-1"), "{}", errors[0]);
    assert!(!errors[0].contains('\n'));
    assert_no_forged_command(&res);
    assert_inert_summary(&res, &["FORGED-1", "evil.example/i.png"]);
}
