//! Bounds on what one event may carry once normalised, so that one odd
//! client cannot make an event expensive to store or to show.
//!
//! [`apply`] is the one place these bounds are enforced: every wire format's
//! reader hands its [`Event`] to [`crate::process`], which calls it, so the
//! booboo protocol and Sentry's cannot drift apart. Readers may cut early to
//! save work, but never to other numbers than these.

use crate::event::{Event, Frame};
use crate::json_reader::{as_text, truncate};
use serde_json::Value;

/// The message and each exception's value; longer ones are cut with `…`.
pub const MESSAGE_BYTES: usize = 8 * 1024;
pub const SHORT_TEXT_BYTES: usize = 1024;
pub const SOURCE_LINE_BYTES: usize = 1024;
pub const SOURCE_LINES: usize = 10;
/// One local variable's text (Sentry SDKs send at most 1,024 characters).
pub const VAR_BYTES: usize = 4096;
/// Locals per frame; the first ones the client listed are kept.
pub const VARS_PER_FRAME: usize = 100;
/// Frames per stack; the outermost and innermost halves are kept.
pub const FRAMES: usize = 250;
pub const CHAIN_LENGTH: usize = 50;
pub const TAGS: usize = 200;
pub const TAG_VALUE_BYTES: usize = 1024;
/// Sentry SDKs keep 100 by default; the most recent are kept beyond this.
pub const BREADCRUMBS: usize = 100;
/// Parts of a client's own fingerprint, and the length of each.
pub const FINGERPRINT_PARTS: usize = 32;
pub const FINGERPRINT_PART_BYTES: usize = 1024;

/// Brings a parsed event within every bound above. Locals become text here
/// (Sentry sends them as JSON values), after scrubbing has seen their keys.
pub fn apply(event: &mut Event) {
    cut(&mut event.message, MESSAGE_BYTES);
    cut(&mut event.exception_type, SHORT_TEXT_BYTES);
    // Raised first: the raised exception and its nearest causes stay.
    event.exceptions.truncate(CHAIN_LENGTH);
    for entry in &mut event.exceptions {
        cut(&mut entry.exception_type, SHORT_TEXT_BYTES);
        cut(&mut entry.value, MESSAGE_BYTES);
        if let Some(module) = &mut entry.module {
            cut(module, SHORT_TEXT_BYTES);
        }
        bound_frames(&mut entry.stacktrace);
    }
    bound_frames(&mut event.stacktrace);
    for text in [
        &mut event.environment,
        &mut event.release,
        &mut event.dist,
        &mut event.platform,
        &mut event.server_name,
        &mut event.logger,
    ] {
        cut(text, SHORT_TEXT_BYTES);
    }
    while event.tags.len() > TAGS {
        event.tags.pop_last();
    }
    for value in event.tags.values_mut() {
        cut(value, TAG_VALUE_BYTES);
    }
    if let Some(parts) = &mut event.fingerprint {
        parts.truncate(FINGERPRINT_PARTS);
        for part in parts.iter_mut() {
            cut(part, FINGERPRINT_PART_BYTES);
        }
    }
    let surplus = event.breadcrumbs.len().saturating_sub(BREADCRUMBS);
    event.breadcrumbs.drain(..surplus);
}

fn cut(text: &mut String, max: usize) {
    if text.len() > max {
        *text = truncate(std::mem::take(text), max);
    }
}

fn bound_frames(frames: &mut Vec<Frame>) {
    *frames = keep_ends(std::mem::take(frames), FRAMES);
    frames.iter_mut().for_each(bound_frame);
}

fn bound_frame(frame: &mut Frame) {
    cut(&mut frame.filename, SHORT_TEXT_BYTES);
    cut(&mut frame.function, SHORT_TEXT_BYTES);
    if let Some(module) = &mut frame.module {
        cut(module, SHORT_TEXT_BYTES);
    }
    if let Some(line) = &mut frame.context_line {
        cut(line, SOURCE_LINE_BYTES);
    }
    // The lines nearest the frame's own line are kept on both sides.
    let before = frame.pre_context.len().saturating_sub(SOURCE_LINES);
    frame.pre_context.drain(..before);
    frame.pre_context = source_lines(std::mem::take(&mut frame.pre_context));
    frame.post_context = source_lines(std::mem::take(&mut frame.post_context));
    frame.vars = std::mem::take(&mut frame.vars)
        .into_iter()
        .take(VARS_PER_FRAME)
        .map(|(name, value)| (truncate(name, SHORT_TEXT_BYTES), bound_var(value)))
        .collect();
}

/// Deepest nesting of a local kept as structure.
pub const VAR_DEPTH: usize = 10;

