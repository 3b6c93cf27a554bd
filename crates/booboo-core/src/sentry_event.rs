//! Reads a Sentry event payload (an envelope's `event` item, or the body of
//! the older `store` endpoint) into the same [`Event`] the booboo protocol
//! fills, so that grouping, storage and display need not know which SDK
//! sent it.
//!
//! The differences this smooths over: Sentry lists the exception chain with
//! the innermost cause first (ours lists the raised exception first), puts a
//! frame's absolute path in `abs_path`, sends locals as JSON values rather
//! than text, and allows tags as a list of pairs. Fields Sentry has and the
//! event model does not stay in `Event::extra`.

use crate::booboo_payload::{
    self, normalise_event_id, parse_object, read_name_version, read_request, read_tags, PayloadError,
};
use crate::event::{ChainType, Event, ExceptionEntry, Frame, Level, FIELD_NAMES};
use crate::json_reader::{self as jr, FieldError};
use crate::limits;
use crate::timestamp;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Top-level keys read into named fields of [`Event`]; everything else is
/// kept in `Event::extra`.
const CONSUMED: &[&str] = &[
    "event_id",
    "timestamp",
    "level",
    "message",
    "logentry",
    "exception",
    "stacktrace",
    "platform",
    "server_name",
    "logger",
    "release",
    "dist",
    "environment",
    "user",
    "request",
    "tags",
    "contexts",
    "breadcrumbs",
    "fingerprint",
    "sdk",
];

/// What the caller knows that the payload may not say: when it arrived, the
/// envelope header's event id, and an id to use when neither has one.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    pub received_at: time::OffsetDateTime,
    pub envelope_event_id: Option<&'a str>,
    pub fallback_event_id: &'a str,
}

/// Whether a payload is a transaction (performance data) rather than an
/// error event: older SDKs sent both to the store endpoint.
pub fn is_transaction(obj: &Map<String, Value>) -> bool {
    obj.get("type").and_then(Value::as_str) == Some("transaction")
}

/// Reads raw JSON bytes as a Sentry event.
pub fn parse(payload: &[u8], arrival: Arrival<'_>) -> Result<Event, PayloadError> {
    read(parse_object(payload)?, arrival)
}

