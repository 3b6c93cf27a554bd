//! Alert rules as stored, and the one decision both backends take inside the
//! transaction that stores an event: which rules fire for it. Pure: the
//! backends read the facts (is the issue new, was it resolved, how many
//! events in the window) and this file decides.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What makes a rule fire for an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The issue's first event.
    NewIssue,
    /// A resolved issue got a new event (a manual reopen is not one).
    Regression,
    /// An ignored issue stopped being ignored.
    Unignored,
    /// The issue got at least `count` events within `window_ms`.
    Frequency { count: i64, window_ms: i64 },
    /// At least `count` distinct users within `window_ms`.
    Users { count: i64, window_ms: i64 },
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::NewIssue => "new-issue",
            Trigger::Regression => "regression",
            Trigger::Unignored => "unignored",
            Trigger::Frequency { .. } => "frequency",
            Trigger::Users { .. } => "users",
        }
    }

    /// `(threshold, window_ms)` as stored; zero for triggers without them.
    pub fn threshold_and_window(self) -> (i64, i64) {
        match self {
            Trigger::Frequency { count, window_ms } | Trigger::Users { count, window_ms } => (count, window_ms),
            _ => (0, 0),
        }
    }

    /// Reads a stored trigger back.
    pub fn from_stored(name: &str, threshold: i64, window_ms: i64) -> Option<Trigger> {
        match name {
            "new-issue" => Some(Trigger::NewIssue),
            "regression" => Some(Trigger::Regression),
            "unignored" => Some(Trigger::Unignored),
            "frequency" => Some(Trigger::Frequency { count: threshold, window_ms }),
            "users" => Some(Trigger::Users { count: threshold, window_ms }),
            _ => None,
        }
    }

    /// The alert type this trigger sends (`type` of the webhook body).
    pub fn alert_kind(self) -> AlertKind {
        match self {
            Trigger::NewIssue => AlertKind::New,
            Trigger::Regression => AlertKind::Regression,
            Trigger::Unignored => AlertKind::Unignored,
            Trigger::Frequency { .. } => AlertKind::Frequency,
            Trigger::Users { .. } => AlertKind::Users,
        }
    }
}

/// What an alert says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    New,
    Regression,
    Unignored,
    Frequency,
    Users,
    Test,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::New => "issue.new",
            AlertKind::Regression => "issue.regression",
            AlertKind::Unignored => "issue.unignored",
            AlertKind::Frequency => "issue.frequency",
            AlertKind::Users => "issue.users",
            AlertKind::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<AlertKind> {
        [
            AlertKind::New,
            AlertKind::Regression,
            AlertKind::Unignored,
            AlertKind::Frequency,
            AlertKind::Users,
            AlertKind::Test,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// Levels in order of severity, as events store them.
pub const LEVELS: [&str; 5] = ["debug", "info", "warning", "error", "fatal"];

fn level_rank(level: &str) -> usize {
    LEVELS.iter().position(|l| *l == level).unwrap_or(0)
}

/// Which events a rule looks at. Empty means every event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFilters {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// The event's level must be at least this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// A tag the event must carry with exactly this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<(String, String)>,
}

/// What the filters see of an event.
pub struct EventFacts<'a> {
    pub environment: &'a str,
    pub level: &'a str,
    pub release: &'a str,
    pub tags: &'a BTreeMap<String, String>,
}

impl RuleFilters {
    pub fn matches(&self, event: &EventFacts<'_>) -> bool {
        (self.environments.is_empty() || self.environments.iter().any(|e| e == event.environment))
            && self.level.as_deref().is_none_or(|min| level_rank(event.level) >= level_rank(min))
            && self.release.as_deref().is_none_or(|r| r == event.release)
            && self.tag.as_ref().is_none_or(|(k, v)| event.tags.get(k) == Some(v))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Webhook,
    Slack,
    Discord,
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 4] =
        [ChannelKind::Webhook, ChannelKind::Slack, ChannelKind::Discord, ChannelKind::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Discord => "discord",
            ChannelKind::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// The last failed attempt on a channel, shown until a success clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelFailure {
    pub at: i64,
    /// The HTTP status, when the receiver answered.
    pub status: Option<i64>,
    /// What went wrong, with the first part of the answer.
    pub detail: String,
}

/// What `email` targets name to mean the organisation's members.
pub const EMAIL_MEMBERS: &str = "members";

/// A channel of a stored rule. Its signing secret is never in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct AlertChannel {
    pub id: i64,
    pub kind: ChannelKind,
    /// A URL, or for e-mail an address or `members`.
    pub target: String,
    /// A generic webhook's `whsec_…` signing secret.
    pub secret: Option<String>,
    pub last_failure: Option<ChannelFailure>,
}

impl fmt::Debug for AlertChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertChannel")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// A channel about to be stored.
#[derive(Clone, PartialEq, Eq)]
pub struct NewChannel {
    pub kind: ChannelKind,
    pub target: String,
    pub secret: Option<String>,
}

impl fmt::Debug for NewChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewChannel").field("kind", &self.kind).field("target", &self.target).finish_non_exhaustive()
    }
}

/// A rule as written by the CLI, the API or the dashboard, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlertRule {
    pub name: String,
    pub trigger: Trigger,
    pub filters: RuleFilters,
    /// How long after firing for an issue the rule stays quiet for it.
    pub throttle_ms: i64,
    pub channels: Vec<NewChannel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub trigger: Trigger,
    pub filters: RuleFilters,
    pub throttle_ms: i64,
    pub created_at: i64,
    pub channels: Vec<AlertChannel>,
}

