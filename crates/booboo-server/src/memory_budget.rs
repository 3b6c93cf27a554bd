//! One budget, in bytes, for what hostile or merely numerous clients can make
//! the server hold: request bodies being read (and their decompressed form)
//! and events waiting in the writer's queue. Nothing waits for room: a
//! request that does not fit is refused with "retry later", so memory stays
//! bounded however many clients send at once.
//!
//! A [`Reservation`] is one request's share. The connection layer charges
//! every body frame to it as the frame arrives; a handler may reserve a
//! declared `Content-Length` up front (so an over-budget request is refused
//! before its body is read), and frames then use that credit. What a
//! reservation holds returns to the budget when it is dropped, or moves into
//! a [`Held`] that an event carries until the writer has stored it.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

/// The budget had no room for the bytes asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    pub limit: usize,
}

impl fmt::Display for OverBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the server holds {} bytes of requests and queued events already", self.limit)
    }
}

impl std::error::Error for OverBudget {}

impl MemoryBudget {
    pub fn new(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget { limit, used: AtomicUsize::new(0) })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self, n: usize) -> Result<(), OverBudget> {
        let over = OverBudget { limit: self.limit };
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let wanted = used.checked_add(n).filter(|w| *w <= self.limit).ok_or(over)?;
            match self.used.compare_exchange_weak(used, wanted, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One request's share of the budget.
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    state: Mutex<Share>,
}

#[derive(Default)]
struct Share {
    /// Bytes taken from the budget.
    held: usize,
    /// The part of `held` reserved ahead for body frames not yet arrived.
    credit: usize,
    /// Frames that arrive from now on are being thrown away, not kept.
    discarding: bool,
}

impl Reservation {
    pub fn new(budget: Arc<MemoryBudget>) -> Arc<Reservation> {
        Arc::new(Reservation { budget, state: Mutex::new(Share::default()) })
    }

    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    fn share(&self) -> std::sync::MutexGuard<'_, Share> {
        // The lock guards plain counters; a panic elsewhere cannot leave them torn.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves `n` more bytes that the holder is about to keep in memory.
    pub fn reserve(&self, n: usize) -> Result<(), OverBudget> {
        self.budget.take(n)?;
        self.share().held += n;
        Ok(())
    }

    /// Reserves room for `n` body bytes before they are read.
    pub fn reserve_ahead(&self, n: usize) -> Result<(), OverBudget> {
        self.budget.take(n)?;
        let mut share = self.share();
        share.held += n;
        share.credit += n;
        Ok(())
    }

    /// Accounts for a body frame of `n` bytes: from the credit reserved
    /// ahead, else from the budget.
    pub fn charge_frame(&self, n: usize) -> Result<(), OverBudget> {
        let mut share = self.share();
        if share.discarding {
            return Ok(());
        }
        let from_credit = n.min(share.credit);
        share.credit -= from_credit;
        let rest = n - from_credit;
        if rest > 0 {
            self.budget.take(rest)?;
            share.held += rest;
        }
        Ok(())
    }

    /// The rest of the body will be read and thrown away: its frames cost nothing.
    pub fn discard_from_now(&self) {
        self.share().discarding = true;
    }

    /// Gives back all but `keep` bytes (what was read has been dropped).
    pub fn shrink_to(&self, keep: usize) {
        let mut share = self.share();
        if share.held > keep {
            self.budget.give_back(share.held - keep);
            share.held = keep;
        }
        share.credit = share.credit.min(share.held);
    }

    /// Moves `n` bytes of this share into a [`Held`] that outlives the
    /// request (an event in the writer's queue), reserving what is missing.
    pub fn split(&self, n: usize) -> Result<Held, OverBudget> {
        let mut share = self.share();
        let moved = n.min(share.held);
        if n > moved {
            self.budget.take(n - moved)?;
        }
        share.held -= moved;
        share.credit = share.credit.min(share.held);
        Ok(Held { budget: self.budget.clone(), bytes: n })
    }

    pub fn held(&self) -> usize {
        self.share().held
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let held = self.share().held;
        self.budget.give_back(held);
    }
}

/// Bytes of the budget an event holds until it is stored.
pub struct Held {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl Held {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_budget_and_give_everything_back() {
        let budget = MemoryBudget::new(100);
        let a = Reservation::new(budget.clone());
        a.reserve_ahead(60).unwrap();
        a.charge_frame(50).unwrap();
        assert_eq!(budget.used(), 60, "frames use the credit first");
        let b = Reservation::new(budget.clone());
        assert_eq!(b.reserve_ahead(50), Err(OverBudget { limit: 100 }));
        b.charge_frame(40).unwrap();
        assert!(b.charge_frame(1).is_err());
        let held = a.split(30).unwrap();
        a.shrink_to(0);
        assert_eq!(budget.used(), 70);
        drop(b);
        drop(a);
        assert_eq!(budget.used(), 30, "the queued event still holds its share");
        drop(held);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn discarded_frames_cost_nothing() {
        let budget = MemoryBudget::new(10);
        let r = Reservation::new(budget.clone());
        r.discard_from_now();
        r.charge_frame(1_000).unwrap();
        assert_eq!(budget.used(), 0);
    }
}
