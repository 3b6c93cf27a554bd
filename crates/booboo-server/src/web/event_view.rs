//! A stored event arranged for reading: the exception chain in the order
//! Python prints it, frames with numbered source lines, library frames
//! folded, and the event's context as tables. Everything here came from a
//! client; the templates escape all of it.

use super::value_tree;
use booboo_core::event::{ChainType, Event, ExceptionEntry, Frame, Request};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Serialize)]
pub struct EventView {
    pub event_id: String,
    pub timestamp: String,
    pub level: String,
    pub message: String,
    /// The chain, the exception it all started from first and the raised
    /// one last, as Python prints it.
    pub chain: Vec<ExceptionView>,
    /// Whether the application caught the raised exception, when the client
    /// said (Sentry's `mechanism.handled`, the booboo protocol's `handled`).
    pub handled: Option<bool>,
    /// Frames of a message event that carries a stack but no exception.
    pub message_frames: Vec<FrameGroup>,
    pub request: Option<RequestView>,
    pub user: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub environment: String,
    pub release: String,
    pub sdk: Option<String>,
    pub runtime: Option<String>,
    pub server_name: String,
    pub platform: String,
    pub contexts: Vec<(String, String)>,
    pub breadcrumbs: Vec<BreadcrumbView>,
    /// The log record the event came from, when a logging integration sent it.
    pub log: Option<LogView>,
    /// Each field's name and its value as escaped HTML (see `value_tree`).
    pub extra: Vec<(String, String)>,
    /// Bulky data for machines (Sentry's `debug_meta`: the loaded images of
    /// a native program), shown folded under `extra`.
    pub collapsed_extra: Vec<(String, String)>,
    pub fingerprint: Option<String>,
}

/// Fields of `Event::extra` that are shown folded: useful to a person only
/// when symbolicating by hand, and long.
const COLLAPSED_EXTRA: &[&str] = &["debug_meta"];

#[derive(Debug, Serialize)]
pub struct ExceptionView {
    pub exception_type: String,
    pub value: String,
    pub module: Option<String>,
    pub handled: Option<bool>,
    /// Python's sentence between this exception and the one printed before
    /// it, if any.
    pub introduced_by: Option<&'static str>,
    pub frame_groups: Vec<FrameGroup>,
    pub frame_count: usize,
}

/// Consecutive frames of the same kind: application frames each stand
/// alone and open; a run of library frames is folded into one group.
#[derive(Debug, Serialize)]
pub struct FrameGroup {
    pub in_app: bool,
    pub frames: Vec<FrameView>,
}

#[derive(Debug, Serialize)]
pub struct FrameView {
    pub filename: String,
    pub module: Option<String>,
    pub function: String,
    pub lineno: Option<u32>,
    pub in_app: bool,
    /// Shown unfolded: application frames, and the raising frame when no
    /// frame is the application's.
    pub open: bool,
    pub lines: Vec<SourceLine>,
    /// Each local's name and its value as escaped HTML (see `value_tree`).
    pub vars: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
pub struct SourceLine {
    pub number: Option<u32>,
    pub text: String,
    pub is_error_line: bool,
}

#[derive(Debug, Serialize)]
pub struct RequestView {
    pub method: String,
    pub url: String,
    pub query_string: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
pub struct LogView {
    pub logger: String,
    pub level: String,
    /// The formatted message as the application's log shows it.
    pub message: String,
    /// The template the issue is grouped by, and its arguments.
    pub template: String,
    pub params: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct BreadcrumbView {
    /// The full UTC time, for the title, and its time of day to the millisecond.
    pub timestamp: String,
    pub clock: String,
    /// How long before the event it was recorded, e.g. "−2.1 s before the error".
    pub before: String,
    pub category: String,
    pub level: String,
    pub message: String,
    pub data: String,
}

const CAUSE: &str = "The above exception was the direct cause of the following exception:";
const CONTEXT: &str = "During handling of the above exception, another exception occurred:";
/// For links whose kind the client did not say (some Sentry SDKs): claiming
/// either of Python's sentences would be a guess.
const LINKED: &str = "The above exception led to the following exception:";

/// Text of a JSON value for a table cell: strings as they are, anything
/// else as compact JSON.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

fn pairs(map: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), text_of(v))).collect()
}

