//! Turning what a person typed (CLI flags, API JSON, the dashboard's form)
//! into a validated [`NewAlertRule`]. Pure: URL reachability is checked
//! afterwards by [`crate::alerts::check_rule_targets`]. Every error names
//! the field, so nothing is half-created.

use crate::alerts::channels::webhook;
use crate::alerts::message::duration_text;
use crate::alerts::outbound;
use crate::store::alert_rules::LEVELS;
use crate::store::{AlertRule, ChannelKind, NewAlertRule, NewChannel, RuleFilters, Trigger};
use std::fmt;

pub const MIN_WINDOW_MS: i64 = 60_000;
pub const MAX_WINDOW_MS: i64 = 86_400_000;
pub const MAX_THROTTLE_MS: i64 = 7 * 86_400_000;
/// The writer counts a frequency or users rule's window up to its count on
/// every event of a matching issue, so the count bounds that work.
pub const MAX_COUNT: i64 = 10_000;
pub const MAX_CHANNELS: usize = 10;
pub use crate::store::alert_rules::EMAIL_MEMBERS;

/// A refused field, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The typed form of a stored rule, which an API PATCH or the dashboard's
/// edit form changes some fields of before it is validated again.
pub fn input_of(rule: &AlertRule) -> RuleInput {
    let (count, window_ms) = rule.trigger.threshold_and_window();
    RuleInput {
        name: Some(rule.name.clone()),
        trigger: rule.trigger.name().to_string(),
        count: (count > 0).then_some(count),
        window: (window_ms > 0).then(|| duration_text(window_ms)),
        environments: rule.filters.environments.clone(),
        level: rule.filters.level.clone(),
        release: rule.filters.release.clone(),
        tag: rule.filters.tag.as_ref().map(|(k, v)| format!("{k}={v}")),
        throttle: Some(if rule.throttle_ms == 0 { "0".into() } else { duration_text(rule.throttle_ms) }),
        channels: rule
            .channels
            .iter()
            .map(|c| ChannelInput { kind: c.kind.as_str().into(), target: c.target.clone(), secret: c.secret.clone() })
            .collect(),
    }
}

/// A rule as typed, every field text.
#[derive(Debug, Clone, Default)]
pub struct RuleInput {
    pub name: Option<String>,
    pub trigger: String,
    pub count: Option<i64>,
    pub window: Option<String>,
    pub environments: Vec<String>,
    pub level: Option<String>,
    pub release: Option<String>,
    /// `key=value`.
    pub tag: Option<String>,
    pub throttle: Option<String>,
    pub channels: Vec<ChannelInput>,
}

#[derive(Clone, Default)]
pub struct ChannelInput {
    pub kind: String,
    /// A URL; for e-mail an address or `members`.
    pub target: String,
    pub secret: Option<String>,
}

impl fmt::Debug for ChannelInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelInput").field("kind", &self.kind).field("target", &self.target).finish_non_exhaustive()
    }
}

/// A duration such as `90s`, `5m`, `1h` or `1d`, in milliseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(unit_ms)
}

fn clean(text: &str, field: &str, max: usize) -> Result<String, FieldError> {
    let text = text.trim();
    if text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(FieldError::new(field, format!("must be at most {max} characters without control characters")));
    }
    Ok(text.to_string())
}

