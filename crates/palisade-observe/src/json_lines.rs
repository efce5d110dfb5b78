//! A purpose-built JSON-lines `tracing` layer: one object per event, with the same
//! members, in the same order, as `tracing-subscriber`'s JSON formatter configured
//! with a flattened event and the current span (`timestamp`, `level`, the event's
//! fields, `target`, then `span` with the enclosing span's fields and `name`).
//!
//! Why not that formatter: it stores each span's fields as a JSON string and parses
//! it back into a map on every event to merge it into the line, and it allocates a
//! timestamp string and a line per event. Here a span's fields are rendered once,
//! as JSON members, when the span is created or recorded, and each line is
//! serialized straight into a reused per-thread buffer and handed to the writer in
//! one call. The request log line costs well under a microsecond this way.

use crate::json_text::{JsonEscaper, push_json_str, push_timestamp, push_u64};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::ops::Range;
use std::time::SystemTime;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Lines longer than this are not kept in the per-thread buffer afterwards, so one
/// huge event does not pin its memory for the life of the thread.
const KEEP_BUFFER_BYTES: usize = 16 * 1024;

thread_local! {
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

/// The layer. `W` receives each complete line (newline included) in one `write_all`.
#[derive(Debug)]
pub struct JsonLines<W> {
    make_writer: W,
}

impl<W> JsonLines<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    /// A layer writing its lines to `make_writer`.
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }

    fn write_line(&self, meta: &tracing::Metadata<'_>, line: &str) {
        let mut writer = self.make_writer.make_writer_for(meta);
        if let Err(e) = writer.write_all(line.as_bytes()) {
            // What `fmt::layer().log_internal_errors(true)` did: say so on stderr.
            eprintln!("[palisade-observe] unable to write a log line: {e}");
        }
    }
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut Members(&mut fields));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Members(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        let render = |line: &mut String| {
            line.clear();
            render_event(line, event, span.as_ref());
            self.write_line(event.metadata(), line);
        };
        // A line rendered while another is (a `Debug` impl logging through a
        // dispatcher of its own) finds the buffer borrowed: a fresh one, not a panic.
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                render(&mut line);
                if line.capacity() > KEEP_BUFFER_BYTES {
                    *line = String::with_capacity(512);
                }
            }
            Err(_) => render(&mut String::new()),
        });
    }
}

fn render_event<R>(line: &mut String, event: &Event<'_>, span: Option<&R>)
where
    R: SpanRef,
{
    let meta = event.metadata();
    line.push_str("{\"timestamp\":\"");
    push_timestamp(line, SystemTime::now());
    line.push_str("\",\"level\":\"");
    line.push_str(meta.level().as_str());
    line.push('"');
    let mut fields = EventFields {
        line,
        log_target: None,
    };
    event.record(&mut Members(&mut fields));
    let EventFields { line, log_target } = fields;
    line.push_str(",\"target\":");
    // Records bridged from the `log` crate carry their real target as a field.
    push_json_str(line, log_target.as_deref().unwrap_or(meta.target()));
    if let Some(span) = span {
        span.push_span(line);
    }
    line.push_str("}\n");
}

/// The registry's span handle, narrowed to what a line needs.
trait SpanRef {
    fn push_span(&self, line: &mut String);
}

impl<'a, R: LookupSpan<'a>> SpanRef for tracing_subscriber::registry::SpanRef<'a, R> {
    fn push_span(&self, line: &mut String) {
        line.push_str(",\"span\":{");
        if let Some(fields) = self.extensions().get::<SpanFields>() {
            for (index, (_, range)) in fields.members.iter().enumerate() {
                if index > 0 {
                    line.push(',');
                }
                line.push_str(&fields.rendered[range.clone()]);
            }
            if !fields.members.is_empty() {
                line.push(',');
            }
        }
        line.push_str("\"name\":");
        push_json_str(line, self.name());
        line.push('}');
    }
}

