//! Buffered local I/O for the framing codecs: a reader whose buffer starts small and grows for
//! bulk input, and a writer that sends large raw payloads without copying them.
//!
//! These replace tokio-util's `FramedRead`/`FramedWrite` (same codecs) because their buffers
//! are fixed: a 64 KiB read buffer costs every idle connection a page and caps bulk reads, and
//! `FramedWrite` copies every payload into its buffer (measured: 12 % of the relay's time in
//! the ws → tcp bulk direction). docs/performance.md has the numbers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use futures_util::{Sink, Stream};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::{Decoder, Encoder};

use super::framing::{FramingError, LocalDecoder, LocalEncoder, LocalEvent};
use crate::conn::{BoxReader, BoxWriter};
use crate::io::outq::{OutQueue, UNCOPIED_MIN};
use crate::io::sizing::{self, ReadSize};
/// A write buffer starts at this size (and is released when empty, if no larger).
const WRITE_MIN: usize = 8 * 1024;
/// `feed` writes out when this much is waiting (backpressure on the message source). Payloads
/// of `UNCOPIED_MIN` or more wait here uncopied (slices of the read buffer, memory held anyway);
/// at 64 KiB every 64 KiB message was a `writev` of its own, at 256 KiB a read's worth goes out
/// in one (bulk reverse +13 %, docs/performance.md).
const WRITE_HIGH: usize = 256 * 1024;
/// The same for output copied into the write buffer (lines, small messages): that memory is
/// the writer's own.
const COPIED_HIGH: usize = 64 * 1024;
/// How long a side channel may stay open after the input ended (`LocalReader::poll_side_end`).
const SIDE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Local bytes in, messages out (a `Stream`, like `FramedRead`).
pub struct LocalReader {
    io: BoxReader,
    decoder: LocalDecoder,
    buf: BytesMut,
    read_size: ReadSize,
    eof: bool,
    done: bool,
    /// Messages from elsewhere, passed on as they come (`ByteConn::side`).
    side: Option<mpsc::Receiver<Message>>,
    /// Once the input has ended: how long the side channel may still take to end.
    side_grace: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl LocalReader {
    pub fn new(io: BoxReader, decoder: LocalDecoder) -> Self {
        LocalReader {
            io,
            decoder,
            buf: BytesMut::new(),
            read_size: ReadSize::default(),
            eof: false,
            done: false,
            side: None,
            side_grace: None,
        }
    }

    /// Also pass on what `side` yields; the stream ends when both have ended.
    pub fn with_side(mut self, side: Option<mpsc::Receiver<Message>>) -> Self {
        self.side = side;
        self
    }

    /// After the input ended: the side channel's last messages (a child's last stderr lines)
    /// still go, but a side channel held open (by a child's background job) is let go after
    /// `SIDE_GRACE`.
    fn poll_side_end<T>(&mut self, cx: &mut Context<'_>, pending: bool) -> Poll<Option<T>> {
        if !pending {
            return Poll::Ready(None);
        }
        let grace = self
            .side_grace
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(SIDE_GRACE)));
        ready!(std::future::Future::poll(grace.as_mut(), cx));
        self.side = None;
        Poll::Ready(None)
    }

    /// A message from the side channel, if one is ready; Ready(None) once it has ended.
    fn poll_side(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let Some(rx) = &mut self.side else {
            return Poll::Ready(None);
        };
        let next = ready!(rx.poll_recv(cx));
        if next.is_none() {
            self.side = None;
        }
        Poll::Ready(next)
    }

    pub fn decoder(&self) -> &LocalDecoder {
        &self.decoder
    }
}

impl Stream for LocalReader {
    type Item = Result<Message, FramingError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let side = this.poll_side(cx);
        if let Poll::Ready(Some(m)) = side {
            return Poll::Ready(Some(Ok(m)));
        }
        loop {
            if this.done {
                return this.poll_side_end(cx, side.is_pending());
            }
            let decoded = if this.eof {
                this.decoder.decode_eof(&mut this.buf)
            } else {
                this.decoder.decode(&mut this.buf)
            };
            match decoded {
                Ok(Some(m)) => return Poll::Ready(Some(Ok(m))),
                Ok(None) if this.eof => {
                    this.done = true;
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            // Reclaims the buffer when the messages cut from it are gone, else allocates.
            sizing::reserve(&mut this.buf, this.read_size.get());
            let want = this.buf.capacity() - this.buf.len();
            let n = match tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.buf) {
                Poll::Pending => {
                    // Waiting: hold no buffer (measured: bulk throughput and CPU unchanged,
                    // and a connection that goes quiet after a burst gives its memory back).
                    sizing::release_idle(&mut this.buf);
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(FramingError::Io(e))));
                }
                Poll::Ready(Ok(n)) => n,
            };
            if n == 0 {
                this.eof = true;
            } else {
                this.read_size.after_read(n, want);
            }
        }
    }
}

/// Events in, local bytes out (a `Sink`, like `FramedWrite`). Small encoded output is gathered
/// in one buffer; a large raw payload is queued as it is and written with vectored I/O.
pub struct LocalWriter {
    io: BoxWriter,
    encoder: LocalEncoder,
    out: OutQueue,
}

impl LocalWriter {
    pub fn new(io: BoxWriter, encoder: LocalEncoder) -> Self {
        LocalWriter {
            io,
            encoder,
            out: OutQueue::default(),
        }
    }

