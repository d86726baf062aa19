//! What the smoke step found, in one place: every check with every attempt, the website check, the
//! watch. It feeds the `smoke-status`/`smoke-report` outputs and the job-summary section.
//!
//! APIs: none.

use std::fmt::Write as _;

use serde::Serialize;

use super::result::{CheckResult, SequenceResult, StepOutcome};
use crate::report::section::{html_text, md_code, md_escape};

/// How the smoke tests ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmokeStatus {
    /// Every check (and the watch, when it ran) passed.
    Passed,
    /// A check or the watch failed.
    #[default]
    Failed,
    /// Not run (turned off, or no URL to test).
    Skipped,
}

impl SmokeStatus {
    /// The output spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SmokeStatus::Passed => "passed",
            SmokeStatus::Failed => "failed",
            SmokeStatus::Skipped => "skipped",
        }
    }
}

/// One check's figures over the watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchStat {
    pub name: String,
    pub requests: u32,
    /// Requests that failed.
    pub failed: u32,
    /// Median latency (nearest rank, lower), ms.
    pub p50_ms: u64,
    /// Worst latency, ms.
    pub max_ms: u64,
}

/// A round of the watch that went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRound {
    /// Round number (1-based).
    pub round: u32,
    /// Seconds since the watch started.
    pub at_seconds: u64,
    /// What was seen, in words.
    pub seen: String,
}

/// What the post-deploy watch saw (its rounds are run by `steps::watch`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WatchReport {
    /// Planned length, seconds.
    pub duration_seconds: u64,
    /// Interval between rounds, seconds.
    pub interval_seconds: u64,
    /// Consecutive bad rounds that count as sustained.
    pub failures_allowed: u32,
    pub rounds_planned: u32,
    pub rounds: u32,
    pub bad_rounds: u32,
    /// The longest run of consecutive bad rounds.
    pub max_consecutive: u32,
    /// Ended without a sustained failure.
    pub passed: bool,
    pub checks: Vec<WatchStat>,
    /// The service as last seen (`2/2 running`).
    pub service: Option<String>,
    /// The bad rounds (the most recent 20).
    pub bad: Vec<BadRound>,
    /// Rounds where the service could not be read (not counted as bad by themselves).
    pub probe_errors: u32,
}

/// Outcome of the smoke tests, for outputs and the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SmokeReport {
    /// Passed, failed or skipped.
    pub status: SmokeStatus,
    /// Why they were skipped.
    pub skipped_reason: Option<String>,
    /// The base URL (no userinfo).
    pub base_url: Option<String>,
    /// The API checks (and CORS), in configuration order.
    pub checks: Vec<CheckResult>,
    /// The website check after the frontend sync.
    pub website: Option<CheckResult>,
    /// The post-deploy watch.
    pub watch: Option<WatchReport>,
    /// The write sequences that ran, in configuration order.
    pub sequences: Vec<SequenceResult>,
    /// Why configured write sequences did not run.
    pub sequences_skipped: Option<String>,
    /// A dry run: the write sequences a deploy would run (or skip), none sent.
    pub planned_writes: Option<WritePlan>,
}

/// The write sequences of a dry run's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WritePlan {
    /// `smoke.write` lets them run in this environment (and the smoke tests are on).
    pub write: bool,
    /// Why a deploy would skip them, when it would.
    pub skipped: Option<String>,
    /// Each configured sequence: its name, its step count and its cleanup steps.
    pub sequences: Vec<(String, u32, u32)>,
}

impl WritePlan {
    /// The plan for `cfg`; `None` when no sequence is configured.
    pub fn of(cfg: &crate::config::Smoke) -> Option<WritePlan> {
        let w = &cfg.writes;
        if w.sequences.is_empty() {
            return None;
        }
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let skipped = if !cfg.enabled {
            Some("the smoke tests are off".to_string())
        } else if cfg.base_url.is_none() {
            Some("no URL to test".to_string())
        } else if !w.enabled {
            Some(w.disabled_reason.clone().unwrap_or_default())
        } else {
            None
        };
        Some(WritePlan {
            write: skipped.is_none(),
            skipped,
            sequences: w
                .sequences
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        count(s.steps.len()),
                        count(s.steps.iter().filter(|st| st.cleanup).count()),
                    )
                })
                .collect(),
        })
    }

    fn summary(&self, md: &mut String) {
        let when = match &self.skipped {
            None => {
                "`smoke.write` is on here: a deploy would run them after the checks".to_string()
            }
            Some(why) => format!("a deploy would skip them: {}", md_escape(why)),
        };
        let _ = writeln!(md, "Write sequences (dry run: none sent; {when}):\n");
        for (name, steps, cleanup) in &self.sequences {
            let _ = writeln!(
                md,
                "- {}: {steps} step{}, {cleanup} cleanup",
                md_code(name),
                if *steps == 1 { "" } else { "s" }
            );
        }
        md.push('\n');
    }
}

