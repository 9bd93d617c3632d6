//! Rooms across instances (`--broadcast-via redis://…`): every room with members here is a
//! Redis Pub/Sub channel (`--broadcast-prefix` + the room). A member's message is delivered to
//! the other members here by the hub and published for the other instances; what another
//! instance published is delivered to every member here. Messages carry this instance's id and
//! the sender's member id, so an instance skips its own (the sender never gets its message
//! back, and members here never get it twice).
//!
//! One task publishes (in order, pipelined), one task holds the subscription. Redis going away
//! never ends a session: publishing fails visibly (a warning once per outage, a counter), the
//! tasks reconnect with backoff, and the subscription is renewed for the rooms with members.
//! Pub/Sub is at-most-once: what is published while Redis is away, or while a subscriber is
//! disconnected, is lost.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

use super::Hub;
use crate::endpoint::BroadcastVia;
use crate::error::{Error, Result};
use crate::metrics::M;

/// Envelope version, first byte of every published message.
const VERSION: u8 = 1;
/// Messages waiting to be published; past this they are dropped (and counted).
const PUBLISH_QUEUE: usize = 8192;
/// Messages sent to Redis in one pipeline at most.
const BATCH: usize = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The link between this instance's hub and Redis.
pub(crate) struct Bus {
    instance: [u8; 16],
    prefix: String,
    publish: mpsc::Sender<(String, Vec<u8>)>,
    rooms: mpsc::UnboundedSender<RoomChange>,
}

enum RoomChange {
    Joined(String),
    Left(String),
}

impl Bus {
    /// Connect (both connections) or fail: an unreachable Redis at startup is an error.
    pub(crate) async fn connect(via: &BroadcastVia, hub: Weak<Hub>) -> Result<Arc<Bus>> {
        let client = client(via)?;
        let target = format!("--broadcast-via {}", via.shown);
        let timeout = || Error::Timeout {
            target: target.clone(),
            what: "connecting to Redis",
            after: CONNECT_TIMEOUT,
        };
        // Connected is not enough: a PING on each connection proves it may be used (a Redis
        // that wants a password answers NOAUTH).
        let ready = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.ping::<()>().await?;
            Ok::<_, redis::RedisError>((conn, pubsub))
        };
        let (conn, pubsub) = tokio::time::timeout(CONNECT_TIMEOUT, ready)
            .await
            .map_err(|_| timeout())?
            .map_err(|e| startup_error(&target, &e))?;
        let (publish, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (rooms, rooms_rx) = mpsc::unbounded_channel();
        let bus = Arc::new(Bus {
            instance: rand::random(),
            prefix: via.prefix.clone(),
            publish,
            rooms,
        });
        let shown = via.shown.clone();
        tokio::spawn(publisher(client.clone(), conn, publish_rx, shown.clone()));
        let sub = Subscriber {
            client,
            hub,
            prefix: via.prefix.clone(),
            instance: bus.instance,
            shown,
        };
        tokio::spawn(sub.run(pubsub, rooms_rx));
        tracing::info!("broadcast rooms shared through {}", via.shown);
        Ok(bus)
    }

    fn channel(&self, room: &str) -> String {
        format!("{}{room}", self.prefix)
    }

