//! `broadcast:` rooms shared through Redis Pub/Sub (`--broadcast-via redis://…`,
//! `--broadcast-via-password-file`, `--broadcast-prefix`): several real wsbridge instances on one
//! real `redis-server` (a process per test, on a free loopback port, killed and restarted by the
//! tests), with tokio-tungstenite clients. This file owns its Redis helper ([`Redis`]: start, kill,
//! restart on the same port, raw RESP commands such as `PUBSUB NUMSUB`) and covers delivery across
//! instances (exactly once, types and bytes kept, never back to the sender, rooms apart), order,
//! Redis going away and coming back, startup and usage errors, channel prefixes and passwords.
//!
//! Synchronisation: a room's subscription is made asynchronously when its first local member
//! joins, so tests wait for `PUBSUB NUMSUB` to count every instance before sending. "Nothing
//! else arrived" is shown by a marker sent afterwards being the next message, never by a sleep.

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{self, Bridge, LIMIT};

type Client = WebSocketStream<TcpStream>;

// ---------------------------------------------------------------------------------------------
// A real redis-server, spoken to in raw RESP

/// A Redis reply.
#[derive(Debug, Clone, PartialEq)]
enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

/// One RESP command: an array of bulk strings.
fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Read one RESP reply. Unbounded: callers bound it.
fn read_resp<'a>(
    r: &'a mut BufReader<TcpStream>,
) -> Pin<Box<dyn Future<Output = std::io::Result<Resp>> + Send + 'a>> {
    Box::pin(async move {
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line).await?;
        if !line.ends_with(b"\r\n") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("truncated reply {:?}", String::from_utf8_lossy(&line)),
            ));
        }
        let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        let number = || {
            text.parse::<i64>().map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad {line:?}"))
            })
        };
        Ok(match line[0] {
            b'+' => Resp::Simple(text),
            b'-' => Resp::Error(text),
            b':' => Resp::Int(number()?),
            b'$' => match number()? {
                n if n < 0 => Resp::Bulk(None),
                n => {
                    let mut data = vec![0u8; n as usize + 2];
                    r.read_exact(&mut data).await?;
                    data.truncate(n as usize);
                    Resp::Bulk(Some(data))
                }
            },
            b'*' => match number()? {
                n if n < 0 => Resp::Array(None),
                n => {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(read_resp(r).await?);
                    }
                    Resp::Array(Some(items))
                }
            },
            other => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("unknown reply type {:?}", other as char),
                ));
            }
        })
    })
}

/// A redis-server on 127.0.0.1 (no persistence), killed when dropped.
struct Redis {
    port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// With TLS: the TLS port and the server's PEM files (the plain port stays, for the test's
    /// own commands).
    tls: Option<(u16, crate::harness::pki::Pki)>,
}

impl Redis {
    async fn start() -> Redis {
        Redis::launch(None).await
    }

    /// With `--requirepass`.
    async fn start_with_password(password: &str) -> Redis {
        Redis::launch(Some(password.to_string())).await
    }

    async fn launch(password: Option<String>) -> Redis {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut redis = Redis {
            port: 0,
            password,
            dir,
            child: None,
            tls: None,
        };
        // A port that was free a moment ago may be taken before redis-server binds it: then try
        // another one.
        let mut failures = Vec::new();
        for _ in 0..5 {
            redis.port = harness::closed_port();
            match redis.spawn().await {
                Ok(()) => return redis,
                Err(e) => failures.push(e),
            }
        }
        panic!("redis-server did not start: {failures:#?}");
    }