impl SmokeReport {
    /// A report for skipped smoke tests.
    pub fn skipped(reason: &str) -> SmokeReport {
        SmokeReport {
            status: SmokeStatus::Skipped,
            skipped_reason: Some(reason.to_string()),
            ..SmokeReport::default()
        }
    }

    /// Recompute the status from what ran.
    pub fn settle(&mut self) {
        let ok = self.checks.iter().all(|c| c.passed)
            && self.website.as_ref().is_none_or(|w| w.passed)
            && self.watch.as_ref().is_none_or(|w| w.passed)
            && self.sequences.iter().all(|s| s.passed);
        self.status = if ok {
            SmokeStatus::Passed
        } else {
            SmokeStatus::Failed
        };
        self.skipped_reason = None;
    }

    /// The compact JSON of the `smoke-report` output.
    fn compact_json(&self) -> String {
        let mut v = serde_json::json!({
            "status": self.status.as_str(),
            "checks": self.checks.iter().map(CheckResult::compact).collect::<Vec<_>>(),
        });
        if let Some(r) = &self.skipped_reason {
            v["reason"] = r.clone().into();
        }
        if let Some(w) = &self.website {
            v["website"] = w.compact();
        }
        if !self.sequences.is_empty() {
            v["sequences"] = self
                .sequences
                .iter()
                .map(SequenceResult::compact)
                .collect::<Vec<_>>()
                .into();
        }
        if let Some(r) = &self.sequences_skipped {
            v["sequences_skipped"] = r.clone().into();
        }
        if let Some(p) = &self.planned_writes {
            v["planned_sequences"] = serde_json::json!({
                "write": p.write,
                "skipped": p.skipped,
                "sequences": p.sequences.iter().map(|(name, steps, cleanup)| serde_json::json!({
                    "name": name, "steps": steps, "cleanup_steps": cleanup,
                })).collect::<Vec<_>>(),
            });
        }
        if let Some(w) = &self.watch {
            v["watch"] = serde_json::json!({
                "rounds": w.rounds,
                "bad_rounds": w.bad_rounds,
                "max_consecutive": w.max_consecutive,
                "passed": w.passed,
            });
        }
        v.to_string()
    }
}

fn ms(v: u64) -> String {
    if v < 1000 {
        format!("{v} ms")
    } else {
        format!("{:.1} s", v as f64 / 1000.0)
    }
}

fn row(md: &mut String, c: &CheckResult) {
    let (p50, max) = c.latency();
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {} | {} | {} | {} |",
        if c.passed { "✅" } else { "❌" },
        md_escape(&c.name),
        md_code(&format!("{} {}", c.method, c.url)),
        md_escape(&c.expected),
        md_escape(&c.got),
        c.attempts.len(),
        ms(p50),
        ms(max)
    );
}

fn attempts_detail(md: &mut String, c: &CheckResult) {
    let _ = writeln!(
        md,
        "<details><summary>attempts of <code>{}</code></summary>\n\n| # | status | latency | got |\n|---:|---|---:|---|",
        html_text(&c.name)
    );
    for (i, a) in c.attempts.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            i + 1,
            a.status.map_or("-".to_string(), |s| s.to_string()),
            ms(a.latency_ms),
            md_escape(&a.got)
        );
    }
    md.push_str("\n</details>\n\n");
}

