//! Reads `logentry`, the log record behind an event, the same way for both
//! wire formats: Sentry's (`{"message": template, "params": [...],
//! "formatted": text}`) and the booboo protocol's, which borrows its shape.
//! One reader means a log event groups by its template whichever SDK sent it.

use crate::event::LogEntry;
use crate::json_reader::{self as jr, FieldError};
use crate::limits;
use serde_json::{Map, Value};

/// Arguments kept per record; a log call with more is unusual and the
/// formatted message still holds them all.
pub const PARAMS: usize = 32;

/// The `logentry` object of `obj`, if it has one with a non-empty template.
/// A `logentry` that is not an object, or whose template or params have the
/// wrong type, is an error naming the path.
pub fn read(obj: &Map<String, Value>) -> Result<Option<LogEntry>, FieldError> {
    let Some(entry) = jr::opt_object(obj, "logentry", "")? else {
        return Ok(None);
    };
    let template = jr::opt_string(entry, "message", "logentry")?.unwrap_or_default();
    if template.is_empty() {
        return Ok(None);
    }
    let params = match entry.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().take(PARAMS).map(param).collect(),
        // Python's logging allows one mapping as the arguments ("%(name)s").
        Some(Value::Object(map)) => {
            vec![Value::Object(map.iter().take(PARAMS).map(|(k, v)| (k.clone(), param(v))).collect())]
        }
        Some(other) => return Err(jr::wrong_type("logentry.params", "a list", other)),
    };
    Ok(Some(LogEntry {
        template: jr::truncate(template, limits::MESSAGE_BYTES),
        params,
        formatted: jr::truncate(
            jr::opt_string(entry, "formatted", "logentry")?.unwrap_or_default(),
            limits::MESSAGE_BYTES,
        ),
    }))
}

/// A parameter as text, cut to the size of a local's value.
fn param(value: &Value) -> Value {
    Value::String(jr::truncate(jr::as_text(value), limits::VAR_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_json(value: Value) -> Result<Option<LogEntry>, FieldError> {
        read(value.as_object().unwrap())
    }

    #[test]
    fn template_params_and_formatted_are_read() {
        let entry = read_json(json!({"logentry": {"message": "timed out after %ss", "params": [5, "x"],
            "formatted": "timed out after 5s"}}))
        .unwrap()
        .unwrap();
        assert_eq!(entry.template, "timed out after %ss");
        assert_eq!(entry.params, vec![json!("5"), json!("x")]);
        assert_eq!(entry.formatted, "timed out after 5s");
    }

    #[test]
    fn absent_or_empty_templates_are_no_log_entry() {
        assert_eq!(read_json(json!({})).unwrap(), None);
        assert_eq!(read_json(json!({"logentry": null})).unwrap(), None);
        assert_eq!(read_json(json!({"logentry": {"message": ""}})).unwrap(), None);
    }

    #[test]
    fn wrong_types_name_their_path() {
        let err = read_json(json!({"logentry": "text"})).unwrap_err();
        assert_eq!(err.path, "logentry");
        let err = read_json(json!({"logentry": {"message": 5}})).unwrap_err();
        assert_eq!(err.path, "logentry.message");
        let err = read_json(json!({"logentry": {"message": "m", "params": "p"}})).unwrap_err();
        assert_eq!(err.path, "logentry.params");
    }

    #[test]
    fn a_mapping_of_arguments_is_kept_as_one_object() {
        let entry =
            read_json(json!({"logentry": {"message": "%(user)s left", "params": {"user": "ada"}}})).unwrap().unwrap();
        assert_eq!(entry.params, vec![json!({"user": "ada"})]);
    }
}
