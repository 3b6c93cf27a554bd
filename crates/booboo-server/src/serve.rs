//! `booboo serve`: open the store, start the writer, listen, and on SIGINT
//! or SIGTERM stop accepting, finish what was accepted, then exit.

use crate::app::{app, AppState};
use crate::cli::open_store;
use crate::config::Config;
use crate::ingest::writer::Writer;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

pub async fn serve(config: Config) -> Result<(), String> {
    let store = open_store(&config).await?;
    let metrics = Arc::new(Metrics::default());
    let (writer, writer_task) = Writer::start(store.clone(), metrics.clone(), config.queue_capacity, config.max_batch);
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let state = AppState { store: store.clone(), writer, metrics, config: Arc::new(config.clone()) };
    tracing::info!(store = store.backend().as_str(), database = %crate::store::redact_url(&config.database_url), "store ready");
    // Tests and scripts read this line to learn the port when binding to :0.
    println!("booboo listening on http://{address}");

    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;

    tracing::info!("no longer accepting; storing what was accepted");
    if tokio::time::timeout(Duration::from_secs(30), writer_task).await.is_err() {
        return Err("the writer did not finish within 30 seconds".into());
    }
    tracing::info!("stopped");
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
