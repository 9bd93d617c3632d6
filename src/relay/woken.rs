//! The two directions of a session, polled only when woken. `select!` polls every branch at
//! every wake-up of the task, so a message arriving for one direction also polled the other
//! (its reader, its writer, its timers and watches), which is wasted work when each wake-up
//! carries one message (fan-in: many clients, one message each now and then). Each direction
//! gets a waker of its own that marks it and wakes the task; the task polls the marked ones.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Branches 0 and 1 of one task, and which of them have been woken.
pub(crate) struct Pair {
    woken: Arc<Woken>,
    wakers: [Waker; 2],
}

struct Woken {
    /// Bit `i`: branch `i` was woken since it was last polled.
    flags: AtomicU8,
    /// The task's own waker.
    task: AtomicWaker,
}

struct Branch {
    woken: Arc<Woken>,
    bit: u8,
}

impl Wake for Branch {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.flags.fetch_or(self.bit, Ordering::AcqRel);
        self.woken.task.wake();
    }
}

impl Pair {
    /// Both branches start as woken: each is polled the first time.
    pub(crate) fn new() -> Pair {
        let woken = Arc::new(Woken {
            flags: AtomicU8::new(0b11),
            task: AtomicWaker::new(),
        });
        let waker = |bit| {
            Waker::from(Arc::new(Branch {
                woken: woken.clone(),
                bit,
            }))
        };
        let wakers = [waker(1), waker(2)];
        Pair { woken, wakers }
    }

    /// Poll `f` as branch `i` (0 or 1) if it was woken since its last poll; else it is still
    /// waiting, and its own waker will wake the task when it need not.
    pub(crate) fn poll<F: Future>(
        &self,
        i: usize,
        f: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        // Registered before the mark is read: a wake-up in between is not lost.
        self.woken.task.register(cx.waker());
        let bit = 1u8 << i;
        if self.woken.flags.fetch_and(!bit, Ordering::AcqRel) & bit == 0 {
            return Poll::Pending;
        }
        f.poll(&mut Context::from_waker(&self.wakers[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn a_branch_is_polled_again_only_after_its_own_wake_up() {
        let pair = Pair::new();
        let (tx0, mut rx0) = tokio::sync::mpsc::unbounded_channel::<u8>();
        let (tx1, mut rx1) = tokio::sync::mpsc::unbounded_channel::<u8>();
        let polls = std::cell::Cell::new([0u32; 2]);
        let count = |i: usize| {
            let mut p = polls.get();
            p[i] += 1;
            polls.set(p);
        };
        let mut a = std::pin::pin!(poll_fn(|cx| {
            count(0);
            rx0.poll_recv(cx)
        }));
        let mut b = std::pin::pin!(poll_fn(|cx| {
            count(1);
            rx1.poll_recv(cx)
        }));
        let mut both = std::pin::pin!(poll_fn(|cx| {
            if let Poll::Ready(v) = pair.poll(0, a.as_mut(), cx) {
                return Poll::Ready((0, v));
            }
            pair.poll(1, b.as_mut(), cx).map(|v| (1, v))
        }));
        // First poll: both polled, both waiting.
        assert!(futures_util::poll!(both.as_mut()).is_pending());
        assert_eq!(polls.get(), [1, 1]);
        // A message for branch 1: only branch 1 is polled again.
        tx1.send(7).unwrap();
        assert_eq!(both.as_mut().await, (1, Some(7)));
        assert_eq!(polls.get(), [1, 2]);
        tx0.send(9).unwrap();
        assert_eq!(both.as_mut().await, (0, Some(9)));
        assert_eq!(polls.get(), [2, 2]);
    }
}
