//! The pruning task: deletes expired sessions, setup links, password links,
//! invitations and sign-in counters whose window ended — once at start, then
//! every ten minutes, until shutdown. Expired rows already grant nothing
//! (every read checks the time); pruning keeps the tables small. On several
//! nodes each prunes; the deletes are idempotent. On the same beat it
//! refreshes the query planner's statistics, which grow stale the same way.

use crate::clock;
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// The running task; [`Pruning::stop`] ends it.
pub struct Pruning {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Pruning {
    pub fn start(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Pruning {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                prune_once(&*store, &metrics).await;
                if let Err(e) = store.refresh_planner_statistics().await {
                    tracing::warn!("refreshing the query planner's statistics failed (retried in ten minutes): {e}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(PRUNE_INTERVAL) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        Pruning { stop, task }
    }

    /// Stops the task and waits for a pass in progress to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn prune_once(store: &dyn Store, metrics: &Metrics) {
    match store.prune_expired(clock::now_millis()).await {
        Ok(pruned) => {
            metrics.pruned("sessions", pruned.sessions);
            metrics.pruned("links", pruned.links);
            metrics.pruned("sign_in_limits", pruned.sign_in_limits);
            tracing::info!(
                sessions = pruned.sessions,
                links = pruned.links,
                sign_in_limits = pruned.sign_in_limits,
                "pruned expired sessions, links and sign-in counters"
            );
        }
        Err(e) => {
            metrics.prune_failed();
            tracing::warn!("pruning expired sessions and links failed (retried in ten minutes): {e}");
        }
    }
}