fn frame_view(frame: &Frame, open: bool) -> FrameView {
    let mut lines = Vec::new();
    let first = frame.lineno.map(|n| n.saturating_sub(frame.pre_context.len() as u32));
    for (i, text) in frame.pre_context.iter().enumerate() {
        lines.push(SourceLine { number: first.map(|f| f + i as u32), text: text.clone(), is_error_line: false });
    }
    if let Some(text) = &frame.context_line {
        lines.push(SourceLine { number: frame.lineno, text: text.clone(), is_error_line: true });
    }
    for (i, text) in frame.post_context.iter().enumerate() {
        lines.push(SourceLine {
            number: frame.lineno.map(|n| n + 1 + i as u32),
            text: text.clone(),
            is_error_line: false,
        });
    }
    FrameView {
        filename: frame.filename.clone(),
        module: frame.module.clone(),
        function: frame.function.clone(),
        lineno: frame.lineno,
        in_app: frame.in_app,
        open,
        lines,
        vars: frame.vars.iter().map(|(k, v)| (k.clone(), value_tree::html(v))).collect(),
    }
}

pub fn frame_groups(frames: &[Frame]) -> Vec<FrameGroup> {
    let any_in_app = frames.iter().any(|f| f.in_app);
    let last = frames.len().saturating_sub(1);
    let mut groups: Vec<FrameGroup> = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let open = frame.in_app || (!any_in_app && i == last);
        let view = frame_view(frame, open);
        match groups.last_mut() {
            Some(group) if !group.in_app && !frame.in_app => group.frames.push(view),
            _ => groups.push(FrameGroup { in_app: frame.in_app, frames: vec![view] }),
        }
    }
    groups
}

fn exception_view(entry: &ExceptionEntry, introduced_by: Option<&'static str>) -> ExceptionView {
    ExceptionView {
        exception_type: entry.exception_type.clone(),
        value: entry.value.clone(),
        module: entry.module.clone(),
        handled: entry.handled,
        introduced_by,
        frame_groups: frame_groups(&entry.stacktrace),
        frame_count: entry.stacktrace.len(),
    }
}

/// The chain in print order. `exceptions[i]` came from `exceptions[i + 1]`
/// as that entry's `chain_type` says, so printing runs from the last entry
/// to the first, each link announced by the later entry's chain type.
pub fn chain(exceptions: &[ExceptionEntry]) -> Vec<ExceptionView> {
    let mut views = Vec::with_capacity(exceptions.len());
    for i in (0..exceptions.len()).rev() {
        let introduced_by = exceptions.get(i + 1).map(|origin| match origin.chain_type {
            Some(ChainType::Cause) => CAUSE,
            Some(ChainType::Context) => CONTEXT,
            None => LINKED,
        });
        views.push(exception_view(&exceptions[i], introduced_by));
    }
    views
}

fn request_view(request: &Request) -> RequestView {
    RequestView {
        method: request.method.clone(),
        url: request.url.clone(),
        query_string: request.query_string.clone(),
        headers: request.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// How long before the event a breadcrumb was recorded: "−2.1 s before the
/// error", "−3 min 5 s …"; "+0.4 s after the error" for one stamped after it
/// (a clock or SDK quirk, shown as it is).
fn before_text(ms_before: i64) -> String {
    let (sign, word) = if ms_before < 0 { ("+", "after") } else { ("\u{2212}", "before") };
    let ms = ms_before.unsigned_abs();
    let span = if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000)
    } else {
        format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000)
    };
    format!("{sign}{span} {word} the error")
}