    /// Start redis-server on `self.port` and wait until it answers PING (bounded).
    async fn spawn(&mut self) -> Result<(), String> {
        let out = std::fs::File::create(self.dir.path().join("redis.out")).expect("log file");
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--databases", "1"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("log file")))
            .stderr(Stdio::from(out))
            .kill_on_drop(true);
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        if let Some((port, pki)) = &self.tls {
            cmd.arg("--tls-port").arg(port.to_string());
            cmd.arg("--tls-cert-file").arg(pki.path("server.pem"));
            cmd.arg("--tls-key-file").arg(pki.path("server.key"));
            cmd.arg("--tls-ca-cert-file").arg(pki.path("ca.pem"));
            cmd.args(["--tls-auth-clients", "no"]);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run redis-server ({e}): these tests need a Redis server; install the \
                 Debian package redis-server (apt-get install redis-server)"
            )
        });
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} exited ({status}): {}",
                    self.port,
                    self.log()
                ));
            }
            if let Ok(Ok(Resp::Simple(pong))) =
                tokio::time::timeout(Duration::from_secs(2), self.try_command(&["PING"])).await
                && pong == "PONG"
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                self.kill().await;
                return Err(format!(
                    "redis-server on port {} did not answer PING within {LIMIT:?}: {}",
                    self.port,
                    self.log()
                ));
            }
            // Polling interval of a bounded wait, not a synchronisation.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.out")).unwrap_or_default()
    }

    /// Also listening with TLS (a CA-signed certificate for 127.0.0.1, from the test PKI).
    async fn start_with_tls() -> Redis {
        let mut redis = Redis::start().await;
        redis.kill().await;
        redis.tls = Some((
            harness::closed_port(),
            crate::harness::pki::Pki::for_hosts(&["127.0.0.1"]),
        ));
        redis.restart().await;
        redis
    }

    /// `rediss://127.0.0.1:TLS_PORT`.
    fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls.as_ref().expect("TLS").0)
    }

    /// `redis://127.0.0.1:PORT`, without credentials.
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash: the connections of every client end at once.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("kill redis-server");
            tokio::time::timeout(LIMIT, child.wait())
                .await
                .expect("redis-server exits after SIGKILL")
                .expect("wait");
        }
    }

    /// Start it again on the same port (after [`Redis::kill`]).
    async fn restart(&mut self) {
        assert!(self.child.is_none(), "restart after kill only");
        if let Err(e) = self.spawn().await {
            panic!("redis-server did not start again on the same port: {e}");
        }
    }

    /// One command on a fresh connection (authenticated if the server wants a password).
    async fn try_command(&self, args: &[&str]) -> std::io::Result<Resp> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        let mut r = BufReader::new(tcp);
        if let Some(p) = &self.password {
            r.get_mut()
                .write_all(&encode_command(&[b"AUTH", p.as_bytes()]))
                .await?;
            let auth = read_resp(&mut r).await?;
            if auth != Resp::Simple("OK".into()) {
                return Err(std::io::Error::other(format!("AUTH: {auth:?}")));
            }
        }
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        r.get_mut().write_all(&encode_command(&args)).await?;
        read_resp(&mut r).await
    }

    async fn command(&self, args: &[&str]) -> Resp {
        tokio::time::timeout(LIMIT, self.try_command(args))
            .await
            .unwrap_or_else(|_| panic!("no answer from redis-server to {args:?}"))
            .unwrap_or_else(|e| panic!("redis-server, {args:?}: {e}"))
    }

    /// `PUBSUB NUMSUB channel`: how many connections (one per wsbridge instance) subscribe.
    async fn numsub(&self, channel: &str) -> i64 {
        match self.command(&["PUBSUB", "NUMSUB", channel]).await {
            Resp::Array(Some(items)) if items.len() == 2 => match &items[1] {
                Resp::Int(n) => *n,
                other => panic!("PUBSUB NUMSUB {channel}: {other:?}"),
            },
            other => panic!("PUBSUB NUMSUB {channel}: {other:?}"),
        }
    }

    /// Wait (bounded) until `channel` has exactly `n` subscribers.
    async fn wait_numsub(&self, channel: &str, n: i64) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let now = self.numsub(channel).await;
            if now == n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{channel} has {now} subscribers, not {n}, after {LIMIT:?}"
            );
            // Polling interval of a bounded wait, not a synchronisation.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A connection that subscribed to every channel (`PSUBSCRIBE *`): what is published where.
    async fn watch_all(&self) -> BufReader<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let mut r = BufReader::new(tcp);
        if let Some(p) = &self.password {
            let auth = encode_command(&[b"AUTH", p.as_bytes()]);
            r.get_mut().write_all(&auth).await.unwrap();
            assert_eq!(read_resp(&mut r).await.unwrap(), Resp::Simple("OK".into()));
        }
        let sub = encode_command(&[b"PSUBSCRIBE", b"*"]);
        r.get_mut().write_all(&sub).await.unwrap();
        let confirmed = tokio::time::timeout(LIMIT, read_resp(&mut r)).await;
        let confirmed = confirmed.expect("PSUBSCRIBE answered").unwrap();
        assert!(
            matches!(&confirmed, Resp::Array(Some(v)) if v[0] == Resp::Bulk(Some(b"psubscribe".to_vec()))),
            "{confirmed:?}"
        );
        r
    }
}

