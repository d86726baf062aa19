//! The log on stderr. The runner parses workflow commands on stderr as well as stdout, and log lines carry
//! text from outside (S3 keys, service events, stopped-task reasons, registry error bodies): every event is
//! written as exactly one line, with CR and LF escaped, and a line that would start with `::` is prefixed,
//! so no data can start a command. The SDK's and the HTTP stack's own events are capped at `info`,
//! whatever `CLOUDSHOP_DEPLOY_LOG` asks for: below that they print request and response headers and
//! bodies (the ECR token among them) before any mask exists.

use std::io::{self, Write};

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The crate whose events may go below `info`.
const OWN_TARGET: &str = "cloudshop_deploy";

/// One event as one safe line: CR and LF inside it escaped as `\r` and `\n`, and `> ` before a line
/// whose first non-blank characters are `::` (the runner trims leading blanks before it looks).
pub fn neutralise(event: &str) -> String {
    let body = event.strip_suffix('\n').unwrap_or(event);
    let body = body.strip_suffix('\r').unwrap_or(body);
    let mut line = String::with_capacity(body.len() + 1);
    for c in body.chars() {
        match c {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c => line.push(c),
        }
    }
    if line.trim_start().starts_with("::") {
        line.insert_str(0, "> ");
    }
    line
}

/// May this event be logged at all? Our own events at any level the filter allows; everybody else's
/// (the SDK, hyper, reqwest, rustls) only at `info` and above.
pub fn allowed(meta: &Metadata<'_>) -> bool {
    *meta.level() <= Level::INFO || meta.target().starts_with(OWN_TARGET)
}

/// Writes each event to the inner writer as one neutralised line.
pub struct SafeLines<M>(pub M);

/// The buffer of one event; written, neutralised, when the formatter drops it.
pub struct EventBuffer<W: Write> {
    buf: Vec<u8>,
    inner: W,
}

impl<W: Write> Write for EventBuffer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for EventBuffer<W> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = neutralise(&String::from_utf8_lossy(&self.buf));
        // A log line that cannot be written has nowhere else to go.
        let _ = writeln!(self.inner, "{line}");
        let _ = self.inner.flush();
    }
}

impl<'a, M> MakeWriter<'a> for SafeLines<M>
where
    M: MakeWriter<'a>,
{
    type Writer = EventBuffer<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EventBuffer {
            buf: Vec::new(),
            inner: self.0.make_writer(),
        }
    }
}

/// Install the stderr log: `CLOUDSHOP_DEPLOY_LOG` (an `EnvFilter`), else `debug` for this crate when the
/// runner's step debugging is on, else `info`.
pub fn init(step_debug: bool) {
    let default = if step_debug {
        "cloudshop_deploy=debug,info"
    } else {
        "info"
    };
    let filter =
        EnvFilter::try_from_env("CLOUDSHOP_DEPLOY_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // The runner timestamps every line; ours would only add noise.
    let layer = tracing_subscriber::fmt::layer()
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .with_writer(SafeLines(io::stderr))
        .with_filter(filter_fn(allowed))
        .with_filter(filter);
    tracing_subscriber::registry().with(layer).init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutralise_table() {
        let cases = [
            ("INFO plain\n", "INFO plain"),
            ("INFO a\nb\n", "INFO a\\nb"),
            ("INFO a\r\n::error::forged\n", "INFO a\\r\\n::error::forged"),
            ("::add-mask::x\n", "> ::add-mask::x"),
            ("   ::stop-commands::t", ">    ::stop-commands::t"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(neutralise(input), want, "input {input:?}");
        }
    }

    #[test]
    fn every_event_is_one_line_that_starts_no_command() {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, d: &[u8]) -> io::Result<usize> {
                self.0
                    .lock()
                    .map_err(|_| io::ErrorKind::Other)?
                    .extend_from_slice(d);
                Ok(d.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .without_time()
            .with_ansi(false)
            .with_writer(SafeLines(move || Shared(sink.clone())))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(key = "stale.js\n::error title=forged::x", "deleting");
            tracing::warn!(
                "event: {}",
                "task stopped\r\n::add-mask::x\n::set-output name=a::b"
            );
        });
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for l in lines {
            assert!(!l.trim_start().starts_with("::"), "{l}");
        }
        assert!(text.contains("stale.js\\n::error"), "{text}");
    }

    #[test]
    fn sdk_internals_are_capped_at_info() {
        let meta = |target: &'static str, level: Level| {
            // Build metadata the way a callsite would.
            struct Cs;
            impl tracing::callsite::Callsite for Cs {
                fn set_interest(&self, _: tracing::subscriber::Interest) {}
                fn metadata(&self) -> &Metadata<'_> {
                    unimplemented!()
                }
            }
            static CS: Cs = Cs;
            Metadata::new(
                "e",
                target,
                level,
                None,
                None,
                None,
                tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CS)),
                tracing::metadata::Kind::EVENT,
            )
        };
        assert!(!allowed(&meta(
            "aws_smithy_runtime::client::orchestrator",
            Level::TRACE
        )));
        assert!(!allowed(&meta("hyper_util::client", Level::DEBUG)));
        assert!(allowed(&meta("aws_config", Level::INFO)));
        assert!(allowed(&meta("aws_smithy_runtime", Level::WARN)));
        assert!(allowed(&meta("cloudshop_deploy::steps", Level::TRACE)));
    }
}
