//! Bytes↔messages: a byte stream (through the framing codecs) facing one WebSocket. The local
//! side (`LocalSide`, which outlives a connection with `--reconnect`), `pump` with its two
//! directions (`Sending`: local → WebSocket, `receive`: WebSocket → local) and what they share,
//! and the held Close (`--linger` after local EOF; the server role's `hold_mode`). How the
//! session ends is decided by [`closing::outcome`]; `conclude` carries it out.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::Counter;
use super::RelayOptions;
use super::closing::{self, Down, Drain, Ended, Facts, Up, await_close, drain, send_close};
use super::framing::{FramingError, LocalDecoder, LocalEncoder, LocalEvent};
use super::keepalive::Keepalive;
use super::linger::{self, Auto};
use super::localio::{LocalReader, LocalWriter};
use crate::conn::{ByteConn, MsgConn, MsgSink, MsgStream};
use crate::error::{Error, Result};

mod receive;
mod send;

use receive::receive;
use send::Sending;

/// Resolves when the local side has ended (a program's exit status: the Close to send).
type OnEof = Pin<Box<dyn std::future::Future<Output = crate::conn::EofNote> + Send>>;

/// The byte side of a bytes↔messages session, with its codecs. With `--reconnect` it outlives
/// the WebSocket connections made for it.
pub(crate) struct LocalSide {
    input: LocalReader,
    output: LocalWriter,
    label: String,
    on_eof: Option<OnEof>,
    _guard: Option<Box<dyn std::any::Any + Send>>,
    /// Local messages read while disconnected, sent first on the next connection.
    queued: VecDeque<Message>,
    queued_bytes: usize,
    /// Local input ended while disconnected.
    eof: bool,
}

impl LocalSide {
    pub(crate) fn new(local: ByteConn, opts: &RelayOptions) -> LocalSide {
        let ByteConn {
            reader,
            writer,
            label,
            on_eof,
            guard,
            side,
        } = local;
        LocalSide {
            input: LocalReader::new(reader, LocalDecoder::new(opts.framing.clone()))
                .with_side(side),
            output: LocalWriter::new(writer, LocalEncoder::new(opts.framing.clone())),
            label,
            on_eof,
            _guard: guard,
            queued: Default::default(),
            queued_bytes: 0,
            eof: false,
        }
    }

    /// While disconnected: read local input into the queue, up to `limit` bytes (then the local
    /// writer is made to wait). Returns when input ends, fails, or the queue is full.
    pub(crate) async fn fill_queue(&mut self, limit: usize) -> Result<()> {
        while !self.eof && self.queued_bytes < limit {
            match self.input.next().await {
                None => self.eof = true,
                Some(Ok(m)) => {
                    self.queued_bytes += m.len();
                    self.queued.push_back(m);
                }
                Some(Err(FramingError::Io(e))) => {
                    return Err(Error::io(format!("{}: read failed", self.label), e));
                }
                Some(Err(e)) => return Err(Error::Input(format!("{}: {e}", self.label))),
            }
        }
        std::future::pending().await
    }

    /// Nothing more can come: tell the local side why (jsonl), and close its write side.
    pub(crate) async fn finish(mut self, why: Option<String>) {
        let _ = self.output.send(LocalEvent::Closed(None, why)).await;
        let _ = self.output.get_mut().shutdown().await;
    }
}

/// Tell the local side `last` (jsonl: a close event), flush, and close its write side (the
/// writer is dropped: for a pipe, such as a child's stdin, only closing it is EOF). Bounded: a
/// local reader that stopped reading must not hold the session forever.
async fn end_output(output: &mut LocalWriter, last: LocalEvent, opts: &RelayOptions) {
    let _ = tokio::time::timeout(opts.close_timeout, output.send(last)).await;
    let mut writer = output.take_inner();
    let _ = tokio::time::timeout(opts.close_timeout, writer.shutdown()).await;
    drop(writer);
}

/// What one connection's pump knows from the start; both directions read it.
struct Plan<'a> {
    opts: &'a RelayOptions,
    local_label: &'a str,
    /// Local input is read and sent (not `-U`).
    send: bool,
    /// Incoming messages are written to the local side (not `-u`).
    recv: bool,
    /// A real WebSocket, not a broadcast room: only it is pinged, and only its Close is held.
    websocket: bool,
    /// `--max-messages`, `--max-messages-rev`.
    up_limit: Option<u64>,
    down_limit: Option<u64>,
    auto: Auto,
    /// Server role: how long the local side may stay quiet before a held Close is answered.
    backend_quiet: Option<Duration>,
    /// Server role: the peer's Close is held while the local side finishes.
    hold_mode: bool,
    /// Server role: the local side is the backend opened for the WebSocket's client.
    backend: bool,
    /// ... and a socket (`tcp:`, `unix:`), not a program, whose exit status speaks for it: its
    /// reset is a failure the client is told of (Close 1011 "backend reset").
    socket_backend: bool,
    /// Arriving frames are timestamped (only the keepalive reads the time).
    track_seen: bool,
}

