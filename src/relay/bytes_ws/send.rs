//! The local → WebSocket direction of a bytes↔messages session: local input, decoded and sent
//! as messages; at local EOF the Close, held while replies may still come (`--linger`), or the
//! answer to the peer's Close held by the server role. Also this side's keepalive and shutdown.

use std::collections::VecDeque;
use std::future::pending;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::futures::Notified;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::WaitForCancellationFuture;

use super::{OnEof, Plan, Shared};
use crate::conn::MsgSink;
use crate::error::Error;
use crate::relay::Counter;
use crate::relay::closing::{self, Up, close, close_frame, send_close};
use crate::relay::framing::FramingError;
use crate::relay::keepalive::{Idle, Keep, Keepalive, idle};
use crate::relay::linger;
use crate::relay::localio::LocalReader;
use crate::relay::send_data;

/// The end of an `idle` wait that nothing but the peer or a shutdown can end.
fn idle_end(i: Idle, close_was_sent: &AtomicBool) -> Up {
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

/// After local EOF: hold the Close until the peer has been quiet for `rule(received)` (see
/// [`crate::relay::linger`]), at most `limit`. Quiet means the receiving direction has been waiting
/// for the peer all that time. True when the peer's Close arrived meanwhile.
async fn hold_close(
    shared: &Shared,
    sent: u64,
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
            t => shared.start + Duration::from_micros(t - 1),
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

/// What waiting for local input also watches, kept from one wait to the next: made afresh at
/// every wait, each registered and deregistered itself (with the Notify, the cancellation token
/// and the timer wheel) once per message, which showed in the fan-in profile.
struct Waits<'a> {
    peer_closed: Pin<Box<Notified<'a>>>,
    shutdown: Pin<Box<WaitForCancellationFuture<'a>>>,
    /// The keepalive's timer, moved only when the keepalive's next due time changes.
    tick: Option<Pin<Box<Sleep>>>,
}

impl<'a> Waits<'a> {
    fn new(
        shared: &'a Shared,
        opts: &'a crate::relay::RelayOptions,
        keepalive: &Keepalive,
    ) -> Self {
        Waits {
            peer_closed: Box::pin(shared.peer_closed.notified()),
            shutdown: Box::pin(opts.shutdown.waiter()),
            tick: keepalive
                .due_at()
                .map(|at| Box::pin(tokio::time::sleep_until(at))),
        }
    }
}

/// Resolves when the keepalive has something to do (never without one), on `timer`.
async fn tick(timer: &mut Option<Pin<Box<Sleep>>>, keepalive: &Keepalive) {
    match (timer, keepalive.due_at()) {
        (Some(sleep), Some(at)) => {
            if sleep.deadline() != at {
                sleep.as_mut().reset(at);
            }
            sleep.await;
        }
        _ => pending().await,
    }
}

/// Why local input stopped being sent.
enum Stop {
    /// Input ended, `--max-messages` was reached, or the local side went quiet after the peer's
    /// held Close.
    Eof,
    /// jsonl: the local side asked for this Close.
    Close(Option<CloseFrame>),
    /// Shutdown was asked for.
    ShutDown,
}

/// What waiting for local input brought.
enum Waited {
    Input(Option<std::result::Result<Message, FramingError>>),
    /// Something else was done (a ping, the peer's Close noted): look again.
    Again,
    ShutDown,
}

/// The local → WebSocket direction: local input, decoded, sent as messages (fed while input is
/// ready, flushed when it is not); at local EOF the Close, held as `--linger` says, or the answer
/// to the peer's held Close. Also this side's keepalive and shutdown.
pub(super) struct Sending<'a> {
    pub(super) sink: &'a mut MsgSink,
    pub(super) input: &'a mut LocalReader,
    pub(super) on_eof: &'a mut Option<OnEof>,
    /// What was read while disconnected (`--reconnect`), and its size in bytes.
    pub(super) queued: (&'a mut VecDeque<Message>, &'a mut usize),
    /// Local input had ended while disconnected.
    pub(super) local_eof: bool,
    pub(super) sent: &'a mut Counter,
    pub(super) keepalive: Keepalive,
    pub(super) shared: &'a Shared,
    pub(super) plan: &'a Plan<'a>,
    /// Text-mode messages sent as binary (not valid UTF-8) that have been reported.
    pub(super) warned: u64,
    /// The peer's Close arrived and waits for the local side to finish (`hold_mode`).
    pub(super) holding: bool,
}

impl<'a> Sending<'a> {
    pub(super) async fn run(&mut self) -> Up {
        if !self.plan.send {
            // Local input is not read; pings and shutdown still are this side's job.
            return self.idle_on().await;
        }
        let stop = match self.send_input().await {
            Ok(stop) => stop,
            Err(end) => return end,
        };
        self.finish(stop).await
    }

