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

/// Escape text for a Markdown table cell, list item or paragraph: every character that could start
/// emphasis, a link, an image, a code span, raw HTML, a heading, a table cell or strikethrough is
/// backslash-escaped, and line breaks become spaces, so text from AWS or a registry renders as the
/// characters it is and never as markup.
pub fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '!' | '<' | '>' | '|' | '#' | '~'
            | '&' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\u{2028}' | '\u{2029}' => out.push(' '),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text inside raw HTML (a `<summary>`, where Markdown is not parsed): `&`, `<`, `>` and quotes as
/// entities, line breaks as spaces.
pub fn html_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A whole code span (delimiters included) showing `s` literally, also inside a table cell. A backslash
/// cannot escape a backtick inside a code span, so the fence is one backtick longer than the longest run
/// of backticks in `s` (padded with a space when `s` starts or ends with one); `|` is escaped, which a
/// GitHub table strips again inside code; line breaks become spaces.
pub fn md_code(s: &str) -> String {
    let text: String = s
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\u{2028}' | '\u{2029}' => ' ',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect::<String>()
        .replace('|', "\\|");
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') || text.is_empty() {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
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
    fn md_escape_leaves_no_markup() {
        let cases = [
            ("plain text-1.2", "plain text-1.2"),
            ("![x](http://evil)", "\\!\\[x\\]\\(http://evil\\)"),
            ("a `b` c", "a \\`b\\` c"),
            (
                "<img src=x onerror=alert(1)>",
                "\\<img src=x onerror=alert\\(1\\)\\>",
            ),
            ("a | b", "a \\| b"),
            ("*bold* _it_ ~~s~~", "\\*bold\\* \\_it\\_ \\~\\~s\\~\\~"),
            ("# head", "\\# head"),
            ("back\\slash", "back\\\\slash"),
            ("&amp;", "\\&amp;"),
            ("one\ntwo\r\nthree", "one two  three"),
        ];
        for (raw, want) in cases {
            assert_eq!(md_escape(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn md_code_fences_around_backticks() {
        let cases = [
            ("key.js", "`key.js`"),
            ("a`b", "``a`b``"),
            ("a``b`", "``` a``b` ```"),
            ("`", "`` ` ``"),
            ("", "`  `"),
            ("a|b", "`a\\|b`"),
            ("x\n::error::y", "`x ::error::y`"),
            ("<img src=x>", "`<img src=x>`"),
        ];
        for (raw, want) in cases {
            assert_eq!(md_code(raw), want, "{raw:?}");
        }
    }

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
