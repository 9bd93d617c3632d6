//! The read-size policy of every buffered reader (the local side's `LocalReader` and the
//! WebSocket connection): reads start at 4 KiB, double while each read fills the room it was
//! given (up to 256 KiB), halve when a read brings at most an eighth of the current size, and a
//! reader that waits with nothing buffered holds no buffer at all. docs/performance.md has the
//! measurements behind the numbers.

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

/// The reader is about to wait: if nothing is buffered, give the buffer back (whatever size it
/// grew to), so an idle connection holds no read buffer. True if it was released.
#[inline]
pub(crate) fn release_idle(buf: &mut BytesMut) -> bool {
    if buf.is_empty() {
        *buf = BytesMut::new();
        return true;
    }
    false
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
