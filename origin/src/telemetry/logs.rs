//! JSON log lines on stdout (Fluent Bit ships them to CloudWatch).
//!
//! With tracing on, a line written while a request or batch span is current carries that span's
//! trace id in X-Ray form (`"trace_id":"1-5f84c7a1-…"`), the id the X-Ray console and the ALB's
//! access logs use, so a log line leads straight to its trace and back.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use super::traces;

/// Installs the global JSON subscriber. A second call (tests start many apps) is a no-op.
/// `trace_ids` adds the current trace id to each line (only when tracing is on: the lookup is
/// then the only extra work per line, and none at all otherwise).
pub fn init(level: &str, trace_ids: bool) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .fmt_fields(JsonFields::new())
        .event_format(WithTraceId {
            inner: json_format(),
            enabled: trace_ids,
        })
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}

fn json_format() -> Format<Json> {
    tracing_subscriber::fmt::format()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
}

/// The JSON formatter, plus `"trace_id"` when an OpenTelemetry span is current on this thread
/// (the request and batch futures are polled with their context attached).
pub struct WithTraceId<F> {
    inner: F,
    enabled: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let trace_id = self
            .enabled
            .then(|| {
                opentelemetry::Context::map_current(|cx| {
                    let span = cx.span();
                    let context = span.span_context();
                    context
                        .is_valid()
                        .then(|| traces::xray_trace_id(context.trace_id()))
                })
            })
            .flatten();
        let Some(trace_id) = trace_id else {
            return self.inner.format_event(ctx, writer, event);
        };
        // The JSON formatter writes one object and a newline; the id goes in before the `}`.
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let object = line.trim_end();
        match object.strip_suffix('}') {
            Some(open) => writeln!(writer, "{open},\"trace_id\":\"{trace_id}\"}}"),
            None => writer.write_str(&line),
        }
    }
}

/// Whether this request's access-log line is written: one in `every`, counted per thread so the
/// hot path shares no cache line. 5xx answers are always logged by the caller.
pub fn sample_access_log(every: u64) -> bool {
    use std::cell::Cell;
    thread_local!(static SEEN: Cell<u64> = const { Cell::new(0) });
    match every {
        0 => false,
        1 => true,
        n => SEEN.with(|seen| {
            let count = seen.get().wrapping_add(1);
            seen.set(count);
            count % n == 0
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(trace_ids: bool, log: impl FnOnce()) -> Vec<serde_json::Value> {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(WithTraceId {
                inner: json_format(),
                enabled: trace_ids,
            })
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn in_span(log: impl FnOnce()) {
        let context = SpanContext::new(
            TraceId::from_hex("5f84c7a1a006649127e371903a2de979").unwrap(),
            SpanId::from_hex("53995c3f42cd8ad8").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let _attached = opentelemetry::Context::new()
            .with_remote_span_context(context)
            .attach();
        log();
    }

    #[test]
    fn lines_inside_a_span_carry_its_trace_id_in_xray_form() {
        let out = lines(true, || {
            in_span(|| tracing::warn!(batch = 3, "inside"));
            tracing::warn!("outside");
        });
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["trace_id"], "1-5f84c7a1-a006649127e371903a2de979");
        assert_eq!(out[0]["message"], "inside");
        assert_eq!(out[0]["batch"], 3);
        assert!(out[1].get("trace_id").is_none(), "{}", out[1]);
    }

    #[test]
    fn without_tracing_lines_are_unchanged() {
        let out = lines(false, || in_span(|| tracing::warn!("inside")));
        assert!(out[0].get("trace_id").is_none(), "{}", out[0]);
        assert_eq!(out[0]["message"], "inside");
    }
}