/// The write sequences: one table per sequence (steps as configured, never a captured value), and
/// whether cleanup ran.
fn sequences(md: &mut String, r: &SmokeReport) {
    if let Some(why) = &r.sequences_skipped {
        let _ = writeln!(md, "Write sequences skipped: {}.\n", md_escape(why));
    }
    for s in &r.sequences {
        let _ = writeln!(
            md,
            "#### {} Write sequence `{}`: {}\n",
            if s.passed { "✅" } else { "❌" },
            md_escape(&s.name),
            if s.passed { "passed" } else { "failed" }
        );
        md.push_str("| | step | request | expected | status | got | captured |\n");
        md.push_str("|---|---|---|---|---:|---|---|\n");
        for st in &s.steps {
            let _ = writeln!(
                md,
                "| {} | {}{} | {} | {} | {} | {} | {} |",
                match st.outcome {
                    StepOutcome::Passed => "✅",
                    StepOutcome::Failed => "❌",
                    StepOutcome::NotRun => "⏭️",
                },
                md_escape(&st.name),
                if st.cleanup { " (cleanup)" } else { "" },
                md_code(&format!("{} {}", st.method, st.path)),
                md_escape(&st.expected),
                st.status.map_or("-".to_string(), |c| c.to_string()),
                md_escape(&st.got),
                st.captured
                    .iter()
                    .map(|c| md_code(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let cleanup = match (s.cleanup_steps, s.cleanup_ran) {
            (0, _) => "no cleanup step configured".to_string(),
            (n, ran) if ran == n => format!("cleanup ran ({ran} of {n})"),
            (n, ran) => format!("cleanup ran {ran} of {n} (a step that needs a value never captured has nothing to clean up)"),
        };
        let _ = writeln!(md, "\n{cleanup}.\n");
        if !s.left_behind.is_empty() {
            let left: Vec<String> = s.left_behind.iter().map(|l| md_code(l)).collect();
            let unique = s.unique.as_ref().map_or(String::new(), |u| {
                format!(" (this run's `{{unique}}` is {})", md_code(u))
            });
            let _ = writeln!(
                md,
                "⚠️ **Cleanup failed**: left behind: {}{unique}. Delete it by hand.\n",
                left.join(", ")
            );
        }
    }
}

impl crate::report::section::Section for SmokeReport {
    fn outputs(&self, out: &mut Vec<(String, String)>) {
        out.push(("smoke-status".into(), self.status.as_str().into()));
        out.push(("smoke-report".into(), self.compact_json()));
    }

    fn summary(&self, md: &mut String) {
        self.titled(md, "Smoke tests");
    }
}

/// The smoke checks and write sequences run against the test listener at a `POST_TEST_TRAFFIC_SHIFT`
/// pause, before the new revision took any production traffic: a section of their own.
/// The traffic sample after the checks, when they passed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OnTestTraffic {
    #[serde(flatten)]
    pub checks: SmokeReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<super::sample_report::TestSampleReport>,
}

impl crate::report::section::Section for OnTestTraffic {
    fn outputs(&self, _: &mut Vec<(String, String)>) {}

    fn summary(&self, md: &mut String) {
        self.checks
            .titled(md, "Smoke tests on test traffic, before production");
        if let Some(s) = &self.sample {
            s.summary(md);
        }
    }
}

impl SmokeReport {
    /// The section under the heading `title`.
    fn titled(&self, md: &mut String, title: &str) {
        let icon = match self.status {
            SmokeStatus::Passed => "✅",
            SmokeStatus::Failed => "❌",
            SmokeStatus::Skipped => "⏭️",
        };
        let _ = writeln!(md, "### {icon} {title}: {}\n", self.status.as_str());
        if let Some(r) = &self.skipped_reason {
            let _ = writeln!(md, "Skipped: {}.\n", md_escape(r));
            if let Some(p) = &self.planned_writes {
                p.summary(md);
            }
            return;
        }
        checks_table(md, self);
        sequences(md, self);
        if let Some(w) = &self.watch {
            w.summary(md);
        }
    }
}

/// The checks and the website check, failures first, then each failure's attempts.
fn checks_table(md: &mut String, r: &SmokeReport) {
    let mut all: Vec<&CheckResult> = r.checks.iter().chain(r.website.as_ref()).collect();
    // Failures first; otherwise the configured order.
    all.sort_by_key(|c| c.passed);
    if all.is_empty() {
        return;
    }
    md.push_str("| | check | URL | expected | got | attempts | p50 | max |\n");
    md.push_str("|---|---|---|---|---|---:|---:|---:|\n");
    for c in &all {
        row(md, c);
    }
    md.push('\n');
    for c in all.iter().filter(|c| !c.passed) {
        attempts_detail(md, c);
    }
}

impl WatchReport {
    /// The watch's heading and verdict line, each check's figures, and the bad rounds.
    fn summary(&self, md: &mut String) {
        let w = self;
        let _ = writeln!(
            md,
            "#### {} Post-deploy watch: {}\n\n{} of {} rounds every {} s; {} bad, at most {} in a row (limit {}){}{}.\n",
            if w.passed { "✅" } else { "❌" },
            if w.passed { "passed" } else { "failed" },
            w.rounds,
            w.rounds_planned,
            w.interval_seconds,
            w.bad_rounds,
            w.max_consecutive,
            w.failures_allowed,
            w.service
                .as_ref()
                .map(|s| format!("; service last seen {}", md_escape(s)))
                .unwrap_or_default(),
            if w.probe_errors > 0 {
                format!("; the service could not be read in {} rounds", w.probe_errors)
            } else {
                String::new()
            },
        );
        if !w.checks.is_empty() {
            md.push_str("| check | requests | failed | p50 | max |\n|---|---:|---:|---:|---:|\n");
            for s in &w.checks {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    md_escape(&s.name),
                    s.requests,
                    s.failed,
                    ms(s.p50_ms),
                    ms(s.max_ms)
                );
            }
            md.push('\n');
        }
        if !w.bad.is_empty() {
            md.push_str("| bad round | at | seen |\n|---:|---:|---|\n");
            for b in &w.bad {
                let _ = writeln!(
                    md,
                    "| {} | {} s | {} |",
                    b.round,
                    b.at_seconds,
                    md_escape(&b.seen)
                );
            }
            md.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::result::{Attempt, CheckResult};
    use super::*;
    use crate::report::section::Section;

    fn attempt(status: Option<u16>, ms: u64, passed: bool, got: &str) -> Attempt {
        Attempt {
            status,
            latency_ms: ms,
            passed,
            got: got.into(),
        }
    }

    fn sample() -> SmokeReport {
        let health = CheckResult {
            name: "health".into(),
            method: "GET".into(),
            url: "https://api.example.com/health".into(),
            expected: "200".into(),
            got: "200".into(),
            passed: true,
            attempts: vec![
                attempt(Some(503), 12, false, "503"),
                attempt(Some(200), 8, true, "200"),
            ],
        };
        let products = CheckResult {
            name: "products".into(),
            method: "GET".into(),
            url: "https://api.example.com/products".into(),
            expected: "200 + JSON array".into(),
            got: "200, JSON object with 1 key (expected an array)".into(),
            passed: false,
            attempts: vec![
                attempt(None, 10_000, false, "no answer within 10s"),
                attempt(Some(500), 40, false, "500: Internal | Server Error"),
                attempt(
                    Some(200),
                    35,
                    false,
                    "200, JSON object with 1 key (expected an array)",
                ),
            ],
        };
        let mut r = SmokeReport {
            base_url: Some("https://api.example.com/".into()),
            checks: vec![health, products],
            watch: Some(WatchReport {
                duration_seconds: 600,
                interval_seconds: 15,
                failures_allowed: 3,
                rounds_planned: 40,
                rounds: 7,
                bad_rounds: 3,
                max_consecutive: 3,
                passed: false,
                checks: vec![WatchStat {
                    name: "health".into(),
                    requests: 7,
                    failed: 3,
                    p50_ms: 9,
                    max_ms: 1500,
                }],
                service: Some("1/2 running".into()),
                bad: vec![BadRound {
                    round: 5,
                    at_seconds: 75,
                    seen: "health: 500; service: 1/2 running, stopped: Essential container exited"
                        .into(),
                }],
                probe_errors: 0,
            }),
            ..SmokeReport::default()
        };
        r.settle();
        r
    }

    #[test]
    fn status_follows_every_part() {
        let mut r = sample();
        assert_eq!(r.status, SmokeStatus::Failed);
        r.checks[1].passed = true;
        r.settle();
        assert_eq!(r.status, SmokeStatus::Failed, "the watch failed");
        r.watch.as_mut().unwrap().passed = true;
        r.settle();
        assert_eq!(r.status, SmokeStatus::Passed);
        assert_eq!(SmokeReport::skipped("x").status, SmokeStatus::Skipped);
    }

    #[test]
    fn outputs_are_compact_json() {
        let mut out = Vec::new();
        sample().outputs(&mut out);
        assert_eq!(out[0], ("smoke-status".into(), "failed".into()));
        assert!(!out[1].1.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&out[1].1).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["checks"][1]["name"], "products");
        assert_eq!(v["checks"][1]["attempts"], 3);
        assert_eq!(v["checks"][1]["p50_ms"], 40);
        assert_eq!(v["checks"][1]["max_ms"], 10_000);
        assert_eq!(v["checks"][1]["passed"], false);
        assert_eq!(v["checks"][0]["passed"], true);
        assert_eq!(v["watch"]["bad_rounds"], 3);
        let mut out = Vec::new();
        SmokeReport::skipped("turned off").outputs(&mut out);
        assert_eq!(out[0].1, "skipped");
        assert!(
            out[1].1.contains(r#""reason":"turned off""#),
            "{}",
            out[1].1
        );
    }

    #[test]
    fn summary_snapshot() {
        let mut md = String::new();
        sample().summary(&mut md);
        // Failures first.
        assert!(md.find("| products |").unwrap() < md.find("| health |").unwrap());
        insta::assert_snapshot!(md);
    }
}
