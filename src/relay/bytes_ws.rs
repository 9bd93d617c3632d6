//! Bytes↔messages: a byte stream (through the framing codecs) facing one WebSocket. The
//! local side (`LocalSide`, which outlives a connection with `--reconnect`), the two directions
//! of `pump`, and the held Close (`--linger`, the server's `hold_mode`).

use std::future::pending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::closing::{self, Down, Drain, Ended, Facts, Up, await_close, close, drain, send_close};
use super::framing::{FramingError, LocalDecoder, LocalEncoder, LocalEvent};
use super::keepalive::{Idle, Keep, Keepalive, idle};
use super::linger::{self, Auto};
use super::localio::{LocalReader, LocalWriter};
use super::{Counter, send_data};
use crate::config::RelayOptions;
use crate::endpoint::{ByteConn, MsgConn};
use crate::error::{Error, Result};

/// The byte side of a bytes↔messages session, with its codecs. With `--reconnect` it outlives
/// the WebSocket connections made for it.
pub(crate) struct LocalSide {
    input: LocalReader,
    output: LocalWriter,
    label: String,
    on_eof: Option<
        std::pin::Pin<Box<dyn std::future::Future<Output = crate::endpoint::EofNote> + Send>>,
    >,
    _guard: Option<Box<dyn std::any::Any + Send>>,
    /// Local messages read while disconnected, sent first on the next connection.
    queued: std::collections::VecDeque<Message>,
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
        } = local;
        LocalSide {
            input: LocalReader::new(reader, LocalDecoder::new(opts.framing.clone())),
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

/// The end of an `idle` wait that nothing but the peer or a shutdown can end.
fn idle_end(i: Idle, close_was_sent: &std::sync::atomic::AtomicBool) -> Up {
    match i {
        Idle::Done => unreachable!("pending() never resolves"),
        Idle::Dead => Up::DeadPeer,
        Idle::SendFailed => Up::SendFailed,
        Idle::ShutDown => {
            close_was_sent.store(true, Ordering::Relaxed);
            Up::Eof
        }
    }
}

/// What the two directions of a bytes↔messages session tell each other about the closing.
#[derive(Default)]
struct Shared {
    /// Data messages received so far.
    received: AtomicU64,
    /// Set at local EOF: the number of messages sent (`u64::MAX` before).
    want: AtomicU64,
    /// The receiving direction got `want` messages.
    replies_in: Notify,
    /// Since when the receiving direction has been waiting for the peer, in microseconds after
    /// the session's start, plus one (0: busy taking a message or delivering it locally).
    waiting_since: AtomicU64,
    /// The peer's Close arrived and is held: finish sending, then answer it.
    peer_closed: Notify,
}

/// After local EOF: hold the Close until the peer has been quiet for `rule(received)` (see
/// [`super::linger`]), at most `limit`. Quiet means the receiving direction has been waiting
/// for the peer all that time. True when the peer's Close arrived meanwhile.
async fn hold_close(
    shared: &Shared,
    (start, sent): (Instant, u64),
    limit: Duration,
    rule: impl Fn(u64) -> Option<Duration>,
) -> bool {
    shared.want.store(sent, Ordering::Relaxed);
    let give_up = Instant::now() + limit;
    loop {
        let now = Instant::now();
        let Some(quiet) = rule(shared.received.load(Ordering::Relaxed)) else {
            return false;
        };
        let quiet_since = match shared.waiting_since.load(Ordering::Relaxed) {
            0 => now,
            t => start + Duration::from_micros(t - 1),
        };
        let until = (quiet_since + quiet).min(give_up);
        if now >= until {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            () = shared.replies_in.notified() => {}
            () = shared.peer_closed.notified() => return true,
        }
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
    limits: (Option<u64>, Option<u64>),
    opts: &RelayOptions,
    reconnecting: bool,
) -> Ended {
    let LocalSide {
        input,
        output,
        label: local_label,
        on_eof,
        queued,
        queued_bytes,
        eof: local_eof,
        ..
    } = side;
    let local_label = local_label.as_str();
    let MsgConn {
        mut stream,
        mut sink,
        label,
        websocket,
        rtt,
        holds_close,
    } = ws;
    let auto = Auto::new(rtt);
    // Server role: a client's Close is answered after the local side has finished sending
    // (its write side is closed at once; what it still sends goes out first), bounded.
    let backend_quiet = linger::quiet_needed(opts.linger, auto, 1, 0, true);
    let hold_mode = holds_close && send && backend_quiet.is_some();
    let (up_limit, down_limit) = limits;
    let (mut sent, mut received) = (Counter::default(), Counter::default());
    let mut close_sent = false;
    let start = Instant::now();
    let shared = Shared {
        want: AtomicU64::new(u64::MAX),
        ..Shared::default()
    };
    // Microseconds since `start` of the last frame of any kind (pongs too), for --ping-timeout.
    let last_seen = AtomicU64::new(0);
    let seen = |at: &AtomicU64| start + Duration::from_micros(at.load(Ordering::Relaxed));
    // Set when --max-messages-rev is reached, so the sending side stops waiting for replies.
    let replies_done = tokio::sync::Notify::new();
    let track_seen = opts.ping_interval.is_some() && websocket;
    // Whether this side has sent a Close (the peer's answer is then expected, bounded).
    let close_was_sent = std::sync::atomic::AtomicBool::new(false);

    let (up_end, down_end) = {
        let up = async {
            // Pings only on a real WebSocket (a broadcast room would never answer them).
            let mut keepalive =
                Keepalive::new(opts.ping_interval.filter(|_| websocket), opts.ping_timeout);
            if !send {
                // Local input is not read; pings and shutdown still are this side's job.
                let i = idle(
                    &mut sink,
                    &mut keepalive,
                    &seen,
                    &last_seen,
                    opts,
                    pending(),
                );
                return idle_end(i.await, &close_was_sent);
            }
            let mut warned = 0u64;
            let mut local_close = None;
            let mut shutting_down = false;
            // The peer's Close arrived and waits for the local side to finish (`hold_mode`).
            let mut holding = false;
            let mut polls = 0u32;
            // What was read while disconnected goes first.
            while let Some(m) = queued.pop_front() {
                *queued_bytes -= m.len();
                sent.add(&m);
                if send_data(&mut sink, m, opts.max_frame_size, websocket)
                    .await
                    .is_err()
                {
                    return Up::SendFailed;
                }
            }
            loop {
                if *local_eof {
                    break;
                }
                // Checked every 64 messages while input keeps coming (a waiting loop sees the
                // token through `select!` below).
                polls = polls.wrapping_add(1);
                if polls % 64 == 1 && opts.shutdown.is_cancelled() {
                    shutting_down = true;
                    break;
                }
                if up_limit.is_some_and(|n| sent.messages >= n) {
                    // Enough sent. With a reply limit pending, wait for the replies first.
                    if down_limit.is_some() {
                        let _ = sink.flush().await;
                        match idle(
                            &mut sink,
                            &mut keepalive,
                            &seen,
                            &last_seen,
                            opts,
                            replies_done.notified(),
                        )
                        .await
                        {
                            Idle::Done => {}
                            Idle::Dead => return Up::DeadPeer,
                            Idle::SendFailed => return Up::SendFailed,
                            Idle::ShutDown => {
                                close_was_sent.store(true, Ordering::Relaxed);
                                return Up::Eof;
                            }
                        }
                    }
                    break;
                }
                let next = match input.next().now_or_never() {
                    Some(n) => n,
                    None => {
                        if sink.flush().await.is_err() {
                            return Up::SendFailed;
                        }
                        tokio::select! {
                            n = input.next() => n,
                            () = shared.peer_closed.notified(), if !holding => {
                                holding = true;
                                continue;
                            }
                            // The local side went quiet after the peer's Close: answer it.
                            () = tokio::time::sleep(backend_quiet.unwrap_or_default()), if holding => None,
                            () = keepalive.due(), if !holding => {
                                match keepalive.act(seen(&last_seen)) {
                                    Keep::Ping => {
                                        if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                                            return Up::SendFailed;
                                        }
                                    }
                                    Keep::Dead => return Up::DeadPeer,
                                    Keep::Wait => {}
                                }
                                continue;
                            }
                            () = opts.shutdown.cancelled() => {
                                shutting_down = true;
                                break;
                            }
                        }
                    }
                };
                let fallbacks = input.decoder().binary_fallbacks;
                if fallbacks > warned {
                    if warned == 0 {
                        tracing::warn!(
                            "{local_label}: a text-mode message is not valid UTF-8; sent as a binary message (text frames never carry invalid UTF-8)"
                        );
                    }
                    warned = fallbacks;
                }
                match next {
                    None => break,
                    Some(Ok(Message::Close(frame))) => {
                        // jsonl: the local side asked to close.
                        local_close = Some(frame);
                        break;
                    }
                    Some(Ok(msg)) => {
                        if msg.is_text() || msg.is_binary() {
                            sent.add(&msg);
                        }
                        if send_data(&mut sink, msg, opts.max_frame_size, websocket)
                            .await
                            .is_err()
                        {
                            return Up::SendFailed;
                        }
                    }
                    Some(Err(e)) => {
                        let (msg, err) = match e {
                            FramingError::TooLong { .. } => (
                                close(CloseCode::Size, "local message too long"),
                                Error::Input(format!("{local_label}: {e}")),
                            ),
                            FramingError::BadInput(_) => (
                                close(CloseCode::Error, "bad local input"),
                                Error::Input(format!("{local_label}: {e}")),
                            ),
                            FramingError::Io(io) => {
                                let err = Error::io(format!("{local_label}: read failed"), io);
                                (close(CloseCode::Away, ""), err)
                            }
                        };
                        let _ = sink.flush().await;
                        send_close(&mut sink, msg, opts.close_timeout).await;
                        close_was_sent.store(true, Ordering::Relaxed);
                        return Up::Failed(err);
                    }
                }
            }
            // Input may have ended (or a limit been reached) between two of the checks above.
            shutting_down |= opts.shutdown.is_cancelled();
            if warned > 1 {
                tracing::warn!(
                    "{local_label}: {warned} text-mode messages were not valid UTF-8 and were sent as binary messages"
                );
            }
            if sink.flush().await.is_err() {
                return Up::SendFailed;
            }
            if shutting_down {
                // Asked to stop: say so, whatever --no-close says.
                if sink
                    .send(close(CloseCode::Away, "shutting down"))
                    .await
                    .is_err()
                {
                    return Up::SendFailed;
                }
                close_was_sent.store(true, Ordering::Relaxed);
                return Up::Eof;
            }
            if holding {
                // Everything the local side had is sent: answer the peer's held Close.
                let _ = tokio::time::timeout(opts.close_timeout, sink.close()).await;
                return Up::Eof;
            }
            if !opts.no_close || local_close.is_some() {
                let frame = match local_close {
                    // jsonl: the local side asked for this Close; it goes at once.
                    Some(frame) => frame,
                    None => {
                        let note = match on_eof.take() {
                            Some(f) => Some(f.await),
                            None => None,
                        };
                        // Held only for a WebSocket (a room drops nothing) that someone reads.
                        let reading =
                            recv && websocket && note.as_ref().is_none_or(|n| n.still_reading);
                        let sent_n = sent.messages;
                        let rule =
                            |got| linger::quiet_needed(opts.linger, auto, sent_n, got, reading);
                        if hold_close(&shared, (start, sent_n), opts.close_timeout, rule).await {
                            // The peer closed first and waits for our answer.
                            let _ = tokio::time::timeout(opts.close_timeout, sink.close()).await;
                            return Up::Eof;
                        }
                        Some(note.map_or_else(
                            || CloseFrame {
                                code: CloseCode::from(opts.close_code),
                                reason: opts.close_reason.clone().into(),
                            },
                            |n| n.close,
                        ))
                    }
                };
                if sink.send(Message::Close(frame)).await.is_err() {
                    return Up::SendFailed;
                }
                close_was_sent.store(true, Ordering::Relaxed);
                return Up::Eof;
            }
            // --no-close: local input is over, the WebSocket stays; keep it checked.
            let i = idle(
                &mut sink,
                &mut keepalive,
                &seen,
                &last_seen,
                opts,
                pending(),
            );
            idle_end(i.await, &close_was_sent)
        };
        let down = async {
            if let Err(e) = output.feed(LocalEvent::Open).await {
                return Down::WriteError(e);
            }
            loop {
                let next = match stream.next().now_or_never() {
                    Some(n) => n,
                    None => {
                        if let Err(e) = output.flush().await {
                            return Down::WriteError(e);
                        }
                        let since = start.elapsed().as_micros() as u64 + 1;
                        shared.waiting_since.store(since, Ordering::Relaxed);
                        let n = stream.next().await;
                        shared.waiting_since.store(0, Ordering::Relaxed);
                        n
                    }
                };
                // Timestamps only when something reads them (a clock read per message shows up
                // in the lines benchmark).
                if track_seen && let Some(Ok(_)) = &next {
                    // Rounded up, so a frame is never seen as older than a ping sent just before it.
                    last_seen.store(start.elapsed().as_micros() as u64 + 1, Ordering::Relaxed);
                }
                match next {
                    None => return Down::Ended,
                    Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                        received.add(&m);
                        shared.received.store(received.messages, Ordering::Relaxed);
                        if received.messages == shared.want.load(Ordering::Relaxed) {
                            shared.replies_in.notify_one();
                        }
                        if recv && let Err(e) = output.feed(LocalEvent::Message(m)).await {
                            return Down::WriteError(e);
                        }
                        if down_limit.is_some_and(|n| received.messages >= n) {
                            if let Err(e) = output.flush().await {
                                return Down::WriteError(e);
                            }
                            replies_done.notify_one();
                            return Down::Limit;
                        }
                    }
                    Some(Ok(Message::Close(f))) => {
                        if let Err(e) = output.flush().await {
                            tracing::debug!("{local_label}: flush after Close failed: {e}");
                        }
                        if hold_mode && !close_was_sent.load(Ordering::Relaxed) {
                            // The Close is held while the local side finishes: it gets EOF now.
                            end_output(output, LocalEvent::Closed(f.clone(), None), opts).await;
                        }
                        return Down::Closed(f);
                    }
                    Some(Ok(m @ (Message::Ping(_) | Message::Pong(_)))) => {
                        if recv && let Err(e) = output.feed(LocalEvent::Message(m)).await {
                            return Down::WriteError(e);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Down::ReadError(e),
                }
            }
        };
        tokio::pin!(up, down);
        let mut up_end: Option<Up> = None;
        let silence_limit = opts.ping_interval.unwrap_or_default() + opts.ping_timeout;
        let keepalive_on = opts.ping_interval.is_some() && websocket;
        let mut deadline: Option<Instant> = None;
        // The peer's Close, held until the local side has finished (`hold_mode`).
        let mut held: Option<Option<CloseFrame>> = None;
        let down_end = loop {
            tokio::select! {
                u = &mut up, if up_end.is_none() => {
                    if matches!(u, Up::DeadPeer) {
                        break Some(Down::DeadPeer);
                    }
                    if let Some(frame) = held.take() {
                        up_end = Some(u);
                        break Some(Down::Closed(frame));
                    }
                    // Whoever sent a Close waits for the answer, bounded; shutdown has its own bound.
                    close_sent = close_was_sent.load(Ordering::Relaxed);
                    let limit = if opts.shutdown.is_cancelled() { opts.shutdown_timeout } else { opts.close_timeout };
                    deadline = Some(Instant::now() + limit);
                    up_end = Some(u);
                }
                d = &mut down, if held.is_none() => match d {
                    Down::Closed(frame) if hold_mode && up_end.is_none() => {
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
                    if Instant::now().duration_since(seen(&last_seen)) > silence_limit {
                        break Some(Down::DeadPeer);
                    }
                }
            }
        };
        (up_end, down_end)
    };

    let facts = Facts {
        label: &label,
        local_label,
        close_sent,
        shutting_down: opts.shutdown.is_cancelled(),
        reconnecting,
        close_code: opts.close_code,
        close_reason: &opts.close_reason,
        close_timeout: opts.close_timeout,
        ping_timeout: opts.ping_timeout,
    };
    let o = closing::outcome(up_end, down_end, &facts);
    if let Some((frame, limit)) = o.close {
        send_close(&mut sink, Message::Close(Some(frame)), limit).await;
    }
    if o.drain == Drain::UntilClose {
        await_close(&mut stream, opts.close_timeout).await;
    }
    if let Some(note) = o.note {
        tracing::debug!("{note}");
    }
    if let Some((frame, why)) = o.last_word {
        end_output(output, LocalEvent::Closed(frame, why), opts).await;
    }
    if o.drain == Drain::ToEnd {
        drain(&mut stream, opts.close_timeout).await;
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
