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
//!
//! The writer also holds the ingestion keys handlers have seen
//! (`ingest_keys.rs`): inside each batch's transaction the store checks that
//! the batch's keys are still live; if one is not, nothing is stored, the
//! jobs of that key are refused and the others go again.

use crate::ingest_keys::IngestKeys;
use crate::memory_budget::Held;
use crate::metrics::Metrics;
use crate::store::{KeyedBatch, NewEvent, Store, StoreError, StoreOutcome};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

struct Job {
    events: Vec<NewEvent>,
    /// The ingestion key the events came with, checked once more before
    /// they are stored (`None`: nothing to check).
    key: Option<String>,
    reply: oneshot::Sender<Result<Vec<StoreOutcome>, SubmitError>>,
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
    /// The events' key was revoked (or its project deleted) since the
    /// request began: nothing was stored.
    KeyRevoked,
    Store(StoreError),
}

#[derive(Clone)]
pub struct Writer {
    sender: mpsc::Sender<Job>,
    capacity: usize,
    disk: Arc<DiskState>,
    keys: Arc<IngestKeys>,
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
        let keys = Arc::new(IngestKeys::default());
        let task = tokio::spawn(run(store, metrics, receiver, max_batch, disk.clone(), keys.clone()));
        (Writer { sender, capacity, disk, keys }, task)
    }

    /// The project `token` sends to, if it is live: from memory when this
    /// node has seen it, else from the database. A remembered key may have
    /// been revoked since; [`Writer::submit_keyed`] checks it again.
    pub async fn ingest_project(&self, store: &dyn Store, token: &str) -> Result<Option<i64>, StoreError> {
        if let Some(project_id) = self.keys.project_of(token) {
            return Ok(Some(project_id));
        }
        let target = store.ingest_target(token).await?;
        if let Some(target) = &target {
            self.keys.remember(token, target.project_id);
        }
        Ok(target.map(|t| t.project_id))
    }

    /// Whether `token` is live now, asked of the database (forgotten if
    /// not): for answers that store nothing, so never pass the writer's check.
    pub async fn confirm_key(&self, store: &dyn Store, token: &str) -> Result<bool, StoreError> {
        let live = !store.live_ingest_tokens(&[token]).await?.is_empty();
        if !live {
            self.keys.forget(token);
        }
        Ok(live)
    }

    /// Queues the events of one request and waits until all of them are
    /// committed; the outcomes are in the order given.
    pub async fn submit(&self, events: Vec<NewEvent>) -> Result<Vec<StoreOutcome>, SubmitError> {
        self.submit_job(events, None, None).await
    }

    /// The same for events that came with ingestion key `key`, holding
    /// `held` of the memory budget while queued: refused with
    /// [`SubmitError::KeyRevoked`] if the key is no longer live when their
    /// batch is stored.
    pub async fn submit_keyed(
        &self,
        events: Vec<NewEvent>,
        key: &str,
        held: Option<Held>,
    ) -> Result<Vec<StoreOutcome>, SubmitError> {
        self.submit_job(events, Some(key.to_string()), held).await
    }

    async fn submit_job(
        &self,
        events: Vec<NewEvent>,
        key: Option<String>,
        held: Option<Held>,
    ) -> Result<Vec<StoreOutcome>, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.sender.try_send(Job { events, key, reply, held }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
        })?;
        match answer.await {
            Ok(result) => result,
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
    keys: Arc<IngestKeys>,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    while receiver.recv_many(&mut jobs, max_batch).await > 0 {
        // The events' budget shares are given back once the batch is done.
        let held: Vec<Held> = jobs.iter_mut().filter_map(|j| j.held.take()).collect();
        let mut batch = Batch::of(std::mem::take(&mut jobs));
        loop {
            let started = Instant::now();
            let wanted = batch.keys();
            match store.store_keyed_events(&batch.events, &wanted).await {
                Ok(KeyedBatch::Stored(outcomes)) => {
                    disk.write_succeeded();
                    metrics.batch_committed(batch.events.len(), started.elapsed());
                    batch.answer(outcomes);
                }
                Ok(KeyedBatch::KeysRevoked(revoked)) => {
                    // Nothing was stored: the other jobs go again, in a
                    // transaction of their own.
                    let jobs = batch.replies.len();
                    batch = batch.refuse(&revoked, &keys);
                    if batch.replies.len() < jobs {
                        if !batch.replies.is_empty() {
                            continue;
                        }
                    } else {
                        // Keys the batch did not send: an error, not a loop.
                        let why = format!("the store refused keys the batch did not send: {revoked:?}");
                        for reply in batch.replies {
                            let _ = reply.send(Err(SubmitError::Store(StoreError::Unavailable(why.clone()))));
                        }
                    }
                }
                Err(StoreError::DiskFull(why)) => {
                    // Storing them one by one would only fail the same way,
                    // and a smaller one squeezing in would hide the state;
                    // refuse the batch whole (it was rolled back whole) and
                    // let clients retry.
                    disk.write_failed(&StoreError::DiskFull(why));
                    for reply in batch.replies {
                        let _ = reply.send(Err(SubmitError::Store(StoreError::DiskFull(
                            "no space left to store the event".into(),
                        ))));
                    }
                }
                Err(batch_error) => {
                    // One bad request must not sink its neighbours: retry
                    // each on its own transaction, so only the requests that
                    // really fail are refused, and each is still stored whole
                    // or not at all.
                    tracing::warn!(
                        "a batch of {} events failed ({batch_error}); storing them request by request",
                        batch.events.len()
                    );
                    batch.store_one_by_one(&*store, &metrics, &disk, &keys).await;
                }
            }
            break;
        }
        drop(held);
    }
    tracing::info!("ingest writer drained and stopped");
}

