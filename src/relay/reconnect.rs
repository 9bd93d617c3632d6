//! `--reconnect`: a byte stream bridged to a WebSocket that is opened again whenever it goes
//! away while the local side is still open; the backoff, its jitter, and which errors end the
//! retrying.

use super::RelayOptions;
use crate::error::{Error, Refused, Result};

use super::bytes_ws::{self, LocalSide};
use super::closing::Ended;

/// `--reconnect`: bridge a byte stream to a WebSocket that is opened again (with exponential
/// backoff and jitter) whenever it goes away while the local side is still open. Local input
/// read while disconnected is queued up to `--reconnect-buffer` bytes, then the local writer
/// waits. Messages in flight when a connection drops may be lost (at-most-once). A refused
/// handshake with 401 or 403 stops the retrying: a rejected credential will not get better.
pub async fn bridge_reconnecting<F, Fut>(
    local: crate::conn::ByteConn,
    local_is_first: bool,
    connect: F,
    opts: &RelayOptions,
    uptime: &super::UptimeOptions,
) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<crate::conn::MsgConn>>,
{
    use std::time::Duration;
    let (send, recv, limits) = if local_is_first {
        (
            opts.forward,
            opts.reverse,
            (opts.max_forward, opts.max_reverse),
        )
    } else {
        (
            opts.reverse,
            opts.forward,
            (opts.max_reverse, opts.max_forward),
        )
    };
    let mut side = LocalSide::new(local, opts);
    let mut delay = uptime.reconnect_min;
    let mut side_was_connected = false;
    loop {
        // Connect, retrying with backoff; local input goes to the queue meanwhile.
        let down_since = tokio::time::Instant::now();
        let ws = loop {
            let attempt = connect();
            tokio::pin!(attempt);
            let result = tokio::select! {
                r = &mut attempt => r,
                r = side.fill_queue(uptime.reconnect_buffer) => Err(r.err().unwrap_or_else(|| Error::Internal("queue".into()))),
                () = opts.shutdown.cancelled() => {
                    side.finish(Some("shutting down".into())).await;
                    return Ok(());
                }
            };
            match result {
                Ok(ws) => break ws,
                Err(e) if gives_up(&e) => {
                    side.finish(Some(e.to_string())).await;
                    return Err(e);
                }
                Err(e) => {
                    let wait = around(delay);
                    tracing::warn!("{e}; retrying in {}", crate::error::fmt_duration(wait));
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        r = side.fill_queue(uptime.reconnect_buffer) => {
                            let e = r.err().unwrap_or_else(|| Error::Internal("queue".into()));
                            side.finish(Some(e.to_string())).await;
                            return Err(e);
                        }
                        () = opts.shutdown.cancelled() => {
                            side.finish(Some("shutting down".into())).await;
                            return Ok(());
                        }
                    }
                    delay = (delay * 2).min(uptime.reconnect_max);
                }
            }
        };
        let connected = tokio::time::Instant::now();
        if side_was_connected {
            crate::metrics::M.reconnected(connected - down_since);
        }
        side_was_connected = true;
        match bytes_ws::pump(&mut side, ws, send, recv, limits, opts, true).await {
            Ended::Done(r) => return r,
            Ended::Dropped(e) => {
                // A connection that lasted a while starts the backoff again from the bottom.
                if connected.elapsed() >= uptime.reconnect_max.max(Duration::from_secs(10)) {
                    delay = uptime.reconnect_min;
                }
                let wait = around(delay);
                tracing::warn!("{e}; reconnecting in {}", crate::error::fmt_duration(wait));
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = opts.shutdown.cancelled() => {
                        side.finish(Some("shutting down".into())).await;
                        return Ok(());
                    }
                }
                delay = (delay * 2).min(uptime.reconnect_max);
            }
        }
    }
}

/// Errors that retrying cannot fix.
fn gives_up(e: &Error) -> bool {
    match e {
        // 401/403 from the server, or a proxy refusing us (407, 403, SOCKS login/ruleset):
        // the same credentials will be refused again.
        Error::Handshake { by, .. } => {
            matches!(by, Refused::Server(401 | 403) | Refused::Proxy)
        }
        Error::Usage(_) | Error::Input(_) | Error::Internal(_) => true,
        _ => false,
    }
}

/// `d` ± 20 %, so many clients do not reconnect in step.
fn around(d: std::time::Duration) -> std::time::Duration {
    d.mul_f64(0.8 + rand::random::<f64>() * 0.4)
}
