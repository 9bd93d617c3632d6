//! An output queue for writers that pass large payloads on without copying them: small output
//! is gathered in one buffer, a large payload is queued as the `Bytes` it arrived in, and the
//! whole is written with vectored I/O. Used by the local writer (`relay::localio`) and by the
//! WebSocket server role (`ws::conn`).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;

/// Payloads at least this large are queued as they are; smaller ones are cheaper to copy.
pub(crate) const UNCOPIED_MIN: usize = 4 * 1024;
/// Slices per vectored write.
const MAX_SLICES: usize = 16;

#[derive(Default)]
pub(crate) struct OutQueue {
    /// Output gathered by copying; it goes out after everything in `queue`.
    pub(crate) buf: BytesMut,
    queue: VecDeque<Bytes>,
    /// Bytes in `queue`.
    queued: usize,
}

impl OutQueue {
    /// Bytes waiting to be written.
    pub(crate) fn len(&self) -> usize {
        self.queued + self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queue `payload` as it is, after what is already waiting.
    pub(crate) fn push(&mut self, payload: Bytes) {
        if !self.buf.is_empty() {
            let head = self.buf.split().freeze();
            self.queued += head.len();
            self.queue.push_back(head);
        }
        if !payload.is_empty() {
            self.queued += payload.len();
            self.queue.push_back(payload);
        }
    }

    /// Drop everything waiting.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.queue.clear();
        self.queued = 0;
    }

    /// One write of what is waiting, in order (vectored when the writer supports it); then
    /// [`consume`](Self::consume) what it took.
    pub(crate) fn poll_write<W: AsyncWrite + ?Sized>(
        &self,
        io: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if self.queue.is_empty() {
            return io.poll_write(cx, &self.buf);
        }
        if !io.is_write_vectored() {
            return io.poll_write(cx, &self.queue[0]);
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut k = 0;
        for b in self.queue.iter().take(MAX_SLICES) {
            slices[k] = IoSlice::new(b);
            k += 1;
        }
        if k < MAX_SLICES && !self.buf.is_empty() {
            slices[k] = IoSlice::new(&self.buf);
            k += 1;
        }
        io.poll_write_vectored(cx, &slices[..k])
    }

    /// `n` bytes were written: from the queue first, then the buffer.
    pub(crate) fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                self.buf.advance(n);
                return;
            };
            let k = n.min(front.len());
            front.advance(k);
            self.queued -= k;
            n -= k;
            if front.is_empty() {
                self.queue.pop_front();
            }
        }
    }
}
