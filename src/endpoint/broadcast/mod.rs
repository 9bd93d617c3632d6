//! `broadcast:`: rooms where every message from one member goes to every other member, in order.
//! With `ws-listen:` each request path is its own room.
//!
//! Each member has a queue bounded in messages (`--broadcast-queue`) and bytes
//! (`--broadcast-queue-bytes`). A sender whose message would go to a full queue waits (its own
//! connection is not read meanwhile, so the pressure reaches its client), and a burst from one
//! member never overflows the others before they had a chance to read. Only a member whose
//! queue stays full for [`STALL`] while others want to send is disconnected, with Close 1013 and
//! a log line. Nothing is dropped silently. Queued messages share their payloads, so a room
//! holds about one queue's worth of bytes however many members it has.
//!
//! With `--broadcast-via`, rooms span every instance using the same Redis (`bus`). Messages from
//! other instances cannot be made to wait; a member whose queue holds twice its limit when one
//! arrives is disconnected with 1013 at once.

mod bus;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Sink;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{BroadcastVia, MsgConn};
use crate::error::Result;

/// How long a member's queue may stay full while others wait to send to it.
pub(crate) const STALL: Duration = Duration::from_secs(5);

/// All rooms of one wsbridge process.
pub(crate) struct Hub {
    rooms: Mutex<HashMap<String, Vec<Member>>>,
    limits: Limits,
    next_id: AtomicU64,
    /// Rooms shared through Redis (`--broadcast-via`), once connected.
    bus: OnceLock<Arc<bus::Bus>>,
}

#[derive(Clone, Copy, Debug)]
struct Limits {
    messages: usize,
    bytes: usize,
}

struct Member {
    id: u64,
    queue: Arc<Queue>,
}

/// One member's queue: filled by the others' senders, emptied by the member's reader.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    /// Wakes the member's reader (one permit is kept).
    readable: Notify,
    /// Wakes senders waiting for room.
    space: Notify,
}

#[derive(Default)]
struct QueueState {
    messages: VecDeque<Message>,
    bytes: usize,
    /// Since when the queue has been full.
    full_since: Option<Instant>,
    /// Removed for being too slow: the reader ends with Close 1013.
    kicked: bool,
}

impl QueueState {
    fn is_full(&self, limits: Limits) -> bool {
        self.messages.len() >= limits.messages || self.bytes >= limits.bytes
    }

    /// Twice the limit: a member this far behind is not keeping up with the room.
    fn is_far_behind(&self, limits: Limits) -> bool {
        self.messages.len() >= 2 * limits.messages || self.bytes >= 2 * limits.bytes
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `msg`. The sender checked for room; with several senders at once a queue may go
    /// over by one message each.
    fn push(&self, msg: Message, limits: Limits) {
        let mut st = self.lock();
        st.bytes += msg.len();
        st.messages.push_back(msg);
        if st.full_since.is_none() && st.is_full(limits) {
            st.full_since = Some(Instant::now());
        }
        drop(st);
        self.readable.notify_one();
    }

    /// The next message, or `None` when kicked (then the reader says so with a Close).
    async fn pop(&self, limits: Limits) -> Option<Message> {
        loop {
            {
                let mut st = self.lock();
                if st.kicked {
                    return None;
                }
                if let Some(m) = st.messages.pop_front() {
                    st.bytes -= m.len();
                    if st.full_since.is_some() && !st.is_full(limits) {
                        st.full_since = None;
                        self.space.notify_waiters();
                    }
                    return Some(m);
                }
            }
            self.readable.notified().await;
        }
    }

    /// When the queue became full, if it is.
    fn full_since(&self) -> Option<Instant> {
        self.lock().full_since
    }
}

impl Hub {
    pub(crate) fn new(messages: usize, bytes: usize) -> Arc<Hub> {
        Arc::new(Hub {
            rooms: Mutex::new(HashMap::new()),
            limits: Limits {
                messages: messages.max(1),
                bytes: bytes.max(1),
            },
            next_id: AtomicU64::new(1),
            bus: OnceLock::new(),
        })
    }

    /// At the end of a run, at `-v`: what went through Redis, if rooms were shared.
    pub(crate) fn report(&self) {
        if let Some(bus) = self.bus.get() {
            bus.report();
        }
    }

    /// Share the rooms through Redis (`--broadcast-via`): connects now, or fails.
    pub(crate) async fn share(self: &Arc<Self>, via: &BroadcastVia) -> Result<()> {
        let bus = bus::Bus::connect(via, Arc::downgrade(self)).await?;
        let _ = self.bus.set(bus);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<Member>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Join `room`; the connection's stream yields what others send, its sink sends to others.
    pub(crate) fn join(self: &Arc<Self>, room: &str) -> MsgConn {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(Queue::default());
        let size = {
            let mut rooms = self.lock();
            let members = rooms.entry(room.to_string()).or_default();
            members.push(Member {
                id,
                queue: queue.clone(),
            });
            members.len()
        };
        crate::metrics::M
            .broadcast_members
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!("broadcast room '{room}': member #{id} joined ({size} members)");
        if size == 1
            && let Some(bus) = self.bus.get()
        {
            bus.joined(room);
        }
        let sink = MemberSink {
            hub: self.clone(),
            room: room.to_string(),
            id,
            left: false,
            waiting: None,
        };
        MsgConn {
            // Fused: the relay may poll a finished stream again (draining after a Close).
            stream: Box::pin(futures_util::StreamExt::fuse(self.reader(queue))),
            sink: Box::pin(sink),
            label: format!("broadcast room '{room}' #{id}"),
            websocket: false,
            rtt: None,
            holds_close: false,
        }
    }

    /// What a member receives: the queue's messages in order; when kicked, a Close 1013.
    fn reader(
        &self,
        queue: Arc<Queue>,
    ) -> impl futures_util::Stream<Item = Result<Message, WsError>> + Send + 'static {
        let limits = self.limits;
        futures_util::stream::unfold(Some(queue), move |queue| async move {
            let queue = queue?;
            match queue.pop(limits).await {
                Some(m) => Some((Ok(m), Some(queue))),
                None => {
                    let frame = CloseFrame {
                        code: CloseCode::Again,
                        reason: "too slow: stopped reading the room".into(),
                    };
                    Some((Ok(Message::Close(Some(frame))), None))
                }
            }
        })
    }

