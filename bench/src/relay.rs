//! The relay under test: a command template, the flags each relay needs for each scenario, and
//! the running process (readiness, RSS, CPU time, stop).

use std::collections::VecDeque;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::sys;

/// Which command-line syntax the relay speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Syntax {
    /// wsbridge if the program name does not contain "websocat", else websocat
    Auto,
    /// wsbridge: tcp-listen:/ws-listen: with port 0 and the 'listening on' announcement
    Wsbridge,
    /// websocat 1.x: tcp-l:/ws-l: on a port picked by the bench, -E, -t/-b
    Websocat,
}

/// What the relay is asked to do in a scenario.
pub enum Role {
    /// `tcp-listen:` → `ws://URL` (text lines, or binary with `-b`).
    TcpToWs { binary: bool, url: String },
    /// `ws-listen:` → `tcp:127.0.0.1:PORT`, binary.
    WsToTcp { port: u16 },
    /// standard input/output ↔ `ws://URL`, text lines.
    Stdio { url: String },
    /// `-b tcp-listen:` → `wss://URL`, trusting the certificate in `ca` (PEM; websocat: `-k`).
    TcpToWss { url: String, ca: String },
    /// `-b wss-listen:` (PEM `cert` and `key`; websocat 1.x: the PKCS#12 `p12`) →
    /// `tcp:127.0.0.1:PORT`.
    WssToTcp {
        port: u16,
        cert: String,
        key: String,
        p12: String,
    },
    /// `-b wss-listen:` (as `WssToTcp`) → `mirror:`.
    WssToMirror {
        cert: String,
        key: String,
        p12: String,
    },
    /// The arguments as given, in wsbridge's syntax (listening on port 0); for scenarios that
    /// only wsbridge runs (deflate).
    Raw(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct RelaySpec {
    pub name: String,
    words: Vec<String>,
    pub syntax: Syntax,
    /// CPU list for sched_setaffinity in the child (`--pin-relay`).
    pub pin: Option<Vec<usize>>,
}

impl RelaySpec {
    /// `template`: a program and its fixed arguments, split at whitespace; `{args}` marks where
    /// the scenario's arguments go (appended when absent).
    pub fn parse(
        template: &str,
        syntax: Syntax,
        name: Option<String>,
        pin: Option<Vec<usize>>,
    ) -> Result<RelaySpec, String> {
        let words: Vec<String> = template.split_whitespace().map(str::to_string).collect();
        if words.is_empty() || words[0] == "{args}" {
            return Err(format!("relay template '{template}' names no program"));
        }
        let mentions_websocat = words
            .iter()
            .filter(|w| *w != "{args}")
            .any(|w| w.rsplit('/').next().unwrap_or(w).contains("websocat"));
        let syntax = match syntax {
            Syntax::Auto if mentions_websocat => Syntax::Websocat,
            Syntax::Auto => Syntax::Wsbridge,
            s => s,
        };
        let name = name.unwrap_or_else(|| match syntax {
            Syntax::Websocat => "websocat".into(),
            _ => "wsbridge".into(),
        });
        Ok(RelaySpec {
            name,
            words,
            syntax,
            pin,
        })
    }

    /// The program (for `--version`): the first word.
    pub fn program(&self) -> &str {
        &self.words[0]
    }

    fn announces(&self) -> bool {
        self.syntax == Syntax::Wsbridge
    }

    /// The scenario's arguments. `port` is the listening port for relays that do not announce
    /// (None: let the relay pick one and announce it).
    pub fn args(&self, role: &Role, port: Option<u16>) -> Vec<String> {
        let p = port.unwrap_or(0);
        let v: Vec<String> = match (self.syntax, role) {
            (Syntax::Websocat, Role::TcpToWs { binary, url }) => vec![
                if *binary { "-b" } else { "-t" }.into(),
                "-E".into(),
                format!("tcp-l:127.0.0.1:{p}"),
                url.clone(),
            ],
            (Syntax::Websocat, Role::WsToTcp { port: to }) => vec![
                "-b".into(),
                "-E".into(),
                format!("ws-l:127.0.0.1:{p}"),
                format!("tcp:127.0.0.1:{to}"),
            ],
            (Syntax::Websocat, Role::Stdio { url }) => vec!["-t".into(), url.clone()],
            (Syntax::Websocat, Role::TcpToWss { url, .. }) => vec![
                "-b".into(),
                "-E".into(),
                "-k".into(),
                format!("tcp-l:127.0.0.1:{p}"),
                url.clone(),
            ],
            (Syntax::Websocat, Role::WssToTcp { port: to, p12, .. }) => vec![
                "-b".into(),
                "-E".into(),
                "--pkcs12-der".into(),
                p12.clone(),
                format!("wss-l:127.0.0.1:{p}"),
                format!("tcp:127.0.0.1:{to}"),
            ],
            (Syntax::Websocat, Role::WssToMirror { p12, .. }) => vec![
                "-b".into(),
                "--pkcs12-der".into(),
                p12.clone(),
                format!("wss-l:127.0.0.1:{p}"),
                "mirror:".into(),
            ],
            (_, Role::WssToMirror { cert, key, .. }) => vec![
                "-b".into(),
                "--tls-cert".into(),
                cert.clone(),
                "--tls-key".into(),
                key.clone(),
                format!("wss-listen:127.0.0.1:{p}"),
                "mirror:".into(),
            ],
            (_, Role::TcpToWss { url, ca }) => vec![
                "-b".into(),
                "--ca-file".into(),
                ca.clone(),
                format!("tcp-listen:127.0.0.1:{p}"),
                url.clone(),
            ],
            (
                _,
                Role::WssToTcp {
                    port: to,
                    cert,
                    key,
                    ..
                },
            ) => vec![
                "-b".into(),
                "--tls-cert".into(),
                cert.clone(),
                "--tls-key".into(),
                key.clone(),
                format!("wss-listen:127.0.0.1:{p}"),
                format!("tcp:127.0.0.1:{to}"),
            ],
            (_, Role::TcpToWs { binary, url }) => vec![
                if *binary { "-b" } else { "--text" }.into(),
                format!("tcp-listen:127.0.0.1:{p}"),
                url.clone(),
            ],
            (_, Role::WsToTcp { port: to }) => vec![
                "-b".into(),
                format!("ws-listen:127.0.0.1:{p}"),
                format!("tcp:127.0.0.1:{to}"),
            ],
            (_, Role::Stdio { url }) => vec!["--text".into(), "-".into(), url.clone()],
            (_, Role::Raw(args)) => args.clone(),
        };
        v
    }

    /// The command for these arguments, with `{args}` substituted (or the arguments appended),
    /// and the CPU pinning applied in the child.
    pub fn command(&self, args: &[String]) -> Command {
        let mut all: Vec<String> = Vec::new();
        let mut placed = false;
        for w in &self.words {
            if w == "{args}" {
                all.extend(args.iter().cloned());
                placed = true;
            } else {
                all.push(w.clone());
            }
        }
        if !placed {
            all.extend(args.iter().cloned());
        }
        let mut cmd = Command::new(&all[0]);
        cmd.args(&all[1..]);
        if let Some(cpus) = self.pin.clone() {
            // SAFETY: only async-signal-safe calls (sched_setaffinity) between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    for &c in &cpus {
                        libc::CPU_SET(c, &mut set);
                    }
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                    Ok(())
                });
            }
        }
        cmd
    }

    pub fn describe(&self, role: &Role) -> String {
        let args: Vec<String> = self
            .args(role, None)
            .into_iter()
            .map(|a| {
                if self.announces() {
                    a
                } else {
                    a.replace("127.0.0.1:0", "127.0.0.1:PORT")
                }
            })
            .collect();
        let mut w = self.words.clone();
        if !w.iter().any(|x| x == "{args}") {
            w.push("{args}".into());
        }
        w.iter()
            .map(|x| {
                if x == "{args}" {
                    args.join(" ")
                } else {
                    x.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A running relay with a listener.
pub struct RelayProc {
    child: Child,
    pub pid: u32,
    pub port: u16,
    tail: Arc<Mutex<VecDeque<String>>>,
}

const READY_LIMIT: Duration = Duration::from_secs(10);

/// The port in `wsbridge: listening on tcp 127.0.0.1:PORT` or `… on ws ws://127.0.0.1:PORT/`.
fn announced_port(line: &str) -> Option<u16> {
    let last = line.split_whitespace().last()?;
    let hostport = last
        .strip_prefix("ws://")
        .or_else(|| last.strip_prefix("wss://"))
        .unwrap_or(last);
    let hostport = hostport.split('/').next()?;
    hostport.rsplit_once(':')?.1.parse().ok()
}

impl RelayProc {
    pub fn spawn(spec: &RelaySpec, role: &Role) -> Result<RelayProc, String> {
        let port = if spec.announces() {
            None
        } else {
            Some(sys::free_port().map_err(|e| format!("no free port: {e}"))?)
        };
        let args = spec.args(role, port);
        let mut cmd = spec.command(&args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{}: cannot start: {e}", spec.program()))?;
        let pid = child.id();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel::<u16>();
        {
            // Drain stderr for the whole life of the relay (a full pipe would block it); keep
            // the last lines for error messages; report the announced port.
            let stderr = child.stderr.take().expect("piped");
            let tail = tail.clone();
            std::thread::spawn(move || {
                let mut sent = false;
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if !sent
                        && line.contains("listening on")
                        && let Some(p) = announced_port(&line)
                    {
                        let _ = tx.send(p);
                        sent = true;
                    }
                    let mut t = tail.lock().unwrap();
                    if t.len() >= 20 {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            });
        }
        let mut relay = RelayProc {
            child,
            pid,
            port: 0,
            tail,
        };
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            if let Ok(Some(status)) = relay.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                return Err(format!(
                    "{} exited before listening ({status}): {}",
                    spec.name,
                    relay.stderr_tail()
                ));
            }
            match port {
                None => {
                    if let Ok(p) = rx.recv_timeout(Duration::from_millis(20)) {
                        relay.port = p;
                        break;
                    }
                }
                Some(p) => {
                    if sys::is_listening(p) {
                        relay.port = p;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not start listening within {READY_LIMIT:?}: {}",
                    spec.name,
                    relay.stderr_tail()
                ));
            }
        }
        Ok(relay)
    }

    pub fn rss_kib(&self) -> Option<u64> {
        sys::rss_kib(self.pid)
    }

    pub fn cpu_secs(&self) -> Option<f64> {
        sys::cpu_secs(self.pid)
    }

    pub fn stderr_tail(&self) -> String {
        let t = self.tail.lock().unwrap();
        if t.is_empty() {
            "(no output)".into()
        } else {
            t.iter().cloned().collect::<Vec<_>>().join(" | ")
        }
    }

    /// Did it die (crash) during the scenario?
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!("relay exited ({status}): {}", self.stderr_tail())),
            _ => Ok(()),
        }
    }
}

impl Drop for RelayProc {
    /// SIGTERM, up to 2 s to exit, then SIGKILL; always reaped.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signalling our own child, which has not been reaped yet.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
