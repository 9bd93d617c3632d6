//! The process-wide budget for buffered message bytes (`--max-buffered`): incoming messages
//! that are still arriving (fragments being reassembled, a large frame being read) are charged
//! to it, so many clients together cannot take the process's memory. A connection holds a
//! [`Charge`]; growing it past the budget fails (the connection is then closed with 1013), and
//! dropping it gives the bytes back.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The default budget: 256 MiB.
pub const DEFAULT_LIMIT: usize = 256 << 20;

/// A budget: bytes charged and the limit.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: AtomicUsize,
}

/// The process's budget.
pub static GLOBAL: Budget = Budget::new(DEFAULT_LIMIT);

impl Budget {
    pub const fn new(limit: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
        }
    }

    /// Set the limit (at startup).
    pub fn set_limit(&self, bytes: usize) {
        self.limit.store(bytes, Ordering::Relaxed);
    }

    /// Bytes charged now, by all holders.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// A new, empty charge against this budget.
    pub fn charge(&'static self) -> Charge {
        Charge {
            budget: self,
            bytes: 0,
        }
    }
}

/// Bytes one holder has charged to a budget; given back when dropped.
#[derive(Debug)]
pub struct Charge {
    budget: &'static Budget,
    bytes: usize,
}

impl Default for Charge {
    fn default() -> Charge {
        GLOBAL.charge()
    }
}

impl Charge {
    /// Make the charge `bytes`. Growing fails, leaving the charge as it was, when the budget
    /// has no room for the difference; shrinking always succeeds.
    pub fn set(&mut self, bytes: usize) -> Result<(), Exhausted> {
        let b = self.budget;
        if bytes <= self.bytes {
            b.used.fetch_sub(self.bytes - bytes, Ordering::Relaxed);
            self.bytes = bytes;
            return Ok(());
        }
        let more = bytes - self.bytes;
        let limit = b.limit.load(Ordering::Relaxed);
        b.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(more).filter(|&total| total <= limit)
            })
            .map_err(|_| Exhausted { limit })?;
        self.bytes = bytes;
        Ok(())
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// The budget has no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    pub limit: usize,
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the process-wide limit for buffered messages (--max-buffered, {} bytes) is reached",
            self.limit
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_grow_within_the_limit_shrink_and_are_given_back() {
        let budget: &'static Budget = Box::leak(Box::new(Budget::new(1000)));
        let mut a = budget.charge();
        let mut b = budget.charge();
        assert_eq!(a.set(600), Ok(()));
        assert_eq!(b.set(500), Err(Exhausted { limit: 1000 }));
        assert_eq!(b.bytes(), 0, "a failed growth leaves the charge as it was");
        assert_eq!(b.set(400), Ok(()));
        assert_eq!(budget.used(), 1000);
        assert_eq!(a.set(100), Ok(()), "shrinking always works");
        assert_eq!(b.set(900), Ok(()));
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