    /// A member of `room` other than `from` whose queue is full, if any.
    fn blocked(&self, room: &str, from: u64) -> Option<(u64, Arc<Queue>)> {
        let rooms = self.lock();
        rooms.get(room)?.iter().find_map(|m| {
            let full = m.id != from && m.queue.lock().is_full(self.limits);
            full.then(|| (m.id, m.queue.clone()))
        })
    }

    /// Send `msg` to every member of `room` but `from`, here and on other instances.
    fn fan_out(&self, room: &str, from: u64, msg: &Message) {
        {
            let rooms = self.lock();
            for m in rooms.get(room).into_iter().flatten() {
                if m.id != from {
                    m.queue.push(msg.clone(), self.limits);
                }
            }
        }
        if let Some(bus) = self.bus.get() {
            bus.publish(room, from, msg);
        }
    }

    /// A message another instance published to `room`: to every member here. It cannot wait,
    /// so a member far behind is disconnected instead.
    fn deliver_remote(&self, room: &str, msg: &Message) {
        let mut rooms = self.lock();
        let Some(members) = rooms.get_mut(room) else {
            return;
        };
        let mut i = 0;
        while i < members.len() {
            if members[i].queue.lock().is_far_behind(self.limits) {
                let member = members.remove(i);
                kick(room, member, "messages from other instances");
                continue;
            }
            members[i].queue.push(msg.clone(), self.limits);
            i += 1;
        }
    }

    /// Disconnect member `id` of `room` if its queue is still full after [`STALL`].
    fn kick_if_stalled(&self, room: &str, id: u64) {
        let mut rooms = self.lock();
        let Some(members) = rooms.get_mut(room) else {
            return;
        };
        let Some(pos) = members.iter().position(|m| m.id == id) else {
            return;
        };
        let stalled = members[pos]
            .queue
            .full_since()
            .is_some_and(|t| t.elapsed() >= STALL);
        if !stalled {
            return;
        }
        let member = members.remove(pos);
        kick(
            room,
            member,
            &format!("queue full for {} s", STALL.as_secs()),
        );
    }

    fn leave(&self, room: &str, id: u64) {
        let mut rooms = self.lock();
        if let Some(members) = rooms.get_mut(room) {
            let before = members.len();
            members.retain(|m| m.id != id);
            if members.len() < before {
                crate::metrics::M
                    .broadcast_members
                    .fetch_sub(1, Ordering::Relaxed);
                tracing::info!(
                    "broadcast room '{room}': member #{id} left ({} members)",
                    members.len()
                );
            }
            if members.is_empty() {
                rooms.remove(room);
                if let Some(bus) = self.bus.get() {
                    bus.left(room);
                }
            }
        }
    }
}

/// Disconnect `member` (removed from its room) with 1013: its reader ends with a Close.
fn kick(room: &str, member: Member, why: &str) {
    let m = &crate::metrics::M;
    m.broadcast_members.fetch_sub(1, Ordering::Relaxed);
    m.broadcast_kicked.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        "broadcast room '{room}': member #{} stopped reading ({why}); disconnecting it with 1013",
        member.id
    );
    let mut st = member.queue.lock();
    st.kicked = true;
    st.messages.clear();
    st.bytes = 0;
    drop(st);
    member.queue.readable.notify_one();
}

/// Wait until no other member of `room` has a full queue; a member that stays full for
/// [`STALL`] is disconnected.
async fn wait_for_room(hub: Arc<Hub>, room: String, from: u64) {
    while let Some((id, queue)) = hub.blocked(&room, from) {
        let space = queue.space.notified();
        tokio::pin!(space);
        space.as_mut().enable();
        let Some(since) = queue.full_since() else {
            continue;
        };
        tokio::select! {
            () = space => {}
            () = tokio::time::sleep_until(since + STALL) => hub.kick_if_stalled(&room, id),
        }
    }
}

struct MemberSink {
    hub: Arc<Hub>,
    room: String,
    id: u64,
    left: bool,
    /// Waiting for room in the others' queues.
    waiting: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Sink<Message> for MemberSink {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        if this.left {
            return Poll::Ready(Err(WsError::AlreadyClosed));
        }
        if this.waiting.is_none() {
            if this.hub.blocked(&this.room, this.id).is_none() {
                return Poll::Ready(Ok(()));
            }
            let wait = wait_for_room(this.hub.clone(), this.room.clone(), this.id);
            this.waiting = Some(Box::pin(wait));
        }
        let wait = this.waiting.as_mut().expect("set above");
        futures_util::ready!(wait.as_mut().poll(cx));
        this.waiting = None;
        Poll::Ready(Ok(()))
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
