//! A WebSocket connection after the handshake (RFC 6455 §5–7) over any byte stream: the state
//! machine (fragmented messages, answers to pings, the closing handshake) and the two halves
//! [`split`] hands to the relay; frames are read and written by `frame`, masked by `mask`. Both
//! roles use it in place of tokio-tungstenite's `WebSocketStream` (which still does the client
//! handshake):
//!
//! - the two halves share the connection through a plain mutex, taken for one poll at a time
//!   (no BiLock and no lock futures per message);
//! - received payloads are cut out of the read buffer without copying;
//! - buffers start small (an idle connection holds a few KiB) and grow with the traffic (bulk
//!   transfers read up to 256 KiB per call), by the read-size policy in `io::sizing`.
//!
//! Errors and closing follow tungstenite's (the same `tungstenite::Error` values, the same
//! states), so the relay classifies them exactly as before.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::deflate::{Deflater, Inflater, Negotiated};
use super::frame::RSV1;
use super::frame::{Header, Limits, close_payload, parse_close, put_frame, put_head};
use super::mask::apply_mask;
use super::message::Reassembly;
use crate::budget::Charge;
use crate::conn::{MsgSink, MsgStream};
use crate::io::outq::{OutQueue, UNCOPIED_MIN};
use crate::io::sizing::{self, READ_MAX, ReadSize};
use crate::metrics::{Dir, M};

/// Above this many unwritten bytes, `poll_ready` writes before taking more.
const WRITE_HIGH: usize = 64 * 1024;
/// Pongs are not queued beyond this (a peer that pings and never reads).
const MAX_PENDING_WRITE: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Active,
    /// We sent a Close; the peer's is awaited.
    ClosedByUs,
    /// The peer sent a Close that is not answered yet (server role): data may still be sent,
    /// and the answer goes out with the next `Message::Close` sent or the next read.
    PeerClosing,
    /// The peer sent a Close (answered).
    ClosedByPeer,
    /// Both Closes were exchanged.
    CloseAcknowledged,
    /// Nothing more can be read or written.
    Terminated,
}

impl State {
    fn can_read(self) -> bool {
        matches!(self, State::Active | State::ClosedByUs)
    }
}

const READER: usize = 0;
const WRITER: usize = 1;

struct Core<S> {
    io: S,
    role: Role,
    limits: Limits,
    state: State,
    rbuf: BytesMut,
    /// Bytes asked for in the next read.
    read_size: ReadSize,
    /// Frames not yet written (server role: large payloads queued uncopied).
    out: OutQueue,
    /// An answer (pong or Close) is waiting in `out` and was not written yet.
    reply_pending: bool,
    /// The data message being received (fragments, inflation).
    reassembly: Reassembly,
    /// permessage-deflate agreed on: what the next message sent may refer back to.
    deflater: Option<Deflater>,
    /// A half that found the write side blocked (so the other wakes it after progress).
    write_waiters: [Option<Waker>; 2],
    /// In `PeerClosing`: the answer owed (the peer's Close, echoed).
    owed: Option<CloseFrame>,
    /// What this connection holds of a message still arriving, charged to the process budget.
    charge: Charge,
    /// Reads so far that returned data (progress, for `Limits::stall`).
    reads: u64,
}

/// Split a connection whose handshake is done into the relay's two halves. `leftover`: bytes
/// read past the end of the handshake (the first frames); `deflate`: what the handshake agreed
/// on for permessage-deflate, if anything.
pub fn split<S>(
    io: S,
    leftover: Vec<u8>,
    role: Role,
    limits: Limits,
    deflate: Option<&Negotiated>,
) -> (MsgStream, MsgSink)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let core = Arc::new(Mutex::new(Core {
        io,
        role,
        limits,
        state: State::Active,
        rbuf: BytesMut::from(&leftover[..]),
        read_size: ReadSize::default(),
        out: OutQueue::default(),
        reply_pending: false,
        reassembly: Reassembly::new(deflate.map(Inflater::new)),
        deflater: deflate.map(Deflater::new),
        write_waiters: [None, None],
        owed: None,
        charge: Charge::default(),
        reads: 0,
    }));
    (
        Box::pin(WsReader {
            core: core.clone(),
            ended: false,
            stall: None,
        }),
        Box::pin(WsWriter { core }),
    )
}