    /// Send local input until it stops. `Err`: this direction has ended.
    async fn send_input(&mut self) -> std::result::Result<Stop, Up> {
        let opts = self.plan.opts;
        // What was read while disconnected goes first.
        while let Some(m) = self.queued.0.pop_front() {
            *self.queued.1 -= m.len();
            self.sent.add(&m);
            if send_data(self.sink, m, opts.max_frame_size, self.plan.websocket)
                .await
                .is_err()
            {
                return Err(Up::SendFailed);
            }
        }
        if self.local_eof {
            return Ok(Stop::Eof);
        }
        // Read once: the loop below runs per message.
        let (up_limit, websocket) = (self.plan.up_limit, self.plan.websocket);
        let max_frame = opts.max_frame_size;
        let mut polls = 0u32;
        let mut waits = Waits::new(self.shared, opts, &self.keepalive);
        loop {
            // Checked every 64 messages while input keeps coming (a waiting loop sees the
            // token through `select!` in `wait_input`).
            polls = polls.wrapping_add(1);
            if polls % 64 == 1 && opts.shutdown.is_cancelled() {
                return Ok(Stop::ShutDown);
            }
            if up_limit.is_some_and(|n| self.sent.messages >= n) {
                self.await_replies().await?;
                return Ok(Stop::Eof);
            }
            let next = match self.input.next().now_or_never() {
                Some(n) => n,
                None => match self.wait_input(&mut waits).await? {
                    Waited::Input(n) => n,
                    Waited::Again => continue,
                    Waited::ShutDown => return Ok(Stop::ShutDown),
                },
            };
            self.note_fallbacks();
            match next {
                None => return Ok(Stop::Eof),
                Some(Ok(Message::Close(frame))) => return Ok(Stop::Close(frame)),
                Some(Ok(msg)) => {
                    if msg.is_text() || msg.is_binary() {
                        self.sent.add(&msg);
                    }
                    let sent = send_data(self.sink, msg, max_frame, websocket);
                    let sent = if self.shared.watch {
                        self.shared.sending(sent).await
                    } else {
                        sent.await
                    };
                    if sent.is_err() {
                        return Err(Up::SendFailed);
                    }
                }
                Some(Err(e)) => return Err(self.input_failed(e).await),
            }
        }
    }

    /// No input is ready: flush what was fed, then wait for input, the peer's Close (held), the
    /// local side's quiet time after it, a keepalive tick, or shutdown.
    async fn wait_input(&mut self, waits: &mut Waits<'a>) -> std::result::Result<Waited, Up> {
        if self.shared.sending(self.sink.flush()).await.is_err() {
            return Err(Up::SendFailed);
        }
        let holding = self.holding;
        let quiet = self.plan.backend_quiet.unwrap_or_default();
        let Waits {
            peer_closed,
            shutdown,
            tick: timer,
        } = waits;
        tokio::select! {
            n = self.input.next() => Ok(Waited::Input(n)),
            () = peer_closed.as_mut(), if !holding => {
                self.holding = true;
                Ok(Waited::Again)
            }
            // The local side went quiet after the peer's Close: answer it.
            () = tokio::time::sleep(quiet), if holding => Ok(Waited::Input(None)),
            () = tick(timer, &self.keepalive), if !holding => {
                match self.keepalive.act(self.shared.seen()) {
                    Keep::Ping => {
                        if self.sink.send(Message::Ping(Bytes::new())).await.is_err() {
                            return Err(Up::SendFailed);
                        }
                    }
                    Keep::Dead => return Err(Up::DeadPeer),
                    Keep::Wait => {}
                }
                Ok(Waited::Again)
            }
            () = shutdown.as_mut() => Ok(Waited::ShutDown),
        }
    }

    /// `--max-messages` reached. With a `--max-messages-rev` pending, wait for those replies
    /// first. `Err`: this direction has ended meanwhile.
    async fn await_replies(&mut self) -> std::result::Result<(), Up> {
        if self.plan.down_limit.is_none() {
            return Ok(());
        }
        let _ = self.sink.flush().await;
        let shared = self.shared;
        let until = shared.replies_done.notified();
        match idle(
            self.sink,
            &mut self.keepalive,
            &|| shared.seen(),
            self.plan.opts,
            until,
        )
        .await
        {
            Idle::Done => Ok(()),
            i => Err(idle_end(i, &shared.close_was_sent)),
        }
    }

