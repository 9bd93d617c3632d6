//! The read-size policy of every buffered reader (the local side's `LocalReader` and the
//! WebSocket connection): reads start at 4 KiB, double while each read fills the room it was
//! given (up to 256 KiB), halve when a read brings at most an eighth of the current size, and a
//! reader that waits with nothing buffered holds no buffer at all (a small one is kept as one
//! of the thread's spares). Small payloads are copied out of read buffers, large ones cut from
//! them. docs/performance.md has the measurements behind the numbers.

use bytes::BytesMut;

/// First read size, and the size reads shrink back to.
pub(crate) const READ_MIN: usize = 4 * 1024;
/// Reads grow up to this size.
pub(crate) const READ_MAX: usize = 256 * 1024;

/// How many bytes the next read asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadSize(usize);

impl Default for ReadSize {
    fn default() -> Self {
        ReadSize(READ_MIN)
    }
}

impl ReadSize {
    #[inline]
    pub(crate) fn get(self) -> usize {
        self.0
    }

    /// A read returned `n > 0` bytes into `room` bytes of free buffer.
    #[inline]
    pub(crate) fn after_read(&mut self, n: usize, room: usize) {
        if n == room && self.0 < READ_MAX {
            // The read filled the buffer: more is coming than we take at once.
            self.0 *= 2;
        } else if n <= self.0 / 8 && self.0 > READ_MIN {
            // Input slowed down: new buffers shrink back towards the idle size.
            self.0 /= 2;
        }
    }
}

/// Payloads up to this size are copied out of a read buffer instead of cut from it (see
/// [`take`]).
pub(crate) const COPIED_MAX: usize = 1024;

/// Spare read buffers of this thread, at most this many.
const SPARES_MAX: usize = 64;

thread_local! {
    /// Read buffers given back by readers that went idle, for the next reader of this thread
    /// that needs one: a request/response session goes idle after every message, and freeing
    /// and allocating its 4 KiB buffer each time showed in the latency profile.
    static SPARES: std::cell::RefCell<Vec<BytesMut>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The reader is about to wait: if nothing is buffered, give the buffer back (whatever size it
/// grew to), so an idle connection holds no read buffer. A small buffer of its own goes to the
/// thread's spares (bounded: at most 64 × 8 KiB per thread). True if it was released.
#[inline]
pub(crate) fn release_idle(buf: &mut BytesMut) -> bool {
    if !buf.is_empty() {
        return false;
    }
    let mut old = std::mem::take(buf);
    if old.capacity() > 0 && old.try_reclaim(READ_MIN) && old.capacity() <= 2 * READ_MIN {
        let _ = SPARES.try_with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < SPARES_MAX {
                s.push(old);
            }
        });
    }
    true
}

/// Room for `want` more bytes in `buf`; a reader that holds no buffer takes a spare one when
/// `want` fits in it.
#[inline]
pub(crate) fn reserve(buf: &mut BytesMut, want: usize) {
    if buf.capacity() == 0
        && want <= READ_MIN
        && let Ok(Some(spare)) = SPARES.try_with(|s| s.borrow_mut().pop())
    {
        *buf = spare;
    }
    buf.reserve(want);
}

/// The first `n` bytes of `buf`, taken off it. A small payload is copied (a small allocation
/// from the allocator's per-thread cache), so that `buf` stays its reader's own, to be reused
/// in place or kept as a spare; a large one is cut from it without a copy.
#[inline]
pub(crate) fn take(buf: &mut BytesMut, n: usize) -> BytesMut {
    if n <= COPIED_MAX {
        let piece = BytesMut::from(&buf[..n]);
        bytes::Buf::advance(buf, n);
        piece
    } else {
        buf.split_to(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_reads_fill_and_shrinks_when_they_slow() {
        let mut r = ReadSize::default();
        assert_eq!(r.get(), READ_MIN);
        // Full reads double it, up to the maximum.
        let mut sizes = vec![];
        for _ in 0..8 {
            let n = r.get();
            r.after_read(n, n);
            sizes.push(r.get());
        }
        assert_eq!(sizes, [8, 16, 32, 64, 128, 256, 256, 256].map(|k| k * 1024));
        // A read that is not full and not small keeps it.
        r.after_read(READ_MAX / 2, READ_MAX);
        assert_eq!(r.get(), READ_MAX);
        // Small reads halve it, down to the minimum.
        for want in [128, 64, 32, 16, 8, 4, 4].map(|k| k * 1024) {
            r.after_read(1, READ_MAX);
            assert_eq!(r.get(), want);
        }
        // A read of exactly an eighth counts as small.
        let mut r = ReadSize(64 * 1024);
        r.after_read(8 * 1024, 64 * 1024 + 1);
        assert_eq!(r.get(), 32 * 1024);
    }

    #[test]
    fn small_payloads_are_copied_so_the_buffer_is_reused_through_the_spares() {
        let mut buf = BytesMut::new();
        reserve(&mut buf, READ_MIN);
        buf.extend_from_slice(&[7u8; 100]);
        let small = take(&mut buf, 100).freeze();
        assert_eq!(&small[..], &[7u8; 100]);
        let at = buf.as_ptr() as usize - 100;
        // The buffer is still its own: released as a spare, and handed to the next reader.
        assert!(release_idle(&mut buf));
        let mut next = BytesMut::new();
        reserve(&mut next, READ_MIN);
        assert_eq!(next.as_ptr() as usize, at);
        // A large payload is cut from the buffer, not copied.
        next.extend_from_slice(&[1u8; 2 * COPIED_MAX]);
        let start = next.as_ptr();
        let large = take(&mut next, 2 * COPIED_MAX);
        assert_eq!(large.as_ptr(), start);
        // ... so the buffer is shared and goes back to the allocator, not to the spares.
        assert!(release_idle(&mut next));
        let mut third = BytesMut::new();
        reserve(&mut third, READ_MIN);
        assert_ne!(third.as_ptr(), start);
    }

    #[test]
    fn an_idle_buffer_is_released_only_when_empty() {
        let mut buf = BytesMut::with_capacity(READ_MAX);
        assert!(release_idle(&mut buf));
        assert_eq!(buf.capacity(), 0);
        let mut buf = BytesMut::with_capacity(READ_MAX);
        buf.extend_from_slice(b"x");
        assert!(!release_idle(&mut buf));
        assert!(buf.capacity() >= READ_MAX);
    }
}
