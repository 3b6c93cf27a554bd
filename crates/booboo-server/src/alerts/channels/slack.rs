//! Slack incoming webhooks: `text` is always set (it is what notifications
//! and clients without Block Kit show) and the same content is laid out in
//! Block Kit blocks. Slack's documented limits: a header's text at most 150
//! characters, a section's text at most 3,000, at most 10 section fields of
//! at most 2,000 each, at most 50 blocks. `&`, `<` and `>` are escaped, so
//! exception text cannot forge links or mentions (`<!channel>`).

use crate::alerts::message::{cut, AlertMessage};
use serde_json::{json, Value};

pub const HEADER_MAX: usize = 150;
pub const SECTION_TEXT_MAX: usize = 3000;
pub const FIELD_TEXT_MAX: usize = 2000;
pub const FIELDS_MAX: usize = 10;

/// Slack's three control characters in `mrkdwn` and `text`.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

pub fn body(message: &AlertMessage) -> Value {
    let headline = message.headline();
    let link = message.issue_url().unwrap_or_else(|| message.project_url());
    let text = cut(&format!("{} <{}|Open in booboo>", escape(&headline), link), SECTION_TEXT_MAX);
    let fields: Vec<Value> = message
        .facts()
        .into_iter()
        .take(FIELDS_MAX)
        .map(|(label, value)| json!({"type": "mrkdwn", "text": cut(&format!("*{label}*\n{}", escape(&value)), FIELD_TEXT_MAX)}))
        .collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&message.what(), HEADER_MAX), "emoji": false}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&format!("*<{link}|{}>*", escape(&headline)), SECTION_TEXT_MAX)}}),
        json!({"type": "section", "fields": fields}),
    ];
    let stack = message.stack_excerpt(5);
    if !stack.is_empty() {
        let excerpt = cut(&escape(&stack.join("\n")), SECTION_TEXT_MAX - 6);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```{excerpt}```")}}));
    }
    json!({ "text": text, "blocks": blocks })
}