/// Validates a typed rule. `email_configured` says whether SMTP is set up;
/// without it e-mail channels are refused with how to set it up.
pub fn build(input: &RuleInput, email_configured: bool) -> Result<NewAlertRule, FieldError> {
    let window = match &input.window {
        Some(text) => {
            Some(parse_duration(text).filter(|ms| (MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(ms)).ok_or_else(|| {
                FieldError::new("window", format!("{text:?} must be a duration from 1m to 1d, such as 5m, 1h or 1d"))
            })?)
        }
        None => None,
    };
    let counted = |kind: &str| -> Result<(i64, i64), FieldError> {
        let count = input
            .count
            .ok_or_else(|| FieldError::new("count", format!("a {kind} rule needs a count (N), such as --count 100")))?;
        if !(1..=MAX_COUNT).contains(&count) {
            return Err(FieldError::new("count", format!("must be a whole number from 1 to {MAX_COUNT}, got {count}")));
        }
        let window = window.ok_or_else(|| {
            FieldError::new("window", format!("a {kind} rule needs a window from 1m to 1d, such as 5m"))
        })?;
        Ok((count, window))
    };
    let trigger = match input.trigger.trim() {
        "new-issue" => Trigger::NewIssue,
        "regression" => Trigger::Regression,
        "unignored" => Trigger::Unignored,
        "frequency" => {
            let (count, window_ms) = counted("frequency")?;
            Trigger::Frequency { count, window_ms }
        }
        "users" => {
            let (count, window_ms) = counted("users")?;
            Trigger::Users { count, window_ms }
        }
        other => {
            return Err(FieldError::new(
                "trigger",
                format!("{other:?} is not a trigger: use new-issue, regression, unignored, frequency or users"),
            ))
        }
    };
    if !matches!(trigger, Trigger::Frequency { .. } | Trigger::Users { .. })
        && (input.count.is_some() || input.window.is_some())
    {
        return Err(FieldError::new("count", "count and window apply only to frequency and users rules"));
    }
    let throttle_ms = match &input.throttle {
        Some(text) if text.trim() == "0" => 0,
        Some(text) => parse_duration(text).filter(|ms| (0..=MAX_THROTTLE_MS).contains(ms)).ok_or_else(|| {
            FieldError::new("throttle", format!("{text:?} must be a duration up to 7d, such as 30m, or 0"))
        })?,
        // Frequency and users rules speak once per window by default.
        None => trigger.threshold_and_window().1,
    };
    let mut environments = Vec::new();
    for e in &input.environments {
        let e = clean(e, "environment", 200)?;
        if !e.is_empty() && !environments.contains(&e) {
            environments.push(e);
        }
    }
    let level = match input.level.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        Some(level) if LEVELS.contains(&level) => Some(level.to_string()),
        Some(level) => {
            return Err(FieldError::new("level", format!("{level:?} must be one of {}", LEVELS.join(", "))));
        }
        None => None,
    };
    let release = input.release.as_deref().map(|r| clean(r, "release", 200)).transpose()?.filter(|r| !r.is_empty());
    let tag = match input.tag.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => {
            let (key, value) = text
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| FieldError::new("tag", format!("{text:?} must be key=value, such as region=eu")))?;
            Some((clean(key, "tag", 200)?, clean(value, "tag", 200)?))
        }
        None => None,
    };
    if input.channels.is_empty() {
        return Err(FieldError::new(
            "channels",
            "a rule needs at least one channel: --email, --email-members, --slack, --discord or --webhook",
        ));
    }
    if input.channels.len() > MAX_CHANNELS {
        return Err(FieldError::new("channels", format!("a rule has at most {MAX_CHANNELS} channels")));
    }
    let channels = input
        .channels
        .iter()
        .enumerate()
        .map(|(i, c)| build_channel(c, &format!("channels[{i}]"), email_configured))
        .collect::<Result<Vec<_>, _>>()?;
    let name = match input.name.as_deref().map(|n| clean(n, "name", 200)).transpose()? {
        Some(name) if !name.is_empty() => name,
        _ => default_name(trigger),
    };
    Ok(NewAlertRule {
        name,
        trigger,
        filters: RuleFilters { environments, level, release, tag },
        throttle_ms,
        channels,
    })
}

fn default_name(trigger: Trigger) -> String {
    match trigger {
        Trigger::NewIssue => "New issues".into(),
        Trigger::Regression => "Regressions".into(),
        Trigger::Unignored => "Issues no longer ignored".into(),
        Trigger::Frequency { count, window_ms } => format!("{count}+ events in {}", duration_text(window_ms)),
        Trigger::Users { count, window_ms } => format!("{count}+ users in {}", duration_text(window_ms)),
    }
}

