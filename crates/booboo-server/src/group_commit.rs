//! Group commit: handlers hand their events to one writer task through a
//! bounded queue and wait; the writer stores whatever has queued up in one
//! transaction and answers each handler once it has committed. Durability
//! costs one commit per batch, not per event.
//!
//! A handler's events (one, or every event of an envelope) are one job and
//! are never split: they commit together or not at all.
//!
//! An event is acknowledged only once the COMMIT of its batch returned
//! success. When the disk is full, the whole batch is refused ("disk full",
//! retried by the client later), the writer remembers it for `/healthz`, and
//! the next batch simply tries again: once space is freed, storing resumes
//! without a restart.

use crate::memory_budget::Held;
use crate::metrics::Metrics;
use crate::store::{NewEvent, Store, StoreError, StoreOutcome};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

struct Job {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<StoreOutcome>, StoreError>>,
    /// The events' share of the memory budget, given back once they are
    /// stored (or refused), even if the client that sent them has gone.
    held: Option<Held>,
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

    /// Queues the events of one request and waits until all of them are
    /// committed; the outcomes are in the order given.
    pub async fn submit(&self, events: Vec<NewEvent>) -> Result<Vec<StoreOutcome>, SubmitError> {
        self.submit_holding(events, None).await
    }

    /// The same, the events holding `held` of the memory budget while queued.
    pub async fn submit_holding(
        &self,
        events: Vec<NewEvent>,
        held: Option<Held>,
    ) -> Result<Vec<StoreOutcome>, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.sender.try_send(Job { events, reply, held }).map_err(|e| match e {
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
        // The events' budget shares are given back once the batch is done.
        let held: Vec<Held> = jobs.iter_mut().filter_map(|j| j.held.take()).collect();
        let sizes: Vec<usize> = jobs.iter().map(|j| j.events.len()).collect();
        let (requests, replies): (Vec<Vec<NewEvent>>, Vec<_>) = jobs.drain(..).map(|j| (j.events, j.reply)).unzip();
        let events: Vec<NewEvent> = requests.into_iter().flatten().collect();
        let started = Instant::now();
        match store.store_events(&events).await {
            Ok(outcomes) => {
                disk.write_succeeded();
                metrics.batch_committed(events.len(), started.elapsed());
                let mut outcomes = outcomes.into_iter();
                for (reply, size) in replies.into_iter().zip(sizes) {
                    let _ = reply.send(Ok(outcomes.by_ref().take(size).collect()));
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
                // One bad request must not sink its neighbours: retry each on
                // its own transaction, so only the requests that really fail
                // are refused, and each is still stored whole or not at all.
                tracing::warn!(
                    "a batch of {} events failed ({batch_error}); storing them request by request",
                    events.len()
                );
                let mut rest = events.as_slice();
                for (reply, size) in replies.into_iter().zip(sizes) {
                    let (request, tail) = rest.split_at(size);
                    rest = tail;
                    let started = Instant::now();
                    let result = store.store_events(request).await;
                    match &result {
                        Ok(_) => {
                            disk.write_succeeded();
                            metrics.batch_committed(request.len(), started.elapsed());
                        }
                        Err(e @ StoreError::DiskFull(_)) => disk.write_failed(e),
                        Err(_) => {}
                    }
                    let _ = reply.send(result);
                }
            }
        }
        drop(held);
    }
    tracing::info!("ingest writer drained and stopped");
}