/// The next message a `PSUBSCRIBE *` connection sees: its channel and payload (bounded).
async fn published(watch: &mut BufReader<TcpStream>) -> (String, Vec<u8>) {
    let m = tokio::time::timeout(LIMIT, read_resp(watch))
        .await
        .expect("a published message within 20 s")
        .expect("read from redis-server");
    match m {
        Resp::Array(Some(v)) if v.len() == 4 && v[0] == Resp::Bulk(Some(b"pmessage".to_vec())) => {
            match (&v[2], &v[3]) {
                (Resp::Bulk(Some(ch)), Resp::Bulk(Some(payload))) => {
                    (String::from_utf8_lossy(ch).into_owned(), payload.clone())
                }
                _ => panic!("unexpected pmessage {v:?}"),
            }
        }
        other => panic!("unexpected push {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// wsbridge instances and their clients

/// One `wsbridge [--broadcast-via …] ws-listen:127.0.0.1:0 broadcast:`.
struct Instance {
    bridge: Bridge,
    /// 127.0.0.1:PORT
    addr: String,
    verbose: bool,
    /// Members that joined so far (member ids count from 1 per instance).
    joined: u64,
}

impl Instance {
    /// With `-v` (joins are logged, so [`Instance::join`] can wait for them).
    async fn start(args: &[&str]) -> Instance {
        Instance::launch(args, true).await
    }

    async fn launch(args: &[&str], verbose: bool) -> Instance {
        let mut all: Vec<&str> = Vec::new();
        if verbose {
            all.push("-v");
        }
        all.extend_from_slice(args);
        all.extend_from_slice(&["ws-listen:127.0.0.1:0", "broadcast:"]);
        let mut bridge = Bridge::spawn(&all);
        let announced = bridge.listening().await;
        let addr = announced
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("unexpected announce address {announced:?}"))
            .to_string();
        Instance {
            bridge,
            addr,
            verbose,
            joined: 0,
        }
    }

    /// A client in `room` (a request path); with `-v`, returns once it is a member.
    async fn join(&mut self, room: &str) -> Client {
        let url = format!("ws://{}{room}", self.addr);
        let tcp = TcpStream::connect(&self.addr).await.unwrap();
        let (ws, _) = tokio::time::timeout(LIMIT, tokio_tungstenite::client_async(url, tcp))
            .await
            .expect("handshake in time")
            .expect("handshake");
        self.joined += 1;
        if self.verbose {
            let line = format!("broadcast room '{room}': member #{} joined", self.joined);
            self.bridge.stderr_contains(&line).await;
        }
        ws
    }
}

/// A Redis and two `-v` instances sharing their rooms through it.
async fn two_instances() -> (Redis, Instance, Instance) {
    two_instances_with(&[]).await
}

/// [`two_instances`], each also given `args`.
async fn two_instances_with(args: &[&str]) -> (Redis, Instance, Instance) {
    let redis = Redis::start().await;
    let via = redis.url();
    let args = [&["--broadcast-via", via.as_str()][..], args].concat();
    let i1 = Instance::start(&args).await;
    let i2 = Instance::start(&args).await;
    (redis, i1, i2)
}

/// The next data message (pings and pongs skipped), bounded; a Close or an error fails.
async fn recv(ws: &mut Client, who: &str) -> Message {
    loop {
        let m = tokio::time::timeout(LIMIT, ws.next())
            .await
            .unwrap_or_else(|_| panic!("{who}: no message within 20 s"));
        match m {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => return m,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("{who}: expected a message, got {other:?}"),
        }
    }
}

/// The next data message, or `None` if none arrives within `wait`.
async fn recv_within(ws: &mut Client, who: &str, wait: Duration) -> Option<Message> {
    // Cancel-safe: a frame read in part stays buffered in the stream.
    tokio::time::timeout(wait, recv(ws, who)).await.ok()
}

async fn send(ws: &mut Client, m: Message) {
    tokio::time::timeout(LIMIT, ws.send(m))
        .await
        .expect("send in time")
        .expect("send");
}

fn text(s: &str) -> Message {
    Message::text(s.to_string())
}

fn as_text(m: &Message) -> String {
    match m {
        Message::Text(t) => t.as_str().to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// `m` shortened for an assertion message (a 100 KiB payload would drown it).
fn short(m: &Message) -> String {
    let (kind, bytes): (&str, &[u8]) = match m {
        Message::Text(t) => ("text", t.as_bytes()),
        Message::Binary(b) => ("binary", b),
        other => return format!("{other:?}"),
    };
    let head = &bytes[..bytes.len().min(24)];
    format!("{kind} of {} bytes {:?}…", bytes.len(), head)
}

async fn expect(ws: &mut Client, who: &str, want: &Message) {
    let got = recv(ws, who).await;
    assert!(
        &got == want,
        "{who}: expected {}, got {}",
        short(want),
        short(&got)
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Delivery across instances

#[tokio::test]
async fn a_message_reaches_every_other_member_of_the_room_on_every_instance_exactly_once() {
    let (redis, mut i1, mut i2) = two_instances().await;
    let mut a1 = i1.join("/chat").await;
    let mut a2 = i1.join("/chat").await;
    let mut o1 = i1.join("/other").await;
    let mut b1 = i2.join("/chat").await;
    let mut b2 = i2.join("/chat").await;
    let mut o2 = i2.join("/other").await;
    // The default prefix: channel = "wsbridge:room:" + the request path.
    redis.wait_numsub("wsbridge:room:/chat", 2).await;
    redis.wait_numsub("wsbridge:room:/other", 2).await;

    let big = harness::random_bytes(100 << 10, 0x5eed);
    let all_bytes: Vec<u8> = (0..=255).collect();
    let msgs = vec![
        text("hello"),
        text(""),
        Message::Binary(Vec::new().into()),
        text("héllo ✓ \u{1F600} \0 nul"),
        Message::Binary(big.into()),
        Message::Binary(all_bytes.into()),
        text(&"x".repeat(70_000)),
    ];
    for m in &msgs {
        send(&mut a1, m.clone()).await;
    }
    for (ws, who) in [
        (&mut a2, "a2 (instance 1)"),
        (&mut b1, "b1"),
        (&mut b2, "b2"),
    ] {
        for m in &msgs {
            expect(ws, who, m).await;
        }
    }

    // Exactly once, and never back to the sender: a marker sent afterwards is the next message.
    // b1's marker travels through Redis after a1's messages were published and delivered (b1
    // got them all), so a duplicate or an echo, local or through Redis, would come first.
    let m1 = text("marker from b1");
    send(&mut b1, m1.clone()).await;
    expect(&mut a1, "a1 (the sender)", &m1).await;
    expect(&mut a2, "a2", &m1).await;
    expect(&mut b2, "b2", &m1).await;
    let m2 = text("marker from a2");
    send(&mut a2, m2.clone()).await;
    expect(&mut a1, "a1", &m2).await;
    expect(&mut b1, "b1", &m2).await;
    expect(&mut b2, "b2", &m2).await;

    // /other got nothing of /chat (on either instance), and /chat gets nothing of /other.
    let other1 = text("other from instance 1");
    send(&mut o1, other1.clone()).await;
    expect(&mut o2, "o2 (/other, instance 2)", &other1).await;
    let other2 = text("other from instance 2");
    send(&mut o2, other2.clone()).await;
    expect(&mut o1, "o1 (/other, instance 1)", &other2).await;
    let end = text("end of /chat");
    send(&mut a1, end.clone()).await;
    for (ws, who) in [(&mut a2, "a2"), (&mut b1, "b1"), (&mut b2, "b2")] {
        expect(ws, who, &end).await;
    }
}

/// What someone else publishes on a room's channel (not a wsbridge envelope) is ignored.
#[tokio::test]
async fn foreign_messages_on_a_room_channel_are_ignored() {
    let (redis, mut i1, mut i2) = two_instances().await;
    let mut a = i1.join("/chat").await;
    let mut b = i2.join("/chat").await;
    redis.wait_numsub("wsbridge:room:/chat", 2).await;
    let delivered = redis
        .command(&["PUBLISH", "wsbridge:room:/chat", "hello from redis-cli"])
        .await;
    assert_eq!(delivered, Resp::Int(2), "both instances subscribed");
    let m = text("from a");
    send(&mut a, m.clone()).await;
    expect(&mut b, "b", &m).await;
    let m = text("from b");
    send(&mut b, m.clone()).await;
    expect(&mut a, "a", &m).await;
}

// ---------------------------------------------------------------------------------------------
// 2. Order

#[tokio::test]
async fn messages_from_one_sender_arrive_in_order_on_another_instance() {
    const N: usize = 1000;
    // Room for all of them in the receiver's queue: this is about order, and a receiver more
    // than twice its queue behind on messages from other instances is disconnected (a slow
    // debug build can be, against a sender that does not wait).
    let (redis, mut i1, mut i2) = two_instances_with(&["--broadcast-queue", "1000"]).await;
    let mut sender = i1.join("/seq").await;
    let mut receiver = i2.join("/seq").await;
    redis.wait_numsub("wsbridge:room:/seq", 2).await;
    // Text and binary alternately, so the type is checked under load too.
    let nth = |i: usize| match i % 2 {
        0 => text(&format!("message {i}")),
        _ => Message::Binary(format!("message {i}").into_bytes().into()),
    };
    let reader = tokio::spawn(async move {
        for i in 0..N {
            expect(&mut receiver, "receiver on instance 2", &nth(i)).await;
        }
        receiver
    });
    for i in 0..N {
        sender.feed(nth(i)).await.unwrap();
    }
    sender.flush().await.unwrap();
    let mut receiver = tokio::time::timeout(LIMIT * 3, reader)
        .await
        .expect("all messages within 60 s")
        .expect("reader");
    // Exactly N: the next message is a marker.
    let marker = text("marker");
    send(&mut sender, marker.clone()).await;
    expect(&mut receiver, "receiver", &marker).await;
}

#[tokio::test]
async fn two_senders_on_two_instances_each_keep_their_order() {
    const N: usize = 500;
    let (redis, mut i1, mut i2) = two_instances().await;
    let s1 = i1.join("/mix").await;
    let r1 = i1.join("/mix").await;
    let s2 = i2.join("/mix").await;
    let r2 = i2.join("/mix").await;
    redis.wait_numsub("wsbridge:room:/mix", 2).await;

    // Everyone reads all the time (a member far behind on messages from other instances would
    // be disconnected). Each returns what it received: (from s1, from s2) in arrival order.
    fn reader(
        mut rx: futures_util::stream::SplitStream<Client>,
        who: &'static str,
        total: usize,
    ) -> tokio::task::JoinHandle<(Vec<usize>, Vec<usize>)> {
        tokio::spawn(async move {
            let (mut from1, mut from2) = (Vec::new(), Vec::new());
            for _ in 0..total {
                let m = tokio::time::timeout(LIMIT, rx.next())
                    .await
                    .unwrap_or_else(|_| panic!("{who}: no message within 20 s"));
                let t = match m {
                    Some(Ok(Message::Text(t))) => t.as_str().to_string(),
                    other => panic!("{who}: {other:?}"),
                };
                let (from, i) = t.split_once(' ').unwrap_or_else(|| panic!("{who}: {t:?}"));
                let i: usize = i.parse().unwrap();
                match from {
                    "s1" => from1.push(i),
                    "s2" => from2.push(i),
                    _ => panic!("{who}: {t:?}"),
                }
            }
            (from1, from2)
        })
    }
    let (mut tx1, rx1) = s1.split();
    let (mut tx2, rx2) = s2.split();
    let readers = [
        (reader(rx1, "s1", N), "s1 (instance 1)"),
        (reader(rx2, "s2", N), "s2 (instance 2)"),
        (reader(r1.split().1, "r1", 2 * N), "r1 (instance 1)"),
        (reader(r2.split().1, "r2", 2 * N), "r2 (instance 2)"),
    ];
    let send1 = tokio::spawn(async move {
        for i in 0..N {
            tx1.send(text(&format!("s1 {i}"))).await.unwrap();
        }
        tx1
    });
    let send2 = tokio::spawn(async move {
        for i in 0..N {
            tx2.send(text(&format!("s2 {i}"))).await.unwrap();
        }
        tx2
    });
    let _keep = (send1.await.unwrap(), send2.await.unwrap());
    let in_order: Vec<usize> = (0..N).collect();
    for (r, who) in readers {
        let (from1, from2) = tokio::time::timeout(LIMIT * 3, r)
            .await
            .unwrap_or_else(|_| panic!("{who}: not everything within 60 s"))
            .unwrap();
        match who.split(' ').next().unwrap() {
            "s1" => {
                assert!(from1.is_empty(), "{who} got its own messages back");
                assert_eq!(from2, in_order, "{who}: s2's messages");
            }
            "s2" => {
                assert!(from2.is_empty(), "{who} got its own messages back");
                assert_eq!(from1, in_order, "{who}: s1's messages");
            }
            _ => {
                assert_eq!(from1, in_order, "{who}: s1's messages");
                assert_eq!(from2, in_order, "{who}: s2's messages");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Redis going away and coming back

/// Send numbered probes (`TAG k`) from `from` until `to` receives one, bounded: just after Redis
/// came back, what is published before both instances reconnected is lost (Pub/Sub is
/// at-most-once; the publisher retries with backoff). Returns the probes sent.
async fn probe_until_through(
    from: &mut Client,
    to: &mut Client,
    tag: &str,
    who: &str,
) -> Vec<Message> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut sent = Vec::new();
    for k in 0.. {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{who}: no probe got through within {LIMIT:?} ({k} sent)"
        );
        let probe = text(&format!("{tag} {k}"));
        send(from, probe.clone()).await;
        sent.push(probe);
        if let Some(m) = recv_within(to, who, Duration::from_millis(300)).await {
            assert!(as_text(&m).starts_with(tag), "{who}: {}", short(&m));
            return sent;
        }
    }
    unreachable!()
}

/// The next message that is not a probe tagged `tag` (late probes may still arrive).
async fn recv_skipping(ws: &mut Client, who: &str, tag: &str) -> Message {
    loop {
        let m = recv(ws, who).await;
        if !matches!(&m, Message::Text(t) if t.as_str().starts_with(tag)) {
            return m;
        }
    }
}

#[tokio::test]
async fn sessions_survive_redis_going_away_and_rooms_span_instances_again_when_it_is_back() {
    const DURING: usize = 5;
    let mut redis = Redis::start().await;
    let via = redis.url();
    let mut i1 = Instance::start(&["--broadcast-via", &via]).await;
    // Instance 2 at the default log level: the warnings must show there too.
    let mut i2 = Instance::launch(&["--broadcast-via", &via], false).await;
    let mut a1 = i1.join("/chat").await;
    let mut a2 = i1.join("/chat").await;
    let mut b1 = i2.join("/chat").await;
    redis.wait_numsub("wsbridge:room:/chat", 2).await;
    let before = text("before");
    send(&mut a1, before.clone()).await;
    expect(&mut a2, "a2", &before).await;
    expect(&mut b1, "b1", &before).await;

    redis.kill().await;
    // Clients of one instance still reach each other; nobody is disconnected.
    let mut from_a1 = Vec::new();
    for i in 0..DURING {
        let m = text(&format!("during {i}"));
        send(&mut a1, m.clone()).await;
        expect(&mut a2, "a2 (Redis away)", &m).await;
        from_a1.push(m);
    }
    let reply = text("a2 answers while Redis is away");
    send(&mut a2, reply.clone()).await;
    expect(&mut a1, "a1 (Redis away)", &reply).await;
    let failed = format!("broadcast: publishing to {via} failed (");
    i1.bridge.stderr_contains(&failed).await;
    // The subscriptions were lost (instance 2 logs at the default level).
    let lost = format!("broadcast: subscription to {via} lost (");
    i1.bridge.stderr_contains(&lost).await;
    i2.bridge.stderr_contains(&lost).await;

    redis.restart().await;
    let again = format!("broadcast: subscribed to {via} again (1 rooms)");
    i1.bridge.stderr_contains(&again).await;
    i2.bridge.stderr_contains(&again).await;
    redis.wait_numsub("wsbridge:room:/chat", 2).await;

    // Both ways again, with the same sessions. What a1 sent while Redis was away never arrives
    // at b1 (only probes may come before "after").
    let probes1 = probe_until_through(&mut a1, &mut b1, "probe-a1", "b1").await;
    from_a1.extend(probes1);
    let after = text("after from a1");
    send(&mut a1, after.clone()).await;
    from_a1.push(after.clone());
    let got = recv_skipping(&mut b1, "b1", "probe-a1").await;
    assert!(got == after, "b1: expected 'after', got {}", short(&got));
    let probes2 = probe_until_through(&mut b1, &mut a1, "probe-b1", "a1").await;
    let after2 = text("after from b1");
    send(&mut b1, after2.clone()).await;
    let got = recv_skipping(&mut a1, "a1", "probe-b1").await;
    assert!(
        got == after2,
        "a1: expected b1's 'after', got {}",
        short(&got)
    );

    // a2 (local to a1) got every message of a1, in order, then b1's that got through.
    for m in &from_a1[DURING..] {
        expect(&mut a2, "a2", m).await;
    }
    let got = recv_skipping(&mut a2, "a2", "probe-b1").await;
    assert!(
        got == after2,
        "a2: expected b1's 'after', got {}",
        short(&got)
    );
    assert!(!probes2.is_empty());

    // One warning for the outage on instance 1, then one line when publishing works again, with
    // the count of what was lost: at least the messages sent while Redis was away.
    let back = format!("broadcast: publishing to {via} again; ");
    let line = i1.bridge.stderr_contains(&back).await;
    let lost_count: usize = line
        .split(&back)
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"));
    assert!(
        lost_count > DURING,
        "{lost_count} lost, but {DURING} messages and a reply were sent while Redis was away: {line}"
    );
    let warnings = i1
        .bridge
        .stderr_lines
        .iter()
        .filter(|l| l.contains(&failed))
        .count();
    assert_eq!(
        warnings, 1,
        "one warning per outage: {:#?}",
        i1.bridge.stderr_lines
    );
    // Nobody was disconnected.
    for (i, who) in [(&mut i1, "instance 1"), (&mut i2, "instance 2")] {
        assert!(
            !i.bridge.stderr_lines.iter().any(|l| l.contains("left (")),
            "{who}: {:#?}",
            i.bridge.stderr_lines
        );
    }
}

/// A Redis that stalls (SIGSTOP: connections open, nothing answered) costs the sessions
/// nothing: members of one instance keep reaching each other at once; publishing gives up (the
/// client's 0.5 s response timeout) with one warning, and works again once Redis does; nobody
/// is disconnected.
#[tokio::test]
async fn a_stalled_redis_does_not_hold_up_local_delivery() {
    let redis = Redis::start().await;
    let via = redis.url();
    let mut i1 = Instance::start(&["--broadcast-via", &via]).await;
    let mut a1 = i1.join("/chat").await;
    let mut a2 = i1.join("/chat").await;
    redis.wait_numsub("wsbridge:room:/chat", 1).await;
    let pid = redis
        .child
        .as_ref()
        .and_then(|c| c.id())
        .expect("redis pid");
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} redis-server");
    };
    signal("-STOP");
    for i in 0..50 {
        let m = text(&format!("stalled {i}"));
        send(&mut a1, m.clone()).await;
        expect(&mut a2, "a2 (Redis stalled)", &m).await;
    }
    let failed = format!("broadcast: publishing to {via} failed (");
    let line = i1.bridge.stderr_contains(&failed).await;
    signal("-CONT");
    let back = format!("broadcast: publishing to {via} again; ");
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut i = 0;
    while i1.bridge.stderr_count(&back) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "publishing never resumed"
        );
        let m = text(&format!("after {i}"));
        send(&mut a1, m.clone()).await;
        expect(&mut a2, "a2 (Redis back)", &m).await;
        i += 1;
    }
    assert_eq!(i1.bridge.stderr_count(&failed), 1, "{line}");
    assert_eq!(
        i1.bridge.stderr_count("left ("),
        0,
        "{:#?}",
        i1.bridge.stderr_lines
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Startup and usage errors

/// What a wsbridge that must not start said: its exit code and stderr. If it announces a
/// listener instead, the test fails at once (rather than waiting for an exit that never comes).
async fn fails_at_startup(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = harness::command(args);
    cmd.stdin(Stdio::null());
    let mut child = cmd.spawn().expect("spawn wsbridge");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = Vec::new();
    let read = tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.expect("stderr") {
            assert!(
                !line.contains("listening on"),
                "wsbridge {args:?} started instead of failing: {line}"
            );
            stderr.push(line);
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "wsbridge {args:?} neither failed nor listened: {stderr:?}"
    );
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("exit in time")
        .expect("wait");
    let stderr = stderr.join("\n");
    assert!(!stderr.contains("panicked"), "{stderr}");
    (status.code(), stderr)
}

fn assert_one_line(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got {lines:?}");
    assert!(lines[0].starts_with("wsbridge: "), "{lines:?}");
    assert!(
        lines[0].contains(needle),
        "{:?} should contain {needle:?}",
        lines[0]
    );
}

#[tokio::test]
async fn an_unreachable_redis_at_startup_is_exit_4_with_the_password_hidden() {
    let port = harness::closed_port();
    let via = format!("redis://ann:s3cr3t-pw@127.0.0.1:{port}/0");
    let (code, stderr) = fails_at_startup(&[
        "--broadcast-via",
        &via,
        "ws-listen:127.0.0.1:0",
        "broadcast:",
    ])
    .await;
    assert_eq!(code, Some(4), "{stderr}");
    let shown = format!(
        "wsbridge: --broadcast-via redis://ann:***@127.0.0.1:{port}/0: connection failed: "
    );
    assert_one_line(&stderr, &shown);
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
    // A password without a user.
    let via = format!("redis://:s3cr3t-pw@127.0.0.1:{port}");
    let (code, stderr) = fails_at_startup(&[
        "--broadcast-via",
        &via,
        "ws-listen:127.0.0.1:0",
        "broadcast:",
    ])
    .await;
    assert_eq!(code, Some(4), "{stderr}");
    assert_one_line(
        &stderr,
        &format!("redis://:***@127.0.0.1:{port}: connection failed"),
    );
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
}

#[tokio::test]
async fn broadcast_via_is_a_usage_error_without_broadcast_or_with_another_scheme() {
    let redis = "redis://127.0.0.1:6379";
    let (code, stderr) =
        fails_at_startup(&["--broadcast-via", redis, "ws-listen:127.0.0.1:0", "mirror:"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert_one_line(&stderr, "--broadcast-via");

    for (url, needle) in [
        ("http://127.0.0.1:6379", "is not redis: or rediss:"),
        (
            "ws://user:s3cr3t-pw@127.0.0.1:6379",
            "ws://user:***@127.0.0.1:6379",
        ),
        ("127.0.0.1:6379", "--broadcast-via"),
        ("redis://", "--broadcast-via"),
    ] {
        let (code, stderr) = fails_at_startup(&[
            "--broadcast-via",
            url,
            "ws-listen:127.0.0.1:0",
            "broadcast:",
        ])
        .await;
        assert_eq!(code, Some(2), "{url}: {stderr}");
        assert_one_line(&stderr, needle);
        assert!(!stderr.contains("s3cr3t"), "{stderr}");
    }

    // The password file belongs to --broadcast-via.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-password");
    std::fs::write(&file, "pw\n").unwrap();
    let file = file.to_str().unwrap();
    let (code, stderr) = fails_at_startup(&[
        "--broadcast-via-password-file",
        file,
        "ws-listen:127.0.0.1:0",
        "broadcast:",
    ])
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert_one_line(&stderr, "--broadcast-via-password-file");
}

// ---------------------------------------------------------------------------------------------
// 5. Prefixes and passwords

#[tokio::test]
async fn different_prefixes_keep_deployments_apart_on_one_redis() {
    let redis = Redis::start().await;
    let via = redis.url();
    let mut watch = redis.watch_all().await;
    let alpha = ["--broadcast-via", &via, "--broadcast-prefix", "alpha:"];
    let beta = ["--broadcast-via", &via, "--broadcast-prefix", "beta/"];
    let (mut ia1, mut ia2) = (Instance::start(&alpha).await, Instance::start(&alpha).await);
    let (mut ib1, mut ib2) = (Instance::start(&beta).await, Instance::start(&beta).await);
    let mut a1 = ia1.join("/chat").await;
    let mut a2 = ia2.join("/chat").await;
    let mut b1 = ib1.join("/chat").await;
    let mut b2 = ib2.join("/chat").await;
    redis.wait_numsub("alpha:/chat", 2).await;
    redis.wait_numsub("beta//chat", 2).await;
    assert_eq!(redis.numsub("wsbridge:room:/chat").await, 0);

    // Each message is published on prefix + room only. Once a member of one deployment got a
    // message, Redis has handed it to every subscriber, so a leak would arrive before the next
    // message of the other deployment.
    let m = text("alpha says");
    send(&mut a1, m.clone()).await;
    expect(&mut a2, "a2 (alpha)", &m).await;
    let (channel, payload) = published(&mut watch).await;
    assert_eq!(channel, "alpha:/chat");
    assert!(payload.ends_with(b"alpha says"), "{payload:?}");

    let m = text("beta says");
    send(&mut b1, m.clone()).await;
    expect(&mut b2, "b2 (beta)", &m).await;
    assert_eq!(published(&mut watch).await.0, "beta//chat");

    let m = text("alpha again");
    send(&mut a1, m.clone()).await;
    expect(&mut a2, "a2 (alpha)", &m).await;
    let m = text("beta again");
    send(&mut b2, m.clone()).await;
    expect(&mut b1, "b1 (beta)", &m).await;
    let m = text("alpha last");
    send(&mut a2, m.clone()).await;
    expect(&mut a1, "a1 (alpha)", &m).await;
}

#[tokio::test]
async fn the_password_file_authenticates_and_a_wrong_password_is_exit_4() {
    const PASSWORD: &str = "pw-Right-7f3a";
    let redis = Redis::start_with_password(PASSWORD).await;
    let via = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("right");
    // With a trailing newline, as `echo … > file` writes it.
    std::fs::write(&right, format!("{PASSWORD}\n")).unwrap();
    let right = right.to_str().unwrap();
    let args = [
        "--broadcast-via",
        &via,
        "--broadcast-via-password-file",
        right,
    ];
    let mut i1 = Instance::start(&args).await;
    let mut i2 = Instance::start(&args).await;
    let mut a = i1.join("/chat").await;
    let mut b = i2.join("/chat").await;
    redis.wait_numsub("wsbridge:room:/chat", 2).await;
    let m = text("authenticated");
    send(&mut a, m.clone()).await;
    expect(&mut b, "b", &m).await;
    let m = Message::Binary(vec![0, 1, 2, 255].into());
    send(&mut b, m.clone()).await;
    expect(&mut a, "a", &m).await;
    for i in [&i1, &i2] {
        assert!(
            !i.bridge.stderr_lines.iter().any(|l| l.contains(PASSWORD)),
            "{:#?}",
            i.bridge.stderr_lines
        );
    }

    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "pw-Wrong-0c1d\n").unwrap();
    let wrong = wrong.to_str().unwrap();
    let (code, stderr) = fails_at_startup(&[
        "--broadcast-via",
        &via,
        "--broadcast-via-password-file",
        wrong,
        "ws-listen:127.0.0.1:0",
        "broadcast:",
    ])
    .await;
    assert_eq!(code, Some(4), "{stderr}");
    assert_one_line(
        &stderr,
        &format!("--broadcast-via {via}: connection failed: "),
    );
    assert!(!stderr.contains("pw-Wrong"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");

    // The same wrong password in the URL: shown as ***.
    let in_url = format!("redis://:pw-Wrong-0c1d@127.0.0.1:{}", redis.port);
    let (code, stderr) = fails_at_startup(&[
        "--broadcast-via",
        &in_url,
        "ws-listen:127.0.0.1:0",
        "broadcast:",
    ])
    .await;
    assert_eq!(code, Some(4), "{stderr}");
    assert_one_line(&stderr, "redis://:***@127.0.0.1:");
    assert!(!stderr.contains("pw-Wrong"), "{stderr}");
}

/// A Redis that wants a password wsbridge was not given is as unusable as an unreachable one:
/// wsbridge PINGs on both connections before it listens (this test found that it once only
/// opened them, then listened and failed every publish and subscription with NOAUTH).
#[tokio::test]
async fn a_redis_that_requires_a_password_wsbridge_lacks_is_exit_4() {
    let redis = Redis::start_with_password("pw-needed").await;
    let via = redis.url();
    let (code, stderr) = fails_at_startup(&[
        "--broadcast-via",
        &via,
        "ws-listen:127.0.0.1:0",
        "broadcast:",
    ])
    .await;
    assert_eq!(code, Some(4), "{stderr}");
    assert_one_line(
        &stderr,
        &format!("--broadcast-via {via}: connection failed: "),
    );
}

/// `rediss://` to a redis-server with TLS: trusted through `--broadcast-via-ca-file`, rooms span
/// instances over it; without the CA file the certificate is not trusted (exit 4, one line).
#[tokio::test]
async fn rooms_span_instances_over_rediss_with_a_private_ca() {
    let redis = Redis::start_with_tls().await;
    let url = redis.tls_url();
    let ca = redis.tls.as_ref().unwrap().1.arg("ca.pem");
    let args = ["--broadcast-via", &url, "--broadcast-via-ca-file", &ca];
    let mut one = Instance::start(&args).await;
    let mut two = Instance::start(&args).await;
    let mut a = one.join("/tls").await;
    let mut b = two.join("/tls").await;
    redis.wait_numsub("wsbridge:room:/tls", 2).await;
    send(&mut a, text("over TLS")).await;
    expect(&mut b, "b", &text("over TLS")).await;
    let untrusted = [
        "--broadcast-via",
        &url,
        "ws-listen:127.0.0.1:0",
        "broadcast:",
    ];
    let (code, stderr) = fails_at_startup(&untrusted).await;
    assert_eq!(code, Some(4), "{stderr}");
    assert_one_line(&stderr, "certificate");
}

/// Redis disconnects a subscriber that falls behind (`client-output-buffer-limit pubsub`):
/// here an instance stopped with SIGSTOP while another floods the room. Once it runs again it
/// says the subscription was lost, renews it, and the room spans instances again.
#[tokio::test]
async fn a_subscription_redis_drops_for_falling_behind_is_logged_and_renewed() {
    let redis = Redis::start().await;
    let limit = [
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "pubsub 64kb 32kb 1",
    ];
    assert_eq!(redis.command(&limit).await, Resp::Simple("OK".into()));
    let url = redis.url();
    let mut one = Instance::start(&["--broadcast-via", &url]).await;
    // Room in b's queue for whatever of the flood reached instance two before the drop.
    let roomy = [
        "--broadcast-queue",
        "100000",
        "--broadcast-queue-bytes",
        "1GiB",
    ];
    let mut two = Instance::start(&[&["--broadcast-via", url.as_str()][..], &roomy].concat()).await;
    let mut a = one.join("/flood").await;
    let mut b = two.join("/flood").await;
    redis.wait_numsub("wsbridge:room:/flood", 2).await;
    let pid = two.bridge.child.id().expect("pid").to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status();
        assert!(ok.expect("kill").success(), "kill {sig}");
    };
    signal("-STOP");
    // Flood until Redis drops the stopped subscriber: the kernel's socket buffers take the
    // first megabytes, then Redis's output buffer passes its hard limit of 64 KiB.
    let chunk = Message::Binary(vec![7u8; 64 << 10].into());
    for _ in 0..128 {
        for _ in 0..16 {
            send(&mut a, chunk.clone()).await;
        }
        if redis.numsub("wsbridge:room:/flood").await == 1 {
            break;
        }
    }
    // Instance one may take the flood faster than it publishes it (its queue holds 8192
    // messages): what it has taken reaches Redis in time, and Redis drops the subscriber.
    redis.wait_numsub("wsbridge:room:/flood", 1).await;
    signal("-CONT");
    two.bridge
        .stderr_contains("broadcast: subscription to redis://")
        .await;
    two.bridge.stderr_contains("subscribed to redis://").await;
    redis.wait_numsub("wsbridge:room:/flood", 2).await;
    // Whatever reached b before the drop is the flood's; then the room works again.
    send(&mut a, text("after the drop")).await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let m = recv(&mut b, "b").await;
        if m == text("after the drop") {
            break;
        }
        assert_eq!(m, chunk, "only flood messages before the marker");
        assert!(tokio::time::Instant::now() < deadline, "marker in time");
    }
}
