//! What every request handler shares: the store, the writer, the metrics,
//! the configuration and the mailer. Handlers import it from here; the
//! router (`app.rs`) only wires their routes, so no handler depends on the
//! file that assembles them.

use crate::alerts::deliver::EmailSender;
use crate::config::Config;
use crate::group_commit::Writer;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    /// Present when `--smtp-url` is set; without it nothing sends e-mail.
    pub mailer: Option<Arc<Mailer>>,
}

impl AppState {
    /// What e-mail alert channels send through.
    pub fn email_sender(&self) -> EmailSender {
        EmailSender {
            mailer: self.mailer.clone(),
            store: self.store.clone(),
            cap: self.config.alert_email_cap as i64,
            period_ms: self.config.alert_email_period.as_millis() as i64,
        }
    }
}
