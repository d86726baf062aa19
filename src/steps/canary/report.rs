//! The canary section of the summary: a verdict per step (each revision's share, requests, 5xx share,
//! p95 and error lines, the verdict and why), and two Mermaid `xychart-beta` charts over the steps: the
//! traffic share of both revisions and their 5xx shares. AWS text is escaped. No AWS API.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::judge::{Sample, StepVerdict, Verdict};
use crate::report::section::{md_escape, Section};
use crate::steps::signals::compare::{millis, percent};

/// Every judged step of one deployment, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CanaryReport {
    pub steps: Vec<StepVerdict>,
}

/// `08:01` (UTC) of an epoch second.
fn clock(epoch: u64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.get(11..16).unwrap_or("?").to_string()
}

/// `12.5` for a chart: a number Mermaid reads, one decimal at most.
fn num(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

fn both<T>(new: Option<T>, old: Option<T>, f: impl Fn(T) -> String) -> String {
    let one = |v: Option<T>| v.map(&f).unwrap_or_else(|| "-".into());
    format!("{} / {}", one(new), one(old))
}

fn cells(n: &Sample, o: &Sample) -> [String; 4] {
    [
        format!("{} / {}", n.requests, o.requests),
        both(n.rate_5xx(), o.rate_5xx(), percent),
        both(n.p95_ms, o.p95_ms, millis),
        both(n.error_lines, o.error_lines, |l| l.to_string()),
    ]
}

impl CanaryReport {
    /// The verdict of the latest step, when any was judged.
    pub fn last(&self) -> Option<&Verdict> {
        self.steps.last().map(|s| &s.verdict)
    }

    /// The section, Markdown.
    pub fn markdown(&self) -> String {
        let mut md = String::from("### Canary analysis\n\n");
        if self.steps.is_empty() {
            md.push_str("No step was judged.\n");
            return md;
        }
        md.push_str("The new revision against the old one, read over the same minutes.\n\n");
        md.push_str("| step | window (UTC) | new revision's share | requests new / old | 5xx new / old | p95 new / old | error lines new / old | verdict |\n");
        md.push_str("|---|---|---|---|---|---|---|---|\n");
        for (i, s) in self.steps.iter().enumerate() {
            let [req, rate, p95, lines] = cells(&s.new.sample, &s.old.sample);
            let _ = writeln!(
                md,
                "| {} | {}–{} | {}% | {req} | {rate} | {p95} | {lines} | **{}**: {} |",
                i + 1,
                clock(s.from_epoch),
                clock(s.to_epoch),
                num(s.weight),
                s.verdict.label(),
                md_escape(&s.why)
            );
        }
        self.charts(&mut md);
        let mut notes: Vec<&String> = self.steps.iter().flat_map(|s| &s.notes).collect();
        notes.dedup();
        if !notes.is_empty() {
            md.push('\n');
            for n in notes {
                let _ = writeln!(md, "- {}", md_escape(n));
            }
        }
        md
    }

    /// The traffic share of both revisions per step, and their 5xx shares where both were read.
    fn charts(&self, md: &mut String) {
        let axis = |steps: &[&StepVerdict]| {
            steps
                .iter()
                .map(|s| format!("\"{}\"", clock(s.to_epoch)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let line = |steps: &[&StepVerdict], f: &dyn Fn(&StepVerdict) -> f64| {
            steps
                .iter()
                .map(|s| num(f(s)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let all: Vec<&StepVerdict> = self.steps.iter().collect();
        let _ = write!(
            md,
            "\n```mermaid\nxychart-beta\n    title \"Production traffic share, %\"\n    x-axis [{}]\n    y-axis \"%\" 0 --> 100\n    line [{}]\n    line [{}]\n```\n",
            axis(&all),
            line(&all, &|s| s.weight),
            line(&all, &|s| 100.0 - s.weight)
        );
        let read: Vec<&StepVerdict> = self
            .steps
            .iter()
            .filter(|s| s.new.sample.rate_5xx().is_some() && s.old.sample.rate_5xx().is_some())
            .collect();
        if !read.is_empty() {
            let rate = |s: &Sample| s.rate_5xx().unwrap_or(0.0) * 100.0;
            let _ = write!(
                md,
                "\n```mermaid\nxychart-beta\n    title \"5xx share, %\"\n    x-axis [{}]\n    y-axis \"%\"\n    line [{}]\n    line [{}]\n```\n",
                axis(&read),
                line(&read, &|s| rate(&s.new.sample)),
                line(&read, &|s| rate(&s.old.sample))
            );
        }
        md.push_str(
            "\nIn each chart the first line is the new revision, the second the old one.\n",
        );
    }
}

impl Section for CanaryReport {
    fn outputs(&self, _out: &mut Vec<(String, String)>) {}

    fn summary(&self, md: &mut String) {
        md.push_str(&self.markdown());
    }
}

#[cfg(test)]
mod tests {
    use super::super::judge::Side;
    use super::*;

    const BLUE: &str = "arn:aws:elasticloadbalancing:us-east-1:746669238399:targetgroup/stage-backend-blue/73e2d6bc24d8a067";
    const GREEN: &str = "arn:aws:elasticloadbalancing:us-east-1:746669238399:targetgroup/stage-backend-green/1f0c9a2b3d4e5f60";

    fn step(
        minute: u64,
        weight: f64,
        new: Sample,
        old: Sample,
        verdict: Verdict,
        why: &str,
    ) -> StepVerdict {
        let from = 1_800_000_000 + minute * 60;
        StepVerdict {
            verdict,
            weight,
            from_epoch: from,
            to_epoch: from + 60,
            new: Side {
                target_group: GREEN.into(),
                revision: "arn:aws:ecs:us-east-1:746669238399:task-definition/cloudshop-backend:8"
                    .into(),
                sample: new,
            },
            old: Side {
                target_group: BLUE.into(),
                revision: "arn:aws:ecs:us-east-1:746669238399:task-definition/cloudshop-backend:7"
                    .into(),
                sample: old,
            },
            why: why.into(),
            notes: Vec::new(),
        }
    }

    fn s(requests: u64, errors_5xx: u64, p95: f64, lines: u64) -> Sample {
        Sample {
            requests,
            errors_5xx,
            p95_ms: Some(p95),
            error_lines: Some(lines),
            tasks: Some(1),
        }
    }

    #[test]
    fn the_section_of_a_linear_deployment() {
        let mut no_data = step(
            3,
            30.0,
            Sample::default(),
            Sample::default(),
            Verdict::NoData(
                "no load balancer metrics: the role may not call `cloudwatch:GetMetricData`".into(),
            ),
            "no load balancer metrics: the role may not call `cloudwatch:GetMetricData`",
        );
        no_data.notes.push("no error-line counts: task definition `x:8` has no container logging with `awslogs` and an `awslogs-stream-prefix`".into());
        let r = CanaryReport {
            steps: vec![
                step(0, 10.0, s(12, 0, 40.0, 0), s(108, 0, 38.0, 0), Verdict::NotEnoughTraffic { new: 12, old: 108 }, "12 requests to the new revision and 108 to the old one; 50 each are needed to judge"),
                step(1, 10.0, s(120, 0, 41.0, 1), s(1080, 1, 39.0, 9), Verdict::Pass, "5xx share 0.0% against 0.09% for the old revision; no signal past its limit"),
                step(2, 20.0, s(240, 1, 44.0, 2), s(960, 1, 40.0, 8), Verdict::Pass, "5xx share 0.4% against 0.10% for the old revision; no signal past its limit"),
                no_data,
                step(4, 40.0, s(400, 40, 90.0, 70), s(600, 1, 40.0, 6), Verdict::Regression(vec!["5xx share 10.0% against 0.17% for the old revision".into()]), "5xx share 10.0% against 0.17% for the old revision (z = 6.6 > 2.33 at 99.0% confidence; more than 1.0 percentage points and 2x the old share)"),
            ],
        };
        insta::assert_snapshot!(r.markdown());
        assert!(matches!(r.last(), Some(Verdict::Regression(_))));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["steps"][0]["verdict"]["verdict"], "not-enough-traffic");
        assert_eq!(json["steps"][0]["new"]["requests"], 12);
        assert_eq!(
            json["steps"][4]["verdict"]["detail"][0],
            "5xx share 10.0% against 0.17% for the old revision"
        );
    }

    #[test]
    fn no_step_no_chart() {
        let md = CanaryReport::default().markdown();
        assert_eq!(md, "### Canary analysis\n\nNo step was judged.\n");
    }
}