/// Reads a Sentry event that is already a JSON object.
pub fn read(obj: Map<String, Value>, arrival: Arrival<'_>) -> Result<Event, PayloadError> {
    let (mut exceptions, synthetic) = read_exceptions(obj.get("exception"))?;
    let mut stacktrace = read_stacktrace(obj.get("stacktrace"), "stacktrace")?;
    // A synthetic exception (what `captureMessage` sends since JavaScript
    // SDK 11, or a thrown non-error) is no exception: the event is a
    // message, and the exception's frames are the message's stack.
    let mut synthetic_value = None;
    if synthetic && exceptions.len() == 1 {
        let only = exceptions.remove(0);
        if stacktrace.is_empty() {
            stacktrace = only.stacktrace;
        }
        synthetic_value = Some(only.value);
    }
    let mut threads_used = false;
    if stacktrace.is_empty() && exceptions.first().is_none_or(|e| e.stacktrace.is_empty()) {
        // `attach_stacktrace` puts a message's stack on the current thread,
        // and some SDKs put an exception's there too.
        if let Some(frames) = thread_frames(&obj)? {
            stacktrace = frames;
            threads_used = true;
        }
    }
    if let Some(first) = exceptions.first_mut() {
        if first.stacktrace.is_empty() && !stacktrace.is_empty() {
            first.stacktrace = std::mem::take(&mut stacktrace);
        }
    }

    let message = match read_message(&obj)? {
        Some(text) => text,
        None => exceptions.first().map(|e| e.value.clone()).or(synthetic_value).unwrap_or_default(),
    };
    let exception_type = exceptions.first().map(|e| e.exception_type.clone()).unwrap_or_default();
    let level = match jr::opt_string(&obj, "level", "")? {
        Some(text) => Level::parse_lenient(&text).unwrap_or(Level::Error),
        None => Level::Error,
    };

    let event_id = match booboo_payload::read_event_id(&obj)? {
        Some(id) => id,
        None => arrival
            .envelope_event_id
            .and_then(normalise_event_id)
            .unwrap_or_else(|| arrival.fallback_event_id.to_string()),
    };
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => arrival.received_at,
        Some(value) => {
            timestamp::parse_value(value).map_err(|problem| FieldError { path: "timestamp".into(), problem })?
        }
    };

    let mut contexts = jr::opt_object(&obj, "contexts", "")?.cloned().unwrap_or_default();
    let mut runtime = read_name_version(&contexts, "runtime", "contexts")?;
    if runtime.is_some() {
        contexts.remove("runtime");
    } else {
        // Contexts are named freely and typed by `type`: the Rust SDK sends
        // its runtime as `rust` with `"type": "runtime"`. It stays among the
        // contexts too, for what else it says (the channel).
        let typed = contexts.iter().find(|(_, v)| v.get("type").and_then(Value::as_str) == Some("runtime"));
        if let Some((key, _)) = typed {
            // Leniently: a malformed one stays a plain context.
            runtime = read_name_version(&contexts, &key.clone(), "contexts").ok().flatten();
        }
    }

    let mut extra: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !CONSUMED.contains(&k.as_str()) && !FIELD_NAMES.contains(&k.as_str()))
        .filter(|(k, _)| !(threads_used && k.as_str() == "threads"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Sentry's own `extra` is an object the application filled; it stays
    // under its name, like every other field the model has no place for.
    if let Some(value) = extra.get("extra") {
        if !matches!(value, Value::Object(_) | Value::Null) {
            return Err(jr::wrong_type("extra", "an object", value).into());
        }
    }
    extra.remove("_meta");

    Ok(Event {
        event_id,
        timestamp: timestamp::format(timestamp),
        level,
        message: jr::truncate(message, limits::MESSAGE_BYTES),
        exception_type: jr::truncate(exception_type, limits::SHORT_TEXT_BYTES),
        exceptions,
        stacktrace,
        environment: short_text(&obj, "environment")?,
        release: short_text(&obj, "release")?,
        dist: short_text(&obj, "dist")?,
        tags: read_sentry_tags(obj.get("tags"))?,
        user: read_user(&obj)?,
        request: jr::opt_object(&obj, "request", "")?.map(|r| read_request(r, "request")).transpose()?,
        sdk: read_name_version(&obj, "sdk", "")?,
        runtime,
        contexts,
        fingerprint: read_fingerprint(obj.get("fingerprint"))?,
        breadcrumbs: read_breadcrumbs(obj.get("breadcrumbs"))?,
        platform: short_text(&obj, "platform")?,
        server_name: short_text(&obj, "server_name")?,
        logger: short_text(&obj, "logger")?,
        logentry: crate::log_entry::read(&obj)?,
        extra,
    })
}

fn short_text(obj: &Map<String, Value>, key: &str) -> Result<String, FieldError> {
    Ok(jr::truncate(jr::string_or_empty(obj, key, "")?, limits::SHORT_TEXT_BYTES))
}

/// The event's own text: `logentry` (formatted if the SDK formatted it),
/// else `message` as a string or as the same kind of object.
fn read_message(obj: &Map<String, Value>) -> Result<Option<String>, PayloadError> {
    for key in ["logentry", "message"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if key == "message" => {
                if !text.is_empty() {
                    return Ok(Some(text.clone()));
                }
            }
            Some(Value::Object(entry)) => {
                let formatted = jr::opt_string(entry, "formatted", key)?.filter(|t| !t.is_empty());
                let raw = jr::opt_string(entry, "message", key)?.filter(|t| !t.is_empty());
                if let Some(text) = formatted.or(raw) {
                    return Ok(Some(text));
                }
            }
            Some(other) => return Err(jr::wrong_type(key, "an object", other).into()),
        }
    }
    Ok(None)
}

