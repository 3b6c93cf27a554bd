//! Group commit: handlers hand their event to one writer task through a
//! bounded queue and wait; the writer stores whatever has queued up in one
//! transaction and answers each handler once it has committed. Durability
//! costs one commit per batch, not per event.

use crate::memory_budget::Held;
use crate::metrics::Metrics;
use crate::store::{NewEvent, Store, StoreError, StoreOutcome};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

struct Job {
    event: NewEvent,
    reply: oneshot::Sender<Result<StoreOutcome, StoreError>>,
    /// The event's share of the memory budget, given back once it is stored
    /// (or refused), even if the client that sent it has gone.
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
        let task = tokio::spawn(run(store, metrics, receiver, max_batch));
        (Writer { sender, capacity }, task)
    }

    /// Queues an event and waits until it is committed.
    pub async fn submit(&self, event: NewEvent) -> Result<StoreOutcome, SubmitError> {
        self.submit_holding(event, None).await
    }

    /// The same, the event holding `held` of the memory budget while queued.
    pub async fn submit_holding(&self, event: NewEvent, held: Option<Held>) -> Result<StoreOutcome, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.sender.try_send(Job { event, reply, held }).map_err(|e| match e {
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
}

async fn run(store: Arc<dyn Store>, metrics: Arc<Metrics>, mut receiver: mpsc::Receiver<Job>, max_batch: usize) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    while receiver.recv_many(&mut jobs, max_batch).await > 0 {
        // The events' budget shares are given back once the batch is done.
        let held: Vec<Held> = jobs.iter_mut().filter_map(|j| j.held.take()).collect();
        let (events, replies): (Vec<NewEvent>, Vec<_>) = jobs.drain(..).map(|j| (j.event, j.reply)).unzip();
        let started = Instant::now();
        match store.store_events(&events).await {
            Ok(outcomes) => {
                metrics.batch_committed(events.len(), started.elapsed());
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(batch_error) => {
                // One bad event must not sink its neighbours: retry each on
                // its own, so only the events that really fail are refused.
                tracing::warn!("a batch of {} events failed ({batch_error}); storing them one by one", events.len());
                for (event, reply) in events.iter().zip(replies) {
                    let started = Instant::now();
                    let result = store.store_events(std::slice::from_ref(event)).await;
                    if result.is_ok() {
                        metrics.batch_committed(1, started.elapsed());
                    }
                    let _ = reply.send(result.map(|mut o| o.pop().unwrap_or(StoreOutcome::Duplicate)));
                }
            }
        }
        drop(held);
    }
    tracing::info!("ingest writer drained and stopped");
}
