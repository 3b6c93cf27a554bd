//! The normalised event: what every parser produces and what the store keeps.
//!
//! The chain lists the raised exception first; frames are oldest call first.
//! Fields a client sent that we do not model live in `extra`, so nothing a
//! client sent is lost when the event is stored.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 32 lowercase hex characters.
    pub event_id: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub level: Level,
    pub message: String,
    /// Empty for a message event.
    pub exception_type: String,
    /// The raised exception first, then what it came from.
    #[serde(default)]
    pub exceptions: Vec<ExceptionEntry>,
    /// Frames of a message event that carries a stack but no exception.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stacktrace: Vec<Frame>,
    #[serde(default)]
    pub environment: String,
    #[serde(default)]
    pub release: String,
    /// A build of a release (Sentry's `dist`), e.g. a mobile build number.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dist: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk: Option<NameVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<NameVersion>,
    /// Other named contexts (`set_context` in the SDK).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub contexts: Map<String, Value>,
    /// The client's own grouping, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breadcrumbs: Vec<Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub platform: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub logger: String,
    /// The log record an event came from: its template and arguments, as
    /// both Sentry's `logentry` and the booboo protocol's carry them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logentry: Option<LogEntry>,
    /// Everything the client sent that is not modelled above, kept at the
    /// top level where the client put it.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The keys `Event` serialises as named fields. A parser must not put these
/// into `extra`, or the stored JSON would carry a key twice.
pub const FIELD_NAMES: &[&str] = &[
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
    "user",
    "request",
    "sdk",
    "runtime",
    "contexts",
    "fingerprint",
    "breadcrumbs",
    "platform",
    "server_name",
    "logger",
    "logentry",
];

impl Event {
    /// Frames of the raised exception, or of the message event.
    pub fn raised_frames(&self) -> &[Frame] {
        match self.exceptions.first() {
            Some(first) if !first.stacktrace.is_empty() => &first.stacktrace,
            _ => &self.stacktrace,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Fatal,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Reads a level leniently: clients spell them many ways, and an odd
    /// spelling is no reason to lose a crash report.
    pub fn parse_lenient(text: &str) -> Option<Level> {
        match text.trim().to_ascii_lowercase().as_str() {
            "debug" | "trace" => Some(Level::Debug),
            "info" | "information" | "log" | "notice" => Some(Level::Info),
            "warning" | "warn" => Some(Level::Warning),
            "error" | "err" | "exception" => Some(Level::Error),
            "fatal" | "critical" | "crit" | "emergency" | "alert" => Some(Level::Fatal),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionEntry {
    #[serde(rename = "type")]
    pub exception_type: String,
    pub value: String,
    /// `None` for the raised exception, `Cause` or `Context` for the others.
    pub chain_type: Option<ChainType>,
    #[serde(default)]
    pub stacktrace: Vec<Frame>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Whether the application handled it (Sentry's `mechanism.handled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainType {
    Cause,
    Context,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Frame {
    pub filename: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    pub function: String,
    /// `None` when the client sent none or a nonsensical one (0, -1).
    pub lineno: Option<u32>,
    /// The column, for languages that report one (JavaScript).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colno: Option<u32>,
    #[serde(default)]
    pub context_line: Option<String>,
    #[serde(default)]
    pub pre_context: Vec<String>,
    #[serde(default)]
    pub post_context: Vec<String>,
    /// Local name → its text as the client rendered it.
    #[serde(default)]
    pub vars: Map<String, Value>,
    pub in_app: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub query_string: String,
    /// The request's body as the client sent it (Sentry's `data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// A log record's message before formatting. Grouping uses the template, so
/// `"timed out after %ss"` is one issue whatever the number.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LogEntry {
    /// The message template (Python's `record.msg`), e.g. `"timed out after %ss"`.
    /// Named `message` in JSON, as on the wire (Sentry's name).
    #[serde(rename = "message")]
    pub template: String,
    /// The arguments, as the client rendered them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Value>,
    /// The formatted message, when the client sent one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub formatted: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NameVersion {
    pub name: String,
    pub version: String,
}
