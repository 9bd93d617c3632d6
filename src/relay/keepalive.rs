//! Keepalive for the WebSocket of a bytes↔messages session: `--ping-interval` pings, the dead
//! peer after `--ping-timeout`, and the idle wait that keeps both going while this side has
//! nothing to send.

use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::RelayOptions;
use super::closing::{close, send_close};
use crate::conn::MsgSink;

/// How an idle wait ended.
pub(crate) enum Idle {
    /// What we waited for happened.
    Done,
    Dead,
    SendFailed,
    /// Shutdown was asked for; Close 1001 has been sent.
    ShutDown,
}

/// Wait for `until` while keeping the WebSocket checked (pings, dead peer) and watching for
/// shutdown. For times when this side has nothing to send.
pub(crate) async fn idle(
    sink: &mut MsgSink,
    keepalive: &mut Keepalive,
    seen: &impl Fn() -> Instant,
    opts: &RelayOptions,
    until: impl std::future::Future<Output = ()>,
) -> Idle {
    tokio::pin!(until);
    loop {
        tokio::select! {
            () = &mut until => return Idle::Done,
            () = keepalive.due() => match keepalive.act(seen()) {
                Keep::Ping => {
                    if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                        return Idle::SendFailed;
                    }
                }
                Keep::Dead => return Idle::Dead,
                Keep::Wait => {}
            },
            () = opts.shutdown.cancelled() => {
                send_close(sink, close(CloseCode::Away, "shutting down"), opts.close_timeout).await;
                return Idle::ShutDown;
            }
        }
    }
}

/// What the keepalive timer asks for.
pub(crate) enum Keep {
    Ping,
    Dead,
    Wait,
}

/// `--ping-interval`/`--ping-timeout`: a ping every interval; the peer is dead when nothing at
/// all arrives within the timeout of a ping.
pub(crate) struct Keepalive {
    interval: Option<Duration>,
    timeout: Duration,
    next_ping: Instant,
    /// When the oldest unanswered ping was sent.
    outstanding: Option<Instant>,
}

impl Keepalive {
    pub(crate) fn new(interval: Option<Duration>, timeout: Duration) -> Self {
        let now = Instant::now();
        Keepalive {
            interval,
            timeout,
            next_ping: now + interval.unwrap_or_default(),
            outstanding: None,
        }
    }

    /// Resolves when there is something to do (never without an interval).
    pub(crate) async fn due(&self) {
        match self.due_at() {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// When there is something to do next (`None`: never, there is no interval).
    pub(crate) fn due_at(&self) -> Option<Instant> {
        self.interval?;
        Some(match self.outstanding {
            Some(sent) => self.next_ping.min(sent + self.timeout),
            None => self.next_ping,
        })
    }

    /// `last_seen`: when the last frame of any kind arrived.
    pub(crate) fn act(&mut self, last_seen: Instant) -> Keep {
        let Some(interval) = self.interval else {
            return Keep::Wait;
        };
        let now = Instant::now();
        if let Some(sent) = self.outstanding {
            if last_seen >= sent {
                crate::metrics::M.ping_rtt(last_seen - sent);
                self.outstanding = None;
            } else if now >= sent + self.timeout {
                crate::metrics::M.dead_peer();
                return Keep::Dead;
            }
        }
        if now >= self.next_ping {
            self.next_ping = now + interval;
            self.outstanding.get_or_insert(now);
            return Keep::Ping;
        }
        Keep::Wait
    }
}