/// A span's fields as rendered JSON members (`"name":value`), each a range of
/// `rendered`, ordered by name as `tracing-subscriber`'s formatter orders them (it
/// keeps them in a sorted map). A field recorded again replaces its earlier value.
#[derive(Debug, Default)]
struct SpanFields {
    rendered: String,
    members: Vec<(&'static str, Range<usize>)>,
    /// The member being written.
    open: usize,
}

/// The event's fields, appended to the line as `,"name":value`.
struct EventFields<'a> {
    line: &'a mut String,
    log_target: Option<String>,
}

/// Where a visitor writes one member: `begin` returns the buffer after writing the
/// member's name, `end` closes the member.
trait MemberSink {
    /// `None` skips the field.
    fn begin(&mut self, name: &'static str) -> Option<&mut String>;
    fn end(&mut self, name: &'static str);
    /// Told the target of a record bridged from the `log` crate.
    fn log_target(&mut self, _target: &str) {}
}

impl MemberSink for SpanFields {
    fn begin(&mut self, name: &'static str) -> Option<&mut String> {
        let start = self.rendered.len();
        self.open = match self
            .members
            .binary_search_by(|(existing, _)| existing.cmp(&name))
        {
            Ok(index) => {
                // The old text stays in `rendered`, unreferenced: spans are short-lived.
                self.members[index].1 = start..start;
                index
            }
            Err(index) => {
                self.members.insert(index, (name, start..start));
                index
            }
        };
        push_json_str(&mut self.rendered, name);
        self.rendered.push(':');
        Some(&mut self.rendered)
    }

    fn end(&mut self, _: &'static str) {
        let end = self.rendered.len();
        if let Some((_, range)) = self.members.get_mut(self.open) {
            range.end = end;
        }
    }
}

impl MemberSink for EventFields<'_> {
    fn begin(&mut self, name: &'static str) -> Option<&mut String> {
        // The `log` bridge's metadata fields; `log.target` becomes `target`.
        if name.starts_with("log.") {
            return None;
        }
        self.line.push(',');
        push_json_str(self.line, name);
        self.line.push(':');
        Some(self.line)
    }

    fn end(&mut self, _: &'static str) {}

    fn log_target(&mut self, target: &str) {
        self.log_target = Some(target.to_owned());
    }
}

/// A `Visit` writing each field as a JSON member into a [`MemberSink`].
struct Members<'a, M>(&'a mut M);

impl<M: MemberSink> Members<'_, M> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut String)) {
        if let Some(out) = self.0.begin(field.name()) {
            value(out);
            self.0.end(field.name());
        }
    }
}