/// The jobs of one batch, their events side by side as the store takes
/// them.
struct Batch {
    events: Vec<NewEvent>,
    /// Per job: how many of `events` are its, its key, and where it waits.
    sizes: Vec<usize>,
    job_keys: Vec<Option<String>>,
    replies: Vec<oneshot::Sender<Result<Vec<StoreOutcome>, SubmitError>>>,
}

impl Batch {
    fn of(jobs: Vec<Job>) -> Batch {
        let mut batch = Batch { events: Vec::new(), sizes: Vec::new(), job_keys: Vec::new(), replies: Vec::new() };
        for job in jobs {
            batch.sizes.push(job.events.len());
            batch.events.extend(job.events);
            batch.job_keys.push(job.key);
            batch.replies.push(job.reply);
        }
        batch
    }

    /// The batch's distinct keys, to check once more as it is stored.
    fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.job_keys.iter().filter_map(|k| k.as_deref()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Answers each job its share of `outcomes`.
    fn answer(self, outcomes: Vec<StoreOutcome>) {
        let mut outcomes = outcomes.into_iter();
        for (reply, size) in self.replies.into_iter().zip(self.sizes) {
            let _ = reply.send(Ok(outcomes.by_ref().take(size).collect()));
        }
    }

    /// Answers the jobs that came with a `revoked` key (and forgets the
    /// key); the batch of the others is left.
    fn refuse(self, revoked: &[String], remembered: &IngestKeys) -> Batch {
        for key in revoked {
            remembered.forget(key);
        }
        let mut rest = Batch { events: Vec::new(), sizes: Vec::new(), job_keys: Vec::new(), replies: Vec::new() };
        let mut events = self.events.into_iter();
        for ((size, key), reply) in self.sizes.into_iter().zip(self.job_keys).zip(self.replies) {
            let job_events = events.by_ref().take(size);
            if key.as_ref().is_some_and(|k| revoked.contains(k)) {
                job_events.for_each(drop);
                let _ = reply.send(Err(SubmitError::KeyRevoked));
            } else {
                rest.events.extend(job_events);
                rest.sizes.push(size);
                rest.job_keys.push(key);
                rest.replies.push(reply);
            }
        }
        rest
    }

    /// Stores each job in a transaction of its own, answering each.
    async fn store_one_by_one(self, store: &dyn Store, metrics: &Metrics, disk: &DiskState, remembered: &IngestKeys) {
        let mut rest = self.events.as_slice();
        for ((size, key), reply) in self.sizes.into_iter().zip(self.job_keys).zip(self.replies) {
            let (request, tail) = rest.split_at(size);
            rest = tail;
            let started = Instant::now();
            let keys: Vec<&str> = key.as_deref().into_iter().collect();
            let result = match store.store_keyed_events(request, &keys).await {
                Ok(KeyedBatch::Stored(outcomes)) => {
                    disk.write_succeeded();
                    metrics.batch_committed(request.len(), started.elapsed());
                    Ok(outcomes)
                }
                Ok(KeyedBatch::KeysRevoked(revoked)) => {
                    revoked.iter().for_each(|k| remembered.forget(k));
                    Err(SubmitError::KeyRevoked)
                }
                Err(e) => {
                    if matches!(e, StoreError::DiskFull(_)) {
                        disk.write_failed(&e);
                    }
                    Err(SubmitError::Store(e))
                }
            };
            let _ = reply.send(result);
        }
    }
}