/// The log record behind an event: from `logentry`, or from a bare `logger`
/// name when a client sent only that.
fn log_view(event: &Event) -> Option<LogView> {
    if event.logentry.is_none() && event.logger.is_empty() {
        return None;
    }
    let entry = event.logentry.as_ref();
    let formatted = entry.map(|e| e.formatted.clone()).filter(|f| !f.is_empty());
    Some(LogView {
        logger: event.logger.clone(),
        level: event.level.as_str().to_string(),
        message: formatted.unwrap_or_else(|| event.message.clone()),
        template: entry.map(|e| e.template.clone()).unwrap_or_default(),
        params: entry.map(|e| e.params.iter().map(text_of).collect()).unwrap_or_default(),
    })
}

fn breadcrumb_view(crumb: &Value, event_ms: Option<i64>) -> BreadcrumbView {
    let field = |name: &str| crumb.get(name).map(text_of).unwrap_or_default();
    let at = crumb.get("timestamp").and_then(|t| booboo_core::timestamp::parse_value(t).ok());
    let (timestamp, clock, before) = match at {
        Some(t) => {
            let clock = format!("{:02}:{:02}:{:02}.{:03}", t.hour(), t.minute(), t.second(), t.millisecond());
            let ms = booboo_core::timestamp::unix_millis(t);
            (booboo_core::timestamp::format(t), clock, event_ms.map(|e| before_text(e - ms)).unwrap_or_default())
        }
        None => (crumb.get("timestamp").map(text_of).unwrap_or_default(), String::new(), String::new()),
    };
    let category = [field("category"), field("type")].into_iter().find(|s| !s.is_empty()).unwrap_or_default();
    let data = match crumb.get("data") {
        Some(Value::Null) | None => String::new(),
        Some(Value::Object(map)) if map.is_empty() => String::new(),
        Some(other) => text_of(other),
    };
    BreadcrumbView { timestamp, clock, before, category, level: field("level"), message: field("message"), data }
}