impl<'a> Plan<'a> {
    fn new(
        ws: &MsgConn,
        local_label: &'a str,
        (send, recv): (bool, bool),
        opts: &'a RelayOptions,
    ) -> Self {
        let auto = Auto::new(ws.rtt);
        // Server role: a client's Close is answered after the local side has finished sending
        // (its write side is closed at once; what it still sends goes out first), bounded.
        let backend_quiet = linger::quiet_needed(opts.linger, auto, 1, 0, true);
        Plan {
            opts,
            local_label,
            send,
            recv,
            websocket: ws.websocket,
            up_limit: None,
            down_limit: None,
            auto,
            backend_quiet,
            hold_mode: ws.holds_close && send && backend_quiet.is_some(),
            backend: ws.holds_close,
            socket_backend: false,
            track_seen: opts.ping_interval.is_some() && ws.websocket,
        }
    }
}

/// What the two directions of a bytes↔messages session tell each other.
struct Shared {
    start: Instant,
    /// Data messages received so far.
    received: AtomicU64,
    /// Set at local EOF: the number of messages sent (`u64::MAX` before).
    want: AtomicU64,
    /// The receiving direction got `want` messages.
    replies_in: Notify,
    /// Since when the receiving direction has been waiting for the peer, in microseconds after
    /// `start`, plus one (0: busy taking a message or delivering it locally).
    waiting_since: AtomicU64,
    /// The peer's Close arrived and is held: finish sending, then answer it.
    peer_closed: Notify,
    /// Microseconds since `start` of the last frame of any kind (pongs too), for --ping-timeout.
    last_seen: AtomicU64,
    /// Set when --max-messages-rev is reached, so the sending side stops waiting for replies.
    replies_done: Notify,
    /// Whether this side has sent a Close (the peer's answer is then expected, bounded).
    close_was_sent: AtomicBool,
    /// The receiving direction waits for the local side to take a message: the peer's frames
    /// are not being read, so its silence is not held against it (unless `sending_blocked`).
    delivering: AtomicBool,
    /// The sending direction waits for the WebSocket to take a message: the peer is not
    /// reading, so a local side that stops taking data (an echo) is not to blame.
    sending_blocked: AtomicBool,
    /// Whether the two flags above are read (keepalive or `--backend-timeout`); when not, they
    /// are not kept (the per-message path stays as short as it was).
    pub(super) watch: bool,
}

/// Poll `f` once, with the task's own waker: its result if it is ready at once.
async fn poll_once<F: Future>(mut f: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await
}

impl Shared {
    fn new(watch: bool) -> Self {
        Shared {
            start: Instant::now(),
            received: AtomicU64::new(0),
            want: AtomicU64::new(u64::MAX),
            replies_in: Notify::new(),
            waiting_since: AtomicU64::new(0),
            peer_closed: Notify::new(),
            last_seen: AtomicU64::new(0),
            replies_done: Notify::new(),
            close_was_sent: AtomicBool::new(false),
            delivering: AtomicBool::new(false),
            sending_blocked: AtomicBool::new(false),
            watch,
        }
    }

    /// When the last frame arrived (`start` if none has). While the local side is slow to take
    /// a message (and the peer is not, itself, refusing what we send): now.
    fn seen(&self) -> Instant {
        if self.delivering.load(Ordering::Relaxed) && !self.sending_blocked.load(Ordering::Relaxed)
        {
            return Instant::now();
        }
        self.start + Duration::from_micros(self.last_seen.load(Ordering::Relaxed))
    }

    /// Run `f`, a delivery to the local side. When it has to wait (and the keepalive is on, or
    /// `--backend-timeout` applies), the wait is marked (see [`Shared::seen`]), the peer counts
    /// as seen when it ends, and a backend gets at most `--backend-timeout` to take the data.
    async fn delivering(
        &self,
        plan: &Plan<'_>,
        f: impl Future<Output = std::io::Result<()>>,
    ) -> std::io::Result<()> {
        let stall_limit = plan.opts.backend_timeout.filter(|_| plan.backend);
        if !self.watch {
            return f.await;
        }
        let mut f = pin!(f);
        if let Poll::Ready(r) = poll_once(f.as_mut()).await {
            return r;
        }
        self.delivering.store(true, Ordering::Relaxed);
        let r = match stall_limit {
            Some(limit) => self.bounded(limit, f).await,
            None => f.await,
        };
        self.last_seen.store(self.now_mark(), Ordering::Relaxed);
        self.delivering.store(false, Ordering::Relaxed);
        r
    }

