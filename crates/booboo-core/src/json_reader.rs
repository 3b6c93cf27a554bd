//! Typed reads out of untrusted JSON that say *where* a value was wrong.
//!
//! Every parser reads through these so that a 422 always names the field's
//! path (`exceptions[1].stacktrace[0].lineno`) and the type it expected.

use serde_json::{Map, Value};
use std::fmt;

/// A field that is present but not of the type the protocol promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}` {}", self.path, self.problem)
    }
}

pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub fn wrong_type(path: &str, expected: &str, found: &Value) -> FieldError {
    FieldError { path: path.to_string(), problem: format!("must be {expected}, got {}", kind_of(found)) }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Cuts a string to at most `max` bytes on a character boundary, the last
/// of them a `…` that says something was cut.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max.saturating_sub('…'.len_utf8());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// An optional string: absent or null gives `None`.
pub fn opt_string(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(&join(path, key), "a string", other)),
    }
}

pub fn string_or_empty(obj: &Map<String, Value>, key: &str, path: &str) -> Result<String, FieldError> {
    Ok(opt_string(obj, key, path)?.unwrap_or_default())
}

pub fn opt_bool(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(&join(path, key), "true or false", other)),
    }
}

pub fn opt_object<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(wrong_type(&join(path, key), "an object", other)),
    }
}

pub fn opt_array<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a [Value], FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(wrong_type(&join(path, key), "a list", other)),
    }
}

/// A line number: integers only; zero, negative or absurd values mean
/// "unknown" rather than a rejected event.
pub fn opt_lineno(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u32>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(u32::try_from(i).ok().filter(|&l| l > 0))
            } else if n.as_u64().is_some() {
                Ok(None)
            } else {
                Err(FieldError { path: join(path, key), problem: "must be a whole number".into() })
            }
        }
        Some(other) => Err(wrong_type(&join(path, key), "an integer", other)),
    }
}

/// A list of strings; non-string entries are a type error.
pub fn string_list(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Vec<String>, FieldError> {
    let path = join(path, key);
    opt_array(obj, key, "")
        .map_err(|e| FieldError { path: path.clone(), problem: e.problem })?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Null => Ok(String::new()),
            other => Err(wrong_type(&index(&path, i), "a string", other)),
        })
        .collect()
}

/// Text for a value the client meant as text: strings as they are, numbers
/// and booleans written out, anything else as compact JSON.
pub fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
