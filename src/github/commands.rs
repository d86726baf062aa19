//! GitHub workflow commands written to stdout: `::add-mask::`, `::group::`, annotations.
//!
//! Every command goes through one writer and one escaping routine, so data that came from outside (a tag,
//! an AWS error message) can never close a command early or start a new one.
//!
//! On a terminal (the binary run as a command line) there is no runner to read the commands: annotations
//! print as plain `error: ...` lines, groups as section headers, and masks print nothing (a mask line
//! would show the very secret on the screen).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once at start when the binary runs as a command line.
static TERMINAL: AtomicBool = AtomicBool::new(false);

/// Write for a person at a terminal from now on instead of for the runner.
pub fn set_terminal() {
    TERMINAL.store(true, Ordering::Relaxed);
}

/// Is the output for a terminal (no workflow commands)?
pub fn terminal() -> bool {
    TERMINAL.load(Ordering::Relaxed)
}

/// Escape a command's message the way the runner (and `@actions/core`) expects: `%`, CR, LF.
pub fn escape_data(value: &str) -> String {
    value
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a command property (`title=`, `file=`): the data escapes plus `:` and `,`.
fn escape_property(value: &str) -> String {
    escape_data(value).replace(':', "%3A").replace(',', "%2C")
}

/// Annotation levels the runner understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `::error::`, fails nothing by itself but is shown in red on the run page.
    Error,
    /// `::warning::`
    Warning,
    /// `::notice::`
    Notice,
}

impl Level {
    fn command(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }
}

/// Format an annotation line (without the trailing newline); on a terminal, `error: MESSAGE`.
pub fn annotation(level: Level, title: Option<&str>, message: &str) -> String {
    if terminal() {
        return format!("{}: {message}", level.command());
    }
    match title {
        Some(t) => format!(
            "::{} title={}::{}",
            level.command(),
            escape_property(t),
            escape_data(message)
        ),
        None => format!("::{}::{}", level.command(), escape_data(message)),
    }
}

/// Write `::add-mask::VALUE` so the runner replaces the value with `***` everywhere after this line.
/// Empty values are skipped: masking "" would do nothing useful and the runner warns about it.
pub fn write_mask(out: &mut impl Write, secret: &str) -> io::Result<()> {
    if secret.is_empty() || terminal() {
        return Ok(());
    }
    // A multi-line secret must be masked line by line as well as whole: the runner matches per line.
    writeln!(out, "::add-mask::{}", escape_data(secret))?;
    if secret.contains('\n') {
        for line in secret.lines().filter(|l| !l.trim().is_empty()) {
            writeln!(out, "::add-mask::{}", escape_data(line))?;
        }
    }
    out.flush()
}

/// Mask a secret on stdout. Call this before the value is stored anywhere that could be printed.
pub fn mask(secret: &str) {
    let stdout = io::stdout();
    let mut lock = stdout.lock();
    // Ignoring a failed write is deliberate: if stdout is gone nothing can print the secret either.
    let _ = write_mask(&mut lock, secret);
}

/// Print an annotation on stdout.
pub fn emit(level: Level, title: Option<&str>, message: &str) {
    println!("{}", annotation(level, title, message));
}

/// Open a collapsible log group; the returned guard closes it when dropped.
pub fn group(title: &str) -> GroupGuard {
    if terminal() {
        println!("== {title}");
        return GroupGuard { open: false };
    }
    println!("::group::{}", escape_data(title));
    GroupGuard { open: true }
}

/// Closes its `::group::` when dropped, so an early `?` return never leaves a group open.
#[derive(Debug)]
pub struct GroupGuard {
    open: bool,
}

impl GroupGuard {
    /// Close the group now.
    pub fn end(mut self) {
        self.close();
    }

    fn close(&mut self) {
        if self.open {
            println!("::endgroup::");
            self.open = false;
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_data_and_properties() {
        assert_eq!(escape_data("a%b\r\nc"), "a%25b%0D%0Ac");
        assert_eq!(escape_property("a:b,c\n"), "a%3Ab%2Cc%0A");
    }

    #[test]
    fn annotation_cannot_start_a_second_command() {
        let line = annotation(Level::Error, Some("t:1"), "boom\n::add-mask::x");
        assert_eq!(line, "::error title=t%3A1::boom%0A::add-mask::x");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn mask_lines_of_multiline_secret() {
        let mut buf = Vec::new();
        write_mask(&mut buf, "ab\ncd").unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text,
            "::add-mask::ab%0Acd\n::add-mask::ab\n::add-mask::cd\n"
        );
        let mut buf = Vec::new();
        write_mask(&mut buf, "").unwrap();
        assert!(buf.is_empty());
    }
}
