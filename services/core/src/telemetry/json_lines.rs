//! The JSON log line, written field by field straight into the line.
//!
//! The format is tracing-subscriber's JSON format with `flatten_event(true)` and
//! `with_current_span(true)` (what docs/runbook.md's queries read): `timestamp`, `level`, the
//! event's fields (`message` first), `target`, and `span` with the request span's fields and
//! its `name`. tracing-subscriber builds that line through serde, collects the fields in a map
//! first, and parses the span's stored JSON again for every line; at two lines per proxied call
//! that was a fifth of the gateway's instructions. Here:
//! - a span's fields are rendered once, when the span is made, as a JSON object
//!   ([`SpanFields`]), and copied into each line as text;
//! - an event's fields are escaped straight into the line, `Display` values included (no
//!   intermediate `String`);
//! - events from the `log` crate (target `log`, whose metadata is normalised first) go through
//!   tracing-subscriber's own formatter, which knows how.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter of `log.format = "json"`.
pub struct JsonLines {
    /// For `log`-crate events (see the module comment).
    fallback: format::Format<format::Json>,
}

impl Default for JsonLines {
    fn default() -> Self {
        Self {
            fallback: format::Format::default()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false),
        }
    }
}

impl<S> FormatEvent<S, SpanFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, SpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.target() == "log" {
            return self.fallback.format_event(ctx, writer, event);
        }
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = LineFields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_json_str(&mut writer, meta.target())?;
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            let extensions = span.extensions();
            let rendered = extensions
                .get::<FormattedFields<SpanFields>>()
                .map(|f| f.fields.as_str())
                .unwrap_or("{}");
            // `{…}` without its closing brace, then the name (as tracing-subscriber writes it).
            let open = rendered.strip_suffix('}').unwrap_or("{");
            writer.write_str(",\"span\":")?;
            writer.write_str(open)?;
            if open.len() > 1 {
                writer.write_char(',')?;
            }
            writer.write_str("\"name\":")?;
            write_json_str(&mut writer, span.metadata().name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

/// Now, as tracing-subscriber writes it (`2026-12-07T19:00:50.342035Z`, UTC). The part up to
/// the second is formatted once a second per thread.
fn write_timestamp(out: &mut dyn fmt::Write) -> fmt::Result {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((u64::MAX, String::new()))
        };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != seconds {
            let prefix = chrono::DateTime::from_timestamp(seconds as i64, 0)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            *cached = (seconds, prefix);
        }
        write!(out, "{}.{:06}Z", cached.1, now.subsec_micros())
    })
}

/// Span fields as one JSON object, rendered when the span is made (and when it records more).
#[derive(Debug, Default, Clone, Copy)]
pub struct SpanFields;

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        writer.write_char('{')?;
        let mut visitor = ObjectFields {
            out: &mut writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result?;
        writer.write_char('}')
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        // Reopen the object and append (a field recorded twice appears twice, last one wins in
        // every JSON reader that CloudWatch uses).
        let first = current.fields.len() <= 2;
        if current.fields.ends_with('}') {
            current.fields.pop();
        } else {
            current.fields.push('{');
        }
        let mut writer = current.as_writer();
        let mut visitor = ObjectFields {
            out: &mut writer,
            first,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result?;
        writer.write_char('}')
    }
}

/// Writes `"name":value` pairs, each after a comma (the line already holds `level`).
struct LineFields<'a, 'w> {
    out: &'a mut Writer<'w>,
    result: fmt::Result,
}

/// Writes `"name":value` pairs separated by commas, for an object of their own.
struct ObjectFields<'a, 'w> {
    out: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

/// What both visitors do with one field: the separator, the name, the value.
trait PairWriter {
    fn begin(&mut self, field: &Field) -> Option<&mut dyn fmt::Write>;
    fn fail(&mut self, e: fmt::Error);

    fn pair(&mut self, field: &Field, value: impl FnOnce(&mut dyn fmt::Write) -> fmt::Result) {
        if let Some(out) = self.begin(field)
            && let Err(e) = value(out)
        {
            self.fail(e);
        }
    }
}

fn field_name(field: &Field) -> Option<&'static str> {
    let name = field.name();
    // `log.*` fields are metadata of `log`-crate records (formatted elsewhere).
    if name.starts_with("log.") {
        return None;
    }
    Some(name.strip_prefix("r#").unwrap_or(name))
}

