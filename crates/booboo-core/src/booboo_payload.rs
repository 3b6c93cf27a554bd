//! Reads a body of the booboo protocol (version 1) into a handshake or an
//! [`Event`]. See `docs/protocol.md`.
//!
//! Lenient where leniency loses nothing (missing fields take defaults, odd
//! level spellings are mapped), strict where a type is wrong (422 naming the
//! path), and unknown fields are kept in `Event::extra`.

use crate::event::{ChainType, Event, ExceptionEntry, Frame, Level, NameVersion, Request, FIELD_NAMES};
use crate::json_reader::{self as jr, FieldError};
use crate::limits;
use crate::timestamp;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// What a body turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Handshake { sdk: String },
    Event(Box<Event>),
}

/// Why a body is not a payload. Each variant maps to one status and one
/// counted rejection reason at the server's edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// Not parseable as JSON (includes invalid UTF-8 and absurd nesting).
    NotJson(String),
    /// Valid JSON, but not an object.
    NotObject(&'static str),
    /// An object whose field has the wrong type or an impossible value.
    Field(FieldError),
    /// An object that carries nothing an event needs.
    NotAnEvent,
}

impl PayloadError {
    /// A stable name for counting rejections.
    pub fn reason(&self) -> &'static str {
        match self {
            PayloadError::NotJson(_) => "invalid_json",
            PayloadError::NotObject(_) => "not_an_object",
            PayloadError::Field(_) => "invalid_field",
            PayloadError::NotAnEvent => "not_an_event",
        }
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::NotJson(why) => write!(f, "body is not valid JSON: {why}"),
            PayloadError::NotObject(kind) => write!(f, "body must be a JSON object, got {kind}"),
            PayloadError::Field(e) => write!(f, "{e}"),
            PayloadError::NotAnEvent => write!(
                f,
                "body is neither a handshake nor an event: an event needs `exception_type`, `message` or `exceptions`"
            ),
        }
    }
}

impl From<FieldError> for PayloadError {
    fn from(e: FieldError) -> Self {
        PayloadError::Field(e)
    }
}

/// Parses raw JSON bytes into a JSON object, with the protocol's errors.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, PayloadError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(PayloadError::NotObject(jr::kind_of(&other))),
    }
}

/// Reads one booboo body. `received_at` stands in for a missing timestamp
/// and `fallback_event_id` for a missing event id (the core has no clock and
/// no randomness of its own).
pub fn parse(body: &[u8], received_at: time::OffsetDateTime, fallback_event_id: &str) -> Result<Payload, PayloadError> {
    let obj = parse_object(body)?;
    if let Some(flag) = jr::opt_bool(&obj, "handshake", "")? {
        if flag {
            let sdk = jr::opt_string(&obj, "sdk", "")?.unwrap_or_default();
            return Ok(Payload::Handshake { sdk: jr::truncate(sdk, 200) });
        }
    }
    read_event(obj, received_at, fallback_event_id).map(|e| Payload::Event(Box::new(e)))
}

const KNOWN_FIELDS: &[&str] = &[
    "event_id",
    "timestamp",
    "level",
    "message",
    "exception_type",
    "exceptions",
    "stacktrace",
    "environment",
    "release",
    "dist",
    "tags",
    "context",
    "request",
    "fingerprint",
    "breadcrumbs",
    "platform",
    "server_name",
    "logger",
    "handshake",
    "logentry",
    "handled",
];

