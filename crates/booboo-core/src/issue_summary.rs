//! What an issue shows about itself, derived from one event: its title, its
//! culprit and whose crash it was.

use crate::event::{Event, Frame};
use crate::fingerprint::path_key;

const TITLE_CHARS: usize = 200;

/// `Type: first line of message`, or whichever of the two exists.
pub fn title(event: &Event) -> String {
    let (exception_type, message) = match event.exceptions.first() {
        Some(first) => (first.exception_type.as_str(), first.value.as_str()),
        None => (event.exception_type.as_str(), event.message.as_str()),
    };
    let first_line = message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let title = match (exception_type.is_empty(), first_line.is_empty()) {
        (false, false) => format!("{exception_type}: {first_line}"),
        (false, true) => exception_type.to_string(),
        (true, false) => first_line.to_string(),
        (true, true) => "(no message)".to_string(),
    };
    if title.chars().count() > TITLE_CHARS {
        let mut cut: String = title.chars().take(TITLE_CHARS).collect();
        cut.push('…');
        cut
    } else {
        title
    }
}

/// The function and file of the frame that raised, preferring the
/// application's own code over the library it called into.
pub fn culprit(event: &Event) -> String {
    let frames = event.raised_frames();
    let frame: Option<&Frame> = frames.iter().rev().find(|f| f.in_app).or(frames.last());
    match frame {
        Some(f) => format!("{} in {}", f.function, path_key(f)),
        None => String::new(),
    }
}

/// Who was affected, for counting distinct users: id, else email, else
/// username, else IP address.
pub fn user_key(event: &Event) -> Option<String> {
    let user = event.user.as_ref()?;
    for field in ["id", "email", "username", "ip_address"] {
        match user.get(field) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => return Some(format!("{field}:{s}")),
            Some(serde_json::Value::Number(n)) => return Some(format!("{field}:{n}")),
            _ => {}
        }
    }
    None
}