    /// Warn the first time a text-mode message had to go as binary (not valid UTF-8).
    fn note_fallbacks(&mut self) {
        let fallbacks = self.input.decoder().binary_fallbacks;
        if fallbacks > self.warned {
            if self.warned == 0 {
                tracing::warn!(
                    "{}: a text-mode message is not valid UTF-8; sent as a binary message (text frames never carry invalid UTF-8)",
                    self.plan.local_label
                );
            }
            self.warned = fallbacks;
        }
    }

    /// Bad local input or a read error: a Close that says so, and the error.
    async fn input_failed(&mut self, e: FramingError) -> Up {
        let local_label = self.plan.local_label;
        let (msg, err) = match e {
            FramingError::TooLong { .. } => (
                close(CloseCode::Size, "local message too long"),
                Error::Input(format!("{local_label}: {e}")),
            ),
            FramingError::BadInput(_) => (
                close(CloseCode::Error, "bad local input"),
                Error::Input(format!("{local_label}: {e}")),
            ),
            FramingError::Io(io) if self.plan.socket_backend && closing::is_reset(&io) => (
                close(CloseCode::Error, closing::BACKEND_RESET),
                closing::backend_failed(local_label, io),
            ),
            FramingError::Io(io) => {
                let err = Error::io(format!("{local_label}: read failed"), io);
                (close(CloseCode::Away, ""), err)
            }
        };
        let _ = self.sink.flush().await;
        send_close(self.sink, msg, self.plan.opts.close_timeout).await;
        self.shared.mark_close_sent();
        Up::Failed(err)
    }

    /// Local input is over: say goodbye as `stop` (and --no-close) asks.
    async fn finish(&mut self, stop: Stop) -> Up {
        let opts = self.plan.opts;
        // Input may have ended (or a limit been reached) between two of the checks above.
        let stop = if opts.shutdown.is_cancelled() {
            Stop::ShutDown
        } else {
            stop
        };
        if self.warned > 1 {
            tracing::warn!(
                "{}: {} text-mode messages were not valid UTF-8 and were sent as binary messages",
                self.plan.local_label,
                self.warned
            );
        }
        if self.sink.flush().await.is_err() {
            return Up::SendFailed;
        }
        match stop {
            // Asked to stop: say so, whatever --no-close says.
            Stop::ShutDown => {
                self.send_close(Some(close_frame(CloseCode::Away, "shutting down")))
                    .await
            }
            // Everything the local side had is sent: answer the peer's held Close.
            _ if self.holding => {
                let _ = tokio::time::timeout(opts.close_timeout, self.sink.close()).await;
                Up::Eof
            }
            // jsonl: the local side asked for this Close; it goes at once.
            Stop::Close(frame) => self.send_close(frame).await,
            Stop::Eof if !opts.no_close => match self.linger().await {
                Some(frame) => self.send_close(Some(frame)).await,
                None => Up::Eof,
            },
            // --no-close: local input is over, the WebSocket stays; keep it checked.
            Stop::Eof => self.idle_on().await,
        }
    }

    /// Local EOF: hold the Close while replies may still come (`--linger`), then the Close to
    /// send (`--close-code`, or what the program's exit status says). `None`: the peer's Close
    /// came first and has been answered.
    async fn linger(&mut self) -> Option<CloseFrame> {
        let (plan, opts) = (self.plan, self.plan.opts);
        let note = match self.on_eof.take() {
            Some(f) => Some(f.await),
            None => None,
        };
        // Held only for a WebSocket (a room drops nothing) that someone reads.
        let reading = plan.recv && plan.websocket && note.as_ref().is_none_or(|n| n.still_reading);
        let sent = self.sent.messages;
        let rule = |got| linger::quiet_needed(opts.linger, plan.auto, sent, got, reading);
        if hold_close(self.shared, sent, opts.close_timeout, rule).await {
            // The peer closed first and waits for our answer.
            let _ = tokio::time::timeout(opts.close_timeout, self.sink.close()).await;
            return None;
        }
        Some(note.map_or_else(
            || CloseFrame {
                code: CloseCode::from(opts.close_code),
                reason: opts.close_reason.clone().into(),
            },
            |n| n.close,
        ))
    }

    async fn send_close(&mut self, frame: Option<CloseFrame>) -> Up {
        if self.sink.send(Message::Close(frame)).await.is_err() {
            return Up::SendFailed;
        }
        self.shared.mark_close_sent();
        Up::Eof
    }

    /// Nothing to send: keep the WebSocket checked (pings, dead peer) until the peer or a
    /// shutdown ends the session.
    async fn idle_on(&mut self) -> Up {
        let shared = self.shared;
        let seen = || shared.seen();
        let i = idle(
            self.sink,
            &mut self.keepalive,
            &seen,
            self.plan.opts,
            pending(),
        );
        idle_end(i.await, &shared.close_was_sent)
    }
}