/// What the backend knows about an issue right after storing an event.
pub struct IssueFacts {
    /// The event created the issue.
    pub created: bool,
    /// The issue was resolved before this event.
    pub regressed: bool,
}

impl AlertRule {
    /// Whether the rule might fire for this event before anything is counted:
    /// its filters match and its trigger is the kind an event can cause.
    /// Frequency and users rules then need counts within their window (and
    /// are checked against the throttle first, so a throttled rule costs no
    /// count).
    pub fn candidate(&self, event: &EventFacts<'_>, issue: &IssueFacts) -> bool {
        let trigger_possible = match self.trigger {
            Trigger::NewIssue => issue.created,
            Trigger::Regression => issue.regressed,
            Trigger::Unignored => false,
            Trigger::Frequency { .. } | Trigger::Users { .. } => true,
        };
        trigger_possible && self.filters.matches(event)
    }

    /// Whether the rule is quiet for an issue it last fired for at
    /// `last_fired_at`.
    pub fn throttled(&self, last_fired_at: Option<i64>, now: i64) -> bool {
        last_fired_at.is_some_and(|at| now < at.saturating_add(self.throttle_ms))
    }
}

/// One delivery as the API, the dashboard and the issue page list it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryInfo {
    pub id: i64,
    pub rule_id: Option<i64>,
    pub rule_name: Option<String>,
    pub issue_id: Option<i64>,
    pub issue_title: Option<String>,
    pub channel_id: Option<i64>,
    pub channel_kind: String,
    /// The one address an e-mail delivery goes to.
    pub recipient: Option<String>,
    pub kind: String,
    pub webhook_id: String,
    pub status: String,
    pub attempts: i64,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub sent_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

/// A delivery claimed by one node, with everything needed to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub webhook_id: String,
    pub kind: AlertKind,
    pub attempts: i64,
    pub created_at: i64,
    pub rule: Option<AlertRule>,
    pub channel: AlertChannel,
    /// For e-mail, the one address this delivery goes to (`None`: every
    /// recipient of the channel, for deliveries written before there was one
    /// per recipient).
    pub recipient: Option<String>,
    pub project: super::Project,
    pub issue: Option<super::Issue>,
    pub event: Option<super::StoredEvent>,
}

/// How an attempt ended, for [`super::Alerting::finish_delivery`].
#[derive(Debug, Clone)]
pub enum AttemptResult {
    Sent {
        status: Option<i64>,
    },
    /// Try again at `next_attempt_at`.
    Retry {
        status: Option<i64>,
        detail: String,
        next_attempt_at: i64,
    },
    /// Given up: marked failed and shown.
    Failed {
        status: Option<i64>,
        detail: String,
    },
}

/// Deliveries by state and channel kind, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// `(channel kind, status, count)`.
    pub rows: Vec<(String, String, i64)>,
}

/// An e-mail alert held back by the per-recipient cap, for the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldEmail {
    pub address: String,
    pub held_at: i64,
    /// One line: what happened, where.
    pub summary: String,
    pub url: String,
}

/// A random Standard Webhooks message id: the same on every attempt.
pub fn new_webhook_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("the operating system's random number generator failed");
    format!("msg_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(trigger: Trigger, filters: RuleFilters) -> AlertRule {
        AlertRule {
            id: 1,
            project_id: 1,
            name: "r".into(),
            trigger,
            filters,
            throttle_ms: 60_000,
            created_at: 0,
            channels: vec![],
        }
    }

    #[test]
    fn filters_match_environment_level_release_and_tag() {
        let tags: BTreeMap<String, String> = [("region".to_string(), "eu".to_string())].into();
        let event = EventFacts { environment: "production", level: "error", release: "1.0", tags: &tags };
        let filters = RuleFilters {
            environments: vec!["staging".into(), "production".into()],
            level: Some("warning".into()),
            release: Some("1.0".into()),
            tag: Some(("region".into(), "eu".into())),
        };
        assert!(filters.matches(&event));
        assert!(!RuleFilters { level: Some("fatal".into()), ..RuleFilters::default() }.matches(&event));
        assert!(!RuleFilters { environments: vec!["staging".into()], ..RuleFilters::default() }.matches(&event));
        assert!(!RuleFilters { tag: Some(("region".into(), "us".into())), ..RuleFilters::default() }.matches(&event));
        assert!(RuleFilters::default().matches(&event));
    }

    #[test]
    fn triggers_fire_only_on_their_fact_and_throttle_per_issue() {
        let tags = BTreeMap::new();
        let event = EventFacts { environment: "production", level: "error", release: "", tags: &tags };
        let new = rule(Trigger::NewIssue, RuleFilters::default());
        assert!(new.candidate(&event, &IssueFacts { created: true, regressed: false }));
        assert!(!new.candidate(&event, &IssueFacts { created: false, regressed: true }));
        let regression = rule(Trigger::Regression, RuleFilters::default());
        assert!(regression.candidate(&event, &IssueFacts { created: false, regressed: true }));
        assert!(!regression.candidate(&event, &IssueFacts { created: false, regressed: false }));
        assert!(new.throttled(Some(1_000), 60_999));
        assert!(!new.throttled(Some(1_000), 61_000));
        assert!(!new.throttled(None, 0));
    }
}
