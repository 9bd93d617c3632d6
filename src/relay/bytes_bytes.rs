//! Bytes↔bytes: two byte streams copied with half-close (or ended at the first EOF with `-E`).

use tokio::io::AsyncWriteExt;

use super::RelayOptions;
use super::closing::is_disconnect;
use crate::conn::{BoxReader, BoxWriter, ByteConn};
use crate::error::{Error, Result};

pub(crate) async fn bytes_bytes(a: ByteConn, b: ByteConn, opts: &RelayOptions) -> Result<()> {
    let ByteConn {
        reader: ar,
        writer: aw,
        label: a_label,
        guard: _a_guard,
        ..
    } = a;
    let ByteConn {
        reader: br,
        writer: bw,
        label: b_label,
        guard: _b_guard,
        ..
    } = b;
    let exit_on_eof = opts.exit_on_eof;
    let fwd = copy_half(opts.forward, exit_on_eof, ar, bw);
    let rev = copy_half(opts.reverse, exit_on_eof, br, aw);
    // With -E the first direction to end ends the session: dropping the other one closes its
    // writer too.
    let both = async {
        if exit_on_eof {
            tokio::select! {
                r = fwd => r,
                r = rev => r,
            }
        } else {
            tokio::try_join!(fwd, rev).map(|_| ())
        }
    };
    // Byte streams have no goodbye of their own: on shutdown both are simply closed.
    let result = tokio::select! {
        r = both => r,
        () = opts.shutdown.cancelled() => Ok(()),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if is_disconnect(&e) => Ok(()),
        Err(e) => Err(Error::io(format!("{a_label} <-> {b_label}"), e)),
    }
}

/// One direction of a byte↔byte bridge: copy, then pass the EOF on (half-close). The writer is
/// dropped at the end, not just shut down: for a pipe (a child's stdin) only closing it is EOF.
async fn copy_half(
    enabled: bool,
    exit_on_eof: bool,
    mut r: BoxReader,
    mut w: BoxWriter,
) -> std::io::Result<()> {
    if enabled {
        tokio::io::copy(&mut r, &mut w).await?;
    } else if exit_on_eof {
        // A direction that is switched off never ends the session by itself.
        std::future::pending::<()>().await;
    }
    let result = w.shutdown().await;
    drop(w);
    result
}
