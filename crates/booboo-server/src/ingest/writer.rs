//! Group commit: handlers hand their event to one writer task through a
//! bounded queue and wait; the writer stores whatever has queued up in one
//! transaction and answers each handler once it has committed. Durability
//! costs one commit per batch, not per event.
//!
//! An event is acknowledged only once the COMMIT of its batch returned
//! success. When the disk is full, the whole batch is refused ("disk full",
//! retried by the client later), the writer remembers it for `/healthz`, and
//! the next batch simply tries again: once space is freed, storing resumes
//! without a restart.

use crate::metrics::Metrics;
use crate::store::{NewEvent, Store, StoreError, StoreOutcome};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

struct Job {
    event: NewEvent,
    reply: oneshot::Sender<Result<StoreOutcome, StoreError>>,
}

#[derive(Debug)]
pub enum SubmitError {
    /// The queue is full: the caller should answer "retry later".
    QueueFull,
    /// The writer is gone (shutting down).
    Closed,
    Store(StoreError),
}

#[derive(Clone)]
pub struct Writer {
    sender: mpsc::Sender<Job>,
    capacity: usize,
    disk: Arc<DiskState>,
}

/// Whether the last write failed for want of disk space.
#[derive(Default)]
struct DiskState {
    full: AtomicBool,
}

impl DiskState {
    fn write_failed(&self, error: &StoreError) {
        if !self.full.swap(true, Ordering::AcqRel) {
            tracing::error!(
                "disk full: refusing events with 503 and Retry-After until space is freed; \
                 nothing refused was stored ({error})"
            );
        }
    }

    fn write_succeeded(&self) {
        if self.full.swap(false, Ordering::AcqRel) {
            tracing::warn!("disk space is back: storing events again");
        }
    }
}

impl Writer {
    /// Starts the writer task. It ends once every `Writer` clone is dropped
    /// and the queue is drained.
    pub fn start(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        capacity: usize,
        max_batch: usize,
    ) -> (Writer, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(capacity);
        let disk = Arc::new(DiskState::default());
        let task = tokio::spawn(run(store, metrics, receiver, max_batch, disk.clone()));
        (Writer { sender, capacity, disk }, task)
    }

    /// Queues an event and waits until it is committed.
    pub async fn submit(&self, event: NewEvent) -> Result<StoreOutcome, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.sender.try_send(Job { event, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
        })?;
        match answer.await {
            Ok(result) => result.map_err(SubmitError::Store),
            Err(_) => Err(SubmitError::Closed),
        }
    }

    pub fn depth(&self) -> usize {
        self.capacity - self.sender.capacity()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the last write failed because the disk is full.
    pub fn disk_full(&self) -> bool {
        self.disk.full.load(Ordering::Acquire)
    }

    /// Tells the writer that a probe found space again (from `/healthz`).
    pub fn disk_space_back(&self) {
        self.disk.write_succeeded();
    }
}

async fn run(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    mut receiver: mpsc::Receiver<Job>,
    max_batch: usize,
    disk: Arc<DiskState>,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    while receiver.recv_many(&mut jobs, max_batch).await > 0 {
        let (events, replies): (Vec<NewEvent>, Vec<_>) = jobs.drain(..).map(|j| (j.event, j.reply)).unzip();
        let started = Instant::now();
        match store.store_events(&events).await {
            Ok(outcomes) => {
                disk.write_succeeded();
                metrics.batch_committed(events.len(), started.elapsed());
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(StoreError::DiskFull(why)) => {
                // Storing them one by one would only fail the same way, and
                // a smaller one squeezing in would hide the state; refuse the
                // batch whole (it was rolled back whole) and let clients retry.
                let error = StoreError::DiskFull(why);
                disk.write_failed(&error);
                for reply in replies {
                    let _ = reply.send(Err(StoreError::DiskFull("no space left to store the event".into())));
                }
            }
            Err(batch_error) => {
                // One bad event must not sink its neighbours: retry each on
                // its own, so only the events that really fail are refused.
                tracing::warn!("a batch of {} events failed ({batch_error}); storing them one by one", events.len());
                for (event, reply) in events.iter().zip(replies) {
                    let started = Instant::now();
                    let result = store.store_events(std::slice::from_ref(event)).await;
                    match &result {
                        Ok(_) => {
                            disk.write_succeeded();
                            metrics.batch_committed(1, started.elapsed());
                        }
                        Err(e @ StoreError::DiskFull(_)) => disk.write_failed(e),
                        Err(_) => {}
                    }
                    let _ = reply.send(result.map(|mut o| o.pop().unwrap_or(StoreOutcome::Duplicate)));
                }
            }
        }
    }
    tracing::info!("ingest writer drained and stopped");
}