impl<M: MemberSink> Visit for Members<'_, M> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "log.target" {
            self.0.log_target(value);
        }
        self.member(field, |out| push_json_str(out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| {
            out.push_str(if value { "true" } else { "false" })
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| push_u64(out, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| {
            if value < 0 {
                out.push('-');
            }
            push_u64(out, value.unsigned_abs());
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field, |out| {
            // JSON has no NaN or infinity; serde_json writes null for them too.
            if value.is_finite() {
                // `Debug` keeps a `.0` on whole numbers (a float stays a float)
                // and uses exponents for tiny and huge ones, as serde_json does.
                let _ = write!(out, "{value:?}");
            } else {
                out.push_str("null");
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.member(field, |out| {
            out.push('"');
            let _ = write!(JsonEscaper(out), "{value:?}");
            out.push('"');
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex, PoisonError};
    use tracing_subscriber::layer::SubscriberExt as _;

    /// Collects every line written.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
                .into_owned()
        }
    }

    /// Runs `f` under a subscriber with this layer, then under `tracing-subscriber`'s
    /// JSON formatter configured as Palisade used it, and returns both outputs.
    fn both(f: impl Fn()) -> (String, String) {
        let ours = Lines::default();
        let writer = ours.clone();
        let subscriber =
            tracing_subscriber::registry().with(JsonLines::new(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, &f);
        let theirs = Lines::default();
        let writer = theirs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, &f);
        (ours.text(), theirs.text())
    }

    /// Each line with its timestamp, which must be RFC 3339 UTC with microseconds,
    /// blanked out.
    fn without_timestamps(lines: &str) -> Vec<String> {
        const PREFIX: &str = "{\"timestamp\":\"";
        lines
            .lines()
            .map(|line| {
                let stamp = line
                    .strip_prefix(PREFIX)
                    .and_then(|rest| rest.get(..27))
                    .unwrap_or_else(|| panic!("no timestamp first: {line}"));
                let b = stamp.as_bytes();
                assert!(
                    b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && b[26] == b'Z',
                    "{line}"
                );
                format!("{PREFIX}{}", &line[PREFIX.len() + 27..])
            })
            .collect()
    }

    /// The same text, byte for byte, apart from the timestamps.
    fn assert_same_lines(ours: &str, theirs: &str) -> Vec<String> {
        let ours = without_timestamps(ours);
        assert_eq!(ours, without_timestamps(theirs));
        assert!(!ours.is_empty());
        ours
    }

    #[test]
    fn the_request_line_matches_tracing_subscribers_json() {
        let (ours, theirs) = both(|| {
            let span = tracing::info_span!(
                "request",
                request_id = "req-1",
                method = "GET",
                route = "/v1/whoami",
                trace_id = "",
                api_key = tracing::field::Empty,
            );
            span.record("api_key", tracing::field::display("0193-key"));
            span.in_scope(|| {
                tracing::info!(status = 200u16, latency_ms = 0.125, "request finished");
            });
        });
        let lines = assert_same_lines(&ours, &theirs);
        assert_eq!(
            lines[0],
            "{\"timestamp\":\"\",\"level\":\"INFO\",\"message\":\"request finished\",\
             \"status\":200,\"latency_ms\":0.125,\
             \"target\":\"palisade_observe::json_lines::tests\",\
             \"span\":{\"api_key\":\"0193-key\",\"method\":\"GET\",\"request_id\":\"req-1\",\
             \"route\":\"/v1/whoami\",\"trace_id\":\"\",\"name\":\"request\"}}"
        );
    }

    #[test]
    fn every_field_kind_and_awkward_text_render_as_tracing_subscriber_does() {
        let (ours, theirs) = both(|| {
            let span = tracing::warn_span!("outer \"quoted\"", n = -7i64, flag = true);
            span.record("n", 12i64);
            let _entered = span.enter();
            tracing::error!(
                text = "quote \" backslash \\ newline \n tab \t bell \u{7} é ✓",
                debug = ?vec!["a\"b"],
                big = u64::MAX,
                neg = i64::MIN,
                ratio = 1.0e-7,
                whole = 3.0,
                nan = f64::NAN,
                yes = false,
                "message with {} args",
                2
            );
            tracing::info!(parent: None, "a root event has no span");
            tracing::debug!(target: "custom::target", answer = 42, "");
        });
        assert_same_lines(&ours, &theirs);
    }

    #[test]
    fn events_name_their_explicit_parent_span() {
        let (ours, theirs) = both(|| {
            let parent = tracing::info_span!("parent", id = 1);
            let other = tracing::info_span!("other", id = 2);
            let _entered = other.enter();
            tracing::info!(parent: &parent, "to the parent");
            tracing::info!("to the current span");
        });
        let lines = assert_same_lines(&ours, &theirs);
        assert!(
            lines[0].ends_with("\"span\":{\"id\":1,\"name\":\"parent\"}}"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with("\"span\":{\"id\":2,\"name\":\"other\"}}"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn a_debug_value_that_logs_leaves_the_line_whole() {
        struct Noisy;
        impl std::fmt::Debug for Noisy {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                tracing::info!("logged while formatting");
                f.write_str("noisy")
            }
        }
        let ours = Lines::default();
        let writer = ours.clone();
        let subscriber =
            tracing_subscriber::registry().with(JsonLines::new(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(value = ?Noisy, "outer");
        });
        let lines = without_timestamps(&ours.text());
        // `tracing` itself drops an event raised while another is dispatched on
        // the same thread; the outer line must still be whole.
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("\"value\":\"noisy\""), "{}", lines[0]);
    }
}