fn write_name(out: &mut dyn fmt::Write, separator: bool, name: &str) -> fmt::Result {
    if separator {
        out.write_char(',')?;
    }
    write_json_str(out, name)?;
    out.write_char(':')
}

impl PairWriter for LineFields<'_, '_> {
    fn begin(&mut self, field: &Field) -> Option<&mut dyn fmt::Write> {
        let name = field_name(field)?;
        if self.result.is_err() {
            return None;
        }
        if let Err(e) = write_name(self.out, true, name) {
            self.result = Err(e);
            return None;
        }
        Some(self.out)
    }

    fn fail(&mut self, e: fmt::Error) {
        self.result = Err(e);
    }
}

impl PairWriter for ObjectFields<'_, '_> {
    fn begin(&mut self, field: &Field) -> Option<&mut dyn fmt::Write> {
        let name = field_name(field)?;
        if self.result.is_err() {
            return None;
        }
        let separator = !std::mem::replace(&mut self.first, false);
        if let Err(e) = write_name(self.out, separator, name) {
            self.result = Err(e);
            return None;
        }
        Some(self.out)
    }

    fn fail(&mut self, e: fmt::Error) {
        self.result = Err(e);
    }
}

/// The value visitor, the same for both.
macro_rules! visit_values {
    ($t:ty) => {
        impl Visit for $t {
            fn record_f64(&mut self, field: &Field, value: f64) {
                // ryu and itoa, as serde_json formats numbers: a fifth of `{value}`'s cost,
                // and every request's line carries a duration.
                self.pair(field, |out| {
                    if value.is_finite() {
                        out.write_str(ryu::Buffer::new().format_finite(value))
                    } else {
                        out.write_str("null")
                    }
                });
            }
            fn record_i64(&mut self, field: &Field, value: i64) {
                self.pair(field, |out| {
                    out.write_str(itoa::Buffer::new().format(value))
                });
            }
            fn record_u64(&mut self, field: &Field, value: u64) {
                self.pair(field, |out| {
                    out.write_str(itoa::Buffer::new().format(value))
                });
            }
            fn record_bool(&mut self, field: &Field, value: bool) {
                self.pair(field, |out| write!(out, "{value}"));
            }
            fn record_str(&mut self, field: &Field, value: &str) {
                self.pair(field, |out| write_json_str(out, value));
            }
            fn record_bytes(&mut self, field: &Field, value: &[u8]) {
                self.pair(field, |out| {
                    out.write_char('[')?;
                    for (i, b) in value.iter().enumerate() {
                        if i > 0 {
                            out.write_char(',')?;
                        }
                        write!(out, "{b}")?;
                    }
                    out.write_char(']')
                });
            }
            fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
                self.pair(field, |out| {
                    out.write_char('"')?;
                    write!(Escaped(out), "{value:?}")?;
                    out.write_char('"')
                });
            }
        }
    };
}
visit_values!(LineFields<'_, '_>);
visit_values!(ObjectFields<'_, '_>);

/// A JSON string, quoted and escaped.
fn write_json_str(out: &mut dyn fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(text)?;
    out.write_char('"')
}

/// Escapes what is written through it as the inside of a JSON string.
struct Escaped<'a>(&'a mut dyn fmt::Write);