/// `exception` is `{"values": [...]}` (or, from old SDKs, the list itself),
/// oldest first; the result is raised-first like the booboo protocol.
/// The flag says whether the raised exception is synthetic
/// (`mechanism.synthetic`).
fn read_exceptions(value: Option<&Value>) -> Result<(Vec<ExceptionEntry>, bool), PayloadError> {
    let (values, path) = match value {
        None | Some(Value::Null) => return Ok((Vec::new(), false)),
        Some(Value::Object(wrapper)) => (jr::opt_array(wrapper, "values", "exception")?, "exception.values"),
        Some(Value::Array(values)) => (values.as_slice(), "exception"),
        Some(other) => return Err(jr::wrong_type("exception", "an object with `values`", other).into()),
    };
    // Keep the most recent ones when a chain is absurdly long.
    let skip = values.len().saturating_sub(limits::CHAIN_LENGTH);
    let mut chain = Vec::with_capacity(values.len() - skip);
    let mut synthetic = false;
    for (i, item) in values.iter().enumerate().skip(skip).rev() {
        let path = jr::index(path, i);
        let Value::Object(entry) = item else {
            return Err(jr::wrong_type(&path, "an object", item).into());
        };
        let mechanism = jr::opt_object(entry, "mechanism", &path)?;
        let mechanism_path = jr::join(&path, "mechanism");
        let (handled, source) = match mechanism {
            Some(m) => (jr::opt_bool(m, "handled", &mechanism_path)?, jr::opt_string(m, "source", &mechanism_path)?),
            None => (None, None),
        };
        let chain_type = if chain.is_empty() {
            if let Some(m) = mechanism {
                // Read leniently: a hint for display is no reason to refuse an event.
                synthetic = m.get("synthetic").and_then(Value::as_bool).unwrap_or(false);
            }
            None
        } else {
            // The SDKs that say how an exception relates to the one it led
            // to name the attribute; others leave it open.
            match source.as_deref() {
                Some("__cause__" | "cause") => Some(ChainType::Cause),
                Some("__context__" | "context") => Some(ChainType::Context),
                _ => None,
            }
        };
        chain.push(ExceptionEntry {
            exception_type: jr::truncate(jr::string_or_empty(entry, "type", &path)?, limits::SHORT_TEXT_BYTES),
            value: jr::truncate(jr::as_text(entry.get("value").unwrap_or(&Value::Null)), limits::MESSAGE_BYTES),
            chain_type,
            stacktrace: read_stacktrace(entry.get("stacktrace"), &jr::join(&path, "stacktrace"))?,
            module: jr::opt_string(entry, "module", &path)?,
            handled,
        });
    }
    Ok((chain, synthetic))
}

/// A Sentry stack trace: `{"frames": [...]}`, oldest call first.
fn read_stacktrace(value: Option<&Value>, path: &str) -> Result<Vec<Frame>, PayloadError> {
    let frames = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(st)) => jr::opt_array(st, "frames", path)?,
        Some(other) => return Err(jr::wrong_type(path, "an object with `frames`", other).into()),
    };
    booboo_payload::read_frames(frames, &jr::join(path, "frames"))
}

/// The frames of the thread that crashed, else the current one, when the
/// event has exactly one thread with a stack (what `attach_stacktrace`
/// sends). Several threads stay in `extra` as they came.
fn thread_frames(obj: &Map<String, Value>) -> Result<Option<Vec<Frame>>, PayloadError> {
    let threads = match obj.get("threads") {
        Some(Value::Object(wrapper)) => jr::opt_array(wrapper, "values", "threads")?,
        Some(Value::Array(values)) => values.as_slice(),
        _ => return Ok(None),
    };
    let with_stack: Vec<(usize, &Map<String, Value>)> = threads
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.as_object().map(|t| (i, t)))
        .filter(|(_, t)| t.get("stacktrace").is_some_and(|s| !s.is_null()))
        .collect();
    match with_stack.as_slice() {
        [(i, thread)] => {
            Ok(Some(read_stacktrace(thread.get("stacktrace"), &jr::join(&jr::index("threads", *i), "stacktrace"))?))
        }
        _ => Ok(None),
    }
}

