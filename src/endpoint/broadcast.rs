//! `broadcast:`: rooms where every message from one member goes to every other member, in order.
//! With `ws-listen:` each request path is its own room. Each member has a bounded queue; a member
//! that falls that far behind is disconnected with Close 1013 and a log line, so a slow client
//! never stalls the room or grows memory without bound. Nothing is dropped silently.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::Sink;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::MsgConn;

/// All rooms of one wsbridge process.
pub struct Hub {
    rooms: Mutex<HashMap<String, Vec<Member>>>,
    queue: usize,
    next_id: AtomicU64,
}

struct Member {
    id: u64,
    tx: mpsc::Sender<Message>,
    kicked: Arc<AtomicBool>,
}

impl Hub {
    pub fn new(queue: usize) -> Arc<Hub> {
        Arc::new(Hub {
            rooms: Mutex::new(HashMap::new()),
            queue,
            next_id: AtomicU64::new(1),
        })
    }

    /// Join `room`; the connection's stream yields what others send, its sink sends to others.
    pub fn join(self: &Arc<Self>, room: &str) -> MsgConn {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.queue);
        let kicked = Arc::new(AtomicBool::new(false));
        let size = {
            let mut rooms = self.rooms.lock().expect("hub lock");
            let members = rooms.entry(room.to_string()).or_default();
            members.push(Member {
                id,
                tx,
                kicked: kicked.clone(),
            });
            members.len()
        };
        tracing::info!("broadcast room '{room}': member #{id} joined ({size} members)");
        let queue = self.queue;
        let stream = futures_util::stream::unfold(
            (rx, kicked, false),
            move |(mut rx, kicked, done)| async move {
                if done {
                    return None;
                }
                let msg = if kicked.load(Ordering::Acquire) {
                    None
                } else {
                    rx.recv().await
                };
                match msg {
                    Some(m) => Some((Ok(m), (rx, kicked, false))),
                    None if kicked.load(Ordering::Acquire) => {
                        let frame = CloseFrame {
                            code: CloseCode::Again,
                            reason: format!("too slow: fell {queue} messages behind the room")
                                .into(),
                        };
                        Some((Ok(Message::Close(Some(frame))), (rx, kicked, true)))
                    }
                    None => None,
                }
            },
        );
        let sink = MemberSink {
            hub: self.clone(),
            room: room.to_string(),
            id,
            left: false,
        };
        MsgConn {
            // Fused: the relay may poll a finished stream again (draining after a Close).
            stream: Box::pin(futures_util::StreamExt::fuse(stream)),
            sink: Box::pin(sink),
            label: format!("broadcast room '{room}' #{id}"),
            websocket: false,
            rtt: None,
            holds_close: false,
        }
    }

    /// Send `msg` to every member of `room` but `from`; members whose queue is full are removed.
    fn fan_out(&self, room: &str, from: u64, msg: &Message) {
        let mut rooms = self.rooms.lock().expect("hub lock");
        let Some(members) = rooms.get_mut(room) else {
            return;
        };
        members.retain(|m| {
            if m.id == from {
                return true;
            }
            match m.tx.try_send(msg.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(
                        "broadcast room '{room}': member #{} fell {} messages behind; disconnecting it with 1013",
                        m.id,
                        self.queue
                    );
                    m.kicked.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    fn leave(&self, room: &str, id: u64) {
        let mut rooms = self.rooms.lock().expect("hub lock");
        if let Some(members) = rooms.get_mut(room) {
            let before = members.len();
            members.retain(|m| m.id != id);
            if members.len() < before {
                tracing::info!(
                    "broadcast room '{room}': member #{id} left ({} members)",
                    members.len()
                );
            }
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }
}

struct MemberSink {
    hub: Arc<Hub>,
    room: String,
    id: u64,
    left: bool,
}

impl Sink<Message> for MemberSink {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        if self.left {
            Poll::Ready(Err(WsError::AlreadyClosed))
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), WsError> {
        let this = self.get_mut();
        match msg {
            Message::Text(_) | Message::Binary(_) => this.hub.fan_out(&this.room, this.id, &msg),
            Message::Close(_) => {
                this.left = true;
                this.hub.leave(&this.room, this.id);
            }
            _ => {}
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        if !this.left {
            this.left = true;
            this.hub.leave(&this.room, this.id);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for MemberSink {
    fn drop(&mut self) {
        if !self.left {
            self.hub.leave(&self.room, self.id);
        }
    }
}
