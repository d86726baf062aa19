//! The watch signals' section of the summary: before vs after for each signal (a table), the 5xx rate
//! per round (a Mermaid `xychart-beta`), and why a signal was left out. AWS text is escaped.

use std::fmt::Write as _;

use serde::Serialize;

use super::compare::{millis, percent, Metrics};
use crate::config::WatchSignals;
use crate::report::section::{md_code, md_escape, Section};

/// The limits, as the summary states them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Limits {
    pub max_5xx_rate: f64,
    pub max_5xx_factor: f64,
    pub max_p95_factor: f64,
    pub max_error_lines_factor: f64,
    pub error_lines_allowance: u32,
}

impl Limits {
    pub fn of(l: &WatchSignals) -> Self {
        Limits {
            max_5xx_rate: l.max_5xx_rate,
            max_5xx_factor: l.max_5xx_factor,
            max_p95_factor: l.max_p95_factor,
            max_error_lines_factor: l.max_error_lines_factor,
            error_lines_allowance: l.error_lines_allowance,
        }
    }
}

/// What one round read since the deploy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Round {
    /// 1-based, counted by the signals.
    pub round: u32,
    /// Seconds since the deploy started.
    pub at_seconds: u64,
    pub requests: Option<f64>,
    pub rate_5xx: Option<f64>,
    pub p95_ms: Option<f64>,
    pub error_lines: Option<u64>,
    /// What regressed past the limits (empty: a good round).
    pub regressions: Vec<String>,
}

/// The signals section: the windows compared, each round's readings and verdict, and the signals left
/// out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SignalsReport {
    pub enabled: bool,
    /// Length of each window compared.
    pub baseline_seconds: u64,
    pub error_pattern: String,
    pub limits: Limits,
    /// `targetgroup/<name>/<id>`, when its metrics are read.
    pub target_group: Option<String>,
    pub log_group: Option<String>,
    /// The load balancer's metrics before the deploy.
    pub before: Option<Metrics>,
    pub before_error_lines: Option<u64>,
    pub rounds: Vec<Round>,
    /// Rounds read (more than `rounds` keeps on a long watch).
    pub round_count: u32,
    pub bad_rounds: u32,
    /// Signals left out, and why.
    pub notes: Vec<String>,
}

fn opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

impl SignalsReport {
    fn worst<T: Copy + PartialOrd>(&self, f: impl Fn(&Round) -> Option<T>) -> Option<T> {
        self.rounds
            .iter()
            .filter_map(f)
            .fold(None, |acc, v| match acc {
                Some(a) if a >= v => Some(a),
                _ => Some(v),
            })
    }

    fn table(&self, md: &mut String) {
        let last = self.rounds.last();
        let l = &self.limits;
        let _ = writeln!(
            md,
            "| signal | before the deploy | last round | worst round | a regression is |\n|---|---:|---:|---:|---|"
        );
        if self.target_group.is_some() {
            let before = self.before.unwrap_or_default();
            let _ = writeln!(
                md,
                "| 5xx rate | {} | {} | {} | > {} and > {}x before |",
                match before.rate_5xx() {
                    Some(r) => format!(
                        "{} ({:.0} of {:.0})",
                        percent(r),
                        before.errors_5xx,
                        before.requests
                    ),
                    None => "no requests".into(),
                },
                opt(last.and_then(|r| r.rate_5xx).map(percent)),
                opt(self.worst(|r| r.rate_5xx).map(percent)),
                percent(l.max_5xx_rate),
                l.max_5xx_factor
            );
            let _ = writeln!(
                md,
                "| p95 response time | {} | {} | {} | > {}x before |",
                opt(before.p95_ms.map(millis)),
                opt(last.and_then(|r| r.p95_ms).map(millis)),
                opt(self.worst(|r| r.p95_ms).map(millis)),
                l.max_p95_factor
            );
        }
        if self.log_group.is_some() {
            let _ = writeln!(
                md,
                "| error lines | {} | {} | {} | > {}x before (for as long) + {} |",
                opt(self.before_error_lines.map(|n| n.to_string())),
                opt(last.and_then(|r| r.error_lines).map(|n| n.to_string())),
                opt(self.worst(|r| r.error_lines).map(|n| n.to_string())),
                l.max_error_lines_factor,
                l.error_lines_allowance
            );
        }
        md.push('\n');
    }

