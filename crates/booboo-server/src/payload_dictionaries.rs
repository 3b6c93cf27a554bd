//! The payload dictionary task: keeps each node's payload codec in step
//! with the dictionaries in the database, and trains the installation's
//! dictionary once it has stored enough events (`store/stored_payload.rs`
//! says why and how bodies use it). Every [`REFRESH_SECONDS`] it loads
//! dictionaries other nodes stored; a new one compresses bodies only once it
//! has settled, so every node can read what it compresses. Training runs
//! off the async threads; two nodes training at once store two
//! dictionaries, both readable, and the newer compresses.

use crate::clock;
use crate::store::stored_payload::{self, REFRESH_SECONDS};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Stored events needed before training: fewer make a dictionary that
/// fits its samples rather than the installation.
pub const TRAIN_AFTER_EVENTS: i64 = 1_000;
/// Samples are the newest events, up to this many bytes of JSON: as much
/// also suffices to train on (160 events of 50 KB), and it keeps training
/// to a second or so of one core and some tens of MiB.
pub const SAMPLE_BYTES: usize = 8 << 20;

/// The running task; [`PayloadDictionaries::stop`] ends it.
pub struct PayloadDictionaries {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl PayloadDictionaries {
    pub fn start(store: Arc<dyn Store>) -> PayloadDictionaries {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = refresh_once(&store, clock::now_millis(), TRAIN_AFTER_EVENTS).await {
                    tracing::warn!("payload dictionaries: {e} (tried again in {REFRESH_SECONDS} s)");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(REFRESH_SECONDS)) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        PayloadDictionaries { stop, task }
    }

    /// Stops the task and waits for a pass in progress to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One pass: trains the installation's dictionary when it has none and at
/// least `train_after` stored events (or [`SAMPLE_BYTES`] of them), then
/// loads every dictionary into the store's codec. Returns the id the codec compresses with, if any.
pub async fn refresh_once(store: &Arc<dyn Store>, now: i64, train_after: i64) -> Result<Option<i64>, String> {
    let mut dictionaries = store.payload_dictionaries().await.map_err(|e| e.to_string())?;
    if dictionaries.is_empty() {
        let samples = store.payload_samples(train_after, SAMPLE_BYTES).await.map_err(|e| e.to_string())?;
        let bytes: usize = samples.iter().map(String::len).sum();
        if samples.len() as i64 >= train_after || bytes >= SAMPLE_BYTES {
            let count = samples.len();
            let trained = tokio::task::spawn_blocking(move || stored_payload::train(&samples))
                .await
                .map_err(|e| format!("training stopped: {e}"))?;
            let mut dictionary = trained?;
            dictionary.created_at = now;
            store.add_payload_dictionary(&dictionary).await.map_err(|e| e.to_string())?;
            tracing::info!(
                id = dictionary.id,
                samples = count,
                bytes = dictionary.bytes.len(),
                "trained a payload dictionary; new events use it once every node has it"
            );
            dictionaries = store.payload_dictionaries().await.map_err(|e| e.to_string())?;
        }
    }
    let before = store.payload_codec().current();
    let now_using = store.payload_codec().install(&dictionaries, now);
    if now_using != before {
        tracing::info!(id = now_using, "payloads are now compressed with a trained dictionary");
    }
    Ok(now_using)
}
