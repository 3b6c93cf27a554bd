//! Alerting: rules say when (validated in `rules.rs`; the decision itself is
//! taken in the store, inside the transaction that stores the event, and
//! written to an outbox), `deliver.rs` sends what the outbox holds, apart
//! from ingest, through one channel file each (`channels/`) and the one safe
//! HTTP client (`outbound.rs`). Data flows store → alerts; nothing here is
//! called by ingest.

pub mod channels;
pub mod deliver;
pub mod message;
pub mod outbound;
pub mod rules;

use crate::clock;
use crate::store::{AlertKind, AlertRule, Alerting, ChannelKind, NewAlertRule, Project, StoreResult};
use message::AlertMessage;
use outbound::OutboundPolicy;
use rules::FieldError;
use serde::Serialize;

/// Checks that every URL of a rule resolves to an address alerts may reach,
/// so a refused target is refused when the rule is written, not later.
pub async fn check_rule_targets(rule: &NewAlertRule, policy: &OutboundPolicy) -> Result<(), FieldError> {
    for (i, channel) in rule.channels.iter().enumerate() {
        if channel.kind != ChannelKind::Email {
            policy
                .resolve(&channel.target)
                .await
                .map_err(|e| FieldError::new(format!("channels[{i}].url"), e.to_string()))?;
        }
    }
    Ok(())
}

/// Validates typed input into a rule whose URLs alerts may reach, with the
/// channel secrets generated for it (by channel index), to show once.
pub async fn prepare_rule(
    input: &rules::RuleInput,
    policy: &OutboundPolicy,
    email_configured: bool,
) -> Result<(NewAlertRule, Vec<(usize, String)>), FieldError> {
    let rule = rules::build(input, email_configured)?;
    check_rule_targets(&rule, policy).await?;
    let generated = rule
        .channels
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            c.secret.is_some()
                && input.channels.get(*i).is_none_or(|given| given.secret.as_deref().is_none_or(str::is_empty))
        })
        .map(|(i, c)| (i, c.secret.clone().unwrap_or_default()))
        .collect();
    Ok((rule, generated))
}

/// How a test message to one channel went.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub channel_id: i64,
    pub kind: &'static str,
    pub ok: bool,
    pub status: Option<i64>,
    pub detail: Option<String>,
}

/// Sends "a test message" to every channel of a rule now and records each
/// result on its channel (a success clears the last failure).
pub async fn send_test(
    store: &dyn Alerting,
    email: &deliver::EmailSender,
    policy: &OutboundPolicy,
    public_url: &str,
    project: Project,
    rule: &AlertRule,
) -> StoreResult<Vec<TestResult>> {
    let message = AlertMessage {
        kind: AlertKind::Test,
        project,
        issue: None,
        event: None,
        rule: Some(rule.clone()),
        public_url: public_url.to_string(),
    };
    let mut results = Vec::new();
    for channel in &rule.channels {
        let id = crate::store::alert_rules::new_webhook_id();
        let answer = deliver::send(policy, email, channel, &message, &id, None, true).await;
        let failure = deliver::failure_text(&answer);
        let status = match (&answer, &failure) {
            (Ok(a), _) => Some(a.status as i64),
            (Err(_), Some((status, _))) => *status,
            _ => None,
        };
        store
            .record_channel_result(channel.id, clock::now_millis(), status, failure.as_ref().map(|(_, d)| d.as_str()))
            .await?;
        results.push(TestResult {
            channel_id: channel.id,
            kind: channel.kind.as_str(),
            ok: failure.is_none(),
            status,
            detail: failure.map(|(_, d)| d),
        });
    }
    Ok(results)
}

/// The rules a new project gets when e-mail is configured: new issues and
/// regressions, e-mailed to the organisation's members (each member can
/// stop them per project in their settings).
pub async fn add_default_email_rules(store: &dyn Alerting, project_id: i64, at: i64) -> StoreResult<()> {
    for trigger in [crate::store::Trigger::NewIssue, crate::store::Trigger::Regression] {
        let name = match trigger {
            crate::store::Trigger::NewIssue => "New issues (e-mail to members)",
            _ => "Regressions (e-mail to members)",
        };
        let rule = NewAlertRule {
            name: name.into(),
            trigger,
            filters: crate::store::RuleFilters::default(),
            throttle_ms: 0,
            channels: vec![crate::store::NewChannel {
                kind: ChannelKind::Email,
                target: rules::EMAIL_MEMBERS.into(),
                secret: None,
            }],
        };
        store.create_alert_rule(project_id, &rule, at).await?;
    }
    Ok(())
}