struct WsReader<S> {
    core: Arc<Mutex<Core<S>>>,
    ended: bool,
    /// While a message is arriving: the reads seen, and when it stalls if nothing more comes.
    stall: Option<(u64, Pin<Box<tokio::time::Sleep>>)>,
}

struct WsWriter<S> {
    core: Arc<Mutex<Core<S>>>,
}

fn lock<S>(core: &Mutex<Core<S>>) -> MutexGuard<'_, Core<S>> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WsReader<S> {
    type Item = Result<Message, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let r = {
            let mut core = lock(&self.core);
            match core.poll_message(cx) {
                Poll::Pending => {
                    let progress = core.partial().then_some(core.reads);
                    drop(core);
                    self.poll_stall(progress, cx)
                }
                ready => ready,
            }
        };
        if let Poll::Ready(None | Some(Err(_))) = r {
            // Like tokio-tungstenite: after an error or the end, the stream is over.
            self.ended = true;
        }
        r
    }
}

impl<S> WsReader<S> {
    /// Nothing to hand out yet. `progress`: the read count while a message is partly here (None:
    /// nothing partial). A message that stays partial for `Limits::stall` is an error.
    fn poll_stall(
        &mut self,
        progress: Option<u64>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, WsError>>> {
        let (Some(reads), Some(limit)) = (progress, lock(&self.core).limits.stall) else {
            self.stall = None;
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::now() + limit;
        match &mut self.stall {
            Some((seen, sleep)) if *seen != reads => {
                *seen = reads;
                sleep.as_mut().reset(deadline);
            }
            Some(_) => {}
            None => self.stall = Some((reads, Box::pin(tokio::time::sleep_until(deadline)))),
        }
        let (_, sleep) = self.stall.as_mut().expect("set above");
        ready!(sleep.as_mut().poll(cx));
        let secs = limit.as_secs_f64();
        Poll::Ready(Some(Err(WsError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "a message stopped arriving half-way (no progress for {secs}s; --message-timeout)"
            ),
        )))))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WsWriter<S> {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let mut core = lock(&self.core);
        if core.out.len() < WRITE_HIGH {
            return Poll::Ready(Ok(()));
        }
        core.poll_write_out(cx, WRITER).map_err(WsError::Io)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        lock(&self.core).send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        lock(&self.core).poll_flush(cx, WRITER)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let mut core = lock(&self.core);
        match core.state {
            State::Active => {
                core.state = State::ClosedByUs;
                core.put_close(None);
            }
            State::PeerClosing => core.answer_close(),
            _ => {}
        }
        core.poll_flush(cx, WRITER)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Core<S> {
    // ---- writing ----

    /// A data frame whose payload is already a `Bytes`: unmasked (server role) and large, it is
    /// queued without a copy when the transport writes vectored; otherwise as `put_frame`.
    fn put_frame_bytes(&mut self, fin: bool, opcode: u8, payload: Bytes) {
        if self.role == Role::Client || payload.len() < UNCOPIED_MIN || !self.io.is_write_vectored()
        {
            return self.put_frame(fin, opcode, &payload);
        }
        put_head(&mut self.out.buf, fin, opcode, payload.len(), false);
        self.out.push(payload);
    }

    /// A whole data message in one frame: compressed (RSV1) when permessage-deflate was agreed
    /// on and it comes out smaller.
    fn put_data(&mut self, opcode: u8, payload: Bytes) {
        match self.deflater.as_mut().and_then(|d| d.compress(&payload)) {
            Some(packed) => self.put_frame_bytes(true, opcode | RSV1, packed.into()),
            None => self.put_frame_bytes(true, opcode, payload),
        }
    }

    fn put_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        put_frame(
            &mut self.out.buf,
            fin,
            opcode,
            payload,
            self.role == Role::Client,
        );
    }

    /// Answer the peer's Close now (it was held while data could still be sent).
    fn answer_close(&mut self) {
        let frame = self.owed.take();
        self.state = State::ClosedByPeer;
        self.put_close(frame.as_ref());
        self.reply_pending = true;
    }

    fn put_close(&mut self, frame: Option<&CloseFrame>) {
        M.close(Dir::Sent, frame.map_or(1005, |f| u16::from(f.code)));
        match frame {
            None => self.put_frame(true, 8, &[]),
            Some(f) => self.put_frame(true, 8, &close_payload(f)),
        }
    }

    fn send(&mut self, msg: Message) -> Result<(), WsError> {
        if self.state == State::Terminated {
            return Err(WsError::AlreadyClosed);
        }
        if !matches!(self.state, State::Active | State::PeerClosing) {
            return Err(WsError::Protocol(ProtocolError::SendAfterClosing));
        }
        match msg {
            Message::Text(t) => {
                M.message(Dir::Sent, true, t.len());
                self.put_data(1, t.into());
            }
            Message::Binary(b) => {
                M.message(Dir::Sent, false, b.len());
                self.put_data(2, b);
            }
            Message::Ping(p) => self.put_frame(true, 9, &p),
            Message::Pong(p) => self.put_frame(true, 10, &p),
            Message::Close(f) => {
                // In `PeerClosing` this is the answer to the peer's Close.
                self.state = match self.state {
                    State::PeerClosing => State::ClosedByPeer,
                    _ => State::ClosedByUs,
                };
                self.put_close(f.as_ref());
            }
            Message::Frame(f) => {
                let h = f.header();
                // A message in fragments (larger than --max-frame-size) counts once, at its end.
                if h.is_final {
                    M.message(Dir::Sent, false, f.payload().len());
                }
                self.put_frame(h.is_final, u8::from(h.opcode), f.payload());
            }
        }
        Ok(())
    }

    /// Write out `out`. `who` is the half asking (woken again when the other half makes
    /// progress, since the transport keeps only one waker for writing).
    fn poll_write_out(&mut self, cx: &mut Context<'_>, who: usize) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            match self.out.poll_write(Pin::new(&mut self.io), cx) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.out.consume(n);
                    if let Some(w) = self.write_waiters[1 - who].take() {
                        w.wake();
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.write_waiters[who] = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
        self.reply_pending = false;
        Poll::Ready(Ok(()))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>, who: usize) -> Poll<Result<(), WsError>> {
        ready!(self.poll_write_out(cx, who)).map_err(WsError::Io)?;
        ready!(Pin::new(&mut self.io).poll_flush(cx)).map_err(WsError::Io)?;
        // A server whose closing handshake is complete is done (tungstenite's rule).
        if self.role == Role::Server
            && matches!(self.state, State::ClosedByPeer | State::CloseAcknowledged)
        {
            self.state = State::Terminated;
        }
        Poll::Ready(Ok(()))
    }

    // ---- reading ----

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, WsError>>> {
        if self.state == State::Terminated {
            return Poll::Ready(None);
        }
        if self.state == State::PeerClosing {
            // Read again after the peer's Close: nothing more will be sent, answer it.
            self.answer_close();
        }
        loop {
            if self.reply_pending {
                // Answers go out even while only reading; a blocked write is retried later.
                if let Poll::Ready(Err(e)) = self.poll_flush(cx, READER) {
                    return Poll::Ready(Some(Err(e)));
                }
                if self.state == State::Terminated {
                    return Poll::Ready(None);
                }
            } else if self.role == Role::Server && !self.state.can_read() {
                self.state = State::Terminated;
                return Poll::Ready(None);
            }
            match Header::parse(&self.rbuf, self.limits.max_frame) {
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(Some(h)) if self.rbuf.len() >= h.header_len + h.len => {
                    match self.take_frame(h).and_then(|m| self.account().map(|()| m)) {
                        Ok(Some(m)) => {
                            count_received(&m);
                            return Poll::Ready(Some(Ok(m)));
                        }
                        Ok(None) => continue,
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
                Ok(h) => {
                    // More bytes needed: room for the rest of this frame (bounded), or a read.
                    let want = h.map_or(0, |h| h.header_len + h.len - self.rbuf.len());
                    let spare = self.rbuf.capacity() - self.rbuf.len();
                    if spare < 1024 || spare < want.min(READ_MAX) {
                        let want = self.read_size.get().max(want.min(4 * READ_MAX));
                        sizing::reserve(&mut self.rbuf, want);
                    }
                    let spare = self.rbuf.capacity() - self.rbuf.len();
                    let n = match tokio_util::io::poll_read_buf(
                        Pin::new(&mut self.io),
                        cx,
                        &mut self.rbuf,
                    ) {
                        Poll::Ready(Ok(n)) => n,
                        Poll::Ready(Err(e)) => return Poll::Ready(self.read_failed(e)),
                        Poll::Pending => {
                            // Waiting: hold no read buffer, whatever size it grew to.
                            if sizing::release_idle(&mut self.rbuf) {
                                let _ = self.account();
                            }
                            return Poll::Pending;
                        }
                    };
                    if n == 0 {
                        return Poll::Ready(self.ended());
                    }
                    self.reads += 1;
                    if let Err(e) = self.account() {
                        return Poll::Ready(Some(Err(e)));
                    }
                    self.read_size.after_read(n, spare);
                }
            }
        }
    }

    /// A message (or a frame) has partly arrived.
    fn partial(&self) -> bool {
        !self.rbuf.is_empty() || self.reassembly.is_partial()
    }

    /// Charge what this connection holds of messages still arriving to the process budget:
    /// the fragments reassembled so far, and a read buffer grown past its usual size for a
    /// large frame.
    fn account(&mut self) -> Result<(), WsError> {
        let fragments = self.reassembly.held();
        let held = fragments + self.rbuf.capacity().saturating_sub(READ_MAX);
        if held == self.charge.bytes() {
            return Ok(());
        }
        self.charge
            .set(held)
            .map_err(|e| WsError::Io(io::Error::new(io::ErrorKind::OutOfMemory, e.to_string())))
    }

    /// The transport ended.
    fn ended(&mut self) -> Option<Result<Message, WsError>> {
        match std::mem::replace(&mut self.state, State::Terminated) {
            State::ClosedByPeer | State::CloseAcknowledged | State::PeerClosing => None,
            _ => Some(Err(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake,
            ))),
        }
    }

    fn read_failed(&mut self, e: io::Error) -> Option<Result<Message, WsError>> {
        if e.kind() == io::ErrorKind::ConnectionReset && !self.state.can_read() {
            // A reset after the Closes were exchanged is just the end.
            self.state = State::Terminated;
            return None;
        }
        Some(Err(WsError::Io(e)))
    }

    /// Take the complete frame at the front of `rbuf` and act on it: a message to hand out, or
    /// `None` (a fragment, or nothing to report).
    fn take_frame(&mut self, h: Header) -> Result<Option<Message>, WsError> {
        self.rbuf.advance(h.header_len);
        let mut payload = sizing::take(&mut self.rbuf, h.len);
        if !self.state.can_read() {
            return Err(WsError::Protocol(ProtocolError::ReceivedAfterClosing));
        }
        // RSV2 and RSV3 mean nothing here; RSV1 only on a data frame, with permessage-deflate.
        if h.rsv & !RSV1 != 0 || (h.rsv != 0 && h.opcode >= 8) {
            return Err(WsError::Protocol(ProtocolError::NonZeroReservedBits));
        }
        match (self.role, h.mask) {
            (Role::Client, Some(_)) => {
                return Err(WsError::Protocol(ProtocolError::MaskedFrameFromServer));
            }
            (Role::Server, None) => {
                return Err(WsError::Protocol(ProtocolError::UnmaskedFrameFromClient));
            }
            (_, Some(mask)) => apply_mask(&mut payload, mask),
            (Role::Client, None) => {}
        }
        match OpCode::from(h.opcode) {
            OpCode::Control(ctl) => {
                if !h.fin {
                    return Err(WsError::Protocol(ProtocolError::FragmentedControlFrame));
                }
                if payload.len() > 125 {
                    return Err(WsError::Protocol(ProtocolError::ControlFrameTooBig));
                }
                match ctl {
                    Control::Close => self.peer_close(payload.freeze()),
                    Control::Reserved(i) => {
                        Err(WsError::Protocol(ProtocolError::UnknownControlFrameType(i)))
                    }
                    Control::Ping => {
                        let data = payload.freeze();
                        // No answers after our Close; one queued answer is enough for a flood.
                        if self.state == State::Active && self.out.len() < MAX_PENDING_WRITE {
                            self.put_frame(true, 10, &data);
                            self.reply_pending = true;
                        }
                        Ok(Some(Message::Ping(data)))
                    }
                    Control::Pong => Ok(Some(Message::Pong(payload.freeze()))),
                }
            }
            OpCode::Data(d @ (Data::Continue | Data::Text | Data::Binary)) => {
                let kind = (d != Data::Continue).then_some(d);
                self.reassembly
                    .frame(kind, h.rsv != 0, h.fin, payload, self.limits.max_message)
            }
            OpCode::Data(Data::Reserved(i)) => {
                Err(WsError::Protocol(ProtocolError::UnknownDataFrameType(i)))
            }
        }
    }

    /// The peer's Close: answer it (the closing handshake), or take it as the answer to ours.
    fn peer_close(&mut self, payload: Bytes) -> Result<Option<Message>, WsError> {
        let frame = parse_close(payload)?;
        M.close(
            Dir::Received,
            frame.as_ref().map_or(1005, |f| u16::from(f.code)),
        );
        match self.state {
            State::Active => {
                // A code that may not be sent is answered as a protocol violation.
                let frame = frame.map(answer_for);
                if self.role == Role::Server {
                    // Held: the relay may still send data, then answers (or reads on).
                    self.state = State::PeerClosing;
                    self.owed = frame.clone();
                } else {
                    self.state = State::ClosedByPeer;
                    self.put_close(frame.as_ref());
                    self.reply_pending = true;
                }
                Ok(Some(Message::Close(frame)))
            }
            State::ClosedByUs => {
                self.state = State::CloseAcknowledged;
                Ok(Some(Message::Close(frame)))
            }
            // Already closing: ignore.
            _ => Ok(None),
        }
    }
}

/// A data message read, for the metrics.
fn count_received(m: &Message) {
    match m {
        Message::Text(t) => M.message(Dir::Received, true, t.len()),
        Message::Binary(b) => M.message(Dir::Received, false, b.len()),
        _ => {}
    }
}

/// The answer to a peer's Close: the same frame, or 1002 for a code that may not be sent.
fn answer_for(f: CloseFrame) -> CloseFrame {
    if f.code.is_allowed() {
        f
    } else {
        CloseFrame {
            code: CloseCode::Protocol,
            reason: Utf8Bytes::from_static("Protocol violation"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use std::io::IoSlice;
    use tokio::io::ReadBuf;
    use tokio_tungstenite::tungstenite::error::CapacityError;

    fn limits() -> Limits {
        Limits {
            max_message: 1 << 20,
            max_frame: 1 << 20,
            stall: None,
        }
    }

    /// A transport that says it writes vectored (an in-memory pipe takes one slice per call, so
    /// writes are partial): the server role's zero-copy path.
    struct Vectored(tokio::io::DuplexStream);

    impl AsyncRead for Vectored {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Vectored {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    /// Server frames with large payloads go out without a copy, in order with small frames and
    /// control frames, through partial writes.
    #[tokio::test]
    async fn server_writes_large_payloads_vectored_in_order() {
        let (a, b) = tokio::io::duplex(7_000);
        let (mut cs, _ck) = split(a, vec![], Role::Client, limits(), None);
        let (_ss, mut sk) = split(Vectored(b), vec![], Role::Server, limits(), None);
        let expected: Vec<Message> = (0..60usize)
            .map(|i| match i % 4 {
                0 => Message::text(format!("small {i}")),
                1 => Message::binary(vec![i as u8; 5_000 + i * 331]),
                2 => Message::Ping(Bytes::from(vec![i as u8; 3])),
                _ => Message::text("é".repeat(3_000 + i)),
            })
            .collect();
        let sending = expected.clone();
        let writer = tokio::spawn(async move {
            for m in sending {
                sk.feed(m).await.unwrap();
            }
            sk.flush().await.unwrap();
            sk
        });
        for want in &expected {
            let got = cs.next().await.unwrap().unwrap();
            assert_eq!(&got, want);
        }
        drop(writer.await.unwrap());
    }

    /// Both roles over an in-memory pipe: every message type, fragments, the closing handshake.
    #[tokio::test]
    async fn client_and_server_talk() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (mut cs, mut ck) = split(a, vec![], Role::Client, limits(), None);
        let (mut ss, mut sk) = split(b, vec![], Role::Server, limits(), None);
        let big = vec![7u8; 200_000];
        ck.send(Message::text("héllo")).await.unwrap();
        ck.send(Message::binary(big.clone())).await.unwrap();
        ck.send(Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
        assert_eq!(ss.next().await.unwrap().unwrap(), Message::text("héllo"));
        assert_eq!(ss.next().await.unwrap().unwrap(), Message::binary(big));
        assert_eq!(
            ss.next().await.unwrap().unwrap(),
            Message::Ping(Bytes::from_static(b"p"))
        );
        // The server answered the ping by itself.
        sk.flush().await.unwrap();
        assert_eq!(
            cs.next().await.unwrap().unwrap(),
            Message::Pong(Bytes::from_static(b"p"))
        );
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        };
        ck.send(Message::Close(Some(close.clone()))).await.unwrap();
        assert!(ck.send(Message::text("late")).await.is_err());
        assert_eq!(
            ss.next().await.unwrap().unwrap(),
            Message::Close(Some(close.clone()))
        );
        // The server's stream ends once its answer is out.
        assert!(ss.next().await.is_none());
        assert_eq!(
            cs.next().await.unwrap().unwrap(),
            Message::Close(Some(close))
        );
        drop((sk, ss));
        assert!(cs.next().await.is_none());
    }

    #[tokio::test]
    async fn leftover_bytes_are_read_first_and_limits_hold() {
        // An unmasked text frame "hi" from the server, already read during the handshake.
        let (a, _b) = tokio::io::duplex(64);
        let (mut cs, _ck) = split(a, vec![0x81, 2, b'h', b'i'], Role::Client, limits(), None);
        assert_eq!(cs.next().await.unwrap().unwrap(), Message::text("hi"));

        let (a, _b) = tokio::io::duplex(64);
        let small = Limits {
            max_message: 4,
            max_frame: 4,
            stall: None,
        };
        let (mut cs, _ck) = split(a, vec![0x82, 5, 1, 2, 3, 4, 5], Role::Client, small, None);
        assert!(matches!(
            cs.next().await.unwrap(),
            Err(WsError::Capacity(CapacityError::MessageTooLong {
                size: 5,
                max_size: 4
            }))
        ));
        assert!(cs.next().await.is_none());
    }

    #[tokio::test]
    async fn protocol_errors() {
        let cases: [(&[u8], &str); 5] = [
            (&[0x81, 0x82, 0, 0, 0, 0, b'h', b'i'], "masked"),
            (&[0xC1, 0], "reserved"),
            (&[0x80, 0], "continue"),
            (&[0x09, 0], "fragmented"),
            (&[0x81, 2, 0xC3, 0x28], "utf8"),
        ];
        for (bytes, what) in cases {
            let (a, _b) = tokio::io::duplex(64);
            let (mut cs, _ck) = split(a, bytes.to_vec(), Role::Client, limits(), None);
            let e = cs.next().await.unwrap().unwrap_err();
            let ok = match what {
                "utf8" => matches!(e, WsError::Utf8(_)),
                _ => matches!(e, WsError::Protocol(_)),
            };
            assert!(ok, "{what}: {e:?}");
        }
    }
}