    /// The 5xx rate per round against the rate before, as a Mermaid chart (numbers only).
    fn chart(&self, md: &mut String) {
        let points: Vec<(u32, f64)> = self
            .rounds
            .iter()
            .filter_map(|r| r.rate_5xx.map(|v| (r.round, v * 100.0)))
            .collect();
        if points.len() < 2 {
            return;
        }
        let before = self
            .before
            .and_then(|b| b.rate_5xx())
            .map(|r| r * 100.0)
            .unwrap_or(0.0);
        let top = points
            .iter()
            .map(|p| p.1)
            .fold(before.max(self.limits.max_5xx_rate * 100.0), f64::max);
        let top = (top * 1.2).max(1.0).ceil();
        let xs: Vec<String> = points.iter().map(|p| p.0.to_string()).collect();
        let ys: Vec<String> = points.iter().map(|p| format!("{:.2}", p.1)).collect();
        let base: Vec<String> = points.iter().map(|_| format!("{before:.2}")).collect();
        let _ = writeln!(
            md,
            "```mermaid\nxychart-beta\n  title \"5xx rate per round (%); line: before the deploy\"\n  x-axis \"round\" [{}]\n  y-axis \"5xx %\" 0 --> {top}\n  bar [{}]\n  line [{}]\n```\n",
            xs.join(", "),
            ys.join(", "),
            base.join(", ")
        );
    }
}

impl Section for SignalsReport {
    fn outputs(&self, _out: &mut Vec<(String, String)>) {}

    fn summary(&self, md: &mut String) {
        let icon = if self.bad_rounds > 0 { "❌" } else { "📈" };
        let _ = writeln!(md, "#### {icon} Watch signals\n");
        if !self.enabled {
            let _ = writeln!(md, "Turned off (`smoke.watch-signals.enabled: false`).\n");
            return;
        }
        let mut what = Vec::new();
        if let Some(tg) = &self.target_group {
            what.push(format!("target group {}", md_code(tg)));
        }
        if let Some(g) = &self.log_group {
            what.push(format!(
                "log group {} (lines matching {})",
                md_code(g),
                md_code(&self.error_pattern)
            ));
        }
        if !what.is_empty() {
            let _ = writeln!(
                md,
                "Each round compared with the {} before the deploy: {}. {} of {} rounds regressed.\n",
                humantime::format_duration(std::time::Duration::from_secs(self.baseline_seconds)),
                what.join("; "),
                self.bad_rounds,
                self.round_count
            );
            self.table(md);
            self.chart(md);
        }
        let regressed: Vec<&Round> = self
            .rounds
            .iter()
            .filter(|r| !r.regressions.is_empty())
            .collect();
        if let Some(first) = regressed.first() {
            let _ = writeln!(
                md,
                "First regression, round {} ({} s after the deploy started): {}\n",
                first.round,
                first.at_seconds,
                md_escape(&first.regressions.join("; "))
            );
        }
        for n in &self.notes {
            let _ = writeln!(md, "- ⚠️ {}", md_escape(n));
        }
        if !self.notes.is_empty() {
            md.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_and_after_in_a_table_and_a_chart() {
        let r = SignalsReport {
            enabled: true,
            baseline_seconds: 600,
            error_pattern: "?ERROR ?Traceback".into(),
            limits: Limits::of(&WatchSignals::defaults(std::time::Duration::from_secs(600))),
            target_group: Some("targetgroup/stage-backend-blue/73e2".into()),
            log_group: Some("/ecs/stage/backend-blue".into()),
            before: Some(Metrics {
                requests: 1000.0,
                errors_5xx: 1.0,
                p95_ms: Some(40.0),
            }),
            before_error_lines: Some(2),
            rounds: vec![
                Round {
                    round: 1,
                    at_seconds: 20,
                    requests: Some(100.0),
                    rate_5xx: Some(0.0),
                    p95_ms: Some(42.0),
                    error_lines: Some(0),
                    regressions: vec![],
                },
                Round {
                    round: 2,
                    at_seconds: 35,
                    requests: Some(200.0),
                    rate_5xx: Some(0.08),
                    p95_ms: Some(45.0),
                    error_lines: Some(30),
                    regressions: vec!["5xx rate 8.0% [x](y)".into()],
                },
            ],
            round_count: 2,
            bad_rounds: 1,
            notes: vec!["no `awslogs` | <b>".into()],
        };
        let mut md = String::new();
        r.summary(&mut md);
        for want in [
            "#### ❌ Watch signals",
            "Each round compared with the 10m before the deploy: target group `targetgroup/stage-backend-blue/73e2`; log group `/ecs/stage/backend-blue` (lines matching `?ERROR ?Traceback`). 1 of 2 rounds regressed.",
            "| 5xx rate | 0.1% (1 of 1000) | 8.0% | 8.0% | > 1.0% and > 2x before |",
            "| p95 response time | 40 ms | 45 ms | 45 ms | > 2x before |",
            "| error lines | 2 | 30 | 30 | > 3x before (for as long) + 10 |",
            "  x-axis \"round\" [1, 2]\n  y-axis \"5xx %\" 0 --> 10\n  bar [0.00, 8.00]\n  line [0.10, 0.10]",
            "First regression, round 2 (35 s after the deploy started): 5xx rate 8.0% \\[x\\]\\(y\\)",
            "- ⚠️ no \\`awslogs\\` \\| \\<b\\>",
        ] {
            assert!(md.contains(want), "{want}\n---\n{md}");
        }
    }
}