    pub fn get_mut(&mut self) -> &mut BoxWriter {
        &mut self.io
    }

    /// Take the writer out (what is still buffered is dropped); this one then writes nowhere.
    pub fn take_inner(&mut self) -> BoxWriter {
        self.out.clear();
        std::mem::replace(&mut self.io, Box::new(tokio::io::sink()))
    }

    /// Write until at most `keep` bytes are waiting.
    fn poll_write_down(&mut self, cx: &mut Context<'_>, keep: usize) -> Poll<io::Result<()>> {
        while self.out.len() > keep {
            let n = ready!(self.out.poll_write(Pin::new(&mut self.io), cx))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.consume(n);
        }
        if self.out.is_empty() && self.out.buf.capacity() <= WRITE_MIN {
            // Nothing waiting: an idle connection holds no write buffer either.
            self.out.buf = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl Sink<LocalEvent> for LocalWriter {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.out.len() >= WRITE_HIGH || this.out.buf.len() >= COPIED_HIGH {
            ready!(this.poll_write_down(cx, COPIED_HIGH / 2))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: LocalEvent) -> io::Result<()> {
        let this = self.get_mut();
        if let Some(payload) = this.encoder.raw_payload(&item)
            && payload.len() >= UNCOPIED_MIN
        {
            this.out.push(payload);
            return Ok(());
        }
        if this.out.buf.capacity() == 0 {
            // Released while idle: start at a size that holds a batch of lines without regrowing.
            this.out.buf.reserve(WRITE_MIN);
        }
        this.encoder.encode(item, &mut this.out.buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_down(cx, 0))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sizing::READ_MIN;
    use crate::relay::framing::FramingOptions;
    use crate::relay::framing::Mode;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::tungstenite::Message;

    fn opts(mode: Mode) -> FramingOptions {
        FramingOptions::simple(mode, 1 << 20)
    }

    #[tokio::test]
    async fn reader_grows_for_bulk_and_keeps_every_byte() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut w, r) = tokio::io::duplex(1 << 20);
        let sent = data.clone();
        let feeder = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            w.write_all(&sent).await.unwrap();
        });
        let mut reader = LocalReader::new(Box::new(r), LocalDecoder::new(opts(Mode::Binary)));
        let mut got = Vec::new();
        let mut largest = 0;
        while let Some(m) = reader.next().await {
            let m = m.unwrap();
            largest = largest.max(m.len());
            got.extend_from_slice(&m.into_data());
        }
        feeder.await.unwrap();
        assert_eq!(got, data);
        assert!(largest > READ_MIN, "reads never grew: largest {largest}");
        assert!(
            largest <= 1 << 20,
            "a message above --max-message-size: {largest}"
        );
    }

    #[tokio::test]
    async fn reader_gives_its_buffer_back_when_input_pauses_after_a_burst() {
        use futures_util::FutureExt;
        let (mut w, r) = tokio::io::duplex(1 << 20);
        let mut reader = LocalReader::new(Box::new(r), LocalDecoder::new(opts(Mode::Binary)));
        let burst = vec![9u8; 900_000];
        {
            use tokio::io::AsyncWriteExt;
            w.write_all(&burst).await.unwrap();
        }
        let mut got = 0;
        while got < burst.len() {
            got += reader.next().await.unwrap().unwrap().len();
        }
        assert!(
            reader.read_size.get() > READ_MIN,
            "the burst did not grow the reads"
        );
        // Nothing more to read: the reader waits, and holds no buffer meanwhile.
        assert!(reader.next().now_or_never().is_none());
        assert_eq!(reader.buf.capacity(), 0);
        drop(w);
        assert!(reader.next().await.is_none());
    }

    #[tokio::test]
    async fn reader_cuts_lines_across_reads_and_ends_with_the_last_line() {
        let (mut w, r) = tokio::io::duplex(64);
        let feeder = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for i in 0..1000 {
                w.write_all(format!("line {i}\n").as_bytes()).await.unwrap();
            }
            w.write_all(b"tail without newline").await.unwrap();
        });
        let mut reader = LocalReader::new(Box::new(r), LocalDecoder::new(opts(Mode::Text)));
        let mut lines = Vec::new();
        while let Some(m) = reader.next().await {
            lines.push(m.unwrap().into_text().unwrap().to_string());
        }
        feeder.await.unwrap();
        assert_eq!(lines.len(), 1001);
        assert_eq!(lines[999], "line 999");
        assert_eq!(lines[1000], "tail without newline");
    }

    #[tokio::test]
    async fn writer_keeps_order_of_small_and_zero_copy_payloads() {
        let (w, mut r) = tokio::io::duplex(1 << 16);
        let mut writer = LocalWriter::new(Box::new(w), LocalEncoder::new(opts(Mode::Binary)));
        let mut expect = Vec::new();
        let reading = tokio::spawn(async move {
            let mut all = Vec::new();
            r.read_to_end(&mut all).await.unwrap();
            all
        });
        for i in 0..200usize {
            let len = if i % 3 == 0 { 10 } else { 5000 + i * 97 };
            let chunk: Vec<u8> = (0..len).map(|j| ((i * 7 + j) % 256) as u8).collect();
            expect.extend_from_slice(&chunk);
            writer
                .feed(LocalEvent::Message(Message::Binary(chunk.into())))
                .await
                .unwrap();
        }
        writer.close().await.unwrap();
        drop(writer);
        assert_eq!(reading.await.unwrap(), expect);
    }
}
