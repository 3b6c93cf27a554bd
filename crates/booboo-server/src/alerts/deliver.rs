//! The delivery worker: apart from the ingest writer, it claims due
//! deliveries from the outbox, sends them, and records each attempt. A
//! failed attempt is retried with exponential backoff and jitter (the first
//! retry within `--alert-retry-first-ms`, 10 s by default, doubling, at most
//! an hour apart) until 24 hours after the alert, then marked failed. Each
//! delivery is sent with the same `webhook-id` on every attempt.
//!
//! The same loop ends timed ignores ("ignore for an hour"): the issue is
//! unresolved again and its unignored alerts are written in that
//! transaction, then delivered like any other.
//!
//! At least once: the claim is a lease; a node that dies mid-send leaves it
//! to expire and another node (or this one, restarted) sends again.

use crate::alerts::channels::{discord, email, slack, webhook};
use crate::alerts::message::{cut, AlertMessage};
use crate::alerts::outbound::{Answer, OutboundError, OutboundPolicy};
use crate::alerts::rules::EMAIL_MEMBERS;
use crate::clock;
use crate::mail::{Mailer, OutgoingMail};
use crate::metrics::Metrics;
use crate::store::{AlertChannel, AlertKind, AttemptResult, ChannelKind, DueDelivery, HeldEmail, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Timings of the worker; the defaults are what production uses.
#[derive(Debug, Clone, Copy)]
pub struct DeliverySettings {
    /// The longest wait before the first retry (jitter picks 50–100 % of it).
    pub retry_first_ms: i64,
    /// The longest wait between two attempts.
    pub retry_cap_ms: i64,
    /// After this long since the alert, a failing delivery is given up.
    pub give_up_after_ms: i64,
    /// How often the outbox is looked at for due deliveries.
    pub poll: Duration,
    /// How long a claim lasts: longer than an attempt can take.
    pub lease_ms: i64,
    /// Deliveries sent at the same time.
    pub parallel: usize,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            retry_first_ms: 10_000,
            retry_cap_ms: 3_600_000,
            give_up_after_ms: 86_400_000,
            poll: Duration::from_millis(500),
            lease_ms: 60_000,
            parallel: 8,
        }
    }
}

impl DeliverySettings {
    /// The wait before retry number `retry` (1 for the first), with jitter
    /// `unit` in [0, 1): half to all of `first × 2^(retry-1)`, capped.
    pub fn backoff_ms(&self, retry: i64, unit: f64) -> i64 {
        let exponent = (retry - 1).clamp(0, 40) as u32;
        let full = self.retry_first_ms.saturating_mul(1i64 << exponent.min(40)).min(self.retry_cap_ms);
        let jittered = full as f64 * (0.5 + 0.5 * unit.clamp(0.0, 1.0));
        (jittered as i64).max(1)
    }
}

/// What e-mail channels need: the mailer (when `--smtp-url` is set), the
/// store (members, the cap), the cap per recipient and the period it counts
/// in (`--alert-email-period`), at whose end the digest is sent.
#[derive(Clone)]
pub struct EmailSender {
    pub mailer: Option<Arc<Mailer>>,
    pub store: Arc<dyn Store>,
    pub cap: i64,
    pub period_ms: i64,
}

impl EmailSender {
    /// Sends one alert: to `recipient` alone when the delivery has one (each
    /// recipient of an alert is its own delivery, retried on its own), else
    /// to all the channel's recipients (test messages, and deliveries
    /// written before there was one per recipient). Over the cap, an alert
    /// is held for the recipient's digest instead (test messages never are);
    /// the cap counts a delivery on its first attempt only, so its retries
    /// are not counted again.
    async fn send(
        &self,
        channel: &AlertChannel,
        message: &AlertMessage,
        recipient: Option<&str>,
        first_attempt: bool,
    ) -> Result<Answer, OutboundError> {
        let mailer = self.mailer.as_ref().ok_or_else(|| {
            OutboundError::Transport(
                "e-mail is not configured on this server: start it with --smtp-url and --email-from".into(),
            )
        })?;
        let store_error = |e: crate::store::StoreError| OutboundError::Transport(e.to_string());
        let recipients = if let Some(to) = recipient {
            vec![to.to_string()]
        } else if channel.target == EMAIL_MEMBERS {
            self.store.alert_email_recipients(message.project.id).await.map_err(store_error)?
        } else {
            vec![channel.target.clone()]
        };
        let (subject, text, html) = email::render(message);
        let now = clock::now_millis();
        let (mut sent, mut held, mut failures) = (0, 0, Vec::new());
        for to in &recipients {
            if message.kind != AlertKind::Test
                && first_attempt
                && !self.store.reserve_alert_email(to, now, self.cap, self.period_ms).await.map_err(store_error)?
            {
                let link = message.issue_url().unwrap_or_else(|| message.project_url());
                self.store.hold_alert_email(to, now, &message.headline(), &link).await.map_err(store_error)?;
                held += 1;
                continue;
            }
            let mail =
                OutgoingMail { to: to.clone(), subject: subject.clone(), text: text.clone(), html: html.clone() };
            match mailer.send(mail).await {
                Ok(()) => sent += 1,
                Err(e) => failures.push(format!("{to}: {e}")),
            }
        }
        if !failures.is_empty() {
            return Err(OutboundError::Transport(failures.join("; ")));
        }
        Ok(Answer { status: 250, body: format!("e-mailed {sent}, held {held} for the digest") })
    }

