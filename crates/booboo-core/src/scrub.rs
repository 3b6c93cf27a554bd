//! Server-side scrubbing: the SDK already filters, this is defence in depth
//! for clients that did not (old releases, other SDKs, hand-written ones).

use crate::event::{Event, Frame, Request};
use serde_json::{Map, Value};

pub const FILTERED: &str = "[filtered]";

/// Name fragments that mark a value as secret, matched case-insensitively
/// anywhere in the name. The same list as the SDK's.
const SENSITIVE: &[&str] =
    &["password", "passwd", "secret", "token", "api_key", "apikey", "auth", "credential", "private"];

/// Headers that carry credentials without saying so in their name.
const SENSITIVE_HEADERS: &[&str] = &["cookie", "set-cookie", "x-api-key", "x-csrftoken", "x-xsrf-token"];

pub fn is_sensitive_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let squashed = lower.replace('-', "_");
    SENSITIVE.iter().any(|word| squashed.contains(word))
}

/// Replaces the value of every sensitive key, at any depth, in the places a
/// client puts free-form data: locals, the request (headers, query, body),
/// contexts, breadcrumbs and the fields the model keeps in `extra`. Runs
/// before locals become text, so a nested `password` is still a key here.
pub fn scrub_event(event: &mut Event) {
    for entry in &mut event.exceptions {
        entry.stacktrace.iter_mut().for_each(scrub_frame);
    }
    event.stacktrace.iter_mut().for_each(scrub_frame);
    if let Some(request) = &mut event.request {
        scrub_request(request);
    }
    scrub_map(&mut event.extra);
    scrub_map(&mut event.contexts);
    event.breadcrumbs.iter_mut().for_each(scrub_value);
}

/// Filters sensitive keys of an object and of everything nested in it.
pub fn scrub_value(value: &mut Value) {
    match value {
        Value::Object(map) => scrub_map(map),
        Value::Array(items) => items.iter_mut().for_each(scrub_value),
        _ => {}
    }
}

fn scrub_map(map: &mut Map<String, Value>) {
    for (key, value) in map.iter_mut() {
        if is_sensitive_name(key) {
            *value = Value::String(FILTERED.into());
        } else {
            scrub_value(value);
        }
    }
}

fn scrub_frame(frame: &mut Frame) {
    frame.vars.retain(|name, _| !(name.starts_with("__") && name.ends_with("__") && name.len() > 4));
    scrub_map(&mut frame.vars);
}

fn scrub_request(request: &mut Request) {
    for (name, value) in request.headers.iter_mut() {
        let lower = name.to_ascii_lowercase();
        if is_sensitive_name(&lower) || SENSITIVE_HEADERS.contains(&lower.as_str()) {
            *value = FILTERED.into();
        }
    }
    request.query_string = scrub_query(&request.query_string);
    if let Some(data) = &mut request.data {
        scrub_value(data);
    }
    if let Some((base, query)) = request.url.split_once('?') {
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let mut url = format!("{base}?{}", scrub_query(query));
        if let Some(fragment) = fragment {
            url.push('#');
            url.push_str(fragment);
        }
        request.url = url;
    }
}

/// Replaces the values of sensitive keys in `a=1&token=x`, keeping order.
pub fn scrub_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_sensitive_name(&percent_decoded(key)) => format!("{key}={FILTERED}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Enough percent-decoding to see a key's name (`api%5Fkey`).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let digit = |b: u8| (b as char).to_digit(16);
            if let (Some(high), Some(low)) = (digit(bytes[i + 1]), digit(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_of_sensitive_keys_are_filtered() {
        assert_eq!(
            scrub_query("page=2&api%5Fkey=abc&Auth_Token=x"),
            "page=2&api%5Fkey=[filtered]&Auth_Token=[filtered]"
        );
        assert_eq!(scrub_query("%"), "%");
        assert_eq!(scrub_query("a=%zz"), "a=%zz");
    }

    #[test]
    fn headers_and_url_are_scrubbed() {
        let mut request = Request {
            method: "GET".into(),
            url: "http://x/p?session_token=abc&q=1#top".into(),
            headers: [
                ("Cookie".to_string(), "s=1".to_string()),
                ("X-Auth-User".into(), "bob".into()),
                ("Accept".into(), "*/*".into()),
            ]
            .into_iter()
            .collect(),
            query_string: "password=hunter2".into(),
            data: Some(serde_json::json!({"form": {"user": "bob", "Password": "x"}})),
        };
        scrub_request(&mut request);
        assert_eq!(request.url, "http://x/p?session_token=[filtered]&q=1#top");
        assert_eq!(request.headers["Cookie"], FILTERED);
        assert_eq!(request.headers["X-Auth-User"], FILTERED);
        assert_eq!(request.headers["Accept"], "*/*");
        assert_eq!(request.query_string, "password=[filtered]");
        assert_eq!(request.data.unwrap()["form"], serde_json::json!({"user": "bob", "Password": FILTERED}));
    }

    #[test]
    fn frame_vars_lose_dunders_and_secrets() {
        let mut frame = Frame::default();
        frame.vars.insert("__builtins__".into(), "{}".into());
        frame.vars.insert("DB_PASSWORD".into(), "'x'".into());
        frame.vars.insert("count".into(), "3".into());
        scrub_frame(&mut frame);
        assert!(!frame.vars.contains_key("__builtins__"));
        assert_eq!(frame.vars["DB_PASSWORD"], FILTERED);
        assert_eq!(frame.vars["count"], "3");
    }

    #[test]
    fn nested_secrets_are_filtered_at_any_depth() {
        let mut frame = Frame::default();
        frame.vars.insert("config".into(), serde_json::json!({"db": [{"host": "h", "password": "x"}]}));
        scrub_frame(&mut frame);
        assert_eq!(frame.vars["config"], serde_json::json!({"db": [{"host": "h", "password": FILTERED}]}));
    }
}