pub fn view(event_id: &str, event: &Event) -> EventView {
    let name_version = |nv: &Option<booboo_core::event::NameVersion>| {
        nv.as_ref().map(|nv| format!("{} {}", nv.name, nv.version).trim().to_string())
    };
    EventView {
        event_id: event_id.to_string(),
        timestamp: event.timestamp.clone(),
        level: event.level.as_str().to_string(),
        message: event.message.clone(),
        chain: chain(&event.exceptions),
        handled: event.exceptions.first().and_then(|e| e.handled),
        message_frames: if event.exceptions.is_empty() { frame_groups(&event.stacktrace) } else { Vec::new() },
        request: event.request.as_ref().map(request_view),
        user: event.user.as_ref().map(pairs).unwrap_or_default(),
        tags: event.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        environment: event.environment.clone(),
        release: event.release.clone(),
        sdk: name_version(&event.sdk),
        runtime: name_version(&event.runtime),
        server_name: event.server_name.clone(),
        platform: event.platform.clone(),
        contexts: event
            .contexts
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_string_pretty(v).unwrap_or_default()))
            .collect(),
        breadcrumbs: {
            let event_ms =
                booboo_core::timestamp::parse(&event.timestamp).ok().map(booboo_core::timestamp::unix_millis);
            event.breadcrumbs.iter().map(|c| breadcrumb_view(c, event_ms)).collect()
        },
        log: log_view(event),
        extra: event
            .extra
            .iter()
            .filter(|(k, _)| !COLLAPSED_EXTRA.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), value_tree::html(v)))
            .collect(),
        collapsed_extra: event
            .extra
            .iter()
            .filter(|(k, _)| COLLAPSED_EXTRA.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), serde_json::to_string_pretty(v).unwrap_or_default()))
            .collect(),
        fingerprint: event.fingerprint.as_ref().map(|f| f.join(" · ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, in_app: bool) -> Frame {
        Frame {
            filename: format!("/srv/{function}.py"),
            function: function.into(),
            lineno: Some(10),
            context_line: Some("boom()".into()),
            pre_context: vec!["a".into(), "b".into()],
            post_context: vec!["c".into()],
            in_app,
            ..Frame::default()
        }
    }

    fn entry(t: &str, chain_type: Option<ChainType>) -> ExceptionEntry {
        ExceptionEntry {
            exception_type: t.into(),
            value: "v".into(),
            chain_type,
            stacktrace: vec![frame("f", true)],
            module: None,
            handled: None,
        }
    }

    #[test]
    fn the_chain_reads_like_python_prints_it() {
        // ConfigError raised from KeyError, which was raised while handling OSError.
        let chain = chain(&[
            entry("ConfigError", None),
            entry("KeyError", Some(ChainType::Cause)),
            entry("OSError", Some(ChainType::Context)),
        ]);
        let order: Vec<_> = chain.iter().map(|e| e.exception_type.as_str()).collect();
        assert_eq!(order, ["OSError", "KeyError", "ConfigError"]);
        assert_eq!(chain[0].introduced_by, None);
        assert_eq!(chain[1].introduced_by, Some(CONTEXT));
        assert_eq!(chain[2].introduced_by, Some(CAUSE));
        // A link of unknown kind is not passed off as either of Python's.
        let unknown = super::chain(&[entry("ValueError", None), entry("KeyError", None)]);
        assert_eq!(unknown[1].introduced_by, Some(LINKED));
    }

    #[test]
    fn library_runs_fold_and_lines_are_numbered() {
        let groups = frame_groups(&[frame("main", true), frame("lib1", false), frame("lib2", false), frame("h", true)]);
        assert_eq!(groups.iter().map(|g| g.frames.len()).collect::<Vec<_>>(), [1, 2, 1]);
        assert!(groups[0].frames[0].open && !groups[1].frames[0].open);
        let lines = &groups[0].frames[0].lines;
        assert_eq!(lines.iter().map(|l| l.number).collect::<Vec<_>>(), [Some(8), Some(9), Some(10), Some(11)]);
        assert!(lines[2].is_error_line && !lines[1].is_error_line);
        // With no application frame, the raising frame is the one shown.
        let groups = frame_groups(&[frame("a", false), frame("b", false)]);
        assert_eq!(groups[0].frames.iter().map(|f| f.open).collect::<Vec<_>>(), [false, true]);
    }

    #[test]
    fn breadcrumb_times_read_as_a_clock_and_a_distance_before_the_error() {
        let event_ms =
            booboo_core::timestamp::unix_millis(booboo_core::timestamp::parse("2026-01-01T14:03:23.220Z").unwrap());
        let crumb = breadcrumb_view(&serde_json::json!({"timestamp": 1767276201.12, "message": "m"}), Some(event_ms));
        assert_eq!((crumb.clock.as_str(), crumb.before.as_str()), ("14:03:21.120", "\u{2212}2.1 s before the error"));
        let crumb = breadcrumb_view(&serde_json::json!({"timestamp": "2026-01-01T13:00:00Z"}), Some(event_ms));
        assert_eq!(
            (crumb.clock.as_str(), crumb.before.as_str()),
            ("13:00:00.000", "\u{2212}1 h 3 min before the error")
        );
        assert_eq!(before_text(-400), "+0.4 s after the error");
        assert_eq!(before_text(185_000), "\u{2212}3 min 5 s before the error");
        let odd = breadcrumb_view(&serde_json::json!({"timestamp": "yesterday"}), Some(event_ms));
        assert_eq!((odd.timestamp.as_str(), odd.clock.as_str()), ("yesterday", ""));
    }

    #[test]
    fn debug_meta_is_folded_apart_from_other_data() {
        let event: Event = serde_json::from_value(serde_json::json!({
            "event_id": "0", "timestamp": "t", "level": "error", "message": "m", "exception_type": "",
            "debug_meta": {"images": [{"type": "symbolic", "name": "/usr/bin/app"}]},
            "modules": {"flask": "3.1.0"}
        }))
        .unwrap();
        let v = view("0", &event);
        assert_eq!(v.extra.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["modules"]);
        assert_eq!(v.collapsed_extra.len(), 1);
        assert_eq!(v.collapsed_extra[0].0, "debug_meta");
        assert!(v.collapsed_extra[0].1.contains("/usr/bin/app"));
    }
}
