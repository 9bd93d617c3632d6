//! The WebSocket → local direction of a bytes↔messages session: each message to the local
//! writer, batched; it tells the sending direction what arrived and when it began waiting
//! (for `--linger`), and hands on the peer's Close.

use std::sync::atomic::Ordering;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::{Plan, Shared, end_output};
use crate::conn::MsgStream;
use crate::relay::Counter;
use crate::relay::closing::Down;
use crate::relay::framing::LocalEvent;
use crate::relay::localio::LocalWriter;

/// The WebSocket → local direction: each message to the local writer (flushed when no further
/// message is ready), until the peer's Close, the stream's end, an error or `--max-messages-rev`.
pub(super) async fn receive(
    stream: &mut MsgStream,
    output: &mut LocalWriter,
    received: &mut Counter,
    shared: &Shared,
    plan: &Plan<'_>,
) -> Down {
    let (recv, down_limit, track_seen) = (plan.recv, plan.down_limit, plan.track_seen);
    if let Err(e) = output.feed(LocalEvent::Open).await {
        return Down::WriteError(e);
    }
    loop {
        let next = match stream.next().now_or_never() {
            Some(n) => n,
            None => {
                let flushed = if shared.watch {
                    shared.delivering(plan, output.flush()).await
                } else {
                    output.flush().await
                };
                if let Err(e) = flushed {
                    return Down::WriteError(e);
                }
                shared
                    .waiting_since
                    .store(shared.now_mark(), Ordering::Relaxed);
                let n = stream.next().await;
                shared.waiting_since.store(0, Ordering::Relaxed);
                n
            }
        };
        // Timestamps only when something reads them (a clock read per message shows up in the
        // lines benchmark).
        if track_seen && let Some(Ok(_)) = &next {
            shared.last_seen.store(shared.now_mark(), Ordering::Relaxed);
        }
        match next {
            None => return Down::Ended,
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                received.add(&m);
                shared.received.store(received.messages, Ordering::Relaxed);
                if received.messages == shared.want.load(Ordering::Relaxed) {
                    shared.replies_in.notify_one();
                }
                if recv {
                    let fed = output.feed(LocalEvent::Message(m));
                    let fed = if shared.watch {
                        shared.delivering(plan, fed).await
                    } else {
                        fed.await
                    };
                    if let Err(e) = fed {
                        return Down::WriteError(e);
                    }
                }
                if down_limit.is_some_and(|n| received.messages >= n) {
                    if let Err(e) = output.flush().await {
                        return Down::WriteError(e);
                    }
                    shared.replies_done.notify_one();
                    return Down::Limit;
                }
            }
            Some(Ok(Message::Close(f))) => {
                if let Err(e) = output.flush().await {
                    tracing::debug!("{}: flush after Close failed: {e}", plan.local_label);
                }
                if plan.hold_mode && !shared.close_was_sent.load(Ordering::Relaxed) {
                    // The Close is held while the local side finishes: it gets EOF now.
                    end_output(output, LocalEvent::Closed(f.clone(), None), plan.opts).await;
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
}