    /// Sends each recipient the digest of what the cap held back once their
    /// period is over; what cannot be sent is held again for the next pass.
    async fn send_digests(&self) {
        let Some(mailer) = &self.mailer else { return };
        let held = match self.store.take_alert_email_digests(clock::now_millis()).await {
            Ok(held) => held,
            Err(e) => return tracing::warn!("could not read held alert e-mails: {e}"),
        };
        let mut start = 0;
        while start < held.len() {
            let end =
                held[start..].iter().position(|h| h.address != held[start].address).map_or(held.len(), |n| start + n);
            let group: &[HeldEmail] = &held[start..end];
            let (subject, text, html) = email::digest(group, self.cap, self.period_ms);
            let to = group[0].address.clone();
            if let Err(e) = mailer.send(OutgoingMail { to: to.clone(), subject, text, html }).await {
                tracing::warn!("could not send the alert digest to {to}: {e}; keeping it for the next try");
                for item in group {
                    let _ = self.store.hold_alert_email(&item.address, item.held_at, &item.summary, &item.url).await;
                }
            }
            start = end;
        }
    }
}

/// What goes out for one attempt: the body and headers for the channel.
/// `recipient` is an e-mail delivery's one address; `first_attempt` says
/// whether the per-recipient cap counts it.
pub async fn send(
    outbound: &OutboundPolicy,
    email_sender: &EmailSender,
    channel: &AlertChannel,
    message: &AlertMessage,
    webhook_id: &str,
    recipient: Option<&str>,
    first_attempt: bool,
) -> Result<Answer, OutboundError> {
    let (body, headers) = match channel.kind {
        ChannelKind::Slack => (serde_json::to_vec(&slack::body(message)), Vec::new()),
        ChannelKind::Discord => (serde_json::to_vec(&discord::body(message)), Vec::new()),
        ChannelKind::Webhook => {
            let body = serde_json::to_vec(&message.webhook_json()).unwrap_or_default();
            let secret = channel.secret.as_deref().unwrap_or_default();
            let headers = webhook::headers(secret, webhook_id, clock::now_millis() / 1000, &body)
                .map_err(OutboundError::InvalidUrl)?;
            (Ok(body), headers)
        }
        ChannelKind::Email => return email_sender.send(channel, message, recipient, first_attempt).await,
    };
    let body = body.map_err(|e| OutboundError::Transport(format!("cannot encode the alert: {e}")))?;
    outbound.post(&channel.target, &headers, body).await
}

/// A one-line description of a failed attempt, with the answer's start.
pub fn failure_text(result: &Result<Answer, OutboundError>) -> Option<(Option<i64>, String)> {
    match result {
        Ok(answer) if answer.is_success() => None,
        Ok(answer) => {
            Some((Some(answer.status as i64), format!("answered {}: {}", answer.status, cut(answer.body.trim(), 300))))
        }
        Err(e) => Some((None, e.to_string())),
    }
}

/// How often held e-mail alerts are looked at for digests: every 30 s, or
/// twice a period when the period is shorter than a minute.
fn digest_every(period_ms: i64) -> Duration {
    Duration::from_millis((period_ms / 2).clamp(500, 30_000) as u64)
}

/// How often timed ignores are looked at: an issue ignored "for an hour"
/// comes back, and alerts, within this much of its hour.
const IGNORE_SWEEP_EVERY: Duration = Duration::from_secs(10);

pub struct DeliveryWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DeliveryWorker {
    pub fn start(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        outbound: OutboundPolicy,
        email: EmailSender,
        public_url: String,
        settings: DeliverySettings,
    ) -> DeliveryWorker {
        let (stop, stopped) = watch::channel(false);
        let node = format!("node-{}", crate::secrets::new_event_id());
        let worker = Worker { store, metrics, outbound: Arc::new(outbound), email, public_url, settings, node };
        let task = tokio::spawn(worker.run(stopped));
        DeliveryWorker { stop, task }
    }

