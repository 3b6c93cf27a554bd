//! `booboo serve`: open the store, start the writer, listen, and on SIGINT
//! or SIGTERM stop accepting, finish what was accepted, then exit.

use crate::alerts::deliver::{DeliverySettings, DeliveryWorker};
use crate::app::app;
use crate::config::{Config, SETUP_LINK_LIFETIME_MS};
use crate::connections::{self, ConnectionLimits};
use crate::group_commit::Writer;
use crate::mail::Mailer;
use crate::memory_budget::MemoryBudget;
use crate::metrics::Metrics;
use crate::payload_dictionaries::PayloadDictionaries;
use crate::pruning::Pruning;
use crate::retention::{Retention, RetentionSettings};
use crate::state::AppState;
use crate::store::{self, Store};
use crate::{clock, secrets};
use std::sync::Arc;
use std::time::Duration;

pub async fn serve(config: Config) -> Result<(), String> {
    // One server per SQLite database: `booboo restore` checks this lock too.
    let _lock = match crate::backup::sqlite_file(&config.database_url) {
        Some(db) => Some(crate::backup::lock_database(&db)?),
        None => None,
    };
    // A bad --smtp-url stops the start here, not at the first e-mail.
    let mailer = Mailer::from_config(&config)?.map(Arc::new);
    let store = open_store(&config).await?;
    // Quotas: the installation's rate limit, on all projects together.
    store.set_installation_rate_limit(config.rate_limit);
    let metrics = Arc::new(Metrics::default());
    // Shedding load: below this much free space ingest refuses events.
    metrics.shedding().watch_free_disk(&config.data_dir, config.min_free_disk);
    let (writer, writer_task) = Writer::start(store.clone(), metrics.clone(), config.queue_capacity, config.max_batch);
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let state = AppState {
        store: store.clone(),
        writer,
        metrics: metrics.clone(),
        config: Arc::new(config.clone()),
        mailer: mailer.clone(),
    };
    tracing::info!(store = store.backend().as_str(), database = %crate::store::redact_url(&config.database_url), "store ready");
    match &mailer {
        Some(mailer) => tracing::info!(smtp = %mailer.describe(), "e-mail enabled"),
        None => {
            tracing::info!("e-mail disabled: set --smtp-url and --email-from to send password resets and invitations")
        }
    }
    // Tests and scripts read this line to learn the port when binding to :0.
    println!("booboo listening on http://{address}");

    announce_setup_link(&*store, &config).await?;
    let pruning = Pruning::start(store.clone(), metrics.clone());
    let dictionaries = PayloadDictionaries::start(store.clone());
    let retention = Retention::start(store.clone(), metrics.clone(), RetentionSettings::from_config(&config));
    let delivery = DeliveryWorker::start(
        store.clone(),
        metrics.clone(),
        config.outbound_allow.clone(),
        crate::alerts::deliver::EmailSender {
            mailer: mailer.clone(),
            store: store.clone(),
            cap: config.alert_email_cap as i64,
            period_ms: config.alert_email_period.as_millis() as i64,
        },
        config.public_url.clone(),
        DeliverySettings { retry_first_ms: config.alert_retry_first_ms as i64, ..DeliverySettings::default() },
    );

    let limits = ConnectionLimits {
        header_timeout: config.header_timeout,
        body_timeout: config.body_timeout,
        idle_timeout: config.idle_timeout,
        max_connections: config.max_connections,
    };
    let budget = MemoryBudget::new(config.max_inflight_bytes);
    metrics.watch_memory_budget(budget.clone());
    // Each request carries its peer address (for the sign-in limits) and its
    // share of the memory budget.
    connections::serve(listener, app(state), limits, budget, shutdown_signal()).await;

    pruning.stop().await;
    dictionaries.stop().await;
    retention.stop().await;
    delivery.stop().await;
    tracing::info!("no longer accepting; storing what was accepted");
    if tokio::time::timeout(Duration::from_secs(30), writer_task).await.is_err() {
        return Err("the writer did not finish within 30 seconds".into());
    }
    tracing::info!("stopped");
    Ok(())
}

/// Opens the configured store, creating the data directory for SQLite.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, String> {
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}", config.data_dir.display()))?;
    }
    store::open(&config.database_url).await.map_err(|e| e.to_string())
}

/// While no user exists, prints a one-time link that creates the first
/// administrator. Only someone who can read this server's output has it.
async fn announce_setup_link(store: &dyn Store, config: &Config) -> Result<(), String> {
    if store.user_count().await.map_err(|e| e.to_string())? > 0 {
        return Ok(());
    }
    let token = secrets::new_session_token();
    let now = clock::now_millis();
    store
        .add_setup_token(&secrets::token_hash(&token), now, now + SETUP_LINK_LIFETIME_MS)
        .await
        .map_err(|e| e.to_string())?;
    println!("No user exists yet. Create the first administrator with this one-time link (it works for 24 hours):");
    println!("{}/setup/{token}", config.public_url);
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
