//! Headless Chromium, for the console-page tests (server_http.rs) and the browser's
//! permessage-deflate (deflate.rs): run once to dump a page's DOM ([`dump_dom`]), or driven over
//! the DevTools protocol with one page ([`Browser`]).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

use super::{LIMIT, peers};

/// Headless Chromium with its own profile, in a process group of its own (its helpers, the
/// zygote and the renderers, share it, so the group can be ended as a whole).
pub fn command(profile: &Path) -> Command {
    let mut cmd = Command::new(peers::chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0)
    .kill_on_drop(true);
    cmd
}

/// Run headless Chromium on `url` and return the DOM after the page settled, bounded.
pub async fn dump_dom(url: &str, profile: &Path) -> String {
    let mut cmd = command(profile);
    cmd.args(["--virtual-time-budget=5000", "--dump-dom", url]);
    let mut child = cmd.spawn().expect("spawn chromium");
    let pgid = child.id().expect("chromium pid") as i32;
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let run = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (o, e, status) = tokio::join!(
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err),
            child.wait()
        );
        o.unwrap();
        e.unwrap();
        (status.unwrap(), out, err)
    };
    let res = tokio::time::timeout(Duration::from_secs(60), run).await;
    // SAFETY: kill(2) on the process group of a child this test started.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let (status, out, err) = res.expect("chromium did not finish within 60 s (killed)");
    let dom = String::from_utf8_lossy(&out).into_owned();
    assert!(
        status.success(),
        "chromium failed: {status}\nstderr: {}\nstdout: {dom}",
        String::from_utf8_lossy(&err)
    );
    dom
}

/// Headless Chromium driven over the DevTools protocol, with one page: it loads a URL, evaluates
/// scripts in it, clicks as a user does (mouse events at an element's centre), and waits for
/// conditions on the page. The whole process group is killed when dropped.
pub struct Browser {
    pgid: i32,
    _child: Child,
    _profile: tempfile::TempDir,
    devtools: tokio_tungstenite::WebSocketStream<TcpStream>,
    /// The page's DevTools session, once attached.
    session: Option<String>,
    next_id: u64,
    /// Events seen and not yet looked at.
    events: Vec<Value>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group of a child this test started.
        unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
    }
}

impl Browser {
    pub async fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut cmd = command(profile.path());
        cmd.args(["--remote-debugging-port=0", "about:blank"])
            .stdout(Stdio::null());
        let mut child = cmd.spawn().expect("spawn chromium");
        let pgid = child.id().expect("chromium pid") as i32;
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(LIMIT, async {
            while let Some(line) = lines.next_line().await.expect("chromium stderr") {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.to_string();
                }
            }
            panic!("chromium exited without announcing DevTools")
        })
        .await
        .expect("chromium announced DevTools within 20 s");
        // Keep reading its stderr, so that Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let host = url.strip_prefix("ws://").and_then(|r| r.split('/').next());
        let tcp = TcpStream::connect(host.expect("ws://HOST:PORT/…")).await;
        let (devtools, _) = tokio_tungstenite::client_async(url.as_str(), tcp.unwrap())
            .await
            .expect("DevTools handshake");
        let mut b = Browser {
            pgid,
            _child: child,
            _profile: profile,
            devtools,
            session: None,
            next_id: 0,
            events: Vec::new(),
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target.await["targetId"].clone();
        let attach = json!({"targetId": target, "flatten": true});
        let attached = b.call("Target.attachToTarget", attach).await;
        b.session = attached["sessionId"].as_str().map(String::from);
        b.call("Page.enable", json!({})).await;
        b.call("Page.setLifecycleEventsEnabled", json!({"enabled": true}))
            .await;
        b
    }

    /// Send a command (to the page, once attached) and return its result. Events that arrive
    /// meanwhile are kept.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.devtools
            .send(Message::text(msg.to_string()))
            .await
            .expect("send to DevTools");
        loop {
            let v = self.recv().await;
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    /// The next message from DevTools, bounded.
    async fn recv(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(LIMIT, self.devtools.next())
                .await
                .expect("a DevTools message within 20 s")
                .expect("DevTools still open")
                .expect("a DevTools message");
            if let Message::Text(t) = m {
                return serde_json::from_str(t.as_str()).expect("JSON from DevTools");
            }
        }
    }

    /// Load `url` and wait for its load event.
    pub async fn open(&mut self, url: &str) {
        let nav = self.call("Page.navigate", json!({"url": url})).await;
        let loader = nav["loaderId"].clone();
        let is_load = |e: &Value| {
            e["method"] == "Page.lifecycleEvent"
                && e["params"]["name"] == "load"
                && e["params"]["loaderId"] == loader
        };
        while !self.events.iter().any(is_load) {
            let e = self.recv().await;
            self.events.push(e);
        }
        self.events.clear();
    }

    /// Evaluate `expr` in the page, awaiting a promise, and return its value.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let params = json!({"expression": expr, "awaitPromise": true, "returnByValue": true});
        let r = self.call("Runtime.evaluate", params).await;
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Wait until the JavaScript condition `cond` holds, checked again on every change to the
    /// page, bounded.
    pub async fn wait_until(&mut self, cond: &str) {
        let expr = format!(
            "new Promise((done) => {{ const check = () => {{ if ({cond}) {{ seen.disconnect(); \
             done(true); }} }}; const seen = new MutationObserver(check); \
             seen.observe(document, {{subtree: true, childList: true, characterData: true, \
             attributes: true}}); check(); }})"
        );
        let waited = tokio::time::timeout(LIMIT, self.eval(&expr)).await;
        assert!(waited.is_ok(), "not within 20 s: {cond}");
    }

    /// Click the element with this id as a user does: the mouse pressed and released over it.
    pub async fn click(&mut self, id: &str) {
        let centre = format!(
            "(() => {{ const r = document.getElementById({id:?}).getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        );
        let at = self.eval(&centre).await;
        for kind in ["mousePressed", "mouseReleased"] {
            let event = json!({"type": kind, "x": at[0], "y": at[1], "button": "left",
                               "clickCount": 1});
            self.call("Input.dispatchMouseEvent", event).await;
        }
    }
}