/// Tags as an object, or as a list of `[key, value]` pairs.
fn read_sentry_tags(value: Option<&Value>) -> Result<BTreeMap<String, String>, PayloadError> {
    let Some(Value::Array(pairs)) = value else {
        return read_tags(value, "tags");
    };
    let mut tags = BTreeMap::new();
    for (i, pair) in pairs.iter().enumerate().take(limits::TAGS) {
        match pair.as_array().map(Vec::as_slice) {
            Some([Value::String(k), v]) if !matches!(v, Value::Object(_) | Value::Array(_)) => {
                tags.insert(jr::truncate(k.clone(), 200), jr::truncate(jr::as_text(v), limits::TAG_VALUE_BYTES));
            }
            _ => return Err(jr::wrong_type(&jr::index("tags", i), "a [key, value] pair of strings", pair).into()),
        }
    }
    Ok(tags)
}

/// The user, without the `{{auto}}` placeholder browser SDKs send to ask the
/// server to fill in the client's address.
fn read_user(obj: &Map<String, Value>) -> Result<Option<Map<String, Value>>, PayloadError> {
    let Some(user) = jr::opt_object(obj, "user", "")? else {
        return Ok(None);
    };
    let mut user = user.clone();
    if user.get("ip_address").and_then(Value::as_str) == Some("{{auto}}") {
        user.remove("ip_address");
    }
    user.retain(|_, v| !v.is_null());
    Ok((!user.is_empty()).then_some(user))
}

fn read_fingerprint(value: Option<&Value>) -> Result<Option<Vec<String>>, PayloadError> {
    let parts = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(parts)) => parts,
        Some(other) => return Err(jr::wrong_type("fingerprint", "a list of strings", other).into()),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        if matches!(part, Value::Object(_) | Value::Array(_)) {
            return Err(jr::wrong_type(&jr::index("fingerprint", i), "a string", part).into());
        }
        out.push(jr::truncate(jr::as_text(part), limits::SHORT_TEXT_BYTES));
    }
    Ok((!out.is_empty()).then_some(out))
}

