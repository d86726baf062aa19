//! What every step shares to describe itself, with no knowledge of the run: the [`Section`] a step's
//! report implements, Markdown escaping, and the [`Timeline`] of timed phases. A leaf: it imports no
//! other module of the crate, so steps and the run report can both depend on it without a circle.

use serde::Serialize;

/// A part of the report owned by one step: it adds its outputs and its summary section.
pub trait Section {
    /// Append `(name, value)` outputs.
    fn outputs(&self, out: &mut Vec<(String, String)>);
    /// Append a Markdown section to the job summary.
    fn summary(&self, md: &mut String);
}

/// Escape text for a Markdown table cell or paragraph.
pub fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('\n', " ")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// How a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    Failed,
    NoChange,
}

impl Outcome {
    /// `Ok` or `Failed` from a result.
    pub fn of<T, E>(result: &Result<T, E>) -> Self {
        if result.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Failed
        }
    }

    /// The spelling in the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::NoChange => "no-change",
        }
    }
}

/// One timed phase of the run (`resolve image`, `wait`, `smoke tests`, ...).
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: String,
    /// Wall time.
    pub seconds: f64,
    pub outcome: Outcome,
}

/// The timed phases of a run, in the order they ended.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct Timeline(Vec<Phase>);

impl Timeline {
    /// Record a phase that started at `started` and has just ended.
    pub fn record(&mut self, name: &str, started: tokio::time::Instant, outcome: Outcome) {
        self.0.push(Phase {
            name: name.into(),
            seconds: started.elapsed().as_secs_f64(),
            outcome,
        });
    }

    pub fn phases(&self) -> &[Phase] {
        &self.0
    }
}

/// `12.3 MiB`: binary units, one decimal.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// An error and its causes on one line (`outer: cause: root`), each distinct text once: transport
/// errors repeat their cause in their own message.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut src = e.source();
    while let Some(cause) = src {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        src = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 20), "5.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn error_chain_joins_distinct_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("root cause")]
        struct Root;
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] Root);
        #[derive(Debug, thiserror::Error)]
        #[error("outer: root cause")]
        struct Repeats(#[source] Root);
        assert_eq!(error_chain(&Outer(Root)), "outer: root cause");
        assert_eq!(error_chain(&Repeats(Root)), "outer: root cause");
    }
}
