//! SOCKS5 (RFC 1928) with the RFC 1929 user/password method: the greeting, the authentication,
//! and a CONNECT request that names the host (the proxy resolves it, the `socks5h` way). Each
//! refusal becomes an error that says whether retrying may help.

use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Proxy, bracket};
use crate::error::{Error, Result};

impl Proxy {
    /// Open the tunnel to `host:port` over `s`, a connection to this (SOCKS5) proxy.
    pub(super) async fn socks5_connect<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        host: &str,
        port: u16,
        target: &str,
    ) -> Result<()> {
        self.socks5_greet(s, target).await?;
        let req = connect_request(host, port)
            .ok_or_else(|| Error::Usage(format!("{target}: host name too long for SOCKS5")))?;
        self.send(s, &req, target).await?;
        self.socks5_reply(s, host, port, target).await
    }

    /// The greeting: offer "no authentication", and user/password when we have one; then
    /// authenticate if the proxy chose that.
    async fn socks5_greet<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        target: &str,
    ) -> Result<()> {
        let greeting: &[u8] = if self.auth.is_some() {
            &[5, 2, 0x00, 0x02]
        } else {
            &[5, 1, 0x00]
        };
        self.send(s, greeting, target).await?;
        let mut choice = [0u8; 2];
        match s.read_exact(&mut choice).await {
            Ok(_) => {}
            // Some proxies (pproxy) hang up instead of answering "no acceptable method".
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let hint = if self.auth.is_some() {
                    ""
                } else {
                    " (does it require a user and password? socks5://USER:PASS@HOST:PORT)"
                };
                return Err(self.refused(
                    target,
                    format!("closed the connection after the SOCKS5 greeting{hint}"),
                ));
            }
            Err(e) => return Err(self.lost(target, "SOCKS5 greeting", e)),
        }
        if choice[0] != 5 {
            return Err(self.refused_connect(
                target,
                format!("is not a SOCKS5 proxy (answered version {})", choice[0]),
            ));
        }
        match choice[1] {
            0x00 => Ok(()),
            0x02 => self.socks5_auth(s, target).await,
            0xff => {
                let hint = if self.auth.is_some() {
                    "SOCKS5 proxy accepts none of our authentication methods (none, user/password)"
                } else {
                    "SOCKS5 proxy requires authentication: socks5://USER:PASS@HOST:PORT"
                };
                Err(self.refused(target, hint.into()))
            }
            other => Err(self.refused(
                target,
                format!("SOCKS5 proxy chose an authentication method we did not offer ({other})"),
            )),
        }
    }

    /// RFC 1929: user and password (the proxy chose this method).
    async fn socks5_auth<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        target: &str,
    ) -> Result<()> {
        let Some((user, pass)) = &self.auth else {
            return Err(self.refused(
                target,
                "SOCKS5 proxy needs a user and password: socks5://USER:PASS@HOST:PORT".into(),
            ));
        };
        let mut msg = vec![1, user.len() as u8];
        msg.extend_from_slice(user.as_bytes());
        msg.push(pass.len() as u8);
        msg.extend_from_slice(pass.as_bytes());
        self.send(s, &msg, target).await?;
        let mut status = [0u8; 2];
        match s.read_exact(&mut status).await {
            Ok(_) if status[1] == 0 => Ok(()),
            Ok(_) => Err(self.refused(target, "SOCKS5 user or password not accepted".into())),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(self.refused(
                target,
                "SOCKS5 proxy closed the connection after authentication (user or password not accepted?)"
                    .into(),
            )),
            Err(e) => Err(self.lost(target, "SOCKS5 authentication", e)),
        }
    }

    /// The answer to CONNECT: success, or a reply code that becomes the error; the bound
    /// address after it is read and skipped (nothing after the reply is consumed).
    async fn socks5_reply<S: AsyncRead + Unpin>(
        &self,
        s: &mut S,
        host: &str,
        port: u16,
        target: &str,
    ) -> Result<()> {
        let mut head = [0u8; 4];
        self.recv(s, &mut head, target, "SOCKS5 CONNECT").await?;
        if head[1] != 0 {
            let (why, give_up) = reply_meaning(head[1]);
            let detail = format!(
                "SOCKS5 CONNECT to {}:{port} failed: {why} (reply {})",
                bracket(host),
                head[1]
            );
            return Err(if give_up {
                self.refused(target, detail)
            } else {
                self.refused_connect(target, detail)
            });
        }
        // Skip the bound address.
        let rest = match head[3] {
            1 => 4 + 2,
            4 => 16 + 2,
            3 => {
                let mut len = [0u8; 1];
                self.recv(s, &mut len, target, "SOCKS5 CONNECT").await?;
                len[0] as usize + 2
            }
            other => {
                return Err(self.refused_connect(
                    target,
                    format!("SOCKS5 proxy answered with an unknown address type {other}"),
                ));
            }
        };
        let mut skip = vec![0u8; rest];
        self.recv(s, &mut skip, target, "SOCKS5 CONNECT").await?;
        Ok(())
    }

    async fn send<S: AsyncWrite + Unpin>(
        &self,
        s: &mut S,
        data: &[u8],
        target: &str,
    ) -> Result<()> {
        s.write_all(data)
            .await
            .map_err(|e| self.lost(target, "SOCKS5 negotiation", e))
    }

    async fn recv<S: AsyncRead + Unpin>(
        &self,
        s: &mut S,
        buf: &mut [u8],
        target: &str,
        step: &str,
    ) -> Result<()> {
        s.read_exact(buf).await.map(|_| ()).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.refused_connect(target, format!("closed the connection during the {step}"))
            } else {
                self.lost(target, step, e)
            }
        })
    }
}