fn read_event(
    obj: Map<String, Value>,
    received_at: time::OffsetDateTime,
    fallback_event_id: &str,
) -> Result<Event, PayloadError> {
    let message = jr::string_or_empty(&obj, "message", "")?;
    let exception_type = jr::string_or_empty(&obj, "exception_type", "")?;
    let top_frames = read_frames(jr::opt_array(&obj, "stacktrace", "")?, "stacktrace")?;
    let mut exceptions = read_chain(jr::opt_array(&obj, "exceptions", "")?)?;
    if !obj.contains_key("message") && !obj.contains_key("exception_type") && exceptions.is_empty() {
        return Err(PayloadError::NotAnEvent);
    }

    let mut stacktrace = Vec::new();
    if exceptions.is_empty() && !exception_type.is_empty() {
        exceptions.push(ExceptionEntry {
            exception_type: exception_type.clone(),
            value: message.clone(),
            chain_type: None,
            stacktrace: top_frames,
            module: None,
            handled: None,
        });
    } else if let Some(first) = exceptions.first_mut() {
        // The protocol sends the raised exception's frames twice; keep one copy.
        if first.stacktrace.is_empty() {
            first.stacktrace = top_frames;
        }
    } else {
        stacktrace = top_frames;
    }

    // Whether the application caught the exception itself (a logged or
    // explicitly captured one) or it escaped to a hook or a framework.
    if let Some(handled) = jr::opt_bool(&obj, "handled", "")? {
        if let Some(first) = exceptions.first_mut() {
            first.handled = Some(handled);
        }
    }

    let level = match jr::opt_string(&obj, "level", "")? {
        Some(text) => Level::parse_lenient(&text).unwrap_or(Level::Error),
        None if exception_type.is_empty() && exceptions.is_empty() => Level::Info,
        None => Level::Error,
    };

    let event_id = read_event_id(&obj)?.unwrap_or_else(|| fallback_event_id.to_string());
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => received_at,
        Some(value) => {
            timestamp::parse_value(value).map_err(|problem| FieldError { path: "timestamp".into(), problem })?
        }
    };

    let (user, sdk, runtime, contexts) = read_context(jr::opt_object(&obj, "context", "")?)?;
    let tags = read_tags(obj.get("tags"), "tags")?;
    let request = jr::opt_object(&obj, "request", "")?.map(|r| read_request(r, "request")).transpose()?;
    let fingerprint = match obj.get("fingerprint") {
        None | Some(Value::Null) => None,
        Some(_) => Some(jr::string_list(&obj, "fingerprint", "")?),
    };
    let breadcrumbs = match obj.get("breadcrumbs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Object(wrapper)) => match wrapper.get("values") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        },
        Some(other) => return Err(jr::wrong_type("breadcrumbs", "a list", other).into()),
    };

    // A stray top-level `user` or `sdk` would collide with the named field of
    // the same name when the event is serialised, so those stay out too.
    let extra: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !KNOWN_FIELDS.contains(&k.as_str()) && !FIELD_NAMES.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    Ok(Event {
        event_id,
        timestamp: timestamp::format(timestamp),
        level,
        message: jr::truncate(message, limits::MESSAGE_BYTES),
        exception_type: jr::truncate(exception_type, limits::SHORT_TEXT_BYTES),
        exceptions,
        stacktrace,
        environment: jr::truncate(jr::string_or_empty(&obj, "environment", "")?, limits::SHORT_TEXT_BYTES),
        release: jr::truncate(jr::string_or_empty(&obj, "release", "")?, limits::SHORT_TEXT_BYTES),
        dist: jr::truncate(jr::string_or_empty(&obj, "dist", "")?, limits::SHORT_TEXT_BYTES),
        tags,
        user,
        request,
        sdk,
        runtime,
        contexts,
        fingerprint,
        breadcrumbs,
        platform: jr::string_or_empty(&obj, "platform", "")?,
        server_name: jr::string_or_empty(&obj, "server_name", "")?,
        logger: jr::truncate(jr::string_or_empty(&obj, "logger", "")?, limits::SHORT_TEXT_BYTES),
        logentry: crate::log_entry::read(&obj)?,
        extra,
    })
}

