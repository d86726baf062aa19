//! What a check's requests got: the types both the requests (`check`) and the report (`report`) are
//! made of, so neither imports the other.
//!
//! APIs: none.

use serde::Serialize;

/// One request of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The HTTP status, when a reply came.
    pub status: Option<u16>,
    /// Time to the full (capped) body, or to the failure.
    pub latency_ms: u64,
    /// Did it meet every expectation?
    pub passed: bool,
    /// What came back, in words (secrets redacted).
    pub got: String,
}

/// A check and all its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub method: String,
    /// URL, without userinfo.
    pub url: String,
    /// The expectation, in words.
    pub expected: String,
    /// What the last attempt got.
    pub got: String,
    /// Did it pass in the end?
    pub passed: bool,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

/// Median (nearest rank, lower) and maximum of some latencies.
pub fn p50_max(latencies: impl IntoIterator<Item = u64>) -> (u64, u64) {
    let mut v: Vec<u64> = latencies.into_iter().collect();
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    (v[(v.len() - 1) / 2], v[v.len() - 1])
}

impl CheckResult {
    /// p50 and max latency over the attempts, in ms.
    pub fn latency(&self) -> (u64, u64) {
        p50_max(self.attempts.iter().map(|a| a.latency_ms))
    }

    pub(super) fn compact(&self) -> serde_json::Value {
        let (p50, max) = self.latency();
        serde_json::json!({
            "name": self.name,
            "url": self.url,
            "expected": self.expected,
            "got": self.got,
            "attempts": self.attempts.len(),
            "p50_ms": p50,
            "max_ms": max,
            "passed": self.passed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        assert_eq!(p50_max([]), (0, 0));
        assert_eq!(p50_max([7]), (7, 7));
        assert_eq!(p50_max([30, 10, 20]), (20, 30));
        assert_eq!(p50_max([40, 10, 20, 30]), (20, 40));
    }
}