    /// `--backend-timeout`: the backend may wait `limit` to take data; longer only while the
    /// client is not taking ours (an echo backend waits for the client, and is not to blame).
    async fn bounded(
        &self,
        limit: Duration,
        mut f: Pin<&mut impl Future<Output = std::io::Result<()>>>,
    ) -> std::io::Result<()> {
        loop {
            match tokio::time::timeout(limit, f.as_mut()).await {
                Ok(r) => return r,
                Err(_) if self.sending_blocked.load(Ordering::Relaxed) => {}
                Err(_) => {
                    let e = closing::Stalled(limit);
                    return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, e));
                }
            }
        }
    }

    /// Run `f`, a send to the WebSocket; while it waits, the peer is not reading.
    async fn sending<T>(&self, f: impl Future<Output = T>) -> T {
        if !self.watch {
            return f.await;
        }
        let mut f = pin!(f);
        if let Poll::Ready(r) = poll_once(f.as_mut()).await {
            return r;
        }
        self.sending_blocked.store(true, Ordering::Relaxed);
        let r = f.await;
        self.sending_blocked.store(false, Ordering::Relaxed);
        r
    }

    /// Microseconds since `start`, plus one: rounded up (so a frame is never seen as older than
    /// a ping sent just before it), and never 0.
    fn now_mark(&self) -> u64 {
        self.start.elapsed().as_micros() as u64 + 1
    }

    fn mark_close_sent(&self) {
        self.close_was_sent.store(true, Ordering::Relaxed);
    }
}

pub(crate) async fn bytes_messages(
    local: ByteConn,
    ws: MsgConn,
    send: bool,
    recv: bool,
    limits: (Option<u64>, Option<u64>),
    opts: &RelayOptions,
) -> Result<()> {
    let mut side = LocalSide::new(local, opts);
    match pump(&mut side, ws, send, recv, limits, opts, false).await {
        Ended::Done(r) => r,
        Ended::Dropped(e) => Err(e),
    }
}

/// Pump between the local side and one WebSocket connection. With `reconnecting`, a WebSocket
/// that goes away while the local side is open ends in [`Ended::Dropped`] and leaves the local
/// side untouched.
pub(crate) async fn pump(
    side: &mut LocalSide,
    ws: MsgConn,
    send: bool,
    recv: bool,
    (up_limit, down_limit): (Option<u64>, Option<u64>),
    opts: &RelayOptions,
    reconnecting: bool,
) -> Ended {
    let plan = Plan::new(&ws, &side.label, (send, recv), opts);
    let plan = Plan {
        up_limit,
        down_limit,
        socket_backend: plan.backend && side.on_eof.is_none(),
        ..plan
    };
    let MsgConn {
        mut stream,
        mut sink,
        label,
        ..
    } = ws;
    let shared = Shared::new(plan.track_seen || plan.backend);
    let (mut sent, mut received) = (Counter::default(), Counter::default());
    let (up_end, down_end, close_sent) = {
        let mut sending = Sending {
            sink: &mut sink,
            input: &mut side.input,
            on_eof: &mut side.on_eof,
            queued: (&mut side.queued, &mut side.queued_bytes),
            local_eof: side.eof,
            sent: &mut sent,
            // Pings only on a real WebSocket (a broadcast room would never answer them).
            keepalive: Keepalive::new(
                opts.ping_interval.filter(|_| plan.websocket),
                opts.ping_timeout,
            ),
            shared: &shared,
            plan: &plan,
            warned: 0,
            holding: false,
        };
        // Pinned here, not moved into `run_both`: a future's arguments are kept beside its
        // locals, so a moved-in future would take its size twice in the session's task.
        let up = pin!(sending.run());
        let down = pin!(receive(
            &mut stream,
            &mut side.output,
            &mut received,
            &shared,
            &plan
        ));
        run_both(up, down, &shared, &plan).await
    };
    let facts = Facts {
        label: &label,
        local_label: plan.local_label,
        close_sent,
        shutting_down: opts.shutdown.is_cancelled(),
        reconnecting,
        close_code: opts.close_code,
        close_reason: &opts.close_reason,
        close_timeout: opts.close_timeout,
        ping_timeout: opts.ping_timeout,
        backend: plan.socket_backend,
    };
    let outcome = closing::outcome(up_end, down_end, &facts);
    let ws = (&mut sink, &mut stream);
    conclude(
        outcome,
        ws,
        &mut side.output,
        (&sent, &received),
        &label,
        opts,
    )
    .await
}

