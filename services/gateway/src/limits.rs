//! Load shedding by renders, not by requests.
//!
//! `MAX_CONCURRENT_REQUESTS` bounds the renders the gateway waits for: identical requests
//! coalesce into one render, so they share one permit however many of them wait (up to
//! [`MAX_WAITERS_PER_RENDER`], which bounds the waiters on any one render separately).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests that may wait on one render at once.
pub const MAX_WAITERS_PER_RENDER: usize = 256;

/// Why a request may not wait.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every permit is held by other renders.
    Overloaded,
    /// This render already has [`MAX_WAITERS_PER_RENDER`] waiters.
    TooManyWaiters,
}

/// A waiter's share of its render's permit; the permit is released with the last share.
pub type Slot = Arc<OwnedSemaphorePermit>;

pub struct RenderSlots {
    limiter: Arc<Semaphore>,
    permits: usize,
    max_waiters: usize,
    held: Mutex<HashMap<String, Weak<OwnedSemaphorePermit>>>,
}

impl RenderSlots {
    pub fn new(permits: usize, max_waiters: usize) -> Self {
        Self {
            limiter: Arc::new(Semaphore::new(permits)),
            permits,
            max_waiters,
            held: Mutex::default(),
        }
    }

    /// A share of `render_id`'s permit: the one its other waiters hold, or a new one.
    pub fn enter(&self, render_id: &str) -> Result<Slot, Refusal> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = held.get(render_id).and_then(Weak::upgrade) {
            // `slot` itself is one of the counted references.
            if Arc::strong_count(&slot) > self.max_waiters {
                return Err(Refusal::TooManyWaiters);
            }
            return Ok(slot);
        }
        let permit = self
            .limiter
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Overloaded)?;
        let slot = Arc::new(permit);
        // Entries of finished renders are dropped once they outnumber the live ones.
        if held.len() >= 2 * self.permits {
            held.retain(|_, weak| weak.strong_count() > 0);
        }
        held.insert(render_id.to_owned(), Arc::downgrade(&slot));
        Ok(slot)
    }

    /// Renders being waited for.
    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.permits - self.limiter.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_requests_share_one_permit() {
        let slots = RenderSlots::new(2, 100);
        let waiters: Vec<Slot> = (0..12).map(|_| slots.enter("a").unwrap()).collect();
        assert_eq!(slots.in_use(), 1);
        let b = slots.enter("b").unwrap();
        assert_eq!(slots.in_use(), 2);
        assert_eq!(slots.enter("c").unwrap_err(), Refusal::Overloaded);
        // The permit goes with the last of a render's waiters, not before.
        let mut waiters = waiters;
        waiters.truncate(1);
        assert_eq!(slots.in_use(), 2);
        drop(waiters);
        assert_eq!(slots.in_use(), 1);
        assert!(slots.enter("c").is_ok());
        drop(b);
    }

    #[test]
    fn waiters_on_one_render_are_bounded() {
        let slots = RenderSlots::new(4, 3);
        let held: Vec<Slot> = (0..3).map(|_| slots.enter("a").unwrap()).collect();
        assert_eq!(slots.enter("a").unwrap_err(), Refusal::TooManyWaiters);
        assert_eq!(held.len(), 3);
        assert!(slots.enter("b").is_ok());
    }

    #[test]
    fn finished_renders_do_not_accumulate() {
        let slots = RenderSlots::new(2, 10);
        for i in 0..1000 {
            drop(slots.enter(&i.to_string()).unwrap());
        }
        assert!(slots.held.lock().unwrap().len() <= 4);
        assert_eq!(slots.in_use(), 0);
    }
}