/// Whether any of 8 bytes needs escaping (`"`, `\\` or a control character), 8 at a time:
/// most of a log line is plain text, and this is the loop it spends its time in.
fn needs_escape(chunk: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let control = chunk.wrapping_sub(ONES * 0x20) & !chunk & HIGHS;
    control
        | zero_byte(chunk ^ (ONES * u64::from(b'"')))
        | zero_byte(chunk ^ (ONES * u64::from(b'\\')))
        != 0
}

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let bytes = text.as_bytes();
        let mut clean = 0;
        while let Some(chunk) = bytes.get(clean..clean + 8) {
            let chunk = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            if needs_escape(chunk) {
                break;
            }
            clean += 8;
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate().skip(clean) {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            // Slicing at ASCII bytes keeps the pieces valid UTF-8.
            self.0.write_str(&text[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&text[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(work: impl FnOnce()) -> Vec<serde_json::Value> {
        let capture = Capture::default();
        let sink = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(SpanFields)
            .event_format(JsonLines::default())
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, work);
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn a_line_carries_the_event_fields_flattened_and_the_current_span() {
        let lines = lines_of(|| {
            let span = tracing::info_span!(
                "request",
                request_id = %"abc",
                http.method = %"POST",
                http.route = %"/{server}/mcp",
            );
            span.in_scope(|| {
                tracing::info!(
                    http.status = 200u16,
                    duration_ms = 1.5,
                    tool = Some("echo"),
                    missing = Option::<&str>::None,
                    decision = ?Some(1),
                    "request finished"
                );
            });
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request finished");
        assert_eq!(line["http.status"], 200);
        assert_eq!(line["duration_ms"], 1.5);
        assert_eq!(line["tool"], "echo");
        assert!(line.get("missing").is_none());
        assert_eq!(line["decision"], "Some(1)");
        assert!(line["target"].as_str().unwrap().contains("json_lines"));
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            line["span"],
            serde_json::json!({"request_id": "abc", "http.method": "POST",
                "http.route": "/{server}/mcp", "name": "request"})
        );
    }

    #[test]
    fn numbers_are_json_numbers_at_their_extremes_and_non_finite_floats_are_null() {
        let lines = lines_of(|| {
            tracing::info!(
                whole = 2.0,
                tiny = 1e-7,
                huge = 1.5e300,
                nan = f64::NAN,
                inf = f64::INFINITY,
                big = u64::MAX,
                small = i64::MIN,
                zero = 0u64,
                "numbers"
            );
        });
        let line = &lines[0];
        assert_eq!(line["whole"], 2.0);
        assert_eq!(line["tiny"], 1e-7);
        assert_eq!(line["huge"], 1.5e300);
        assert!(line["nan"].is_null());
        assert!(line["inf"].is_null());
        assert_eq!(line["big"], u64::MAX);
        assert_eq!(line["small"], i64::MIN);
        assert_eq!(line["zero"], 0);
    }

    #[test]
    fn text_that_needs_escaping_stays_one_valid_line() {
        let nasty = "quote \" backslash \\ newline \n tab \t bell \u{7} é";
        let lines = lines_of(|| {
            let span = tracing::info_span!("empty");
            span.in_scope(|| tracing::warn!(detail = %nasty, "{nasty}"));
            tracing::error!(value = f64::NAN, "outside any span");
        });
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["detail"], nasty);
        assert_eq!(lines[0]["message"], nasty);
        assert_eq!(lines[0]["span"], serde_json::json!({"name": "empty"}));
        assert_eq!(lines[1]["level"], "ERROR");
        assert!(lines[1]["value"].is_null());
        assert!(lines[1].get("span").is_none());
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them_wherever_the_special_byte_is() {
        for at in 0..20 {
            for special in ["\"", "\\", "\n", "\u{1}", "\u{1f}", "é", "\u{7f}"] {
                let text = format!("{}{special}{}", "a".repeat(at), "b".repeat(at % 7));
                let mut out = String::new();
                write_json_str(&mut out, &text).unwrap();
                assert_eq!(out, serde_json::to_string(&text).unwrap(), "{text:?}");
            }
        }
    }

    #[test]
    fn fields_recorded_on_a_span_later_are_added_to_its_object() {
        let lines = lines_of(|| {
            let span = tracing::info_span!("request", a = 1, b = tracing::field::Empty);
            span.record("b", "two");
            span.in_scope(|| tracing::info!("x"));
            let bare = tracing::info_span!("bare", c = tracing::field::Empty);
            bare.record("c", 3);
            bare.in_scope(|| tracing::info!("y"));
        });
        assert_eq!(
            lines[0]["span"],
            serde_json::json!({"a": 1, "b": "two", "name": "request"})
        );
        assert_eq!(
            lines[1]["span"],
            serde_json::json!({"c": 3, "name": "bare"})
        );
    }
}