    /// The counters, in one log line.
    pub(crate) fn report(&self) {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            "broadcast through Redis: {} messages published, {} not published, {} received from other instances, {} connections lost",
            n(&M.redis_published),
            n(&M.redis_publish_failed),
            n(&M.redis_received),
            n(&M.redis_connections_lost)
        );
    }

    /// A member here sent `msg` to `room`: publish it for the other instances. Never waits: a
    /// full queue (Redis far behind or away) drops it, counted.
    pub(crate) fn publish(&self, room: &str, from: u64, msg: &Message) {
        let Some(envelope) = encode(&self.instance, from, msg) else {
            return;
        };
        if self
            .publish
            .try_send((self.channel(room), envelope))
            .is_err()
        {
            M.redis_publish_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The first member of `room` here joined: subscribe.
    pub(crate) fn joined(&self, room: &str) {
        let _ = self.rooms.send(RoomChange::Joined(room.to_string()));
    }

    /// The last member of `room` here left: unsubscribe.
    pub(crate) fn left(&self, room: &str) {
        let _ = self.rooms.send(RoomChange::Left(room.to_string()));
    }
}

/// The client for `via`, with the password from its file if given.
fn client(via: &BroadcastVia) -> Result<redis::Client> {
    use redis::IntoConnectionInfo;
    let usage = |e: redis::RedisError| {
        Error::Usage(format!(
            "--broadcast-via {}: {}",
            via.shown,
            redis_error(&e)
        ))
    };
    let mut info = via.url.as_str().into_connection_info().map_err(usage)?;
    if let Some(p) = &via.password {
        let settings = info.redis_settings().clone().set_password(p);
        info = info.set_redis_settings(settings);
    }
    let Some(path) = &via.ca_file else {
        return redis::Client::open(info).map_err(usage);
    };
    let pem = std::fs::read(path)
        .map_err(|e| Error::Usage(format!("--broadcast-via-ca-file {}: {e}", path.display())))?;
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    redis::Client::build_with_tls(info, certs).map_err(usage)
}

/// Why Redis could not be reached at startup: a connection failure (exit 4), TLS failures
/// included (the redis crate does not keep rustls's error typed).
fn startup_error(target: &str, e: &redis::RedisError) -> Error {
    Error::Connect {
        target: target.to_string(),
        source: std::io::Error::other(redis_error(e)),
    }
}

/// A Redis error for a log line or an error: its kind and text (never the URL or password).
fn redis_error(e: &redis::RedisError) -> String {
    crate::text::escape_controls(&e.to_string()).into_owned()
}

/// `[VERSION][1 text | 2 binary][instance: 16][member: 8, big-endian][payload]`.
fn encode(instance: &[u8; 16], from: u64, msg: &Message) -> Option<Vec<u8>> {
    let (kind, payload): (u8, &[u8]) = match msg {
        Message::Text(t) => (1, t.as_bytes()),
        Message::Binary(b) => (2, b),
        _ => return None,
    };
    let mut out = Vec::with_capacity(26 + payload.len());
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(instance);
    out.extend_from_slice(&from.to_be_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

/// The sender's instance and the message, if `data` is an envelope (anything else published
/// on the channel is ignored).
fn decode(data: &[u8]) -> Option<([u8; 16], Message)> {
    if data.len() < 26 || data[0] != VERSION {
        return None;
    }
    let instance: [u8; 16] = data[2..18].try_into().ok()?;
    let payload = Bytes::copy_from_slice(&data[26..]);
    let msg = match data[1] {
        1 => Message::Text(Utf8Bytes::try_from(payload).ok()?),
        2 => Message::Binary(payload),
        _ => return None,
    };
    Some((instance, msg))
}

/// Publishes in order: one pipeline per batch of waiting messages. While Redis is away each
/// message is dropped and counted; one warning per outage, one line when it is back.
async fn publisher(
    client: redis::Client,
    conn: redis::aio::MultiplexedConnection,
    mut rx: mpsc::Receiver<(String, Vec<u8>)>,
    shown: String,
) {
    let mut conn = Some(conn);
    let mut backoff = Backoff::default();
    let mut outage: Option<u64> = None;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if conn.is_none() && backoff.ready() {
            conn = client.get_multiplexed_async_connection().await.ok();
            if conn.is_none() {
                backoff.failed();
            }
        }
        let sent = match conn.as_mut() {
            Some(c) => publish_batch(c, &batch).await,
            None => Err("not connected".to_string()),
        };
        let n = batch.len() as u64;
        batch.clear();
        match sent {
            Ok(()) => {
                M.redis_published.fetch_add(n, Ordering::Relaxed);
                backoff = Backoff::default();
                if let Some(lost) = outage.take() {
                    tracing::warn!(
                        "broadcast: publishing to {shown} again; {lost} messages did not reach other instances meanwhile"
                    );
                }
            }
            Err(e) => {
                M.redis_publish_failed.fetch_add(n, Ordering::Relaxed);
                if outage.is_none() {
                    tracing::warn!(
                        "broadcast: publishing to {shown} failed ({e}); messages do not reach other instances until it is back"
                    );
                    M.redis_connections_lost.fetch_add(1, Ordering::Relaxed);
                }
                *outage.get_or_insert(0) += n;
                if conn.take().is_some() {
                    backoff.failed();
                }
            }
        }
    }
}

async fn publish_batch(
    conn: &mut redis::aio::MultiplexedConnection,
    batch: &[(String, Vec<u8>)],
) -> std::result::Result<(), String> {
    let mut pipe = redis::pipe();
    for (channel, payload) in batch {
        pipe.publish(channel, payload).ignore();
    }
    tokio::time::timeout(CONNECT_TIMEOUT, pipe.query_async::<()>(conn))
        .await
        .map_err(|_| format!("no answer within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| redis_error(&e))
}

/// Exponential backoff between reconnection attempts.
struct Backoff {
    delay: Duration,
    next: tokio::time::Instant,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            delay: BACKOFF_MIN,
            next: tokio::time::Instant::now(),
        }
    }
}

impl Backoff {
    fn ready(&self) -> bool {
        tokio::time::Instant::now() >= self.next
    }

    fn failed(&mut self) {
        self.next = tokio::time::Instant::now() + self.delay;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }

    async fn wait(&mut self) {
        tokio::time::sleep_until(self.next).await;
    }
}

/// The subscription: follows the rooms that have members here, delivers what other instances
/// publish, and renews itself after Redis went away (or dropped it for falling behind).
struct Subscriber {
    client: redis::Client,
    hub: Weak<Hub>,
    prefix: String,
    instance: [u8; 16],
    shown: String,
}

impl Subscriber {
    async fn run(
        self,
        first: redis::aio::PubSub,
        mut changes: mpsc::UnboundedReceiver<RoomChange>,
    ) {
        let mut rooms: HashSet<String> = HashSet::new();
        let mut next = Some(first);
        let mut backoff = Backoff::default();
        loop {
            let pubsub = match next.take() {
                Some(p) => p,
                None => match self.reconnect(&mut backoff, &mut rooms, &mut changes).await {
                    Some(p) => p,
                    None => return,
                },
            };
            match self
                .serve(pubsub, &mut rooms, &mut changes, &mut backoff)
                .await
            {
                Ended::Shutdown => return,
                Ended::Lost(why) => {
                    tracing::warn!(
                        "broadcast: subscription to {} lost ({why}); messages from other instances are missed until it is renewed (Redis also drops subscribers that fall behind: client-output-buffer-limit pubsub)",
                        self.shown
                    );
                    M.redis_connections_lost.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Connect again, with backoff, keeping track of room changes meanwhile. `None`: the hub
    /// is gone.
    async fn reconnect(
        &self,
        backoff: &mut Backoff,
        rooms: &mut HashSet<String>,
        changes: &mut mpsc::UnboundedReceiver<RoomChange>,
    ) -> Option<redis::aio::PubSub> {
        loop {
            backoff.failed();
            let wait = backoff.wait();
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    change = changes.recv() => apply(rooms, change?),
                }
            }
            if self.hub.strong_count() == 0 {
                return None;
            }
            if let Ok(Ok(p)) =
                tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub()).await
            {
                return Some(p);
            }
        }
    }

    /// Subscribe to `rooms`, then follow changes and deliver messages until the connection
    /// ends. After a lost subscription (`backoff` not at its start) the renewal is logged,
    /// and the backoff starts over.
    async fn serve(
        &self,
        pubsub: redis::aio::PubSub,
        rooms: &mut HashSet<String>,
        changes: &mut mpsc::UnboundedReceiver<RoomChange>,
        backoff: &mut Backoff,
    ) -> Ended {
        let (mut sink, mut stream) = pubsub.split();
        for room in rooms.iter() {
            if let Err(e) = sink.subscribe(self.channel(room)).await {
                return Ended::Lost(redis_error(&e));
            }
        }
        if backoff.delay > BACKOFF_MIN {
            tracing::warn!(
                "broadcast: subscribed to {} again ({} rooms)",
                self.shown,
                rooms.len()
            );
            *backoff = Backoff::default();
        }
        loop {
            tokio::select! {
                change = changes.recv() => {
                    let Some(change) = change else { return Ended::Shutdown };
                    let done = match &change {
                        RoomChange::Joined(r) => sink.subscribe(self.channel(r)).await,
                        RoomChange::Left(r) => sink.unsubscribe(self.channel(r)).await,
                    };
                    apply(rooms, change);
                    if let Err(e) = done {
                        return Ended::Lost(redis_error(&e));
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else { return Ended::Lost("connection closed".into()) };
                    if !self.deliver(&msg) {
                        return Ended::Shutdown;
                    }
                }
            }
        }
    }

    fn channel(&self, room: &str) -> String {
        format!("{}{room}", self.prefix)
    }

    /// Hand a published message to the members here. `false`: the hub is gone.
    fn deliver(&self, msg: &redis::Msg) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        let Some(room) = msg.get_channel_name().strip_prefix(&self.prefix) else {
            return true;
        };
        match decode(msg.get_payload_bytes()) {
            Some((instance, _)) if instance == self.instance => {}
            Some((_, m)) => {
                M.redis_received.fetch_add(1, Ordering::Relaxed);
                hub.deliver_remote(room, &m);
            }
            None => {
                tracing::debug!("broadcast: ignored a message on {room} that is not wsbridge's")
            }
        }
        true
    }
}

enum Ended {
    Shutdown,
    Lost(String),
}

fn apply(rooms: &mut HashSet<String>, change: RoomChange) {
    match change {
        RoomChange::Joined(r) => {
            rooms.insert(r);
        }
        RoomChange::Left(r) => {
            rooms.remove(&r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_others_are_ignored() {
        let me = [7u8; 16];
        for m in [
            Message::Text("héllo".into()),
            Message::Binary(Bytes::from_static(b"\x00\xff")),
            Message::Text("".into()),
        ] {
            let e = encode(&me, 42, &m).unwrap();
            assert_eq!(decode(&e), Some((me, m)));
        }
        assert!(encode(&me, 1, &Message::Ping(Bytes::new())).is_none());
        assert!(decode(b"hello from redis-cli").is_none());
        let mut bad_text = encode(&me, 1, &Message::Binary(Bytes::from_static(b"\xff"))).unwrap();
        bad_text[1] = 1;
        assert!(
            decode(&bad_text).is_none(),
            "invalid UTF-8 never becomes text"
        );
    }
}
