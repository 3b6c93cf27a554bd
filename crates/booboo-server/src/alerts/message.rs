//! What an alert says, independent of the channel: built from a claimed
//! delivery (or a test) and turned into each channel's body by `slack.rs`,
//! `discord.rs` and `webhook.rs`. Everything from the event is
//! attacker-controlled text; each channel escapes and bounds it.

use crate::store::{AlertKind, AlertRule, Issue, Project, StoredEvent};
use booboo_core::timestamp;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct AlertMessage {
    pub kind: AlertKind,
    pub project: Project,
    pub issue: Option<Issue>,
    pub event: Option<StoredEvent>,
    pub rule: Option<AlertRule>,
    /// The server's public URL (`--public-url`), for links.
    pub public_url: String,
}

fn time_text(ms: i64) -> String {
    timestamp::format(timestamp::from_unix_millis(ms))
}

impl AlertMessage {
    /// `acme/web`.
    pub fn project_path(&self) -> String {
        format!("{}/{}", self.project.org_slug, self.project.slug)
    }

    /// What happened, in a few words: "New issue", "Regression", …
    pub fn what(&self) -> String {
        match self.kind {
            AlertKind::New => "New issue".into(),
            AlertKind::Regression => "Regression".into(),
            AlertKind::Unignored => "No longer ignored".into(),
            AlertKind::Frequency | AlertKind::Users => {
                let (count, window) = self.rule.as_ref().map(|r| r.trigger.threshold_and_window()).unwrap_or((0, 0));
                let unit = if self.kind == AlertKind::Users { "users" } else { "events" };
                format!("{count}+ {unit} in {}", duration_text(window))
            }
            AlertKind::Test => "Test alert".into(),
        }
    }

    /// One line: what happened, where, and the issue's title.
    pub fn headline(&self) -> String {
        match &self.issue {
            Some(issue) => format!("{} in {}: {}", self.what(), self.project_path(), issue.title),
            None => format!(
                "{} for {}: rule {:?} can reach this channel",
                self.what(),
                self.project_path(),
                self.rule.as_ref().map(|r| r.name.as_str()).unwrap_or("")
            ),
        }
    }

    pub fn issue_url(&self) -> Option<String> {
        self.issue.as_ref().map(|i| format!("{}/issues/{}", self.public_url, i.id))
    }

    pub fn project_url(&self) -> String {
        format!("{}/projects/{}/{}", self.public_url, self.project.org_slug, self.project.slug)
    }

    /// The stored event's payload, parsed (empty when there is none).
    pub fn event_payload(&self) -> Value {
        self.event.as_ref().and_then(|e| serde_json::from_str(&e.payload).ok()).unwrap_or(Value::Null)
    }

    /// A short excerpt of the crashing frames: innermost last, `file:line in function`.
    pub fn stack_excerpt(&self, frames: usize) -> Vec<String> {
        let payload = self.event_payload();
        let Some(stack) = payload.get("stacktrace").and_then(Value::as_array) else { return Vec::new() };
        let lines: Vec<String> = stack
            .iter()
            .map(|f| {
                format!(
                    "{}:{} in {}",
                    f.get("filename").and_then(Value::as_str).unwrap_or("?"),
                    f.get("lineno").and_then(Value::as_u64).unwrap_or(0),
                    f.get("function").and_then(Value::as_str).unwrap_or("?"),
                )
            })
            .collect();
        lines[lines.len().saturating_sub(frames)..].to_vec()
    }

    /// `(label, value)` facts every channel shows.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut facts = vec![("Project", self.project_path())];
        let payload = self.event_payload();
        let text = |key: &str| payload.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(issue) = &self.issue {
            if !issue.culprit.is_empty() {
                facts.push(("Culprit", issue.culprit.clone()));
            }
            facts.push(("Level", issue.level.clone()));
            facts.push(("Events", issue.count.to_string()));
            facts.push(("Users", issue.users.to_string()));
            facts.push(("First seen", time_text(issue.first_seen)));
            facts.push(("Last seen", time_text(issue.last_seen)));
        }
        if !text("environment").is_empty() {
            facts.push(("Environment", text("environment")));
        }
        if !text("release").is_empty() {
            facts.push(("Release", text("release")));
        }
        facts
    }

    /// The generic webhook's JSON body (see docs/alerts.md).
    pub fn webhook_json(&self) -> Value {
        let payload = self.event_payload();
        json!({
            "type": self.kind.as_str(),
            "project": {
                "id": self.project.id,
                "organization": self.project.org_slug,
                "slug": self.project.slug,
                "name": self.project.name,
                "url": self.project_url(),
            },
            "issue": self.issue.as_ref().map(|i| json!({
                "id": i.id,
                "title": i.title,
                "culprit": i.culprit,
                "level": i.level,
                "status": i.status,
                "count": i.count,
                "users": i.users,
                "first_seen": time_text(i.first_seen),
                "last_seen": time_text(i.last_seen),
                "url": self.issue_url(),
            })),
            "event": self.event.as_ref().map(|e| json!({
                "id": e.event_id,
                "received_at": time_text(e.received_at),
                "environment": payload.get("environment"),
                "release": payload.get("release"),
                "level": payload.get("level"),
                "message": payload.get("message"),
                "exception_type": payload.get("exception_type"),
                "tags": payload.get("tags"),
                "stack": self.stack_excerpt(5),
            })),
            "rule": self.rule.as_ref().map(|r| {
                let (count, window_ms) = r.trigger.threshold_and_window();
                json!({
                    "id": r.id,
                    "name": r.name,
                    "trigger": r.trigger.name(),
                    "count": (count > 0).then_some(count),
                    "window_seconds": (window_ms > 0).then_some(window_ms / 1000),
                })
            }),
        })
    }
}

/// `5m`, `1h`, `90s`: the largest unit that divides the duration.
pub fn duration_text(ms: i64) -> String {
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms >= size && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Cuts text to at most `max` characters, ending with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