/// Breadcrumbs with numeric timestamps (JavaScript sends seconds as a float)
/// written as RFC 3339 like every other time booboo shows. `limits::apply`
/// keeps the most recent when there are too many.
fn read_breadcrumbs(value: Option<&Value>) -> Result<Vec<Value>, PayloadError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.as_slice(),
        Some(Value::Object(wrapper)) => jr::opt_array(wrapper, "values", "breadcrumbs")?,
        Some(other) => return Err(jr::wrong_type("breadcrumbs", "an object with `values`", other).into()),
    };
    Ok(items
        .iter()
        .cloned()
        .map(|mut crumb| {
            if let Value::Object(fields) = &mut crumb {
                if let Some(ts @ Value::Number(_)) = fields.get_mut("timestamp") {
                    if let Ok(t) = timestamp::parse_value(ts) {
                        *ts = Value::String(timestamp::format(t));
                    }
                }
            }
            crumb
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn arrival() -> Arrival<'static> {
        Arrival {
            received_at: time::OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap(),
            envelope_event_id: None,
            fallback_event_id: "0123456789abcdef0123456789abcdef",
        }
    }

    fn read_json(value: Value) -> Result<Event, PayloadError> {
        read(value.as_object().unwrap().clone(), arrival())
    }

    #[test]
    fn the_chain_is_turned_raised_first() {
        let event = read_json(json!({"exception": {"values": [
            {"type": "KeyError", "value": "'x'", "mechanism": {"type": "chained", "source": "__context__"}},
            {"type": "ValueError", "value": "bad", "mechanism": {"type": "generic", "handled": false},
             "stacktrace": {"frames": [{"filename": "app.py", "abs_path": "/srv/app.py", "function": "f", "lineno": 3}]}}
        ]}}))
        .unwrap();
        assert_eq!(event.exception_type, "ValueError");
        assert_eq!(event.message, "bad");
        assert_eq!(event.exceptions[0].handled, Some(false));
        assert_eq!(event.exceptions[0].chain_type, None);
        assert_eq!(event.exceptions[0].stacktrace[0].filename, "/srv/app.py");
        assert_eq!(event.exceptions[1].exception_type, "KeyError");
        assert_eq!(event.exceptions[1].chain_type, Some(ChainType::Context));
        assert_eq!(event.level, Level::Error);
    }

    #[test]
    fn messages_come_from_logentry_or_message() {
        let e = read_json(json!({"logentry": {"message": "a %s", "params": ["b"], "formatted": "a b"}})).unwrap();
        assert_eq!(e.message, "a b");
        let e = read_json(json!({"message": "plain", "level": "warning"})).unwrap();
        assert_eq!((e.message.as_str(), e.level), ("plain", Level::Warning));
        let e = read_json(json!({"message": {"message": "old style"}})).unwrap();
        assert_eq!(e.message, "old style");
        assert!(read_json(json!({"message": 5})).unwrap_err().to_string().contains("`message`"));
    }

    #[test]
    fn tags_as_pairs_and_ids_with_dashes() {
        let e = read_json(json!({
            "event_id": "9EC79C33-EC99-42AB-8353-589FCB2E04DC",
            "tags": [["browser", "Firefox"], ["count", 3]]
        }))
        .unwrap();
        assert_eq!(e.event_id, "9ec79c33ec9942ab8353589fcb2e04dc");
        assert_eq!(e.tags["browser"], "Firefox");
        assert_eq!(e.tags["count"], "3");
        let err = read_json(json!({"tags": [["a"]]})).unwrap_err();
        assert!(err.to_string().contains("tags[0]"), "{err}");
    }

    #[test]
    fn the_envelope_event_id_stands_in_for_a_missing_one() {
        let mut a = arrival();
        a.envelope_event_id = Some("9ec79c33ec9942ab8353589fcb2e04dc");
        let e = read(Map::new(), a).unwrap();
        assert_eq!(e.event_id, "9ec79c33ec9942ab8353589fcb2e04dc");
        assert_eq!(e.timestamp, "2026-01-01T00:00:00Z");
    }

    #[test]
    fn scalar_vars_become_text_and_containers_stay_structured() {
        let e = read_json(json!({"stacktrace": {"frames": [{"function": "f", "vars": {
            "s": "'x'", "n": 3, "d": {"a": "1"}, "none": null
        }}]}}))
        .unwrap();
        let e = crate::process(e).event;
        let vars = &e.stacktrace[0].vars;
        assert_eq!(vars["s"], "'x'");
        assert_eq!(vars["n"], "3");
        assert_eq!(vars["d"], json!({"a": "1"}));
        assert_eq!(vars["none"], "");
    }

    #[test]
    fn contexts_user_and_unknown_fields() {
        let e = read_json(json!({
            "contexts": {"runtime": {"name": "CPython", "version": "3.12.1"}, "os": {"name": "Linux"}},
            "user": {"id": 42, "ip_address": "{{auto}}"},
            "sdk": {"name": "sentry.python", "version": "2.0.0", "integrations": ["flask"]},
            "extra": {"order": 7},
            "modules": {"flask": "3.1.0"},
            "exceptions": "not sentry's; would collide with the model"
        }))
        .unwrap();
        assert_eq!(e.runtime.unwrap().name, "CPython");
        assert_eq!(e.contexts["os"]["name"], "Linux");
        assert!(!e.contexts.contains_key("runtime"));
        assert_eq!(e.user.unwrap(), json!({"id": 42}).as_object().unwrap().clone());
        assert_eq!(e.sdk.unwrap().version, "2.0.0");
        assert_eq!(e.extra["extra"]["order"], 7);
        assert_eq!(e.extra["modules"]["flask"], "3.1.0");
        assert!(!e.extra.contains_key("exceptions"));
    }

    #[test]
    fn breadcrumb_times_become_rfc3339() {
        let e = read_json(json!({"breadcrumbs": {"values": [
            {"timestamp": 1767225600.5, "category": "console", "message": "hi"},
            {"timestamp": "2026-01-01T00:00:01Z", "message": "kept"}
        ]}}))
        .unwrap();
        assert_eq!(e.breadcrumbs[0]["timestamp"], "2026-01-01T00:00:00.5Z");
        assert_eq!(e.breadcrumbs[1]["timestamp"], "2026-01-01T00:00:01Z");
    }

    #[test]
    fn a_single_thread_stack_stands_for_a_message_stack() {
        let e = read_json(json!({"message": "m", "threads": {"values": [
            {"id": 1, "current": true, "stacktrace": {"frames": [{"function": "main", "filename": "a.py"}]}}
        ]}}))
        .unwrap();
        assert_eq!(e.stacktrace[0].function, "main");
        assert!(!e.extra.contains_key("threads"));
    }

    #[test]
    fn a_synthetic_exception_is_a_message_with_its_stack() {
        let e = read_json(json!({"message": "browser message", "level": "info", "exception": {"values": [
            {"value": "browser message", "mechanism": {"type": "generic", "handled": true, "synthetic": true},
             "stacktrace": {"frames": [{"function": "?", "filename": "https://a.example/app.js", "in_app": true}]}}
        ]}}))
        .unwrap();
        assert!(e.exceptions.is_empty());
        assert_eq!(e.exception_type, "");
        assert_eq!(e.message, "browser message");
        assert_eq!(e.stacktrace[0].filename, "https://a.example/app.js");
        // Without a top-level message, the synthetic value is the message.
        let e = read_json(json!({"exception": {"values": [
            {"type": "Error", "value": "Object captured as exception", "mechanism": {"synthetic": true}}
        ]}}))
        .unwrap();
        assert_eq!((e.message.as_str(), e.exception_type.as_str()), ("Object captured as exception", ""));
    }

    #[test]
    fn a_single_thread_stack_stands_for_an_exception_stack() {
        let e = read_json(json!({"exception": {"values": [{"type": "E", "value": "v"}]}, "threads": {"values": [
            {"id": 1, "crashed": true, "stacktrace": {"frames": [{"function": "work", "filename": "w.rs"}]}}
        ]}}))
        .unwrap();
        assert_eq!(e.exceptions[0].stacktrace[0].function, "work");
        assert!(e.stacktrace.is_empty());
        assert!(!e.extra.contains_key("threads"));
    }

    #[test]
    fn the_runtime_comes_from_any_context_typed_runtime() {
        let e = read_json(json!({"contexts": {
            "rust": {"type": "runtime", "name": "rustc", "version": "1.95.0", "channel": "stable"}
        }}))
        .unwrap();
        let runtime = e.runtime.unwrap();
        assert_eq!((runtime.name.as_str(), runtime.version.as_str()), ("rustc", "1.95.0"));
        assert_eq!(e.contexts["rust"]["channel"], "stable");
    }

    #[test]
    fn wrong_types_name_their_path() {
        let err = read_json(json!({"exception": {"values": [{"type": "E", "stacktrace": {"frames": [
            {"function": "f", "lineno": "7"}
        ]}}]}}))
        .unwrap_err();
        assert!(err.to_string().contains("exception.values[0].stacktrace.frames[0].lineno"), "{err}");
        let err = read_json(json!({"timestamp": "yesterday"})).unwrap_err();
        assert!(err.to_string().contains("timestamp"), "{err}");
        assert_eq!(parse(b"{\"message\": \"\xff\"}", arrival()).unwrap_err().reason(), "invalid_json");
    }
}
