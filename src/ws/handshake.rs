//! Glue for the opening handshake of the client role: tungstenite does the HTTP part, over a
//! transport wrapped so that it never reads past the end of the server's `101` answer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Wraps the transport during tungstenite's client handshake so that it never reads past the
/// end of a `101` response: whatever the server sent after it (its first frames) stays here for
/// [`split`](super::split). Any other response passes through untouched (its body goes into the error).
pub struct HeadLimited<S> {
    inner: Option<S>,
    buf: Vec<u8>,
    start: usize,
    /// `Some(end)`: deliver up to `end`, the end of a 101 head; `None` with `passthrough`: all.
    end: Option<usize>,
    passthrough: bool,
}

impl<S> HeadLimited<S> {
    pub fn new(inner: S) -> Self {
        HeadLimited {
            inner: Some(inner),
            buf: Vec::new(),
            start: 0,
            end: None,
            passthrough: false,
        }
    }

    /// After the handshake: the transport and the bytes read past the response head.
    pub fn take(&mut self) -> Option<(S, Vec<u8>)> {
        let inner = self.inner.take()?;
        let rest = self.buf.split_off(self.start.min(self.buf.len()));
        Some((inner, rest))
    }

    fn inner(&mut self) -> io::Result<&mut S> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("connection already handed over"))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadLimited<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let limit = match (this.end, this.passthrough) {
                (Some(end), _) => end,
                (None, true) => this.buf.len(),
                (None, false) => {
                    // Still collecting the head.
                    if let Some(i) = memchr::memmem::find(&this.buf, b"\r\n\r\n") {
                        if this.buf.get(9..12) == Some(b"101") {
                            this.end = Some(i + 4);
                        } else {
                            this.passthrough = true;
                        }
                        continue;
                    }
                    if (this.buf.len() >= 12 && &this.buf[9..12] != b"101")
                        || this.buf.len() > 64 * 1024
                    {
                        this.passthrough = true;
                        continue;
                    }
                    let mut tmp = [0u8; 2048];
                    let mut rb = ReadBuf::new(&mut tmp);
                    ready!(Pin::new(this.inner()?).poll_read(cx, &mut rb))?;
                    if rb.filled().is_empty() {
                        this.passthrough = true;
                    }
                    this.buf.extend_from_slice(rb.filled());
                    continue;
                }
            };
            if this.start < limit {
                let n = out.remaining().min(limit - this.start);
                out.put_slice(&this.buf[this.start..this.start + n]);
                this.start += n;
                return Poll::Ready(Ok(()));
            }
            if this.end.is_some() {
                // The head was delivered; tungstenite reads no further (EOF if it tried).
                return Poll::Ready(Ok(()));
            }
            return Pin::new(this.inner()?).poll_read(cx, out);
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadLimited<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.inner()?).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.inner()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.inner()?).poll_shutdown(cx)
    }
}
