//! HTTP CONNECT proxies: the `CONNECT host:port` request (with basic `Proxy-Authorization`),
//! then the answer's head, read without consuming anything after it; a refusal's status says
//! whether retrying may help.

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Proxy, bracket};
use crate::error::Result;

impl Proxy {
    /// `CONNECT host:port HTTP/1.1`, then read the answer's head byte by byte (so nothing after
    /// it, e.g. the start of a TLS handshake, is consumed).
    pub(super) async fn http_connect<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        host: &str,
        port: u16,
        target: &str,
    ) -> Result<()> {
        let authority = format!("{}:{port}", bracket(host));
        let mut req = format!(
            "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: wsbridge\r\n"
        );
        if let Some((user, pass)) = &self.auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| self.lost(target, "sending CONNECT", e))?;
        s.flush()
            .await
            .map_err(|e| self.lost(target, "sending CONNECT", e))?;

        let mut head = Vec::with_capacity(256);
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= 16 * 1024 {
                return Err(self.refused_connect(target, "answer to CONNECT is too long".into()));
            }
            match s.read(&mut byte).await {
                Ok(0) => {
                    return Err(self.refused_connect(
                        target,
                        "closed the connection without answering CONNECT".into(),
                    ));
                }
                Ok(_) => head.push(byte[0]),
                Err(e) => return Err(self.lost(target, "reading the answer to CONNECT", e)),
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let code = match resp.parse(&head) {
            Ok(httparse::Status::Complete(_)) => resp.code.unwrap_or(0),
            _ => {
                return Err(self.refused_connect(
                    target,
                    "answered CONNECT with something that is not HTTP".into(),
                ));
            }
        };
        if (200..300).contains(&code) {
            return Ok(());
        }
        let reason = crate::text::escape_controls(resp.reason.unwrap_or("").trim());
        let status = format!("HTTP {code} {reason}").trim_end().to_string();
        match code {
            407 => {
                let hint = if self.auth.is_some() {
                    "the proxy user or password was not accepted"
                } else {
                    "the proxy needs a user and password: http://USER:PASS@HOST:PORT"
                };
                Err(self.refused(target, format!("{status} ({hint})")))
            }
            // The proxy's decision about this target or about us: retrying will not help.
            400..=499 => Err(self.refused(target, status)),
            // 502/503/504: the proxy could not reach the target; that may be transient.
            _ => Err(self.refused_connect(target, format!("refused the tunnel: {status}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn http_connect_answers() {
        for (answer, ok, exit) in [
            ("HTTP/1.1 200 Connection established\r\n\r\nX", true, 0u8),
            (
                "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
                false,
                6,
            ),
            ("HTTP/1.1 403 Forbidden\r\n\r\n", false, 6),
            ("HTTP/1.1 502 Bad Gateway\r\n\r\n", false, 4),
        ] {
            let (mut client, mut server) = tokio::io::duplex(4096);
            let p = Proxy::parse("http://bob:hunter2@proxy:3128").unwrap();
            let peer = tokio::spawn(async move {
                let mut got = Vec::new();
                let mut b = [0u8; 1];
                while !got.ends_with(b"\r\n\r\n") {
                    server.read_exact(&mut b).await.unwrap();
                    got.push(b[0]);
                }
                server.write_all(answer.as_bytes()).await.unwrap();
                String::from_utf8(got).unwrap()
            });
            let r = p
                .http_connect(&mut client, "::1", 9000, "ws://[::1]:9000/")
                .await;
            let req = peer.await.unwrap();
            assert!(req.starts_with("CONNECT [::1]:9000 HTTP/1.1\r\n"), "{req}");
            assert!(
                req.contains("Proxy-Authorization: Basic Ym9iOmh1bnRlcjI=\r\n"),
                "{req}"
            );
            match r {
                Ok(()) => {
                    assert!(ok);
                    let mut x = [0u8; 1];
                    client.read_exact(&mut x).await.unwrap();
                    assert_eq!(&x, b"X");
                }
                Err(e) => {
                    assert!(!ok, "{answer}");
                    assert_eq!(e.exit_code(), exit, "{e}");
                    let m = e.to_string();
                    assert!(m.contains("http://bob:***@proxy:3128"), "{m}");
                    assert!(!m.contains("hunter2"), "{m}");
                }
            }
        }
    }
}