    /// Stops claiming; attempts under way finish first (each within 10 s).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

#[derive(Clone)]
struct Worker {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    outbound: Arc<OutboundPolicy>,
    email: EmailSender,
    public_url: String,
    settings: DeliverySettings,
    node: String,
}

impl Worker {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        // Claims a previous run of this server left are released, so what
        // was pending is attempted at once (SQLite; leases on PostgreSQL).
        if let Err(e) = self.store.release_delivery_claims().await {
            tracing::warn!("could not release old delivery claims: {e}");
        }
        let mut attempts = tokio::task::JoinSet::new();
        let mut next_digest = tokio::time::Instant::now();
        let mut next_ignore_sweep = tokio::time::Instant::now();
        loop {
            while attempts.try_join_next().is_some() {}
            if tokio::time::Instant::now() >= next_ignore_sweep {
                next_ignore_sweep = tokio::time::Instant::now() + IGNORE_SWEEP_EVERY;
                match self.store.end_expired_ignores(clock::now_millis()).await {
                    Ok(0) => {}
                    Ok(ended) => tracing::info!(ended, "ignored issues whose time ran out are unresolved again"),
                    Err(e) => tracing::warn!("could not end timed ignores (tried again shortly): {e}"),
                }
            }
            if tokio::time::Instant::now() >= next_digest {
                next_digest = tokio::time::Instant::now() + digest_every(self.email.period_ms);
                let email = self.email.clone();
                attempts.spawn(async move { email.send_digests().await });
            }
            let room = self.settings.parallel.saturating_sub(attempts.len()) as i64;
            let mut claimed = 0;
            if room > 0 {
                match self.store.claim_deliveries(&self.node, clock::now_millis(), self.settings.lease_ms, room).await {
                    Ok(due) => {
                        claimed = due.len();
                        for delivery in due {
                            let worker = self.clone();
                            attempts.spawn(async move { worker.attempt(delivery).await });
                        }
                    }
                    Err(e) => tracing::warn!("could not claim alert deliveries: {e}"),
                }
            }
            // Straight on while there is more to claim; else wait a little.
            if claimed > 0 && (claimed as i64) == room {
                continue;
            }
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tokio::time::sleep(self.settings.poll) => {}
                Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
            }
        }
        while attempts.join_next().await.is_some() {}
        tracing::info!("alert delivery stopped");
    }

    async fn attempt(&self, delivery: DueDelivery) {
        let kind = delivery.channel.kind.as_str();
        let message = AlertMessage {
            kind: delivery.kind,
            project: delivery.project.clone(),
            issue: delivery.issue.clone(),
            event: delivery.event.clone(),
            rule: delivery.rule.clone(),
            public_url: self.public_url.clone(),
        };
        let result = send(
            &self.outbound,
            &self.email,
            &delivery.channel,
            &message,
            &delivery.webhook_id,
            delivery.recipient.as_deref(),
            delivery.attempts == 0,
        )
        .await;
        let now = clock::now_millis();
        let outcome = match failure_text(&result) {
            None => {
                self.metrics.alert_sent(kind);
                AttemptResult::Sent { status: result.ok().map(|a| a.status as i64) }
            }
            Some((status, detail)) => {
                let retry = delivery.attempts + 1;
                let wait = self.settings.backoff_ms(retry, random_unit());
                if now + wait - delivery.created_at > self.settings.give_up_after_ms {
                    self.metrics.alert_failed(kind);
                    tracing::warn!(delivery = delivery.id, "alert delivery given up after {retry} attempts: {detail}");
                    AttemptResult::Failed { status, detail }
                } else {
                    self.metrics.alert_retried(kind);
                    tracing::info!(delivery = delivery.id, "alert delivery failed ({detail}); retrying in {wait} ms");
                    AttemptResult::Retry { status, detail, next_attempt_at: now + wait }
                }
            }
        };
        match self.store.finish_delivery(delivery.id, &self.node, now, &outcome).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(delivery = delivery.id, "the claim on a delivery ran out before it finished"),
            Err(e) => tracing::warn!(delivery = delivery.id, "could not record a delivery attempt: {e}"),
        }
    }
}

/// A random number in [0, 1) for jitter.
fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).expect("the operating system's random number generator failed");
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_retry_with_jitter_and_a_cap() {
        let s = DeliverySettings::default();
        assert_eq!(s.backoff_ms(1, 0.999_999), 9_999);
        assert_eq!(s.backoff_ms(1, 0.0), 5_000);
        assert_eq!(s.backoff_ms(2, 0.0), 10_000);
        assert_eq!(s.backoff_ms(3, 0.0), 20_000);
        assert_eq!(s.backoff_ms(30, 0.0), 1_800_000);
        assert!(s.backoff_ms(30, 0.999) <= 3_600_000);
        for _ in 0..100 {
            let wait = s.backoff_ms(1, random_unit());
            assert!((5_000..=10_000).contains(&wait), "{wait}");
        }
    }
}