/// The client's `event_id`, normalised; a malformed one is a 422, since a
/// retry could not be recognised by it.
pub(crate) fn read_event_id(obj: &Map<String, Value>) -> Result<Option<String>, FieldError> {
    jr::opt_string(obj, "event_id", "")?
        .map(|raw| {
            normalise_event_id(&raw).ok_or_else(|| FieldError {
                path: "event_id".into(),
                problem: "must be 32 hexadecimal characters (a UUID with or without dashes)".into(),
            })
        })
        .transpose()
}

/// Lowercase 32-hex form of an event id given with or without dashes.
pub fn normalise_event_id(raw: &str) -> Option<String> {
    let hex: String = raw.chars().filter(|c| *c != '-').collect::<String>().to_ascii_lowercase();
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

fn read_chain(items: &[Value]) -> Result<Vec<ExceptionEntry>, PayloadError> {
    let mut chain = Vec::with_capacity(items.len().min(limits::CHAIN_LENGTH));
    for (i, item) in items.iter().enumerate().take(limits::CHAIN_LENGTH) {
        let path = jr::index("exceptions", i);
        let Value::Object(entry) = item else {
            return Err(jr::wrong_type(&path, "an object", item).into());
        };
        let chain_type = match jr::opt_string(entry, "chain_type", &path)?.as_deref() {
            None | Some("") => None,
            Some("cause") => Some(ChainType::Cause),
            Some("context") => Some(ChainType::Context),
            Some(_) => {
                return Err(FieldError {
                    path: jr::join(&path, "chain_type"),
                    problem: "must be \"cause\", \"context\" or null".into(),
                }
                .into())
            }
        };
        let frames_path = jr::join(&path, "stacktrace");
        chain.push(ExceptionEntry {
            exception_type: jr::truncate(jr::string_or_empty(entry, "type", &path)?, limits::SHORT_TEXT_BYTES),
            value: jr::truncate(jr::string_or_empty(entry, "value", &path)?, limits::MESSAGE_BYTES),
            chain_type,
            stacktrace: read_frames(jr::opt_array(entry, "stacktrace", &path)?, &frames_path)?,
            module: None,
            handled: None,
        });
    }
    Ok(chain)
}

/// Frames as both protocols write them, oldest call first. Shared with the
/// Sentry parser so that one crash reads the same whichever SDK sent it.
pub(crate) fn read_frames(items: &[Value], path: &str) -> Result<Vec<Frame>, PayloadError> {
    let mut frames = Vec::with_capacity(items.len().min(limits::FRAMES));
    for (i, item) in items.iter().enumerate() {
        let path = jr::index(path, i);
        let Value::Object(frame) = item else {
            return Err(jr::wrong_type(&path, "an object", item).into());
        };
        frames.push(read_frame(frame, &path)?);
    }
    Ok(limits::keep_ends(frames, limits::FRAMES))
}

fn read_frame(frame: &Map<String, Value>, path: &str) -> Result<Frame, PayloadError> {
    // Grouping reads the file from `Frame::filename`. Our protocol puts the
    // absolute path there; Sentry's puts it in `abs_path` and a relative one
    // in `filename`, so the absolute path wins wherever it is.
    let abs_path = jr::opt_string(frame, "abs_path", path)?.filter(|p| !p.is_empty());
    let filename = match abs_path {
        Some(p) => p,
        None => jr::string_or_empty(frame, "filename", path)?,
    };
    // Kept as sent: scrubbing walks nested values, then `limits::apply`
    // bounds them and turns them into text.
    let vars = jr::opt_object(frame, "vars", path)?.cloned().unwrap_or_default();
    Ok(Frame {
        filename: jr::truncate(filename, limits::SHORT_TEXT_BYTES),
        module: jr::opt_string(frame, "module", path)?.map(|m| jr::truncate(m, limits::SHORT_TEXT_BYTES)),
        function: jr::truncate(jr::string_or_empty(frame, "function", path)?, limits::SHORT_TEXT_BYTES),
        lineno: jr::opt_lineno(frame, "lineno", path)?,
        colno: jr::opt_lineno(frame, "colno", path)?,
        context_line: jr::opt_string(frame, "context_line", path)?.map(|l| jr::truncate(l, limits::SOURCE_LINE_BYTES)),
        pre_context: jr::string_list(frame, "pre_context", path)?,
        post_context: jr::string_list(frame, "post_context", path)?,
        vars,
        in_app: jr::opt_bool(frame, "in_app", path)?.unwrap_or(false),
    })
}

type ContextParts = (Option<Map<String, Value>>, Option<NameVersion>, Option<NameVersion>, Map<String, Value>);

fn read_context(context: Option<&Map<String, Value>>) -> Result<ContextParts, PayloadError> {
    let Some(context) = context else {
        return Ok((None, None, None, Map::new()));
    };
    let user = jr::opt_object(context, "user", "context")?.cloned();
    let sdk = read_name_version(context, "sdk", "context")?;
    let runtime = read_name_version(context, "runtime", "context")?;
    let rest = context
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "user" | "sdk" | "runtime"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok((user, sdk, runtime, rest))
}

pub(crate) fn read_name_version(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<NameVersion>, PayloadError> {
    let path = jr::join(path, key);
    Ok(jr::opt_object(obj, key, "")
        .map_err(|e| FieldError { path: path.clone(), problem: e.problem })?
        .map(|nv| -> Result<NameVersion, FieldError> {
            Ok(NameVersion {
                name: jr::string_or_empty(nv, "name", &path)?,
                version: jr::as_text(nv.get("version").unwrap_or(&Value::Null)),
            })
        })
        .transpose()?)
}

/// Tags as string → string. Scalars are written out; a nested object or list
/// as a tag value is a client bug worth a clear 422.
pub(crate) fn read_tags(value: Option<&Value>, path: &str) -> Result<BTreeMap<String, String>, PayloadError> {
    let mut tags = BTreeMap::new();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map.iter().take(limits::TAGS) {
                if matches!(v, Value::Object(_) | Value::Array(_)) {
                    return Err(jr::wrong_type(&jr::join(path, k), "a string", v).into());
                }
                tags.insert(jr::truncate(k.clone(), 200), jr::truncate(jr::as_text(v), limits::TAG_VALUE_BYTES));
            }
        }
        Some(other) => return Err(jr::wrong_type(path, "an object of strings", other).into()),
    }
    Ok(tags)
}