/// A local as it is kept: an object or array (what Sentry SDKs send for
/// containers) stays structured, so the dashboard can show it as a tree,
/// when it is small (`VAR_BYTES` as compact JSON) and shallow
/// (`VAR_DEPTH`); anything else becomes text cut at `VAR_BYTES`, as
/// scalars always do.
fn bound_var(value: Value) -> Value {
    let structured = matches!(value, Value::Object(_) | Value::Array(_))
        && depth_of(&value) <= VAR_DEPTH
        && serde_json::to_vec(&value).map(|b| b.len() <= VAR_BYTES).unwrap_or(false);
    if structured {
        value
    } else {
        Value::String(truncate(as_text(&value), VAR_BYTES))
    }
}

fn depth_of(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth_of).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

/// Keeps the first and last `max / 2` items: the entry point and the raise
/// site matter most in a deep recursion.
pub fn keep_ends<T>(mut items: Vec<T>, max: usize) -> Vec<T> {
    if items.len() > max {
        let tail = items.split_off(items.len() - max / 2);
        items.truncate(max - tail.len());
        items.extend(tail);
    }
    items
}

pub fn source_lines(lines: Vec<String>) -> Vec<String> {
    lines.into_iter().take(SOURCE_LINES).map(|l| truncate(l, SOURCE_LINE_BYTES)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ExceptionEntry, Level};
    use serde_json::json;

    fn event() -> Event {
        serde_json::from_value(json!({
            "event_id": "0123456789abcdef0123456789abcdef", "timestamp": "2026-01-01T00:00:00Z",
            "level": "error", "message": "", "exception_type": ""
        }))
        .unwrap()
    }

    #[test]
    fn keep_ends_keeps_both_ends() {
        let kept = super::keep_ends((0..10).collect(), 4);
        assert_eq!(kept, vec![0, 1, 8, 9]);
    }

    #[test]
    fn texts_are_cut_within_their_limit_with_a_marker() {
        let mut e = event();
        e.message = "é".repeat(MESSAGE_BYTES);
        e.exceptions.push(ExceptionEntry {
            exception_type: "E".into(),
            value: "v".repeat(MESSAGE_BYTES + 1),
            chain_type: None,
            stacktrace: Vec::new(),
            module: None,
            handled: None,
        });
        apply(&mut e);
        assert!(e.message.len() <= MESSAGE_BYTES && e.message.ends_with('…'), "{}", e.message.len());
        assert!(e.exceptions[0].value.len() <= MESSAGE_BYTES && e.exceptions[0].value.ends_with('…'));
        assert_eq!(e.level, Level::Error);
    }

    #[test]
    fn locals_stay_structured_only_when_small_and_shallow() {
        let mut deep = json!(1);
        for _ in 0..VAR_DEPTH + 1 {
            deep = json!([deep]);
        }
        let big = json!({"s": "x".repeat(VAR_BYTES)});
        assert_eq!(bound_var(json!({"a": [1, 2]})), json!({"a": [1, 2]}));
        assert!(bound_var(deep).is_string(), "too deep becomes text");
        let big = bound_var(big);
        assert!(big.as_str().is_some_and(|s| s.len() <= VAR_BYTES), "too big becomes cut text");
        assert_eq!(bound_var(json!(3)), json!("3"));
    }

    #[test]
    fn counts_are_bounded_keeping_what_matters() {
        let mut e = event();
        e.breadcrumbs = (0..1000).map(|i| json!({ "message": i })).collect();
        e.stacktrace = (0..1000).map(|i| Frame { function: format!("f{i}"), ..Frame::default() }).collect();
        e.stacktrace[0].vars = (0..500).map(|i| (format!("v{i}"), json!({ "n": i }))).collect();
        e.fingerprint = Some(vec!["x".repeat(5000); 100]);
        e.stacktrace[999].pre_context = (0..30).map(|i| format!("line {i}")).collect();
        e.stacktrace[999].post_context = (30..60).map(|i| format!("line {i}")).collect();
        apply(&mut e);
        assert_eq!(e.breadcrumbs.len(), BREADCRUMBS);
        assert_eq!(e.breadcrumbs[0]["message"], 900);
        assert_eq!(e.stacktrace.len(), FRAMES);
        assert_eq!((e.stacktrace[0].function.as_str(), e.stacktrace[FRAMES - 1].function.as_str()), ("f0", "f999"));
        assert_eq!(e.stacktrace[0].vars.len(), VARS_PER_FRAME);
        assert_eq!(e.stacktrace[0].vars["v0"], json!({"n": 0}), "small containers stay structured");
        let raised = &e.stacktrace[FRAMES - 1];
        assert_eq!((raised.pre_context[0].as_str(), raised.pre_context[9].as_str()), ("line 20", "line 29"));
        assert_eq!((raised.post_context[0].as_str(), raised.post_context.len()), ("line 30", 10));
        let parts = e.fingerprint.unwrap();
        assert_eq!(parts.len(), FINGERPRINT_PARTS);
        assert!(parts.iter().all(|p| p.len() <= FINGERPRINT_PART_BYTES));
    }
}
