//! Discord webhooks: one embed within Discord's documented limits (title
//! 256, description 4,096, at most 25 fields of name 256 and value 1,024,
//! footer 2,048, all of an embed's text together at most 6,000), content at
//! most 2,000 characters, and always `allowed_mentions: {"parse": []}`:
//! exception text is attacker-controlled and must never ping `@everyone`.

use crate::alerts::message::{cut, AlertMessage};
use serde_json::{json, Value};

pub const CONTENT_MAX: usize = 2000;
pub const TITLE_MAX: usize = 256;
pub const DESCRIPTION_MAX: usize = 4096;
pub const FIELD_NAME_MAX: usize = 256;
pub const FIELD_VALUE_MAX: usize = 1024;
pub const FIELDS_MAX: usize = 25;
pub const FOOTER_MAX: usize = 2048;
pub const EMBED_TOTAL_MAX: usize = 6000;

/// Red for new issues and regressions, amber for volume, grey for tests.
fn colour(message: &AlertMessage) -> u32 {
    use crate::store::AlertKind::*;
    match message.kind {
        New | Regression | Unignored => 0xd9_3025,
        Frequency | Users => 0xe8_a317,
        Test => 0x80_8080,
    }
}

pub fn body(message: &AlertMessage) -> Value {
    let headline = message.headline();
    let title = cut(&headline, TITLE_MAX);
    let stack = message.stack_excerpt(5);
    let description = if stack.is_empty() {
        String::new()
    } else {
        // Backticks inside the excerpt would end the code block early.
        let excerpt = stack.join("\n").replace('`', "'");
        format!("```\n{}\n```", cut(&excerpt, 1500))
    };
    let footer = "booboo".to_string();
    // Fields fill what the 6,000-character budget leaves.
    let mut budget = EMBED_TOTAL_MAX - title.chars().count() - description.chars().count() - footer.len();
    let mut fields = Vec::new();
    for (label, value) in message.facts().into_iter().take(FIELDS_MAX) {
        let name = cut(label, FIELD_NAME_MAX);
        let value = cut(&value, FIELD_VALUE_MAX.min(budget.saturating_sub(name.chars().count())));
        let size = name.chars().count() + value.chars().count();
        if value.is_empty() || size > budget {
            break;
        }
        budget -= size;
        fields.push(json!({"name": name, "value": value, "inline": true}));
    }
    let mut embed = json!({
        "title": title,
        "color": colour(message),
        "fields": fields,
        "footer": {"text": footer},
    });
    if !description.is_empty() {
        embed["description"] = json!(cut(&description, DESCRIPTION_MAX));
    }
    if let Some(url) = message.issue_url() {
        embed["url"] = json!(url);
    }
    json!({
        "content": cut(&headline, CONTENT_MAX),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    })
}