pub(crate) fn read_request(req: &Map<String, Value>, path: &str) -> Result<Request, PayloadError> {
    let mut headers = BTreeMap::new();
    match req.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                headers.insert(k.clone(), jr::truncate(jr::as_text(v), limits::VAR_BYTES));
            }
        }
        // Sentry sends headers as a list of [name, value] pairs too.
        Some(Value::Array(pairs)) => {
            for (i, pair) in pairs.iter().enumerate() {
                match pair.as_array().map(Vec::as_slice) {
                    Some([Value::String(k), v]) => {
                        headers.insert(k.clone(), jr::truncate(jr::as_text(v), limits::VAR_BYTES));
                    }
                    _ => {
                        return Err(jr::wrong_type(
                            &jr::index(&jr::join(path, "headers"), i),
                            "a [name, value] pair",
                            pair,
                        )
                        .into())
                    }
                }
            }
        }
        Some(other) => return Err(jr::wrong_type(&jr::join(path, "headers"), "an object", other).into()),
    }
    let query_string = match req.get("query_string") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        // Sentry sends an object or a list of pairs.
        Some(Value::Object(map)) => {
            map.iter().map(|(k, v)| format!("{k}={}", jr::as_text(v))).collect::<Vec<_>>().join("&")
        }
        Some(Value::Array(pairs)) => pairs
            .iter()
            .filter_map(|p| p.as_array())
            .filter(|p| p.len() == 2)
            .map(|p| format!("{}={}", jr::as_text(&p[0]), jr::as_text(&p[1])))
            .collect::<Vec<_>>()
            .join("&"),
        Some(other) => return Err(jr::wrong_type(&jr::join(path, "query_string"), "a string", other).into()),
    };
    Ok(Request {
        method: jr::string_or_empty(req, "method", path)?.to_ascii_uppercase(),
        url: jr::truncate(jr::string_or_empty(req, "url", path)?, limits::MESSAGE_BYTES),
        headers,
        query_string: jr::truncate(query_string, limits::MESSAGE_BYTES),
        data: req.get("data").filter(|d| !d.is_null()).cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    fn parse_str(s: &str) -> Result<Payload, PayloadError> {
        parse(s.as_bytes(), now(), "0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn handshake_is_recognised() {
        assert_eq!(
            parse_str(r#"{"handshake": true, "sdk": "python/0.16.0"}"#).unwrap(),
            Payload::Handshake { sdk: "python/0.16.0".into() }
        );
    }

    #[test]
    fn wrong_type_names_the_path() {
        let err = parse_str(
            r#"{"message":"x","exception_type":"E","exceptions":[{"type":"E","value":"x","chain_type":null,
            "stacktrace":[{"filename":"a.py","function":"f","lineno":"7"}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.reason(), "invalid_field");
        assert!(err.to_string().contains("exceptions[0].stacktrace[0].lineno"), "{err}");
    }

    #[test]
    fn negative_lineno_becomes_unknown() {
        let Payload::Event(e) = parse_str(
            r#"{"message":"x","exception_type":"E","stacktrace":[{"filename":"a.py","function":"f","lineno":-1}]}"#,
        )
        .unwrap() else {
            panic!("not an event")
        };
        assert_eq!(e.exceptions[0].stacktrace[0].lineno, None);
    }

    #[test]
    fn not_an_object_and_not_json_are_distinguished() {
        assert_eq!(parse_str("[1,2]").unwrap_err().reason(), "not_an_object");
        assert_eq!(parse_str("{nope").unwrap_err().reason(), "invalid_json");
        assert_eq!(parse(b"{\"message\": \"\xff\"}", now(), "x").unwrap_err().reason(), "invalid_json");
        assert_eq!(parse_str("{}").unwrap_err().reason(), "not_an_event");
    }

    #[test]
    fn absurd_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let body = format!(r#"{{"message":"x","extra":{deep}}}"#);
        assert_eq!(parse_str(&body).unwrap_err().reason(), "invalid_json");
    }

    #[test]
    fn unknown_fields_are_kept() {
        let Payload::Event(e) = parse_str(r#"{"message":"x","exception_type":"E","shiny_new_field":{"a":1}}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(e.extra["shiny_new_field"]["a"], 1);
    }

    #[test]
    fn event_id_with_dashes_is_normalised_and_bad_ones_rejected() {
        let Payload::Event(e) = parse_str(r#"{"message":"x","event_id":"0AF7651916CD43DD8448EB211C80319C"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(e.event_id, "0af7651916cd43dd8448eb211c80319c");
        let err = parse_str(r#"{"message":"x","event_id":"nope"}"#).unwrap_err();
        assert!(err.to_string().contains("event_id"));
    }

    #[test]
    fn log_records_and_handled_are_read() {
        let Payload::Event(e) = parse_str(
            r#"{"message":"card declined","exception_type":"PaymentError","handled":true,"logger":"shop",
            "logentry":{"message":"payment for %s failed","params":["order 7"],"formatted":"payment for order 7 failed"}}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(e.exceptions[0].handled, Some(true));
        assert_eq!(e.logger, "shop");
        let log = e.logentry.unwrap();
        assert_eq!(
            (log.template.as_str(), log.formatted.as_str()),
            ("payment for %s failed", "payment for order 7 failed")
        );
        assert!(!e.extra.contains_key("handled") && !e.extra.contains_key("logentry"));
        let err = parse_str(r#"{"message":"x","handled":"yes"}"#).unwrap_err();
        assert!(err.to_string().contains("handled"), "{err}");
    }
}