/// The CONNECT request for `host:port` (an address, or a name for the proxy to resolve); None
/// for a name longer than SOCKS5 can carry.
fn connect_request(host: &str, port: u16) -> Option<Vec<u8>> {
    let mut req = vec![5, 1, 0];
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            req.push(1);
            req.extend_from_slice(&a.octets());
        }
        Ok(IpAddr::V6(a)) => {
            req.push(4);
            req.extend_from_slice(&a.octets());
        }
        Err(_) => {
            if host.len() > 255 {
                return None;
            }
            req.push(3);
            req.push(host.len() as u8);
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    Some(req)
}

/// What a CONNECT reply code means, and whether retrying cannot help (the proxy's ruleset or
/// capabilities said no).
fn reply_meaning(code: u8) -> (&'static str, bool) {
    match code {
        1 => ("general SOCKS server failure", false),
        2 => ("connection not allowed by ruleset", true),
        3 => ("network unreachable", false),
        4 => ("host unreachable", false),
        5 => ("connection refused", false),
        6 => ("TTL expired", false),
        7 => ("command not supported", true),
        8 => ("address type not supported", true),
        _ => ("unknown SOCKS5 error", false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn socks5_wire_format() {
        // A scripted SOCKS5 server: checks our bytes and answers.
        let (mut client, mut server) = tokio::io::duplex(1024);
        let p = Proxy::parse("socks5://u:pw@proxy:1").unwrap();
        let peer = tokio::spawn(async move {
            let mut g = [0u8; 4];
            server.read_exact(&mut g).await.unwrap();
            assert_eq!(g, [5, 2, 0, 2]);
            server.write_all(&[5, 2]).await.unwrap();
            let mut a = [0u8; 6];
            server.read_exact(&mut a).await.unwrap();
            assert_eq!(a, [1, 1, b'u', 2, b'p', b'w']);
            server.write_all(&[1, 0]).await.unwrap();
            let mut r = [0u8; 5 + 11 + 2];
            server.read_exact(&mut r).await.unwrap();
            assert_eq!(&r[..5], &[5, 1, 0, 3, 11]);
            assert_eq!(&r[5..16], b"example.com");
            assert_eq!(&r[16..], &443u16.to_be_bytes());
            server
                .write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 80, b'X'])
                .await
                .unwrap();
        });
        p.socks5_connect(&mut client, "example.com", 443, "wss://example.com/")
            .await
            .unwrap();
        // Nothing after the reply was consumed.
        let mut x = [0u8; 1];
        client.read_exact(&mut x).await.unwrap();
        assert_eq!(&x, b"X");
        peer.await.unwrap();
    }

    #[tokio::test]
    async fn socks5_reply_codes() {
        for (code, exit) in [(2u8, 6u8), (5, 4)] {
            let (mut client, mut server) = tokio::io::duplex(1024);
            let p = Proxy::parse("socks5://proxy:1").unwrap();
            tokio::spawn(async move {
                let mut g = [0u8; 3];
                server.read_exact(&mut g).await.unwrap();
                server.write_all(&[5, 0]).await.unwrap();
                let mut r = [0u8; 10];
                server.read_exact(&mut r).await.unwrap();
                server
                    .write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0])
                    .await
                    .unwrap();
            });
            let e = p
                .socks5_connect(&mut client, "10.0.0.1", 80, "ws://10.0.0.1/")
                .await
                .unwrap_err();
            assert_eq!(e.exit_code(), exit, "{e}");
            assert!(e.to_string().contains("socks5://proxy:1"), "{e}");
        }
    }
}