fn build_channel(input: &ChannelInput, field: &str, email_configured: bool) -> Result<NewChannel, FieldError> {
    let kind = ChannelKind::parse(input.kind.trim()).ok_or_else(|| {
        FieldError::new(
            format!("{field}.kind"),
            format!("{:?} is not a channel: use webhook, slack, discord or email", input.kind),
        )
    })?;
    let target = input.target.trim().to_string();
    if kind == ChannelKind::Email {
        if !email_configured {
            return Err(FieldError::new(
                format!("{field}.kind"),
                "e-mail alerts need an SMTP server: start booboo with --smtp-url smtp://user:pass@host:587 \
                 (BOOBOO_SMTP_URL) and --email-from alerts@example.com (BOOBOO_EMAIL_FROM)",
            ));
        }
        if target != EMAIL_MEMBERS {
            let valid = target.split_once('@').is_some_and(|(user, host)| !user.is_empty() && !host.is_empty())
                && !target.contains(char::is_whitespace);
            if !valid {
                return Err(FieldError::new(format!("{field}.to"), format!("{target:?} is not an e-mail address")));
            }
        }
        return Ok(NewChannel { kind, target: target.to_ascii_lowercase(), secret: None });
    }
    if target.chars().count() > 2000 {
        return Err(FieldError::new(format!("{field}.url"), "must be at most 2000 characters"));
    }
    let url = outbound::check_url(&target).map_err(|e| FieldError::new(format!("{field}.url"), e.to_string()))?;
    let secret = match kind {
        ChannelKind::Webhook => Some(match input.secret.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(secret) => {
                webhook::secret_key(secret).map_err(|m| FieldError::new(format!("{field}.secret"), m))?;
                secret.to_string()
            }
            None => webhook::new_secret(),
        }),
        _ if input.secret.as_deref().is_some_and(|s| !s.trim().is_empty()) => {
            return Err(FieldError::new(format!("{field}.secret"), "only generic webhooks take a secret"));
        }
        _ => None,
    };
    Ok(NewChannel { kind, target: url.to_string(), secret })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(trigger: &str) -> RuleInput {
        RuleInput {
            trigger: trigger.into(),
            channels: vec![ChannelInput {
                kind: "slack".into(),
                target: "https://hooks.slack.com/x".into(),
                secret: None,
            }],
            ..RuleInput::default()
        }
    }

    #[test]
    fn durations_read_seconds_minutes_hours_and_days() {
        assert_eq!(parse_duration("90s"), Some(90_000));
        assert_eq!(parse_duration("5m"), Some(300_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5w"), None);
    }

    #[test]
    fn frequency_rules_need_a_count_and_a_window_in_range_and_throttle_per_window() {
        let mut rule = input("frequency");
        assert_eq!(build(&rule, false).unwrap_err().field, "count");
        rule.count = Some(10);
        assert_eq!(build(&rule, false).unwrap_err().field, "window");
        rule.window = Some("30s".into());
        assert_eq!(build(&rule, false).unwrap_err().field, "window");
        rule.window = Some("2d".into());
        assert_eq!(build(&rule, false).unwrap_err().field, "window");
        rule.window = Some("5m".into());
        let built = build(&rule, false).unwrap();
        assert_eq!(built.trigger, Trigger::Frequency { count: 10, window_ms: 300_000 });
        assert_eq!(built.throttle_ms, 300_000);
    }

    #[test]
    fn bad_input_names_its_field() {
        assert_eq!(build(&input("sometimes"), false).unwrap_err().field, "trigger");
        let mut rule = input("new-issue");
        rule.level = Some("loud".into());
        assert_eq!(build(&rule, false).unwrap_err().field, "level");
        let mut rule = input("new-issue");
        rule.channels[0].target = "hooks.slack.com".into();
        assert_eq!(build(&rule, false).unwrap_err().field, "channels[0].url");
        let mut rule = input("new-issue");
        rule.channels[0] = ChannelInput { kind: "email".into(), target: "a@example.com".into(), secret: None };
        let err = build(&rule, false).unwrap_err();
        assert!(err.message.contains("--smtp-url"), "{err}");
        let mut rule = input("new-issue");
        rule.channels = vec![];
        assert_eq!(build(&rule, false).unwrap_err().field, "channels");
        let mut rule = input("regression");
        rule.tag = Some("noequals".into());
        assert_eq!(build(&rule, false).unwrap_err().field, "tag");
    }

    #[test]
    fn webhooks_get_a_generated_secret_unless_given_a_valid_one() {
        let mut rule = input("new-issue");
        rule.channels[0] =
            ChannelInput { kind: "webhook".into(), target: "https://example.com/hook".into(), secret: None };
        let built = build(&rule, false).unwrap();
        assert!(built.channels[0].secret.as_deref().unwrap().starts_with("whsec_"));
        rule.channels[0].secret = Some("whsec_short".into());
        assert_eq!(build(&rule, false).unwrap_err().field, "channels[0].secret");
    }
}