/// Run both directions until the session's end is known: `down` ends, or the close deadline
/// (set when `up` ends) passes, or a silent peer is taken for dead. Returns how each ended
/// (`None`: it had not), and whether this side had sent a Close when `up` ended.
async fn run_both(
    mut up: Pin<&mut impl Future<Output = Up>>,
    mut down: Pin<&mut impl Future<Output = Down>>,
    shared: &Shared,
    plan: &Plan<'_>,
) -> (Option<Up>, Option<Down>, bool) {
    let opts = plan.opts;
    let mut up_end: Option<Up> = None;
    let mut close_sent = false;
    let silence_limit = opts.ping_interval.unwrap_or_default() + opts.ping_timeout;
    let keepalive_on = opts.ping_interval.is_some() && plan.websocket;
    let mut deadline: Option<Instant> = None;
    // The peer's Close, held until the local side has finished (`hold_mode`).
    let mut held: Option<Option<CloseFrame>> = None;
    // Each direction polled only when woken (src/relay/woken.rs).
    let pair = super::woken::Pair::new();
    let down_end = loop {
        tokio::select! {
            u = poll_fn(|cx| pair.poll(0, up.as_mut(), cx)), if up_end.is_none() => {
                if matches!(u, Up::DeadPeer) {
                    break Some(Down::DeadPeer);
                }
                if let Some(frame) = held.take() {
                    up_end = Some(u);
                    break Some(Down::Closed(frame));
                }
                // Whoever sent a Close waits for the answer, bounded; shutdown has its own bound.
                close_sent = shared.close_was_sent.load(Ordering::Relaxed);
                let limit = if opts.shutdown.is_cancelled() { opts.shutdown_timeout } else { opts.close_timeout };
                deadline = Some(Instant::now() + limit);
                up_end = Some(u);
            }
            d = poll_fn(|cx| pair.poll(1, down.as_mut(), cx)), if held.is_none() => match d {
                Down::Closed(frame) if plan.hold_mode && up_end.is_none() => {
                    held = Some(frame);
                    shared.peer_closed.notify_one();
                    deadline = Some(Instant::now() + opts.close_timeout);
                }
                d => break Some(d),
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                break held.take().map(Down::Closed);
            }
            // A peer that stops reading can block our writes, and the pings with them:
            // silence for longer than a ping interval plus the timeout is a dead peer too.
            () = tokio::time::sleep(silence_limit), if keepalive_on && up_end.is_none() && held.is_none() => {
                if Instant::now().duration_since(shared.seen()) > silence_limit {
                    break Some(Down::DeadPeer);
                }
            }
        }
    };
    (up_end, down_end, close_sent)
}

/// Carry out `o` (see [`closing::Outcome`] for the order), log the session's summary, and end.
async fn conclude(
    o: closing::Outcome,
    (sink, stream): (&mut MsgSink, &mut MsgStream),
    output: &mut LocalWriter,
    (sent, received): (&Counter, &Counter),
    label: &str,
    opts: &RelayOptions,
) -> Ended {
    // The close code the local side was told of (the peer's, when it closed).
    let close_code = o
        .last_word
        .as_ref()
        .and_then(|(frame, _)| frame.as_ref())
        .map(|f| u16::from(f.code));
    if let Some((frame, limit)) = o.close {
        send_close(sink, Message::Close(Some(frame)), limit).await;
    }
    if o.drain == Drain::UntilClose {
        await_close(stream, opts.close_timeout).await;
    }
    if let Some(note) = o.note {
        tracing::debug!("{note}");
    }
    if let Some((frame, why)) = o.last_word {
        end_output(output, LocalEvent::Closed(frame, why), opts).await;
    }
    if o.drain == Drain::ToEnd {
        drain(stream, opts.close_timeout).await;
    }
    let result = match o.result {
        Ended::Done(result) => result,
        Ended::Dropped(err) => {
            tracing::info!(
                "{label}: connection lost after sending {} and receiving {} messages: {err}",
                sent.messages,
                received.messages
            );
            return Ended::Dropped(err);
        }
    };
    tracing::info!(
        session_end = true,
        close_code,
        sent_messages = sent.messages,
        sent_bytes = sent.bytes,
        received_messages = received.messages,
        received_bytes = received.bytes,
        "{label}: session ended: sent {} messages ({} bytes), received {} messages ({} bytes){}",
        sent.messages,
        sent.bytes,
        received.messages,
        received.bytes,
        match &result {
            Ok(()) => o.summary,
            Err(e) => format!("; {e}"),
        }
    );
    Ended::Done(result)
}
